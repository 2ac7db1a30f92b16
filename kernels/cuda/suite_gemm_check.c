/* kernels/cuda/suite_gemm_check.c — validation of the CUDA GEMMs against the CPU reference,
 * before anything is timed: every variant (naive, mma, wgmma) and every tile it can be forced to,
 * in FP8 (E4M3, DeepSeek's block scaling) and BF16, on a dense problem with M and N tails, a
 * second dense one with a deeper K, a contiguous grouped problem with an empty expert and uneven
 * counts, and a masked one with a full, a partial and an empty expert. The truth is kgemm's
 * gemm_ref / gemm_ref_grouped_* (double accumulation, kernels/gemm.h) on the same FP8 operands,
 * quantized by kernels/ref/quant_ref.c. cuBLASLt's block-scaled FP8 and cuBLAS BF16 are checked
 * on the first dense problem (FAILED there: never timed; no plan there: each benchmark shape they
 * take is still spot-checked before its row is written).
 *
 * Tolerance per output: |gpu - ref| <= 2^-8 |ref| (the BF16 output rounding) + 2e-3 * sum |terms|
 * (accumulation order, and Hopper's FP8 tensor-core adder that keeps ~14 mantissa bits within a
 * 128-deep block). A layout or indexing bug gives errors of the size of the terms themselves.
 * Rows a masked GEMM must not touch are checked to still hold the 0xFFFF sentinel. */
#include <stdlib.h>
#include <string.h>

#include "cuda/check.h"
#include "cuda/gk.h"
#include "cuda/suite_gemm.h"
#include "gemm.h"
#include "krand.h"
#include "quant.h"

typedef struct vspec {
  int layout, groups;
  int64_t m, n, k;   /* m: dense/contig total rows, masked rows per group */
  int32_t counts[4]; /* per group */
} vspec;

/* The first problem is also cuBLASLt's check: k / 128 = 4, a multiple of 4, as its 128x128 weight
 * scales need (blas.c); m, n, k multiples of 16 as its FP8 GEMM needs. */
static const vspec vspecs[] = {
    {GK_DENSE, 1, 208, 272, 512, {208}},
    {GK_DENSE, 1, 64, 128, 1024, {64}},
    {GK_CONTIG, 4, 233, 136, 256, {70, 0, 130, 33}},
    {GK_MASKED, 3, 160, 128, 512, {160, 17, 0}},
};
#define NVSPEC ((int)(sizeof vspecs / sizeof vspecs[0]))

/* A validation problem: host operands, reference, device copies. */
typedef struct vprob {
  vspec s;
  int dtype;
  int64_t rows;        /* rows of A / D */
  void *ha, *hb;       /* host A [rows][k], B [groups][n][k] (FP8 bytes or BF16) */
  float *hsa, *hsb;    /* FP8: A scales row-major [rows][k/128], B [groups][n/128][k/128] */
  float *ref, *absref; /* [rows][n] (rows not computed: NaN) */
  gk_gemm_desc d;      /* device side */
} vprob;

static void vprob_ref(vprob *p, const void *a, const void *b, float *out) {
  const int fp8 = p->dtype == GK_FP8;
  const int64_t k = p->s.k, n = p->s.n, kb = k / 128, nb = (n + 127) / 128;
  const kn_dtype dt = fp8 ? KN_FP8_E4M3 : KN_BF16;
  const size_t es = fp8 ? 1 : 2;
  gemm_mat am = {dt, a, k, fp8 ? p->hsa : NULL, kb};
  gemm_mat wm[4];
  for (int g = 0; g < p->s.groups; g++) {
    gemm_mat w = {dt, (const char *)b + (size_t)g * (size_t)(n * k) * es, k, fp8 ? p->hsb + g * nb * kb : NULL, kb};
    wm[g] = w;
  }
  gemm_out o = {KN_FP32, out, n};
  for (int64_t i = 0; i < p->rows * n; i++) out[i] = NAN;
  int64_t rows64[4];
  for (int g = 0; g < p->s.groups; g++) rows64[g] = p->s.counts[g];
  int rc;
  if (p->s.layout == GK_DENSE) rc = gemm_ref(p->s.m, n, k, &am, &wm[0], &o, GEMM_EPI_NONE);
  else if (p->s.layout == GK_CONTIG) rc = gemm_ref_grouped_contig(p->s.groups, rows64, n, k, &am, wm, &o, GEMM_EPI_NONE);
  else rc = gemm_ref_grouped_masked(p->s.groups, p->s.m, rows64, n, k, &am, wm, &o, GEMM_EPI_NONE);
  if (rc) UTIL_SYSFAIL("gemm reference refused the validation problem");
}

static void vprob_make(vprob *p, const vspec *s, int dtype, uint64_t seed) {
  memset(p, 0, sizeof *p);
  p->s = *s;
  p->dtype = dtype;
  const int fp8 = dtype == GK_FP8;
  const int64_t k = s->k, n = s->n, kb = k / 128, nb = (n + 127) / 128, G = s->groups;
  p->rows = s->layout == GK_MASKED ? G * s->m : s->m;
  const size_t es = fp8 ? 1 : 2, na = (size_t)(p->rows * k), nbv = (size_t)(G * n * k);
  krand r = krand_seed(seed);
  float *x = util_xmalloc((na > nbv ? na : nbv) * sizeof *x);
  p->ha = util_xmalloc(na * es);
  p->hb = util_xmalloc(nbv * es);
  /* A: uniform values with a magnitude that varies by row (so per-row scales differ). */
  for (size_t i = 0; i < na; i++)
    x[i] = (float)((krand_unif(&r) * 2 - 1) * (double)(1 << ((i / (size_t)k) % 5)) / 4.0);
  if (fp8) {
    p->hsa = util_xmalloc((size_t)(p->rows * kb) * sizeof(float));
    quant_ref()->token_f32(x, p->rows, k, KN_FP8_E4M3, 0, p->ha, p->hsa);
  } else {
    for (size_t i = 0; i < na; i++) ((bf16_t *)p->ha)[i] = f32_to_bf16(x[i]);
  }
  for (size_t i = 0; i < nbv; i++) x[i] = (float)(krand_unif(&r) * 2 - 1);
  if (fp8) {
    p->hsb = util_xmalloc((size_t)(G * nb * kb) * sizeof(float));
    for (int64_t g = 0; g < G; g++)
      quant_ref()->block_f32(x + g * n * k, n, k, KN_FP8_E4M3, 0, (fp8_t *)p->hb + g * n * k, p->hsb + g * nb * kb);
  } else {
    for (size_t i = 0; i < nbv; i++) ((bf16_t *)p->hb)[i] = f32_to_bf16(x[i]);
  }
  free(x);
  /* Reference, and the reference of |A| |B| (sign bits cleared) for the tolerance. */
  p->ref = util_xmalloc((size_t)(p->rows * n) * sizeof(float));
  p->absref = util_xmalloc((size_t)(p->rows * n) * sizeof(float));
  vprob_ref(p, p->ha, p->hb, p->ref);
  uint8_t *aa = util_xmalloc(na * es), *ab = util_xmalloc(nbv * es);
  memcpy(aa, p->ha, na * es);
  memcpy(ab, p->hb, nbv * es);
  for (size_t i = 0; i < na; i++)
    if (fp8) aa[i] &= 0x7f;
    else ((bf16_t *)aa)[i] &= 0x7fff;
  for (size_t i = 0; i < nbv; i++)
    if (fp8) ab[i] &= 0x7f;
    else ((bf16_t *)ab)[i] &= 0x7fff;
  vprob_ref(p, aa, ab, p->absref);
  free(aa), free(ab);

  /* Device copies; A scales go M-major. */
  gk_gemm_desc *d = &p->d;
  d->dtype = dtype, d->layout = s->layout, d->m = s->m, d->n = n, d->k = k, d->groups = (int)G;
  void *da = gs_dalloc(na * es), *db = gs_dalloc(nbv * es);
  gs_put(da, p->ha, na * es);
  gs_put(db, p->hb, nbv * es);
  d->a = da, d->b = db;
  if (fp8) {
    float *mm = util_xmalloc((size_t)(p->rows * kb) * sizeof *mm);
    for (int64_t row = 0; row < p->rows; row++)
      for (int64_t j = 0; j < kb; j++) mm[j * p->rows + row] = p->hsa[row * kb + j];
    float *dsa = gs_dalloc((size_t)(p->rows * kb) * sizeof(float)), *dsb = gs_dalloc((size_t)(G * nb * kb) * sizeof(float));
    gs_put(dsa, mm, (size_t)(p->rows * kb) * sizeof(float));
    gs_put(dsb, p->hsb, (size_t)(G * nb * kb) * sizeof(float));
    free(mm);
    d->sfa = dsa, d->sfb = dsb, d->sfa_ld = p->rows;
  }
  if (s->layout != GK_DENSE) {
    int32_t *dc = gs_dalloc((size_t)G * sizeof(int32_t));
    gs_put(dc, s->counts, (size_t)G * sizeof(int32_t));
    d->d_counts = dc;
  }
  d->d = gs_dalloc((size_t)(p->rows * n) * 2);
}

static void vprob_free(vprob *p) {
  free(p->ha), free(p->hb), free(p->hsa), free(p->hsb), free(p->ref), free(p->absref);
  gs_free((void *)p->d.a), gs_free((void *)p->d.b), gs_free((void *)p->d.sfa), gs_free((void *)p->d.sfb);
  gs_free((void *)p->d.d_counts), gs_free(p->d.d);
}

/* Compares D (copied back) with the reference; transposed: D is n x rows. */
static int vprob_compare(const vprob *p, int transposed, double *worst) {
  const int64_t n = p->s.n, total = p->rows * n;
  uint16_t *h = util_xmalloc((size_t)total * 2);
  gs_get(h, p->d.d, (size_t)total * 2);
  int ok = 1;
  *worst = 0;
  for (int64_t r = 0; r < p->rows; r++)
    for (int64_t c = 0; c < n; c++) {
      const uint16_t v = transposed ? h[c * p->rows + r] : h[r * n + c];
      const float ref = p->ref[r * n + c];
      if (ref != ref) {
        if (v != 0xffff) ok = 0, *worst = 1e30; /* a row the kernel must leave alone */
        continue;
      }
      if (!gs_close(bf16_to_f32(v), ref, p->absref[r * n + c], 2e-3, worst)) ok = 0;
    }
  free(h);
  return ok;
}

/* valid[dtype][variant][tile] and the vendor flags, filled once per process. */
static int done[2];
static int ok_tile[2][GK_GEMM_NVARIANTS][8];
static int vendor_failed[2]; /* 1: the vendor GEMM ran on the check problem and was wrong */
static int all_ok[2];

int gsg_valid(int variant, int dtype, int bm, int bn) {
  int tb[8], tn[8];
  const int nt = gk_gemm_tiles(variant, dtype, tb, tn, 8);
  for (int i = 0; i < nt; i++)
    if (tb[i] == bm && tn[i] == bn) return ok_tile[dtype][variant][i];
  return 0;
}

int gsg_vendor_valid(int dtype) { return done[dtype] && !vendor_failed[dtype]; }

int gsg_validate(gs_ctx *c, int dtype) {
  if (done[dtype]) return all_ok[dtype];
  done[dtype] = 1;
  all_ok[dtype] = 1;
  const char *dt = dtype == GK_FP8 ? "fp8_e4m3" : "bf16";
  gs_progress(c, "validating %s GEMMs", dt);
  vprob P[NVSPEC];
  for (int i = 0; i < NVSPEC; i++) vprob_make(&P[i], &vspecs[i], dtype, 77 + (uint64_t)i);
  for (int v = 1; v < GK_GEMM_NVARIANTS; v++) {
    int tb[8], tn[8];
    const int nt = gk_gemm_tiles(v, dtype, tb, tn, 8);
    char said[256] = ""; /* the last "unavailable" reason printed for this variant */
    for (int t = 0; t < nt; t++) {
      double worst_all = 0;
      int ok = 1, avail = 1;
      char why[256] = "", name[64] = "";
      for (int i = 0; i < NVSPEC && avail; i++) {
        gk_gemm_desc d = P[i].d;
        d.bm = v == GK_GEMM_NAIVE ? 0 : tb[t], d.bn = v == GK_GEMM_NAIVE ? 0 : tn[t];
        gk_gemm_plan *pl = NULL;
        if (gk_gemm_plan_make(&d, v, &pl, why, sizeof why)) {
          avail = 0;
          break;
        }
        snprintf(name, sizeof name, "%s", gk_gemm_plan_name(pl));
        CUDA_CHECK(cudaMemsetAsync(d.d, 0xff, (size_t)(P[i].rows * d.n) * 2, c->s));
        CUDA_CHECK(gk_gemm_launch(pl, c->s));
        gs_sync(c);
        double worst;
        if (!vprob_compare(&P[i], 0, &worst)) {
          ok = 0;
          gs_say(c, "  FAILED %s %s on %s problem %d (%lld x %lld x %lld): worst err/tol %.3g", name, dt,
                 vspecs[i].layout == GK_DENSE ? "dense" : vspecs[i].layout == GK_CONTIG ? "contiguous" : "masked", i,
                 (long long)P[i].rows, (long long)d.n, (long long)d.k, worst);
        }
        if (worst > worst_all) worst_all = worst;
        gk_gemm_plan_free(pl);
      }
      if (!avail) { /* this tile only: the variant's other tiles are still tried */
        if (strcmp(why, said) != 0) {
          gs_say(c, "  validate %s %-16s unavailable here (tile %dx%d): %s", dt, gk_gemm_variant_name(v), tb[t], tn[t],
                 why);
          snprintf(said, sizeof said, "%s", why);
        }
        continue;
      }
      ok_tile[dtype][v][t] = ok;
      if (!ok) all_ok[dtype] = 0, c->failures++;
      gs_say(c, "  validate %s %-16s %s (dense, contiguous, masked; worst err/tol %.3f)", dt, name, ok ? "ok" : "FAILED",
             worst_all);
    }
  }
  /* The vendor GEMM on the first (dense) problem. */
  vprob *p = &P[0];
  gk_blas_plan *bl = NULL;
  char why[256];
  const gk_gemm_desc *d = &p->d;
  int rc = dtype == GK_FP8 ? gk_blas_fp8_make(&bl, d->m, d->n, d->k, d->a, d->sfa, d->b, d->sfb, d->d, why, sizeof why)
                           : gk_blas_bf16_make(&bl, d->m, d->n, d->k, d->a, d->b, d->d, why, sizeof why);
  const char *vn = dtype == GK_FP8 ? "cuBLASLt" : "cuBLAS";
  if (rc) {
    gs_say(c, "  validate %s %-16s unavailable here: %s (each benchmark shape it runs is still spot-checked)", dt, vn,
           why);
  } else {
    CUDA_CHECK(cudaMemsetAsync(d->d, 0xff, (size_t)(p->rows * d->n) * 2, c->s));
    if (gk_blas_run(bl, c->s)) UTIL_SYSFAIL("%s run failed", vn);
    gs_sync(c);
    double worst;
    vendor_failed[dtype] = !vprob_compare(p, gk_blas_transposed(bl), &worst);
    if (vendor_failed[dtype]) c->failures++;
    gs_say(c, "  validate %s %-16s %s (%s, dense; worst err/tol %.3f)", dt, vn, vendor_failed[dtype] ? "FAILED" : "ok",
           gk_blas_name(bl), worst);
    gk_blas_free(bl);
  }
  for (int i = 0; i < NVSPEC; i++) vprob_free(&P[i]);
  return all_ok[dtype];
}
