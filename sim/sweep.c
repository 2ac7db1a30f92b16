/* sim/sweep.c — parsing a `sweep:` mapping into axes, enumerating its points, loading a point and
 * fingerprinting its inputs (see sweep.h for the point order and the rules). */
#include "sweep.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

/* Keys that say what the experiment is rather than what it computes: never swept. */
static const char *const sweep_fixed_keys[] = {"name", "kind", "sweep", "plots", "description", NULL};

static int sweep_is_null(const cfg_node *n) {
  const char *s = cfg_node_scalar(n);
  return s && (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

/* Checks a dotted key path: [A-Za-z0-9_-] segments joined by single dots. */
static int sweep_key_ok(const char *k) {
  if (!k[0] || k[0] == '.') return 0;
  for (const char *c = k; *c; c++) {
    if (*c == '.') {
      if (c[1] == '.' || c[1] == '\0') return 0;
      continue;
    }
    if (!(*c == '_' || *c == '-' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
      return 0;
  }
  return 1;
}

/* Adds the keys of one grid/zip mapping; `zip` makes them one axis. */
static int sweep_add_block(cfg_ctx *ctx, const cfg_node *block, const char *what, int zip, sweep *s) {
  if (cfg_node_kind(block) != CFG_MAP || cfg_node_len(block) == 0)
    return cfg_error(ctx, block, "sweep.%s: expected a mapping of key: [values] with at least one key", what);
  size_t n = cfg_node_len(block);
  const cfg_node *first_list = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *key = cfg_node_key(block, i);
    const cfg_node *kn = cfg_node_key_node(block, i), *list = cfg_node_item(block, i);
    if (!sweep_key_ok(key))
      return cfg_error(ctx, kn, "sweep.%s: '%s' is not a dotted key path (like parallel.ep or links.0.bw_gbps)",
                       what, key);
    for (int f = 0; sweep_fixed_keys[f]; f++)
      if (strcmp(key, sweep_fixed_keys[f]) == 0 ||
          (strncmp(key, sweep_fixed_keys[f], strlen(sweep_fixed_keys[f])) == 0 && key[strlen(sweep_fixed_keys[f])] == '.'))
        return cfg_error(ctx, kn, "sweep.%s: '%s' cannot be swept (it names the experiment, not what it computes)",
                         what, key);
    for (size_t j = 0; j < s->n_keys; j++)
      if (strcmp(s->keys[j], key) == 0)
        return cfg_error(ctx, kn, "sweep.%s: key '%s' is swept twice (first at line %d)", what, key,
                         cfg_node_line(s->key_nodes[j]));
    if (cfg_node_kind(list) != CFG_SEQ)
      return cfg_error(ctx, list, "sweep.%s.%s: expected a list of values, like [8, 16, 32]", what, key);
    if (cfg_node_len(list) == 0) return cfg_error(ctx, list, "sweep.%s.%s: the list of values is empty", what, key);
    if (zip && first_list && cfg_node_len(list) != cfg_node_len(first_list))
      return cfg_error(ctx, list, "sweep.zip.%s: %zu values, but sweep.zip.%s has %zu (zip lists run in lock-step "
                       "and must be equally long)", key, cfg_node_len(list), cfg_node_key(block, 0),
                       cfg_node_len(first_list));
    if (!first_list) first_list = list;
    s->keys[s->n_keys] = key;
    s->key_nodes[s->n_keys] = kn;
    if (!zip || i == 0) {
      sweep_axis *a = &s->axes[s->n_axes++];
      a->first_key = s->n_keys;
      a->n_keys = 0;
      a->n_values = cfg_node_len(list);
      a->lists = cfg_alloc(ctx, n * sizeof *a->lists);
    }
    sweep_axis *a = &s->axes[s->n_axes - 1];
    a->lists[a->n_keys++] = list;
    s->n_keys++;
  }
  return 0;
}

int sweep_parse(cfg_ctx *ctx, const cfg_node *node, sweep *s) {
  memset(s, 0, sizeof *s);
  s->n_points = 1;
  if (!node || sweep_is_null(node)) return 0;
  if (cfg_node_kind(node) != CFG_MAP)
    return cfg_error(ctx, node, "sweep: expected a mapping with grid: and/or zip:");
  size_t cap = 0;
  for (size_t i = 0; i < cfg_node_len(node); i++) cap += cfg_node_len(cfg_node_item(node, i));
  s->axes = cfg_alloc(ctx, (cap ? cap : 1) * sizeof *s->axes);
  s->keys = cfg_alloc(ctx, (cap ? cap : 1) * sizeof *s->keys);
  s->key_nodes = cfg_alloc(ctx, (cap ? cap : 1) * sizeof *s->key_nodes);
  for (size_t i = 0; i < cfg_node_len(node); i++) {
    const char *k = cfg_node_key(node, i);
    int zip = strcmp(k, "zip") == 0;
    if (!zip && strcmp(k, "grid") != 0) {
      const char *hint = util_edit_distance(k, "grid") <= 2 ? " (did you mean 'grid'?)"
                         : util_edit_distance(k, "zip") <= 2 ? " (did you mean 'zip'?)" : "";
      return cfg_error(ctx, cfg_node_key_node(node, i), "unknown key 'sweep.%s'%s: a sweep has grid: (cartesian "
                       "product) and zip: (lock-step)", k, hint);
    }
    if (sweep_add_block(ctx, cfg_node_item(node, i), k, zip, s) != 0) return -1;
  }
  if (s->n_axes == 0) return cfg_error(ctx, node, "sweep: expected grid: and/or zip:");
  for (size_t a = 0; a < s->n_axes; a++) {
    if (s->n_points > SWEEP_MAX_POINTS / s->axes[a].n_values)
      return cfg_error(ctx, node, "sweep: more than %d points", SWEEP_MAX_POINTS);
    s->n_points *= s->axes[a].n_values;
  }
  return 0;
}

/* The value index axis `a` takes at `point`. */
static size_t sweep_axis_index(const sweep *s, size_t point, size_t a) {
  size_t stride = 1;
  for (size_t b = a + 1; b < s->n_axes; b++) stride *= s->axes[b].n_values;
  return point / stride % s->axes[a].n_values;
}

const cfg_node *sweep_value(const sweep *s, size_t point, size_t key) {
  for (size_t a = 0; a < s->n_axes; a++) {
    const sweep_axis *ax = &s->axes[a];
    if (key >= ax->first_key && key < ax->first_key + ax->n_keys)
      return cfg_node_item(ax->lists[key - ax->first_key], sweep_axis_index(s, point, a));
  }
  return NULL;
}

void sweep_apply(const sweep *s, size_t point, cfg_ctx *ctx) {
  for (size_t k = 0; k < s->n_keys; k++) cfg_override_node(ctx, s->keys[k], sweep_value(s, point, k), s->key_nodes[k]);
}

char *sweep_point_label(const sweep *s, size_t point, cfg_ctx *ctx) {
  util_buf b = {0};
  for (size_t k = 0; k < s->n_keys; k++)
    util_buf_printf(&b, "%s%s=%s", k ? " " : "", s->keys[k], cfg_node_text(ctx, sweep_value(s, point, k)));
  if (!b.data) util_buf_append(&b, "", 0);
  return b.data;
}

/* ---------------------------------------------------------------- fingerprints */

/* FNV-1a, 64 bits: a change detector, not a defence against crafted collisions. */
typedef struct sweep_fnv {
  uint64_t h;             /* running hash */
  const char *skip_real;  /* canonical path of the experiment (hashed by keys, not text) */
} sweep_fnv;

static void fnv_add(sweep_fnv *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) f->h = (f->h ^ *p) * 0x100000001b3ull;
  f->h = (f->h ^ 0xffu) * 0x100000001b3ull; /* separator: "ab"+"c" differs from "a"+"bc" */
}

static void fnv_file(void *arg, const char *real, const char *text) {
  sweep_fnv *f = arg;
  if (f->skip_real && strcmp(real, f->skip_real) == 0) return;
  fnv_add(f, real);
  fnv_add(f, text);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

uint64_t sweep_inputs_hash(const sweep_spec *sp, size_t point, cfg_ctx *ctx) {
  sweep_fnv f = {0xcbf29ce484222325ull, NULL};
  fnv_add(&f, "moesim " MOESIM_VERSION);
  char *real = realpath(sp->exp_path, NULL);
  f.skip_real = real;
  /* The overrides, sorted by path (their order on the command line does not change the point). */
  size_t n_keys = sp->sw && point != SIZE_MAX ? sp->sw->n_keys : 0, n = sp->n_sets + n_keys;
  char **ovr = util_xcalloc(n ? n : 1, sizeof *ovr);
  for (size_t i = 0; i < sp->n_sets; i++) ovr[i] = util_xstrdup(sp->sets[i]);
  for (size_t k = 0; k < n_keys; k++) {
    util_buf b = {0};
    util_buf_printf(&b, "%s=%s", sp->sw->keys[k], cfg_node_text(ctx, sweep_value(sp->sw, point, k)));
    ovr[sp->n_sets + k] = b.data;
  }
  qsort(ovr, n, sizeof *ovr, cmp_str);
  for (size_t i = 0; i < n; i++) fnv_add(&f, ovr[i]);
  /* The experiment's own keys, as parsed (comments and layout do not count). */
  cfg_ctx *tmp = cfg_new();
  const cfg_node *root = cfg_load_file(tmp, sp->exp_path);
  for (size_t i = 0; root && i < cfg_node_len(root); i++) {
    const char *k = cfg_node_key(root, i);
    if (strcmp(k, "sweep") == 0 || strcmp(k, "plots") == 0 || strcmp(k, "description") == 0) continue;
    fnv_add(&f, k);
    fnv_add(&f, cfg_node_text(tmp, cfg_node_item(root, i)));
  }
  cfg_free(tmp);
  /* Every included file, whole. */
  cfg_each_file(ctx, fnv_file, &f);
  for (size_t i = 0; i < n; i++) free(ovr[i]);
  free(ovr);
  free(real);
  return f.h;
}

/* ---------------------------------------------------------------- loading points */

int sweep_point_load(const sweep_spec *sp, size_t point, sweep_point *pt) {
  memset(pt, 0, sizeof *pt);
  pt->ctx = cfg_new();
  for (size_t i = 0; i < sp->n_sets; i++)
    if (cfg_override(pt->ctx, sp->sets[i], "--set") != 0) goto fail;
  if (sp->sw && point != SIZE_MAX) sweep_apply(sp->sw, point, pt->ctx);
  if (exp_load(pt->ctx, sp->exp_path, &pt->common, &pt->kind, &pt->spec) != 0) goto fail;
  pt->hash = sweep_inputs_hash(sp, point, pt->ctx);
  return 0;
fail:
  cfg_free(pt->ctx);
  memset(pt, 0, sizeof *pt);
  return UTIL_EXIT_USAGE;
}

void sweep_point_free(sweep_point *pt) {
  free(pt->spec);
  cfg_free(pt->ctx);
  memset(pt, 0, sizeof *pt);
}

/* Loads point p with stderr going to `cap` (rewound and emptied first); returns the load status
 * and, on failure, what it printed (malloc'd). */
static int load_captured(const sweep_spec *sp, size_t p, FILE *cap, uint64_t *hash, char **text) {
  *text = NULL;
  fflush(stderr);
  int saved = dup(2);
  if (cap && saved >= 0 && ftruncate(fileno(cap), 0) == 0) {
    rewind(cap);
    dup2(fileno(cap), 2);
  }
  sweep_point pt;
  int rc = sweep_point_load(sp, p, &pt);
  fflush(stderr);
  if (saved >= 0) {
    dup2(saved, 2);
    close(saved);
  }
  if (rc == 0) {
    *hash = pt.hash;
    sweep_point_free(&pt);
    return 0;
  }
  util_buf b = {0};
  util_buf_append(&b, "", 0);
  if (cap) {
    char chunk[4096];
    size_t n;
    rewind(cap);
    while ((n = fread(chunk, 1, sizeof chunk, cap)) > 0) util_buf_append(&b, chunk, n);
  }
  *text = b.data;
  return rc;
}

int sweep_check_all(const sweep_spec *sp, uint64_t *hashes, size_t max_report) {
  size_t failed = 0, shown = 0, n_seen = 0;
  char **seen = NULL; /* distinct error texts already shown */
  FILE *cap = tmpfile();
  for (size_t p = 0; p < sp->sw->n_points; p++) {
    char *text;
    if (load_captured(sp, p, cap, &hashes[p], &text) == 0) continue;
    failed++;
    int dup_text = 0;
    for (size_t i = 0; i < n_seen && !dup_text; i++) dup_text = strcmp(seen[i], text) == 0;
    if (dup_text || shown >= max_report) {
      free(text);
      continue;
    }
    fputs(text, stderr);
    cfg_ctx *tmp = cfg_new();
    char *label = sweep_point_label(sp->sw, p, tmp);
    fprintf(stderr, "%s: note: in sweep point %zu of %zu (%s)\n", sp->exp_path, p, sp->sw->n_points, label);
    free(label);
    cfg_free(tmp);
    seen = util_xrealloc(seen, (n_seen + 1) * sizeof *seen);
    seen[n_seen++] = text;
    shown++;
  }
  if (failed > shown)
    fprintf(stderr, "%s: note: %zu of %zu sweep points fail to load (%zu shown); nothing was run\n", sp->exp_path,
            failed, sp->sw->n_points, shown);
  for (size_t i = 0; i < n_seen; i++) free(seen[i]);
  free(seen);
  if (cap) fclose(cap);
  return failed ? UTIL_EXIT_USAGE : 0;
}
