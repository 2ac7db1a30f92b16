/* kernels/comm/a2a_layer.c — the MoE layer's compute on one rank of the distributed run (a2a.h,
 * `layer`): the gate over the rank's tokens, its routed experts on the rows dispatch delivered
 * (FP8 grouped GEMMs with the fused SwiGLU epilogue, as kernels/moe_layer.c does on one process),
 * the weighted sum per row, the shared expert on its own tokens, and the check of sampled outputs
 * against moe_layer_forward_ref — the single-process reference composition. Weights are
 * regenerated from the seed (moe_layer_expert_bf16), so rank r packs only its experts. */
#if MOESIM_MPI
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a2a_internal.h"
#include "harness.h"
#include "moe_layer.h"
#include "quant.h"
#include "util.h"

struct a2a_experts {
  moe_layer_cfg lc;      /* the layer the experts belong to */
  gemm_packed *gate_w;   /* [E x H] BF16 */
  int ne;                /* local routed experts */
  gemm_packed **w13;     /* [ne + 1]: local experts, then the shared experts together */
  gemm_packed **w2;      /* [ne + 1] */
  int fail;              /* a pack failed */
  /* routed workspace, for cap rows */
  int64_t cap;           /* rows the workspace holds */
  int32_t *lidx;         /* [rows x K] local expert of each slot, -1 elsewhere */
  float *lw;             /* [rows x K] gate weights */
  fp8_t *xr;             /* [routes x H] rows in expert order */
  float *xr_s;           /* their scales */
  bf16_t *h;             /* [routes x I] SwiGLU output */
  fp8_t *hq;             /* h quantized */
  float *hq_s;           /* its scales */
  bf16_t *y;             /* [routes x H] expert outputs */
  /* shared workspace [T x ...] */
  fp8_t *xs_q;
  float *xs_s;
  bf16_t *hs;
  fp8_t *hs_q;
  float *hs_s;
};

moe_layer_cfg a2a_layer_cfg(const a2a_cfg *c) {
  moe_layer_cfg l = {c->hidden, c->inter, c->n_shared, c->gate, KN_FP8_E4M3, 0, c->seed, c->skew};
  return l;
}

/* Packs expert e (e == E: the shared experts) as FP8 with 128x128 block scales. */
static void pack_expert(a2a_experts *ex, int e, gemm_packed **p13, gemm_packed **p2) {
  const moe_layer_cfg *c = &ex->lc;
  int64_t H = c->hidden, I = e == c->gate.n_experts ? (int64_t)c->n_shared * c->inter : c->inter;
  bf16_t *w13 = util_xmalloc((size_t)(2 * I * H) * sizeof *w13), *w2 = util_xmalloc((size_t)(H * I) * sizeof *w2);
  moe_layer_expert_bf16(c, e, w13, w2);
  const quant_kernels *qk = quant_best();
  fp8_t *q13 = util_xmalloc((size_t)(2 * I * H)), *q2 = util_xmalloc((size_t)(H * I));
  float *s13 = util_xmalloc((size_t)(quant_tiles(2 * I) * quant_tiles(H)) * sizeof(float));
  float *s2 = util_xmalloc((size_t)(quant_tiles(H) * quant_tiles(I)) * sizeof(float));
  qk->block_bf16(w13, 2 * I, H, c->dtype, 0, q13, s13);
  qk->block_bf16(w2, H, I, c->dtype, 0, q2, s2);
  gemm_mat m13 = {c->dtype, q13, H, s13, quant_tiles(H)}, m2 = {c->dtype, q2, I, s2, quant_tiles(I)};
  *p13 = gemm_pack(&m13, 2 * I, H);
  *p2 = gemm_pack(&m2, H, I);
  if (!*p13 || !*p2) ex->fail = 1;
  free(w13), free(w2), free(q13), free(q2), free(s13), free(s2);
}

typedef struct gen_job {
  a2a_experts *ex;
  int e0;
} gen_job;

static void gen_worker(void *arg, int tid, int nt) {
  gen_job *j = arg;
  a2a_experts *ex = j->ex;
  int E = ex->lc.gate.n_experts;
  for (int i = tid; i <= ex->ne; i += nt) {
    if (i == ex->ne && ex->lc.n_shared == 0) continue;
    pack_expert(ex, i == ex->ne ? E : j->e0 + i, &ex->w13[i], &ex->w2[i]);
  }
}

a2a_experts *a2a_experts_create(a2a_ctx *x) {
  a2a_experts *ex = util_xcalloc(1, sizeof *ex);
  ex->lc = a2a_layer_cfg(x->c);
  char why[160];
  if (moe_layer_check(&ex->lc, why, sizeof why) != 0) {
    fprintf(stderr, "moesim a2a: error: %s\n", why);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  ex->ne = x->e1 - x->e0;
  bf16_t *gw = util_xmalloc((size_t)((int64_t)x->E * x->H) * sizeof *gw);
  moe_synth syn = {x->c->seed, x->c->skew, 1.0};
  moe_synth_gate_weight(&syn, x->E, x->H, gw);
  gemm_mat gm = {KN_BF16, gw, x->H, NULL, 0};
  ex->gate_w = gemm_pack(&gm, x->E, x->H);
  free(gw);
  ex->w13 = util_xcalloc((size_t)ex->ne + 1, sizeof *ex->w13);
  ex->w2 = util_xcalloc((size_t)ex->ne + 1, sizeof *ex->w2);
  gen_job j = {ex, x->e0};
  pool_run(x->tp, gen_worker, &j);
  if (!ex->gate_w || ex->fail) {
    fprintf(stderr, "moesim a2a: error: packing the layer's weights failed\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int64_t T = x->T, H = x->H, SI = (int64_t)ex->lc.n_shared * ex->lc.inter + 1;
  ex->xs_q = util_xmalloc((size_t)(T * H));
  ex->xs_s = util_xmalloc((size_t)(T * quant_tiles(H)) * sizeof(float));
  ex->hs = util_xmalloc((size_t)(T * SI) * sizeof(bf16_t));
  ex->hs_q = util_xmalloc((size_t)(T * SI));
  ex->hs_s = util_xmalloc((size_t)(T * quant_tiles(SI)) * sizeof(float));
  return ex;
}

static void routed_free(a2a_experts *ex) {
  free(ex->lidx), free(ex->lw), free(ex->xr), free(ex->xr_s), free(ex->h), free(ex->hq), free(ex->hq_s), free(ex->y);
  ex->lidx = NULL, ex->lw = NULL, ex->xr = NULL, ex->xr_s = NULL, ex->h = NULL, ex->hq = NULL, ex->hq_s = NULL;
  ex->y = NULL, ex->cap = 0;
}

void a2a_experts_free(a2a_experts *ex) {
  if (!ex) return;
  gemm_packed_free(ex->gate_w);
  for (int i = 0; i <= ex->ne; i++) gemm_packed_free(ex->w13[i]), gemm_packed_free(ex->w2[i]);
  free(ex->w13), free(ex->w2);
  routed_free(ex);
  free(ex->xs_q), free(ex->xs_s), free(ex->hs), free(ex->hs_q), free(ex->hs_s);
  free(ex);
}

int a2a_layer_gate(a2a_ctx *x) {
  if (moe_gate_forward_packed(x->tp, &x->c->gate, x->x, x->ex->gate_w, NULL, x->T, x->idx, x->w, x->scores) != 0)
    return -1;
  return 0;
}

/* Grows the routed workspace to `rows` received rows (K routes each at most). */
static void routed_grow(a2a_experts *ex, int64_t rows, int K, int64_t H) {
  if (rows <= ex->cap) return;
  routed_free(ex);
  int64_t R = rows * K, I = ex->lc.inter;
  ex->lidx = util_xmalloc((size_t)R * sizeof *ex->lidx);
  ex->lw = util_xmalloc((size_t)R * sizeof *ex->lw);
  ex->xr = util_xmalloc((size_t)(R * H));
  ex->xr_s = util_xmalloc((size_t)(R * quant_tiles(H)) * sizeof(float));
  ex->h = util_xmalloc((size_t)(R * I) * sizeof(bf16_t));
  ex->hq = util_xmalloc((size_t)(R * I));
  ex->hq_s = util_xmalloc((size_t)(R * quant_tiles(I)) * sizeof(float));
  ex->y = util_xmalloc((size_t)(R * H) * sizeof(bf16_t));
  ex->cap = rows;
}

int a2a_layer_experts(a2a_ctx *x, const void *rows, int64_t nrows, bf16_t *part, int64_t *cnt) {
  a2a_experts *ex = x->ex;
  int K = x->K, ne = ex->ne;
  int64_t H = x->H, I = ex->lc.inter, nt = quant_tiles(H);
  if (nrows == 0 || ne == 0) return 0;
  routed_grow(ex, nrows, K, H);
  for (int64_t i = 0; i < nrows; i++) {
    const char *row = (const char *)rows + (uint64_t)i * x->f.bytes;
    const int32_t *idx = a2a_row_idx(&x->f, row);
    const float *w = a2a_row_w(&x->f, row);
    for (int k = 0; k < K; k++) {
      ex->lidx[i * K + k] = idx[k] >= x->e0 && idx[k] < x->e1 ? idx[k] - x->e0 : -1;
      ex->lw[i * K + k] = w[k];
    }
  }
  moe_plan p;
  moe_plan_build(&p, ex->lidx, nrows, K, ne, MOE_LAYOUT_CONTIGUOUS, 1);
  for (int64_t j = 0; j < p.rows; j++) {
    const char *row = (const char *)rows + (uint64_t)(p.row_src[j] / K) * x->f.bytes;
    memcpy(ex->xr + j * H, a2a_row_q(row), (size_t)H);
    memcpy(ex->xr_s + j * nt, a2a_row_scales(&x->f, row), (size_t)nt * sizeof(float));
  }
  gemm_opts swi = {NULL, 0, GEMM_EPI_SWIGLU};
  gemm_mat ax = {KN_FP8_E4M3, ex->xr, H, ex->xr_s, nt};
  gemm_out oh = {KN_BF16, ex->h, I}, oy = {KN_BF16, ex->y, H};
  int rc = gemm_grouped_contig(x->tp, ne, p.count, &ax, ex->w13, &oh, &swi);
  if (rc == 0) {
    quant_token_run(x->tp, NULL, KN_BF16, ex->h, p.rows, I, KN_FP8_E4M3, 0, ex->hq, ex->hq_s);
    gemm_mat ah = {KN_FP8_E4M3, ex->hq, I, ex->hq_s, quant_tiles(I)};
    rc = gemm_grouped_contig(x->tp, ne, p.count, &ah, ex->w2, &oy, NULL);
  }
  if (rc == 0) moe_combine(x->tp, NULL, &p, ex->y, ex->lw, H, NULL, part);
  if (cnt) memcpy(cnt, p.count, (size_t)ne * sizeof *cnt);
  moe_plan_free(&p);
  return rc;
}

int a2a_layer_shared(a2a_ctx *x) {
  a2a_experts *ex = x->ex;
  if (ex->lc.n_shared == 0) return 0;
  int64_t T = x->T, H = x->H, SI = (int64_t)ex->lc.n_shared * ex->lc.inter;
  quant_token_run(x->tp, NULL, KN_BF16, x->x, T, H, KN_FP8_E4M3, 0, ex->xs_q, ex->xs_s);
  gemm_opts swi = {NULL, 0, GEMM_EPI_SWIGLU};
  gemm_mat a = {KN_FP8_E4M3, ex->xs_q, H, ex->xs_s, quant_tiles(H)};
  gemm_out oh = {KN_BF16, ex->hs, SI}, oy = {KN_BF16, x->shared, H};
  if (gemm_run(x->tp, T, &a, ex->w13[ex->ne], &oh, &swi) != 0) return -1;
  quant_token_run(x->tp, NULL, KN_BF16, ex->hs, T, SI, KN_FP8_E4M3, 0, ex->hs_q, ex->hs_s);
  gemm_mat ah = {KN_FP8_E4M3, ex->hs_q, SI, ex->hs_s, quant_tiles(SI)};
  return gemm_run(x->tp, T, &ah, ex->w2[ex->ne], &oy, NULL);
}

int a2a_layer_check(a2a_ctx *x, double *max_err, int64_t *checked, char *why, size_t why_len) {
  const moe_layer_cfg *lc = &x->ex->lc;
  int K = x->K, E = x->E, nt = x->T < x->c->check_tokens ? (int)x->T : x->c->check_tokens;
  int64_t H = x->H;
  int64_t *toks = util_xmalloc((size_t)nt * sizeof *toks);
  for (int i = 0; i < nt; i++) toks[i] = nt > 1 ? (x->T - 1) * i / (nt - 1) : 0;
  bf16_t *xs = util_xmalloc((size_t)(nt * H) * sizeof *xs), *gw = util_xmalloc((size_t)((int64_t)E * H) * sizeof *gw);
  int32_t *fi = util_xmalloc((size_t)nt * K * sizeof *fi), *ri = util_xmalloc((size_t)nt * K * sizeof *ri);
  float *fw = util_xmalloc((size_t)nt * K * sizeof *fw), *rw = util_xmalloc((size_t)nt * K * sizeof *rw);
  for (int i = 0; i < nt; i++) {
    memcpy(xs + i * H, x->x + toks[i] * H, (size_t)H * sizeof *xs);
    memcpy(fi + i * K, x->idx + toks[i] * K, (size_t)K * sizeof *fi);
    memcpy(fw + i * K, x->w + toks[i] * K, (size_t)K * sizeof *fw);
  }
  moe_synth syn = {lc->seed, lc->zipf_s, 1.0};
  moe_synth_gate_weight(&syn, E, H, gw);
  moe_gate_forward_ref(&lc->gate, xs, gw, H, NULL, nt, ri, rw, NULL);
  /* a near-tie between two experts may be resolved differently by the fast GEMM's rounding: one
   * token in four may differ, more is a wrong gate */
  int differ = 0, rc = 0;
  for (int i = 0; i < nt; i++) differ += memcmp(ri + i * K, fi + i * K, (size_t)K * sizeof *ri) != 0;
  if (differ > (nt + 3) / 4) {
    snprintf(why, why_len, "%d of %d sampled tokens routed differently from the reference gate", differ, nt);
    rc = -1;
  }
  bf16_t *want = util_xmalloc((size_t)(nt * H) * sizeof *want), *got = util_xmalloc((size_t)(nt * H) * sizeof *got);
  if (rc == 0 && moe_layer_forward_ref(lc, x->x, toks, nt, fi, fw, want) != 0) {
    snprintf(why, why_len, "the reference layer rejected its arguments");
    rc = -1;
  }
  *max_err = 0, *checked = nt;
  if (rc == 0) {
    double rel, abs, r2, a2, mx = 0;
    moe_layer_tolerance(lc->dtype, &rel, &abs);
    a2a_combine_tolerance(&r2, &a2);
    for (int i = 0; i < nt; i++) memcpy(got + i * H, x->out + toks[i] * H, (size_t)H * sizeof *got);
    for (int64_t i = 0; i < nt * H; i++) mx = fmax(mx, fabs((double)bf16_to_f32(want[i])));
    for (int64_t i = 0; i < nt * H; i++)
      *max_err = fmax(*max_err, fabs((double)bf16_to_f32(got[i]) - (double)bf16_to_f32(want[i])) / (mx > 0 ? mx : 1));
    rc = hn_check_bf16(got, want, nt * H, (hn_tol){rel + r2, abs + a2}, why, why_len);
  }
  free(toks), free(xs), free(gw), free(fi), free(ri), free(fw), free(rw), free(want), free(got);
  return rc;
}
#endif
