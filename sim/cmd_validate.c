/* sim/cmd_validate.c — `moesim validate [NAME...] [--csv]`: runs the validation suites and prints
 * every published reference beside moesim's figure, the error and the tolerance. Exit status 0
 * when every check passes, 1 when any fails, 2 on bad usage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"
#include "val_schedule.h"
#include "val_train.h"
#include "validate.h"
#include "val_deepep.h"
#include "val_infer.h"

/* Each suite's owner adds one line here, above the terminating entry. */
const val_suite val_suites[] = {
    {"deepep", val_deepep, "DeepEP normal kernels on H800: EP8 intranode, EP16/32/64 internode, dispatch and combine"},
    {"schedule", val_schedule, "pipeline bubbles, memory and F&B overlap vs DualPipe's table and the V3 report"},
    {"train", val_train, "DeepSeek-V3 pre-training step on 2048 H800 vs the V3 report (GPU-hours, compute:comm)"},
    {"infer", val_infer, "DeepSeek's V3 serving averages (prefill/decode per node, per user); DeepEP low-latency kernels"},
    {NULL, NULL, NULL},
};
const size_t val_suite_count = UTIL_ARRAY_LEN(val_suites) - 1;

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim validate [NAME...] [--csv] [--list]\n"
          "\n"
          "Runs the validation suites (all, or those named) and prints each published reference\n"
          "beside the simulated figure, the error and the stated tolerance.\n"
          "\n"
          "  --csv    print check,reference,simulated,unit,error_pct,tolerance_pct,pass\n"
          "  --list   list the suites and exit\n"
          "  -h, --help\n"
          "\nsuites:\n");
  for (size_t i = 0; i < val_suite_count; i++) fprintf(f, "  %-12s %s\n", val_suites[i].name, val_suites[i].summary);
  if (val_suite_count == 0) fprintf(f, "  (none yet)\n");
}

static void print_report(const val_report *r, int csv) {
  if (csv) {
    printf("check,reference,simulated,unit,error_pct,tolerance_pct,pass\n");
    for (size_t i = 0; i < r->len; i++) {
      const val_check *c = &r->checks[i];
      printf("%s,%.6g,%.6g,%s,%.2f,%.2f,%s\n", c->name, c->reference, c->simulated, c->unit, val_error_pct(c),
             c->tol_pct, val_pass(c) ? "yes" : "no");
    }
    return;
  }
  printf("%-48s %12s %12s %-8s %8s %6s  %s\n", "check", "reference", "simulated", "unit", "error%", "tol%", "pass");
  for (size_t i = 0; i < r->len; i++) {
    const val_check *c = &r->checks[i];
    printf("%-48s %12.6g %12.6g %-8s %+8.2f %6.2f  %s%s%s\n", c->name, c->reference, c->simulated, c->unit,
           val_error_pct(c), c->tol_pct, val_pass(c) ? "yes" : "NO", c->note[0] ? "  " : "", c->note);
  }
}

int cmd_validate(int argc, char **argv) {
  int csv = 0, nsel = 0;
  const char *sel[64];
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--csv") == 0) {
      csv = 1;
    } else if (strcmp(argv[i], "--list") == 0) {
      for (size_t s = 0; s < val_suite_count; s++) printf("%s\n", val_suites[s].name);
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "moesim validate: error: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return UTIL_EXIT_USAGE;
    } else if (nsel < 64) {
      sel[nsel++] = argv[i];
    }
  }
  for (int k = 0; k < nsel; k++) {
    size_t s = 0;
    while (s < val_suite_count && strcmp(val_suites[s].name, sel[k]) != 0) s++;
    if (s == val_suite_count) {
      fprintf(stderr, "moesim validate: error: unknown suite '%s' (see --list)\n", sel[k]);
      return UTIL_EXIT_USAGE;
    }
  }
  val_report rep = {0};
  int failed_to_run = 0;
  for (size_t s = 0; s < val_suite_count; s++) {
    int chosen = nsel == 0;
    for (int k = 0; k < nsel; k++) chosen |= strcmp(val_suites[s].name, sel[k]) == 0;
    if (chosen && val_suites[s].fn(&rep) != 0) failed_to_run++;
  }
  print_report(&rep, csv);
  size_t fails = 0;
  for (size_t i = 0; i < rep.len; i++) fails += !val_pass(&rep.checks[i]);
  if (!csv) printf("%zu checks, %zu passed, %zu failed\n", rep.len, rep.len - fails, fails);
  val_free(&rep);
  return (fails || failed_to_run) ? 1 : 0;
}
