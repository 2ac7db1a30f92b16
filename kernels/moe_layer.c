/* kernels/moe_layer.c — the DeepSeek-V3 MoE layer forward (contract in moe_layer.h): weight
 * generation and packing, the fast composition (packed BF16 gate GEMM, AVX-512 dispatch, grouped
 * GEMMs with the fused SwiGLU epilogue, FP8 requantization, combine with the shared expert added)
 * and the reference composition from plain-C kernels only. */
#include "moe_layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "permute.h"
#include "quant.h"
#include "util.h"

struct moe_layer {
  moe_layer_cfg c;       /* configuration */
  gemm_packed *gate_w;   /* [E x H] BF16 */
  gemm_packed **w13;     /* [E + 1]: routed experts, then the shared experts together */
  gemm_packed **w2;      /* [E + 1] */
  uint64_t bytes;        /* packed bytes */
  /* workspace, sized for cap_t tokens */
  int64_t cap_t;         /* tokens the workspace holds */
  float *scores;         /* [T x E] */
  int32_t *idx;          /* [T x topk] */
  float *weights;        /* [T x topk] */
  moe_plan plan;         /* routes of the last forward */
  int have_plan;         /* plan holds allocations */
  void *xr;              /* dispatched rows [T topk x H], FP8 or BF16 */
  float *xr_s;           /* their scales (FP8) */
  bf16_t *h;             /* SwiGLU output [T topk x I] */
  fp8_t *hq;             /* h quantized (FP8) */
  float *hq_s;           /* its scales */
  bf16_t *y;             /* expert outputs [T topk x H] */
  fp8_t *xs_q;           /* tokens quantized for the shared expert [T x H] (FP8) */
  float *xs_s;           /* their scales */
  bf16_t *hs;            /* shared SwiGLU output [T x S I] */
  fp8_t *hs_q;           /* quantized (FP8) */
  float *hs_s;           /* its scales */
  bf16_t *ys;            /* shared expert output [T x H] */
};

static int is_fp8(kn_dtype t) { return t == KN_FP8_E4M3 || t == KN_FP8_E5M2; }

moe_layer_cfg moe_layer_v3(kn_dtype dtype) {
  moe_layer_cfg c = {7168, 2048, 1, moe_gate_v3(), dtype, 0, 1, 0.0};
  return c;
}

int moe_layer_check(const moe_layer_cfg *c, char *why, size_t why_len) {
  const char *msg = NULL;
  if (c->hidden < 1 || c->inter < 1) msg = "hidden and inter must be positive";
  else if (c->n_shared < 0) msg = "n_shared must be >= 0";
  else if (c->dtype != KN_BF16 && !is_fp8(c->dtype)) msg = "dtype must be bf16, fp8_e4m3 or fp8_e5m2";
  if (msg) {
    snprintf(why, why_len, "%s", msg);
    return -1;
  }
  return moe_gate_check(&c->gate, why, why_len);
}

/* ---- weights ---- */

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void moe_weight_gen(uint64_t seed, int e, int mat, int64_t rows, int64_t cols, bf16_t *w) {
  uint64_t key = mix64(seed * 0x9e3779b97f4a7c15ull + ((uint64_t)e << 8) + (uint64_t)mat);
  float amp = sqrtf(3.0f / (float)cols);
  for (int64_t i = 0; i < rows * cols; i++) {
    uint64_t z = mix64(key + (uint64_t)i * 0x9e3779b97f4a7c15ull);
    w[i] = f32_to_bf16(amp * ((float)(z >> 40) * 0x1p-23f - 1.0f));
  }
}

static int64_t expert_inter(const moe_layer_cfg *c, int e) {
  return e == c->gate.n_experts ? (int64_t)c->n_shared * c->inter : c->inter;
}

void moe_layer_expert_bf16(const moe_layer_cfg *c, int e, bf16_t *w13, bf16_t *w2) {
  int64_t I = expert_inter(c, e);
  moe_weight_gen(c->seed, e, 13, 2 * I, c->hidden, w13);
  moe_weight_gen(c->seed, e, 2, c->hidden, I, w2);
}

/* Unpacked operand of one expert matrix: BF16, or FP8 quantized per 128x128 block by `qk`. */
typedef struct expert_mat {
  gemm_mat m;   /* the operand */
  fp8_t *q;     /* FP8 codes (FP8 only) */
  float *s;     /* block scales (FP8 only) */
} expert_mat;

static void expert_mat_make(const moe_layer_cfg *c, const quant_kernels *qk, const bf16_t *w, int64_t rows,
                            int64_t cols, expert_mat *out) {
  memset(out, 0, sizeof *out);
  if (!is_fp8(c->dtype)) {
    out->m = (gemm_mat){KN_BF16, w, cols, NULL, 0};
    return;
  }
  out->q = util_xmalloc((size_t)(rows * cols));
  out->s = util_xmalloc((size_t)(quant_tiles(rows) * quant_tiles(cols)) * sizeof(float));
  qk->block_bf16(w, rows, cols, c->dtype, 0, out->q, out->s);
  out->m = (gemm_mat){c->dtype, out->q, cols, out->s, quant_tiles(cols)};
}

static void expert_mat_free(expert_mat *m) { free(m->q), free(m->s); }

typedef struct gen_job {
  moe_layer *l; /* layer being filled */
  int fail;     /* a pack failed */
} gen_job;

static void gen_worker(void *arg, int tid, int nthreads) {
  gen_job *j = arg;
  moe_layer *l = j->l;
  const moe_layer_cfg *c = &l->c;
  int E = c->gate.n_experts;
  for (int e = tid; e <= E; e += nthreads) {
    if (e == E && c->n_shared == 0) continue;
    int64_t I = expert_inter(c, e), H = c->hidden;
    bf16_t *w13 = util_xmalloc((size_t)(2 * I * H) * sizeof *w13), *w2 = util_xmalloc((size_t)(H * I) * sizeof *w2);
    moe_layer_expert_bf16(c, e, w13, w2);
    expert_mat a, b;
    expert_mat_make(c, quant_best(), w13, 2 * I, H, &a);
    expert_mat_make(c, quant_best(), w2, H, I, &b);
    l->w13[e] = gemm_pack(&a.m, 2 * I, H);
    l->w2[e] = gemm_pack(&b.m, H, I);
    if (!l->w13[e] || !l->w2[e]) j->fail = 1;
    expert_mat_free(&a), expert_mat_free(&b);
    free(w13), free(w2);
  }
}

moe_layer *moe_layer_create(pool *tp, const moe_layer_cfg *c) {
  char why[128];
  if (moe_layer_check(c, why, sizeof why) != 0) {
    fprintf(stderr, "moe_layer: %s\n", why);
    return NULL;
  }
  moe_layer *l = util_xcalloc(1, sizeof *l);
  l->c = *c;
  int E = c->gate.n_experts;
  bf16_t *gw = util_xmalloc((size_t)((int64_t)E * c->hidden) * sizeof *gw);
  moe_synth syn = {c->seed, c->zipf_s, 1.0};
  moe_synth_gate_weight(&syn, E, c->hidden, gw);
  gemm_mat gm = {KN_BF16, gw, c->hidden, NULL, 0};
  l->gate_w = gemm_pack(&gm, E, c->hidden);
  free(gw);
  l->w13 = util_xcalloc((size_t)E + 1, sizeof *l->w13);
  l->w2 = util_xcalloc((size_t)E + 1, sizeof *l->w2);
  gen_job j = {l, 0};
  pool_run(tp, gen_worker, &j);
  if (!l->gate_w || j.fail) {
    moe_layer_free(l);
    return NULL;
  }
  l->bytes = gemm_packed_bytes(l->gate_w);
  for (int e = 0; e <= E; e++)
    if (l->w13[e]) l->bytes += gemm_packed_bytes(l->w13[e]) + gemm_packed_bytes(l->w2[e]);
  return l;
}

static void workspace_free(moe_layer *l) {
  free(l->scores), free(l->idx), free(l->weights), free(l->xr), free(l->xr_s), free(l->h), free(l->hq);
  free(l->hq_s), free(l->y), free(l->xs_q), free(l->xs_s), free(l->hs), free(l->hs_q), free(l->hs_s), free(l->ys);
  if (l->have_plan) moe_plan_free(&l->plan);
  l->have_plan = 0;
  l->cap_t = 0;
}

void moe_layer_free(moe_layer *l) {
  if (!l) return;
  workspace_free(l);
  gemm_packed_free(l->gate_w);
  for (int e = 0; e <= l->c.gate.n_experts; e++) gemm_packed_free(l->w13[e]), gemm_packed_free(l->w2[e]);
  free(l->w13), free(l->w2);
  free(l);
}

const moe_layer_cfg *moe_layer_config(const moe_layer *l) { return &l->c; }
uint64_t moe_layer_weight_bytes(const moe_layer *l) { return l->bytes; }

double moe_layer_flops(const moe_layer_cfg *c, int64_t T) {
  double H = (double)c->hidden, I = (double)c->inter;
  return 2.0 * (double)T * c->gate.n_experts * H + (double)T * (c->gate.topk + c->n_shared) * 6.0 * H * I;
}

void moe_layer_routing(const moe_layer *l, const int32_t **idx, const float **weights, const float **scores) {
  *idx = l->idx, *weights = l->weights, *scores = l->scores;
}

static void workspace_grow(moe_layer *l, int64_t T) {
  if (T <= l->cap_t) return;
  workspace_free(l);
  const moe_layer_cfg *c = &l->c;
  int64_t H = c->hidden, I = c->inter, SI = (int64_t)c->n_shared * c->inter, K = c->gate.topk;
  int64_t R = T * K;
  size_t e1 = is_fp8(c->dtype) ? 1 : 2;
  l->scores = util_xmalloc((size_t)(T * c->gate.n_experts) * sizeof(float));
  l->idx = util_xmalloc((size_t)R * sizeof(int32_t));
  l->weights = util_xmalloc((size_t)R * sizeof(float));
  l->xr = util_xmalloc((size_t)(R * H) * e1);
  l->h = util_xmalloc((size_t)(R * I) * sizeof(bf16_t));
  l->y = util_xmalloc((size_t)(R * H) * sizeof(bf16_t));
  l->hs = util_xmalloc((size_t)(T * (SI ? SI : 1)) * sizeof(bf16_t));
  l->ys = util_xmalloc((size_t)(T * H) * sizeof(bf16_t));
  if (is_fp8(c->dtype)) {
    l->xr_s = util_xmalloc((size_t)(R * quant_tiles(H)) * sizeof(float));
    l->hq = util_xmalloc((size_t)(R * I));
    l->hq_s = util_xmalloc((size_t)(R * quant_tiles(I)) * sizeof(float));
    l->xs_q = util_xmalloc((size_t)(T * H));
    l->xs_s = util_xmalloc((size_t)(T * quant_tiles(H)) * sizeof(float));
    l->hs_q = util_xmalloc((size_t)(T * (SI ? SI : 1)));
    l->hs_s = util_xmalloc((size_t)(T * quant_tiles(SI ? SI : 1)) * sizeof(float));
  }
  l->cap_t = T;
}

/* The activations operand of rows [r0, r0 + rows) of a row-major buffer. */
static gemm_mat act_mat(kn_dtype t, const void *data, const float *scales, int64_t k) {
  gemm_mat m = {t, data, k, scales, is_fp8(t) ? quant_tiles(k) : 0};
  if (!is_fp8(t)) m.scale = NULL;
  return m;
}

int moe_layer_forward(pool *tp, moe_layer *l, const bf16_t *x, int64_t T, bf16_t *out) {
  const moe_layer_cfg *c = &l->c;
  int E = c->gate.n_experts, fp8 = is_fp8(c->dtype);
  int64_t H = c->hidden, I = c->inter, SI = (int64_t)c->n_shared * c->inter;
  workspace_grow(l, T > 0 ? T : 1);
  if (moe_gate_forward_packed(tp, &c->gate, x, l->gate_w, NULL, T, l->idx, l->weights, l->scores) != 0) return -1;
  if (l->have_plan) moe_plan_free(&l->plan);
  moe_plan_build(&l->plan, l->idx, T, c->gate.topk, E, MOE_LAYOUT_CONTIGUOUS, 1);
  l->have_plan = 1;
  const moe_plan *p = &l->plan;
  gemm_opts swi = {NULL, 0, GEMM_EPI_SWIGLU};
  gemm_out oh = {KN_BF16, l->h, I}, oy = {KN_BF16, l->y, H};
  /* routed experts */
  if (fp8) moe_dispatch_fp8(tp, NULL, p, x, H, c->dtype, c->pow2_scales, l->xr, l->xr_s);
  else moe_dispatch_bf16(tp, NULL, p, x, H, l->xr);
  gemm_mat ax = act_mat(c->dtype, l->xr, l->xr_s, H);
  if (gemm_grouped_contig(tp, E, p->count, &ax, l->w13, &oh, &swi) != 0) return -1;
  gemm_mat ah = act_mat(KN_BF16, l->h, NULL, I);
  if (fp8) {
    quant_token_run(tp, NULL, KN_BF16, l->h, p->rows, I, c->dtype, c->pow2_scales, l->hq, l->hq_s);
    ah = act_mat(c->dtype, l->hq, l->hq_s, I);
  }
  if (gemm_grouped_contig(tp, E, p->count, &ah, l->w2, &oy, NULL) != 0) return -1;
  /* shared experts, added in the combine */
  const bf16_t *add = NULL;
  if (c->n_shared > 0 && T > 0) {
    gemm_mat xs = act_mat(KN_BF16, x, NULL, H);
    if (fp8) {
      quant_token_run(tp, NULL, KN_BF16, x, T, H, c->dtype, c->pow2_scales, l->xs_q, l->xs_s);
      xs = act_mat(c->dtype, l->xs_q, l->xs_s, H);
    }
    gemm_out ohs = {KN_BF16, l->hs, SI}, oys = {KN_BF16, l->ys, H};
    if (gemm_run(tp, T, &xs, l->w13[E], &ohs, &swi) != 0) return -1;
    gemm_mat hs = act_mat(KN_BF16, l->hs, NULL, SI);
    if (fp8) {
      quant_token_run(tp, NULL, KN_BF16, l->hs, T, SI, c->dtype, c->pow2_scales, l->hs_q, l->hs_s);
      hs = act_mat(c->dtype, l->hs_q, l->hs_s, SI);
    }
    if (gemm_run(tp, T, &hs, l->w2[E], &oys, NULL) != 0) return -1;
    add = l->ys;
  }
  moe_combine(tp, NULL, p, l->y, l->weights, H, add, out);
  return 0;
}

/* ---- reference composition ---- */

/* One expert on `m` rows of activations in the reference way: SwiGLU(a W13^T) -> [FP8] -> W2. */
static int ref_expert(const moe_layer_cfg *c, int e, int64_t m, const gemm_mat *a, bf16_t *y) {
  int64_t H = c->hidden, I = expert_inter(c, e);
  bf16_t *w13 = util_xmalloc((size_t)(2 * I * H) * sizeof *w13), *w2 = util_xmalloc((size_t)(H * I) * sizeof *w2);
  bf16_t *h = util_xmalloc((size_t)(m * I) * sizeof *h);
  moe_layer_expert_bf16(c, e, w13, w2);
  expert_mat m13, m2;
  expert_mat_make(c, quant_ref(), w13, 2 * I, H, &m13);
  expert_mat_make(c, quant_ref(), w2, H, I, &m2);
  gemm_out oh = {KN_BF16, h, I}, oy = {KN_BF16, y, H};
  int rc = gemm_ref(m, 2 * I, H, a, &m13.m, &oh, GEMM_EPI_SWIGLU);
  gemm_mat ah = {KN_BF16, h, I, NULL, 0};
  fp8_t *hq = NULL;
  float *hs = NULL;
  if (rc == 0 && is_fp8(c->dtype)) {
    hq = util_xmalloc((size_t)(m * I) + 1);
    hs = util_xmalloc((size_t)(m * quant_tiles(I) + 1) * sizeof *hs);
    quant_ref()->token_bf16(h, m, I, c->dtype, c->pow2_scales, hq, hs);
    ah = (gemm_mat){c->dtype, hq, I, hs, quant_tiles(I)};
  }
  if (rc == 0) rc = gemm_ref(m, H, I, &ah, &m2.m, &oy, GEMM_EPI_NONE);
  expert_mat_free(&m13), expert_mat_free(&m2);
  free(w13), free(w2), free(h), free(hq), free(hs);
  return rc;
}

int moe_layer_forward_ref(const moe_layer_cfg *c, const bf16_t *x, const int64_t *tokens, int64_t ntok,
                          const int32_t *idx_in, const float *weights_in, bf16_t *out) {
  int E = c->gate.n_experts, K = c->gate.topk, fp8 = is_fp8(c->dtype);
  int64_t H = c->hidden, nt = quant_tiles(H);
  bf16_t *xs = util_xmalloc((size_t)(ntok * H + 1) * sizeof *xs);
  for (int64_t i = 0; i < ntok; i++) memcpy(xs + i * H, x + tokens[i] * H, (size_t)H * sizeof *xs);
  int32_t *idx = util_xmalloc((size_t)(ntok * K + 1) * sizeof *idx);
  float *w = util_xmalloc((size_t)(ntok * K + 1) * sizeof *w);
  if (idx_in) {
    memcpy(idx, idx_in, (size_t)(ntok * K) * sizeof *idx);
    memcpy(w, weights_in, (size_t)(ntok * K) * sizeof *w);
  } else {
    bf16_t *gw = util_xmalloc((size_t)((int64_t)E * H) * sizeof *gw);
    moe_synth syn = {c->seed, c->zipf_s, 1.0};
    moe_synth_gate_weight(&syn, E, H, gw);
    moe_gate_forward_ref(&c->gate, xs, gw, H, NULL, ntok, idx, w, NULL);
    free(gw);
  }
  moe_plan p;
  moe_plan_build(&p, idx, ntok, K, E, MOE_LAYOUT_CONTIGUOUS, 1);
  void *xr = util_xmalloc((size_t)(p.rows * H + 1) * (fp8 ? 1 : 2));
  float *xr_s = util_xmalloc((size_t)(p.rows * nt + 1) * sizeof *xr_s);
  bf16_t *y = util_xmalloc((size_t)(p.rows * H + 1) * sizeof *y), *ys = NULL;
  if (fp8) permute_ref()->dispatch_fp8(&p, xs, H, c->dtype, c->pow2_scales, 0, ntok, xr, xr_s);
  else permute_ref()->dispatch_bf16(&p, xs, H, 0, ntok, xr);
  int rc = 0;
  for (int e = 0; e < E && rc == 0; e++) {
    if (p.count[e] == 0) continue;
    int64_t r0 = p.offset[e];
    gemm_mat a = fp8 ? (gemm_mat){c->dtype, (fp8_t *)xr + r0 * H, H, xr_s + r0 * nt, nt}
                     : (gemm_mat){KN_BF16, (bf16_t *)xr + r0 * H, H, NULL, 0};
    rc = ref_expert(c, e, p.count[e], &a, y + r0 * H);
  }
  if (rc == 0 && c->n_shared > 0 && ntok > 0) {
    ys = util_xmalloc((size_t)(ntok * H) * sizeof *ys);
    fp8_t *q = NULL;
    float *s = NULL;
    gemm_mat a = {KN_BF16, xs, H, NULL, 0};
    if (fp8) {
      q = util_xmalloc((size_t)(ntok * H));
      s = util_xmalloc((size_t)(ntok * nt) * sizeof *s);
      quant_ref()->token_bf16(xs, ntok, H, c->dtype, c->pow2_scales, q, s);
      a = (gemm_mat){c->dtype, q, H, s, nt};
    }
    rc = ref_expert(c, E, ntok, &a, ys);
    free(q), free(s);
  }
  if (rc == 0) permute_ref()->combine(&p, y, w, H, ys, 0, ntok, out);
  moe_plan_free(&p);
  free(xs), free(idx), free(w), free(xr), free(xr_s), free(y), free(ys);
  return rc;
}

void moe_layer_tolerance(kn_dtype dtype, double *rel, double *abs) {
  /* BF16: the expert GEMMs accumulate in FP32 (reference: double) and h is rounded to BF16 in
   * both, so a one-ulp flip of h (2^-7) reaches the output diluted by the down projection's sum;
   * the output itself rounds to BF16. FP8: a flip of h's BF16 rounding can move its FP8 code by
   * one step (2^-3 relative for E4M3) before the down projection, again diluted. */
  if (is_fp8(dtype)) *rel = 0x1p-5, *abs = 0x1p-6;
  else *rel = 0x1p-6, *abs = 0x1p-8;
}
