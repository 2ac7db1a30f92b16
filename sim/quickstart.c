/* sim/quickstart.c — the walking skeleton, experiment kind `moe_layer`: one DeepSeek-V3 MoE layer
 * forward pass (dispatch -> shared + routed expert GEMMs -> combine) on a small GPU cluster,
 * costed from kernels measured on this machine.
 *
 * The data path, end to end:
 *  1. measure the BF16 expert GEMM shapes the layer needs on this CPU with the real kernel
 *     (kernels/gemm.h), each validated against the plain-C reference before it is timed, and
 *     write them to the kernel table (<out>/kernels.csv, schema in sim/ktable.h);
 *  2. measure this CPU's BF16 peak; a GEMM's efficiency = measured TFLOP/s / peak;
 *  3. route real synthetic tokens with the V3 gate (group-limited top-k) and count, per GPU, the
 *     bytes each GPU sends and receives over NVLink and over its NIC, and each expert's rows;
 *  4. simulate with the event core: per GPU, dispatch arrival (bytes over link bandwidth, bounded
 *     by the sender's and the receiver's links), expert GEMMs (FLOPs over the target GPU's
 *     datasheet peak times the measured efficiency), combine back; the layer ends when the last
 *     GPU has its tokens back;
 *  5. write one results row, which `moesim run` draws as a breakdown figure.
 * The full network model (flows, max-min fairness, PXN forwarding) replaces step 4's link model in
 * the network issue; this file keeps the data path honest until then. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "des.h"
#include "exp.h"
#include "gate.h"
#include "gemm.h"
#include "ktable.h"
#include "peak.h"
#include "pool.h"
#include "qs_cluster.h"
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
  qs_cluster cluster;     /* the GPUs and their links */
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
    {.name = "cluster", .type = CFG_INCLUDE, .offset = offsetof(qs_spec, cluster), .sub = qs_cluster_keys,
     .flags = CFG_REQUIRED, .doc = "cluster (mapping or topologies/*.yaml)"},
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

/* ---------------------------------------------------------------- routing */

typedef struct qs_traffic {
  int gpus;            /* GPUs in the cluster */
  int64_t *rows;       /* [gpus x experts_per_gpu] tokens routed to each local expert */
  double *pairs;       /* [gpus x gpus] (token, destination GPU) pairs from src to dst */
  double mean_dest;    /* mean distinct destination GPUs per token */
} qs_traffic;

static void route(const qs_spec *s, qs_traffic *tr) {
  const qs_model *m = &s->model;
  int G = s->cluster.nodes * s->cluster.gpus_per_node, E = m->routed_experts, epg = E / G;
  tr->gpus = G;
  tr->rows = util_xcalloc((size_t)G * (size_t)epg, sizeof *tr->rows);
  tr->pairs = util_xcalloc((size_t)G * (size_t)G, sizeof *tr->pairs);
  moe_gate_cfg g = {.n_experts = E, .n_groups = m->n_groups, .topk_groups = m->topk_groups, .topk = m->top_k,
                    .route_scale = (float)m->route_scale, .norm_topk = 1};
  int64_t T = s->tokens_per_gpu;
  float *scores = util_xmalloc((size_t)(T * E) * sizeof *scores), *wts = util_xmalloc((size_t)(T * m->top_k) * sizeof *wts);
  int32_t *idx = util_xmalloc((size_t)(T * m->top_k) * sizeof *idx);
  int *seen = util_xmalloc((size_t)G * sizeof *seen);
  double dest_total = 0;
  for (int src = 0; src < G; src++) {
    /* Each GPU's tokens are a distinct range of the same synthetic token stream. */
    moe_synth syn = {.seed = s->seed, .zipf_s = s->zipf_s, .noise = 1.0};
    moe_synth_scores(&syn, E, (int64_t)src * T, T, scores);
    moe_gate_select(&g, scores, NULL, T, idx, wts);
    for (int64_t t = 0; t < T; t++) {
      memset(seen, 0, (size_t)G * sizeof *seen);
      for (int j = 0; j < m->top_k; j++) {
        int e = idx[t * m->top_k + j], dst = e / epg;
        tr->rows[dst * epg + e % epg]++;
        if (!seen[dst]) {
          seen[dst] = 1;
          tr->pairs[src * G + dst] += 1;
          dest_total += 1;
        }
      }
    }
  }
  tr->mean_dest = dest_total / ((double)T * G);
  free(scores);
  free(wts);
  free(idx);
  free(seen);
}

/* ---------------------------------------------------------------- simulation */

typedef struct qs_gpu {
  sim_ps dispatch_done;  /* all routed tokens have arrived */
  sim_ps experts_done;   /* routed expert GEMMs finished */
  sim_ps shared_done;    /* shared expert finished (runs during dispatch) */
  sim_ps combine_done;   /* all expert outputs for its tokens are back */
  int waiting;           /* GPUs whose experts it still waits on for the combine */
} qs_gpu;

typedef struct qs_sim {
  const qs_spec *spec;
  const qs_traffic *tr;
  qs_gpu *gpu;
  struct qs_ev *ev;      /* [gpus] event contexts */
  sim_ps *expert_time;   /* [gpus] routed expert compute time */
  sim_ps *combine_send;  /* [gpus] time for GPU g to send its combine traffic */
  sim_ps *combine_recv;  /* [gpus] time for GPU g to receive its combine traffic */
  int G;
} qs_sim;

typedef struct qs_ev {
  qs_sim *sim;
  int g;
} qs_ev;

static void on_combine_arrived(des_sim *d, void *p) {
  qs_ev *e = p;
  e->sim->gpu[e->g].combine_done = des_now(d);
}

/* GPU g's experts are done: its combine sends to every source GPU. A source has all its tokens
 * back when the last GPU holding its experts has pushed its bytes, and no sooner than its own
 * receive links allow from the moment the first holder started sending. */
static void on_experts_done(des_sim *d, void *p) {
  qs_ev *e = p;
  qs_sim *s = e->sim;
  s->gpu[e->g].experts_done = des_now(d);
  for (int src = 0; src < s->G; src++) {
    if (s->tr->pairs[src * s->G + e->g] == 0 || --s->gpu[src].waiting > 0) continue;
    sim_ps last = 0, first = SIM_PS_MAX;
    for (int h = 0; h < s->G; h++) {
      if (s->tr->pairs[src * s->G + h] == 0) continue;
      sim_ps t = s->gpu[h].experts_done + s->combine_send[h];
      if (t > last) last = t;
      if (s->gpu[h].experts_done < first) first = s->gpu[h].experts_done;
    }
    sim_ps recv = first + s->combine_recv[src];
    sim_ps when = last > recv ? last : recv;
    des_at(d, when + ps_from_ns(s->spec->cluster.latency_ns), on_combine_arrived, &s->ev[src]);
  }
}

static void on_dispatch_arrived(des_sim *d, void *p) {
  qs_ev *e = p;
  qs_sim *s = e->sim;
  qs_gpu *g = &s->gpu[e->g];
  g->dispatch_done = des_now(d);
  sim_ps start = g->dispatch_done > g->shared_done ? g->dispatch_done : g->shared_done;
  des_at(d, start + s->expert_time[e->g], on_experts_done, e);
}

/* Time to move directional byte counts over NVLink and the NIC at once: the slower of the two. */
static sim_ps link_time(const qs_cluster *c, double nv_bytes, double ib_bytes) {
  sim_ps a = ps_for_bytes((uint64_t)nv_bytes, c->scaleup_gbyte_s);
  sim_ps b = ps_for_bytes((uint64_t)ib_bytes, c->nic_gbit_s / 8);
  return a > b ? a : b;
}

/* Seconds for one GEMM on the target GPU: FLOPs over (datasheet peak x measured efficiency). */
static double target_gemm_s(int64_t m, int64_t n, int64_t k, double peak_tflops, double eff) {
  if (m == 0) return 0;
  return 2.0 * (double)m * (double)n * (double)k / (peak_tflops * 1e12 * eff);
}

static int qs_run(const exp_run *run, void *p, res_row *row) {
  qs_spec *s = p;
  const qs_model *m = &s->model;
  const qs_cluster *c = &s->cluster;
  int G = c->nodes * c->gpus_per_node;
  if (m->routed_experts % G != 0) {
    fprintf(stderr, "%s: error: %d routed experts do not divide evenly over %d GPUs\n", run->exp_path,
            m->routed_experts, G);
    return UTIL_EXIT_USAGE;
  }
  if (m->routed_experts % m->n_groups != 0 || m->topk_groups > m->n_groups ||
      m->top_k > m->topk_groups * (m->routed_experts / m->n_groups)) {
    fprintf(stderr, "%s: error: top_k %d cannot be chosen from %d of %d groups of %d experts\n", run->exp_path,
            m->top_k, m->topk_groups, m->n_groups, m->routed_experts / m->n_groups);
    return UTIL_EXIT_USAGE;
  }
  int epg = m->routed_experts / G;
  FILE *out = run->summary;

  /* 1-3: measure on this CPU, route. */
  qs_traffic tr;
  route(s, &tr);
  /* Every expert receives, on average, top_k/E of the tokens of all G GPUs. */
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
  kt_row rows[4];
  double eff[4];
  int rc = 0;
  for (int i = 0; i < nshapes && rc == 0; i++) {
    if (measure_gemm(tp, shapes[i][0], shapes[i][1], shapes[i][2], s->reps, &rows[i]) != 0) {
      rc = UTIL_EXIT_SYS;
      break;
    }
    eff[i] = rows[i].tflops / cpu_peak;
    if (out) fprintf(out, "  gemm %-15s M=%-5lld N=%-5lld K=%-5lld  %9.0f us  %6.3f TFLOP/s  %4.0f%% of peak  (validated)\n",
                     shape_use[i], (long long)shapes[i][0], (long long)shapes[i][1], (long long)shapes[i][2],
                     rows[i].median_us, rows[i].tflops, 100 * eff[i]);
  }
  pool_destroy(tp);
  if (rc != 0) {
    free(tr.rows);
    free(tr.pairs);
    return rc;
  }
  util_buf ktext = {0}, kpath = {0};
  util_buf_printf(&ktext, "%s\n", KT_HEADER);
  for (int i = 0; i < nshapes; i++) {
    char line[1024];
    kt_format_row(&rows[i], line, sizeof line);
    util_buf_printf(&ktext, "%s\n", line);
  }
  util_buf_printf(&kpath, "%s/kernels.csv", run->out_dir);
  if (util_write_file_atomic(kpath.data, ktext.data, ktext.len) != 0) rc = UTIL_EXIT_SYS;
  util_buf_free(&ktext);

  /* 4: simulate. */
  double tok_bytes = s->dispatch_fp8 ? (double)H * (1.0 + 4.0 / 128) : (double)H * 2, comb_bytes = (double)H * 2;
  qs_sim sim = {.spec = s, .tr = &tr, .G = G};
  sim.gpu = util_xcalloc((size_t)G, sizeof *sim.gpu);
  sim.ev = util_xcalloc((size_t)G, sizeof *sim.ev);
  sim.expert_time = util_xcalloc((size_t)G, sizeof *sim.expert_time);
  sim.combine_send = util_xcalloc((size_t)G, sizeof *sim.combine_send);
  sim.combine_recv = util_xcalloc((size_t)G, sizeof *sim.combine_recv);
  sim_ps *disp_send = util_xcalloc((size_t)G, sizeof *disp_send), *disp_recv = util_xcalloc((size_t)G, sizeof *disp_recv);
  double bytes_out_max = 0, peak = c->gpu_bf16_tflops;
  for (int g = 0; g < G; g++) {
    sim.ev[g] = (qs_ev){&sim, g};
    /* Directional bytes of GPU g: dispatch out/in, and the combine (the reverse pairs, BF16). */
    double out_nv = 0, out_ib = 0, in_nv = 0, in_ib = 0;
    for (int h = 0; h < G; h++) {
      if (h == g) continue;
      int same = h / c->gpus_per_node == g / c->gpus_per_node;
      double o = tr.pairs[g * G + h], i = tr.pairs[h * G + g];
      if (same) out_nv += o, in_nv += i;
      else out_ib += o, in_ib += i;
    }
    if ((out_nv + out_ib) * tok_bytes > bytes_out_max) bytes_out_max = (out_nv + out_ib) * tok_bytes;
    disp_send[g] = link_time(c, out_nv * tok_bytes, out_ib * tok_bytes);
    disp_recv[g] = link_time(c, in_nv * tok_bytes, in_ib * tok_bytes);
    sim.combine_send[g] = link_time(c, in_nv * comb_bytes, in_ib * comb_bytes);
    sim.combine_recv[g] = link_time(c, out_nv * comb_bytes, out_ib * comb_bytes);
    double t = 0;
    for (int e = 0; e < epg; e++) {
      int64_t r = tr.rows[g * epg + e];
      t += target_gemm_s(r, 2 * I, H, peak, eff[0]) + target_gemm_s(r, H, I, peak, eff[1]);
    }
    sim.expert_time[g] = ps_from_s(t);
    double ts = m->shared_experts * (target_gemm_s(s->tokens_per_gpu, 2 * I, H, peak, nshapes > 2 ? eff[2] : eff[0]) +
                                     target_gemm_s(s->tokens_per_gpu, H, I, peak, nshapes > 2 ? eff[3] : eff[1]));
    sim.gpu[g].shared_done = ps_from_s(ts);
  }
  des_sim *des = des_new();
  for (int g = 0; g < G; g++) {
    /* Dispatch to g ends when its slowest sender has pushed its bytes and g's links drained. */
    sim_ps arrive = disp_recv[g];
    sim.gpu[g].waiting = 0;
    for (int h = 0; h < G; h++) {
      if (tr.pairs[h * G + g] > 0 && disp_send[h] > arrive) arrive = disp_send[h];
      sim.gpu[g].waiting += tr.pairs[g * G + h] > 0;
    }
    des_at(des, arrive + ps_from_ns(c->latency_ns), on_dispatch_arrived, &sim.ev[g]);
  }
  des_run(des);
  des_free(des);
  free(disp_send);
  free(disp_recv);

  /* The slowest GPU's critical path gives the breakdown. */
  int worst = 0;
  for (int g = 1; g < G; g++)
    if (sim.gpu[g].combine_done > sim.gpu[worst].combine_done) worst = g;
  qs_gpu *w = &sim.gpu[worst];
  double layer_us = ps_to_us(w->combine_done);
  double d_us = ps_to_us(w->dispatch_done);
  double e_us = ps_to_us(w->experts_done) - d_us;
  double c_us = layer_us - ps_to_us(w->experts_done);

  res_set(row, "cluster", "%s", c->name);
  res_set_i(row, "gpus", G);
  res_set_i(row, "tokens_per_gpu", s->tokens_per_gpu);
  res_set(row, "dispatch_dtype", "%s", payloads[s->dispatch_fp8]);
  res_set_f(row, "dispatch_us", d_us);
  res_set_f(row, "experts_us", e_us);
  res_set_f(row, "combine_us", c_us);
  res_set_f(row, "layer_us", layer_us);
  res_set_f(row, "shared_expert_us", ps_to_us(w->shared_done));
  res_set_f(row, "tokens_per_s", (double)s->tokens_per_gpu * G / (layer_us * 1e-6));
  res_set_f(row, "dispatch_mb_per_gpu", bytes_out_max / 1e6);
  res_set_f(row, "mean_dest_gpus", tr.mean_dest);
  res_set_f(row, "cpu_peak_tflops", cpu_peak);
  res_set_f(row, "cpu_gemm_tflops", rows[0].tflops);
  res_set_f(row, "cpu_gemm_efficiency", eff[0]);
  res_set_f(row, "gpu_gemm_tflops", peak * eff[0]);
  res_set(row, "compute_source", "projected: %s bf16_tflops %.0f x efficiency measured on %s", c->gpu_name, peak,
          util_hostname());

  if (out) {
    fprintf(out, "simulated  one V3 MoE layer forward, %d x %d %s, %lld tokens/GPU, %s dispatch\n", c->nodes,
            c->gpus_per_node, c->gpu_name, (long long)s->tokens_per_gpu, payloads[s->dispatch_fp8]);
    fprintf(out, "  phase       time (us)   (slowest GPU %d)\n", worst);
    fprintf(out, "  dispatch   %10.1f   %.1f MB out per GPU at most, %.2f GPUs per token\n", d_us, bytes_out_max / 1e6,
            tr.mean_dest);
    fprintf(out, "  experts    %10.1f   %d experts per GPU at %.0f%% of %.0f TFLOP/s (efficiency measured here)\n", e_us,
            epg, 100 * eff[0], peak);
    fprintf(out, "  combine    %10.1f\n", c_us);
    fprintf(out, "  layer      %10.1f   (shared expert %.1f us, overlapped with dispatch)\n", layer_us,
            ps_to_us(w->shared_done));
    fprintf(out, "kernels    %s\n", kpath.data);
  }
  util_buf_free(&kpath);
  free(sim.gpu);
  free(sim.ev);
  free(sim.expert_time);
  free(sim.combine_send);
  free(sim.combine_recv);
  free(tr.rows);
  free(tr.pairs);
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
