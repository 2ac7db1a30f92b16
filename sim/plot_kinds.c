/* sim/plot_kinds.c — the figure kinds: for each, which columns it takes by default and how it
 * arranges them for its gnuplot script (the data layouts are documented in plots/<script>.gp). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exp.h"
#include "plot_int.h"

#define PLOT_MAX_COLS 16 /* phases, series columns, y columns of one figure */

static const char *cell(const plot_ctx *pc, size_t row, int col) { return pc->t->cells[row * pc->t->n_cols + (size_t)col]; }

static int num(const char *s, double *v) {
  char *end;
  if (!s || !*s) return 0;
  *v = strtod(s, &end);
  return *end == '\0' && isfinite(*v);
}


static void var_g(util_buf *b, const char *name, double v) { util_buf_printf(b, "%s=%.17g; ", name, v); }

/* Text safe inside a tab-separated, quoted data field. */
static void data_text(util_buf *b, const char *s) {
  for (; *s; s++) util_buf_append(b, *s == '\t' || *s == '"' || *s == '\n' ? "'" : s, 1);
}

static int col_or_die(plot_ctx *pc, const char *name, const char *role) {
  int c = plot_table_col(pc->t, name);
  if (c >= 0) return c;
  util_buf b = {0};
  for (size_t i = 0; i < pc->t->n_cols; i++) util_buf_printf(&b, "%s%s", i ? ", " : "", pc->t->cols[i]);
  fprintf(stderr, "moesim plot: error: %s: no column '%s' for the %s of %s (columns: %s)\n", pc->csv, name, role,
          pc->f[0], b.data ? b.data : "none");
  util_buf_free(&b);
  return -1;
}

/* The first column named in `names`, else the first whose name ends in (or, with '*' first,
 * contains) one of `patterns`; -1 if none. */
static int default_col(const plot_ctx *pc, const char *const *names, const char *const *patterns) {
  for (int i = 0; names && names[i]; i++) {
    int c = plot_table_col(pc->t, names[i]);
    if (c >= 0) return c;
  }
  for (int i = 0; patterns && patterns[i]; i++)
    for (size_t c = 0; c < pc->t->n_cols; c++) {
      const char *n = pc->t->cols[c], *p = patterns[i];
      size_t ln = strlen(n), lp = strlen(p);
      if (p[0] == '*' ? strstr(n, p + 1) != NULL : (ln >= lp && strcmp(n + ln - lp, p) == 0)) return (int)c;
    }
  return -1;
}

static int no_default(const plot_ctx *pc, const char *role, const char *how) {
  fprintf(stderr, "moesim plot: error: %s: no %s column for %s; name one (%s)\n", pc->csv, role, pc->f[0], how);
  return -1;
}

/* Splits a '+'-joined column list into indices; n set; -1 on an unknown column. */
static int col_list(plot_ctx *pc, const char *list, const char *role, int *out, size_t max, size_t *n) {
  *n = 0;
  char *copy = util_xstrdup(list), *save = NULL;
  for (char *tok = strtok_r(copy, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
    int c = col_or_die(pc, tok, role);
    if (c < 0 || *n == max) {
      if (c >= 0) fprintf(stderr, "moesim plot: error: at most %zu %s columns\n", max, role);
      free(copy);
      return -1;
    }
    out[(*n)++] = c;
  }
  free(copy);
  return 0;
}

/* 1 if column c holds the same text in every row drawn. */
static int constant_col(const plot_ctx *pc, int c) {
  for (size_t i = 1; i < pc->n_rows; i++)
    if (strcmp(cell(pc, pc->rows[i], c), cell(pc, pc->rows[0], c)) != 0) return 0;
  return 1;
}

/* Series columns: the spec's, else every swept column not in `except` that varies among the rows
 * drawn. */
static int series_cols(plot_ctx *pc, const int *except, size_t n_except, int *out, size_t max, size_t *n) {
  if (pc->f[3]) return col_list(pc, pc->f[3], "series", out, max, n);
  *n = 0;
  for (int c = pc->swept_first; c >= 0 && c < pc->swept_end && *n < max; c++) {
    int skip = constant_col(pc, c);
    for (size_t e = 0; e < n_except; e++) skip |= except[e] == c;
    if (!skip) out[(*n)++] = c;
  }
  return 0;
}

/* "col=value col2=value2" of a row's series columns ("all" when none). */
static char *series_label(const plot_ctx *pc, size_t row, const int *cols, size_t n) {
  util_buf b = {0};
  for (size_t i = 0; i < n; i++) util_buf_printf(&b, "%s%s=%s", i ? " " : "", pc->t->cols[cols[i]], cell(pc, row, cols[i]));
  if (!b.data) util_buf_printf(&b, "all");
  return b.data;
}

/* Distinct strings in first-appearance order. */
typedef struct plot_names {
  char **v;   /* the strings (owned) */
  size_t n;   /* count */
} plot_names;

static size_t names_add(plot_names *s, char *str) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i], str) == 0) {
      free(str);
      return i;
    }
  s->v = util_xrealloc(s->v, (s->n + 1) * sizeof *s->v);
  s->v[s->n] = str;
  return s->n++;
}

static void names_free(plot_names *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

typedef struct plot_xy {
  double x, y;      /* position */
  size_t row;       /* table row */
  size_t series;    /* series number */
} plot_xy;

static int cmp_xy(const void *a, const void *b) {
  const plot_xy *p = a, *q = b;
  if (p->series != q->series) return p->series < q->series ? -1 : 1;
  if (p->x != q->x) return p->x < q->x ? -1 : 1;
  return p->row < q->row ? -1 : p->row > q->row;
}

static const char *unit_label(const char *col) {
  size_t n = strlen(col);
  if (n > 3 && strcmp(col + n - 3, "_us") == 0) return "time (us)";
  if (n > 3 && strcmp(col + n - 3, "_ms") == 0) return "time (ms)";
  if (n > 2 && strcmp(col + n - 2, "_s") == 0) return "time (s)";
  return col;
}


/* The x column: the spec's, else the first of `names`, else the first swept column. */
static int x_col(plot_ctx *pc, const char *const *names) {
  if (pc->f[1]) return col_or_die(pc, pc->f[1], "x axis");
  int c = default_col(pc, names, NULL);
  if (c >= 0) return c;
  if (pc->swept_first >= 0 && pc->swept_first < pc->swept_end) return pc->swept_first;
  return no_default(pc, "x", "KIND:COLUMN, or --x COLUMN");
}

static int nothing(const plot_ctx *pc, const char *what) {
  fprintf(stderr, "moesim plot: error: %s: nothing to draw for %s: %s\n", pc->csv, pc->f[0], what);
  return -1;
}

static void set_title(plot_ctx *pc, const char *a, const char *mid, const char *b) {
  util_buf t = {0};
  util_buf_printf(&t, "%s%s%s", a, mid, b);
  pc->title = t.data;
}

/* ---------------------------------------------------------------- throughput_vs, step_time_vs */

static int prep_vs(plot_ctx *pc, int x, int y) {
  int ser[PLOT_MAX_COLS];
  size_t ns;
  if (series_cols(pc, &x, 1, ser, PLOT_MAX_COLS, &ns) != 0) return -1;
  int categorical = 0;
  double v;
  for (size_t i = 0; i < pc->n_rows; i++) categorical |= !num(cell(pc, pc->rows[i], x), &v);
  plot_names cats = {0}, sers = {0};
  plot_xy *pts = util_xcalloc(pc->n_rows + 1, sizeof *pts);
  size_t np = 0;
  for (size_t i = 0; i < pc->n_rows; i++) {
    size_t r = pc->rows[i];
    double xv = 0, yv;
    if (!num(cell(pc, r, y), &yv)) continue;
    if (categorical) xv = (double)names_add(&cats, util_xstrdup(cell(pc, r, x)));
    else num(cell(pc, r, x), &xv);
    pts[np++] = (plot_xy){xv, yv, r, names_add(&sers, series_label(pc, r, ser, ns))};
  }
  int rc = 0;
  if (np == 0) {
    rc = nothing(pc, "no row with a number in the y column");
  } else {
    qsort(pts, np, sizeof *pts, cmp_xy);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < np; i++) {
      if (i > 0 && pts[i].series != pts[i - 1].series) util_buf_printf(&pc->data, "\n\n");
      if (i == 0 || pts[i].series != pts[i - 1].series) {
        util_buf_printf(&pc->data, "\"");
        data_text(&pc->data, sers.v[pts[i].series]);
        util_buf_printf(&pc->data, "\"\t%s\txtic\n", pc->t->cols[y]);
      }
      util_buf_printf(&pc->data, "%.10g\t%.10g\t", pts[i].x, pts[i].y);
      data_text(&pc->data, cell(pc, pts[i].row, x));
      util_buf_printf(&pc->data, "\n");
      if (pts[i].x < lo) lo = pts[i].x;
      if (pts[i].x > hi) hi = pts[i].x;
    }
    util_buf_printf(&pc->vars, "nseries=%zu; categorical=%d; logx=%d; ", sers.n, categorical,
                    !categorical && lo > 0 && hi / lo >= 8);
    plot_var_s(&pc->vars, "xlabel", pc->t->cols[x]);
    plot_var_s(&pc->vars, "ylabel", pc->t->cols[y]);
    set_title(pc, pc->t->cols[y], " vs ", pc->t->cols[x]);
  }
  free(pts);
  names_free(&cats);
  names_free(&sers);
  return rc;
}

static int prep_throughput(plot_ctx *pc) {
  static const char *const names[] = {"tokens_per_s", "throughput_tokens_per_s", "tokens_per_s_per_gpu", NULL};
  static const char *const pats[] = {"*tokens_per_s", "_per_s", NULL};
  int x = x_col(pc, NULL);
  if (x < 0) return -1;
  int y = pc->f[2] ? col_or_die(pc, pc->f[2], "y axis") : default_col(pc, names, pats);
  if (y < 0) return pc->f[2] ? -1 : no_default(pc, "throughput", "throughput_vs:X:COLUMN, or --y COLUMN");
  return prep_vs(pc, x, y);
}

static int prep_step_time(plot_ctx *pc) {
  static const char *const names[] = {"step_time_s", "step_time_ms", "step_time_us", "layer_us", "time_us", NULL};
  static const char *const pats[] = {"*step_time", "_time_s", "_time_ms", "_time_us", NULL};
  int x = x_col(pc, NULL);
  if (x < 0) return -1;
  int y = pc->f[2] ? col_or_die(pc, pc->f[2], "y axis") : default_col(pc, names, pats);
  if (y < 0) return pc->f[2] ? -1 : no_default(pc, "step time", "step_time_vs:X:COLUMN, or --y COLUMN");
  return prep_vs(pc, x, y);
}

/* ---------------------------------------------------------------- breakdown */

static int prep_breakdown(plot_ctx *pc) {
  static const char *const trio[] = {"dispatch_us", "experts_us", "combine_us"};
  int ph[PLOT_MAX_COLS], lab[PLOT_MAX_COLS];
  size_t nph = 0, nl = 0;
  if (pc->f[2]) {
    if (col_list(pc, pc->f[2], "phase", ph, PLOT_MAX_COLS, &nph) != 0) return -1;
  } else {
    for (size_t i = 0; i < 3; i++)
      if ((ph[nph++] = plot_table_col(pc->t, trio[i])) < 0)
        return no_default(pc, "phase", "breakdown::PHASE+PHASE..., or --y PHASE+PHASE...");
  }
  if (pc->f[1]) {
    if (col_list(pc, pc->f[1], "label", lab, PLOT_MAX_COLS, &nl) != 0) return -1;
  } else {
    for (int c = pc->swept_first; c >= 0 && c < pc->swept_end && nl < PLOT_MAX_COLS; c++)
      if (!constant_col(pc, c)) lab[nl++] = c;
    if (nl == 0) lab[nl++] = pc->swept_first >= 0 && pc->swept_first < pc->swept_end ? pc->swept_first : 0;
  }
  util_buf names = {0}, xl = {0};
  util_buf_printf(&pc->data, "label");
  for (size_t i = 0; i < nph; i++) {
    util_buf_printf(&pc->data, "\t%s", pc->t->cols[ph[i]]);
    util_buf_printf(&names, "%s%s", i ? " " : "", pc->t->cols[ph[i]]);
  }
  for (size_t i = 0; i < nl; i++) util_buf_printf(&xl, "%s%s", i ? " / " : "", pc->t->cols[lab[i]]);
  util_buf_printf(&pc->data, "\n");
  size_t drawn = 0;
  for (size_t i = 0; i < pc->n_rows; i++) {
    size_t r = pc->rows[i];
    double v;
    int ok = 1;
    for (size_t p = 0; p < nph; p++) ok &= num(cell(pc, r, ph[p]), &v);
    if (!ok) continue;
    for (size_t l = 0; l < nl; l++) {
      if (l) util_buf_printf(&pc->data, " / ");
      data_text(&pc->data, cell(pc, r, lab[l]));
    }
    for (size_t p = 0; p < nph; p++) util_buf_printf(&pc->data, "\t%s", cell(pc, r, ph[p]));
    util_buf_printf(&pc->data, "\n");
    drawn++;
  }
  plot_var_s(&pc->vars, "phases", names.data);
  plot_var_s(&pc->vars, "sep", "tab");
  plot_var_s(&pc->vars, "xlabel", xl.data);
  plot_var_s(&pc->vars, "ylabel", unit_label(pc->t->cols[ph[0]]));
  util_buf_printf(&pc->vars, "label=1; rotate=%d; ", drawn > 4);
  util_buf_free(&names);
  util_buf_free(&xl);
  set_title(pc, "Time per phase", "", "");
  return drawn ? 0 : nothing(pc, "no row with numbers in every phase column");
}

/* ---------------------------------------------------------------- a2a_bw */

/* Appends DeepEP's published dispatch and combine points (plots/data/deepep_normal.csv) as two
 * blocks; returns how many blocks were added (0 when the file is missing or unreadable). */
static size_t ref_blocks(plot_ctx *pc) {
  util_buf path = {0};
  util_buf_printf(&path, "%s/data/deepep_normal.csv", exp_plots_dir());
  plot_table ref;
  size_t added = 0;
  if (access(path.data, R_OK) == 0 && plot_table_read(path.data, &ref) == 0) {
    static const char *const what[2] = {"dispatch_gbyte_s", "combine_gbyte_s"};
    static const char *const title[2] = {"DeepEP dispatch, H800 (published)", "DeepEP combine, H800 (published)"};
    int ep = plot_table_col(&ref, "ep");
    for (int w = 0; w < 2 && ep >= 0; w++) {
      int c = plot_table_col(&ref, what[w]);
      if (c < 0) continue;
      util_buf_printf(&pc->data, "\n\n\"%s\"\tgbyte_s\n", title[w]);
      for (size_t r = 0; r < ref.n_rows; r++)
        util_buf_printf(&pc->data, "%s\t%s\n", ref.cells[r * ref.n_cols + (size_t)ep], ref.cells[r * ref.n_cols + (size_t)c]);
      added++;
    }
    plot_table_free(&ref);
  }
  util_buf_free(&path);
  return added;
}

static int prep_a2a(plot_ctx *pc) {
  static const char *const xnames[] = {"ep", "ep_size", "parallel.ep", "gpus", NULL};
  int x = x_col(pc, xnames);
  if (x < 0) return -1;
  int ys[PLOT_MAX_COLS], ser[PLOT_MAX_COLS];
  size_t ny = 0, ns;
  if (pc->f[2]) {
    if (col_list(pc, pc->f[2], "y axis", ys, PLOT_MAX_COLS, &ny) != 0) return -1;
  } else {
    for (size_t c = 0; c < pc->t->n_cols && ny < PLOT_MAX_COLS; c++) {
      const char *n = pc->t->cols[c];
      size_t l = strlen(n);
      if ((int)c != x && ((l > 8 && strcmp(n + l - 8, "_gbyte_s") == 0) || (l > 5 && strcmp(n + l - 5, "_gbps") == 0)))
        ys[ny++] = (int)c;
    }
    if (ny == 0) return no_default(pc, "bandwidth (GB/s)", "a2a_bw:X:COL+COL, or --y COL+COL");
  }
  if (series_cols(pc, &x, 1, ser, PLOT_MAX_COLS, &ns) != 0) return -1;
  plot_names sers = {0};
  plot_xy *pts = util_xcalloc(pc->n_rows + 1, sizeof *pts);
  size_t np = 0;
  for (size_t i = 0; i < pc->n_rows; i++) {
    double xv;
    if (!num(cell(pc, pc->rows[i], x), &xv)) continue;
    pts[np++] = (plot_xy){xv, 0, pc->rows[i], names_add(&sers, series_label(pc, pc->rows[i], ser, ns))};
  }
  qsort(pts, np, sizeof *pts, cmp_xy);
  size_t blocks = 0;
  for (size_t s = 0; s < sers.n; s++)
    for (size_t k = 0; k < ny; k++) {
      size_t n_in = 0;
      for (size_t i = 0; i < np; i++) {
        double yv;
        if (pts[i].series != s || !num(cell(pc, pts[i].row, ys[k]), &yv)) continue;
        if (n_in++ == 0) {
          util_buf_printf(&pc->data, "%s\"%s", blocks ? "\n\n" : "", pc->t->cols[ys[k]]);
          if (ns) {
            util_buf_printf(&pc->data, " (");
            data_text(&pc->data, sers.v[s]);
            util_buf_printf(&pc->data, ")");
          }
          util_buf_printf(&pc->data, "\"\tgbyte_s\n");
          blocks++;
        }
        util_buf_printf(&pc->data, "%.10g\t%.10g\n", pts[i].x, yv);
      }
    }
  free(pts);
  names_free(&sers);
  if (!blocks) return nothing(pc, "no row with a numeric x and bandwidth");
  size_t nref = ref_blocks(pc);
  util_buf_printf(&pc->vars, "nref=%zu; ", nref);
  util_buf_printf(&pc->vars, "nblocks=%zu; ", blocks);
  plot_var_s(&pc->vars, "xlabel", pc->t->cols[x]);
  plot_var_s(&pc->vars, "ylabel", "bandwidth (GB/s)");
  set_title(pc, "All-to-all bandwidth vs ", pc->t->cols[x], "");
  return 0;
}

/* ---------------------------------------------------------------- roofline */

static int prep_roofline(plot_ctx *pc) {
  int tf = col_or_die(pc, "tflops", "y axis"), gb = tf < 0 ? -1 : col_or_die(pc, "gbps", "intensity");
  if (tf < 0 || gb < 0) return -1;
  static const char *const snames[] = {"device_name", "device", NULL};
  int ser[PLOT_MAX_COLS];
  size_t ns = 0;
  if (pc->f[3]) {
    if (col_list(pc, pc->f[3], "series", ser, PLOT_MAX_COLS, &ns) != 0) return -1;
  } else if ((ser[0] = default_col(pc, snames, NULL)) >= 0) {
    ns = 1;
  }
  int kcol = plot_table_col(pc->t, "kernel");
  plot_names sers = {0};
  plot_xy *pts = util_xcalloc(pc->n_rows + 1, sizeof *pts);
  size_t np = 0;
  double xlo = INFINITY, xhi = 0, ylo = INFINITY, yhi = 0;
  for (size_t i = 0; i < pc->n_rows; i++) {
    size_t r = pc->rows[i];
    double t, g;
    if (!num(cell(pc, r, tf), &t) || !num(cell(pc, r, gb), &g) || t <= 0 || g <= 0) continue;
    double ai = 1000.0 * t / g; /* TFLOP/s over GB/s: FLOP per byte */
    pts[np++] = (plot_xy){ai, t, r, names_add(&sers, series_label(pc, r, ser, ns))};
    xlo = fmin(xlo, ai), xhi = fmax(xhi, ai), ylo = fmin(ylo, t), yhi = fmax(yhi, t);
  }
  int rc = 0;
  util_buf names = {0}, peaks = {0}, bws = {0};
  for (size_t c = 0; c < pc->o->n_ceilings && rc == 0; c++) {
    char name[64];
    double peak, bw;
    int used = 0;
    if (sscanf(pc->o->ceilings[c], "%63[^:]:%lf:%lf%n", name, &peak, &bw, &used) != 3 ||
        pc->o->ceilings[c][used] != '\0' || !(peak > 0) || !(bw > 0) || !isfinite(peak) || !isfinite(bw)) {
      fprintf(stderr, "moesim plot: error: --ceiling '%s': expected NAME:TFLOPS:GBPS with positive numbers\n",
              pc->o->ceilings[c]);
      rc = -1;
      break;
    }
    for (char *ch = name; *ch; ch++)
      if (*ch == ' ' || *ch == '\'' || *ch == '"') *ch = '_';
    util_buf_printf(&names, "%s%s", c ? " " : "", name);
    util_buf_printf(&peaks, "%s%.17g", c ? " " : "", peak);
    util_buf_printf(&bws, "%s%.17g", c ? " " : "", bw);
    double ridge = 1000.0 * peak / bw;
    xlo = fmin(xlo, ridge), xhi = fmax(xhi, ridge), yhi = fmax(yhi, peak), ylo = fmin(ylo, peak / 100);
  }
  if (rc == 0 && np == 0) rc = nothing(pc, "no row with tflops > 0 and gbps > 0 (a kernel table has both)");
  if (rc == 0) {
    qsort(pts, np, sizeof *pts, cmp_xy);
    for (size_t i = 0; i < np; i++) {
      if (i == 0 || pts[i].series != pts[i - 1].series) {
        util_buf_printf(&pc->data, "%s\"", i ? "\n\n" : "");
        data_text(&pc->data, sers.v[pts[i].series]);
        util_buf_printf(&pc->data, "\"\ttflops\tkernel\n");
      }
      util_buf_printf(&pc->data, "%.10g\t%.10g\t", pts[i].x, pts[i].y);
      data_text(&pc->data, kcol >= 0 ? cell(pc, pts[i].row, kcol) : "");
      util_buf_printf(&pc->data, "\n");
    }
    util_buf_printf(&pc->vars, "nseries=%zu; ceil_n=%zu; ", sers.n, pc->o->n_ceilings);
    plot_var_s(&pc->vars, "ceil_names", names.data ? names.data : "");
    plot_var_s(&pc->vars, "ceil_tflops", peaks.data ? peaks.data : "");
    plot_var_s(&pc->vars, "ceil_gbps", bws.data ? bws.data : "");
    var_g(&pc->vars, "xmin", xlo / 4);
    var_g(&pc->vars, "xmax", xhi * 4);
    var_g(&pc->vars, "ymin", ylo / 4);
    var_g(&pc->vars, "ymax", yhi * 2);
    set_title(pc, "Roofline of measured kernels", "", "");
  }
  util_buf_free(&names);
  util_buf_free(&peaks);
  util_buf_free(&bws);
  free(pts);
  names_free(&sers);
  return rc;
}

/* ---------------------------------------------------------------- whatif */

static int prep_whatif(plot_ctx *pc) {
  static const char *const xnames[] = {"whatif", "suggestion", "label", "name", "option", NULL};
  static const char *const ynames[] = {"speedup", "gain", "gain_pct", NULL};
  static const char *const ypats[] = {"*speedup", "*gain", NULL};
  int x = x_col(pc, xnames);
  if (x < 0) return -1;
  int y = pc->f[2] ? col_or_die(pc, pc->f[2], "bar height") : default_col(pc, ynames, ypats);
  if (y < 0) return pc->f[2] ? -1 : no_default(pc, "bar height", "whatif:X:COLUMN, or --y COLUMN");
  int ser[PLOT_MAX_COLS];
  size_t ns;
  if (series_cols(pc, &x, 1, ser, PLOT_MAX_COLS, &ns) != 0) return -1;
  plot_names cats = {0}, sers = {0};
  size_t *cat_of = util_xcalloc(pc->n_rows + 1, sizeof *cat_of), *ser_of = util_xcalloc(pc->n_rows + 1, sizeof *ser_of);
  for (size_t i = 0; i < pc->n_rows; i++) {
    cat_of[i] = names_add(&cats, util_xstrdup(cell(pc, pc->rows[i], x)));
    ser_of[i] = names_add(&sers, ns ? series_label(pc, pc->rows[i], ser, ns) : util_xstrdup(pc->t->cols[y]));
  }
  const char **grid = util_xcalloc(cats.n * sers.n + 1, sizeof *grid);
  size_t filled = 0;
  for (size_t i = 0; i < pc->n_rows; i++) {
    double v;
    if (!num(cell(pc, pc->rows[i], y), &v)) continue;
    grid[cat_of[i] * sers.n + ser_of[i]] = cell(pc, pc->rows[i], y);
    filled++;
  }
  util_buf_printf(&pc->data, "label");
  for (size_t s = 0; s < sers.n; s++) {
    util_buf_printf(&pc->data, "\t");
    data_text(&pc->data, sers.v[s]);
  }
  util_buf_printf(&pc->data, "\n");
  for (size_t c = 0; c < cats.n; c++) {
    data_text(&pc->data, cats.v[c]);
    for (size_t s = 0; s < sers.n; s++) util_buf_printf(&pc->data, "\t%s", grid[c * sers.n + s] ? grid[c * sers.n + s] : "-");
    util_buf_printf(&pc->data, "\n");
  }
  util_buf_printf(&pc->vars, "ncols=%zu; ", sers.n);
  plot_var_s(&pc->vars, "xlabel", pc->t->cols[x]);
  plot_var_s(&pc->vars, "ylabel", pc->t->cols[y]);
  set_title(pc, "What-if: ", pc->t->cols[y], "");
  /* The table printed beside the figure: one line per row, with the gain and the mechanism when
   * the results carry them (the whatif experiment kind's columns). */
  int gain = plot_table_col(pc->t, "gain_pct"), mech = plot_table_col(pc->t, "mechanism");
  int wx = (int)strlen(pc->t->cols[x]), ws = 6;
  for (size_t i = 0; i < pc->n_rows; i++) {
    int a = (int)strlen(cats.v[cat_of[i]]), b = (int)strlen(sers.v[ser_of[i]]);
    if (a > wx) wx = a;
    if (b > ws) ws = b;
  }
  util_buf_printf(&pc->table, "  %-*s  %-*s  %10s%s%s\n", wx, pc->t->cols[x], ws, "series", pc->t->cols[y],
                  gain >= 0 && gain != y ? "    gain%" : "", mech >= 0 ? "  mechanism" : "");
  for (size_t i = 0; i < pc->n_rows; i++) {
    util_buf_printf(&pc->table, "  %-*s  %-*s  %10s", wx, cats.v[cat_of[i]], ws, sers.v[ser_of[i]],
                    cell(pc, pc->rows[i], y));
    if (gain >= 0 && gain != y) {
      double g;
      if (num(cell(pc, pc->rows[i], gain), &g)) util_buf_printf(&pc->table, "  %+7.2f", g);
      else util_buf_printf(&pc->table, "  %7s", "-");
    }
    if (mech >= 0) util_buf_printf(&pc->table, "  %s", cell(pc, pc->rows[i], mech));
    util_buf_printf(&pc->table, "\n");
  }
  free(grid);
  free(cat_of);
  free(ser_of);
  names_free(&cats);
  names_free(&sers);
  return filled ? 0 : nothing(pc, "no row with a number in the bar column");
}

/* ---------------------------------------------------------------- pareto */

static int prep_pareto(plot_ctx *pc) {
  static const char *const xnames[] = {"time_days", "time_h", "time_hours", "time_s", "step_time_s", NULL};
  static const char *const xpats[] = {"*time", NULL};
  static const char *const ynames[] = {"total_cost_usd", "cost_usd", NULL};
  static const char *const ypats[] = {"_usd", "*cost", NULL};
  static const char *const snames[] = {"option", "label", "name", NULL};
  int x = pc->f[1] ? col_or_die(pc, pc->f[1], "x axis") : default_col(pc, xnames, xpats);
  if (x < 0) return pc->f[1] ? -1 : no_default(pc, "time", "pareto:TIME:COST, or --x/--y");
  int y = pc->f[2] ? col_or_die(pc, pc->f[2], "y axis") : default_col(pc, ynames, ypats);
  if (y < 0) return pc->f[2] ? -1 : no_default(pc, "cost", "pareto:TIME:COST, or --x/--y");
  int ser[PLOT_MAX_COLS];
  size_t ns = 0;
  if (pc->f[3]) {
    if (col_list(pc, pc->f[3], "series", ser, PLOT_MAX_COLS, &ns) != 0) return -1;
  } else if ((ser[0] = default_col(pc, snames, NULL)) >= 0) {
    ns = 1;
  } else {
    int except[2] = {x, y};
    if (series_cols(pc, except, 2, ser, PLOT_MAX_COLS, &ns) != 0) return -1;
  }
  /* Front labels name the option fully: the series columns and the other varying swept ones. */
  int lab[2 * PLOT_MAX_COLS];
  size_t nl = 0;
  for (size_t i = 0; i < ns; i++) lab[nl++] = ser[i];
  for (int c = pc->swept_first; c >= 0 && c < pc->swept_end && nl < 2 * PLOT_MAX_COLS; c++) {
    int skip = c == x || c == y || constant_col(pc, c);
    for (size_t i = 0; i < ns; i++) skip |= ser[i] == c;
    if (!skip) lab[nl++] = c;
  }
  plot_names sers = {0};
  plot_xy *pts = util_xcalloc(pc->n_rows + 1, sizeof *pts);
  size_t np = 0;
  for (size_t i = 0; i < pc->n_rows; i++) {
    double xv, yv;
    size_t r = pc->rows[i];
    if (!num(cell(pc, r, x), &xv) || !num(cell(pc, r, y), &yv)) continue;
    pts[np++] = (plot_xy){xv, yv, r, names_add(&sers, series_label(pc, r, ser, ns))};
  }
  if (np == 0) {
    free(pts);
    names_free(&sers);
    return nothing(pc, "no row with numbers for both time and cost");
  }
  qsort(pts, np, sizeof *pts, cmp_xy);
  for (size_t i = 0; i < np; i++) {
    if (i == 0 || pts[i].series != pts[i - 1].series) {
      util_buf_printf(&pc->data, "%s\"", i ? "\n\n" : "");
      data_text(&pc->data, sers.v[pts[i].series]);
      util_buf_printf(&pc->data, "\"\t%s\tlabel\n", pc->t->cols[y]);
    }
    util_buf_printf(&pc->data, "%.10g\t%.10g\t", pts[i].x, pts[i].y);
    data_text(&pc->data, sers.v[pts[i].series]);
    util_buf_printf(&pc->data, "\n");
  }
  /* The front: points no other point matches or beats in both time and cost, by time. */
  plot_xy *front = util_xcalloc(np, sizeof *front);
  size_t nf = 0;
  for (size_t i = 0; i < np; i++) {
    int dominated = 0;
    for (size_t j = 0; j < np && !dominated; j++)
      dominated = j != i && pts[j].x <= pts[i].x && pts[j].y <= pts[i].y && (pts[j].x < pts[i].x || pts[j].y < pts[i].y);
    if (!dominated) front[nf] = pts[i], front[nf++].series = 0;
  }
  qsort(front, nf, sizeof *front, cmp_xy);
  util_buf_printf(&pc->data, "\n\n\"Pareto front\"\t%s\tlabel\n", pc->t->cols[y]);
  for (size_t i = 0; i < nf; i++) {
    util_buf_printf(&pc->data, "%.10g\t%.10g\t", front[i].x, front[i].y);
    char *l = series_label(pc, front[i].row, lab, nl);
    data_text(&pc->data, l);
    free(l);
    util_buf_printf(&pc->data, "\n");
  }
  util_buf_printf(&pc->vars, "nseries=%zu; ", sers.n);
  plot_var_s(&pc->vars, "xlabel", pc->t->cols[x]);
  plot_var_s(&pc->vars, "ylabel", pc->t->cols[y]);
  set_title(pc, "Cost vs time", "", "");
  free(front);
  free(pts);
  names_free(&sers);
  return 0;
}

/* ---------------------------------------------------------------- the table */

const plot_kind plot_kinds[] = {
    {"throughput_vs", "vs", "throughput against a swept axis, one line per series",
     "                 x: the first swept column; y: tokens_per_s (else a column ending _per_s);\n"
     "                 series: the other swept columns\n",
     prep_throughput},
    {"step_time_vs", "vs", "step (or layer) time against a swept axis, one line per series",
     "                 x: the first swept column; y: step_time_s|ms|us, layer_us, time_us (else *step_time*,\n"
     "                 *_time_s|ms|us); series: the other swept columns\n",
     prep_step_time},
    {"breakdown", "breakdown", "stacked time per phase, one bar per row",
     "                 x (labels): the swept columns (else the first column); y (phases, A+B+...):\n"
     "                 dispatch_us+experts_us+combine_us\n",
     prep_breakdown},
    {"a2a_bw", "a2a_bw", "all-to-all bandwidth against EP size, with DeepEP's published points",
     "                 x: ep, ep_size, parallel.ep, gpus (else the first swept column); y: every column\n"
     "                 ending _gbyte_s or _gbps; reference: plots/data/deepep_normal.csv\n",
     prep_a2a},
    {"roofline", "roofline", "TFLOP/s against FLOP/byte for a kernel table (moesim kernels), ceilings given",
     "                 reads the tflops and gbps columns; series: device_name; --ceiling NAME:TFLOPS:GBPS\n"
     "                 draws a peak/bandwidth roof (repeatable: this CPU, an H800, ...)\n",
     prep_roofline},
    {"whatif", "whatif", "bars: the gain of each what-if, clustered by series",
     "                 x: whatif, suggestion, label, name, option (else the first swept column); y: speedup,\n"
     "                 gain, gain_pct; series: the other swept columns\n",
     prep_whatif},
    {"pareto", "pareto", "cost against time for every option, with the Pareto front",
     "                 x: time_days, time_h, time_hours, time_s, step_time_s (else *time*); y: total_cost_usd,\n"
     "                 cost_usd (else *_usd, *cost*); series: option, label, name (else the swept columns)\n",
     prep_pareto},
};
const size_t plot_n_kinds = sizeof plot_kinds / sizeof plot_kinds[0];
