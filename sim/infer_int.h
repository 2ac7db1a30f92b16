/* sim/infer_int.h — what the inference simulator's files (infer_*.c) share and nobody else
 * needs: the prepared unit, the op cost model, the layer schedule and the all-to-all runs. The
 * public interface is infer.h. */
#ifndef MOESIM_INFER_INT_H
#define MOESIM_INFER_INT_H

#include "coll.h"
#include "compute.h"
#include "infer.h"

/* ---- cost model (infer_cost.c) ---- */

/* Time of a group of ops, split by what bounds each op. */
typedef struct ic_time {
  double s;        /* seconds */
  double flop_s;   /* of which ops bound by the tensor cores */
  double mem_s;    /* of which ops bound by HBM */
  double flops;    /* FLOPs */
  double bytes;    /* HBM bytes */
} ic_time;

/* Hardware figures and the compute projection the cost model reads. */
typedef struct ic_hw {
  double fp8_flops;   /* FLOP/s */
  double bf16_flops;  /* FLOP/s */
  double hbm_bytes;   /* bytes/s */
  compute_ctx *cc;    /* the kernel-table projection (sim/compute.h), or NULL: the roofline */
  double *src_s;      /* [COMPUTE_SRC_COUNT] seconds costed by each source (accumulated), or NULL */
  double fp8_gemm_factor; /* an FP8 GEMM's time over the cost model's (whatif.h promotion steps; 0 = 1) */
  int online_quant;   /* 1: FP8 GEMMs cast their BF16 input as they load it; 0: a quantize pass first */
} ic_hw;

/* Adds the time of one op: from the compute projection (a measured or published kernel-table row,
 * the target's peak x the nearest shape class's efficiency, or the roofline), or with cc NULL the
 * roofline max(FLOPs / peak of its dtype, bytes / HBM bandwidth). */
void ic_add_op(const ic_hw *hw, const model_op *op, ic_time *t);

/* Attention of one GPU's micro-batch at one layer: stage 0 (norm, down and up projections, and
 * for decode the absorbed key up-projection), stage 1 (the attention core, the value
 * up-projection and the output projection). `heads_div` (attention TP) splits the heads, and the
 * token-wise projections run on 1/heads_div of the tokens (sequence parallelism). */
void ic_attention(const ic_hw *hw, const model_spec *m, int phase, int kv_fmt, int heads_div, const infer_attn_work *w,
                  int stage, ic_time *t);
/* The FFN's input norm for `tokens` tokens, and on an MoE layer (moe != 0) the router. */
void ic_ffn_in(const ic_hw *hw, const model_spec *m, double tokens, int moe, ic_time *t);
/* The FFN side of a layer for `tokens` tokens on this GPU: the dense FFN (dense != 0), or the
 * shared expert(s) (width shared_experts x expert_intermediate). */
void ic_dense_ffn(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t);
void ic_shared_expert(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t);
/* Routed (or shared-replica) expert slots of one GPU: `rows` rows over `active` slots that get
 * any, as one grouped GEMM up, SwiGLU, grouped GEMM down. */
void ic_experts(const ic_hw *hw, const model_spec *m, double rows, double active, ic_time *t);
/* The output head (final norm + projection to the vocabulary) for `tokens` tokens, and the MTP
 * module's input norms and projection (2 hidden -> hidden). */
void ic_head(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t);
void ic_mtp_proj(const ic_hw *hw, const model_spec *m, double tokens, ic_time *t);

/* Bytes of the per-GPU weights (infer_weights). */
void ic_weights(const model_spec *m, int attn_tp, int slots_per_gpu, int shared_on_gpu, infer_weights *w);

/* ---- layer schedule (infer_sched.c) ---- */

typedef enum is_kind { IS_COMPUTE, IS_COMM } is_kind;
typedef enum is_part { IS_ATTN, IS_SHARED, IS_EXPERTS, IS_DENSE, IS_HEAD, IS_DISPATCH, IS_COMBINE, IS_NPART } is_part;

typedef struct is_task {
  uint8_t kind;  /* is_kind */
  uint8_t part;  /* is_part (for the breakdown and the trace) */
  int16_t layer; /* layer index (for the trace) */
  int pred[2];   /* tasks of the same micro-batch this one waits for (-1: none) */
} is_task;

/* A DAG of tasks per micro-batch (the same shape for every micro-batch), run on G compute streams
 * (one per GPU) and one communication stream. A compute task runs on every GPU with its own
 * duration; a communication task is the unit's all-to-all: it starts when all GPUs have finished
 * its compute predecessors and the stream is free. A free compute stream takes, among its ready
 * tasks, the lowest micro-batch, then the earliest in program order. While an all-to-all runs,
 * compute goes `stretch` times slower. */
typedef struct isched {
  int G, M, n, cap;      /* GPUs, micro-batches, tasks per micro-batch, allocated */
  is_task *task;         /* [n] */
  sim_ps *dur;           /* [M][cap][G] compute durations; communication uses [m][i][0] */
  double stretch;        /* compute slow-down while an all-to-all runs (>= 1; SMs it holds) */
  /* results of isched_run */
  sim_ps makespan;       /* end of the last task */
  sim_ps *busy;          /* [G] compute-stream busy time */
  sim_ps *part;          /* [G][IS_NPART] busy time by part (communication parts in [0]) */
  sim_ps comm_busy;      /* communication-stream busy time */
  int busiest;           /* GPU with the most compute */
  /* trace of GPU `busiest` and the communication stream: (start, end, mb, task) */
  struct is_span { sim_ps start, end; int mb, task, gpu; } *spans;
  size_t n_spans, cap_spans;
} isched;

isched *isched_new(int G, int M);
void isched_free(isched *s);
/* Appends a task (preds are indices of earlier tasks or -1); returns its index. Its durations
 * start at 0; set them with isched_dur. */
int isched_add(isched *s, is_kind kind, is_part part, int layer, int pred0, int pred1);
static inline sim_ps *isched_dur(isched *s, int mb, int task) { return &s->dur[((size_t)mb * s->cap + task) * s->G]; }
/* Runs the schedule from time 0. Returns 0. */
int isched_run(isched *s);
/* Chrome trace JSON of the last run. */
int isched_write_trace(const isched *s, const char *path);
const char *isched_part_name(int part);

/* ---- the step's task graph (infer_step.c) ---- */

/* Task indices of one step's DAG, per layer (main layers, then the MTP layer when present); -1
 * where a layer has no such task. */
typedef struct istep_map {
  int n_layers;   /* main layers (+1 with MTP) */
  int mtp;        /* 1: the last layer is the MTP module's */
  int *a0, *a1;   /* attention stages (a1 = -1 with one stage) */
  int *shared;    /* shared expert beside the attention */
  int *disp, *exp, *comb; /* MoE: dispatch, experts, combine */
  int *dense;     /* dense FFN */
  int head;       /* the output head after the main layers */
  int mtp_head;   /* the MTP module's head (-1 without MTP) */
} istep_map;

/* Builds the DAG of a step: per layer the attention stages, then either the dense FFN or the MoE
 * (shared expert beside dispatch -> experts -> combine), the head, and the MTP layer and its head
 * after it (with_mtp). Durations are zero; the caller fills them. */
isched *istep_build(const infer_setup *s, int micro_batches, int with_mtp, istep_map *map);
void istep_map_free(istep_map *map);
/* 1 when layer l of the map is an MoE layer. */
int istep_is_moe(const infer_setup *s, const istep_map *map, int l);

/* ---- all-to-all (infer_comm.c) ---- */

typedef struct ia_result {
  double time_s;         /* slowest rank's kernel time */
  double mean_rank_s;    /* mean rank kernel time */
  double nic_bytes;      /* most bytes a GPU put on its NIC uplink */
  double nvl_bytes;      /* most bytes a GPU put on NVLink */
  double copies;         /* token copies moved (DeepEP's selections) */
} ia_result;

/* DeepEP's low-latency kernels: every (token, expert) selection is one message of `msg_bytes`
 * from the token's GPU to the expert's (dispatch), back again for combine. copies[a * G + b] =
 * selections from rank a to rank b; rank i is GPU gpus[i]. A rank's kernel ends when its sends
 * and the sends to it are delivered. nvlink: peers in one NVLink domain over NVLink (else RDMA
 * for all, loopback through the fabric). wqe_ns: NIC time per work request beyond its bytes;
 * every message is one, and each rank posts atomics_per_peer more to every peer it reaches over
 * RDMA (the per-expert counts). Runs alone on a fresh network: one flow per rank, max-min fair
 * (lockstep 0), or every rank at the pace of the busiest link (lockstep 1: the time is the most
 * loaded link's bytes over its capacity, plus the longest route's latency — much cheaper at large
 * EP, and what the slowest rank sees when the ranks' traffic is alike). Returns 0 or -1. */
int ia_low_latency(topo *t, const int *gpus, int G, const double *copies, double msg_bytes, int combine, int nvlink,
                   double wqe_ns, double atomics_per_peer, int lockstep, uint64_t seed, ia_result *out);

/* DeepEP's normal kernels (coll_ep: intranode or two-hop with NVLink forwarding) for a routing
 * whose "experts" are physical slots; `sms` per rank; payload formats and forwarding from hw. */
int ia_normal(topo *t, const int *gpus, const ep_routing *r, int hidden, int sms, int combine, uint64_t seed,
              const whatif_hw *hw, ia_result *out);

/* What the tokens of one (routing pattern, micro-batch) do to the experts and the network. */
typedef struct ia_moe_pass {
  double *rows;    /* [G] expert rows on each GPU */
  double *active;  /* [G] slots with rows */
  double t_disp;   /* dispatch time, s */
  double t_comb;   /* combine time, s */
  double nic, nvl; /* bytes the busiest GPU puts on its NIC / NVLink, both all-to-alls */
} ia_moe_pass;

/* Routes tok[g] tokens of each GPU through routing pattern p (each token the top-k of a pool
 * token drawn by a hash of (seed, salt, GPU, index); each selection to the next replica of its
 * expert; with shared replicas in slots one more selection) and runs the unit's dispatch and
 * combine for them (low-latency or normal kernels, as the unit uses). Returns 0 or -1. */
struct infer_setup;
int ia_route_pass(struct infer_setup *s, int p, const double *tok, uint64_t salt, ia_moe_pass *out);
void ia_moe_pass_free(ia_moe_pass *p);

/* ---- the prepared unit (infer_setup.c) ---- */

typedef struct infer_req {
  double in;      /* prompt tokens */
  double cached;  /* of which in the prompt cache */
  double out;     /* generated tokens */
} infer_req;

struct infer_setup {
  infer_spec *spec;     /* the experiment (not owned) */
  const infer_deploy *d;/* &spec->unit[phase] */
  const cfg_node *d_node; /* its mapping (errors) */
  const model_spec *m;  /* &spec->model */
  infer_phase phase;
  topo *t;              /* the cluster (not owned) */
  int G, gpn, tp;       /* GPUs of the unit, GPUs per node, attention TP */
  int *gpus;            /* [G] unit rank -> cluster GPU */
  int n_moe;            /* MoE layers of the main model */
  int topk;             /* routed experts per token */
  int ll;               /* 1: low-latency EP kernels */
  /* expert slots: routed slots (EPLB) on the first G_routed GPUs, shared replicas after */
  int n_log, n_routed_phy, per_gpu, n_shared_slots, G_routed, n_slots;
  int P;                /* routing patterns */
  int pool;             /* tokens per pattern */
  int32_t *pool_idx;    /* [P][pool][topk] fresh-window routing, logical experts */
  eplb_plan plan;       /* P layers */
  double *slot_share;   /* [P][n_slots] expected rows per slot per token (routed: topk per token) */
  double imb_planned, imb, imb_none;
  ic_hw hw;
  compute_ctx *cc;      /* the compute projection (NULL: roofline) */
  double src_s[COMPUTE_SRC_COUNT]; /* op seconds costed by each source */
  double nvl_gbyte_s, nic_gbyte_s; /* per GPU per direction */
  double msg_overhead_ns;
  int sms;
  infer_weights w;
  double kv_bytes_token, kv_cap_tokens;
  infer_req *req;       /* [n_req] the traffic sample */
  int n_req;
  double *out_cum;      /* [n_req] cumulative output lengths (length-biased draws) */
  double ctx_per_out;   /* mean context a generated token attends to */
  double hit_eff;       /* cached / input over the sample */
  isched *last;         /* the last point's schedule (trace) */
};

/* Samples a distribution (deterministic in the RNG state). */
double infer_dist_draw(const infer_dist *d, uint64_t *rng);
uint64_t infer_rng_next(uint64_t *s);
double infer_rng_uniform(uint64_t *s);

/* Fills the utilisation and binding fields of `o` from per-GPU compute times by bound and the
 * network byte counts over a step of `step_s`. */
void infer_binding(const infer_setup *s, double flop_s, double mem_s, double nvl_bytes, double nic_bytes, double step_s,
                   infer_out *o);

#endif
