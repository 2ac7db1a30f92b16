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

#include "cvt_bf16_avx512.h"
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
    if (out_bf16) _mm256_mask_storeu_epi16((bf16_t *)dst + j, m, cvt_bf16_avx512(x));
    else _mm512_mask_storeu_ps((float *)dst + j, m, x);
  }
}

/* In-register transpose of 16 rows of 16 32-bit words: out[c] = (r[0][c], ..., r[15][c]). */
static inline void transpose16(const __m512i r[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) { /* u[4i + j], lane l: column 4l + j of rows 4i..4i+3 */
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int j = 0; j < 4; j++) {
    __m512i a0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), a1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
    __m512i b0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), b1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    out[j] = _mm512_shuffle_i32x4(a0, b0, 0x88);
    out[8 + j] = _mm512_shuffle_i32x4(a0, b0, 0xdd);
    out[4 + j] = _mm512_shuffle_i32x4(a1, b1, 0x88);
    out[12 + j] = _mm512_shuffle_i32x4(a1, b1, 0xdd);
  }
}

/* BF16 activations, tiles of 12 to 16 rows: 16 K pairs per step, transposed in registers; each pair's
 * mr words go out with a full 64-byte store whose spare lanes the next pair's store overwrites
 * (a masked store is much slower here), except in the last step, which must not write past the
 * micro-panel. The tail and FP8 activations go through the portable packer. */
void gemm_pack_a_avx512(const void *src, int64_t ld, kn_dtype dt, int rows, int mr, int64_t k, int64_t kp,
                        uint32_t *dst, const bf16_t *lut) {
  if (dt != KN_BF16 || mr > 16 || mr < 12) { /* below 12 rows the transposes cost more than they save */
    gemm_pack_a_c(src, ld, dt, rows, mr, k, kp, dst, lut);
    return;
  }
  const bf16_t *s = src;
  int64_t kfull = k / 2, pv = kfull / 16 * 16;
  __mmask16 keep = (__mmask16)((1u << mr) - 1);
  for (int64_t p0 = 0; p0 < pv; p0 += 16) {
    __m512i r[16], out[16];
    for (int i = 0; i < 16; i++)
      r[i] = i < rows ? _mm512_loadu_si512((const void *)(s + i * ld + 2 * p0)) : _mm512_setzero_si512();
    transpose16(r, out);
    /* full stores while the spare lanes stay inside this micro-panel's next 16 pairs */
    int last = p0 + 16 >= kp;
    for (int p = 0; p < 16; p++) {
      if (last && (p0 + p) * mr + 16 > kp * mr) _mm512_mask_storeu_epi32(dst + (p0 + p) * mr, keep, out[p]);
      else _mm512_storeu_si512((void *)(dst + (p0 + p) * mr), out[p]);
    }
  }
  for (int i = 0; i < mr; i++) {
    const bf16_t *row = s + i * ld;
    for (int64_t p = pv; p < kp; p++) {
      uint32_t lo = i < rows && 2 * p < k ? row[2 * p] : 0, hi = i < rows && 2 * p + 1 < k ? row[2 * p + 1] : 0;
      dst[p * mr + i] = lo | hi << 16;
    }
  }
}

const gemm_impl gemm_impl_avx512_8x32 = {
    .mr = 8,
    .nv = 2,
    .ukr = {ROW8(2)},
    .decode = gemm_decode_fp8_c,
    .store = gemm_store_avx512,
    .pack_a = gemm_pack_a_avx512,
};
