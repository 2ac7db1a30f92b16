/* tests/test_cfg.c — the YAML loader: binding, types, ranges, includes, overrides, and every
 * error the issue names (malformed YAML, unknown key, wrong type, missing key, out-of-range value,
 * missing include, include cycle), each checked for its path:line:col message. */
#include <stdlib.h>
#include <unistd.h>

#include "cfg.h"
#include "test.h"
#include "util.h"

typedef struct nic_spec {
  double bw_gbps;
  double latency_ns;
} nic_spec;

typedef struct link_spec {
  char *name;
  double bw_gbps;
} link_spec;

typedef struct cluster_spec {
  char *name;
  int64_t nodes;
  int gpus_per_node;
  int kind;
  int pxn;
  nic_spec nic;
  double *sizes;
  size_t n_sizes;
  link_spec *links;
  size_t n_links;
  char *trace;
} cluster_spec;

static const cfg_key nic_keys[] = {
    {.name = "bw_gbps", .type = CFG_DOUBLE, .offset = offsetof(nic_spec, bw_gbps), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "NIC bandwidth, Gb/s"},
    {.name = "latency_ns", .type = CFG_DOUBLE, .offset = offsetof(nic_spec, latency_ns), .flags = CFG_NONNEG},
    CFG_END};

static void link_init(void *p) { ((link_spec *)p)->bw_gbps = 100; }
static const cfg_key link_keys[] = {
    {.name = "name", .type = CFG_STRING, .offset = offsetof(link_spec, name), .flags = CFG_REQUIRED},
    {.name = "bw_gbps", .type = CFG_DOUBLE, .offset = offsetof(link_spec, bw_gbps), .flags = CFG_POSITIVE},
    CFG_END};

static const char *const kinds[] = {"fat_tree", "dragonfly", "slim_fly", NULL};
static const cfg_key cluster_keys[] = {
    {.name = "name", .type = CFG_STRING, .offset = offsetof(cluster_spec, name), .flags = CFG_REQUIRED},
    {.name = "nodes", .type = CFG_INT, .offset = offsetof(cluster_spec, nodes), .flags = CFG_POSITIVE},
    {.name = "gpus_per_node", .type = CFG_INT32, .offset = offsetof(cluster_spec, gpus_per_node),
     .flags = CFG_RANGE, .min = 1, .max = 72},
    {.name = "kind", .type = CFG_ENUM, .offset = offsetof(cluster_spec, kind), .choices = kinds},
    {.name = "pxn", .type = CFG_BOOL, .offset = offsetof(cluster_spec, pxn)},
    {.name = "nic", .type = CFG_INCLUDE, .offset = offsetof(cluster_spec, nic), .sub = nic_keys},
    {.name = "sizes", .type = CFG_LIST, .offset = offsetof(cluster_spec, sizes), .elem = CFG_DOUBLE,
     .count_offset = offsetof(cluster_spec, n_sizes), .flags = CFG_POSITIVE},
    {.name = "links", .type = CFG_LIST, .offset = offsetof(cluster_spec, links), .elem = CFG_STRUCT,
     .elem_size = sizeof(link_spec), .sub = link_keys, .count_offset = offsetof(cluster_spec, n_links),
     .elem_init = link_init},
    {.name = "trace", .type = CFG_PATH, .offset = offsetof(cluster_spec, trace)},
    CFG_END};

/* Loads `text` as file `name` and binds it; returns rc and the captured stderr in *err. */
static int load(const char *name, const char *text, cluster_spec *out, char **err, const char *const *sets) {
  const char *p = t_put(name, text);
  cfg_ctx *ctx = cfg_new();
  memset(out, 0, sizeof *out);
  out->gpus_per_node = 8;
  t_capture_begin();
  int rc = 0;
  for (int i = 0; sets && sets[i] && rc == 0; i++) rc = cfg_override(ctx, sets[i], "--set");
  if (rc == 0) rc = cfg_load_bind(ctx, p, cluster_keys, out);
  if (rc == 0) rc = cfg_overrides_check_used(ctx);
  char *e = t_capture_end();
  if (err) *err = e;
  else free(e);
  /* Copy what tests read before the ctx (which owns the strings) goes. */
  static char name_copy[64], trace_copy[512];
  static double sizes_copy[16];
  static link_spec links_copy[8];
  if (rc == 0) {
    snprintf(name_copy, sizeof name_copy, "%s", out->name ? out->name : "");
    out->name = name_copy;
    if (out->trace) {
      snprintf(trace_copy, sizeof trace_copy, "%s", out->trace);
      out->trace = trace_copy;
    }
    for (size_t i = 0; i < out->n_sizes && i < 16; i++) sizes_copy[i] = out->sizes[i];
    out->sizes = sizes_copy;
    for (size_t i = 0; i < out->n_links && i < 8; i++) {
      links_copy[i] = out->links[i];
      links_copy[i].name = NULL;
    }
    out->links = links_copy;
  }
  cfg_free(ctx);
  return rc;
}

static int has(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

static void test_bind_all_types(void) {
  cluster_spec c;
  char *err;
  int rc = load("ok.yaml",
                "name: v3\nnodes: 256\ngpus_per_node: 8\nkind: dragonfly\npxn: yes\n"
                "nic: {bw_gbps: 400, latency_ns: 700}\nsizes: [8, 16.5, 32]\n"
                "links:\n  - {name: a, bw_gbps: 50}\n  - {name: b}\ntrace: traces/x.bin\n",
                &c, &err, NULL);
  T_EQ_INT(rc, 0);
  T_CHECKF(err && !err[0], "unexpected stderr: %s", err);
  T_EQ_STR(c.name, "v3");
  T_EQ_INT(c.nodes, 256);
  T_EQ_INT(c.kind, 1);
  T_EQ_INT(c.pxn, 1);
  T_NEAR(c.nic.bw_gbps, 400, 0);
  T_NEAR(c.nic.latency_ns, 700, 0);
  T_EQ_INT(c.n_sizes, 3);
  T_NEAR(c.sizes[1], 16.5, 0);
  T_EQ_INT(c.n_links, 2);
  T_NEAR(c.links[0].bw_gbps, 50, 0);
  T_NEAR(c.links[1].bw_gbps, 100, 0); /* elem_init default */
  char want[600];
  snprintf(want, sizeof want, "%s/traces/x.bin", t_scratch());
  T_EQ_STR(c.trace, want); /* paths resolve against the naming file */
  free(err);
}

static void test_defaults_kept(void) {
  cluster_spec c;
  int rc = load("defaults.yaml", "name: small\n", &c, NULL, NULL);
  T_EQ_INT(rc, 0);
  T_EQ_INT(c.gpus_per_node, 8);
  T_EQ_INT(c.n_sizes, 0);
}

static void test_malformed_yaml(void) {
  cluster_spec c;
  char *err;
  int rc = load("bad.yaml", "name: x\nnodes: [1, 2\n", &c, &err, NULL);
  T_CHECK(rc != 0);
  T_CHECKF(has(err, "bad.yaml:") && has(err, ": error: "), "%s", err);
  free(err);
  rc = load("bad2.yaml", "name: x\n  nodes: 3\n", &c, &err, NULL);
  T_CHECK(rc != 0);
  T_CHECKF(has(err, "bad2.yaml:2:"), "%s", err);
  free(err);
}

static void test_unknown_key_did_you_mean(void) {
  cluster_spec c;
  char *err;
  int rc = load("typo.yaml", "name: x\nnic:\n  bw_gpbs: 400\n", &c, &err, NULL);
  T_CHECK(rc != 0);
  T_CHECKF(has(err, "typo.yaml:3:3: error: unknown key 'bw_gpbs' (did you mean 'bw_gbps'?)"), "%s", err);
  T_CHECKF(has(err, "  bw_gpbs: 400") && has(err, "^"), "source line and caret expected: %s", err);
  free(err);
  rc = load("typo2.yaml", "name: x\nzebra: 1\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "typo2.yaml:2:1: error: unknown key 'zebra'") && !has(err, "did you mean"), "%s", err);
  free(err);
}

static void test_wrong_type(void) {
  cluster_spec c;
  char *err;
  int rc = load("type.yaml", "name: x\nnodes: many\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "type.yaml:2:8: error: expected an integer, found 'many'"), "%s", err);
  free(err);
  rc = load("type2.yaml", "name: x\nnic: [1, 2]\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "type2.yaml:2:6: error: expected a mapping"), "%s", err);
  free(err);
  rc = load("type3.yaml", "name: x\npxn: maybe\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "expected true or false"), "%s", err);
  free(err);
  rc = load("type4.yaml", "name: x\nkind: fat_tre\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "did you mean 'fat_tree'"), "%s", err);
  free(err);
  rc = load("type5.yaml", "name: x\nsizes: [1, nan]\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "type5.yaml:2:12: error: expected a finite number"), "%s", err);
  free(err);
}

static void test_missing_key(void) {
  cluster_spec c;
  char *err;
  int rc = load("miss.yaml", "nodes: 3\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "miss.yaml:1:1: error: missing key 'name'"), "%s", err);
  free(err);
  rc = load("miss2.yaml", "name: x\nnic:\n  latency_ns: 3\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "missing key 'bw_gbps' in nic"), "%s", err);
  free(err);
}

static void test_out_of_range(void) {
  cluster_spec c;
  char *err;
  int rc = load("neg.yaml", "name: x\nnic: {bw_gbps: -5}\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "neg.yaml:2:16: error: bw_gbps must be positive (got -5)"), "%s", err);
  free(err);
  rc = load("range.yaml", "name: x\ngpus_per_node: 100\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "must be between 1 and 72"), "%s", err);
  free(err);
  rc = load("range2.yaml", "name: x\nsizes: [1, 0]\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "range2.yaml:2:12: error: sizes must be positive"), "%s", err);
  free(err);
}

static void test_include(void) {
  t_put("inc/nic400.yaml", "bw_gbps: 400\nlatency_ns: 1000\n");
  cluster_spec c;
  char *err;
  int rc = load("withinc.yaml", "name: x\nnic: inc/nic400.yaml\n", &c, &err, NULL);
  T_CHECKF(rc == 0, "%s", err);
  T_NEAR(c.nic.bw_gbps, 400, 0);
  free(err);
  /* an error inside an included file points into that file */
  t_put("inc/nicbad.yaml", "bw_gbps: 400\nlatency_nz: 1\n");
  rc = load("withinc2.yaml", "name: x\nnic: inc/nicbad.yaml\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "inc/nicbad.yaml:2:1: error: unknown key 'latency_nz'"), "%s", err);
  free(err);
}

static void test_missing_include(void) {
  cluster_spec c;
  char *err;
  int rc = load("noinc.yaml", "name: x\nnic: nowhere.yaml\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "noinc.yaml:2:6: error: cannot include") && has(err, "No such file"), "%s", err);
  free(err);
}

typedef struct node_spec {
  struct node_spec *child; /* never followed: the cycle is caught first */
  nic_spec nic;
} node_spec;

static void test_include_cycle(void) {
  /* a.yaml's nic includes b.yaml whose ... includes a.yaml: a self-referential table. */
  static cfg_key rec_keys[3];
  rec_keys[0] = (cfg_key){.name = "next", .type = CFG_INCLUDE, .offset = 0, .sub = rec_keys};
  rec_keys[1] = (cfg_key){.name = "v", .type = CFG_INT, .offset = 0};
  rec_keys[2] = (cfg_key)CFG_END;
  const char *a = t_put("cyc/a.yaml", "v: 1\nnext: b.yaml\n");
  t_put("cyc/b.yaml", "v: 2\nnext: a.yaml\n");
  cfg_ctx *ctx = cfg_new();
  int64_t scratch[4] = {0};
  t_capture_begin();
  int rc = cfg_load_bind(ctx, a, rec_keys, scratch);
  char *err = t_capture_end();
  T_CHECK(rc != 0);
  T_CHECKF(has(err, "cyc/b.yaml:2:7: error: include cycle"), "%s", err);
  free(err);
  cfg_free(ctx);
}

static void test_overrides(void) {
  cluster_spec c;
  char *err;
  const char *sets[] = {"nodes=512", "nic.bw_gbps=800", "sizes=[1, 2]", "links.1.bw_gbps=7", NULL};
  int rc = load("ovr.yaml", "name: x\nnodes: 4\nnic: {bw_gbps: 400}\nlinks: [{name: a}, {name: b}]\n", &c, &err, sets);
  T_CHECKF(rc == 0, "%s", err);
  T_EQ_INT(c.nodes, 512);
  T_NEAR(c.nic.bw_gbps, 800, 0);
  T_EQ_INT(c.n_sizes, 2);
  T_NEAR(c.links[1].bw_gbps, 7, 0);
  T_NEAR(c.links[0].bw_gbps, 100, 0);
  free(err);
  /* an override into an included file, and into a mapping absent from the file */
  t_put("inc/nic100.yaml", "bw_gbps: 100\n");
  const char *sets2[] = {"nic.latency_ns=5", NULL};
  rc = load("ovr2.yaml", "name: x\nnic: inc/nic100.yaml\n", &c, &err, sets2);
  T_CHECKF(rc == 0 && c.nic.latency_ns == 5 && c.nic.bw_gbps == 100, "%s", err);
  free(err);
  const char *sets3[] = {"nic.bw_gbps=200", NULL};
  rc = load("ovr3.yaml", "name: x\n", &c, &err, sets3);
  T_CHECKF(rc == 0 && c.nic.bw_gbps == 200, "%s", err);
  free(err);
}

static void test_override_errors(void) {
  cluster_spec c;
  char *err;
  const char *bad_key[] = {"nic.bw_gpbs=3", NULL};
  int rc = load("ovre.yaml", "name: x\nnic: {bw_gbps: 1}\n", &c, &err, bad_key);
  T_CHECKF(rc != 0 && has(err, "unknown key 'nic.bw_gpbs' (did you mean 'nic.bw_gbps'?)"), "%s", err);
  free(err);
  const char *bad_val[] = {"nodes=-3", NULL};
  rc = load("ovre2.yaml", "name: x\n", &c, &err, bad_val);
  T_CHECKF(rc != 0 && has(err, "--set:1:7: error: nodes must be positive"), "%s", err);
  free(err);
  const char *no_eq[] = {"nodes", NULL};
  rc = load("ovre3.yaml", "name: x\n", &c, &err, no_eq);
  T_CHECKF(rc != 0 && has(err, "expected key=value"), "%s", err);
  free(err);
}

static void test_duplicate_key(void) {
  cluster_spec c;
  char *err;
  int rc = load("dup.yaml", "name: x\nnodes: 1\nnodes: 2\n", &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "dup.yaml:3:1: error: duplicate key 'nodes' (first at line 2)"), "%s", err);
  free(err);
}

static void test_alias_bomb_and_recursion(void) {
  cluster_spec c;
  char *err;
  /* 10 levels of 10x expansion: 10^10 nodes if expanded naively. */
  util_buf b = {0};
  util_buf_printf(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
  for (int i = 1; i < 10; i++)
    util_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i - 1, i - 1,
                    i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
  int rc = load("bomb.yaml", b.data, &c, &err, NULL);
  T_CHECKF(rc != 0 && has(err, "bomb.yaml:") && has(err, "error:"), "%s", err);
  util_buf_free(&b);
  free(err);
}

static void test_node_text_and_walk(void) {
  cfg_ctx *ctx = cfg_new();
  const cfg_node *n = cfg_load_string(ctx, "<s>", "grid: {pp: [4, 8], ep: [64]}\nzip: []\n");
  T_CHECK(n != NULL);
  if (n) {
    const cfg_node *g = cfg_node_get(n, "grid");
    T_CHECK(g && cfg_node_kind(g) == CFG_MAP && cfg_node_len(g) == 2);
    T_EQ_STR(cfg_node_key(g, 0), "pp");
    T_EQ_STR(cfg_node_text(ctx, g), "{pp: [4, 8], ep: [64]}");
    T_EQ_INT(cfg_node_line(cfg_node_item(g, 1)), 1);
    int64_t v;
    T_CHECK(cfg_scalar_int(ctx, cfg_node_item(cfg_node_item(g, 0), 1), &v) == 0 && v == 8);
  }
  cfg_free(ctx);
}

int main(void) {
  T_RUN(test_bind_all_types);
  T_RUN(test_defaults_kept);
  T_RUN(test_malformed_yaml);
  T_RUN(test_unknown_key_did_you_mean);
  T_RUN(test_wrong_type);
  T_RUN(test_missing_key);
  T_RUN(test_out_of_range);
  T_RUN(test_include);
  T_RUN(test_missing_include);
  T_RUN(test_include_cycle);
  T_RUN(test_overrides);
  T_RUN(test_override_errors);
  T_RUN(test_duplicate_key);
  T_RUN(test_alias_bomb_and_recursion);
  T_RUN(test_node_text_and_walk);
  return t_done();
}
