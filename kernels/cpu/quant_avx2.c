/* kernels/cpu/quant_avx2.c — AVX2 FP8 quantizers, bit-identical to kernels/ref/quant_ref.c.
 *
 * The same bit conversion as the AVX-512 file (see there) on 8 lanes: normal results round the
 * mantissa to nearest even with integer arithmetic, subnormal results come from a float addition
 * of a magic constant; saturation, Inf and NaN are blends. Tails shorter than 8 elements use the
 * scalar encoders of kernels/dtype.h, which are the definition. Only called after a CPUID check. */
#include <immintrin.h>
#include <math.h>

#include "quant.h"

typedef struct q8_fmt {
  int drop;            /* float mantissa bits dropped */
  int rebias;          /* (127 - fp8 bias) << fp8 mantissa bits */
  int min_normal;      /* bits of the smallest FP8 normal as float32 */
  float magic;         /* 2^(subnormal step exponent + 23) */
  int max_code;        /* largest finite magnitude code */
  int inf_code;        /* code for +-Inf inputs */
  int nan_code;        /* code of NaN */
} q8_fmt;

static const q8_fmt q8_e4m3 = {20, 120 << 3, 0x3c800000, 16384.0f, 0x7e, 0x7e, 0x7f};
static const q8_fmt q8_e5m2 = {21, 112 << 2, 0x38800000, 128.0f, 0x7b, 0x7c, 0x7e};

static inline __m256i q8_cvt(__m256 y, const q8_fmt *f) {
  __m256i u = _mm256_castps_si256(y);
  __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
  __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, f->drop), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(a, _mm256_add_epi32(_mm256_set1_epi32((1 << (f->drop - 1)) - 1), lsb));
  __m256i code_n = _mm256_sub_epi32(_mm256_srli_epi32(r, f->drop), _mm256_set1_epi32(f->rebias));
  __m256 magic = _mm256_set1_ps(f->magic);
  __m256i t = _mm256_castps_si256(_mm256_add_ps(_mm256_castsi256_ps(a), magic));
  __m256i code_s = _mm256_sub_epi32(t, _mm256_castps_si256(magic));
  __m256i sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(f->min_normal), a);
  __m256i code = _mm256_blendv_epi8(code_n, code_s, sub);
  code = _mm256_min_epi32(code, _mm256_set1_epi32(f->max_code));
  __m256i inf = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(0x7f800000));
  __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(f->inf_code), inf);
  code = _mm256_blendv_epi8(code, _mm256_set1_epi32(f->nan_code), nan);
  return _mm256_or_si256(code, sign);
}

/* Low byte of each 32-bit lane -> 8 bytes at p. */
static inline void store8(fp8_t *p, __m256i c) {
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  __m256i s = _mm256_shuffle_epi8(c, pick);
  __m128i lo = _mm256_castsi256_si128(s), hi = _mm256_extracti128_si256(s, 1);
  _mm_storel_epi64((__m128i *)p, _mm_unpacklo_epi32(lo, hi));
}

static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline __m256 load8_bf16(const bf16_t *p) {
  __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline float get_f32(const float *p) { return *p; }
static inline float get_bf16(const bf16_t *p) { return bf16_to_f32(*p); }

static inline __m256 amax_acc(__m256 acc, __m256 v) {
  __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
  __m256 fin = _mm256_cmp_ps(a, _mm256_set1_ps(INFINITY), _CMP_LT_OQ);
  return _mm256_max_ps(acc, _mm256_and_ps(a, fin)); /* non-finite lanes contribute 0 */
}

static inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

/* amax of `cols` elements at p (finite only), vector body and scalar tail. */
#define Q8_ROW_AMAX(LOAD8, GET, p, cols, acc, sacc)                                               \
  do {                                                                                            \
    int64_t c_ = 0;                                                                               \
    for (; c_ + 8 <= (cols); c_ += 8) acc = amax_acc(acc, LOAD8((p) + c_));                       \
    for (; c_ < (cols); c_++) {                                                                   \
      float a_ = fabsf(GET((p) + c_));                                                            \
      if (isfinite(a_) && a_ > sacc) sacc = a_;                                                   \
    }                                                                                             \
  } while (0)

#define Q8_ROW_CVT(LOAD8, GET, p, cols, qp)                                                       \
  do {                                                                                            \
    int64_t c_ = 0;                                                                               \
    for (; c_ + 8 <= (cols); c_ += 8) store8((qp) + c_, q8_cvt(_mm256_mul_ps(LOAD8((p) + c_), inv), f)); \
    for (; c_ < (cols); c_++) (qp)[c_] = f32_to_fp8(GET((p) + c_) * inv_s, fmt);                      \
  } while (0)

#define Q8_TOKEN(LOAD8, GET)                                                                      \
  do {                                                                                            \
    const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;                                   \
    int64_t nt = quant_tiles(k);                                                                  \
    for (int64_t i = 0; i < m; i++)                                                               \
      for (int64_t t = 0; t < nt; t++) {                                                          \
        int64_t c0 = t * QUANT_TILE, w = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;               \
        __m256 acc = _mm256_setzero_ps();                                                         \
        float sacc = 0.0f;                                                                        \
        Q8_ROW_AMAX(LOAD8, GET, x + i * k + c0, w, acc, sacc);                                    \
        float am = hmax(acc);                                                                     \
        float sc = quant_scale_of(am > sacc ? am : sacc, fmt, pow2);                              \
        float inv_s = 1.0f / sc;                                                                  \
        __m256 inv = _mm256_set1_ps(inv_s);                                                           \
        Q8_ROW_CVT(LOAD8, GET, x + i * k + c0, w, q + i * k + c0);                                \
        scales[i * nt + t] = sc;                                                                  \
      }                                                                                           \
  } while (0)

static void token_f32(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  Q8_TOKEN(load8_f32, get_f32);
}

static void token_bf16(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  Q8_TOKEN(load8_bf16, get_bf16);
}

#define Q8_BLOCK(LOAD8, GET, SRC_T)                                                               \
  do {                                                                                            \
    const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;                                   \
    int64_t nbr = quant_tiles(n), nbc = quant_tiles(k);                                           \
    for (int64_t br = 0; br < nbr; br++)                                                          \
      for (int64_t bc = 0; bc < nbc; bc++) {                                                      \
        int64_t r0 = br * QUANT_TILE, c0 = bc * QUANT_TILE;                                       \
        int64_t rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;                                 \
        int64_t cols = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;                                 \
        const SRC_T *wb = w + r0 * k + c0;                                                        \
        __m256 acc = _mm256_setzero_ps();                                                         \
        float sacc = 0.0f;                                                                        \
        for (int64_t r = 0; r < rows; r++) Q8_ROW_AMAX(LOAD8, GET, wb + r * k, cols, acc, sacc);  \
        float am = hmax(acc);                                                                     \
        float sc = quant_scale_of(am > sacc ? am : sacc, fmt, pow2);                              \
        float inv_s = 1.0f / sc;                                                                  \
        __m256 inv = _mm256_set1_ps(inv_s);                                                           \
        for (int64_t r = 0; r < rows; r++) Q8_ROW_CVT(LOAD8, GET, wb + r * k, cols, q + (r0 + r) * k + c0); \
        scales[br * nbc + bc] = sc;                                                               \
      }                                                                                           \
  } while (0)

static void block_f32(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  Q8_BLOCK(load8_f32, get_f32, float);
}

static void block_bf16(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  Q8_BLOCK(load8_bf16, get_bf16, bf16_t);
}

/* Exact decode of 8 codes (see quant_avx512.c's q8_decode). */
static inline __m256 q8_decode(const fp8_t *p, kn_dtype fmt) {
  __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
  __m256i mag = _mm256_and_si256(x, _mm256_set1_epi32(0x7f));
  __m256i sign = _mm256_slli_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x80)), 24);
  __m256i bits, nan, inf;
  if (fmt == KN_FP8_E5M2) {
    __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(mag, 21)), _mm256_set1_ps(0x1p112f));
    bits = _mm256_or_si256(_mm256_castps_si256(v), sign);
    nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7c));
    inf = _mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7c));
    bits = _mm256_blendv_epi8(bits, _mm256_or_si256(sign, _mm256_set1_epi32(0x7f800000)), inf);
  } else {
    __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(mag, 20)), _mm256_set1_ps(0x1p120f));
    bits = _mm256_or_si256(_mm256_castps_si256(v), sign);
    nan = _mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7f));
  }
  bits = _mm256_blendv_epi8(bits, _mm256_set1_epi32(0x7fc00000), nan);
  return _mm256_castsi256_ps(bits);
}

static void dequant_rows(const fp8_t *q, const float *scales, int64_t n, int64_t k, kn_dtype fmt,
                         float *out, int block) {
  int64_t nbc = quant_tiles(k);
  for (int64_t r = 0; r < n; r++) {
    const float *srow = scales + (block ? (r / QUANT_TILE) : r) * nbc;
    int64_t c = 0;
    for (; c + 8 <= k; c += 8)
      _mm256_storeu_ps(out + r * k + c,
                       _mm256_mul_ps(q8_decode(q + r * k + c, fmt), _mm256_set1_ps(srow[c / QUANT_TILE])));
    for (; c < k; c++) out[r * k + c] = fp8_to_f32(q[r * k + c], fmt) * srow[c / QUANT_TILE];
  }
}

static void dequant_token(const fp8_t *q, const float *scales, int64_t m, int64_t k, kn_dtype fmt,
                          float *out) {
  dequant_rows(q, scales, m, k, fmt, out, 0);
}

static void dequant_block(const fp8_t *q, const float *scales, int64_t n, int64_t k, kn_dtype fmt,
                          float *out) {
  dequant_rows(q, scales, n, k, fmt, out, 1);
}

const quant_kernels quant_avx2_kernels = {
    "avx2", token_f32, token_bf16, block_f32, block_bf16, dequant_token, dequant_block,
};
