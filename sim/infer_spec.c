/* sim/infer_spec.c — the YAML of prefill and decode experiments (infer.h): key tables and
 * defaults. The two kinds share every section; each has its own top-level table so that
 * `moesim run --help` documents each kind's keys. */
#include <stddef.h>
#include <string.h>

#include "infer.h"

static const char *const dist_names[] = {"fixed", "exponential", "lognormal", "uniform", NULL};
static const char *const shared_names[] = {"attention", "experts", NULL};
static const char *const kernel_names[] = {"auto", "normal", "low_latency", NULL};
static const char *const eplb_names[] = {"auto", "hierarchical", "global", "none", NULL};
static const char *const kv_names[] = {"bf16", "fp8", NULL};
static const char *const cost_names[] = {"kernel_table", "roofline", NULL};

static const cfg_key dist_keys[] = {
    {.name = "dist", .type = CFG_ENUM, .offset = offsetof(infer_dist, kind), .choices = dist_names,
     .doc = "fixed | exponential | lognormal | uniform"},
    {.name = "mean", .type = CFG_DOUBLE, .offset = offsetof(infer_dist, mean), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "mean length, tokens"},
    {.name = "cv", .type = CFG_DOUBLE, .offset = offsetof(infer_dist, cv), .flags = CFG_NONNEG,
     .doc = "lognormal: standard deviation / mean; uniform: half-width / mean (<= 1)"},
    {.name = "min_tokens", .type = CFG_DOUBLE, .offset = offsetof(infer_dist, min_tokens), .flags = CFG_NONNEG,
     .doc = "draws below are raised to it, tokens (default 1)"},
    {.name = "max_tokens", .type = CFG_DOUBLE, .offset = offsetof(infer_dist, max_tokens), .flags = CFG_NONNEG,
     .doc = "draws above are cut to it, tokens (0: no cut)"},
    CFG_END};

#define T(f) offsetof(infer_traffic, f)
static const cfg_key traffic_keys[] = {
    {.name = "input_tokens", .type = CFG_STRUCT, .offset = T(input), .sub = dist_keys, .flags = CFG_REQUIRED,
     .doc = "prompt length distribution"},
    {.name = "output_tokens", .type = CFG_STRUCT, .offset = T(output), .sub = dist_keys, .flags = CFG_REQUIRED,
     .doc = "generated length distribution"},
    {.name = "cache_hit_rate", .type = CFG_DOUBLE, .offset = T(cache_hit_rate), .flags = CFG_RANGE, .min = 0,
     .max = 0.999, .doc = "fraction of prompt tokens served from the prompt (KV) cache"},
    {.name = "request_rate_per_s", .type = CFG_DOUBLE, .offset = T(request_rate_per_s), .flags = CFG_NONNEG,
     .doc = "prefill: requests per second per unit (0: from load)"},
    {.name = "load", .type = CFG_DOUBLE, .offset = T(load), .flags = CFG_RANGE, .min = 0, .max = 0.99,
     .doc = "prefill: requests as a fraction of the saturated rate (both 0: all queued at time 0)"},
    {.name = "requests", .type = CFG_INT32, .offset = T(requests), .flags = CFG_RANGE, .min = 16, .max = 1000000,
     .doc = "synthetic requests drawn"},
    {.name = "seed", .type = CFG_UINT, .offset = T(seed), .doc = "traffic seed"},
    CFG_END};

#define D(f) offsetof(infer_deploy, f)
static const cfg_key deploy_keys[] = {
    {.name = "nodes", .type = CFG_INT32, .offset = D(nodes), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "nodes (scale-up domains) of one unit; its GPUs are one EP group"},
    {.name = "first_node", .type = CFG_INT32, .offset = D(first_node), .flags = CFG_NONNEG,
     .doc = "the unit's first node in the cluster"},
    {.name = "attn_tp", .type = CFG_INT32, .offset = D(attn_tp), .flags = CFG_RANGE, .min = 1, .max = 64,
     .doc = "attention tensor parallelism with sequence parallelism (1: data parallel only)"},
    {.name = "redundant_experts", .type = CFG_INT32, .offset = D(redundant_experts), .flags = CFG_NONNEG,
     .doc = "expert slots beyond the routed experts, placed by EPLB from load statistics"},
    {.name = "shared_expert", .type = CFG_ENUM, .offset = D(shared_placement), .choices = shared_names,
     .doc = "attention: every GPU runs it on its own tokens; experts: replicas in expert slots"},
    {.name = "shared_replicas", .type = CFG_INT32, .offset = D(shared_replicas), .flags = CFG_NONNEG,
     .doc = "shared_expert experts: slots holding shared-expert replicas"},
    {.name = "micro_batches", .type = CFG_INT32, .offset = D(micro_batches), .flags = CFG_RANGE, .min = 1, .max = 2,
     .doc = "2: dual micro-batch overlap of compute with all-to-all"},
    {.name = "attn_stages", .type = CFG_INT32, .offset = D(attn_stages), .flags = CFG_RANGE, .min = 1, .max = 2,
     .doc = "compute stages the attention is split into (decode's 5-stage pipeline: 2)"},
    {.name = "comm_sms", .type = CFG_INT32, .offset = D(comm_sms), .flags = CFG_NONNEG,
     .doc = "SMs the normal EP kernels hold (compute gets the rest while they run)"},
    {.name = "ep_kernel", .type = CFG_ENUM, .offset = D(ep_kernel), .choices = kernel_names,
     .doc = "auto (prefill normal, decode low_latency) | normal | low_latency"},
    {.name = "ll_nvlink", .type = CFG_BOOL, .offset = D(ll_nvlink),
     .doc = "low-latency kernels reach peers in the same node over NVLink (false: pure RDMA)"},
    {.name = "eplb", .type = CFG_ENUM, .offset = D(eplb), .choices = eplb_names,
     .doc = "redundant-expert placement: auto | hierarchical | global | none"},
    {.name = "mtp_depth", .type = CFG_INT32, .offset = D(mtp_depth), .flags = CFG_RANGE, .min = 0, .max = 4,
     .doc = "decode: MTP draft tokens per step (0: no speculative decoding)"},
    {.name = "mtp_acceptance", .type = CFG_DOUBLE, .offset = D(mtp_acceptance), .flags = CFG_RANGE, .min = 0, .max = 1,
     .doc = "decode: probability a draft token is accepted"},
    {.name = "kv_cache", .type = CFG_ENUM, .offset = D(kv_fmt), .choices = kv_names, .doc = "KV cache storage: bf16 | fp8"},
    {.name = "reserved_gib", .type = CFG_DOUBLE, .offset = D(reserved_gib), .flags = CFG_NONNEG,
     .doc = "HBM per GPU kept for activations, communication buffers and fragmentation, GiB"},
    {.name = "max_tokens_per_gpu", .type = CFG_INT32, .offset = D(max_tokens_per_gpu), .flags = CFG_POSITIVE,
     .doc = "prefill: new tokens per GPU per forward pass"},
    {.name = "chunk_tokens", .type = CFG_INT32, .offset = D(chunk_tokens), .flags = CFG_POSITIVE,
     .doc = "prefill: most tokens of one prompt in one pass (chunked prefill)"},
    {.name = "max_seqs_per_gpu", .type = CFG_INT32, .offset = D(max_seqs_per_gpu), .flags = CFG_POSITIVE,
     .doc = "decode: sequences per GPU per step"},
    {.name = "concurrency_per_gpu", .type = CFG_INT32, .offset = D(concurrency_per_gpu), .flags = CFG_NONNEG,
     .doc = "decode: sequences per GPU in flight (0: the most the limits and the KV cache allow)"},
    CFG_END};

#define RO(f) offsetof(infer_routing, f)
static const cfg_key routing_keys[] = {
    {.name = "skew_zipf_s", .type = CFG_DOUBLE, .offset = RO(skew_zipf_s), .flags = CFG_NONNEG,
     .doc = "expert popularity skew of the synthetic tokens (0 uniform; 1 Zipf)"},
    {.name = "seed", .type = CFG_UINT, .offset = RO(seed), .doc = "routing seed"},
    {.name = "layer_patterns", .type = CFG_INT32, .offset = RO(layer_patterns), .flags = CFG_RANGE, .min = 1, .max = 64,
     .doc = "distinct per-layer routing patterns, cycled over the MoE layers"},
    {.name = "pool_tokens", .type = CFG_INT32, .offset = RO(pool_tokens), .flags = CFG_RANGE, .min = 64,
     .max = 1 << 20, .doc = "tokens routed per pattern: the statistics window EPLB plans on, and again for use"},
    CFG_END};

#define S(f) offsetof(infer_spec, f)
#define UNIT(name_, ph, fl, doc_)                                                                                     \
  {.name = name_, .type = CFG_INCLUDE, .offset = S(unit[ph]), .sub = deploy_keys, .flags = (fl) | CFG_KEEP_NODE,      \
   .node_offset = S(unit_node[ph]), .doc = doc_}
#define INFER_COMMON_KEYS                                                                                              \
  {.name = "model", .type = CFG_INCLUDE, .offset = S(model), .sub = model_keys, .flags = CFG_REQUIRED | CFG_KEEP_NODE, \
   .node_offset = S(model_node), .doc = "the model (mapping or models/NAME.yaml)"},                                    \
      {.name = "cluster", .type = CFG_INCLUDE, .offset = S(cluster), .sub = topo_spec_keys,                           \
       .flags = CFG_REQUIRED | CFG_KEEP_NODE, .node_offset = S(cluster_node),                                          \
       .doc = "the cluster (mapping or topologies/NAME.yaml)"},                                                        \
      {.name = "traffic", .type = CFG_INCLUDE, .offset = S(traffic), .sub = traffic_keys, .flags = CFG_REQUIRED,      \
       .doc = "the requests (mapping or file)"},                                                                       \
      {.name = "routing", .type = CFG_STRUCT, .offset = S(routing), .sub = routing_keys,                              \
       .doc = "expert routing statistics (the V3 gate over synthetic tokens)"},                                       \
      {.name = "lockstep_a2a", .type = CFG_BOOL, .offset = S(lockstep_a2a),                                          \
       .doc = "low-latency all-to-alls at the busiest link's pace (true, fast) or max-min per-rank flows (false)"},   \
      {.name = "compute", .type = CFG_ENUM, .offset = S(cost), .choices = cost_names,                                 \
       .doc = "op costs: kernel_table (sim/compute.h over kernel_tables) | roofline (datasheet peaks, HBM)"},           \
      {.name = "hw_features", .type = CFG_STRUCT, .offset = S(hw), .sub = whatif_hw_keys,                             \
       .doc = "hardware suggestions of the V3 report and its ISCA'25 follow-up as mechanisms (sim/whatif.h)"},         \
  {                                                                                                                    \
    .name = "kernel_tables", .type = CFG_LIST, .offset = S(kernel_tables), .elem = CFG_PATH,                           \
    .count_offset = S(n_kernel_tables), .doc = "kernel-table CSVs (measured or published rows) op costs come from"     \
  }

const cfg_key infer_prefill_keys[] = {
    INFER_COMMON_KEYS,
    UNIT("prefill", INFER_PREFILL, CFG_REQUIRED, "the prefill unit (mapping or file)"),
    UNIT("decode", INFER_DECODE, 0, "the decode unit of the same deployment (optional: its columns too)"),
    CFG_END};

const cfg_key infer_decode_keys[] = {
    INFER_COMMON_KEYS,
    UNIT("decode", INFER_DECODE, CFG_REQUIRED, "the decode unit (mapping or file)"),
    UNIT("prefill", INFER_PREFILL, 0, "the prefill unit of the same deployment (optional: its columns too)"),
    CFG_END};

static void init_spec(infer_spec *s) {
  memset(s, 0, sizeof *s);
  model_init(&s->model);
  topo_spec_init(&s->cluster);
  infer_deploy base = {.nodes = 1, .attn_tp = 1, .shared_placement = INFER_SHARED_ATTENTION, .micro_batches = 2,
                       .attn_stages = 1, .ll_nvlink = 1, .eplb = INFER_EPLB_AUTO, .mtp_acceptance = 0.85,
                       .kv_fmt = INFER_KV_BF16, .reserved_gib = 8, .max_tokens_per_gpu = 16384,
                       .chunk_tokens = 8192, .max_seqs_per_gpu = 128};
  s->unit[INFER_PREFILL] = base;
  s->unit[INFER_PREFILL].comm_sms = 24;
  s->unit[INFER_DECODE] = base;
  s->unit[INFER_DECODE].attn_stages = 2;
  s->unit[INFER_DECODE].mtp_depth = 1;
  s->traffic = (infer_traffic){.input = {.kind = INFER_DIST_EXPONENTIAL, .mean = 2048, .min_tokens = 1},
                               .output = {.kind = INFER_DIST_EXPONENTIAL, .mean = 512, .min_tokens = 1},
                               .requests = 2048,
                               .seed = 1};
  s->routing = (infer_routing){.skew_zipf_s = 0.2, .seed = 1, .layer_patterns = 4, .pool_tokens = 4096};
  s->cost = INFER_COST_KERNEL_TABLE;
  s->lockstep_a2a = 1;
  whatif_hw_init(&s->hw);
}

void infer_spec_init_prefill(void *p) { init_spec(p); }
void infer_spec_init_decode(void *p) { init_spec(p); }
