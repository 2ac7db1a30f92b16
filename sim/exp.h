/* sim/exp.h — experiments: a YAML file with a `name`, a `kind` that picks the simulator that runs
 * it, the kind's own keys, an optional `sweep:` and the `plots:` to draw. `moesim run` loads it,
 * applies --set overrides (and, for sweeps, each point's overrides), runs the kind's `run` once
 * per point, and writes one results row per point to results/<name>/results.csv.
 *
 * A kind is a table entry: its key table (documented in `moesim run --help`), the size and
 * defaults of its spec struct, and a run function that fills a result row. Kinds register in
 * exp.c's table; train/prefill/decode/collective kinds are added by the simulators that own them. */
#ifndef MOESIM_EXP_H
#define MOESIM_EXP_H

#include <stddef.h>
#include <stdio.h>

#include "cfg.h"

/* One results row: ordered (column, value) pairs; values are formatted text. */
typedef struct res_row {
  char **cols;  /* column names, in insertion order */
  char **vals;  /* values */
  size_t len;   /* columns used */
  size_t cap;   /* columns allocated */
} res_row;

void res_set(res_row *r, const char *col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* %.6g-style for doubles, exact for integers. */
void res_set_f(res_row *r, const char *col, double v);
void res_set_i(res_row *r, const char *col, long long v);
const char *res_get(const res_row *r, const char *col);
void res_free(res_row *r);

/* What a kind's run function receives besides its spec. */
typedef struct exp_run {
  const char *exp_path;  /* the experiment file */
  const char *out_dir;   /* results directory (results/<name> unless --out) */
  int point;             /* sweep point index (0 for a single run) */
  int quiet;             /* no progress or summary on stderr/stdout */
  int trace;             /* write a Chrome trace JSON (trace.json) if the kind supports it */
  cfg_ctx *cfg;          /* the loading context (owns the spec's strings and lists) */
  FILE *summary;         /* where to print the human summary (stdout, or NULL) */
} exp_run;

typedef struct exp_kind {
  const char *name;              /* value of `kind:` */
  const char *summary;           /* one line for --help */
  const cfg_key *keys;           /* the kind's keys (besides the common ones) */
  size_t spec_size;              /* sizeof its spec struct */
  void (*init)(void *spec);      /* defaults, before binding */
  /* Runs one point; fills `row`. Returns 0, 2 for bad input (message printed), 1 for failure. */
  int (*run)(const exp_run *run, void *spec, res_row *row);
  /* Figures this kind can draw (plots/<name>.gp), NULL-terminated. */
  const char *const *plots;
  /* Optional: called once after every point has run (a sweep or a single run) and before the
   * figures are drawn, with the results table, the results directory and the summary stream (or
   * NULL when quiet), for what needs every row (e.g. a Pareto front). Returns 0, 2 (bad input,
   * message printed) or 1. */
  int (*finish)(const char *results_csv, const char *out_dir, FILE *summary);
} exp_kind;

/* Keys every experiment has. */
typedef struct exp_common {
  char *name;             /* results go to results/<name>/ */
  char *kind;             /* the exp_kind */
  char *description;      /* free text */
  const cfg_node *sweep;  /* sweep: {grid: {...}, zip: {...}} (expanded by the sweep engine) */
  char **plots;           /* figures to draw after the run */
  size_t n_plots;
} exp_common;

extern const cfg_key exp_common_keys[];

const exp_kind *exp_kind_find(const char *name);
/* All registered kinds, NULL-terminated. */
extern const exp_kind *const exp_kinds[];

/* Loads an experiment file: reads `kind`, binds common + kind keys (with the overrides already
 * registered in ctx), checks every override was used. On success *kind and a malloc'd, bound spec
 * are returned (free with free(); strings belong to ctx). Returns 0, or 2 after printing an error. */
int exp_load(cfg_ctx *ctx, const char *path, exp_common *common, const exp_kind **kind, void **spec);

/* Directory holding the gnuplot scripts (MOESIM_PLOTS, else found next to the executable, else
 * ./plots). */
const char *exp_plots_dir(void);

#endif
