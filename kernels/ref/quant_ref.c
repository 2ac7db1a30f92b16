/* kernels/ref/quant_ref.c — the plain-C quantizers: the truth for every FP8 quantization backend
 * (formulas and stated NaN/Inf behaviour in kernels/quant.h). Written for clarity: one tile at a
 * time, amax first, then the scaled conversion with kernels/dtype.h's scalar encoders. */
#include <math.h>

#include "quant.h"

/* max |x| over the finite values of a strided 2-D tile given as a float fetcher. */
static float amax_f32(const float *x, int64_t rows, int64_t cols, int64_t ld) {
  float a = 0.0f;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      float v = fabsf(x[r * ld + c]);
      if (isfinite(v) && v > a) a = v;
    }
  return a;
}

static float amax_bf16(const bf16_t *x, int64_t rows, int64_t cols, int64_t ld) {
  float a = 0.0f;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      float v = fabsf(bf16_to_f32(x[r * ld + c]));
      if (isfinite(v) && v > a) a = v;
    }
  return a;
}

static void token_f32(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  int64_t nt = quant_tiles(k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t t = 0; t < nt; t++) {
      int64_t c0 = t * QUANT_TILE, w = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
      const float *xt = x + i * k + c0;
      float s = quant_scale_of(amax_f32(xt, 1, w, k), fmt, pow2);
      float inv = 1.0f / s;
      for (int64_t c = 0; c < w; c++) q[i * k + c0 + c] = f32_to_fp8(xt[c] * inv, fmt);
      scales[i * nt + t] = s;
    }
}

static void token_bf16(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  int64_t nt = quant_tiles(k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t t = 0; t < nt; t++) {
      int64_t c0 = t * QUANT_TILE, w = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
      const bf16_t *xt = x + i * k + c0;
      float s = quant_scale_of(amax_bf16(xt, 1, w, k), fmt, pow2);
      float inv = 1.0f / s;
      for (int64_t c = 0; c < w; c++) q[i * k + c0 + c] = f32_to_fp8(bf16_to_f32(xt[c]) * inv, fmt);
      scales[i * nt + t] = s;
    }
}

static void block_f32(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  int64_t nbr = quant_tiles(n), nbc = quant_tiles(k);
  for (int64_t br = 0; br < nbr; br++)
    for (int64_t bc = 0; bc < nbc; bc++) {
      int64_t r0 = br * QUANT_TILE, c0 = bc * QUANT_TILE;
      int64_t rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;
      int64_t cols = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
      const float *wb = w + r0 * k + c0;
      float s = quant_scale_of(amax_f32(wb, rows, cols, k), fmt, pow2);
      float inv = 1.0f / s;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) q[(r0 + r) * k + c0 + c] = f32_to_fp8(wb[r * k + c] * inv, fmt);
      scales[br * nbc + bc] = s;
    }
}

static void block_bf16(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  int64_t nbr = quant_tiles(n), nbc = quant_tiles(k);
  for (int64_t br = 0; br < nbr; br++)
    for (int64_t bc = 0; bc < nbc; bc++) {
      int64_t r0 = br * QUANT_TILE, c0 = bc * QUANT_TILE;
      int64_t rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;
      int64_t cols = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
      const bf16_t *wb = w + r0 * k + c0;
      float s = quant_scale_of(amax_bf16(wb, rows, cols, k), fmt, pow2);
      float inv = 1.0f / s;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
          q[(r0 + r) * k + c0 + c] = f32_to_fp8(bf16_to_f32(wb[r * k + c]) * inv, fmt);
      scales[br * nbc + bc] = s;
    }
}

static void dequant_token(const fp8_t *q, const float *scales, int64_t m, int64_t k, kn_dtype fmt,
                          float *out) {
  int64_t nt = quant_tiles(k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t c = 0; c < k; c++)
      out[i * k + c] = fp8_to_f32(q[i * k + c], fmt) * scales[i * nt + c / QUANT_TILE];
}

static void dequant_block(const fp8_t *q, const float *scales, int64_t n, int64_t k, kn_dtype fmt,
                          float *out) {
  int64_t nbc = quant_tiles(k);
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < k; c++)
      out[r * k + c] = fp8_to_f32(q[r * k + c], fmt) * scales[(r / QUANT_TILE) * nbc + c / QUANT_TILE];
}

static const quant_kernels quant_ref_kernels = {
    "ref", token_f32, token_bf16, block_f32, block_bf16, dequant_token, dequant_block,
};

const quant_kernels *quant_ref(void) { return &quant_ref_kernels; }

const quant_kernels *quant_backend(cpu_level level) {
  cpu_level best = cpu_isa_best();
  if (level > best) return NULL;
  switch (level) {
  case CPU_SCALAR: return &quant_ref_kernels;
  case CPU_AVX2: return &quant_avx2_kernels;
  case CPU_AVX512:
  case CPU_AVX512BF16: return &quant_avx512_kernels;
  }
  return NULL;
}

const quant_kernels *quant_best(void) { return quant_backend(cpu_isa_best()); }
