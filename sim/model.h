/* sim/model.h — transformer model specs (the YAML files under experiments/models) and what
 * follows from them: parameter counts, training FLOPs, KV-cache bytes, per-block operator lists
 * for the forward (F), backward-for-input (B) and backward-for-weights (W) passes, and training
 * memory.
 *
 * A spec covers the four families the simulator compares: DeepSeek-V3/V2 (MLA attention,
 * DeepSeekMoE with shared and fine-grained routed experts, the first layers dense, MTP), dense GQA
 * models (Llama 3.1) and GQA MoE models (Mixtral). Every linear layer is a GEMM in the spec's GEMM
 * dtype (FP8 E4M3 for Fprop, Dgrad and Wgrad in DeepSeek-V3's recipe); embedding, output head,
 * gate, norms and attention stay BF16/FP32 as the recipe keeps them.
 *
 * Conventions (they are the contract the tests check):
 *  - A GEMM (m x k).(k x n) costs 2mkn FLOPs in F, again in B (Dgrad) and again in W (Wgrad).
 *  - Causal attention over a sequence of s tokens: each query attends to (s+1)/2 keys on average;
 *    F = 2 * heads * (d_qk + d_v) * (s+1)/2 FLOPs per token, B = 2F, W = 0 (no weights).
 *  - Model FLOPs (train_flops_per_token) count F + B + W of every op once: no recomputation.
 *    Recomputed ops are listed separately (recompute = 1) for the time model.
 *  - params_total counts the main model (embedding, layers, final norm, head) without the MTP
 *    modules, as DeepSeek's 671B does; params_active counts what one token touches in it,
 *    embedding and head included. Training FLOPs include the MTP modules (they are trained).
 *  - FP8 models (V3's recipe on Hopper) also list the passes that give the GEMMs their FP8
 *    operands: a quantize op (MODEL_OP_QUANT: reads BF16, writes FP8 and 1x128 scales) before each
 *    FP8 GEMM input in F (once per tensor: x of the q and kv down-projections is one tensor, the
 *    dispatched copy is quantized once before the dispatch) and before each Dgrad (dy), again in
 *    the backward where a recomputed input must be re-quantized, and in W a transpose op
 *    (MODEL_OP_TRANSPOSE) over the cached x and the FP8 dy of each Wgrad. They move bytes and have no
 *    model FLOPs. prec.quant_passes = 0 (online quantization) drops the quantize ops, the GEMMs
 *    reading BF16 and writing the FP8 copy the backward keeps; prec.wgrad_transpose = 0
 *    (transposed GEMM) drops the transposes.
 *  - KV cache: what one token leaves per main-model layer for decoding, in BF16: MLA caches the
 *    compressed latent and the shared RoPE key ((kv_lora_rank + qk_rope_head_dim) values), GQA
 *    caches K and V (2 * kv_heads * head_dim values). */
#ifndef MOESIM_MODEL_H
#define MOESIM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

typedef enum model_attn_kind { MODEL_MLA, MODEL_GQA } model_attn_kind;
typedef enum model_gate_kind { MODEL_GATE_SOFTMAX, MODEL_GATE_SIGMOID } model_gate_kind;
/* Storage formats of the precision recipe (values are kn_dtype's where one exists). */
typedef enum model_fmt { MODEL_FP32, MODEL_BF16, MODEL_FP8, MODEL_E5M6, MODEL_NONE } model_fmt;

typedef struct model_attn {
  int kind;             /* MODEL_MLA or MODEL_GQA */
  int heads;            /* query heads */
  int kv_heads;         /* GQA: key/value heads */
  int head_dim;         /* GQA: per-head dimension of q, k and v */
  int q_lora_rank;      /* MLA: query compression d_c' (0: a full-rank query projection) */
  int kv_lora_rank;     /* MLA: key/value compression d_c */
  int qk_nope_head_dim; /* MLA: per-head q/k dimension without RoPE */
  int qk_rope_head_dim; /* MLA: decoupled RoPE dimension (one key shared by all heads) */
  int v_head_dim;       /* MLA: per-head value dimension */
} model_attn;

typedef struct model_moe {
  int routed_experts;      /* routed experts per MoE layer; 0 = a dense model */
  int shared_experts;      /* always-active experts */
  int experts_per_token;   /* routed experts each token uses (top-k) */
  int expert_intermediate; /* SwiGLU width of one expert */
  int expert_groups;       /* group-limited routing: groups the experts form (1 = none) */
  int groups_per_token;    /* groups one token may reach (V3: 4 of 8 -> at most 4 nodes) */
  int gate;                /* MODEL_GATE_SOFTMAX or MODEL_GATE_SIGMOID */
} model_moe;

typedef struct model_precision {
  int gemm;       /* MODEL_FP8 or MODEL_BF16: linear layers' Fprop, Dgrad and Wgrad */
  int act_cache;  /* MODEL_FP8 or MODEL_BF16: activations saved for the backward */
  int attn_out;   /* format of the cached attention output (input of the output projection) */
  int weights;    /* working copy of the weights (MODEL_NONE: quantized from the master) */
  int master;     /* master weights */
  int grads;      /* weight gradients */
  int moments;    /* the two AdamW moments */
  /* How FP8 GEMM operands get their format (not YAML keys of the model: hardware features the
   * experiments' hw_features section sets, sim/whatif.h). Meaningful only with gemm = FP8. */
  int quant_passes;    /* 1: each FP8 GEMM input is quantized by its own memory pass before the
                          GEMM (Hopper, V3); 0: the GEMM casts as it loads (online quantization) */
  int wgrad_transpose; /* 1: the weight-gradient GEMM's operands (cached x, dy) are transposed
                          into token-wise tiles by their own pass; 0: read transposed by the MMA */
} model_precision;

typedef struct model_recompute {
  int rmsnorm; /* RMSNorm outputs recomputed in the backward, not stored (V3) */
  int mla_up;  /* MLA up-projections (q, k, v from the latents) recomputed (V3) */
  int swiglu;  /* SwiGLU output recomputed from its cached input (V3) */
  int expert_out; /* routed experts' outputs not kept: the routing weights scale the down
                     projection's input, so their gradient needs only tensors the backward has */
} model_recompute;

typedef struct model_spec {
  char *name;            /* model name */
  int64_t vocab;         /* vocabulary size */
  int hidden;            /* model width */
  int layers;            /* transformer layers of the main model */
  int dense_layers;      /* the first layers with a dense FFN (all of them without MoE) */
  int ffn_intermediate;  /* SwiGLU width of the dense FFN */
  int tie_embeddings;    /* output head shares the embedding matrix */
  int mtp_depth;         /* multi-token-prediction modules (V3: 1) */
  int seq_len;           /* training sequence length, tokens */
  model_attn attn;       /* attention */
  model_moe moe;         /* mixture of experts */
  model_precision prec;  /* precision recipe */
  model_recompute recompute; /* recomputation choices */
} model_spec;

/* The key table (documented by `moesim model --help`) and the defaults it binds over. */
extern const cfg_key model_keys[];
void model_init(model_spec *m);
/* Loads and checks a model file (with overrides already registered in ctx): 0, or -1 after a
 * path:line:col error. Strings belong to ctx. */
int model_load(cfg_ctx *ctx, const char *path, model_spec *m);
/* For a spec bound by another table (an experiment's `model:` include, say): applies the defaults
 * model_load does and its consistency checks; `root` is the model's mapping, for error positions.
 * Returns 0, or -1 after a path:line:col error. */
int model_finish(cfg_ctx *ctx, const cfg_node *root, model_spec *m);

/* Whether layer l (0-based) of the main model is an MoE layer. */
int model_layer_is_moe(const model_spec *m, int l);

typedef struct model_params {
  uint64_t embed;           /* input embedding */
  uint64_t head;            /* output head (0 when tied) */
  uint64_t final_norm;      /* last RMSNorm */
  uint64_t attn;            /* one layer's attention: projections and their norms */
  uint64_t block_norms;     /* one layer's two block RMSNorms */
  uint64_t dense_ffn;       /* one dense SwiGLU FFN */
  uint64_t expert;          /* one routed (or shared) expert */
  uint64_t gate;            /* one MoE layer's router (and bias) */
  uint64_t moe;             /* one MoE layer's FFN: routed + shared experts + gate */
  uint64_t moe_active;      /* of which one token uses: top-k routed + shared + gate */
  uint64_t mtp;             /* unique to the MTP modules (they share embedding and head) */
  uint64_t mtp_active;      /* of which one token uses (without the shared embedding/head) */
  uint64_t total;           /* main model */
  uint64_t active;          /* main model, per token, embedding and head included */
} model_params;

void model_param_counts(const model_spec *m, model_params *p);

/* KV-cache bytes one token adds over the main model's layers, BF16. */
uint64_t model_kv_bytes_per_token(const model_spec *m);

/* ---- operators ---- */

typedef enum model_pass { MODEL_PASS_F, MODEL_PASS_B, MODEL_PASS_W } model_pass;
typedef enum model_op_class {
  MODEL_OP_GEMM,    /* dense GEMM */
  MODEL_OP_GROUPED, /* grouped GEMM over experts */
  MODEL_OP_ATTN,    /* attention core (scores, softmax, values) */
  MODEL_OP_NORM,    /* RMSNorm */
  MODEL_OP_SWIGLU,  /* SiLU(gate) * up */
  MODEL_OP_ROUTE,   /* gate scores, top-k, weights */
  MODEL_OP_EMBED,   /* embedding gather (F) / scatter-add (W) */
  MODEL_OP_LOSS,    /* softmax cross-entropy */
  MODEL_OP_QUANT,   /* FP8 quantization of a GEMM input: BF16 in, FP8 + 1x128 scales out */
  MODEL_OP_TRANSPOSE /* a weight gradient's FP8 operand re-laid along the token dimension: read,
                        dequantize, transpose, re-quantize into 128x1 tiles, write */
} model_op_class;

typedef enum model_block {
  MODEL_BLOCK_EMBED, /* input embedding */
  MODEL_BLOCK_DENSE, /* a transformer layer with a dense FFN */
  MODEL_BLOCK_MOE,   /* a transformer layer with an MoE FFN */
  MODEL_BLOCK_HEAD,  /* final norm, output head, loss */
  MODEL_BLOCK_MTP,   /* one MTP module: norms, projection, a transformer layer, shared head, loss */
  MODEL_BLOCK_COUNT
} model_block;

typedef struct model_op {
  const char *name;   /* e.g. "attn.q_down", "moe.routed.up" (static) */
  model_pass pass;    /* F, B (input gradient) or W (weight gradient) */
  model_op_class cls; /* what kind of kernel */
  int dtype;          /* model_fmt of its arithmetic inputs */
  int recompute;      /* 1: a forward op re-run during the backward (not model FLOPs) */
  int64_t m, n, k;    /* GEMM (m x k).(k x n); grouped: m = rows over all groups */
  int64_t groups;     /* grouped GEMM: experts holding the rows; attention: heads */
  double flops;       /* floating-point operations for the micro-batch */
  double bytes;       /* bytes read and written, one pass over each operand */
} model_op;

#define MODEL_MAX_OPS 256 /* ops of any one block */

/* The ops of block b for a micro-batch of `seqs` sequences of seq_len tokens, written to out[];
 * returns how many. Order: the F ops in execution order, then B (with recomputation first), then
 * W. */
size_t model_block_ops(const model_spec *m, model_block b, int seqs, model_op *out);
const char *model_block_name(model_block b);
const char *model_pass_name(model_pass p);
const char *model_fmt_name(int f);

typedef struct model_flops {
  double fwd_layers;   /* per token: F of the main transformer layers */
  double fwd_attn;     /* of which attention cores */
  double fwd_head;     /* F of the output head and loss */
  double fwd_mtp;      /* F of the MTP modules */
  double fwd;          /* total F per token (embedding lookups are not FLOPs) */
  double train;        /* F + B + W per token, model FLOPs at seq_len */
  double recompute;    /* extra FLOPs per token the recomputation choices cost */
} model_flops;

/* Sums the ops of every block at seq_len (one sequence), per token. */
void model_flops_per_token(const model_spec *m, model_flops *f);

typedef struct model_memory {
  double weights;       /* bytes of the working weights, whole model incl. MTP */
  double master;        /* bytes of master weights */
  double grads;         /* bytes of weight gradients */
  double optimizer;     /* bytes of AdamW moments */
  double bytes_per_param; /* the four above per parameter */
  double act_dense;     /* bytes saved for the backward per token by one dense layer */
  double act_moe;       /* ... by one MoE layer (k routed copies of each token) */
  double act_attn;      /* of which the attention part (same in both) */
} model_memory;

/* Training-state and activation memory under the spec's precision and recomputation choices. */
void model_memory_use(const model_spec *m, model_memory *mem);

#endif
