/* sim/quickstart.c — the walking skeleton, experiment kind `moe_layer`: one DeepSeek-V3 MoE layer
 * forward pass (dispatch -> shared + routed expert GEMMs -> combine) on a small GPU cluster,
 * costed from kernels measured on this machine.
 *
 * The data path, end to end:
 *  1. measure the BF16 expert GEMM shapes the layer needs on this CPU with the real kernel
 *     (kernels/gemm.h), each validated against the plain-C reference before it is timed, and
 *     write them to the kernel table (<out>/kernels.csv, schema in sim/ktable.h);
 *  2. measure this CPU's BF16 peak; a GEMM's efficiency = measured TFLOP/s / peak;
 *  3. route real synthetic tokens with the V3 gate (group-limited top-k, kernels/gate.h) and
 *     count each expert's rows;
 *  4. simulate on the event core: DeepEP-style dispatch over the cluster's topology (flow-level
 *     network, sim/coll.h: NVLink inside a node, IB to the same-index GPU then NVLink across
 *     nodes, the kernel on `comm_sms` SMs), then per GPU the shared expert (overlapped with the
 *     dispatch) and its routed experts (FLOPs over the target GPU's datasheet peak times the
 *     efficiency measured here), then the combine once every GPU's experts are done;
 *  5. write one results row, which `moesim run` draws as a breakdown figure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "des.h"
#include "exp.h"
#include "gate.h"
#include "gemm.h"
#include "ktable.h"
#include "peak.h"
#include "pool.h"
#include "topo.h"
#include "util.h"

typedef struct qs_model {
  int64_t hidden;           /* model width */
  int64_t moe_intermediate; /* expert FFN width */
  int routed_experts;       /* routed experts per layer */
  int shared_experts;       /* shared experts per layer */
  int top_k;                /* experts per token */
  int n_groups;             /* expert groups */
  int topk_groups;          /* groups a token may use */
  double route_scale;       /* gate weight multiplier */
} qs_model;

typedef struct qs_spec {
  qs_model model;         /* layer shape */
  int64_t tokens_per_gpu; /* tokens each GPU holds */
  topo_spec cluster;      /* the cluster, in the format of the files in topologies/ */
  const cfg_node *cluster_node; /* its YAML mapping, for error positions */
  int comm_sms;           /* SMs per GPU running dispatch/combine */
  int dispatch_fp8;       /* dispatch payload: 1 = FP8 E4M3 + 1x128 scales, 0 = BF16 */
  int threads;            /* CPU threads for measuring (0 = one per core) */
  int reps;               /* timed repetitions per kernel */
  uint64_t seed;          /* routing seed */
  double zipf_s;          /* expert popularity skew (0 uniform, 1 Zipf) */
} qs_spec;

static const cfg_key qs_model_keys[] = {
    {.name = "hidden", .type = CFG_INT, .offset = offsetof(qs_model, hidden), .flags = CFG_POSITIVE, .doc = "model width"},
    {.name = "moe_intermediate", .type = CFG_INT, .offset = offsetof(qs_model, moe_intermediate), .flags = CFG_POSITIVE,
     .doc = "expert FFN width"},
    {.name = "routed_experts", .type = CFG_INT32, .offset = offsetof(qs_model, routed_experts), .flags = CFG_POSITIVE,
     .doc = "routed experts"},
    {.name = "shared_experts", .type = CFG_INT32, .offset = offsetof(qs_model, shared_experts), .flags = CFG_NONNEG,
     .doc = "shared experts"},
    {.name = "top_k", .type = CFG_INT32, .offset = offsetof(qs_model, top_k), .flags = CFG_POSITIVE,
     .doc = "routed experts per token"},
    {.name = "n_groups", .type = CFG_INT32, .offset = offsetof(qs_model, n_groups), .flags = CFG_POSITIVE,
     .doc = "expert groups"},
    {.name = "topk_groups", .type = CFG_INT32, .offset = offsetof(qs_model, topk_groups), .flags = CFG_POSITIVE,
     .doc = "groups a token may use (node-limited routing)"},
    {.name = "route_scale", .type = CFG_DOUBLE, .offset = offsetof(qs_model, route_scale), .flags = CFG_POSITIVE,
     .doc = "gate weight multiplier"},
    CFG_END};

static const char *const payloads[] = {"bf16", "fp8_e4m3", NULL};

static const cfg_key qs_keys[] = {
    {.name = "model", .type = CFG_INCLUDE, .offset = offsetof(qs_spec, model), .sub = qs_model_keys,
     .doc = "MoE layer shape (mapping or file)"},
    {.name = "tokens_per_gpu", .type = CFG_INT, .offset = offsetof(qs_spec, tokens_per_gpu), .flags = CFG_POSITIVE,
     .doc = "tokens each GPU holds"},
    {.name = "cluster", .type = CFG_INCLUDE, .offset = offsetof(qs_spec, cluster), .sub = topo_spec_keys,
     .flags = CFG_REQUIRED | CFG_KEEP_NODE, .node_offset = offsetof(qs_spec, cluster_node),
     .doc = "cluster (a topologies/*.yaml file or an inline mapping in that format)"},
    {.name = "comm_sms", .type = CFG_INT32, .offset = offsetof(qs_spec, comm_sms), .flags = CFG_NONNEG,
     .doc = "SMs per GPU running dispatch/combine (DeepEP's example uses 24; 0 = not SM-limited)"},
    {.name = "dispatch_dtype", .type = CFG_ENUM, .offset = offsetof(qs_spec, dispatch_fp8), .choices = payloads,
     .doc = "dispatch payload"},
    {.name = "threads", .type = CFG_INT32, .offset = offsetof(qs_spec, threads), .flags = CFG_NONNEG,
     .doc = "CPU threads for measuring (0 = one per core)"},
    {.name = "reps", .type = CFG_INT32, .offset = offsetof(qs_spec, reps), .flags = CFG_RANGE, .min = 1, .max = 1000,
     .doc = "timed repetitions per kernel"},
    {.name = "seed", .type = CFG_UINT, .offset = offsetof(qs_spec, seed), .doc = "routing seed"},
    {.name = "skew_zipf_s", .type = CFG_DOUBLE, .offset = offsetof(qs_spec, zipf_s), .flags = CFG_NONNEG,
     .doc = "expert popularity skew of the synthetic tokens (0 uniform, 1 Zipf)"},
    CFG_END};

static void qs_init(void *p) {
  qs_spec *s = p;
  s->model = (qs_model){7168, 2048, 256, 1, 8, 8, 4, 2.5};
  s->tokens_per_gpu = 4096;
  s->dispatch_fp8 = 1;
  s->reps = 5;
  s->seed = 1;
  s->comm_sms = 24;
  topo_spec_init(&s->cluster);
}

/* ---------------------------------------------------------------- measuring */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1.0p-53; }

static void fill_bf16(bf16_t *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = f32_to_bf16((float)(uniform(&seed) * 2 - 1));
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Measures C[m x n] = A[m x k] W[n x k]^T in BF16 with FP32 output. The result is first checked
 * against the reference on a sample of rows; a mismatch refuses the timing (returns -1). */
static int measure_gemm(pool *tp, int64_t m, int64_t n, int64_t k, int reps, kt_row *row) {
  bf16_t *a = util_xmalloc((size_t)(m * k) * sizeof *a), *w = util_xmalloc((size_t)(n * k) * sizeof *w);
  float *c = util_xmalloc((size_t)(m * n) * sizeof *c);
  fill_bf16(a, (size_t)(m * k), 11);
  fill_bf16(w, (size_t)(n * k), 12);
  gemm_mat am = {.dtype = KN_BF16, .data = a, .ld = k}, wm = {.dtype = KN_BF16, .data = w, .ld = k};
  gemm_out co = {.dtype = KN_FP32, .data = c, .ld = n};
  gemm_packed *pk = gemm_pack(&wm, n, k);
  int rc = pk ? gemm_run(tp, m, &am, pk, &co, NULL) : -1;
  /* Validate rows 0, m/2 and m-1 against the reference (double accumulation). */
  int64_t sample[3] = {0, m / 2, m - 1};
  float *ref = util_xmalloc((size_t)n * sizeof *ref);
  double worst = 0;
  for (int s = 0; rc == 0 && s < 3; s++) {
    gemm_mat ar = {.dtype = KN_BF16, .data = a + sample[s] * k, .ld = k};
    gemm_out ro = {.dtype = KN_FP32, .data = ref, .ld = n};
    if (gemm_ref(1, n, k, &ar, &wm, &ro, GEMM_EPI_NONE) != 0) rc = -1;
    for (int64_t j = 0; rc == 0 && j < n; j++) {
      /* |a|,|w| <= 1: the sum of |products| is at most k; FP32 accumulation error ~ k * 2^-24 * sum */
      double err = fabs((double)c[sample[s] * n + j] - ref[j]) / (double)k;
      if (err > worst) worst = err;
    }
  }
  if (rc == 0 && worst > 1e-5) {
    fprintf(stderr, "moesim: error: BF16 GEMM %lldx%lldx%lld does not match the reference (error %.3g of K); not timed\n",
            (long long)m, (long long)n, (long long)k, worst);
    rc = -1;
  }
  double *t = util_xmalloc((size_t)reps * sizeof *t);
  for (int r = 0; rc == 0 && r < reps; r++) {
    uint64_t t0 = util_now_ns();
    gemm_run(tp, m, &am, pk, &co, NULL);
    t[r] = (double)(util_now_ns() - t0) * 1e-3;
  }
  if (rc == 0) {
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    memset(row, 0, sizeof *row);
    snprintf(row->host, sizeof row->host, "%s", util_hostname());
    snprintf(row->device, sizeof row->device, "cpu");
    snprintf(row->device_name, sizeof row->device_name, "%s", cpu_isa_get()->brand[0] ? cpu_isa_get()->brand : "cpu");
    snprintf(row->backend, sizeof row->backend, "%s", cpu_level_name(cpu_isa_best()));
    snprintf(row->kernel, sizeof row->kernel, "gemm");
    snprintf(row->variant, sizeof row->variant, "%s", gemm_variant_best(KN_BF16, m)->name);
    snprintf(row->dtype, sizeof row->dtype, "bf16");
    row->m = m, row->n = n, row->k = k, row->groups = 1, row->threads = pool_threads(tp), row->reps = reps;
    row->median_us = t[reps / 2];
    row->min_us = t[0];
    row->tflops = 2.0 * (double)m * (double)n * (double)k / (row->median_us * 1e-6) * 1e-12;
    row->gbps = (double)(2 * (m * k + n * k) + 4 * m * n) / (row->median_us * 1e-6) * 1e-9;
    snprintf(row->source, sizeof row->source, "measured");
  }
  free(t);
  free(ref);
  gemm_packed_free(pk);
  free(a);
  free(w);
  free(c);
  return rc;
}

/* ---------------------------------------------------------------- simulation */

typedef struct qs_sim {
  const coll_ep_cfg *ep;      /* dispatch/combine kernel configuration */
  const ep_routing *routing;  /* the tokens' experts */
  int G;                      /* GPUs (EP ranks) */
  const sim_ps *shared_time;  /* [G] shared expert, overlapped with the dispatch */
  const sim_ps *expert_time;  /* [G] routed experts */
  sim_ps *dispatch_end;       /* [G] when each GPU's dispatch kernel ended */
  sim_ps experts_end;         /* when the last GPU's experts ended (the combine starts) */
  sim_ps layer_end;           /* when the last GPU's combine ended */
  double dispatch_rdma_gbs;   /* DeepEP-style bandwidths of the two kernels */
  double combine_rdma_gbs;
  double dispatch_nvl_gbs;
  int failed;
} qs_sim;

static void on_combine_done(net *n, void *p, coll_ep_result *r) {
  (void)n;
  qs_sim *s = p;
  s->layer_end = r->end;
  s->combine_rdma_gbs = coll_ep_rdma_gbyte_s(r);
  coll_ep_result_free(r);
  free(r); /* the callback owns the result struct too */
}

static void start_combine(net *n, void *p) {
  qs_sim *s = p;
  if (coll_ep_start(n, s->ep, s->routing, 1, on_combine_done, s) != 0) s->failed = 1;
}

/* Dispatch done: each GPU runs its routed experts once its tokens are in and its shared expert
 * is done; the combine needs every GPU's expert outputs, so it starts after the last one. */
static void on_dispatch_done(net *n, void *p, coll_ep_result *r) {
  qs_sim *s = p;
  sim_ps last = 0;
  for (int g = 0; g < s->G; g++) {
    s->dispatch_end[g] = r->start + r->rank_time[g];
    sim_ps start = s->dispatch_end[g] > s->shared_time[g] ? s->dispatch_end[g] : s->shared_time[g];
    if (start + s->expert_time[g] > last) last = start + s->expert_time[g];
  }
  s->dispatch_rdma_gbs = coll_ep_rdma_gbyte_s(r);
  s->dispatch_nvl_gbs = coll_ep_nvl_gbyte_s(r);
  coll_ep_result_free(r);
  free(r); /* the callback owns the result struct too */
  s->experts_end = last;
  net_schedule(n, last - net_now(n), start_combine, s);
}

/* Seconds for one GEMM on the target GPU: FLOPs over (datasheet peak x measured efficiency). */
static double target_gemm_s(int64_t m, int64_t n, int64_t k, double peak_tflops, double eff) {
  if (m == 0) return 0;
  return 2.0 * (double)m * (double)n * (double)k / (peak_tflops * 1e12 * eff);
}

static int qs_run(const exp_run *run, void *p, res_row *row) {
  qs_spec *s = p;
  const qs_model *m = &s->model;
  if (topo_spec_resolve(run->cfg, &s->cluster, s->cluster_node) != 0) return UTIL_EXIT_USAGE;
  char err[256];
  topo *t = topo_build(&s->cluster, err, sizeof err);
  if (!t) {
    fprintf(stderr, "%s: error: cluster: %s\n", run->exp_path, err);
    return UTIL_EXIT_USAGE;
  }
  int G = t->n_gpus;
  if (m->routed_experts % G != 0 || m->routed_experts % m->n_groups != 0 || m->topk_groups > m->n_groups ||
      m->top_k > m->topk_groups * (m->routed_experts / m->n_groups)) {
    fprintf(stderr,
            "%s: error: %d routed experts in %d groups (top %d groups, top-%d) do not fit %d GPUs evenly\n",
            run->exp_path, m->routed_experts, m->n_groups, m->topk_groups, m->top_k, G);
    topo_free(t);
    return UTIL_EXIT_USAGE;
  }
  int epg = m->routed_experts / G;
  FILE *out = run->summary;

  /* Route: the V3 gate over synthetic tokens; GPU g holds tokens [g T, (g+1) T) of the stream. */
  ep_routing *rt = ep_routing_new(G, (int)s->tokens_per_gpu, m->top_k, m->routed_experts);
  ep_routing_gate(rt, m->n_groups, m->topk_groups, s->zipf_s, s->seed);
  int64_t *rows = util_xcalloc((size_t)m->routed_experts, sizeof *rows);
  double dest_pairs = 0;
  int *seen = util_xcalloc((size_t)G, sizeof *seen);
  for (int64_t tok = 0; tok < (int64_t)G * s->tokens_per_gpu; tok++) {
    memset(seen, 0, (size_t)G * sizeof *seen);
    for (int j = 0; j < m->top_k; j++) {
      int e = rt->idx[tok * m->top_k + j];
      if (e < 0) continue;
      rows[e]++;
      if (!seen[e / epg]) seen[e / epg] = 1, dest_pairs += 1;
    }
  }
  free(seen);
  double mean_dest = dest_pairs / ((double)G * (double)s->tokens_per_gpu);

  /* Measure on this CPU. Every expert receives, on average, top_k/E of the tokens of all GPUs. */
  int64_t mean_rows = (int64_t)llround((double)s->tokens_per_gpu * G * m->top_k / m->routed_experts);
  int64_t I = m->moe_intermediate, H = m->hidden;
  int64_t shapes[4][3] = {{mean_rows, 2 * I, H}, {mean_rows, H, I}, {s->tokens_per_gpu, 2 * I, H}, {s->tokens_per_gpu, H, I}};
  const char *shape_use[4] = {"routed up+gate", "routed down", "shared up+gate", "shared down"};
  int nshapes = m->shared_experts > 0 ? 4 : 2;
  pool *tp = pool_create(s->threads, 1);
  const char *peak_path = NULL;
  double cpu_peak = peak_bf16_tflops(tp, &peak_path);
  if (out) fprintf(out, "measuring  %d BF16 GEMM shapes on this CPU (%s, %d threads; peak %.2f TFLOP/s via %s)\n",
                   nshapes, cpu_isa_get()->brand, pool_threads(tp), cpu_peak, peak_path);
  kt_row krows[4];
  double eff[4];
  int rc = 0;
  for (int i = 0; i < nshapes && rc == 0; i++) {
    if (measure_gemm(tp, shapes[i][0], shapes[i][1], shapes[i][2], s->reps, &krows[i]) != 0) {
      rc = UTIL_EXIT_SYS;
      break;
    }
    eff[i] = krows[i].tflops / cpu_peak;
    if (out) fprintf(out, "  gemm %-15s M=%-5lld N=%-5lld K=%-5lld  %9.0f us  %6.3f TFLOP/s  %4.0f%% of peak  (validated)\n",
                     shape_use[i], (long long)shapes[i][0], (long long)shapes[i][1], (long long)shapes[i][2],
                     krows[i].median_us, krows[i].tflops, 100 * eff[i]);
  }
  pool_destroy(tp);
  util_buf kpath = {0};
  util_buf_printf(&kpath, "%s/kernels.csv", run->out_dir);
  if (rc == 0) {
    util_buf ktext = {0};
    util_buf_printf(&ktext, "%s\n", KT_HEADER);
    for (int i = 0; i < nshapes; i++) {
      char line[1024];
      kt_format_row(&krows[i], line, sizeof line);
      util_buf_printf(&ktext, "%s\n", line);
    }
    if (util_write_file_atomic(kpath.data, ktext.data, ktext.len) != 0) rc = UTIL_EXIT_SYS;
    util_buf_free(&ktext);
  }

  /* Simulate. */
  qs_sim sim = {.G = G};
  double peak = t->gpu.bf16_tflops;
  sim_ps *shared = util_xcalloc((size_t)G, sizeof *shared), *experts = util_xcalloc((size_t)G, sizeof *experts);
  sim.dispatch_end = util_xcalloc((size_t)G, sizeof *sim.dispatch_end);
  for (int g = 0; rc == 0 && g < G; g++) {
    double te = 0;
    for (int e = g * epg; e < (g + 1) * epg; e++)
      te += target_gemm_s(rows[e], 2 * I, H, peak, eff[0]) + target_gemm_s(rows[e], H, I, peak, eff[1]);
    experts[g] = ps_from_s(te);
    double ts = m->shared_experts * (target_gemm_s(s->tokens_per_gpu, 2 * I, H, peak, nshapes > 2 ? eff[2] : eff[0]) +
                                     target_gemm_s(s->tokens_per_gpu, H, I, peak, nshapes > 2 ? eff[3] : eff[1]));
    shared[g] = ps_from_s(ts);
  }
  coll_ep_cfg ep = {.hidden = (int)H, .dispatch_fp8 = s->dispatch_fp8, .sms = s->comm_sms, .kernel = COLL_EP_AUTO};
  sim.ep = &ep;
  sim.routing = rt;
  sim.shared_time = shared;
  sim.expert_time = experts;
  if (rc == 0) {
    des_sim *d = des_new();
    net_opts no = {.seed = s->seed};
    net *n = net_new(d, t, &no);
    if (coll_ep_start(n, &ep, rt, 0, on_dispatch_done, &sim) != 0) sim.failed = 1;
    des_run(d);
    net_free(n);
    des_free(d);
    if (sim.failed) rc = UTIL_EXIT_USAGE;
  }

  if (rc == 0) {
    sim_ps dispatch_max = 0;
    int worst = 0;
    for (int g = 0; g < G; g++)
      if (sim.dispatch_end[g] > dispatch_max) dispatch_max = sim.dispatch_end[g], worst = g;
    double d_us = ps_to_us(dispatch_max), layer_us = ps_to_us(sim.layer_end);
    double e_us = ps_to_us(sim.experts_end) - d_us, c_us = layer_us - ps_to_us(sim.experts_end);
    double tok_bytes = s->dispatch_fp8 ? (double)H * (1.0 + 4.0 / 128) : (double)H * 2;
    res_set(row, "cluster", "%s", t->name);
    res_set_i(row, "gpus", G);
    res_set_i(row, "tokens_per_gpu", s->tokens_per_gpu);
    res_set(row, "dispatch_dtype", "%s", payloads[s->dispatch_fp8]);
    res_set_f(row, "dispatch_us", d_us);
    res_set_f(row, "experts_us", e_us);
    res_set_f(row, "combine_us", c_us);
    res_set_f(row, "layer_us", layer_us);
    res_set_f(row, "shared_expert_us", ps_to_us(shared[worst]));
    res_set_f(row, "tokens_per_s", (double)s->tokens_per_gpu * G / (layer_us * 1e-6));
    res_set_f(row, "dispatch_mb_per_gpu", mean_dest * (double)s->tokens_per_gpu * tok_bytes / 1e6);
    res_set_f(row, "mean_dest_gpus", mean_dest);
    res_set_f(row, "dispatch_rdma_gbyte_s", sim.dispatch_rdma_gbs);
    res_set_f(row, "combine_rdma_gbyte_s", sim.combine_rdma_gbs);
    res_set_f(row, "cpu_peak_tflops", cpu_peak);
    res_set_f(row, "cpu_gemm_tflops", krows[0].tflops);
    res_set_f(row, "cpu_gemm_efficiency", eff[0]);
    res_set_f(row, "gpu_gemm_tflops", peak * eff[0]);
    res_set(row, "compute_source", "projected: %s bf16_tflops %.0f x efficiency measured on %s", t->gpu.model ? t->gpu.model : "gpu",
            peak, util_hostname());
    if (out) {
      fprintf(out, "simulated  one V3 MoE layer forward on %s (%d GPUs, %s), %lld tokens/GPU, %s dispatch on %d SMs\n",
              t->name, G, t->gpu.model ? t->gpu.model : "gpu", (long long)s->tokens_per_gpu,
              payloads[s->dispatch_fp8], s->comm_sms);
      fprintf(out, "  phase       time (us)\n");
      fprintf(out, "  dispatch   %10.1f   %.2f GPUs per token, %.1f GB/s RDMA (DeepEP's measure)\n", d_us, mean_dest,
              sim.dispatch_rdma_gbs);
      fprintf(out, "  experts    %10.1f   %d experts per GPU at %.0f%% of %.0f TFLOP/s (efficiency measured here)\n",
              e_us, epg, 100 * eff[0], peak);
      fprintf(out, "  combine    %10.1f   %.1f GB/s RDMA\n", c_us, sim.combine_rdma_gbs);
      fprintf(out, "  layer      %10.1f   (shared expert %.1f us, overlapped with the dispatch)\n", layer_us,
              ps_to_us(shared[worst]));
      fprintf(out, "kernels    %s\n", kpath.data);
    }
  }
  util_buf_free(&kpath);
  free(shared);
  free(experts);
  free(sim.dispatch_end);
  free(rows);
  ep_routing_free(rt);
  topo_free(t);
  return rc;
}

static const char *const qs_plots[] = {"breakdown", NULL};

const exp_kind exp_kind_moe_layer = {
    .name = "moe_layer",
    .summary = "one MoE layer forward (dispatch, experts, combine) costed from kernels measured here",
    .keys = qs_keys,
    .spec_size = sizeof(qs_spec),
    .init = qs_init,
    .run = qs_run,
    .plots = qs_plots,
};
