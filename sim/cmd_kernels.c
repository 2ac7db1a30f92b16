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
#include "kmeta.h"
#include "peak.h"
#include "pool.h"
#include "suite.h"
#include "util.h"

#define KERNELS_DEFAULT_OUT "results/kernels.csv"

static const char *const synopsis =
    "usage: moesim kernels [--device cpu|cuda] [--suite smoke|quick|moe|full] [--threads N]\n"
    "                      [--out F.csv] [--list] [--accum-study] [--only FAMILIES]\n";

/* The synopsis on stderr after a usage error. */
static int usage_error(void) {
  fprintf(stderr, "%s'moesim kernels --help' documents every option.\n", synopsis);
  return UTIL_EXIT_USAGE;
}

static void usage(FILE *f) {
  fputs(synopsis, f);
  fprintf(f,
          "\n"
          "Runs real MoE kernels on this machine. Every kernel variant is first validated against\n"
          "the plain-C reference on the same inputs (tolerances per dtype, stated in\n"
          "kernels/harness.c); one that fails is reported and not timed. A valid one is warmed up and\n"
          "timed call by call (at least 5 repetitions, more for short kernels; caches flushed between\n"
          "calls when its data would fit in them); the median and the minimum, TFLOP/s and GB/s at\n"
          "the median become one kernel-table row, appended to the CSV at once. The hwloc topology,\n"
          "thread binding, CPU, PAPI state and this CPU's measured peaks (BF16 dot products, FP32 FMA;\n"
          "the denominators of the rows' efficiencies when the simulator projects them onto a GPU)\n"
          "are printed and appended to F.csv.meta.\n"
          "\n"
          "options:\n"
          "  --device cpu|cuda   where to run (default cpu). cuda needs a CUDA build and a GPU;\n"
          "                      without one: \"no CUDA GPU present (<reason>)\", exit 2\n"
          "  --suite NAME        smoke: one small case of every kernel (seconds; the tests' run);\n"
          "                      quick: every kernel once on modest shapes (under a minute);\n"
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
          "  --only FAMILIES     --device cuda only: comma-separated families to run (below)\n"
          "  -h, --help          this text\n"
          "\n"
          "With --device cuda the suite names are the CUDA suite's (--threads does not apply):\n");
  gpu_suite_help(f);
}

/* Parses a positive int; -1 when not one. */
static int parse_count(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end && v >= 1 && v <= 4096 ? (int)v : -1;
}

/* --device cuda: the CUDA suite of kernels/cuda (gpu.h) when this binary has it and a GPU is
 * visible; otherwise the error the command documents. */
static int run_cuda(const char *suite, const char *only, const char *out) {
  char why[256] = "";
  gpu_info info;
  if (!gpu_built() || gpu_query(&info, 1, why, sizeof why) <= 0) {
    fprintf(stderr, "moesim kernels: error: no CUDA GPU present (%s)\n",
            why[0] ? why : "this binary was built without CUDA");
    return UTIL_EXIT_USAGE;
  }
  gpu_suite_opts o = {0};
  o.suite = suite, o.only = only, o.out_csv = out;
  return gpu_suite_run(&o);
}

int cmd_kernels(int argc, char **argv) {
  const char *device = "cpu", *suite = "quick", *out = KERNELS_DEFAULT_OUT, *only = NULL;
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
        return usage_error();
      }
    } else if (strcmp(a, "--only") == 0 && has_val) {
      only = argv[++i];
    } else if (strcmp(a, "--out") == 0 && has_val) {
      out = argv[++i];
    } else if (strcmp(a, "--list") == 0) {
      list = 1;
    } else if (strcmp(a, "--accum-study") == 0) {
      accum = 1;
    } else {
      fprintf(stderr, "moesim kernels: error: %s '%s'\n\n",
              a[0] == '-' && !has_val && (strcmp(a, "--device") == 0 || strcmp(a, "--suite") == 0 ||
                                           strcmp(a, "--threads") == 0 || strcmp(a, "--out") == 0 ||
                                           strcmp(a, "--only") == 0)
                  ? "missing value for"
                  : "unknown option",
              a);
      return usage_error();
    }
  }
  if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
    fprintf(stderr, "moesim kernels: error: --device wants cpu or cuda, not '%s'\n\n", device);
    return usage_error();
  }
  if (only && strcmp(device, "cuda") != 0) {
    fprintf(stderr, "moesim kernels: error: --only applies to --device cuda\n\n");
    return usage_error();
  }
  if (strcmp(device, "cuda") == 0 && !accum) return run_cuda(suite, only, out);
  int ncases = 0;
  ks_spec *cases = ks_suite(suite, &ncases);
  if (!cases) {
    fprintf(stderr, "moesim kernels: error: --suite wants smoke, quick, moe or full, not '%s'\n\n", suite);
    return usage_error();
  }
  if (accum) {
    free(cases);
    return gemm_accum_study(stdout, 0, 0, 1) == 0 ? 0 : UTIL_EXIT_SYS;
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
  hn_opts o = {.threads = pool_threads(tp), .target_s = strcmp(suite, "smoke") == 0 ? 0.02 : 0.25, .out_csv = out, .binding = pool_binding(tp),
               .command = cmd.data};
  hn_session *hs = hn_open(&o);
  if (!hs) {
    util_buf_free(&cmd);
    pool_destroy(tp);
    free(cases);
    return UTIL_EXIT_SYS;
  }
  hn_plan(hs, ncases);
  /* The peaks the rows' efficiencies are taken against, on the same threads (sim/kmeta.h),
   * measured before and after the cases: the better of the two, since a machine shared with
   * other work can only make a peak look lower. */
  const char *bf16_how = "", *fp32_how = "";
  double bf16 = peak_bf16_tflops(tp, &bf16_how), fp32 = peak_fp32_tflops(tp, &fp32_how);
  int write_failed = 0;
  for (int i = 0; i < ncases && !write_failed; i++) write_failed = ks_run_case(hs, tp, &cases[i]) < 0;
  double bf16_after = peak_bf16_tflops(tp, NULL), fp32_after = peak_fp32_tflops(tp, NULL);
  util_buf peaks = {0};
  kmeta_format_cpu_peaks(&peaks, bf16 > bf16_after ? bf16 : bf16_after, bf16_how, fp32 > fp32_after ? fp32 : fp32_after,
                         fp32_how);
  hn_note(hs, peaks.data);
  int refused = hn_refused(hs);
  hn_close(hs);
  printf("rows appended to %s\n", out);
  util_buf_free(&peaks);
  util_buf_free(&cmd);
  pool_destroy(tp);
  free(cases);
  if (write_failed) {
    fprintf(stderr, "moesim kernels: %s: cannot append rows\n", out);
    return UTIL_EXIT_SYS;
  }
  return refused ? UTIL_EXIT_SYS : 0;
}
