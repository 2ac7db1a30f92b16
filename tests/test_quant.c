/* tests/test_quant.c — FP8 quantizers: the scale formula on hand-worked values, every backend
 * bit-identical to the reference on random and edge shapes (K not a multiple of 128, M = 1, empty,
 * huge/tiny/subnormal values, NaN/Inf, every BF16 word through the block quantizers at 24 scales),
 * the vector FP8 encoders against the scalar truth on a dense sweep of float bit patterns, the round
 * trip of every FP8 code, and the dequantization error bound. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "krand.h"
#include "quant.h"
#include "test.h"

static const kn_dtype fmts[2] = {KN_FP8_E4M3, KN_FP8_E5M2};

/* The backends this CPU can run, the reference first. */
static int backends(const quant_kernels **out) {
  int n = 0;
  out[n++] = quant_ref();
  if (quant_backend(CPU_AVX2)) out[n++] = quant_backend(CPU_AVX2);
  if (quant_backend(CPU_AVX512)) out[n++] = quant_backend(CPU_AVX512);
  return n;
}

static void test_scale_formula(void) {
  /* amax 448 in E4M3 is scale 1; amax 1 is 1/448; power of two rounds 1/448 = 0.00223 up to
   * 2^-8 = 0.00390625; an all-zero tile takes the floor 1e-4 / 448. */
  T_CHECK(quant_scale_of(448.0f, KN_FP8_E4M3, 0) == 1.0f);
  T_CHECK(quant_scale_of(1.0f, KN_FP8_E4M3, 0) == 1.0f / 448.0f);
  T_CHECK(quant_scale_of(1.0f, KN_FP8_E4M3, 1) == 0x1p-8f);
  T_CHECK(quant_scale_of(0.0f, KN_FP8_E4M3, 0) == QUANT_AMAX_FLOOR / 448.0f);
  T_CHECK(quant_scale_of(57344.0f, KN_FP8_E5M2, 0) == 1.0f);
  T_CHECK(quant_scale_of(57344.0f, KN_FP8_E5M2, 1) == 1.0f); /* already a power of two */
  T_CHECK(quant_scale_of(3.0f * 57344.0f, KN_FP8_E5M2, 1) == 4.0f);
}

/* A hand-worked tile: x = {448, -224, 1, 0.001} with E4M3 gives scale 1 and codes 0x7e, 0xf6
 * (-224 = -1.75 * 2^7), 0x38 (1.0), and 0.001 = 2^-9.97 rounds to the subnormal 1 * 2^-9 = 0x01. */
static void test_hand_tile(void) {
  float x[4] = {448.0f, -224.0f, 1.0f, 0.001f};
  fp8_t q[4];
  float s;
  quant_ref()->token_f32(x, 1, 4, KN_FP8_E4M3, 0, q, &s);
  T_CHECK(s == 1.0f);
  T_EQ_INT(q[0], 0x7e);
  T_EQ_INT(q[1], 0xf6);
  T_EQ_INT(q[2], 0x38);
  T_EQ_INT(q[3], 0x01);
}

/* Fills x with per-row magnitudes from 1e-30 to 1e30 and sprinkles specials (1); or (2) with
 * activation-like values, one normal distribution of one magnitude, so that the whole tiles and
 * blocks take the vector paths' fast case (no lane below the smallest normal after scaling). */
static void fill(krand *r, float *x, int64_t n, int specials) {
  if (specials == 2) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(krand_normal(r) * 3.0);
    return;
  }
  double mag = pow(10.0, -30.0 + 60.0 * krand_unif(r));
  for (int64_t i = 0; i < n; i++) {
    if (i % 97 == 0) mag = pow(10.0, -30.0 + 60.0 * krand_unif(r));
    x[i] = (float)(krand_normal(r) * mag);
  }
  if (specials && n > 0) {
    static const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, -3e-45f, 3.4e38f};
    for (int j = 0; j < 12; j++) x[krand_below(r, (uint64_t)n)] = sp[krand_below(r, 8)];
  }
}

static int same_f32(float a, float b) { return (isnan(a) && isnan(b)) || kn_f32_bits(a) == kn_f32_bits(b); }

/* Every backend's quantizers and dequantizers against the reference, bit for bit. */
static void check_shape(const quant_kernels **be, int nbe, int64_t m, int64_t k, krand *r, int specials) {
  int64_t n = m * k, ns = m * quant_tiles(k), nbs = quant_tiles(m) * quant_tiles(k);
  float *x = malloc((size_t)(n + 1) * sizeof *x);
  bf16_t *xb = malloc((size_t)(n + 1) * sizeof *xb);
  fp8_t *q0 = malloc((size_t)n + 1), *q1 = malloc((size_t)n + 1);
  float *s0 = malloc((size_t)(ns + nbs + 1) * sizeof *s0), *s1 = malloc((size_t)(ns + nbs + 1) * sizeof *s1);
  float *d0 = malloc((size_t)(n + 1) * sizeof *d0), *d1 = malloc((size_t)(n + 1) * sizeof *d1);
  fill(r, x, n, specials);
  for (int64_t i = 0; i < n; i++) xb[i] = f32_to_bf16(x[i]);
  const quant_kernels *ref = quant_ref();
  for (int fi = 0; fi < 2; fi++)
    for (int pow2 = 0; pow2 < 2; pow2++)
      for (int b = 1; b < nbe; b++) {
        kn_dtype f = fmts[fi];
        int bad = 0;
        /* token, f32 and bf16 */
        ref->token_f32(x, m, k, f, pow2, q0, s0);
        be[b]->token_f32(x, m, k, f, pow2, q1, s1);
        bad += memcmp(q0, q1, (size_t)n) != 0 || memcmp(s0, s1, (size_t)ns * 4) != 0;
        ref->dequant_token(q0, s0, m, k, f, d0);
        be[b]->dequant_token(q0, s0, m, k, f, d1);
        for (int64_t i = 0; i < n; i++) bad += !same_f32(d0[i], d1[i]);
        ref->token_bf16(xb, m, k, f, pow2, q0, s0);
        be[b]->token_bf16(xb, m, k, f, pow2, q1, s1);
        bad += memcmp(q0, q1, (size_t)n) != 0 || memcmp(s0, s1, (size_t)ns * 4) != 0;
        /* block, f32 and bf16 (rows = m) */
        ref->block_f32(x, m, k, f, pow2, q0, s0);
        be[b]->block_f32(x, m, k, f, pow2, q1, s1);
        bad += memcmp(q0, q1, (size_t)n) != 0 || memcmp(s0, s1, (size_t)nbs * 4) != 0;
        ref->dequant_block(q0, s0, m, k, f, d0);
        be[b]->dequant_block(q0, s0, m, k, f, d1);
        for (int64_t i = 0; i < n; i++) bad += !same_f32(d0[i], d1[i]);
        ref->block_bf16(xb, m, k, f, pow2, q0, s0);
        be[b]->block_bf16(xb, m, k, f, pow2, q1, s1);
        bad += memcmp(q0, q1, (size_t)n) != 0 || memcmp(s0, s1, (size_t)nbs * 4) != 0;
        T_CHECKF(bad == 0, "%s %s pow2=%d m=%lld k=%lld: %d mismatches", be[b]->backend,
                 kn_dtype_name(f), pow2, (long long)m, (long long)k, bad);
      }
  free(x), free(xb), free(q0), free(q1), free(s0), free(s1), free(d0), free(d1);
}

static void test_backends_match_ref(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  krand r = krand_seed(1);
  static const int64_t shapes[][2] = {{1, 128}, {3, 256}, {1, 7}, {5, 200}, {130, 300}, {0, 128},
                                      {4, 0},   {1, 1},   {129, 129}, {2, 7168}, {257, 16}, {2, 8320}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int sp = 0; sp < 3; sp++) check_shape(be, nbe, shapes[i][0], shapes[i][1], &r, sp);
  /* whole 128 x 128 blocks, several block rows (the pipelined block path) and a partial one */
  check_shape(be, nbe, 384, 512, &r, 2);
  check_shape(be, nbe, 300, 384, &r, 2);
  check_shape(be, nbe, 256, 256, &r, 1);
}

/* BF16 tiles and blocks whose groups of 64 sit just below, at and just above the magnitude at
 * which a scaled value stops being a normal FP8 number: the vector paths decide per group of 64
 * whether any lane needs the subnormal branch (AVX-512 from a BF16 threshold derived from the
 * scale, AVX2 from the codes its fast rounding gives), and a threshold 8 words too low (up to
 * about 4 below, the normal formula still rounds those lanes up to the smallest normal, as the
 * subnormal branch does), or a group check that misses a lane, changes codes here. Every
 * 1x128 tile holds the amax A at its first element, so token tiles and 128x128 blocks have the
 * same scale; the other 127 elements of a tile take two words near the boundary, signs
 * alternating. */
static void test_subnormal_boundary(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  enum { M = 256, K = 256 };
  static const float amax[] = {1.0f, 3.7f, 0.013f, 300.0f};
  bf16_t *x = malloc(sizeof *x * M * K);
  fp8_t *q0 = malloc(M * K), *q1 = malloc(M * K);
  float *s0 = malloc(sizeof(float) * M * K), *s1 = malloc(sizeof(float) * M * K);
  const quant_kernels *ref = quant_ref();
  for (int fi = 0; fi < 2; fi++)
    for (int pow2 = 0; pow2 < 2; pow2++)
      for (size_t ai = 0; ai < sizeof amax / sizeof amax[0]; ai++) {
        kn_dtype f = fmts[fi];
        float a = bf16_to_f32(f32_to_bf16(amax[ai]));
        float min_normal = f == KN_FP8_E4M3 ? 0x1p-6f : 0x1p-14f;
        int bw = f32_to_bf16(min_normal * quant_scale_of(a, f, pow2));
        for (int t = 0; t < M * K / 128; t++) {
          int w0 = bw + t % 32 - 16, w1 = bw + (t / 32) % 16 - 8;
          for (int c = 0; c < 128; c++) {
            int w = c < 64 ? w0 : w1;
            x[t * 128 + c] = (bf16_t)(w | ((c & 1) << 15));
          }
          x[t * 128] = f32_to_bf16(a);
        }
        for (int b = 1; b < nbe; b++) {
          int bad = 0;
          ref->token_bf16(x, M, K, f, pow2, q0, s0);
          be[b]->token_bf16(x, M, K, f, pow2, q1, s1);
          bad += memcmp(q0, q1, M * K) != 0 || memcmp(s0, s1, sizeof(float) * M * K / 128) != 0;
          ref->block_bf16(x, M, K, f, pow2, q0, s0);
          be[b]->block_bf16(x, M, K, f, pow2, q1, s1);
          bad += memcmp(q0, q1, M * K) != 0 || memcmp(s0, s1, sizeof(float) * 4) != 0;
          T_CHECKF(bad == 0, "%s %s pow2=%d amax=%g: codes or scales differ from the reference", be[b]->backend,
                   kn_dtype_name(f), pow2, (double)a);
        }
      }
  free(x), free(q0), free(q1), free(s0), free(s1);
}

/* Compares every vector backend's BF16 token and block quantizers with the reference on x [m x k]
 * (q, scales as large as the inputs need; q 64-byte aligned, as the kernel suite allocates it, so
 * that large block outputs take the non-temporal stores). Returns the number of mismatching calls. */
static int check_bf16(const quant_kernels **be, int nbe, const bf16_t *x, int64_t m, int64_t k, kn_dtype f,
                      int pow2) {
  int64_t n = m * k, ns = m * quant_tiles(k);
  fp8_t *q0 = aligned_alloc(64, (size_t)(n + 63) / 64 * 64), *q1 = aligned_alloc(64, (size_t)(n + 63) / 64 * 64);
  float *s0 = malloc(sizeof(float) * (size_t)ns), *s1 = malloc(sizeof(float) * (size_t)ns);
  int64_t nbs = quant_tiles(m) * quant_tiles(k);
  const quant_kernels *ref = quant_ref();
  int bad = 0;
  for (int b = 1; b < nbe; b++) {
    ref->token_bf16(x, m, k, f, pow2, q0, s0);
    be[b]->token_bf16(x, m, k, f, pow2, q1, s1);
    bad += memcmp(q0, q1, (size_t)n) != 0 || memcmp(s0, s1, sizeof(float) * (size_t)ns) != 0;
    ref->block_bf16(x, m, k, f, pow2, q0, s0);
    be[b]->block_bf16(x, m, k, f, pow2, q1, s1);
    bad += memcmp(q0, q1, (size_t)n) != 0 || memcmp(s0, s1, sizeof(float) * (size_t)nbs) != 0;
  }
  free(q0), free(q1), free(s0), free(s1);
  return bad;
}

/* One lane below the smallest normal after scaling (or zero, or just below the boundary, where it
 * rounds up to the smallest normal) among normal lanes, at every position of a group and with both
 * signs: the vector paths find such lanes from the codes of the whole group and redo the group, and
 * a neighbour must not inherit anything from it. Tiles of one row have different amax, huge ones
 * included (scales over 64 resp. 16384, which the AVX2 fast path hands to its general rounding), and
 * 8 tiles per row so that the scales are computed 8 at a time. */
static void test_single_subnormal_lane(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  enum { M = 640, K = 1024 };
  static const float amax[8] = {1.0f, 3.7f, 0.013f, 300.0f, 1e6f, 2e-3f, 45.0f, 1e12f};
  bf16_t *x = malloc(sizeof *x * M * K);
  for (int fi = 0; fi < 2; fi++) {
    kn_dtype f = fmts[fi];
    float mn = f == KN_FP8_E4M3 ? 0x1p-6f : 0x1p-14f;
    for (int r = 0; r < M; r++)
      for (int t = 0; t < K / 128; t++) {
        float a = amax[t], base = a * mn / fp8_max(f); /* |x| / scale = mn at about base */
        const float kinds[5] = {base * 0.6f, base * 0.04f, 0.0f, -0.0f, base * (1.0f - 0x1p-9f)};
        int p = (r + 37 * t) % 128;
        for (int c = 0; c < 128; c++) {
          uint32_t h = (uint32_t)(r * 1024 + t * 128 + c) * 2654435761u;
          float v = a * (0.25f + 0.75f * (float)(h >> 8) * 0x1p-24f);
          x[r * K + t * 128 + c] = f32_to_bf16((h & 16) ? -v : v);
        }
        x[r * K + t * 128 + (p + 64) % 128] = f32_to_bf16(a);
        float sub = kinds[r / 128];
        x[r * K + t * 128 + p] = f32_to_bf16((r & 1) && sub != 0.0f ? -sub : sub);
      }
    for (int pow2 = 0; pow2 < 2; pow2++)
      T_CHECKF(check_bf16(be, nbe, x, M, K, f, pow2) == 0, "%s pow2=%d: codes or scales differ from the reference",
               kn_dtype_name(f), pow2);
  }
  free(x);
}

/* Every finite BF16 word, both signs, through the block quantizers at many scales: the AVX2
 * block path converts by per-block tables built from the inverse scale's mantissa (a code per
 * BF16 mantissa, plus the exponent), so each of its 65,536 inputs is a distinct case. For each
 * amax (mantissas spread over [1, 2) including both ends, exponents from tiny to huge) the 128 x
 * 1024 matrix holds amax at the first element of every block and the words of magnitude at most
 * amax's in order (repeated to fill), so that every block has that one scale. */
static void test_block_every_word(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  enum { M = 128, K = 1024, NA = 24 };
  bf16_t *x = malloc(sizeof *x * M * K);
  fp8_t *q0 = malloc(M * K), *q1 = malloc(M * K);
  float s0[8], s1[8];
  const quant_kernels *ref = quant_ref();
  for (int ai = 0; ai < NA; ai++) {
    /* amax words: exponent fields 0x3b-0x8f, mantissas 0, 127 and a spread between */
    uint16_t aw = (uint16_t)((0x3b + ai * 9 % 0x55) << 7 | (ai == 0 ? 0 : ai == 1 ? 127 : (ai * 53) % 128));
    int i = 0;
    for (int blk = 0; blk < K / 128; blk++)
      for (int r = 0; r < M; r++)
        for (int c = 0; c < 128; c++, i++) {
          uint16_t w = (uint16_t)((uint32_t)i / 2 % (aw + 1u)); /* each magnitude word <= aw, both signs */
          x[r * K + blk * 128 + c] = (bf16_t)(r == 0 && c == 0 ? aw : w | (i & 1) << 15);
        }
    for (int fi = 0; fi < 2; fi++)
      for (int pow2 = 0; pow2 < 2; pow2++) {
        ref->block_bf16(x, M, K, fmts[fi], pow2, q0, s0);
        for (int b = 1; b < nbe; b++) {
          be[b]->block_bf16(x, M, K, fmts[fi], pow2, q1, s1);
          int64_t d = 0;
          while (d < M * K && q0[d] == q1[d]) d++;
          T_CHECKF(d == M * K && memcmp(s0, s1, sizeof s0) == 0,
                   "%s %s pow2=%d amax word 0x%04x: first differing code at %lld (input 0x%04x: %02x, reference %02x)",
                   be[b]->backend, kn_dtype_name(fmts[fi]), pow2, aw, (long long)d, d < M * K ? x[d] : 0,
                   d < M * K ? q1[d] : 0, d < M * K ? q0[d] : 0);
        }
      }
  }
  free(x), free(q0), free(q1);
}

/* Outputs large enough for the AVX-512 block quantizer's non-temporal stores (4 Mi elements, q
 * 64-byte aligned) and rows of more than 64 tiles (scratch on the heap in both vector backends):
 * activation-like values with a few zeros, tiny values and non-finite ones sprinkled in. */
static void test_large_bf16(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  enum { M = 512, K = 8320 };
  krand r = krand_seed(11);
  bf16_t *x = malloc(sizeof *x * M * K);
  for (int64_t i = 0; i < (int64_t)M * K; i++) x[i] = f32_to_bf16((float)krand_normal(&r));
  static const float sp[] = {0.0f, 1e-7f, -3e-9f, NAN, INFINITY};
  for (int j = 0; j < 200; j++) x[krand_below(&r, (uint64_t)M * K)] = f32_to_bf16(sp[j % 5]);
  T_CHECKF(check_bf16(be, nbe, x, M, K, KN_FP8_E4M3, 0) == 0, "E4M3: codes or scales differ from the reference");
  T_CHECKF(check_bf16(be, nbe, x, M, K, KN_FP8_E5M2, 1) == 0, "E5M2 pow2: codes or scales differ from the reference");
  free(x);
}

/* A weight matrix large enough (4M elements) for the block quantizers' non-temporal stores, into a
 * 64-byte aligned output (where they stream) and a misaligned one (where they must not), both
 * against the reference. */
static void test_large_block(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  enum { N = 2048, K = 2048 };
  bf16_t *x = malloc(sizeof *x * N * K);
  fp8_t *q0 = malloc(N * K), *q1 = NULL;
  float s0[256], s1[256];
  T_CHECK(posix_memalign((void **)&q1, 64, N * K + 64) == 0);
  krand r = krand_seed(11);
  for (int64_t i = 0; i < (int64_t)N * K; i++) x[i] = f32_to_bf16((float)krand_normal(&r));
  quant_ref()->block_bf16(x, N, K, KN_FP8_E4M3, 0, q0, s0);
  for (int b = 1; b < nbe; b++)
    for (int mis = 0; mis <= 1; mis++) {
      be[b]->block_bf16(x, N, K, KN_FP8_E4M3, 0, q1 + mis, s1);
      T_CHECKF(memcmp(q0, q1 + mis, N * K) == 0 && memcmp(s0, s1, sizeof s0) == 0,
               "%s: %s output differs from the reference", be[b]->backend, mis ? "misaligned" : "aligned");
    }
  free(x), free(q0), free(q1);
}

/* The vector encoders against dtype.h's scalar ones on a dense sweep of float bit patterns: a tile
 * with 448 (resp. 57344) in it has scale exactly 1, so every other element is encoded as is. */
static void test_encoder_sweep(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no vector backend on this CPU");
  enum { ROWS = 4096, K = 128 };
  float *x = malloc(sizeof(float) * ROWS * K);
  fp8_t *q = malloc(ROWS * K);
  float *s = malloc(sizeof(float) * ROWS);
  for (int fi = 0; fi < 2; fi++) {
    kn_dtype f = fmts[fi];
    int bad = 0;
    uint32_t bits = 0;
    for (int pass = 0; pass < 9; pass++) { /* 9 x 4096 x 127 patterns, stride 1847 over 2^32 */
      for (int i = 0; i < ROWS; i++) {
        x[i * K] = fp8_max(f);
        for (int c = 1; c < K; c++) {
          /* magnitudes up to the format's max (the scale stays 1), both signs, and now and then
           * a NaN or an Inf (ignored by the scale) */
          uint32_t mag = bits % (kn_f32_bits(fp8_max(f)) + 1u);
          x[i * K + c] = kn_bits_f32(mag | (bits & 0x80000000u));
          if (c % 61 == 0) x[i * K + c] = (c & 2) ? NAN : -INFINITY;
          bits += (c & 1) ? 1847u : 1u; /* pairs of neighbours, spread over the range */
        }
      }
      for (int b = 1; b < nbe; b++) {
        be[b]->token_f32(x, ROWS, K, f, 0, q, s);
        for (int i = 0; i < ROWS * K; i++) {
          fp8_t want = f32_to_fp8(x[i], f);
          if (q[i] != want && bad++ < 5)
            fprintf(stderr, "%s %s: 0x%08x -> 0x%02x, want 0x%02x\n", be[b]->backend,
                    kn_dtype_name(f), kn_f32_bits(x[i]), q[i], want);
        }
      }
      bits = bits * 2654435761u + 12345u; /* jump elsewhere for the next pass */
    }
    T_CHECKF(bad == 0, "%s: %d encodings differ from dtype.h", kn_dtype_name(f), bad);
  }
  free(x), free(q), free(s);
}

/* Every finite FP8 code decodes (dtype.h's table) and re-encodes to itself through the quantizer,
 * and each halfway point between neighbours rounds to the even code. */
static void test_round_trip_table(void) {
  const quant_kernels *be[4];
  int nbe = backends(be);
  for (int fi = 0; fi < 2; fi++) {
    kn_dtype f = fmts[fi];
    const float *tab = f == KN_FP8_E5M2 ? kn_fp8_e5m2_table : kn_fp8_e4m3_table;
    float x[256];
    int nx = 0, bad = 0;
    x[nx++] = fp8_max(f); /* pins the scale to 1 */
    for (int c = 0; c < 256; c++)
      if (isfinite(tab[c])) x[nx++] = tab[c];
    for (int b = 0; b < nbe; b++) {
      fp8_t q[256];
      float s[2];
      be[b]->token_f32(x, 1, nx, f, 0, q, s);
      for (int i = 1; i < nx; i++) bad += tab[q[i]] != x[i] && !(x[i] == 0.0f && tab[q[i]] == 0.0f);
      /* halfway points between consecutive positive codes */
      int maxc = f == KN_FP8_E5M2 ? 0x7b : 0x7e;
      float h[128];
      h[0] = fp8_max(f);
      for (int c = 0; c < maxc; c++) h[c + 1] = (tab[c] + tab[c + 1]) * 0.5f;
      be[b]->token_f32(h, 1, maxc + 1, f, 0, q, s);
      for (int c = 0; c < maxc; c++) {
        int want = (c & 1) ? c + 1 : c; /* ties to the even code */
        bad += q[c + 1] != want;
      }
    }
    T_CHECKF(bad == 0, "%s: %d round-trip failures", kn_dtype_name(f), bad);
  }
}

/* Dequantized values are within half an FP8 step of the input: relative 2^-4 (E4M3) or 2^-3
 * (E5M2) for normals, plus half the subnormal step times the scale. */
static void test_dequant_error_bound(void) {
  krand r = krand_seed(7);
  enum { M = 64, K = 512 };
  float x[M * K], d[M * K], s[M * 4];
  fp8_t q[M * K];
  for (int i = 0; i < M * K; i++) x[i] = (float)(krand_normal(&r) * (1 + (i / K)));
  for (int fi = 0; fi < 2; fi++)
    for (int pow2 = 0; pow2 < 2; pow2++) {
      kn_dtype f = fmts[fi];
      const quant_kernels *qk = quant_best();
      qk->token_f32(x, M, K, f, pow2, q, s);
      qk->dequant_token(q, s, M, K, f, d);
      double rel = f == KN_FP8_E5M2 ? 0x1p-3 : 0x1p-4, sub = f == KN_FP8_E5M2 ? 0x1p-17 : 0x1p-10;
      int bad = 0;
      for (int i = 0; i < M * K; i++) {
        double sc = s[(i / K) * 4 + (i % K) / 128];
        bad += fabs((double)d[i] - x[i]) > rel * fabs(x[i]) + sub * sc;
        bad += fabs(x[i]) / sc > fp8_max(f) * 1.0000001; /* scaled values fit the format */
      }
      T_CHECKF(bad == 0, "%s pow2=%d: %d values out of bound", kn_dtype_name(f), pow2, bad);
    }
}

/* Power-of-two scales are exact powers of two and never smaller than the exact scale. */
static void test_pow2_scales(void) {
  krand r = krand_seed(3);
  enum { M = 32, K = 384 };
  float x[M * K], s0[M * 3], s1[M * 3];
  fp8_t q[M * K];
  fill(&r, x, M * K, 0);
  quant_best()->token_f32(x, M, K, KN_FP8_E4M3, 0, q, s0);
  quant_best()->token_f32(x, M, K, KN_FP8_E4M3, 1, q, s1);
  for (int i = 0; i < M * 3; i++) {
    int e;
    T_CHECK(frexpf(s1[i], &e) == 0.5f);
    T_CHECK(s1[i] >= s0[i] && s1[i] < 2.0f * s0[i]);
  }
}

/* Non-finite inputs follow the stated rule: ignored by the scale, NaN stays NaN, Inf saturates in
 * E4M3 and stays Inf in E5M2. */
static void test_nonfinite(void) {
  float x[128];
  for (int i = 0; i < 128; i++) x[i] = 1.0f;
  x[3] = NAN, x[4] = INFINITY, x[5] = -INFINITY;
  const quant_kernels *be[4];
  int nbe = backends(be);
  for (int b = 0; b < nbe; b++) {
    fp8_t q[128];
    float s;
    be[b]->token_f32(x, 1, 128, KN_FP8_E4M3, 0, q, &s);
    T_CHECK(s == 1.0f / 448.0f);
    T_EQ_INT(q[0], 0x7e);
    T_EQ_INT(q[3], 0x7f);
    T_EQ_INT(q[4], 0x7e);
    T_EQ_INT(q[5], 0xfe);
    be[b]->token_f32(x, 1, 128, KN_FP8_E5M2, 0, q, &s);
    T_CHECK(s == 1.0f / 57344.0f);
    T_CHECK(isnan(fp8_e5m2_to_f32(q[3])));
    T_EQ_INT(q[4], 0x7c);
    T_EQ_INT(q[5], 0xfc);
  }
}

int main(void) {
  T_RUN(test_scale_formula);
  T_RUN(test_hand_tile);
  T_RUN(test_backends_match_ref);
  T_RUN(test_subnormal_boundary);
  T_RUN(test_single_subnormal_lane);
  T_RUN(test_block_every_word);
  T_RUN(test_large_bf16);
  T_RUN(test_large_block);
  T_RUN(test_encoder_sweep);
  T_RUN(test_round_trip_table);
  T_RUN(test_dequant_error_bound);
  T_RUN(test_pow2_scales);
  T_RUN(test_nonfinite);
  return t_done();
}
