/* kernels/gate.h — the DeepSeek-V3 MoE gate, its auxiliary-loss-free bias update, and the seeded
 * synthetic activations every part of moesim routes (kernel suite, network model, MPI all-to-all),
 * so that "real synthetic activations" mean the same tokens and the same experts everywhere.
 *
 * The gate, per token t (DeepSeek-V3 paper section 2.1.2, and its inference code):
 *   s[e]   = sigmoid(x_t . w_e)                          affinities (moe_gate_forward)
 *   b[e]   = s[e] + bias[e]                              biased scores, used only for selection
 *   group score g = sum of the top-2 b[e] in the group   (top-1 when a group has one expert)
 *   keep the topk_groups best groups (node-limited routing when groups = nodes), then the topk
 *   best b[e] inside them; idx lists them highest b first
 *   weights = s[idx] (unbiased), divided by their sum (+1e-20) when norm_topk, times route_scale.
 * Ties are broken by the lower index (group or expert); NaN ranks below every number. Same inputs,
 * same outputs, on every backend. */
#ifndef MOESIM_GATE_H
#define MOESIM_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "gemm.h"
#include "pool.h"

typedef struct moe_gate_cfg {
  int n_experts;     /* routed experts (256) */
  int n_groups;      /* expert groups (8) */
  int topk_groups;   /* groups kept per token (4): node-limited routing when groups = nodes */
  int topk;          /* experts per token (8) */
  float route_scale; /* multiplier on the normalized weights (2.5) */
  int norm_topk;     /* 1: selected weights normalized to sum 1 before route_scale */
} moe_gate_cfg;

/* DeepSeek-V3's gate: 256 experts, 8 groups, top-4 groups, top-8, route_scale 2.5, normalized. */
moe_gate_cfg moe_gate_v3(void);

/* 0 when the configuration is usable (n_experts a multiple of n_groups, 1 <= topk_groups <=
 * n_groups, 1 <= topk <= experts in topk_groups groups); -1 with a reason in `why` otherwise. */
int moe_gate_check(const moe_gate_cfg *g, char *why, size_t why_len);

/* scores: [T x E] sigmoid affinities; bias: [E] added for selection only (aux-loss-free
   balancing), or NULL. Group score = sum of the top-2 biased scores in the group. Writes
   idx [T x topk] (experts, highest biased score first) and weights [T x topk] (from the
   unbiased scores). */
void moe_gate_select(const moe_gate_cfg *g, const float *scores, const float *bias, int64_t T,
                     int32_t *idx, float *weights);

/* x: [T x H] activations (bf16), w: [E x H] gate weight (bf16): sigmoid(x w^T) then select.
 * scores_out: [T x E] affinities, or NULL when the caller does not want them. The logits are
 * FP32 dot products; the fastest GEMM backend computes them (kernels/gemm.h when built in), so
 * scores may differ from moe_gate_forward_ref's by FP32 rounding. */
void moe_gate_forward(const moe_gate_cfg *g, const bf16_t *x, const bf16_t *w, int64_t H,
                      const float *bias, int64_t T, int32_t *idx, float *weights, float *scores_out);

/* moe_gate_forward with the gate weight packed once (gemm_pack of the BF16 [E x H] weight) and
 * threads from tp (NULL: the caller alone): the form a layer that runs many batches uses.
 * scores_out [T x E] is required here (it is the GEMM's output buffer). Returns 0, or -1 when the
 * GEMM rejects its arguments (message on stderr). */
int moe_gate_forward_packed(pool *tp, const moe_gate_cfg *g, const bf16_t *x, const gemm_packed *w,
                            const float *bias, int64_t T, int32_t *idx, float *weights,
                            float *scores_out);

/* The reference of moe_gate_forward: plain-C dot products in index order. */
void moe_gate_forward_ref(const moe_gate_cfg *g, const bf16_t *x, const bf16_t *w, int64_t H,
                          const float *bias, int64_t T, int32_t *idx, float *weights,
                          float *scores_out);

/* The aux-loss-free bias update: b_i -= gamma if expert i is overloaded (load > mean), += gamma
   if underloaded. */
void moe_gate_bias_update(float *bias, const int64_t *load, int n_experts, float gamma);

/* Tokens routed to each expert: load[e] = occurrences of e in idx [T x topk] (load has E entries,
 * zeroed first). */
void moe_gate_load(const int32_t *idx, int64_t T, int topk, int n_experts, int64_t *load);

/* ---- Synthetic activations ----
 * Expert popularity follows a Zipf law over a seeded random ranking of the experts:
 * p_e = (rank_e + 1)^-zipf_s / Z (zipf_s = 0: uniform). A token's logit for expert e is
 * noise * N(0, 1) + log(E p_e), so the sigmoid affinities prefer popular experts by exactly the
 * skew asked for while every token still has its own ranking. moe_synth_scores draws these
 * affinities directly (cheap, for the simulators); moe_synth_activations + moe_synth_gate_weight
 * build x and w whose product x w^T has the same distribution (for the kernels), as follows:
 * x_t = m + g_t with m a fixed +-1 vector and g_t ~ N(0, I); w_e = noise r_e / sqrt(H) +
 * log(E p_e) m / H with r_e ~ N(0, I) made orthogonal to m. Token t's draws depend only on
 * (seed, t), so a rank that owns tokens [t0, t0 + T) generates them alone. */
typedef struct moe_synth {
  uint64_t seed; /* everything is a function of the seed */
  double zipf_s; /* popularity skew: 0 uniform, 1 Zipf; larger is more skewed */
  double noise;  /* standard deviation of a token's logit around its expert's mean (1.0) */
} moe_synth;

/* Popularity p[E] (sums to 1). */
void moe_synth_popularity(const moe_synth *s, int n_experts, double *p);
/* Affinities [T x E] in (0, 1) for tokens t0 .. t0 + T - 1. */
void moe_synth_scores(const moe_synth *s, int n_experts, int64_t t0, int64_t T, float *scores);
/* Activations [T x H] (bf16) for tokens t0 .. t0 + T - 1. */
void moe_synth_activations(const moe_synth *s, int64_t H, int64_t t0, int64_t T, bf16_t *x);
/* Gate weight [E x H] (bf16) matching moe_synth_activations. */
void moe_synth_gate_weight(const moe_synth *s, int n_experts, int64_t H, bf16_t *w);

#endif
