/* sim/infer_coll.c — the experiment kind `collective`: one expert-parallel dispatch and combine
 * as DeepEP's benchmarks run them, on the first `ep` GPUs of a cluster, with bandwidth counted the
 * way DeepEP reports it.
 *
 *  op ep_low_latency (tests/legacy/test_low_latency.py): each rank routes tokens_per_gpu tokens
 *    with scores |N(0,1)| + 1 over `experts` experts, plain top-k (no group limit); the kernels
 *    send each selection as its own message (infer_comm.c). Bandwidth = selections x (hidden +
 *    hidden/128 x 4 + 16) bytes for the FP8 dispatch, selections x hidden x 2 for the BF16
 *    combine, over the rank's kernel time (every selection counted, the rank's own included);
 *    the figures are the mean over ranks.
 *  op ep_normal (test_internode.py / test_intranode.py): coll_ep's kernels with `sms` SMs and
 *    node-limited routing (top min(nodes, topk_groups) nodes first); bandwidth is DeepEP's RDMA
 *    figure internode, NVLink intranode (coll.h).
 * Experts must divide over the ranks; `experts` is rounded up to the next multiple of ep (DeepEP's
 * low-latency test default, 288, does not divide 64, 128 or 256). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

typedef enum coll_op { COLL_OP_EP_LL, COLL_OP_EP_NORMAL } coll_op;
static const char *const op_names[] = {"ep_low_latency", "ep_normal", NULL};

typedef struct coll_exp {
  topo_spec cluster;            /* the cluster */
  const cfg_node *cluster_node; /* its mapping */
  int op;                       /* coll_op */
  int ep;                       /* ranks: GPUs 0 .. ep-1 of the cluster */
  int tokens_per_gpu;           /* tokens each rank dispatches */
  int hidden;                   /* elements per token */
  int topk;                     /* experts per token */
  int experts;                  /* routed experts (rounded up to a multiple of ep) */
  int topk_groups;              /* ep_normal: nodes a token may reach (0: 4) */
  int sms;                      /* ep_normal: SMs per rank */
  int nvlink;                   /* ep_low_latency: peers in one node over NVLink (false: pure RDMA) */
  double wqe_overhead_ns;       /* NIC time per work request beyond its bytes (negative: half the
                                   catalogue's per-message figure, see infer_comm.c) */
  uint64_t seed;                /* routing seed */
} coll_exp;

#define C(f) offsetof(coll_exp, f)
static const cfg_key coll_keys[] = {
    {.name = "cluster", .type = CFG_INCLUDE, .offset = C(cluster), .sub = topo_spec_keys,
     .flags = CFG_REQUIRED | CFG_KEEP_NODE, .node_offset = C(cluster_node),
     .doc = "the cluster (mapping or topologies/NAME.yaml); ranks are its first ep GPUs"},
    {.name = "op", .type = CFG_ENUM, .offset = C(op), .choices = op_names, .flags = CFG_REQUIRED,
     .doc = "ep_low_latency (DeepEP decode kernels) | ep_normal (DeepEP training/prefill kernels)"},
    {.name = "ep", .type = CFG_INT32, .offset = C(ep), .flags = CFG_REQUIRED | CFG_RANGE, .min = 1, .max = 65536,
     .doc = "EP ranks"},
    {.name = "tokens_per_gpu", .type = CFG_INT32, .offset = C(tokens_per_gpu), .flags = CFG_RANGE, .min = 1,
     .max = 1 << 20, .doc = "tokens each rank dispatches"},
    {.name = "hidden", .type = CFG_INT32, .offset = C(hidden), .flags = CFG_RANGE, .min = 128, .max = 1 << 20,
     .doc = "elements per token (a multiple of 128)"},
    {.name = "topk", .type = CFG_INT32, .offset = C(topk), .flags = CFG_RANGE, .min = 1, .max = 64,
     .doc = "experts per token"},
    {.name = "experts", .type = CFG_INT32, .offset = C(experts), .flags = CFG_POSITIVE,
     .doc = "routed experts (rounded up to a multiple of ep)"},
    {.name = "topk_groups", .type = CFG_INT32, .offset = C(topk_groups), .flags = CFG_NONNEG,
     .doc = "ep_normal: nodes a token may reach (node-limited routing)"},
    {.name = "sms", .type = CFG_INT32, .offset = C(sms), .flags = CFG_NONNEG, .doc = "ep_normal: SMs per rank"},
    {.name = "nvlink", .type = CFG_BOOL, .offset = C(nvlink),
     .doc = "ep_low_latency: peers in the same node over NVLink (false: pure RDMA)"},
    {.name = "wqe_overhead_ns", .type = CFG_DOUBLE, .offset = C(wqe_overhead_ns),
     .doc = "ep_low_latency: NIC time per RDMA work request, ns (negative: half the GPU's rdma_msg_overhead_ns)"},
    {.name = "seed", .type = CFG_UINT, .offset = C(seed), .doc = "routing seed"},
    CFG_END};

static void collective_init(void *p) {
  coll_exp *s = p;
  memset(s, 0, sizeof *s);
  topo_spec_init(&s->cluster);
  s->op = COLL_OP_EP_LL;
  s->tokens_per_gpu = 128, s->hidden = 7168, s->topk = 8, s->experts = 288, s->topk_groups = 4, s->sms = 24;
  s->wqe_overhead_ns = -1;
  s->seed = 1;
}

int infer_ll_bench_run(topo *t, infer_ll_bench *b) {
  int R = b->ep, E = b->experts;
  ep_routing *r = ep_routing_new(R, b->tokens, b->topk, E);
  ep_routing_deepep(r, 1, 1, b->seed);
  int *gpus = util_xmalloc((size_t)R * sizeof *gpus);
  double *copies = util_xcalloc((size_t)R * R, sizeof *copies), sel = 0;
  for (int i = 0; i < R; i++) gpus[i] = i;
  for (int a = 0; a < R; a++)
    for (int k = 0; k < b->tokens * b->topk; k++) {
      int e = r->idx[(size_t)a * b->tokens * b->topk + k];
      if (e >= 0) copies[(size_t)a * R + e / (E / R)] += 1, sel += 1;
    }
  /* The catalogue's overhead is per two-request message (ia_low_latency). */
  double wqe = b->wqe_ns >= 0 ? b->wqe_ns : t->gpu.rdma_msg_overhead_ns / 2;
  double h = b->hidden, db = h + h / 128 * 4 + 16, cb = 2 * h;
  ia_result d, c;
  int rc = ia_low_latency(t, gpus, R, copies, db, 0, b->nvlink, wqe, (double)E / R, 0, b->seed, &d);
  if (rc == 0) rc = ia_low_latency(t, gpus, R, copies, cb, 1, b->nvlink, wqe, (double)E / R, 0, b->seed, &c);
  if (rc == 0) {
    b->dispatch_us = d.mean_rank_s * 1e6, b->combine_us = c.mean_rank_s * 1e6;
    b->dispatch_max_us = d.time_s * 1e6, b->combine_max_us = c.time_s * 1e6;
    b->dispatch_gbyte_s = sel / R * db / d.mean_rank_s * 1e-9;
    b->combine_gbyte_s = sel / R * cb / c.mean_rank_s * 1e-9;
  }
  ep_routing_free(r);
  free(gpus), free(copies);
  return rc;
}

static int collective_run(const exp_run *run, void *p, res_row *row) {
  coll_exp *s = p;
  const cfg_node *at = s->cluster_node;
  if (topo_spec_resolve(run->cfg, &s->cluster, at) != 0) return UTIL_EXIT_USAGE;
  char err[256];
  topo *t = topo_build(&s->cluster, err, sizeof err);
  if (!t) {
    cfg_error(run->cfg, at, "%s", err);
    return UTIL_EXIT_USAGE;
  }
  int R = s->ep, rc = 0;
  if (R > t->n_gpus) rc = cfg_error(run->cfg, at, "ep %d exceeds the cluster's %d GPUs", R, t->n_gpus);
  else if (s->hidden % 128) rc = fprintf(stderr, "%s: error: hidden %d is not a multiple of 128\n", run->exp_path, s->hidden);
  if (rc) {
    topo_free(t);
    return UTIL_EXIT_USAGE;
  }
  int E = (s->experts + R - 1) / R * R;
  if (s->topk > E) s->topk = E;
  int gpn = t->gpus_per_node, nodes = (R + gpn - 1) / gpn;
  double disp_us = 0, comb_us = 0, disp_gbs = 0, comb_gbs = 0, disp_max = 0, comb_max = 0;
  if (s->op == COLL_OP_EP_LL) {
    infer_ll_bench b = {.ep = R, .tokens = s->tokens_per_gpu, .hidden = s->hidden, .topk = s->topk, .experts = E,
                        .nvlink = s->nvlink, .wqe_ns = s->wqe_overhead_ns, .seed = s->seed};
    rc = infer_ll_bench_run(t, &b);
    disp_us = b.dispatch_us, comb_us = b.combine_us, disp_max = b.dispatch_max_us, comb_max = b.combine_max_us;
    disp_gbs = b.dispatch_gbyte_s, comb_gbs = b.combine_gbyte_s;
  } else {
    ep_routing *r = ep_routing_new(R, s->tokens_per_gpu, s->topk, E);
    int tg = s->topk_groups > 0 ? s->topk_groups : 4;
    ep_routing_deepep(r, nodes, nodes < tg ? nodes : tg, s->seed);
    coll_ep_cfg cfg = {.hidden = s->hidden, .dispatch_fp8 = 1, .sms = s->sms, .kernel = COLL_EP_AUTO};
    for (int comb = 0; comb <= 1 && rc == 0; comb++) {
      coll_ep_result res;
      if (coll_ep_run(t, s->seed, &cfg, r, comb, &res) != 0) {
        rc = -1;
        break;
      }
      double sum = 0, mx = 0;
      for (int i = 0; i < R; i++) sum += ps_to_us(res.rank_time[i]), mx = fmax(mx, ps_to_us(res.rank_time[i]));
      double gbs = nodes == 1 ? coll_ep_nvl_gbyte_s(&res) : coll_ep_rdma_gbyte_s(&res);
      *(comb ? &comb_us : &disp_us) = sum / R;
      *(comb ? &comb_max : &disp_max) = mx;
      *(comb ? &comb_gbs : &disp_gbs) = gbs;
      coll_ep_result_free(&res);
    }
    ep_routing_free(r);
  }
  if (rc != 0) {
    topo_free(t);
    return UTIL_EXIT_SYS;
  }
  res_set_i(row, "ep", R);
  res_set_f(row, "dispatch_us", disp_us);
  res_set_f(row, "dispatch_gbps", disp_gbs);
  res_set_f(row, "combine_us", comb_us);
  res_set_f(row, "combine_gbps", comb_gbs);
  res_set_f(row, "dispatch_max_us", disp_max);
  res_set_f(row, "combine_max_us", comb_max);
  res_set(row, "op", "%s", op_names[s->op]);
  res_set_i(row, "nodes", nodes);
  res_set_i(row, "experts", E);
  res_set_i(row, "tokens_per_gpu", s->tokens_per_gpu);
  res_set(row, "bandwidth_domain", "%s", s->op == COLL_OP_EP_LL ? "rdma" : nodes == 1 ? "nvlink" : "rdma");
  if (run->summary)
    fprintf(run->summary, "%s EP%d on %s: dispatch %.1f us (%.1f GB/s), combine %.1f us (%.1f GB/s)\n",
            op_names[s->op], R, t->name, disp_us, disp_gbs, comb_us, comb_gbs);
  topo_free(t);
  return 0;
}

static const char *const coll_plots[] = {"throughput_vs", "step_time_vs", "a2a_bw", NULL};

const exp_kind exp_kind_collective = {
    .name = "collective",
    .summary = "one EP dispatch + combine (DeepEP low-latency or normal kernels) on a cluster, DeepEP's bandwidth",
    .keys = coll_keys,
    .spec_size = sizeof(coll_exp),
    .init = collective_init,
    .run = collective_run,
    .plots = coll_plots,
};
