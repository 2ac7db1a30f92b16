/* kernels/cpu/gemm_scalar.c — the portable micro-kernel (plain C, any CPU) and the portable FP8
 * strip decoder. It computes exactly what vdpbf16ps computes per K pair, in FP32 with separate
 * roundings (products of BF16 values are exact in FP32), so it is the fallback every other variant
 * is compared with, and what MOESIM_ISA=scalar runs. Tile 4 x 16 (one strip). */
#include <string.h>

#include "gemm_internal.h"

/* The generic tile: mr rows x nv strips, K pairs accumulated in FP32. */
static inline void ukr_scalar(int mr, int nv, int64_t kp, const uint32_t *a, int64_t a_stride, const bf16_t *b,
                              int64_t b_stride, float *ws, int64_t ldws, const float *srow, const float *sstrip,
                              int flags) {
  float acc[4][16 * GEMM_NV_MAX];
  memset(acc, 0, sizeof acc);
  for (int64_t p = 0; p < kp; p++) {
    for (int i = 0; i < mr; i++) {
      uint32_t pr = a[p * a_stride + i];
      float a0 = kn_bits_f32(pr << 16), a1 = kn_bits_f32(pr & 0xffff0000u);
      for (int v = 0; v < nv; v++) {
        const bf16_t *bp = b + v * b_stride + p * GEMM_PS;
        for (int j = 0; j < 16; j++) {
          float t = acc[i][16 * v + j];
          t += a1 * bf16_to_f32(bp[2 * j + 1]); /* odd element first, as vdpbf16ps */
          t += a0 * bf16_to_f32(bp[2 * j]);
          acc[i][16 * v + j] = t;
        }
      }
    }
  }
  for (int i = 0; i < mr; i++)
    for (int v = 0; v < nv; v++)
      for (int j = 0; j < 16; j++) {
        float r = acc[i][16 * v + j];
        if (srow) r *= srow[i] * sstrip[v];
        float *o = &ws[i * ldws + 16 * v + j];
        *o = (flags & GEMM_UKR_FIRST) ? r : *o + r;
      }
}

#define UKR_DEF(MR, NV)                                                                                     \
  static void ukr_scalar_##MR##x##NV(int64_t kp, const uint32_t *a, int64_t as, const bf16_t *b, int64_t bs, \
                                     float *ws, int64_t ldws, const float *sr, const float *ss, int flags) { \
    ukr_scalar(MR, NV, kp, a, as, b, bs, ws, ldws, sr, ss, flags);                                          \
  }
UKR_DEF(1, 1)
UKR_DEF(2, 1)
UKR_DEF(3, 1)
UKR_DEF(4, 1)

void gemm_decode_fp8_c(int64_t quads, const fp8_t *src, bf16_t *dst, const gemm_fp8_lut *t) {
  const bf16_t *lut = t->bf16;
  for (int64_t q = 0; q < quads; q++, src += 64 * GEMM_GROUP, dst += 2 * GEMM_PS)
    for (int lane = 0; lane < 4; lane++)
      for (int h = 0; h < 2; h++)
        for (int i = 0; i < 8; i++) dst[h * GEMM_PS + 8 * lane + i] = lut[src[16 * lane + 8 * h + i]];
}

void gemm_pack_a_c(const void *src, int64_t ld, kn_dtype dt, int rows, int mr, int64_t k, int64_t kp, uint32_t *dst,
                   const bf16_t *lut) {
  int64_t kfull = k / 2; /* pairs with both elements inside K */
  for (int i = 0; i < rows; i++) {
    if (dt == KN_BF16) {
      const bf16_t *s = (const bf16_t *)src + i * ld;
      for (int64_t p = 0; p < kfull; p++) {
        uint32_t w;
        memcpy(&w, s + 2 * p, 4);
        dst[p * mr + i] = w;
      }
      for (int64_t p = kfull; p < kp; p++) dst[p * mr + i] = 2 * p < k ? s[2 * p] : 0;
    } else {
      const fp8_t *s = (const fp8_t *)src + i * ld;
      for (int64_t p = 0; p < kfull; p++) dst[p * mr + i] = lut[s[2 * p]] | (uint32_t)lut[s[2 * p + 1]] << 16;
      for (int64_t p = kfull; p < kp; p++) dst[p * mr + i] = 2 * p < k ? lut[s[2 * p]] : 0;
    }
  }
  for (int i = rows; i < mr; i++)
    for (int64_t p = 0; p < kp; p++) dst[p * mr + i] = 0;
}

void gemm_store_c(const float *g, const float *u, int64_t n, void *dst, int out_bf16, int swiglu) {
  for (int64_t j = 0; j < n; j++) {
    float x = swiglu ? gemm_silu_mul(g[j], u[j]) : g[j];
    if (out_bf16) ((bf16_t *)dst)[j] = f32_to_bf16(x);
    else ((float *)dst)[j] = x;
  }
}

const gemm_impl gemm_impl_scalar_4x16 = {
    .mr = 4,
    .nv = 1,
    .ukr = {ukr_scalar_1x1, ukr_scalar_2x1, ukr_scalar_3x1, ukr_scalar_4x1},
    .decode = gemm_decode_fp8_c,
    .store = gemm_store_c,
    .pack_a = gemm_pack_a_c,
};
