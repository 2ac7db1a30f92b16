/* kernels/cpu/quant_avx512.c — AVX-512 FP8 quantizers, bit-identical to kernels/ref/quant_ref.c.
 *
 * A 1x128 tile is 8 ZMM registers: it is loaded once, its max-abs reduced, the scale computed by
 * the same scalar function as the reference (quant_scale_of), and the registers scaled and
 * converted in place. FP32 -> FP8 conversion is done on the bits: normal results round the
 * mantissa to nearest even with the integer "add 0x7ff..+lsb" trick, subnormal results come from
 * one float addition of a magic constant (2^14 for E4M3, 2^7 for E5M2) whose ulp is the FP8
 * subnormal step, so the FPU does the round-to-nearest-even.
 *
 * Two passes per row (token) or block row (block): first every full tile's integer max and min
 * over the magnitude bits (16-bit lanes for BF16), which also flags Inf/NaN, and its scale; then
 * the conversions. A full tile of finite values takes the short path: |x| / scale with the exponent
 * re-bias folded into the rounding constant, no clamping (nothing can exceed the largest code),
 * the subnormal branch only when the tile's smallest value needs it, the sign put back with one
 * ternary-logic op, BF16 widened by interleaving with zeros and the codes packed 64 per store. The
 * general path (partial tiles, tiles holding Inf/NaN) masks lanes and blends the special codes.
 * Loads are prefetched ahead: the reduction -> scale -> convert chain keeps the out-of-order
 * window short. Only called after a CPUID check (quant_backend). */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "util.h"

/* Per-format constants of the bit conversion. */
typedef struct q8_fmt {
  int drop;             /* float mantissa bits dropped: 20 (E4M3), 21 (E5M2) */
  int rebias;           /* (127 - fp8 bias) << fp8 mantissa bits */
  uint32_t min_normal;  /* bits of the smallest FP8 normal as float32 */
  float magic;          /* 2^(subnormal step exponent + 23) */
  int max_code;         /* largest finite magnitude code */
  int inf_code;         /* code of +Inf (E5M2) or the saturation code (E4M3) */
  int nan_code;         /* code of NaN */
  int32_t rnd;          /* (1 << (drop - 1)) - 1 - (rebias << drop): rounding and re-bias at once */
} q8_fmt;

static const q8_fmt q8_e4m3 = {20, 120 << 3, 0x3c800000u, 16384.0f, 0x7e, 0x7e, 0x7f,
                               (1 << 19) - 1 - (120 << 3 << 20)};
static const q8_fmt q8_e5m2 = {21, 112 << 2, 0x38800000u, 128.0f, 0x7b, 0x7c, 0x7e,
                               (1 << 20) - 1 - (112 << 2 << 21)};

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

/* The common case: a = |x| / scale with every |x| of the tile finite, so a <= fp8_max (1 + 2^-22)
 * and no code can pass max_code (the next code's midpoint is 1/28 above fp8_max): no clamping.
 * v = x gives the sign. Lanes below the smallest normal (zeros included) take the subnormal
 * branch, rare in real data. */
static inline __m512i q8_codes_finite(__m512 a, __m512 v, const q8_fmt *f, int chk) {
  __m512i ai = _mm512_castps_si512(a);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(ai, f->drop), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(ai, _mm512_set1_epi32(f->rnd)), lsb);
  __m512i code = _mm512_srai_epi32(r, f->drop);
  __mmask16 sub = chk ? _mm512_cmplt_epu32_mask(ai, _mm512_set1_epi32((int)f->min_normal)) : 0;
  if (sub) {
    __m512 magic = _mm512_set1_ps(f->magic);
    __m512i t = _mm512_castps_si512(_mm512_add_ps(a, magic));
    code = _mm512_mask_sub_epi32(code, sub, t, _mm512_castps_si512(magic));
  }
  __m512i sg = _mm512_srli_epi32(_mm512_castps_si512(v), 24);
  return _mm512_ternarylogic_epi32(code, sg, _mm512_set1_epi32(0x80), 0xf8);
}

static inline __m128i q8_cvt_finite(__m512 a, __m512 v, const q8_fmt *f, int chk) {
  return _mm512_cvtepi32_epi8(q8_codes_finite(a, v, f, chk));
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

#define Q8_AHEAD 2048 /* elements prefetched ahead of the tile being reduced */

static inline __m512 load16(const void *x, int bf16, int64_t i, __mmask16 m) {
  return bf16 ? load_bf16((const bf16_t *)x + i, m) : load_f32((const float *)x + i, m);
}

/* Magnitude bits (as float32 bits) of the largest and the smallest |x| of a full tile: Inf/NaN
 * sort above every finite value. BF16 is reduced in its own 16-bit lanes, 32 at a time. */
static inline int32_t amax_bits_f32(const float *p, int32_t *minb) {
  __m512i mx = _mm512_setzero_si512(), mn = _mm512_set1_epi32(0x7fffffff);
  for (int j = 0; j < 8; j++) {
    __m512i a = _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(p + 16 * j)), _mm512_set1_epi32(0x7fffffff));
    mx = _mm512_max_epi32(mx, a);
    mn = _mm512_min_epi32(mn, a);
  }
  *minb = _mm512_reduce_min_epi32(mn);
  return _mm512_reduce_max_epi32(mx);
}

/* Largest / smallest of 32 unsigned words, as float32 bits (the word in the top half). */
static inline int32_t hmax_u16(__m512i v) {
  __m256i m8 = _mm256_max_epu16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i m4 = _mm_max_epu16(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
  /* phminposuw finds the minimum of 8 words; the maximum is 0xffff - min(0xffff - x) */
  return (0xffff - (_mm_cvtsi128_si32(_mm_minpos_epu16(_mm_xor_si128(m4, _mm_set1_epi16(-1)))) & 0xffff)) << 16;
}

static inline int32_t hmin_u16(__m512i v) {
  __m256i m8 = _mm256_min_epu16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i m4 = _mm_min_epu16(_mm256_castsi256_si128(m8), _mm256_extracti128_si256(m8, 1));
  return (_mm_cvtsi128_si32(_mm_minpos_epu16(m4)) & 0xffff) << 16;
}

static inline int32_t amax_bits_bf16(const bf16_t *p, int32_t *minb) {
  __m512i mx = _mm512_setzero_si512(), mn = _mm512_set1_epi16(0x7fff), mag = _mm512_set1_epi16(0x7fff);
  for (int j = 0; j < 4; j++) {
    __m512i a = _mm512_and_si512(_mm512_loadu_si512(p + 32 * j), mag);
    mx = _mm512_max_epu16(mx, a);
    mn = _mm512_min_epu16(mn, a);
  }
  *minb = hmin_u16(mn);
  return hmax_u16(mx);
}

/* 0 when every |x| >= the magnitude with bits minb, times inv, is a normal FP8 value (then no lane
 * of the tile can need the subnormal path: rounding is monotonic). */
static inline int needs_sub_check(int32_t minb, float inv, const q8_fmt *f) {
  return !(kn_bits_f32((uint32_t)minb) * inv >= kn_bits_f32(f->min_normal));
}

/* The scale of a tile or block from its integer max and min magnitude bits: stores it at *st and
 * returns its inverse, with *chk set when a lane may need the subnormal path; returns 0 (and
 * stores nothing) when the tile holds Inf/NaN, which the general path then converts. */
static inline float tile_inv(int32_t amax_bits, int32_t minb, kn_dtype fmt, int pow2, const q8_fmt *f, float *st,
                             char *chk) {
  if (amax_bits >= 0x7f800000) return 0.0f;
  *st = quant_scale_of(kn_bits_f32((uint32_t)amax_bits), fmt, pow2);
  float inv = 1.0f / *st;
  *chk = (char)needs_sub_check(minb, inv, f);
  return inv;
}

/* 64 codes to q: a non-temporal store (q 64-byte aligned) when nt, so that a large output goes to
 * memory without first being read for ownership. */
static inline __attribute__((always_inline)) void q8_store64(fp8_t *q, __m512i v, int nt) {
  if (nt) _mm512_stream_si512((void *)q, v);
  else _mm512_storeu_si512(q, v);
}

/* 64 finite BF16 elements times iv -> 64 codes at q, every lane checked for the subnormal branch.
 * BF16 is widened by interleaving with zero words (one op per 16 values, no shifts); the packs undo
 * the interleave within 128-bit lanes and one qword permutation orders the lanes. */
static inline void convert64_bf16_sub(const bf16_t *x, __m512 iv, const q8_fmt *f, fp8_t *q, int nt) {
  __m512i w[2];
  for (int j = 0; j < 2; j++) {
    __m512i raw = _mm512_loadu_si512(x + 32 * j);
    __m512 lo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), raw));
    __m512 hi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), raw));
    w[j] = _mm512_packus_epi32(q8_codes_finite(_mm512_mul_ps(_mm512_abs_ps(lo), iv), lo, f, 1),
                               q8_codes_finite(_mm512_mul_ps(_mm512_abs_ps(hi), iv), hi, f, 1));
  }
  q8_store64(q, _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_packus_epi16(w[0], w[1])), nt);
}

/* 128 finite FP32 elements at x times iv -> 128 codes at q, stored 64 bytes at a time; chk = 0
 * when the tile's smallest |x| times iv is a normal FP8 value: no lane can be subnormal. */
static inline void convert_tile_f32(const float *x, __m512 iv, const q8_fmt *f, fp8_t *q, int chk) {
  for (int h = 0; h < 2; h++) {
    __m128i c[4];
    for (int j = 0; j < 4; j++) {
      __m512 v = _mm512_loadu_ps(x + 64 * h + 16 * j);
      c[j] = q8_cvt_finite(_mm512_mul_ps(_mm512_abs_ps(v), iv), v, f, chk);
    }
    __m512i z = _mm512_inserti32x4(_mm512_castsi128_si512(c[0]), c[1], 1);
    z = _mm512_inserti32x4(_mm512_inserti32x4(z, c[2], 2), c[3], 3);
    _mm512_storeu_si512(q + 64 * h, z);
  }
}

/* A tile the fast path cannot take (partial, or holding Inf/NaN): masked lanes, finite amax,
 * blended special codes. */
static void tile_general(const void *x, int bf16, int64_t off, int64_t w, kn_dtype fmt, int pow2,
                         const q8_fmt *f, fp8_t *qt, float *st) {
  __m512 v[8], acc = _mm512_setzero_ps();
  int nv = (int)((w + 15) / 16);
  for (int j = 0; j < nv; j++) {
    v[j] = load16(x, bf16, off + 16 * j, tail_mask(w - 16 * j));
    acc = amax_acc(acc, v[j]);
  }
  float s = quant_scale_of(_mm512_reduce_max_ps(acc), fmt, pow2);
  __m512 inv = _mm512_set1_ps(1.0f / s);
  for (int j = 0; j < nv; j++)
    _mm512_mask_cvtepi32_storeu_epi8(qt + 16 * j, tail_mask(w - 16 * j), q8_cvt(_mm512_mul_ps(v[j], inv), f));
  *st = s;
}

/* FP32 rows, two passes per row: every full tile's amax and scale first (independent reductions,
 * so they overlap), then the conversions (the row is in L1 by then). */
static void token_f32(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nt = quant_tiles(k), full = k / QUANT_TILE;
  float inv_stack[64], *inv = full <= 64 ? inv_stack : util_xmalloc((size_t)full * sizeof *inv);
  char chk_stack[64], *chk = full <= 64 ? chk_stack : util_xmalloc((size_t)full);
  for (int64_t i = 0; i < m; i++) {
    int64_t row = i * k;
    for (int64_t t = 0; t < full; t++) {
      int64_t off = row + t * QUANT_TILE;
      for (int j = 0; j < 8; j++) _mm_prefetch((const char *)(x + off + Q8_AHEAD) + 64 * j, _MM_HINT_T0);
      int32_t minb, amax_bits = amax_bits_f32(x + off, &minb);
      inv[t] = tile_inv(amax_bits, minb, fmt, pow2, f, scales + i * nt + t, chk + t); /* 0: tile_general */
    }
    for (int64_t t = 0; t < nt; t++) {
      int64_t off = row + t * QUANT_TILE;
      if (t >= full || inv[t] == 0.0f) {
        tile_general(x, 0, off, t < full ? QUANT_TILE : k - t * QUANT_TILE, fmt, pow2, f, q + off, scales + i * nt + t);
        continue;
      }
      convert_tile_f32(x + off, _mm512_set1_ps(inv[t]), f, q + off, chk[t]);
    }
  }
  if (inv != inv_stack) free(inv), free(chk);
}

/* ---- BF16 fast paths. The conversion of a full tile of finite values with no lane below the
 * smallest normal (the common case) avoids the shift units, the bottleneck here: the rounded bits
 * r = |x| / scale + rounding stay in 32-bit lanes, one word permutation gathers their high words
 * in element order, one 16-bit shift (32 lanes) brings the codes down, a byte pack stores them, and
 * the signs come from the input words' sign bits as a 64-bit mask. About 20 cycles per 128
 * elements instead of 27 for the shift-per-16-lanes form. */

/* Word positions of the high halves of (unpacklo, unpackhi) dwords of 32 BF16 elements, in element
 * order (the second table of vpermt2w has indices 32..63). */
static const uint16_t q8_hiword_idx[32] __attribute__((aligned(64))) = {
    1, 3, 5, 7, 33, 35, 37, 39, 9, 11, 13, 15, 41, 43, 45, 47, 17, 19, 21, 23, 49, 51, 53, 55, 25, 27, 29, 31, 57, 59, 61, 63};

/* |y| bits plus the round-to-nearest-even constant and re-bias: the code sits in bits drop.. */
static inline __attribute__((always_inline)) __m512i q8_rne_bits(__m512 a, const q8_fmt *f) {
  __m512i ai = _mm512_castps_si512(a);
  __m512i r = _mm512_add_epi32(ai, _mm512_set1_epi32(f->rnd));
  return _mm512_mask_add_epi32(r, _mm512_test_epi32_mask(ai, _mm512_set1_epi32(1 << f->drop)), r, _mm512_set1_epi32(1));
}

/* The smallest BF16 magnitude word a with fl(a * inv) >= the smallest FP8 normal: lanes below it
 * (and only those) need the subnormal branch. The product is monotonic in a, so the words that
 * need it are exactly [0, thr); thr >= 1 when the tile's smallest magnitude needs it. */
static uint16_t bf16_sub_thr(float inv, const q8_fmt *f) {
  float mn = kn_bits_f32(f->min_normal);
  uint32_t g = kn_f32_bits(mn / inv) >> 16;
  if (g > 0x7f80) g = 0x7f80;
  while (g > 0 && kn_bits_f32((g - 1) << 16) * inv >= mn) g--;
  while (g < 0x7f80 && kn_bits_f32(g << 16) * inv < mn) g++;
  return (uint16_t)g;
}

/* tile_inv for a BF16 tile or block, with *thr = bf16_sub_thr when some lane may need the
 * subnormal branch and 0 when none can. */
static inline float tile_inv_bf16(int32_t amax_bits, int32_t minb, kn_dtype fmt, int pow2, const q8_fmt *f, float *st,
                                  uint16_t *thr) {
  char chk = 0;
  float inv = tile_inv(amax_bits, minb, fmt, pow2, f, st, &chk);
  *thr = inv != 0.0f && chk ? bf16_sub_thr(inv, f) : 0;
  return inv;
}

/* 64 BF16 elements times iv -> 64 codes (the fast case above). thr != 0: lanes with magnitude
 * words below thr need the subnormal branch, and a group of 64 holding one takes
 * convert64_bf16_sub (in real weights a 128x128 block nearly always has a lane or two that small,
 * which must not cost the other 16,000 the slow path). */
static inline __attribute__((always_inline)) void cvt64_bf16(const bf16_t *x, __m512 iv, int thr, const q8_fmt *f,
                                                             fp8_t *q, int nt) {
  const __m512i mag = _mm512_set1_epi16(0x7fff), idx = _mm512_load_si512(q8_hiword_idx);
  if (thr) {
    __m512i t = _mm512_set1_epi16((short)thr);
    if (_mm512_cmplt_epu16_mask(_mm512_and_si512(_mm512_loadu_si512(x), mag), t) |
        _mm512_cmplt_epu16_mask(_mm512_and_si512(_mm512_loadu_si512(x + 32), mag), t)) {
      convert64_bf16_sub(x, iv, f, q, nt);
      return;
    }
  }
  __m512i w[2], raw[2];
  _Pragma("GCC unroll 2") for (int j = 0; j < 2; j++) {
    raw[j] = _mm512_loadu_si512(x + 32 * j);
    __m512i a = _mm512_and_si512(raw[j], mag);
    __m512 lo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), a));
    __m512 hi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), a));
    __m512i hw = _mm512_permutex2var_epi16(q8_rne_bits(_mm512_mul_ps(lo, iv), f), idx, q8_rne_bits(_mm512_mul_ps(hi, iv), f));
    w[j] = _mm512_srli_epi16(hw, f->drop - 16); /* the codes, < 0x80 */
  }
  __m512i c = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_packus_epi16(w[0], w[1]));
  __mmask64 neg = _mm512_kunpackd(_mm512_movepi16_mask(raw[1]), _mm512_movepi16_mask(raw[0]));
  q8_store64(q, _mm512_mask_add_epi8(c, neg, c, _mm512_set1_epi8((char)0x80)), nt);
}

/* A full BF16 tile of finite values with inverse scale inv; thr and nt: as for cvt64_bf16. */
static inline __attribute__((always_inline)) void cvt_tile_bf16(const bf16_t *x, float inv, int thr, const q8_fmt *f,
                                                                fp8_t *q, int nt) {
  __m512 iv = _mm512_set1_ps(inv);
  if (thr) {
    /* one test for the tile: the lane-wise minimum of its magnitude words against thr */
    const __m512i mag = _mm512_set1_epi16(0x7fff);
#define Q8_MAG(j) _mm512_and_si512(_mm512_loadu_si512(x + 32 * (j)), mag)
    __m512i m = _mm512_min_epu16(_mm512_min_epu16(Q8_MAG(0), Q8_MAG(1)), _mm512_min_epu16(Q8_MAG(2), Q8_MAG(3)));
#undef Q8_MAG
    if (_mm512_cmplt_epu16_mask(m, _mm512_set1_epi16((short)thr))) {
      cvt64_bf16(x, iv, thr, f, q, nt);
      cvt64_bf16(x + 64, iv, thr, f, q + 64, nt);
      return;
    }
  }
  cvt64_bf16(x, iv, 0, f, q, nt);
  cvt64_bf16(x + 64, iv, 0, f, q + 64, nt);
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
  float inv_stack[64], *inv = full <= 64 ? inv_stack : util_xmalloc((size_t)full * sizeof *inv);
  uint16_t thr_stack[64], *thr = full <= 64 ? thr_stack : util_xmalloc((size_t)full * sizeof *thr);
  for (int64_t i = 0; i < m; i++) {
    const bf16_t *row = x + i * k;
    for (int64_t t = 0; t < full; t++) {
      if (i == 0)
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(row + t * QUANT_TILE + Q8_AHEAD_BF16) + 64 * j, _MM_HINT_T0);
      int32_t minb, amax_bits = amax_bits_bf16(row + t * QUANT_TILE, &minb);
      inv[t] = tile_inv_bf16(amax_bits, minb, fmt, pow2, f, scales + i * nt + t, thr + t); /* 0: tile_general */
    }
    for (int64_t t = 0; t < nt; t++) {
      int64_t off = i * k + t * QUANT_TILE;
      if (i + 1 < m)
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(x + off + k) + 64 * j, _MM_HINT_T0);
      if (t < full && inv[t] != 0.0f) cvt_tile_bf16(x + off, inv[t], thr[t], f, q + off, 0);
      else tile_general(x, 1, off, t < full ? QUANT_TILE : k - t * QUANT_TILE, fmt, pow2, f, q + off, scales + i * nt + t);
    }
  }
  if (inv != inv_stack) free(inv), free(thr);
}

static void token_bf16(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  if (fmt == KN_FP8_E5M2) token_bf16_fmt(x, m, k, KN_FP8_E5M2, pow2, q, scales);
  else token_bf16_fmt(x, m, k, KN_FP8_E4M3, pow2, q, scales);
}

/* n bytes for an array of __m512i (malloc's alignment is too small for the aligned moves the
 * compiler uses on them; found by test_large_bf16, K > 8192). */
static void *q8_xalloc64(size_t n) {
  void *p = aligned_alloc(64, (n + 63) / 64 * 64);
  if (!p) UTIL_SYSFAIL("aligned_alloc: out of memory (%zu bytes)", n);
  return p;
}

#define Q8_NT_BYTES (4 << 20) /* outputs from this size on are written with non-temporal stores */
#define Q8_MAX_BLOCKS 64 /* blocks per block row kept on the stack (K <= 8192); more are malloc'd */

/* One block (rows x cols at (r0, c0)) by the general path: finite amax over masked lanes, blended
 * special codes (partial blocks and blocks holding Inf/NaN). */
static void block_general(const void *w, int bf16, int64_t k, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                          kn_dtype fmt, int pow2, const q8_fmt *f, fp8_t *q, float *st) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c += 16) acc = amax_acc(acc, load16(w, bf16, (r0 + r) * k + c0 + c, tail_mask(cols - c)));
  float sc = quant_scale_of(_mm512_reduce_max_ps(acc), fmt, pow2);
  __m512 iv = _mm512_set1_ps(1.0f / sc);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c += 16) {
      __mmask16 mk = tail_mask(cols - c);
      __m512 y = _mm512_mul_ps(load16(w, bf16, (r0 + r) * k + c0 + c, mk), iv);
      _mm512_mask_cvtepi32_storeu_epi8(q + (r0 + r) * k + c0 + c, mk, q8_cvt(y, f));
    }
  *st = sc;
}

/* FP32 blocks, one block row (128 rows x K) at a time: pass 1 streams its rows in memory order and
 * reduces the magnitude bits of every block, pass 2 converts the rows again (from the last-level
 * cache) with each block's inverse scale. Partial blocks and blocks holding Inf/NaN take the
 * general per-block path. */
static void block_f32(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                      float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nbr = quant_tiles(n), nbc = quant_tiles(k), fullc = k / QUANT_TILE;
  __m512i mx_stack[Q8_MAX_BLOCKS], mn_stack[Q8_MAX_BLOCKS];
  float inv_stack[Q8_MAX_BLOCKS];
  char chk_stack[Q8_MAX_BLOCKS];
  int heap = nbc > Q8_MAX_BLOCKS;
  __m512i *mx = heap ? q8_xalloc64((size_t)nbc * sizeof *mx) : mx_stack;
  __m512i *mn = heap ? q8_xalloc64((size_t)nbc * sizeof *mn) : mn_stack;
  float *inv = heap ? util_xmalloc((size_t)nbc * sizeof *inv) : inv_stack;
  char *chk = heap ? util_xmalloc((size_t)nbc) : chk_stack;
  const __m512i mag = _mm512_set1_epi32(0x7fffffff);
  for (int64_t br = 0; br < nbr; br++) {
    int64_t r0 = br * QUANT_TILE, rows = n - r0 < QUANT_TILE ? n - r0 : QUANT_TILE;
    for (int64_t b = 0; b < fullc; b++) mx[b] = _mm512_setzero_si512(), mn[b] = mag;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t b = 0; b < fullc; b++) {
        int64_t off = (r0 + r) * k + b * QUANT_TILE;
        for (int j = 0; j < 8; j++) _mm_prefetch((const char *)(w + off + Q8_AHEAD) + 64 * j, _MM_HINT_T0);
        __m512i hi = mx[b], lo = mn[b];
        for (int j = 0; j < 8; j++) {
          __m512i a = _mm512_and_si512(_mm512_loadu_si512(w + off + 16 * j), mag);
          hi = _mm512_max_epi32(hi, a), lo = _mm512_min_epi32(lo, a);
        }
        mx[b] = hi, mn[b] = lo;
      }
    for (int64_t b = 0; b < nbc; b++) {
      int32_t amax_bits = 0x7f800000, minb = 0;
      if (b < fullc) amax_bits = _mm512_reduce_max_epi32(mx[b]), minb = _mm512_reduce_min_epi32(mn[b]);
      float *st = scales + br * nbc + b;
      inv[b] = tile_inv(amax_bits, minb, fmt, pow2, f, st, chk + b);
      if (inv[b] == 0.0f)
        block_general(w, 0, k, r0, rows, b * QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE, fmt, pow2, f, q, st);
    }
    for (int64_t r = 0; r < rows; r++)
      for (int64_t b = 0; b < fullc; b++) {
        if (inv[b] == 0.0f) continue;
        int64_t off = (r0 + r) * k + b * QUANT_TILE;
        convert_tile_f32(w + off, _mm512_set1_ps(inv[b]), f, q + off, chk[b]);
      }
  }
  if (heap) free(mx), free(mn), free(inv), free(chk);
}

/* BF16 blocks, software-pipelined over block rows: while row r of block row br is reduced
 * (streaming from memory in address order, prefetched ahead), row r of block row br - 1 is
 * converted (from L2/L3, where the reduction left it, prefetched ahead as well: 5-12% at one
 * thread, up to 25% at two, 0.48-0.77 -> 0.66-0.98 of memcpy when the VM's memory is fast), so
 * that the memory stream never waits for the arithmetic. A last partial block row, a partial block
 * column and blocks holding Inf/NaN take block_general. */
static inline __attribute__((always_inline)) void block_bf16_fmt(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt,
                                                                 int pow2, fp8_t *q, float *scales) {
  const q8_fmt *f = fmt == KN_FP8_E5M2 ? &q8_e5m2 : &q8_e4m3;
  int64_t nfr = n / QUANT_TILE, nbc = quant_tiles(k), fullc = k / QUANT_TILE, nb = fullc ? fullc : 1;
  const __m512i mag = _mm512_set1_epi16(0x7fff);
  __m512i mxmn_stack[2 * Q8_MAX_BLOCKS];
  float inv_stack[2 * Q8_MAX_BLOCKS];
  uint16_t thr_stack[2 * Q8_MAX_BLOCKS];
  int heap = nb > Q8_MAX_BLOCKS;
  __m512i *mx = heap ? q8_xalloc64((size_t)nb * 2 * sizeof *mx) : mxmn_stack, *mn = mx + nb;
  float *inv = heap ? util_xmalloc((size_t)nb * 2 * sizeof *inv) : inv_stack; /* [block row parity][block] */
  uint16_t *thr = heap ? util_xmalloc((size_t)nb * 2 * sizeof *thr) : thr_stack;
  /* A large output (weights quantized once, read later by the GEMMs) is streamed to memory */
  int nt = ((uintptr_t)q & 63) == 0 && k % 64 == 0 && n * k >= Q8_NT_BYTES;
  for (int64_t br = 0; br <= nfr; br++) {
    int cur = (int)(br & 1), red = br < nfr;
    const float *pinv = inv + (cur ^ 1) * nb;
    const uint16_t *pthr = thr + (cur ^ 1) * nb;
    for (int64_t b = 0; b < fullc; b++) mx[b] = _mm512_setzero_si512(), mn[b] = mag;
    for (int64_t r = 0; r < QUANT_TILE; r++) {
      const bf16_t *pr = w + (br * QUANT_TILE + r) * k;        /* reduced (block row br) */
      int64_t cr = (br - 1) * QUANT_TILE + r;                   /* converted (block row br - 1) */
      for (int64_t b = 0; b < fullc; b++) {
        if (red) {
          for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(pr + b * QUANT_TILE + Q8_AHEAD_BF16) + 64 * j, _MM_HINT_T0);
          __m512i hi = mx[b], lo = mn[b];
          for (int j = 0; j < 4; j++) {
            __m512i a = _mm512_and_si512(_mm512_loadu_si512(pr + b * QUANT_TILE + 32 * j), mag);
            hi = _mm512_max_epu16(hi, a), lo = _mm512_min_epu16(lo, a);
          }
          mx[b] = hi, mn[b] = lo;
        }
        if (br == 0) continue;
        /* the converted rows come back from L2 or (K > 4096) L3: fetched ahead too */
        for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(w + cr * k + b * QUANT_TILE + Q8_AHEAD_CVT) + 64 * j, _MM_HINT_T0);
        if (pinv[b] != 0.0f) cvt_tile_bf16(w + cr * k + b * QUANT_TILE, pinv[b], pthr[b], f, q + cr * k + b * QUANT_TILE, nt);
      }
    }
    if (!red) break;
    for (int64_t b = 0; b < nbc; b++) {
      float *st = scales + br * nbc + b;
      if (b < fullc) {
        /* 0: converted here by block_general */
        inv[cur * nb + b] = tile_inv_bf16(hmax_u16(mx[b]), hmin_u16(mn[b]), fmt, pow2, f, st, thr + cur * nb + b);
        if (inv[cur * nb + b] != 0.0f) continue;
      }
      block_general(w, 1, k, br * QUANT_TILE, QUANT_TILE, b * QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE,
                    fmt, pow2, f, q, st);
    }
  }
  for (int64_t b = 0; n % QUANT_TILE && b < nbc; b++)
    block_general(w, 1, k, nfr * QUANT_TILE, n % QUANT_TILE, b * QUANT_TILE, b < fullc ? QUANT_TILE : k - b * QUANT_TILE,
                  fmt, pow2, f, q, scales + nfr * nbc + b);
  if (nt) _mm_sfence();
  if (heap) free(mx), free(inv), free(thr);
}

static void block_bf16(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  if (fmt == KN_FP8_E5M2) block_bf16_fmt(w, n, k, KN_FP8_E5M2, pow2, q, scales);
  else block_bf16_fmt(w, n, k, KN_FP8_E4M3, pow2, q, scales);
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
