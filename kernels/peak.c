/* kernels/peak.c — peak-throughput microbenchmarks (see peak.h). Each thread runs a fixed number
 * of iterations of independent accumulator chains; the wall time of the slowest thread gives the
 * figure. The per-ISA loops live in peak_<isa>.c (compiled with those ISA flags) and are only
 * called after a CPUID check. */
#include "peak.h"

#include "cpu_isa.h"
#include "util.h"

/* Per-ISA loops: run `iters` iterations, return FLOP done (so the caller cannot be fooled by an
 * optimised-away loop, each returns a value that depends on every accumulator). */
double peak_loop_avx512bf16(long iters, float *sink);
double peak_loop_avx512_fma(long iters, float *sink);
double peak_loop_avx2_fma(long iters, float *sink);

static double peak_loop_scalar(long iters, float *sink) {
  float a[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  const float x = 0.999999f, y = 1e-7f;
  for (long i = 0; i < iters; i++)
    for (int j = 0; j < 8; j++) a[j] = a[j] * x + y;
  float s = 0;
  for (int j = 0; j < 8; j++) s += a[j];
  *sink = s;
  return 2.0 * 8 * (double)iters;
}

typedef double (*loop_fn)(long, float *);

typedef struct peak_job {
  loop_fn fn;      /* the loop */
  long iters;      /* iterations per thread */
  double flop[64]; /* FLOP done by each thread */
  float sink[64];  /* results kept alive */
} peak_job;

static void peak_thread(void *arg, int tid, int n) {
  (void)n;
  peak_job *j = arg;
  if (tid < 64) j->flop[tid] = j->fn(j->iters, &j->sink[tid]);
}

static double measure(pool *tp, loop_fn fn) {
  peak_job job = {.fn = fn, .iters = 1000};
  int n = pool_threads(tp);
  /* Grow the iteration count until a run takes ~20 ms, then keep the best of 5. */
  double best = 0;
  for (;;) {
    uint64_t t0 = util_now_ns();
    pool_run(tp, peak_thread, &job);
    double sec = (double)(util_now_ns() - t0) * 1e-9;
    if (sec > 0.02) break;
    job.iters *= 4;
  }
  for (int r = 0; r < 5; r++) {
    uint64_t t0 = util_now_ns();
    pool_run(tp, peak_thread, &job);
    double sec = (double)(util_now_ns() - t0) * 1e-9;
    double flop = 0;
    for (int t = 0; t < n && t < 64; t++) flop += job.flop[t];
    double tf = flop / sec * 1e-12;
    if (tf > best) best = tf;
  }
  return best;
}

double peak_bf16_tflops(pool *tp, const char **path) {
  cpu_level l = cpu_isa_best();
  if (l >= CPU_AVX512BF16) {
    if (path) *path = "vdpbf16ps (avx512bf16)";
    return measure(tp, peak_loop_avx512bf16);
  }
  return peak_fp32_tflops(tp, path);
}

double peak_fp32_tflops(pool *tp, const char **path) {
  cpu_level l = cpu_isa_best();
  if (l >= CPU_AVX512) {
    if (path) *path = "vfmadd zmm (avx512f)";
    return measure(tp, peak_loop_avx512_fma);
  }
  if (l >= CPU_AVX2) {
    if (path) *path = "vfmadd ymm (avx2)";
    return measure(tp, peak_loop_avx2_fma);
  }
  if (path) *path = "scalar";
  return measure(tp, peak_loop_scalar);
}
