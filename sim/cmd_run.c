/* sim/cmd_run.c — `moesim run EXPERIMENT.yaml [--set k=v]... [--out DIR] [--trace] [--quiet]`.
 *
 * Loads the experiment (exp.h), applies the overrides, runs its kind once, writes
 * <out>/results.csv atomically (header + one row) and draws the figures the experiment names.
 * Input errors exit 2 before anything is written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exp.h"
#include "util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim run EXPERIMENT.yaml [--set KEY=VALUE]... [--out DIR] [--trace] [--quiet]\n"
          "\n"
          "Runs an experiment: results/<name>/results.csv (one row per point), the figures it\n"
          "names (PNG and SVG, gnuplot), and a summary on stdout.\n"
          "\n"
          "  --set KEY=VALUE  override any key by its dotted path (repeatable); VALUE is YAML,\n"
          "                   e.g. --set parallel.pp=8 --set 'sizes=[8, 16]'\n"
          "  --out DIR        results directory (default results/<name>)\n"
          "  --trace          also write a Chrome trace (trace.json, opens in Perfetto) where the\n"
          "                   kind supports it\n"
          "  --quiet          no summary or progress\n"
          "  -h, --help       this text\n"
          "\n"
          "experiment kinds and their keys (units are in the key names):\n");
  for (int i = 0; exp_kinds[i]; i++) {
    fprintf(f, "\n  kind: %s — %s\n", exp_kinds[i]->name, exp_kinds[i]->summary);
    cfg_print_keys(exp_common_keys, 4, f);
    cfg_print_keys(exp_kinds[i]->keys, 4, f);
    if (exp_kinds[i]->plots) {
      fprintf(f, "    plots:");
      for (int j = 0; exp_kinds[i]->plots[j]; j++) fprintf(f, " %s", exp_kinds[i]->plots[j]);
      fprintf(f, "\n");
    }
  }
}

/* Formats header + row as CSV text. */
static void row_csv(util_buf *b, const res_row *r) {
  for (size_t i = 0; i < r->len; i++) util_buf_printf(b, "%s%s", i ? "," : "", r->cols[i]);
  util_buf_append(b, "\n", 1);
  for (size_t i = 0; i < r->len; i++) util_buf_printf(b, "%s%s", i ? "," : "", r->vals[i]);
  util_buf_append(b, "\n", 1);
}

int cmd_run(int argc, char **argv) {
  const char *exp_path = NULL, *out_dir = NULL;
  int trace = 0, quiet = 0;
  cfg_ctx *ctx = cfg_new();
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      cfg_free(ctx);
      return 0;
    } else if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
      const char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) {
        rc = util_usage_error("--set needs KEY=VALUE");
        break;
      }
      if (cfg_override(ctx, v, "--set") != 0) {
        rc = UTIL_EXIT_USAGE;
        break;
      }
    } else if (strcmp(a, "--out") == 0) {
      if (i + 1 >= argc) {
        rc = util_usage_error("--out needs a directory");
        break;
      }
      out_dir = argv[++i];
    } else if (strcmp(a, "--trace") == 0) {
      trace = 1;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      quiet = 1;
    } else if (a[0] == '-') {
      fprintf(stderr, "moesim run: error: unknown option '%s'\n\n", a);
      usage(stderr);
      rc = UTIL_EXIT_USAGE;
      break;
    } else if (!exp_path) {
      exp_path = a;
    } else {
      rc = util_usage_error("moesim run takes one experiment file (got '%s' and '%s')", exp_path, a);
      break;
    }
  }
  if (rc == 0 && !exp_path) {
    fprintf(stderr, "moesim run: error: no experiment file\n");
    fprintf(stderr, "usage: moesim run EXPERIMENT.yaml [--set KEY=VALUE]... [--out DIR] [--trace] [--quiet]\n");
    rc = UTIL_EXIT_USAGE;
  }
  if (rc != 0) {
    cfg_free(ctx);
    return rc;
  }

  exp_common common;
  const exp_kind *kind;
  void *spec;
  rc = exp_load(ctx, exp_path, &common, &kind, &spec);
  if (rc != 0) {
    cfg_free(ctx);
    return rc;
  }
  if (common.sweep) {
    cfg_error(ctx, common.sweep, "sweeps are not supported by this version of moesim run yet");
    free(spec);
    cfg_free(ctx);
    return UTIL_EXIT_USAGE;
  }
  util_buf dir = {0};
  if (out_dir) util_buf_printf(&dir, "%s", out_dir);
  else util_buf_printf(&dir, "results/%s", common.name);

  exp_run run = {.exp_path = exp_path, .out_dir = dir.data, .point = 0, .quiet = quiet, .trace = trace,
                 .cfg = ctx, .summary = quiet ? NULL : stdout};
  res_row row = {0};
  rc = kind->run(&run, spec, &row);
  if (rc == 0) {
    util_buf csv = {0}, path = {0};
    row_csv(&csv, &row);
    util_buf_printf(&path, "%s/results.csv", dir.data);
    if (util_write_file_atomic(path.data, csv.data, csv.len) != 0) rc = UTIL_EXIT_SYS;
    for (size_t i = 0; rc == 0 && i < common.n_plots; i++) {
      if (exp_draw(common.plots[i], path.data, dir.data, NULL) != 0) {
        rc = UTIL_EXIT_SYS;
        break;
      }
      if (!quiet) printf("figure    %s/%s.png (and .svg)\n", dir.data, common.plots[i]);
    }
    if (rc == 0 && !quiet) printf("results   %s\n", path.data);
    util_buf_free(&csv);
    util_buf_free(&path);
  }
  res_free(&row);
  util_buf_free(&dir);
  free(spec);
  cfg_free(ctx);
  return rc;
}
