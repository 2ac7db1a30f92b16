/* sim/whatif_exp.c — the experiment kind `whatif` (experiments/hw-suggestions.yaml): one hardware
 * suggestion (or several) against a train, prefill or decode experiment. A point runs the
 * experiment twice in this process — as written (the baseline), then with the suggestion's
 * hw_features (sim/whatif.h) — and reports both, the gain and what the suggestion changed in that
 * workload's simulation. Sweeping `suggestion` (and `experiment`) gives the table and the what-if
 * figure; every point re-simulates its own baseline, so each gain is measured against a baseline
 * from the same inputs, the same code and the same run (it equals the `none` point's figure).
 *
 * The suggestions, each a set of hw_features keys:
 *   none               today's hardware (H800, the experiment as written)
 *   comm_offload       V3 report 3.5.1 (1): communication on a co-processor
 *   unified_network    3.5.1 (2): one scale-up/scale-out interface, forwarding in the network
 *   accum_fp32         3.5.2 (3): FP32 accumulation in the tensor cores
 *   mma_block_scaling  3.5.2 (4): tile/block-wise scaling inside the MMA
 *   online_quant       3.5.2 (5): FP8 cast fused with the TMA loads
 *   transposed_gemm    3.5.2 (6): transposed operand reads in the MMA
 *   v3_all             the six together
 *   ft2, mpft, ft3     ISCA'25 section 4: the fabric as a plain, a multi-plane or a three-layer fat-tree
 *   logfmt             ISCA'25 3.3: LogFMT-8 dispatch and LogFMT-10 combine, codec in hardware
 *   logfmt_sm_codec    the same, the encode/decode on the communication SMs (logfmt_codec_sm_factor)
 *   large_scaleup      ISCA'25: scale-up domains of large_scaleup_domain_gpus (per workload); a
 *                      multi-rail scale-out with more rails than leaves becomes a plain fat-tree
 *                      (whatif_apply_topo; the row's mechanism names the fabric built)
 *   bw_convergence     ISCA'25: scale-out bandwidth per GPU raised to the scale-up figure
 *   all                v3_all + logfmt + large_scaleup + bw_convergence
 * `suggestion` may join names with '+'. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exp.h"
#include "util.h"
#include "whatif.h"

typedef struct wx_domains {
  int train, prefill, decode; /* GPUs per scale-up domain for large_scaleup, per workload */
} wx_domains;

typedef struct wx_spec {
  char *experiment;          /* the baseline experiment (train, prefill or decode) */
  char *suggestion;          /* suggestion names joined by '+' */
  wx_domains domains;        /* large_scaleup_domain_gpus */
  double codec;              /* logfmt_codec_sm_factor for logfmt_sm_codec */
  char *promotion_table;     /* the FP8 GEMM promotion study */
} wx_spec;

/* A suggestion: the hw_features it sets (YAML assignments), where it comes from. */
typedef struct wx_sugg {
  const char *name;
  const char *source;        /* the paper and section */
  const char *set[4];        /* "key=value" under hw_features (NULL-terminated) */
  const char *with[8];       /* other suggestions it includes */
} wx_sugg;

static const wx_sugg suggestions[] = {
    {"none", "today's hardware (H800)", {NULL}, {NULL}},
    {"comm_offload", "V3 report 3.5.1 (1)", {"comm_offload=true"}, {NULL}},
    {"unified_network", "V3 report 3.5.1 (2)", {"unified_network=true"}, {NULL}},
    {"accum_fp32", "V3 report 3.5.2 (3)", {"accum_fp32=true"}, {NULL}},
    {"mma_block_scaling", "V3 report 3.5.2 (4)", {"mma_block_scaling=true"}, {NULL}},
    {"online_quant", "V3 report 3.5.2 (5)", {"online_quant=true"}, {NULL}},
    {"transposed_gemm", "V3 report 3.5.2 (6)", {"transposed_gemm=true"}, {NULL}},
    {"v3_all", "V3 report 3.5: all six", {NULL},
     {"comm_offload", "unified_network", "accum_fp32", "mma_block_scaling", "online_quant", "transposed_gemm"}},
    {"ft2", "ISCA'25 section 4 (FT2)", {"fabric=fat_tree2"}, {NULL}},
    {"mpft", "ISCA'25 section 4 (MPFT)", {"fabric=multi_plane"}, {NULL}},
    {"ft3", "ISCA'25 section 4 (FT3)", {"fabric=fat_tree3"}, {NULL}},
    {"logfmt", "ISCA'25 3.3 (LogFMT)", {"ep_dispatch=logfmt8", "ep_combine=logfmt10"}, {NULL}},
    {"logfmt_sm_codec", "ISCA'25 3.3 (LogFMT; codec on SMs)", {"ep_dispatch=logfmt8", "ep_combine=logfmt10"}, {NULL}},
    {"large_scaleup", "ISCA'25 (larger scale-up domains)", {NULL}, {NULL}},
    {"bw_convergence", "ISCA'25 (scale-up/scale-out convergence)", {"scaleout_converged=true"}, {NULL}},
    {"all", "all of the above but the fabric swaps", {NULL}, {"v3_all", "logfmt", "large_scaleup", "bw_convergence"}},
};
#define N_SUGG (sizeof suggestions / sizeof suggestions[0])

static const wx_sugg *sugg_find(const char *name, size_t len) {
  for (size_t i = 0; i < N_SUGG; i++)
    if (strlen(suggestions[i].name) == len && strncmp(suggestions[i].name, name, len) == 0) return &suggestions[i];
  return NULL;
}

/* ---------------------------------------------------------------- keys */

/* Loads a YAML file and, recursively, every YAML file its scalars name (the includes), into ctx:
 * the sweep's fingerprint of a point covers the files its ctx loaded, so a change to the wrapped
 * experiment or its model, cluster or units re-runs the points that use it. */
static void load_tree(cfg_ctx *ctx, const cfg_node *n, int depth) {
  if (!n || depth > 16) return;
  if (cfg_node_kind(n) != CFG_SCALAR) {
    for (size_t i = 0; i < cfg_node_len(n); i++) load_tree(ctx, cfg_node_item(n, i), depth);
    return;
  }
  const char *s = cfg_node_scalar(n);
  size_t len = s ? strlen(s) : 0;
  if (len < 6 || (strcmp(s + len - 5, ".yaml") != 0 && strcmp(s + len - 4, ".yml") != 0)) return;
  char *dir = util_dirname(cfg_node_file(n)), *path = util_path_join(dir, s);
  if (access(path, R_OK) == 0) load_tree(ctx, cfg_load_file(ctx, path), depth + 1);
  free(dir);
  free(path);
}

static int bind_experiment(cfg_ctx *ctx, const cfg_node *node, void *field, const cfg_key *key) {
  (void)key;
  const char *s = cfg_node_scalar(node);
  if (!s || !*s) return cfg_error(ctx, node, "experiment: expected the path of a train, prefill or decode experiment");
  char *dir = util_dirname(cfg_node_file(node)), *path = util_path_join(dir, s);
  free(dir);
  const cfg_node *root = access(path, R_OK) == 0 ? cfg_load_file(ctx, path) : NULL;
  if (!root) {
    free(path);
    return cfg_error(ctx, node, "cannot read experiment '%s'", s);
  }
  load_tree(ctx, root, 0);
  *(char **)field = cfg_strdup(ctx, path);
  free(path);
  return 0;
}

static int bind_suggestion(cfg_ctx *ctx, const cfg_node *node, void *field, const cfg_key *key) {
  (void)key;
  const char *s = cfg_node_scalar(node);
  if (!s || !*s) return cfg_error(ctx, node, "suggestion: expected a name (or names joined by '+')");
  for (const char *p = s; *p;) {
    size_t len = strcspn(p, "+");
    if (!sugg_find(p, len)) {
      util_buf b = {0};
      for (size_t i = 0; i < N_SUGG; i++) util_buf_printf(&b, "%s%s", i ? ", " : "", suggestions[i].name);
      cfg_error(ctx, node, "unknown suggestion '%.*s' (known: %s)", (int)len, p, b.data);
      util_buf_free(&b);
      return -1;
    }
    p += len + (p[len] == '+');
  }
  *(char **)field = cfg_strdup(ctx, s);
  return 0;
}

static const cfg_key domain_keys[] = {
    {.name = "train", .type = CFG_INT32, .offset = offsetof(wx_domains, train), .flags = CFG_POSITIVE,
     .doc = "GPUs per domain for training (default 64: V3's EP64 group in one domain; 72 does not divide 2048)"},
    {.name = "prefill", .type = CFG_INT32, .offset = offsetof(wx_domains, prefill), .flags = CFG_POSITIVE,
     .doc = "GPUs per domain for prefill (default 32: the EP32 unit in one domain)"},
    {.name = "decode", .type = CFG_INT32, .offset = offsetof(wx_domains, decode), .flags = CFG_POSITIVE,
     .doc = "GPUs per domain for decode (default 72: GB200 NVL72; the EP144 unit is two of them)"},
    CFG_END};

static const cfg_key wx_keys[] = {
    {.name = "experiment", .type = CFG_CUSTOM, .custom = bind_experiment, .offset = offsetof(wx_spec, experiment),
     .flags = CFG_REQUIRED, .doc = "the baseline: a train, prefill or decode experiment file"},
    {.name = "suggestion", .type = CFG_CUSTOM, .custom = bind_suggestion, .offset = offsetof(wx_spec, suggestion),
     .doc = "none | comm_offload | unified_network | accum_fp32 | mma_block_scaling | online_quant | transposed_gemm | "
            "v3_all | ft2 | mpft | ft3 | logfmt | logfmt_sm_codec | large_scaleup | bw_convergence | all (or a+b)"},
    {.name = "large_scaleup_domain_gpus", .type = CFG_STRUCT, .offset = offsetof(wx_spec, domains), .sub = domain_keys,
     .doc = "large_scaleup: GPUs per scale-up domain, per workload"},
    {.name = "logfmt_codec_sm_factor", .type = CFG_DOUBLE, .offset = offsetof(wx_spec, codec), .flags = CFG_NONNEG,
     .doc = "logfmt_sm_codec: SM work per LogFMT byte relative to a copy (default 0.75, the middle of ISCA'25's "
            "50-100% overhead)"},
    {.name = "promotion_table", .type = CFG_PATH, .offset = offsetof(wx_spec, promotion_table),
     .doc = "the FP8 GEMM promotion study (kernel table, promo_k=N rows) accum_fp32/mma_block_scaling need"},
    CFG_END};

static void wx_init(void *p) {
  wx_spec *s = p;
  memset(s, 0, sizeof *s);
  s->suggestion = "none";
  s->domains = (wx_domains){64, 32, 72};
  s->codec = 0.75;
}

/* ---------------------------------------------------------------- running */

/* The hw_features assignments of a suggestion list, "key=value" each; a later one of the same key
 * replaces an earlier one. */
typedef struct wx_sets {
  char kv[32][96]; /* assignments */
  int n;           /* used */
} wx_sets;

static void sets_put(wx_sets *s, const char *kv) {
  size_t klen = strcspn(kv, "=");
  for (int i = 0; i < s->n; i++)
    if (strncmp(s->kv[i], kv, klen + 1) == 0) {
      snprintf(s->kv[i], sizeof s->kv[i], "%s", kv);
      return;
    }
  if (s->n < 32) snprintf(s->kv[s->n++], sizeof s->kv[0], "%s", kv);
}

/* Adds suggestion sg (and what it includes) for workload w. */
static void sets_add(wx_sets *s, const wx_spec *sp, const wx_sugg *sg, int w, int depth) {
  char a[96];
  for (int i = 0; sg->with[i] && depth < 4; i++) sets_add(s, sp, sugg_find(sg->with[i], strlen(sg->with[i])), w, depth + 1);
  for (int i = 0; sg->set[i]; i++) sets_put(s, sg->set[i]);
  if (strcmp(sg->name, "logfmt_sm_codec") == 0) {
    snprintf(a, sizeof a, "logfmt_codec_sm_factor=%.17g", sp->codec);
    sets_put(s, a);
  }
  if (strcmp(sg->name, "large_scaleup") == 0) {
    int d = w == WHATIF_TRAIN ? sp->domains.train : w == WHATIF_PREFILL ? sp->domains.prefill : sp->domains.decode;
    snprintf(a, sizeof a, "scaleup_domain_gpus=%d", d);
    sets_put(s, a);
  }
}

/* The assignments of `sugg` ('+'-joined names, validated when bound) for workload w. */
static void sets_of(wx_sets *s, const wx_spec *sp, const char *sugg, int w) {
  s->n = 0;
  for (const char *q = sugg; q && *q;) {
    size_t len = strcspn(q, "+");
    sets_add(s, sp, sugg_find(q, len), w, 0);
    q += len + (q[len] == '+');
  }
}

/* The workload of a kind name. */
static int workload_of(const char *kind) {
  return strcmp(kind, "train") == 0 ? WHATIF_TRAIN : strcmp(kind, "prefill") == 0 ? WHATIF_PREFILL
       : strcmp(kind, "decode") == 0 ? WHATIF_DECODE : -1;
}

/* The kind of an experiment file, from its `kind:` key. */
static const char *kind_of(const char *path) {
  cfg_ctx *ctx = cfg_new();
  const cfg_node *root = cfg_load_file(ctx, path), *k = root ? cfg_node_get(root, "kind") : NULL;
  static char buf[32];
  snprintf(buf, sizeof buf, "%s", k && cfg_node_scalar(k) ? cfg_node_scalar(k) : "");
  cfg_free(ctx);
  return buf;
}

static double col(const res_row *r, const char *name) {
  const char *v = res_get(r, name);
  return v && *v ? strtod(v, NULL) : 0;
}

/* What a workload's row is judged by: a throughput (higher is better) and a time. */
typedef struct wx_metric {
  const char *name, *time_name; /* output column names */
  double value, time;           /* the figures */
} wx_metric;

static void metric_of(int w, const res_row *r, wx_metric *m) {
  if (w == WHATIF_TRAIN) {
    *m = (wx_metric){"tokens_per_s", "step_s", col(r, "tokens_per_s"), col(r, "step_s")};
  } else if (w == WHATIF_DECODE) {
    *m = (wx_metric){"output_tokens_per_s_per_gpu", "tpot_ms", col(r, "output_tokens_per_s_per_gpu"), col(r, "tpot_ms")};
  } else {
    double gpn = col(r, "gpus_per_node");
    *m = (wx_metric){"input_tokens_per_s_per_gpu", "prefill_step_ms",
                     gpn > 0 ? col(r, "capacity_input_tokens_per_s_per_node") / gpn : 0, col(r, "prefill_step_ms")};
  }
}

/* Loads and runs the wrapped experiment with suggestion `sugg` (NULL: none); fills row. */
static int run_inner(const exp_run *run, const wx_spec *sp, const char *sugg, int w, res_row *row, char **name) {
  cfg_ctx *ctx = cfg_new();
  int rc = 0;
  if (sp->promotion_table) {
    char a[4200];
    snprintf(a, sizeof a, "hw_features.promotion_table=\"%s\"", sp->promotion_table);
    rc = cfg_override(ctx, a, "whatif promotion_table") != 0;
  }
  wx_sets sets;
  sets_of(&sets, sp, sugg, w);
  for (int i = 0; rc == 0 && i < sets.n; i++) {
    char a[128];
    snprintf(a, sizeof a, "hw_features.%s", sets.kv[i]);
    rc = cfg_override(ctx, a, "whatif suggestion") != 0;
  }
  exp_common common;
  const exp_kind *kind = NULL;
  void *spec = NULL;
  if (rc == 0) rc = exp_load(ctx, sp->experiment, &common, &kind, &spec);
  if (rc == 0) {
    exp_run r = {.exp_path = sp->experiment, .out_dir = run->out_dir, .point = run->point, .quiet = 1, .cfg = ctx};
    rc = kind->run(&r, spec, row);
    if (name) *name = util_xstrdup(common.name);
  }
  free(spec);
  cfg_free(ctx);
  return rc ? (rc == 1 ? UTIL_EXIT_SYS : UTIL_EXIT_USAGE) : 0;
}

static int wx_run(const exp_run *run, void *p, res_row *row) {
  wx_spec *sp = p;
  const char *kind = kind_of(sp->experiment);
  int w = workload_of(kind);
  if (w < 0) {
    fprintf(stderr, "%s: error: experiment %s is of kind '%s'; whatif wraps train, prefill and decode\n", run->exp_path,
            sp->experiment, kind);
    return UTIL_EXIT_USAGE;
  }
  res_row base = {0}, mod = {0};
  char *name = NULL;
  int rc = run_inner(run, sp, NULL, w, &base, &name);
  if (rc == 0) rc = run_inner(run, sp, strcmp(sp->suggestion, "none") ? sp->suggestion : NULL, w, &mod, NULL);
  if (rc == 0) {
    wx_metric mb, mw;
    metric_of(w, &base, &mb);
    metric_of(w, &mod, &mw);
    /* what the suggestion changes in this workload, from the hw_features it sets */
    whatif_hw hw;
    whatif_hw_init(&hw);
    wx_sets sets;
    sets_of(&sets, sp, sp->suggestion, w);
    util_buf y = {0};
    util_buf_printf(&y, "{");
    for (int i = 0; i < sets.n; i++) {
      size_t k = strcspn(sets.kv[i], "=");
      util_buf_printf(&y, "%s%.*s: %s", i ? ", " : "", (int)k, sets.kv[i], sets.kv[i] + k + 1);
    }
    util_buf_printf(&y, "}");
    cfg_ctx *c = cfg_new();
    const cfg_node *m = cfg_load_string(c, "hw_features", y.data);
    if (m) cfg_bind(c, m, whatif_hw_keys, &hw, "hw_features");
    cfg_free(c);
    util_buf_free(&y);
    char mech[1200];
    whatif_describe(&hw, w, mech, sizeof mech);
    const char *fb = res_get(&base, "fabric"), *fm = res_get(&mod, "fabric");
    if (fb && fm && strcmp(fb, fm) != 0 && !hw.fabric) {
      size_t u = strlen(mech);
      snprintf(mech + u, sizeof mech - u, "; scale-out built as %s (was %s)", fm, fb);
    }
    util_buf src = {0};
    for (const char *q = sp->suggestion; *q;) {
      size_t len = strcspn(q, "+");
      util_buf_printf(&src, "%s%s", src.data ? " + " : "", sugg_find(q, len)->source);
      q += len + (q[len] == '+');
    }
    double speedup = mb.value > 0 ? mw.value / mb.value : 0;
    res_set(row, "experiment", "%s", name);
    res_set(row, "workload", "%s", kind);
    res_set(row, "suggestion_source", "%s", src.data);
    res_set(row, "mechanism", "%s", mech);
    res_set(row, "metric", "%s", mb.name);
    res_set_f(row, "baseline_value", mb.value);
    res_set_f(row, "whatif_value", mw.value);
    res_set_f(row, "speedup", speedup);
    res_set_f(row, "gain_pct", 100 * (speedup - 1));
    res_set(row, "time_metric", "%s", mb.time_name);
    res_set_f(row, "baseline_time", mb.time);
    res_set_f(row, "whatif_time", mw.time);
    res_set_f(row, "baseline_network_cost_usd", col(&base, "network_cost_usd"));
    res_set_f(row, "whatif_network_cost_usd", col(&mod, "network_cost_usd"));
    res_set(row, "whatif_cluster", "%s", res_get(&mod, "cluster") ? res_get(&mod, "cluster") : "");
    res_set_f(row, "whatif_gpus_per_node", col(&mod, "gpus_per_node"));
    if (w == WHATIF_TRAIN) {
      res_set_f(row, "baseline_gpu_hours_per_t_tokens", col(&base, "gpu_hours_per_t_tokens"));
      res_set_f(row, "whatif_gpu_hours_per_t_tokens", col(&mod, "gpu_hours_per_t_tokens"));
      res_set_f(row, "whatif_exposed_comm_frac", col(&mod, "exposed_comm_frac"));
    }
    if (run->summary)
      fprintf(run->summary, "%s on %s: %s %.6g -> %.6g (x%.4f, %+.2f%%); %s %.6g -> %.6g\n  mechanism: %s\n",
              sp->suggestion, name, mb.name, mb.value, mw.value, speedup, 100 * (speedup - 1), mb.time_name, mb.time,
              mw.time, mech);
    util_buf_free(&src);
  }
  free(name);
  res_free(&base);
  res_free(&mod);
  return rc;
}

static const char *const wx_plots[] = {"whatif", NULL};

const exp_kind exp_kind_whatif = {
    .name = "whatif",
    .summary = "a hardware suggestion against a train/prefill/decode experiment: both simulated, gain and mechanism",
    .keys = wx_keys,
    .spec_size = sizeof(wx_spec),
    .init = wx_init,
    .run = wx_run,
    .plots = wx_plots,
};
