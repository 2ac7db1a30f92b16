/* sim/cfg.c — YAML loading and key-table binding (see cfg.h).
 *
 * libyaml's document API parses a whole file; the document is copied into cfg_node trees that
 * remember file, line and column, so every later error can point at the source. Binding walks a
 * mapping with a key table: unknown keys, wrong types, missing required keys and out-of-range
 * values are errors reported at the offending node. Overrides (--set, sweep points) are matched
 * by dotted path while binding, so they reach into included files and list elements too. */
#include "cfg.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "util.h"

#define CFG_MAX_DEPTH 64         /* nesting limit (also stops alias recursion) */
#define CFG_MAX_NODES 1000000    /* node limit per document (stops alias bombs) */
#define CFG_MAX_INCLUDE_DEPTH 32 /* include chain limit */

typedef struct cfg_file {
  char *path;            /* as named (for messages) */
  char *real;            /* canonical path, for include-cycle detection (NULL for strings) */
  char *dir;             /* directory that relative paths inside resolve against */
  char *text;            /* full contents, for quoting the offending line */
  int col_offset;        /* added to columns in messages (overrides: position after '=') */
  char *prefix;          /* shown before the quoted line (overrides: "key=") */
  struct cfg_file *next; /* all files of the ctx */
} cfg_file;

struct cfg_node {
  cfg_kind kind;         /* scalar, mapping or sequence */
  const char *scalar;    /* scalar text (NULL otherwise) */
  int plain;             /* scalar was unquoted */
  size_t len;            /* items or pairs */
  cfg_node **items;      /* sequence items, or mapping values */
  const char **keys;     /* mapping keys */
  cfg_node **key_nodes;  /* mapping key nodes (for positions) */
  const cfg_file *file;  /* source */
  int line, col;         /* 1-based position */
};

typedef struct cfg_ovr {
  char *path;            /* dotted path */
  const cfg_node *value; /* parsed YAML value */
  const cfg_node *at;    /* where to point an "unknown key" error (NULL: the value's origin) */
  int used;              /* matched a key while binding */
} cfg_ovr;

struct cfg_ctx {
  void **allocs;          /* every arena allocation */
  size_t n_allocs, cap_allocs;
  cfg_file *files;        /* loaded files and override texts */
  cfg_ovr *ovr;           /* overrides */
  size_t n_ovr, cap_ovr;
  const char **inc_stack; /* canonical paths of includes being bound */
  int inc_depth;
  const char **seen;      /* dotted paths visited while binding (for "did you mean") */
  size_t n_seen, cap_seen;
};

/* ---------------------------------------------------------------- arena */

void *cfg_alloc(cfg_ctx *ctx, size_t n) {
  void *p = util_xcalloc(1, n ? n : 1);
  if (ctx->n_allocs == ctx->cap_allocs) {
    ctx->cap_allocs = ctx->cap_allocs ? 2 * ctx->cap_allocs : 256;
    ctx->allocs = util_xrealloc(ctx->allocs, ctx->cap_allocs * sizeof *ctx->allocs);
  }
  ctx->allocs[ctx->n_allocs++] = p;
  return p;
}

char *cfg_strdup(cfg_ctx *ctx, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = cfg_alloc(ctx, n);
  memcpy(d, s, n);
  return d;
}

cfg_ctx *cfg_new(void) { return util_xcalloc(1, sizeof(cfg_ctx)); }

void cfg_free(cfg_ctx *ctx) {
  if (!ctx) return;
  for (size_t i = 0; i < ctx->n_allocs; i++) free(ctx->allocs[i]);
  free(ctx->allocs);
  for (cfg_file *f = ctx->files, *next; f; f = next) {
    next = f->next;
    free(f->path);
    free(f->real);
    free(f->dir);
    free(f->text);
    free(f->prefix);
    free(f);
  }
  free(ctx->ovr);
  free(ctx->inc_stack);
  free(ctx->seen);
  free(ctx);
}

/* ---------------------------------------------------------------- errors */

static void print_source_line(const cfg_file *f, int line, int col) {
  if (!f || !f->text || line < 1) return;
  const char *p = f->text;
  for (int l = 1; l < line && p; l++) {
    p = strchr(p, '\n');
    if (p) p++;
  }
  if (!p || !*p) return;
  const char *end = strchr(p, '\n');
  int n = end ? (int)(end - p) : (int)strlen(p);
  if (n > 200) n = 200;
  const char *pre = f->prefix ? f->prefix : "";
  fprintf(stderr, "  %s%.*s\n  %*s", pre, n, p, (int)strlen(pre), "");
  for (int i = 1; i < col && i <= n; i++) fputc(p[i - 1] == '\t' ? '\t' : ' ', stderr);
  fputs("^\n", stderr);
}

static void verror_at(const cfg_file *f, int line, int col, const char *fmt, va_list ap) {
  if (f) fprintf(stderr, "%s:%d:%d: error: ", f->path, line, col + f->col_offset);
  else fputs("moesim: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  print_source_line(f, line, col);
}

static int error_at(const cfg_file *f, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int error_at(const cfg_file *f, int line, int col, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror_at(f, line, col, fmt, ap);
  va_end(ap);
  return -1;
}

int cfg_error(cfg_ctx *ctx, const cfg_node *at, const char *fmt, ...) {
  (void)ctx;
  va_list ap;
  va_start(ap, fmt);
  if (at) verror_at(at->file, at->line, at->col, fmt, ap);
  else verror_at(NULL, 0, 0, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---------------------------------------------------------------- loading */

typedef struct conv_state {
  cfg_ctx *ctx;
  yaml_document_t *doc;
  const cfg_file *file;
  size_t nodes; /* converted so far */
  int failed;
} conv_state;

static cfg_node *convert(conv_state *st, yaml_node_t *yn, int depth) {
  if (st->failed) return NULL;
  if (!yn) {
    st->failed = 1;
    error_at(st->file, 1, 1, "malformed YAML document");
    return NULL;
  }
  int line = (int)yn->start_mark.line + 1, col = (int)yn->start_mark.column + 1;
  if (depth > CFG_MAX_DEPTH) {
    st->failed = 1;
    error_at(st->file, line, col, "nesting deeper than %d levels (or a recursive alias)", CFG_MAX_DEPTH);
    return NULL;
  }
  if (++st->nodes > CFG_MAX_NODES) {
    st->failed = 1;
    error_at(st->file, line, col, "document expands to more than %d nodes (alias bomb?)", CFG_MAX_NODES);
    return NULL;
  }
  cfg_node *n = cfg_alloc(st->ctx, sizeof *n);
  n->file = st->file;
  n->line = line;
  n->col = col;
  switch (yn->type) {
  case YAML_SCALAR_NODE:
    n->kind = CFG_SCALAR;
    n->scalar = cfg_strdup(st->ctx, (const char *)yn->data.scalar.value);
    n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE || yn->data.scalar.style == YAML_ANY_SCALAR_STYLE;
    break;
  case YAML_SEQUENCE_NODE: {
    n->kind = CFG_SEQ;
    yaml_node_item_t *a = yn->data.sequence.items.start, *b = yn->data.sequence.items.top;
    n->len = (size_t)(b - a);
    n->items = cfg_alloc(st->ctx, n->len * sizeof *n->items);
    for (size_t i = 0; i < n->len; i++) n->items[i] = convert(st, yaml_document_get_node(st->doc, a[i]), depth + 1);
    break;
  }
  case YAML_MAPPING_NODE: {
    n->kind = CFG_MAP;
    yaml_node_pair_t *a = yn->data.mapping.pairs.start, *b = yn->data.mapping.pairs.top;
    n->len = (size_t)(b - a);
    n->items = cfg_alloc(st->ctx, n->len * sizeof *n->items);
    n->keys = cfg_alloc(st->ctx, n->len * sizeof *n->keys);
    n->key_nodes = cfg_alloc(st->ctx, n->len * sizeof *n->key_nodes);
    for (size_t i = 0; i < n->len && !st->failed; i++) {
      cfg_node *k = convert(st, yaml_document_get_node(st->doc, a[i].key), depth + 1);
      if (!k) break;
      if (k->kind != CFG_SCALAR) {
        st->failed = 1;
        error_at(st->file, k->line, k->col, "mapping keys must be plain strings");
        break;
      }
      for (size_t j = 0; j < i; j++)
        if (strcmp(n->keys[j], k->scalar) == 0) {
          st->failed = 1;
          error_at(st->file, k->line, k->col, "duplicate key '%s' (first at line %d)", k->scalar,
                   n->key_nodes[j]->line);
          break;
        }
      n->keys[i] = k->scalar;
      n->key_nodes[i] = k;
      n->items[i] = convert(st, yaml_document_get_node(st->doc, a[i].value), depth + 1);
    }
    break;
  }
  default:
    st->failed = 1;
    error_at(st->file, line, col, "empty or unsupported YAML node");
    return NULL;
  }
  return st->failed ? NULL : n;
}

static cfg_file *add_file(cfg_ctx *ctx, const char *path, const char *real, const char *dir, char *text) {
  cfg_file *f = util_xcalloc(1, sizeof *f);
  f->path = util_xstrdup(path);
  f->real = real ? util_xstrdup(real) : NULL;
  f->dir = util_xstrdup(dir);
  f->text = text;
  f->next = ctx->files;
  ctx->files = f;
  return f;
}

/* Parses f->text; NULL after an error. An empty document is an empty mapping. */
static const cfg_node *parse_file(cfg_ctx *ctx, const cfg_file *f) {
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) UTIL_SYSFAIL("yaml_parser_initialize: out of memory");
  yaml_parser_set_input_string(&parser, (const unsigned char *)f->text, strlen(f->text));
  if (!yaml_parser_load(&parser, &doc)) {
    const char *what = parser.problem ? parser.problem : "malformed YAML";
    yaml_mark_t m = parser.problem_mark;
    if (parser.context)
      error_at(f, (int)m.line + 1, (int)m.column + 1, "%s %s", parser.context, what);
    else
      error_at(f, (int)m.line + 1, (int)m.column + 1, "%s", what);
    yaml_parser_delete(&parser);
    return NULL;
  }
  const cfg_node *root;
  yaml_node_t *top = yaml_document_get_root_node(&doc);
  if (!top) {
    cfg_node *empty = cfg_alloc(ctx, sizeof *empty);
    empty->kind = CFG_MAP;
    empty->file = f;
    empty->line = empty->col = 1;
    root = empty;
  } else {
    conv_state st = {ctx, &doc, f, 0, 0};
    root = convert(&st, top, 0);
  }
  /* A second document in the same stream is not supported: say so rather than ignore it. */
  if (root) {
    yaml_document_t doc2;
    if (yaml_parser_load(&parser, &doc2)) {
      if (yaml_document_get_root_node(&doc2)) {
        yaml_mark_t m = doc2.start_mark;
        error_at(f, (int)m.line + 1, (int)m.column + 1, "only one YAML document per file is supported");
        root = NULL;
      }
      yaml_document_delete(&doc2);
    } else {
      yaml_mark_t m = parser.problem_mark;
      error_at(f, (int)m.line + 1, (int)m.column + 1, "%s", parser.problem ? parser.problem : "malformed YAML");
      root = NULL;
    }
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return root;
}

#define CFG_MAX_FILE_BYTES (16u << 20) /* a config larger than this is a mistake */

const cfg_node *cfg_load_file(cfg_ctx *ctx, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CFG_MAX_FILE_BYTES) {
    fprintf(stderr, "%s: error: not a regular file of at most %u MiB\n", path, CFG_MAX_FILE_BYTES >> 20);
    return NULL;
  }
  size_t len;
  char *text = util_read_file(path, &len);
  if (!text) {
    fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(errno));
    return NULL;
  }
  if (strlen(text) != len) {
    free(text);
    fprintf(stderr, "%s:1:1: error: file contains a NUL byte\n", path);
    return NULL;
  }
  char *real = realpath(path, NULL);
  char *dir = util_dirname(path);
  cfg_file *f = add_file(ctx, path, real ? real : path, dir, text);
  free(real);
  free(dir);
  return parse_file(ctx, f);
}

const cfg_node *cfg_load_string(cfg_ctx *ctx, const char *name, const char *text) {
  cfg_file *f = add_file(ctx, name, NULL, ".", util_xstrdup(text));
  return parse_file(ctx, f);
}

/* ---------------------------------------------------------------- nodes */

cfg_kind cfg_node_kind(const cfg_node *n) { return n->kind; }
const char *cfg_node_scalar(const cfg_node *n) { return n->kind == CFG_SCALAR ? n->scalar : NULL; }
size_t cfg_node_len(const cfg_node *n) { return n->kind == CFG_SCALAR ? 0 : n->len; }
const cfg_node *cfg_node_item(const cfg_node *n, size_t i) { return i < cfg_node_len(n) ? n->items[i] : NULL; }
const char *cfg_node_key(const cfg_node *n, size_t i) { return n->kind == CFG_MAP && i < n->len ? n->keys[i] : NULL; }
const cfg_node *cfg_node_key_node(const cfg_node *n, size_t i) {
  return n->kind == CFG_MAP && i < n->len ? n->key_nodes[i] : NULL;
}
const char *cfg_node_file(const cfg_node *n) { return n->file ? n->file->path : ""; }
int cfg_node_line(const cfg_node *n) { return n->line; }
int cfg_node_col(const cfg_node *n) { return n->col + (n->file ? n->file->col_offset : 0); }

const cfg_node *cfg_node_get(const cfg_node *n, const char *key) {
  if (n->kind != CFG_MAP) return NULL;
  for (size_t i = 0; i < n->len; i++)
    if (strcmp(n->keys[i], key) == 0) return n->items[i];
  return NULL;
}

static void node_text(util_buf *b, const cfg_node *n) {
  switch (n->kind) {
  case CFG_SCALAR:
    util_buf_printf(b, "%s", n->scalar);
    break;
  case CFG_SEQ:
    util_buf_append(b, "[", 1);
    for (size_t i = 0; i < n->len; i++) {
      if (i) util_buf_append(b, ", ", 2);
      node_text(b, n->items[i]);
    }
    util_buf_append(b, "]", 1);
    break;
  case CFG_MAP:
    util_buf_append(b, "{", 1);
    for (size_t i = 0; i < n->len; i++) {
      if (i) util_buf_append(b, ", ", 2);
      util_buf_printf(b, "%s: ", n->keys[i]);
      node_text(b, n->items[i]);
    }
    util_buf_append(b, "}", 1);
    break;
  }
}

const char *cfg_node_text(cfg_ctx *ctx, const cfg_node *n) {
  util_buf b = {0};
  node_text(&b, n);
  if (!b.data) util_buf_append(&b, "", 0);
  char *s = cfg_strdup(ctx, b.data);
  util_buf_free(&b);
  return s;
}

static const char *kind_name(cfg_kind k) {
  return k == CFG_SCALAR ? "a scalar" : k == CFG_MAP ? "a mapping" : "a sequence";
}

/* ---------------------------------------------------------------- scalars */

static int is_null_scalar(const cfg_node *n) {
  return n->plain && (n->scalar[0] == '\0' || strcmp(n->scalar, "~") == 0 || strcmp(n->scalar, "null") == 0);
}

static int need_scalar(cfg_ctx *ctx, const cfg_node *n, const char *what) {
  if (n->kind != CFG_SCALAR) return cfg_error(ctx, n, "expected %s, found %s", what, kind_name(n->kind));
  if (is_null_scalar(n)) return cfg_error(ctx, n, "expected %s, found no value", what);
  return 0;
}

int cfg_scalar_double(cfg_ctx *ctx, const cfg_node *n, double *out) {
  if (need_scalar(ctx, n, "a number")) return -1;
  const char *s = n->scalar;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  /* Reject what strtod takes but configs should not hold: hex, inf, nan, trailing text. */
  int hex = strchr(s, 'x') || strchr(s, 'X');
  if (end == s || *end || hex || !isfinite(v) || errno == ERANGE)
    return cfg_error(ctx, n, "expected a finite number, found '%s'", s);
  *out = v;
  return 0;
}

int cfg_scalar_int(cfg_ctx *ctx, const cfg_node *n, int64_t *out) {
  if (need_scalar(ctx, n, "an integer")) return -1;
  const char *s = n->scalar;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || errno == ERANGE) return cfg_error(ctx, n, "expected an integer, found '%s'", s);
  *out = v;
  return 0;
}

int cfg_scalar_bool(cfg_ctx *ctx, const cfg_node *n, int *out) {
  if (need_scalar(ctx, n, "true or false")) return -1;
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  for (int i = 0; i < 3; i++) {
    if (strcasecmp(n->scalar, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(n->scalar, no[i]) == 0) return *out = 0, 0;
  }
  return cfg_error(ctx, n, "expected true or false, found '%s'", n->scalar);
}

static int check_range(cfg_ctx *ctx, const cfg_node *n, const cfg_key *k, double v) {
  if ((k->flags & CFG_POSITIVE) && !(v > 0)) return cfg_error(ctx, n, "%s must be positive (got %s)", k->name, n->scalar);
  if ((k->flags & CFG_NONNEG) && !(v >= 0))
    return cfg_error(ctx, n, "%s must not be negative (got %s)", k->name, n->scalar);
  if ((k->flags & CFG_RANGE) && !(v >= k->min && v <= k->max))
    return cfg_error(ctx, n, "%s must be between %g and %g (got %s)", k->name, k->min, k->max, n->scalar);
  return 0;
}

/* Reads a scalar of type `t` into `field` with the range rules of key k. */
static int bind_scalar(cfg_ctx *ctx, const cfg_key *k, cfg_type t, const cfg_node *n, void *field) {
  switch (t) {
  case CFG_INT:
  case CFG_INT32:
  case CFG_UINT: {
    int64_t v;
    if (cfg_scalar_int(ctx, n, &v) || check_range(ctx, n, k, (double)v)) return -1;
    if (t == CFG_INT32 && (v < INT_MIN || v > INT_MAX)) return cfg_error(ctx, n, "%s is out of range", k->name);
    if (t == CFG_UINT && v < 0) return cfg_error(ctx, n, "%s must not be negative (got %s)", k->name, n->scalar);
    if (t == CFG_INT) *(int64_t *)field = v;
    else if (t == CFG_INT32) *(int *)field = (int)v;
    else *(uint64_t *)field = (uint64_t)v;
    return 0;
  }
  case CFG_DOUBLE: {
    double v;
    if (cfg_scalar_double(ctx, n, &v) || check_range(ctx, n, k, v)) return -1;
    *(double *)field = v;
    return 0;
  }
  case CFG_BOOL:
    return cfg_scalar_bool(ctx, n, (int *)field);
  case CFG_STRING:
    if (need_scalar(ctx, n, "a string")) return -1;
    *(char **)field = cfg_strdup(ctx, n->scalar);
    return 0;
  case CFG_PATH: {
    if (need_scalar(ctx, n, "a path")) return -1;
    char *p = util_path_join(n->file ? n->file->dir : ".", n->scalar);
    *(char **)field = cfg_strdup(ctx, p);
    free(p);
    return 0;
  }
  case CFG_ENUM: {
    if (need_scalar(ctx, n, "a name")) return -1;
    int best = -1, best_d = 1 << 30;
    for (int i = 0; k->choices[i]; i++) {
      if (strcmp(k->choices[i], n->scalar) == 0) return *(int *)field = i, 0;
      int d = util_edit_distance(k->choices[i], n->scalar);
      if (d < best_d) best_d = d, best = i;
    }
    util_buf b = {0};
    for (int i = 0; k->choices[i]; i++) util_buf_printf(&b, "%s%s", i ? ", " : "", k->choices[i]);
    if (best >= 0 && best_d <= 2)
      cfg_error(ctx, n, "unknown %s '%s' (did you mean '%s'? expected one of: %s)", k->name, n->scalar,
                k->choices[best], b.data);
    else
      cfg_error(ctx, n, "unknown %s '%s' (expected one of: %s)", k->name, n->scalar, b.data ? b.data : "");
    util_buf_free(&b);
    return -1;
  }
  default:
    assert(!"not a scalar type");
    return -1;
  }
}

/* ---------------------------------------------------------------- overrides */

int cfg_override(cfg_ctx *ctx, const char *assignment, const char *origin) {
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment) {
    fprintf(stderr, "%s: error: expected key=value, found '%s'\n", origin, assignment);
    return -1;
  }
  size_t plen = (size_t)(eq - assignment);
  for (size_t i = 0; i < plen; i++) {
    char c = assignment[i];
    if (!(c == '.' || c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      fprintf(stderr, "%s:1:%zu: error: bad character '%c' in key path '%.*s'\n", origin, i + 1, c, (int)plen,
              assignment);
      return -1;
    }
  }
  cfg_file *f = add_file(ctx, origin, NULL, ".", util_xstrdup(eq + 1));
  f->col_offset = (int)plen + 1;
  f->prefix = util_xmalloc(plen + 2);
  memcpy(f->prefix, assignment, plen + 1);
  f->prefix[plen + 1] = '\0';
  const cfg_node *v = parse_file(ctx, f);
  if (!v) return -1;
  if (v->kind == CFG_MAP && v->len == 0 && eq[1] == '\0') {
    cfg_node *empty = cfg_alloc(ctx, sizeof *empty);
    empty->kind = CFG_SCALAR;
    empty->scalar = "";
    empty->plain = 1;
    empty->file = f;
    empty->line = empty->col = 1;
    v = empty;
  }
  if (ctx->n_ovr == ctx->cap_ovr) {
    ctx->cap_ovr = ctx->cap_ovr ? 2 * ctx->cap_ovr : 8;
    ctx->ovr = util_xrealloc(ctx->ovr, ctx->cap_ovr * sizeof *ctx->ovr);
  }
  char *path = cfg_alloc(ctx, plen + 1);
  memcpy(path, assignment, plen);
  /* A later --set of the same key wins. */
  for (size_t i = 0; i < ctx->n_ovr; i++)
    if (strcmp(ctx->ovr[i].path, path) == 0) {
      ctx->ovr[i].value = v;
      return 0;
    }
  ctx->ovr[ctx->n_ovr++] = (cfg_ovr){path, v, NULL, 0};
  return 0;
}

int cfg_override_node(cfg_ctx *ctx, const char *path, const cfg_node *value, const cfg_node *at) {
  for (size_t i = 0; i < ctx->n_ovr; i++)
    if (strcmp(ctx->ovr[i].path, path) == 0) {
      ctx->ovr[i].value = value;
      ctx->ovr[i].at = at;
      return 0;
    }
  if (ctx->n_ovr == ctx->cap_ovr) {
    ctx->cap_ovr = ctx->cap_ovr ? 2 * ctx->cap_ovr : 8;
    ctx->ovr = util_xrealloc(ctx->ovr, ctx->cap_ovr * sizeof *ctx->ovr);
  }
  ctx->ovr[ctx->n_ovr++] = (cfg_ovr){cfg_strdup(ctx, path), value, at, 0};
  return 0;
}

void cfg_each_file(const cfg_ctx *ctx, void (*fn)(void *arg, const char *real_path, const char *text), void *arg) {
  size_t n = 0;
  for (const cfg_file *f = ctx->files; f; f = f->next) n += f->real != NULL;
  const cfg_file **v = util_xmalloc((n ? n : 1) * sizeof *v);
  size_t i = n;
  for (const cfg_file *f = ctx->files; f; f = f->next)
    if (f->real) v[--i] = f; /* the list is newest first */
  for (i = 0; i < n; i++) fn(arg, v[i]->real, v[i]->text);
  free(v);
}

static const cfg_node *find_override(cfg_ctx *ctx, const char *path) {
  for (size_t i = 0; i < ctx->n_ovr; i++)
    if (strcmp(ctx->ovr[i].path, path) == 0) {
      ctx->ovr[i].used = 1;
      return ctx->ovr[i].value;
    }
  return NULL;
}

/* 1 if some override lies strictly below `path` (so an absent mapping must still be bound). */
static int override_below(cfg_ctx *ctx, const char *path) {
  size_t n = strlen(path);
  for (size_t i = 0; i < ctx->n_ovr; i++)
    if (strncmp(ctx->ovr[i].path, path, n) == 0 && ctx->ovr[i].path[n] == '.') return 1;
  return 0;
}

static void note_seen(cfg_ctx *ctx, const char *path) {
  for (size_t i = 0; i < ctx->n_seen; i++)
    if (strcmp(ctx->seen[i], path) == 0) return;
  if (ctx->n_seen == ctx->cap_seen) {
    ctx->cap_seen = ctx->cap_seen ? 2 * ctx->cap_seen : 64;
    ctx->seen = util_xrealloc(ctx->seen, ctx->cap_seen * sizeof *ctx->seen);
  }
  ctx->seen[ctx->n_seen++] = cfg_strdup(ctx, path);
}

int cfg_overrides_check_used(cfg_ctx *ctx) {
  for (size_t i = 0; i < ctx->n_ovr; i++) {
    if (ctx->ovr[i].used) continue;
    const cfg_ovr *o = &ctx->ovr[i];
    const char *best = NULL;
    int best_d = 1 << 30;
    for (size_t j = 0; j < ctx->n_seen; j++) {
      int d = util_edit_distance(ctx->seen[j], o->path);
      if (d < best_d) best_d = d, best = ctx->seen[j];
    }
    if (o->at) {
      if (best && best_d <= 3) return cfg_error(ctx, o->at, "unknown key '%s' (did you mean '%s'?)", o->path, best);
      return cfg_error(ctx, o->at, "unknown key '%s'", o->path);
    }
    const cfg_file *f = o->value->file;
    fprintf(stderr, "%s:1:1: error: unknown key '%s'", f ? f->path : "--set", o->path);
    if (best && best_d <= 3) fprintf(stderr, " (did you mean '%s'?)", best);
    fputc('\n', stderr);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- binding */

static char *join_path(const char *prefix, const char *name) {
  util_buf b = {0};
  if (prefix && prefix[0]) util_buf_printf(&b, "%s.%s", prefix, name);
  else util_buf_printf(&b, "%s", name);
  return b.data;
}

static int bind_value(cfg_ctx *ctx, const cfg_key *k, const cfg_node *n, void *base, const char *path);

static const cfg_node *empty_map(cfg_ctx *ctx, const cfg_node *near) {
  cfg_node *m = cfg_alloc(ctx, sizeof *m);
  m->kind = CFG_MAP;
  if (near) {
    m->file = near->file;
    m->line = near->line;
    m->col = near->col;
  }
  return m;
}

static void keep_node(const cfg_key *k, void *base, const cfg_node *n) {
  if (k->flags & CFG_KEEP_NODE) *(const cfg_node **)((char *)base + k->node_offset) = n;
}

static int bind_include(cfg_ctx *ctx, const cfg_key *k, const cfg_node *n, void *base, const char *path) {
  void *field = (char *)base + k->offset;
  if (n->kind != CFG_SCALAR) {
    keep_node(k, base, n);
    return cfg_bind(ctx, n, k->sub, field, path);
  }
  if (need_scalar(ctx, n, "a mapping or the path of a YAML file")) return -1;
  char *file = util_path_join(n->file ? n->file->dir : ".", n->scalar);
  char *real = realpath(file, NULL);
  if (!real) {
    int e = errno;
    cfg_error(ctx, n, "cannot include '%s': %s", file, strerror(e));
    free(file);
    return -1;
  }
  for (int i = 0; i < ctx->inc_depth; i++)
    if (strcmp(ctx->inc_stack[i], real) == 0) {
      cfg_error(ctx, n, "include cycle: '%s' includes itself (through %d file%s)", file, ctx->inc_depth - i,
                ctx->inc_depth - i == 1 ? "" : "s");
      free(file);
      free(real);
      return -1;
    }
  if (ctx->inc_depth >= CFG_MAX_INCLUDE_DEPTH) {
    cfg_error(ctx, n, "includes nested deeper than %d", CFG_MAX_INCLUDE_DEPTH);
    free(file);
    free(real);
    return -1;
  }
  const cfg_node *root = cfg_load_file(ctx, file);
  free(file);
  if (!root) {
    free(real);
    return -1;
  }
  ctx->inc_stack = util_xrealloc(ctx->inc_stack, (size_t)(ctx->inc_depth + 1) * sizeof *ctx->inc_stack);
  ctx->inc_stack[ctx->inc_depth++] = cfg_strdup(ctx, real);
  free(real);
  keep_node(k, base, root);
  int rc = cfg_bind(ctx, root, k->sub, field, path);
  ctx->inc_depth--;
  return rc;
}

static int bind_list(cfg_ctx *ctx, const cfg_key *k, const cfg_node *n, void *base, const char *path) {
  if (n->kind != CFG_SEQ) return cfg_error(ctx, n, "%s: expected a sequence, found %s", k->name, kind_name(n->kind));
  size_t esz;
  switch (k->elem) {
  case CFG_INT: esz = sizeof(int64_t); break;
  case CFG_INT32: case CFG_BOOL: case CFG_ENUM: esz = sizeof(int); break;
  case CFG_UINT: esz = sizeof(uint64_t); break;
  case CFG_DOUBLE: esz = sizeof(double); break;
  case CFG_STRING: case CFG_PATH: esz = sizeof(char *); break;
  case CFG_NODE: esz = sizeof(const cfg_node *); break;
  case CFG_STRUCT: esz = k->elem_size; break;
  default: assert(!"unsupported list element type"); return -1;
  }
  char *arr = cfg_alloc(ctx, n->len * esz);
  for (size_t i = 0; i < n->len; i++) {
    char idx[32];
    snprintf(idx, sizeof idx, "%zu", i);
    char *ipath = join_path(path, idx);
    note_seen(ctx, ipath);
    const cfg_node *item = find_override(ctx, ipath);
    if (!item) item = n->items[i];
    void *elem = arr + i * esz;
    int rc;
    if (k->elem == CFG_STRUCT) {
      if (k->elem_init) k->elem_init(elem);
      rc = cfg_bind(ctx, item, k->sub, elem, ipath);
    } else if (k->elem == CFG_NODE) {
      *(const cfg_node **)elem = item;
      rc = 0;
    } else {
      rc = bind_scalar(ctx, k, k->elem, item, elem);
    }
    free(ipath);
    if (rc) return -1;
  }
  *(void **)((char *)base + k->offset) = arr;
  *(size_t *)((char *)base + k->count_offset) = n->len;
  return 0;
}

static int bind_value(cfg_ctx *ctx, const cfg_key *k, const cfg_node *n, void *base, const char *path) {
  void *field = (char *)base + k->offset;
  switch (k->type) {
  case CFG_STRUCT:
    keep_node(k, base, n);
    return cfg_bind(ctx, n, k->sub, field, path);
  case CFG_INCLUDE:
    return bind_include(ctx, k, n, base, path);
  case CFG_LIST:
    return bind_list(ctx, k, n, base, path);
  case CFG_NODE:
    *(const cfg_node **)field = n;
    return 0;
  case CFG_CUSTOM:
    return k->custom(ctx, n, field, k);
  default:
    return bind_scalar(ctx, k, k->type, n, field);
  }
}

static const cfg_key *table_find(const cfg_key *t, const char *name) {
  for (; t->name; t++)
    if (strcmp(t->name, name) == 0) return t;
  return NULL;
}

int cfg_bind_multi(cfg_ctx *ctx, const cfg_node *node, const cfg_key *const *tables, void *const *outs, int n,
                   const char *path) {
  if (node->kind != CFG_MAP) {
    if (node->kind == CFG_SCALAR && is_null_scalar(node)) node = empty_map(ctx, node);
    else return cfg_error(ctx, node, "expected a mapping%s%s, found %s", path && path[0] ? " for " : "",
                          path && path[0] ? path : "", kind_name(node->kind));
  }
  /* Unknown keys first: a misspelling is the likeliest mistake and the clearest message. */
  for (size_t i = 0; i < node->len; i++) {
    int known = 0;
    for (int t = 0; t < n && !known; t++) known = table_find(tables[t], node->keys[i]) != NULL;
    if (known) continue;
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int t = 0; t < n; t++)
      for (const cfg_key *k = tables[t]; k->name; k++) {
        int d = util_edit_distance(k->name, node->keys[i]);
        if (d < best_d) best_d = d, best = k->name;
      }
    int limit = (int)strlen(node->keys[i]) / 3 + 1;
    if (best && best_d <= (limit > 3 ? 3 : limit))
      return cfg_error(ctx, node->key_nodes[i], "unknown key '%s' (did you mean '%s'?)", node->keys[i], best);
    return cfg_error(ctx, node->key_nodes[i], "unknown key '%s'%s%s", node->keys[i], path && path[0] ? " in " : "",
                     path && path[0] ? path : "");
  }
  for (int t = 0; t < n; t++) {
    for (const cfg_key *k = tables[t]; k->name; k++) {
      char *full = join_path(path, k->name);
      note_seen(ctx, full);
      const cfg_node *v = find_override(ctx, full);
      if (!v) v = cfg_node_get(node, k->name);
      if (!v && (k->type == CFG_STRUCT || k->type == CFG_INCLUDE) && override_below(ctx, full))
        v = empty_map(ctx, node);
      int rc = 0;
      if (!v) {
        if (k->flags & CFG_REQUIRED)
          rc = cfg_error(ctx, node, "missing key '%s'%s%s%s%s", k->name, path && path[0] ? " in " : "",
                         path && path[0] ? path : "", k->doc ? " — " : "", k->doc ? k->doc : "");
      } else {
        rc = bind_value(ctx, k, v, outs[t], full);
      }
      free(full);
      if (rc) return -1;
    }
  }
  return 0;
}

int cfg_bind(cfg_ctx *ctx, const cfg_node *node, const cfg_key *table, void *out, const char *path) {
  const cfg_key *const tables[1] = {table};
  void *const outs[1] = {out};
  return cfg_bind_multi(ctx, node, tables, outs, 1, path);
}

int cfg_load_bind(cfg_ctx *ctx, const char *path, const cfg_key *table, void *out) {
  const cfg_node *root = cfg_load_file(ctx, path);
  if (!root) return -1;
  char *real = realpath(path, NULL);
  int pushed = real != NULL;
  if (pushed) {
    ctx->inc_stack = util_xrealloc(ctx->inc_stack, (size_t)(ctx->inc_depth + 1) * sizeof *ctx->inc_stack);
    ctx->inc_stack[ctx->inc_depth++] = cfg_strdup(ctx, real);
    free(real);
  }
  int rc = cfg_bind(ctx, root, table, out, "");
  if (pushed) ctx->inc_depth--;
  return rc;
}

/* ---------------------------------------------------------------- docs */

static const char *type_name(const cfg_key *k) {
  switch (k->type) {
  case CFG_INT: case CFG_INT32: return "int";
  case CFG_UINT: return "uint";
  case CFG_DOUBLE: return "number";
  case CFG_BOOL: return "bool";
  case CFG_STRING: return "string";
  case CFG_PATH: return "path";
  case CFG_ENUM: return "name";
  case CFG_STRUCT: return "mapping";
  case CFG_INCLUDE: return "mapping|file";
  case CFG_LIST: return "list";
  case CFG_NODE: case CFG_CUSTOM: return "yaml";
  }
  return "?";
}

void cfg_print_keys(const cfg_key *table, int indent, void *file) {
  FILE *f = file;
  for (const cfg_key *k = table; k->name; k++) {
    fprintf(f, "%*s%-22s %-12s %s%s", indent, "", k->name, type_name(k), k->flags & CFG_REQUIRED ? "(required) " : "",
            k->doc ? k->doc : "");
    if (k->type == CFG_ENUM && k->choices) {
      fputs(" [", f);
      for (int i = 0; k->choices[i]; i++) fprintf(f, "%s%s", i ? "|" : "", k->choices[i]);
      fputc(']', f);
    }
    fputc('\n', f);
    if ((k->type == CFG_STRUCT || k->type == CFG_INCLUDE || (k->type == CFG_LIST && k->elem == CFG_STRUCT)) && k->sub)
      cfg_print_keys(k->sub, indent + 2, f);
  }
}
