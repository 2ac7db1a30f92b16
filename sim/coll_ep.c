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
  int *gpu;            /* [R] rank -> GPU (copy) */
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

void coll_ep_result_move(coll_ep_result *dst, coll_ep_result *src) {
  *dst = *src;
  memset(src, 0, sizeof *src);
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
  done(n, ctx, res); /* the callback owns res from here */
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
    hb_add(b, r[i].res, (up ? w * nic_factor : w) * r[i].weight);
  }
}

/* A token's bytes in DeepEP's buffers for a payload of `payload` bytes (see coll_ep_token_bytes). */
static double ep_token_bytes(double payload, int topk, int combine) {
  double b = payload + 8 + (combine ? 4.0 : 8.0) * topk;
  return 16 * ((int64_t)(b + 15) / 16);
}

struct coll_ep_plan {
  topo *t;          /* topology (not owned) */
  coll_ep_cfg cfg;  /* settings (cfg.gpus points at gpu) */
  int R, kernel, topk, NN;
  int *gpu;         /* [R] rank -> GPU */
  int *rank_of;     /* [n_gpus] GPU -> rank or -1 */
  int *node;        /* [NN] topology nodes of the group */
  int *rnode;       /* [R] rank -> index into node */
  double *pr;       /* [R x R] tokens of source a that go to rank b */
  double *pn;       /* [R x NN] tokens of source a that go to node j */
};

void coll_ep_plan_free(coll_ep_plan *p) {
  if (!p) return;
  free(p->gpu), free(p->rank_of), free(p->node), free(p->rnode), free(p->pr), free(p->pn);
  free(p);
}

coll_ep_plan *coll_ep_plan_new(topo *t, const coll_ep_cfg *cfg, const ep_routing *r) {
  int R = r->ranks, gpn = t->gpus_per_node;
  if (R < 1 || r->experts % R != 0) {
    fprintf(stderr, "moesim: error: %d experts do not divide over %d EP ranks\n", r->experts, R);
    return NULL;
  }
  coll_ep_plan *p = util_xcalloc(1, sizeof *p);
  p->t = t, p->cfg = *cfg, p->R = R, p->topk = r->topk;
  p->gpu = util_xmalloc((size_t)R * sizeof *p->gpu);
  p->cfg.gpus = p->gpu;
  for (int i = 0; i < R; i++) p->gpu[i] = cfg->gpus ? cfg->gpus[i] : cfg->base_gpu + i;
  p->rank_of = util_xmalloc((size_t)t->n_gpus * sizeof *p->rank_of);
  for (int g = 0; g < t->n_gpus; g++) p->rank_of[g] = -1;
  p->node = util_xmalloc((size_t)R * sizeof *p->node);
  p->rnode = util_xmalloc((size_t)R * sizeof *p->rnode);
  int one_node = 1;
  for (int i = 0; i < R; i++) {
    int g = p->gpu[i];
    if (g < 0 || g >= t->n_gpus || p->rank_of[g] >= 0) {
      fprintf(stderr, "moesim: error: EP rank %d maps to GPU %d, outside the topology or taken\n", i, g);
      goto fail;
    }
    p->rank_of[g] = i;
    one_node &= i == 0 || topo_same_domain(t, p->gpu[0], g);
    int N = topo_node_of(t, g), j = 0;
    while (j < p->NN && p->node[j] != N) j++;
    if (j == p->NN) p->node[p->NN++] = N;
    p->rnode[i] = j;
  }
  p->kernel = cfg->kernel == COLL_EP_AUTO ? (one_node ? COLL_EP_INTRANODE : COLL_EP_TWO_HOP) : cfg->kernel;
  if (p->kernel == COLL_EP_INTRANODE && !one_node) {
    fprintf(stderr, "moesim: error: the intranode EP kernel needs all ranks in one NVLink domain\n");
    goto fail;
  }
  if (p->kernel == COLL_EP_TWO_HOP)
    for (int j = 0; j < p->NN; j++)
      for (int l = 0; l < gpn; l++)
        if (p->rank_of[p->node[j] * gpn + l] < 0) {
          fprintf(stderr, "moesim: error: the two-hop EP kernel needs whole nodes: GPU %d of node %d is not a rank\n",
                  l, p->node[j]);
          goto fail;
        }
  /* Count (token, rank) and (token, node) pairs per source. */
  int per = r->experts / R, NN = p->NN;
  int *er = util_xmalloc((size_t)r->experts * sizeof *er);
  for (int e = 0; e < r->experts; e++) er[e] = e / per;
  p->pr = util_xcalloc((size_t)R * R, sizeof *p->pr);
  p->pn = util_xcalloc((size_t)R * NN, sizeof *p->pn);
  int *seen_r = util_xmalloc((size_t)R * sizeof *seen_r), *seen_n = util_xmalloc((size_t)NN * sizeof *seen_n);
  for (int i = 0; i < R; i++) seen_r[i] = -1;
  for (int j = 0; j < NN; j++) seen_n[j] = -1;
  int stamp = 0;
  uint32_t *cr = util_xmalloc((size_t)R * sizeof *cr), *cn = util_xmalloc((size_t)NN * sizeof *cn);
  for (int a = 0; a < R; a++) {
    memset(cr, 0, (size_t)R * sizeof *cr);
    memset(cn, 0, (size_t)NN * sizeof *cn);
    const int32_t *e = &r->idx[(size_t)a * r->tokens * r->topk];
    if (R <= 64 && NN <= 64) {
      /* Bit masks of the token's ranks and nodes, then one count per set bit. */
      for (int tok = 0; tok < r->tokens; tok++, e += r->topk) {
        uint64_t rm = 0, nm = 0;
        for (int k = 0; k < r->topk; k++)
          if (e[k] >= 0) {
            int b = er[e[k]];
            rm |= 1ull << b, nm |= 1ull << p->rnode[b];
          }
        for (; rm; rm &= rm - 1) cr[__builtin_ctzll(rm)]++;
        for (; nm; nm &= nm - 1) cn[__builtin_ctzll(nm)]++;
      }
    } else {
      for (int tok = 0; tok < r->tokens; tok++, stamp++, e += r->topk)
        for (int k = 0; k < r->topk; k++) {
          if (e[k] < 0) continue;
          int b = er[e[k]];
          if (seen_r[b] == stamp) continue;
          seen_r[b] = stamp, cr[b]++;
          int j = p->rnode[b];
          if (seen_n[j] != stamp) seen_n[j] = stamp, cn[j]++;
        }
    }
    for (int b = 0; b < R; b++) p->pr[(size_t)a * R + b] = cr[b];
    for (int j = 0; j < NN; j++) p->pn[(size_t)a * NN + j] = cn[j];
  }
  free(cr), free(cn);
  free(er), free(seen_r), free(seen_n);
  return p;
fail:
  coll_ep_plan_free(p);
  return NULL;
}

int coll_ep_start_plan(net *n, const coll_ep_plan *p, int combine, coll_ep_done_fn done, void *ctx) {
  topo *t = net_topo(n);
  const coll_ep_cfg *cfg = &p->cfg;
  int R = p->R, NN = p->NN, gpn = t->gpus_per_node, rc = 0;
  /* Tc: bytes per token as DeepEP's benchmark counts them; Tb: bytes its messages really carry. */
  int fmt = cfg->fmt[combine];
  if (fmt == COLL_EP_FMT_DEFAULT) fmt = combine || !cfg->dispatch_fp8 ? COLL_EP_FMT_BF16 : COLL_EP_FMT_FP8;
  double Tc = coll_ep_payload_bytes(fmt, cfg->hidden);
  double Tb = ep_token_bytes(Tc, p->topk, combine);
  /* SM work per byte at each SM stage: a copy, plus the LogFMT encode/decode where the payload is one */
  double smw = fmt == COLL_EP_FMT_LOGFMT8 || fmt == COLL_EP_FMT_LOGFMT10 ? 1 + cfg->codec_sm_factor : 1;
  /* Each RDMA message of `chunk` tokens costs the sending NIC rdma_msg_overhead_ns beyond its
   * bytes: the NIC uplink's weight grows by overhead x its capacity / message bytes. */
  int chunk = cfg->rdma_chunk_tokens > 0 ? cfg->rdma_chunk_tokens : coll_ep_deepep_rdma_chunk(R, combine);
  double msg_factor = 1;
  if (t->uplinks_per_gpu > 0)
    msg_factor += t->gpu.rdma_msg_overhead_ns * 1e3 * (t->l[t->up[0]].gbyte_s * 1e-3) / (chunk * Tb);

  ep_run *x = util_xcalloc(1, sizeof *x);
  x->n = n, x->R = R, x->combine = combine, x->kernel = p->kernel, x->done = done, x->ctx = ctx;
  x->gpu = util_xmalloc((size_t)R * sizeof *x->gpu);
  memcpy(x->gpu, p->gpu, (size_t)R * sizeof *x->gpu);
  coll_ep_result *res = util_xcalloc(1, sizeof *res);
  res->ranks = R;
  res->start = net_now(n);
  res->rank_time = util_xcalloc((size_t)R, sizeof *res->rank_time);
  res->rdma_bytes = util_xcalloc((size_t)R, sizeof *res->rdma_bytes);
  res->nvl_bytes = util_xcalloc((size_t)R, sizeof *res->nvl_bytes);
  x->res = res;
  x->touch = util_xcalloc((size_t)R * R, 1);
  x->src = util_xmalloc((size_t)R * sizeof *x->src);
  uint32_t *sm = NULL;
  if (cfg->sms > 0) {
    sm = util_xmalloc((size_t)R * sizeof *sm);
    for (int i = 0; i < R; i++) sm[i] = net_res_add(n, cfg->sms * t->gpu.copy_gbyte_s_per_sm, NET_RES_SM, x->gpu[i]);
  }
  x->sm = sm;
  hopbuf *hbs = util_xcalloc((size_t)R, sizeof *hbs);
  double *Ps = util_xcalloc((size_t)R, sizeof *Ps);
  sim_ps *lats = util_xcalloc((size_t)R, sizeof *lats);
  net_hop *route = util_xmalloc(NET_ROUTE_MAX * sizeof *route);

  for (int a = 0; a < R && rc == 0; a++) {
    const double *pr = &p->pr[(size_t)a * R], *pn = &p->pn[(size_t)a * NN];
    int ga = x->gpu[a], la = topo_local_of(t, ga), ja = p->rnode[a];
    double pairs_node = 0, pairs_rank = 0;
    for (int j = 0; j < NN; j++) pairs_node += pn[j];
    for (int b = 0; b < R; b++) pairs_rank += pr[b], res->nvl_bytes[b] += pr[b] * Tc;
    res->rdma_bytes[a] = pairs_node * Tc;
    double P = (x->kernel == COLL_EP_TWO_HOP ? pairs_node : pairs_rank) * Tb;
    uint8_t *touch = &x->touch[(size_t)a * R];
    touch[a] = 1;
    hopbuf hb = {0};
    sim_ps lat = 0;
    if (P > 0 && x->kernel == COLL_EP_TWO_HOP) {
      if (sm) hb_add(&hb, sm[a], smw); /* pack (dispatch) / final reduce (combine) */
      for (int j = 0; j < NN && rc == 0; j++) {
        if (pn[j] == 0) continue;
        int N = p->node[j], gf = N * gpn + la, f = p->rank_of[gf];
        double wn = pn[j] * Tb / P, fwd = 0;
        sim_ps l_ib = 0, l_nvl = 0;
        if (j != ja) {
          int relay, k = net_route(n, combine ? gf : ga, combine ? ga : gf,
                                   &(net_send_opts){.path = NET_PATH_DIRECT, .key = (uint64_t)a * 65599u + (uint64_t)f},
                                   route, &relay);
          if (k < 0) {
            fprintf(stderr, "moesim: error: no scale-out route between GPUs %d and %d\n", ga, gf);
            rc = -1;
            break;
          }
          hb_add_route(&hb, t, route, k, wn, msg_factor);
          for (int i = 0; i < k; i++) l_ib += (sim_ps)((double)t->l[route[i].res].latency * route[i].weight + 0.5);
          res->scaleout_bytes += pn[j] * Tb;
        }
        touch[f] = 1;
        for (int l = 0; l < gpn; l++) {
          int gb = N * gpn + l, b = p->rank_of[gb];
          if (pr[b] == 0) continue;
          double wb = pr[b] * Tb / P;
          fwd += wb;
          touch[b] = 1;
          if (sm) hb_add(&hb, sm[b], wb * smw); /* receive copy (dispatch) / send copy (combine) */
          if (b != f) {
            hb_add(&hb, combine ? t->nvl_up[gb] : t->nvl_up[gf], wb);
            hb_add(&hb, combine ? t->nvl_down[gf] : t->nvl_down[gb], wb);
            l_nvl = t->l[t->nvl_up[gf]].latency + t->l[t->nvl_down[gb]].latency;
            res->nvlink_bytes += pr[b] * Tb;
          }
        }
        if (sm && !cfg->hw_forward) hb_add(&hb, sm[f], fwd * smw); /* forward (dispatch) / reduce (combine) */
        if (l_ib + l_nvl > lat) lat = l_ib + l_nvl;
      }
    } else if (P > 0) { /* intranode or direct: one route per destination rank */
      double send = 0;
      for (int b = 0; b < R && rc == 0; b++) {
        if (pr[b] == 0) continue;
        double wb = pr[b] * Tb / P;
        int gb = x->gpu[b], relay, k = 0;
        send += wb;
        touch[b] = 1;
        if (sm) hb_add(&hb, sm[b], wb * smw);
        if (b == a) continue;
        k = net_route(n, combine ? gb : ga, combine ? ga : gb,
                      &(net_send_opts){.path = NET_PATH_AUTO, .key = (uint64_t)a * 65599u + (uint64_t)b}, route, &relay);
        if (k < 0) {
          fprintf(stderr, "moesim: error: no route between GPUs %d and %d\n", ga, gb);
          rc = -1;
          break;
        }
        hb_add_route(&hb, t, route, k, wb, msg_factor);
        sim_ps l = 0;
        for (int i = 0; i < k; i++) {
          const topo_link *lk = &t->l[route[i].res];
          l += (sim_ps)((double)lk->latency * route[i].weight + 0.5);
          if (lk->src < (uint32_t)t->n_gpus) /* leaving a GPU: NIC uplink or NVLink up */
            *(lk->kind == TOPO_L_NIC ? &res->scaleout_bytes : &res->nvlink_bytes) += pr[b] * Tb * route[i].weight;
        }
        if (l > lat) lat = l;
      }
      if (sm) hb_add(&hb, sm[a], send * smw);
    }
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
    x->src[0] = (ep_src){x, 0};
    net_flow(n, 0, NULL, 0, 0, ep_flow_done, &x->src[0]);
  }
  for (int a = 0; a < R; a++) free(hbs[a].h);
  free(hbs), free(Ps), free(lats), free(route);
  if (rc != 0) {
    if (sm)
      for (int i = 0; i < R; i++) net_res_remove(n, sm[i]);
    coll_ep_result_free(res);
    free(res);
    free(x->gpu), free(x->sm), free(x->touch), free(x->src);
    free(x);
  }
  return rc;
}

int coll_ep_start(net *n, const coll_ep_cfg *cfg, const ep_routing *r, int combine, coll_ep_done_fn done, void *ctx) {
  coll_ep_plan *p = coll_ep_plan_new(net_topo(n), cfg, r);
  if (!p) return -1;
  int rc = coll_ep_start_plan(n, p, combine, done, ctx);
  coll_ep_plan_free(p);
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

const char *const coll_ep_fmt_names[] = {"default", "bf16", "fp8_e4m3", "logfmt8", "logfmt10", NULL};

double coll_ep_payload_bytes(int fmt, int hidden) {
  double h = hidden, tiles = (double)((hidden + 127) / 128);
  switch (fmt) {
  case COLL_EP_FMT_FP8: return h + tiles * 4;
  case COLL_EP_FMT_LOGFMT8: return h + tiles * COLL_EP_LOGFMT_TILE_BYTES;
  case COLL_EP_FMT_LOGFMT10: return h * 10 / 8 + tiles * COLL_EP_LOGFMT_TILE_BYTES;
  default: return 2 * h;
  }
}

double coll_ep_token_bytes(int hidden, int topk, int fp8, int combine) {
  int fmt = combine || !fp8 ? COLL_EP_FMT_BF16 : COLL_EP_FMT_FP8;
  return ep_token_bytes(coll_ep_payload_bytes(fmt, hidden), topk, combine);
}

typedef struct run_ctx {
  coll_ep_result *out;
  int done;
} run_ctx;

static void run_done(net *n, void *ctx, coll_ep_result *r) {
  (void)n;
  run_ctx *c = ctx;
  coll_ep_result_move(c->out, r);
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
