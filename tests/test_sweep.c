/* tests/test_sweep.c — the sweep engine: expansion (grid, zip, both, the point order), every sweep
 * error with its path:line:col, checking all points before running, input fingerprints, the
 * journal's lines (escapes, checksums, torn lines, which record wins) and the results table.
 *
 * The program also stands in for moesim with a deterministic kind for tests/t_sweep.sh:
 * `test_sweep moesim run|plot ARGS...` runs the real `moesim run`/`moesim plot` code with the
 * experiment kind "probe" below, whose rows are exact functions of its inputs (so --jobs N and
 * resumed runs can be compared byte for byte) and which can sleep, fail or crash on request.
 * This file defines the kinds table `exp_kinds` itself, so the linker takes it instead of
 * sim/exp_kinds.c from libmoesim.a. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "cli.h"
#include "exp.h"
#include "plot.h"
#include "sweep.h"
#include "sweep_store.h"
#include "test.h"
#include "util.h"

/* ---------------------------------------------------------------- the probe kind */

typedef struct probe_link {
  double bw_gbps;    /* link bandwidth, GB/s */
  double latency_ns; /* latency */
} probe_link;

typedef struct probe_spec {
  double x;          /* a number to sweep */
  int64_t n;         /* another */
  char *label;       /* a string */
  probe_link link;   /* a nested mapping, or a file naming one */
  double *sizes;     /* a list */
  size_t n_sizes;    /* its length */
  int64_t sleep_ms;  /* time each point takes */
  int fail;          /* the run fails (exit 2, a message) */
  int crash;         /* the run dies from SIGABRT */
} probe_spec;

static const cfg_key probe_link_keys[] = {
    {.name = "bw_gbps", .type = CFG_DOUBLE, .offset = offsetof(probe_link, bw_gbps), .flags = CFG_POSITIVE,
     .doc = "bandwidth, GB/s"},
    {.name = "latency_ns", .type = CFG_DOUBLE, .offset = offsetof(probe_link, latency_ns), .flags = CFG_NONNEG,
     .doc = "latency, ns"},
    CFG_END};

static const cfg_key probe_keys[] = {
    {.name = "x", .type = CFG_DOUBLE, .offset = offsetof(probe_spec, x), .doc = "a number"},
    {.name = "n", .type = CFG_INT, .offset = offsetof(probe_spec, n), .flags = CFG_POSITIVE, .doc = "a count"},
    {.name = "label", .type = CFG_STRING, .offset = offsetof(probe_spec, label), .doc = "a name"},
    {.name = "link", .type = CFG_INCLUDE, .offset = offsetof(probe_spec, link), .sub = probe_link_keys,
     .doc = "a link (mapping or file)"},
    {.name = "sizes", .type = CFG_LIST, .offset = offsetof(probe_spec, sizes), .elem = CFG_DOUBLE,
     .count_offset = offsetof(probe_spec, n_sizes), .doc = "numbers"},
    {.name = "sleep_ms", .type = CFG_INT, .offset = offsetof(probe_spec, sleep_ms), .flags = CFG_NONNEG,
     .doc = "ms each run takes"},
    {.name = "fail", .type = CFG_BOOL, .offset = offsetof(probe_spec, fail), .doc = "fail the run"},
    {.name = "crash", .type = CFG_BOOL, .offset = offsetof(probe_spec, crash), .doc = "crash the run"},
    CFG_END};

static void probe_init(void *p) {
  probe_spec *s = p;
  s->n = 1;
  s->label = "none";
  s->link.bw_gbps = 50;
}

static int probe_run(const exp_run *run, void *p, res_row *row) {
  probe_spec *s = p;
  if (s->sleep_ms > 0) {
    struct timespec ts = {s->sleep_ms / 1000, (long)(s->sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
  }
  if (s->crash) abort(); /* like a failed assert */
  if (s->fail) {
    fprintf(stderr, "%s: error: probe asked to fail, at x=%g\n", run->exp_path, s->x);
    return UTIL_EXIT_USAGE;
  }
  double sum = 0;
  for (size_t i = 0; i < s->n_sizes; i++) sum += s->sizes[i];
  double t = s->x * (double)s->n + s->link.latency_ns * 1e-3;
  res_set(row, "label", "%s", s->label);
  res_set_f(row, "x", s->x);
  res_set_i(row, "n", s->n);
  res_set_f(row, "sizes_sum", sum);
  res_set_f(row, "tokens_per_s", 1000.0 * s->link.bw_gbps / (1.0 + t));
  res_set_f(row, "step_time_s", 1.0 + t);
  res_set_f(row, "dispatch_us", 10.0 * s->x);
  res_set_f(row, "experts_us", 5.0 * (double)s->n);
  res_set_f(row, "combine_us", s->link.latency_ns * 1e-3);
  res_set_f(row, "dispatch_gbyte_s", s->link.bw_gbps * 0.8);
  res_set_f(row, "combine_gbyte_s", s->link.bw_gbps * 0.75);
  return 0;
}

static const char *const probe_plots[] = {"throughput_vs:", "step_time_vs:", "breakdown", "breakdown:", "a2a_bw",
                                          "a2a_bw:", NULL};

static const exp_kind probe_kind = {
    .name = "probe",
    .summary = "a deterministic test kind: rows are exact functions of the keys",
    .keys = probe_keys,
    .spec_size = sizeof(probe_spec),
    .init = probe_init,
    .run = probe_run,
    .plots = probe_plots,
};

const exp_kind *const exp_kinds[] = {&probe_kind, NULL};

/* ---------------------------------------------------------------- helpers */

/* Parses `sweep_yaml` (the value of sweep:) from a file; returns 0/-1 and, on error, the message. */
static int parse(cfg_ctx *ctx, const char *sweep_yaml, sweep *s, char **err) {
  util_buf b = {0};
  util_buf_printf(&b, "sweep:\n%s", sweep_yaml);
  const char *path = t_put("sw.yaml", b.data);
  util_buf_free(&b);
  const cfg_node *root = cfg_load_file(ctx, path);
  T_CHECK(root != NULL);
  if (!root) return -1;
  t_capture_begin();
  int rc = sweep_parse(ctx, cfg_node_get(root, "sweep"), s);
  char *text = t_capture_end();
  if (err) *err = text;
  else free(text);
  return rc;
}

/* "k=v k=v" of a point. */
static const char *label(cfg_ctx *ctx, const sweep *s, size_t p) {
  char *l = sweep_point_label(s, p, ctx);
  const char *r = cfg_strdup(ctx, l);
  free(l);
  return r;
}

/* ---------------------------------------------------------------- expansion */

static void test_grid(void) {
  cfg_ctx *ctx = cfg_new();
  sweep s;
  T_EQ_INT(parse(ctx, "  grid: {a: [1, 2], b.c: [x, y, z]}\n", &s, NULL), 0);
  T_EQ_INT(s.n_points, 6);
  T_EQ_INT(s.n_keys, 2);
  T_EQ_INT(s.n_axes, 2);
  T_EQ_STR(s.keys[1], "b.c");
  /* The first axis varies slowest. */
  T_EQ_STR(label(ctx, &s, 0), "a=1 b.c=x");
  T_EQ_STR(label(ctx, &s, 1), "a=1 b.c=y");
  T_EQ_STR(label(ctx, &s, 2), "a=1 b.c=z");
  T_EQ_STR(label(ctx, &s, 3), "a=2 b.c=x");
  T_EQ_STR(label(ctx, &s, 5), "a=2 b.c=z");
  cfg_free(ctx);
}

static void test_zip(void) {
  cfg_ctx *ctx = cfg_new();
  sweep s;
  T_EQ_INT(parse(ctx, "  zip: {a: [1, 2, 3], b: [x, y, z]}\n", &s, NULL), 0);
  T_EQ_INT(s.n_points, 3);
  T_EQ_INT(s.n_axes, 1);
  T_EQ_STR(label(ctx, &s, 0), "a=1 b=x");
  T_EQ_STR(label(ctx, &s, 2), "a=3 b=z");
  cfg_free(ctx);
}

static void test_grid_and_zip(void) {
  cfg_ctx *ctx = cfg_new();
  sweep s;
  /* grid written first: the grid key is outermost, the zip tuple varies fastest. */
  T_EQ_INT(parse(ctx, "  grid: {g: [p, q]}\n  zip: {a: [1, 2], b: [x, y]}\n", &s, NULL), 0);
  T_EQ_INT(s.n_points, 4);
  T_EQ_STR(label(ctx, &s, 0), "g=p a=1 b=x");
  T_EQ_STR(label(ctx, &s, 1), "g=p a=2 b=y");
  T_EQ_STR(label(ctx, &s, 2), "g=q a=1 b=x");
  cfg_ctx *ctx2 = cfg_new();
  sweep s2;
  T_EQ_INT(parse(ctx2, "  zip: {a: [1, 2], b: [x, y]}\n  grid: {g: [p, q], h: [7]}\n", &s2, NULL), 0);
  T_EQ_INT(s2.n_points, 4);
  T_EQ_STR(label(ctx2, &s2, 0), "a=1 b=x g=p h=7");
  T_EQ_STR(label(ctx2, &s2, 1), "a=1 b=x g=q h=7");
  T_EQ_STR(label(ctx2, &s2, 3), "a=2 b=y g=q h=7");
  cfg_free(ctx);
  cfg_free(ctx2);
}

static void test_values_are_yaml(void) {
  cfg_ctx *ctx = cfg_new();
  sweep s;
  T_EQ_INT(parse(ctx, "  grid:\n    sizes: [[1, 2], [3]]\n    link: [{bw_gbps: 5}, l.yaml]\n", &s, NULL), 0);
  T_EQ_INT(s.n_points, 4);
  T_EQ_INT(cfg_node_kind(sweep_value(&s, 0, 0)), CFG_SEQ);
  T_EQ_INT(cfg_node_kind(sweep_value(&s, 0, 1)), CFG_MAP);
  T_EQ_STR(label(ctx, &s, 3), "sizes=[3] link=l.yaml");
  /* No sweep, or an empty one, is one point. */
  T_EQ_INT(sweep_parse(ctx, NULL, &s), 0);
  T_EQ_INT(s.n_points, 1);
  T_EQ_INT(s.n_keys, 0);
  cfg_free(ctx);
}

/* Each malformed sweep is an error at the offending node. */
static void test_errors(void) {
  static const struct {
    const char *yaml;   /* the sweep: value */
    const char *where;  /* expected ":line:col: error:" */
    const char *what;   /* expected words */
  } cases[] = {
      {"  zip: {a: [1, 2], b: [x]}\n", ":2:23: error:", "equally long"},
      {"  grid: {a: []}\n", ":2:13: error:", "empty"},
      {"  grid: {a: 3}\n", ":2:13: error:", "expected a list"},
      {"  gird: {a: [1]}\n", ":2:3: error:", "did you mean 'grid'"},
      {"  grid: {a: [1]}\n  zip: {a: [2]}\n", ":3:9: error:", "swept twice"},
      {"  grid: {name: [p, q]}\n", ":2:10: error:", "cannot be swept"},
      {"  grid: {plots.0: [p]}\n", ":2:10: error:", "cannot be swept"},
      {"  grid: {a..b: [1]}\n", ":2:10: error:", "dotted key path"},
      {"  grid: [a, b]\n", ":2:9: error:", "expected a mapping"},
      {"  [1, 2]\n", ":2:3: error:", "grid: and/or zip:"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cfg_ctx *ctx = cfg_new();
    sweep s;
    char *err = NULL;
    T_CHECKF(parse(ctx, cases[i].yaml, &s, &err) == -1, "case %zu accepted", i);
    T_CHECKF(err && strstr(err, cases[i].where) && strstr(err, cases[i].what), "case %zu: %s", i, err ? err : "");
    free(err);
    cfg_free(ctx);
  }
}

/* ---------------------------------------------------------------- points */

static const char *experiment(const char *sweep_yaml, const char *extra) {
  util_buf b = {0};
  util_buf_printf(&b, "name: t\nkind: probe\ndescription: a test\nx: 1.5\nn: 2\nlink: {bw_gbps: 10, latency_ns: 500}\n%s"
                      "sweep:\n%s", extra ? extra : "", sweep_yaml);
  const char *p = t_put("exp.yaml", b.data);
  util_buf_free(&b);
  return p;
}

/* Loads the base experiment, parses its sweep and checks every point. */
static int check_points(const char *path, char **sets, size_t n_sets, uint64_t **hashes, size_t *n, char **err) {
  cfg_ctx *ctx = cfg_new();
  exp_common common;
  const exp_kind *kind;
  void *spec = NULL;
  sweep s;
  t_capture_begin();
  int rc = exp_load(ctx, path, &common, &kind, &spec);
  if (rc == 0) rc = sweep_parse(ctx, common.sweep, &s) ? 2 : 0;
  if (rc == 0) {
    sweep_spec sp = {path, sets, n_sets, &s};
    *n = s.n_points;
    *hashes = util_xcalloc(s.n_points, sizeof **hashes);
    rc = sweep_check_all(&sp, *hashes, 10);
  }
  char *text = t_capture_end();
  if (err) *err = text;
  else free(text);
  free(spec);
  cfg_free(ctx);
  return rc;
}

static void test_check_all_points(void) {
  uint64_t *h = NULL;
  size_t n = 0;
  char *err = NULL;
  /* A key no point can bind is reported at the sweep key, before anything runs. */
  const char *p = experiment("  grid: {x: [1, 2], lnk.bw_gbps: [5, 6]}\n", NULL);
  T_EQ_INT(check_points(p, NULL, 0, &h, &n, &err), 2);
  T_CHECKF(err && strstr(err, "exp.yaml:8:21: error: unknown key 'lnk.bw_gbps' (did you mean 'link.bw_gbps'?)"), "%s", err);
  T_CHECKF(err && strstr(err, "in sweep point 0 of 4"), "%s", err);
  /* The same error at every point is shown once. */
  T_CHECKF(err && !strstr(err, "in sweep point 1 of 4") && strstr(err, "4 of 4 sweep points fail to load (1 shown)"), "%s", err);
  free(err);
  free(h);
  h = NULL;
  /* A value that fails its key's check only at some points: the point is named. */
  p = experiment("  grid: {n: [1, 2, -3]}\n", NULL);
  T_EQ_INT(check_points(p, NULL, 0, &h, &n, &err), 2);
  T_CHECKF(err && strstr(err, "exp.yaml:8:20: error:") && strstr(err, "in sweep point 2 of 3 (n=-3)"), "%s", err);
  free(err);
  free(h);
  h = NULL;
  /* All good: a fingerprint per point, distinct where the inputs differ. */
  p = experiment("  grid: {x: [1, 2]}\n  zip: {link.bw_gbps: [5, 6], sizes: [[1], [1, 2]]}\n", NULL);
  T_EQ_INT(check_points(p, NULL, 0, &h, &n, NULL), 0);
  T_EQ_INT(n, 4);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) T_CHECKF(h[i] != h[j], "points %zu and %zu share a fingerprint", i, j);
  free(h);
}

static uint64_t hash_of(const char *path, char **sets, size_t n_sets, size_t point) {
  uint64_t *h = NULL, r = 0;
  size_t n = 0;
  if (check_points(path, sets, n_sets, &h, &n, NULL) == 0 && point < n) r = h[point];
  free(h);
  return r;
}

static void test_fingerprints(void) {
  t_put("link.yaml", "bw_gbps: 7\nlatency_ns: 100\n");
  const char *p = experiment("  grid: {x: [1, 2]}\n", NULL);
  uint64_t base = hash_of(p, NULL, 0, 1);
  T_CHECK(base != 0);
  T_CHECK(hash_of(p, NULL, 0, 1) == base); /* deterministic */
  /* More values in the sweep, a new description, other plots: point x=2 is the same point. */
  p = experiment("  grid: {x: [0, 1, 2]}\n", "plots: [breakdown]\n");
  T_CHECK(hash_of(p, NULL, 0, 2) == base);
  /* A changed key, or a --set, is a different point. */
  p = experiment("  grid: {x: [1, 2]}\n", "label: other\n");
  T_CHECK(hash_of(p, NULL, 0, 1) != base);
  char *sets[] = {"label=other"};
  p = experiment("  grid: {x: [1, 2]}\n", NULL);
  T_CHECK(hash_of(p, sets, 1, 1) != base);
  /* An included file: its contents count. */
  p = experiment("  grid: {link: [link.yaml]}\n", NULL);
  uint64_t inc = hash_of(p, NULL, 0, 0);
  T_CHECK(inc != 0);
  t_put("link.yaml", "bw_gbps: 8\nlatency_ns: 100\n");
  T_CHECK(hash_of(p, NULL, 0, 0) != inc);
}

/* ---------------------------------------------------------------- journal and table */

static void test_record_lines(void) {
  sweep_rec r = {.hash = 0x0123456789abcdefull, .ok = 1};
  res_set(&r.row, "a", "1");
  res_set(&r.row, "odd=name", "tab\there back\\slash = sign");
  util_buf b = {0};
  sweep_rec_encode(&r, &b);
  T_CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
  T_CHECK(strchr(b.data, '\n') == b.data + b.len - 1); /* one line */
  sweep_rec d;
  T_EQ_INT(sweep_rec_decode(b.data, b.len - 1, &d), 0);
  T_CHECK(d.hash == r.hash && d.ok && !d.error);
  T_EQ_INT(d.row.len, 2);
  T_EQ_STR(d.row.cols[1], "odd=name");
  /* res_set keeps commas out; the journal keeps tabs and backslashes exactly. */
  T_EQ_STR(d.row.vals[1], "tab\there back\\slash = sign");
  sweep_rec_free(&d);
  /* Any flipped byte, or a torn line, is rejected. */
  for (size_t i = 0; i + 1 < b.len; i += 7) {
    char *copy = util_xstrdup(b.data);
    copy[i] ^= 0x01;
    T_CHECKF(sweep_rec_decode(copy, b.len - 1, &d) != 0, "flip at %zu accepted", i);
    free(copy);
  }
  T_CHECK(sweep_rec_decode(b.data, b.len / 2, &d) != 0);
  util_buf_free(&b);
  sweep_rec f = {.hash = 7, .ok = 0, .error = util_xstrdup("exit status 2")};
  sweep_rec_encode(&f, &b);
  T_EQ_INT(sweep_rec_decode(b.data, b.len - 1, &d), 0);
  T_CHECK(!d.ok && d.error && strcmp(d.error, "exit status 2") == 0 && d.row.len == 0);
  sweep_rec_free(&d);
  sweep_rec_free(&f);
  sweep_rec_free(&r);
  util_buf_free(&b);
}

static void test_journal(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/res", t_scratch());
  sweep_journal j;
  T_EQ_INT(sweep_journal_open(dir, 1, &j), 0);
  sweep_rec a = {.hash = 1, .ok = 0, .error = util_xstrdup("boom")};
  T_EQ_INT(sweep_journal_add(&j, &a), 0);
  sweep_rec b = {.hash = 1, .ok = 1};
  res_set(&b.row, "v", "42");
  T_EQ_INT(sweep_journal_add(&j, &b), 0);
  sweep_rec c = {.hash = 1, .ok = 0, .error = util_xstrdup("later failure")}; /* never beats ok */
  T_EQ_INT(sweep_journal_add(&j, &c), 0);
  sweep_rec d = {.hash = 2, .ok = 1};
  res_set(&d.row, "v", "7");
  T_EQ_INT(sweep_journal_add(&j, &d), 0);
  /* A second run on the same directory is refused while the first holds it. */
  sweep_journal other;
  t_capture_begin();
  T_EQ_INT(sweep_journal_open(dir, 0, &other), UTIL_EXIT_SYS);
  char *err = t_capture_end();
  T_CHECKF(err && strstr(err, "another moesim run"), "%s", err);
  free(err);
  char *path = util_xstrdup(j.path);
  sweep_journal_close(&j);
  /* A torn tail (a kill mid-write) and a corrupt line are dropped; the rest reads back. */
  FILE *f = fopen(path, "a");
  fputs("0000000000000003\tok\t\tv=1\t#deadbeef\n0000000000000004\tok\t\tv=", f);
  fclose(f);
  T_EQ_INT(sweep_journal_open(dir, 0, &j), 0);
  T_EQ_INT(j.dropped, 2);
  T_EQ_INT(j.n, 2);
  const sweep_rec *r1 = sweep_journal_find(&j, 1), *r2 = sweep_journal_find(&j, 2);
  T_CHECK(r1 && r1->ok && strcmp(res_get(&r1->row, "v"), "42") == 0);
  T_CHECK(r2 && r2->ok);
  T_CHECK(sweep_journal_find(&j, 3) == NULL && sweep_journal_find(&j, 4) == NULL);
  sweep_journal_close(&j);
  /* It was compacted: one line per fingerprint, no torn tail. */
  size_t len;
  char *text = util_read_file(path, &len);
  int lines = 0;
  for (size_t i = 0; text && i < len; i++) lines += text[i] == '\n';
  T_EQ_INT(lines, 2);
  T_CHECK(text && len > 0 && text[len - 1] == '\n');
  free(text);
  /* --fresh forgets. */
  T_EQ_INT(sweep_journal_open(dir, 1, &j), 0);
  T_EQ_INT(j.n, 0);
  sweep_journal_close(&j);
  free(path);
}

static void test_many_records(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/many", t_scratch());
  sweep_journal j;
  T_EQ_INT(sweep_journal_open(dir, 1, &j), 0);
  for (uint64_t h = 0; h < 3000; h++) {
    sweep_rec r = {.hash = h * 0x9e3779b97f4a7c15ull, .ok = 1};
    res_set_i(&r.row, "i", (long long)h);
    T_EQ_INT(sweep_journal_add(&j, &r), 0);
  }
  int found = 0;
  for (uint64_t h = 0; h < 3000; h++) {
    const sweep_rec *r = sweep_journal_find(&j, h * 0x9e3779b97f4a7c15ull);
    found += r && atoll(res_get(&r->row, "i")) == (long long)h;
  }
  T_EQ_INT(found, 3000);
  sweep_journal_close(&j);
}

static void test_csv(void) {
  sweep_rec ok0 = {.hash = 1, .ok = 1}, bad1 = {.hash = 2, .ok = 0, .error = util_xstrdup("no, it broke")},
            ok3 = {.hash = 3, .ok = 1};
  res_set(&ok0.row, "a", "1");
  res_set(&ok3.row, "a", "3");
  res_set(&ok3.row, "b", "x");
  const sweep_rec *recs[4] = {&ok0, &bad1, NULL, &ok3};
  const char *keys[] = {"p.q"};
  const char *swept[] = {"8", "16", "32", "[1; 2]"};
  util_buf b = {0};
  sweep_csv(4, 1, keys, swept, recs, &b);
  T_EQ_STR(b.data, "point,p.q,status,error,a,b\n"
                   "0,8,ok,,1,\n"
                   "1,16,failed,no; it broke,,\n"
                   "3,[1; 2],ok,,3,x\n");
  util_buf_free(&b);
  sweep_rec_free(&ok0);
  sweep_rec_free(&bad1);
  sweep_rec_free(&ok3);
}

static void test_plot_names(void) {
  char *n = plot_figure_name("throughput_vs:comm_sms");
  T_EQ_STR(n, "throughput_vs_comm_sms");
  free(n);
  n = plot_figure_name("breakdown::a+b");
  T_EQ_STR(n, "breakdown_a_b");
  free(n);
  n = plot_figure_name("a2a_bw:parallel.ep");
  T_EQ_STR(n, "a2a_bw_parallel.ep");
  free(n);
  T_CHECK(plot_kind_known("pareto:time:cost"));
  T_CHECK(!plot_kind_known("paretoo"));
  const char *p = t_put("q.csv", "a,\"b,c\",d\n1,\"x \"\"y\"\"\",3\n\n# comment\n4,5\n");
  plot_table t;
  T_EQ_INT(plot_table_read(p, &t), 0);
  T_EQ_INT(t.n_cols, 3);
  T_EQ_INT(t.n_rows, 2);
  T_EQ_STR(t.cols[1], "b,c");
  T_EQ_STR(t.cells[1], "x \"y\"");
  T_EQ_STR(t.cells[5], "");
  T_EQ_INT(plot_table_col(&t, "d"), 2);
  plot_table_free(&t);
  p = t_put("bad.csv", "a,b\n1,2,3\n");
  t_capture_begin();
  T_EQ_INT(plot_table_read(p, &t), 2);
  char *err = t_capture_end();
  T_CHECKF(err && strstr(err, "bad.csv:2: error:"), "%s", err);
  free(err);
}


int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "moesim") == 0) {
    if (strcmp(argv[2], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[2], "plot") == 0) return cmd_plot(argc - 2, argv + 2);
    fprintf(stderr, "test_sweep: moesim stands in for run and plot only\n");
    return 2;
  }
  T_RUN(test_grid);
  T_RUN(test_zip);
  T_RUN(test_grid_and_zip);
  T_RUN(test_values_are_yaml);
  T_RUN(test_errors);
  T_RUN(test_check_all_points);
  T_RUN(test_fingerprints);
  T_RUN(test_record_lines);
  T_RUN(test_journal);
  T_RUN(test_many_records);
  T_RUN(test_csv);
  T_RUN(test_plot_names);
  return t_done();
}
