/* sim/purchase_exp.c — the experiment kind `purchase` (experiments/cluster-purchase.yaml): one
 * option of a catalogue of clusters, simulated on a workload, priced to rent and to buy.
 *
 * A purchase experiment names a workload — another experiment file of kind `train` (goal: pre-train
 * on goal.train_tokens tokens) or `decode` (goal: serve goal.serve_output_tokens_per_s output
 * tokens/s at a TPOT of at most goal.tpot_max_ms) — and a catalogue `options:` mapping each
 * option's name to the workload keys it changes (dotted paths: `cluster: file`, `parallel.ep: 8`).
 * The point's `option` picks one: its settings are applied to the workload as overrides (they win
 * over --set of the same workload key), `gpus` resizes a training cluster (nodes = gpus / GPUs per
 * node), and the workload's own kind simulates it — the time is the simulator's step time, never a
 * formula. Then:
 *   train  time = tokens / tokens_per_s; rent and buy cost for that time (sim/purchase.h), per
 *          trillion tokens;
 *   serve  whole decode units for the demand plus the prefill nodes that keep them fed; the cost
 *          of an hour per million output tokens, left empty when the TPOT bound is missed;
 * and in both the topology model's own price of the scale-out network (`moesim topo`). After a
 * sweep over options and sizes, `finish` reads the table, marks the Pareto front (time or TPOT
 * against cost, rent and buy separately), writes front.csv and prints the comparison. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exp.h"
#include "plot.h"
#include "purchase.h"
#include "topo.h"
#include "util.h"

typedef enum pu_goal_kind { PU_TRAIN, PU_SERVE } pu_goal_kind;

/* goal: what the cluster is bought for. */
typedef struct pu_goal {
  double train_tokens;              /* train: tokens to pre-train on */
  double serve_output_tokens_per_s; /* serve: output tokens per second to sustain */
  double tpot_max_ms;               /* serve: time per output token allowed, ms */
} pu_goal;

/* A scalar with the node it came from (for errors at the value, e.g. a sweep's). */
typedef struct pu_named {
  char *text;           /* the value */
  const cfg_node *node; /* where it was written */
} pu_named;

typedef struct pu_count {
  int64_t v;            /* the value (0: unset) */
  const cfg_node *node; /* where it was written */
} pu_count;

/* workload: the experiment simulated, bound in place with its own kind's keys. */
typedef struct pu_workload {
  const char *path;     /* its file */
  const exp_kind *kind; /* train or decode */
  void *spec;           /* its bound spec (ctx-owned) */
  exp_common common;    /* its name, kind, ... (its sweep and plots are not used) */
  const cfg_node *node; /* the `workload:` value */
} pu_workload;

typedef struct pu_spec {
  pu_named option;          /* the catalogue entry this point simulates */
  const cfg_node *options;  /* the catalogue: name -> {workload key: value} */
  pu_count gpus;            /* train: cluster size in GPUs (0: the workload's) */
  pu_goal goal;             /* what for */
  const cfg_node *goal_node;
  purchase_prices prices;   /* prices: the prices file */
  const cfg_node *prices_node;
  pu_workload work;         /* the workload (bound last: it needs the fields above) */
} pu_spec;

/* ---------------------------------------------------------------- binding */

static int bind_named(cfg_ctx *ctx, const cfg_node *n, void *field, const cfg_key *k) {
  pu_named *f = field;
  if (cfg_node_kind(n) != CFG_SCALAR || !cfg_node_scalar(n)[0])
    return cfg_error(ctx, n, "%s: expected a name", k->name);
  f->text = cfg_strdup(ctx, cfg_node_scalar(n));
  f->node = n;
  return 0;
}

static int bind_count(cfg_ctx *ctx, const cfg_node *n, void *field, const cfg_key *k) {
  pu_count *f = field;
  int64_t v;
  if (cfg_scalar_int(ctx, n, &v) != 0) return -1;
  if (v < 0 || v > (1 << 24)) return cfg_error(ctx, n, "%s: expected a count from 0 to %d, not %lld", k->name, 1 << 24, (long long)v);
  f->v = v;
  f->node = n;
  return 0;
}

/* The cluster a workload spec holds, found through its kind's key table (the `cluster` include of
 * the topology keys), or NULL. */
static topo_spec *workload_cluster(const exp_kind *kind, void *spec) {
  for (const cfg_key *k = kind->keys; k->name; k++)
    if (strcmp(k->name, "cluster") == 0 && k->type == CFG_INCLUDE && k->sub == topo_spec_keys)
      return (topo_spec *)((char *)spec + k->offset);
  return NULL;
}

/* Registers the chosen option's settings as overrides of the workload's keys. */
static int apply_option(cfg_ctx *ctx, const pu_spec *s, const char *prefix) {
  const cfg_node *entry = cfg_node_get(s->options, s->option.text);
  if (!entry) {
    util_buf names = {0};
    for (size_t i = 0; i < cfg_node_len(s->options); i++)
      util_buf_printf(&names, "%s%s", i ? ", " : "", cfg_node_key(s->options, i));
    cfg_error(ctx, s->option.node, "no option '%s' in options (%s)", s->option.text, names.data ? names.data : "none");
    util_buf_free(&names);
    return -1;
  }
  if (cfg_node_kind(entry) == CFG_SCALAR && !cfg_node_scalar(entry)[0]) return 0; /* no settings */
  if (cfg_node_kind(entry) != CFG_MAP)
    return cfg_error(ctx, entry, "option '%s': expected a mapping of workload keys (e.g. {cluster: FILE, parallel.ep: 8})",
                     s->option.text);
  for (size_t i = 0; i < cfg_node_len(entry); i++) {
    util_buf path = {0};
    util_buf_printf(&path, "%s.%s", prefix, cfg_node_key(entry, i));
    int rc = cfg_override_node(ctx, path.data, cfg_node_item(entry, i), cfg_node_key_node(entry, i));
    util_buf_free(&path);
    if (rc) return -1;
  }
  return 0;
}

static int bind_workload(cfg_ctx *ctx, const cfg_node *n, void *field, const cfg_key *k) {
  pu_workload *w = field;
  pu_spec *s = (pu_spec *)((char *)field - offsetof(pu_spec, work));
  if (cfg_node_kind(n) != CFG_SCALAR) return cfg_error(ctx, n, "workload: expected the path of an experiment file");
  char *dir = util_dirname(cfg_node_file(n)), *path = util_path_join(dir, cfg_node_scalar(n));
  free(dir);
  w->path = cfg_strdup(ctx, path);
  free(path);
  w->node = n;
  const cfg_node *root = cfg_load_file(ctx, w->path);
  if (!root) return -1;
  const cfg_node *kn = cfg_node_kind(root) == CFG_MAP ? cfg_node_get(root, "kind") : NULL;
  const char *kname = kn ? cfg_node_scalar(kn) : NULL;
  w->kind = kname ? exp_kind_find(kname) : NULL;
  if (!w->kind || (strcmp(kname, "train") != 0 && strcmp(kname, "decode") != 0))
    return cfg_error(ctx, kn ? kn : root, "a purchase workload is an experiment of kind train or decode%s%s",
                     kname ? ", not " : "", kname ? kname : "");
  if (apply_option(ctx, s, k->name) != 0) return -1;
  w->spec = cfg_alloc(ctx, w->kind->spec_size);
  if (w->kind->init) w->kind->init(w->spec);
  const cfg_key *const tables[2] = {exp_common_keys, w->kind->keys};
  void *const outs[2] = {&w->common, w->spec};
  if (cfg_bind_multi(ctx, root, tables, outs, 2, k->name) != 0) return -1;
  topo_spec *ts = workload_cluster(w->kind, w->spec);
  if (!ts) return cfg_error(ctx, root, "workload kind %s has no cluster", kname);
  int train = strcmp(kname, "train") == 0;
  const cfg_node *at_goal = s->goal_node ? s->goal_node : n;
  if (train && !(s->goal.train_tokens > 0))
    return cfg_error(ctx, at_goal, "goal.train_tokens is required for a train workload (e.g. 14.8e12)");
  if (!train && !(s->goal.serve_output_tokens_per_s > 0 && s->goal.tpot_max_ms > 0))
    return cfg_error(ctx, at_goal, "goal.serve_output_tokens_per_s and goal.tpot_max_ms are required for a decode workload");
  if (s->gpus.v > 0) {
    if (!train) return cfg_error(ctx, s->gpus.node, "gpus sizes a training cluster; a serving deployment is sized by its goal");
    if (ts->gpus_per_node <= 0 || s->gpus.v % ts->gpus_per_node != 0)
      return cfg_error(ctx, s->gpus.node, "gpus (%lld) must be a multiple of the cluster's %d GPUs per node",
                       (long long)s->gpus.v, ts->gpus_per_node);
    ts->nodes = s->gpus.v / ts->gpus_per_node;
  }
  return 0;
}

#define G(f) offsetof(pu_spec, goal.f)
static const cfg_key goal_keys[] = {
    {.name = "train_tokens", .type = CFG_DOUBLE, .offset = G(train_tokens), .flags = CFG_POSITIVE,
     .doc = "train workloads: tokens to pre-train on (V3: 14.8e12)"},
    {.name = "serve_output_tokens_per_s", .type = CFG_DOUBLE, .offset = G(serve_output_tokens_per_s),
     .flags = CFG_POSITIVE, .doc = "decode workloads: output tokens per second to serve"},
    {.name = "tpot_max_ms", .type = CFG_DOUBLE, .offset = G(tpot_max_ms), .flags = CFG_POSITIVE,
     .doc = "decode workloads: the largest time per output token allowed, ms"},
    CFG_END};

/* Table order matters: the workload is bound last, after the option, the size and the goal. */
static const cfg_key pu_keys[] = {
    {.name = "option", .type = CFG_CUSTOM, .offset = offsetof(pu_spec, option), .custom = bind_named,
     .flags = CFG_REQUIRED, .doc = "the options entry this point simulates (sweep it)"},
    {.name = "options", .type = CFG_NODE, .offset = offsetof(pu_spec, options), .flags = CFG_REQUIRED,
     .doc = "the catalogue: name -> {workload key (dotted): value}, applied over the workload"},
    {.name = "gpus", .type = CFG_CUSTOM, .offset = offsetof(pu_spec, gpus), .custom = bind_count,
     .doc = "train: cluster size in GPUs, a multiple of the GPUs per node (0 or absent: the workload's)"},
    {.name = "goal", .type = CFG_STRUCT, .offset = 0, .sub = goal_keys, .flags = CFG_REQUIRED | CFG_KEEP_NODE,
     .node_offset = offsetof(pu_spec, goal_node), .doc = "what the cluster is for (train_tokens, or serve_* and tpot_max_ms)"},
    {.name = "prices", .type = CFG_INCLUDE, .offset = offsetof(pu_spec, prices), .sub = purchase_prices_keys,
     .flags = CFG_REQUIRED | CFG_KEEP_NODE, .node_offset = offsetof(pu_spec, prices_node),
     .doc = "energy, PUE, colocation, amortisation, per-GPU server figures (file, e.g. ../topologies/prices.yaml)"},
    {.name = "workload", .type = CFG_CUSTOM, .offset = offsetof(pu_spec, work), .custom = bind_workload,
     .flags = CFG_REQUIRED,
     .doc = "experiment file (kind train or decode) simulated for each option; its keys are workload.KEY"},
    CFG_END};

static void pu_init(void *p) { memset(p, 0, sizeof(pu_spec)); }

/* ---------------------------------------------------------------- running */

/* A number from the workload's row; NAN when absent or not a number. */
static double col_num(const res_row *r, const char *col) {
  const char *v = res_get(r, col);
  char *end;
  double x = v && *v ? strtod(v, &end) : NAN;
  return v && *v && *end == '\0' ? x : NAN;
}

/* Prices the cluster `ts` sized to `gpus` GPUs (its nodes changed for the network's bill). */
static int price_cluster(const exp_run *run, pu_spec *s, topo_spec *ts, double gpus, purchase_cluster *pc,
                         topo_summary *sum) {
  const purchase_server *sv = purchase_server_find(&s->prices, ts->gpu.model);
  if (!sv) {
    cfg_error(run->cfg, s->prices_node, "prices: no servers entry for GPU model '%s'", ts->gpu.model ? ts->gpu.model : "(inline)");
    return UTIL_EXIT_USAGE;
  }
  int64_t nodes = ts->nodes;
  ts->nodes = (int64_t)ceil(gpus / ts->gpus_per_node);
  char err[256];
  topo *t = topo_build(ts, err, sizeof err);
  ts->nodes = nodes;
  if (!t) {
    cfg_error(run->cfg, s->work.node, "cannot build the network for %.0f GPUs: %s", gpus, err);
    return UTIL_EXIT_USAGE;
  }
  topo_summarize(t, sum);
  *pc = (purchase_cluster){.gpus = gpus, .gpu_usd = ts->gpu.price_usd, .rent_usd_per_gpu_hour = ts->gpu.rent_usd_per_hour,
                           .host_usd_per_gpu = sv->host_usd_per_gpu, .power_w_per_gpu = sv->power_w_per_gpu,
                           .network_usd = sum->cost_usd, .switches = sum->switches};
  topo_free(t);
  return 0;
}

static void rate_cols(res_row *row, const purchase_rates *r, const purchase_prices *p) {
  res_set_f(row, "capex_usd", r->capex_usd);
  res_set_f(row, "it_power_kw", r->it_kw);
  res_set_f(row, "rent_usd_per_hour", r->rent_usd_per_hour);
  res_set_f(row, "buy_usd_per_hour", r->buy_usd_per_hour);
  res_set_f(row, "amortisation_usd_per_hour", r->amortisation_usd_per_hour);
  res_set_f(row, "energy_usd_per_hour", r->energy_usd_per_hour);
  res_set_f(row, "colocation_usd_per_hour", r->colocation_usd_per_hour);
  res_set_f(row, "breakeven_utilisation", r->breakeven_utilisation);
  res_set_f(row, "amortisation_years", p->amortisation_years);
}

static void topo_cols(res_row *row, const topo_summary *sum) {
  res_set_f(row, "topo_cost_usd", sum->cost_usd);
  res_set_f(row, "topo_cost_per_endpoint_usd", sum->endpoints ? sum->cost_usd / sum->endpoints : 0);
  res_set_i(row, "topo_switches", sum->switches);
  res_set_i(row, "topo_links", sum->links);
}

static int pu_run(const exp_run *run, void *p, res_row *row) {
  pu_spec *s = p;
  pu_workload *w = &s->work;
  exp_run sub = *run;
  sub.exp_path = w->path;
  res_row wr = {0};
  int rc = w->kind->run(&sub, w->spec, &wr);
  topo_spec *ts = workload_cluster(w->kind, w->spec);
  int train = strcmp(w->kind->name, "train") == 0;
  purchase_cluster pc;
  purchase_rates r;
  topo_summary sum;
  res_set(row, "option", "%s", s->option.text);
  res_set(row, "goal", "%s", train ? "train" : "serve");
  res_set(row, "gpu", "%s", ts->gpu.model ? ts->gpu.model : "gpu");
  res_set(row, "network", "%s", topo_fabric_names[ts->fabric.kind]);
  if (rc == 0 && train) {
    double gpus = col_num(&wr, "gpus"), tok_s = col_num(&wr, "tokens_per_s");
    purchase_train tc;
    if (!(tok_s > 0) || !(gpus > 0)) {
      fprintf(stderr, "%s: error: the train workload reported no throughput\n", run->exp_path);
      rc = UTIL_EXIT_SYS;
    }
    if (rc == 0) rc = price_cluster(run, s, ts, gpus, &pc, &sum);
    if (rc == 0) {
      purchase_rates_of(&pc, &s->prices, &r);
      purchase_train_cost(s->goal.train_tokens, tok_s, gpus, &r, &tc);
      res_set_f(row, "gpus", gpus);
      res_set_f(row, "train_tokens", s->goal.train_tokens);
      res_set_f(row, "time_days", tc.hours / 24);
      res_set_f(row, "rent_usd", tc.rent_usd);
      res_set_f(row, "buy_usd", tc.buy_usd);
      res_set_f(row, "rent_usd_per_t_tokens", tc.rent_usd_per_t_tokens);
      res_set_f(row, "buy_usd_per_t_tokens", tc.buy_usd_per_t_tokens);
      res_set_f(row, "gpu_hours", tc.gpu_hours);
      rate_cols(row, &r, &s->prices);
      topo_cols(row, &sum);
      if (run->summary)
        fprintf(run->summary,
                "purchase  %s: %.0f GPUs pre-train %.3g tokens in %.1f days; rent $%.4g M, buy $%.4g M (capex $%.4g M "
                "over %g years + power), network $%.0f per endpoint\n",
                s->option.text, gpus, s->goal.train_tokens, tc.hours / 24, tc.rent_usd / 1e6, tc.buy_usd / 1e6,
                r.capex_usd / 1e6, s->prices.amortisation_years, sum.endpoints ? sum.cost_usd / sum.endpoints : 0);
    }
  } else if (rc == 0) {
    double per_gpu = col_num(&wr, "output_tokens_per_s_per_gpu"), tpot = col_num(&wr, "tpot_ms");
    double dgpus = col_num(&wr, "decode_gpus"), ratio = col_num(&wr, "prefill_nodes_per_decode_node");
    purchase_serve sz;
    if (isnan(ratio)) {
      cfg_error(run->cfg, w->node, "a serve goal needs the workload's prefill unit (prefill:) to size the prefill nodes");
      rc = UTIL_EXIT_USAGE;
    } else if (purchase_serve_size(s->goal.serve_output_tokens_per_s, per_gpu, dgpus, ratio, ts->gpus_per_node, &sz) != 0) {
      fprintf(stderr, "%s: error: the decode workload reported no throughput\n", run->exp_path);
      rc = UTIL_EXIT_SYS;
    }
    if (rc == 0) rc = price_cluster(run, s, ts, sz.gpus, &pc, &sum);
    if (rc == 0) {
      purchase_rates_of(&pc, &s->prices, &r);
      int meets = tpot <= s->goal.tpot_max_ms;
      double demand = s->goal.serve_output_tokens_per_s;
      res_set_f(row, "gpus", sz.gpus);
      res_set_f(row, "serve_output_tokens_per_s", s->goal.serve_output_tokens_per_s);
      res_set_f(row, "tpot_ms", tpot);
      res_set_f(row, "tpot_max_ms", s->goal.tpot_max_ms);
      res_set_i(row, "meets_tpot", meets);
      res_set_f(row, "decode_units", sz.units);
      res_set_f(row, "decode_gpus_total", sz.decode_gpus);
      res_set_f(row, "prefill_gpus", sz.prefill_gpus);
      /* a deployment that misses the TPOT bound has no price per token for this goal */
      if (meets) {
        res_set_f(row, "rent_usd_per_m_tokens", purchase_usd_per_m_tokens(r.rent_usd_per_hour, demand));
        res_set_f(row, "buy_usd_per_m_tokens", purchase_usd_per_m_tokens(r.buy_usd_per_hour, demand));
      } else {
        res_set(row, "rent_usd_per_m_tokens", "%s", "");
        res_set(row, "buy_usd_per_m_tokens", "%s", "");
      }
      rate_cols(row, &r, &s->prices);
      topo_cols(row, &sum);
      if (run->summary)
        fprintf(run->summary,
                "purchase  %s: %.0f GPUs (%.0f decode units + %.0f prefill GPUs) serve %.3g output tokens/s at TPOT %.1f "
                "ms (%s %g); $%.4g (rent) or $%.4g (buy) per hour\n",
                s->option.text, sz.gpus, sz.units, sz.prefill_gpus, s->goal.serve_output_tokens_per_s, tpot,
                meets ? "within" : "OVER", s->goal.tpot_max_ms, r.rent_usd_per_hour, r.buy_usd_per_hour);
    }
  }
  if (rc == 0) /* then the workload's own columns (not its cost at its own price: the rent above is the catalogue's) */
    for (size_t i = 0; i < wr.len; i++)
      if (!res_get(row, wr.cols[i]) && strcmp(wr.cols[i], "usd_per_t_tokens") != 0) res_set(row, wr.cols[i], "%s", wr.vals[i]);
  res_free(&wr);
  return rc;
}

/* ---------------------------------------------------------------- after the sweep */

/* The comparison over every row of the results table: the Pareto fronts (time or TPOT against
 * cost, rent and buy), front.csv, and the table on `summary`. */
static int pu_finish(const char *csv, const char *out_dir, FILE *summary);

static const char *const pu_plots[] = {"pareto", "pareto:", "throughput_vs:", "step_time_vs:", NULL};

const exp_kind exp_kind_purchase = {
    .name = "purchase",
    .summary = "a catalogue of clusters on a train or decode workload: time, rent and buy cost, network cost, Pareto front",
    .keys = pu_keys,
    .spec_size = sizeof(pu_spec),
    .init = pu_init,
    .run = pu_run,
    .plots = pu_plots,
    .finish = pu_finish,
};

/* One option of the table, as finish reads it back. */
typedef struct pu_line {
  const char *option; /* name */
  double gpus;        /* size */
  double x;           /* time_days or tpot_ms */
  double rent, buy;   /* cost: total (train) or per million tokens (serve) */
  double capex, net;  /* capex, network per endpoint */
  int front_rent, front_buy;
} pu_line;

static double cell_num(const plot_table *t, size_t r, int c) {
  if (c < 0) return NAN;
  const char *v = t->cells[r * t->n_cols + (size_t)c];
  char *end;
  double x = strtod(v, &end);
  return *v && *end == '\0' ? x : NAN;
}

static int pu_finish(const char *csv, const char *out_dir, FILE *summary) {
  plot_table t = {0};
  int rc = plot_table_read(csv, &t);
  if (rc) return rc;
  int c_status = plot_table_col(&t, "status"), c_goal = plot_table_col(&t, "goal"), c_opt = plot_table_col(&t, "option");
  int serve = c_goal >= 0 && t.n_rows > 0;
  for (size_t i = 0; serve && i < t.n_rows; i++)
    if (strcmp(t.cells[i * t.n_cols + (size_t)c_goal], "train") == 0) serve = 0;
  int c_x = plot_table_col(&t, serve ? "tpot_ms" : "time_days");
  int c_rent = plot_table_col(&t, serve ? "rent_usd_per_m_tokens" : "rent_usd");
  int c_buy = plot_table_col(&t, serve ? "buy_usd_per_m_tokens" : "buy_usd");
  int c_gpus = plot_table_col(&t, "gpus"), c_capex = plot_table_col(&t, "capex_usd");
  int c_net = plot_table_col(&t, "topo_cost_per_endpoint_usd");
  pu_line *l = util_xcalloc(t.n_rows + 1, sizeof *l);
  size_t n = 0;
  for (size_t i = 0; i < t.n_rows; i++) {
    if (c_status >= 0 && strcmp(t.cells[i * t.n_cols + (size_t)c_status], "ok") != 0) continue;
    if (c_opt < 0) continue;
    l[n] = (pu_line){.option = t.cells[i * t.n_cols + (size_t)c_opt], .gpus = cell_num(&t, i, c_gpus),
                     .x = cell_num(&t, i, c_x), .rent = cell_num(&t, i, c_rent), .buy = cell_num(&t, i, c_buy),
                     .capex = cell_num(&t, i, c_capex), .net = cell_num(&t, i, c_net)};
    n++;
  }
  double *x = util_xcalloc(n + 1, sizeof *x), *y = util_xcalloc(n + 1, sizeof *y);
  int *on = util_xcalloc(n + 1, sizeof *on);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < n; i++) x[i] = l[i].x, y[i] = pass ? l[i].buy : l[i].rent;
    purchase_front(x, y, n, on);
    for (size_t i = 0; i < n; i++) *(pass ? &l[i].front_buy : &l[i].front_rent) = on[i];
  }
  const char *xname = serve ? "tpot_ms" : "time_days", *cost = serve ? "usd_per_m_tokens" : "cost_usd";
  util_buf out = {0}, path = {0};
  util_buf_printf(&out, "finance,option,gpus,%s,%s\n", xname, cost);
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < n; i++)
      if (pass ? l[i].front_buy : l[i].front_rent)
        util_buf_printf(&out, "%s,%s,%.0f,%.6g,%.6g\n", pass ? "buy" : "rent", l[i].option, l[i].gpus, l[i].x,
                        pass ? l[i].buy : l[i].rent);
  util_buf_printf(&path, "%s/front.csv", out_dir);
  rc = util_write_file_atomic(path.data, out.data, out.len) != 0 ? UTIL_EXIT_SYS : 0;
  if (rc == 0 && summary) {
    fprintf(summary, "purchase  %zu options; Pareto front (nothing both %s and cheaper): R rent, B buy\n", n,
            serve ? "lower in TPOT" : "faster");
    if (serve)
      fprintf(summary, "  %-22s %6s %9s %12s %12s %10s %12s  front\n", "option", "gpus", "tpot_ms", "rent_$/Mtok",
              "buy_$/Mtok", "capex_$M", "net_$/gpu");
    else
      fprintf(summary, "  %-22s %6s %9s %12s %12s %10s %12s  front\n", "option", "gpus", "days", "rent_$M", "buy_$M",
              "capex_$M", "net_$/gpu");
    double scale = serve ? 1 : 1e-6;
    for (size_t i = 0; i < n; i++)
      fprintf(summary, "  %-22s %6.0f %9.2f %12.4g %12.4g %10.4g %12.0f  %s%s\n", l[i].option, l[i].gpus, l[i].x,
              l[i].rent * scale, l[i].buy * scale, l[i].capex / 1e6, l[i].net, l[i].front_rent ? "R" : "",
              l[i].front_buy ? "B" : "");
    fprintf(summary, "front     %s\n", path.data);
  }
  util_buf_free(&out);
  util_buf_free(&path);
  free(x), free(y), free(on), free(l);
  plot_table_free(&t);
  return rc;
}
