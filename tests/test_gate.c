/* tests/test_gate.c — the DeepSeek-V3 gate: a hand-worked example (with and without bias), ties,
 * unnormalized weights, an independent sort-based oracle on random V3-shaped inputs, the bias
 * update rule and its balancing effect, and the synthetic activations (determinism, token ranges,
 * skew, and agreement between the direct affinities and the x w^T path). */
#include <math.h>
#include <stdlib.h>

#include "gate.h"
#include "krand.h"
#include "test.h"

/* 8 experts in 4 groups of 2, keep 2 groups, top-3, route_scale 2. */
static const moe_gate_cfg small = {8, 4, 2, 3, 2.0f, 1};
static const float hand_scores[8] = {0.9f, 0.1f, 0.5f, 0.6f, 0.8f, 0.7f, 0.2f, 0.3f};

static void test_hand_example(void) {
  /* Group scores (sum of top 2): g0 = 1.0, g1 = 1.1, g2 = 1.5, g3 = 0.5 -> keep g2, g1. Expert 0
   * (0.9, the best overall) is not eligible. Among e2..e5: e4 .8, e5 .7, e3 .6. Weights: each over
   * the sum 2.1, times 2. */
  int32_t idx[3];
  float w[3];
  moe_gate_select(&small, hand_scores, NULL, 1, idx, w);
  T_EQ_INT(idx[0], 4);
  T_EQ_INT(idx[1], 5);
  T_EQ_INT(idx[2], 3);
  T_NEAR(w[0], 0.8 / 2.1 * 2, 1e-6);
  T_NEAR(w[1], 0.7 / 2.1 * 2, 1e-6);
  T_NEAR(w[2], 0.6 / 2.1 * 2, 1e-6);
}

static void test_hand_example_bias(void) {
  /* Biased scores: .9 .1 .5 .6 .3 .7 .8 .9 -> groups 1.0, 1.1, 1.0, 1.7 -> keep g3, g1. Top-3 by
   * biased score: e7 .9, e6 .8, e3 .6; weights from the unbiased .3, .2, .6 (sum 1.1), times 2. */
  const float bias[8] = {0, 0, 0, 0, -0.5f, 0, 0.6f, 0.6f};
  int32_t idx[3];
  float w[3];
  moe_gate_select(&small, hand_scores, bias, 1, idx, w);
  T_EQ_INT(idx[0], 7);
  T_EQ_INT(idx[1], 6);
  T_EQ_INT(idx[2], 3);
  T_NEAR(w[0], 0.3 / 1.1 * 2, 1e-6);
  T_NEAR(w[1], 0.2 / 1.1 * 2, 1e-6);
  T_NEAR(w[2], 0.6 / 1.1 * 2, 1e-6);
}

static void test_ties_and_unnormalized(void) {
  float s[8];
  for (int e = 0; e < 8; e++) s[e] = 0.5f;
  int32_t idx[3];
  float w[3];
  moe_gate_select(&small, s, NULL, 1, idx, w); /* all equal: lowest groups, lowest experts */
  T_EQ_INT(idx[0], 0);
  T_EQ_INT(idx[1], 1);
  T_EQ_INT(idx[2], 2);
  T_NEAR(w[0], 2.0 / 3.0, 1e-6);
  moe_gate_cfg un = small;
  un.norm_topk = 0;
  moe_gate_select(&un, hand_scores, NULL, 1, idx, w);
  T_NEAR(w[0], 0.8 * 2.0, 1e-6);
  T_NEAR(w[2], 0.6 * 2.0, 1e-6);
  /* a NaN score is never chosen over a number */
  s[0] = NAN;
  moe_gate_select(&small, s, NULL, 1, idx, w);
  T_CHECK(idx[0] != 0 && idx[1] != 0 && idx[2] != 0);
}

static void test_config_check(void) {
  moe_gate_cfg v3 = moe_gate_v3(), bad = v3;
  char why[96];
  T_EQ_INT(moe_gate_check(&v3, why, sizeof why), 0);
  bad.n_experts = 250;
  T_EQ_INT(moe_gate_check(&bad, why, sizeof why), -1);
  bad = v3;
  bad.topk = 129; /* 4 groups of 32 hold only 128 */
  T_EQ_INT(moe_gate_check(&bad, why, sizeof why), -1);
}

/* Oracle: sort groups by score, then the eligible experts by biased score (stable on index). */
typedef struct kv {
  float k;
  int i;
} kv;
static int kv_desc(const void *a, const void *b) {
  const kv *x = a, *y = b;
  if (x->k != y->k) return x->k > y->k ? -1 : 1;
  return x->i - y->i;
}

static void oracle(const moe_gate_cfg *g, const float *s, const float *bias, int32_t *idx, float *w) {
  int E = g->n_experts, G = g->n_groups, gs = E / G;
  kv grp[64], ex[512];
  for (int q = 0; q < G; q++) {
    kv in[64];
    for (int j = 0; j < gs; j++) in[j] = (kv){s[q * gs + j] + bias[q * gs + j], j};
    qsort(in, (size_t)gs, sizeof in[0], kv_desc);
    grp[q] = (kv){gs > 1 ? in[0].k + in[1].k : in[0].k, q};
  }
  qsort(grp, (size_t)G, sizeof grp[0], kv_desc);
  int n = 0;
  for (int e = 0; e < E; e++)
    for (int j = 0; j < g->topk_groups; j++)
      if (grp[j].i == e / gs) ex[n++] = (kv){s[e] + bias[e], e};
  qsort(ex, (size_t)n, sizeof ex[0], kv_desc);
  float sum = 0;
  for (int j = 0; j < g->topk; j++) sum += s[ex[j].i];
  for (int j = 0; j < g->topk; j++) {
    idx[j] = ex[j].i;
    w[j] = s[ex[j].i] * g->route_scale / (sum + 1e-20f);
  }
}

static void test_random_vs_oracle(void) {
  moe_gate_cfg cfgs[3] = {moe_gate_v3(), {64, 8, 3, 6, 1.0f, 1}, {16, 1, 1, 4, 2.5f, 1}};
  krand r = krand_seed(11);
  for (int c = 0; c < 3; c++) {
    const moe_gate_cfg *g = &cfgs[c];
    int E = g->n_experts, K = g->topk;
    enum { T = 300 };
    float *s = malloc(sizeof(float) * T * E), bias[256];
    int32_t *idx = malloc(sizeof(int32_t) * T * K), oi[16];
    float *w = malloc(sizeof(float) * T * K), ow[16];
    for (int i = 0; i < T * E; i++) s[i] = (float)krand_unif(&r);
    /* coarse values make exact ties common */
    for (int i = 0; i < T * E; i += 3) s[i] = (float)(int)(s[i] * 8) / 8.0f;
    for (int e = 0; e < E; e++) bias[e] = (float)(krand_unif(&r) - 0.5) * 0.25f;
    moe_gate_select(g, s, bias, T, idx, w);
    int bad = 0;
    for (int t = 0; t < T; t++) {
      oracle(g, s + t * E, bias, oi, ow);
      for (int j = 0; j < K; j++) bad += idx[t * K + j] != oi[j] || fabsf(w[t * K + j] - ow[j]) > 1e-6f;
    }
    T_CHECKF(bad == 0, "config %d: %d differences from the oracle", c, bad);
    free(s), free(idx), free(w);
  }
}

static void test_bias_update(void) {
  float b[4] = {0, 0, 0, 0};
  int64_t load[4] = {10, 2, 4, 4}; /* mean 5 */
  moe_gate_bias_update(b, load, 4, 0.01f);
  T_NEAR(b[0], -0.01, 1e-9);
  T_NEAR(b[1], 0.01, 1e-9);
  T_NEAR(b[3], 0.01, 1e-9);
  int64_t even[4] = {5, 5, 5, 5};
  moe_gate_bias_update(b, even, 4, 0.01f);
  T_NEAR(b[0], -0.01, 1e-9);
  int32_t idx[6] = {0, 1, 1, 3, 3, 3};
  int64_t l[4];
  moe_gate_load(idx, 3, 2, 4, l);
  T_EQ_INT(l[0], 1);
  T_EQ_INT(l[1], 2);
  T_EQ_INT(l[2], 0);
  T_EQ_INT(l[3], 3);
}

static double imbalance(const int64_t *load, int E) {
  int64_t mx = 0, sum = 0;
  for (int e = 0; e < E; e++) sum += load[e], mx = load[e] > mx ? load[e] : mx;
  return (double)mx * E / (double)sum;
}

/* Aux-loss-free balancing on skewed synthetic traffic: 150 steps of the update halve the
 * max/mean load ratio. */
static void test_bias_balances(void) {
  moe_gate_cfg g = {64, 8, 4, 6, 2.5f, 1};
  moe_synth syn = {5, 1.0, 1.0};
  enum { T = 512 };
  float *s = malloc(sizeof(float) * T * 64), bias[64] = {0}, *w = malloc(sizeof(float) * T * 6);
  int32_t *idx = malloc(sizeof(int32_t) * T * 6);
  int64_t load[64];
  double first = 0, last = 0;
  for (int step = 0; step < 150; step++) {
    moe_synth_scores(&syn, 64, (int64_t)step * T, T, s);
    moe_gate_select(&g, s, bias, T, idx, w);
    moe_gate_load(idx, T, 6, 64, load);
    if (step == 0) first = imbalance(load, 64);
    last = imbalance(load, 64);
    moe_gate_bias_update(bias, load, 64, 0.01f);
  }
  T_CHECKF(first > 2.0 && last < first / 2, "imbalance %.2f -> %.2f", first, last);
  free(s), free(w), free(idx);
}

static void test_synth(void) {
  moe_synth a = {42, 0.0, 1.0}, z = {42, 1.2, 1.0};
  enum { E = 256, T = 2048, H = 256 };
  float *s = malloc(sizeof(float) * T * E), *s2 = malloc(sizeof(float) * 8 * E);
  /* token ranges regenerate alone */
  moe_synth_scores(&z, E, 0, T, s);
  moe_synth_scores(&z, E, 100, 8, s2);
  T_CHECK(memcmp(s + 100 * E, s2, sizeof(float) * 8 * E) == 0);
  /* skew: uniform spreads load, Zipf concentrates it on the popular experts */
  moe_gate_cfg g = moe_gate_v3();
  int32_t *idx = malloc(sizeof(int32_t) * T * 8);
  float *w = malloc(sizeof(float) * T * 8);
  int64_t lu[E], lz[E];
  moe_synth_scores(&a, E, 0, T, s);
  moe_gate_select(&g, s, NULL, T, idx, w);
  moe_gate_load(idx, T, 8, E, lu);
  moe_synth_scores(&z, E, 0, T, s);
  moe_gate_select(&g, s, NULL, T, idx, w);
  moe_gate_load(idx, T, 8, E, lz);
  T_CHECKF(imbalance(lu, E) < 1.6, "uniform imbalance %.2f", imbalance(lu, E));
  T_CHECKF(imbalance(lz, E) > 4.0, "zipf imbalance %.2f", imbalance(lz, E));
  double p[E];
  moe_synth_popularity(&z, E, p);
  int top = 0;
  for (int e = 1; e < E; e++) top = p[e] > p[top] ? e : top;
  T_CHECKF(lz[top] > 4 * T * 8 / E, "most popular expert got %lld", (long long)lz[top]);
  /* the x w^T path has the same skew: the popular expert is heavily loaded there too */
  bf16_t *x = malloc(sizeof(bf16_t) * 512 * H), *gw = malloc(sizeof(bf16_t) * E * H);
  moe_synth_activations(&z, H, 0, 512, x);
  moe_synth_gate_weight(&z, E, H, gw);
  float *sc = malloc(sizeof(float) * 512 * E);
  moe_gate_forward_ref(&g, x, gw, H, NULL, 512, idx, w, sc);
  int64_t lx[E];
  moe_gate_load(idx, 512, 8, E, lx);
  T_CHECKF(lx[top] > 4 * 512 * 8 / E, "x w^T path: popular expert got %lld", (long long)lx[top]);
  double mean_logit = 0; /* uniform-noise logits centre on the offsets: mean sigmoid near 0.5 */
  for (int i = 0; i < 512 * E; i++) mean_logit += sc[i];
  T_CHECK(mean_logit / (512.0 * E) > 0.2 && mean_logit / (512.0 * E) < 0.8);
  free(s), free(s2), free(idx), free(w), free(x), free(gw), free(sc);
}

/* The production forward (GEMM backend) against the plain-C one: affinities within FP32 rounding,
 * the same weights where the same experts are chosen, and a different choice only for near-ties
 * (at most 2% of the tokens). */
static void test_forward_matches_ref(void) {
  moe_gate_cfg g = moe_gate_v3();
  moe_synth z = {8, 0.8, 1.0};
  enum { T = 96, H = 384, E = 256 };
  bf16_t *x = malloc(sizeof(bf16_t) * T * H), *w = malloc(sizeof(bf16_t) * E * H);
  moe_synth_activations(&z, H, 0, T, x);
  moe_synth_gate_weight(&z, E, H, w);
  float *s0 = malloc(sizeof(float) * T * E), *s1 = malloc(sizeof(float) * T * E);
  float w0[T * 8], w1[T * 8];
  int32_t i0[T * 8], i1[T * 8];
  moe_gate_forward_ref(&g, x, w, H, NULL, T, i0, w0, s0);
  moe_gate_forward(&g, x, w, H, NULL, T, i1, w1, s1);
  int bad = 0, differ = 0;
  for (int i = 0; i < T * E; i++) bad += fabsf(s0[i] - s1[i]) > 1e-5f;
  for (int t = 0; t < T; t++) {
    int same = memcmp(i0 + t * 8, i1 + t * 8, sizeof(int32_t) * 8) == 0;
    differ += !same;
    for (int k = 0; same && k < 8; k++) bad += fabsf(w0[t * 8 + k] - w1[t * 8 + k]) > 1e-4f;
  }
  T_CHECKF(bad == 0, "%d affinities or weights beyond FP32 rounding", bad);
  T_CHECKF(differ <= T / 50, "%d of %d tokens routed differently (near-ties allow 2%%)", differ, T);
  /* and with no forward output requested */
  moe_gate_forward(&g, x, w, H, NULL, T, i1, w1, NULL);
  free(x), free(w), free(s0), free(s1);
}

int main(void) {
  T_RUN(test_forward_matches_ref);
  T_RUN(test_hand_example);
  T_RUN(test_hand_example_bias);
  T_RUN(test_ties_and_unnormalized);
  T_RUN(test_config_check);
  T_RUN(test_random_vs_oracle);
  T_RUN(test_bias_update);
  T_RUN(test_bias_balances);
  T_RUN(test_synth);
  return t_done();
}
