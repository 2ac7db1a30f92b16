/* kernels/cpu/gemm_avx2.c — AVX2+FMA micro-kernel for x86-64 CPUs without AVX-512 (and what
 * MOESIM_ISA=avx2 runs). Same arithmetic as the AVX-512F kernel: each BF16 K pair becomes two FP32
 * FMAs (odd element first, as vdpbf16ps orders them), on 8-lane vectors. Tile 4 x 16: one packed
 * strip is two 8-column halves; 8 accumulators, 4 weight vectors, 2 activation vectors. */
#include <immintrin.h>

#include "gemm_internal.h"

#define UNROLL _Pragma("GCC unroll 16")

static inline __attribute__((always_inline)) void ukr_avx2(const int mr, int64_t kp, const uint32_t *a, int64_t as,
                                                           const bf16_t *b, float *ws, int64_t ldws,
                                                           const float *srow, const float *sstrip, int first) {
  const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
  __m256 acc[4][2];
  UNROLL for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kp; p++) {
    __m256 be[2], bo[2];
    UNROLL for (int h = 0; h < 2; h++) {
      __m256i w = _mm256_load_si256((const __m256i *)(b + p * 32 + 16 * h));
      be[h] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      bo[h] = _mm256_castsi256_ps(_mm256_and_si256(w, hi_mask));
    }
    UNROLL for (int i = 0; i < mr; i++) {
      __m256i aw = _mm256_set1_epi32((int)a[p * as + i]);
      __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(aw, 16)), ao = _mm256_castsi256_ps(_mm256_and_si256(aw, hi_mask));
      UNROLL for (int h = 0; h < 2; h++) {
        acc[i][h] = _mm256_fmadd_ps(ao, bo[h], acc[i][h]);
        acc[i][h] = _mm256_fmadd_ps(ae, be[h], acc[i][h]);
      }
    }
  }
  UNROLL for (int i = 0; i < mr; i++) UNROLL for (int h = 0; h < 2; h++) {
    __m256 r = acc[i][h];
    if (srow) r = _mm256_mul_ps(r, _mm256_set1_ps(srow[i] * sstrip[0]));
    float *o = ws + i * ldws + 8 * h;
    if (!first) r = _mm256_add_ps(r, _mm256_load_ps(o));
    _mm256_store_ps(o, r);
  }
}

#define UKR(MR)                                                                                              \
  static void ukr_##MR(int64_t kp, const uint32_t *a, int64_t as, const bf16_t *b, int64_t bs, float *ws,    \
                       int64_t ldws, const float *sr, const float *ss, int first) {                          \
    (void)bs;                                                                                                \
    ukr_avx2(MR, kp, a, as, b, ws, ldws, sr, ss, first);                                                     \
  }
UKR(1)
UKR(2)
UKR(3)
UKR(4)

const gemm_impl gemm_impl_avx2_4x16 = {
    .mr = 4,
    .nv = 1,
    .ukr = {{ukr_1, ukr_2, ukr_3, ukr_4}},
    .decode = gemm_decode_fp8_c,
    .store = gemm_store_c,
    .pack_a = gemm_pack_a_c,
};
