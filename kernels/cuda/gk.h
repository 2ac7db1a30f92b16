/* kernels/cuda/gk.h — the CUDA kernels of moesim as C-callable launchers ("gk" = GPU kernels).
 * Internal to kernels/cuda, its suite (suite.c) and its tests; the rest of the project sees only
 * gpu.h. Everything here exists only in a CUDA build (MOESIM_CUDA=1).
 *
 * Layouts (DeepGEMM's, so the same operands feed cuBLASLt and the published comparison):
 * - GEMM: D[m, n] = A[m, k] * B[n, k]^T; A row-major (k contiguous), B row-major [n][k] as linear
 *   layers store weights, D BF16 row-major. K is a multiple of 128, N a multiple of 8.
 * - FP8 (E4M3) block scaling: A has one FP32 scale per 1x128 tile, stored M-major:
 *   sfa[kb * sfa_ld + row] (kb = k / 128), which is what cuBLASLt's VEC128_32F mode and TMA want;
 *   B has one per 128x128 block, sfb[(g * ceil(n/128) + n/128) * (k/128) + kb].
 *   Value = fp8 * scale; products accumulate in FP32 within each 128-deep K block and are promoted
 *   (scaled and added to an FP32 total) once per block: DeepSeek's recipe, promotion interval 128.
 * - Grouped (experts): B is [groups][n][k]. Contiguous: A rows of expert g follow those of g-1,
 *   counts[g] rows each (any count, 0 included). Masked: A is [groups][m][k], expert g's first
 *   counts[g] rows are valid, D likewise; invalid rows of D are left untouched.
 * - Per-token quantization: x BF16 [t][h] -> q FP8 [t][h] + one scale per 1x128 tile, scale =
 *   amax / fp8_max (optionally rounded up to a power of two), q = x / scale rounded to nearest even
 *   and saturated. Scales row-major sf[t * (h/128) + j] or M-major sf[j * sf_ld + t].
 * - Dispatch/combine: pair p = token * topk + slot; pos[p] is the row of the expert-ordered buffer
 *   that pair goes to (-1: dropped). */
#ifndef MOESIM_GK_H
#define MOESIM_GK_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { GK_FP8 = 0, GK_BF16 = 1 };                  /* GEMM operand types (FP8 = E4M3) */
enum { GK_DENSE = 0, GK_CONTIG = 1, GK_MASKED = 2 }; /* GEMM layouts */
enum { GK_E4M3 = 0, GK_E5M2 = 1 };                 /* FP8 formats of the quantizers */

/* Numbered GEMM variants (llm.c style), one switch in gemm.cu. */
enum {
  GK_GEMM_NAIVE = 1, /* one thread per output, FP32 FMA: the device-side truth, slow */
  GK_GEMM_MMA = 2,   /* mma.sync tensor cores, cp.async pipeline; FP8 mma on sm_89+, FP8->BF16 on sm_80 */
  GK_GEMM_WGMMA = 3, /* sm_90a: TMA loads, mbarrier pipeline, warp-specialized WGMMA warpgroups */
  GK_GEMM_NVARIANTS = 4
};
#define GK_MAX_GROUPS 512 /* experts per grouped GEMM (the tile scheduler keeps a table per group) */

typedef struct gk_gemm_desc {
  int dtype;               /* GK_FP8 or GK_BF16 */
  int layout;              /* GK_DENSE, GK_CONTIG or GK_MASKED */
  int64_t m;               /* rows: dense/contig total rows; masked: rows reserved per group */
  int64_t n;               /* output columns (per group) */
  int64_t k;               /* reduction depth, a multiple of 128 */
  int groups;              /* experts (1 for dense) */
  const int32_t *d_counts; /* device [groups]: rows per group (contig) or valid rows (masked) */
  const void *a;           /* device A: fp8 or bf16 [rows][k] */
  const float *sfa;        /* device, FP8 only: [k/128][sfa_ld] */
  int64_t sfa_ld;          /* FP8 only: >= rows of A */
  const void *b;           /* device B: [groups][n][k] */
  const float *sfb;        /* device, FP8 only: [groups][ceil(n/128)][k/128] */
  uint16_t *d;             /* device D: bf16 [rows][n] */
  int bm, bn;              /* CTA tile (rows, columns); 0 = the variant chooses */
} gk_gemm_desc;

/* Rows of A and D that a descriptor covers. */
int64_t gk_gemm_rows(const gk_gemm_desc *d);

typedef struct gk_gemm_plan gk_gemm_plan;

/* Prepares `variant` for the problem `d` on the current device (tile choice, TMA descriptors,
 * launch shape). Returns 0 and *out, or -1 with the reason in why (variant not built for this
 * GPU, shape unsupported, or left out of the environment variable MOESIM_CUDA_VARIANTS, a comma
 * list such as "naive,mma" that devcheck.sh uses to retry without a variant that crashed). The
 * plan keeps the pointers of d: launch it as often as wanted. */
int gk_gemm_plan_make(const gk_gemm_desc *d, int variant, gk_gemm_plan **out, char *why, size_t why_len);
/* Enqueues the GEMM on stream s; returns the launch's cudaError_t (0 on success). */
int gk_gemm_launch(const gk_gemm_plan *p, cudaStream_t s);
/* "wgmma_128x128", "mma_128x128", "naive": the variant and its tile. */
const char *gk_gemm_plan_name(const gk_gemm_plan *p);
/* Multiprocessors the launch occupies (CTAs, capped at the device's SM count). */
int gk_gemm_plan_sms(const gk_gemm_plan *p);
void gk_gemm_plan_free(gk_gemm_plan *p);
/* Tiles (bm, bn) a variant can be forced to; returns how many were written (<= max). */
int gk_gemm_tiles(int variant, int dtype, int *bm, int *bn, int max);
/* Variant name without tile ("naive", "mma", "wgmma"). */
const char *gk_gemm_variant_name(int variant);
/* Host check of the grouped tile scheduler every variant uses (gemm_common.cuh): 0 when the tiles
 * of (layout, counts, m, n, bm x bn) cover each valid output exactly once and stay inside their
 * group's rows and the launch bound; -1 with why otherwise. */
int gk_sched_check(int layout, int groups, const int32_t *counts, int64_t m, int64_t n, int bm, int bn, char *why,
                   size_t why_len);

/* Host check of the plan allocator: 0 when plans come out aligned as their TMA descriptors need
 * (64 bytes, cuTensorMapEncodeTiled's rule), -1 with why otherwise. */
int gk_gemm_plan_align_check(char *why, size_t why_len);

/* Per-token (1x128) quantization of BF16 x[t][h] (h a multiple of 128) into FP8 q[t][h] and FP32
 * scales (layout above; sf_mmajor 0: sf[t][h/128], 1: sf[j * sf_ld + t]). pow2: scales rounded up
 * to powers of two. Bit-identical to kernels/ref/quant_ref.c (amax over finite values, floored at
 * QUANT_AMAX_FLOOR; q = fp8(x * (1 / scale))). */
int gk_quant_token(const uint16_t *x, int64_t t, int64_t h, int fmt, int pow2, uint8_t *q, float *sf,
                   int sf_mmajor, int64_t sf_ld, cudaStream_t s);
/* 128x128 block quantization of BF16 w[rows][cols] (cols a multiple of 128): sf[rows/128][cols/128]
 * (rows rounded up). */
int gk_quant_block(const uint16_t *w, int64_t rows, int64_t cols, int fmt, int pow2, uint8_t *q,
                   float *sf, cudaStream_t s);
/* y[t][h] = bf16(fp8 q * scale), scales row-major [t][h/128]. */
int gk_dequant_token(const uint8_t *q, const float *sf, int64_t t, int64_t h, int fmt, uint16_t *y,
                     cudaStream_t s);

/* Routing layout: from topk_idx[t][topk] (experts, -1 = none) computes counts[e], offsets[e]
 * (exclusive prefix, offsets[n_experts] = total) and pos[p] (stable: within an expert, pairs keep
 * token order). scratch: gk_route_scratch_bytes() bytes of device memory. */
size_t gk_route_scratch_bytes(int64_t t, int topk, int n_experts);
int gk_route_layout(const int32_t *topk_idx, int64_t t, int topk, int n_experts, int32_t *counts,
                    int32_t *offsets, int32_t *pos, void *scratch, cudaStream_t s);
/* Dispatch: copies each token's FP8 row (h bytes) and its h/128 scales (row-major) to the rows
 * pos[token * topk + slot] of yq / ysf (expert order). */
int gk_dispatch(const uint8_t *xq, const float *xsf, int64_t t, int64_t h, int topk, const int32_t *pos,
                uint8_t *yq, float *ysf, cudaStream_t s);
/* Combine: out[t][:] = bf16(sum over slots of w[t][slot] * ye[pos[t * topk + slot]][:]), FP32
 * accumulation; dropped pairs (pos -1) add nothing. */
int gk_combine(const uint16_t *ye, const float *w, const int32_t *pos, int64_t t, int64_t h, int topk,
               uint16_t *out, cudaStream_t s);
/* Device-to-device copy kernel (16-byte vectors, grid-stride): the bandwidth yardstick. */
int gk_copy(const void *src, void *dst, uint64_t bytes, cudaStream_t s);

/* Fills device memory from gk_rand.h's streams: element i of the buffer is gk_fp8_e4m3 /
 * gk_scale / gk_bf16 (seed, i). */
int gk_fill_fp8(uint8_t *p, uint64_t n, uint64_t seed, cudaStream_t s);
int gk_fill_scale(float *p, uint64_t n, uint64_t seed, cudaStream_t s);
int gk_fill_bf16(uint16_t *p, uint64_t n, uint64_t seed, cudaStream_t s);

/* FP8 E4M3 bits -> float, exactly (the conversion the sm_80 GEMM path uses; host and device). */
float gk_e4m3_to_f32_host(uint8_t x);
/* gk_fp8.h's conversions and scale formula as compiled by nvcc (for the host tests). */
uint8_t gk_f32_to_fp8_host(float f, int e5m2);
float gk_fp8_to_f32_host(uint8_t b, int e5m2);
float gk_quant_scale_host(float amax, int e5m2, int pow2);

/* Vendor baselines (blas.c): a plan per problem, as for the GEMM variants. */
typedef struct gk_blas_plan gk_blas_plan;
/* cuBLASLt block-scaled FP8 GEMM on the layouts above (dense, sfa_ld = m). Returns 0, or -1 with
 * why (k / 128 not a multiple of 4, see blas.c; no algorithm on this GPU / cuBLAS version). */
int gk_blas_fp8_make(gk_blas_plan **out, int64_t m, int64_t n, int64_t k, const uint8_t *a, const float *sfa,
                     const uint8_t *b, const float *sfb, uint16_t *d, char *why, size_t why_len);
/* cuBLAS BF16 GEMM (cublasGemmEx, FP32 compute). */
int gk_blas_bf16_make(gk_blas_plan **out, int64_t m, int64_t n, int64_t k, const uint16_t *a, const uint16_t *b,
                      uint16_t *d, char *why, size_t why_len);
/* Enqueues the GEMM; 0 or -1. */
int gk_blas_run(const gk_blas_plan *p, cudaStream_t s);
const char *gk_blas_name(const gk_blas_plan *p);
/* 1 when D is written transposed (n x m row-major): cuBLASLt took only the swapped operand order. */
int gk_blas_transposed(const gk_blas_plan *p);
void gk_blas_free(gk_blas_plan *p);
/* cublasLtGetVersion(). */
int gk_blas_version(void);

/* NCCL (nccl.c): ncclGetVersion(), 0 when NCCL is not built in. */
int gk_nccl_version(void);
/* All-to-all among the first ndev GPUs of this process, bytes[r * ndev + p] from rank r to peer p:
 * use_alltoall 1 = ncclAlltoAll (every count must equal bytes[r * ndev]), 0 = grouped
 * ncclSend/ncclRecv. Two warm-up runs, then reps timed ones; a run's time is its slowest GPU's.
 * Returns 0 with the median and min in microseconds, or -1 with why (fewer than 2 GPUs, no NCCL). */
int gk_nccl_a2a_time(int ndev, const uint64_t *bytes, int use_alltoall, int reps, double *median_us, double *min_us,
                     char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
