/* tests/bench/bench_train.c — how fast the training simulator runs the DeepSeek-V3 step on its
 * 2048-GPU cluster (experiments/v3-pretrain.yaml) on one core, and a sweep-like loop of plans over
 * the same path `moesim run` takes (a fresh config context with --set overrides per plan).
 *
 * Figures: the cold run's wall time (routing generated, the disk cache off; target from issue 7:
 * under 10 s), warm reruns (the routing of the last plan kept in-process), and per
 * plan of the loop its step time as a ratio to the paper's plan (DualPipe, 20 comm SMs) measured in
 * the same run, with the wall time each plan took. Run from the repository root (make bench). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exp.h"
#include "util.h"

#define V3 "experiments/v3-pretrain.yaml"

/* Runs V3 with overrides; returns the exit code, the wall time and two result columns. */
static int run_plan(const char *const *sets, int n_sets, double *wall_s, double *step_s, double *mfu) {
  cfg_ctx *ctx = cfg_new();
  int rc = 0;
  for (int i = 0; i < n_sets && rc == 0; i++) rc = cfg_override(ctx, sets[i], "bench") ? 2 : 0;
  exp_common common;
  const exp_kind *kind;
  void *spec = NULL;
  res_row row = {0};
  uint64_t t0 = util_now_ns();
  if (rc == 0) rc = exp_load(ctx, V3, &common, &kind, &spec);
  if (rc == 0) {
    exp_run run = {.exp_path = V3, .out_dir = ".", .quiet = 1, .cfg = ctx};
    rc = kind->run(&run, spec, &row);
  }
  *wall_s = (double)(util_now_ns() - t0) * 1e-9;
  *step_s = rc == 0 && res_get(&row, "step_s") ? strtod(res_get(&row, "step_s"), NULL) : 0;
  *mfu = rc == 0 && res_get(&row, "mfu") ? strtod(res_get(&row, "mfu"), NULL) : 0;
  res_free(&row);
  free(spec);
  cfg_free(ctx);
  return rc;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  double wall, step, mfu;
  setenv("MOESIM_CACHE", "off", 1); /* the cold run generates its routing */
  printf("DeepSeek-V3 step, 2048 H800, PP16 x DP128, EP64, DualPipe, 20 comm SMs (%s)\n", V3);
  if (run_plan(NULL, 0, &wall, &step, &mfu) != 0) {
    fprintf(stderr, "bench_train: %s did not run (run from the repository root)\n", V3);
    return 1;
  }
  double base = step;
  printf("  cold run   %6.2f s wall (routing generated)   step %.3f s, MFU %.1f%%   target < 10 s: %s\n", wall, step,
         100 * mfu, wall < 10 ? "met" : "MISSED");
  double w[3];
  for (int i = 0; i < 3; i++) run_plan(NULL, 0, &w[i], &step, &mfu);
  qsort(w, 3, sizeof w[0], cmp);
  printf("  warm runs  %6.2f s wall median of 3 (routing kept), %.2fx the cold run\n\n", w[1], w[1] / wall);

  /* schedule x comm_sms, and DualPipe without overlap (comm_sms 0 = communication offloaded) */
  static const char *const schedules[] = {"1f1b", "zb1p", "dualpipe", "dualpipev", "dualpipe"};
  static const char *const overlap[] = {"true", "true", "true", "true", "false"};
  static const char *const sms[] = {"0", "20", "32"};
  printf("  sweep-like loop: schedule x comm_sms, step relative to the paper's plan (%.3f s)\n", base);
  printf("  %-12s %8s %8s %10s %8s %8s %8s\n", "schedule", "overlap", "comm_sms", "step_s", "ratio", "mfu", "wall_s");
  double total = 0;
  int n = 0, ok = 0;
  for (size_t a = 0; a < sizeof schedules / sizeof schedules[0]; a++)
    for (size_t b = 0; b < sizeof sms / sizeof sms[0]; b++) {
      char s1[64], s2[64], s3[64];
      snprintf(s1, sizeof s1, "schedule=%s", schedules[a]);
      snprintf(s2, sizeof s2, "comm_sms=%s", sms[b]);
      snprintf(s3, sizeof s3, "overlap=%s", overlap[a]);
      const char *sets[3] = {s1, s2, s3};
      int rc = run_plan(sets, 3, &wall, &step, &mfu);
      total += wall;
      n++;
      if (rc == 0) {
        ok++;
        printf("  %-12s %8s %8s %10.3f %8.3f %7.1f%% %8.2f\n", schedules[a], overlap[a], sms[b], step, step / base,
               100 * mfu, wall);
      } else {
        printf("  %-12s %8s %8s %10s %8s %8s %8.2f  (exit %d: plan rejected)\n", schedules[a], overlap[a], sms[b], "-",
               "-", "-", wall, rc);
      }
    }
  printf("  %d plans (%d ran) in %.1f s: %.2f s per plan; 100 plans would take %.0f s (issue 7 target: < 300 s)\n", n,
         ok, total, total / n, 100 * total / n);
  return 0;
}
