// kernels/cuda/gpu.cu — device discovery and versions through the CUDA runtime (see gpu.h).
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "cuda/gk.h"
#include "cuda/gpu.h"

int gpu_built(void) { return 1; }

int gpu_query(gpu_info *out, int max, char *why, int why_len) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    int drv = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    if (why && why_len > 0) {
      if (drv == 0)
        snprintf(why, (size_t)why_len, "no NVIDIA driver found; %s: %s", cudaGetErrorName(err), cudaGetErrorString(err));
      else snprintf(why, (size_t)why_len, "%s: %s", cudaGetErrorName(err), cudaGetErrorString(err));
    }
    cudaGetLastError();
    return 0;
  }
  if (n == 0 && why && why_len > 0) snprintf(why, (size_t)why_len, "no CUDA device visible");
  for (int i = 0; i < n && i < max; i++) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    gpu_info *g = &out[i];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", p.name);
    g->sm_count = p.multiProcessorCount;
    g->cc_major = p.major;
    g->cc_minor = p.minor;
    g->mem_bytes = (uint64_t)p.totalGlobalMem;
    int clk = 0, mclk = 0;
    cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, i);
    cudaDeviceGetAttribute(&mclk, cudaDevAttrMemoryClockRate, i);
    g->clock_mhz = clk / 1000;
    g->mem_clock_mhz = mclk / 1000;
    cudaDeviceGetPCIBusId(g->pci_bus_id, (int)sizeof g->pci_bus_id, i);
  }
  return n;
}

void gpu_get_versions(gpu_versions *v) {
  memset(v, 0, sizeof *v);
  cudaRuntimeGetVersion(&v->runtime);
  if (cudaDriverGetVersion(&v->driver) != cudaSuccess) v->driver = 0;
  v->cublaslt = gk_blas_version();
  v->nccl = gk_nccl_version();
  cudaGetLastError();
}
}
