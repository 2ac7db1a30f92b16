/* tests/fuzz/fuzz_cfg.c — libFuzzer harness over the YAML loader: parse arbitrary bytes, bind them
 * with a key table that has every key type (nested mappings, lists of structs, enums, ranges),
 * and walk the tree. An input whose first line starts with "--set " also registers that line as an
 * override. Includes resolve against a directory that does not exist, so the fuzzer never reads
 * the machine's files. `make fuzz FUZZ_SECONDS=N` runs it; crashes become tests in test_cfg.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

typedef struct fz_inner {
  double bw_gbps;
  int64_t n;
  char *s;
} fz_inner;

typedef struct fz_spec {
  char *name;
  int64_t count;
  int small;
  uint64_t bytes;
  double x;
  int flag;
  int kind;
  char *path;
  fz_inner inner;
  fz_inner inc;
  double *list;
  size_t n_list;
  fz_inner *items;
  size_t n_items;
  const cfg_node *raw;
} fz_spec;

static const char *const kinds[] = {"a", "bb", "ccc", NULL};
static const cfg_key inner_keys[] = {
    {.name = "bw_gbps", .type = CFG_DOUBLE, .offset = offsetof(fz_inner, bw_gbps), .flags = CFG_POSITIVE},
    {.name = "n", .type = CFG_INT, .offset = offsetof(fz_inner, n), .flags = CFG_RANGE, .min = -5, .max = 5},
    {.name = "s", .type = CFG_STRING, .offset = offsetof(fz_inner, s)},
    CFG_END};
static const cfg_key keys[] = {
    {.name = "name", .type = CFG_STRING, .offset = offsetof(fz_spec, name)},
    {.name = "count", .type = CFG_INT, .offset = offsetof(fz_spec, count), .flags = CFG_NONNEG},
    {.name = "small", .type = CFG_INT32, .offset = offsetof(fz_spec, small)},
    {.name = "bytes", .type = CFG_UINT, .offset = offsetof(fz_spec, bytes)},
    {.name = "x", .type = CFG_DOUBLE, .offset = offsetof(fz_spec, x)},
    {.name = "flag", .type = CFG_BOOL, .offset = offsetof(fz_spec, flag)},
    {.name = "kind", .type = CFG_ENUM, .offset = offsetof(fz_spec, kind), .choices = kinds},
    {.name = "path", .type = CFG_PATH, .offset = offsetof(fz_spec, path)},
    {.name = "inner", .type = CFG_STRUCT, .offset = offsetof(fz_spec, inner), .sub = inner_keys},
    {.name = "inc", .type = CFG_INCLUDE, .offset = offsetof(fz_spec, inc), .sub = inner_keys},
    {.name = "list", .type = CFG_LIST, .offset = offsetof(fz_spec, list), .elem = CFG_DOUBLE,
     .count_offset = offsetof(fz_spec, n_list)},
    {.name = "items", .type = CFG_LIST, .offset = offsetof(fz_spec, items), .elem = CFG_STRUCT,
     .elem_size = sizeof(fz_inner), .sub = inner_keys, .count_offset = offsetof(fz_spec, n_items)},
    {.name = "raw", .type = CFG_NODE, .offset = offsetof(fz_spec, raw)},
    CFG_END};

static void walk(cfg_ctx *ctx, const cfg_node *n, int depth) {
  if (!n || depth > 100) return;
  (void)cfg_node_text(ctx, n);
  for (size_t i = 0; i < cfg_node_len(n); i++) walk(ctx, cfg_node_item(n, i), depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  if (strlen(text) != size) { /* NUL inside: a file with a NUL is rejected before parsing */
    free(text);
    return 0;
  }
  cfg_ctx *ctx = cfg_new();
  char *body = text;
  if (strncmp(text, "--set ", 6) == 0) {
    char *nl = strchr(text, '\n');
    if (nl) {
      *nl = '\0';
      body = nl + 1;
    } else {
      body = text + size;
    }
    cfg_override(ctx, text + 6, "--set");
  }
  const cfg_node *root = cfg_load_string(ctx, "/nonexistent-fuzz-dir/input.yaml", body);
  if (root) {
    walk(ctx, root, 0);
    fz_spec spec;
    memset(&spec, 0, sizeof spec);
    if (cfg_bind(ctx, root, keys, &spec, "") == 0) cfg_overrides_check_used(ctx);
  }
  cfg_free(ctx);
  free(text);
  return 0;
}
