/* kernels/ref/gemm_ref.c — the plain-C truth for every GEMM of kernels/gemm.h.
 *
 * Straight loops over unpacked operands: each product a*w is exact in double (BF16 and FP8 values
 * have at most 8 significant bits), partial sums are kept in double per 128-wide K block, scaled by
 * the block's two FP32 scales and summed in double, and the result is rounded once to the output
 * dtype. Slow on purpose; the fast paths are validated against it. Argument checking shared with
 * the fast paths lives here too (gemm_check_mat / gemm_check_out), so both reject the same calls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gemm.h"
#include "gemm_internal.h"

static int is_fp8(kn_dtype t) { return t == KN_FP8_E4M3 || t == KN_FP8_E5M2; }

int gemm_check_mat(const char *what, const gemm_mat *x, int64_t rows, int64_t cols, int64_t srows) {
  if (!x || (rows > 0 && !x->data)) {
    fprintf(stderr, "gemm: %s: no data\n", what);
    return -1;
  }
  if (x->dtype != KN_BF16 && !is_fp8(x->dtype)) {
    fprintf(stderr, "gemm: %s: dtype %s is not bf16, fp8_e4m3 or fp8_e5m2\n", what, kn_dtype_name(x->dtype));
    return -1;
  }
  if (x->ld < cols) {
    fprintf(stderr, "gemm: %s: ld %lld < %lld columns\n", what, (long long)x->ld, (long long)cols);
    return -1;
  }
  if (is_fp8(x->dtype)) {
    int64_t kb = (cols + GEMM_BLOCK - 1) / GEMM_BLOCK;
    if (srows > 0 && !x->scale) {
      fprintf(stderr, "gemm: %s: fp8 operand without scales\n", what);
      return -1;
    }
    if (x->ld_scale < kb) {
      fprintf(stderr, "gemm: %s: ld_scale %lld < %lld K blocks\n", what, (long long)x->ld_scale, (long long)kb);
      return -1;
    }
  }
  return 0;
}

int gemm_check_out(const gemm_out *c, int64_t rows, int64_t cols) {
  if (!c || (rows > 0 && !c->data)) {
    fprintf(stderr, "gemm: output: no data\n");
    return -1;
  }
  if (c->dtype != KN_FP32 && c->dtype != KN_BF16) {
    fprintf(stderr, "gemm: output: dtype %s is not fp32 or bf16\n", kn_dtype_name(c->dtype));
    return -1;
  }
  if (c->ld < cols) {
    fprintf(stderr, "gemm: output: ld %lld < %lld columns\n", (long long)c->ld, (long long)cols);
    return -1;
  }
  return 0;
}

int gemm_check_pair(kn_dtype a, kn_dtype w) {
  if ((a == KN_BF16) != (w == KN_BF16)) {
    fprintf(stderr, "gemm: activations are %s but weights are %s (bf16 pairs with bf16, fp8 with fp8)\n",
            kn_dtype_name(a), kn_dtype_name(w));
    return -1;
  }
  return 0;
}

int gemm_check_epi(gemm_epi epi, int64_t n) {
  if (epi != GEMM_EPI_NONE && epi != GEMM_EPI_SWIGLU) {
    fprintf(stderr, "gemm: unknown epilogue %d\n", (int)epi);
    return -1;
  }
  if (epi == GEMM_EPI_SWIGLU && n % 2 != 0) {
    fprintf(stderr, "gemm: swiglu epilogue needs an even N (gate and up halves), got %lld\n", (long long)n);
    return -1;
  }
  return 0;
}

float gemm_load(const gemm_mat *x, int64_t r, int64_t c) {
  if (x->dtype == KN_BF16) return bf16_to_f32(((const bf16_t *)x->data)[r * x->ld + c]);
  return fp8_to_f32(((const fp8_t *)x->data)[r * x->ld + c], x->dtype);
}

void gemm_store(const gemm_out *c, int64_t r, int64_t col, float v) {
  if (c->dtype == KN_FP32) ((float *)c->data)[r * c->ld + col] = v;
  else ((bf16_t *)c->data)[r * c->ld + col] = f32_to_bf16(v);
}

float gemm_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* The exact (double) value of (A W^T)[i][j]: per-block partial sums times the block scales. */
static double ref_dot(const gemm_mat *a, const gemm_mat *w, int64_t k, int64_t i, int64_t j) {
  double sum = 0;
  for (int64_t k0 = 0; k0 < k; k0 += GEMM_BLOCK) {
    int64_t k1 = k0 + GEMM_BLOCK < k ? k0 + GEMM_BLOCK : k;
    double part = 0;
    for (int64_t kk = k0; kk < k1; kk++) part += (double)gemm_load(a, i, kk) * (double)gemm_load(w, j, kk);
    if (is_fp8(a->dtype)) {
      int64_t kb = k0 / GEMM_BLOCK;
      part *= (double)a->scale[i * a->ld_scale + kb] * (double)w->scale[(j / GEMM_BLOCK) * w->ld_scale + kb];
    }
    sum += part;
  }
  return sum;
}

int gemm_ref(int64_t m, int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w, const gemm_out *c, gemm_epi epi) {
  int64_t nb = (n + GEMM_BLOCK - 1) / GEMM_BLOCK;
  if (m < 0 || n < 1 || k < 1) {
    fprintf(stderr, "gemm: bad shape m=%lld n=%lld k=%lld\n", (long long)m, (long long)n, (long long)k);
    return -1;
  }
  if (gemm_check_mat("activations", a, m, k, m) || gemm_check_mat("weights", w, n, k, nb) ||
      gemm_check_pair(a->dtype, w->dtype) || gemm_check_epi(epi, n) ||
      gemm_check_out(c, m, epi == GEMM_EPI_SWIGLU ? n / 2 : n))
    return -1;
  if (epi == GEMM_EPI_SWIGLU) {
    int64_t half = n / 2;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < half; j++) {
        double g = ref_dot(a, w, k, i, j), u = ref_dot(a, w, k, i, half + j);
        gemm_store(c, i, j, (float)(g / (1.0 + exp(-g)) * u));
      }
    return 0;
  }
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) gemm_store(c, i, j, (float)ref_dot(a, w, k, i, j));
  return 0;
}

/* A view of rows [r0, ...) of an operand or output. */
gemm_mat gemm_mat_rows(const gemm_mat *x, int64_t r0) {
  gemm_mat v = *x;
  size_t esz = x->dtype == KN_BF16 ? 2 : 1;
  v.data = (const char *)x->data + (size_t)(r0 * x->ld) * esz;
  if (x->scale) v.scale = x->scale + r0 * x->ld_scale;
  return v;
}

gemm_out gemm_out_rows(const gemm_out *c, int64_t r0) {
  gemm_out v = *c;
  size_t esz = c->dtype == KN_FP32 ? 4 : 2;
  v.data = (char *)c->data + (size_t)(r0 * c->ld) * esz;
  return v;
}

int gemm_ref_grouped_contig(int groups, const int64_t *rows, int64_t n, int64_t k, const gemm_mat *a,
                            const gemm_mat *w, const gemm_out *c, gemm_epi epi) {
  int64_t off = 0;
  for (int g = 0; g < groups; g++) {
    if (rows[g] < 0) {
      fprintf(stderr, "gemm: group %d: negative row count %lld\n", g, (long long)rows[g]);
      return -1;
    }
    gemm_mat ag = gemm_mat_rows(a, off);
    gemm_out cg = gemm_out_rows(c, off);
    if (gemm_ref(rows[g], n, k, &ag, &w[g], &cg, epi)) return -1;
    off += rows[g];
  }
  return 0;
}

int gemm_ref_grouped_masked(int groups, int64_t slots, const int64_t *valid, int64_t n, int64_t k,
                            const gemm_mat *a, const gemm_mat *w, const gemm_out *c, gemm_epi epi) {
  for (int g = 0; g < groups; g++) {
    if (valid[g] < 0 || valid[g] > slots) {
      fprintf(stderr, "gemm: group %d: valid rows %lld outside [0, %lld]\n", g, (long long)valid[g], (long long)slots);
      return -1;
    }
    gemm_mat ag = gemm_mat_rows(a, (int64_t)g * slots);
    gemm_out cg = gemm_out_rows(c, (int64_t)g * slots);
    if (gemm_ref(valid[g], n, k, &ag, &w[g], &cg, epi)) return -1;
  }
  return 0;
}
