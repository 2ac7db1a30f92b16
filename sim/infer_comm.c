/* sim/infer_comm.c — the all-to-alls of inference on the flow-level network (net.h).
 *
 * Low-latency kernels (DeepEP internode_ll.cu): the dispatch sends every (token, expert)
 * selection as its own message — hidden FP8 values, their scales and a 16-byte header — straight
 * from the token's GPU to the expert's GPU with GPU-initiated RDMA (IBGDA), no forwarding and no
 * de-duplication per GPU; combine sends each expert output back in BF16. No SMs are held: the
 * sends are posted and the receiver polls later. As in coll_ep.c, a rank's sends advance together
 * (one flow whose hops carry that rank's bytes to each resource with weight = bytes there / the
 * flow's bytes); the NIC uplink's weight carries the per-message overhead (NIC time per message x
 * capacity / message bytes). A rank's kernel ends when its own flow and every flow into it have
 * been delivered.
 *
 * Normal kernels: coll_ep (intranode, or two-hop with NVLink forwarding), SM-limited. */
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

typedef struct ll_src {
  struct ll_run *run; /* owner */
  int a;              /* source rank */
} ll_src;

typedef struct ll_run {
  int G;
  sim_ps *end;       /* [G] latest delivery touching the rank */
  uint8_t *touch;    /* [G][G] flow of source a delivers to rank b */
  ll_src *src;
} ll_run;

static void ll_done(net *n, void *p) {
  ll_src *s = p;
  ll_run *x = s->run;
  sim_ps now = net_now(n);
  for (int b = 0; b < x->G; b++)
    if (x->touch[(size_t)s->a * x->G + b] && x->end[b] < now) x->end[b] = now;
}

typedef struct hops {
  net_hop *h;
  int n, cap;
} hops;

static void hop_add(hops *b, uint32_t res, double w) {
  if (w <= 0) return;
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 64;
    b->h = util_xrealloc(b->h, (size_t)b->cap * sizeof *b->h);
  }
  b->h[b->n++] = (net_hop){res, w};
}

int ia_low_latency(topo *t, const int *gpus, int G, const double *copies, double msg_bytes, int combine, int nvlink,
                   double wqe_ns, double atomics_per_peer, int lockstep, uint64_t seed, ia_result *out) {
  memset(out, 0, sizeof *out);
  des_sim *sim = des_new();
  net *n = net_new(sim, t, &(net_opts){.seed = seed});
  ll_run x = {.G = G};
  x.end = util_xcalloc((size_t)G, sizeof *x.end);
  x.touch = util_xcalloc((size_t)G * G, 1);
  x.src = util_xcalloc((size_t)G, sizeof *x.src);
  double *nic = util_xcalloc((size_t)G, sizeof *nic), *nvl = util_xcalloc((size_t)G, sizeof *nvl);
  /* NIC time per work request, as bytes of the uplink's capacity (ns x GB/s = bytes). */
  double wqe_bytes = t->uplinks_per_gpu > 0 ? wqe_ns * t->l[t->up[0]].gbyte_s : 0;
  net_hop route[2 * TOPO_MAX_HOPS + 2];
  double *load = lockstep ? util_xcalloc(t->n_links, sizeof *load) : NULL; /* bytes on each link */
  sim_ps lat_all = 0;
  int rc = 0;
  for (int s = 0; s < G && rc == 0; s++) {
    /* Sender s: dispatch sends its selections to each b; combine returns what b sent it. */
    double P = 0;
    for (int b = 0; b < G; b++)
      if (b != s) P += (combine ? copies[(size_t)b * G + s] : copies[(size_t)s * G + b]) * msg_bytes;
    x.src[s] = (ll_src){&x, s};
    x.touch[(size_t)s * G + s] = 1;
    if (P <= 0) continue;
    hops hb = {0};
    sim_ps lat = 0;
    for (int b = 0; b < G && rc == 0; b++) {
      double c = combine ? copies[(size_t)b * G + s] : copies[(size_t)s * G + b];
      if (b == s || c <= 0) continue;
      double w = c * msg_bytes / P, w_nic = (c * (msg_bytes + wqe_bytes) + atomics_per_peer * wqe_bytes) / P;
      int relay, same = topo_same_domain(t, gpus[s], gpus[b]);
      net_send_opts o = {.path = same && !nvlink ? NET_PATH_DIRECT : NET_PATH_AUTO, .key = (uint64_t)s * 65599u + (uint64_t)b};
      int k = net_route(n, gpus[s], gpus[b], &o, route, &relay);
      if (k < 0 && same) { /* no plane joins them (a multi-plane fabric): NVLink */
        o.path = NET_PATH_AUTO;
        k = net_route(n, gpus[s], gpus[b], &o, route, &relay);
      }
      if (k < 0) {
        fprintf(stderr, "moesim: error: no route between GPUs %d and %d for the low-latency all-to-all\n", gpus[s],
                gpus[b]);
        rc = -1;
        break;
      }
      sim_ps l = 0;
      for (int j = 0; j < k; j++) {
        const topo_link *lk = &t->l[route[j].res];
        int up = lk->src < (uint32_t)t->n_gpus;
        hop_add(&hb, route[j].res, up && lk->kind == TOPO_L_NIC ? w_nic : w);
        l += lk->latency;
        if (up) *(lk->kind == TOPO_L_NIC ? &nic[s] : &nvl[s]) += c * msg_bytes;
      }
      if (l > lat) lat = l;
      x.touch[(size_t)s * G + b] = 1;
      out->copies += c;
    }
    if (rc == 0 && lockstep) {
      for (int j = 0; j < hb.n; j++) load[hb.h[j].res] += hb.h[j].weight * P;
      if (lat > lat_all) lat_all = lat;
    } else if (rc == 0) {
      net_flow(n, (uint64_t)(P + 0.5), hb.h, hb.n, lat, ll_done, &x.src[s]);
    }
    free(hb.h);
  }
  for (int s = 0; s < G; s++) out->copies += copies[(size_t)s * G + s];
  double sum = 0;
  if (rc == 0 && lockstep) {
    /* Every rank progresses at the pace of the busiest link: the all-to-all ends when it drains. */
    double worst = 0;
    for (uint32_t l = 0; l < t->n_links; l++)
      if (load[l] > 0 && load[l] / (t->l[l].gbyte_s * 1e9) > worst) worst = load[l] / (t->l[l].gbyte_s * 1e9);
    out->time_s = out->mean_rank_s = worst + ps_to_s(lat_all);
  } else if (rc == 0) {
    des_run(sim);
    for (int b = 0; b < G; b++) {
      double ts = ps_to_s(x.end[b]);
      sum += ts;
      if (ts > out->time_s) out->time_s = ts;
    }
    out->mean_rank_s = sum / G;
  }
  for (int b = 0; b < G; b++) {
    if (nic[b] > out->nic_bytes) out->nic_bytes = nic[b];
    if (nvl[b] > out->nvl_bytes) out->nvl_bytes = nvl[b];
  }
  free(load);
  free(x.end), free(x.touch), free(x.src), free(nic), free(nvl);
  net_free(n);
  des_free(sim);
  return rc;
}

int ia_normal(topo *t, const int *gpus, const ep_routing *r, int hidden, int sms, int combine, uint64_t seed,
              const whatif_hw *hw, ia_result *out) {
  memset(out, 0, sizeof *out);
  coll_ep_cfg cfg = {.hidden = hidden, .dispatch_fp8 = 1, .sms = sms, .kernel = COLL_EP_AUTO, .gpus = gpus,
                     .fmt = {hw->ep_fmt[0], hw->ep_fmt[1]}, .codec_sm_factor = hw->logfmt_codec_sm_factor,
                     .hw_forward = hw->unified_network};
  coll_ep_result res;
  if (coll_ep_run(t, seed, &cfg, r, combine, &res) != 0) return -1;
  double sum = 0;
  for (int i = 0; i < res.ranks; i++) {
    double ts = ps_to_s(res.rank_time[i]);
    sum += ts;
    if (ts > out->time_s) out->time_s = ts;
  }
  out->mean_rank_s = sum / res.ranks;
  /* coll_ep reports unit totals; a GPU's share of the busiest direction is the total / ranks. */
  out->nic_bytes = res.scaleout_bytes / res.ranks;
  out->nvl_bytes = res.nvlink_bytes / res.ranks;
  for (size_t i = 0; i < (size_t)r->ranks * r->tokens * r->topk; i++) out->copies += r->idx[i] >= 0;
  coll_ep_result_free(&res);
  return 0;
}

void ia_moe_pass_free(ia_moe_pass *p) {
  free(p->rows);
  free(p->active);
}

int ia_route_pass(infer_setup *s, int p, const double *tok, uint64_t salt, ia_moe_pass *out) {
  int G = s->G, K = s->topk, N = s->pool;
  const infer_deploy *d = s->d;
  memset(out, 0, sizeof *out);
  out->rows = util_xcalloc((size_t)G, sizeof *out->rows);
  out->active = util_xcalloc((size_t)G, sizeof *out->active);
  double *slot_rows = util_xcalloc((size_t)s->n_slots, sizeof *slot_rows);
  double *copies = util_xcalloc((size_t)G * G, sizeof *copies);
  uint64_t *cnt = util_xcalloc((size_t)s->n_log, sizeof *cnt), shared_cnt = 0;
  const int32_t *pool = s->pool_idx + (size_t)p * N * K;
  ep_routing *er = NULL;
  int max_tok = 0;
  for (int g = 0; g < G; g++) max_tok = (int)tok[g] > max_tok ? (int)tok[g] : max_tok;
  if (!s->ll) er = ep_routing_new(G, max_tok, K + (s->n_shared_slots ? 1 : 0), s->n_slots);
  for (int g = 0; g < G; g++) {
    uint64_t rng = s->spec->routing.seed ^ (salt * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(g + 1) << 32) ^ (uint64_t)p;
    for (int i = 0; i < (int)tok[g]; i++) {
      const int32_t *e = pool + (infer_rng_next(&rng) % (uint64_t)N) * K;
      int32_t *ei = er ? &er->idx[((size_t)g * er->tokens + i) * er->topk] : NULL;
      for (int k = 0; k < K; k++) {
        if (e[k] < 0) continue;
        int slot = eplb_slot_of(&s->plan, p, e[k], cnt[e[k]]++);
        slot_rows[slot] += 1;
        copies[(size_t)g * G + slot / s->per_gpu] += 1;
        if (ei) ei[k] = slot;
      }
      if (s->n_shared_slots) {
        int slot = s->n_routed_phy + (int)(shared_cnt++ % (uint64_t)s->n_shared_slots);
        slot_rows[slot] += 1;
        copies[(size_t)g * G + slot / s->per_gpu] += 1;
        if (ei) ei[K] = slot;
      }
    }
  }
  for (int sl = 0; sl < s->n_slots; sl++) {
    out->rows[sl / s->per_gpu] += slot_rows[sl];
    out->active[sl / s->per_gpu] += slot_rows[sl] > 0;
  }
  int rc = 0;
  ia_result rd, rcb;
  if (s->ll) {
    double h = s->m->hidden;
    /* DeepEP's low-latency messages: FP8 with its scales and a 16-byte header, BF16 back (or the
     * payload formats of hw_features; the LL kernels hold no SMs, so a LogFMT codec costs none) */
    const int *fmt = s->spec->hw.ep_fmt;
    double disp_bytes = coll_ep_payload_bytes(fmt[0] ? fmt[0] : COLL_EP_FMT_FP8, (int)h) + 16;
    double comb_bytes = coll_ep_payload_bytes(fmt[1] ? fmt[1] : COLL_EP_FMT_BF16, (int)h);
    double wqe = s->msg_overhead_ns / 2; /* see ia_low_latency */
    int lock = s->spec->lockstep_a2a;
    rc = ia_low_latency(s->t, s->gpus, G, copies, disp_bytes, 0, d->ll_nvlink, wqe, s->per_gpu, lock, 1, &rd);
    if (rc == 0) rc = ia_low_latency(s->t, s->gpus, G, copies, comb_bytes, 1, d->ll_nvlink, wqe, s->per_gpu, lock, 1, &rcb);
  } else {
    rc = ia_normal(s->t, s->gpus, er, s->m->hidden, d->comm_sms, 0, 1, &s->spec->hw, &rd);
    if (rc == 0) rc = ia_normal(s->t, s->gpus, er, s->m->hidden, d->comm_sms, 1, 1, &s->spec->hw, &rcb);
  }
  if (rc == 0) {
    out->t_disp = rd.time_s, out->t_comb = rcb.time_s;
    out->nic = rd.nic_bytes + rcb.nic_bytes, out->nvl = rd.nvl_bytes + rcb.nvl_bytes;
  }
  ep_routing_free(er);
  free(slot_rows), free(copies), free(cnt);
  return rc;
}

