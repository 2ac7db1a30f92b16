/* kernels/cpu/gemm_avx512bf16.c — AVX-512 BF16 micro-kernels (vdpbf16ps) and the AVX-512 FP8
 * strip decoder. Compiled with -mavx512bf16; reached only through the registry after CPUID says
 * the CPU has AVX512_BF16 (gemm_variant.supported).
 *
 * Register tile MR x (16 NV): MR * NV accumulators of 16 FP32, NV weight vectors per K pair,
 * and the activation pair of each row broadcast from the packed micro-panel; each vdpbf16ps adds
 * two products per lane. 14 x 32 (28 accumulators + 2 weight vectors) keeps 2 FMA pipes busy
 * with the instruction's latency many times over; 6 x 64 halves the packed-activation traffic per
 * FLOP (it streams from L3 for big K). Edge tiles
 * (fewer rows or strips) are the same code instantiated smaller. The first row tile of each weight
 * block streams the weights from memory and prefetches them GEMM_PF_PAIRS pairs ahead. For short M
 * the FP8 kernels decode in registers (ukr8); otherwise a 128-deep block of FP8 weights is decoded
 * once into an L1 buffer and shared by all row tiles.
 *
 * The FP8 decoder turns 64 FP8 bytes into 64 BF16 words with two 128-entry byte lookups
 * (vpermi2b: high and low byte of the BF16 code of the magnitude), the sign OR-ed back into the
 * high byte, and two in-lane byte interleaves — the packed FP8 order makes those interleaves land
 * each word where the BF16 strip layout wants it (see gemm_internal.h). */
#include <immintrin.h>

#include "cvt_bf16_avx512.h"
#include "gemm_internal.h"

#define UNROLL _Pragma("GCC unroll 16")
#ifndef GEMM_PF_PAIRS
#define GEMM_PF_PAIRS 64 /* software prefetch distance for streamed weights, in K pairs (4 KiB per strip) */
#endif

/* The K loop of a BF16 tile; PF: prefetch the weights GEMM_PF_PAIRS pairs ahead (cold block). The
 * activation pair of row i at pair p is AROW(i)[p * APS]: packed micro-panels (row pointers one
 * word apart, pairs `as` words apart) or row-major BF16 rows (row pointers `as` words apart). */
#define BF16_LOOP(PF, APS)                                                                                      \
  for (int64_t p = 0; p < kp; p++) {                                                                            \
    __m512bh bv[GEMM_NV_MAX];                                                                                   \
    UNROLL for (int v = 0; v < nv; v++) bv[v] = (__m512bh)_mm512_load_si512((const void *)(b + v * bs + p * GEMM_PS)); \
    if (PF) UNROLL for (int v = 0; v < nv; v++)                                                                 \
      _mm_prefetch((const char *)(b + v * bs + (p + GEMM_PF_PAIRS) * GEMM_PS), _MM_HINT_T1);                     \
    UNROLL for (int i = 0; i < mr; i++) {                                                                       \
      __m512bh av = (__m512bh)_mm512_set1_epi32((int)arow[i][p * (APS)]);                                       \
      UNROLL for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);                   \
    }                                                                                                           \
  }

/* The K loop of an mr x nv tile into acc (zeroed first). */
static inline __attribute__((always_inline)) void tile_sum(const int mr, const int nv, int64_t kp, const uint32_t *a,
                                                           int64_t as, const bf16_t *b, int64_t bs, int flags,
                                                           __m512 acc[GEMM_MR_MAX][GEMM_NV_MAX]) {
  const uint32_t *arow[GEMM_MR_MAX];
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
  if (flags & GEMM_UKR_ROWMAJOR) {
    UNROLL for (int i = 0; i < mr; i++) arow[i] = a + i * as;
    if (flags & GEMM_UKR_PF) BF16_LOOP(1, 1) else BF16_LOOP(0, 1)
  } else {
    UNROLL for (int i = 0; i < mr; i++) arow[i] = a + i;
    if (flags & GEMM_UKR_PF) BF16_LOOP(1, as) else BF16_LOOP(0, as)
  }
}


static inline __attribute__((always_inline)) void ukr_bf16_out(const int mr, const int nv, int64_t kp,
                                                               const uint32_t *a, int64_t as, const bf16_t *b,
                                                               int64_t bs, const float *ws, int64_t ldws, void *c,
                                                               int64_t ldc, int flags) {
  __m512 acc[GEMM_MR_MAX][GEMM_NV_MAX];
  tile_sum(mr, nv, kp, a, as, b, bs, flags, acc);
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) {
    __m512 r = acc[i][v];
    if (!(flags & GEMM_UKR_FIRST)) r = _mm512_add_ps(r, _mm512_load_ps(ws + i * ldws + 16 * v));
    if (flags & GEMM_UKR_CBF16) _mm256_storeu_si256((__m256i *)((bf16_t *)c + i * ldc + 16 * v), cvt_bf16_avx512(r));
    else _mm512_storeu_ps((float *)c + i * ldc + 16 * v, r);
  }
}

static inline __attribute__((always_inline)) void ukr_bf16(const int mr, const int nv, int64_t kp, const uint32_t *a,
                                                           int64_t as, const bf16_t *b, int64_t bs, float *ws,
                                                           int64_t ldws, const float *srow, const float *sstrip,
                                                           int flags) {
  __m512 acc[GEMM_MR_MAX][GEMM_NV_MAX];
  tile_sum(mr, nv, kp, a, as, b, bs, flags, acc);
  UNROLL for (int i = 0; i < mr; i++) {
    __m512 rs = srow ? _mm512_set1_ps(srow[i]) : _mm512_setzero_ps();
    UNROLL for (int v = 0; v < nv; v++) {
      __m512 r = acc[i][v];
      if (srow) r = _mm512_mul_ps(r, _mm512_mul_ps(rs, _mm512_set1_ps(sstrip[v])));
      float *o = ws + i * ldws + 16 * v;
      if (!(flags & GEMM_UKR_FIRST)) r = _mm512_add_ps(r, _mm512_load_ps(o));
      _mm512_store_ps(o, r);
    }
  }
}

#define UKR(MR, NV)                                                                                          \
  static void ukr_##MR##x##NV(int64_t kp, const uint32_t *a, int64_t as, const bf16_t *b, int64_t bs, float *ws, \
                              int64_t ldws, const float *sr, const float *ss, int flags) {                   \
    ukr_bf16(MR, NV, kp, a, as, b, bs, ws, ldws, sr, ss, flags);                                             \
  }
#define UKO(MR, NV)                                                                                              \
  static void uko_##MR##x##NV(int64_t kp, const uint32_t *a, int64_t as, const bf16_t *b, int64_t bs, const float *ws, \
                              int64_t ldws, void *c, int64_t ldc, int flags) {                                    \
    ukr_bf16_out(MR, NV, kp, a, as, b, bs, ws, ldws, c, ldc, flags);                                             \
  }
#define UKO_ROWS6(NV) UKO(1, NV) UKO(2, NV) UKO(3, NV) UKO(4, NV) UKO(5, NV) UKO(6, NV)
#define UKO_ROWS14(NV) UKO(7, NV) UKO(8, NV) UKO(9, NV) UKO(10, NV) UKO(11, NV) UKO(12, NV) UKO(13, NV) UKO(14, NV)
UKO_ROWS6(4)
UKO_ROWS6(2)
UKO_ROWS14(2)
#define ROWO6(NV) uko_1x##NV, uko_2x##NV, uko_3x##NV, uko_4x##NV, uko_5x##NV, uko_6x##NV
#define ROWO14(NV) ROWO6(NV), uko_7x##NV, uko_8x##NV, uko_9x##NV, uko_10x##NV, uko_11x##NV, uko_12x##NV, uko_13x##NV, uko_14x##NV
#define UKR_ROWS6(NV) UKR(1, NV) UKR(2, NV) UKR(3, NV) UKR(4, NV) UKR(5, NV) UKR(6, NV)
#define UKR_ROWS14(NV) UKR(7, NV) UKR(8, NV) UKR(9, NV) UKR(10, NV) UKR(11, NV) UKR(12, NV) UKR(13, NV) UKR(14, NV)
UKR_ROWS6(2)
UKR_ROWS6(4)
UKR_ROWS14(2)

#define ROW6(NV) ukr_1x##NV, ukr_2x##NV, ukr_3x##NV, ukr_4x##NV, ukr_5x##NV, ukr_6x##NV
#define ROW14(NV) ROW6(NV), ukr_7x##NV, ukr_8x##NV, ukr_9x##NV, ukr_10x##NV, ukr_11x##NV, ukr_12x##NV, ukr_13x##NV, ukr_14x##NV

/* 64 FP8 bytes (one quad of a strip, shuffled order) -> the two BF16 pair vectors of that quad.
 * Two 128-entry byte lookups give the high and low bytes of the magnitude's BF16 code (index bit 7,
 * the sign, is ignored by vpermi2b), the sign is OR-ed into the high byte, and in-lane interleaves
 * put each word in place. */
#define VBMI __attribute__((target("avx512vbmi")))
VBMI static inline __attribute__((always_inline)) void dec_quad(__m512i x, __m512i h0, __m512i h1, __m512i l0, __m512i l1,
                                                                __m512bh *p0, __m512bh *p1) {
  __m512i hb = _mm512_permutex2var_epi8(h0, x, h1);
  __m512i lb = _mm512_permutex2var_epi8(l0, x, l1);
  hb = _mm512_ternarylogic_epi32(hb, x, _mm512_set1_epi8((char)0x80), 0xf8); /* hb | (x & 0x80) */
  *p0 = (__m512bh)_mm512_unpacklo_epi8(lb, hb);
  *p1 = (__m512bh)_mm512_unpackhi_epi8(lb, hb);
}

VBMI static void decode_fp8_vbmi(int64_t quads, const fp8_t *src, bf16_t *dst, const gemm_fp8_lut *lut) {
  __m512i h0 = _mm512_load_si512(lut->hi), h1 = _mm512_load_si512(lut->hi + 64);
  __m512i l0 = _mm512_load_si512(lut->lo), l1 = _mm512_load_si512(lut->lo + 64);
  for (int64_t q = 0; q < quads; q++) {
    __m512bh p0, p1;
    /* the strip's next 128-deep block follows this one: fetch it while this one is decoded */
    _mm_prefetch((const char *)(src + 64 * GEMM_GROUP * (q + GEMM_PF_PAIRS / 2)), _MM_HINT_T1);
    dec_quad(_mm512_load_si512((const void *)(src + 64 * GEMM_GROUP * q)), h0, h1, l0, l1, &p0, &p1);
    _mm512_store_si512((void *)(dst + 2 * GEMM_PS * q), (__m512i)p0);
    _mm512_store_si512((void *)(dst + 2 * GEMM_PS * q + GEMM_PS), (__m512i)p1);
  }
}

static _Atomic int have_vbmi = -1; /* AVX512_VBMI present (every AVX512_BF16 CPU so far); -1 unknown */

static int vbmi(void) {
  if (have_vbmi < 0) have_vbmi = __builtin_cpu_supports("avx512vbmi") ? 1 : 0;
  return have_vbmi;
}

static void decode_fp8_avx512(int64_t quads, const fp8_t *src, bf16_t *dst, const gemm_fp8_lut *lut) {
  if (vbmi()) decode_fp8_vbmi(quads, src, dst, lut);
  else gemm_decode_fp8_c(quads, src, dst, lut);
}

/* Fused FP8 tile for short M: each quad of each strip is decoded in registers and used at once,
 * so the weights stream from memory once, as FP8, with no staging buffer. */
VBMI static inline __attribute__((always_inline)) void ukr_fp8(const int mr, const int nv, int64_t kp,
                                                               const uint32_t *a, int64_t as, const fp8_t *b,
                                                               int64_t bs, float *ws, int64_t ldws,
                                                               const float *srow, const float *sstrip, int first,
                                                               const gemm_fp8_lut *lut) {
  __m512i h0 = _mm512_load_si512(lut->hi), h1 = _mm512_load_si512(lut->hi + 64);
  __m512i l0 = _mm512_load_si512(lut->lo), l1 = _mm512_load_si512(lut->lo + 64);
  __m512 acc[GEMM_FUSED_MR][GEMM_NV_MAX];
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kp / 2; q++) {
    __m512bh p0[GEMM_NV_MAX], p1[GEMM_NV_MAX];
    UNROLL for (int v = 0; v < nv; v++) {
      _mm_prefetch((const char *)(b + v * bs + 64 * GEMM_GROUP * (q + GEMM_PF_PAIRS / 2)), _MM_HINT_T1);
      dec_quad(_mm512_load_si512((const void *)(b + v * bs + 64 * GEMM_GROUP * q)), h0, h1, l0, l1, &p0[v], &p1[v]);
    }
    const uint32_t *ap = a + 2 * q * as;
    UNROLL for (int i = 0; i < mr; i++) {
      __m512bh a0 = (__m512bh)_mm512_set1_epi32((int)ap[i]), a1 = (__m512bh)_mm512_set1_epi32((int)ap[as + i]);
      UNROLL for (int v = 0; v < nv; v++) {
        acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a0, p0[v]);
        acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a1, p1[v]);
      }
    }
  }
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int v = 0; v < nv; v++) {
    __m512 r = _mm512_mul_ps(acc[i][v], _mm512_set1_ps(srow[i] * sstrip[v]));
    float *o = ws + i * ldws + 16 * v;
    if (!first) r = _mm512_add_ps(r, _mm512_load_ps(o));
    _mm512_store_ps(o, r);
  }
}

#define UKR8(MR, NV)                                                                                           \
  VBMI static void ukr8_##MR##x##NV(int64_t kp, const uint32_t *a, int64_t as, const fp8_t *b, int64_t bs,     \
                                    float *ws, int64_t ldws, const float *sr, const float *ss, int first,      \
                                    const gemm_fp8_lut *lut) {                                                 \
    ukr_fp8(MR, NV, kp, a, as, b, bs, ws, ldws, sr, ss, first, lut);                                           \
  }
#define UKR8_ROWS(NV) UKR8(1, NV) UKR8(2, NV) UKR8(3, NV) UKR8(4, NV)
UKR8_ROWS(2)
UKR8_ROWS(4)
#define ROW8F(NV) ukr8_1x##NV, ukr8_2x##NV, ukr8_3x##NV, ukr8_4x##NV

const gemm_impl gemm_impl_avx512bf16_14x32 = {
    .mr = 14,
    .nv = 2,
    .ukr = {ROW14(2)},
    .ukr_out = {ROWO14(2)},
    .ukr8 = {ROW8F(2)},
    .ukr8_ok = vbmi,
    .decode = decode_fp8_avx512,
    .store = gemm_store_avx512,
    .pack_a = gemm_pack_a_avx512,
};

const gemm_impl gemm_impl_avx512bf16_6x64 = {
    .mr = 6,
    .nv = 4,
    .ukr = {ROW6(4)},
    .ukr_out = {ROWO6(4)},
    .rowmajor_a = 1,
    .ukr8 = {ROW8F(4)},
    .ukr8_ok = vbmi,
    .decode = decode_fp8_avx512,
    .store = gemm_store_avx512,
    .pack_a = gemm_pack_a_avx512,
};
