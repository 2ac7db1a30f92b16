/* sim/coll_ep.c — expert-parallel dispatch and combine on the flow-level network (see coll.h).
 *
 * For each source rank a we count, from the routing, pr[b] = tokens of a that go to rank b (a token
 * counts once per rank however many of its experts live there) and pn[N] = tokens of a that go to
 * node N. Rank a's kernel is one flow of P bytes (P = what DeepEP counts as a's traffic: its
 * (token, node) pairs for the two-hop kernel, its (token, rank) pairs otherwise); each resource
 * gets weight = (bytes a puts on it) / P. The resources per kernel are listed in coll.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "util.h"

typedef struct ep_src {
  struct ep_run *run; /* owner */
  int a;              /* source rank */
} ep_src;

typedef struct ep_run {
  net *n;
  int R, kernel, combine;
  int *gpu;            /* [R] rank -> GPU */
  uint32_t *sm;        /* [R] SM pool resource, or NULL */
  uint8_t *touch;      /* [R x R] flow of source a touches rank x */
  ep_src *src;         /* [R] flow contexts */
  int pending;         /* flows not yet delivered */
  coll_ep_result *res;
  coll_ep_done_fn done;
  void *ctx;
} ep_run;

void coll_ep_result_free(coll_ep_result *r) {
  if (!r) return;
  free(r->rank_time);
  free(r->rdma_bytes);
  free(r->nvl_bytes);
  memset(r, 0, sizeof *r);
}

static double mean_rate(const coll_ep_result *r, const double *bytes) {
  double s = 0;
  int n = 0;
  for (int i = 0; i < r->ranks; i++)
    if (r->rank_time[i] > 0) s += bytes[i] / (double)r->rank_time[i] * 1e3, n++;
  return n ? s / n : 0;
}

double coll_ep_rdma_gbyte_s(const coll_ep_result *r) { return mean_rate(r, r->rdma_bytes); }
double coll_ep_nvl_gbyte_s(const coll_ep_result *r) { return mean_rate(r, r->nvl_bytes); }

static void ep_finish(ep_run *x) {
  coll_ep_result *res = x->res;
  res->end = net_now(x->n);
  if (x->sm)
    for (int i = 0; i < x->R; i++) net_res_remove(x->n, x->sm[i]);
  for (int i = 0; i < x->R; i++)
    if (res->rank_time[i] > 0) res->rank_time[i] -= res->start;
  coll_ep_done_fn done = x->done;
  void *ctx = x->ctx;
  net *n = x->n;
  free(x->gpu), free(x->sm), free(x->touch), free(x->src);
  free(x);
  done(n, ctx, res);
}

static void ep_flow_done(net *n, void *p) {
  ep_src *s = p;
  ep_run *x = s->run;
  sim_ps now = net_now(n);
  const uint8_t *t = &x->touch[(size_t)s->a * x->R];
  for (int i = 0; i < x->R; i++)
    if (t[i] && (sim_ps)x->res->rank_time[i] < now) x->res->rank_time[i] = now;
  if (--x->pending == 0) ep_finish(x);
}

/* Hop list under construction. */
typedef struct hopbuf {
  net_hop *h;
  int n, cap;
} hopbuf;

static void hb_add(hopbuf *b, uint32_t res, double w) {
  if (w <= 0) return;
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 64;
    b->h = util_xrealloc(b->h, (size_t)b->cap * sizeof *b->h);
  }
  b->h[b->n++] = (net_hop){res, w};
}

/* Adds a route's links with weight w; NIC uplinks (leaving a GPU into the fabric) get w x
 * nic_factor, the per-message overhead. */
static void hb_add_route(hopbuf *b, const topo *t, const net_hop *r, int k, double w, double nic_factor) {
  for (int i = 0; i < k; i++) {
    const topo_link *l = &t->l[r[i].res];
    int up = l->kind == TOPO_L_NIC && l->src < (uint32_t)t->n_gpus;
    hb_add(b, r[i].res, up ? w * nic_factor : w);
  }
}

int coll_ep_start(net *n, const coll_ep_cfg *cfg, const ep_routing *r, int combine, coll_ep_done_fn done, void *ctx) {
  topo *t = net_topo(n);
  int R = r->ranks, gpn = t->gpus_per_node;
  if (r->experts % R != 0) {
    fprintf(stderr, "moesim: error: %d experts do not divide over %d EP ranks\n", r->experts, R);
    return -1;
  }
  ep_run *x = util_xcalloc(1, sizeof *x);
  x->n = n, x->R = R, x->combine = combine, x->done = done, x->ctx = ctx;
  x->gpu = util_xmalloc((size_t)R * sizeof *x->gpu);
  for (int i = 0; i < R; i++) x->gpu[i] = cfg->gpus ? cfg->gpus[i] : cfg->base_gpu + i;
  int *rank_of = util_xmalloc((size_t)t->n_gpus * sizeof *rank_of);
  for (int g = 0; g < t->n_gpus; g++) rank_of[g] = -1;
  int one_node = 1, rc = 0;
  for (int i = 0; i < R; i++) {
    if (x->gpu[i] < 0 || x->gpu[i] >= t->n_gpus || rank_of[x->gpu[i]] >= 0) {
      fprintf(stderr, "moesim: error: EP rank %d maps to GPU %d, outside the topology or taken\n", i, x->gpu[i]);
      rc = -1;
      goto out;
    }
    rank_of[x->gpu[i]] = i;
    one_node &= topo_same_domain(t, x->gpu[0], x->gpu[i]) || i == 0;
  }
  x->kernel = cfg->kernel == COLL_EP_AUTO ? (one_node ? COLL_EP_INTRANODE : COLL_EP_TWO_HOP) : cfg->kernel;
  if (x->kernel == COLL_EP_INTRANODE && !one_node) {
    fprintf(stderr, "moesim: error: the intranode EP kernel needs all ranks in one NVLink domain\n");
    rc = -1;
    goto out;
  }
  if (x->kernel == COLL_EP_TWO_HOP)
    for (int i = 0; i < R && rc == 0; i++)
      for (int l = 0; l < gpn; l++)
        if (rank_of[topo_node_of(t, x->gpu[i]) * gpn + l] < 0) {
          fprintf(stderr, "moesim: error: the two-hop EP kernel needs whole nodes: GPU %d of node %d is not a rank\n",
                  l, topo_node_of(t, x->gpu[i]));
          rc = -1;
          break;
        }
  if (rc) goto out;

  /* Tc: bytes per token as DeepEP's benchmark counts them; Tb: bytes its messages really carry. */
  double Tc = combine ? 2.0 * cfg->hidden
                      : (cfg->dispatch_fp8 ? cfg->hidden + cfg->hidden / 128 * 4.0 : 2.0 * cfg->hidden);
  double Tb = coll_ep_token_bytes(cfg->hidden, r->topk, cfg->dispatch_fp8, combine);
  /* Each RDMA message of `chunk` tokens costs the sending NIC rdma_msg_overhead_ns beyond its
   * bytes: the NIC uplink's weight grows by overhead x its capacity / message bytes. */
  int chunk = cfg->rdma_chunk_tokens > 0 ? cfg->rdma_chunk_tokens : coll_ep_deepep_rdma_chunk(R, combine);
  double msg_factor = 1;
  if (t->uplinks_per_gpu > 0)
    msg_factor += t->gpu.rdma_msg_overhead_ns * 1e3 * (t->l[t->up[0]].gbyte_s * 1e-3) / (chunk * Tb);
  coll_ep_result *res = util_xcalloc(1, sizeof *res);
  res->ranks = R;
  res->start = net_now(n);
  res->rank_time = util_xcalloc((size_t)R, sizeof *res->rank_time);
  res->rdma_bytes = util_xcalloc((size_t)R, sizeof *res->rdma_bytes);
  res->nvl_bytes = util_xcalloc((size_t)R, sizeof *res->nvl_bytes);
  x->res = res;
  if (cfg->sms > 0) {
    x->sm = util_xmalloc((size_t)R * sizeof *x->sm);
    for (int i = 0; i < R; i++) x->sm[i] = net_res_add(n, cfg->sms * t->gpu.copy_gbyte_s_per_sm, NET_RES_SM, x->gpu[i]);
  }
  x->touch = util_xcalloc((size_t)R * R, 1);
  x->src = util_xmalloc((size_t)R * sizeof *x->src);

  int n_nodes = t->n_nodes;
  double *pr = util_xmalloc((size_t)R * sizeof *pr), *pn = util_xcalloc((size_t)n_nodes, sizeof *pn);
  int *seen_r = util_xmalloc((size_t)R * sizeof *seen_r), *seen_n = util_xmalloc((size_t)n_nodes * sizeof *seen_n);
  int *nodes = util_xmalloc((size_t)n_nodes * sizeof *nodes);
  hopbuf *hbs = util_xcalloc((size_t)R, sizeof *hbs);
  double *Ps = util_xcalloc((size_t)R, sizeof *Ps);
  sim_ps *lats = util_xcalloc((size_t)R, sizeof *lats);
  net_hop route[2 * TOPO_MAX_HOPS + 2];
  int per = r->experts / R;
  for (int i = 0; i < R; i++) seen_r[i] = -1;
  for (int i = 0; i < n_nodes; i++) seen_n[i] = -1;

  for (int a = 0; a < R && rc == 0; a++) {
    int ga = x->gpu[a], Na = topo_node_of(t, ga), la = topo_local_of(t, ga), nn = 0;
    memset(pr, 0, (size_t)R * sizeof *pr);
    for (int tok = 0; tok < r->tokens; tok++) {
      const int32_t *e = &r->idx[((size_t)a * r->tokens + (size_t)tok) * r->topk];
      int stamp = a * r->tokens + tok;
      for (int k = 0; k < r->topk; k++) {
        if (e[k] < 0) continue;
        int b = e[k] / per, N = topo_node_of(t, x->gpu[b]);
        if (seen_r[b] != stamp) seen_r[b] = stamp, pr[b] += 1;
        if (seen_n[N] != stamp) {
          seen_n[N] = stamp;
          if (pn[N] == 0) nodes[nn++] = N;
          pn[N] += 1;
        }
      }
    }
    double pairs_node = 0, pairs_rank = 0;
    for (int i = 0; i < nn; i++) pairs_node += pn[nodes[i]];
    for (int b = 0; b < R; b++) pairs_rank += pr[b], res->nvl_bytes[b] += pr[b] * Tc;
    res->rdma_bytes[a] = pairs_node * Tc;
    double P = (x->kernel == COLL_EP_TWO_HOP ? pairs_node : pairs_rank) * Tb;
    uint8_t *touch = &x->touch[(size_t)a * R];
    touch[a] = 1;
    hopbuf hb = {0};
    sim_ps lat = 0;
    if (P > 0 && x->kernel == COLL_EP_TWO_HOP) {
      if (x->sm) hb_add(&hb, x->sm[a], 1.0); /* pack (dispatch) / final reduce (combine) */
      for (int i = 0; i < nn; i++) {
        int N = nodes[i], gf = N * gpn + la, f = rank_of[gf];
        double wn = pn[N] * Tb / P, fwd = 0;
        sim_ps l_ib = 0, l_nvl = 0;
        if (N != Na) {
          int relay, k = net_route(n, combine ? gf : ga, combine ? ga : gf,
                                   &(net_send_opts){.path = NET_PATH_DIRECT, .key = (uint64_t)a * 65599u + (uint64_t)f},
                                   route, &relay);
          if (k < 0) {
            fprintf(stderr, "moesim: error: no scale-out route between GPUs %d and %d\n", ga, gf);
            rc = -1;
            break;
          }
          hb_add_route(&hb, t, route, k, wn, msg_factor);
          for (int j = 0; j < k; j++) l_ib += t->l[route[j].res].latency;
          res->scaleout_bytes += pn[N] * Tb;
        }
        touch[f] = 1;
        for (int l = 0; l < gpn; l++) {
          int gb = N * gpn + l, b = rank_of[gb];
          if (pr[b] == 0) continue;
          double wb = pr[b] * Tb / P;
          fwd += wb;
          touch[b] = 1;
          if (x->sm) hb_add(&hb, x->sm[b], wb); /* receive copy (dispatch) / send copy (combine) */
          if (b != f) {
            hb_add(&hb, combine ? t->nvl_up[gb] : t->nvl_up[gf], wb);
            hb_add(&hb, combine ? t->nvl_down[gf] : t->nvl_down[gb], wb);
            l_nvl = t->l[t->nvl_up[gf]].latency + t->l[t->nvl_down[gb]].latency;
            res->nvlink_bytes += pr[b] * Tb;
          }
        }
        if (x->sm) hb_add(&hb, x->sm[f], fwd); /* forward (dispatch) / reduce (combine) */
        if (l_ib + l_nvl > lat) lat = l_ib + l_nvl;
      }
    } else if (P > 0) { /* intranode or direct: one hop per destination rank */
      double send = 0;
      for (int b = 0; b < R && rc == 0; b++) {
        if (pr[b] == 0) continue;
        double wb = pr[b] * Tb / P;
        int gb = x->gpu[b], relay, k = 0;
        send += wb;
        touch[b] = 1;
        if (x->sm) hb_add(&hb, x->sm[b], wb);
        if (b != a) {
          k = net_route(n, combine ? gb : ga, combine ? ga : gb,
                        &(net_send_opts){.path = NET_PATH_AUTO, .key = (uint64_t)a * 65599u + (uint64_t)b}, route, &relay);
          if (k < 0) {
            fprintf(stderr, "moesim: error: no route between GPUs %d and %d\n", ga, gb);
            rc = -1;
            break;
          }
          hb_add_route(&hb, t, route, k, wb, msg_factor);
          sim_ps l = 0;
          for (int j = 0; j < k; j++) {
            const topo_link *lk = &t->l[route[j].res];
            l += lk->latency;
            if (lk->src < (uint32_t)t->n_gpus) /* leaving a GPU: NIC uplink or NVLink up */
              *(lk->kind == TOPO_L_NIC ? &res->scaleout_bytes : &res->nvlink_bytes) += pr[b] * Tb;
          }
          if (l > lat) lat = l;
        }
      }
      if (x->sm) hb_add(&hb, x->sm[a], send);
    }
    for (int i = 0; i < nn; i++) pn[nodes[i]] = 0;
    hbs[a] = hb, Ps[a] = P, lats[a] = lat;
  }
  /* Every route exists: start the flows (or undo everything). */
  for (int a = 0; a < R && rc == 0; a++) {
    x->src[a] = (ep_src){x, a};
    if (Ps[a] <= 0) continue;
    x->pending++;
    net_flow(n, (uint64_t)(Ps[a] + 0.5), hbs[a].h, hbs[a].n, lats[a], ep_flow_done, &x->src[a]);
  }
  if (rc == 0 && x->pending == 0) {
    /* Nothing to move: done at once (through the event core, like any completion). */
    x->pending = 1;
    net_flow(n, 0, NULL, 0, 0, ep_flow_done, &x->src[0]);
  }
  for (int a = 0; a < R; a++) free(hbs[a].h);
  free(hbs), free(Ps), free(lats);
  free(pr), free(pn), free(seen_r), free(seen_n), free(nodes);
out:
  free(rank_of);
  if (rc != 0) {
    if (x->sm)
      for (int i = 0; i < R; i++) net_res_remove(n, x->sm[i]);
    coll_ep_result_free(x->res);
    free(x->res);
    free(x->gpu), free(x->sm), free(x->touch), free(x->src);
    free(x);
  }
  return rc;
}

int coll_ep_deepep_rdma_chunk(int ranks, int combine) {
  static const int sizes[] = {16, 24, 32, 48, 64, 96, 128, 144, 160};
  static const int disp[] = {20, 8, 8, 8, 8, 12, 12, 12, 12};
  static const int comb[] = {12, 8, 8, 8, 8, 8, 8, 8, 8};
  size_t best = 0;
  for (size_t i = 0; i < UTIL_ARRAY_LEN(sizes); i++)
    if (abs(sizes[i] - ranks) < abs(sizes[best] - ranks)) best = i;
  return combine ? comb[best] : disp[best];
}

double coll_ep_token_bytes(int hidden, int topk, int fp8, int combine) {
  double b;
  if (combine) b = 2.0 * hidden + 8 + 4.0 * topk;
  else b = (fp8 ? hidden + hidden / 128 * 4.0 : 2.0 * hidden) + 8 + 8.0 * topk;
  return 16 * ((int64_t)(b + 15) / 16);
}

typedef struct run_ctx {
  coll_ep_result *out;
  int done;
} run_ctx;

static void run_done(net *n, void *ctx, coll_ep_result *r) {
  (void)n;
  run_ctx *c = ctx;
  *c->out = *r;
  free(r);
  c->done = 1;
}

int coll_ep_run(topo *t, uint64_t seed, const coll_ep_cfg *cfg, const ep_routing *r, int combine, coll_ep_result *out) {
  des_sim *s = des_new();
  net *n = net_new(s, t, &(net_opts){.seed = seed});
  run_ctx c = {out, 0};
  memset(out, 0, sizeof *out);
  int rc = coll_ep_start(n, cfg, r, combine, run_done, &c);
  des_run(s);
  net_free(n);
  des_free(s);
  return rc == 0 && c.done ? 0 : -1;
}
