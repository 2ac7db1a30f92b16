/* sim/infer_cost.c — the op cost model of the inference simulator: the ops of an attention
 * layer (MLA or GQA; decode with MLA's absorbed weights reading the compressed cache, prefill
 * up-projecting keys and values), of dense and expert FFNs and of the head, each timed on a
 * roofline: max(FLOPs / the tensor-core peak of its dtype, bytes / HBM bandwidth). Bytes are one
 * pass over every operand; weights in the model's GEMM format (FP8 E4M3 for V3), activations BF16.
 *
 * MLA shapes (DeepSeek-V3 inference code, absorbed mode for decode): per head, q = [q_nope,
 * q_rope]; the key up-projection W_uk (nope x kv_lora) is absorbed into the query, so a query
 * meets the cached latent (kv_lora) and the shared RoPE key directly: 2 (kv_lora + rope) FLOPs
 * per head for the score and 2 kv_lora for the weighted sum; the value up-projection W_uv
 * (kv_lora x v) is applied after. Prefill up-projects keys and values of the whole context
 * (cached prefix included) and runs ordinary attention with q/k dim nope + rope and v dim v. */
#include <math.h>
#include <string.h>

#include "infer_int.h"

static double fmt_bytes(int f) {
  switch (f) {
  case MODEL_FP32: return 4;
  case MODEL_FP8: return 1;
  case MODEL_E5M6: return 1.5;
  default: return 2;
  }
}

void ic_add_op(const ic_hw *hw, const model_op *op, ic_time *t) {
  if (op->flops <= 0 && op->bytes <= 0) return;
  double peak = op->dtype == MODEL_FP8 ? hw->fp8_flops : hw->bf16_flops;
  double tf = op->flops / peak, tm = op->bytes / hw->hbm_bytes, sec;
  int src = COMPUTE_SRC_ROOFLINE;
  if (hw->cc) {
    compute_op co;
    compute_cost cost;
    compute_op_from_model(op, &co);
    sec = compute_op_cost(hw->cc, &co, &cost);
    src = cost.src;
  } else {
    sec = tf > tm ? tf : tm;
  }
  /* The FP8 GEMMs' CUDA-core promotion steps (whatif.h): their share of a real kernel's time
   * (a row, or a projection from one; a roofline time has no steps) changes with the hardware's
   * steps per block, down to the op's bytes at HBM bandwidth. */
  double f = hw->fp8_gemm_factor;
  if (f > 0 && f != 1 && src != COMPUTE_SRC_ROOFLINE && op->dtype == MODEL_FP8 &&
      (op->cls == MODEL_OP_GEMM || op->cls == MODEL_OP_GROUPED)) {
    double s2 = sec * f, lo = tm < sec ? tm : sec;
    sec = s2 > lo ? s2 : lo;
  }
  if (hw->src_s) hw->src_s[src] += sec;
  /* The op's time counts against the resource it drives closest to its limit: the tensor cores
   * (FLOPs / peak) or HBM (bytes / bandwidth), whatever set the time. */
  *(tm > tf ? &t->mem_s : &t->flop_s) += sec;
  t->s += sec;
  t->flops += op->flops;
  t->bytes += op->bytes;
}

/* The FP8 input of an FP8 GEMM: quantized from BF16 by its own pass (read 2 bytes, write 1 and a
 * 4-byte scale per 128; model.h's MODEL_OP_QUANT), or with online quantization read in BF16 by the
 * GEMM itself. Returns the bytes per element the GEMM reads. */
static double fp8_input(const ic_hw *hw, const char *name, double elems, ic_time *t) {
  if (hw->online_quant) return 2;
  model_op q = {.name = name, .cls = MODEL_OP_QUANT, .dtype = MODEL_BF16, .bytes = elems * (3 + 4.0 / 128)};
  ic_add_op(hw, &q, t);
  return 1;
}

/* A GEMM (m x k).(k x n) with weights (k x n) in format `wf`, activations in `af`, BF16 out. */
static void gemm(const ic_hw *hw, const char *name, double m, double n, double k, int wf, int af, ic_time *t) {
  if (m <= 0) return;
  int fp8 = wf == MODEL_FP8 && af == MODEL_FP8;
  double ab = fp8 ? fp8_input(hw, "quant", m * k, t) : fmt_bytes(af);
  model_op op = {.name = name, .cls = MODEL_OP_GEMM, .dtype = fp8 ? MODEL_FP8 : MODEL_BF16,
                 .m = (int64_t)m, .n = (int64_t)n, .k = (int64_t)k, .groups = 1,
                 .flops = 2 * m * n * k, .bytes = m * k * ab + k * n * fmt_bytes(wf) + m * n * 2};
  ic_add_op(hw, &op, t);
}

/* Element-wise op over x elements: `fl` FLOPs and `rw` reads+writes of BF16 per element. */
static void elementwise(const ic_hw *hw, const char *name, int cls, double x, double fl, double rw, ic_time *t) {
  if (x <= 0) return;
  model_op op = {.name = name, .cls = cls, .dtype = MODEL_BF16, .flops = fl * x, .bytes = rw * 2 * x};
  ic_add_op(hw, &op, t);
}

static void norm(const ic_hw *hw, const char *name, double rows, double d, ic_time *t) {
  elementwise(hw, name, MODEL_OP_NORM, rows * d, 4, 2, t);
}

double infer_kv_bytes_per_layer(const model_spec *m, int kv_fmt) {
  const model_attn *a = &m->attn;
  double vals = a->kind == MODEL_MLA ? (double)(a->kv_lora_rank + a->qk_rope_head_dim) : 2.0 * a->kv_heads * a->head_dim;
  return kv_fmt == INFER_KV_FP8 ? vals + ceil(vals / 128) * 4 : vals * 2;
}

double infer_kv_bytes_per_token(const model_spec *m, int kv_fmt, int with_mtp) {
  return infer_kv_bytes_per_layer(m, kv_fmt) * (m->layers + (with_mtp ? m->mtp_depth : 0));
}

void ic_attention(const ic_hw *hw, const model_spec *m, int phase, int kv_fmt, int heads_div, const infer_attn_work *w,
                  int stage, ic_time *t) {
  const model_attn *a = &m->attn;
  int g = m->prec.gemm;
  double h = m->hidden, T = w->q_tokens, Ts = T / heads_div, H = (double)a->heads / heads_div;
  double kvb = infer_kv_bytes_per_layer(m, kv_fmt);
  if (T <= 0) return;
  if (a->kind == MODEL_GQA) {
    double d = a->head_dim, G = a->kv_heads >= heads_div ? (double)a->kv_heads / heads_div : 1;
    if (stage == 0) {
      norm(hw, "attn.norm", Ts, h, t);
      gemm(hw, "attn.q_proj", T, H * d, h, g, g, t);
      gemm(hw, "attn.kv_proj", T, 2 * G * d, h, g, g, t);
      return;
    }
    /* Decode reads this GPU's share of the cached K and V; prefill reads K and V in BF16. */
    double kv_read = phase == INFER_DECODE ? w->kv_tokens * kvb * G / a->kv_heads : w->kv_tokens * 2 * G * d * 2;
    model_op core = {.name = "attn.core", .cls = MODEL_OP_ATTN, .dtype = MODEL_BF16, .groups = (int64_t)H,
                     .flops = 2 * H * 2 * d * w->pairs, .bytes = T * H * d * 2 * 2 + kv_read};
    ic_add_op(hw, &core, t);
    gemm(hw, "attn.o_proj", T, h, H * d, g, g, t);
  } else {
    double ql = a->q_lora_rank, kvl = a->kv_lora_rank, r = a->qk_rope_head_dim, nope = a->qk_nope_head_dim;
    double v = a->v_head_dim;
    if (stage == 0) {
      norm(hw, "attn.norm", Ts, h, t);
      if (ql > 0) {
        /* q and kv down-projections fused in one GEMM, as DeepSeek runs them (N = 1536 + 576). */
        gemm(hw, "attn.qkv_down", Ts, ql + kvl + r, h, g, g, t);
        norm(hw, "attn.q_norm", Ts, ql, t);
        gemm(hw, "attn.q_up", T, H * (nope + r), ql, g, g, t);
      } else {
        gemm(hw, "attn.q_proj", T, H * (nope + r), h, g, g, t);
        gemm(hw, "attn.kv_down", Ts, kvl + r, h, g, g, t);
      }
      norm(hw, "attn.kv_norm", Ts, kvl, t);
      if (phase == INFER_DECODE) {
        /* q_nope . W_uk per head: a batched GEMM (T x nope).(nope x kv_lora) over H heads. */
        model_op ab = {.name = "attn.q_absorb", .cls = MODEL_OP_GROUPED, .dtype = MODEL_BF16, .groups = (int64_t)H,
                       .m = (int64_t)(T * H), .n = (int64_t)kvl, .k = (int64_t)nope, .flops = 2 * T * H * nope * kvl,
                       .bytes = T * H * nope * 2 + H * nope * kvl * fmt_bytes(g) + T * H * kvl * 2};
        ic_add_op(hw, &ab, t);
      } else {
        gemm(hw, "attn.kv_up", w->kv_tokens, H * (nope + v), kvl, g, g, t);
      }
      return;
    }
    if (phase == INFER_DECODE) {
      /* FlashMLA: all heads share one cache read per sequence. */
      model_op core = {.name = "attn.core", .cls = MODEL_OP_ATTN, .dtype = MODEL_BF16, .groups = (int64_t)H,
                       .flops = 2 * H * (2 * kvl + r) * w->pairs,
                       .bytes = w->kv_tokens * kvb + T * H * (kvl + r) * 2 + T * H * kvl * 2};
      ic_add_op(hw, &core, t);
      model_op ab = {.name = "attn.v_absorb", .cls = MODEL_OP_GROUPED, .dtype = MODEL_BF16, .groups = (int64_t)H,
                     .m = (int64_t)(T * H), .n = (int64_t)v, .k = (int64_t)kvl, .flops = 2 * T * H * kvl * v, .bytes = T * H * kvl * 2 + H * kvl * v * fmt_bytes(g) + T * H * v * 2};
      ic_add_op(hw, &ab, t);
    } else {
      model_op core = {.name = "attn.core", .cls = MODEL_OP_ATTN, .dtype = MODEL_BF16, .groups = (int64_t)H,
                       .flops = 2 * H * (nope + r + v) * w->pairs,
                       .bytes = T * H * (nope + r) * 2 + w->kv_tokens * H * (nope + r + v) * 2 + T * H * v * 2};
      ic_add_op(hw, &core, t);
    }
    gemm(hw, "attn.o_proj", T, h, H * v, g, g, t);
  }
}

void ic_ffn_in(const ic_hw *hw, const model_spec *m, double tokens, int moe, ic_time *t) {
  norm(hw, "ffn.norm", tokens, m->hidden, t);
  if (moe && m->moe.routed_experts) {
    gemm(hw, "moe.gate", tokens, m->moe.routed_experts, m->hidden, MODEL_BF16, MODEL_BF16, t);
    elementwise(hw, "moe.route", MODEL_OP_ROUTE, tokens * m->moe.routed_experts, 4, 2, t);
  }
}

void ic_dense_ffn(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t) {
  int g = m->prec.gemm;
  double h = m->hidden, f = m->ffn_intermediate;
  gemm(hw, "ffn.up", tokens, 2 * f, h, g, g, t);
  elementwise(hw, "ffn.swiglu", MODEL_OP_SWIGLU, tokens * f, 6, 3, t);
  gemm(hw, "ffn.down", tokens, h, f, g, g, t);
}

void ic_shared_expert(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t) {
  int g = m->prec.gemm;
  double h = m->hidden, si = (double)m->moe.shared_experts * m->moe.expert_intermediate;
  if (si <= 0) return;
  gemm(hw, "moe.shared.up", tokens, 2 * si, h, g, g, t);
  elementwise(hw, "moe.shared.swiglu", MODEL_OP_SWIGLU, tokens * si, 6, 3, t);
  gemm(hw, "moe.shared.down", tokens, h, si, g, g, t);
}

void ic_experts(const ic_hw *hw, const model_spec *m, double rows, double active, ic_time *t) {
  if (rows <= 0) return;
  int g = m->prec.gemm;
  double h = m->hidden, i = m->moe.expert_intermediate, e = fmt_bytes(g);
  /* the dispatched rows arrive in FP8 (quantized before the dispatch, with the attention's output) */
  model_op up = {.name = "moe.routed.up", .cls = MODEL_OP_GROUPED, .dtype = g, .m = (int64_t)rows,
                 .n = (int64_t)(2 * i), .k = (int64_t)h, .groups = (int64_t)active,
                 .flops = 2 * rows * h * 2 * i, .bytes = rows * h * e + active * h * 2 * i * e + rows * 2 * i * 2};
  ic_add_op(hw, &up, t);
  elementwise(hw, "moe.routed.swiglu", MODEL_OP_SWIGLU, rows * i, 6, 3, t);
  double ab = g == MODEL_FP8 ? fp8_input(hw, "moe.routed.down.quant", rows * i, t) : e;
  model_op down = {.name = "moe.routed.down", .cls = MODEL_OP_GROUPED, .dtype = g, .m = (int64_t)rows,
                   .n = (int64_t)h, .k = (int64_t)i, .groups = (int64_t)active,
                   .flops = 2 * rows * i * h, .bytes = rows * i * ab + active * i * h * e + rows * h * 2};
  ic_add_op(hw, &down, t);
}

void ic_head(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t) {
  if (tokens <= 0) return;
  norm(hw, "head.norm", tokens, m->hidden, t);
  gemm(hw, "head.proj", tokens, (double)m->vocab, m->hidden, MODEL_BF16, MODEL_BF16, t);
}

void ic_mtp_proj(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t) {
  if (tokens <= 0) return;
  double h = m->hidden;
  norm(hw, "mtp.enorm", tokens, h, t);
  norm(hw, "mtp.hnorm", tokens, h, t);
  gemm(hw, "mtp.eh_proj", tokens, h, 2 * h, m->prec.gemm, m->prec.gemm, t);
}

/* Parameters of one attention layer on a GPU holding 1/tp of the heads (projections of the
 * latents replicated), and its norms. */
static double attn_params(const model_spec *m, int tp) {
  const model_attn *a = &m->attn;
  double h = m->hidden, H = (double)a->heads / tp;
  if (a->kind == MODEL_GQA) {
    double d = a->head_dim, G = a->kv_heads >= tp ? (double)a->kv_heads / tp : 1;
    return h * H * d + 2 * h * G * d + H * d * h;
  }
  double ql = a->q_lora_rank, kvl = a->kv_lora_rank, r = a->qk_rope_head_dim, nope = a->qk_nope_head_dim,
         v = a->v_head_dim;
  double q = ql > 0 ? h * ql + ql + ql * H * (nope + r) : h * H * (nope + r);
  return q + h * (kvl + r) + kvl + kvl * H * (nope + v) + H * v * h;
}

void ic_weights(const model_spec *m, int tp, int slots_per_gpu, int shared_on_gpu, infer_weights *w) {
  memset(w, 0, sizeof *w);
  double g = fmt_bytes(m->prec.gemm), h = m->hidden;
  int moe = m->moe.routed_experts > 0;
  double n_moe = moe ? m->layers - m->dense_layers : 0, n_dense = m->layers - n_moe;
  double mtp = m->mtp_depth, mtp_moe = moe ? mtp : 0, mtp_dense = moe ? 0 : mtp;
  double expert = 3 * h * m->moe.expert_intermediate;
  w->attention = (m->layers + mtp) * (attn_params(m, tp) * g + 2 * h * 2);
  w->dense_ffn = (n_dense + mtp_dense) * 3 * h * m->ffn_intermediate * g;
  if (moe) {
    w->shared = shared_on_gpu ? (n_moe + mtp_moe) * m->moe.shared_experts * expert * g : 0;
    w->experts = (n_moe + mtp_moe) * slots_per_gpu * expert * g;
    w->gates = (n_moe + mtp_moe) * (double)m->moe.routed_experts * h * 2;
  }
  /* Embedding and head (BF16) on every GPU, like the FFNs (only the attention is split by TP);
   * MTP's projection (2h x h) and norms. */
  w->embed_head = (double)m->vocab * h * 2 * (m->tie_embeddings ? 1 : 2) + mtp * (2 * h * h * g + 3 * h * 2);
  w->total = w->attention + w->dense_ffn + w->shared + w->experts + w->gates + w->embed_head;
}
