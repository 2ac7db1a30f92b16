/* kernels/cuda/check.h — one generator for the error checks of the CUDA runtime, cuBLAS(Lt) and
 * NCCL (ggml's habit): GPU_CHECK_DEFINE(prefix, status type, success value, to-string function)
 * defines, for one library,
 *   int  prefix_failed(status, file, line, call)  prints "file:line: call: message" and returns 1
 *                                                 when status is not success, else returns 0;
 *   void prefix_check(status, file, line, call)   the same, then exits 1 (util_die_sys's tier:
 *                                                 a library failed).
 * The macros CUDA_CHECK(x), CUBLAS_CHECK(x), NCCL_CHECK(x) are the fatal form and CUDA_FAILED(x),
 * CUBLAS_FAILED(x), NCCL_FAILED(x) the recoverable one (for "this library cannot do that shape"
 * answers that a benchmark reports and moves past). Usable from C (.c) and CUDA C++ (.cu). */
#ifndef MOESIM_GPU_CHECK_H
#define MOESIM_GPU_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
#define GPU_CHECK_INLINE static inline
#else
#define GPU_CHECK_INLINE static inline __attribute__((unused))
#endif

/* Exit status of a library failure (UTIL_EXIT_SYS in sim/util.h, which C++ cannot include). */
#define GPU_EXIT_SYS 1

#define GPU_CHECK_DEFINE(prefix, status_t, ok, to_string)                                          \
  GPU_CHECK_INLINE int prefix##_failed(status_t rc, const char *file, int line, const char *call) { \
    if (rc == (ok)) return 0;                                                                      \
    fprintf(stderr, "%s:%d: %s: %s\n", file, line, call, to_string(rc));                           \
    return 1;                                                                                      \
  }                                                                                                \
  GPU_CHECK_INLINE void prefix##_check(status_t rc, const char *file, int line, const char *call) { \
    if (prefix##_failed(rc, file, line, call)) exit(GPU_EXIT_SYS);                                 \
  }

GPU_CHECK_DEFINE(gpu_cuda, cudaError_t, cudaSuccess, cudaGetErrorString)
#define CUDA_CHECK(x) gpu_cuda_check((x), __FILE__, __LINE__, #x)
#define CUDA_FAILED(x) gpu_cuda_failed((x), __FILE__, __LINE__, #x)

#ifdef MOESIM_GPU_WANT_CUBLAS
#include <cublas_api.h>
GPU_CHECK_DEFINE(gpu_cublas, cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
#define CUBLAS_CHECK(x) gpu_cublas_check((x), __FILE__, __LINE__, #x)
#define CUBLAS_FAILED(x) gpu_cublas_failed((x), __FILE__, __LINE__, #x)
#endif

#ifdef MOESIM_GPU_WANT_NCCL
#include <nccl.h>
GPU_CHECK_DEFINE(gpu_nccl, ncclResult_t, ncclSuccess, ncclGetErrorString)
#define NCCL_CHECK(x) gpu_nccl_check((x), __FILE__, __LINE__, #x)
#define NCCL_FAILED(x) gpu_nccl_failed((x), __FILE__, __LINE__, #x)
#endif

/* After a kernel launch: the launch error (bad configuration) right away. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#endif
