/* kernels/cuda/blas.c — the vendor baselines the CUDA kernels are measured against, in the same
 * run and on the same operands:
 * - cuBLASLt's own block-scaled FP8 GEMM (cuBLAS 12.9+ on Hopper): activations with
 *   CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F (one FP32 scale per 1x128 tile), weights with
 *   CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F (one per 128x128 block), FP32 compute, BF16 out,
 *   no fast accumulation (block scaling rules it out);
 * - cuBLAS BF16 GEMM (cublasGemmEx, FP32 compute).
 * Row-major D[m][n] = A[m][k] B[n][k]^T is column-major D^T = B A^T, so cuBLAS sees m' = n, n' = m,
 * A' = the weights (transposed, BLK128x128 scales [n/128][k/128]) and B' = the activations (VEC128
 * scales, M-major [k/128][m]) — the operand order PyTorch's scaled_mm uses. Should cuBLASLt offer
 * no algorithm for that order, the swapped order is tried, which writes D transposed (n x m
 * row-major); the plan says so and checks read it accordingly.
 *
 * The 128x128 weight scales are passed as gk.h lays them out, [n/128][k/128] with k/128
 * contiguous and no padding. cuBLASLt's 2-D scale tensor wants 16-byte-aligned rows (PyTorch's
 * _scaled_mm asks for that layout with the row stride rounded up to 4 floats), so the plan refuses
 * a k whose k/128 is not a multiple of 4 rather than hand cuBLASLt rows it may read at another
 * stride; every V3 shape has k/128 in {4, 12, 16, 56, 128}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gk.h"

/* Built without cuBLAS (MOESIM_NO_CUBLAS: devcheck.sh's minimal build on a machine whose CUDA
 * has no cuBLAS libraries), every plan is refused with that reason: the suite then reports the
 * vendor baselines as skipped and still validates and times its own kernels. */
#if !defined(MOESIM_NO_CUBLAS) && defined(__has_include)
#if __has_include(<cublasLt.h>)
#define GK_HAVE_CUBLAS 1
#endif
#endif

#ifdef GK_HAVE_CUBLAS
#define MOESIM_GPU_WANT_CUBLAS 1
#include <cublasLt.h>
#include <cublas_v2.h>

#include "cuda/check.h"

#define GK_LT_WORKSPACE (32u << 20) /* bytes of cuBLASLt workspace */

struct gk_blas_plan {
  int kind;                    /* 0: cuBLASLt FP8 block-scaled, 1: cuBLAS BF16 */
  int transposed;              /* 1: D was written n x m (the swapped operand order) */
  char name[48];               /* variant column: "vec128_blk128x128", "gemmex_bf16" */
  int64_t m, n, k;             /* row-major problem */
  const void *a, *b;           /* activations, weights */
  void *d;                     /* output */
  cublasLtHandle_t lt;         /* FP8 */
  cublasLtMatmulDesc_t op;     /* FP8 */
  cublasLtMatrixLayout_t la, lb, lc; /* FP8: A', B', C'/D' */
  cublasLtMatmulAlgo_t algo;   /* FP8: the heuristic's first choice */
  void *ws;                    /* FP8 workspace */
  cublasHandle_t h;            /* BF16 */
};

static void lt_destroy(gk_blas_plan *p) {
  if (p->la) cublasLtMatrixLayoutDestroy(p->la);
  if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
  if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
  if (p->op) cublasLtMatmulDescDestroy(p->op);
  p->la = p->lb = p->lc = NULL;
  p->op = NULL;
}

/* One operand order: A' (rows_a x k, scale mode_a), B' (rows_b x k, mode_b), D' rows_a x rows_b
 * column-major. Returns 0 when cuBLASLt has an algorithm for it. */
static int lt_try(gk_blas_plan *p, const void *ap, const float *sa, int32_t mode_a, int64_t rows_a, const void *bp,
                  const float *sb, int32_t mode_b, int64_t rows_b, char *why, size_t why_len) {
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  int8_t fast = 0;
  int ok = !CUBLAS_FAILED(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode_a, sizeof mode_a)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode_b, sizeof mode_b)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa)) &&
           !CUBLAS_FAILED(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb)) &&
           !CUBLAS_FAILED(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_8F_E4M3, (uint64_t)p->k, (uint64_t)rows_a, p->k)) &&
           !CUBLAS_FAILED(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_8F_E4M3, (uint64_t)p->k, (uint64_t)rows_b, p->k)) &&
           !CUBLAS_FAILED(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_16BF, (uint64_t)rows_a, (uint64_t)rows_b, rows_a));
  if (!ok) {
    snprintf(why, why_len, "cuBLASLt refused the block-scaled FP8 descriptors");
    lt_destroy(p);
    return -1;
  }
  cublasLtMatmulPreference_t pref = NULL;
  size_t ws = GK_LT_WORKSPACE;
  cublasLtMatmulHeuristicResult_t res[4];
  int found = 0;
  if (CUBLAS_FAILED(cublasLtMatmulPreferenceCreate(&pref)) ||
      CUBLAS_FAILED(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws)))
    found = 0;
  else if (cublasLtMatmulAlgoGetHeuristic(p->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 4, res, &found) !=
           CUBLAS_STATUS_SUCCESS)
    found = 0;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (found < 1) {
    snprintf(why, why_len, "cuBLASLt has no block-scaled FP8 algorithm for %lld x %lld x %lld on this GPU",
             (long long)p->m, (long long)p->n, (long long)p->k);
    lt_destroy(p);
    return -1;
  }
  p->algo = res[0].algo;
  p->a = ap;
  p->b = bp;
  return 0;
}

int gk_blas_fp8_make(gk_blas_plan **out, int64_t m, int64_t n, int64_t k, const uint8_t *a, const float *sfa,
                     const uint8_t *b, const float *sfb, uint16_t *d, char *why, size_t why_len) {
  *out = NULL;
  if (k <= 0 || k % 512) {
    snprintf(why, why_len, "k = %lld: cuBLASLt's 128x128 scales need k / 128 to be a multiple of 4 (16-byte rows)",
             (long long)k);
    return -1;
  }
  gk_blas_plan *p = calloc(1, sizeof *p);
  if (!p) return -1;
  p->kind = 0;
  p->m = m, p->n = n, p->k = k;
  p->d = d;
  if (CUBLAS_FAILED(cublasLtCreate(&p->lt)) || CUDA_FAILED(cudaMalloc(&p->ws, GK_LT_WORKSPACE))) {
    snprintf(why, why_len, "cuBLASLt could not start");
    gk_blas_free(p);
    return -1;
  }
  const int32_t vec = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, blk = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
  if (lt_try(p, b, sfb, blk, n, a, sfa, vec, m, why, why_len) == 0) {
    snprintf(p->name, sizeof p->name, "vec128_blk128x128");
  } else if (lt_try(p, a, sfa, vec, m, b, sfb, blk, n, why, why_len) == 0) {
    p->transposed = 1;
    snprintf(p->name, sizeof p->name, "vec128_blk128x128_dT");
  } else {
    gk_blas_free(p);
    return -1;
  }
  *out = p;
  return 0;
}

int gk_blas_bf16_make(gk_blas_plan **out, int64_t m, int64_t n, int64_t k, const uint16_t *a, const uint16_t *b,
                      uint16_t *d, char *why, size_t why_len) {
  *out = NULL;
  gk_blas_plan *p = calloc(1, sizeof *p);
  if (!p) return -1;
  p->kind = 1;
  p->m = m, p->n = n, p->k = k;
  p->a = a, p->b = b, p->d = d;
  if (CUBLAS_FAILED(cublasCreate(&p->h))) {
    snprintf(why, why_len, "cuBLAS could not start");
    free(p);
    return -1;
  }
  snprintf(p->name, sizeof p->name, "gemmex_bf16");
  *out = p;
  return 0;
}

int gk_blas_run(const gk_blas_plan *p, cudaStream_t s) {
  const float one = 1.0f, zero = 0.0f;
  if (p->kind == 0)
    return cublasLtMatmul(p->lt, p->op, &one, p->a, p->la, p->b, p->lb, &zero, p->d, p->lc, p->d, p->lc, &p->algo,
                          p->ws, GK_LT_WORKSPACE, s) == CUBLAS_STATUS_SUCCESS
               ? 0
               : -1;
  if (cublasSetStream(p->h, s) != CUBLAS_STATUS_SUCCESS) return -1;
  /* column-major: D^T (n x m) = B (k x n, transposed) * A^T (k x m) */
  return cublasGemmEx(p->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)p->n, (int)p->m, (int)p->k, &one, p->b, CUDA_R_16BF,
                      (int)p->k, p->a, CUDA_R_16BF, (int)p->k, &zero, p->d, CUDA_R_16BF, (int)p->n,
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS
             ? 0
             : -1;
}

const char *gk_blas_name(const gk_blas_plan *p) { return p->name; }
int gk_blas_transposed(const gk_blas_plan *p) { return p->transposed; }

void gk_blas_free(gk_blas_plan *p) {
  if (!p) return;
  lt_destroy(p);
  if (p->lt) cublasLtDestroy(p->lt);
  if (p->ws) cudaFree(p->ws);
  if (p->h) cublasDestroy(p->h);
  free(p);
}

int gk_blas_version(void) { return (int)cublasLtGetVersion(); }

#else

#define GK_NO_CUBLAS_WHY "cuBLAS(Lt) is not built into this binary"

int gk_blas_fp8_make(gk_blas_plan **out, int64_t m, int64_t n, int64_t k, const uint8_t *a, const float *sfa,
                     const uint8_t *b, const float *sfb, uint16_t *d, char *why, size_t why_len) {
  (void)m, (void)n, (void)k, (void)a, (void)sfa, (void)b, (void)sfb, (void)d;
  *out = NULL;
  snprintf(why, why_len, "%s", GK_NO_CUBLAS_WHY);
  return -1;
}

int gk_blas_bf16_make(gk_blas_plan **out, int64_t m, int64_t n, int64_t k, const uint16_t *a, const uint16_t *b,
                      uint16_t *d, char *why, size_t why_len) {
  (void)m, (void)n, (void)k, (void)a, (void)b, (void)d;
  *out = NULL;
  snprintf(why, why_len, "%s", GK_NO_CUBLAS_WHY);
  return -1;
}

int gk_blas_run(const gk_blas_plan *p, cudaStream_t s) {
  (void)p, (void)s;
  return -1;
}

const char *gk_blas_name(const gk_blas_plan *p) {
  (void)p;
  return "none";
}

int gk_blas_transposed(const gk_blas_plan *p) {
  (void)p;
  return 0;
}

void gk_blas_free(gk_blas_plan *p) { (void)p; }

int gk_blas_version(void) { return 0; }

#endif
