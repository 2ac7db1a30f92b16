/* kernels/cpu/gemm_avx512.c — AVX-512F micro-kernels for CPUs without AVX512_BF16, and the AVX-512
 * epilogue (FP32 tile -> FP32/BF16/SwiGLU rows) that the BF16 variants share.
 *
 * Without vdpbf16ps a K pair is two FP32 FMAs: the BF16 words of the packed weights become FP32 by
 * a 16-bit shift (even K) or a mask (odd K), and so do the activation pairs. The odd product is
 * added first, then the even one, exactly as vdpbf16ps orders them; products of BF16 values are
 * exact in FP32, so the results equal the scalar variant's bit for bit (subnormals aside, which
 * vdpbf16ps flushes and FMA keeps). Tile 8 x 32: 16 accumulators, 4 weight vectors, 2 activation.
 *
 * The epilogue rounds to BF16 with integer arithmetic identical to f32_to_bf16 (round to nearest
 * even, NaN kept quiet) and computes SwiGLU with a polynomial exp (relative error ~2e-7). */
#include <immintrin.h>
#include <math.h>

#include "gemm_internal.h"

#define UNROLL _Pragma("GCC unroll 16")

static inline __attribute__((always_inline)) void ukr_f32(const int mr, const int nv, int64_t kp, const uint32_t *a,
                                                          int64_t as, const bf16_t *b, int64_t bs, float *ws,
                                                          int64_t ldws, const float *srow, const float *sstrip,
                                                          int flags) {
  const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
  __m512 acc[GEMM_MR_MAX][GEMM_NV_MAX];
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++) {
    __m512 be[GEMM_NV_MAX], bo[GEMM_NV_MAX];
    UNROLL for (int v = 0; v < nv; v++) {
      __m512i w = _mm512_load_si512((const void *)(b + v * bs + p * GEMM_PS));
      be[v] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
      bo[v] = _mm512_castsi512_ps(_mm512_and_si512(w, hi_mask));
    }
    const uint32_t *ap = a + p * as;
    UNROLL for (int i = 0; i < mr; i++) {
      __m512i aw = _mm512_set1_epi32((int)ap[i]);
      __m512 ae = _mm512_castsi512_ps(_mm512_slli_epi32(aw, 16)), ao = _mm512_castsi512_ps(_mm512_and_si512(aw, hi_mask));
      UNROLL for (int v = 0; v < nv; v++) {
        acc[i][v] = _mm512_fmadd_ps(ao, bo[v], acc[i][v]);
        acc[i][v] = _mm512_fmadd_ps(ae, be[v], acc[i][v]);
      }
    }
  }
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) {
    __m512 r = acc[i][v];
    if (srow) r = _mm512_mul_ps(r, _mm512_set1_ps(srow[i] * sstrip[v]));
    float *o = ws + i * ldws + 16 * v;
    if (!(flags & GEMM_UKR_FIRST)) r = _mm512_add_ps(r, _mm512_load_ps(o));
    _mm512_store_ps(o, r);
  }
}

#define UKR(MR, NV)                                                                                          \
  static void ukr_##MR##x##NV(int64_t kp, const uint32_t *a, int64_t as, const bf16_t *b, int64_t bs, float *ws, \
                              int64_t ldws, const float *sr, const float *ss, int flags) {                   \
    ukr_f32(MR, NV, kp, a, as, b, bs, ws, ldws, sr, ss, flags);                                              \
  }
#define UKR_ROWS(NV) UKR(1, NV) UKR(2, NV) UKR(3, NV) UKR(4, NV) UKR(5, NV) UKR(6, NV) UKR(7, NV) UKR(8, NV)
UKR_ROWS(2)
#define ROW8(NV) ukr_1x##NV, ukr_2x##NV, ukr_3x##NV, ukr_4x##NV, ukr_5x##NV, ukr_6x##NV, ukr_7x##NV, ukr_8x##NV

/* 16 floats -> 16 BF16 words, exactly as f32_to_bf16. */
static inline __m256i cvt_bf16(__m512 x) {
  __m512i u = _mm512_castps_si512(x);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  __mmask16 nan = _mm512_cmp_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000),
                                        _MM_CMPINT_NLE);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

/* exp(x) for 16 lanes: 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], degree-6 Taylor polynomial. */
static inline __m512 exp16(__m512 x) {
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  /* scalef handles overflow to inf and underflow to 0; NaN stays NaN */
  return _mm512_scalef_ps(p, n);
}

static inline __m512 silu_mul16(__m512 g, __m512 u) {
  __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

void gemm_store_avx512(const float *g, const float *u, int64_t n, void *dst, int out_bf16, int swiglu) {
  int64_t j = 0;
  for (; j < n; j += 16) {
    __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
    __m512 x = _mm512_maskz_loadu_ps(m, g + j);
    if (swiglu) x = silu_mul16(x, _mm512_maskz_loadu_ps(m, u + j));
    if (out_bf16) _mm256_mask_storeu_epi16((bf16_t *)dst + j, m, cvt_bf16(x));
    else _mm512_mask_storeu_ps((float *)dst + j, m, x);
  }
}

const gemm_impl gemm_impl_avx512_8x32 = {
    .mr = 8,
    .nv = 2,
    .ukr = {ROW8(2)},
    .decode = gemm_decode_fp8_c,
    .store = gemm_store_avx512,
    .pack_a = gemm_pack_a_c,
};
