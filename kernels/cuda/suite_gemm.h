/* kernels/cuda/suite_gemm.h — the GEMM validation state shared by suite_gemm.c (timing) and
 * suite_gemm_check.c (validation against kgemm's CPU reference). */
#ifndef MOESIM_CUDA_SUITE_GEMM_H
#define MOESIM_CUDA_SUITE_GEMM_H

#include "cuda/suite.h"

/* Validates every variant and tile of `dtype` (GK_FP8 / GK_BF16) once per process, writing one
 * summary line per tile and counting failures in c. Returns 1 when all that ran passed. */
int gsg_validate(gs_ctx *c, int dtype);
/* 1 when (variant, tile) passed gsg_validate for dtype. */
int gsg_valid(int variant, int dtype, int bm, int bn);
/* 1 after gsg_validate unless the vendor GEMM (cuBLASLt FP8 / cuBLAS BF16) ran on the check
 * problem and FAILED. When the vendor had no plan for that problem (cuBLASLt's block-scaled FP8
 * may not take every shape), the benchmark shapes it does take are timed: each one's output is
 * spot-checked before its row is written, as for the own kernels. */
int gsg_vendor_valid(int dtype);

#endif
