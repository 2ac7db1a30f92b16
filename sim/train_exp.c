/* sim/train_exp.c — the experiment kind `train` (`moesim run experiments/v3-pretrain.yaml`): binds
 * a model, a cluster, a parallel plan, kernel tables and routing from YAML, runs the training-step
 * simulator (train.h), prints a summary and fills the results row (step time, throughput, MFU,
 * bubble and exposed communication, GPU-hours and dollars per trillion tokens, peak memory, the
 * per-phase breakdown, where the compute times came from). `--trace` writes trace.json. */
#include <stdlib.h>
#include <string.h>

#include "exp.h"
#include "hwcat.h"
#include "schedule.h"
#include "train.h"
#include "util.h"
#include "whatif.h"

typedef struct tx_spec {
  model_spec model;        /* model: file or mapping */
  topo_spec cluster;       /* cluster: file or mapping */
  train_plan plan;         /* parallel:, schedule, comm_sms, recompute.full */
  char **kernel_tables;    /* kernel-table CSVs (measured and published rows) */
  size_t n_kernel_tables;
  train_routing routing;   /* routing: */
  int dispatch_fp8;        /* precision.dispatch */
  int ep_kernel;           /* coll_ep_kernel */
  double price;            /* USD per GPU-hour (0: the GPU's catalogue rent) */
  uint64_t net_seed;       /* ECMP seed */
  whatif_hw hw;            /* hw_features: the hardware suggestions' mechanisms */
} tx_spec;

static const char *const sched_names[] = {"1f1b", "interleaved", "zb1p", "dualpipe", "dualpipev", NULL};
static const char *const fmt_choices[] = {"fp32", "bf16", "fp8_e4m3", NULL}; /* index = model_fmt */
static const char *const payloads[] = {"bf16", "fp8_e4m3", NULL};           /* index = dispatch_fp8 */
static const char *const balances[] = {"bias", "none", NULL};               /* index = train_balance */
static const char *const ep_kernels[] = {"auto", "intranode", "two_hop", "direct", NULL};

#define PL(f) offsetof(tx_spec, plan.f)
static const cfg_key parallel_keys[] = {
    {.name = "pp", .type = CFG_INT32, .offset = PL(pp), .flags = CFG_RANGE, .min = 1, .max = 4096,
     .doc = "pipeline ranks"},
    {.name = "dp", .type = CFG_INT32, .offset = PL(dp), .flags = CFG_NONNEG,
     .doc = "data-parallel replicas (0 or absent: the cluster's GPUs / (pp x tp))"},
    {.name = "tp", .type = CFG_INT32, .offset = PL(tp), .flags = CFG_RANGE, .min = 1, .max = 1024,
     .doc = "tensor-parallel ranks inside a scale-up domain (1: none)"},
    {.name = "ep", .type = CFG_INT32, .offset = PL(ep), .flags = CFG_RANGE, .min = 1, .max = 1 << 20,
     .doc = "expert-parallel group size (divides dp x tp)"},
    {.name = "dp_zero", .type = CFG_INT32, .offset = PL(zero), .flags = CFG_RANGE, .min = 0, .max = 3,
     .doc = "ZeRO stage of data parallelism: 0 none, 1 optimizer state, 2 + gradients, 3 + weights"},
    {.name = "micro_batch_seqs", .type = CFG_INT32, .offset = PL(micro_batch_seqs), .flags = CFG_POSITIVE,
     .doc = "sequences per micro-batch"},
    {.name = "global_batch_seqs", .type = CFG_INT32, .offset = PL(global_batch_seqs), .flags = CFG_POSITIVE,
     .doc = "sequences per optimizer step, all replicas"},
    {.name = "seq_len", .type = CFG_INT32, .offset = PL(seq_len), .flags = CFG_NONNEG,
     .doc = "tokens per sequence (0 or absent: the model's seq_len)"},
    {.name = "virtual_chunks", .type = CFG_INT32, .offset = PL(virt), .flags = CFG_RANGE, .min = 1, .max = 64,
     .doc = "interleaved 1F1B: model chunks per rank"},
    CFG_END};

/* recompute: binds into the model's recomputation choices and the plan's full recomputation. */
static const cfg_key recompute_keys[] = {
    {.name = "rmsnorm", .type = CFG_BOOL, .offset = offsetof(tx_spec, model.recompute.rmsnorm),
     .doc = "RMSNorm outputs recomputed in the backward (V3: true)"},
    {.name = "mla_up", .type = CFG_BOOL, .offset = offsetof(tx_spec, model.recompute.mla_up),
     .doc = "MLA up-projections recomputed (V3: true)"},
    {.name = "swiglu", .type = CFG_BOOL, .offset = offsetof(tx_spec, model.recompute.swiglu),
     .doc = "SwiGLU outputs recomputed from their cached input (V3: true)"},
    {.name = "expert_out", .type = CFG_BOOL, .offset = offsetof(tx_spec, model.recompute.expert_out),
     .doc = "keep no routed-expert outputs (routing weights applied on the down projection's input)"},
    {.name = "full", .type = CFG_BOOL, .offset = PL(recompute_full),
     .doc = "whole layers recomputed in the backward; only layer inputs kept"},
    CFG_END};

static const cfg_key precision_keys[] = {
    {.name = "gemm", .type = CFG_ENUM, .offset = offsetof(tx_spec, model.prec.gemm), .choices = fmt_choices,
     .doc = "linear layers' Fprop, Dgrad and Wgrad: fp8_e4m3 or bf16 (default: the model's)"},
    {.name = "dispatch", .type = CFG_ENUM, .offset = offsetof(tx_spec, dispatch_fp8), .choices = payloads,
     .doc = "EP dispatch payload: fp8_e4m3 (1x128 scales) or bf16; combine is BF16"},
    CFG_END};

#define RT(f) offsetof(tx_spec, routing.f)
static const cfg_key routing_keys[] = {
    {.name = "balance", .type = CFG_ENUM, .offset = RT(balance), .choices = balances,
     .doc = "bias: auxiliary-loss-free bias converged on a calibration batch; none: the gate's raw choices"},
    {.name = "skew_zipf_s", .type = CFG_DOUBLE, .offset = RT(zipf_s), .flags = CFG_NONNEG,
     .doc = "expert popularity skew of the synthetic tokens (0 uniform, 1 Zipf)"},
    {.name = "seed", .type = CFG_UINT, .offset = RT(seed), .doc = "token stream seed"},
    {.name = "samples", .type = CFG_INT32, .offset = RT(samples), .flags = CFG_RANGE, .min = 1, .max = 256,
     .doc = "distinct routings simulated (MoE layer l uses sample l mod samples)"},
    {.name = "trace", .type = CFG_PATH, .offset = RT(trace),
     .doc = "routing trace file (moesim-routing 1) instead of the gate"},
    CFG_END};

static const cfg_key tx_keys[] = {
    {.name = "model", .type = CFG_INCLUDE, .offset = offsetof(tx_spec, model), .sub = model_keys,
     .flags = CFG_REQUIRED, .doc = "model spec (file, e.g. models/deepseek-v3.yaml, or mapping)"},
    {.name = "cluster", .type = CFG_INCLUDE, .offset = offsetof(tx_spec, cluster), .sub = topo_spec_keys,
     .flags = CFG_REQUIRED, .doc = "cluster topology (file under topologies/, or mapping)"},
    {.name = "parallel", .type = CFG_STRUCT, .offset = 0, .sub = parallel_keys, .flags = CFG_REQUIRED,
     .doc = "the parallel plan"},
    {.name = "schedule", .type = CFG_ENUM, .offset = PL(schedule), .choices = sched_names,
     .doc = "pipeline schedule"},
    {.name = "comm_sms", .type = CFG_INT32, .offset = PL(comm_sms), .flags = CFG_NONNEG,
     .doc = "SMs communication kernels hold (0: offloaded to a co-processor: no SMs, copy rate not SM-bound)"},
    {.name = "overlap", .type = CFG_BOOL, .offset = PL(overlap),
     .doc = "DualPipe(V): overlap each F&B pair's computation and communication (false: in series)"},
    {.name = "recompute", .type = CFG_STRUCT, .offset = 0, .sub = recompute_keys,
     .doc = "recomputation choices (default: the model's)"},
    {.name = "precision", .type = CFG_STRUCT, .offset = 0, .sub = precision_keys, .doc = "precision choices"},
    {.name = "kernel_tables", .type = CFG_LIST, .offset = offsetof(tx_spec, kernel_tables), .elem = CFG_PATH,
     .count_offset = offsetof(tx_spec, n_kernel_tables),
     .doc = "kernel-table CSVs (measured or published rows) the compute costs come from"},
    {.name = "routing", .type = CFG_STRUCT, .offset = 0, .sub = routing_keys, .doc = "expert routing"},
    {.name = "ep_kernel", .type = CFG_ENUM, .offset = offsetof(tx_spec, ep_kernel), .choices = ep_kernels,
     .doc = "EP all-to-all kernel (auto: intranode inside one domain, else DeepEP two-hop)"},
    {.name = "price_usd_per_gpu_hour", .type = CFG_DOUBLE, .offset = offsetof(tx_spec, price), .flags = CFG_NONNEG,
     .doc = "rental price, USD per GPU-hour (0 or absent: the GPU's catalogue rent)"},
    {.name = "net_seed", .type = CFG_UINT, .offset = offsetof(tx_spec, net_seed), .doc = "ECMP route seed"},
    {.name = "hw_features", .type = CFG_STRUCT, .offset = offsetof(tx_spec, hw), .sub = whatif_hw_keys,
     .doc = "hardware suggestions of the V3 report and its ISCA'25 follow-up as mechanisms (default: today's H800)"},
    CFG_END};

static void tx_init(void *p) {
  tx_spec *s = p;
  model_init(&s->model);
  topo_spec_init(&s->cluster);
  s->plan = (train_plan){.pp = 1, .tp = 1, .ep = 1, .zero = 1, .micro_batch_seqs = 1, .global_batch_seqs = 0,
                         .schedule = SCHED_1F1B, .virt = 1, .comm_sms = 0, .overlap = 1};
  s->routing = (train_routing){.balance = TRAIN_BALANCE_BIAS, .seed = 1, .samples = 1};
  s->dispatch_fp8 = 1;
  s->net_seed = 1;
  whatif_hw_init(&s->hw);
}

/* The mapping an include key names (inline, or the file it points to), for error positions. */
static const cfg_node *include_node(cfg_ctx *ctx, const char *exp_path, const char *key) {
  const cfg_node *root = cfg_load_file(ctx, exp_path), *n = root ? cfg_node_get(root, key) : NULL;
  if (!n || cfg_node_kind(n) != CFG_SCALAR) return n ? n : root;
  char *dir = util_dirname(cfg_node_file(n)), *path = util_path_join(dir, cfg_node_scalar(n));
  const cfg_node *inc = cfg_load_file(ctx, path);
  free(dir);
  free(path);
  return inc ? inc : n;
}

/* The key a plan error is about (by the words it uses), for its path:line:col. */
static const cfg_node *plan_node(cfg_ctx *ctx, const char *exp_path, const char *msg) {
  static const struct { const char *word, *key; } keys[] = {
      {"routing trace", "routing"}, {"schedule", "schedule"}, {"comm_sms", "comm_sms"}, {"tp (", "parallel"},
      {"EP all-to-all", "cluster"}, {"cluster", "cluster"}};
  const cfg_node *root = cfg_load_file(ctx, exp_path);
  const char *key = "parallel";
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strstr(msg, keys[i].word)) {
      key = keys[i].key;
      break;
    }
  const cfg_node *n = root ? cfg_node_get(root, key) : NULL;
  if (!n && root) n = cfg_node_get(root, "parallel");
  return n ? n : root;
}

static void fill_row(res_row *row, const tx_spec *s, const topo *t, const train_result *r) {
  res_set(row, "model", "%s", s->model.name);
  res_set(row, "cluster", "%s", t->name);
  res_set(row, "gpu", "%s", t->gpu.model ? t->gpu.model : "gpu");
  res_set_i(row, "gpus", r->gpus);
  res_set_i(row, "gpus_per_node", t->gpus_per_node);
  res_set(row, "schedule", "%s", sched_names[s->plan.schedule]);
  res_set_i(row, "pp", s->plan.pp);
  res_set_i(row, "dp", r->dp);
  res_set_i(row, "tp", s->plan.tp);
  res_set_i(row, "ep", s->plan.ep);
  res_set_i(row, "dp_zero", s->plan.zero);
  res_set_i(row, "comm_sms", s->plan.comm_sms);
  res_set_i(row, "overlap", s->plan.overlap);
  res_set_i(row, "micro_batch_seqs", s->plan.micro_batch_seqs);
  res_set_i(row, "global_batch_seqs", s->plan.global_batch_seqs);
  res_set_i(row, "seq_len", s->plan.seq_len ? s->plan.seq_len : s->model.seq_len);
  res_set_i(row, "micro_batches", r->micro_batches);
  res_set_f(row, "step_s", r->step_s);
  res_set_f(row, "tokens_per_s", r->tokens_per_s);
  res_set_f(row, "tflops_per_gpu", r->tflops_per_gpu);
  res_set_f(row, "mfu", r->mfu);
  res_set_f(row, "mfu_bf16", r->mfu_bf16);
  res_set_f(row, "bubble_frac", r->bubble_frac);
  res_set_f(row, "exposed_comm_frac", r->exposed_comm_frac);
  res_set_f(row, "gpu_hours_per_t_tokens", r->gpu_hours_per_t_tokens);
  res_set_f(row, "usd_per_t_tokens", r->usd_per_t_tokens);
  res_set_f(row, "peak_mem_gib", r->peak_mem_gib);
  res_set_f(row, "hbm_gib", r->hbm_gib);
  res_set_f(row, "phase_f_s", r->phases.f_s);
  res_set_f(row, "phase_b_s", r->phases.b_s);
  res_set_f(row, "phase_w_s", r->phases.w_s);
  res_set_f(row, "phase_bubble_s", r->phases.bubble_s);
  res_set_f(row, "phase_exposed_comm_s", r->phases.exposed_comm_s);
  res_set_f(row, "phase_optimizer_s", r->phases.optimizer_s);
  res_set_f(row, "mem_weights_gib", r->mem_weights_gib);
  res_set_f(row, "mem_grads_gib", r->mem_grads_gib);
  res_set_f(row, "mem_optimizer_gib", r->mem_optimizer_gib);
  res_set_f(row, "mem_act_gib", r->mem_act_gib);
  res_set_f(row, "ep_dispatch_ms", r->ep_dispatch_ms);
  res_set_f(row, "ep_combine_ms", r->ep_combine_ms);
  res_set_f(row, "expert_imbalance", r->expert_imbalance);
  res_set_f(row, "moe_layer_compute_ms", r->moe_layer_compute_ms);
  res_set_f(row, "moe_layer_comm_ms", r->moe_layer_comm_ms);
  double total = 0;
  for (int k = 0; k < COMPUTE_SRC_COUNT; k++) total += r->compute_src_s[k];
  for (int k = 0; k < COMPUTE_SRC_COUNT; k++) {
    char col[48];
    snprintf(col, sizeof col, "compute_%s_frac", compute_src_name((compute_src)k));
    res_set_f(row, col, total > 0 ? r->compute_src_s[k] / total : 0);
  }
  topo_summary ts;
  topo_summarize(t, &ts);
  res_set_f(row, "network_cost_usd", ts.cost_usd);
  res_set(row, "fabric", "%s", topo_fabric_names[t->fabric_kind]);
  res_set(row, "routing", "%s%s skew %g seed %llu", s->routing.trace ? "trace " : "",
          s->routing.trace ? s->routing.trace : train_balance_name(s->routing.balance), s->routing.zipf_s,
          (unsigned long long)s->routing.seed);
}

static void print_summary(FILE *f, const tx_spec *s, const topo *t, const train_result *r) {
  fprintf(f, "simulated one step of %s on %s: %d %s, PP %d x DP %d x TP %d, EP %d, ZeRO-%d, %s%s, %d comm SMs\n",
          s->model.name, t->name, r->gpus, t->gpu.model ? t->gpu.model : "GPUs", s->plan.pp, r->dp, s->plan.tp,
          s->plan.ep, s->plan.zero, sched_names[s->plan.schedule], s->plan.overlap ? "" : " (no overlap)",
          s->plan.comm_sms);
  fprintf(f, "  step             %10.3f s   (%d micro-batches of %d x %d tokens per pipeline)\n", r->step_s,
          r->micro_batches, s->plan.micro_batch_seqs, s->plan.seq_len ? s->plan.seq_len : s->model.seq_len);
  fprintf(f, "  throughput       %10.4g tokens/s, %.1f TFLOP/s per GPU, MFU %.1f%% (%.1f%% of BF16 peak)\n",
          r->tokens_per_s, r->tflops_per_gpu, 100 * r->mfu, 100 * r->mfu_bf16);
  fprintf(f, "  cost             %10.4g GPU-hours and $%.4g per trillion tokens\n", r->gpu_hours_per_t_tokens,
          r->usd_per_t_tokens);
  fprintf(f, "  memory           %10.1f GiB peak of %.0f (rank %d: weights %.1f, gradients %.1f, optimizer %.1f, "
             "activations %.1f)\n", r->peak_mem_gib, r->hbm_gib, r->peak_mem_rank, r->mem_weights_gib, r->mem_grads_gib,
          r->mem_optimizer_gib, r->mem_act_gib);
  const train_phases *p = &r->phases;
  fprintf(f, "  phases per GPU   F %.3f  B %.3f  W %.3f  bubble %.3f  exposed comm %.3f  optimizer %.3f  (s)\n", p->f_s,
          p->b_s, p->w_s, p->bubble_s, p->exposed_comm_s, p->optimizer_s);
  fprintf(f, "  EP all-to-all    dispatch %.3f ms, combine %.3f ms per layer and micro-batch; expert load max/mean %.3f\n",
          r->ep_dispatch_ms, r->ep_combine_ms, r->expert_imbalance);
  double total = 0;
  for (int k = 0; k < COMPUTE_SRC_COUNT; k++) total += r->compute_src_s[k];
  fprintf(f, "  compute sources ");
  for (int k = 0; k < COMPUTE_SRC_COUNT; k++)
    fprintf(f, " %s %.1f%%", compute_src_name((compute_src)k), total > 0 ? 100 * r->compute_src_s[k] / total : 0);
  fprintf(f, "  (of compute time)\n  simulated in     %10.2f s wall\n", r->sim_wall_s);
}

static int tx_run(const exp_run *run, void *p, res_row *row) {
  tx_spec *s = p;
  cfg_ctx *ctx = run->cfg;
  if (model_finish(ctx, include_node(ctx, run->exp_path, "model"), &s->model) != 0) return UTIL_EXIT_USAGE;
  if (s->model.prec.gemm != MODEL_FP8 && s->model.prec.gemm != MODEL_BF16) {
    fprintf(stderr, "%s: error: precision.gemm must be fp8_e4m3 or bf16\n", run->exp_path);
    return UTIL_EXIT_USAGE;
  }
  whatif_apply_model(&s->hw, &s->model);
  const cfg_node *cn = include_node(ctx, run->exp_path, "cluster");
  if (topo_spec_resolve(ctx, &s->cluster, cn) != 0) return UTIL_EXIT_USAGE;
  char err[512];
  const cfg_node *root = cfg_load_file(ctx, run->exp_path), *hwn = root ? cfg_node_get(root, "hw_features") : NULL;
  if (whatif_apply_topo(&s->hw, &s->cluster, err, sizeof err) != 0) {
    cfg_error(ctx, hwn ? hwn : root, "%s", err);
    return UTIL_EXIT_USAGE;
  }
  whatif_promo promo = {0};
  if (whatif_promo_needed(&s->hw) && s->model.prec.gemm == MODEL_FP8) {
    if (!s->hw.promotion_table) {
      cfg_error(ctx, hwn ? hwn : root,
                "these hw_features change the FP8 GEMMs' promotion steps; hw_features.promotion_table must name "
                "the promotion study that says what a step costs");
      return UTIL_EXIT_USAGE;
    }
    if (whatif_promo_load(s->hw.promotion_table, &promo, err, sizeof err) != 0) {
      cfg_error(ctx, hwn ? cfg_node_get(hwn, "promotion_table") : root, "%s", err);
      return UTIL_EXIT_USAGE;
    }
  }
  if (s->hw.comm_offload) s->plan.comm_sms = 0;
  topo *t = topo_build(&s->cluster, err, sizeof err);
  if (!t) {
    cfg_error(ctx, cn, "%s", err);
    return UTIL_EXIT_USAGE;
  }
  if (s->plan.global_batch_seqs <= 0) {
    fprintf(stderr, "%s: error: parallel.global_batch_seqs is required\n", run->exp_path);
    topo_free(t);
    return UTIL_EXIT_USAGE;
  }
  compute_target tg = {.device = t->gpu.model ? t->gpu.model : "target", .fp8_tflops = t->gpu.fp8_tflops,
                       .bf16_tflops = t->gpu.bf16_tflops, .hbm_gbyte_s = t->gpu.hbm_gbyte_s};
  compute_ctx *cc = compute_new(&tg);
  hwcat cat = {0};
  if (s->cluster.catalogue && hwcat_load(ctx, s->cluster.catalogue, &cat) == 0)
    for (size_t i = 0; i < cat.n_gpus; i++) {
      compute_set_peak(cc, cat.gpus[i].model, "fp8_e4m3", cat.gpus[i].fp8_tflops);
      compute_set_peak(cc, cat.gpus[i].model, "bf16", cat.gpus[i].bf16_tflops);
    }
  int rc = 0;
  for (size_t i = 0; i < s->n_kernel_tables && rc == 0; i++)
    if (compute_load_table(cc, s->kernel_tables[i]) != 0) {
      fprintf(stderr, "%s: error: cannot load kernel table %s\n", run->exp_path, s->kernel_tables[i]);
      rc = UTIL_EXIT_USAGE;
    }
  char nopeak[256];
  size_t unusable = compute_rows_without_peak(cc, nopeak, sizeof nopeak);
  if (rc == 0 && unusable && run->summary)
    fprintf(run->summary,
            "note      %zu kernel-table rows are not used: no peak is known for %s (add a row with kernel 'peak' "
            "and tflops = that device's measured peak, e.g. from kernels/peak.h)\n",
            unusable, nopeak);
  util_buf trace = {0};
  if (run->trace) util_buf_printf(&trace, "%s/trace.json", run->out_dir);
  train_cfg cfg = {.model = &s->model, .topo = t, .compute = cc, .plan = s->plan, .routing = s->routing,
                   .dispatch_fp8 = s->dispatch_fp8, .ep_kernel = s->ep_kernel,
                   .price_usd_per_gpu_hour = s->price > 0 ? s->price : t->gpu.rent_usd_per_hour,
                   .net_seed = s->net_seed, .trace_path = trace.data, .log = run->summary, .hw = &s->hw,
                   .fp8_gemm_factor = whatif_fp8_gemm_factor(&s->hw, promo.shapes ? &promo : NULL)};
  train_result r;
  if (rc == 0) {
    rc = train_run(&cfg, &r, err, sizeof err);
    if (rc == UTIL_EXIT_USAGE) cfg_error(ctx, plan_node(ctx, run->exp_path, err), "%s", err);
    else if (rc) fprintf(stderr, "%s: error: %s\n", run->exp_path, err);
  }
  if (rc == 0) {
    fill_row(row, s, t, &r);
    if (run->summary) {
      print_summary(run->summary, s, t, &r);
      if (trace.data) fprintf(run->summary, "trace     %s\n", trace.data);
    }
  }
  util_buf_free(&trace);
  compute_free(cc);
  topo_free(t);
  return rc;
}

static const char *const tx_plots[] = {"breakdown", NULL};

const exp_kind exp_kind_train = {
    .name = "train",
    .summary = "one training step: pipeline schedule, EP/PP/DP/TP, DualPipe overlap, costed from kernel tables",
    .keys = tx_keys,
    .spec_size = sizeof(tx_spec),
    .init = tx_init,
    .run = tx_run,
    .plots = tx_plots,
};
