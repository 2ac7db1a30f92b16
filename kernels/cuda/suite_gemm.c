/* kernels/cuda/suite_gemm.c — the GEMM families of the CUDA suite: FP8 block-scaled dense
 * (own variants against cuBLASLt's block-scaled FP8 and DeepGEMM's published H800 table), FP8
 * grouped (contiguous and masked), BF16 (own against cuBLAS).
 *
 * Validation first (suite_gemm_check.c): every variant and tile on small dense, contiguous and
 * masked problems against kgemm's CPU reference (kernels/gemm.h). Then timing on the benchmark
 * shapes, with operands generated on the GPU from gk_rand.h's streams; after timing, each measured
 * kernel's output is spot-checked at sampled positions against a double-precision dot product the
 * host recomputes from the same streams, so a row is only written for a kernel that is right at
 * the very shape it was timed on. The wgmma variant is tuned per shape over its tiles; the row
 * names the tile that won. */
#include <stdlib.h>
#include <string.h>

#include "cuda/check.h"
#include "cuda/gk.h"
#include "cuda/gk_rand.h"
#include "cuda/suite_gemm.h"
#include "dtype.h"

/* DeepGEMM's published H800 figures (deepseek-ai/DeepGEMM README at commit 8002b76, 2025-03-25;
 * shared/reference/deepgemm.md): TFLOPS for E4M3 with 1x128 / 128x128 scales, BF16 out. */
typedef struct dg_pub {
  int groups;     /* 1 for dense */
  int m;          /* rows (per group for grouped) */
  int n, k;       /* shape */
  double tflops;  /* published */
} dg_pub;

static const dg_pub dg_dense[] = {
    {1, 64, 2112, 7168, 206},    {1, 64, 24576, 1536, 289},    {1, 64, 32768, 512, 219},
    {1, 64, 7168, 16384, 336},   {1, 64, 4096, 7168, 287},     {1, 64, 7168, 2048, 295},
    {1, 128, 2112, 7168, 352},   {1, 128, 24576, 1536, 535},   {1, 128, 32768, 512, 358},
    {1, 128, 7168, 16384, 645},  {1, 128, 4096, 7168, 533},    {1, 128, 7168, 2048, 510},
    {1, 4096, 2112, 7168, 1009}, {1, 4096, 24576, 1536, 1125}, {1, 4096, 32768, 512, 751},
    {1, 4096, 7168, 16384, 1426}, {1, 4096, 4096, 7168, 1265}, {1, 4096, 7168, 2048, 1168},
};
static const dg_pub dg_contig[] = {
    {4, 8192, 4096, 7168, 1346}, {4, 8192, 7168, 2048, 1214}, {8, 4096, 4096, 7168, 1346}, {8, 4096, 7168, 2048, 1214},
};
static const dg_pub dg_masked[] = {
    {1, 1024, 4096, 7168, 1233}, {1, 1024, 7168, 2048, 925}, {2, 512, 4096, 7168, 1040},
    {2, 512, 7168, 2048, 916},   {4, 256, 4096, 7168, 932},  {4, 256, 7168, 2048, 815},
};
/* The quick suite's few shapes (indices into the tables above). */
static const int quick_dense[] = {10, 11, 16, 17};
static const dg_pub quick_contig[] = {{4, 2048, 4096, 7168, 0}};
static const int quick_masked[] = {3};

/* One benchmark problem on the device, generated from seeds. */
typedef struct bprob {
  gk_gemm_desc d;       /* what the plans see */
  uint64_t seed;        /* base seed: A = seed, SA = seed + 1, B = seed + 2, SB = seed + 3 */
  int32_t *h_counts;    /* host copy of the counts */
  int64_t rows;         /* rows of A and D */
} bprob;

static void bprob_make(bprob *p, int dtype, int layout, int groups, int64_t m, int64_t n, int64_t k, uint64_t seed,
                       cudaStream_t s) {
  memset(p, 0, sizeof *p);
  gk_gemm_desc *d = &p->d;
  d->dtype = dtype, d->layout = layout, d->groups = groups, d->m = layout == GK_CONTIG ? m * groups : m;
  d->n = n, d->k = k;
  p->seed = seed;
  p->rows = gk_gemm_rows(d);
  p->h_counts = util_xcalloc((size_t)groups, sizeof *p->h_counts);
  for (int g = 0; g < groups; g++) p->h_counts[g] = (int32_t)m;
  if (layout != GK_DENSE) {
    int32_t *dc = gs_dalloc((size_t)groups * sizeof *dc);
    gs_put(dc, p->h_counts, (size_t)groups * sizeof *dc);
    d->d_counts = dc;
  }
  const int64_t kb = k / 128, nb = (n + 127) / 128;
  const uint64_t na = (uint64_t)p->rows * (uint64_t)k, nbv = (uint64_t)groups * (uint64_t)n * (uint64_t)k;
  if (dtype == GK_FP8) {
    uint8_t *a = gs_dalloc(na), *b = gs_dalloc(nbv);
    float *sa = gs_dalloc((size_t)kb * (size_t)p->rows * sizeof(float));
    float *sb = gs_dalloc((size_t)groups * (size_t)nb * (size_t)kb * sizeof(float));
    CUDA_CHECK(gk_fill_fp8(a, na, seed, s));
    CUDA_CHECK(gk_fill_scale(sa, (uint64_t)kb * (uint64_t)p->rows, seed + 1, s));
    CUDA_CHECK(gk_fill_fp8(b, nbv, seed + 2, s));
    CUDA_CHECK(gk_fill_scale(sb, (uint64_t)groups * (uint64_t)nb * (uint64_t)kb, seed + 3, s));
    d->a = a, d->b = b, d->sfa = sa, d->sfb = sb, d->sfa_ld = p->rows;
  } else {
    uint16_t *a = gs_dalloc(na * 2), *b = gs_dalloc(nbv * 2);
    CUDA_CHECK(gk_fill_bf16(a, na, seed, s));
    CUDA_CHECK(gk_fill_bf16(b, nbv, seed + 2, s));
    d->a = a, d->b = b;
  }
  d->d = gs_dalloc((size_t)p->rows * (size_t)n * 2);
  CUDA_CHECK(cudaMemsetAsync(d->d, 0xff, (size_t)p->rows * (size_t)n * 2, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
}

static void bprob_free(bprob *p) {
  gs_free((void *)p->d.a), gs_free((void *)p->d.b), gs_free((void *)p->d.sfa), gs_free((void *)p->d.sfb);
  gs_free(p->d.d), gs_free((void *)p->d.d_counts);
  free(p->h_counts);
}

/* The exact value (double) of output (row, col) of the generated problem, and the sum of the
 * magnitudes of its terms (the scale of accumulation error). */
static void bprob_ref(const bprob *p, int64_t row, int g, int64_t col, double *ref, double *absref) {
  const gk_gemm_desc *d = &p->d;
  const int64_t k = d->k, kb = k / 128, nb = (d->n + 127) / 128, brow = (int64_t)g * d->n + col;
  double r = 0, ar = 0;
  for (int64_t b = 0; b < kb; b++) {
    double part = 0, apart = 0;
    for (int64_t e = b * 128; e < b * 128 + 128; e++) {
      double x, y;
      if (d->dtype == GK_FP8) {
        x = fp8_e4m3_to_f32(gk_fp8_e4m3(p->seed, (uint64_t)(row * k + e)));
        y = fp8_e4m3_to_f32(gk_fp8_e4m3(p->seed + 2, (uint64_t)(brow * k + e)));
      } else {
        x = bf16_to_f32(gk_bf16(p->seed, (uint64_t)(row * k + e)));
        y = bf16_to_f32(gk_bf16(p->seed + 2, (uint64_t)(brow * k + e)));
      }
      part += x * y;
      apart += x * y < 0 ? -x * y : x * y;
    }
    double s = 1;
    if (d->dtype == GK_FP8)
      s = (double)gk_scale(p->seed + 1, (uint64_t)(b * d->sfa_ld + row)) *
          (double)gk_scale(p->seed + 3, (uint64_t)(((int64_t)g * nb + col / 128) * kb + b));
    r += part * s;
    ar += apart * s;
  }
  *ref = r;
  *absref = ar;
}

/* Checks 48 sampled outputs (corners included) of the last run; transposed: D is n x rows. */
static int bprob_spot(gs_ctx *c, const bprob *p, int transposed, double *worst) {
  const gk_gemm_desc *d = &p->d;
  int ok = 1;
  *worst = 0;
  for (int i = 0; i < 48; i++) {
    int g = (int)(gk_hash(p->seed + 7, (uint64_t)i) % (uint64_t)d->groups);
    int64_t r = (int64_t)(gk_hash(p->seed + 8, (uint64_t)i) % (uint64_t)p->h_counts[g]);
    int64_t col = (int64_t)(gk_hash(p->seed + 9, (uint64_t)i) % (uint64_t)d->n);
    if (i == 0) g = 0, r = 0, col = 0;
    if (i == 1) g = d->groups - 1, r = p->h_counts[g] - 1, col = d->n - 1;
    int64_t row = r;
    if (d->layout == GK_MASKED) row = (int64_t)g * d->m + r;
    else if (d->layout == GK_CONTIG)
      for (int j = 0; j < g; j++) row += p->h_counts[j];
    uint16_t h;
    const int64_t at = transposed ? col * p->rows + row : row * d->n + col;
    gs_get(&h, d->d + at, 2);
    double ref, absref;
    bprob_ref(p, row, g, col, &ref, &absref);
    if (!gs_close(bf16_to_f32(h), ref, absref, 2e-3, worst)) ok = 0;
  }
  (void)c;
  return ok;
}

typedef struct run_arg {
  const gk_gemm_plan *plan; /* own kernel */
  const gk_blas_plan *blas; /* or a vendor one */
} run_arg;

static int run_fn(void *arg, cudaStream_t s) {
  const run_arg *r = arg;
  return r->plan ? gk_gemm_launch(r->plan, s) : gk_blas_run(r->blas, s);
}

static double gemm_flops(const bprob *p) {
  double rows = 0;
  for (int g = 0; g < p->d.groups; g++) rows += p->h_counts[g];
  return 2.0 * rows * (double)p->d.n * (double)p->d.k;
}

/* DeepGEMM's byte count: A and B once (element size), D in BF16. */
static double gemm_bytes(const bprob *p) {
  double rows = 0, es = p->d.dtype == GK_FP8 ? 1 : 2;
  for (int g = 0; g < p->d.groups; g++) rows += p->h_counts[g];
  return es * (rows * (double)p->d.k + (double)p->d.groups * (double)p->d.n * (double)p->d.k) +
         2.0 * rows * (double)p->d.n;
}

/* Times every validated tile of `variant`, keeps the fastest, spot-checks it and writes its row.
 * Returns its median time (0 when nothing was measured). */
static double time_variant(gs_ctx *c, bprob *p, int variant, const char *kernel, char *best_name, size_t best_len) {
  int bm[8], bn[8];
  const int nt = gk_gemm_tiles(variant, p->d.dtype, bm, bn, 8);
  gk_gemm_plan *best = NULL;
  gs_time bt = {0, 0, 0};
  for (int i = 0; i < nt; i++) {
    if (!gsg_valid(variant, p->d.dtype, bm[i], bn[i])) continue;
    gk_gemm_desc d = p->d;
    d.bm = bm[i], d.bn = bn[i];
    gk_gemm_plan *pl = NULL;
    char why[256];
    if (gk_gemm_plan_make(&d, variant, &pl, why, sizeof why)) continue;
    run_arg ra = {pl, NULL};
    gs_time t = gs_time_it(c, run_fn, &ra, 1);
    if (!best || t.median_us < bt.median_us) {
      gk_gemm_plan_free(best);
      best = pl, bt = t;
    } else {
      gk_gemm_plan_free(pl);
    }
  }
  if (!best) return 0;
  CUDA_CHECK(cudaMemsetAsync(p->d.d, 0xff, (size_t)p->rows * (size_t)p->d.n * 2, c->s));
  CUDA_CHECK(gk_gemm_launch(best, c->s));
  gs_sync(c);
  double worst;
  const char *dt = p->d.dtype == GK_FP8 ? "fp8_e4m3" : "bf16";
  double ms = 0;
  if (!bprob_spot(c, p, 0, &worst)) {
    gs_say(c, "  FAILED spot check: %s %s at %lld x %lld x %lld (worst err/tol %.3g): row not written",
           gk_gemm_plan_name(best), dt, (long long)p->rows, (long long)p->d.n, (long long)p->d.k, worst);
    c->failures++;
  } else {
    gs_row(c, "cuda", kernel, gk_gemm_plan_name(best), dt, p->d.layout == GK_MASKED ? p->d.m : p->rows / p->d.groups,
           p->d.n, p->d.k, p->d.groups, gk_gemm_plan_sms(best), bt, gemm_flops(p), gemm_bytes(p));
    snprintf(best_name, best_len, "%s", gk_gemm_plan_name(best));
    ms = bt.median_us;
  }
  gk_gemm_plan_free(best);
  return ms;
}

/* A vendor GEMM (cuBLASLt FP8 or cuBLAS BF16) on the dense problem; returns its median (0: none). */
static double time_vendor(gs_ctx *c, bprob *p) {
  gk_blas_plan *bl = NULL;
  char why[256];
  const gk_gemm_desc *d = &p->d;
  int rc = d->dtype == GK_FP8 ? gk_blas_fp8_make(&bl, d->m, d->n, d->k, d->a, d->sfa, d->b, d->sfb, d->d, why, sizeof why)
                              : gk_blas_bf16_make(&bl, d->m, d->n, d->k, d->a, d->b, d->d, why, sizeof why);
  if (rc || !gsg_vendor_valid(d->dtype)) {
    if (rc) gs_say(c, "  %s: skipped: %s", d->dtype == GK_FP8 ? "cuBLASLt" : "cuBLAS", why);
    c->skipped++;
    gk_blas_free(bl);
    return 0;
  }
  run_arg ra = {NULL, bl};
  gs_time t = gs_time_it(c, run_fn, &ra, 1);
  CUDA_CHECK(cudaMemsetAsync(d->d, 0xff, (size_t)p->rows * (size_t)d->n * 2, c->s));
  if (gk_blas_run(bl, c->s)) UTIL_SYSFAIL("cuBLAS run failed");
  gs_sync(c);
  double worst, ms = 0;
  const char *be = d->dtype == GK_FP8 ? "cublaslt" : "cublas";
  if (!bprob_spot(c, p, gk_blas_transposed(bl), &worst)) {
    gs_say(c, "  FAILED spot check: %s %s (worst err/tol %.3g): row not written", be, gk_blas_name(bl), worst);
    c->failures++;
  } else {
    int sms = c->gpu.sm_count;
    gs_row(c, be, "gemm", gk_blas_name(bl), d->dtype == GK_FP8 ? "fp8_e4m3" : "bf16", d->m, d->n, d->k, 1, sms, t,
           gemm_flops(p), gemm_bytes(p));
    ms = t.median_us;
  }
  gk_blas_free(bl);
  return ms;
}

static double tf(const bprob *p, double us) { return us > 0 ? gemm_flops(p) / (us * 1e-6) / 1e12 : 0; }

/* Dense shapes of one dtype: own variants (mma, wgmma) and the vendor's, with ratios. */
static void dense_family(gs_ctx *c, int dtype, int full) {
  if (dtype == GK_FP8)
    gs_say(c, "  mma variant on this GPU: %s", c->gpu.cc_major >= 9
                                                  ? "FP8 mma.sync m16n8k32 E4M3 (sm_90a code)"
                                                  : "FP8 converted to BF16 in registers + BF16 mma.sync m16n8k16 (sm_80 "
                                                    "code: this build has no FP8 mma.sync for sm_8x)");
  if (!gsg_validate(c, dtype)) gs_say(c, "  (some variants failed validation: they are not timed)");
  if (c->validate_only) return;
  const int nshapes = full ? (int)UTIL_ARRAY_LEN(dg_dense) : (int)UTIL_ARRAY_LEN(quick_dense);
  gs_say(c, "  %-22s %-16s %9s %-16s %9s %9s %12s %9s", "shape (m n k)", "own best", "TFLOPS", "2nd variant",
         "TFLOPS", dtype == GK_FP8 ? "cuBLASLt" : "cuBLAS", "own/vendor", dtype == GK_FP8 ? "own/DG" : "");
  for (int i = 0; i < nshapes; i++) {
    const dg_pub *s = &dg_dense[full ? i : quick_dense[i]];
    gs_progress(c, "%s dense %d x %d x %d", dtype == GK_FP8 ? "fp8" : "bf16", s->m, s->n, s->k);
    bprob p;
    bprob_make(&p, dtype, GK_DENSE, 1, s->m, s->n, s->k, 1000 + (uint64_t)i * 16, c->s);
    char n_mma[48] = "-", n_wg[48] = "-";
    double t_mma = time_variant(c, &p, GK_GEMM_MMA, "gemm", n_mma, sizeof n_mma);
    double t_wg = time_variant(c, &p, GK_GEMM_WGMMA, "gemm", n_wg, sizeof n_wg);
    double t_v = time_vendor(c, &p);
    int wg_best = t_wg > 0 && (t_mma <= 0 || t_wg <= t_mma);
    double own = wg_best ? t_wg : t_mma, other = wg_best ? t_mma : t_wg;
    char shape[40];
    snprintf(shape, sizeof shape, "%d %d %d", s->m, s->n, s->k);
    char dgr[16] = "";
    if (dtype == GK_FP8 && own > 0) snprintf(dgr, sizeof dgr, "%.2f", tf(&p, own) / s->tflops);
    char ratio[16] = "-";
    if (own > 0 && t_v > 0) snprintf(ratio, sizeof ratio, "%.2f", t_v / own);
    gs_say(c, "  %-22s %-16s %9.1f %-16s %9.1f %9.1f %12s %9s", shape, wg_best ? n_wg : n_mma, tf(&p, own),
           wg_best ? n_mma : n_wg, tf(&p, other), tf(&p, t_v), ratio, dgr);
    bprob_free(&p);
  }
  if (dtype == GK_FP8)
    gs_say(c, "  own/vendor = vendor time / own time (>1: own faster); own/DG = own TFLOPS / DeepGEMM's published H800 "
              "TFLOPS (H800 and H200 share the SM count and FP8 peak; H200 has more memory bandwidth)");
}

void gs_family_gemm(gs_ctx *c, int full) { dense_family(c, GK_FP8, full); }

/* Grouped shapes of one dtype (contiguous, then masked; counts = rows per group, all valid). */
static void grouped_family(gs_ctx *c, int dtype, int full) {
  if (!gsg_validate(c, dtype)) gs_say(c, "  (some variants failed validation: they are not timed)");
  if (c->validate_only) return;
  gs_say(c, "  %-8s %-24s %-16s %9s %9s %9s", "layout", "groups x m, n, k", "own best", "TFLOPS", "GB/s",
         dtype == GK_FP8 ? "own/DG" : "");
  for (int lay = 0; lay < 2; lay++) {
    const int layout = lay ? GK_MASKED : GK_CONTIG;
    int count;
    if (lay == 0) count = full ? (int)UTIL_ARRAY_LEN(dg_contig) : (int)UTIL_ARRAY_LEN(quick_contig);
    else count = full ? (int)UTIL_ARRAY_LEN(dg_masked) : (int)UTIL_ARRAY_LEN(quick_masked);
    for (int i = 0; i < count; i++) {
      const dg_pub *s = lay == 0 ? (full ? &dg_contig[i] : &quick_contig[i]) : &dg_masked[full ? i : quick_masked[i]];
      gs_progress(c, "%s %s %d x %d x %d x %d", dtype == GK_FP8 ? "fp8" : "bf16", lay ? "masked" : "contiguous",
                  s->groups, s->m, s->n, s->k);
      bprob p;
      bprob_make(&p, dtype, layout, s->groups, s->m, s->n, s->k, 5000 + (uint64_t)i * 16 + (uint64_t)lay * 256, c->s);
      char n_mma[48] = "-", n_wg[48] = "-";
      double t_mma = time_variant(c, &p, GK_GEMM_MMA, "grouped_gemm", n_mma, sizeof n_mma);
      double t_wg = time_variant(c, &p, GK_GEMM_WGMMA, "grouped_gemm", n_wg, sizeof n_wg);
      int wg_best = t_wg > 0 && (t_mma <= 0 || t_wg <= t_mma);
      double own = wg_best ? t_wg : t_mma;
      char shape[48], dgr[16] = "";
      snprintf(shape, sizeof shape, "%d x %d, %d, %d", s->groups, s->m, s->n, s->k);
      if (dtype == GK_FP8 && own > 0 && s->tflops > 0) snprintf(dgr, sizeof dgr, "%.2f", tf(&p, own) / s->tflops);
      gs_say(c, "  %-8s %-24s %-16s %9.1f %9.0f %9s", lay ? "masked" : "contig", shape, wg_best ? n_wg : n_mma,
             tf(&p, own), own > 0 ? gemm_bytes(&p) / (own * 1e-6) / 1e9 : 0, dgr);
      bprob_free(&p);
    }
  }
  gs_say(c, "  every row of every group is valid (masked: counts = m per group); m is rows per group; "
            "own/DG = own TFLOPS / DeepGEMM's published H800 TFLOPS");
}

void gs_family_grouped(gs_ctx *c, int full) { grouped_family(c, GK_FP8, full); }

void gs_family_bf16(gs_ctx *c, int full) {
  dense_family(c, GK_BF16, full);
  if (!c->validate_only) grouped_family(c, GK_BF16, full);
}
