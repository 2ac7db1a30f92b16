/* kernels/moe_layer.h — a whole DeepSeek-V3 MoE layer forward on one machine, BF16 or FP8, and
 * the plain reference composition it is validated against.
 *
 *   gate:      scores = sigmoid(x Wg^T) (BF16 GEMM, FP32 out), group-limited top-k (kernels/gate.h)
 *   dispatch:  tokens permuted into expert order (contiguous layout), FP8 with 1x128 scales or BF16
 *   routed:    h = SwiGLU(x_e W13_e^T) per expert (grouped GEMM, fused epilogue, BF16 out);
 *              FP8: h quantized per token (1x128); y_e = h W2_e^T (grouped GEMM, BF16 out)
 *   shared:    the same for every token with the shared experts, taken together as one expert of
 *              intermediate n_shared * inter (the sum of several experts is one wider expert)
 *   combine:   out = shared + sum_k weight_k * y_k (FP32 accumulation, BF16 out)
 *
 * The weights are functions of the seed: expert matrices are a hash of (seed, expert, matrix,
 * element) mapped to uniform values of variance 1/fan_in (so activations keep unit scale through
 * the layer), rounded to BF16; FP8 weights are those BF16 weights quantized per 128x128 block. Any
 * expert can therefore be regenerated alone (moe_layer_expert_bf16), which is how the reference
 * works without a second copy of every weight in memory. The gate weight and the activations come
 * from kernels/gate.h's synthetic generator with the same seed. */
#ifndef MOESIM_MOE_LAYER_H
#define MOESIM_MOE_LAYER_H

#include <stdint.h>

#include "dtype.h"
#include "gate.h"
#include "pool.h"

typedef struct moe_layer_cfg {
  int64_t hidden;    /* H: model width (7168) */
  int64_t inter;     /* I: intermediate size of one expert (2048) */
  int n_shared;      /* shared experts (1) */
  moe_gate_cfg gate; /* routing: experts, groups, top-k */
  kn_dtype dtype;    /* KN_BF16, KN_FP8_E4M3 or KN_FP8_E5M2: operands of the expert GEMMs */
  int pow2_scales;   /* FP8: power-of-two activation scales (DeepSeek's dispatch format) */
  uint64_t seed;     /* weights, gate and synthetic tokens are functions of it */
  double zipf_s;     /* popularity skew of the synthetic gate (moe_synth), 0 = uniform */
} moe_layer_cfg;

/* DeepSeek-V3's layer: H 7168, I 2048, 1 shared expert, the V3 gate, seed 1, uniform gate. */
moe_layer_cfg moe_layer_v3(kn_dtype dtype);

/* 0 when usable; -1 with a reason in `why` otherwise. */
int moe_layer_check(const moe_layer_cfg *c, char *why, size_t why_len);

typedef struct moe_layer moe_layer; /* packed weights and a reusable workspace */

/* Generates and packs every weight (threads from tp). NULL with a message on stderr for an
 * invalid configuration. */
moe_layer *moe_layer_create(pool *tp, const moe_layer_cfg *c);
void moe_layer_free(moe_layer *l);
const moe_layer_cfg *moe_layer_config(const moe_layer *l);
/* Bytes of packed weights (gate + experts). */
uint64_t moe_layer_weight_bytes(const moe_layer *l);

/* out [T x H] (bf16) = the layer applied to x [T x H]. The layer's workspace grows to T and is
 * reused (one forward at a time per layer). Returns 0, or -1 when a GEMM rejected its arguments. */
int moe_layer_forward(pool *tp, moe_layer *l, const bf16_t *x, int64_t T, bf16_t *out);

/* The routing of the last forward: idx and weights [T x topk], affinities [T x E] (workspace
 * pointers, valid until the next forward or free). */
void moe_layer_routing(const moe_layer *l, const int32_t **idx, const float **weights,
                       const float **scores);

/* Floating-point operations of a forward of T tokens: gate, and the expert GEMMs of every route
 * and of the shared expert (6 H I per token and expert: three H x I matrices, 2 FLOP per MAC). */
double moe_layer_flops(const moe_layer_cfg *c, int64_t T);

/* The reference composition, from plain-C references only (gate_ref, quant_ref, permute_ref,
 * gemm_ref) and regenerated weights: computes the outputs of the tokens listed in tokens[ntok]
 * (indices into x [T x H]) into out [ntok x H]. idx_in/weights_in: routing of those tokens
 * [ntok x topk] to use instead of the reference gate (so that a near-tie the fast gate resolved the
 * other way does not fail the layer), or NULL to route with the reference gate. Returns 0 or -1. */
int moe_layer_forward_ref(const moe_layer_cfg *c, const bf16_t *x, const int64_t *tokens, int64_t ntok,
                          const int32_t *idx_in, const float *weights_in, bf16_t *out);

/* Expert e's BF16 weights as the layer generates them: e < E a routed expert, e == E the shared
 * experts together (intermediate n_shared * inter). w13 [2 I' x H] (gate rows, then up rows),
 * w2 [H x I'], I' = inter or n_shared * inter. */
void moe_layer_expert_bf16(const moe_layer_cfg *c, int e, bf16_t *w13, bf16_t *w2);

/* The weight generator: rows x cols BF16, uniform in [-a, a] with a = sqrt(3 / cols) (variance
 * 1 / fan_in), a hash of (seed, e, mat, element) — any matrix regenerates alone, bit for bit. */
void moe_weight_gen(uint64_t seed, int e, int mat, int64_t rows, int64_t cols, bf16_t *w);

/* Tolerance the layer is validated with (stated here, used by tests and the suite): elementwise
 * |got - want| <= rel * |want| + abs * max|want|. */
void moe_layer_tolerance(kn_dtype dtype, double *rel, double *abs);

#endif
