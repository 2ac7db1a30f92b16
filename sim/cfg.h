/* sim/cfg.h — YAML configuration: load whole documents with libyaml, walk them with key tables.
 *
 * A config file is parsed into a tree of cfg_node (each with its file, line and column), then
 * bound into a C struct by a key table: one cfg_key per accepted key, naming its type, the
 * struct field (offsetof), whether it is required, its allowed range and a one-line doc that
 * carries the unit (keys carry units in their names: bw_gbps, latency_ns, price_usd). Keys not in
 * the table are errors, with a "did you mean" for near misses.
 *
 * Includes: a CFG_INCLUDE key takes either an inline mapping or a path (relative to the file that
 * names it) to another YAML file holding that mapping, e.g. `cluster: ../topologies/x.yaml`.
 * Include cycles are errors.
 *
 * Overrides: cfg_override() registers `dotted.path=value` pairs (from --set or a sweep point);
 * the value is itself parsed as YAML, so `parallel.pp=8` and `ep_list=[8,16]` both work. While
 * binding, the value at a dotted path is replaced by the override — also inside included files
 * (`cluster.nic.bw_gbps`) and list elements (`links.0.bw_gbps`). An override that matches no
 * key is an error.
 *
 * Errors print "path:line:col: error: message", then the offending source line and a caret, to
 * stderr; the failing call returns NULL/-1 and the command exits 2 without writing any output.
 * All memory (nodes, bound strings and lists) belongs to the cfg_ctx and is freed by cfg_free(). */
#ifndef MOESIM_CFG_H
#define MOESIM_CFG_H

#include <stddef.h>
#include <stdint.h>

typedef struct cfg_ctx cfg_ctx;
typedef struct cfg_node cfg_node;
typedef struct cfg_key cfg_key;

typedef enum cfg_kind { CFG_SCALAR, CFG_MAP, CFG_SEQ } cfg_kind;

typedef enum cfg_type {
  CFG_INT,     /* int64_t */
  CFG_INT32,   /* int */
  CFG_UINT,    /* uint64_t (counts, bytes) */
  CFG_DOUBLE,  /* double */
  CFG_BOOL,    /* int, 0 or 1 (true/false/yes/no/on/off) */
  CFG_STRING,  /* char *, owned by the ctx */
  CFG_PATH,    /* char *, a path resolved against the naming file's directory */
  CFG_ENUM,    /* int, index into .choices */
  CFG_STRUCT,  /* nested mapping bound with .sub into the struct at .offset */
  CFG_INCLUDE, /* like CFG_STRUCT, but the value may also be a path to a YAML file */
  CFG_LIST,    /* sequence: pointer at .offset, size_t count at .count_offset; elements of type
                  .elem (a scalar type, or CFG_STRUCT with .sub and .elem_size) */
  CFG_NODE,    /* const cfg_node * stored at .offset, for the caller to walk itself */
  CFG_CUSTOM   /* .custom(ctx, node, field, key) does the binding */
} cfg_type;

/* cfg_key.flags */
#define CFG_REQUIRED 0x1u /* the key must be present */
#define CFG_POSITIVE 0x2u /* numeric value > 0 */
#define CFG_NONNEG 0x4u   /* numeric value >= 0 */
#define CFG_RANGE 0x8u    /* numeric value within [min, max] */
#define CFG_KEEP_NODE 0x10u /* CFG_STRUCT/CFG_INCLUDE: also store the bound mapping's node
                               (const cfg_node *, the included file's root for an include) at
                               .node_offset, for resolvers that report errors at positions */

struct cfg_key {
  const char *name;             /* key as written in YAML */
  cfg_type type;                /* how the value is read */
  size_t offset;                /* offsetof the field in the bound struct */
  unsigned flags;               /* CFG_REQUIRED | CFG_POSITIVE | ... */
  double min, max;              /* CFG_RANGE bounds, inclusive */
  const cfg_key *sub;           /* CFG_STRUCT / CFG_INCLUDE / CFG_LIST of structs: the table */
  const char *const *choices;   /* CFG_ENUM: NULL-terminated names */
  cfg_type elem;                /* CFG_LIST: element type */
  size_t elem_size;             /* CFG_LIST of CFG_STRUCT: sizeof the element */
  size_t count_offset;          /* CFG_LIST: offsetof the size_t element count */
  void (*elem_init)(void *elem);/* CFG_LIST of CFG_STRUCT: fills an element's defaults (or NULL) */
  size_t node_offset;           /* CFG_KEEP_NODE: offsetof the const cfg_node * field */
  int (*custom)(cfg_ctx *ctx, const cfg_node *node, void *field, const cfg_key *key);
  const char *doc;              /* one line: meaning and unit, for --help and error messages */
};
/* Tables end with an entry whose name is NULL: CFG_END. */
#define CFG_END {.name = NULL}

cfg_ctx *cfg_new(void);
void cfg_free(cfg_ctx *ctx);

/* Parses a YAML file (one document) into a node tree; NULL after printing an error. */
const cfg_node *cfg_load_file(cfg_ctx *ctx, const char *path);
/* Parses YAML text; `name` stands for the path in messages. */
const cfg_node *cfg_load_string(cfg_ctx *ctx, const char *name, const char *text);

/* Registers an override "dotted.path=yaml-value"; `origin` names its source in messages
 * (e.g. "--set" or "sweep point 3"). Returns 0, or -1 after printing an error. */
int cfg_override(cfg_ctx *ctx, const char *assignment, const char *origin);
/* Registers an override whose value is an already parsed node (a sweep point's value, which
 * keeps its own file, position and include directory); `at` is the node an "unknown key" error
 * points at (or NULL). The node must outlive ctx's binding. A later override of the same path wins. */
int cfg_override_node(cfg_ctx *ctx, const char *path, const cfg_node *value, const cfg_node *at);
/* Errors (-1) if an override was never applied by a bind; call after binding everything. */
int cfg_overrides_check_used(cfg_ctx *ctx);

/* Binds mapping `node` into `out` with `table`; `path` is the dotted prefix for overrides ("" at
 * the top). Fields absent from the YAML keep the values `out` had. Returns 0 or -1. */
int cfg_bind(cfg_ctx *ctx, const cfg_node *node, const cfg_key *table, void *out, const char *path);

/* Binds one node with several tables at once: every key of the mapping must belong to one of
 * them. tables[i] binds into outs[i]; n tables. */
int cfg_bind_multi(cfg_ctx *ctx, const cfg_node *node, const cfg_key *const *tables, void *const *outs,
                   int n, const char *path);

/* Loads `path` and binds its top-level mapping (convenience for cfg_load_file + cfg_bind). */
int cfg_load_bind(cfg_ctx *ctx, const char *path, const cfg_key *table, void *out);

/* Walking nodes (for CFG_NODE / CFG_CUSTOM handlers). */
cfg_kind cfg_node_kind(const cfg_node *n);
const char *cfg_node_scalar(const cfg_node *n);      /* scalar text, or NULL */
size_t cfg_node_len(const cfg_node *n);              /* map pairs / seq items / 0 */
const cfg_node *cfg_node_item(const cfg_node *n, size_t i); /* seq item or map value i */
const char *cfg_node_key(const cfg_node *n, size_t i);      /* map key i */
const cfg_node *cfg_node_key_node(const cfg_node *n, size_t i); /* the key's own node */
const cfg_node *cfg_node_get(const cfg_node *n, const char *key); /* map lookup, NULL if absent */
const char *cfg_node_file(const cfg_node *n);        /* path of the file it came from */
int cfg_node_line(const cfg_node *n);                /* 1-based */
int cfg_node_col(const cfg_node *n);                 /* 1-based */
/* The node as YAML flow text (scalars as-is, [a, b], {k: v}); owned by the ctx. */
const char *cfg_node_text(cfg_ctx *ctx, const cfg_node *n);

/* Reads a scalar node as a number/bool with the same rules and messages as the key tables. */
int cfg_scalar_double(cfg_ctx *ctx, const cfg_node *n, double *out);
int cfg_scalar_int(cfg_ctx *ctx, const cfg_node *n, int64_t *out);
int cfg_scalar_bool(cfg_ctx *ctx, const cfg_node *n, int *out);

/* Prints "path:line:col: error: ..." and the source line for node `at` (or no position when NULL);
 * returns -1. */
int cfg_error(cfg_ctx *ctx, const cfg_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Calls fn(arg, canonical path, full text) for every file this ctx loaded from disk, in load
 * order (the experiment, then its includes); used to fingerprint a configuration's inputs. */
void cfg_each_file(const cfg_ctx *ctx, void (*fn)(void *arg, const char *real_path, const char *text), void *arg);

/* Copies a string into the ctx's arena. */
char *cfg_strdup(cfg_ctx *ctx, const char *s);
/* Zeroed memory owned by the ctx. */
void *cfg_alloc(cfg_ctx *ctx, size_t n);

/* Writes the key table as documentation lines ("  key  type  doc") to a stream, indented. */
void cfg_print_keys(const cfg_key *table, int indent, void *file);

#endif
