/* sim/plot.c — figure kinds: read a results CSV, arrange the data a gnuplot script needs, run
 * gnuplot for PNG and SVG (see plot.h; each plots/<script>.gp documents its data and variables). */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exp.h"
#include "plot_int.h"
#include "util.h"

/* ---------------------------------------------------------------- CSV */

/* Parses one record at text[*pos]; fields are malloc'd. Returns 0 at the end of text. */
static int csv_record(const char *text, size_t len, size_t *pos, char ***fields, size_t *n) {
  *fields = NULL;
  *n = 0;
  if (*pos >= len) return 0;
  size_t cap = 0;
  for (;;) {
    util_buf f = {0};
    util_buf_append(&f, "", 0);
    size_t i = *pos;
    if (i < len && text[i] == '"') {
      for (i++; i < len; i++) {
        if (text[i] == '"' && i + 1 < len && text[i + 1] == '"') util_buf_append(&f, "\"", 1), i++;
        else if (text[i] == '"') break;
        else util_buf_append(&f, text + i, 1);
      }
      if (i < len) i++;
    }
    while (i < len && text[i] != ',' && text[i] != '\n' && text[i] != '\r') util_buf_append(&f, text + i++, 1);
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      *fields = util_xrealloc(*fields, cap * sizeof **fields);
    }
    (*fields)[(*n)++] = f.data;
    if (i < len && text[i] == ',') {
      *pos = i + 1;
      continue;
    }
    if (i < len && text[i] == '\r') i++;
    if (i < len && text[i] == '\n') i++;
    *pos = i;
    return 1;
  }
}

static void free_fields(char **f, size_t n) {
  for (size_t i = 0; i < n; i++) free(f[i]);
  free(f);
}

int plot_table_read(const char *path, plot_table *t) {
  memset(t, 0, sizeof *t);
  size_t len;
  char *text = util_read_file(path, &len);
  if (!text) {
    int e = errno;
    fprintf(stderr, "moesim: error: cannot read %s: %s\n", path, strerror(e));
    return e == ENOENT || e == EISDIR ? UTIL_EXIT_USAGE : UTIL_EXIT_SYS;
  }
  size_t pos = 0, cap = 0, n;
  int line = 0;
  char **f;
  while (csv_record(text, len, &pos, &f, &n)) {
    line++;
    if ((n == 1 && f[0][0] == '\0') || f[0][0] == '#') { /* blank line or comment */
      free_fields(f, n);
      continue;
    }
    if (!t->cols) {
      t->cols = f;
      t->n_cols = n;
      continue;
    }
    if (n > t->n_cols) {
      fprintf(stderr, "%s:%d: error: %zu fields, but the header has %zu\n", path, line, n, t->n_cols);
      free_fields(f, n);
      free(text);
      plot_table_free(t);
      return UTIL_EXIT_USAGE;
    }
    if (t->n_rows == cap) {
      cap = cap ? 2 * cap : 64;
      t->cells = util_xrealloc(t->cells, cap * t->n_cols * sizeof *t->cells);
    }
    for (size_t c = 0; c < t->n_cols; c++) t->cells[t->n_rows * t->n_cols + c] = c < n ? f[c] : util_xstrdup("");
    free(f);
    t->n_rows++;
  }
  free(text);
  if (!t->cols) {
    fprintf(stderr, "%s:1: error: empty file, expected a CSV header\n", path);
    return UTIL_EXIT_USAGE;
  }
  return 0;
}

void plot_table_free(plot_table *t) {
  free_fields(t->cols, t->n_cols);
  for (size_t i = 0; i < t->n_rows * t->n_cols; i++) free(t->cells[i]);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

int plot_table_col(const plot_table *t, const char *name) {
  for (size_t c = 0; c < t->n_cols; c++)
    if (strcmp(t->cols[c], name) == 0) return (int)c;
  return -1;
}

/* ---------------------------------------------------------------- helpers */



/* ---------------------------------------------------------------- drawing */

void plot_var_s(util_buf *b, const char *name, const char *val) {
  util_buf_printf(b, "%s='", name);
  for (const char *c = val; *c; c++) util_buf_append(b, c, 1 + (*c == '\''));
  util_buf_append(b, "'; ", 3);
}

static int run_gnuplot(const char *script, const char *vars) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execlp("gnuplot", "gnuplot", "-e", vars, script, (char *)NULL);
    fprintf(stderr, "moesim: error: cannot run gnuplot: %s (install gnuplot-nox)\n", strerror(errno));
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

char *plot_figure_name(const char *spec) {
  util_buf b = {0};
  char *copy = util_xstrdup(spec), *save = NULL;
  for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
    if (b.data) util_buf_append(&b, "_", 1);
    for (char *c = tok; *c; c++) {
      int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
               *c == '-' || *c == '.';
      util_buf_append(&b, ok ? c : "_", 1);
    }
  }
  free(copy);
  if (!b.data) util_buf_printf(&b, "figure");
  return b.data;
}

static const plot_kind *kind_of(const char *spec) {
  size_t n = strcspn(spec, ":");
  for (size_t i = 0; i < plot_n_kinds; i++)
    if (strlen(plot_kinds[i].name) == n && strncmp(plot_kinds[i].name, spec, n) == 0) return &plot_kinds[i];
  return NULL;
}

int plot_kind_known(const char *spec) { return kind_of(spec) != NULL; }

int plot_draw(const char *spec, const char *csv, const char *out_dir, const plot_opts *o) {
  static const plot_opts none = {0};
  if (!o) o = &none;
  const plot_kind *k = kind_of(spec);
  if (!k) {
    fprintf(stderr, "moesim plot: error: unknown figure kind in '%s' (kinds:", spec);
    for (size_t i = 0; i < plot_n_kinds; i++) fprintf(stderr, " %s", plot_kinds[i].name);
    fprintf(stderr, ")\n");
    return UTIL_EXIT_USAGE;
  }
  plot_table t;
  int rc = plot_table_read(csv, &t);
  if (rc != 0) return rc;
  plot_ctx pc = {.t = &t, .csv = csv, .o = o, .swept_first = -1, .swept_end = -1};
  {
    char *copy = util_xstrdup(spec);
    char *p = copy;
    for (int i = 0; i < 4 && p; i++) {
      char *colon = strchr(p, ':');
      if (colon) *colon = '\0';
      pc.f[i] = *p ? util_xstrdup(p) : NULL;
      p = colon ? colon + 1 : NULL;
    }
    free(copy);
  }
  int status = plot_table_col(&t, "status");
  if (t.n_cols > 0 && strcmp(t.cols[0], "point") == 0 && status > 0) pc.swept_first = 1, pc.swept_end = status;
  pc.rows = util_xcalloc(t.n_rows ? t.n_rows : 1, sizeof *pc.rows);
  for (size_t r = 0; r < t.n_rows; r++)
    if (status < 0 || strcmp(t.cells[r * t.n_cols + (size_t)status], "ok") == 0) pc.rows[pc.n_rows++] = r;
  util_buf_printf(&pc.data, "# %s: data for plots/%s.gp, from %s\n", spec, k->script, csv);
  rc = k->prepare(&pc) != 0 ? UTIL_EXIT_USAGE : 0;
  char *fig = plot_figure_name(spec);
  util_buf dat = {0};
  util_buf_printf(&dat, "%s/%s.dat", out_dir, fig);
  if (rc == 0 && util_write_file_atomic(dat.data, pc.data.data, pc.data.len) != 0) rc = UTIL_EXIT_SYS;
  util_buf script = {0};
  util_buf_printf(&script, "%s/%s.gp", exp_plots_dir(), k->script);
  if (rc == 0 && access(script.data, R_OK) != 0) {
    fprintf(stderr, "moesim plot: error: no gnuplot script %s (set MOESIM_PLOTS to the plots directory)\n", script.data);
    rc = UTIL_EXIT_SYS;
  }
  const char *fmts[] = {"png", "svg"};
  for (int i = 0; i < 2 && rc == 0; i++) {
    util_buf out = {0}, tmp = {0}, vars = {0};
    util_buf_printf(&out, "%s/%s.%s", out_dir, fig, fmts[i]);
    util_buf_printf(&tmp, "%s.tmp.%ld", out.data, (long)getpid());
    plot_var_s(&vars, "datafile", dat.data);
    plot_var_s(&vars, "outfile", tmp.data);
    plot_var_s(&vars, "fmt", fmts[i]);
    plot_var_s(&vars, "figtitle", o->title ? o->title : pc.title ? pc.title : spec);
    util_buf_printf(&vars, "%s", pc.vars.data ? pc.vars.data : "");
    if (run_gnuplot(script.data, vars.data) != 0 || rename(tmp.data, out.data) != 0) {
      fprintf(stderr, "moesim plot: error: gnuplot failed to draw %s\n", out.data);
      unlink(tmp.data);
      rc = UTIL_EXIT_SYS;
    }
    util_buf_free(&out);
    util_buf_free(&tmp);
    util_buf_free(&vars);
  }
  if (rc == 0 && !o->quiet) printf("figure    %s/%s.png (and .svg)\n", out_dir, fig);
  if (rc == 0 && !o->quiet && pc.table.data) fputs(pc.table.data, stdout);
  util_buf_free(&script);
  util_buf_free(&dat);
  free(fig);
  for (int i = 0; i < 4; i++) free(pc.f[i]);
  free(pc.title);
  free(pc.rows);
  util_buf_free(&pc.data);
  util_buf_free(&pc.vars);
  util_buf_free(&pc.table);
  plot_table_free(&t);
  return rc;
}

void plot_print_kinds(FILE *f) {
  for (size_t i = 0; i < plot_n_kinds; i++)
    fprintf(f, "  %-14s %s\n%s", plot_kinds[i].name, plot_kinds[i].summary, plot_kinds[i].help);
}
