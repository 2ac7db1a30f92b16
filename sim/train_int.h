/* sim/train_int.h — what the training simulator's files share (train_plan.c: plan, placement,
 * partition, memory; train_route.c: routing; train_cost.c: op and collective costs; train_sim.c:
 * the replay, phases and trace; train.c: the driver). Not a public interface. */
#ifndef MOESIM_TRAIN_INT_H
#define MOESIM_TRAIN_INT_H

#include "coll.h"
#include "des.h"
#include "overlap.h"
#include "schedule.h"
#include "train.h"

/* Compute passes, for tallies. */
enum { TR_F, TR_B, TR_W, TR_NPASS };

/* One layer-sized piece of a stage (a transformer layer, the embedding, the head, an MTP module):
 * the components DualPipe overlaps. Compute on all SMs; communication as achieved with the
 * plan's comm_sms. */
typedef struct tr_unit {
  sim_ps attn_f, attn_b, attn_w; /* compute outside the experts (attention, norms, gate, head) */
  sim_ps mlp_f, mlp_b, mlp_w;    /* expert (or dense FFN) compute; MoE: the slowest GPU's */
  sim_ps disp_f, comb_f;         /* forward EP all-to-alls */
  sim_ps comb_b, disp_b;         /* backward EP all-to-alls (combine's backward first) */
  sim_ps tp_f, tp_b;             /* TP all-reduces, not overlapped */
  double src_s[TR_NPASS][COMPUTE_SRC_COUNT]; /* compute seconds by source (all SMs) */
} tr_unit;

/* A stage: contiguous blocks of the model and their costs for one micro-batch. */
typedef struct tr_part {
  int first, n;         /* blocks [first, first + n) */
  sim_ps f, b, bi, w;   /* serial op times: F, full B (with W), BI (without W), W */
  sim_ps f_comp, b_comp, w_comp; /* of which compute */
  double src_s[TR_NPASS][COMPUTE_SRC_COUNT]; /* compute seconds by source */
  double params_dense;  /* parameters outside the routed experts (whole, before TP) */
  double params_expert; /* routed-expert parameters (all experts of its MoE layers) */
  double act_bytes;     /* activations one micro-batch leaves on one GPU */
} tr_part;

/* An F&B op's cost (DualPipe's overlapped pair, or the two in series). */
typedef struct tr_fb {
  int done;                     /* computed */
  sim_ps time;                  /* the op */
  sim_ps f_comp, b_comp, w_comp;/* compute (stretched to the SMs left when overlapped) */
  int offset;                   /* forward layer i is paired with backward layer i - offset */
  int n_pairs;                  /* pair slots (the two layer lists' union at that offset) */
} tr_fb;

/* A block of the model in execution order. */
typedef struct tr_block {
  int kind;   /* model_block */
  int layer;  /* main-model layer index (layers), MTP index (MTP), else -1 */
} tr_block;

/* The per-routing-sample EP figures. */
typedef struct tr_ep {
  sim_ps disp_f, comb_f, comb_b, disp_b; /* one all-to-all of one micro-batch */
  double *rows;   /* [ep] routed rows each GPU computes (actual) */
  double *rows_pad; /* [ep] rows padded per expert to 128 */
  double imbalance; /* max rows / mean rows */
} tr_ep;

/* A collective already simulated. */
typedef struct tr_coll_memo {
  int kind, n;        /* coll_kind, participants */
  uint64_t bytes;     /* size */
  uint64_t ghash;     /* hash of the GPU list */
  sim_ps t;           /* completion time */
} tr_coll_memo;

/* Everything one simulation holds. */
typedef struct tr_sim {
  const train_cfg *cfg;   /* inputs */
  model_spec model;       /* the model at the plan's sequence length and recomputation */
  train_plan plan;        /* resolved (dp filled in) */
  sched sched;            /* the schedule */
  int gpus;               /* PP x DP x TP */
  double tokens;          /* tokens of one micro-batch on one GPU (after TP's split) */
  double tokens_mb;       /* tokens of one micro-batch of one replica */
  int n_blocks;           /* model blocks */
  tr_block *blocks;       /* [n_blocks] */
  tr_unit *units;         /* [n_blocks] per block */
  int n_parts;            /* stages */
  tr_part *parts;         /* [n_parts] */
  tr_fb *fb;              /* [n_parts * n_parts] F&B costs, lazily */
  int n_ep;               /* routing samples */
  tr_ep *ep;              /* [n_ep] */
  sim_ps *p2p;            /* [pp * pp] activation/gradient transfer between ranks */
  tr_coll_memo *coll;     /* collectives simulated so far */
  size_t n_coll, cap_coll;
  /* memory, per rank */
  double *mem_weights, *mem_grads, *mem_opt, *mem_act; /* bytes */
  char *err;              /* message buffer */
  size_t err_len;
} tr_sim;

/* Error helpers: set the message, return the code. */
int tr_fail(tr_sim *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* GPU of (pipeline rank, replica, tp rank). */
int tr_gpu(const tr_sim *s, int rank, int replica, int t);

/* train_plan.c */
int tr_plan_resolve(tr_sim *s);          /* checks, dp, schedule, blocks */
int tr_partition(tr_sim *s);             /* stages from the block costs; parts filled */
int tr_memory(tr_sim *s);                /* per-rank memory and the HBM check */
int tr_parts_of_rank(const tr_sim *s, int rank, int *parts); /* model parts rank holds; count */
/* The model parts' parameter sharding groups: GPUs in the DP group of a part's dense and expert
 * parameters (dense: holders x DP replicas; expert: holders x DP x TP / EP). */
int tr_dense_group(const tr_sim *s, int part, int *gpus);
int tr_expert_group(const tr_sim *s, int part, int *gpus);

/* train_route.c: the routing of sample `sample` for the EP group (ranks x tokens per rank). NULL
 * after writing a message into s->err (code in *code). */
ep_routing *tr_routing(tr_sim *s, int sample, int *code);
/* Drops the routing kept in the process (tests of the file cache). */
void tr_routing_forget(void);

/* train_cost.c */
int tr_cost_ep(tr_sim *s);               /* routing samples, EP collectives, expert rows */
int tr_cost_blocks(tr_sim *s);           /* units of every block */
void tr_cost_parts(tr_sim *s);           /* part totals from units */
int tr_cost_p2p(tr_sim *s);              /* pipeline transfers */
sim_ps tr_coll_time(tr_sim *s, int kind, const int *gpus, int n, double bytes); /* cached collectives */
void tr_print_sources(tr_sim *s, FILE *f); /* the op-source table of one MoE layer */

/* train_fb.c: an F&B op of forward part pf and backward part pb, as DualPipe runs it. */
enum { TR_TP_F = OVERLAP_NCOMP, TR_TP_B, TR_NCOMP }; /* TP all-reduces, on the compute stream */
typedef struct tr_pair_times {
  int overlapped;              /* 1: on split SMs; 0: one after the other on all SMs */
  sim_ps start[TR_NCOMP];      /* each component (overlap_comp, then TR_TP_F, TR_TP_B), from the op's start */
  sim_ps end[TR_NCOMP];
} tr_pair_times;
/* The op's cost (memoised; the best alignment of the two layer lists); with `pairs` (room for
 * units of pf + units of pb) also each pair slot's component times. */
const tr_fb *tr_cost_fb(tr_sim *s, int pf, int pb);
void tr_fb_chain(tr_sim *s, int pf, int pb, tr_fb *out, tr_pair_times *pairs);
/* Whether an F unit and a B unit paired in an F&B op overlap on split SMs: both have work and at
 * least one communicates (and the plan has comm SMs); otherwise they run in series on all SMs. */
int tr_pair_overlaps(const tr_sim *s, const tr_unit *fu, const tr_unit *bu);

/* train.c: everything up to the replay (plan, costs, stages, memory), as train_run does it;
 * returns train_run's codes. tr_sim_free frees what it built (also after a failure). */
int tr_sim_build(tr_sim *s, const train_cfg *cfg, char *err, size_t err_len);
void tr_sim_free(tr_sim *s);

/* train_sim.c: the replay, the DP tail, phases; fills res. */
int tr_replay(tr_sim *s, train_result *res);

#endif
