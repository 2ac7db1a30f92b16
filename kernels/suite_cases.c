/* kernels/suite_cases.c — building, validating and timing one suite case (see suite.h). Each kind
 * of kernel has a context with its inputs (seeded synthetic activations and generated weights),
 * a `run` that is one call of the kernel under test, and a `check` that recomputes the same call
 * with the plain-C references on the same inputs — the whole output for the data-movement kernels
 * (bit for bit), sampled rows or tokens for the GEMMs and the layer (rows are independent, so a
 * reference row is the reference). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "gemm.h"
#include "krand.h"
#include "moe_layer.h"
#include "permute.h"
#include "quant.h"
#include "suite.h"
#include "util.h"

#define KS_SEED 20250101u /* inputs of every case are functions of this seed */
#define KS_SAMPLES 8      /* reference rows checked per GEMM case */

static int is_fp8(kn_dtype t) { return t == KN_FP8_E4M3 || t == KN_FP8_E5M2; }

static void *xalloc(uint64_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes ? (size_t)bytes : 64) != 0) UTIL_SYSFAIL("posix_memalign(%llu): out of memory", (unsigned long long)bytes);
  return p;
}

static bf16_t *synth_x(int64_t rows, int64_t h, uint64_t salt) {
  bf16_t *x = xalloc((uint64_t)(rows * h) * 2);
  moe_synth syn = {KS_SEED + salt, 0.0, 1.0};
  moe_synth_activations(&syn, h, 0, rows, x);
  return x;
}

/* The rows a GEMM check recomputes: first, last and evenly spaced between. */
static int sample_rows(int64_t m, int64_t *rows) {
  int n = m < KS_SAMPLES ? (int)m : KS_SAMPLES;
  for (int i = 0; i < n; i++) rows[i] = n > 1 ? (m - 1) * i / (n - 1) : 0;
  return n;
}

static const quant_kernels *quant_for(int level) {
  return level < 0 ? quant_best() : quant_backend((cpu_level)level);
}
static const permute_kernels *permute_for(int level) {
  return level < 0 ? permute_best() : permute_backend((cpu_level)level);
}

/* ---------------------------------------------------------------- memcpy */

typedef struct cp_ctx {
  pool *tp;        /* threads */
  char *src, *dst; /* buffers */
  uint64_t n;      /* bytes */
} cp_ctx;

static void cp_worker(void *arg, int tid, int nt) {
  cp_ctx *c = arg;
  uint64_t a = c->n * (uint64_t)tid / (uint64_t)nt, b = c->n * (uint64_t)(tid + 1) / (uint64_t)nt;
  memcpy(c->dst + a, c->src + a, b - a);
}
static void cp_run(void *p) {
  cp_ctx *c = p;
  pool_run(c->tp, cp_worker, c);
}
static int cp_check(void *p, char *why, size_t n) {
  cp_ctx *c = p;
  return hn_check_bytes(c->dst, c->src, c->n, why, n);
}

/* ---------------------------------------------------------------- quantizers */

typedef struct q_ctx {
  pool *tp;                /* threads */
  const quant_kernels *qk; /* backend under test */
  int block;               /* per-block (weights) instead of per-token */
  kn_dtype fmt;            /* FP8 format */
  int pow2;                /* power-of-two scales */
  int64_t m, k;            /* rows, columns */
  bf16_t *x;               /* input */
  fp8_t *q;                /* output codes */
  float *s;                /* output scales */
  int64_t ns;              /* scales */
} q_ctx;

static void q_run(void *p) {
  q_ctx *c = p;
  if (c->block) quant_block_run(c->tp, c->qk, KN_BF16, c->x, c->m, c->k, c->fmt, c->pow2, c->q, c->s);
  else quant_token_run(c->tp, c->qk, KN_BF16, c->x, c->m, c->k, c->fmt, c->pow2, c->q, c->s);
}
static int q_check(void *p, char *why, size_t n) {
  q_ctx *c = p;
  fp8_t *q = xalloc((uint64_t)(c->m * c->k));
  float *s = xalloc((uint64_t)c->ns * 4);
  if (c->block) quant_ref()->block_bf16(c->x, c->m, c->k, c->fmt, c->pow2, q, s);
  else quant_ref()->token_bf16(c->x, c->m, c->k, c->fmt, c->pow2, q, s);
  int rc = hn_check_bytes(c->q, q, (uint64_t)(c->m * c->k), why, n);
  if (rc == 0) rc = hn_check_bytes(c->s, s, (uint64_t)c->ns * 4, why, n);
  free(q), free(s);
  return rc;
}

/* ---------------------------------------------------------------- gate */

typedef struct g_ctx {
  pool *tp;          /* threads */
  moe_gate_cfg g;    /* gate */
  int64_t T, H;      /* tokens, hidden */
  bf16_t *x, *w;     /* activations, gate weight (unpacked) */
  gemm_packed *pw;   /* packed gate weight */
  int32_t *idx;      /* outputs */
  float *wt, *sc;
} g_ctx;

static void g_run(void *p) {
  g_ctx *c = p;
  if (moe_gate_forward_packed(c->tp, &c->g, c->x, c->pw, NULL, c->T, c->idx, c->wt, c->sc) != 0) abort();
}
static int g_check(void *p, char *why, size_t n) {
  g_ctx *c = p;
  int E = c->g.n_experts, K = c->g.topk;
  int64_t rows[KS_SAMPLES];
  int ns = sample_rows(c->T, rows), differ = 0;
  for (int i = 0; i < ns; i++) {
    float sc[1024], wt[64];
    int32_t idx[64];
    moe_gate_forward_ref(&c->g, c->x + rows[i] * c->H, c->w, c->H, NULL, 1, idx, wt, sc);
    if (hn_check_f32(c->sc + rows[i] * E, sc, E, hn_tol_for(KN_FP32), why, n) != 0) return -1;
    differ += memcmp(idx, c->idx + rows[i] * K, sizeof(int32_t) * (size_t)K) != 0;
  }
  if (differ > 1) {
    snprintf(why, n, "%d of %d sampled tokens routed differently from the reference gate", differ, ns);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- dispatch, combine */

typedef struct d_ctx {
  pool *tp;                   /* threads */
  const permute_kernels *pk;  /* backend under test */
  int combine;                /* 1: combine, 0: dispatch */
  kn_dtype dt;                /* dispatch payload: FP8 format or BF16 */
  int pow2;                   /* FP8 power-of-two scales */
  int64_t T, H;               /* tokens, hidden */
  moe_plan plan;              /* routes */
  bf16_t *x;                  /* tokens (dispatch) */
  bf16_t *y, *add;            /* expert rows and shared output (combine) */
  float *wt;                  /* gate weights */
  void *out;                  /* dispatched rows or combined tokens */
  float *s;                   /* dispatch scales */
} d_ctx;

static void d_run(void *p) {
  d_ctx *c = p;
  if (c->combine) moe_combine(c->tp, c->pk, &c->plan, c->y, c->wt, c->H, c->add, c->out);
  else if (is_fp8(c->dt)) moe_dispatch_fp8(c->tp, c->pk, &c->plan, c->x, c->H, c->dt, c->pow2, c->out, c->s);
  else moe_dispatch_bf16(c->tp, c->pk, &c->plan, c->x, c->H, c->out);
}
static int d_check(void *p, char *why, size_t n) {
  d_ctx *c = p;
  int rc = 0;
  if (c->combine) {
    bf16_t *o = xalloc((uint64_t)(c->T * c->H) * 2);
    permute_ref()->combine(&c->plan, c->y, c->wt, c->H, c->add, 0, c->T, o);
    rc = hn_check_bytes(c->out, o, (uint64_t)(c->T * c->H) * 2, why, n);
    free(o);
    return rc;
  }
  int64_t R = c->plan.rows, nt = quant_tiles(c->H);
  uint64_t es = is_fp8(c->dt) ? 1 : 2;
  char *o = xalloc((uint64_t)(R * c->H) * es);
  float *s = xalloc((uint64_t)(R * nt) * 4);
  if (is_fp8(c->dt)) permute_ref()->dispatch_fp8(&c->plan, c->x, c->H, c->dt, c->pow2, 0, c->T, (fp8_t *)o, s);
  else permute_ref()->dispatch_bf16(&c->plan, c->x, c->H, 0, c->T, (bf16_t *)o);
  for (int64_t r = 0; r < R && rc == 0; r++) { /* the rows a route landed in (unused slots are free) */
    if (c->plan.row_src[r] < 0) continue;
    rc = hn_check_bytes((char *)c->out + r * c->H * (int64_t)es, o + r * c->H * (int64_t)es, (uint64_t)c->H * es, why, n);
    if (rc == 0 && is_fp8(c->dt)) rc = hn_check_bytes(c->s + r * nt, s + r * nt, (uint64_t)nt * 4, why, n);
  }
  free(o), free(s);
  return rc;
}

/* Routes of T synthetic tokens through a V3-like gate with E experts (8 groups when E allows). */
static void synth_plan(int64_t T, int E, int masked, moe_plan *plan, float **wt_out, int *topk_out) {
  int G = E % 8 == 0 && E >= 16 ? 8 : 1, topk = E < 8 ? E : 8;
  moe_gate_cfg g = {E, G, G == 8 ? 4 : 1, topk, 2.5f, 1};
  float *sc = xalloc((uint64_t)(T * E) * 4), *wt = xalloc((uint64_t)(T * topk + 1) * 4);
  int32_t *idx = xalloc((uint64_t)(T * topk + 1) * 4);
  moe_synth syn = {KS_SEED, 0.0, 1.0};
  moe_synth_scores(&syn, E, 0, T, sc);
  moe_gate_select(&g, sc, NULL, T, idx, wt);
  int64_t slots = 0;
  if (masked) { /* fixed slots: the largest expert's load, so nothing is dropped */
    int64_t *load = xalloc((uint64_t)E * 8);
    moe_gate_load(idx, T, topk, E, load);
    for (int e = 0; e < E; e++) slots = load[e] > slots ? load[e] : slots;
    free(load);
  }
  moe_plan_build(plan, idx, T, topk, E, masked ? MOE_LAYOUT_MASKED : MOE_LAYOUT_CONTIGUOUS, masked ? slots : 1);
  free(sc), free(idx);
  *wt_out = wt;
  *topk_out = topk;
}

/* ---------------------------------------------------------------- SwiGLU */

typedef struct sw_ctx {
  pool *tp;                  /* threads */
  const permute_kernels *pk; /* backend under test */
  kn_dtype dt;               /* BF16 out, or FP8 (fused quantization) */
  int64_t R, I;              /* rows, intermediate */
  bf16_t *gu;                /* [R x 2I] */
  bf16_t *o;                 /* BF16 out */
  fp8_t *q;                  /* FP8 out */
  float *s;                  /* scales */
} sw_ctx;

static void sw_run(void *p) {
  sw_ctx *c = p;
  if (is_fp8(c->dt)) moe_swiglu_fp8(c->tp, c->pk, c->gu, c->R, c->I, c->dt, 0, c->q, c->s);
  else moe_swiglu(c->tp, c->pk, c->gu, c->R, c->I, c->o);
}
static int sw_check(void *p, char *why, size_t n) {
  sw_ctx *c = p;
  int64_t N = c->R * c->I;
  int rc;
  if (!is_fp8(c->dt)) {
    bf16_t *o = xalloc((uint64_t)N * 2);
    permute_ref()->swiglu(c->gu, c->R, c->I, o);
    rc = hn_check_bf16(c->o, o, N, hn_tol_for(KN_BF16), why, n);
    free(o);
    return rc;
  }
  fp8_t *q = xalloc((uint64_t)N);
  float *s = xalloc((uint64_t)(c->R * quant_tiles(c->I)) * 4), *d0 = xalloc((uint64_t)N * 4), *d1 = xalloc((uint64_t)N * 4);
  permute_ref()->swiglu_fp8(c->gu, c->R, c->I, c->dt, 0, q, s);
  quant_ref()->dequant_token(q, s, c->R, c->I, c->dt, d0);
  quant_ref()->dequant_token(c->q, c->s, c->R, c->I, c->dt, d1);
  rc = hn_check_f32(d1, d0, N, hn_tol_for(c->dt), why, n);
  free(q), free(s), free(d0), free(d1);
  return rc;
}

/* ---------------------------------------------------------------- GEMMs */

/* Weights of one (N x K) matrix, generated and (for FP8) block-quantized: the unpacked operand
 * the reference reads. */
typedef struct w_unp {
  bf16_t *b;   /* BF16 weights */
  fp8_t *q;    /* FP8 codes */
  float *s;    /* block scales */
  gemm_mat m;  /* the operand */
} w_unp;

static void w_make(int copy, kn_dtype dt, int64_t N, int64_t K, w_unp *w) {
  memset(w, 0, sizeof *w);
  w->b = xalloc((uint64_t)(N * K) * 2);
  moe_weight_gen(KS_SEED, copy, 99, N, K, w->b);
  w->m = (gemm_mat){KN_BF16, w->b, K, NULL, 0};
  if (is_fp8(dt)) {
    w->q = xalloc((uint64_t)(N * K));
    w->s = xalloc((uint64_t)(quant_tiles(N) * quant_tiles(K)) * 4);
    quant_best()->block_bf16(w->b, N, K, dt, 0, w->q, w->s);
    free(w->b), w->b = NULL;
    w->m = (gemm_mat){dt, w->q, K, w->s, quant_tiles(K)};
  }
}
static void w_free(w_unp *w) { free(w->b), free(w->q), free(w->s); }

typedef struct gm_ctx {
  pool *tp;                  /* threads */
  const gemm_variant *v;     /* variant under test */
  kn_dtype dt;               /* operands */
  int64_t M, N, K;           /* shape (M: all rows) */
  int groups, masked;        /* grouped GEMM: experts and layout */
  int copies;                /* distinct weight matrices (grouped: cycled over the groups) */
  gemm_packed **pw;          /* [copies] */
  gemm_packed **gw;          /* [groups] -> pw[g % copies] */
  int64_t *rows;             /* [groups] rows (contiguous) or valid rows (masked) */
  int64_t slots;             /* masked: rows per group */
  int64_t arows;             /* rows of A and C */
  bf16_t *xb;                /* A, BF16 */
  fp8_t *xq;                 /* A, FP8 */
  float *xs;                 /* A scales */
  bf16_t *c;                 /* C [arows x N] */
  w_unp ref_w;               /* unpacked weights (plain GEMM only) */
} gm_ctx;

static gemm_mat gm_a(const gm_ctx *c, int64_t row) {
  if (is_fp8(c->dt)) return (gemm_mat){c->dt, c->xq + row * c->K, c->K, c->xs + row * quant_tiles(c->K), quant_tiles(c->K)};
  return (gemm_mat){KN_BF16, c->xb + row * c->K, c->K, NULL, 0};
}

static void gm_run(void *p) {
  gm_ctx *c = p;
  gemm_mat a = gm_a(c, 0);
  gemm_out o = {KN_BF16, c->c, c->N};
  gemm_opts op = {c->v, 0, GEMM_EPI_NONE};
  int rc;
  if (c->groups == 0) rc = gemm_run(c->tp, c->M, &a, c->pw[0], &o, &op);
  else if (c->masked) rc = gemm_grouped_masked(c->tp, c->groups, c->slots, c->rows, &a, c->gw, &o, &op);
  else rc = gemm_grouped_contig(c->tp, c->groups, c->rows, &a, c->gw, &o, &op);
  if (rc != 0) abort(); /* shapes are built consistent; a rejection is a bug */
}

/* Reference rows: plain GEMM on sampled rows; grouped on the first and last row of up to four
 * non-empty groups, each against its regenerated weights. */
static int gm_check(void *p, char *why, size_t n) {
  gm_ctx *c = p;
  bf16_t *want = xalloc((uint64_t)c->N * 2);
  gemm_out o = {KN_BF16, want, c->N};
  int rc = 0;
  if (c->groups == 0) {
    int64_t rows[KS_SAMPLES];
    int ns = sample_rows(c->M, rows);
    for (int i = 0; i < ns && rc == 0; i++) {
      gemm_mat a = gm_a(c, rows[i]);
      rc = gemm_ref(1, c->N, c->K, &a, &c->ref_w.m, &o, GEMM_EPI_NONE);
      if (rc == 0) rc = hn_check_bf16(c->c + rows[i] * c->N, want, c->N, hn_tol_for(KN_BF16), why, n);
    }
  } else {
    int picked = 0;
    for (int g = 0; g < c->groups && picked < 4 && rc == 0; g += c->groups > 4 ? c->groups / 4 : 1) {
      int gg = g;
      while (gg < c->groups && c->rows[gg] == 0) gg++;
      if (gg == c->groups) break;
      picked++;
      w_unp w;
      w_make(gg % c->copies, c->dt, c->N, c->K, &w);
      int64_t base = 0;
      if (c->masked) base = gg * c->slots;
      else
        for (int j = 0; j < gg; j++) base += c->rows[j];
      int64_t last = base + c->rows[gg] - 1;
      for (int64_t r = base; rc == 0 && r <= last; r += last > base ? last - base : 1) {
        gemm_mat a = gm_a(c, r);
        rc = gemm_ref(1, c->N, c->K, &a, &w.m, &o, GEMM_EPI_NONE);
        if (rc == 0) rc = hn_check_bf16(c->c + r * c->N, want, c->N, hn_tol_for(KN_BF16), why, n);
        if (last == base) break;
      }
      w_free(&w);
    }
  }
  free(want);
  return rc;
}

/* ---------------------------------------------------------------- MoE layer */

typedef struct ml_ctx {
  pool *tp;          /* threads */
  moe_layer *l;      /* the layer */
  int64_t T;         /* tokens */
  bf16_t *x, *out;   /* in and out [T x H] */
} ml_ctx;

static void ml_run(void *p) {
  ml_ctx *c = p;
  if (moe_layer_forward(c->tp, c->l, c->x, c->T, c->out) != 0) abort();
}

/* Four sampled tokens: the reference gate must route them as the fast one did (a near-tie may
 * flip one), and the reference composition with that routing must give their outputs. */
static int ml_check(void *p, char *why, size_t n) {
  ml_ctx *c = p;
  const moe_layer_cfg *cf = moe_layer_config(c->l);
  int64_t H = cf->hidden, toks[4];
  int K = cf->gate.topk, E = cf->gate.n_experts, nt = c->T < 4 ? (int)c->T : 4;
  for (int i = 0; i < nt; i++) toks[i] = nt > 1 ? (c->T - 1) * i / (nt - 1) : 0;
  const int32_t *idx;
  const float *wt, *sc;
  moe_layer_routing(c->l, &idx, &wt, &sc);
  int32_t ri[4 * 64], fi[4 * 64];
  float rw[4 * 64], fw[4 * 64];
  bf16_t *xs = xalloc((uint64_t)(4 * H) * 2), *gw = xalloc((uint64_t)((int64_t)E * H) * 2);
  for (int i = 0; i < nt; i++) {
    memcpy(xs + i * H, c->x + toks[i] * H, (size_t)H * 2);
    memcpy(fi + i * K, idx + toks[i] * K, sizeof(int32_t) * (size_t)K);
    memcpy(fw + i * K, wt + toks[i] * K, sizeof(float) * (size_t)K);
  }
  moe_synth syn = {cf->seed, cf->zipf_s, 1.0};
  moe_synth_gate_weight(&syn, E, H, gw);
  moe_gate_forward_ref(&cf->gate, xs, gw, H, NULL, nt, ri, rw, NULL);
  int differ = 0;
  for (int i = 0; i < nt; i++) differ += memcmp(ri + i * K, fi + i * K, sizeof(int32_t) * (size_t)K) != 0;
  int rc = 0;
  if (differ > 1) {
    snprintf(why, n, "%d of %d sampled tokens routed differently from the reference gate", differ, nt);
    rc = -1;
  }
  bf16_t *want = xalloc((uint64_t)(4 * H) * 2), *got = xalloc((uint64_t)(4 * H) * 2);
  if (rc == 0) rc = moe_layer_forward_ref(cf, c->x, toks, nt, fi, fw, want);
  if (rc == 0) {
    double rel, abs;
    moe_layer_tolerance(cf->dtype, &rel, &abs);
    for (int i = 0; i < nt; i++) memcpy(got + i * H, c->out + toks[i] * H, (size_t)H * 2);
    rc = hn_check_bf16(got, want, nt * H, (hn_tol){rel, abs}, why, n);
  }
  free(xs), free(gw), free(want), free(got);
  return rc;
}

/* ---------------------------------------------------------------- driver */

static void set_bufs(hn_case *hc, int n, const void *const *p, const uint64_t *bytes) {
  for (int i = 0; i < n && i < HN_MAX_BUFS; i++) hc->bufs[i] = (hn_buf){p[i], bytes[i]};
  hc->nbufs = n < HN_MAX_BUFS ? n : HN_MAX_BUFS;
}

static int run_memcpy(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  cp_ctx c = {tp, xalloc((uint64_t)s->n), xalloc((uint64_t)s->n), (uint64_t)s->n};
  for (uint64_t i = 0; i < c.n; i++) c.src[i] = (char)(i * 131u);
  memset(c.dst, 0, c.n);
  *hc = (hn_case){.kernel = "memcpy", .backend = "libc", .variant = "-", .dtype = KN_FP32, .m = 1, .n = s->n,
                  .k = 1, .groups = 1, .bytes = 2.0 * (double)c.n, .run = cp_run, .check = cp_check, .ctx = &c};
  set_bufs(hc, 2, (const void *[]){c.src, c.dst}, (uint64_t[]){c.n, c.n});
  int rc = hn_measure(hs, hc, NULL);
  free(c.src), free(c.dst);
  return rc;
}

static int run_quant(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  int block = s->kind == KS_QUANT_BLOCK;
  int64_t m = block ? s->n : s->m, k = s->k;
  q_ctx c = {tp, quant_for(s->level), block, s->dtype, s->pow2, m, k, NULL, NULL, NULL, 0};
  c.ns = block ? quant_tiles(m) * quant_tiles(k) : m * quant_tiles(k);
  if (block) {
    c.x = xalloc((uint64_t)(m * k) * 2);
    moe_weight_gen(KS_SEED, 0, 7, m, k, c.x);
  } else {
    c.x = synth_x(m, k, 1);
  }
  c.q = xalloc((uint64_t)(m * k));
  c.s = xalloc((uint64_t)c.ns * 4);
  *hc = (hn_case){.kernel = block ? "quant_block" : "quant_token", .backend = c.qk->backend,
                  .variant = s->pow2 ? "pow2" : "-", .dtype = s->dtype, .m = block ? 1 : m, .n = block ? m : 1,
                  .k = k, .groups = 1, .bytes = (double)(m * k) * 3.0 + 4.0 * (double)c.ns, .run = q_run,
                  .check = q_check, .ctx = &c};
  set_bufs(hc, 3, (const void *[]){c.x, c.q, c.s}, (uint64_t[]){(uint64_t)(m * k) * 2, (uint64_t)(m * k), (uint64_t)c.ns * 4});
  int rc = hn_measure(hs, hc, NULL);
  free(c.x), free(c.q), free(c.s);
  return rc;
}

static int run_gate(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  g_ctx c = {tp, moe_gate_v3(), s->m, s->k, NULL, NULL, NULL, NULL, NULL, NULL};
  c.g.n_experts = (int)s->n;
  moe_synth syn = {KS_SEED, 0.0, 1.0};
  c.x = synth_x(c.T, c.H, 0);
  c.w = xalloc((uint64_t)(s->n * c.H) * 2);
  moe_synth_gate_weight(&syn, (int)s->n, c.H, c.w);
  gemm_mat wm = {KN_BF16, c.w, c.H, NULL, 0};
  c.pw = gemm_pack(&wm, s->n, c.H);
  c.idx = xalloc((uint64_t)(c.T * c.g.topk) * 4);
  c.wt = xalloc((uint64_t)(c.T * c.g.topk) * 4);
  c.sc = xalloc((uint64_t)(c.T * s->n) * 4);
  char var[48]; /* the logits GEMM's variant; sigmoid and selection are the one C routine */
  const gemm_variant *gv = gemm_variant_best(KN_BF16, c.T);
  snprintf(var, sizeof var, "v3/%s", gv->name);
  *hc = (hn_case){.kernel = "gate", .backend = cpu_level_name(gv->isa), .variant = var, .dtype = KN_BF16, .m = c.T, .n = s->n,
                  .k = c.H, .groups = 1, .flops = 2.0 * (double)(c.T * s->n * c.H),
                  .bytes = 2.0 * (double)(c.T * c.H + s->n * c.H) + 4.0 * (double)(c.T * s->n), .run = g_run,
                  .check = g_check, .ctx = &c};
  set_bufs(hc, 2, (const void *[]){c.x, c.sc}, (uint64_t[]){(uint64_t)(c.T * c.H) * 2, (uint64_t)(c.T * s->n) * 4});
  hc->opaque_bytes = gemm_packed_bytes(c.pw);
  int rc = hn_measure(hs, hc, NULL);
  gemm_packed_free(c.pw);
  free(c.x), free(c.w), free(c.idx), free(c.wt), free(c.sc);
  return rc;
}

static int run_perm(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  d_ctx c;
  memset(&c, 0, sizeof c);
  c.tp = tp, c.pk = permute_for(s->level), c.combine = s->kind == KS_COMBINE, c.dt = s->dtype, c.pow2 = s->pow2;
  c.T = s->m, c.H = s->k;
  int topk;
  synth_plan(c.T, s->groups, s->masked, &c.plan, &c.wt, &topk);
  int64_t R = c.plan.rows, routes = c.T * topk;
  uint64_t es = is_fp8(c.dt) ? 1 : 2;
  double bytes;
  if (c.combine) {
    c.y = synth_x(R, c.H, 2);
    c.add = synth_x(c.T, c.H, 3);
    c.out = xalloc((uint64_t)(c.T * c.H) * 2);
    bytes = 2.0 * (double)(routes * c.H) + 4.0 * (double)(c.T * c.H);
    set_bufs(hc, 3, (const void *[]){c.y, c.add, c.out},
             (uint64_t[]){(uint64_t)(R * c.H) * 2, (uint64_t)(c.T * c.H) * 2, (uint64_t)(c.T * c.H) * 2});
  } else {
    c.x = synth_x(c.T, c.H, 0);
    c.out = xalloc((uint64_t)(R * c.H) * es + 1);
    c.s = xalloc((uint64_t)(R * quant_tiles(c.H)) * 4 + 4);
    bytes = 2.0 * (double)(c.T * c.H) + (double)(routes * c.H) * (double)es +
            (is_fp8(c.dt) ? 4.0 * (double)(routes * quant_tiles(c.H)) : 0.0);
    set_bufs(hc, 3, (const void *[]){c.x, c.out, c.s},
             (uint64_t[]){(uint64_t)(c.T * c.H) * 2, (uint64_t)(R * c.H) * es, (uint64_t)(R * quant_tiles(c.H)) * 4});
  }
  char var[48];
  snprintf(var, sizeof var, "%s%s", s->masked ? "masked" : "contig", s->pow2 ? "_pow2" : "");
  hc->kernel = c.combine ? "combine" : "dispatch", hc->backend = c.pk->backend, hc->variant = var;
  hc->dtype = c.dt, hc->m = c.T, hc->n = R, hc->k = c.H, hc->groups = s->groups, hc->bytes = bytes;
  hc->run = d_run, hc->check = d_check, hc->ctx = &c;
  int rc = hn_measure(hs, hc, NULL);
  moe_plan_free(&c.plan);
  free(c.wt), free(c.x), free(c.y), free(c.add), free(c.out), free(c.s);
  return rc;
}

static int run_swiglu(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  sw_ctx c = {tp, permute_for(s->level), s->dtype, s->m, s->k, NULL, NULL, NULL, NULL};
  int fp8 = is_fp8(c.dt);
  c.gu = synth_x(c.R, 2 * c.I, 4);
  if (fp8) {
    c.q = xalloc((uint64_t)(c.R * c.I));
    c.s = xalloc((uint64_t)(c.R * quant_tiles(c.I)) * 4);
  } else {
    c.o = xalloc((uint64_t)(c.R * c.I) * 2);
  }
  *hc = (hn_case){.kernel = "swiglu", .backend = c.pk->backend, .variant = fp8 ? "fused_quant" : "-", .dtype = c.dt,
                  .m = c.R, .n = 1, .k = c.I, .groups = 1,
                  .bytes = 4.0 * (double)(c.R * c.I) + (fp8 ? 1.0 : 2.0) * (double)(c.R * c.I), .run = sw_run,
                  .check = sw_check, .ctx = &c};
  set_bufs(hc, 2, (const void *[]){c.gu, fp8 ? (void *)c.q : (void *)c.o},
           (uint64_t[]){(uint64_t)(c.R * c.I) * 4, (uint64_t)(c.R * c.I) * (fp8 ? 1 : 2)});
  int rc = hn_measure(hs, hc, NULL);
  free(c.gu), free(c.o), free(c.q), free(c.s);
  return rc;
}

static int run_gemm(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  gm_ctx c;
  memset(&c, 0, sizeof c);
  c.tp = tp, c.dt = s->dtype, c.M = s->m, c.N = s->n, c.K = s->k, c.groups = s->kind == KS_GROUPED ? s->groups : 0;
  c.masked = s->masked;
  c.v = s->gvar ? gemm_variant_by_name(s->gvar) : gemm_variant_best(c.dt, c.M);
  c.copies = c.groups ? (c.groups < 8 ? c.groups : 8) : 1;
  c.arows = c.M;
  if (c.groups) { /* rows per expert: M rows drawn uniformly over the experts */
    c.rows = xalloc((uint64_t)c.groups * 8);
    memset(c.rows, 0, (size_t)c.groups * 8);
    krand r = krand_seed(KS_SEED);
    for (int64_t i = 0; i < c.M; i++) c.rows[krand_below(&r, (uint64_t)c.groups)]++;
    if (c.masked) {
      for (int g = 0; g < c.groups; g++) c.slots = c.rows[g] > c.slots ? c.rows[g] : c.slots;
      c.arows = c.slots * c.groups;
    }
  }
  c.xb = synth_x(c.arows, c.K, 5);
  if (is_fp8(c.dt)) {
    c.xq = xalloc((uint64_t)(c.arows * c.K));
    c.xs = xalloc((uint64_t)(c.arows * quant_tiles(c.K)) * 4);
    quant_token_run(tp, NULL, KN_BF16, c.xb, c.arows, c.K, c.dt, 0, c.xq, c.xs);
    free(c.xb), c.xb = NULL;
  }
  c.c = xalloc((uint64_t)(c.arows * c.N) * 2);
  memset(c.c, 0, (size_t)(c.arows * c.N) * 2);
  c.pw = xalloc((uint64_t)c.copies * sizeof *c.pw);
  double wbytes = 0;
  for (int j = 0; j < c.copies; j++) {
    w_unp w;
    w_make(j, c.dt, c.N, c.K, &w);
    c.pw[j] = gemm_pack(&w.m, c.N, c.K);
    if (!c.groups) c.ref_w = w;
    else w_free(&w);
  }
  int active = 1;
  if (c.groups) {
    c.gw = xalloc((uint64_t)c.groups * sizeof *c.gw);
    active = 0;
    for (int g = 0; g < c.groups; g++) c.gw[g] = c.pw[g % c.copies], active += c.rows[g] > 0;
  }
  wbytes = (double)gemm_packed_bytes(c.pw[0]) * active;
  double ab = (double)(c.M * c.K) * (is_fp8(c.dt) ? 1.0 : 2.0);
  char var[48];
  if (c.groups) snprintf(var, sizeof var, "%s/%s/w%d", c.v->name, c.masked ? "masked" : "contig", c.copies);
  else snprintf(var, sizeof var, "%s", c.v->name);
  *hc = (hn_case){.kernel = c.groups ? "grouped_gemm" : "gemm", .backend = cpu_level_name(c.v->isa), .variant = var,
                  .dtype = c.dt, .m = c.M, .n = c.N, .k = c.K, .groups = c.groups ? c.groups : 1,
                  .flops = 2.0 * (double)c.M * (double)c.N * (double)c.K,
                  .bytes = ab + wbytes + 2.0 * (double)(c.M * c.N), .run = gm_run, .check = gm_check, .ctx = &c};
  const void *bp[HN_MAX_BUFS];
  uint64_t bb[HN_MAX_BUFS];
  int nb = 0;
  bp[nb] = is_fp8(c.dt) ? (void *)c.xq : (void *)c.xb, bb[nb++] = (uint64_t)(c.arows * c.K) * (is_fp8(c.dt) ? 1 : 2);
  bp[nb] = c.c, bb[nb++] = (uint64_t)(c.arows * c.N) * 2;
  set_bufs(hc, nb, bp, bb);
  hc->opaque_bytes = gemm_packed_bytes(c.pw[0]) * (uint64_t)c.copies; /* packed weights */
  int rc = hn_measure(hs, hc, NULL);
  for (int j = 0; j < c.copies; j++) gemm_packed_free(c.pw[j]);
  w_free(&c.ref_w);
  free(c.pw), free(c.gw), free(c.rows), free(c.xb), free(c.xq), free(c.xs), free(c.c);
  return rc;
}

static int run_layer(hn_session *hs, pool *tp, const ks_spec *s, hn_case *hc) {
  moe_layer_cfg cf = moe_layer_v3(s->dtype);
  cf.hidden = s->n, cf.inter = s->k, cf.gate.n_experts = s->groups; /* V3 gate: 8 groups, top-4, top-8 */
  cf.pow2_scales = s->pow2;
  ml_ctx c = {tp, moe_layer_create(tp, &cf), s->m, NULL, NULL};
  if (!c.l) return 1;
  c.x = synth_x(c.T, cf.hidden, 6);
  c.out = xalloc((uint64_t)(c.T * cf.hidden) * 2);
  char var[48];
  snprintf(var, sizeof var, "e%d_top%d_s%d%s", cf.gate.n_experts, cf.gate.topk, cf.n_shared, s->pow2 ? "_pow2" : "");
  *hc = (hn_case){.kernel = "moe_layer", .backend = cpu_level_name(cpu_isa_best()), .variant = var, .dtype = s->dtype,
                  .m = c.T, .n = cf.hidden, .k = cf.inter, .groups = cf.gate.n_experts,
                  .flops = moe_layer_flops(&cf, c.T),
                  .bytes = (double)moe_layer_weight_bytes(c.l) + 4.0 * (double)(c.T * cf.hidden), .run = ml_run,
                  .check = ml_check, .ctx = &c, .opaque_bytes = moe_layer_weight_bytes(c.l)};
  set_bufs(hc, 2, (const void *[]){c.x, c.out}, (uint64_t[]){(uint64_t)(c.T * cf.hidden) * 2, (uint64_t)(c.T * cf.hidden) * 2});
  int rc = hn_measure(hs, hc, NULL);
  moe_layer_free(c.l);
  free(c.x), free(c.out);
  return rc;
}

int ks_run_case(hn_session *hs, pool *tp, const ks_spec *s) {
  hn_case hc;
  memset(&hc, 0, sizeof hc);
  switch (s->kind) {
  case KS_MEMCPY: return run_memcpy(hs, tp, s, &hc);
  case KS_QUANT_TOKEN:
  case KS_QUANT_BLOCK: return run_quant(hs, tp, s, &hc);
  case KS_GATE: return run_gate(hs, tp, s, &hc);
  case KS_DISPATCH:
  case KS_COMBINE: return run_perm(hs, tp, s, &hc);
  case KS_SWIGLU: return run_swiglu(hs, tp, s, &hc);
  case KS_GEMM:
  case KS_GROUPED: return run_gemm(hs, tp, s, &hc);
  case KS_MOE_LAYER: return run_layer(hs, tp, s, &hc);
  default: return 1;
  }
}
