/* sim/sweep.h — experiment sweeps: which points a `sweep:` mapping names, and how one point is
 * loaded.
 *
 *   sweep:
 *     grid: {schedule: [1f1b, dualpipe], comm_sms: [0, 20, 32]}   # cartesian product
 *     zip:  {cluster: [a.yaml, b.yaml], parallel.ep: [8, 16]}     # lock-step, equal lengths
 *
 * Keys are dotted paths to any key of the experiment (also inside included files and lists);
 * values are YAML nodes — scalars, lists or mappings, or the path of a file a key includes
 * (resolved against the file the value is written in, like any include).
 *
 * Point order (documented in the README): the sweep is a list of axes, outermost first, in the
 * order written. Each key of `grid:` is one axis; all of `zip:` together is one axis (its i-th
 * value sets every zip key to its i-th element). Points enumerate the axes like nested loops:
 * the first axis varies slowest, the last fastest. So with `grid: {a: [1, 2], b: [x, y]}` the
 * points are (a=1,b=x) (1,y) (2,x) (2,y); with `zip:` written before `grid:` every zip tuple
 * runs the whole grid.
 *
 * A point is the experiment with its axis values registered as overrides (cfg_override_node),
 * after the --set overrides; binding then checks every key as usual, so an unknown key or a bad
 * value is reported at the sweep value's own path:line:col. */
#ifndef MOESIM_SWEEP_H
#define MOESIM_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "exp.h"

#define SWEEP_MAX_POINTS 1000000 /* a sweep larger than this is a mistake */

/* One axis: keys that change together (one for a grid key, all keys of zip:). */
typedef struct sweep_axis {
  size_t n_keys;               /* keys on this axis */
  size_t first_key;            /* index of its first key in sweep.keys */
  size_t n_values;             /* values each key takes */
  const cfg_node **lists;      /* per key: its sequence of values */
} sweep_axis;

/* A parsed sweep; every array lives in the cfg_ctx it was parsed with. */
typedef struct sweep {
  size_t n_axes;               /* axes, outermost first */
  sweep_axis *axes;            /* the axes */
  size_t n_keys;               /* swept keys over all axes, in CSV column order */
  const char **keys;           /* dotted paths */
  const cfg_node **key_nodes;  /* the key nodes (error positions) */
  size_t n_points;             /* product of the axes' value counts */
} sweep;

/* Parses a `sweep:` node (NULL, or a null/empty scalar, is the empty sweep with one point and no
 * keys). Checks: only grid/zip, mappings of key -> non-empty list, zip lists of equal length,
 * each key swept once, key paths well formed, no key among name/kind/sweep/plots/description,
 * at most SWEEP_MAX_POINTS points. Returns 0, or -1 after printing path:line:col errors. */
int sweep_parse(cfg_ctx *ctx, const cfg_node *node, sweep *out);

/* The value node key `key` takes at point `point`. */
const cfg_node *sweep_value(const sweep *s, size_t point, size_t key);

/* Registers point `point`'s values as overrides in ctx (after any --set ones). */
void sweep_apply(const sweep *s, size_t point, cfg_ctx *ctx);

/* Everything needed to load a point of an experiment on its own. */
typedef struct sweep_spec {
  const char *exp_path;        /* the experiment file */
  char *const *sets;           /* --set assignments, in command-line order */
  size_t n_sets;               /* how many */
  const sweep *sw;             /* the sweep (its nodes belong to the base ctx) */
} sweep_spec;

/* A loaded point: its own ctx (free with sweep_point_free), the bound experiment and the
 * fingerprint of its inputs. */
typedef struct sweep_point {
  cfg_ctx *ctx;                /* owns the spec's strings */
  exp_common common;           /* bound common keys */
  const exp_kind *kind;        /* the experiment's kind */
  void *spec;                  /* the kind's bound spec (malloc'd) */
  uint64_t hash;               /* sweep_inputs_hash of this point */
} sweep_point;

/* Loads point `point` (SIZE_MAX: no sweep values, --set only) into a fresh ctx. Returns 0, or 2
 * after printing the error (pt is then empty). */
int sweep_point_load(const sweep_spec *sp, size_t point, sweep_point *pt);
void sweep_point_free(sweep_point *pt);

/* The fingerprint of a loaded point's inputs: moesim's version, the experiment's top-level keys
 * except sweep/plots/description, the point's overrides (--set and sweep values) and the full
 * text of every file the experiment includes. Two points with equal fingerprints compute the
 * same thing; a re-run reuses a finished point whose fingerprint is unchanged. */
uint64_t sweep_inputs_hash(const sweep_spec *sp, size_t point, cfg_ctx *ctx);

/* Loads every point before any runs. Errors of the first `max_report` failing points are printed
 * (each preceded by the point's values); hashes (n_points entries) are filled for all. Returns 0,
 * or 2 when any point fails to load. */
int sweep_check_all(const sweep_spec *sp, uint64_t *hashes, size_t max_report);

/* "key=value key2=value2" for point `point` (values as flow YAML); malloc'd. */
char *sweep_point_label(const sweep *s, size_t point, cfg_ctx *ctx);

#endif
