/* kernels/cuda/gpu.h — what the host side asks of the CUDA half of the kernel suite. Built from
 * the .cu files of kernels/cuda (nvcc) where nvcc exists; kernels/cuda/nocuda.c answers otherwise. */
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

/* 1 if this binary has the CUDA kernels in it. */
int gpu_built(void);

/* Fills up to `max` entries with the visible GPUs and returns how many there are; 0 with a
 * reason in `why` when there are none (not built, no driver, no device). */
int gpu_query(gpu_info *out, int max, char *why, int why_len);

#endif
