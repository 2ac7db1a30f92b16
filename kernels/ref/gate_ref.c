/* kernels/ref/gate_ref.c — the DeepSeek-V3 gate in plain C (contract in kernels/gate.h): group-
 * limited top-k selection on bias-adjusted sigmoid affinities, normalized weights, the reference
 * forward (dot products in index order) and the auxiliary-loss-free bias update. Selection is a
 * bounded insertion sort per token, O(E * topk), which is already a small cost next to the gate's
 * own GEMM (E * H multiply-adds per token), so there is no separate fast path for it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gate.h"
#include "util.h"

moe_gate_cfg moe_gate_v3(void) {
  moe_gate_cfg g = {256, 8, 4, 8, 2.5f, 1};
  return g;
}

int moe_gate_check(const moe_gate_cfg *g, char *why, size_t why_len) {
  const char *msg = NULL;
  if (g->n_experts < 1) msg = "n_experts must be at least 1";
  else if (g->n_groups < 1 || g->n_experts % g->n_groups != 0) msg = "n_experts must be a multiple of n_groups";
  else if (g->topk_groups < 1 || g->topk_groups > g->n_groups) msg = "topk_groups must be in 1..n_groups";
  else if (g->topk < 1 || g->topk > g->topk_groups * (g->n_experts / g->n_groups))
    msg = "topk must be in 1..(experts in topk_groups groups)";
  if (!msg) return 0;
  if (why && why_len) snprintf(why, why_len, "%s", msg);
  return -1;
}

/* NaN ranks below every number. */
static inline float rank_key(float v) { return isnan(v) ? -INFINITY : v; }

/* Inserts (v, i) into a descending list of at most cap entries (ties: earlier i first, which holds
 * because candidates arrive in increasing i and equal keys do not displace). */
static inline void topk_insert(float *keys, int32_t *ids, int *len, int cap, float v, int32_t i) {
  int n = *len;
  if (n == cap && !(v > keys[n - 1])) return;
  int j = n < cap ? n : cap - 1;
  while (j > 0 && v > keys[j - 1]) {
    keys[j] = keys[j - 1];
    ids[j] = ids[j - 1];
    j--;
  }
  keys[j] = v;
  ids[j] = i;
  if (n < cap) *len = n + 1;
}

void moe_gate_select(const moe_gate_cfg *g, const float *scores, const float *bias, int64_t T,
                     int32_t *idx, float *weights) {
  char why[96];
  if (moe_gate_check(g, why, sizeof why) != 0) {
    fprintf(stderr, "moe_gate_select: %s\n", why);
    abort();
  }
  int E = g->n_experts, G = g->n_groups, gs = E / G, K = g->topk;
  float *b = util_xmalloc((size_t)E * sizeof *b);
  float *gk = util_xmalloc((size_t)G * sizeof *gk);
  int32_t *gi = util_xmalloc((size_t)G * sizeof *gi);
  char *keep = util_xmalloc((size_t)G);
  float *ek = util_xmalloc((size_t)K * sizeof *ek);
  for (int64_t t = 0; t < T; t++) {
    const float *s = scores + t * E;
    for (int e = 0; e < E; e++) b[e] = rank_key(s[e] + (bias ? bias[e] : 0.0f));
    /* group scores, then the kept groups */
    int ng = 0;
    for (int grp = 0; grp < G; grp++) {
      float k2[2];
      int32_t i2[2];
      int n2 = 0;
      for (int e = grp * gs; e < (grp + 1) * gs; e++) topk_insert(k2, i2, &n2, 2, b[e], e);
      float gscore = n2 == 2 ? k2[0] + k2[1] : k2[0];
      topk_insert(gk, gi, &ng, g->topk_groups, rank_key(gscore), grp);
    }
    /* experts of the kept groups, visited in increasing index so that ties go to the lower one */
    for (int grp = 0; grp < G; grp++) keep[grp] = 0;
    for (int j = 0; j < ng; j++) keep[gi[j]] = 1;
    int32_t *out = idx + t * K;
    int ne = 0;
    for (int grp = 0; grp < G; grp++)
      if (keep[grp])
        for (int e = grp * gs; e < (grp + 1) * gs; e++) topk_insert(ek, out, &ne, K, b[e], e);
    float sum = 0.0f;
    for (int j = 0; j < K; j++) sum += s[out[j]];
    float mul = g->norm_topk ? g->route_scale / (sum + 1e-20f) : g->route_scale;
    for (int j = 0; j < K; j++) weights[t * K + j] = s[out[j]] * mul;
  }
  free(gk), free(gi), free(keep), free(ek), free(b);
}

static inline float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

void moe_gate_forward_ref(const moe_gate_cfg *g, const bf16_t *x, const bf16_t *w, int64_t H,
                          const float *bias, int64_t T, int32_t *idx, float *weights,
                          float *scores_out) {
  int E = g->n_experts;
  float *s = scores_out ? scores_out : util_xmalloc((size_t)(T * E) * sizeof *s);
  for (int64_t t = 0; t < T; t++)
    for (int e = 0; e < E; e++) {
      float acc = 0.0f;
      for (int64_t h = 0; h < H; h++) acc += bf16_to_f32(x[t * H + h]) * bf16_to_f32(w[e * H + h]);
      s[t * E + e] = sigmoidf(acc);
    }
  moe_gate_select(g, s, bias, T, idx, weights);
  if (s != scores_out) free(s);
}

void moe_gate_bias_update(float *bias, const int64_t *load, int n_experts, float gamma) {
  int64_t total = 0;
  for (int e = 0; e < n_experts; e++) total += load[e];
  /* load_e > mean  <=>  load_e * E > total, in integers (no rounding of the mean) */
  for (int e = 0; e < n_experts; e++) {
    int64_t lhs = load[e] * n_experts;
    if (lhs > total) bias[e] -= gamma;
    else if (lhs < total) bias[e] += gamma;
  }
}

void moe_gate_load(const int32_t *idx, int64_t T, int topk, int n_experts, int64_t *load) {
  for (int e = 0; e < n_experts; e++) load[e] = 0;
  for (int64_t i = 0; i < T * topk; i++) {
    int32_t e = idx[i];
    if (e >= 0 && e < n_experts) load[e]++;
  }
}
