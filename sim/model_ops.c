/* sim/model_ops.c — per-block operator lists of a model spec (model.h) for F, B and W, and the
 * FLOPs per token summed from them.
 *
 * Element-wise costs are conventions (the tests hold them): RMSNorm 4 FLOPs per element forward,
 * 8 backward, 2 for the weight gradient; SwiGLU 6 per output element forward, 12 backward; the
 * softmax cross-entropy 5 per logit forward, 2 backward; gating 4 per expert score; combine 2 per
 * routed element (and 2 more backward for the routing-weight gradient). Bytes are one pass over
 * every operand: a GEMM reads A and B and writes C once. */
#include <assert.h>
#include <string.h>

#include "model.h"

/* Builder: F ops in order; recomputed ops (B pass, forward order); B and W in forward order,
 * reversed when the block is emitted, since the backward runs the block back to front. */
typedef struct ops_b {
  const model_spec *m;        /* the model */
  double T;                   /* tokens in the micro-batch */
  double seqs;                /* sequences */
  model_op f[MODEL_MAX_OPS], r[MODEL_MAX_OPS], b[MODEL_MAX_OPS], w[MODEL_MAX_OPS];
  size_t nf, nr, nb, nw;      /* used */
} ops_b;

static double bytes_of(int fmt) {
  switch (fmt) {
  case MODEL_FP32: return 4;
  case MODEL_BF16: return 2;
  case MODEL_FP8: return 1;
  case MODEL_E5M6: return 1.5;
  default: return 0;
  }
}

static model_op *push(model_op *arr, size_t *n) {
  assert(*n < MODEL_MAX_OPS);
  model_op *op = &arr[(*n)++];
  memset(op, 0, sizeof *op);
  return op;
}

static model_op op_make(const char *name, model_pass pass, model_op_class cls, int dtype, double flops, double bytes) {
  model_op o = {.name = name, .pass = pass, .cls = cls, .dtype = dtype, .flops = flops, .bytes = bytes};
  return o;
}

/* FP8 data movement around the GEMMs (model.h, model_precision.quant_passes / wgrad_transpose):
 *  quantize  BF16 -> FP8 with 1x128 scales: reads 2 bytes an element, writes 1 + 4/128.
 *  transpose the weight gradient's operands along the token dimension: reads an FP8 tensor and its
 *            scales, dequantizes, transposes, re-quantizes into 128x1 tiles and writes it back:
 *            (1 + 4/128) bytes an element each way.
 * Both are memory-bound passes without model FLOPs. */
#define Q8 (1 + 4.0 / 128) /* bytes of an FP8 element with its share of a 1x128 scale */

static void quant_op(model_op *arr, size_t *n, const char *name, model_pass pass, double elems, int recompute) {
  model_op *q = push(arr, n);
  *q = op_make(name, pass, MODEL_OP_QUANT, MODEL_BF16, 0, elems * (2 + Q8));
  q->recompute = recompute;
}

static void transpose_op(ops_b *o, const char *name, double elems) {
  *push(o->w, &o->nw) = op_make(name, MODEL_PASS_W, MODEL_OP_TRANSPOSE, MODEL_FP8, 0, elems * 2 * Q8);
}

/* What a linear layer's FP8 data movement is: the names of its passes (static strings) and which
 * of them it owns. */
typedef struct lin_io {
  const char *qx, *qdy, *tx, *tdy; /* names: quantize x (F), quantize dy (B), transpose x and dy (W) */
  int quant_x;     /* 1: this linear quantizes its input in F (its first FP8 consumer) */
  int x_recomputed;/* 1: its input is recomputed in the backward (BF16), so the quantize runs again */
  int transpose_x; /* 1: its Wgrad transposes the cached input (the input's only consumer so far) */
} lin_io;

/* lin_io for linear NAME: quantizes and transposes its own input unless told otherwise. */
#define LIO(NAME, qx_, rx_, tx_) \
  ((lin_io){NAME ".quant_x", NAME ".quant_dy", NAME ".transpose_x", NAME ".transpose_dy", qx_, rx_, tx_})

/* A linear layer y = x W, x: T x in, W: in x out, in dtype `dt` (FP8 operands, BF16 output; the
 * weight gradient accumulates into FP32). F: (T x in).(in x out); B (Dgrad): (T x out).(out x in);
 * W (Wgrad): (in x T).(T x out). `recompute`: F runs again in the backward. In FP8, `io` adds the
 * quantize passes of x (F) and dy (B) and the Wgrad transposes; with online quantization
 * (quant_passes 0) the GEMM reads its BF16 operand itself and writes the FP8 copy the backward
 * keeps (x in F; dy in B when the Wgrad transposes it later). */
static void linear(ops_b *o, const char *name, double in, double out, int dt, int recompute, lin_io io) {
  double T = o->T, e = bytes_of(dt);
  int fp8 = dt == MODEL_FP8, qp = fp8 && o->m->prec.quant_passes, online = fp8 && !o->m->prec.quant_passes;
  int tr = fp8 && o->m->prec.wgrad_transpose;
  double a_in = online ? 2 : e, keep_x = online && io.quant_x ? T * in * Q8 : 0;
  if (qp && io.quant_x) quant_op(o->f, &o->nf, io.qx, MODEL_PASS_F, T * in, 0);
  model_op *f = push(o->f, &o->nf);
  *f = op_make(name, MODEL_PASS_F, MODEL_OP_GEMM, dt, 2 * T * in * out, T * in * a_in + in * out * e + T * out * 2 + keep_x);
  f->m = (int64_t)T, f->n = (int64_t)out, f->k = (int64_t)in, f->groups = 1;
  if (qp && io.quant_x && io.x_recomputed) quant_op(o->r, &o->nr, io.qx, MODEL_PASS_B, T * in, 1);
  if (recompute) {
    model_op *r = push(o->r, &o->nr);
    *r = *f;
    r->pass = MODEL_PASS_B;
    r->recompute = 1;
  }
  if (qp) quant_op(o->b, &o->nb, io.qdy, MODEL_PASS_B, T * out, 0);
  model_op *b = push(o->b, &o->nb);
  *b = op_make(name, MODEL_PASS_B, MODEL_OP_GEMM, dt, 2 * T * in * out,
               T * out * a_in + in * out * e + T * in * 2 + (online && tr ? T * out * Q8 : 0));
  b->m = (int64_t)T, b->n = (int64_t)in, b->k = (int64_t)out, b->groups = 1;
  /* W ops are emitted back to front: the transposes (pushed after) run before the GEMM */
  model_op *w = push(o->w, &o->nw);
  *w = op_make(name, MODEL_PASS_W, MODEL_OP_GEMM, dt, 2 * T * in * out, T * in * e + T * out * e + in * out * 4);
  w->m = (int64_t)in, w->n = (int64_t)out, w->k = (int64_t)T, w->groups = 1;
  if (tr) {
    transpose_op(o, io.tdy, T * out);
    if (io.transpose_x) transpose_op(o, io.tx, T * in);
  }
}

/* Routed experts: `rows` = T * top-k dispatched rows spread over E experts (uniformly here; the
 * training simulator applies the gate's real imbalance); weights read for the experts that get
 * rows. FP8 data movement as for linear(), per dispatched row. */
static void grouped(ops_b *o, const char *name, double in, double out, int dt, lin_io io) {
  const model_moe *e = &o->m->moe;
  double rows = o->T * e->experts_per_token, E = e->routed_experts, s = bytes_of(dt);
  double used = rows < E ? rows : E;
  int fp8 = dt == MODEL_FP8, qp = fp8 && o->m->prec.quant_passes, online = fp8 && !o->m->prec.quant_passes;
  int tr = fp8 && o->m->prec.wgrad_transpose;
  double a_in = online ? 2 : s, keep_x = online && io.quant_x ? rows * in * Q8 : 0;
  if (qp && io.quant_x) quant_op(o->f, &o->nf, io.qx, MODEL_PASS_F, rows * in, 0);
  if (qp && io.quant_x && io.x_recomputed) quant_op(o->r, &o->nr, io.qx, MODEL_PASS_B, rows * in, 1);
  model_op *f = push(o->f, &o->nf);
  *f = op_make(name, MODEL_PASS_F, MODEL_OP_GROUPED, dt, 2 * rows * in * out,
               rows * in * a_in + used * in * out * s + rows * out * 2 + keep_x);
  f->m = (int64_t)rows, f->n = (int64_t)out, f->k = (int64_t)in, f->groups = (int64_t)E;
  if (qp) quant_op(o->b, &o->nb, io.qdy, MODEL_PASS_B, rows * out, 0);
  model_op *b = push(o->b, &o->nb);
  *b = op_make(name, MODEL_PASS_B, MODEL_OP_GROUPED, dt, 2 * rows * in * out,
               rows * out * a_in + used * in * out * s + rows * in * 2 + (online && tr ? rows * out * Q8 : 0));
  b->m = (int64_t)rows, b->n = (int64_t)in, b->k = (int64_t)out, b->groups = (int64_t)E;
  model_op *w = push(o->w, &o->nw);
  *w = op_make(name, MODEL_PASS_W, MODEL_OP_GROUPED, dt, 2 * rows * in * out, rows * in * s + rows * out * s + used * in * out * 4);
  w->m = (int64_t)in, w->n = (int64_t)out, w->k = (int64_t)rows, w->groups = (int64_t)E;
  if (tr) {
    transpose_op(o, io.tdy, rows * out);
    if (io.transpose_x) transpose_op(o, io.tx, rows * in);
  }
}

/* RMSNorm over `rows` rows of width d (BF16 in and out, FP32 math, weight gradient FP32). */
static void norm(ops_b *o, const char *name, double rows, double d) {
  double x = rows * d;
  *push(o->f, &o->nf) = op_make(name, MODEL_PASS_F, MODEL_OP_NORM, MODEL_BF16, 4 * x, 2 * x * 2 + d * 2);
  if (o->m->recompute.rmsnorm) {
    model_op *r = push(o->r, &o->nr);
    *r = o->f[o->nf - 1];
    r->pass = MODEL_PASS_B;
    r->recompute = 1;
  }
  *push(o->b, &o->nb) = op_make(name, MODEL_PASS_B, MODEL_OP_NORM, MODEL_BF16, 8 * x, 3 * x * 2 + d * 2);
  *push(o->w, &o->nw) = op_make(name, MODEL_PASS_W, MODEL_OP_NORM, MODEL_BF16, 2 * x, 2 * x * 2 + d * 4);
}

/* SwiGLU on `rows` rows of width `inter`: reads gate and up (2*inter), writes inter. */
static void swiglu(ops_b *o, const char *name, double rows, double inter) {
  double x = rows * inter;
  *push(o->f, &o->nf) = op_make(name, MODEL_PASS_F, MODEL_OP_SWIGLU, MODEL_BF16, 6 * x, 3 * x * 2);
  if (o->m->recompute.swiglu) {
    model_op *r = push(o->r, &o->nr);
    *r = o->f[o->nf - 1];
    r->pass = MODEL_PASS_B;
    r->recompute = 1;
  }
  *push(o->b, &o->nb) = op_make(name, MODEL_PASS_B, MODEL_OP_SWIGLU, MODEL_BF16, 12 * x, 5 * x * 2);
}

/* Causal attention core with `H` heads, q/k dim dqk, v dim dv; per sequence of s tokens, query t
 * attends to t keys, s(s+1)/2 pairs in all. B = 2F; FlashAttention's backward recomputes the
 * scores (QK^T), listed as a recomputation. */
static void attention(ops_b *o, double H, double dqk, double dv) {
  double s = o->m->seq_len, pairs = o->seqs * s * (s + 1) / 2, T = o->T;
  double fl = 2 * H * (dqk + dv) * pairs;
  double io = T * H * (2 * dqk + 2 * dv) * 2 + T * H * 4; /* q, k, v, o in BF16; log-sum-exp FP32 */
  model_op *f = push(o->f, &o->nf);
  *f = op_make("attn.core", MODEL_PASS_F, MODEL_OP_ATTN, MODEL_BF16, fl, io);
  f->groups = (int64_t)H;
  model_op *r = push(o->r, &o->nr);
  *r = op_make("attn.core", MODEL_PASS_B, MODEL_OP_ATTN, MODEL_BF16, 2 * H * dqk * pairs, 0);
  r->recompute = 1, r->groups = (int64_t)H;
  model_op *b = push(o->b, &o->nb);
  *b = op_make("attn.core", MODEL_PASS_B, MODEL_OP_ATTN, MODEL_BF16, 2 * fl, 2 * io);
  b->groups = (int64_t)H;
}

static void attn_block(ops_b *o) {
  const model_spec *m = o->m;
  const model_attn *a = &m->attn;
  double h = m->hidden, H = a->heads, T = o->T;
  int g = m->prec.gemm, rn = m->recompute.rmsnorm; /* rn: norm outputs (GEMM inputs) recomputed */
  norm(o, "attn.norm", T, h);
  if (a->kind == MODEL_GQA) {
    double d = a->head_dim, G = a->kv_heads;
    linear(o, "attn.q_proj", h, H * d, g, 0, LIO("attn.q_proj", 1, rn, 1));
    linear(o, "attn.kv_proj", h, 2 * G * d, g, 0, LIO("attn.kv_proj", 0, 0, 0)); /* x as q_proj */
    attention(o, H, d, d);
    linear(o, "attn.o_proj", H * d, h, g, 0, LIO("attn.o_proj", 1, 0, 1));
    return;
  }
  double qk = a->qk_nope_head_dim + a->qk_rope_head_dim, up = m->recompute.mla_up;
  if (a->q_lora_rank) {
    linear(o, "attn.q_down", h, a->q_lora_rank, g, 0, LIO("attn.q_down", 1, rn, 1));
    norm(o, "attn.q_norm", T, a->q_lora_rank);
    linear(o, "attn.q_up", a->q_lora_rank, H * qk, g, up, LIO("attn.q_up", 1, rn, 1));
  } else {
    linear(o, "attn.q_proj", h, H * qk, g, 0, LIO("attn.q_proj", 1, rn, 1));
  }
  linear(o, "attn.kv_down", h, a->kv_lora_rank + a->qk_rope_head_dim, g, 0,
         LIO("attn.kv_down", 0, 0, 0)); /* x quantized and transposed for the q projection */
  norm(o, "attn.kv_norm", T, a->kv_lora_rank);
  linear(o, "attn.kv_up", a->kv_lora_rank, H * (a->qk_nope_head_dim + a->v_head_dim), g, up,
         LIO("attn.kv_up", 1, rn, 1));
  attention(o, H, qk, a->v_head_dim);
  linear(o, "attn.o_proj", H * a->v_head_dim, h, g, 0, LIO("attn.o_proj", 1, 0, 1));
}

static void ffn_block(ops_b *o, int moe) {
  const model_spec *m = o->m;
  double h = m->hidden, T = o->T;
  int g = m->prec.gemm, rn = m->recompute.rmsnorm, sw = m->recompute.swiglu; /* GEMM inputs recomputed */
  norm(o, "ffn.norm", T, h);
  if (!moe) {
    linear(o, "ffn.up", h, 2.0 * m->ffn_intermediate, g, 0, LIO("ffn.up", 1, rn, 1)); /* gate and up, fused */
    swiglu(o, "ffn.swiglu", T, m->ffn_intermediate);
    linear(o, "ffn.down", m->ffn_intermediate, h, g, 0, LIO("ffn.down", 1, sw, 1));
    return;
  }
  const model_moe *e = &m->moe;
  double E = e->routed_experts, k = e->experts_per_token, i = e->expert_intermediate;
  linear(o, "moe.gate", h, E, MODEL_BF16, 0, LIO("moe.gate", 0, 0, 0)); /* the router stays BF16 */
  *push(o->f, &o->nf) = op_make("moe.route", MODEL_PASS_F, MODEL_OP_ROUTE, MODEL_FP32, 4 * T * E, T * E * 4 + T * k * 8);
  *push(o->b, &o->nb) = op_make("moe.route", MODEL_PASS_B, MODEL_OP_ROUTE, MODEL_FP32, 4 * T * E, T * E * 4 * 2);
  if (g == MODEL_FP8 && m->prec.quant_passes) {
    /* The dispatch sends FP8: x is quantized once, before it, and the shared expert reads the same
     * copy (online quantization folds the cast into the dispatch kernel's loads instead). */
    quant_op(o->f, &o->nf, "moe.dispatch.quant_x", MODEL_PASS_F, T * h, 0);
    if (rn && e->shared_experts) quant_op(o->r, &o->nr, "moe.dispatch.quant_x", MODEL_PASS_B, T * h, 1);
  }
  if (e->shared_experts) {
    double si = (double)e->shared_experts * i;
    linear(o, "moe.shared.up", h, 2 * si, g, 0, LIO("moe.shared.up", 0, 0, 1)); /* x: the dispatch's */
    swiglu(o, "moe.shared.swiglu", T, si);
    linear(o, "moe.shared.down", si, h, g, 0, LIO("moe.shared.down", 1, sw, 1));
  }
  grouped(o, "moe.routed.up", h, 2 * i, g, LIO("moe.routed.up", 0, 0, 1)); /* rows arrive in FP8 */
  swiglu(o, "moe.routed.swiglu", T * k, i);
  grouped(o, "moe.routed.down", i, h, g, LIO("moe.routed.down", 1, sw, 1));
  *push(o->f, &o->nf) =
      op_make("moe.combine", MODEL_PASS_F, MODEL_OP_ROUTE, MODEL_BF16, 2 * T * k * h, T * k * h * 2 + T * h * 2);
  *push(o->b, &o->nb) =
      op_make("moe.combine", MODEL_PASS_B, MODEL_OP_ROUTE, MODEL_BF16, 4 * T * k * h, 2 * T * k * h * 2 + T * h * 2);
}

static void head_block(ops_b *o, const char *norm_name) {
  const model_spec *m = o->m;
  double h = m->hidden, T = o->T, V = (double)m->vocab;
  norm(o, norm_name, T, h);
  linear(o, "head.proj", h, V, MODEL_BF16, 0, LIO("head.proj", 0, 0, 0)); /* the output head stays BF16 */
  *push(o->f, &o->nf) = op_make("head.loss", MODEL_PASS_F, MODEL_OP_LOSS, MODEL_FP32, 5 * T * V, T * V * 4);
  *push(o->b, &o->nb) = op_make("head.loss", MODEL_PASS_B, MODEL_OP_LOSS, MODEL_FP32, 2 * T * V, T * V * 4 * 2);
}

static void embed_op(ops_b *o, const char *name) {
  double h = o->m->hidden, T = o->T;
  *push(o->f, &o->nf) = op_make(name, MODEL_PASS_F, MODEL_OP_EMBED, MODEL_BF16, 0, T * 8 + 2 * T * h * 2);
  /* W: scatter-add of the gradient rows into the FP32 embedding gradient */
  *push(o->w, &o->nw) = op_make(name, MODEL_PASS_W, MODEL_OP_EMBED, MODEL_FP32, T * h, T * h * 2 + 2 * T * h * 4);
}

size_t model_block_ops(const model_spec *m, model_block blk, int seqs, model_op *out) {
  ops_b o; /* about 75 KB of stack */
  memset(&o, 0, sizeof o);
  o.m = m;
  o.seqs = seqs;
  o.T = (double)seqs * m->seq_len;
  double h = m->hidden;
  switch (blk) {
  case MODEL_BLOCK_EMBED: embed_op(&o, "embed"); break;
  case MODEL_BLOCK_DENSE: attn_block(&o); ffn_block(&o, 0); break;
  case MODEL_BLOCK_MOE:
    attn_block(&o);
    ffn_block(&o, m->moe.routed_experts > 0);
    break;
  case MODEL_BLOCK_HEAD: head_block(&o, "head.norm"); break;
  case MODEL_BLOCK_MTP:
    embed_op(&o, "mtp.embed"); /* the shared embedding of token i+k */
    norm(&o, "mtp.enorm", o.T, h);
    norm(&o, "mtp.hnorm", o.T, h);
    linear(&o, "mtp.eh_proj", 2 * h, h, m->prec.gemm, 0, LIO("mtp.eh_proj", 1, m->recompute.rmsnorm, 1));
    attn_block(&o);
    ffn_block(&o, m->moe.routed_experts > 0);
    head_block(&o, "mtp.head_norm");
    break;
  default: assert(0);
  }
  size_t n = 0;
  for (size_t i = 0; i < o.nf; i++) out[n++] = o.f[i];
  for (size_t i = 0; i < o.nr; i++) out[n++] = o.r[i];
  for (size_t i = o.nb; i-- > 0;) out[n++] = o.b[i];
  for (size_t i = o.nw; i-- > 0;) out[n++] = o.w[i];
  assert(n <= MODEL_MAX_OPS);
  return n;
}

const char *model_block_name(model_block b) {
  static const char *const names[] = {"embed", "dense_layer", "moe_layer", "head", "mtp"};
  return b >= 0 && b < MODEL_BLOCK_COUNT ? names[b] : "?";
}

const char *model_pass_name(model_pass p) { return p == MODEL_PASS_F ? "F" : p == MODEL_PASS_B ? "B" : "W"; }

void model_flops_per_token(const model_spec *m, model_flops *f) {
  memset(f, 0, sizeof *f);
  model_op ops[MODEL_MAX_OPS];
  int n_moe = m->moe.routed_experts ? m->layers - m->dense_layers : 0;
  struct { model_block b; double count; } blocks[] = {{MODEL_BLOCK_EMBED, 1},
                                                       {MODEL_BLOCK_DENSE, m->layers - n_moe},
                                                       {MODEL_BLOCK_MOE, n_moe},
                                                       {MODEL_BLOCK_HEAD, 1},
                                                       {MODEL_BLOCK_MTP, m->mtp_depth}};
  double T = m->seq_len;
  for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
    if (blocks[i].count == 0) continue;
    size_t n = model_block_ops(m, blocks[i].b, 1, ops);
    for (size_t j = 0; j < n; j++) {
      double x = ops[j].flops * blocks[i].count / T;
      if (ops[j].recompute) {
        f->recompute += x;
        continue;
      }
      f->train += x;
      if (ops[j].pass != MODEL_PASS_F) continue;
      f->fwd += x;
      if (blocks[i].b == MODEL_BLOCK_DENSE || blocks[i].b == MODEL_BLOCK_MOE) f->fwd_layers += x;
      if (blocks[i].b == MODEL_BLOCK_HEAD) f->fwd_head += x;
      if (blocks[i].b == MODEL_BLOCK_MTP) f->fwd_mtp += x;
      if (ops[j].cls == MODEL_OP_ATTN && blocks[i].b != MODEL_BLOCK_MTP) f->fwd_attn += x;
    }
  }
}
