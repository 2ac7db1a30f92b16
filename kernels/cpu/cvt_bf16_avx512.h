/* kernels/cpu/cvt_bf16_avx512.h — FP32 -> BF16 rounding on 16 lanes with AVX-512F, shared by the
 * AVX-512 GEMM files (include only from files built with AVX-512 flags: *_avx512*.c). */
#ifndef MOESIM_CVT_BF16_AVX512_H
#define MOESIM_CVT_BF16_AVX512_H

#include <immintrin.h>

/* 16 floats -> 16 BF16 words, exactly as f32_to_bf16 (and gemm_store_avx512): round to nearest even
 * on the bits, NaN kept quiet. (vcvtneps2bf16 would flush subnormals.) */
static inline __m256i cvt_bf16_avx512(__m512 x) {
  __m512i u = _mm512_castps_si512(x);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  __mmask16 nan = _mm512_cmp_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000),
                                        _MM_CMPINT_NLE);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

#endif
