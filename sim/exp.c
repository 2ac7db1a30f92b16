/* sim/exp.c — experiment loading, result rows and figure drawing (see exp.h). */
#include "exp.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plot.h"
#include "util.h"

/* ---------------------------------------------------------------- result rows */

static void res_put(res_row *r, const char *col, char *val) {
  for (size_t i = 0; i < r->len; i++)
    if (strcmp(r->cols[i], col) == 0) {
      free(r->vals[i]);
      r->vals[i] = val;
      return;
    }
  if (r->len == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 32;
    r->cols = util_xrealloc(r->cols, r->cap * sizeof *r->cols);
    r->vals = util_xrealloc(r->vals, r->cap * sizeof *r->vals);
  }
  r->cols[r->len] = util_xstrdup(col);
  r->vals[r->len++] = val;
}

void res_set(res_row *r, const char *col, const char *fmt, ...) {
  util_buf b = {0};
  va_list ap;
  va_start(ap, fmt);
  util_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  if (!b.data) util_buf_append(&b, "", 0);
  /* CSV safety: values never carry commas or newlines. */
  for (char *c = b.data; *c; c++)
    if (*c == ',' || *c == '\n' || *c == '\r') *c = ';';
  res_put(r, col, b.data);
}

void res_set_f(res_row *r, const char *col, double v) { res_set(r, col, "%.6g", v); }
void res_set_i(res_row *r, const char *col, long long v) { res_set(r, col, "%lld", v); }

const char *res_get(const res_row *r, const char *col) {
  for (size_t i = 0; i < r->len; i++)
    if (strcmp(r->cols[i], col) == 0) return r->vals[i];
  return NULL;
}

void res_free(res_row *r) {
  for (size_t i = 0; i < r->len; i++) {
    free(r->cols[i]);
    free(r->vals[i]);
  }
  free(r->cols);
  free(r->vals);
  memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- loading */

const cfg_key exp_common_keys[] = {
    {.name = "name", .type = CFG_STRING, .offset = offsetof(exp_common, name), .flags = CFG_REQUIRED,
     .doc = "experiment name; results go to results/<name>/"},
    {.name = "kind", .type = CFG_STRING, .offset = offsetof(exp_common, kind), .flags = CFG_REQUIRED,
     .doc = "which simulator runs it"},
    {.name = "description", .type = CFG_STRING, .offset = offsetof(exp_common, description), .doc = "free text"},
    {.name = "sweep", .type = CFG_NODE, .offset = offsetof(exp_common, sweep),
     .doc = "grid: {key: [values]} (cartesian product) and zip: {key: [values]} (lock-step)"},
    {.name = "plots", .type = CFG_LIST, .offset = offsetof(exp_common, plots), .elem = CFG_STRING,
     .count_offset = offsetof(exp_common, n_plots), .doc = "figures to draw after the run"},
    CFG_END};

const exp_kind *exp_kind_find(const char *name) {
  for (int i = 0; exp_kinds[i]; i++)
    if (strcmp(exp_kinds[i]->name, name) == 0) return exp_kinds[i];
  return NULL;
}

int exp_load(cfg_ctx *ctx, const char *path, exp_common *common, const exp_kind **kind_out, void **spec_out) {
  *spec_out = NULL;
  const cfg_node *root = cfg_load_file(ctx, path);
  if (!root) return UTIL_EXIT_USAGE;
  if (cfg_node_kind(root) != CFG_MAP) {
    cfg_error(ctx, root, "an experiment is a mapping (name:, kind:, ...)");
    return UTIL_EXIT_USAGE;
  }
  const cfg_node *kn = cfg_node_get(root, "kind");
  if (!kn || !cfg_node_scalar(kn)) {
    cfg_error(ctx, root, "missing key 'kind' (one of the experiment kinds: see moesim run --help)");
    return UTIL_EXIT_USAGE;
  }
  const exp_kind *kind = exp_kind_find(cfg_node_scalar(kn));
  if (!kind) {
    util_buf b = {0};
    const char *best = NULL;
    int best_d = INT_MAX;
    for (int i = 0; exp_kinds[i]; i++) {
      util_buf_printf(&b, "%s%s", i ? ", " : "", exp_kinds[i]->name);
      int d = util_edit_distance(exp_kinds[i]->name, cfg_node_scalar(kn));
      if (d < best_d) best_d = d, best = exp_kinds[i]->name;
    }
    if (best && best_d <= 2)
      cfg_error(ctx, kn, "unknown kind '%s' (did you mean '%s'? kinds: %s)", cfg_node_scalar(kn), best, b.data);
    else
      cfg_error(ctx, kn, "unknown kind '%s' (kinds: %s)", cfg_node_scalar(kn), b.data ? b.data : "none");
    util_buf_free(&b);
    return UTIL_EXIT_USAGE;
  }
  void *spec = util_xcalloc(1, kind->spec_size);
  if (kind->init) kind->init(spec);
  memset(common, 0, sizeof *common);
  const cfg_key *const tables[2] = {exp_common_keys, kind->keys};
  void *const outs[2] = {common, spec};
  if (cfg_bind_multi(ctx, root, tables, outs, 2, "") != 0 || cfg_overrides_check_used(ctx) != 0) {
    free(spec);
    return UTIL_EXIT_USAGE;
  }
  for (size_t i = 0; i < common->n_plots; i++) {
    int ok = 0;
    const char *p = common->plots[i];
    for (int j = 0; kind->plots && kind->plots[j]; j++) {
      size_t n = strlen(kind->plots[j]);
      /* "throughput_vs:AXIS"-style plots name a prefix ending in ':' */
      ok |= strcmp(p, kind->plots[j]) == 0 || (kind->plots[j][n - 1] == ':' && strncmp(p, kind->plots[j], n) == 0);
    }
    /* The figure kinds of plot.h draw from any results table that has their columns. */
    ok |= plot_kind_known(p);
    if (!ok) {
      fprintf(stderr, "%s: error: plot '%s' is not one kind '%s' draws, nor a figure kind of moesim plot\n", path, p,
              kind->name);
      free(spec);
      return UTIL_EXIT_USAGE;
    }
  }
  *kind_out = kind;
  *spec_out = spec;
  return 0;
}

/* ---------------------------------------------------------------- figures */

static int is_dir(const char *p) { return access(p, R_OK | X_OK) == 0; }

const char *exp_plots_dir(void) {
  static char dir[PATH_MAX + 32];
  if (dir[0]) return dir;
  const char *env = getenv("MOESIM_PLOTS");
  if (env && env[0]) {
    snprintf(dir, sizeof dir, "%s", env);
    return dir;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    /* build/moesim -> ../plots; build/san/moesim -> ../../plots */
    const char *ups[] = {"/../plots", "/../../plots"};
    for (int i = 0; i < 2; i++) {
      char cand[PATH_MAX + 16];
      snprintf(cand, sizeof cand, "%s%s", exe, ups[i]);
      if (is_dir(cand)) {
        char *r = realpath(cand, NULL);
        snprintf(dir, sizeof dir, "%s", r ? r : cand);
        free(r);
        return dir;
      }
    }
  }
  snprintf(dir, sizeof dir, "plots");
  return dir;
}
