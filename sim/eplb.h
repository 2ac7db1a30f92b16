/* sim/eplb.h — the expert-parallel load balancer DeepSeek deploys (deepseek-ai/EPLB, eplb.py;
 * shared/reference/eplb.md), and the load statistics it is fed.
 *
 * Input: per MoE layer, the load of each logical expert (tokens routed to it over a window);
 * the number of physical expert slots (logical experts + redundant replicas), expert groups,
 * nodes and GPUs. Output, per layer: phy2log (the logical expert each physical slot holds; slots
 * are numbered GPU by GPU, `slots / gpus` per GPU), each slot's replica index, log2phy and the
 * replica count of every logical expert.
 *
 * Policies (as eplb.py):
 *  - hierarchical, when the expert groups divide evenly over the nodes (prefill, smaller EP):
 *    1. balanced packing of the expert groups onto nodes by group load, groups/nodes per node;
 *    2. inside each node, replication: each extra slot goes to the expert with the largest load
 *       per replica, until the node's slots are used;
 *    3. balanced packing of the node's physical experts onto its GPUs, slots/gpus per GPU.
 *  - global otherwise (decode, large EP): the same with one group and one node.
 *  Balanced packing: items by weight, heaviest first; each goes to the lightest pack that still
 *  has room (the lowest-numbered among equals). Ties in the sort are broken by the lower index,
 *  so the result is deterministic; the published worked example is reproduced up to the order of
 *  slots inside a GPU (its per-GPU loads and replica counts exactly).
 *
 * A slot's load is its expert's load divided by the expert's replica count (tokens of an expert
 * spread evenly over its replicas); a GPU's load is the sum over its slots. */
#ifndef MOESIM_EPLB_H
#define MOESIM_EPLB_H

#include <stddef.h>
#include <stdint.h>

typedef enum eplb_policy {
  EPLB_AUTO,         /* hierarchical when groups % nodes == 0, else global (eplb.py's choice) */
  EPLB_HIERARCHICAL, /* groups -> nodes, replicate per node, pack per GPU */
  EPLB_GLOBAL        /* replicate over the whole EP group, pack per GPU */
} eplb_policy;

typedef struct eplb_plan {
  int layers;        /* MoE layers planned */
  int n_log;         /* logical experts per layer */
  int n_phy;         /* physical slots per layer (n_log + redundant) */
  int gpus;          /* GPUs of the EP group */
  int per_gpu;       /* slots per GPU (n_phy / gpus) */
  int hierarchical;  /* 1: the hierarchical policy was used */
  int max_replicas;  /* largest replica count over all layers and experts */
  int *phy2log;      /* [layers][n_phy] logical expert of each slot */
  int *phy_rank;     /* [layers][n_phy] replica index of the slot among its expert's replicas */
  int *logcnt;       /* [layers][n_log] replicas of each logical expert (>= 1) */
  int *log2phy;      /* [layers][n_log][max_replicas] slots of each expert, by replica index; -1 pad */
} eplb_plan;

/* Packs n weighted items into `packs` packs of n/packs items each (n % packs == 0), balancing
 * the packs' weights; writes each item's pack and its position in the pack. */
void eplb_balanced_packing(const double *weight, int n, int packs, int *pack, int *rank_in_pack);

/* Replicates n_log experts into n_phy >= n_log slots minimising the largest load per replica:
 * slot i < n_log holds expert i; each further slot holds the expert with the largest
 * load / replicas at that moment (the lowest index among equals). Writes phy2log[n_phy],
 * rank[n_phy] (replica index) and logcnt[n_log]. */
void eplb_replicate(const double *weight, int n_log, int n_phy, int *phy2log, int *rank, int *logcnt);

/* Plans every layer. weight: [layers][n_log] loads (>= 0). Requirements (checked): n_phy >= n_log,
 * n_phy % gpus == 0, gpus % nodes == 0; hierarchical also n_log % groups == 0 and groups % nodes
 * == 0 (EPLB_HIERARCHICAL asked for when that fails is an error). Returns 0, or -1 with the
 * reason in why[why_len] (nothing allocated). Free with eplb_plan_free. */
int eplb_rebalance(const double *weight, int layers, int n_log, int n_phy, int groups, int nodes, int gpus,
                   eplb_policy policy, eplb_plan *out, char *why, size_t why_len);
void eplb_plan_free(eplb_plan *p);

/* The identity placement without redundancy: slot e holds expert e (n_phy = n_log); for
 * comparisons with a balanced plan. */
int eplb_plan_identity(int layers, int n_log, int gpus, eplb_plan *out, char *why, size_t why_len);

/* Per-GPU load of layer `layer` under the plan for loads weight[n_log] (which need not be the
 * loads the plan was made from): gpu_load[gpus]. Returns the largest. */
double eplb_gpu_loads(const eplb_plan *p, int layer, const double *weight, double *gpu_load);

/* Imbalance of a layer: largest GPU load / mean GPU load (1 = perfect; 1 when nothing loads). */
double eplb_imbalance(const eplb_plan *p, int layer, const double *weight);

/* The slot that serves the `nth` routed copy of expert e in a layer: its replicas take turns
 * (nth modulo the replica count), which spreads an expert's tokens evenly over its replicas. */
static inline int eplb_slot_of(const eplb_plan *p, int layer, int e, uint64_t nth) {
  int cnt = p->logcnt[(size_t)layer * p->n_log + e];
  return p->log2phy[((size_t)layer * p->n_log + e) * p->max_replicas + (int)(nth % (uint64_t)cnt)];
}

/* Load statistics from the V3 gate over seeded synthetic tokens (kernels/gate.h): for each of
 * `layers` layers, `tokens` tokens of the synthetic stream (starting at token t0) are routed with
 * group-limited top-k (n_groups groups, topk_groups kept, topk experts) under popularity skew
 * zipf_s, and weight[layer][e] counts the tokens expert e received. Layer l draws its own expert
 * popularity ranking (seed + l), as different layers have different hot experts. */
void eplb_gate_loads(int n_experts, int n_groups, int topk_groups, int topk, double zipf_s, uint64_t seed,
                     int layers, int64_t t0, int64_t tokens, double *weight);
/* The routing behind eplb_gate_loads for one layer: idx[tokens][topk] expert ids of tokens
 * t0 .. t0 + tokens - 1 of layer `layer`'s synthetic stream. */
void eplb_gate_route(int n_experts, int n_groups, int topk_groups, int topk, double zipf_s, uint64_t seed, int layer,
                     int64_t t0, int64_t tokens, int32_t *idx);

#endif
