/* kernels/cpu/quant_avx512.c — AVX-512 FP8 quantizers, bit-identical to kernels/ref/quant_ref.c.
 *
 * A 1x128 tile is 8 ZMM registers: it is loaded once, its finite max-abs reduced, the scale
 * computed by the same scalar function as the reference (quant_scale_of), and the registers scaled
 * and converted in place. FP32 -> FP8 conversion is done on the bits: normal results round the
 * mantissa to nearest even with the integer "add 0x7ff..+lsb" trick, subnormal results come from
 * one float addition of a magic constant (2^14 for E4M3, 2^7 for E5M2) whose ulp is the FP8
 * subnormal step, so the FPU does the round-to-nearest-even; saturation, Inf and NaN are blends.
 * Only called after a CPUID check (quant_backend). */
#include <immintrin.h>
#include <string.h>

#include "quant.h"

/* Per-format constants of the bit conversion. */
typedef struct q8_fmt {
  int drop;             /* float mantissa bits dropped: 20 (E4M3), 21 (E5M2) */
  int rebias;           /* (127 - fp8 bias) << fp8 mantissa bits */
  uint32_t min_normal;  /* bits of the smallest FP8 normal as float32 */
  float magic;          /* 2^(subnormal step exponent + 23) */
  int max_code;         /* largest finite magnitude code */
  int inf_code;         /* code of +Inf (E5M2) or the saturation code (E4M3) */
  int nan_code;         /* code of NaN */
} q8_fmt;

static const q8_fmt q8_e4m3 = {20, 120 << 3, 0x3c800000u, 16384.0f, 0x7e, 0x7e, 0x7f};
static const q8_fmt q8_e5m2 = {21, 112 << 2, 0x38800000u, 128.0f, 0x7b, 0x7c, 0x7e};

/* 16 floats -> 16 FP8 codes in the low 8 bits of each 32-bit lane. */
static inline __m512i q8_cvt(__m512 y, const q8_fmt *f) {
  __m512i u = _mm512_castps_si512(y);
  __m512i sign = _mm512_and_si512(_mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x80));
  __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(a, f->drop), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(a, _mm512_add_epi32(_mm512_set1_epi32((1 << (f->drop - 1)) - 1), lsb));
  __m512i code_n = _mm512_sub_epi32(_mm512_srli_epi32(r, f->drop), _mm512_set1_epi32(f->rebias));
  __m512 magic = _mm512_set1_ps(f->magic);
  __m512i t = _mm512_castps_si512(_mm512_add_ps(_mm512_castsi512_ps(a), magic));
  __m512i code_s = _mm512_sub_epi32(t, _mm512_castps_si512(magic));
  __mmask16 sub = _mm512_cmplt_epi32_mask(a, _mm512_set1_epi32((int)f->min_normal));
  __m512i code = _mm512_mask_blend_epi32(sub, code_n, code_s);
  code = _mm512_min_epi32(code, _mm512_set1_epi32(f->max_code));
  __mmask16 inf = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
  __mmask16 nan = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
  code = _mm512_mask_mov_epi32(code, inf, _mm512_set1_epi32(f->inf_code));
  code = _mm512_mask_mov_epi32(code, nan, _mm512_set1_epi32(f->nan_code));
  return _mm512_or_si512(code, sign);
}

static inline __m512 load_bf16(const bf16_t *p, __mmask16 m) {
  __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __m512 load_f32(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }

static inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

/* Running max of |v| over finite lanes. */
static inline __m512 amax_acc(__m512 acc, __m512 v) {
  __m512 a = _mm512_abs_ps(v);
  __mmask16 fin = _mm512_cmp_ps_mask(a, _mm512_set1_ps(__builtin_inff()), _CMP_LT_OQ);
  return _mm512_mask_max_ps(acc, fin, acc, a);
}

/* One row tile of w <= 128 elements, in registers: amax, scale, convert, store. */
#define Q8_TOKEN_TILE(LOAD, SRC)                                                                  \
  do {                                                                                            \
    __m512 v[8];                                                                                  \
    __m512 acc = _mm512_setzero_ps();                                                             \
    int nv = (int)((w + 15) / 16);                                                                \
    for (int j = 0; j < nv; j++) {                                                                \
      v[j] = LOAD((SRC) + 16 * j, tail_mask(w - 16 * j));                                         \
      acc = amax_acc(acc, v[j]);                                                                  \
    }                                                                                             \
    float s = quant_scale_of(_mm512_reduce_max_ps(acc), fmt, pow2);                               \
    __m512 inv = _mm512_set1_ps(1.0f / s);                                                        \
    for (int j = 0; j < nv; j++)                                                                  \
      _mm512_mask_cvtepi32_storeu_epi8(qt + 16 * j, tail_mask(w - 16 * j),                        \
                                       q8_cvt(_mm512_mul_ps(v[j], inv), f));                      \
    *st = s;                                                                                      \
  } while (0)

static void token_f32(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t t = 0; t < nt; t++) {
      int64_t c0 = t * QUANT_TILE, w = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
      fp8_t *qt = q + i * k + c0;
      float *st = scales + i * nt + t;
      Q8_TOKEN_TILE(load_f32, x + i * k + c0);
    }
}

static void token_bf16(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t t = 0; t < nt; t++) {
      int64_t c0 = t * QUANT_TILE, w = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
      fp8_t *qt = q + i * k + c0;
      float *st = scales + i * nt + t;
      Q8_TOKEN_TILE(load_bf16, x + i * k + c0);
    }
}

/* Block quantizers: pass 1 reduces the block's amax row by row, pass 2 converts it (the block,
 * at most 64 KiB, is still in L2). */
#define Q8_BLOCK(LOAD, SRC_T)                                                                     \
  do {                                                                                            \
    const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;                                   \
    int64_t nbr = quant_tiles(n), nbc = quant_tiles(k);                                           \
    for (int64_t br = 0; br < nbr; br++)                                                          \
      for (int64_t bc = 0; bc < nbc; bc++) {                                                      \
        int64_t r0 = br * QUANT_TILE, c0 = bc * QUANT_TILE;                                       \
        int64_t rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;                                 \
        int64_t cols = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;                                 \
        const SRC_T *wb = w + r0 * k + c0;                                                        \
        __m512 acc = _mm512_setzero_ps();                                                         \
        for (int64_t r = 0; r < rows; r++)                                                        \
          for (int64_t c = 0; c < cols; c += 16)                                                  \
            acc = amax_acc(acc, LOAD(wb + r * k + c, tail_mask(cols - c)));                       \
        float s = quant_scale_of(_mm512_reduce_max_ps(acc), fmt, pow2);                           \
        __m512 inv = _mm512_set1_ps(1.0f / s);                                                    \
        for (int64_t r = 0; r < rows; r++)                                                        \
          for (int64_t c = 0; c < cols; c += 16) {                                                \
            __mmask16 mk = tail_mask(cols - c);                                                   \
            __m512 y = _mm512_mul_ps(LOAD(wb + r * k + c, mk), inv);                              \
            _mm512_mask_cvtepi32_storeu_epi8(q + (r0 + r) * k + c0 + c, mk, q8_cvt(y, f));        \
          }                                                                                       \
        scales[br * nbc + bc] = s;                                                                \
      }                                                                                           \
  } while (0)

static void block_f32(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  Q8_BLOCK(load_f32, float);
}

static void block_bf16(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  Q8_BLOCK(load_bf16, bf16_t);
}

/* 16 FP8 codes -> 16 floats, exact: the magnitude bits shifted into a float's exponent/mantissa
 * field give the value times 2^-(127 - bias) (a float subnormal for FP8 subnormals, which the
 * multiplication by the power of two renormalises exactly). NaN is the positive quiet NaN and
 * Inf keeps its sign, as fp8_*_to_f32 return them. */
static inline __m512 q8_decode(__m128i b, kn_dtype fmt) {
  __m512i x = _mm512_cvtepu8_epi32(b);
  __m512i mag = _mm512_and_si512(x, _mm512_set1_epi32(0x7f));
  __m512i sign = _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0x80)), 24);
  __m512 v;
  __mmask16 nan, inf = 0;
  if (fmt == KN_FP8_E5M2) {
    v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(mag, 21)), _mm512_set1_ps(0x1p112f));
    nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7c));
    inf = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7c));
  } else {
    v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(mag, 20)), _mm512_set1_ps(0x1p120f));
    nan = _mm512_cmpeq_epi32_mask(mag, _mm512_set1_epi32(0x7f));
  }
  __m512i bits = _mm512_or_si512(_mm512_castps_si512(v), sign);
  bits = _mm512_mask_mov_epi32(bits, inf, _mm512_or_si512(sign, _mm512_set1_epi32(0x7f800000)));
  bits = _mm512_mask_mov_epi32(bits, nan, _mm512_set1_epi32(0x7fc00000));
  return _mm512_castsi512_ps(bits);
}

static inline __mmask16 mask16(int64_t n) { return tail_mask(n); }

static void dequant_token(const fp8_t *q, const float *scales, int64_t m, int64_t k, kn_dtype fmt,
                          float *out) {
  int64_t nt = quant_tiles(k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t c = 0; c < k; c += 16) {
      __mmask16 mk = mask16(k - c);
      __m512 s = _mm512_set1_ps(scales[i * nt + c / QUANT_TILE]);
      __m512 v = q8_decode(_mm_maskz_loadu_epi8(mk, q + i * k + c), fmt);
      _mm512_mask_storeu_ps(out + i * k + c, mk, _mm512_mul_ps(v, s));
    }
}

static void dequant_block(const fp8_t *q, const float *scales, int64_t n, int64_t k, kn_dtype fmt,
                          float *out) {
  int64_t nbc = quant_tiles(k);
  for (int64_t r = 0; r < n; r++)
    for (int64_t c = 0; c < k; c += 16) {
      __mmask16 mk = mask16(k - c);
      __m512 s = _mm512_set1_ps(scales[(r / QUANT_TILE) * nbc + c / QUANT_TILE]);
      __m512 v = q8_decode(_mm_maskz_loadu_epi8(mk, q + r * k + c), fmt);
      _mm512_mask_storeu_ps(out + r * k + c, mk, _mm512_mul_ps(v, s));
    }
}

const quant_kernels quant_avx512_kernels = {
    "avx512", token_f32, token_bf16, block_f32, block_bf16, dequant_token, dequant_block,
};
