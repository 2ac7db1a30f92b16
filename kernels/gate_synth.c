/* kernels/gate_synth.c — seeded synthetic activations for the MoE gate (contract in gate.h): a
 * Zipf expert popularity over a seeded ranking, affinities drawn directly, or activations and a
 * gate weight whose product has the same distribution. Every stream is keyed by (seed, purpose,
 * row), so any token range or expert can be regenerated alone and all users agree. */
#include <math.h>
#include <stdlib.h>

#include "gate.h"
#include "krand.h"
#include "util.h"

/* Stream keys: one independent generator per (seed, purpose, row). */
enum { SYN_RANK = 1, SYN_SCORE = 2, SYN_ACT = 3, SYN_WEIGHT = 4, SYN_MEAN = 5 };

static krand syn_stream(const moe_synth *s, uint64_t purpose, uint64_t row) {
  krand r = krand_seed(s->seed * 0x9e3779b97f4a7c15ull + purpose);
  r.s ^= row * 0xd1b54a32d192ed03ull;
  (void)krand_u64(&r);
  return r;
}

void moe_synth_popularity(const moe_synth *s, int n_experts, double *p) {
  /* seeded ranking: a Fisher-Yates permutation of the experts */
  int *rank = util_xmalloc((size_t)n_experts * sizeof *rank);
  for (int e = 0; e < n_experts; e++) rank[e] = e;
  krand r = syn_stream(s, SYN_RANK, 0);
  for (int e = n_experts - 1; e > 0; e--) {
    int j = (int)krand_below(&r, (uint64_t)e + 1);
    int tmp = rank[e];
    rank[e] = rank[j];
    rank[j] = tmp;
  }
  double z = 0.0;
  for (int e = 0; e < n_experts; e++) z += (p[e] = pow((double)rank[e] + 1.0, -s->zipf_s));
  for (int e = 0; e < n_experts; e++) p[e] /= z;
  free(rank);
}

/* Mean logit of each expert: log(E p_e) (0 for every expert when uniform). */
static double *syn_offsets(const moe_synth *s, int n_experts) {
  double *off = util_xmalloc((size_t)n_experts * sizeof *off);
  moe_synth_popularity(s, n_experts, off);
  for (int e = 0; e < n_experts; e++) off[e] = log((double)n_experts * off[e]);
  return off;
}

void moe_synth_scores(const moe_synth *s, int n_experts, int64_t t0, int64_t T, float *scores) {
  double *off = syn_offsets(s, n_experts);
  for (int64_t t = 0; t < T; t++) {
    krand r = syn_stream(s, SYN_SCORE, (uint64_t)(t0 + t));
    for (int e = 0; e < n_experts; e++) {
      double z = s->noise * krand_normal(&r) + off[e];
      scores[t * n_experts + e] = (float)(1.0 / (1.0 + exp(-z)));
    }
  }
  free(off);
}

/* The shared direction m: +-1 entries. */
static double syn_mean(const moe_synth *s, int64_t h) {
  krand r = syn_stream(s, SYN_MEAN, (uint64_t)h);
  return (krand_u64(&r) >> 63) ? 1.0 : -1.0;
}

void moe_synth_activations(const moe_synth *s, int64_t H, int64_t t0, int64_t T, bf16_t *x) {
  double *m = util_xmalloc((size_t)H * sizeof *m);
  for (int64_t h = 0; h < H; h++) m[h] = syn_mean(s, h);
  for (int64_t t = 0; t < T; t++) {
    krand r = syn_stream(s, SYN_ACT, (uint64_t)(t0 + t));
    for (int64_t h = 0; h < H; h++) x[t * H + h] = f32_to_bf16((float)(m[h] + krand_normal(&r)));
  }
  free(m);
}

void moe_synth_gate_weight(const moe_synth *s, int n_experts, int64_t H, bf16_t *w) {
  double *off = syn_offsets(s, n_experts);
  double *m = util_xmalloc((size_t)H * sizeof *m);
  double *row = util_xmalloc((size_t)H * sizeof *row);
  for (int64_t h = 0; h < H; h++) m[h] = syn_mean(s, h);
  for (int e = 0; e < n_experts; e++) {
    krand r = syn_stream(s, SYN_WEIGHT, (uint64_t)e);
    double dot = 0.0;
    for (int64_t h = 0; h < H; h++) dot += (row[h] = krand_normal(&r)) * m[h];
    double proj = dot / (double)H; /* |m|^2 = H: remove r's component along m */
    for (int64_t h = 0; h < H; h++) {
      double v = s->noise * (row[h] - proj * m[h]) / sqrt((double)H) + off[e] * m[h] / (double)H;
      w[(int64_t)e * H + h] = f32_to_bf16((float)v);
    }
  }
  free(off), free(m), free(row);
}
