/* sim/infer.h — inference serving on a cluster: disaggregated prefill and decode units of a
 * DeepSeek-V3-class model, as DeepSeek deploys V3 (shared/reference/deepseek-v3.md).
 *
 * A deployment unit is `nodes` whole nodes of the cluster; its GPUs form one expert-parallel
 * group. Attention runs data-parallel (optionally tensor-parallel with sequence parallelism inside
 * groups of attn_tp GPUs); the MoE layers' routed experts are spread over the unit's GPUs with
 * redundant replicas placed by EPLB (sim/eplb.h) from routing load statistics; the shared expert
 * runs beside the attention (every GPU, its own tokens) or as replicas in expert slots.
 *
 * Prefill: prompts arrive (Poisson at request_rate_per_s or at `load` x the saturated rate, or
 * all at once when saturated), each to the attention group with the least estimated work queued;
 * a group's forward pass takes up to max_tokens_per_gpu new tokens per GPU and no more estimated
 * compute than a full pass at the traffic's mean context (long prompts go in smaller chunks, as
 * DeepSeek's prefill load balancer evens out core attention), a prompt at most chunk_tokens per
 * pass (chunked prefill). Tokens found in the prompt cache (a prefix, cache_hit_rate of the prompt)
 * are not computed; MLA attention of a chunk costs its (query, key) pairs against everything
 * before it, and the cached prefix is up-projected for it. All GPUs run passes in lock step (the
 * all-to-all joins them). A pass is two micro-batches:
 * the attention and MoE compute of one overlaps the dispatch/combine of the other; DeepEP's normal
 * kernels hold comm_sms SMs, so compute overlapping them runs on the rest (slower by
 * SMs / (SMs - comm_sms) while they run).
 *
 * Decode: every GPU holds concurrency sequences (at most max_seqs_per_gpu and what its KV cache
 * holds); a step runs each through the model once with 1 + mtp_depth query tokens (MTP
 * speculative decoding verifies the drafts; each draft is accepted with mtp_acceptance, so a step
 * yields 1 + p + ... + p^d tokens per sequence), then the MTP module drafts. Attention reads each
 * sequence's compressed MLA cache once per layer (absorbed weights); expert GEMMs see few rows and
 * are bound by HBM; DeepEP's low-latency all-to-all holds no SMs (IBGDA: issued, then waited on),
 * so compute runs on all SMs; the 5-stage pipeline is two micro-batches with the attention split
 * into attn_stages compute stages, so the all-to-all of one micro-batch hides behind compute of
 * the other.
 *
 * Both phases run the same layer-level discrete-event schedule (infer_sched): one compute stream
 * per GPU and one communication stream for the unit; an all-to-all starts when every GPU has
 * finished the stage before it (it needs them all) and its time comes from the flow-level network
 * (sim/coll.h, sim/net.h) for the real routed traffic: DeepEP's normal kernels (coll_ep) for
 * prefill, the low-latency kernels (infer_comm.c; by default every rank at the busiest link's
 * pace, lockstep_a2a) for decode. Op times come from the compute projection
 * (sim/compute.h) over the experiment's kernel tables — published DeepGEMM/FlashAttention rows,
 * measured rows — or, with `compute: roofline`, from the GPU's datasheet peaks and HBM bandwidth.
 *
 * Outputs (infer_*_point): tokens/s per GPU and per node, TTFT (prefill) and TPOT (decode), per-user
 * speed, KV-cache capacity, expert-load imbalance before and after EPLB, the utilisation of each
 * resource (tensor cores, HBM, NVLink, network) over the step and the binding one. */
#ifndef MOESIM_INFER_H
#define MOESIM_INFER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg.h"
#include "des.h"
#include "eplb.h"
#include "exp.h"
#include "model.h"
#include "topo.h"
#include "whatif.h"

typedef enum infer_phase { INFER_PREFILL, INFER_DECODE } infer_phase;

/* ---- the spec (YAML) ---- */

typedef enum infer_dist_kind { INFER_DIST_FIXED, INFER_DIST_EXPONENTIAL, INFER_DIST_LOGNORMAL, INFER_DIST_UNIFORM } infer_dist_kind;

/* A length distribution, tokens. */
typedef struct infer_dist {
  int kind;          /* infer_dist_kind */
  double mean;       /* mean, tokens */
  double cv;         /* lognormal: standard deviation / mean; uniform: half-width / mean */
  double min_tokens; /* draws are clamped to [min_tokens, max_tokens] */
  double max_tokens; /* 0: no upper clamp */
} infer_dist;

typedef struct infer_traffic {
  infer_dist input;          /* prompt length */
  infer_dist output;         /* generated length */
  double cache_hit_rate;     /* fraction of prompt tokens found in the prompt cache (a prefix) */
  double request_rate_per_s; /* prefill: arrivals per second per unit (0: from `load`) */
  double load;               /* prefill: arrivals as a fraction of the saturated rate (both 0:
                                saturated, every request queued at time 0) */
  int requests;              /* synthetic requests drawn (the traffic sample) */
  uint64_t seed;             /* traffic seed */
} infer_traffic;

typedef enum infer_shared_place { INFER_SHARED_ATTENTION, INFER_SHARED_EXPERTS } infer_shared_place;
typedef enum infer_ep_kernel { INFER_EP_AUTO, INFER_EP_NORMAL, INFER_EP_LOW_LATENCY } infer_ep_kernel;
typedef enum infer_eplb_mode { INFER_EPLB_AUTO, INFER_EPLB_HIERARCHICAL, INFER_EPLB_GLOBAL, INFER_EPLB_NONE } infer_eplb_mode;
typedef enum infer_kv_fmt { INFER_KV_BF16, INFER_KV_FP8 } infer_kv_fmt;

/* One unit: its placement, parallelism, kernels and batch limits. */
typedef struct infer_deploy {
  int nodes;                /* nodes (scale-up domains) of one unit */
  int first_node;           /* the unit's first node in the cluster */
  int attn_tp;              /* attention tensor parallelism (with sequence parallelism); 1 = DP only */
  int redundant_experts;    /* physical expert slots beyond the routed experts, placed by EPLB */
  int shared_placement;     /* infer_shared_place */
  int shared_replicas;      /* experts placement: slots holding shared-expert replicas */
  int micro_batches;        /* 1, or 2 (dual micro-batch overlap) */
  int attn_stages;          /* compute stages the attention is split into (1 or 2) */
  int comm_sms;             /* SMs DeepEP's normal kernels hold (low-latency kernels hold none) */
  int ep_kernel;            /* infer_ep_kernel: auto = normal for prefill, low latency for decode */
  int ll_nvlink;            /* low latency: peers in the same node over NVLink (0: RDMA for all) */
  int eplb;                 /* infer_eplb_mode */
  int mtp_depth;            /* decode: draft tokens per step (0: no speculative decoding) */
  double mtp_acceptance;    /* decode: probability each draft is accepted */
  int kv_fmt;               /* infer_kv_fmt: KV cache storage */
  double reserved_gib;      /* HBM per GPU kept for activations, buffers and fragmentation, GiB */
  int max_tokens_per_gpu;   /* prefill: new tokens per GPU per forward pass */
  int chunk_tokens;         /* prefill: most tokens of one prompt per pass */
  int max_seqs_per_gpu;     /* decode: sequences per GPU per step */
  int concurrency_per_gpu;  /* decode: sequences per GPU (0: the most the limits allow) */
} infer_deploy;

typedef struct infer_routing {
  double skew_zipf_s;   /* expert popularity skew of the synthetic tokens (0 uniform) */
  uint64_t seed;        /* routing seed */
  int layer_patterns;   /* distinct per-layer routing patterns, cycled over the MoE layers */
  int pool_tokens;      /* tokens routed per pattern for the statistics window (and again for use) */
} infer_routing;

typedef enum infer_cost_model { INFER_COST_KERNEL_TABLE, INFER_COST_ROOFLINE } infer_cost_model;

/* An experiment: the model on a cluster serving a traffic with a prefill unit, a decode unit, or
 * both (a disaggregated deployment); the kind says which phase it sweeps and plots. */
typedef struct infer_spec {
  model_spec model;              /* the model (mapping or models/NAME.yaml) */
  const cfg_node *model_node;    /* its mapping, for error positions */
  topo_spec cluster;             /* the cluster (mapping or topologies/NAME.yaml) */
  const cfg_node *cluster_node;  /* its mapping */
  infer_deploy unit[2];          /* [INFER_PREFILL], [INFER_DECODE] */
  const cfg_node *unit_node[2];  /* their mappings (NULL: the experiment has no such unit) */
  infer_traffic traffic;         /* the requests */
  infer_routing routing;         /* routing statistics */
  int cost;                      /* infer_cost_model */
  int lockstep_a2a;              /* low-latency all-to-alls at the busiest link's pace (1) or as
                                    max-min fair per-rank flows (0) */
  char **kernel_tables;          /* kernel-table CSVs the op costs come from (sim/compute.h) */
  size_t n_kernel_tables;
  whatif_hw hw;                  /* hw_features: the hardware suggestions' mechanisms (whatif.h) */
} infer_spec;

extern const cfg_key infer_prefill_keys[], infer_decode_keys[];
/* Defaults of a prefill / decode experiment (before binding). */
void infer_spec_init_prefill(void *spec);
void infer_spec_init_decode(void *spec);

/* ---- formulas the tests hold ---- */

/* KV-cache bytes one token leaves in one attention layer: MLA caches the latent and the shared
 * RoPE key ((kv_lora_rank + qk_rope_head_dim) values), GQA caches K and V (2 kv_heads head_dim);
 * BF16 = 2 bytes a value, FP8 = 1 byte a value plus one 4-byte scale per 128 values. */
double infer_kv_bytes_per_layer(const model_spec *m, int kv_fmt);
/* Over the main model's layers and the MTP modules (each a transformer layer with its cache). */
double infer_kv_bytes_per_token(const model_spec *m, int kv_fmt, int with_mtp);

/* Weights one GPU holds, bytes, by part. */
typedef struct infer_weights {
  double attention;   /* attention projections and norms of every layer (MTP's too) */
  double dense_ffn;   /* dense FFN layers */
  double shared;      /* shared experts held beside the attention */
  double experts;     /* routed (and shared-replica) expert slots */
  double gates;       /* routers */
  double embed_head;  /* embedding and output head (MTP's projection too) */
  double total;       /* sum */
} infer_weights;

/* ---- the prepared unit ---- */

typedef struct infer_setup infer_setup;

/* Checks the model and resolves and builds the cluster of a bound spec; NULL after printing
 * "path:line:col: error: ..." (bad input; exit 2). The caller frees the topology. */
topo *infer_spec_cluster(cfg_ctx *ctx, infer_spec *spec);
/* Builds the unit of a phase on cluster t (kept, not owned): checks the plan (experts and slots
 * divide, weights + reserve fit in HBM, the KV cache holds the longest request and the asked
 * concurrency), draws the traffic, gathers routing statistics and plans the redundant experts.
 * Returns NULL after printing "path:line:col: error: ..." (bad input; exit 2). */
infer_setup *infer_setup_new(cfg_ctx *ctx, infer_spec *spec, infer_phase phase, topo *t);
void infer_setup_free(infer_setup *s);

/* Weights per GPU, KV capacity, GPUs. */
const infer_weights *infer_setup_weights(const infer_setup *s);
double infer_setup_kv_capacity_tokens(const infer_setup *s); /* tokens of KV cache per GPU */
int infer_setup_gpus(const infer_setup *s);

/* The schedule of one step (decode) or pass (prefill), resource use and the result figures. */
typedef struct infer_out {
  /* the step / pass */
  double step_ms;              /* decode step, or mean prefill pass */
  double compute_ms;           /* busiest GPU's compute-stream time */
  double comm_ms;              /* communication-stream time */
  double exposed_comm_ms;      /* step - busiest compute: waiting on the network */
  double attention_ms, experts_ms, shared_ms, dense_ms, head_ms, dispatch_ms, combine_ms, tp_comm_ms;
                               /* per part, summed over layers and micro-batches (busiest GPU) */
  double util_tensor;          /* FLOP-bound op time / step */
  double util_hbm;             /* HBM-bound op time / step */
  double util_nvlink;          /* NVLink bytes / (NVLink bandwidth x step), busiest GPU */
  double util_network;         /* NIC bytes / (NIC bandwidth x step), busiest GPU */
  const char *binding;         /* "compute", "hbm", "nvlink" or "network": highest of the four */
  double imbalance_planned;    /* expert load max/mean over GPUs on the planning window */
  double imbalance;            /* ... on fresh tokens (what the step saw) */
  double imbalance_no_eplb;    /* ... on fresh tokens without redundant experts */
  /* decode */
  double seqs_per_gpu;         /* sequences in the step, per GPU */
  double tokens_per_step;      /* expected output tokens per sequence per step (MTP) */
  double tpot_ms;              /* time per output token */
  double out_tok_s_gpu, out_tok_s_node, out_tok_s_user;
  double ctx_per_output_token; /* mean KV length a generated token attends to */
  double kv_used_frac;         /* KV cache in use / capacity */
  int kv_limited;              /* 1: the batch was cut to what the KV cache holds */
  /* prefill */
  double in_tok_s_gpu, in_tok_s_node;   /* prompt tokens (cache hits included) per second */
  double computed_tok_s_gpu;            /* tokens actually computed per second per GPU */
  double capacity_in_tok_s_node;        /* saturated throughput per node */
  double ttft_ms, ttft_p50_ms, ttft_p90_ms;
  double load;                 /* offered load / saturated capacity */
  double passes;               /* passes simulated */
} infer_out;

/* Decode with `seqs_per_gpu` sequences per GPU (<= 0: the deployment's concurrency). */
int infer_decode_point(infer_setup *s, double seqs_per_gpu, infer_out *out);
/* Prefill at `rate_per_s` requests per second per unit (0: saturated). */
int infer_prefill_point(infer_setup *s, double rate_per_s, infer_out *out);

/* Writes the trace of the last point's schedule (Chrome trace JSON, GPU 0 and the network). */
int infer_write_trace(const infer_setup *s, const char *path);

/* ---- pieces shared by the phase files (infer_*.c) ---- */

/* A compute stage's op list for the cost model. */
typedef struct infer_cost infer_cost;

/* Sums of attention work of one GPU's micro-batch at one layer. */
typedef struct infer_attn_work {
  double q_tokens;     /* query tokens (new tokens) */
  double pairs;        /* (query, key) pairs */
  double kv_tokens;    /* decode: cache entries read; prefill: tokens whose K, V are up-projected */
  double seqs;         /* sequences */
} infer_attn_work;

/* DeepEP's low-latency benchmark (tests/legacy/test_low_latency.py) on the first `ep` GPUs of a
 * cluster: each rank routes `tokens` tokens to a random top-k of `experts` (a multiple of ep);
 * dispatch and combine run as max-min fair per-rank flows. Times are the mean over ranks (and the
 * slowest rank); bandwidth is DeepEP's: selections x (hidden + hidden/128 x 4 + 16) bytes for the
 * FP8 dispatch, selections x hidden x 2 for the BF16 combine, over the rank's time. */
typedef struct infer_ll_bench {
  int ep, tokens, hidden, topk, experts; /* the benchmark */
  int nvlink;                           /* peers in one node over NVLink (0: pure RDMA) */
  double wqe_ns;                        /* NIC time per RDMA work request (< 0: the catalogue's / 2) */
  uint64_t seed;                        /* routing seed */
  double dispatch_us, combine_us;       /* results: mean rank kernel time */
  double dispatch_max_us, combine_max_us; /* slowest rank */
  double dispatch_gbyte_s, combine_gbyte_s; /* DeepEP's bandwidth */
} infer_ll_bench;
int infer_ll_bench_run(topo *t, infer_ll_bench *b);

/* The kinds `prefill`, `decode` and `ep_low_latency`. */
extern const exp_kind exp_kind_prefill, exp_kind_decode, exp_kind_ep_low_latency;

#endif
