/* sim/schedule.h — pipeline-parallel schedules as data.
 *
 * A schedule is, for each pipeline rank, the ordered list of compute ops that rank runs in one
 * training step, plus the point-to-point messages each op waits for and posts. The generators
 * (schedule.c: 1F1B, interleaved 1F1B, ZB1P; schedule_dualpipe.c: DualPipe, DualPipeV) reproduce the
 * op order of the reference implementations (Megatron-LM for 1F1B and interleaved 1F1B, the
 * zero-bubble authors' ZB-H1, deepseek-ai/DualPipe's dualpipe.py and dualpipev.py), including
 * where each message is posted: DualPipe batches its sends and receives and commits them at the
 * start of the next op, and sometimes defers a send past the following op, which changes timing
 * once ops have unequal lengths. The replay (schedule_replay.c) runs a schedule on an ideal machine;
 * the training simulator replays the same ops with real costs.
 *
 * Vocabulary. A micro-batch travels along a path of n_stages stages; stage s runs on rank
 * stage_rank[dir][s]. DualPipe feeds micro-batches from both ends (dir 0 enters at rank 0, dir 1
 * at rank PP-1, and both use model stages 0..PP-1, so rank r holds stages r and PP-1-r); all other
 * kinds have one direction. A pass is one micro-batch at one stage. An op runs a forward pass (F),
 * a full backward pass (B: input and weight gradients), the input-gradient half of a backward
 * (BI, whose weight gradient runs later as a W op — the zero-bubble split), a W, or a forward and
 * a full backward overlapped as one unit (FB, DualPipe's F&B pair).
 *
 * The dependency rule (sched_deps): the forward of stage s needs the activation from stage s-1;
 * the backward of stage s needs the gradient from stage s+1 (the last stage needs its own
 * forward's output, the loss) and its own forward; a W needs its BI. Activations and gradients
 * that cross ranks travel as messages: an op's receives are posted at its commit, which waits for
 * all of them before the op runs; its sends are posted when it ends. */
#ifndef MOESIM_SCHEDULE_H
#define MOESIM_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "des.h"

typedef enum sched_kind {
  SCHED_1F1B,        /* one-forward-one-backward (Megatron-LM non-interleaved) */
  SCHED_INTERLEAVED, /* interleaved 1F1B with `virt` model chunks per rank (Megatron-LM) */
  SCHED_ZB1P,        /* zero-bubble ZB-H1: 1F1B memory, W deferred into the cool-down */
  SCHED_DUALPIPE,    /* DualPipe: two directions, two chunks per rank, F&B overlapped pairs */
  SCHED_DUALPIPEV,   /* DualPipeV ("cut-in-half"): one direction, a V over PP ranks, 2 chunks each */
  SCHED_KIND_COUNT
} sched_kind;

typedef enum sched_op_kind {
  SCHED_F,  /* forward of one chunk */
  SCHED_B,  /* full backward of one chunk (input and weight gradients) */
  SCHED_BI, /* backward for input only; its weight gradient is a later W */
  SCHED_W,  /* backward for weights of an earlier BI */
  SCHED_FB  /* a forward and a full backward executed overlapped (DualPipe's F&B) */
} sched_op_kind;

typedef struct sched_pass {
  int32_t mb;    /* micro-batch index within its direction; -1 when the op has no such part */
  int16_t stage; /* stage along the direction's path, 0 = where the micro-batch enters */
  int8_t dir;    /* direction: 0, or 1 for DualPipe's reverse stream */
} sched_pass;

/* A tensor one pass produces and another consumes, and (in a message) the rank at the other end. */
typedef struct sched_msg {
  sched_pass src; /* the pass that produced it */
  int8_t grad;    /* 0: the activation output by src's forward; 1: the input gradient of src's backward */
  int32_t peer;   /* in a rank's recv list: the sender; in its send list: the receiver */
} sched_msg;

typedef struct sched_op {
  sched_op_kind kind; /* what runs */
  sched_pass f;       /* forward part (F, FB); mb = -1 otherwise */
  sched_pass b;       /* backward part (B, BI, FB), or for W the BI whose weights it computes */
  uint32_t recv_at;   /* first of this op's receives in the rank's recv array */
  uint32_t n_recv;    /* receives posted at this op's commit; the op waits for all of them */
  uint32_t send_at;   /* first of this op's sends in the rank's send array */
  uint32_t n_send;    /* sends posted when this op ends (outputs of this or earlier ops) */
} sched_op;

typedef struct sched_rank {
  sched_op *ops;          /* the rank's ops in execution order */
  size_t n_ops, cap_ops;  /* used, allocated */
  sched_msg *recv;        /* receives, grouped by op (sched_op.recv_at) */
  size_t n_recv, cap_recv;
  sched_msg *send;        /* sends, grouped by op (sched_op.send_at) */
  size_t n_send, cap_send;
  size_t recv_attached;   /* generator state: receives already given to an op */
} sched_rank;

/* What to generate. */
typedef struct sched_spec {
  sched_kind kind; /* which schedule */
  int pp;          /* pipeline ranks (devices); DualPipeV runs 2*pp stages on them */
  int chunks;      /* micro-batches per step (DualPipe: both directions together) */
  int virt;        /* interleaved 1F1B: model chunks per rank (>= 1); ignored otherwise */
} sched_spec;

typedef struct sched {
  sched_kind kind;   /* which schedule */
  int n_ranks;       /* pipeline ranks */
  int n_dirs;        /* 1, or 2 for DualPipe */
  int n_stages;      /* stages along each direction's path (= model parts) */
  int n_mb;          /* micro-batches per direction */
  int *stage_rank;   /* [dir * n_stages + stage]: the rank running that stage */
  sched_rank *ranks; /* [n_ranks] */
} sched;

/* The name used on the command line and in YAML ("1f1b", "interleaved", "zb1p", "dualpipe",
 * "dualpipev"), and its inverse (0, or -1 for an unknown name). */
const char *sched_kind_name(sched_kind k);
int sched_kind_parse(const char *name, sched_kind *out);

/* Generates the schedule `spec` asks for into `s`. Returns 0, or -1 with a reason in err (the
 * spec breaks the schedule's requirements, e.g. DualPipe needs an even PP and chunks >= 2*PP);
 * on failure `s` holds nothing to free. */
int sched_build(sched *s, const sched_spec *spec, char *err, size_t err_len);
void sched_free(sched *s);

/* The rank running pass p, and which of that rank's model chunks it is (0 for the first stage
 * the rank holds along the path, 1 for the next...). */
int sched_rank_of(const sched *s, sched_pass p);
int sched_chunk_of(const sched *s, sched_pass p);

/* The tensors op needs before it can run (the dependency rule above), written to out[0..]; returns
 * how many (at most 4). */
int sched_deps(const sched *s, const sched_op *op, sched_msg out[4]);

/* Model stages rank r holds (its parameter memory, in stages of 1/n_stages of the model). */
int sched_param_stages(const sched *s, int rank);
/* Peak number of stage activations rank r holds at once: a forward pass's activations live from
 * the start of its F until the end of its backward-for-input (B, BI or the backward of an FB);
 * the W's retained inputs are not counted. Depends on the op order only. */
int sched_peak_activations(const sched *s, int rank);

/* Uniform per-chunk costs for a replay on an ideal machine. */
typedef struct sched_cost {
  sim_ps f;   /* forward of one chunk */
  sim_ps b;   /* full backward of one chunk */
  sim_ps w;   /* its backward-for-weights part (a BI takes b - w); w <= b */
  sim_ps fb;  /* an overlapped forward + full backward pair */
  sim_ps p2p; /* latency of a message between ranks (0 on the ideal machine) */
  int eager;  /* 0: messages move as the reference posts them (batched commits, see above);
                 1: each tensor leaves when produced and only the op needing it waits for it,
                 the idealisation DualPipe's README figures are drawn with */
} sched_cost;

/* Duration of an op under cost c. */
sim_ps sched_op_time(const sched_cost *c, sched_op_kind k);

typedef struct sched_replay {
  size_t *op_base; /* [n_ranks + 1]: rank r's ops are start/end[op_base[r] .. op_base[r+1]) */
  sim_ps *start;   /* start time of each op */
  sim_ps *end;     /* end time of each op */
  sim_ps *busy;    /* [n_ranks]: time each rank spent computing */
  sim_ps makespan; /* end of the step: the last op to end on any rank (steps start at 0) */
} sched_replay;

/* Replays s: each rank runs its ops in order; an op starts when the rank is free and every
 * message of its commit has arrived (sent at the end of its op, plus c->p2p) — or, when c->eager,
 * when every tensor it needs exists (plus c->p2p if made on another rank). Returns 0, or -1 with
 * a reason in err when the schedule deadlocks (a receive no one sends). */
int sched_replay_run(const sched *s, const sched_cost *c, sched_replay *out, char *err, size_t err_len);
void sched_replay_free(sched_replay *r);

/* Idle time of rank r over the step (makespan - busy), and the bubble: the largest over ranks. */
sim_ps sched_replay_idle(const sched_replay *r, int rank);
sim_ps sched_replay_bubble(const sched *s, const sched_replay *r);

/* Independent check of a replay against the dependency rule: every pass runs exactly once on its
 * stage's rank (W exactly once after each BI, never after a B), no op starts before the tensors
 * it needs exist (plus p2p from another rank; unless c->eager, counted from when its message
 * left), and every tensor from another rank reached it through a message received at or before
 * its commit. Returns the number of violations (0 = sound), the first described in err. */
int sched_check(const sched *s, const sched_replay *r, const sched_cost *c, char *err, size_t err_len);

/* The published bubble formula for s's kind (DualPipe's README table; Megatron-LM for
 * interleaved: (PP-1)(F+B) with per-chunk F and B), in picoseconds; it may be negative outside
 * its assumptions. *exact is set to 1 when the costs meet the conditions under which the replay
 * must equal it: 1F1B and interleaved always; ZB1P when W <= F and W <= B - W; DualPipe(V) when
 * B - W = F, W <= F and B <= FB <= F + B (and p2p = 0 for all). */
double sched_bubble_formula(const sched *s, const sched_cost *c, int *exact);
/* The formula as text, e.g. "(PP/2-1)(F&B+B-3W)". */
const char *sched_bubble_formula_text(sched_kind k);
/* The PP of DualPipe's table for s: stages of one direction (ranks, or 2*ranks for DualPipeV). */
int sched_table_pp(const sched *s);

/* Text Gantt chart of a replay, one row per rank, in the style of DualPipe's README figures: each
 * op is a block labelled with its kind and micro-batch, blanks are idle. `unit_ps` is the time unit
 * the ruler counts in; at most max_cols columns (the scale coarsens to fit). */
void sched_gantt_print(FILE *f, const sched *s, const sched_replay *r, double unit_ps, int max_cols);

#endif
