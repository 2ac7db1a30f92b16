/* sim/cmd_kernels.c — `moesim kernels`: runs a kernel suite on this machine's CPU (or its CUDA
 * GPU), validating every kernel against the plain-C reference before timing it, and appends the
 * timings to a kernel table (schema in sim/ktable.h). The suites are defined in kernels/suite.c,
 * the timing rules in kernels/harness.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda/gpu.h"
#include "gemm.h"
#include "harness.h"
#include "pool.h"
#include "suite.h"
#include "util.h"

#define KERNELS_DEFAULT_OUT "results/kernels.csv"

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim kernels [--device cpu|cuda] [--suite quick|moe|full] [--threads N]\n"
          "                      [--out F.csv] [--list] [--accum-study]\n"
          "\n"
          "Runs real MoE kernels on this machine. Every kernel variant is first validated against\n"
          "the plain-C reference on the same inputs (tolerances per dtype, stated in\n"
          "kernels/harness.c); one that fails is reported and not timed. A valid one is warmed up and\n"
          "timed call by call (at least 5 repetitions, more for short kernels; caches flushed between\n"
          "calls when its data would fit in them); the median and the minimum, TFLOP/s and GB/s at\n"
          "the median become one kernel-table row, appended to the CSV at once. The hwloc topology,\n"
          "thread binding, CPU and PAPI state are printed and appended to F.csv.meta.\n"
          "\n"
          "options:\n"
          "  --device cpu|cuda   where to run (default cpu). cuda needs a CUDA build and a GPU\n"
          "  --suite NAME        quick: every kernel once on modest shapes (under a minute);\n"
          "                      moe: the DeepSeek-V3 shapes (GEMMs for M in 4..4096 on (K,N) =\n"
          "                      (7168,4096) and (2048,7168), BF16 and FP8; grouped GEMMs with 8, 32\n"
          "                      and 256 experts, contiguous and masked; quantizers, gate, dispatch,\n"
          "                      combine, SwiGLU at V3 sizes; the MoE layer), several minutes;\n"
          "                      full: moe plus every backend and GEMM variant, E5M2. Default quick\n"
          "  --threads N         CPU threads, pinned one per core (default: one per core)\n"
          "  --out F.csv         kernel table to append to (default " KERNELS_DEFAULT_OUT ")\n"
          "  --list              print the cases of the suite and exit\n"
          "  --accum-study       print the FP8 accumulation-precision study (maximum relative error\n"
          "                      against K, with and without promotion every 128) and exit\n"
          "  -h, --help          this text\n");
}

/* Parses a positive int; -1 when not one. */
static int parse_count(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end && v >= 1 && v <= 4096 ? (int)v : -1;
}

static int run_cuda(const char *suite, const char *out) {
  char why[256] = "";
  gpu_info info;
  if (!gpu_built() || gpu_query(&info, 1, why, sizeof why) <= 0) {
    fprintf(stderr, "moesim kernels: error: no CUDA GPU present (%s)\n",
            why[0] ? why : "this binary was built without CUDA");
    return UTIL_EXIT_USAGE;
  }
  (void)suite, (void)out;
  fprintf(stderr, "moesim kernels: error: no CUDA GPU present (the CUDA suite is not in this build)\n");
  return UTIL_EXIT_USAGE;
}

int cmd_kernels(int argc, char **argv) {
  const char *device = "cpu", *suite = "quick", *out = KERNELS_DEFAULT_OUT;
  int threads = 0, list = 0, accum = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_val = i + 1 < argc;
    if (cli_is_help(a)) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--device") == 0 && has_val) {
      device = argv[++i];
    } else if (strcmp(a, "--suite") == 0 && has_val) {
      suite = argv[++i];
    } else if (strcmp(a, "--threads") == 0 && has_val) {
      threads = parse_count(argv[++i]);
      if (threads < 0) {
        fprintf(stderr, "moesim kernels: error: --threads wants a count from 1 to 4096, not '%s'\n\n", argv[i]);
        usage(stderr);
        return UTIL_EXIT_USAGE;
      }
    } else if (strcmp(a, "--out") == 0 && has_val) {
      out = argv[++i];
    } else if (strcmp(a, "--list") == 0) {
      list = 1;
    } else if (strcmp(a, "--accum-study") == 0) {
      accum = 1;
    } else {
      fprintf(stderr, "moesim kernels: error: %s '%s'\n\n",
              a[0] == '-' && !has_val && (strcmp(a, "--device") == 0 || strcmp(a, "--suite") == 0 ||
                                           strcmp(a, "--threads") == 0 || strcmp(a, "--out") == 0)
                  ? "missing value for"
                  : "unknown option",
              a);
      usage(stderr);
      return UTIL_EXIT_USAGE;
    }
  }
  if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
    fprintf(stderr, "moesim kernels: error: --device wants cpu or cuda, not '%s'\n\n", device);
    usage(stderr);
    return UTIL_EXIT_USAGE;
  }
  int ncases = 0;
  ks_spec *cases = ks_suite(suite, &ncases);
  if (!cases) {
    fprintf(stderr, "moesim kernels: error: --suite wants quick, moe or full, not '%s'\n\n", suite);
    usage(stderr);
    return UTIL_EXIT_USAGE;
  }
  if (accum) {
    free(cases);
    return gemm_accum_study(stdout, 0, 0, 1) == 0 ? 0 : UTIL_EXIT_SYS;
  }
  if (strcmp(device, "cuda") == 0) {
    free(cases);
    return run_cuda(suite, out);
  }
  if (list) {
    char line[256];
    for (int i = 0; i < ncases; i++) {
      ks_describe(&cases[i], line, sizeof line);
      printf("%3d  %s\n", i + 1, line);
    }
    free(cases);
    return 0;
  }
  pool *tp = pool_create(threads, 1);
  util_buf cmd = {0};
  for (int i = 0; i < argc; i++) util_buf_printf(&cmd, "%s%s", i ? " " : "moesim ", argv[i]);
  hn_opts o = {.threads = pool_threads(tp), .target_s = 0.25, .out_csv = out, .binding = pool_binding(tp),
               .command = cmd.data};
  hn_session *hs = hn_open(&o);
  if (!hs) {
    util_buf_free(&cmd);
    pool_destroy(tp);
    free(cases);
    return UTIL_EXIT_SYS;
  }
  hn_plan(hs, ncases);
  int write_failed = 0;
  for (int i = 0; i < ncases && !write_failed; i++) write_failed = ks_run_case(hs, tp, &cases[i]) < 0;
  int refused = hn_refused(hs);
  hn_close(hs);
  printf("rows appended to %s\n", out);
  util_buf_free(&cmd);
  pool_destroy(tp);
  free(cases);
  if (write_failed) {
    fprintf(stderr, "moesim kernels: %s: cannot append rows\n", out);
    return UTIL_EXIT_SYS;
  }
  return refused ? UTIL_EXIT_SYS : 0;
}
