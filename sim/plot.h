/* sim/plot.h — figures from results tables: `moesim run` draws the figures an experiment names
 * in `plots:` after its points ran, and `moesim plot RESULTS.csv --kind K` redraws one.
 *
 * A figure is named by a spec "KIND[:X[:Y[:SERIES]]]" — e.g. `throughput_vs:comm_sms`,
 * `breakdown::compute_us+comm_us`, `pareto:time_days:cost_usd:option` — where empty or missing
 * fields take the kind's defaults (plot_print_kinds documents them). Y may name several columns
 * joined by '+'; SERIES may too (the series is then their values together).
 *
 * moesim reads the CSV (rows whose `status` is not ok are left out), arranges what the figure
 * needs into <out>/<figure>.dat (tab-separated, documented at the top of each plots/<script>.gp)
 * and runs gnuplot on plots/<script>.gp twice: <out>/<figure>.png (pngcairo) and .svg. <figure>
 * is the spec with ':' and '+' turned into '_' and empty fields dropped. */
#ifndef MOESIM_PLOT_H
#define MOESIM_PLOT_H

#include <stddef.h>
#include <stdio.h>

/* A CSV file read whole: header and rows of text cells. */
typedef struct plot_table {
  size_t n_cols;  /* columns in the header */
  size_t n_rows;  /* data rows */
  char **cols;    /* header names */
  char **cells;   /* n_rows * n_cols cells, row-major (missing trailing cells are "") */
} plot_table;

/* Reads a CSV (RFC 4180 quotes allowed). Returns 0; 2 when it is missing or not a table (message
 * "path:line: error: ..." printed); 1 when reading it failed otherwise. */
int plot_table_read(const char *path, plot_table *t);
void plot_table_free(plot_table *t);
/* Column index by name, or -1. */
int plot_table_col(const plot_table *t, const char *name);

/* What a drawing may be told beyond the spec. */
typedef struct plot_opts {
  const char *title;         /* figure title (NULL: the kind's) */
  char *const *ceilings;     /* roofline ceilings "NAME:TFLOPS:GBPS" (peak TFLOP/s, GB/s) */
  size_t n_ceilings;         /* how many */
  int quiet;                 /* do not print the paths drawn */
} plot_opts;

/* Draws figure `spec` from `csv` into out_dir (created if missing). Returns 0; 2 when the spec or
 * the table does not fit (unknown kind, missing column, nothing to draw; message printed); 1 when
 * gnuplot or the system failed. */
int plot_draw(const char *spec, const char *csv, const char *out_dir, const plot_opts *o);

/* The file name (without extension) `spec` draws to; malloc'd. */
char *plot_figure_name(const char *spec);

/* 1 if `spec` names a known figure kind. */
int plot_kind_known(const char *spec);

/* Documents the kinds, their defaults and their inputs (for --help). */
void plot_print_kinds(FILE *f);

#endif
