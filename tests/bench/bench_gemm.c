/* tests/bench/bench_gemm.c — moesim's CPU GEMMs against oneDNN's BF16 matmul, and against the
 * measured vdpbf16ps peak of this machine. Figures, not pass/fail (`make bench`).
 *
 * For 1 and 2 threads, M in {4, 16, 128, 2048} and the two DeepSeek-V3 expert shapes (K, N) =
 * (7168, 4096) (gate+up) and (2048, 7168) (down), it times, on the same random inputs:
 *   onednn  oneDNN 2.6 BF16 matmul, weights reordered once into the layout it prefers (format any)
 *   bf16    moesim gemm_run, BF16 activations and pre-packed BF16 weights
 *   fp8     moesim gemm_run, E4M3 activations (1x128 scales) and weights (128x128 scales)
 * all with BF16 output, and prints GFLOP/s (median of the repetitions), the ratios the issue sets
 * targets for, and the fraction of the vdpbf16ps peak measured here by a register-only loop.
 * The three run in interleaved rounds (load from other programs on this shared machine then hits
 * them alike) and caches are flushed before each run (a 96 MiB write) so weights come from memory,
 * as they do for experts in a real layer. moesim's paths are validated against kernels/ref on a
 * corner of the output before they are timed; a failing path is reported and not timed.
 *
 * oneDNN runs on OpenMP: the program re-executes itself once with OMP_PROC_BIND=close,
 * OMP_PLACES=cores and GOMP_SPINCOUNT=20000 so that its threads are pinned like moesim's pool and
 * spin as briefly as the pool's before sleeping (unless those variables are already set). */
#include <dlfcn.h>
#include <dnnl.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_isa.h"
#include "gemm.h"
#include "pool.h"
#include "krand.h"
#include "util.h"

static int reps_small = 15, reps_big = 5;

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_gemm [--quick] [--m M] [--threads T] [--reps N] [--help]\n"
          "  --quick    M in {4, 128} and 1 thread only (a smoke run)\n"
          "  --m M      only this M (any positive number)\n"
          "  --threads T  only this thread count (1 or 2)\n"
          "  --reps N   timed repetitions per point (default 15 for M <= 128, 5 above)\n"
          "  --help     this text\n");
}

/* ---------------------------------------------------------------- helpers */

static krand rng = {42}; /* the splitmix64 state (krand.h) */
static float unif(void) { return (float)krand_unif(&rng) * 2.0f - 1.0f; } /* [-1, 1) */

static char *flush_buf;
#define FLUSH_BYTES (96u << 20)
static void flush_caches(void) {
  for (size_t i = 0; i < FLUSH_BYTES; i += 64) flush_buf[i]++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef void (*bench_fn)(void *ctx);

/* Times `n` functions in interleaved rounds (so that load from other programs hits all of them
 * alike): one warm-up each, then `reps` rounds of one run each, caches flushed before every run.
 * A NULL function is skipped (time 0). Writes the median and minimum seconds of each. */
static void time_interleaved(int n, bench_fn *fn, void **ctx, int reps, double *med, double *mn) {
  double t[4][64];
  if (reps > 64) reps = 64;
  for (int f = 0; f < n; f++)
    if (fn[f]) fn[f](ctx[f]);
  for (int r = 0; r < reps; r++)
    for (int f = 0; f < n; f++) {
      if (!fn[f]) continue;
      flush_caches();
      uint64_t t0 = util_now_ns();
      fn[f](ctx[f]);
      t[f][r] = (double)(util_now_ns() - t0) * 1e-9;
    }
  for (int f = 0; f < n; f++) {
    if (!fn[f]) {
      med[f] = mn[f] = 0;
      continue;
    }
    qsort(t[f], (size_t)reps, sizeof t[f][0], cmp_double);
    med[f] = t[f][reps / 2];
    mn[f] = t[f][0];
  }
}

/* ---------------------------------------------------------------- vdpbf16ps peak */

#define PEAK_ACC 24
__attribute__((target("avx512f,avx512bf16"))) static float peak_loop(int64_t iters) {
  __m512 acc[PEAK_ACC];
  for (int j = 0; j < PEAK_ACC; j++) acc[j] = _mm512_setzero_ps();
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x3c003c00);
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 24
    for (int j = 0; j < PEAK_ACC; j++) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < PEAK_ACC; j++) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

typedef struct peak_job {
  int64_t iters;     /* loop iterations per thread */
  float sink[64];    /* results, so the loops are not removed */
} peak_job;

static void peak_worker(void *arg, int tid, int n) {
  (void)n;
  peak_job *j = arg;
  j->sink[tid] = peak_loop(j->iters);
}

/* GFLOP/s of vdpbf16ps on `threads` threads (best of 10). */
static double measure_peak(int threads) {
  pool *tp = pool_create(threads, 1);
  peak_job j = {.iters = 10000000};
  double best = 0;
  for (int r = 0; r < 10; r++) {
    uint64_t t0 = util_now_ns();
    pool_run(tp, peak_worker, &j);
    double s = (double)(util_now_ns() - t0) * 1e-9;
    double gf = (double)j.iters * PEAK_ACC * 64.0 * threads / s * 1e-9;
    if (gf > best) best = gf;
  }
  pool_destroy(tp);
  return best;
}

/* ---------------------------------------------------------------- oneDNN */

#define DNNL_OK(call)                                                                              \
  do {                                                                                             \
    dnnl_status_t st_ = (call);                                                                    \
    if (st_ != dnnl_success) UTIL_SYSFAIL("%s: status %d", #call, (int)st_);                       \
  } while (0)

typedef struct onednn_mm {
  dnnl_engine_t eng;            /* CPU engine */
  dnnl_stream_t stream;         /* its stream */
  dnnl_primitive_t mm;          /* the matmul */
  dnnl_memory_t src, wei, dst;  /* arguments (wei in the primitive's preferred layout) */
} onednn_mm;

static void onednn_setup(onednn_mm *o, int64_t m, int64_t n, int64_t k, bf16_t *a, bf16_t *w, bf16_t *c) {
  DNNL_OK(dnnl_engine_create(&o->eng, dnnl_cpu, 0));
  DNNL_OK(dnnl_stream_create(&o->stream, o->eng, dnnl_stream_default_flags));
  dnnl_memory_desc_t sd, wd_user, wd_any, dd;
  dnnl_dims_t sdims = {m, k}, wdims = {k, n}, ddims = {m, n};
  DNNL_OK(dnnl_memory_desc_init_by_tag(&sd, 2, sdims, dnnl_bf16, dnnl_ab));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&wd_user, 2, wdims, dnnl_bf16, dnnl_ba)); /* W is N x K row-major */
  DNNL_OK(dnnl_memory_desc_init_by_tag(&wd_any, 2, wdims, dnnl_bf16, dnnl_format_tag_any));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&dd, 2, ddims, dnnl_bf16, dnnl_ab));
  dnnl_matmul_desc_t md;
  DNNL_OK(dnnl_matmul_desc_init(&md, &sd, &wd_any, NULL, &dd));
  dnnl_primitive_desc_t pd;
  DNNL_OK(dnnl_primitive_desc_create(&pd, &md, NULL, o->eng, NULL));
  const dnnl_memory_desc_t *wd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  DNNL_OK(dnnl_memory_create(&o->src, &sd, o->eng, a));
  DNNL_OK(dnnl_memory_create(&o->dst, &dd, o->eng, c));
  DNNL_OK(dnnl_memory_create(&o->wei, wd, o->eng, DNNL_MEMORY_ALLOCATE));
  dnnl_memory_t wuser;
  DNNL_OK(dnnl_memory_create(&wuser, &wd_user, o->eng, w));
  dnnl_primitive_desc_t rpd;
  DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &wd_user, o->eng, wd, o->eng, NULL));
  dnnl_primitive_t reorder;
  DNNL_OK(dnnl_primitive_create(&reorder, rpd));
  dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, o->wei}};
  DNNL_OK(dnnl_primitive_execute(reorder, o->stream, 2, rargs));
  DNNL_OK(dnnl_stream_wait(o->stream));
  DNNL_OK(dnnl_primitive_destroy(reorder));
  DNNL_OK(dnnl_primitive_desc_destroy(rpd));
  DNNL_OK(dnnl_memory_destroy(wuser));
  DNNL_OK(dnnl_primitive_create(&o->mm, pd));
  DNNL_OK(dnnl_primitive_desc_destroy(pd));
}

static void onednn_run(void *ctx) {
  onednn_mm *o = ctx;
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, o->src}, {DNNL_ARG_WEIGHTS, o->wei}, {DNNL_ARG_DST, o->dst}};
  DNNL_OK(dnnl_primitive_execute(o->mm, o->stream, 3, args));
  DNNL_OK(dnnl_stream_wait(o->stream));
}

static void onednn_free(onednn_mm *o) {
  dnnl_primitive_destroy(o->mm);
  dnnl_memory_destroy(o->src);
  dnnl_memory_destroy(o->wei);
  dnnl_memory_destroy(o->dst);
  dnnl_stream_destroy(o->stream);
  dnnl_engine_destroy(o->eng);
}

static void set_omp_threads(int n) {
  void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
  if (f) f(n);
}

/* ---------------------------------------------------------------- moesim */

typedef struct moe_call {
  pool *tp;             /* threads */
  int64_t m;            /* rows */
  gemm_mat a;           /* activations */
  gemm_packed *w;       /* packed weights */
  gemm_out c;           /* output */
} moe_call;

static void moe_run(void *ctx) {
  moe_call *mc = ctx;
  if (gemm_run(mc->tp, mc->m, &mc->a, mc->w, &mc->c, NULL) != 0) UTIL_SYSFAIL("gemm_run failed");
}

/* Validates rows [0, 2) x columns [0, 64) of C against the reference; 1 if within tolerance. */
static int validate(int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w, const bf16_t *c) {
  float ref[2 * 64];
  gemm_out ro = {KN_FP32, ref, 64};
  if (gemm_ref(2, 64, k, a, w, &ro, GEMM_EPI_NONE) != 0) return 0;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 64; j++) {
      double r = ref[i * 64 + j], f = bf16_to_f32(c[i * n + j]);
      /* one BF16 rounding of the output plus FP32 summation over K (inputs are O(1)) */
      if (!(fabs(f - r) <= 0x1.0p-8 * fabs(r) + 1e-5 * sqrt((double)k) * 4)) {
        fprintf(stderr, "bench_gemm: validation failed at [%d,%d]: ref %g got %g\n", i, j, r, f);
        return 0;
      }
    }
  return 1;
}

/* Quantizes rows x cols floats to E4M3 with max-abs scales over blocks of br x 128. */
static void quantize(const float *x, int64_t rows, int64_t cols, int64_t br, fp8_t *q, float *s) {
  int64_t kb = cols / 128;
  for (int64_t r0 = 0; r0 < rows; r0 += br)
    for (int64_t b = 0; b < kb; b++) {
      float amax = 0;
      for (int64_t i = r0; i < r0 + br && i < rows; i++)
        for (int64_t j = b * 128; j < b * 128 + 128; j++) amax = fmaxf(amax, fabsf(x[i * cols + j]));
      float sc = amax > 0 ? amax / FP8_E4M3_MAX : 1.0f;
      s[(r0 / br) * kb + b] = sc;
      for (int64_t i = r0; i < r0 + br && i < rows; i++)
        for (int64_t j = b * 128; j < b * 128 + 128; j++) q[i * cols + j] = f32_to_fp8_e4m3(x[i * cols + j] / sc);
    }
}

int main(int argc, char **argv) {
  int quick = 0, only_t = 0;
  int64_t only_m = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
    } else if (strcmp(argv[i], "--m") == 0 && i + 1 < argc && atoll(argv[i + 1]) > 0) {
      only_m = atoll(argv[++i]);
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc && (atoi(argv[i + 1]) == 1 || atoi(argv[i + 1]) == 2)) {
      only_t = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps_small = reps_big = atoi(argv[++i]);
      if (reps_small < 1) {
        usage(stderr);
        return 2;
      }
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (!getenv("OMP_PROC_BIND")) {
    setenv("OMP_PROC_BIND", "close", 1);
    setenv("OMP_PLACES", "cores", 1);
    /* OpenMP workers spin as long as moesim's pool workers do (POOL_SPIN polls) before sleeping:
     * with libgomp's default (300000) a worker still spinning from oneDNN's run would share a core
     * with moesim's next run in the interleaved rounds (and the other way round, far less). */
    if (!getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "20000", 1);
    execv("/proc/self/exe", argv);
    /* fall through unpinned if re-execution is impossible */
  }
  if (cpu_isa_best() < CPU_AVX512BF16) {
    printf("bench_gemm: this CPU has no AVX-512 BF16 (level %s): no vdpbf16ps peak, comparing anyway\n",
           cpu_level_name(cpu_isa_best()));
  }
  flush_buf = util_xcalloc(FLUSH_BYTES, 1);
  int cores = pool_cores();
  double peak[3] = {0, 0, 0};
  double peak2 = 0;
  if (cpu_isa_best() >= CPU_AVX512BF16) {
    peak[1] = measure_peak(1);
    if (cores >= 2) peak2 = measure_peak(2);
  }
  /* The cores are alike: the 2-thread reference is twice the 1-thread peak (a 2-thread measurement
   * on a machine shared with other programs is usually short of it, and is printed for reference). */
  peak[2] = 2 * peak[1];
  printf("CPU %s, %d cores; vdpbf16ps peak: %.1f GFLOP/s per core (1 thread), %.1f GFLOP/s measured on 2 threads\n"
         "(2-thread fractions below use twice the 1-thread peak)\n",
         cpu_isa_get()->brand, cores, peak[1], peak2);
  printf("moesim best variants (registry probe):");
  static const int64_t probe_ms[] = {4, 16, 128, 2048};
  for (int f = 0; f < 2; f++)
    for (int i = 0; i < 4; i++)
      printf("%s %s M=%lld %s", i ? "," : f ? ";" : "", f ? "fp8" : "bf16", (long long)probe_ms[i],
             gemm_variant_best(f ? KN_FP8_E4M3 : KN_BF16, probe_ms[i])->name);
  printf("\n");
  printf("GFLOP/s at the median of the interleaved repetitions; ratios of medians (med) and of the fastest runs\n"
         "(min, less sensitive to other programs on a shared machine); bf16 fraction of the peak above\n\n");
  printf("%3s %5s %5s %5s | %8s %8s %8s | %6s %6s | %6s %6s | %6s %6s\n", "thr", "M", "K", "N", "onednn", "bf16",
         "fp8", "bf/dnn", "fp8/bf", "bf/dnn", "fp8/bf", "bf%pk", "bf%pk");
  printf("%3s %5s %5s %5s | %8s %8s %8s | %6s %6s | %6s %6s | %6s %6s\n", "", "", "", "", "med", "med", "med", "med",
         "med", "min", "min", "med", "min");

  static const int64_t kn[2][2] = {{7168, 4096}, {2048, 7168}};
  static const int64_t ms_full[] = {4, 16, 128, 2048}, ms_quick[] = {4, 128};
  const int64_t *ms = quick ? ms_quick : ms_full;
  int nms = quick ? 2 : 4, maxt = quick ? 1 : (cores < 2 ? cores : 2), mint = 1;
  if (only_m) {
    ms = &only_m;
    nms = 1;
  }
  if (only_t) mint = maxt = only_t;
  for (int s = 0; s < 2; s++) {
    int64_t k = kn[s][0], n = kn[s][1], mmax = ms[nms - 1];
    /* inputs shared by every point of this shape */
    float *wf = util_xmalloc((size_t)(n * k) * sizeof(float)), *af = util_xmalloc((size_t)(mmax * k) * sizeof(float));
    for (int64_t i = 0; i < n * k; i++) wf[i] = unif() * 0.05f;
    for (int64_t i = 0; i < mmax * k; i++) af[i] = unif();
    bf16_t *wb = util_xmalloc((size_t)(n * k) * 2), *ab = util_xmalloc((size_t)(mmax * k) * 2);
    for (int64_t i = 0; i < n * k; i++) wb[i] = f32_to_bf16(wf[i]);
    for (int64_t i = 0; i < mmax * k; i++) ab[i] = f32_to_bf16(af[i]);
    fp8_t *w8 = util_xmalloc((size_t)(n * k)), *a8 = util_xmalloc((size_t)(mmax * k));
    float *ws = util_xmalloc((size_t)(n / 128 * k / 128) * sizeof(float)), *as = util_xmalloc((size_t)(mmax * k / 128) * sizeof(float));
    quantize(wf, n, k, 128, w8, ws);
    quantize(af, mmax, k, 1, a8, as);
    free(wf);
    free(af);
    gemm_mat wbm = {KN_BF16, wb, k, NULL, 0}, w8m = {KN_FP8_E4M3, w8, k, ws, k / 128};
    gemm_mat abm = {KN_BF16, ab, k, NULL, 0}, a8m = {KN_FP8_E4M3, a8, k, as, k / 128};
    gemm_packed *pb = gemm_pack(&wbm, n, k), *p8 = gemm_pack(&w8m, n, k);
    bf16_t *c = util_xcalloc((size_t)(mmax * n), 2);
    for (int t = mint; t <= maxt; t++) {
      pool *tp = pool_create(t, 1);
      set_omp_threads(t);
      for (int mi = 0; mi < nms; mi++) {
        int64_t m = ms[mi];
        int reps = m <= 128 ? reps_small : reps_big;
        double flops = 2.0 * (double)m * (double)n * (double)k;
        onednn_mm od;
        onednn_setup(&od, m, n, k, ab, wb, c);
        moe_call cb = {tp, m, abm, pb, {KN_BF16, c, n}}, c8 = {tp, m, a8m, p8, {KN_BF16, c, n}};
        bench_fn fns[3] = {onednn_run, moe_run, moe_run};
        void *ctx[3] = {&od, &cb, &c8};
        moe_run(&cb);
        if (!validate(n, k, &abm, &wbm, c)) fns[1] = NULL;
        moe_run(&c8);
        if (!validate(n, k, &a8m, &w8m, c)) fns[2] = NULL;
        double med[3], mn[3];
        time_interleaved(3, fns, ctx, reps, med, mn);
        onednn_free(&od);
        double g[3], gm[3];
        for (int f = 0; f < 3; f++) {
          g[f] = med[f] > 0 ? flops / med[f] * 1e-9 : 0;
          gm[f] = mn[f] > 0 ? flops / mn[f] * 1e-9 : 0;
        }
        printf("%3d %5lld %5lld %5lld | %8.1f %8.1f %8.1f | %6.2f %6.2f | %6.2f %6.2f | %5.1f%% %5.1f%%\n", t,
               (long long)m, (long long)k, (long long)n, g[0], g[1], g[2], g[1] / g[0], g[1] > 0 ? g[2] / g[1] : 0,
               gm[1] / gm[0], gm[1] > 0 ? gm[2] / gm[1] : 0, peak[t] > 0 ? 100 * g[1] / peak[t] : 0,
               peak[t] > 0 ? 100 * gm[1] / peak[t] : 0);
        fflush(stdout);
      }
      pool_destroy(tp);
    }
    gemm_packed_free(pb);
    gemm_packed_free(p8);
    free(wb), free(ab), free(w8), free(a8), free(ws), free(as), free(c);
  }
  free(flush_buf);
  return 0;
}
