/* kernels/cpu/quant_avx2.c — AVX2 FP8 quantizers, bit-identical to kernels/ref/quant_ref.c.
 *
 * The structure of the AVX-512 file (see there) on 8 lanes: two passes per row (or block row) —
 * the integer max of every full tile's magnitude bits, which also flags Inf/NaN, then the
 * conversions; full finite tiles take a short conversion with no clamping, the others the general
 * one with blends for saturation, Inf and NaN, and the scalar encoders of kernels/dtype.h (the
 * definition) for tails shorter than 8 elements. BF16 input, the common case (activations and
 * weights), has its own fast paths below: FPU rounding on pre-scaled values, signs and codes
 * gathered without widening shuffles, subnormal lanes found after the fact, scales of 8 tiles per
 * division, block rows software-pipelined, and 128x128 blocks converted by per-block code tables
 * (byte shuffles, no float arithmetic per element). The FP32 paths keep the simpler per-lane
 * conversion.
 * Only called after a CPUID check. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* 128 finite FP32 elements at x times inv -> 128 codes at q, 32 per store: two packs restore the
 * order within 128-bit lanes and one dword permutation across them. */
static inline void convert_tile_f32(const float *x, __m256 inv, const q8_fmt *f, fp8_t *q) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int g = 0; g < 4; g++) {
    __m256i c[4];
    for (int j = 0; j < 4; j++) {
      __m256 v = load8_f32(x + 32 * g + 8 * j);
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

static inline int32_t amax_bits_f32(const float *p) {
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

/* FP32 rows: every full tile's scale, then the conversions. */
static void token_f32(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k), full = k / QUANT_TILE;
  float inv_stack[64], *inv = full <= 64 ? inv_stack : util_xmalloc((size_t)full * sizeof *inv);
  for (int64_t i = 0; i < m; i++) {
    int64_t row = i * k;
    for (int64_t t = 0; t < full; t++) {
      int64_t off = row + t * QUANT_TILE;
      for (int j = 0; j < 8; j++) _mm_prefetch((const char *)(x + off + 2048) + 64 * j, _MM_HINT_T0);
      int32_t ab = amax_bits_f32(x + off);
      inv[t] = 0.0f; /* 0: general path */
      if (ab < 0x7f800000) {
        float sc = quant_scale_of(kn_bits_f32((uint32_t)ab), fmt, pow2);
        scales[i * nt + t] = sc;
        inv[t] = 1.0f / sc;
      }
    }
    for (int64_t t = 0; t < nt; t++) {
      int64_t off = row + t * QUANT_TILE;
      if (t < full && inv[t] != 0.0f) convert_tile_f32(x + off, _mm256_set1_ps(inv[t]), f, q + off);
      else tile_general(x, 0, off, 1, t < full ? QUANT_TILE : k - t * QUANT_TILE, k, fmt, pow2, f, q, scales + i * nt + t);
    }
  }
  if (inv != inv_stack) free(inv);
}

/* FP32 blocks, one block row at a time: pass 1 streams its rows and keeps each full block's integer
 * max, pass 2 converts the finite full blocks; partial and non-finite blocks take the general path. */
static void block_f32(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nbr = quant_tiles(n), nbc = quant_tiles(k), fullc = k / QUANT_TILE;
  int32_t mx_stack[64];
  float inv_stack[64];
  int32_t *mx = nbc <= 64 ? mx_stack : util_xmalloc((size_t)nbc * sizeof *mx);
  float *inv = nbc <= 64 ? inv_stack : util_xmalloc((size_t)nbc * sizeof *inv);
  for (int64_t br = 0; br < nbr; br++) {
    int64_t r0 = br * QUANT_TILE, rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;
    for (int64_t b = 0; b < fullc; b++) mx[b] = 0;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t b = 0; b < fullc; b++) {
        int64_t off = (r0 + r) * k + b * QUANT_TILE;
        for (int j = 0; j < 8; j++) _mm_prefetch((const char *)(w + off + 2048) + 64 * j, _MM_HINT_T0);
        int32_t ab = amax_bits_f32(w + off);
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
        tile_general(w, 0, r0 * k + c0, rows, cols, k, fmt, pow2, f, q, st);
      }
    }
    for (int64_t r = 0; r < rows; r++)
      for (int64_t b = 0; b < fullc; b++)
        if (inv[b] != 0.0f) {
          int64_t off = (r0 + r) * k + b * QUANT_TILE;
          convert_tile_f32(w + off, _mm256_set1_ps(inv[b]), f, q + off);
        }
  }
  if (mx != mx_stack) free(mx);
  if (inv != inv_stack) free(inv);
}

/* ---- BF16 fast paths. A full tile (or block) of finite values is converted 32 elements at a time
 * with no widening shuffles: one 256-bit load of 16 raw words gives 8 floats of its even elements
 * (a 32-bit shift) and 8 of its odd ones (a mask). Each is scaled by the inverse scale times
 * 2^-(127 - fp8 bias), so that its float exponent field is the FP8 one, and rounded to the FP8
 * mantissa by the FPU (q8_fma_bits); the rounded bits, sign << 31 | code << drop, come down into
 * the low words (even elements) and the high words (odd elements) in element order, one multiply-
 * add of byte pairs puts each sign beside its code, and one byte pack and one qword permutation
 * store 32 codes. No clamping: see the AVX-512 file.
 *
 * Lanes whose |x| / scale is below the smallest FP8 normal (zeros included) need the subnormal
 * branch. They are found after the fact: such a lane's scaled value is a float denormal, which the
 * fast path turns into a subnormal code (exponent field 0), while every normal code it produces is
 * right (a value rounded up to the smallest normal included). A group of 64 holding one is redone
 * by the general rounding (q8_rne_bits), so that the one or two such lanes of a 128x128 block of
 * real weights cost only their group. The fast path's 256-bit ops per 64 elements: 8 multiplies, 16 FMAs and 4
 * byte multiply-adds (the FMA pipes), 12 shifts, 4 shuffles, 16 logic ops, and 5 for the check:
 * about 40 cycles per 128 elements in L1 on a Zen 5, 50 with the reduction pass. */

/* Largest of 16 unsigned words, as float32 bits (the word in the top half). */
static inline int32_t hmax_u16(__m256i v) {
  __m128i m = _mm_max_epu16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  /* phminposuw finds the minimum of 8 words; the maximum is 0xffff - min(0xffff - x) */
  return (0xffff - (_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(m, _mm_set1_epi16(-1)))) & 0xffff)) << 16;
}

/* Largest and smallest magnitude words, lane by lane, of the 128 BF16 elements at p: trees over
 * the eight loads, written out (a rolled loop would serialise them; an array of the loads was 4x
 * slower: gcc kept it in memory). Inf/NaN sort above every finite value. */
static inline __attribute__((always_inline)) void minmax128_bf16(const bf16_t *p, __m256i *hi, __m256i *lo) {
  const __m256i mag = _mm256_set1_epi16(0x7fff);
#define Q8_LD(j) __m256i a##j = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(p + 16 * (j))), mag)
  Q8_LD(0); Q8_LD(1); Q8_LD(2); Q8_LD(3); Q8_LD(4); Q8_LD(5); Q8_LD(6); Q8_LD(7);
#undef Q8_LD
  *hi = _mm256_max_epu16(_mm256_max_epu16(_mm256_max_epu16(a0, a1), _mm256_max_epu16(a2, a3)),
                         _mm256_max_epu16(_mm256_max_epu16(a4, a5), _mm256_max_epu16(a6, a7)));
  *lo = _mm256_min_epu16(_mm256_min_epu16(_mm256_min_epu16(a0, a1), _mm256_min_epu16(a2, a3)),
                         _mm256_min_epu16(_mm256_min_epu16(a4, a5), _mm256_min_epu16(a6, a7)));
}

/* The largest alone (the unused minimum is dropped by the compiler). */
static inline __attribute__((always_inline)) __m256i max128_bf16(const bf16_t *p) {
  __m256i hi, lo;
  minmax128_bf16(p, &hi, &lo);
  (void)lo;
  return hi;
}

/* Smallest of 16 unsigned words. */
static inline uint16_t hmin_u16(__m256i v) {
  __m128i m = _mm_min_epu16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return (uint16_t)_mm_cvtsi128_si32(_mm_minpos_epu16(m));
}

/* The scale of a BF16 tile or block from its largest magnitude bits: stores it at *st and returns
 * its inverse, or 0 (storing nothing) when the tile holds Inf/NaN, which the general path then
 * converts. *slow = 1 when the inverse times f->unbias is not a normal float (scales above 64 for
 * E4M3, 16384 for E5M2: the fast path's products would not be exact), so that every group takes
 * the general rounding. */
static inline float tile_inv_bf16(int32_t amax_bits, kn_dtype fmt, int pow2, const q8_fmt *f, float *st, uint8_t *slow) {
  if (amax_bits >= 0x7f800000) return 0.0f;
  *st = quant_scale_of(kn_bits_f32((uint32_t)amax_bits), fmt, pow2);
  float inv = 1.0f / *st;
  *slow = inv < kn_bits_f32((uint32_t)f->min_normal);
  return inv;
}

/* tile_inv_bf16 for the n tiles (or blocks) of a row, 8 at a time: the scale formula's IEEE
 * operations (quant_scale_of's) on 8 lanes give the same bits without two scalar divisions per
 * tile, which would otherwise bound the whole reduction pass. Scales go to st[0..n) (those of tiles
 * holding Inf/NaN are rewritten by the general path). */
static void tile_invs_bf16(const int32_t *amax_bits, int64_t n, kn_dtype fmt, int pow2, const q8_fmt *f, float *st,
                           float *inv, uint8_t *slow) {
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
    _mm256_storeu_ps(st + t, sc);
    _mm256_storeu_ps(inv + t, _mm256_and_ps(iv, _mm256_castsi256_ps(fin)));
    int sl = _mm256_movemask_ps(_mm256_cmp_ps(iv, _mm256_castsi256_ps(_mm256_set1_epi32(f->min_normal)), _CMP_LT_OQ));
    for (int j = 0; j < 8; j++) slow[t + j] = (uint8_t)((sl >> j) & 1);
  }
  for (; t < n; t++) inv[t] = tile_inv_bf16(amax_bits[t], fmt, pow2, f, st + t, slow + t);
}

/* The general rounding: y = |x| / scale (finite, at most fp8_max) -> bits whose bits drop.. hold the
 * code and nothing above it: normal values rounded to nearest even in the integers (rounding and
 * re-bias in q8_fmt.rnd), values below the smallest normal by one float addition of f->magic. */
static inline __attribute__((always_inline)) __m256i q8_rne_bits(__m256 y, const q8_fmt *f) {
  __m256i yi = _mm256_castps_si256(y);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(yi, f->drop), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(_mm256_add_epi32(yi, _mm256_set1_epi32(f->rnd)), lsb);
  __m256 magic = _mm256_set1_ps(f->magic);
  __m256i cs = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(y, magic)), _mm256_castps_si256(magic));
  __m256i below = _mm256_cmpgt_epi32(_mm256_set1_epi32(f->min_normal), yi);
  return _mm256_blendv_epi8(r, _mm256_slli_epi32(cs, f->drop), below);
}

/* The fast rounding: y = x / scale * f->unbias, a normal float (|x| / scale at least the smallest
 * FP8 normal; then y is exactly the product with the unscaled inverse times a power of two) whose
 * exponent field is the FP8 one. With C = +-2^e, y's sign and binade, fl(y + C * big) is y rounded
 * to nearest even at the FP8 mantissa's last bit (the ulp of C * big; symmetric in the sign), and
 * subtracting C * big back is exact: the bits are sign << 31 | code << drop and nothing else. A
 * denormal y (|x| / scale below the smallest normal) has C = +-0 and comes out as itself: a
 * subnormal code (truncated, not rounded: redone by the caller). */
static inline __attribute__((always_inline)) __m256i q8_fma_bits(__m256 y, const q8_fmt *f) {
  __m256 c = _mm256_and_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32((int)0xff800000u)));
  __m256 big = _mm256_set1_ps(f->big);
  return _mm256_castps_si256(_mm256_fnmadd_ps(c, big, _mm256_fmadd_ps(c, big, y)));
}

/* 16 finite BF16 elements -> 16 codes in words, in element order. Fast (slow = 0): x = the raw
 * words, scaled by ivb = inverse scale * f->unbias; each word comes out as sign << (31 - drop) |
 * code, and the multiply-add of byte pairs (low byte times 1 plus high byte times 2^(drop - 16))
 * moves the sign next to the code. General (slow = 1): x = the magnitude words, scaled by iv, the
 * inverse scale; the codes come unsigned. */
static inline __attribute__((always_inline)) __m256i q8_words16_bf16(__m256i x, __m256 iv, __m256 ivb, const q8_fmt *f,
                                                                     int slow) {
  __m256 ev = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  __m256 od = _mm256_castsi256_ps(_mm256_blend_epi16(x, _mm256_setzero_si256(), 0x55)); /* low words cleared */
  if (slow) {
    __m256i re = q8_rne_bits(_mm256_mul_ps(ev, iv), f), ro = q8_rne_bits(_mm256_mul_ps(od, iv), f);
    return _mm256_blend_epi16(_mm256_srli_epi32(re, f->drop), _mm256_srli_epi32(ro, f->drop - 16), 0xaa);
  }
  __m256i re = q8_fma_bits(_mm256_mul_ps(ev, ivb), f), ro = q8_fma_bits(_mm256_mul_ps(od, ivb), f);
  __m256i w = _mm256_or_si256(_mm256_srli_epi32(re, f->drop), _mm256_srli_epi32(ro, f->drop - 16));
  return _mm256_maddubs_epi16(w, _mm256_set1_epi16((short)(1 | 1 << (f->drop - 16) << 8)));
}

/* 32 finite BF16 elements (raw words r0, r1) -> 32 codes, by the fast rounding. */
static inline __attribute__((always_inline)) __m256i q8_cvt32_fast(__m256i r0, __m256i r1, __m256 ivb, const q8_fmt *f) {
  __m256i c = _mm256_packus_epi16(q8_words16_bf16(r0, ivb, ivb, f, 0), q8_words16_bf16(r1, ivb, ivb, f, 0));
  return _mm256_permute4x64_epi64(c, 0xd8);
}

/* 32 finite BF16 elements (raw words r0, r1) -> 32 codes, by the general rounding; the signs come
 * from a signed saturating pack of the raw words (a negative word packs to a byte with its top bit
 * set). */
static inline __attribute__((always_inline)) __m256i q8_cvt32_slow(__m256i r0, __m256i r1, __m256 iv, const q8_fmt *f) {
  const __m256i mag = _mm256_set1_epi16(0x7fff);
  __m256i c = _mm256_packus_epi16(q8_words16_bf16(_mm256_and_si256(r0, mag), iv, iv, f, 1),
                                  q8_words16_bf16(_mm256_and_si256(r1, mag), iv, iv, f, 1));
  __m256i sg = _mm256_and_si256(_mm256_packs_epi16(r0, r1), _mm256_set1_epi8((char)0x80));
  return _mm256_permute4x64_epi64(_mm256_or_si256(c, sg), 0xd8);
}

/* The exponent bits of E4M3 and E5M2 codes, 32 bytes each: a code with none of them set is
 * subnormal (or zero). Read from memory, so that the compiler does not rebuild them per group. */
static const uint8_t q8_exp_bits[2][32] __attribute__((aligned(32))) = {
    {0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
     0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78},
    {0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c,
     0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c, 0x7c}};

/* 64 finite BF16 elements times iv -> 64 codes at q: the fast rounding unless slow, and the general
 * one for the group when the fast one gave a subnormal code (no exponent bit set). */
static inline __attribute__((always_inline)) void cvt64_bf16(const bf16_t *x, __m256 iv, __m256 ivb, int slow,
                                                             const q8_fmt *f, fp8_t *q) {
  __m256i r0 = _mm256_loadu_si256((const __m256i *)x), r1 = _mm256_loadu_si256((const __m256i *)(x + 16));
  __m256i r2 = _mm256_loadu_si256((const __m256i *)(x + 32)), r3 = _mm256_loadu_si256((const __m256i *)(x + 48));
  if (!slow) {
    __m256i c0 = q8_cvt32_fast(r0, r1, ivb, f), c1 = q8_cvt32_fast(r2, r3, ivb, f);
    const __m256i e = _mm256_load_si256((const __m256i *)q8_exp_bits[f->drop == 21]);
    __m256i lo = _mm256_min_epu8(_mm256_and_si256(c0, e), _mm256_and_si256(c1, e));
    if (!_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, _mm256_setzero_si256()))) {
      _mm256_storeu_si256((__m256i *)q, c0), _mm256_storeu_si256((__m256i *)(q + 32), c1);
      return;
    }
  }
  _mm256_storeu_si256((__m256i *)q, q8_cvt32_slow(r0, r1, iv, f));
  _mm256_storeu_si256((__m256i *)(q + 32), q8_cvt32_slow(r2, r3, iv, f));
}

/* A full BF16 tile of finite values with inverse scale inv; slow: as for cvt64_bf16. */
static inline __attribute__((always_inline)) void cvt_tile_bf16(const bf16_t *x, float inv, int slow, const q8_fmt *f,
                                                                fp8_t *q) {
  __m256 iv = _mm256_set1_ps(inv), ivb = _mm256_set1_ps(inv * f->unbias);
  cvt64_bf16(x, iv, ivb, slow, f, q);
  cvt64_bf16(x + 64, iv, ivb, slow, f, q + 64);
}

/* ---- BF16 blocks by table. A BF16 value is 2^(e - 127) * (1 + m / 128) (e its exponent field, m
 * its 7 mantissa bits), and the inverse scale is 2^E * s with s in [1, 2). When x * inv is an FP8
 * normal value, fl(x * inv) = 2^(e - 127 + E) * fl((1 + m / 128) * s) exactly (a power of two
 * scales a normal float exactly), so its code is the code of p_m = fl((1 + m / 128) * s), a value in
 * [1, 4), plus (e - 127 + E) << D (D: the FP8 mantissa bits): a function of m alone plus one of e
 * alone. The block's 128 codes C[m] (with (E - 127) << D folded in, mod 256) are computed once per
 * block by the general rounding; the conversion then adds (e << D) mod 256, shifted out of the raw
 * word, to C[m], all in bytes (the true code fits a byte, so arithmetic mod 256 is exact). C[m] is
 * looked up with two 16-entry byte shuffles: codes are non-decreasing in m, and within a group of
 * 8 m (bucket m >> 3) they rise by at most one (consecutive m move p by at most 2/128; checked for
 * all 2^23 inverse-scale mantissas of both formats, and the exponent does not change the shape), so
 * C[m] = base + 1 + (m % 8 < thr ? -1 : 0) with base and thr per bucket. A block whose codes did
 * not have that shape would take the float paths above.
 * Lanes whose exponent field is below emin = 128 - bias - E (zeros included) may give an FP8
 * subnormal, which this identity does not cover: a group of 64 holding one takes cvt64_bf16 (the
 * reduction keeps each tile's smallest magnitude word, so that only tiles holding such a lane pay
 * for the group test). Per 32 elements: 20 256-bit ops, none on the FMA pipes (the float path: 30,
 * 14 of them there); on a tile in L1 on the Zen 5 measured, 1.9x the float path's rate (1.4x with
 * the group test). */

/* A block's tables: tb[bucket] = base + 1, tt[bucket] = thr, lim = emin << 7 (a magnitude word
 * below it needs the float path). */
typedef struct q8_tab {
  uint8_t tb[16], tt[16];
  uint16_t lim;
} q8_tab;

/* Builds t for inverse scale inv; returns 0 when the block must take the float paths. */
static int q8_tab_build(float inv, const q8_fmt *f, q8_tab *t) {
  uint32_t ib = kn_f32_bits(inv);
  int eb = (int)(ib >> 23) & 0xff, d = 23 - f->drop, bias = 127 - (f->rebias >> d);
  if (eb == 0 || eb == 255) return 0;
  int emin = 128 - bias - (eb - 127);
  if (emin > 254) return 0;
  __m256 s = _mm256_set1_ps(kn_bits_f32((ib & 0x7fffffu) | 0x3f800000u));
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), one = _mm256_set1_epi32(1);
  for (int b = 0; b < 16; b++) { /* bucket b: p_m for m = 8b..8b+7, rounded to its code (normal: p >= 1) */
    __m256i m = _mm256_add_epi32(_mm256_set1_epi32(8 * b), lane);
    __m256 x = _mm256_castsi256_ps(_mm256_or_si256(_mm256_slli_epi32(m, 16), _mm256_set1_epi32(0x3f800000)));
    __m256i code = _mm256_srli_epi32(q8_rne_bits(_mm256_mul_ps(x, s), f), f->drop);
    /* codes are non-decreasing in m; the bucket fits when they rise by at most 1 over it */
    __m256i dd = _mm256_sub_epi32(code, _mm256_broadcastd_epi32(_mm256_castsi256_si128(code)));
    if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_or_si256(_mm256_cmpgt_epi32(dd, one),
                                                                _mm256_cmpgt_epi32(_mm256_setzero_si256(), dd)))))
      return 0;
    t->tb[b] = (uint8_t)(_mm256_cvtsi256_si32(code) + 1 + (eb - 254) * (1 << d)); /* + (E - 127) << D, mod 256 */
    t->tt[b] = (uint8_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(dd, _mm256_setzero_si256()))));
  }
  t->lim = (uint16_t)((emin < 1 ? 1 : emin) << 7);
  return 1;
}

/* 32 finite BF16 elements (raw words r0, r1) -> 32 codes by the tables (every lane's exponent field
 * at least emin). */
static inline __attribute__((always_inline)) __m256i q8_cvt32_tab(__m256i r0, __m256i r1, __m256i tb, __m256i tt,
                                                                 const q8_fmt *f) {
  const int d = 23 - f->drop;
  const __m256i lo = _mm256_set1_epi16(0xff), em = _mm256_set1_epi16((short)(0xff & (0xff << d)));
  __m256i m8 = _mm256_packus_epi16(_mm256_and_si256(r0, lo), _mm256_and_si256(r1, lo)); /* e & 1 | m */
  __m256i bk = _mm256_and_si256(_mm256_srli_epi16(m8, 3), _mm256_set1_epi8(0x0f));
  __m256i st = _mm256_cmpgt_epi8(_mm256_shuffle_epi8(tt, bk), _mm256_and_si256(m8, _mm256_set1_epi8(7)));
  __m256i c = _mm256_add_epi8(_mm256_shuffle_epi8(tb, bk), st);
  __m256i e8 = _mm256_packus_epi16(_mm256_and_si256(_mm256_srli_epi16(r0, 7 - d), em),
                                   _mm256_and_si256(_mm256_srli_epi16(r1, 7 - d), em)); /* (e << D) mod 256 */
  __m256i sg = _mm256_and_si256(_mm256_packs_epi16(r0, r1), _mm256_set1_epi8((char)0x80));
  return _mm256_permute4x64_epi64(_mm256_or_si256(_mm256_add_epi8(c, e8), sg), 0xd8);
}

/* A full BF16 tile of finite values by the tables; chk: some lane of the block may be below t->lim,
 * so each group of 64 is tested and one holding such a lane goes to cvt64_bf16 (iv, slow: as
 * there). */
static inline __attribute__((always_inline)) void cvt_tile_tab(const bf16_t *x, const q8_tab *t, int chk, float inv,
                                                               int slow, const q8_fmt *f, fp8_t *q) {
  __m256i tb = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t->tb));
  __m256i tt = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t->tt));
  for (int g = 0; g < 2; g++) {
    const bf16_t *p = x + 64 * g;
    __m256i r0 = _mm256_loadu_si256((const __m256i *)p), r1 = _mm256_loadu_si256((const __m256i *)(p + 16));
    __m256i r2 = _mm256_loadu_si256((const __m256i *)(p + 32)), r3 = _mm256_loadu_si256((const __m256i *)(p + 48));
    if (chk) {
      const __m256i mag = _mm256_set1_epi16(0x7fff), lim = _mm256_set1_epi16((short)t->lim);
      __m256i mn = _mm256_min_epu16(_mm256_min_epu16(_mm256_and_si256(r0, mag), _mm256_and_si256(r1, mag)),
                                    _mm256_min_epu16(_mm256_and_si256(r2, mag), _mm256_and_si256(r3, mag)));
      if (!_mm256_testz_si256(_mm256_cmpgt_epi16(lim, mn), _mm256_set1_epi16(-1))) {
        cvt64_bf16(p, _mm256_set1_ps(inv), _mm256_set1_ps(inv * f->unbias), slow, f, q + 64 * g);
        continue;
      }
    }
    _mm256_storeu_si256((__m256i *)(q + 64 * g), q8_cvt32_tab(r0, r1, tb, tt, f));
    _mm256_storeu_si256((__m256i *)(q + 64 * g + 32), q8_cvt32_tab(r2, r3, tb, tt, f));
  }
}

#define Q8_AHEAD_BF16 6144 /* BF16 elements prefetched ahead of a reduction that streams from memory */
#define Q8_AHEAD_CVT 2048  /* and ahead of the block quantizer's conversion pass, which reads back from L2/L3 */

/* BF16 rows, two passes per row (every full tile's scale, then the conversions from L1); the
 * conversions of row i prefetch row i + 1, so that memory keeps streaming while they compute.
 * Inlined with a constant format so that its constants become immediates. */
static inline __attribute__((always_inline)) void token_bf16_fmt(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt,
                                                                 int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k), full = k / QUANT_TILE;
  int heap = full > 64;
  float inv_stack[64], *inv = heap ? util_xmalloc((size_t)full * sizeof *inv) : inv_stack;
  int32_t ab_stack[64], *ab = heap ? util_xmalloc((size_t)full * sizeof *ab) : ab_stack;
  uint8_t slow_stack[64], *slow = heap ? util_xmalloc((size_t)full) : slow_stack;
  for (int64_t i = 0; i < m; i++) {
    const bf16_t *row = x + i * k;
    for (int64_t t = 0; t < full; t++) {
      if (i == 0)
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(row + t * QUANT_TILE + Q8_AHEAD_BF16) + 64 * j, _MM_HINT_T0);
      ab[t] = hmax_u16(max128_bf16(row + t * QUANT_TILE));
    }
    tile_invs_bf16(ab, full, fmt, pow2, f, scales + i * nt, inv, slow); /* inv 0: tile_general */
    for (int64_t t = 0; t < nt; t++) {
      int64_t off = i * k + t * QUANT_TILE;
      if (i + 1 < m)
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(x + off + k) + 64 * j, _MM_HINT_T0);
      if (t < full && inv[t] != 0.0f) cvt_tile_bf16(x + off, inv[t], slow[t], f, q + off);
      else tile_general(x, 1, off, 1, t < full ? QUANT_TILE : k - t * QUANT_TILE, k, fmt, pow2, f, q, scales + i * nt + t);
    }
  }
  if (heap) free(inv), free(ab), free(slow);
}

static void token_bf16(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  if (fmt == KN_FP8_E5M2) token_bf16_fmt(x, m, k, KN_FP8_E5M2, pow2, q, scales);
  else token_bf16_fmt(x, m, k, KN_FP8_E4M3, pow2, q, scales);
}

#define Q8_MAX_BLOCKS 64 /* blocks per block row kept on the stack (K <= 8192); more are malloc'd */

/* BF16 blocks, software-pipelined over block rows: while row r of block row br is reduced
 * (streaming from memory in address order, prefetched ahead), row r of block row br - 1 is
 * converted (from L2/L3, where the reduction left it, prefetched ahead as well), so that the
 * memory stream never waits for the arithmetic. The reduction keeps each block's largest magnitude
 * word and each tile's (one row of a block) smallest; full finite blocks are converted by their
 * tables (q8_tab), a tile whose smallest word is below the block's lim with its groups of 64
 * tested, a block whose codes did not fit the tables by the float path. A last partial block row,
 * a partial block column and blocks holding Inf/NaN take tile_general. */
static inline __attribute__((always_inline)) void block_bf16_fmt(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt,
                                                                 int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nfr = n / QUANT_TILE, nbc = quant_tiles(k), fullc = k / QUANT_TILE, nb = fullc ? fullc : 1;
  uint16_t mx_stack[Q8_MAX_BLOCKS * 16];
  float inv_stack[2 * Q8_MAX_BLOCKS];
  int32_t ab_stack[Q8_MAX_BLOCKS];
  uint8_t slow_stack[2 * Q8_MAX_BLOCKS], tabok_stack[2 * Q8_MAX_BLOCKS];
  q8_tab tab_stack[2 * Q8_MAX_BLOCKS];
  int heap = nb > Q8_MAX_BLOCKS;
  uint16_t *mx = heap ? util_xmalloc((size_t)nb * 16 * sizeof *mx) : mx_stack; /* [block][16 lanes], unaligned */
  float *inv = heap ? util_xmalloc((size_t)nb * 2 * sizeof *inv) : inv_stack; /* [block row parity][block] */
  int32_t *ab = heap ? util_xmalloc((size_t)nb * sizeof *ab) : ab_stack;
  uint8_t *slow = heap ? util_xmalloc((size_t)nb * 2) : slow_stack;
  uint8_t *tabok = heap ? util_xmalloc((size_t)nb * 2) : tabok_stack; /* 0: the float path */
  q8_tab *tab = heap ? util_xmalloc((size_t)nb * 2 * sizeof *tab) : tab_stack;
  uint16_t *tmin = util_xmalloc((size_t)nb * 2 * QUANT_TILE * sizeof *tmin); /* [parity][row][block] */
  /* Plain stores: 32-byte non-temporal ones (two per line) made the 4096 x 7168 bench 15% slower
   * at one thread on the Zen 5 measured, and no faster at two (the AVX-512 path's 64-byte ones
   * help). */
  for (int64_t br = 0; br <= nfr; br++) {
    int cur = (int)(br & 1), red = br < nfr;
    const float *pinv = inv + (cur ^ 1) * nb;
    const uint8_t *pslow = slow + (cur ^ 1) * nb, *ptabok = tabok + (cur ^ 1) * nb;
    const q8_tab *ptab = tab + (cur ^ 1) * nb;
    memset(mx, 0, (size_t)nb * 16 * sizeof *mx);
    for (int64_t r = 0; r < QUANT_TILE; r++) {
      const bf16_t *pr = w + (br * QUANT_TILE + r) * k;        /* reduced (block row br) */
      int64_t cr = (br - 1) * QUANT_TILE + r;                   /* converted (block row br - 1) */
      uint16_t *tm = tmin + (cur * QUANT_TILE + r) * nb;
      const uint16_t *ptm = tmin + ((cur ^ 1) * QUANT_TILE + r) * nb;
      for (int64_t b = 0; b < fullc; b++) {
        if (red) {
          for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(pr + b * QUANT_TILE + Q8_AHEAD_BF16) + 64 * j, _MM_HINT_T0);
          __m256i *m = (__m256i *)(mx + 16 * b), hi, lo;
          minmax128_bf16(pr + b * QUANT_TILE, &hi, &lo);
          _mm256_storeu_si256(m, _mm256_max_epu16(_mm256_loadu_si256(m), hi));
          tm[b] = hmin_u16(lo);
        }
        if (br == 0) continue;
        const bf16_t *x = w + cr * k + b * QUANT_TILE;
        /* the converted rows come back from L2 or (K > 4096) L3: fetched ahead too */
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(x + Q8_AHEAD_CVT) + 64 * j, _MM_HINT_T0);
        if (pinv[b] == 0.0f) continue;
        fp8_t *qt = q + cr * k + b * QUANT_TILE;
        /* two inlined copies, tested and not: one copy with the test behind a run-time flag was
         * 9-11% slower on 7168 x 2048 at one thread (measured) */
        if (!ptabok[b]) cvt_tile_bf16(x, pinv[b], pslow[b], f, qt);
        else if (ptm[b] >= ptab[b].lim) cvt_tile_tab(x, ptab + b, 0, pinv[b], pslow[b], f, qt);
        else cvt_tile_tab(x, ptab + b, 1, pinv[b], pslow[b], f, qt);
      }
    }
    if (!red) break;
    for (int64_t b = 0; b < fullc; b++) ab[b] = hmax_u16(_mm256_loadu_si256((const __m256i *)(mx + 16 * b)));
    tile_invs_bf16(ab, fullc, fmt, pow2, f, scales + br * nbc, inv + cur * nb, slow + cur * nb);
    for (int64_t b = 0; b < fullc; b++)
      tabok[cur * nb + b] = inv[cur * nb + b] != 0.0f && q8_tab_build(inv[cur * nb + b], f, tab + cur * nb + b);
    for (int64_t b = 0; b < nbc; b++)
      if (b >= fullc || inv[cur * nb + b] == 0.0f) /* converted here */
        tile_general(w, 1, br * QUANT_TILE * k + b * QUANT_TILE, QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE,
                     k, fmt, pow2, f, q, scales + br * nbc + b);
  }
  for (int64_t b = 0; n % QUANT_TILE && b < nbc; b++)
    tile_general(w, 1, nfr * QUANT_TILE * k + b * QUANT_TILE, n % QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE,
                 k, fmt, pow2, f, q, scales + nfr * nbc + b);
  free(tmin);
  if (heap) free(mx), free(inv), free(ab), free(slow), free(tabok), free(tab);
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
