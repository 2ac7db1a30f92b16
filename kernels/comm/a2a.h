/* kernels/comm/a2a.h — the distributed expert-parallel MoE all-to-all: DeepEP's normal dispatch
 * and combine on MPI ranks (CPU), checked against the single-process reference on every run.
 *
 * Setting. R ranks each hold `tokens` tokens of width `hidden` and a contiguous block of the E
 * routed experts: rank r owns experts [floor(r E / R), floor((r + 1) E / R)) — uneven when R does
 * not divide E, empty when E < R. Ranks are grouped into "nodes" of `ranks_per_node` consecutive
 * ranks (the last node may be smaller). The gate (kernels/gate.h) routes seeded synthetic
 * activations: rank r's tokens are tokens [r T, (r + 1) T) of moe_synth's stream, so the routing is
 * the same whatever R is. With groups aligned to nodes (every group's experts inside one node), the
 * gate's topk_groups = M makes routing node-limited: a token reaches at most M nodes.
 *
 * Dispatch sends each token once per destination rank (the ranks that hold at least one of its
 * experts, its own rank included) as FP8 with one FP32 scale per 128 elements (kernels/quant.h),
 * plus its source, its top-k expert ids and gate weights — one row of a2a_row_bytes(). Every
 * implementation leaves the same receive buffer on every rank, bit for bit: rows ordered by source
 * rank, then by token. The expert stage computes, per received row, the sum over the rank's own
 * experts of weight x expert output (FP32, rounded once to BF16); combine returns those rows to the
 * source, which adds them (FP32, in destination order, after the shared expert's output) and rounds
 * to BF16. The expert stage is the real MoE layer (SwiGLU experts on FP8 grouped GEMMs, as
 * kernels/moe_layer.h) with `layer`, else a cheap stand-in: expert e's output is
 * a2a_toy_scale(e) x the dequantized token, which still makes every (token, expert) pair count.
 *
 * Implementations of the exchange:
 *   alltoallv  one MPI_Alltoallv of the rows (counts exchanged first with MPI_Alltoall).
 *   pairwise   MPI_Irecv from every source, then MPI_Isend to every destination in pairwise order
 *              (step s: to r + s, from r - s), one message per rank pair; the own rows are copied.
 *   hier       node-level: the ranks of a node pack their rows for node m into one MPI-3 shared-memory
 *              window (once per (token, node)); one rank per node pair sends it as one message; on
 *              arrival the node's ranks copy out the rows holding their experts. Combine runs it
 *              backwards: the node's ranks reduce their partial rows per (token, node), each a slice
 *              of the rows, before the one message back (DeepEP's IB -> NVLink forwarding, on CPUs).
 *
 * The pure pieces (ownership, routing layout, row format, hashes, the stand-in expert) are below
 * and need no MPI; a2a_run() needs MPI (MOESIM_MPI). */
#ifndef MOESIM_A2A_H
#define MOESIM_A2A_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "gate.h"

/* ---- configuration ---- */

typedef enum a2a_impl { A2A_ALLTOALLV = 0, A2A_PAIRWISE = 1, A2A_HIER = 2 } a2a_impl;

/* Name ("alltoallv", "pairwise", "hier") and kernel-table backend ("mpi-alltoallv", ...). */
const char *a2a_impl_name(int impl);
const char *a2a_impl_backend(int impl);
/* The impl of a name, or -1. */
int a2a_impl_parse(const char *name);

typedef struct a2a_cfg {
  int64_t tokens;      /* tokens per rank (4096) */
  int64_t hidden;      /* elements per token (7168) */
  int64_t inter;       /* layer: intermediate size of one expert (2048) */
  int n_shared;        /* layer: shared experts (1) */
  moe_gate_cfg gate;   /* experts, groups, topk_groups, topk, route scale */
  int ranks_per_node;  /* consecutive ranks forming a node (1) */
  int impl;            /* a2a_impl */
  int iters;           /* timed iterations (20) */
  int warmup;          /* untimed iterations first (3) */
  double skew;         /* popularity skew of the synthetic gate (moe_synth zipf_s; 0 uniform) */
  uint64_t seed;       /* activations, gate and expert weights */
  int layer;           /* 1: the whole MoE layer forward per iteration (gate, dispatch, experts,
                          combine); 0: dispatch and combine of a fixed routing */
  int threads;         /* compute threads per rank (1) */
  int check_tokens;    /* layer: tokens per rank checked against moe_layer_forward_ref (4) */
  int predict;         /* measure the calibration the simulator needs (a2a_calib) */
} a2a_cfg;

/* The defaults above (DeepSeek-V3's gate and shapes, alltoallv). */
a2a_cfg a2a_cfg_default(void);

/* 0 when usable with R ranks; -1 with a reason in why otherwise. */
int a2a_cfg_check(const a2a_cfg *c, int ranks, char *why, size_t why_len);

/* ---- ownership ---- */

/* Experts [*e0, *e1) of rank r of R (E experts). */
void a2a_expert_range(int n_experts, int ranks, int r, int *e0, int *e1);
/* The rank that owns expert e. */
int a2a_expert_owner(int n_experts, int ranks, int e);
/* Nodes of R ranks grouped by rpn, and the node of rank r / its first rank / its size. */
static inline int a2a_nodes(int ranks, int rpn) { return (ranks + rpn - 1) / rpn; }
static inline int a2a_node_of(int r, int rpn) { return r / rpn; }
static inline int a2a_node_first(int n, int rpn) { return n * rpn; }
static inline int a2a_node_size(int n, int ranks, int rpn) {
  int s = ranks - n * rpn;
  return s < rpn ? s : rpn;
}
/* 1 when every gate group's experts lie inside one node (then topk_groups limits nodes). */
int a2a_groups_node_aligned(const moe_gate_cfg *g, int ranks, int rpn);

/* ---- dispatch rows ---- */

/* One dispatch row: FP8 hidden, FP32 scales, the source (rank, token), top-k expert ids and gate
 * weights, padded to 16 bytes. */
typedef struct a2a_row_fmt {
  int64_t hidden;      /* H */
  int topk;            /* K */
  uint64_t off_scale;  /* float[ceil(H/128)] */
  uint64_t off_src;    /* int32 source rank, int32 source token (index within its rank) */
  uint64_t off_idx;    /* int32[K] global expert ids (-1: none) */
  uint64_t off_w;      /* float[K] gate weights */
  uint64_t bytes;      /* the row */
  uint64_t payload;    /* bytes DeepEP counts: H + 4 ceil(H/128) */
} a2a_row_fmt;

a2a_row_fmt a2a_row_format(int64_t hidden, int topk);

/* Writes a row: q [H] FP8 and scales of one token, its source and routing. */
void a2a_row_write(const a2a_row_fmt *f, void *row, const fp8_t *q, const float *scales, int src_rank,
                   int32_t src_token, const int32_t *idx, const float *w);
/* Accessors of a row. */
static inline const fp8_t *a2a_row_q(const void *row) { return (const fp8_t *)row; }
static inline const float *a2a_row_scales(const a2a_row_fmt *f, const void *row) {
  return (const float *)((const char *)row + f->off_scale);
}
static inline const int32_t *a2a_row_src(const a2a_row_fmt *f, const void *row) {
  return (const int32_t *)((const char *)row + f->off_src);
}
static inline const int32_t *a2a_row_idx(const a2a_row_fmt *f, const void *row) {
  return (const int32_t *)((const char *)row + f->off_idx);
}
static inline const float *a2a_row_w(const a2a_row_fmt *f, const void *row) {
  return (const float *)((const char *)row + f->off_w);
}

/* ---- routing layout of one rank ---- */

/* Where one rank's tokens go: per destination rank the tokens it receives (once per rank, in token
 * order), and per destination node the tokens crossing to it (once per node). */
typedef struct a2a_layout {
  int ranks;          /* R */
  int nodes;          /* nodes */
  int rpn;            /* ranks per node */
  int64_t tokens;     /* T */
  int64_t *rank_cnt;  /* [R] tokens sent to each rank */
  int64_t *rank_off;  /* [R + 1] first row of each destination in rank_tok */
  int32_t *rank_tok;  /* [rank_off[R]] tokens, destination-major, ascending within */
  int64_t *node_cnt;  /* [nodes] tokens sent to each node */
  int64_t *node_off;  /* [nodes + 1] */
  int32_t *node_tok;  /* [node_off[nodes]] tokens, destination-node-major, ascending within */
  int max_nodes;      /* most nodes one token reaches */
  int max_ranks;      /* most ranks one token reaches */
} a2a_layout;

/* Builds the layout of idx [T x K] (global expert ids, -1 ignored) for E experts on R ranks. */
void a2a_layout_build(a2a_layout *l, const int32_t *idx, int64_t T, int topk, int n_experts, int ranks,
                      int rpn);
void a2a_layout_free(a2a_layout *l);

/* Rows into destination order: for every destination d and every token of d, the token's row in
 * buf (rank_off[d] + i). q [T x H] FP8, scales [T x ceil(H/128)], idx/w [T x K]. Rows of tokens
 * [t0, t1) of the stream are written (for threads); rows of other tokens are left alone. */
void a2a_pack_ranks(const a2a_layout *l, const a2a_row_fmt *f, const fp8_t *q, const float *scales,
                    const int32_t *idx, const float *w, int src_rank, int64_t t0, int64_t t1, void *buf);

/* ---- expert stage ---- */

/* The stand-in expert's factor: 1 + (e mod 8) / 8 (exact in BF16, differs between neighbours). */
static inline float a2a_toy_scale(int e) { return 1.0f + (float)(e % 8) * 0.125f; }

/* Stand-in expert stage on n received rows: partial[i] = bf16(sum over slots k whose expert is in
 * [e0, e1), in slot order, of w_k * bf16(a2a_toy_scale(e) * dequant(row))) (FP32, separate
 * multiply and add). Rows [i0, i1) (for threads). */
void a2a_toy_experts(const a2a_row_fmt *f, const void *rows, int64_t i0, int64_t i1, int e0, int e1,
                     bf16_t *partial);

/* The single-process reference of the stand-in: out[t] for tokens x [T x H] (bf16) routed by idx,
 * w [T x K]: quantize per 1x128 tile (reference quantizer), dequantize, and
 * out = bf16(sum_k w_k * bf16(a2a_toy_scale(e_k) * dequant)) in slot order. */
void a2a_toy_reference(const bf16_t *x, int64_t T, int64_t H, const int32_t *idx, const float *w, int topk,
                       bf16_t *out);

/* Tolerance of a combined output against its single-process reference (elementwise
 * |got - want| <= rel |want| + abs max|want|): the distributed sum rounds each destination's partial
 * to BF16 before adding (one BF16 rounding more per partial, 2^-8 relative). Layer: added to
 * moe_layer_tolerance. */
void a2a_combine_tolerance(double *rel, double *abs);

/* ---- exactly-once checks ---- */

/* A 64-bit hash of a (global token, expert) pair; sums of it over a set identify the set. */
uint64_t a2a_pair_hash(int64_t global_token, int expert);

/* Per-expert count and hash sum of the pairs in idx [T x K] (global tokens t0 + t):
 * cnt[E], sum[E] are added to (zero them first). */
void a2a_pairs_expected(const int32_t *idx, int64_t T, int topk, int64_t t0, int n_experts, int64_t *cnt,
                        uint64_t *sum);

/* ---- bytes ---- */

/* Bytes a rank moves, DeepEP's way (payload: FP8 hidden + scales for dispatch, BF16 for combine;
 * metadata not counted) and on the wire (whole rows). */
typedef struct a2a_bytes {
  int64_t tok_ranks;       /* (token, destination rank) pairs sent, own rank included */
  int64_t tok_remote;      /* ... to other ranks */
  int64_t tok_nodes;       /* (token, destination node) pairs, own node included */
  int64_t tok_recv;        /* rows received (own rank included) */
  int64_t tok_recv_remote; /* rows received from other ranks */
  uint64_t disp_wire_sent; /* dispatch bytes sent to other ranks (rows) */
  uint64_t disp_wire_recv; /* dispatch bytes received from other ranks (rows) */
} a2a_bytes;

/* ---- results ---- */

/* Phases a rank times every iteration (microseconds). */
typedef enum a2a_phase {
  A2A_PH_GATE,      /* layer: gate GEMM + top-k */
  A2A_PH_NOTIFY,    /* counts exchange */
  A2A_PH_PACK,      /* FP8 quantization + rows into the send buffer / node window */
  A2A_PH_DXCHG,     /* dispatch exchange (MPI) */
  A2A_PH_SCATTER,   /* hier: rows out of the node window */
  A2A_PH_SHARED,    /* layer: the shared expert */
  A2A_PH_EXPERTS,   /* expert stage (routed experts + weighted sum per row) */
  A2A_PH_FWD,       /* hier: the node's partial rows reduced per (token, node) */
  A2A_PH_CXCHG,     /* combine exchange (MPI) */
  A2A_PH_REDUCE,    /* the source adds the returned rows */
  A2A_PH_DISPATCH,  /* notify + pack + exchange + scatter */
  A2A_PH_COMBINE,   /* forward + exchange + reduce */
  A2A_PH_TOTAL,     /* the iteration (layer: gate to combine; else dispatch + combine) */
  A2A_PH_COUNT
} a2a_phase;

extern const char *const a2a_phase_names[A2A_PH_COUNT];

/* What the simulator needs, measured in the run (--predict), apart from the timed iterations.
 * Kernel timings are isolated: one rank at a time while the others wait asleep. Work is process
 * CPU time (what a phase costs a core, whoever else runs on the machine); the shares say how much
 * of a core a busy rank gets, alone and with every rank busy (other processes on the machine take
 * the rest). */
typedef struct a2a_calib {
  double phase_us[A2A_PH_COUNT];     /* this rank's local work per phase alone, wall (median us) */
  double phase_cpu_us[A2A_PH_COUNT]; /* the same in process CPU time (median us): the work */
  double phase_cpu_all_us[A2A_PH_COUNT]; /* CPU time with `concurrent` ranks running the phase at
                                    once: more than alone when they contend for the memory bus */
  double copy_gbyte_s;           /* memcpy of the rank's receive size alone, per CPU-second (GB/s) */
  double copy_all_gbyte_s;       /* the same with `concurrent` ranks copying at once (GB/s) */
  double mpi_gbyte_s[2];         /* one MPI message rank 0 -> 1 alone, per second of the receiving
                                    core's CPU time: [0] dispatch size, [1] combine size (GB/s) */
  uint64_t msg_bytes[2];         /* those sizes: the run's mean message between ranks (nodes) */
  double latency_us;             /* one-way latency of an empty MPI message (ping-pong / 2) */
  double share_alone;            /* CPU time / wall time of a busy loop on this rank alone */
  double share_all;              /* the same with every rank's busy loop at once */
  int concurrent;                /* ranks that ran at once for the *_all figures: as many as the
                                    ranks' CPUs let run side by side, min(R, CPUs) */
  int cpus;                      /* CPUs in this rank's affinity mask */
  int online_cpus;               /* CPUs online on its host */
  uint64_t cpu_mask;             /* the mask's first 64 CPUs */
  int mpi_yields;                /* 1: MPI yields the CPU while it waits (mpi_yield_when_idle) */
} a2a_calib;

/* One rank's record, gathered at rank 0. */
typedef struct a2a_rank_result {
  int e0, e1;              /* experts [e0, e1) */
  a2a_bytes bytes;         /* what it moved */
  int64_t *send_cnt;       /* [R] tokens sent to each rank */
  int64_t *node_cnt;       /* [nodes] tokens sent to each node */
  int64_t expert_rows;     /* (row, local expert) pairs computed */
  int64_t *expert_cnt;     /* [e1 - e0] rows per local expert */
  double *us;              /* [iters x A2A_PH_COUNT] timings */
  a2a_calib calib;         /* --predict */
  uint64_t recv_hash;      /* hash of the receive buffer bytes (same for every impl) */
  uint64_t out_hash;       /* hash of the combined output bytes */
  char host[64];           /* host name */
} a2a_rank_result;

typedef struct a2a_result {
  int ranks;               /* R */
  int nodes;               /* nodes */
  int hosts;               /* distinct hosts (shared-memory domains) */
  int iters;               /* timed iterations */
  a2a_row_fmt fmt;         /* dispatch row format */
  a2a_rank_result *rank;   /* [R] (rank 0 only; NULL elsewhere) */
  int64_t routes;          /* (token, expert) pairs over all ranks */
  int max_nodes;           /* most nodes a token reached */
  int node_aligned;        /* groups aligned with nodes */
  int64_t empty_experts;   /* experts that received no token */
  double max_err;          /* largest |got - want| / max|want| over the checked outputs */
  int64_t checked_tokens;  /* tokens compared with the reference */
  char mpi_version[160];   /* MPI_Get_library_version, first line */
  char transport[160];     /* what OpenMPI moves the bytes with, as far as MPI_T tells */
  char single_copy[16];    /* OpenMPI's shared-memory single-copy mechanism (cma, xpmem, knem,
                              none: copy in and out of a shared buffer), or "" when unknown */
  double layer_flops;      /* layer: FLOPs of one forward over all ranks */
} a2a_result;

/* Runs the benchmark on MPI_COMM_WORLD (MPI initialised by the caller, errors set to
 * MPI_ERRORS_RETURN): setup, warmup, timed iterations, verification. Returns 0; 1 when a check
 * failed (message on stderr, every rank returns 1); exits 1 through MPI_Abort on an MPI error
 * ("file:line: MPI_X: message"). Rank 0's *res holds every rank's record. */
int a2a_run(const a2a_cfg *c, a2a_result *res);
void a2a_result_free(a2a_result *res);

/* Statistics of phase p over the timed iterations of a gathered result, each iteration's value
 * being its slowest rank: min, median, max (us). */
void a2a_phase_stats(const a2a_result *res, int p, double *mn, double *med, double *mx);

/* This CPU's name for kernel-table rows (commas removed). */
const char *a2a_cpu_name(void);

/* The fault a test may inject (environment MOESIM_A2A_FAULT): "mpi" an invalid MPI call, "drop" a
 * received row lost, "dup" a received row doubled, "corrupt" a returned partial changed. */
const char *a2a_fault(void);

/* A 64-bit hash of bytes (FNV-1a on 64-bit words), for comparing buffers across runs. */
uint64_t a2a_hash_bytes(const void *p, uint64_t n, uint64_t h);

#endif
