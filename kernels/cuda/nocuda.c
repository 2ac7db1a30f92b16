/* kernels/cuda/nocuda.c — stands in for the CUDA half of the kernel suite when it is not built
 * (no nvcc, or CUDA=0): every query answers "not built". */
#include "cuda/gpu.h"

int gpu_built(void) { return 0; }

int gpu_query(gpu_info *out, int max, char *why, int why_len) {
  (void)out;
  (void)max;
  if (why && why_len > 0) snprintf(why, (size_t)why_len, "moesim was built without CUDA (no nvcc, or CUDA=0)");
  return 0;
}
