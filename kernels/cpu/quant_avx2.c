/* kernels/cpu/quant_avx2.c — AVX2 FP8 quantizers, bit-identical to kernels/ref/quant_ref.c.
 *
 * The structure of the AVX-512 file (see there) on 8 lanes: two passes per row (or block row) —
 * the magnitude bits' integer max of every full tile, which also flags Inf/NaN, then the
 * conversions; full finite tiles take the short conversion (no clamping, the subnormal branch only
 * when a lane needs it, 32 codes packed per store), the others the general one with blends for
 * saturation, Inf and NaN, and the scalar encoders of kernels/dtype.h (the definition) for tails
 * shorter than 8 elements. Only called after a CPUID check. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

#include "quant.h"
#include "util.h"

typedef struct q8_fmt {
  int drop;            /* float mantissa bits dropped */
  int rebias;          /* (127 - fp8 bias) << fp8 mantissa bits */
  int min_normal;      /* bits of the smallest FP8 normal as float32 */
  float magic;         /* 2^(subnormal step exponent + 23) */
  int max_code;        /* largest finite magnitude code */
  int inf_code;        /* code for +-Inf inputs */
  int nan_code;        /* code of NaN */
  int rnd;             /* (1 << (drop - 1)) - 1 - (rebias << drop): rounding and re-bias at once */
  float unbias;        /* 2^-(127 - fp8 bias): y * unbias has the FP8 exponent field */
  float big;           /* 2^drop: C * big added to a value of binade C rounds it to the FP8 mantissa */
} q8_fmt;

static const q8_fmt q8_e4m3 = {20, 120 << 3, 0x3c800000, 16384.0f, 0x7e, 0x7e, 0x7f, (1 << 19) - 1 - (120 << 3 << 20),
                               0x1p-120f, 0x1p20f};
static const q8_fmt q8_e5m2 = {21, 112 << 2, 0x38800000, 128.0f, 0x7b, 0x7c, 0x7e, (1 << 20) - 1 - (112 << 2 << 21),
                               0x1p-112f, 0x1p21f};

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

/* |x| * inv for a tile whose values are all finite (so no code passes max_code: see the AVX-512
 * file), v = x for the sign. */
static inline __m256i q8_cvt_finite(__m256 a, __m256 v, const q8_fmt *f) {
  __m256i ai = _mm256_castps_si256(a);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(ai, f->drop), _mm256_set1_epi32(1));
  __m256i code = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(ai, _mm256_set1_epi32(f->rnd)), lsb), f->drop);
  __m256i sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(f->min_normal), ai);
  if (!_mm256_testz_si256(sub, sub)) {
    __m256 magic = _mm256_set1_ps(f->magic);
    __m256i cs = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(a, magic)), _mm256_castps_si256(magic));
    code = _mm256_blendv_epi8(code, cs, sub);
  }
  __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 24), _mm256_set1_epi32(0x80));
  return _mm256_or_si256(code, sign);
}

static inline __m256 load8(const void *x, int bf16, int64_t i) {
  return bf16 ? load8_bf16((const bf16_t *)x + i) : load8_f32((const float *)x + i);
}

/* 128 finite elements at x[off..] times inv -> 128 codes at q, 32 per store: two packs restore
 * the order within 128-bit lanes and one dword permutation across them. */
static inline void convert_tile(const void *x, int bf16, int64_t off, __m256 inv, const q8_fmt *f, fp8_t *q) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int g = 0; g < 4; g++) {
    __m256i c[4];
    for (int j = 0; j < 4; j++) {
      __m256 v = load8(x, bf16, off + 32 * g + 8 * j);
      c[j] = q8_cvt_finite(_mm256_mul_ps(_mm256_and_ps(v, absmask), inv), v, f);
    }
    __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(c[0], c[1]), _mm256_packus_epi32(c[2], c[3]));
    _mm256_storeu_si256((__m256i *)(q + 32 * g), _mm256_permutevar8x32_epi32(b, order));
  }
}

/* Magnitude bits (as float32 bits) of the largest |x| of a full tile; Inf/NaN sort above all. */
static inline int32_t hmax_epi32(__m256i m) {
  __m128i x = _mm_max_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
  x = _mm_max_epi32(x, _mm_shuffle_epi32(x, 0x4e));
  x = _mm_max_epi32(x, _mm_shuffle_epi32(x, 0xb1));
  return _mm_cvtsi128_si32(x);
}

static inline int32_t amax_bits(const void *x, int bf16, int64_t off) {
  if (bf16) {
    const bf16_t *p = (const bf16_t *)x + off;
    __m256i mx = _mm256_setzero_si256(), mag = _mm256_set1_epi16(0x7fff);
    for (int j = 0; j < 8; j++) mx = _mm256_max_epu16(mx, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 16 * j)), mag));
    __m128i m4 = _mm_max_epu16(_mm256_castsi256_si128(mx), _mm256_extracti128_si256(mx, 1));
    return (0xffff - (_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(m4, _mm_set1_epi16(-1)))) & 0xffff)) << 16;
  }
  const float *p = (const float *)x + off;
  __m256i mx = _mm256_setzero_si256(), mag = _mm256_set1_epi32(0x7fffffff);
  for (int j = 0; j < 16; j++) mx = _mm256_max_epi32(mx, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 8 * j)), mag));
  return hmax_epi32(mx);
}

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

static inline float get1(const void *x, int bf16, int64_t i) {
  return bf16 ? get_bf16((const bf16_t *)x + i) : get_f32((const float *)x + i);
}

/* The general path for a rows x cols tile at x[off] (row stride ld): finite amax over vectors and
 * a scalar tail, blended conversions, scalar encoders for the tail. */
static void tile_general(const void *x, int bf16, int64_t off, int64_t rows, int64_t cols, int64_t ld,
                         kn_dtype fmt, int pow2, const q8_fmt *f, fp8_t *q, float *st) {
  __m256 acc = _mm256_setzero_ps();
  float sacc = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) acc = amax_acc(acc, load8(x, bf16, off + r * ld + c));
    for (; c < cols; c++) {
      float a = fabsf(get1(x, bf16, off + r * ld + c));
      if (isfinite(a) && a > sacc) sacc = a;
    }
  }
  float am = hmax(acc), sc = quant_scale_of(am > sacc ? am : sacc, fmt, pow2), inv_s = 1.0f / sc;
  __m256 inv = _mm256_set1_ps(inv_s);
  for (int64_t r = 0; r < rows; r++) {
    int64_t c = 0, o = off + r * ld;
    for (; c + 8 <= cols; c += 8) store8(q + o + c, q8_cvt(_mm256_mul_ps(load8(x, bf16, o + c), inv), f));
    for (; c < cols; c++) q[o + c] = f32_to_fp8(get1(x, bf16, o + c) * inv_s, fmt);
  }
  *st = sc;
}

static inline __attribute__((always_inline)) void token_rows(const void *x, int bf16, int64_t m, int64_t k,
                                                             kn_dtype fmt, int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k), full = k / QUANT_TILE;
  float inv_stack[64], *inv = full <= 64 ? inv_stack : util_xmalloc((size_t)full * sizeof *inv);
  int es = bf16 ? 2 : 4;
  for (int64_t i = 0; i < m; i++) {
    int64_t row = i * k;
    for (int64_t t = 0; t < full; t++) {
      int64_t off = row + t * QUANT_TILE;
      for (int j = 0; j < 2 * es; j++) _mm_prefetch((const char *)x + (off + 2048) * es + 64 * j, _MM_HINT_T0);
      int32_t ab = amax_bits(x, bf16, off);
      inv[t] = 0.0f; /* 0: general path */
      if (ab < 0x7f800000) {
        float sc = quant_scale_of(kn_bits_f32((uint32_t)ab), fmt, pow2);
        scales[i * nt + t] = sc;
        inv[t] = 1.0f / sc;
      }
    }
    for (int64_t t = 0; t < nt; t++) {
      int64_t off = row + t * QUANT_TILE;
      if (t < full && inv[t] != 0.0f) convert_tile(x, bf16, off, _mm256_set1_ps(inv[t]), f, q + off);
      else tile_general(x, bf16, off, 1, t < full ? QUANT_TILE : k - t * QUANT_TILE, k, fmt, pow2, f, q, scales + i * nt + t);
    }
  }
  if (inv != inv_stack) free(inv);
}

static void token_f32(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  token_rows(x, 0, m, k, fmt, pow2, q, scales);
}

/* One block row at a time: pass 1 streams its rows and keeps each full block's integer max, pass 2
 * converts the finite full blocks; partial and non-finite blocks take the general path. */
static inline __attribute__((always_inline)) void block_rows(const void *w, int bf16, int64_t n, int64_t k,
                                                             kn_dtype fmt, int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nbr = quant_tiles(n), nbc = quant_tiles(k), fullc = k / QUANT_TILE;
  int32_t mx_stack[64];
  float inv_stack[64];
  int32_t *mx = nbc <= 64 ? mx_stack : util_xmalloc((size_t)nbc * sizeof *mx);
  float *inv = nbc <= 64 ? inv_stack : util_xmalloc((size_t)nbc * sizeof *inv);
  int es = bf16 ? 2 : 4;
  for (int64_t br = 0; br < nbr; br++) {
    int64_t r0 = br * QUANT_TILE, rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;
    for (int64_t b = 0; b < fullc; b++) mx[b] = 0;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t b = 0; b < fullc; b++) {
        int64_t off = (r0 + r) * k + b * QUANT_TILE;
        for (int j = 0; j < 2 * es; j++) _mm_prefetch((const char *)w + (off + 2048) * es + 64 * j, _MM_HINT_T0);
        int32_t ab = amax_bits(w, bf16, off);
        if (ab > mx[b]) mx[b] = ab;
      }
    for (int64_t b = 0; b < nbc; b++) {
      float *st = scales + br * nbc + b;
      inv[b] = 0.0f;
      if (b < fullc && mx[b] < 0x7f800000) {
        *st = quant_scale_of(kn_bits_f32((uint32_t)mx[b]), fmt, pow2);
        inv[b] = 1.0f / *st;
      } else {
        int64_t c0 = b * QUANT_TILE, cols = k - c0 < QUANT_TILE ? k - c0 : QUANT_TILE;
        tile_general(w, bf16, r0 * k + c0, rows, cols, k, fmt, pow2, f, q, st);
      }
    }
    for (int64_t r = 0; r < rows; r++)
      for (int64_t b = 0; b < fullc; b++)
        if (inv[b] != 0.0f) {
          int64_t off = (r0 + r) * k + b * QUANT_TILE;
          convert_tile(w, bf16, off, _mm256_set1_ps(inv[b]), f, q + off);
        }
  }
  if (mx != mx_stack) free(mx);
  if (inv != inv_stack) free(inv);
}

static void block_f32(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  block_rows(w, 0, n, k, fmt, pow2, q, scales);
}

/* ---- BF16 fast paths. A full tile (or block) of finite values is converted 32 elements at a time
 * with no widening shuffles: the magnitude words of one 256-bit load give 8 floats of its even
 * elements (a 32-bit shift) and 8 of its odd ones (a mask); each is scaled and rounded in 32-bit
 * lanes (rounding and re-bias folded into q8_fmt.rnd; nothing to clamp, as in the AVX-512 file),
 * and the codes come out of the rounded bits already in element order — the even elements' shifted
 * down into the low words, the odd elements' into the high words, one word blend — so that one
 * byte pack and one qword permutation store 32 codes. The signs come straight from the input
 * words: a signed saturating pack turns a negative word into a byte with its top bit set. Lanes
 * below the smallest normal after scaling (zeros included) need the subnormal branch; it is
 * decided per group of 64 from a BF16 magnitude threshold derived from the scale, so that the one
 * or two such lanes of a 128x128 block of real weights do not send the whole block down it. */

/* Largest / smallest of 16 unsigned words, as float32 bits (the word in the top half). */
static inline int32_t hmax_u16(__m256i v) {
  __m128i m = _mm_max_epu16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  /* phminposuw finds the minimum of 8 words; the maximum is 0xffff - min(0xffff - x) */
  return (0xffff - (_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(m, _mm_set1_epi16(-1)))) & 0xffff)) << 16;
}

static inline int32_t hmin_u16(__m256i v) {
  __m128i m = _mm_min_epu16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return (_mm_cvtsi128_si32(_mm_minpos_epu16(m)) & 0xffff) << 16;
}

/* Largest and smallest magnitude words, lane by lane, of the 128 BF16 elements at p (a tree over
 * the eight loads, written out: a rolled loop would serialise them). */
static inline __attribute__((always_inline)) void mxmn128_bf16(const bf16_t *p, __m256i *mx, __m256i *mn) {
  const __m256i mag = _mm256_set1_epi16(0x7fff);
  __m256i a0 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)p), mag);
  __m256i a1 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 16)), mag);
  __m256i a2 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 32)), mag);
  __m256i a3 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 48)), mag);
  __m256i a4 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 64)), mag);
  __m256i a5 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 80)), mag);
  __m256i a6 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 96)), mag);
  __m256i a7 = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 112)), mag);
  *mx = _mm256_max_epu16(_mm256_max_epu16(_mm256_max_epu16(a0, a1), _mm256_max_epu16(a2, a3)),
                         _mm256_max_epu16(_mm256_max_epu16(a4, a5), _mm256_max_epu16(a6, a7)));
  *mn = _mm256_min_epu16(_mm256_min_epu16(_mm256_min_epu16(a0, a1), _mm256_min_epu16(a2, a3)),
                         _mm256_min_epu16(_mm256_min_epu16(a4, a5), _mm256_min_epu16(a6, a7)));
}

/* Magnitude bits (as float32 bits) of the largest and the smallest |x| of a full BF16 tile, reduced
 * in 16-bit lanes; Inf/NaN sort above every finite value. */
static inline int32_t amax_bits_bf16(const bf16_t *p, int32_t *minb) {
  __m256i mx, mn;
  mxmn128_bf16(p, &mx, &mn);
  *minb = hmin_u16(mn);
  return hmax_u16(mx);
}

/* The smallest BF16 magnitude word a with fl(a * inv) >= the smallest FP8 normal: lanes below it
 * (and only those) need the subnormal branch. The product is monotonic in a, so the words that
 * need it are exactly [0, thr). */
static uint16_t bf16_sub_thr(float inv, const q8_fmt *f) {
  float mn = kn_bits_f32((uint32_t)f->min_normal);
  uint32_t g = kn_f32_bits(mn / inv) >> 16;
  if (g > 0x7f80) g = 0x7f80;
  while (g > 0 && kn_bits_f32((g - 1) << 16) * inv >= mn) g--;
  while (g < 0x7f80 && kn_bits_f32(g << 16) * inv < mn) g++;
  return (uint16_t)g;
}

/* The scale of a BF16 tile or block from its largest and smallest magnitude bits: stores it at *st
 * and returns its inverse, with *thr = bf16_sub_thr when the smallest magnitude needs the
 * subnormal branch (0 when no lane can: rounding is monotonic); returns 0 (and stores nothing) when
 * the tile holds Inf/NaN, which the general path then converts. */
static inline float tile_inv_bf16(int32_t amax_bits, int32_t minb, kn_dtype fmt, int pow2, const q8_fmt *f,
                                  float *st, uint16_t *thr) {
  if (amax_bits >= 0x7f800000) return 0.0f;
  *st = quant_scale_of(kn_bits_f32((uint32_t)amax_bits), fmt, pow2);
  float inv = 1.0f / *st;
  float mn = kn_bits_f32((uint32_t)f->min_normal);
  *thr = kn_bits_f32((uint32_t)minb) * inv >= mn ? 0 : bf16_sub_thr(inv, f);
  /* inv * unbias is normal (exact) iff inv >= mn; below (scales over 64 resp. 16384, amax over
   * 28672 resp. 9.4e8) every group takes the subnormal variant, which scales by inv itself */
  if (inv < mn) *thr = 0x7fff;
  return inv;
}

/* tile_inv_bf16 for the n tiles (or blocks) of a row, 8 at a time: the scale formula's IEEE
 * operations (quant_scale_of's) on 8 lanes give the same bits without two scalar divisions per
 * tile. Scales go to st[0..n) (those of tiles holding Inf/NaN are left for the general path). */
static void tile_invs_bf16(const int32_t *amax_bits, const int32_t *minb, int64_t n, kn_dtype fmt, int pow2,
                           const q8_fmt *f, float *st, float *inv, uint16_t *thr) {
  const __m256 mn = _mm256_castsi256_ps(_mm256_set1_epi32(f->min_normal));
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    __m256i ab = _mm256_loadu_si256((const __m256i *)(amax_bits + t));
    __m256 a = _mm256_max_ps(_mm256_castsi256_ps(ab), _mm256_set1_ps(QUANT_AMAX_FLOOR));
    __m256 sc = _mm256_div_ps(a, _mm256_set1_ps(fp8_max(fmt)));
    if (pow2) { /* round up to a power of two, as quant_scale_of */
      __m256i u = _mm256_castps_si256(sc);
      __m256i up = _mm256_add_epi32(_mm256_and_si256(u, _mm256_set1_epi32((int)0xff800000u)), _mm256_set1_epi32(0x800000));
      __m256i exact = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffff)), _mm256_setzero_si256());
      sc = _mm256_castsi256_ps(_mm256_blendv_epi8(up, u, exact));
    }
    __m256 iv = _mm256_div_ps(_mm256_set1_ps(1.0f), sc);
    __m256i fin = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f800000), ab);
    _mm256_storeu_ps(st + t, sc); /* a non-finite tile's is rewritten by the general path */
    _mm256_storeu_ps(inv + t, _mm256_and_ps(iv, _mm256_castsi256_ps(fin)));
    __m256 low = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(minb + t))), iv);
    int need = _mm256_movemask_ps(_mm256_cmp_ps(low, mn, _CMP_LT_OQ)) & _mm256_movemask_ps(_mm256_castsi256_ps(fin));
    int big = _mm256_movemask_ps(_mm256_cmp_ps(iv, mn, _CMP_LT_OQ)); /* as tile_inv_bf16: inv * unbias not normal */
    _mm_storeu_si128((__m128i *)(thr + t), _mm_setzero_si128());
    for (int bits = need | big; bits; bits &= bits - 1) {
      int j = __builtin_ctz((unsigned)bits);
      thr[t + j] = (big >> j) & 1 ? 0x7fff : bf16_sub_thr(inv[t + j], f);
    }
  }
  for (; t < n; t++) inv[t] = tile_inv_bf16(amax_bits[t], minb[t], fmt, pow2, f, st + t, thr + t);
}

/* |x| / scale (finite, at most fp8_max) -> rounded, re-biased bits whose bits drop.. hold the code
 * (nothing above it). sub: lanes below the smallest normal get their subnormal code there instead,
 * rounded by one float addition of f->magic. */
static inline __attribute__((always_inline)) __m256i q8_rne_bits(__m256 y, const q8_fmt *f, int sub) {
  __m256i yi = _mm256_castps_si256(y);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(yi, f->drop), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(_mm256_add_epi32(yi, _mm256_set1_epi32(f->rnd)), lsb);
  if (sub) {
    __m256 magic = _mm256_set1_ps(f->magic);
    __m256i cs = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(y, magic)), _mm256_castps_si256(magic));
    __m256i below = _mm256_cmpgt_epi32(_mm256_set1_epi32(f->min_normal), yi);
    r = _mm256_blendv_epi8(r, _mm256_slli_epi32(cs, f->drop), below);
  }
  return r;
}

/* The common case, y = |x| / scale * f->unbias with |x| / scale a normal FP8 value (at least the
 * smallest normal: y is then a normal float, and exactly the product with the unscaled inverse times
 * a power of two): y carries the FP8 exponent field. With C the power of two of y's binade,
 * fl(y + C * big) is y rounded to nearest even at the FP8 mantissa's last bit (the ulp of C * big),
 * and subtracting C * big back is exact, so the result's bits are the code << drop and nothing else
 * (FP8's largest value is never passed: see the AVX-512 file). */
static inline __attribute__((always_inline)) __m256i q8_fma_bits(__m256 y, const q8_fmt *f) {
  __m256 c = _mm256_and_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32(0x7f800000)));
  __m256 big = _mm256_set1_ps(f->big);
  return _mm256_castps_si256(_mm256_fnmadd_ps(c, big, _mm256_fmadd_ps(c, big, y)));
}

/* 16 finite BF16 magnitudes a -> their 16 codes in words, in element order. Fast (sub = 0): every
 * lane scaled by ivb = inverse scale * f->unbias is normal; otherwise (sub = 1) the lanes are
 * scaled by iv, the inverse scale, and any may be subnormal. */
static inline __attribute__((always_inline)) __m256i q8_words16_bf16(__m256i a, __m256 iv, __m256 ivb, const q8_fmt *f,
                                                                     int sub) {
  __m256 ev = _mm256_castsi256_ps(_mm256_slli_epi32(a, 16));
  __m256 od = _mm256_castsi256_ps(_mm256_and_si256(a, _mm256_set1_epi32((int)0xffff0000u)));
  if (sub) {
    __m256i re = q8_rne_bits(_mm256_mul_ps(ev, iv), f, 1), ro = q8_rne_bits(_mm256_mul_ps(od, iv), f, 1);
    return _mm256_blend_epi16(_mm256_srli_epi32(re, f->drop), _mm256_srli_epi32(ro, f->drop - 16), 0xaa);
  }
  __m256i re = q8_fma_bits(_mm256_mul_ps(ev, ivb), f), ro = q8_fma_bits(_mm256_mul_ps(od, ivb), f);
  return _mm256_or_si256(_mm256_srli_epi32(re, f->drop), _mm256_srli_epi32(ro, f->drop - 16));
}

/* 32 finite BF16 elements (raw words r0, r1 and their magnitudes a0, a1) -> 32 codes. */
static inline __attribute__((always_inline)) __m256i q8_cvt32_bf16(__m256i r0, __m256i r1, __m256i a0, __m256i a1,
                                                                   __m256 iv, __m256 ivb, const q8_fmt *f, int sub) {
  __m256i c = _mm256_packus_epi16(q8_words16_bf16(a0, iv, ivb, f, sub), q8_words16_bf16(a1, iv, ivb, f, sub));
  __m256i sg = _mm256_and_si256(_mm256_packs_epi16(r0, r1), _mm256_set1_epi8((char)0x80));
  return _mm256_permute4x64_epi64(_mm256_or_si256(c, sg), 0xd8);
}

/* 32 codes to q: a non-temporal store (q 32-byte aligned) when nt, so that a large output goes to
 * memory without first being read for ownership. */
static inline __attribute__((always_inline)) void q8_store32(fp8_t *q, __m256i v, int nt) {
  if (nt) _mm256_stream_si256((__m256i *)q, v);
  else _mm256_storeu_si256((__m256i *)q, v);
}

/* 64 finite BF16 elements times iv -> 64 codes at q. thr != 0: magnitude words below thr need the
 * subnormal branch, and the group takes it when one of its lanes does. */
static inline __attribute__((always_inline)) void cvt64_bf16(const bf16_t *x, __m256 iv, __m256 ivb, int thr,
                                                             const q8_fmt *f, fp8_t *q, int nt) {
  const __m256i mag = _mm256_set1_epi16(0x7fff);
  __m256i r0 = _mm256_loadu_si256((const __m256i *)x), r1 = _mm256_loadu_si256((const __m256i *)(x + 16));
  __m256i r2 = _mm256_loadu_si256((const __m256i *)(x + 32)), r3 = _mm256_loadu_si256((const __m256i *)(x + 48));
  __m256i a0 = _mm256_and_si256(r0, mag), a1 = _mm256_and_si256(r1, mag);
  __m256i a2 = _mm256_and_si256(r2, mag), a3 = _mm256_and_si256(r3, mag);
  if (thr) {
    /* magnitudes and thr are below 0x8000: the signed word compare is exact */
    __m256i mn = _mm256_min_epu16(_mm256_min_epu16(a0, a1), _mm256_min_epu16(a2, a3));
    if (_mm256_movemask_epi8(_mm256_cmpgt_epi16(_mm256_set1_epi16((short)thr), mn))) {
      q8_store32(q, q8_cvt32_bf16(r0, r1, a0, a1, iv, ivb, f, 1), nt);
      q8_store32(q + 32, q8_cvt32_bf16(r2, r3, a2, a3, iv, ivb, f, 1), nt);
      return;
    }
  }
  q8_store32(q, q8_cvt32_bf16(r0, r1, a0, a1, iv, ivb, f, 0), nt);
  q8_store32(q + 32, q8_cvt32_bf16(r2, r3, a2, a3, iv, ivb, f, 0), nt);
}

/* A full BF16 tile of finite values with inverse scale inv; thr and nt: as for cvt64_bf16. */
static inline __attribute__((always_inline)) void cvt_tile_bf16(const bf16_t *x, float inv, int thr, const q8_fmt *f,
                                                                fp8_t *q, int nt) {
  __m256 iv = _mm256_set1_ps(inv), ivb = _mm256_set1_ps(inv * f->unbias);
  cvt64_bf16(x, iv, ivb, thr, f, q, nt);
  cvt64_bf16(x + 64, iv, ivb, thr, f, q + 64, nt);
}

#define Q8_AHEAD_BF16 6144 /* BF16 elements prefetched ahead of a reduction that streams from memory */

/* BF16 rows, two passes per row (every full tile's scale, then the conversions from L1); the
 * conversions of row i prefetch row i + 1, so that memory keeps streaming while they compute.
 * Inlined with a constant format so that its constants become immediates. */
static inline __attribute__((always_inline)) void token_bf16_fmt(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt,
                                                                 int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k), full = k / QUANT_TILE;
  float inv_stack[64], *inv = full <= 64 ? inv_stack : util_xmalloc((size_t)full * sizeof *inv);
  uint16_t thr_stack[64], *thr = full <= 64 ? thr_stack : util_xmalloc((size_t)full * sizeof *thr);
  int32_t bits_stack[128], *ab = full <= 64 ? bits_stack : util_xmalloc((size_t)full * 2 * sizeof *ab), *mb = ab + full;
  for (int64_t i = 0; i < m; i++) {
    const bf16_t *row = x + i * k;
    for (int64_t t = 0; t < full; t++) {
      if (i == 0)
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(row + t * QUANT_TILE + Q8_AHEAD_BF16) + 64 * j, _MM_HINT_T0);
      ab[t] = amax_bits_bf16(row + t * QUANT_TILE, mb + t);
    }
    tile_invs_bf16(ab, mb, full, fmt, pow2, f, scales + i * nt, inv, thr); /* inv 0: tile_general */
    for (int64_t t = 0; t < nt; t++) {
      int64_t off = i * k + t * QUANT_TILE;
      if (i + 1 < m)
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(x + off + k) + 64 * j, _MM_HINT_T0);
      if (t < full && inv[t] != 0.0f) cvt_tile_bf16(x + off, inv[t], thr[t], f, q + off, 0);
      else tile_general(x, 1, off, 1, t < full ? QUANT_TILE : k - t * QUANT_TILE, k, fmt, pow2, f, q, scales + i * nt + t);
    }
  }
  if (inv != inv_stack) free(inv), free(thr), free(ab);
}

static void token_bf16(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  if (fmt == KN_FP8_E5M2) token_bf16_fmt(x, m, k, KN_FP8_E5M2, pow2, q, scales);
  else token_bf16_fmt(x, m, k, KN_FP8_E4M3, pow2, q, scales);
}

#define Q8_NT_BYTES (4 << 20) /* outputs from this size on are written with non-temporal stores */
#define Q8_MAX_BLOCKS 64 /* blocks per block row kept on the stack (K <= 8192); more are malloc'd */

/* BF16 blocks, software-pipelined over block rows: while row r of block row br is reduced
 * (streaming from memory in address order, prefetched ahead), row r of block row br - 1 is
 * converted (from L2/L3, where the reduction left it), so that the memory stream never waits for
 * the arithmetic. A last partial block row, a partial block column and blocks holding Inf/NaN take
 * tile_general. */
static inline __attribute__((always_inline)) void block_bf16_fmt(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt,
                                                                 int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nfr = n / QUANT_TILE, nbc = quant_tiles(k), fullc = k / QUANT_TILE, nb = fullc ? fullc : 1;
  const __m256i mag = _mm256_set1_epi16(0x7fff);
  __m256i mxmn_stack[2 * Q8_MAX_BLOCKS];
  float inv_stack[2 * Q8_MAX_BLOCKS];
  uint16_t thr_stack[2 * Q8_MAX_BLOCKS];
  int heap = nb > Q8_MAX_BLOCKS;
  __m256i *mx = heap ? util_xmalloc((size_t)nb * 2 * sizeof *mx) : mxmn_stack, *mn = mx + nb;
  float *inv = heap ? util_xmalloc((size_t)nb * 2 * sizeof *inv) : inv_stack; /* [block row parity][block] */
  uint16_t *thr = heap ? util_xmalloc((size_t)nb * 2 * sizeof *thr) : thr_stack;
  /* A large output (weights quantized once, read later by the GEMMs) is streamed to memory */
  int nt = ((uintptr_t)q & 63) == 0 && k % 64 == 0 && n * k >= Q8_NT_BYTES;
  for (int64_t br = 0; br <= nfr; br++) {
    int cur = (int)(br & 1), red = br < nfr;
    const float *pinv = inv + (cur ^ 1) * nb;
    const uint16_t *pthr = thr + (cur ^ 1) * nb;
    for (int64_t b = 0; b < fullc; b++) mx[b] = _mm256_setzero_si256(), mn[b] = mag;
    for (int64_t r = 0; r < QUANT_TILE; r++) {
      const bf16_t *pr = w + (br * QUANT_TILE + r) * k;        /* reduced (block row br) */
      int64_t cr = (br - 1) * QUANT_TILE + r;                   /* converted (block row br - 1) */
      for (int64_t b = 0; b < fullc; b++) {
        if (red) {
          for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(pr + b * QUANT_TILE + Q8_AHEAD_BF16) + 64 * j, _MM_HINT_T0);
          __m256i hi, lo;
          mxmn128_bf16(pr + b * QUANT_TILE, &hi, &lo);
          mx[b] = _mm256_max_epu16(mx[b], hi), mn[b] = _mm256_min_epu16(mn[b], lo);
        }
        if (br > 0 && pinv[b] != 0.0f) cvt_tile_bf16(w + cr * k + b * QUANT_TILE, pinv[b], pthr[b], f, q + cr * k + b * QUANT_TILE, nt);
      }
    }
    if (!red) break;
    for (int64_t b = 0; b < nbc; b++) {
      float *st = scales + br * nbc + b;
      if (b < fullc) {
        /* 0: converted here by tile_general */
        inv[cur * nb + b] = tile_inv_bf16(hmax_u16(mx[b]), hmin_u16(mn[b]), fmt, pow2, f, st, thr + cur * nb + b);
        if (inv[cur * nb + b] != 0.0f) continue;
      }
      tile_general(w, 1, br * QUANT_TILE * k + b * QUANT_TILE, QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE,
                   k, fmt, pow2, f, q, st);
    }
  }
  for (int64_t b = 0; n % QUANT_TILE && b < nbc; b++)
    tile_general(w, 1, nfr * QUANT_TILE * k + b * QUANT_TILE, n % QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE,
                 k, fmt, pow2, f, q, scales + nfr * nbc + b);
  if (nt) _mm_sfence();
  if (heap) free(mx), free(inv), free(thr);
}

static void block_bf16(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  if (fmt == KN_FP8_E5M2) block_bf16_fmt(w, n, k, KN_FP8_E5M2, pow2, q, scales);
  else block_bf16_fmt(w, n, k, KN_FP8_E4M3, pow2, q, scales);
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
