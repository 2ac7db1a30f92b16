/* sim/model.c — model specs: the YAML key table, consistency checks, parameter counts, KV-cache
 * bytes and training memory (model.h). Operators and FLOPs are in model_ops.c. */
#include "model.h"

#include <stddef.h>
#include <string.h>

static const char *const attn_kinds[] = {"mla", "gqa", NULL};
static const char *const gate_kinds[] = {"softmax", "sigmoid", NULL};
/* Index = model_fmt. */
static const char *const fmt_names[] = {"fp32", "bf16", "fp8_e4m3", "e5m6", "none", NULL};

const char *model_fmt_name(int f) { return f >= 0 && f <= MODEL_NONE ? fmt_names[f] : "?"; }

#define A(f) offsetof(model_spec, attn.f)
#define MO(f) offsetof(model_spec, moe.f)
#define P(f) offsetof(model_spec, prec.f)
#define R(f) offsetof(model_spec, recompute.f)

/* Nested tables bind into the whole model_spec (offsets are from its start), so each points at
 * the same struct; cfg_bind of a CFG_STRUCT passes base + offset, hence offset 0 below. */
static const cfg_key attn_keys[] = {
    {.name = "kind", .type = CFG_ENUM, .offset = A(kind), .flags = CFG_REQUIRED, .choices = attn_kinds,
     .doc = "MLA (DeepSeek) or grouped-query attention"},
    {.name = "heads", .type = CFG_INT32, .offset = A(heads), .flags = CFG_REQUIRED | CFG_POSITIVE, .doc = "query heads"},
    {.name = "kv_heads", .type = CFG_INT32, .offset = A(kv_heads), .flags = CFG_POSITIVE, .doc = "GQA: key/value heads"},
    {.name = "head_dim", .type = CFG_INT32, .offset = A(head_dim), .flags = CFG_POSITIVE, .doc = "GQA: per-head dim"},
    {.name = "q_lora_rank", .type = CFG_INT32, .offset = A(q_lora_rank), .flags = CFG_NONNEG,
     .doc = "MLA: query compression rank (0 = full-rank query projection)"},
    {.name = "kv_lora_rank", .type = CFG_INT32, .offset = A(kv_lora_rank), .flags = CFG_POSITIVE,
     .doc = "MLA: key/value compression rank d_c"},
    {.name = "qk_nope_head_dim", .type = CFG_INT32, .offset = A(qk_nope_head_dim), .flags = CFG_POSITIVE,
     .doc = "MLA: per-head q/k dim without RoPE"},
    {.name = "qk_rope_head_dim", .type = CFG_INT32, .offset = A(qk_rope_head_dim), .flags = CFG_NONNEG,
     .doc = "MLA: decoupled RoPE dim (key shared across heads)"},
    {.name = "v_head_dim", .type = CFG_INT32, .offset = A(v_head_dim), .flags = CFG_POSITIVE, .doc = "MLA: per-head value dim"},
    CFG_END};

static const cfg_key moe_keys[] = {
    {.name = "routed_experts", .type = CFG_INT32, .offset = MO(routed_experts), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "routed experts per MoE layer"},
    {.name = "shared_experts", .type = CFG_INT32, .offset = MO(shared_experts), .flags = CFG_NONNEG,
     .doc = "always-active shared experts"},
    {.name = "experts_per_token", .type = CFG_INT32, .offset = MO(experts_per_token), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "routed experts per token (top-k)"},
    {.name = "expert_intermediate", .type = CFG_INT32, .offset = MO(expert_intermediate),
     .flags = CFG_REQUIRED | CFG_POSITIVE, .doc = "SwiGLU width of one expert"},
    {.name = "expert_groups", .type = CFG_INT32, .offset = MO(expert_groups), .flags = CFG_POSITIVE,
     .doc = "group-limited routing: expert groups (1 = none)"},
    {.name = "groups_per_token", .type = CFG_INT32, .offset = MO(groups_per_token), .flags = CFG_POSITIVE,
     .doc = "groups one token may reach"},
    {.name = "gate", .type = CFG_ENUM, .offset = MO(gate), .choices = gate_kinds,
     .doc = "affinity: softmax (V2, Mixtral) or sigmoid with a balancing bias (V3)"},
    CFG_END};

static const cfg_key prec_keys[] = {
    {.name = "gemm", .type = CFG_ENUM, .offset = P(gemm), .choices = fmt_names,
     .doc = "linear layers (Fprop, Dgrad, Wgrad): fp8_e4m3 or bf16"},
    {.name = "act_cache", .type = CFG_ENUM, .offset = P(act_cache), .choices = fmt_names,
     .doc = "activations saved for the backward: fp8_e4m3 (1x128 scaled) or bf16"},
    {.name = "attn_out", .type = CFG_ENUM, .offset = P(attn_out), .choices = fmt_names,
     .doc = "cached attention output (V3: e5m6)"},
    {.name = "weights", .type = CFG_ENUM, .offset = P(weights), .choices = fmt_names,
     .doc = "working copy of the weights (none: quantized from the master each step)"},
    {.name = "master", .type = CFG_ENUM, .offset = P(master), .choices = fmt_names, .doc = "master weights: fp32 or none"},
    {.name = "grads", .type = CFG_ENUM, .offset = P(grads), .choices = fmt_names, .doc = "weight gradients: fp32 or bf16"},
    {.name = "moments", .type = CFG_ENUM, .offset = P(moments), .choices = fmt_names,
     .doc = "each of the two AdamW moments: fp32 or bf16"},
    CFG_END};

static const cfg_key recompute_keys[] = {
    {.name = "rmsnorm", .type = CFG_BOOL, .offset = R(rmsnorm), .doc = "recompute RMSNorm outputs in the backward"},
    {.name = "mla_up", .type = CFG_BOOL, .offset = R(mla_up), .doc = "recompute MLA up-projections in the backward"},
    {.name = "swiglu", .type = CFG_BOOL, .offset = R(swiglu), .doc = "recompute SwiGLU outputs from the cached input"},
    {.name = "expert_out", .type = CFG_BOOL, .offset = R(expert_out),
     .doc = "keep no routed-expert outputs (routing weights applied on the down projection's input)"},
    CFG_END};

const cfg_key model_keys[] = {
    {.name = "name", .type = CFG_STRING, .offset = offsetof(model_spec, name), .flags = CFG_REQUIRED, .doc = "model name"},
    {.name = "vocab", .type = CFG_INT, .offset = offsetof(model_spec, vocab), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "vocabulary size"},
    {.name = "hidden", .type = CFG_INT32, .offset = offsetof(model_spec, hidden), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "model width"},
    {.name = "layers", .type = CFG_INT32, .offset = offsetof(model_spec, layers), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "transformer layers of the main model"},
    {.name = "dense_layers", .type = CFG_INT32, .offset = offsetof(model_spec, dense_layers), .flags = CFG_NONNEG,
     .doc = "first layers with a dense FFN (MoE models)"},
    {.name = "ffn_intermediate", .type = CFG_INT32, .offset = offsetof(model_spec, ffn_intermediate), .flags = CFG_NONNEG,
     .doc = "SwiGLU width of the dense FFN"},
    {.name = "tie_embeddings", .type = CFG_BOOL, .offset = offsetof(model_spec, tie_embeddings),
     .doc = "output head shares the embedding"},
    {.name = "mtp_depth", .type = CFG_INT32, .offset = offsetof(model_spec, mtp_depth), .flags = CFG_RANGE, .min = 0,
     .max = 8, .doc = "multi-token-prediction modules"},
    {.name = "seq_len", .type = CFG_INT32, .offset = offsetof(model_spec, seq_len), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "training sequence length, tokens"},
    {.name = "attention", .type = CFG_STRUCT, .offset = 0, .flags = CFG_REQUIRED, .sub = attn_keys, .doc = "attention"},
    {.name = "moe", .type = CFG_STRUCT, .offset = 0, .sub = moe_keys, .doc = "mixture of experts (absent: dense)"},
    {.name = "precision", .type = CFG_STRUCT, .offset = 0, .sub = prec_keys, .doc = "training precision recipe"},
    {.name = "recompute", .type = CFG_STRUCT, .offset = 0, .sub = recompute_keys, .doc = "recomputation choices"},
    CFG_END};

void model_init(model_spec *m) {
  memset(m, 0, sizeof *m);
  m->attn.kind = MODEL_GQA;
  m->moe.expert_groups = 1;
  m->moe.groups_per_token = 1;
  m->moe.gate = MODEL_GATE_SOFTMAX;
  m->prec = (model_precision){.gemm = MODEL_BF16, .act_cache = MODEL_BF16, .attn_out = MODEL_BF16,
                              .weights = MODEL_BF16, .master = MODEL_FP32, .grads = MODEL_FP32, .moments = MODEL_FP32,
                              .quant_passes = 1, .wgrad_transpose = 1};
}

/* The node of `key` inside mapping `sect` of root (or the section, or the root), for messages. */
static const cfg_node *where(const cfg_node *root, const char *sect, const char *key) {
  const cfg_node *n = sect ? cfg_node_get(root, sect) : root;
  if (!n) return root;
  const cfg_node *k = key && cfg_node_kind(n) == CFG_MAP ? cfg_node_get(n, key) : NULL;
  return k ? k : n;
}

static int fmt_allowed(int f, unsigned mask) { return (mask >> f) & 1u; }
#define FMTS(...) fmt_mask((int[]){__VA_ARGS__, -1})
static unsigned fmt_mask(const int *f) {
  unsigned m = 0;
  for (; *f >= 0; f++) m |= 1u << *f;
  return m;
}

static int check(cfg_ctx *ctx, const cfg_node *root, model_spec *m) {
  model_attn *a = &m->attn;
  if (a->kind == MODEL_MLA) {
    if (!a->kv_lora_rank || !a->qk_nope_head_dim || !a->v_head_dim)
      return cfg_error(ctx, where(root, "attention", NULL),
                       "MLA needs kv_lora_rank, qk_nope_head_dim and v_head_dim (qk_rope_head_dim, q_lora_rank optional)");
  } else {
    if (!a->kv_heads || !a->head_dim)
      return cfg_error(ctx, where(root, "attention", NULL), "GQA needs kv_heads and head_dim");
    if (a->heads % a->kv_heads != 0)
      return cfg_error(ctx, where(root, "attention", "kv_heads"), "heads (%d) must be a multiple of kv_heads (%d)",
                       a->heads, a->kv_heads);
  }
  model_moe *e = &m->moe;
  if (e->routed_experts) {
    if (e->experts_per_token > e->routed_experts)
      return cfg_error(ctx, where(root, "moe", "experts_per_token"), "experts_per_token (%d) exceeds routed_experts (%d)",
                       e->experts_per_token, e->routed_experts);
    if (e->routed_experts % e->expert_groups != 0)
      return cfg_error(ctx, where(root, "moe", "expert_groups"), "expert_groups (%d) must divide routed_experts (%d)",
                       e->expert_groups, e->routed_experts);
    if (e->groups_per_token > e->expert_groups)
      return cfg_error(ctx, where(root, "moe", "groups_per_token"), "groups_per_token (%d) exceeds expert_groups (%d)",
                       e->groups_per_token, e->expert_groups);
    if (e->experts_per_token > e->groups_per_token * (e->routed_experts / e->expert_groups))
      return cfg_error(ctx, where(root, "moe", "experts_per_token"),
                       "experts_per_token (%d) exceeds what %d groups of %d experts hold", e->experts_per_token,
                       e->groups_per_token, e->routed_experts / e->expert_groups);
  }
  if (m->dense_layers > m->layers)
    return cfg_error(ctx, where(root, NULL, "dense_layers"), "dense_layers (%d) exceeds layers (%d)", m->dense_layers,
                     m->layers);
  int any_dense = !e->routed_experts || m->dense_layers > 0;
  if (any_dense && !m->ffn_intermediate)
    return cfg_error(ctx, where(root, NULL, NULL), "dense FFN layers need ffn_intermediate");
  struct { int v; unsigned ok; const char *key; } f[] = {
      {m->prec.gemm, FMTS(MODEL_FP8, MODEL_BF16), "gemm"},
      {m->prec.act_cache, FMTS(MODEL_FP8, MODEL_BF16), "act_cache"},
      {m->prec.attn_out, FMTS(MODEL_FP8, MODEL_E5M6, MODEL_BF16), "attn_out"},
      {m->prec.weights, FMTS(MODEL_FP8, MODEL_BF16, MODEL_FP32, MODEL_NONE), "weights"},
      {m->prec.master, FMTS(MODEL_FP32, MODEL_NONE), "master"},
      {m->prec.grads, FMTS(MODEL_FP32, MODEL_BF16), "grads"},
      {m->prec.moments, FMTS(MODEL_FP32, MODEL_BF16), "moments"}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (!fmt_allowed(f[i].v, f[i].ok))
      return cfg_error(ctx, where(root, "precision", f[i].key), "precision.%s cannot be %s", f[i].key,
                       model_fmt_name(f[i].v));
  if (m->prec.weights == MODEL_NONE && m->prec.master == MODEL_NONE)
    return cfg_error(ctx, where(root, "precision", NULL), "precision: weights and master cannot both be none");
  return 0;
}

int model_finish(cfg_ctx *ctx, const cfg_node *root, model_spec *m) {
  if (!m->moe.routed_experts) m->dense_layers = m->layers;
  return check(ctx, root, m);
}

int model_load(cfg_ctx *ctx, const char *path, model_spec *m) {
  const cfg_node *root = cfg_load_file(ctx, path);
  if (!root) return -1;
  if (cfg_bind(ctx, root, model_keys, m, "") != 0) return -1;
  return model_finish(ctx, root, m);
}

int model_layer_is_moe(const model_spec *m, int l) { return m->moe.routed_experts > 0 && l >= m->dense_layers; }

/* ---- counts ---- */

static uint64_t attn_params(const model_spec *m) {
  const model_attn *a = &m->attn;
  uint64_t h = (uint64_t)m->hidden, H = (uint64_t)a->heads;
  if (a->kind == MODEL_GQA) {
    uint64_t d = (uint64_t)a->head_dim, G = (uint64_t)a->kv_heads;
    return h * H * d + 2 * h * G * d + H * d * h;
  }
  uint64_t qk = (uint64_t)(a->qk_nope_head_dim + a->qk_rope_head_dim), r = (uint64_t)a->qk_rope_head_dim;
  uint64_t ql = (uint64_t)a->q_lora_rank, kvl = (uint64_t)a->kv_lora_rank, v = (uint64_t)a->v_head_dim;
  uint64_t q = ql ? h * ql + ql + ql * H * qk : h * H * qk; /* down, its norm, up; or one projection */
  uint64_t kv = h * (kvl + r) + kvl + kvl * H * ((uint64_t)a->qk_nope_head_dim + v);
  return q + kv + H * v * h;
}

void model_param_counts(const model_spec *m, model_params *p) {
  memset(p, 0, sizeof *p);
  uint64_t h = (uint64_t)m->hidden;
  p->embed = (uint64_t)m->vocab * h;
  p->head = m->tie_embeddings ? 0 : (uint64_t)m->vocab * h;
  p->final_norm = h;
  p->attn = attn_params(m);
  p->block_norms = 2 * h;
  p->dense_ffn = 3 * h * (uint64_t)m->ffn_intermediate;
  const model_moe *e = &m->moe;
  if (e->routed_experts) {
    p->expert = 3 * h * (uint64_t)e->expert_intermediate;
    /* router weights, plus V3's per-expert selection bias with the sigmoid gate */
    p->gate = (uint64_t)e->routed_experts * h + (e->gate == MODEL_GATE_SIGMOID ? (uint64_t)e->routed_experts : 0);
    p->moe = (uint64_t)(e->routed_experts + e->shared_experts) * p->expert + p->gate;
    p->moe_active = (uint64_t)(e->experts_per_token + e->shared_experts) * p->expert + p->gate;
  }
  uint64_t n_moe = e->routed_experts ? (uint64_t)(m->layers - m->dense_layers) : 0;
  uint64_t n_dense = (uint64_t)m->layers - n_moe;
  uint64_t layer_common = p->attn + p->block_norms;
  p->total = p->embed + p->head + p->final_norm + (uint64_t)m->layers * layer_common + n_dense * p->dense_ffn +
             n_moe * p->moe;
  p->active = p->embed + p->head + p->final_norm + (uint64_t)m->layers * layer_common + n_dense * p->dense_ffn +
              n_moe * p->moe_active;
  /* An MTP module: two norms (enorm, hnorm), the 2h -> h projection, one transformer layer shaped
   * like the last main layer, and its own norm before the shared head. */
  uint64_t mtp_layer = layer_common + (e->routed_experts ? p->moe : p->dense_ffn);
  uint64_t mtp_layer_active = layer_common + (e->routed_experts ? p->moe_active : p->dense_ffn);
  p->mtp = (uint64_t)m->mtp_depth * (2 * h + 2 * h * h + mtp_layer + h);
  p->mtp_active = (uint64_t)m->mtp_depth * (2 * h + 2 * h * h + mtp_layer_active + h);
}

uint64_t model_kv_bytes_per_token(const model_spec *m) {
  const model_attn *a = &m->attn;
  uint64_t per_layer = a->kind == MODEL_MLA ? (uint64_t)(a->kv_lora_rank + a->qk_rope_head_dim)
                                            : 2 * (uint64_t)a->kv_heads * (uint64_t)a->head_dim;
  return per_layer * 2 /* BF16 */ * (uint64_t)m->layers;
}

/* ---- memory ---- */

/* Bytes per stored value; FP8 and E5M6 activations carry one FP32 scale per 1x128 tile. */
static double fmt_bytes(int f) {
  switch (f) {
  case MODEL_FP32: return 4;
  case MODEL_BF16: return 2;
  case MODEL_FP8: return 1;
  case MODEL_E5M6: return 1.5;
  default: return 0;
  }
}
static double act_bytes(int f) { return fmt_bytes(f) + (f == MODEL_FP8 || f == MODEL_E5M6 ? 4.0 / 128 : 0); }

/* Bytes one token leaves for the backward in one layer's attention. */
static double attn_act(const model_spec *m) {
  const model_attn *a = &m->attn;
  const model_recompute *rc = &m->recompute;
  double h = m->hidden, H = a->heads, c = act_bytes(m->prec.act_cache), o = act_bytes(m->prec.attn_out);
  double bytes = h * 2; /* the norm's input: the BF16 residual stream */
  if (!rc->rmsnorm) bytes += h * c; /* norm output = input of the down projections */
  if (a->kind == MODEL_GQA) {
    double d = a->head_dim, G = a->kv_heads;
    bytes += (H + 2 * G) * d * 2; /* q, k, v for the attention backward */
    bytes += H * d * o + H * 4;   /* output (o_proj input and attention backward), log-sum-exp */
    return bytes;
  }
  double ql = a->q_lora_rank, kvl = a->kv_lora_rank, r = a->qk_rope_head_dim;
  double nope = a->qk_nope_head_dim, v = a->v_head_dim;
  if (ql) {
    bytes += ql * 2;                      /* q latent: q_norm's input */
    if (!rc->rmsnorm) bytes += ql * c;    /* q_norm output = q_up's input */
  }
  bytes += (kvl + r) * 2;                 /* kv latent (kv_norm's input) and the shared RoPE key */
  if (!rc->rmsnorm) bytes += kvl * c;     /* kv_norm output = kv_up's input */
  if (!rc->mla_up) bytes += H * (nope + r) * 2 + H * (nope + v) * 2; /* up-projected q, k, v */
  bytes += H * v * o + H * 4;             /* output, log-sum-exp */
  return bytes;
}

/* A SwiGLU FFN of width `inter` for one row: the GEMM inputs it keeps. */
static double swiglu_act(const model_spec *m, double inter) {
  double c = act_bytes(m->prec.act_cache);
  return 2 * inter * c + (m->recompute.swiglu ? 0 : inter * c); /* SwiGLU input; output = down's input */
}

void model_memory_use(const model_spec *m, model_memory *mem) {
  memset(mem, 0, sizeof *mem);
  model_params p;
  model_param_counts(m, &p);
  double n = (double)(p.total + p.mtp);
  mem->weights = n * fmt_bytes(m->prec.weights);
  mem->master = n * fmt_bytes(m->prec.master);
  mem->grads = n * fmt_bytes(m->prec.grads);
  mem->optimizer = n * 2 * fmt_bytes(m->prec.moments);
  mem->bytes_per_param = fmt_bytes(m->prec.weights) + fmt_bytes(m->prec.master) + fmt_bytes(m->prec.grads) +
                         2 * fmt_bytes(m->prec.moments);
  double h = m->hidden, c = act_bytes(m->prec.act_cache);
  double ffn_in = h * 2 + (m->recompute.rmsnorm ? 0 : h * c); /* norm input; norm output = FFN input */
  mem->act_attn = attn_act(m);
  mem->act_dense = mem->act_attn + ffn_in + swiglu_act(m, m->ffn_intermediate);
  if (m->moe.routed_experts) {
    const model_moe *e = &m->moe;
    double k = e->experts_per_token;
    mem->act_moe = mem->act_attn + ffn_in + k * 8                /* routing: expert index and weight per choice */
                   + k * h * c                                   /* each dispatched copy (the up GEMM's input) */
                   + k * swiglu_act(m, e->expert_intermediate)   /* each copy through its expert */
                   + (m->recompute.expert_out ? 0 : k * h * 2)   /* expert outputs, for the combine weights' grad */
                   + e->shared_experts * swiglu_act(m, e->expert_intermediate);
  }
}
