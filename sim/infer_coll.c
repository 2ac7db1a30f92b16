/* sim/infer_coll.c — the experiment kind `ep_low_latency`: DeepEP's low-latency (decode)
 * dispatch and combine as its benchmark runs them (tests/legacy/test_low_latency.py), on the first
 * `ep` GPUs of a cluster, with bandwidth counted the way DeepEP reports it. Each rank routes
 * tokens_per_gpu tokens with scores |N(0,1)| + 1 over `experts` experts, plain top-k (no group
 * limit); the kernels send each selection as its own message (infer_comm.c). Bandwidth =
 * selections x (hidden + hidden/128 x 4 + 16) bytes for the FP8 dispatch, selections x hidden x 2
 * for the BF16 combine, over the rank's kernel time (every selection counted, the rank's own
 * included); the figures are the mean over ranks. Experts must divide over the ranks: `experts` is
 * rounded up to the next multiple of ep (the benchmark's default, 288, does not divide 64, 128 or
 * 256). DeepEP's normal kernels are the `collective` kind's (sim/exp_collective.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

typedef struct coll_exp {
  topo_spec cluster;            /* the cluster */
  const cfg_node *cluster_node; /* its mapping */
  int ep;                       /* ranks: GPUs 0 .. ep-1 of the cluster */
  int tokens_per_gpu;           /* tokens each rank dispatches */
  int hidden;                   /* elements per token */
  int topk;                     /* experts per token */
  int experts;                  /* routed experts (rounded up to a multiple of ep) */
  int nvlink;                   /* peers in one node over NVLink (false: pure RDMA) */
  double wqe_overhead_ns;       /* NIC time per work request beyond its bytes (negative: half the
                                   catalogue's per-message figure, see infer_comm.c) */
  uint64_t seed;                /* routing seed */
} coll_exp;

#define C(f) offsetof(coll_exp, f)
static const cfg_key coll_keys[] = {
    {.name = "cluster", .type = CFG_INCLUDE, .offset = C(cluster), .sub = topo_spec_keys,
     .flags = CFG_REQUIRED | CFG_KEEP_NODE, .node_offset = C(cluster_node),
     .doc = "the cluster (mapping or topologies/NAME.yaml); ranks are its first ep GPUs"},
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
    {.name = "nvlink", .type = CFG_BOOL, .offset = C(nvlink),
     .doc = "peers in the same node over NVLink (false: pure RDMA, as DeepEP's original kernels)"},
    {.name = "wqe_overhead_ns", .type = CFG_DOUBLE, .offset = C(wqe_overhead_ns),
     .doc = "NIC time per RDMA work request, ns (negative: half the GPU's rdma_msg_overhead_ns)"},
    {.name = "seed", .type = CFG_UINT, .offset = C(seed), .doc = "routing seed"},
    CFG_END};

static void ll_kind_init(void *p) {
  coll_exp *s = p;
  memset(s, 0, sizeof *s);
  topo_spec_init(&s->cluster);
  s->tokens_per_gpu = 128, s->hidden = 7168, s->topk = 8, s->experts = 288;
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

static int ll_kind_run(const exp_run *run, void *p, res_row *row) {
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
  infer_ll_bench b = {.ep = R, .tokens = s->tokens_per_gpu, .hidden = s->hidden, .topk = s->topk, .experts = E,
                      .nvlink = s->nvlink, .wqe_ns = s->wqe_overhead_ns, .seed = s->seed};
  rc = infer_ll_bench_run(t, &b);
  if (rc != 0) {
    topo_free(t);
    return UTIL_EXIT_SYS;
  }
  res_set_i(row, "ep", R);
  res_set_f(row, "dispatch_us", b.dispatch_us);
  res_set_f(row, "dispatch_gbps", b.dispatch_gbyte_s);
  res_set_f(row, "combine_us", b.combine_us);
  res_set_f(row, "combine_gbps", b.combine_gbyte_s);
  res_set_f(row, "dispatch_max_us", b.dispatch_max_us);
  res_set_f(row, "combine_max_us", b.combine_max_us);
  res_set_i(row, "nodes", nodes);
  res_set_i(row, "experts", E);
  res_set_i(row, "tokens_per_gpu", s->tokens_per_gpu);
  res_set(row, "intranode", "%s", s->nvlink ? "nvlink" : "rdma");
  if (run->summary)
    fprintf(run->summary, "low-latency EP%d on %s: dispatch %.1f us (%.1f GB/s), combine %.1f us (%.1f GB/s)\n", R,
            t->name, b.dispatch_us, b.dispatch_gbyte_s, b.combine_us, b.combine_gbyte_s);
  topo_free(t);
  return 0;
}

static const char *const coll_plots[] = {"throughput_vs", "step_time_vs", NULL};

const exp_kind exp_kind_ep_low_latency = {
    .name = "ep_low_latency",
    .summary = "DeepEP's low-latency dispatch + combine benchmark on a cluster, with DeepEP's bandwidth",
    .keys = coll_keys,
    .spec_size = sizeof(coll_exp),
    .init = ll_kind_init,
    .run = ll_kind_run,
    .plots = coll_plots,
};
