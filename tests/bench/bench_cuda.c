/* tests/bench/bench_cuda.c — the CUDA kernel suite from the command line (kernels/cuda/gpu.h):
 * validates every CUDA kernel against the CPU reference, then times it (CUDA events, L2 flushed,
 * median) and appends kernel-table rows; the summary compares with cuBLAS(Lt), the copy kernel and
 * DeepGEMM's published H800 figures. kernels/cuda/devcheck.sh runs it one family per process.
 *
 *   build/bench/bench_cuda [--suite quick|deepgemm|moe|full] [--only FAMILIES] [--out F.csv]
 *                          [--summary F.txt] [--reps N] [--validate-only] [--require-gpu] [--quiet]
 *
 * Without a GPU it says so and exits 0 (a benchmark has nothing to measure), or 2 with
 * --require-gpu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gpu.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_cuda [options]\n"
          "\n"
          "Validates the CUDA kernels against the CPU references, then benchmarks them on GPU 0.\n"
          "\n"
          "options:\n"
          "  --suite S         quick (default), deepgemm, moe or full\n"
          "  --only F[,F...]   run only these families of the suite\n"
          "  --out F.csv       append kernel-table rows to F.csv (created with its header)\n"
          "  --summary F.txt   write the summary there (default: F.csv.summary.txt with --out)\n"
          "  --reps N          timed repetitions per measurement (default 20)\n"
          "  --validate-only   validate every kernel, time nothing\n"
          "  --require-gpu     exit 2 when no GPU is present (default: say so, exit 0)\n"
          "  --quiet           no progress lines on stderr\n"
          "  -h, --help        this text\n"
          "\n");
  gpu_suite_help(f);
  fprintf(f, "\nexit status: 0 done; 1 a kernel failed validation or CUDA failed; 2 bad options, or no GPU\n"
             "with --require-gpu.\n");
}

int main(int argc, char **argv) {
  gpu_suite_opts o;
  memset(&o, 0, sizeof o);
  int require = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--validate-only")) o.validate_only = 1;
    else if (!strcmp(a, "--require-gpu")) require = 1;
    else if (!strcmp(a, "--quiet")) o.quiet = 1;
    else if (v && !strcmp(a, "--suite")) o.suite = v, i++;
    else if (v && !strcmp(a, "--only")) o.only = v, i++;
    else if (v && !strcmp(a, "--out")) o.out_csv = v, i++;
    else if (v && !strcmp(a, "--summary")) o.summary = v, i++;
    else if (v && !strcmp(a, "--reps")) {
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > 100000) {
        fprintf(stderr, "bench_cuda: error: --reps wants an integer in 1..100000, not '%s'\n\n", v);
        usage(stderr);
        return 2;
      }
      o.reps = (int)n, i++;
    } else {
      const int wants_value = !strcmp(a, "--suite") || !strcmp(a, "--only") || !strcmp(a, "--out") ||
                              !strcmp(a, "--summary") || !strcmp(a, "--reps");
      fprintf(stderr, "bench_cuda: error: %s '%s'\n\n", wants_value ? "missing value for" : "unknown option", a);
      usage(stderr);
      return 2;
    }
  }
  char why[256] = "";
  gpu_info g[1];
  if (gpu_query(g, 1, why, (int)sizeof why) <= 0) {
    printf("bench_cuda: no CUDA GPU present (%s): nothing to measure\n", why);
    return require ? 2 : 0;
  }
  return gpu_suite_run(&o);
}
