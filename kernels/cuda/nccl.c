/* kernels/cuda/nccl.c — multi-GPU all-to-all with NCCL, one process driving every visible GPU
 * (ncclCommInitAll): ncclAlltoAll (equal counts) where the NCCL in use has it (2.28+), and the
 * grouped ncclSend/ncclRecv form with per-peer byte counts taken from a real routing — the shape
 * expert-parallel dispatch has. Timed with CUDA events on every GPU; a run's time is the slowest
 * GPU's. Built without NCCL (no nccl.h, or MOESIM_NO_NCCL) every entry reports "not built". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gk.h"

#if !defined(MOESIM_NO_NCCL) && defined(__has_include)
#if __has_include(<nccl.h>)
#define GK_HAVE_NCCL 1
#endif
#endif

#ifdef GK_HAVE_NCCL
#define MOESIM_GPU_WANT_NCCL 1
#include "cuda/check.h"

int gk_nccl_version(void) {
  int v = 0;
  return ncclGetVersion(&v) == ncclSuccess ? v : 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int gk_nccl_a2a_time(int ndev, const uint64_t *bytes, int use_alltoall, int reps, double *median_us, double *min_us,
                     char *why, size_t why_len) {
  if (ndev < 2) {
    snprintf(why, why_len, "%d GPU visible: all-to-all needs at least 2", ndev);
    return -1;
  }
#if NCCL_VERSION_CODE < NCCL_VERSION(2, 28, 0)
  if (use_alltoall) {
    snprintf(why, why_len, "ncclAlltoAll needs NCCL 2.28 or later");
    return -1;
  }
#endif
  ncclComm_t *comms = calloc((size_t)ndev, sizeof *comms);
  cudaStream_t *st = calloc((size_t)ndev, sizeof *st);
  cudaEvent_t *e0 = calloc((size_t)ndev, sizeof *e0), *e1 = calloc((size_t)ndev, sizeof *e1);
  uint8_t **sbuf = calloc((size_t)ndev, sizeof *sbuf), **rbuf = calloc((size_t)ndev, sizeof *rbuf);
  double *t = calloc((size_t)(reps > 0 ? reps : 1), sizeof *t);
  int rc = -1;
  if (!comms || !st || !e0 || !e1 || !sbuf || !rbuf || !t) goto done;
  if (NCCL_FAILED(ncclCommInitAll(comms, ndev, NULL))) {
    snprintf(why, why_len, "ncclCommInitAll failed");
    goto done;
  }
  for (int r = 0; r < ndev; r++) {
    uint64_t out = 0, in = 0;
    for (int p = 0; p < ndev; p++) out += bytes[(size_t)r * ndev + p], in += bytes[(size_t)p * ndev + r];
    CUDA_CHECK(cudaSetDevice(r));
    CUDA_CHECK(cudaStreamCreate(&st[r]));
    CUDA_CHECK(cudaEventCreate(&e0[r]));
    CUDA_CHECK(cudaEventCreate(&e1[r]));
    CUDA_CHECK(cudaMalloc((void **)&sbuf[r], out ? out : 1));
    CUDA_CHECK(cudaMalloc((void **)&rbuf[r], in ? in : 1));
    CUDA_CHECK(cudaMemset(sbuf[r], r + 1, out ? out : 1));
  }
  for (int it = -2; it < reps; it++) {
    for (int r = 0; r < ndev; r++) {
      CUDA_CHECK(cudaSetDevice(r));
      CUDA_CHECK(cudaEventRecord(e0[r], st[r]));
    }
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < ndev; r++) {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
      if (use_alltoall) {
        NCCL_CHECK(ncclAlltoAll(sbuf[r], rbuf[r], bytes[(size_t)r * ndev], ncclUint8, comms[r], st[r]));
        continue;
      }
#endif
      uint64_t so = 0, ro = 0;
      for (int p = 0; p < ndev; p++) {
        const uint64_t sb = bytes[(size_t)r * ndev + p], rb = bytes[(size_t)p * ndev + r];
        if (sb) NCCL_CHECK(ncclSend(sbuf[r] + so, sb, ncclUint8, p, comms[r], st[r]));
        if (rb) NCCL_CHECK(ncclRecv(rbuf[r] + ro, rb, ncclUint8, p, comms[r], st[r]));
        so += sb, ro += rb;
      }
    }
    NCCL_CHECK(ncclGroupEnd());
    float worst = 0;
    for (int r = 0; r < ndev; r++) {
      float ms = 0;
      CUDA_CHECK(cudaSetDevice(r));
      CUDA_CHECK(cudaEventRecord(e1[r], st[r]));
      CUDA_CHECK(cudaEventSynchronize(e1[r]));
      CUDA_CHECK(cudaEventElapsedTime(&ms, e0[r], e1[r]));
      if (ms > worst) worst = ms;
    }
    if (it >= 0) t[it] = worst * 1e3;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_double);
  *median_us = t[reps / 2];
  *min_us = t[0];
  rc = 0;
done:
  for (int r = 0; comms && r < ndev; r++) {
    cudaSetDevice(r);
    if (sbuf && sbuf[r]) cudaFree(sbuf[r]);
    if (rbuf && rbuf[r]) cudaFree(rbuf[r]);
    if (st && st[r]) cudaStreamDestroy(st[r]);
    if (e0 && e0[r]) cudaEventDestroy(e0[r]);
    if (e1 && e1[r]) cudaEventDestroy(e1[r]);
    if (comms[r]) ncclCommDestroy(comms[r]);
  }
  cudaSetDevice(0);
  free(comms), free(st), free(e0), free(e1), free(sbuf), free(rbuf), free(t);
  return rc;
}

#else

int gk_nccl_version(void) { return 0; }

int gk_nccl_a2a_time(int ndev, const uint64_t *bytes, int use_alltoall, int reps, double *median_us, double *min_us,
                     char *why, size_t why_len) {
  (void)ndev, (void)bytes, (void)use_alltoall, (void)reps, (void)median_us, (void)min_us;
  snprintf(why, why_len, "NCCL is not built into this binary");
  return -1;
}

#endif
