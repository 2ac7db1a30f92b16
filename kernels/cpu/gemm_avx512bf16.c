/* kernels/cpu/gemm_avx512bf16.c — AVX-512 BF16 micro-kernels (vdpbf16ps) and the AVX-512 FP8
 * strip decoder. Compiled with -mavx512bf16; reached only through the registry after CPUID says
 * the CPU has AVX512_BF16 (gemm_variant.supported).
 *
 * Register tile MR x (16 NV): MR * NV accumulators of 16 FP32, NV weight vectors per K pair,
 * and the activation pair of each row broadcast from the packed micro-panel; each vdpbf16ps adds
 * two products per lane. 14 x 32 (28 accumulators + 2 weight vectors) keeps 2 FMA pipes busy
 * with a 4-cycle latency many times over; 6 x 64 halves the activation broadcasts per FLOP and
 * suits short M. Edge tiles (fewer rows or strips) are the same code instantiated smaller.
 *
 * The FP8 decoder turns 64 FP8 bytes into 64 BF16 words with two 128-entry byte lookups
 * (vpermi2b: high and low byte of the BF16 code of the magnitude), the sign OR-ed back into the
 * high byte, and two in-lane byte interleaves — the packed FP8 order makes those interleaves land
 * each word where the BF16 strip layout wants it (see gemm_internal.h). */
#include <immintrin.h>

#include "gemm_internal.h"

#define UNROLL _Pragma("GCC unroll 16")

static inline __attribute__((always_inline)) void ukr_bf16(const int mr, const int nv, int64_t kp, const uint32_t *a,
                                                           int64_t as, const bf16_t *b, int64_t bs, float *ws,
                                                           int64_t ldws, const float *srow, const float *sstrip,
                                                           int first) {
  __m512 acc[GEMM_MR_MAX][GEMM_NV_MAX];
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; p++) {
    __m512bh bv[GEMM_NV_MAX];
    UNROLL for (int v = 0; v < nv; v++) bv[v] = (__m512bh)_mm512_load_si512((const void *)(b + v * bs + p * 32));
    const uint32_t *ap = a + p * as;
#ifdef GEMM_PF_A
    _mm_prefetch((const char *)(ap + GEMM_PF_A * as), _MM_HINT_T0);
#endif
    UNROLL for (int i = 0; i < mr; i++) {
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[i]);
      UNROLL for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
    }
  }
  UNROLL for (int i = 0; i < mr; i++) {
    __m512 rs = srow ? _mm512_set1_ps(srow[i]) : _mm512_setzero_ps();
    UNROLL for (int v = 0; v < nv; v++) {
      __m512 r = acc[i][v];
      if (srow) r = _mm512_mul_ps(r, _mm512_mul_ps(rs, _mm512_set1_ps(sstrip[v])));
      float *o = ws + i * ldws + 16 * v;
      if (!first) r = _mm512_add_ps(r, _mm512_load_ps(o));
      _mm512_store_ps(o, r);
    }
  }
}

#define UKR(MR, NV)                                                                                          \
  static void ukr_##MR##x##NV(int64_t kp, const uint32_t *a, int64_t as, const bf16_t *b, int64_t bs, float *ws, \
                              int64_t ldws, const float *sr, const float *ss, int first) {                   \
    ukr_bf16(MR, NV, kp, a, as, b, bs, ws, ldws, sr, ss, first);                                             \
  }
#define UKR_ROWS6(NV) UKR(1, NV) UKR(2, NV) UKR(3, NV) UKR(4, NV) UKR(5, NV) UKR(6, NV)
#define UKR_ROWS14(NV) UKR(7, NV) UKR(8, NV) UKR(9, NV) UKR(10, NV) UKR(11, NV) UKR(12, NV) UKR(13, NV) UKR(14, NV)
UKR_ROWS6(1)
UKR_ROWS6(2)
UKR_ROWS6(3)
UKR_ROWS6(4)
UKR_ROWS14(1)
UKR_ROWS14(2)

#define ROW6(NV) ukr_1x##NV, ukr_2x##NV, ukr_3x##NV, ukr_4x##NV, ukr_5x##NV, ukr_6x##NV
#define ROW14(NV) ROW6(NV), ukr_7x##NV, ukr_8x##NV, ukr_9x##NV, ukr_10x##NV, ukr_11x##NV, ukr_12x##NV, ukr_13x##NV, ukr_14x##NV

/* FP8 -> BF16 by two 128-entry byte tables built from `lut` (the magnitude's BF16 code). Needs
 * AVX512_VBMI besides AVX512_BF16 (every CPU with AVX512_BF16 so far has it; checked anyway). */
__attribute__((target("avx512vbmi"))) static void decode_fp8_vbmi(int64_t quads, const fp8_t *src, bf16_t *dst, const bf16_t *lut) {
  uint8_t hi[128] __attribute__((aligned(64))), lo[128] __attribute__((aligned(64)));
  for (int x = 0; x < 128; x++) {
    hi[x] = (uint8_t)(lut[x] >> 8);
    lo[x] = (uint8_t)(lut[x] & 0xff);
  }
  __m512i h0 = _mm512_load_si512(hi), h1 = _mm512_load_si512(hi + 64);
  __m512i l0 = _mm512_load_si512(lo), l1 = _mm512_load_si512(lo + 64);
  const __m512i sign = _mm512_set1_epi8((char)0x80);
  for (int64_t q = 0; q < quads; q++) {
    __m512i x = _mm512_loadu_si512((const void *)(src + 64 * q));
    __m512i hb = _mm512_permutex2var_epi8(h0, x, h1); /* index bits 0-6 select; bit 7 ignored */
    __m512i lb = _mm512_permutex2var_epi8(l0, x, l1);
    hb = _mm512_ternarylogic_epi32(hb, x, sign, 0xf8); /* hb | (x & 0x80) */
    _mm512_store_si512((void *)(dst + 64 * q), _mm512_unpacklo_epi8(lb, hb));
    _mm512_store_si512((void *)(dst + 64 * q + 32), _mm512_unpackhi_epi8(lb, hb));
  }
}

static void decode_fp8_avx512(int64_t quads, const fp8_t *src, bf16_t *dst, const bf16_t *lut) {
  static int vbmi = -1; /* racy but idempotent: every thread computes the same value */
  if (vbmi < 0) vbmi = __builtin_cpu_supports("avx512vbmi") ? 1 : 0;
  if (vbmi) decode_fp8_vbmi(quads, src, dst, lut);
  else gemm_decode_fp8_c(quads, src, dst, lut);
}

const gemm_impl gemm_impl_avx512bf16_14x32 = {
    .mr = 14,
    .nv = 2,
    .ukr = {{ROW14(1)}, {ROW14(2)}},
    .decode = decode_fp8_avx512,
    .store = gemm_store_avx512,
};

const gemm_impl gemm_impl_avx512bf16_6x64 = {
    .mr = 6,
    .nv = 4,
    .ukr = {{ROW6(1)}, {ROW6(2)}, {ROW6(3)}, {ROW6(4)}},
    .decode = decode_fp8_avx512,
    .store = gemm_store_avx512,
};
