/* kernels/cuda/nocuda.c — stands in for the CUDA half of the kernel suite when it is not built
 * (no nvcc, or CUDA=0): every query answers "not built", and the suite refuses with exit status 2.
 * Kept in step with gpu.h: one stand-in per function there. */
#include <string.h>

#include "cuda/gpu.h"

#define NOCUDA_WHY "moesim was built without CUDA (no nvcc, or CUDA=0)"

int gpu_built(void) { return 0; }

int gpu_query(gpu_info *out, int max, char *why, int why_len) {
  (void)out;
  (void)max;
  if (why && why_len > 0) snprintf(why, (size_t)why_len, "%s", NOCUDA_WHY);
  return 0;
}

void gpu_get_versions(gpu_versions *v) { memset(v, 0, sizeof *v); }

int gpu_suite_run(const gpu_suite_opts *o) {
  (void)o;
  fprintf(stderr, "moesim: error: no CUDA GPU present (%s)\n", NOCUDA_WHY);
  return 2;
}

int gpu_run_suite(const char *suite, const char *out_csv, int reps) {
  gpu_suite_opts o = {0};
  o.suite = suite;
  o.out_csv = out_csv;
  o.reps = reps;
  return gpu_suite_run(&o);
}

void gpu_suite_help(FILE *f) { fprintf(f, "  (the CUDA suite is not built into this binary: %s)\n", NOCUDA_WHY); }
