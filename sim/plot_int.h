/* sim/plot_int.h — what plot.c (reading, drawing) shares with plot_kinds.c (one function per
 * figure kind that arranges the data its gnuplot script reads). Internal to the plot module. */
#ifndef MOESIM_PLOT_INT_H
#define MOESIM_PLOT_INT_H

#include "plot.h"
#include "util.h"

/* What a figure is being made from. */
typedef struct plot_ctx {
  const plot_table *t;  /* the results */
  const char *csv;      /* its path (messages) */
  size_t *rows;         /* rows drawn: status ok (or every row without a status column) */
  size_t n_rows;        /* how many */
  int swept_first;      /* first swept column (after `point`), or -1 */
  int swept_end;        /* one past the last swept column (the `status` column) */
  char *f[4];           /* spec fields: kind, x, y, series (NULL when empty) */
  util_buf data;        /* the .dat text */
  util_buf vars;        /* the kind's gnuplot -e assignments */
  const plot_opts *o;   /* options */
  char *title;          /* default title (malloc'd, or NULL) */
  util_buf table;       /* a text table the kind prints beside the figure (unless quiet), or empty */
} plot_ctx;

/* A figure kind. */
typedef struct plot_kind {
  const char *name;     /* first field of a spec */
  const char *script;   /* plots/<script>.gp */
  const char *summary;  /* one line */
  const char *help;     /* defaults and inputs, indented lines */
  /* Fills pc->data, pc->vars (and pc->title); 0, or -1 after printing why. */
  int (*prepare)(plot_ctx *pc);
} plot_kind;

/* Appends the gnuplot assignment name='val'; (a quote in val is doubled, as gnuplot reads it). */
void plot_var_s(util_buf *b, const char *name, const char *val);

extern const plot_kind plot_kinds[];
extern const size_t plot_n_kinds;

#endif
