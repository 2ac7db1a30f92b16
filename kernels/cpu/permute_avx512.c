/* kernels/cpu/permute_avx512.c — AVX-512 dispatch, combine and SwiGLU (contracts in
 * kernels/permute.h). Dispatch quantizes each token once with the AVX-512 quantizer and copies the
 * row (and its scales) to the token's other experts; combine streams the topk expert rows of a
 * token 32 channels at a time in FP32 with separate multiply and add (bit-identical to the
 * reference) and rounds to BF16 on the bits; SwiGLU uses a vector exp (Cephes-style polynomial,
 * within 2 float ulps of expf). Only called after a CPUID check. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "permute.h"
#include "quant.h"
#include "util.h"

static void dispatch_fp8(const moe_plan *p, const bf16_t *x, int64_t H, kn_dtype fmt, int pow2,
                         int64_t t0, int64_t t1, fp8_t *xq, float *scales) {
  int64_t nt = quant_tiles(H);
  int K = p->topk;
  for (int64_t t = t0; t < t1; t++) {
    int64_t first = -1;
    for (int k = 0; k < K; k++) {
      int64_t row = p->pos[t * K + k];
      if (row < 0) continue;
      if (first < 0) {
        quant_avx512_kernels.token_bf16(x + t * H, 1, H, fmt, pow2, xq + row * H, scales + row * nt);
        first = row;
      } else {
        memcpy(xq + row * H, xq + first * H, (size_t)H);
        memcpy(scales + row * nt, scales + first * nt, (size_t)nt * sizeof(float));
      }
    }
  }
  if (t0 == 0) {
    moe_dispatch_pad(p, xq, (uint64_t)H);
    moe_dispatch_pad(p, scales, (uint64_t)nt * sizeof(float));
  }
}

static void dispatch_bf16(const moe_plan *p, const bf16_t *x, int64_t H, int64_t t0, int64_t t1,
                          bf16_t *xp) {
  int K = p->topk;
  for (int64_t t = t0; t < t1; t++)
    for (int k = 0; k < K; k++) {
      int64_t row = p->pos[t * K + k];
      if (row >= 0) memcpy(xp + row * H, x + t * H, (size_t)H * sizeof(bf16_t));
    }
  if (t0 == 0) moe_dispatch_pad(p, xp, (uint64_t)H * sizeof(bf16_t));
}

#define PF_AHEAD 1024 /* elements prefetched ahead in the streaming loops */

/* Prefetch 2 KiB ahead: the exp/divide chains (SwiGLU) and many-stream gathers (combine) keep too
 * few loads in flight for the hardware prefetchers alone. */
static inline void prefetch_bf16(const bf16_t *p) { _mm_prefetch((const char *)(p + PF_AHEAD), _MM_HINT_T0); }

static inline __m512 ld_bf16(const bf16_t *q, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, q)), 16));
}

/* FP32 -> BF16 bits with round to nearest even and quiet NaNs: f32_to_bf16 on 16 lanes. */
static inline __m256i to_bf16(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

static inline __mmask16 tmask(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

static void combine(const moe_plan *p, const bf16_t *y, const float *weights, int64_t H,
                    const bf16_t *add, int64_t t0, int64_t t1, bf16_t *out) {
  int K = p->topk;
  const bf16_t *src[64];
  __m512 wv[64];
  for (int64_t t = t0; t < t1; t++) {
    int n = 0;
    for (int k = 0; k < K && n < 64; k++) {
      int64_t row = p->pos[t * K + k];
      if (row < 0) continue;
      src[n] = y + row * H;
      wv[n++] = _mm512_set1_ps(weights[t * K + k]);
    }
    for (int64_t h = 0; h < H; h += 32) {
      __mmask16 m0 = tmask(H - h), m1 = tmask(H - h - 16 > 0 ? H - h - 16 : 0);
      for (int k = 0; k < n; k++) prefetch_bf16(src[k] + h);
      __m512 a0 = add ? ld_bf16(add + t * H + h, m0) : _mm512_setzero_ps();
      __m512 a1 = add ? ld_bf16(add + t * H + h + 16, m1) : _mm512_setzero_ps();
      for (int k = 0; k < n; k++) {
        a0 = _mm512_add_ps(a0, _mm512_mul_ps(wv[k], ld_bf16(src[k] + h, m0)));
        a1 = _mm512_add_ps(a1, _mm512_mul_ps(wv[k], ld_bf16(src[k] + h + 16, m1)));
      }
      _mm256_mask_storeu_epi16(out + t * H + h, m0, to_bf16(a0));
      _mm256_mask_storeu_epi16(out + t * H + h + 16, m1, to_bf16(a1));
    }
  }
}

/* exp(x) for 16 lanes: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial, scaled by 2^n with
 * vscalefps (which overflows to +Inf and underflows to 0 like expf). */
static inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 pl = _mm512_set1_ps(1.9875691500e-4f);
  pl = _mm512_fmadd_ps(pl, r, _mm512_set1_ps(1.3981999507e-3f));
  pl = _mm512_fmadd_ps(pl, r, _mm512_set1_ps(8.3334519073e-3f));
  pl = _mm512_fmadd_ps(pl, r, _mm512_set1_ps(4.1665795894e-2f));
  pl = _mm512_fmadd_ps(pl, r, _mm512_set1_ps(1.6666665459e-1f));
  pl = _mm512_fmadd_ps(pl, r, _mm512_set1_ps(5.0000001201e-1f));
  pl = _mm512_fmadd_ps(pl, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(pl, n);
}

/* silu(g) * u = g / (1 + exp(-g)) * u; the reciprocal is rcp14 plus one Newton step (relative
 * error below 2^-22, far under the BF16 or FP8 step), cheaper than a 512-bit division. Where
 * exp(-g) overflows, d = Inf and r = 0, so the result is -0 like the reference's g / Inf. */
static inline __m512 silu_mul(__m512 g, __m512 u) {
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g)));
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
  __mmask16 big = _mm512_cmp_ps_mask(d, _mm512_set1_ps(0x1p126f), _CMP_GT_OQ);
  r = _mm512_mask_mov_ps(r, big, _mm512_setzero_ps()); /* NR step would give NaN at Inf */
  return _mm512_mul_ps(_mm512_mul_ps(g, r), u);
}


static void swiglu(const bf16_t *gu, int64_t rows, int64_t I, bf16_t *out) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < I; i += 16) {
      __mmask16 m = tmask(I - i);
      const bf16_t *gp = gu + r * 2 * I + i;
      if ((i & 31) == 0) prefetch_bf16(gp), prefetch_bf16(gp + I);
      __m512 g = ld_bf16(gp, m), u = ld_bf16(gp + I, m);
      _mm256_mask_storeu_epi16(out + r * I + i, m, to_bf16(silu_mul(g, u)));
    }
}

static void swiglu_fp8(const bf16_t *gu, int64_t rows, int64_t I, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  float stack[4096], *h = I <= 4096 ? stack : util_xmalloc((size_t)I * sizeof *h);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t i = 0; i < I; i += 16) {
      __mmask16 m = tmask(I - i);
      const bf16_t *gp = gu + r * 2 * I + i;
      if ((i & 31) == 0) prefetch_bf16(gp), prefetch_bf16(gp + I);
      __m512 g = ld_bf16(gp, m), u = ld_bf16(gp + I, m);
      _mm512_mask_storeu_ps(h + i, m, silu_mul(g, u));
    }
    quant_avx512_kernels.token_f32(h, 1, I, fmt, pow2, q + r * I, scales + r * quant_tiles(I));
  }
  if (h != stack) free(h);
}

const permute_kernels permute_avx512_kernels = {
    "avx512", dispatch_fp8, dispatch_bf16, combine, swiglu, swiglu_fp8,
};
