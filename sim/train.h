/* sim/train.h — the training-step simulator: a model (model.h) on a cluster (topo.h) under a
 * parallel plan, one optimizer step, costed from real kernel timings (compute.h) and the flow-level
 * network (net.h, coll.h).
 *
 * The plan. GPUs = PP x DP x TP. The model (embedding, layers, head, MTP modules) is cut into the
 * schedule's stages (PP, PP x virt for interleaved 1F1B, 2 PP for DualPipeV), contiguous blocks
 * balanced on their measured cost (min-max partition). GPU g = (rank x DP + replica) x TP + t:
 * a pipeline rank's GPUs are consecutive, so an EP group (EP consecutive GPUs of one rank, out of
 * its DP x TP) spans EP / gpus_per_node nodes, and TP groups stay inside a node. Routed experts are
 * split over the EP group; everything else is replicated over DP and split over TP (with sequence
 * parallelism: each TP rank carries 1/TP of the tokens outside attention's heads). ZeRO stage 1
 * shards the optimizer state (master weights and moments) over the DP group of each parameter,
 * 2 also the gradients, 3 also the weights; the DP group of an expert is the EP groups of its
 * rank (DP x TP / EP of them), and under DualPipe(V) the two ranks holding a stage join its group.
 *
 * The step. The schedule (schedule.h) is generated per pipeline rank and replayed on the event
 * core (des.h) with each op's real cost; DP replicas are identical, so one pipeline is simulated
 * and its DP and EP groups are simulated once per distinct situation (see below). A stage's
 * forward is, per layer, attention compute -> EP dispatch -> expert MLP -> EP combine (plus TP
 * all-reduces when TP > 1); its backward runs the same components backwards, split into the
 * input-gradient and weight-gradient parts (ZeroBubble). Inside a DualPipe(V) F&B op the two
 * chunks are overlapped layer by layer with overlap.h's two streams: communication kernels hold
 * comm_sms SMs, compute runs on the rest (comm_sms = 0: communication offloaded from the SMs, the
 * report's hardware suggestion; overlap = 0: F&B pairs run their chunks in series).
 * Activations and gradients travel between ranks as point-to-point transfers over the network
 * (no overlap of a transfer with the op after it is needed: sends are asynchronous). After a
 * rank's last op touching a stage, that stage's gradients are reduce-scattered (ZeRO 1/2) or
 * all-reduced (ZeRO 0) over its DP group on a separate stream (overlapping the rank's remaining
 * backward work), then the optimizer (AdamW, memory-bound: roofline at HBM bandwidth) updates the
 * rank's shard and the weights are all-gathered (ZeRO 1/2). ZeRO 3 all-gathers a stage's weights
 * before each forward and backward and reduce-scatters its gradients after each backward, each
 * prefetched behind the op's compute. The step ends when the last rank is done.
 *
 * EP all-to-all and load imbalance come from real routing: DeepSeek-V3's gate (top-k limited to
 * the model's groups_per_token expert groups; experts sit on EP ranks in order, so with V3's EP64
 * over 8 nodes a group is a node and a token reaches at most 4 nodes) over
 * the seeded synthetic affinities of kernels/gate.h, skewed by a Zipf popularity, optionally
 * balanced by the auxiliary-loss-free bias (iterated to convergence on a calibration batch, then
 * applied to fresh tokens), or a recorded routing trace. Each routing sample is simulated once
 * on the network (dispatch, combine and their backward twins on one EP group: every EP group of
 * the cluster that starts at the same GPU index within its node spans alike nodes, and is taken as
 * alike — exact when every group's nodes share their leaves, as V3's 8-node groups do on its
 * rail-optimised fat-tree; groups aligned differently are simulated each and the slowest counts)
 * and reused by the MoE layers it stands for (layer l uses sample l % samples). The
 * expert MLP of a layer takes as long as its slowest GPU: each GPU's grouped GEMMs get the rows its
 * experts received (padded per expert to 128, DeepGEMM's contiguous layout).
 *
 * Memory (the HBM-fit check): per rank, its stages' weights, gradients, master weights and
 * moments under the ZeRO stage, plus the peak of live activations along its op order (a forward
 * pass's activations live from its F until its backward-for-input ends). A plan that does not fit
 * is an input error naming the rank, the figures and the capacity. */
#ifndef MOESIM_TRAIN_H
#define MOESIM_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "compute.h"
#include "model.h"
#include "topo.h"

typedef struct train_plan {
  int pp;                /* pipeline ranks */
  int dp;                /* data-parallel replicas of the pipeline (0: GPUs / (PP x TP)) */
  int tp;                /* tensor-parallel ranks (1: none) */
  int ep;                /* expert-parallel group size, a divisor of DP x TP (1: every GPU holds every expert) */
  int zero;              /* ZeRO stage, 0..3 */
  int micro_batch_seqs;  /* sequences per micro-batch */
  int global_batch_seqs; /* sequences per step over all replicas */
  int seq_len;           /* tokens per sequence (0: the model's) */
  int schedule;          /* sched_kind */
  int virt;              /* interleaved 1F1B: model chunks per rank */
  int comm_sms;          /* SMs communication kernels hold; 0: communication offloaded (no SMs taken
                            from compute, copy rate not SM-bound: the V3 report's suggestion 1) */
  int overlap;           /* DualPipe(V): overlap each F&B pair (0: the two chunks in series) */
  int recompute_full;    /* 1: whole layers recomputed in the backward (only layer inputs kept) */
} train_plan;

typedef enum train_balance {
  TRAIN_BALANCE_BIAS, /* auxiliary-loss-free bias, converged on a calibration batch */
  TRAIN_BALANCE_NONE  /* the gate's raw choices */
} train_balance;

typedef struct train_routing {
  int balance;       /* train_balance */
  double zipf_s;     /* expert popularity skew of the synthetic tokens (0: uniform) */
  uint64_t seed;     /* token stream seed */
  int samples;       /* distinct routings simulated (>= 1) */
  const char *trace; /* a routing trace file (coll.h format) instead of the gate, or NULL */
} train_routing;

typedef struct train_cfg {
  const model_spec *model;      /* the model */
  topo *topo;                   /* the cluster */
  compute_ctx *compute;         /* op costs on the cluster's GPU */
  train_plan plan;              /* the parallel plan */
  train_routing routing;        /* expert routing */
  int dispatch_fp8;             /* 1: dispatch activations in FP8 with 1x128 scales; 0: BF16 */
  int ep_kernel;                /* coll_ep_kernel */
  double price_usd_per_gpu_hour;/* rental price */
  uint64_t net_seed;            /* ECMP seed */
  const char *trace_path;       /* write a Chrome trace JSON here (atomically), or NULL */
  const struct whatif_hw *hw;   /* hardware features (whatif.h: EP payloads, forwarding), or NULL:
                                   today's; the plan, model and cluster already carry the rest */
  double fp8_gemm_factor;       /* an FP8 GEMM's time over the kernel table's (whatif_fp8_gemm_factor:
                                   the promotion step's share), 0 or 1: as measured */
  FILE *log;                    /* progress and the op-source table (NULL: silent) */
} train_cfg;

/* Where the step's time goes, per GPU, averaged over the pipeline's ranks (they sum to step_s). */
typedef struct train_phases {
  double f_s;           /* forward compute */
  double b_s;           /* backward-for-input compute (recomputation included) */
  double w_s;           /* backward-for-weights compute */
  double exposed_comm_s;/* compute waiting on communication: EP/TP inside ops, DP after the last op */
  double bubble_s;      /* idle: pipeline bubbles and waiting for the slowest rank */
  double optimizer_s;   /* the optimizer step */
} train_phases;

typedef struct train_result {
  int gpus;                     /* GPUs used */
  int dp;                       /* data-parallel replicas */
  int micro_batches;            /* per pipeline per step */
  int n_stages;                 /* model parts */
  double step_s;                /* one optimizer step */
  double tokens_per_step;       /* global batch x sequence length */
  double tokens_per_s;          /* whole cluster */
  double model_flops_per_token; /* training FLOPs (model.h convention, no recomputation) */
  double tflops_per_gpu;        /* model FLOPs per second per GPU, 1e12 */
  double mfu;                   /* of the dense peak of the model's GEMM dtype (FP8 for V3) */
  double mfu_bf16;              /* of the dense BF16 peak */
  double bubble_frac;           /* bubble_s / step_s */
  double exposed_comm_frac;     /* exposed_comm_s / step_s */
  double gpu_hours_per_t_tokens;/* GPU-hours per 1e12 tokens */
  double usd_per_t_tokens;      /* at price_usd_per_gpu_hour */
  double peak_mem_gib;          /* largest per-GPU memory over ranks, GiB */
  double hbm_gib;               /* the GPU's capacity */
  int peak_mem_rank;            /* the rank holding it */
  double mem_weights_gib, mem_grads_gib, mem_optimizer_gib, mem_act_gib; /* of that rank */
  train_phases phases;          /* per-phase breakdown */
  double ep_dispatch_ms;        /* one forward dispatch of one layer's micro-batch (sample 0) */
  double ep_combine_ms;         /* one forward combine */
  double expert_imbalance;      /* max over GPUs / mean of routed rows (sample 0) */
  double moe_layer_compute_ms;  /* one MoE layer, one micro-batch: F + B + W compute on all SMs */
  double moe_layer_comm_ms;     /* ... its four all-to-alls (dispatch, combine and their backward) */
  double compute_src_s[COMPUTE_SRC_COUNT]; /* compute seconds per GPU per step by source */
  double sim_wall_s;            /* wall time the simulation took */
} train_result;

/* Runs one step. Returns 0; 2 for a plan that cannot run (message in err: divisibility, a
 * schedule's requirements, or HBM); 1 when something failed (message in err). */
int train_run(const train_cfg *cfg, train_result *res, char *err, size_t err_len);

const char *train_balance_name(int b);

#endif
