/* sim/val_infer.c — `moesim validate infer`.
 *
 * 1. DeepSeek's production figures for V3/R1 serving ("Day 6: One More Thing, DeepSeek-V3/R1
 *    Inference System Overview", Feb 2025): each H800 node delivers on average ~73.7K input
 *    tokens/s (cache hits included) in prefill, ~14.8K output tokens/s in decode, at 20-22 output
 *    tokens/s per user. moesim runs experiments/v3-prefill.yaml and v3-decode.yaml (DeepSeek's
 *    units, DeepSeek's traffic statistics, our stated assumptions) and shows the prefill unit's
 *    saturated capacity, and the decode unit's throughput and per-user speed at its batch limit.
 *    Tolerance 35%: the published figures are 24-hour averages over a fleet whose load varies
 *    through the day (so an average is at most the capacity and its batch is not the limit), and
 *    the model leaves out the serving framework's own costs (scheduling, sampling, KV transfers
 *    between units, CUDA-graph padding); nothing was tuned to them.
 * 2. DeepEP's low-latency kernels with pure RDMA on H800 + CX7 400G (128 tokens, hidden 7168,
 *    top-8, FP8 dispatch, BF16 combine): the table DeepEP published before its low-latency kernels
 *    used NVLink (README until commit de8cfca, 2025-06-05; the current docs/legacy.md table is the
 *    later NVLink one): dispatch 163/173/182/186/192/194 us, combine 318/329/350/353/369/360 us for
 *    EP 8/16/32/64/128/256. Tolerance 30%: the NIC's time per work request comes from the
 *    catalogue's figure calibrated on DeepEP's normal kernels (see infer_comm.c), not on these. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "exp.h"
#include "infer.h"
#include "util.h"
#include "val_infer.h"

/* The first of $MOESIM_ROOT/<rel>, ./<rel>, and ../<rel> or ../../<rel> beside the executable. */
static int find_file(const char *rel, char *buf, size_t n) {
  char exe[PATH_MAX];
  const char *env = getenv("MOESIM_ROOT");
  char dirs[4][PATH_MAX];
  int nd = 0;
  if (env && *env) snprintf(dirs[nd++], PATH_MAX, "%.3000s", env);
  snprintf(dirs[nd++], PATH_MAX, ".");
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = 0;
    char *d = util_dirname(exe);
    snprintf(dirs[nd++], PATH_MAX, "%.3000s/..", d);
    snprintf(dirs[nd++], PATH_MAX, "%.3000s/../..", d);
    free(d);
  }
  for (int i = 0; i < nd; i++) {
    snprintf(buf, n, "%.3000s/%.200s", dirs[i], rel);
    if (access(buf, R_OK) == 0) return 0;
  }
  fprintf(stderr, "moesim validate: error: cannot find %s (run from the repository or set MOESIM_ROOT)\n", rel);
  return -1;
}

/* Runs a prefill or decode experiment's units; fills out[phase] for the units it has. */
static int run_serving(const char *rel, infer_out out[2], int have[2]) {
  char path[PATH_MAX];
  if (find_file(rel, path, sizeof path) != 0) return -1;
  cfg_ctx *ctx = cfg_new();
  exp_common common;
  const exp_kind *kind;
  void *spec = NULL;
  int rc = exp_load(ctx, path, &common, &kind, &spec) != 0 ? -1 : 0;
  infer_spec *sp = spec;
  topo *t = rc == 0 ? infer_spec_cluster(ctx, sp) : NULL;
  if (rc == 0 && !t) rc = -1;
  for (int ph = 0; ph < 2 && rc == 0; ph++) {
    have[ph] = sp->unit_node[ph] != NULL;
    if (!have[ph]) continue;
    infer_setup *s = infer_setup_new(ctx, sp, (infer_phase)ph, t);
    if (!s) rc = -1;
    else if ((ph == INFER_PREFILL ? infer_prefill_point(s, 0, &out[ph]) : infer_decode_point(s, 0, &out[ph])) != 0)
      rc = -1;
    infer_setup_free(s);
  }
  topo_free(t);
  free(spec);
  cfg_free(ctx);
  return rc;
}

static int suite(val_report *rep) {
  infer_out out[2];
  int have[2] = {0, 0};
  if (run_serving("experiments/v3-prefill.yaml", out, have) != 0 || !have[INFER_PREFILL]) return -1;
  val_add(rep, "infer.v3.prefill.input_tokens_per_s_per_node", 73.7e3, out[INFER_PREFILL].capacity_in_tok_s_node,
          "tokens/s", 35, "EP32x4 nodes, saturated; DeepSeek Day-6 average");
  if (run_serving("experiments/v3-decode.yaml", out, have) != 0 || !have[INFER_DECODE]) return -1;
  val_add(rep, "infer.v3.decode.output_tokens_per_s_per_node", 14.8e3, out[INFER_DECODE].out_tok_s_node, "tokens/s",
          35, "EP144x18 nodes, 128 seqs/GPU; DeepSeek Day-6 average");
  val_add(rep, "infer.v3.decode.output_tokens_per_s_per_user", 21, out[INFER_DECODE].out_tok_s_user, "tokens/s", 35,
          "published 20-22 (mid-range); DeepSeek Day-6");
  /* DeepEP low-latency, pure RDMA, on the V3 cluster's first EP GPUs. */
  char path[PATH_MAX];
  if (find_file("topologies/h800-2048-ft2.yaml", path, sizeof path) != 0) return -1;
  cfg_ctx *ctx = cfg_new();
  topo *t = topo_load(ctx, path);
  cfg_free(ctx);
  if (!t) return -1;
  static const struct { int ep; double disp_us, comb_us; } ll[] = {
      {8, 163, 318}, {16, 173, 329}, {32, 182, 350}, {64, 186, 353}, {128, 192, 369}, {256, 194, 360}};
  int rc = 0;
  for (size_t i = 0; i < sizeof ll / sizeof ll[0] && rc == 0; i++) {
    int E = (288 + ll[i].ep - 1) / ll[i].ep * ll[i].ep;
    infer_ll_bench b = {.ep = ll[i].ep, .tokens = 128, .hidden = 7168, .topk = 8, .experts = E, .nvlink = 0,
                        .wqe_ns = -1, .seed = 1};
    if (infer_ll_bench_run(t, &b) != 0) {
      rc = -1;
      break;
    }
    char name[128];
    snprintf(name, sizeof name, "deepep.low_latency.ep%d.dispatch_us", ll[i].ep);
    val_add(rep, name, ll[i].disp_us, b.dispatch_us, "us", 30, "pure RDMA, DeepEP README before de8cfca");
    snprintf(name, sizeof name, "deepep.low_latency.ep%d.combine_us", ll[i].ep);
    val_add(rep, name, ll[i].comb_us, b.combine_us, "us", 30, "pure RDMA, DeepEP README before de8cfca");
  }
  topo_free(t);
  return rc;
}

int val_infer(val_report *r) { return suite(r); }
