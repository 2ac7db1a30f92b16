/* kernels/accum.c — an emulated limited-precision FP8 accumulator and the accumulation study.
 *
 * DeepSeek-V3 (section 3.3) reports that H800 tensor cores keep only about 14 bits of the running
 * sum of an FP8 GEMM, so that without help the error grows with K (nearly 2% maximum relative error
 * at K = 4096), and that promoting the partial sum to FP32 every N_C = 128 elements fixes it. This
 * file reproduces the mechanism, not the number: each product a*w (exact: FP8 x FP8 has at most 8
 * significant bits) is added exactly to the running sum, which is then truncated toward zero to B
 * explicit mantissa bits (the alignment shifter of a tensor core drops the low bits); with
 * promotion, the limited partial sum of every N_C products is scaled by the block's scales and
 * added to an FP32 accumulator (one rounding per promotion, as CUDA-core FMAs do), then restarts.
 * gemm_accum_study() prints the maximum relative error against K for the input distribution it
 * states; tests/test_accum.c checks the mechanism's predictions with their tolerances. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "gemm_internal.h"

/* x truncated toward zero to `bits` explicit mantissa bits (x a normal double or 0). */
static double trunc_mant(double x, int bits) {
  uint64_t u;
  memcpy(&u, &x, 8);
  u &= ~((UINT64_C(1) << (52 - bits)) - 1);
  memcpy(&x, &u, 8);
  return x;
}

/* 1 when every row of the scale matrix (rows x kblocks) is constant along K. */
static int scales_uniform(const float *s, int64_t ld, int64_t rows, int64_t kblocks) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t kb = 1; kb < kblocks; kb++)
      if (s[r * ld + kb] != s[r * ld]) return 0;
  return 1;
}

int gemm_ref_fp8_accum(int64_t m, int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w,
                       const gemm_accum_cfg *cfg, float *c, int64_t ldc) {
  int64_t kblocks = (k + GEMM_BLOCK - 1) / GEMM_BLOCK, nb = (n + GEMM_BLOCK - 1) / GEMM_BLOCK;
  if (m < 0 || n < 1 || k < 1 || ldc < n) {
    fprintf(stderr, "gemm: accum: bad shape m=%lld n=%lld k=%lld ldc=%lld\n", (long long)m, (long long)n,
            (long long)k, (long long)ldc);
    return -1;
  }
  if (gemm_check_mat("activations", a, m, k, m) || gemm_check_mat("weights", w, n, k, nb)) return -1;
  if (a->dtype == KN_BF16 || w->dtype == KN_BF16) {
    fprintf(stderr, "gemm: accum: the emulated accumulator takes fp8 operands\n");
    return -1;
  }
  if (cfg->mant_bits < 1 || cfg->mant_bits > 23) {
    fprintf(stderr, "gemm: accum: mant_bits %d outside [1, 23]\n", cfg->mant_bits);
    return -1;
  }
  int pk = cfg->promo_k;
  if (pk < 0 || (pk > 0 && GEMM_BLOCK % pk != 0)) {
    fprintf(stderr, "gemm: accum: promo_k %d is not 0 or a divisor of %d\n", pk, GEMM_BLOCK);
    return -1;
  }
  if (pk == 0 && (!scales_uniform(a->scale, a->ld_scale, m, kblocks) || !scales_uniform(w->scale, w->ld_scale, nb, kblocks))) {
    fprintf(stderr, "gemm: accum: without promotion the scales must not vary along K\n");
    return -1;
  }
  int bits = cfg->mant_bits;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      const float *sa = a->scale + i * a->ld_scale, *sw = w->scale + (j / GEMM_BLOCK) * w->ld_scale;
      if (pk == 0) {
        double s = 0;
        for (int64_t kk = 0; kk < k; kk++) s = trunc_mant(s + (double)gemm_load(a, i, kk) * gemm_load(w, j, kk), bits);
        c[i * ldc + j] = (float)s * (sa[0] * sw[0]);
        continue;
      }
      float acc = 0;
      for (int64_t k0 = 0; k0 < k; k0 += pk) {
        int64_t k1 = k0 + pk < k ? k0 + pk : k, kb = k0 / GEMM_BLOCK;
        double s = 0;
        for (int64_t kk = k0; kk < k1; kk++) s = trunc_mant(s + (double)gemm_load(a, i, kk) * gemm_load(w, j, kk), bits);
        acc = fmaf((float)s, sa[kb] * sw[kb], acc);
      }
      c[i * ldc + j] = acc;
    }
  return 0;
}

/* splitmix64: the study's deterministic random numbers. */
static uint64_t sm64(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}
static double unif01(uint64_t *s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

int gemm_accum_study(FILE *out, int mant_bits, int promo_k, uint64_t seed) {
  if (mant_bits == 0) mant_bits = 14;
  if (promo_k == 0) promo_k = GEMM_BLOCK;
  const int64_t mn = 32, kmax = 16384, kbmax = kmax / GEMM_BLOCK;
  if (mant_bits < 1 || mant_bits > 23 || promo_k < 1 || GEMM_BLOCK % promo_k != 0) {
    fprintf(stderr, "gemm: accum study: mant_bits %d / promo_k %d out of range\n", mant_bits, promo_k);
    return -1;
  }
  /* Inputs: A and W of uniform(0, 1) reals, quantized per tensor to E4M3 (scale 1/448, so that 1.0
   * maps to 448); every K uses the first K columns of the same matrices. */
  fp8_t *a8 = malloc((size_t)(mn * kmax)), *w8 = malloc((size_t)(mn * kmax));
  float *sa = malloc((size_t)(mn * kbmax) * sizeof(float)), *sw = malloc((size_t)(kbmax) * sizeof(float));
  if (!a8 || !w8 || !sa || !sw) {
    free(a8), free(w8), free(sa), free(sw);
    fprintf(stderr, "gemm: accum study: out of memory\n");
    return -1;
  }
  uint64_t st = seed;
  for (int64_t i = 0; i < mn * kmax; i++) a8[i] = f32_to_fp8_e4m3((float)(unif01(&st) * FP8_E4M3_MAX));
  for (int64_t i = 0; i < mn * kmax; i++) w8[i] = f32_to_fp8_e4m3((float)(unif01(&st) * FP8_E4M3_MAX));
  for (int64_t i = 0; i < mn * kbmax; i++) sa[i] = 1.0f / FP8_E4M3_MAX;
  for (int64_t i = 0; i < kbmax; i++) sw[i] = 1.0f / FP8_E4M3_MAX;
  int rc = 0;
  if (fprintf(out,
              "# FP8 GEMM accumulation study: C = A W^T, %lldx%lld outputs, A and W uniform(0,1) quantized per tensor to E4M3;\n"
              "# running sum truncated to %d mantissa bits after each product; max relative error vs the exact product\n"
              "K,max_rel_err_no_promotion,max_rel_err_promotion_%d,ratio\n",
              (long long)mn, (long long)mn, mant_bits, promo_k) < 0)
    rc = -1;
  for (int64_t k = 128; rc == 0 && k <= kmax; k *= 2) {
    gemm_accum_cfg none = {mant_bits, 0}, promo = {mant_bits, promo_k};
    double e0 = 0, e1 = 0;
    /* The matrices have row stride kmax; views of the first k columns use ld = kmax. */
    gemm_mat am = {KN_FP8_E4M3, a8, kmax, sa, kbmax}, wm = {KN_FP8_E4M3, w8, kmax, sw, kbmax};
    float *c0 = malloc((size_t)(mn * mn) * sizeof(float)), *c1 = malloc((size_t)(mn * mn) * sizeof(float));
    float *x = malloc((size_t)(mn * mn) * sizeof(float));
    gemm_out xo = {KN_FP32, x, mn};
    if (!c0 || !c1 || !x || gemm_ref_fp8_accum(mn, mn, k, &am, &wm, &none, c0, mn) ||
        gemm_ref_fp8_accum(mn, mn, k, &am, &wm, &promo, c1, mn) || gemm_ref(mn, mn, k, &am, &wm, &xo, GEMM_EPI_NONE))
      rc = -1;
    for (int64_t i = 0; rc == 0 && i < mn * mn; i++) {
      double d = fabs((double)x[i]);
      double r0 = fabs((double)c0[i] - x[i]) / d, r1 = fabs((double)c1[i] - x[i]) / d;
      if (r0 > e0) e0 = r0;
      if (r1 > e1) e1 = r1;
    }
    free(c0), free(c1), free(x);
    if (rc == 0 && fprintf(out, "%lld,%.6f,%.6f,%.1f\n", (long long)k, e0, e1, e1 > 0 ? e0 / e1 : INFINITY) < 0) rc = -1;
  }
  free(a8), free(w8), free(sa), free(sw);
  return rc;
}
