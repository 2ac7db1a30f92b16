/* tests/test_gemm.c — every GEMM variant compiled in and usable here against kernels/ref.
 *
 * Tolerances (per output dtype), with S = sum_k |a_k w_k| * |scales| the magnitude of the dot
 * product (FP8: per block, times the block's two scales) and u = 2^-24:
 * - FP32 output: |fast - ref| <= 2 (min(K, 256) + K / 256 + 2) u S + 2^-126 K. The first term is
 *   the bound of blocked recursive FP32 summation (blocks of 256 K, as the loop nest does; FP8
 *   promotes at most every 128); the second covers vdpbf16ps flushing subnormal products to zero.
 * - BF16 output: the FP32 bound plus one BF16 rounding, 2^-8 |ref|.
 * - SwiGLU: the bounds of g and u propagated through silu(g) u (|silu'| <= 1.1), plus the output
 *   rounding.
 * NaN/Inf: a NaN or Inf in A must give a non-finite output exactly where the reference is
 * non-finite (same NaN-ness, same sign of Inf); other outputs keep the tolerances above. */
#include <math.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "gemm.h"
#include "gemm_internal.h"
#include "test.h"

static uint64_t rng = 12345;
static uint64_t next_u64(void) {
  uint64_t z = (rng += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}
static float unif(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 40) * 0x1.0p-24); }

/* An operand with its own storage. */
typedef struct tmat {
  gemm_mat m;     /* the description */
  void *data;     /* elements */
  float *scale;   /* FP8 scales */
  int64_t rows;   /* rows */
  int64_t cols;   /* columns */
} tmat;

/* rows x cols in dtype, values uniform in +-mag (FP8: quantized with max-abs scales per 1x128 or
 * 128x128 block, `wblock` selecting the weight layout). ld = cols + pad. */
static tmat make_mat(kn_dtype dt, int64_t rows, int64_t cols, float mag, int wblock, int pad) {
  tmat t = {.rows = rows, .cols = cols};
  int64_t ld = cols + pad, kb = (cols + 127) / 128, sr = wblock ? (rows + 127) / 128 : rows;
  float *f = malloc((size_t)(rows * ld + 1) * sizeof(float));
  for (int64_t i = 0; i < rows * ld; i++) f[i] = unif(-mag, mag);
  if (dt == KN_BF16) {
    bf16_t *d = malloc((size_t)(rows * ld + 1) * 2);
    for (int64_t i = 0; i < rows * ld; i++) d[i] = f32_to_bf16(f[i]);
    t.data = d;
  } else {
    fp8_t *d = malloc((size_t)(rows * ld + 1));
    t.scale = malloc((size_t)(sr * kb + 1) * sizeof(float));
    for (int64_t r = 0; r < sr; r++)
      for (int64_t b = 0; b < kb; b++) {
        int64_t r0 = wblock ? r * 128 : r, r1 = wblock ? (r0 + 128 < rows ? r0 + 128 : rows) : r + 1;
        float amax = 0;
        for (int64_t i = r0; i < r1; i++)
          for (int64_t j = b * 128; j < cols && j < b * 128 + 128; j++) amax = fmaxf(amax, fabsf(f[i * ld + j]));
        float s = amax > 0 ? amax / fp8_max(dt) : 1.0f;
        t.scale[r * kb + b] = s;
        for (int64_t i = r0; i < r1; i++)
          for (int64_t j = b * 128; j < b * 128 + 128 && j < ld; j++) d[i * ld + j] = f32_to_fp8(f[i * ld + j] / s, dt);
      }
    t.data = d;
  }
  free(f);
  t.m = (gemm_mat){dt, t.data, ld, t.scale, (cols + 127) / 128};
  return t;
}
static void free_mat(tmat *t) {
  free(t->data);
  free(t->scale);
}

/* S[i][j] = sum over k of |a w| times the block scales (the error scale of each output). */
static double *magnitudes(int64_t m, int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w) {
  double *s = calloc((size_t)(m * n + 1), sizeof(double));
  int fp8 = a->dtype != KN_BF16;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double tot = 0;
      for (int64_t kk = 0; kk < k; kk++) {
        double av = a->dtype == KN_BF16 ? bf16_to_f32(((const bf16_t *)a->data)[i * a->ld + kk])
                                        : fp8_to_f32(((const fp8_t *)a->data)[i * a->ld + kk], a->dtype);
        double wv = w->dtype == KN_BF16 ? bf16_to_f32(((const bf16_t *)w->data)[j * w->ld + kk])
                                        : fp8_to_f32(((const fp8_t *)w->data)[j * w->ld + kk], w->dtype);
        double sc = fp8 ? fabs(a->scale[i * a->ld_scale + kk / 128] * (double)w->scale[(j / 128) * w->ld_scale + kk / 128]) : 1;
        if (isfinite(av * wv)) tot += fabs(av * wv) * sc;
      }
      s[i * n + j] = tot;
    }
  return s;
}

static double tol_f32(int64_t k, double s) {
  return 2.0 * ((k < 256 ? k : 256) + k / 256 + 2) * 0x1.0p-24 * s + 0x1.0p-126 * (double)k;
}

static float out_at(const gemm_out *c, int64_t i, int64_t j) {
  if (c->dtype == KN_FP32) return ((const float *)c->data)[i * c->ld + j];
  return bf16_to_f32(((const bf16_t *)c->data)[i * c->ld + j]);
}

/* Compares fast output against the reference for one (m, n, k, epi); returns failures. */
static int compare(const char *what, int64_t m, int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w,
                   const gemm_out *fast, gemm_epi epi) {
  int64_t nout = epi == GEMM_EPI_SWIGLU ? n / 2 : n;
  float *ref = malloc((size_t)(m * n + 1) * sizeof(float)); /* A W^T in FP32 (exact then rounded) */
  gemm_out ro = {KN_FP32, ref, n};
  T_CHECK(gemm_ref(m, n, k, a, w, &ro, GEMM_EPI_NONE) == 0);
  float *refo = malloc((size_t)(m * nout + 1) * sizeof(float));
  gemm_out roo = {fast->dtype == KN_FP32 ? KN_FP32 : KN_FP32, refo, nout};
  T_CHECK(gemm_ref(m, n, k, a, w, &roo, epi) == 0);
  double *s = magnitudes(m, n, k, a, w);
  int bad = 0;
  for (int64_t i = 0; i < m && bad < 5; i++)
    for (int64_t j = 0; j < nout && bad < 5; j++) {
      double r = refo[i * nout + j], f = out_at(fast, i, j), tol;
      if (epi == GEMM_EPI_SWIGLU) {
        double g = ref[i * n + j], u = ref[i * n + nout + j];
        double tg = tol_f32(k, s[i * n + j]), tu = tol_f32(k, s[i * n + nout + j]);
        double sg = fabs(g / (1 + exp(-g)));
        tol = 1.1 * tg * (fabs(u) + tu) + sg * tu + 1e-6 * fabs(r) + 1e-30;
      } else {
        tol = tol_f32(k, s[i * n + j]);
      }
      if (fast->dtype == KN_BF16) tol += 0x1.0p-8 * fabs(r);
      if (!isfinite(r)) {
        int ok = isnan(r) ? isnan(f) : (isinf(f) && signbit(f) == signbit(r));
        if (!ok) {
          fprintf(stderr, "%s: [%lld,%lld] ref %g fast %g (non-finite mismatch)\n", what, (long long)i, (long long)j, r, f);
          bad++;
        }
      } else if (!(fabs(f - r) <= tol)) {
        fprintf(stderr, "%s: [%lld,%lld] ref %.9g fast %.9g |diff| %.3g > tol %.3g\n", what, (long long)i, (long long)j,
                r, f, fabs(f - r), tol);
        bad++;
      }
    }
  free(ref);
  free(refo);
  free(s);
  return bad;
}

typedef struct shape {
  int64_t m, n, k;
} shape;

static const shape shapes[] = {
    {1, 16, 128}, {4, 64, 256}, {13, 50, 130}, {3, 33, 7}, {29, 100, 257}, {1, 7168 / 32, 256},
    {200, 48, 64}, {17, 160, 1000}, {2, 17, 1}, {15, 32, 384}, {701, 40, 96}, {20, 64, 6400}, {14, 64, 6500},
};

static void run_case(const gemm_variant *v, pool *tp, kn_dtype dt, kn_dtype ct, shape sh, gemm_epi epi, int promo_k,
                     float amag, float wmag) {
  char what[160];
  snprintf(what, sizeof what, "%s %s->%s m=%lld n=%lld k=%lld epi=%d promo=%d", v->name, kn_dtype_name(dt),
           kn_dtype_name(ct), (long long)sh.m, (long long)sh.n, (long long)sh.k, (int)epi, promo_k);
  /* an odd leading dimension forces packing; an even one lets BF16 rows be read in place */
  tmat a = make_mat(dt, sh.m, sh.k, amag, 0, ct == KN_BF16 ? 2 : 3), w = make_mat(dt, sh.n, sh.k, wmag, 1, 5);
  gemm_packed *wp = gemm_pack(&w.m, sh.n, sh.k);
  T_CHECK(wp != NULL);
  int64_t nout = epi == GEMM_EPI_SWIGLU ? sh.n / 2 : sh.n, ldc = nout + 2;
  void *cd = calloc((size_t)(sh.m * ldc + 1), 4);
  gemm_out c = {ct, cd, ldc};
  gemm_opts o = {.variant = v, .promo_k = promo_k, .epi = epi};
  T_CHECKF(gemm_run(tp, sh.m, &a.m, wp, &c, &o) == 0, "%s", what);
  T_CHECKF(compare(what, sh.m, sh.n, sh.k, &a.m, &w.m, &c, epi) == 0, "%s", what);
  gemm_packed_free(wp);
  free(cd);
  free_mat(&a);
  free_mat(&w);
}

static int nsupported(void) {
  int n = 0;
  for (int i = 0; i < gemm_variant_count(); i++) n += gemm_variant_at(i)->supported();
  return n;
}

static void test_bf16_shapes(void) {
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    if (!v->supported()) continue;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      run_case(v, NULL, KN_BF16, KN_FP32, shapes[s], GEMM_EPI_NONE, 0, 1.0f, 1.0f);
      run_case(v, NULL, KN_BF16, KN_BF16, shapes[s], GEMM_EPI_NONE, 0, 1.0f, 1.0f);
    }
  }
}

/* The BF16 output's rounding, bit for bit: sums that FP32 holds exactly (A = [1 1 1 0], W rows
 * [hi, 2^-8 or 0, +-2^-16 or 0, 0], every partial sum within 24 bits) sit exactly on, just above and
 * just below BF16 halfway points with even and odd last bits, so each output must equal
 * f32_to_bf16 of its exact sum: round to nearest even, which the tolerance of the other tests
 * cannot see. Rows 1..7 cover the fused-output kernels' row counts and the epilogue. */
static void test_bf16_rounding(void) {
  enum { N = 96, K = 4, LDA = 6 };
  bf16_t a[7 * LDA], w[N * K];
  float exact[N];
  for (int i = 0; i < 7 * LDA; i++) a[i] = f32_to_bf16(i % LDA < 3 ? 1.0f : 0.0f);
  for (int j = 0; j < N; j++) {
    float hi = 1.0f + (float)(j / 8) * 0x1p-7f, mid = (j & 1) ? 0x1p-8f : 0.0f;
    float lo = (j & 6) == 2 ? 0x1p-16f : (j & 6) == 4 ? -0x1p-16f : (j & 6) == 6 ? 0x1p-15f : 0.0f;
    float v[K] = {hi, mid, lo, 0.0f};
    for (int kk = 0; kk < K; kk++) w[j * K + kk] = f32_to_bf16(v[kk]);
    exact[j] = hi + mid + lo; /* exact in FP32 */
  }
  gemm_mat am = {KN_BF16, a, LDA, NULL, 0}, wm = {KN_BF16, w, K, NULL, 0};
  gemm_packed *wp = gemm_pack(&wm, N, K);
  T_CHECK(wp != NULL);
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    if (!v->supported()) continue;
    for (int m = 1; m <= 7; m++) {
      bf16_t c[7 * N];
      gemm_out co = {KN_BF16, c, N};
      gemm_opts o = {.variant = v};
      T_CHECK(gemm_run(NULL, m, &am, wp, &co, &o) == 0);
      int bad = 0;
      for (int r = 0; r < m; r++)
        for (int j = 0; j < N; j++) bad += c[r * N + j] != f32_to_bf16(exact[j]);
      T_CHECKF(bad == 0, "%s m=%d: %d BF16 outputs not rounded to nearest even", v->name, m, bad);
    }
  }
  gemm_packed_free(wp);
}

static void test_fp8_shapes(void) {
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    if (!v->supported()) continue;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      if (shapes[s].k > 2048) continue; /* FP8 blocks K by 128 whatever K is: long K adds nothing */
      run_case(v, NULL, KN_FP8_E4M3, KN_FP32, shapes[s], GEMM_EPI_NONE, 0, 3.0f, 0.05f);
      run_case(v, NULL, KN_FP8_E5M2, KN_BF16, shapes[s], GEMM_EPI_NONE, 0, 3.0f, 0.05f);
    }
    run_case(v, NULL, KN_FP8_E4M3, KN_FP32, (shape){15, 64, 384}, GEMM_EPI_NONE, 32, 1.0f, 1.0f);
    run_case(v, NULL, KN_FP8_E4M3, KN_FP32, (shape){9, 40, 300}, GEMM_EPI_NONE, 64, 1.0f, 1.0f);
  }
}

static void test_swiglu(void) {
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    if (!v->supported()) continue;
    run_case(v, NULL, KN_BF16, KN_BF16, (shape){13, 128, 200}, GEMM_EPI_SWIGLU, 0, 1.0f, 0.2f);
    run_case(v, NULL, KN_BF16, KN_FP32, (shape){5, 36, 64}, GEMM_EPI_SWIGLU, 0, 1.0f, 0.2f); /* I = 18: fallback */
    run_case(v, NULL, KN_FP8_E4M3, KN_BF16, (shape){7, 256, 256}, GEMM_EPI_SWIGLU, 0, 1.0f, 0.2f);
  }
}

static void test_large_tiny(void) {
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    if (!v->supported()) continue;
    run_case(v, NULL, KN_BF16, KN_FP32, (shape){5, 40, 300}, GEMM_EPI_NONE, 0, 1e17f, 1e17f);
    run_case(v, NULL, KN_BF16, KN_FP32, (shape){5, 40, 300}, GEMM_EPI_NONE, 0, 1e-17f, 1e-17f);
    run_case(v, NULL, KN_BF16, KN_BF16, (shape){5, 40, 300}, GEMM_EPI_NONE, 0, 1e-30f, 1e20f);
    run_case(v, NULL, KN_FP8_E4M3, KN_FP32, (shape){5, 40, 300}, GEMM_EPI_NONE, 0, 1e15f, 1e15f);
    run_case(v, NULL, KN_FP8_E5M2, KN_FP32, (shape){5, 40, 300}, GEMM_EPI_NONE, 0, 1e-15f, 1e-15f);
  }
}

/* NaN and Inf in A (BF16) and NaN in FP8 A propagate to exactly the outputs the reference marks. */
static void test_nonfinite(void) {
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    if (!v->supported()) continue;
    for (int f8 = 0; f8 < 2; f8++) {
      kn_dtype dt = f8 ? KN_FP8_E4M3 : KN_BF16;
      int64_t m = 6, n = 40, k = 200;
      tmat a = make_mat(dt, m, k, 1.0f, 0, 0), w = make_mat(dt, n, k, 1.0f, 1, 0);
      if (f8) {
        ((fp8_t *)a.data)[1 * k + 5] = 0x7f; /* NaN */
      } else {
        ((bf16_t *)a.data)[1 * k + 5] = f32_to_bf16(NAN);
        ((bf16_t *)a.data)[3 * k + 7] = f32_to_bf16(INFINITY);
        for (int64_t j = 0; j < n; j++) ((bf16_t *)w.data)[j * k + 7] = f32_to_bf16(j % 3 ? 0.5f : -0.25f);
      }
      gemm_packed *wp = gemm_pack(&w.m, n, k);
      float *cd = calloc((size_t)(m * n), sizeof(float));
      gemm_out c = {KN_FP32, cd, n};
      gemm_opts o = {.variant = v};
      T_CHECK(gemm_run(NULL, m, &a.m, wp, &c, &o) == 0);
      T_CHECKF(compare("nonfinite", m, n, k, &a.m, &w.m, &c, GEMM_EPI_NONE) == 0, "%s f8=%d", v->name, f8);
      T_CHECK(isnan(cd[1 * n + 3]));
      T_CHECK(isfinite(cd[0 * n + 3]) && isfinite(cd[2 * n + 3]));
      if (!f8) T_CHECK(isinf(cd[3 * n + 1]) && cd[3 * n + 1] > 0 && isinf(cd[3 * n + 0]) && cd[3 * n + 0] < 0);
      gemm_packed_free(wp);
      free(cd);
      free_mat(&a);
      free_mat(&w);
    }
  }
}

/* Grouped layouts (with empty experts) against the grouped reference, every variant, 2 threads. */
static void test_grouped(void) {
  pool *tp = pool_create(2, 1);
  for (int vi = 0; vi < gemm_variant_count(); vi++) {
    const gemm_variant *v = gemm_variant_at(vi);
    if (!v->supported()) continue;
    for (int f8 = 0; f8 < 2; f8++)
      for (int epi = 0; epi < 2; epi++) {
        kn_dtype dt = f8 ? KN_FP8_E5M2 : KN_BF16;
        enum { G = 5 };
        int64_t n = 128, k = 160, rows[G] = {5, 0, 17, 1, 0}, slots = 20, valid[G] = {0, 20, 3, 7, 0};
        int64_t nout = epi ? n / 2 : n;
        tmat w[G];
        gemm_mat wm[G];
        gemm_packed *wp[G];
        for (int g = 0; g < G; g++) {
          w[g] = make_mat(dt, n, k, 0.5f, 1, 0);
          wm[g] = w[g].m;
          wp[g] = gemm_pack(&wm[g], n, k);
        }
        gemm_opts o = {.variant = v, .epi = (gemm_epi)epi};
        /* contiguous */
        tmat a = make_mat(dt, 23, k, 1.0f, 0, 0);
        float *c = calloc(23 * 128, sizeof(float)), *r = calloc(23 * 128, sizeof(float));
        gemm_out co = {KN_FP32, c, nout}, ro = {KN_FP32, r, nout};
        T_CHECK(gemm_grouped_contig(tp, G, rows, &a.m, wp, &co, &o) == 0);
        T_CHECK(gemm_ref_grouped_contig(G, rows, n, k, &a.m, wm, &ro, (gemm_epi)epi) == 0);
        for (int64_t i = 0, off = 0; i < G; off += rows[i], i++) {
          gemm_mat av = a.m;
          av.data = (const char *)a.data + off * k * (f8 ? 1 : 2);
          if (av.scale) av.scale += off * av.ld_scale;
          gemm_out cv = {KN_FP32, c + off * nout, nout};
          T_CHECKF(compare("contig", rows[i], n, k, &av, &wm[i], &cv, (gemm_epi)epi) == 0, "%s g=%lld", v->name, (long long)i);
        }
        free(c);
        free(r);
        free_mat(&a);
        /* masked: rows past valid[g] keep their sentinel */
        tmat am = make_mat(dt, G * slots, k, 1.0f, 0, 0);
        float *cm = malloc(sizeof(float) * (size_t)(G * slots * nout));
        for (int64_t i = 0; i < G * slots * nout; i++) cm[i] = -777.0f;
        gemm_out cmo = {KN_FP32, cm, nout};
        T_CHECK(gemm_grouped_masked(tp, G, slots, valid, &am.m, wp, &cmo, &o) == 0);
        for (int g = 0; g < G; g++) {
          gemm_mat av = am.m;
          av.data = (const char *)am.data + g * slots * k * (f8 ? 1 : 2);
          if (av.scale) av.scale += g * slots * av.ld_scale;
          gemm_out cv = {KN_FP32, cm + g * slots * nout, nout};
          T_CHECKF(compare("masked", valid[g], n, k, &av, &wm[g], &cv, (gemm_epi)epi) == 0, "%s g=%d", v->name, g);
          for (int64_t i = valid[g]; i < slots; i++) T_CHECK(cm[(g * slots + i) * nout] == -777.0f);
        }
        free(cm);
        free_mat(&am);
        for (int g = 0; g < G; g++) {
          gemm_packed_free(wp[g]);
          free_mat(&w[g]);
        }
      }
  }
  pool_destroy(tp);
}

/* Threads change nothing: 1, 2, 3 and 5 threads give bit-identical results, every variant. Each
 * thread starts on its own run of units and then takes the others' units: with more threads than
 * cores (and runs of 0 units when there are fewer panels than threads) every unit must still be
 * computed exactly once. */
static void test_threads_identical(void) {
  static const int nthreads[] = {2, 3, 5};
  static const shape shapes[] = {{37, 200, 300}, {5, 16, 160}, {130, 512, 256}};
  for (size_t ti = 0; ti < UTIL_ARRAY_LEN(nthreads); ti++) {
    pool *tp = pool_create(nthreads[ti], 1);
    for (int vi = 0; vi < gemm_variant_count(); vi++) {
      const gemm_variant *v = gemm_variant_at(vi);
      if (!v->supported()) continue;
      gemm_opts opt = {.variant = v};
      for (size_t si = 0; si < UTIL_ARRAY_LEN(shapes); si++)
        for (int f8 = 0; f8 < 2; f8++) {
          shape sh = shapes[si];
          kn_dtype dt = f8 ? KN_FP8_E4M3 : KN_BF16;
          tmat a = make_mat(dt, sh.m, sh.k, 1, 0, 0), w = make_mat(dt, sh.n, sh.k, 1, 1, 0);
          gemm_packed *wp = gemm_pack(&w.m, sh.n, sh.k);
          float *c1 = calloc((size_t)(sh.m * sh.n), 4), *c2 = calloc((size_t)(sh.m * sh.n), 4);
          gemm_out o1 = {KN_FP32, c1, sh.n}, o2 = {KN_FP32, c2, sh.n};
          T_CHECK(gemm_run(NULL, sh.m, &a.m, wp, &o1, &opt) == 0);
          T_CHECK(gemm_run(tp, sh.m, &a.m, wp, &o2, &opt) == 0);
          T_CHECKF(memcmp(c1, c2, (size_t)(sh.m * sh.n) * 4) == 0, "%s %d threads %lldx%lldx%lld %s", v->name,
                   nthreads[ti], (long long)sh.m, (long long)sh.n, (long long)sh.k, f8 ? "fp8" : "bf16");
          gemm_packed_free(wp);
          free(c1);
          free(c2);
          free_mat(&a);
          free_mat(&w);
        }
    }
    pool_destroy(tp);
  }
}

/* Runs with stderr sent to /dev/null (the calls below print their error messages). */
static int quiet_fd = -1;
static void quiet(int on) {
  fflush(stderr);
  if (on) {
    quiet_fd = dup(2);
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 2);
    close(fd);
  } else {
    dup2(quiet_fd, 2);
    close(quiet_fd);
  }
}

static void test_bad_args(void) {
  quiet(1);
  tmat a = make_mat(KN_BF16, 4, 64, 1, 0, 0), w8 = make_mat(KN_FP8_E4M3, 32, 64, 1, 1, 0);
  gemm_packed *wp = gemm_pack(&w8.m, 32, 64);
  float c[4 * 32];
  gemm_out co = {KN_FP32, c, 32};
  T_CHECK(gemm_run(NULL, 4, &a.m, wp, &co, NULL) == -1); /* bf16 activations, fp8 weights */
  gemm_opts bad = {.promo_k = 48};
  tmat a8 = make_mat(KN_FP8_E4M3, 4, 64, 1, 0, 0);
  T_CHECK(gemm_run(NULL, 4, &a8.m, wp, &co, &bad) == -1);
  gemm_mat noscale = w8.m;
  noscale.scale = NULL;
  T_CHECK(gemm_pack(&noscale, 32, 64) == NULL);
  gemm_out bado = {KN_FP8_E4M3, c, 32};
  T_CHECK(gemm_run(NULL, 4, &a8.m, wp, &bado, NULL) == -1);
  gemm_opts sw = {.epi = GEMM_EPI_SWIGLU};
  gemm_packed *odd = gemm_pack(&(gemm_mat){KN_FP8_E4M3, w8.data, 64, w8.scale, 1}, 31, 64);
  T_CHECK(gemm_run(NULL, 4, &a8.m, odd, &co, &sw) == -1); /* odd N */
  gemm_packed_free(odd);
  quiet(0);
  gemm_packed_free(wp);
  free_mat(&a);
  free_mat(&a8);
  free_mat(&w8);
}

static void test_registry(void) {
  T_CHECK(gemm_variant_count() >= 1);
  T_CHECK(nsupported() >= 1);
  for (int i = 0; i < gemm_variant_count(); i++) {
    const gemm_variant *v = gemm_variant_at(i);
    T_CHECK(gemm_variant_by_name(v->name) == v);
    T_CHECK(v->nr % 16 == 0 && v->mr >= 1 && v->mr <= 16);
    T_CHECK(v->isa <= cpu_isa_best() || !v->supported());
  }
  T_CHECK(gemm_variant_by_name("no_such_variant") == NULL);
  cpu_level top = CPU_SCALAR;
  for (int i = 0; i < gemm_variant_count(); i++)
    if (gemm_variant_at(i)->supported() && gemm_variant_at(i)->isa > top) top = gemm_variant_at(i)->isa;
  const gemm_variant *b = gemm_variant_best(KN_BF16, 2048);
  T_CHECK(b && b->supported() && b->isa == top);
  /* A cap through MOESIM_ISA is honoured at every level this CPU has: nothing above the cap is
   * supported, the default path runs a variant of the cap's level, and it is still correct. */
  static const char *caps[] = {"scalar", "avx2", "avx512", "avx512bf16"};
  for (int lv = CPU_SCALAR; lv <= (int)cpu_isa_best(); lv++) {
    setenv("MOESIM_ISA", caps[lv], 1);
    for (int i = 0; i < gemm_variant_count(); i++)
      if ((int)gemm_variant_at(i)->isa > lv) T_CHECK(!gemm_variant_at(i)->supported());
    for (int f8 = 0; f8 < 2; f8++) {
      kn_dtype dt = f8 ? KN_FP8_E4M3 : KN_BF16;
      const gemm_variant *s = gemm_variant_best(dt, 4);
      T_CHECKF(s && (int)s->isa == lv && s->supported(), "cap %s: best %s", caps[lv], s ? s->name : "none");
      tmat a = make_mat(dt, 5, 300, 1, 0, 0), w = make_mat(dt, 40, 300, 1, 1, 0);
      gemm_packed *wp = gemm_pack(&w.m, 40, 300);
      float c[5 * 40];
      gemm_out co = {KN_FP32, c, 40};
      T_CHECK(gemm_run(NULL, 5, &a.m, wp, &co, NULL) == 0);
      T_CHECKF(compare("cap", 5, 40, 300, &a.m, &w.m, &co, GEMM_EPI_NONE) == 0, "cap %s", caps[lv]);
      gemm_packed_free(wp);
      free_mat(&a);
      free_mat(&w);
    }
  }
  unsetenv("MOESIM_ISA");
}

/* Every variant's FP8 strip decoder maps all 256 byte values of both formats to their BF16 value
 * exactly (NaN to a NaN), in the packed order. */
static void test_fp8_decode(void) {
  for (int f = 0; f < 2; f++) {
    kn_dtype fmt = f ? KN_FP8_E5M2 : KN_FP8_E4M3;
    const gemm_fp8_lut *lut = gemm_fp8_lut_of(fmt);
    /* 4 quads of one strip (64 bytes each, 64 * GEMM_GROUP apart): all 256 byte values */
    fp8_t src[4 * 64 * GEMM_GROUP] __attribute__((aligned(64)));
    memset(src, 0, sizeof src);
    for (int x = 0; x < 256; x++) src[(x / 64) * 64 * GEMM_GROUP + x % 64] = (fp8_t)(x * 167 + 13); /* a permutation */
    for (int i = 0; i < gemm_variant_count(); i++) {
      const gemm_variant *v = gemm_variant_at(i);
      if (!v->supported()) continue;
      bf16_t dst[8 * GEMM_PS] __attribute__((aligned(64)));
      ((const gemm_impl *)v->impl)->decode(4, src, dst, lut);
      int bad = 0;
      for (int q = 0; q < 4; q++)
        for (int lane = 0; lane < 4; lane++)
          for (int h = 0; h < 2; h++)
            for (int e = 0; e < 8; e++) {
              fp8_t x = src[64 * GEMM_GROUP * q + 16 * lane + 8 * h + e];
              float want = fp8_to_f32(x, fmt), got = bf16_to_f32(dst[(2 * q + h) * GEMM_PS + 8 * lane + e]);
              if (!(isnan(want) ? isnan(got) : kn_f32_bits(want) == kn_f32_bits(got))) bad++;
            }
      T_CHECKF(bad == 0, "%s %s: %d of 256 wrong", v->name, kn_dtype_name(fmt), bad);
    }
  }
}

int main(void) {
  T_RUN(test_registry);
  T_RUN(test_fp8_decode);
  T_RUN(test_bf16_shapes);
  T_RUN(test_bf16_rounding);
  T_RUN(test_fp8_shapes);
  T_RUN(test_swiglu);
  T_RUN(test_large_tiny);
  T_RUN(test_nonfinite);
  T_RUN(test_grouped);
  T_RUN(test_threads_identical);
  T_RUN(test_bad_args);
  return t_done();
}
