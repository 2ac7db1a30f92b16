/* tests/test_permute.c — route plans (hand-worked contiguous, aligned and masked layouts, drops,
 * ignored experts), dispatch and combine on every backend against the reference bit for bit and
 * against their meaning (dispatched rows are the quantized tokens; combining copies with weights
 * 1/2 + 1/2 gives the token back exactly), empty experts, and SwiGLU within its stated tolerance. */
#include <math.h>
#include <stdlib.h>

#include "krand.h"
#include "permute.h"
#include "quant.h"
#include "test.h"

static int backends(const permute_kernels **out) {
  int n = 0;
  out[n++] = permute_ref();
  if (permute_backend(CPU_AVX512)) out[n++] = permute_backend(CPU_AVX512);
  return n;
}

/* T = 3 tokens, topk 2, E = 3: idx = {2,0}, {0,1}, {2,1}. */
static const int32_t hand_idx[6] = {2, 0, 0, 1, 2, 1};

static void test_plan_contiguous(void) {
  moe_plan p;
  moe_plan_build(&p, hand_idx, 3, 2, 3, MOE_LAYOUT_CONTIGUOUS, 1);
  /* expert 0 gets routes 1 (t0) and 2 (t1), expert 1 routes 3 and 5, expert 2 routes 0 and 4 */
  static const int64_t pos[6] = {4, 0, 1, 2, 5, 3};
  for (int r = 0; r < 6; r++) T_EQ_INT(p.pos[r], pos[r]);
  T_EQ_INT(p.rows, 6);
  T_EQ_INT(p.offset[1], 2);
  T_EQ_INT(p.row_src[0], 1);
  T_EQ_INT(p.row_src[5], 4);
  moe_plan_free(&p);
  moe_plan_build(&p, hand_idx, 3, 2, 3, MOE_LAYOUT_CONTIGUOUS, 4);
  T_EQ_INT(p.rows, 12);
  T_EQ_INT(p.offset[2], 8);
  T_EQ_INT(p.pos[0], 8);
  T_EQ_INT(p.row_src[2], -1);
  T_EQ_INT(p.dropped, 0);
  moe_plan_free(&p);
}

static void test_plan_masked(void) {
  moe_plan p;
  moe_plan_build(&p, hand_idx, 3, 2, 3, MOE_LAYOUT_MASKED, 1);
  static const int64_t pos[6] = {2, 0, -1, 1, -1, -1};
  for (int r = 0; r < 6; r++) T_EQ_INT(p.pos[r], pos[r]);
  T_EQ_INT(p.dropped, 3);
  T_EQ_INT(p.rows, 3);
  T_EQ_INT(p.count[0], 1);
  moe_plan_free(&p);
  const int32_t local[6] = {-1, 0, 0, 5, 2, -1}; /* -1 and 5 are not local experts: ignored */
  moe_plan_build(&p, local, 3, 2, 3, MOE_LAYOUT_MASKED, 4);
  T_EQ_INT(p.dropped, 0);
  T_EQ_INT(p.pos[0], -1);
  T_EQ_INT(p.pos[3], -1);
  T_EQ_INT(p.count[0], 2);
  T_EQ_INT(p.count[1], 0);
  T_EQ_INT(p.pos[4], 8);
  moe_plan_free(&p);
}

static void random_idx(krand *r, int32_t *idx, int64_t T, int topk, int E) {
  for (int64_t t = 0; t < T; t++)
    for (int k = 0; k < topk; k++) {
      int32_t e;
      int dup;
      do { /* distinct experts per token, as the gate gives */
        e = (int32_t)krand_below(r, (uint64_t)E);
        dup = 0;
        for (int j = 0; j < k; j++) dup |= idx[t * topk + j] == e;
      } while (dup);
      idx[t * topk + k] = e;
    }
}

static void fill_bf16(krand *r, bf16_t *x, int64_t n, double scale) {
  for (int64_t i = 0; i < n; i++) x[i] = f32_to_bf16((float)(krand_normal(r) * scale));
}

/* Dispatch and combine across layouts and shapes: backends bit-identical with the reference. */
static void test_backends_match_ref(void) {
  const permute_kernels *be[4];
  int nbe = backends(be);
  if (nbe == 1) T_SKIP("no AVX-512 backend on this CPU");
  krand r = krand_seed(21);
  static const struct { int64_t T, H; int E, topk; moe_layout lay; int64_t a; } cs[] = {
      {37, 256, 8, 2, MOE_LAYOUT_CONTIGUOUS, 1},  {64, 200, 16, 4, MOE_LAYOUT_CONTIGUOUS, 128},
      {4, 512, 256, 8, MOE_LAYOUT_CONTIGUOUS, 1}, {50, 384, 8, 3, MOE_LAYOUT_MASKED, 12},
      {1, 7, 4, 1, MOE_LAYOUT_CONTIGUOUS, 1},     {0, 128, 4, 2, MOE_LAYOUT_MASKED, 4},
  };
  for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
    int64_t T = cs[c].T, H = cs[c].H, nt = quant_tiles(H);
    int K = cs[c].topk, E = cs[c].E;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(T * K + 1));
    random_idx(&r, idx, T, K, E);
    moe_plan p;
    moe_plan_build(&p, idx, T, K, E, cs[c].lay, cs[c].a);
    int64_t R = p.rows + 1;
    bf16_t *x = malloc(sizeof(bf16_t) * (size_t)(T * H + 1)), *add = malloc(sizeof(bf16_t) * (size_t)(T * H + 1));
    bf16_t *xp0 = calloc((size_t)(R * H), 2), *xp1 = calloc((size_t)(R * H), 2);
    fp8_t *q0 = calloc((size_t)(R * H), 1), *q1 = calloc((size_t)(R * H), 1);
    float *s0 = calloc((size_t)(R * nt), 4), *s1 = calloc((size_t)(R * nt), 4);
    float *w = malloc(sizeof(float) * (size_t)(T * K + 1));
    bf16_t *o0 = malloc(sizeof(bf16_t) * (size_t)(T * H + 1)), *o1 = malloc(sizeof(bf16_t) * (size_t)(T * H + 1));
    fill_bf16(&r, x, T * H, 3.0);
    fill_bf16(&r, add, T * H, 1.0);
    for (int64_t i = 0; i < T * K; i++) w[i] = (float)krand_unif(&r);
    for (int b = 1; b < nbe; b++) {
      int bad = 0;
      be[0]->dispatch_fp8(&p, x, H, KN_FP8_E4M3, c & 1, 0, T, q0, s0);
      be[b]->dispatch_fp8(&p, x, H, KN_FP8_E4M3, c & 1, 0, T, q1, s1);
      bad += memcmp(q0, q1, (size_t)(p.rows * H)) != 0;
      bad += memcmp(s0, s1, (size_t)(p.rows * nt) * 4) != 0;
      be[0]->dispatch_bf16(&p, x, H, 0, T, xp0);
      be[b]->dispatch_bf16(&p, x, H, 0, T, xp1);
      bad += memcmp(xp0, xp1, (size_t)(p.rows * H) * 2) != 0;
      for (int with_add = 0; with_add < 2; with_add++) {
        be[0]->combine(&p, xp0, w, H, with_add ? add : NULL, 0, T, o0);
        be[b]->combine(&p, xp0, w, H, with_add ? add : NULL, 0, T, o1);
        bad += memcmp(o0, o1, (size_t)(T * H) * 2) != 0;
      }
      T_CHECKF(bad == 0, "%s case %zu: %d mismatches", be[b]->backend, c, bad);
    }
    /* meaning: each placed row is the quantized token; padding rows are zero */
    int bad = 0;
    fp8_t *qt = malloc((size_t)H + 1);
    float st[64];
    for (int64_t t = 0; t < T; t++) {
      quant_ref()->token_bf16(x + t * H, 1, H, KN_FP8_E4M3, c & 1, qt, st);
      for (int k = 0; k < K; k++) {
        int64_t row = p.pos[t * K + k];
        if (row >= 0) bad += memcmp(q1 + row * H, qt, (size_t)H) != 0 || memcmp(s1 + row * nt, st, (size_t)nt * 4) != 0;
      }
    }
    for (int64_t row = 0; row < p.rows && cs[c].lay == MOE_LAYOUT_CONTIGUOUS; row++)
      if (p.row_src[row] < 0) bad += s1[row * nt] != 0.0f || q1[row * H] != 0;
    T_CHECKF(bad == 0, "case %zu: dispatched rows differ from the quantized tokens", c);
    free(qt);
    moe_plan_free(&p);
    free(idx), free(x), free(add), free(xp0), free(xp1), free(q0), free(q1), free(s0), free(s1);
    free(w), free(o0), free(o1);
  }
}

/* Combining the dispatched copies of each token with weights 1/2, 1/2 returns the token exactly
 * (x/2 + x/2 is exact in FP32); with dropped routes, the survivors alone. */
static void test_combine_meaning(void) {
  const permute_kernels *be[4];
  int nbe = backends(be);
  krand r = krand_seed(5);
  enum { T = 40, H = 96, E = 6 };
  int32_t idx[T * 2];
  random_idx(&r, idx, T, 2, E);
  bf16_t x[T * H], out[T * H];
  fill_bf16(&r, x, T * H, 10.0);
  float w[T * 2];
  for (int i = 0; i < T * 2; i++) w[i] = 0.5f;
  for (int lay = 0; lay < 2; lay++) {
    moe_plan p;
    moe_plan_build(&p, idx, T, 2, E, (moe_layout)lay, lay ? 9 : 4); /* masked: 9 slots drop some */
    bf16_t *xp = calloc((size_t)p.rows * H, 2);
    for (int b = 0; b < nbe; b++) {
      be[b]->dispatch_bf16(&p, x, H, 0, T, xp);
      be[b]->combine(&p, xp, w, H, NULL, 0, T, out);
      int bad = 0;
      for (int t = 0; t < T; t++) {
        int kept = (p.pos[t * 2] >= 0) + (p.pos[t * 2 + 1] >= 0);
        for (int h = 0; h < H; h++) {
          float want = bf16_to_f32(x[t * H + h]) * 0.5f * (float)kept;
          bad += bf16_to_f32(out[t * H + h]) != want;
        }
      }
      T_CHECKF(bad == 0, "%s layout %d: %d channels wrong", be[b]->backend, lay, bad);
    }
    if (lay) T_CHECK(p.dropped > 0);
    free(xp);
    moe_plan_free(&p);
  }
}

/* SwiGLU against double-precision silu(g) * u: within one BF16 ulp (and the fused FP8 variant
 * within one FP8 step plus the exp error), every backend. */
static void test_swiglu(void) {
  const permute_kernels *be[4];
  int nbe = backends(be);
  krand r = krand_seed(9);
  enum { R = 33, I = 272 };
  bf16_t *gu = malloc(sizeof(bf16_t) * R * 2 * I), *o = malloc(sizeof(bf16_t) * R * I);
  fp8_t *q = malloc(R * I);
  float *s = malloc(sizeof(float) * R * 3), *d = malloc(sizeof(float) * R * I);
  fill_bf16(&r, gu, R * 2 * I, 4.0);
  gu[0] = f32_to_bf16(-120.0f); /* exp overflow side */
  gu[1] = f32_to_bf16(95.0f);
  for (int b = 0; b < nbe; b++) {
    be[b]->swiglu(gu, R, I, o);
    be[b]->swiglu_fp8(gu, R, I, KN_FP8_E4M3, 0, q, s);
    quant_ref()->dequant_token(q, s, R, I, KN_FP8_E4M3, d);
    int bad = 0, badq = 0;
    for (int i = 0; i < R; i++)
      for (int j = 0; j < I; j++) {
        double g = bf16_to_f32(gu[i * 2 * I + j]), u = bf16_to_f32(gu[i * 2 * I + I + j]);
        double want = g / (1.0 + exp(-g)) * u;
        double got = bf16_to_f32(o[i * I + j]);
        bad += fabs(got - want) > 0x1p-8 * fabs(want) * 1.01 + 1e-30;
        badq += fabs(d[i * I + j] - want) > 0x1p-4 * fabs(want) * 1.01 + s[i * 3 + j / 128] * 0x1p-10;
      }
    T_CHECKF(bad == 0, "%s swiglu: %d values off by more than half a bf16 ulp", be[b]->backend, bad);
    T_CHECKF(badq == 0, "%s swiglu_fp8: %d values off", be[b]->backend, badq);
  }
  free(gu), free(o), free(q), free(s), free(d);
}

int main(void) {
  T_RUN(test_plan_contiguous);
  T_RUN(test_plan_masked);
  T_RUN(test_backends_match_ref);
  T_RUN(test_combine_meaning);
  T_RUN(test_swiglu);
  return t_done();
}
