/* kernels/comm/a2a_internal.h — what the MPI-side files of the all-to-all share: one rank's state
 * (its tokens, routing, buffers, the node's shared-memory window), the checked MPI call macro and
 * the transports. Included only where MOESIM_MPI is set. */
#ifndef MOESIM_A2A_INTERNAL_H
#define MOESIM_A2A_INTERNAL_H

#include <mpi.h>
#include <stdint.h>

#include "a2a.h"
#include "gemm.h"
#include "moe_layer.h"
#include "permute.h"
#include "pool.h"

/* Calls an MPI function; on failure prints "file:line: MPI_X: message" and aborts the job with
 * exit status 1 (the communicators return errors: MPI_ERRORS_RETURN). */
#define A2A_MPI(call) a2a_mpi_check((call), #call, __FILE__, __LINE__)
void a2a_mpi_check(int rc, const char *call, const char *file, int line);

/* The routed experts of one rank for the layer (packed weights and workspace). */
typedef struct a2a_experts a2a_experts;

/* The node's shared window (hier): regions addressed from one base. Row counts come from the
 * count matrices; offsets are in rows. */
typedef struct a2a_hier {
  MPI_Win win;            /* the window (lock_all held for the run) */
  char *base;             /* its memory, as this process maps it */
  int64_t *C;             /* [R x N] tokens rank r sends to node m (all ranks' node_cnt) */
  int64_t *S;             /* [N x N] tokens node n sends to node m */
  int64_t *roff;          /* [N + 1] rows of the receive region from each source node */
  int64_t *rjoff;         /* [R] first row of source rank r's rows in the receive region */
  int64_t *soff;          /* [N + 1] rows of the send region to each destination node (own node 0) */
  int64_t *sjoff;         /* [N] row of this rank's rows inside the send region to node m (own
                             node: inside the receive region) */
  int64_t rrows;          /* rows of the receive region */
  int64_t srows;          /* rows of the send region */
  int64_t *nrecv;         /* [nsize] rows each local rank receives */
  int64_t *poff;          /* [nsize + 1] partial rows of each local rank in the partial region */
  uint64_t o_recv, o_send, o_part, o_map, o_red, o_back; /* byte offsets of the regions */
  MPI_Datatype rowt, crowt; /* one dispatch row; one BF16 combine row */
} a2a_hier;

/* One rank's state. */
typedef struct a2a_ctx {
  const a2a_cfg *c;       /* configuration */
  MPI_Comm world;         /* all ranks */
  MPI_Comm node;          /* the ranks of this node (hier; also splits hosts for checks) */
  int R, r;               /* ranks, this rank */
  int N, n;               /* nodes, this node */
  int nsize, nr;          /* ranks in this node, rank within it */
  int e0, e1;             /* experts [e0, e1) */
  int64_t T, H;           /* tokens, hidden */
  int K, E;               /* top-k, experts */
  a2a_row_fmt f;          /* dispatch rows */
  pool *tp;               /* compute threads (NULL: one) */
  const char *fault;      /* injected fault or NULL */
  /* tokens and routing */
  bf16_t *x;              /* [T x H] activations */
  int32_t *idx;           /* [T x K] experts */
  float *w;               /* [T x K] gate weights */
  float *scores;          /* [T x E] affinities (layer) */
  gemm_packed *gate_w;    /* layer: packed gate weight */
  a2a_layout lay;         /* where the tokens go */
  fp8_t *xq;              /* [T x H] FP8 tokens */
  float *xs;              /* [T x ceil(H/128)] their scales */
  /* flat buffers */
  void *sendbuf;          /* [rank_off[R]] rows, destination-major */
  int64_t *recv_cnt;      /* [R] rows from each source */
  int64_t *recv_off;      /* [R + 1] */
  int64_t nrecv;          /* rows received */
  void *recvbuf;          /* [nrecv] rows (hier: private copy out of the window) */
  bf16_t *partial;        /* [nrecv x H] expert-stage output (hier: in the window) */
  bf16_t *cret;           /* [rank_off[R] x H] returned rows (flat) */
  float *acc;             /* [T x H] FP32 reduction */
  bf16_t *shared;         /* [T x H] shared expert output (layer) */
  bf16_t *out;            /* [T x H] combined output */
  MPI_Datatype rowt;      /* one dispatch row */
  MPI_Datatype crowt;     /* one combine row */
  int *ci_cnt, *ci_off, *co_cnt, *co_off; /* int counts for MPI_Alltoallv (send, recv) */
  a2a_hier *h;            /* hier state, or NULL */
  a2a_experts *ex;        /* layer experts, or NULL */
  double ph[A2A_PH_COUNT];/* this iteration's phase times, us */
} a2a_ctx;

/* ---- transports (a2a_mpi.c) ---- */

/* Sets up the node communicator and, for hier, the window and count matrices; flat counts for all.
 * Needs ctx->lay. */
void a2a_comm_setup(a2a_ctx *x);
void a2a_comm_free(a2a_ctx *x);
/* Dispatch: notify, pack (quantization included), exchange, scatter; fills recvbuf and ph[]. */
void a2a_dispatch(a2a_ctx *x);
/* The buffer the expert stage writes its [nrecv x H] partial rows to. */
bf16_t *a2a_partial_buf(a2a_ctx *x);
/* Combine: forward reduce (hier), exchange, reduce into out (adding `shared` when not NULL). */
void a2a_combine(a2a_ctx *x, const bf16_t *shared);
/* A barrier that sleeps instead of spinning (so a waiting rank leaves its core to others). */
void a2a_quiet_barrier(MPI_Comm comm);
/* Runs the rank-local work of one phase once, on the buffers the last iteration left (no message,
 * no barrier): A2A_PH_PACK (quantization and packing), A2A_PH_SCATTER (hier), A2A_PH_FWD (hier:
 * this rank's forwarder reductions), A2A_PH_REDUCE (the source's sum, adding `shared`). */
void a2a_local_phase(a2a_ctx *x, int phase, const bf16_t *shared);

/* ---- run (a2a_run.c) ---- */

/* One iteration on every rank (collective); the phase times land in x->ph. Returns 0, or -1 when a
 * GEMM failed. */
int a2a_iteration(a2a_ctx *x);

/* The expert stage on the received rows (layer or stand-in) into a2a_partial_buf(); times it into
 * ph[A2A_PH_EXPERTS]. Returns 0 or -1. */
int a2a_expert_stage(a2a_ctx *x);

/* ---- layer (a2a_layer.c) ---- */

/* Packs the gate and the rank's experts (shared experts included). */
a2a_experts *a2a_experts_create(a2a_ctx *x);
void a2a_experts_free(a2a_experts *e);
/* Gate: routing of the rank's tokens into x->idx, x->w. Returns 0 or -1. */
int a2a_layer_gate(a2a_ctx *x);
/* Routed experts on the received rows: the weighted partial sums into part [nrecv x H]; rows per
 * local expert into cnt [e1 - e0] (may be NULL). Returns 0 or -1. */
int a2a_layer_experts(a2a_ctx *x, const void *rows, int64_t nrows, bf16_t *part, int64_t *cnt);
/* Shared expert on the rank's tokens into x->shared. Returns 0 or -1. */
int a2a_layer_shared(a2a_ctx *x);
/* Checks sampled tokens of the combined output against moe_layer_forward_ref; returns 0 or -1
 * with the reason in why; *max_err the largest error relative to max|want|. */
int a2a_layer_check(a2a_ctx *x, double *max_err, int64_t *checked, char *why, size_t why_len);
/* The layer configuration the rank's experts are built from. */
moe_layer_cfg a2a_layer_cfg(const a2a_cfg *c);

/* ---- calibration (a2a_calib.c) ---- */

/* CPU share of a busy loop on this rank alone (the others asleep) and on all ranks at once
 * (medians of 3; every rank calls it). */
void a2a_calib_shares(a2a_ctx *x, double *alone, double *all);
/* Measures x's local phases alone and the copy / message rates into *cal (every rank calls it);
 * share_before: {alone, all} measured before the iterations, averaged with two more. */
void a2a_calibrate(a2a_ctx *x, a2a_calib *cal, const double *share_before);

/* Seconds, wall clock. */
static inline double a2a_now_us(void) { return MPI_Wtime() * 1e6; }

#endif
