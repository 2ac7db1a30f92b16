/* kernels/cuda/gpu.h — what the host side asks of the CUDA half of the kernel suite. Built from
 * the .cu/.c files of kernels/cuda where nvcc exists; kernels/cuda/nocuda.c answers otherwise
 * (every function below has its stand-in there, kept in step with this header). */
#ifndef MOESIM_GPU_H
#define MOESIM_GPU_H

#include <stdint.h>
#include <stdio.h>

typedef struct gpu_info {
  char name[256];        /* e.g. "NVIDIA H200" */
  int sm_count;          /* streaming multiprocessors */
  int cc_major, cc_minor;/* compute capability */
  uint64_t mem_bytes;    /* device memory */
  int clock_mhz;         /* SM clock */
  int mem_clock_mhz;     /* memory clock */
  char pci_bus_id[32];   /* e.g. "0000:19:00.0" */
} gpu_info;

/* Versions of the CUDA stack in use; 0 where a part is absent (no driver, NCCL not built in). */
typedef struct gpu_versions {
  int runtime;  /* cudaRuntimeGetVersion, e.g. 13000 */
  int driver;   /* cudaDriverGetVersion: the newest CUDA the driver supports */
  int cublaslt; /* cublasLtGetVersion, e.g. 130100 */
  int nccl;     /* ncclGetVersion, e.g. 22809 */
} gpu_versions;

/* 1 if this binary has the CUDA kernels in it. */
int gpu_built(void);

/* Fills up to `max` entries with the visible GPUs and returns how many there are; 0 with a
 * reason in `why` when there are none (not built, no driver, no device). */
int gpu_query(gpu_info *out, int max, char *why, int why_len);

/* Fills v (zeros where unknown; all zeros when not built). */
void gpu_get_versions(gpu_versions *v);

/* What a run of the CUDA suite does. Zero-initialise, then set what you need. */
typedef struct gpu_suite_opts {
  const char *suite;   /* quick | deepgemm | moe | full (NULL: quick); see gpu_suite_help() */
  const char *only;    /* comma-separated families to run (gemm, grouped, bf16, quant, permute,
                          nccl); NULL: all families of the suite */
  const char *out_csv; /* kernel-table rows are appended here (sim/ktable.h); NULL: none */
  const char *summary; /* the summary text is written here; NULL: out_csv + ".summary.txt" when
                          out_csv is set; it is always printed on stdout */
  int reps;            /* timed repetitions per measurement (0: 20) */
  int validate_only;   /* 1: validate every kernel, time none */
  int quiet;           /* 1: no progress lines on stderr */
} gpu_suite_opts;

/* Runs the suite on the current GPU (device 0 unless CUDA_VISIBLE_DEVICES says otherwise): every
 * kernel is validated against the CPU reference first and timed (CUDA events, L2 flushed between
 * repetitions, median and min) only if it passed; rows go to the kernel table with device "cuda",
 * device_name = the GPU's name, threads = SMs used; the summary records the CUDA runtime, driver,
 * cuBLASLt and NCCL versions, clocks, validation results and ratios against cuBLAS(Lt), the copy
 * kernel and DeepGEMM's published H800 figures. Returns 0; 1 when a kernel failed validation or
 * the system failed; 2 when no GPU is present (or CUDA is not built in) or the options are bad,
 * with a message on stderr. */
int gpu_suite_run(const gpu_suite_opts *o);

/* gpu_suite_run with the defaults: `moesim kernels --device cuda` calls this. */
int gpu_run_suite(const char *suite, const char *out_csv, int reps);

/* Prints the suites and families to f (for --help texts). */
void gpu_suite_help(FILE *f);

#endif
