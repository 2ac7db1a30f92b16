/* kernels/cuda/gemm_wgmma.h — the interface between gemm.cu (plans, the variant switch) and
 * gemm_wgmma.cu (GEMM variant 3, sm_90a). CUDA C++ only. */
#ifndef MOESIM_GEMM_WGMMA_H
#define MOESIM_GEMM_WGMMA_H

#include <cuda.h>

#include "cuda/gemm_common.cuh"

typedef struct gk_wgmma_plan {
  CUtensorMap tm[2]; /* TMA descriptors of A and B */
  gk_kargs args;     /* the problem */
  int bm, bn;        /* CTA tile */
  int fp8;           /* 1: FP8 block-scaled, 0: BF16 */
  int grid;          /* persistent CTAs (<= SMs) */
  int smem;          /* dynamic shared memory bytes */
} gk_wgmma_plan;

/* Tiles the kernel is instantiated for: bm in {64, 128}, bn in {32, 64, 128}. Fills w and returns
 * 0, or -1 with a reason (no kernel image for this GPU, TMA descriptor refused). */
int gk_wgmma_prepare(gk_wgmma_plan *w, const gk_kargs *p, int dtype, int bm, int bn, int sms, char *why,
                     size_t why_len);
/* Enqueues the planned GEMM; returns a cudaError_t. */
int gk_wgmma_launch(const gk_wgmma_plan *w, cudaStream_t s);

#endif
