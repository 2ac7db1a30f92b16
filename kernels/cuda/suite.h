/* kernels/cuda/suite.h — the CUDA suite's shared harness (internal to suite*.c): the run context,
 * validate-then-time helpers, CUDA-event timing with the L2 flushed between repetitions, rows for
 * the kernel table and the summary text. Each family (suite_gemm.c, suite_moe.c) validates its
 * kernels against the CPU references, times only what passed, and says what it skipped and why. */
#ifndef MOESIM_CUDA_SUITE_H
#define MOESIM_CUDA_SUITE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/gpu.h"
#include "ktable.h"
#include "util.h"

typedef struct gs_ctx {
  gpu_info gpu;           /* the device measured */
  gpu_versions ver;       /* CUDA stack versions */
  int ndev;               /* visible GPUs (NCCL uses them all) */
  char device_name[96];   /* gpu.name without commas, for the CSV */
  const char *suite;      /* quick | deepgemm | moe | full */
  int reps;               /* timed repetitions */
  int validate_only;      /* time nothing */
  int quiet;              /* no progress lines */
  cudaStream_t s;         /* the stream everything runs on */
  cudaEvent_t ev0, ev1;   /* timing events */
  void *flush;            /* L2 flush buffer (2x the L2 size) */
  size_t flush_bytes;     /* its size */
  kt_table rows;          /* rows to append at the end */
  util_buf summary;       /* the summary text */
  int failures;           /* kernels that failed validation or a check */
  int skipped;            /* measurements not made (reason in the summary) */
} gs_ctx;

typedef struct gs_time {
  double median_us; /* median over reps */
  double min_us;    /* fastest */
  int reps;         /* timed repetitions */
} gs_time;

/* Enqueues one run of the measured operation on stream s; returns 0 or an error code. */
typedef int (*gs_fn)(void *arg, cudaStream_t s);

/* Two warm-up runs, then c->reps timed runs, each between two events, the L2 flushed (a memset of
 * c->flush) before each run when flush is set. Dies (exit 1) if a run fails. */
gs_time gs_time_it(gs_ctx *c, gs_fn fn, void *arg, int flush);

/* Appends a kernel-table row (device "cuda", this host, today, source "measured"). flops and bytes
 * are per run (0: the column is 0). */
void gs_row(gs_ctx *c, const char *backend, const char *kernel, const char *variant, const char *dtype, int64_t m,
            int64_t n, int64_t k, int64_t groups, int sms, gs_time t, double flops, double bytes);

/* A line of the summary (also printed on stdout). */
void gs_say(gs_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A progress line on stderr (unless quiet). */
void gs_progress(gs_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cudaMalloc that dies on failure; gs_free frees (NULL allowed). */
void *gs_dalloc(size_t bytes);
void gs_free(void *p);
/* Synchronous copies that die on failure. */
void gs_put(void *dst, const void *src, size_t bytes);
void gs_get(void *dst, const void *src, size_t bytes);
/* Waits for the stream; dies with the kernel's error if one failed. */
void gs_sync(gs_ctx *c);

/* Output check of one value: |got - ref| <= 2^-8 |ref| + atol_rel * absref, got finite. Tracks
 * the worst ratio err / tolerance in *worst. Returns 1 when within tolerance. */
int gs_close(float got, double ref, double absref, double atol_rel, double *worst);

/* Families (suite_gemm.c, suite_moe.c). Each returns after recording rows, summary lines and
 * failures in c. `full`: the suite's larger shape list. */
void gs_family_gemm(gs_ctx *c, int full);    /* FP8 dense: own variants vs cuBLASLt, DeepGEMM */
void gs_family_grouped(gs_ctx *c, int full); /* FP8 grouped contiguous and masked */
void gs_family_bf16(gs_ctx *c, int full);    /* BF16 dense (own vs cuBLAS) and grouped */
void gs_family_quant(gs_ctx *c, int full);   /* per-token / per-block quantization, dequant */
void gs_family_permute(gs_ctx *c, int full); /* copy yardstick, route layout, dispatch, combine */
void gs_family_nccl(gs_ctx *c, int full);    /* multi-GPU all-to-all */

#endif
