/* tests/bench/bench_promo.c — what the FP8 GEMM's promotion step costs on this machine: the study
 * behind hw_features.promotion_table (sim/whatif.h, the V3 report's suggestions 3 and 4).
 *
 * DeepSeek's FP8 GEMM leaves the tensor cores every N_C = 128 products along K: the partial sums
 * are scaled by their blocks' scales and added into FP32 registers on CUDA cores. moesim's CPU FP8
 * GEMM (kernels/gemm.h) does the same thing every promo_k products: the micro-kernel's partial sums
 * are multiplied by the row and strip scales and added into the FP32 tile. Timing one GEMM at
 * promo_k = 128, 64, 32, 16 and 8 (1 to 16 steps per 128-block) and fitting t = a + b x over the
 * steps x gives what one step per block costs: b / (a + b) of the GEMM at N_C = 128 (the fit is
 * sim/whatif.c's whatif_promo_fit, the one the simulator uses). Figures, not pass/fail.
 *
 * Each interval is validated against kernels/ref (a corner of C, FP8-exact inputs) before it is
 * timed; the intervals run in interleaved rounds so that load from other programs on a shared
 * machine hits them alike; the fit uses each interval's fastest round (load only adds time).
 *
 *   bench_promo [--quick] [--reps N] [--threads N] [--out F.csv]
 *
 * --out appends kernel-table rows (kernel gemm, variant promo_k=P/<micro-kernel>, source measured)
 * for `moesim run` experiments to read through hw_features.promotion_table. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "gemm.h"
#include "ktable.h"
#include "pool.h"
#include "krand.h"
#include "util.h"
#include "whatif.h"

static const int promos[] = {128, 64, 32, 16, 8};
#define NPROMO 5

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_promo [--quick] [--reps N] [--threads N] [--out F.csv] [--help]\n"
          "  --quick      one small shape, 3 rounds (a smoke run)\n"
          "  --reps N     timed rounds (default 15)\n"
          "  --threads N  threads (default 1: the other cores' load disturbs it least)\n"
          "  --out F.csv  append the timings as kernel-table rows (variant promo_k=N/...)\n"
          "  --help       this text\n");
}

static krand rng = {7}; /* the splitmix64 state (krand.h) */
static float unif(void) { return (float)krand_unif(&rng) * 2.0f - 1.0f; } /* [-1, 1) */

/* Random FP8 E4M3 values (exactly representable) with scales of blocks br x 128. */
static void fp8_fill(int64_t rows, int64_t cols, int64_t br, fp8_t *q, float *s) {
  for (int64_t i = 0; i < rows * cols; i++) q[i] = f32_to_fp8_e4m3(unif() * 400.0f);
  for (int64_t i = 0; i < (rows + br - 1) / br * (cols / 128); i++) s[i] = ldexpf(1.0f, -9 - (int)(i % 3));
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Validates rows [0, 2) x columns [0, 64) of C against the reference. */
static int validate(int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w, const float *c) {
  float ref[2 * 64];
  gemm_out ro = {KN_FP32, ref, 64};
  if (gemm_ref(2, 64, k, a, w, &ro, GEMM_EPI_NONE) != 0) return 0;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 64; j++) {
      double r = ref[i * 64 + j], f = c[i * n + j];
      if (!(fabs(f - r) <= 1e-5 * fabs(r) + 1e-6 * sqrt((double)k))) {
        fprintf(stderr, "bench_promo: validation failed at [%d,%d]: ref %g got %g\n", i, j, r, f);
        return 0;
      }
    }
  return 1;
}

int main(int argc, char **argv) {
  int quick = 0, reps = 15, threads = 1;
  const char *out = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (reps < 1 || threads < 1) {
    usage(stderr);
    return 2;
  }
  if (quick) reps = reps < 3 ? reps : 3;
  /* (M, N, K): a V3 expert's up (one half) and down projections for 256 rows */
  static const int64_t shapes_full[][3] = {{256, 2048, 7168}, {256, 7168, 2048}}, shapes_quick[][3] = {{128, 512, 2048}};
  const int64_t(*shapes)[3] = quick ? shapes_quick : shapes_full;
  int nshapes = quick ? 1 : 2;
  pool *tp = pool_create(threads, 1);
  printf("CPU %s, %s; FP8 E4M3 GEMM, C FP32; %d interleaved rounds\n", cpu_isa_get()->brand, pool_binding(tp), reps);
  printf("%5s %5s %5s | %8s | %s\n", "M", "N", "K", "promo_k", "min ms (ratio to promo_k 128), median ms");
  kt_row *rows = util_xcalloc((size_t)nshapes * NPROMO, sizeof *rows);
  size_t nrows = 0;
  for (int s = 0; s < nshapes; s++) {
    int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    fp8_t *a8 = util_xmalloc((size_t)(m * k)), *w8 = util_xmalloc((size_t)(n * k));
    float *as = util_xmalloc((size_t)(m * k / 128) * sizeof(float)), *ws = util_xmalloc((size_t)(n / 128 * k / 128) * sizeof(float));
    fp8_fill(m, k, 1, a8, as);
    fp8_fill(n, k, 128, w8, ws);
    gemm_mat am = {KN_FP8_E4M3, a8, k, as, k / 128}, wm = {KN_FP8_E4M3, w8, k, ws, k / 128};
    gemm_packed *pw = gemm_pack(&wm, n, k);
    float *c = util_xcalloc((size_t)(m * n), sizeof(float));
    gemm_out co = {KN_FP32, c, n};
    const gemm_variant *v = gemm_variant_best(KN_FP8_E4M3, m);
    int ok[NPROMO];
    for (int p = 0; p < NPROMO; p++) {
      gemm_opts o = {.variant = v, .promo_k = promos[p]};
      memset(c, 0, (size_t)(m * n) * sizeof(float));
      ok[p] = pw && gemm_run(tp, m, &am, pw, &co, &o) == 0 && validate(n, k, &am, &wm, c);
    }
    double *t = util_xcalloc((size_t)NPROMO * reps, sizeof *t);
    for (int r = 0; r < reps; r++)
      for (int p = 0; p < NPROMO; p++) {
        if (!ok[p]) continue;
        gemm_opts o = {.variant = v, .promo_k = promos[p]};
        uint64_t t0 = util_now_ns();
        if (gemm_run(tp, m, &am, pw, &co, &o) != 0) UTIL_SYSFAIL("gemm_run failed");
        t[p * reps + r] = (double)(util_now_ns() - t0) * 1e-3;
      }
    double med[NPROMO] = {0};
    for (int p = 0; p < NPROMO; p++) {
      if (!ok[p]) {
        printf("%5lld %5lld %5lld | %8d | failed validation, not timed\n", (long long)m, (long long)n, (long long)k,
               promos[p]);
        continue;
      }
      qsort(&t[p * reps], (size_t)reps, sizeof *t, cmp_d);
      med[p] = t[p * reps + reps / 2];
      printf("%5lld %5lld %5lld | %8d | %8.3f (%.3f)  %8.3f\n", (long long)m, (long long)n, (long long)k, promos[p],
             t[p * reps] * 1e-3, t[0] > 0 ? t[p * reps] / t[0] : 0, med[p] * 1e-3);
      kt_row *row = &rows[nrows++];
      snprintf(row->host, sizeof row->host, "%s", util_hostname());
      snprintf(row->device, sizeof row->device, "cpu");
      snprintf(row->device_name, sizeof row->device_name, "%s", cpu_isa_get()->brand);
      snprintf(row->backend, sizeof row->backend, "%s", cpu_level_name(cpu_isa_best()));
      snprintf(row->kernel, sizeof row->kernel, "gemm");
      snprintf(row->variant, sizeof row->variant, "promo_k=%d/%s", promos[p], v->name);
      snprintf(row->dtype, sizeof row->dtype, "fp8_e4m3");
      snprintf(row->source, sizeof row->source, "measured");
      row->m = m, row->n = n, row->k = k, row->groups = 1, row->threads = threads, row->reps = reps;
      row->median_us = med[p], row->min_us = t[p * reps];
      row->tflops = 2.0 * (double)m * (double)n * (double)k / (med[p] * 1e-6) * 1e-12;
      row->gbps = ((double)(m * k + n * k) + 4.0 * (double)(m * n)) / (med[p] * 1e-6) * 1e-9;
    }
    free(t);
    free(c);
    gemm_packed_free(pw);
    free(a8), free(w8), free(as), free(ws);
  }
  pool_destroy(tp);
  whatif_promo fit;
  char err[256];
  if (whatif_promo_fit(rows, nrows, &fit, err, sizeof err) == 0)
    printf("one promotion step per 128-wide K block: %.1f%% of the GEMM at N_C = 128 (median of %d shape%s, "
           "%.1f%% .. %.1f%%)\n", 100 * fit.step_frac, fit.shapes, fit.shapes > 1 ? "s" : "", 100 * fit.min_frac,
           100 * fit.max_frac);
  else
    printf("no fit: %s\n", err);
  if (out && nrows) {
    if (kt_append(out, rows, nrows) != 0) UTIL_SYSFAIL("cannot append to %s", out);
    printf("rows appended to %s\n", out);
  }
  free(rows);
  return 0;
}
