/* sim/coll.h — collectives on the flow-level network (net.h): expert-parallel dispatch and combine
 * from a real token->expert assignment, all-to-all, ring and tree all-reduce, ring reduce-scatter
 * and all-gather, point-to-point. Each starts its flows at the current simulated time and calls
 * back once with the completion time; per-link bytes accumulate in the net's counters. Each can
 * also run alone on a fresh network (coll_*_run) for validation and benchmarks.
 *
 * Ranks are GPUs of the topology: gpus[i] is rank i's GPU. A collective given `sms` > 0 runs as a
 * kernel on that many SMs per rank: every byte a rank's copy stages move crosses that rank's SM
 * pool, of capacity sms x the GPU's copy_gbyte_s_per_sm (so "20 SMs for communication" is a
 * bandwidth limit, not a label).
 *
 * Expert parallelism (DeepEP's normal kernels, the V3 training/prefill path). Expert e lives on
 * rank e / (experts / ranks); a rank's node is its topology node. Dispatch sends each token to the
 * ranks holding its experts (once per rank), FP8 with one 4-byte scale per 128 elements; combine
 * returns BF16 and reduces. Kernels:
 *   intranode (all ranks in one NVLink domain): sender SM copy -> NVLink -> receiver SM copy.
 *   two-hop (DeepEP internode): a token crosses the scale-out network once per destination node,
 *     to the GPU with the source's local index (pack into the RDMA buffer on the source's SMs;
 *     the token's own node included, as a local copy), which forwards it over NVLink to each
 *     destination rank (forwarder SM copy), where the receiver copies it out (receiver SM copy).
 *     Combine runs the same stages backwards, reducing at the forwarder and at the source.
 *     With hw_forward the forwarder's stage is done by the network hardware (no SM work there).
 *   direct: a token crosses the scale-out network once per destination rank (no forwarding).
 * DeepEP processes a rank's tokens in order, so a rank's streams to all destinations advance
 * together: each rank's kernel is one flow whose hops carry that rank's bytes to each resource
 * (weights = bytes there / the flow's bytes). A rank's kernel ends when its own flow and every flow
 * crossing its SM pool have been delivered. */
#ifndef MOESIM_COLL_H
#define MOESIM_COLL_H

#include <stdint.h>

#include "net.h"
#include "topo.h"

/* ---- token -> expert assignments ---- */

typedef struct ep_routing {
  int ranks;    /* EP group size */
  int tokens;   /* tokens per rank */
  int topk;     /* experts per token */
  int experts;  /* routed experts (a multiple of ranks) */
  int32_t *idx; /* [ranks][tokens][topk] expert ids, -1 = unused slot */
} ep_routing;

ep_routing *ep_routing_new(int ranks, int tokens, int topk, int experts);
void ep_routing_free(ep_routing *r);

/* DeepEP's benchmark routing (tests/legacy/test_internode.py): per (token, expert) score
 * |N(0,1)| + 1; experts split evenly into `groups` groups (one per node); a token keeps the
 * topk_groups groups with the best max score, then its topk best experts among them.
 * groups = 1 is test_intranode.py's plain top-k. Deterministic in seed. */
void ep_routing_deepep(ep_routing *r, int groups, int topk_groups, uint64_t seed);

/* DeepSeek-V3's gate (kernels/gate.h, moe_gate_select) over the seeded synthetic affinities of
 * moe_synth_scores with popularity skew zipf_s (0 uniform): groups = nodes of the EP group,
 * topk_groups = M (node-limited routing: each token reaches at most M nodes). Rank i's tokens are
 * tokens [i * tokens, (i+1) * tokens) of the synthetic stream. */
void ep_routing_gate(ep_routing *r, int groups, int topk_groups, double zipf_s, uint64_t seed);

/* Routing trace files (text):
 *   moesim-routing 1
 *   ranks R tokens T topk K experts E
 *   then R*T lines, rank-major, each with K expert ids (-1 = none) separated by spaces.
 * Lines starting with '#' and blank lines are ignored. Errors: path:line:col, NULL. */
ep_routing *ep_routing_load(const char *path);
/* Writes a trace atomically; 0 or -1. */
int ep_routing_write(const ep_routing *r, const char *path);

/* ---- EP dispatch / combine ---- */

typedef enum coll_ep_kernel { COLL_EP_AUTO, COLL_EP_INTRANODE, COLL_EP_TWO_HOP, COLL_EP_DIRECT } coll_ep_kernel;

/* Payload formats of a token's hidden vector (per 128-element tile where scaled):
 *   BF16      2 bytes an element
 *   FP8       1 byte an element + one 4-byte FP32 scale per 128 (DeepEP's FP8 dispatch)
 *   LOGFMT8/10  LogFMT-n of the ISCA'25 DeepSeek paper (arXiv 2505.09343, section 3.3): n bits an
 *             element (sign and a linear code of log|x| between the tile's min and max logs) +
 *             COLL_EP_LOGFMT_TILE_BYTES per 128 (ASSUMPTION: the tile's min and max log as two FP32;
 *             the paper does not give the layout) */
typedef enum coll_ep_fmt {
  COLL_EP_FMT_DEFAULT, /* dispatch: FP8 or BF16 by dispatch_fp8; combine: BF16 */
  COLL_EP_FMT_BF16,
  COLL_EP_FMT_FP8,
  COLL_EP_FMT_LOGFMT8,
  COLL_EP_FMT_LOGFMT10
} coll_ep_fmt;
#define COLL_EP_LOGFMT_TILE_BYTES 8.0

/* Bytes of one token's hidden vector of `hidden` elements in format fmt (DEFAULT counts as BF16). */
double coll_ep_payload_bytes(int fmt, int hidden);
/* Names of the coll_ep_fmt values as YAML writes them ("default", "bf16", "fp8_e4m3", "logfmt8",
 * "logfmt10"), NULL-terminated. */
extern const char *const coll_ep_fmt_names[];

typedef struct coll_ep_cfg {
  int hidden;          /* elements per token (7168) */
  int dispatch_fp8;    /* 1: FP8 + 4-byte scale per 128 elements; 0: BF16 */
  int fmt[2];          /* coll_ep_fmt of the [dispatch, combine] payload (DEFAULT: as dispatch_fp8 says
                          for dispatch, BF16 for combine) */
  double codec_sm_factor; /* LogFMT payloads: SM work of the encode/decode per payload byte, relative
                          to copying it, paid at every SM stage the payload crosses (0: free, as with
                          hardware support; the ISCA'25 paper measured 50-100% overhead fused into
                          H800 kernels); nothing without SMs (sms = 0: offloaded) */
  int hw_forward;      /* two-hop: the scale-out -> scale-up forwarding (and the combine's reduction
                          there) is done by the network (one unified scale-up/scale-out interface,
                          the V3 report's suggestion 2), not by the forwarder GPU's SMs */
  int sms;             /* SMs per rank for the kernel (0: not SM-limited) */
  int kernel;          /* coll_ep_kernel (AUTO: intranode in one domain, else two-hop) */
  int rdma_chunk_tokens;/* tokens per RDMA message (0: DeepEP's recommended config for the size) */
  const int *gpus;     /* rank -> GPU (NULL: ranks are GPUs base_gpu, base_gpu + 1, ...) */
  int base_gpu;
} coll_ep_cfg;

/* DeepEP's recommended RDMA chunk (tokens per message) for an EP size (deep_ep/buffers/legacy.py,
 * get_dispatch_config / get_combine_config; the nearest listed size). */
int coll_ep_deepep_rdma_chunk(int ranks, int combine);

/* Bytes a token occupies in DeepEP's buffers and messages: the hidden vector (FP8 or BF16), FP8
 * scales (4 bytes per 128 elements), a 8-byte source record, and for dispatch the top-k indices
 * and weights (4 bytes each), rounded up to 16 (internode.cu get_num_bytes_per_token). */
double coll_ep_token_bytes(int hidden, int topk, int fp8, int combine);

typedef struct coll_ep_result {
  int ranks;
  sim_ps start, end;     /* first flow start, last delivery */
  sim_ps *rank_time;     /* [ranks] each rank's kernel time (its end - start) */
  double *rdma_bytes;    /* [ranks] DeepEP's "RDMA" bytes: (token, node) pairs, own node included */
  double *nvl_bytes;     /* [ranks] DeepEP's "NVL" bytes: tokens the rank receives (dispatch) or
                            sends back (combine) */
  double scaleout_bytes; /* bytes that crossed the scale-out network (NIC uplinks) */
  double nvlink_bytes;   /* bytes that crossed NVLink (GPU -> switch links) */
} coll_ep_result;

/* Frees the arrays of r (not r itself) and zeroes it; freeing a zeroed result is a no-op. */
void coll_ep_result_free(coll_ep_result *r);
/* Takes over src's arrays into dst (src is left zeroed). */
void coll_ep_result_move(coll_ep_result *dst, coll_ep_result *src);
/* DeepEP's bottleneck bandwidths of a result, GB/s, averaged over ranks: RDMA for internode,
 * NVL (both computed, pick by kernel). */
double coll_ep_rdma_gbyte_s(const coll_ep_result *r);
double coll_ep_nvl_gbyte_s(const coll_ep_result *r);

typedef void (*coll_ep_done_fn)(net *n, void *ctx, coll_ep_result *r);

/* Starts dispatch (combine = 0) or combine (combine = 1) now. `done` receives the result and owns
 * it: free its arrays with coll_ep_result_free(r) and the struct with free(r) (or keep them;
 * coll_ep_result_move copies it into a struct of your own). Returns 0, or -1 (message on stderr)
 * when the routing does not fit the topology. */
int coll_ep_start(net *n, const coll_ep_cfg *cfg, const ep_routing *r, int combine, coll_ep_done_fn done, void *ctx);

/* A plan: the routing counted once per (source, rank) and (source, node), reusable for dispatch
 * and combine and for every layer that routes the same way. NULL (message on stderr) when the
 * routing or the rank placement does not fit the topology. */
typedef struct coll_ep_plan coll_ep_plan;
coll_ep_plan *coll_ep_plan_new(topo *t, const coll_ep_cfg *cfg, const ep_routing *r);
void coll_ep_plan_free(coll_ep_plan *p);
/* coll_ep_start with a plan (the plan may be freed once this returns). */
int coll_ep_start_plan(net *n, const coll_ep_plan *p, int combine, coll_ep_done_fn done, void *ctx);

/* Runs one dispatch or combine alone on a fresh network over t; fills *out. Returns 0 or -1. */
int coll_ep_run(topo *t, uint64_t seed, const coll_ep_cfg *cfg, const ep_routing *r, int combine,
                coll_ep_result *out);

/* ---- other collectives ---- */

typedef enum coll_kind {
  COLL_ALLREDUCE_RING,
  COLL_ALLREDUCE_TREE,
  COLL_REDUCE_SCATTER_RING,
  COLL_ALLGATHER_RING,
  COLL_ALLTOALL,
  COLL_P2P
} coll_kind;

typedef struct coll_spec {
  int kind;              /* coll_kind */
  const int *gpus;       /* rank -> GPU */
  int ranks;             /* participants (P2P: 2, gpus[0] -> gpus[1]) */
  uint64_t bytes;        /* all-reduce/reduce-scatter/all-gather: the whole buffer per rank;
                            all-to-all: bytes per (source, destination) pair; P2P: the message */
  const uint64_t *matrix;/* all-to-all: [ranks x ranks] bytes per pair instead (or NULL) */
  int sms;               /* SMs per rank (0: not SM-limited) */
  int chunks;            /* tree: pipeline chunks (0 = 1); ring: ignored */
  int path;              /* net_path for the sends */
} coll_spec;

typedef void (*coll_done_fn)(net *n, void *ctx, sim_ps start, sim_ps end);

/* Starts the collective now; done runs once every rank has finished. Returns 0, or -1 when a
 * send has no route. */
int coll_start(net *n, const coll_spec *s, coll_done_fn done, void *ctx);
/* Runs it alone on a fresh network; returns the completion time (from 0), or SIM_PS_MAX. */
sim_ps coll_run(topo *t, uint64_t seed, const coll_spec *s);

/* Name of a coll_kind as used in YAML and output ("allreduce_ring", ...); -1 if unknown. */
const char *coll_kind_name(int kind);
int coll_kind_parse(const char *name);

#endif
