/* tests/test_cuda.c — the CUDA half of the kernel suite. Host-side tests run everywhere: the
 * check-macro generator's "file:line: call: message" format for CUDA, cuBLAS and NCCL statuses;
 * the FP8 conversions the device kernels use (gk_fp8.h, compiled by nvcc) against kernels/dtype.c
 * over millions of float patterns; the quantization scale formula against kernels/ref; the GEMM
 * plan's argument checks and tile lists; the suite's option checks; and what a binary without a
 * GPU (or without CUDA) answers. GPU tests run the suite's validation (every GEMM variant, tile,
 * layout and dtype, the quantizers, route/dispatch/combine, against the CPU references) and are
 * counted as skipped where no GPU is visible — never as passed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda/gpu.h"
#include "dtype.h"
#include "test.h"

#if MOESIM_CUDA
#define MOESIM_GPU_WANT_CUBLAS 1
#define MOESIM_GPU_WANT_NCCL 1
#include "cuda/check.h"
#include "cuda/gk.h"
#include "cuda/suite.h"
#include "krand.h"
#include "quant.h"
#endif

/* Runs fn with stderr (fd 2) or stdout (fd 1) captured into buf (NUL-terminated). */
static void capture(int fd, void (*fn)(void *), void *arg, char *buf, size_t len) {
  fflush(stdout);
  fflush(stderr);
  FILE *tmp = tmpfile();
  int saved = dup(fd);
  dup2(fileno(tmp), fd);
  fn(arg);
  fflush(stdout);
  fflush(stderr);
  dup2(saved, fd);
  close(saved);
  rewind(tmp);
  size_t n = fread(buf, 1, len - 1, tmp);
  buf[n] = 0;
  fclose(tmp);
}


typedef struct suite_call {
  gpu_suite_opts o; /* options */
  int rc;           /* result */
} suite_call;

static void run_suite(void *arg) {
  suite_call *s = arg;
  s->rc = gpu_suite_run(&s->o);
}

static void test_suite_rejects_bad_options(void) {
  char err[1024];
  suite_call s;
  memset(&s, 0, sizeof s);
  s.o.suite = "nosuchsuite";
  capture(2, run_suite, &s, err, sizeof err);
  T_EQ_INT(s.rc, 2);
  T_CHECKF(strstr(err, "nosuchsuite") != NULL || !gpu_built(), "stderr: %s", err);
  memset(&s, 0, sizeof s);
  s.o.suite = "quick";
  s.o.only = "gemm,bogus";
  capture(2, run_suite, &s, err, sizeof err);
  T_EQ_INT(s.rc, 2);
  T_CHECKF(strstr(err, "bogus") != NULL || !gpu_built(), "stderr: %s", err);
}

static void test_no_gpu_answers(void) {
  char why[256] = "";
  gpu_info g[4];
  int n = gpu_query(g, 4, why, (int)sizeof why);
  if (n > 0) T_SKIP("a GPU is visible (%s): the no-GPU answers do not apply", g[0].name);
  T_EQ_INT(n, 0);
  T_CHECK(why[0] != 0);
  char err[1024];
  suite_call s;
  memset(&s, 0, sizeof s);
  s.o.suite = "quick";
  s.o.quiet = 1;
  capture(2, run_suite, &s, err, sizeof err);
  T_EQ_INT(s.rc, 2);
  T_CHECKF(strstr(err, "no CUDA GPU present") != NULL, "stderr: %s", err);
  memset(&s, 0, sizeof s);
  s.o.suite = "deepgemm";
  s.o.out_csv = "/nonexistent/never-written.csv";
  capture(2, run_suite, &s, err, sizeof err);
  T_EQ_INT(s.rc, 2);
  T_CHECK(access("/nonexistent/never-written.csv", F_OK) != 0);
  gpu_versions v;
  gpu_get_versions(&v);
  if (!gpu_built()) T_EQ_INT(v.runtime, 0);
}

#if MOESIM_CUDA

static int have_gpu(char *why, int len) {
  gpu_info g[4];
  return gpu_query(g, 4, why, len) > 0;
}

static void fail_cuda(void *arg) { *(int *)arg = CUDA_FAILED(cudaErrorInvalidValue); }
static void fail_cublas(void *arg) { *(int *)arg = CUBLAS_FAILED(CUBLAS_STATUS_NOT_SUPPORTED); }
static void fail_nccl(void *arg) { *(int *)arg = NCCL_FAILED(ncclInvalidArgument); }
static void pass_cuda(void *arg) { *(int *)arg = CUDA_FAILED(cudaSuccess); }

static void test_check_macros(void) {
  char err[1024];
  int rc = -1;
  capture(2, fail_cuda, &rc, err, sizeof err);
  T_EQ_INT(rc, 1);
  T_CHECKF(strstr(err, "test_cuda.c:") == err || strstr(err, "tests/test_cuda.c:") == err, "%s", err);
  T_CHECKF(strstr(err, ": cudaErrorInvalidValue: ") != NULL, "%s", err);
  T_CHECKF(strstr(err, cudaGetErrorString(cudaErrorInvalidValue)) != NULL, "%s", err);
  capture(2, fail_cublas, &rc, err, sizeof err);
  T_EQ_INT(rc, 1);
  T_CHECKF(strstr(err, ": CUBLAS_STATUS_NOT_SUPPORTED: ") != NULL, "%s", err);
  capture(2, fail_nccl, &rc, err, sizeof err);
  T_EQ_INT(rc, 1);
  T_CHECKF(strstr(err, ": ncclInvalidArgument: ") != NULL && strstr(err, ncclGetErrorString(ncclInvalidArgument)), "%s", err);
  capture(2, pass_cuda, &rc, err, sizeof err);
  T_EQ_INT(rc, 0);
  T_EQ_STR(err, "");
}

static int same_float(float a, float b) { return (a != a && b != b) || a == b; }

static void test_fp8_decode(void) {
  for (int i = 0; i < 256; i++) {
    T_CHECKF(same_float(gk_fp8_to_f32_host((uint8_t)i, 0), fp8_e4m3_to_f32((fp8_t)i)), "e4m3 code 0x%02x", i);
    T_CHECKF(same_float(gk_fp8_to_f32_host((uint8_t)i, 1), fp8_e5m2_to_f32((fp8_t)i)), "e5m2 code 0x%02x", i);
    if ((i & 0x7f) != 0x7f) T_CHECKF(gk_e4m3_to_f32_host((uint8_t)i) == fp8_e4m3_to_f32((fp8_t)i), "gemm e4m3 0x%02x", i);
  }
}

/* Every encoding agrees with kernels/dtype.c: a stride through all 2^32 patterns, every float in
 * the FP8 ranges at BF16 spacing, and the rounding boundaries (midpoints +- 1 ulp). */
static void test_fp8_encode(void) {
  int bad = 0;
  uint32_t u = 0;
  for (uint64_t i = 0; i < (1ull << 32); i += 997, u += 997) {
    float f = kn_bits_f32(u);
    bad += gk_f32_to_fp8_host(f, 0) != f32_to_fp8_e4m3(f);
    bad += gk_f32_to_fp8_host(f, 1) != f32_to_fp8_e5m2(f);
  }
  for (uint32_t b = 0; b < 0x10000; b++) {
    float f = kn_bits_f32(b << 16);
    bad += gk_f32_to_fp8_host(f, 0) != f32_to_fp8_e4m3(f);
    bad += gk_f32_to_fp8_host(f, 1) != f32_to_fp8_e5m2(f);
  }
  for (int fmt = 0; fmt < 2; fmt++)
    for (int c = 0; c < 127; c++) {
      float lo = fmt ? fp8_e5m2_to_f32((fp8_t)c) : fp8_e4m3_to_f32((fp8_t)c);
      float hi = fmt ? fp8_e5m2_to_f32((fp8_t)(c + 1)) : fp8_e4m3_to_f32((fp8_t)(c + 1));
      if (hi != hi || lo != lo || hi > 1e30f) continue;
      uint32_t mid = kn_f32_bits((lo + hi) / 2);
      for (int d = -2; d <= 2; d++)
        for (int sgn = 0; sgn < 2; sgn++) {
          float f = kn_bits_f32((mid + (uint32_t)d) | (sgn ? 0x80000000u : 0));
          uint8_t want = fmt ? f32_to_fp8_e5m2(f) : f32_to_fp8_e4m3(f);
          bad += gk_f32_to_fp8_host(f, fmt) != want;
        }
    }
  T_EQ_INT(bad, 0);
}

static void test_quant_scale(void) {
  krand r = krand_seed(3);
  int bad = 0;
  for (int i = 0; i < 200000; i++) {
    float amax = (float)(krand_unif(&r) * pow(10.0, (double)(i % 14) - 8));
    if (i % 97 == 0) amax = 0;
    for (int fmt = 0; fmt < 2; fmt++)
      for (int pow2 = 0; pow2 < 2; pow2++)
        bad += gk_quant_scale_host(amax, fmt, pow2) != quant_scale_of(amax, fmt ? KN_FP8_E5M2 : KN_FP8_E4M3, pow2);
  }
  T_EQ_INT(bad, 0);
}

static void test_gemm_plan_checks(void) {
  char why[256];
  gk_gemm_plan *p = NULL;
  gk_gemm_desc d;
  memset(&d, 0, sizeof d);
  d.dtype = GK_FP8, d.layout = GK_DENSE, d.m = 128, d.n = 128, d.k = 100, d.groups = 1;
  d.a = d.b = (void *)16, d.d = (uint16_t *)16, d.sfa = d.sfb = (float *)16, d.sfa_ld = 128;
  T_EQ_INT(gk_gemm_plan_make(&d, GK_GEMM_MMA, &p, why, sizeof why), -1); /* k not a multiple of 128 */
  T_CHECK(p == NULL && strstr(why, "unsupported") != NULL);
  d.k = 256, d.n = 100;
  T_EQ_INT(gk_gemm_plan_make(&d, GK_GEMM_MMA, &p, why, sizeof why), -1); /* n not a multiple of 8 */
  d.n = 128, d.layout = GK_CONTIG, d.groups = 4;
  T_EQ_INT(gk_gemm_plan_make(&d, GK_GEMM_MMA, &p, why, sizeof why), -1); /* grouped without counts */
  d.layout = GK_DENSE, d.groups = 1, d.sfa_ld = 64;
  T_EQ_INT(gk_gemm_plan_make(&d, GK_GEMM_MMA, &p, why, sizeof why), -1); /* scales too short */
  d.layout = GK_MASKED, d.groups = 2, d.d_counts = (int32_t *)16, d.sfa_ld = 256;
  T_EQ_INT(gk_gemm_rows(&d), 256);
  setenv("MOESIM_CUDA_VARIANTS", "naive,mma", 1);
  T_EQ_INT(gk_gemm_plan_make(&d, GK_GEMM_WGMMA, &p, why, sizeof why), -1);
  T_CHECKF(strstr(why, "MOESIM_CUDA_VARIANTS") != NULL, "%s", why);
  unsetenv("MOESIM_CUDA_VARIANTS");
  int bm[8], bn[8];
  T_EQ_INT(gk_gemm_tiles(GK_GEMM_WGMMA, GK_FP8, bm, bn, 8), 6);
  T_CHECK(bm[5] == 128 && bn[5] == 128 && bm[0] == 64 && bn[0] == 32);
  T_EQ_INT(gk_gemm_tiles(GK_GEMM_MMA, GK_BF16, bm, bn, 8), 1);
  T_EQ_STR(gk_gemm_variant_name(GK_GEMM_WGMMA), "wgmma");
  char w2[256];
  if (!have_gpu(w2, (int)sizeof w2)) {
    d.layout = GK_DENSE, d.groups = 1, d.d_counts = NULL, d.sfa_ld = 128;
    T_EQ_INT(gk_gemm_plan_make(&d, GK_GEMM_MMA, &p, why, sizeof why), -1);
    T_CHECKF(strstr(why, "no CUDA device") != NULL, "%s", why);
  }
}

static void test_tile_scheduler(void) {
  char why[256];
  static const int bms[] = {16, 64, 128}, bns[] = {16, 32, 64, 128};
  krand r = krand_seed(9);
  int32_t counts[300];
  for (int trial = 0; trial < 60; trial++) {
    const int layout = trial % 3, groups = layout == GK_DENSE ? 1 : 1 + (int)krand_below(&r, trial < 30 ? 8 : 300);
    const int64_t n = 8 * (1 + (int64_t)krand_below(&r, 80));
    int64_t m = 1 + (int64_t)krand_below(&r, 700);
    int64_t total = 0;
    for (int g = 0; g < groups; g++) {
      counts[g] = krand_below(&r, 4) == 0 ? 0 : (int32_t)krand_below(&r, (uint64_t)(layout == GK_MASKED ? m + 40 : 600));
      total += counts[g];
    }
    if (layout == GK_CONTIG) m = total;
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 4; j++) {
        const int rc = gk_sched_check(layout, groups, counts, m, n, bms[i], bns[j], why, sizeof why);
        T_CHECKF(rc == 0, "layout %d groups %d m %lld n %lld tile %dx%d: %s", layout, groups, (long long)m, (long long)n,
                 bms[i], bns[j], why);
      }
  }
}

/* Plans hold the wgmma variant's TMA descriptors, which the driver refuses unless 64-byte aligned
 * (a calloc'd plan is 16-byte aligned: the wgmma variant would be "unavailable" on the GPU). */
static void test_gemm_plan_alignment(void) {
  char why[256] = "";
  T_CHECKF(gk_gemm_plan_align_check(why, sizeof why) == 0, "%s", why);
}

/* The GEMM checks' tolerance: 2^-8 |ref| (BF16 output rounding) + atol_rel * sum |terms|; a NaN or
 * an infinity never passes; worst tracks err / tolerance. */
static void test_gs_close(void) {
  double worst = 0;
  T_CHECK(gs_close(1.0f, 1.0, 1.0, 0, &worst));
  T_CHECK(gs_close(1.0f + 0x1p-8f, 1.0, 1.0, 0, &worst));   /* exactly at the tolerance */
  T_CHECK(!gs_close(1.0f + 0x1p-7f, 1.0, 1.0, 0, &worst));  /* twice it */
  T_NEAR(worst, 2.0, 1e-9);
  T_CHECK(gs_close(-1.0f - 0x1p-8f, -1.0, 1.0, 0, NULL));   /* |ref| for negative references */
  T_CHECK(gs_close(0.5f, 0.0, 100.0, 5e-3, NULL));          /* cancellation: absref sets the scale */
  T_CHECK(!gs_close(0.5f, 0.0, 100.0, 4e-3, NULL));
  worst = 0;
  T_CHECK(!gs_close(NAN, 1.0, 1.0, 1.0, &worst));
  T_CHECK(worst > 1e29);
  T_CHECK(!gs_close(INFINITY, 1.0, 1e300, 1.0, NULL));
}

/* cuBLASLt's block-scaled plan refuses k / 128 not a multiple of 4 before touching the device. */
static void test_blas_fp8_k_rule(void) {
  char why[256] = "";
  gk_blas_plan *p = (gk_blas_plan *)&why; /* must come back NULL */
  T_EQ_INT(gk_blas_fp8_make(&p, 208, 272, 384, (const uint8_t *)16, (const float *)16, (const uint8_t *)16,
                            (const float *)16, (uint16_t *)16, why, sizeof why),
           -1);
  T_CHECK(p == NULL);
  T_CHECKF(strstr(why, "multiple of 4") != NULL, "%s", why);
}

/* The launchers of quant.cu and permute.cu refuse bad shapes before any CUDA call (so a wrong
 * call in the suite is an error code, never a kernel reading out of bounds), and an empty problem
 * launches nothing and succeeds. No GPU is needed: none of these paths reaches the runtime. */
static void test_launcher_checks(void) {
  void *x = (void *)256; /* never dereferenced on these paths */
  const int bad = (int)cudaErrorInvalidValue;
  T_EQ_INT(gk_quant_token(x, 4, 100, GK_E4M3, 0, x, x, 0, 4, 0), bad);  /* h not a multiple of 128 */
  T_EQ_INT(gk_quant_token(x, -1, 128, GK_E4M3, 0, x, x, 0, 4, 0), bad); /* negative t */
  T_EQ_INT(gk_quant_token(x, 8, 128, GK_E4M3, 0, x, x, 1, 7, 0), bad);  /* M-major scales: sf_ld < t */
  T_EQ_INT(gk_quant_token(x, 0, 128, GK_E4M3, 0, x, x, 0, 0, 0), 0);    /* nothing to do */
  T_EQ_INT(gk_quant_block(x, 4, 200, GK_E4M3, 0, x, x, 0), bad);
  T_EQ_INT(gk_quant_block(x, -1, 128, GK_E4M3, 0, x, x, 0), bad);
  T_EQ_INT(gk_quant_block(x, 0, 128, GK_E4M3, 0, x, x, 0), 0);
  T_EQ_INT(gk_dequant_token(x, x, 4, 64, GK_E4M3, x, 0), bad);
  T_EQ_INT(gk_dequant_token(x, x, 0, 128, GK_E4M3, x, 0), 0);
  T_EQ_INT(gk_dispatch(x, x, 4, 96, 8, x, x, x, 0), bad);  /* h not a multiple of 128 */
  T_EQ_INT(gk_dispatch(x, x, 4, 128, 0, x, x, x, 0), bad); /* topk 0 */
  T_EQ_INT(gk_dispatch(x, x, 4, 128, 33, x, x, x, 0), bad); /* more slots than the kernel's table */
  T_EQ_INT(gk_dispatch(x, x, 0, 128, 8, x, x, x, 0), 0);
  T_EQ_INT(gk_combine(x, x, x, 4, 12, 8, x, 0), bad); /* h not a multiple of 8 (16-byte rows) */
  T_EQ_INT(gk_combine(x, x, x, 4, 128, 33, x, 0), bad);
  T_EQ_INT(gk_combine(x, x, x, 0, 128, 8, x, 0), 0);
  T_EQ_INT(gk_route_layout(x, 4, 8, 0, x, x, x, x, 0), bad);    /* no experts */
  T_EQ_INT(gk_route_layout(x, 4, 8, 1025, x, x, x, x, 0), bad); /* more than the scan's 1024 threads */
  T_EQ_INT(gk_route_layout(x, 4, 0, 256, x, x, x, x, 0), bad);
  /* scratch: one count per (chunk of 1024 routes, expert), at least one chunk */
  T_CHECK(gk_route_scratch_bytes(1000, 8, 256) >= 8 * 256 * sizeof(int32_t));
  T_CHECK(gk_route_scratch_bytes(4096, 8, 256) >= 32 * 256 * sizeof(int32_t));
  T_CHECK(gk_route_scratch_bytes(0, 8, 256) >= 256 * sizeof(int32_t));
}

/* One GPU (the H200 session's case): NCCL all-to-all is refused before NCCL is touched, and the
 * suite's nccl family records a skip (never a failure, never a row). */
static void nccl_family_one_gpu(void *arg) { gs_family_nccl((gs_ctx *)arg, 1); }

static void test_nccl_one_gpu_skips(void) {
  char why[256] = "";
  const uint64_t bytes[1] = {1024};
  double med = -1, mn = -1;
  T_EQ_INT(gk_nccl_a2a_time(1, bytes, 0, 5, &med, &mn, why, sizeof why), -1);
  T_CHECKF(why[0] != 0, "no reason given");
  T_CHECK(med == -1 && mn == -1);
  gs_ctx c;
  memset(&c, 0, sizeof c);
  c.ndev = 1, c.reps = 5, c.quiet = 1;
  char out[1024];
  capture(1, nccl_family_one_gpu, &c, out, sizeof out);
  T_EQ_INT(c.skipped, 1);
  T_EQ_INT(c.failures, 0);
  T_EQ_INT((long long)c.rows.len, 0);
  T_CHECKF(strstr(out, "skipped") != NULL, "%s", out);
  T_CHECKF(c.summary.data && strstr(c.summary.data, "skipped") != NULL, "summary: %s", c.summary.data ? c.summary.data : "");
  util_buf_free(&c.summary);
  kt_free(&c.rows);
}

static void quiet_validate(void *arg) {
  suite_call *s = arg;
  s->rc = gpu_suite_run(&s->o);
}

/* The whole validation of the quick suite on the GPU: GEMM variants x tiles x layouts x dtypes,
 * the vendor GEMMs, quantizers, route layout, dispatch, combine. */
static void test_gpu_validation(void) {
  char why[256];
  if (!have_gpu(why, (int)sizeof why)) T_SKIP("no CUDA GPU: %s", why);
  suite_call s;
  memset(&s, 0, sizeof s);
  s.o.suite = "quick";
  s.o.validate_only = 1;
  s.o.quiet = 1;
  char *out = malloc(1 << 16);
  capture(1, quiet_validate, &s, out, 1 << 16);
  T_CHECKF(s.rc == 0, "validation failed:\n%s", out);
  T_CHECKF(strstr(out, "FAILED") == NULL, "%s", out);
  free(out);
}

/* The copy kernel and the fill/quantize path on a real device, end to end. */
static void test_gpu_copy(void) {
  char why[256];
  if (!have_gpu(why, (int)sizeof why)) T_SKIP("no CUDA GPU: %s", why);
  const uint64_t n = (1u << 20) + 13;
  uint8_t *h = malloc(n), *g = malloc(n);
  for (uint64_t i = 0; i < n; i++) h[i] = (uint8_t)(i * 7 + 3);
  void *a = NULL, *b = NULL;
  CUDA_CHECK(cudaMalloc(&a, n));
  CUDA_CHECK(cudaMalloc(&b, n));
  CUDA_CHECK(cudaMemcpy(a, h, n, cudaMemcpyHostToDevice));
  CUDA_CHECK(gk_copy(a, b, n, 0));
  CUDA_CHECK(cudaMemcpy(g, b, n, cudaMemcpyDeviceToHost));
  T_CHECK(memcmp(h, g, n) == 0);
  cudaFree(a), cudaFree(b), free(h), free(g);
}

#endif

int main(void) {
  T_RUN(test_suite_rejects_bad_options);
  T_RUN(test_no_gpu_answers);
#if MOESIM_CUDA
  T_RUN(test_check_macros);
  T_RUN(test_fp8_decode);
  T_RUN(test_fp8_encode);
  T_RUN(test_quant_scale);
  T_RUN(test_gemm_plan_checks);
  T_RUN(test_tile_scheduler);
  T_RUN(test_gemm_plan_alignment);
  T_RUN(test_blas_fp8_k_rule);
  T_RUN(test_gs_close);
  T_RUN(test_launcher_checks);
  T_RUN(test_nccl_one_gpu_skips);
  T_RUN(test_gpu_validation);
  T_RUN(test_gpu_copy);
#endif
  return t_done();
}
