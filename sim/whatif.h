/* sim/whatif.h — the hardware suggestions of the DeepSeek-V3 report (arXiv 2412.19437, section
 * 3.5) and of its ISCA'25 follow-up (arXiv 2505.09343) as switches on the simulator's mechanisms.
 * Train, prefill and decode experiments share one `hw_features:` section (whatif_hw_keys); each
 * key changes how some piece of work is done, never a factor on a result:
 *
 *   comm_offload        communication kernels hold no SMs: compute keeps them all, and the copies,
 *                       forwarding and reductions they did run on a co-processor at the links'
 *                       rates (coll.h with sms = 0). DeepEP's low-latency kernels hold none already.
 *   unified_network     one scale-up/scale-out interface: the two-hop EP kernel's IB -> NVLink
 *                       forwarding (and the combine's reduction at the forwarder) is done by the
 *                       network hardware instead of the forwarder GPU's SMs (coll_ep_cfg.hw_forward;
 *                       the bytes still cross IB once per node and then NVLink).
 *   accum_fp32 /        the CUDA-core step of DeepSeek's FP8 GEMMs: every N_C = promotion_interval
 *   mma_block_scaling   products along K the partial sums leave the tensor cores for FP32 registers
 *                       (limited accumulation precision) and every 128 (a scale block) they are
 *                       multiplied by their 1x128 / 128x128 scales there (scaling outside the MMA).
 *                       One step does both, so steps per 128-block = max(128 / N_C unless
 *                       accum_fp32, 1 unless mma_block_scaling): only both together remove it at
 *                       N_C = 128. What a step costs comes from a measured promotion study
 *                       (promotion_table, whatif_promo_fit below).
 *   online_quant        the FP8 cast fused with the GEMM's loads: no separate quantize passes
 *                       (model.h MODEL_OP_QUANT; prec.quant_passes = 0).
 *   transposed_gemm     the MMA reads operands transposed: no Wgrad transpose passes
 *                       (MODEL_OP_TRANSPOSE; prec.wgrad_transpose = 0).
 *   ep_dispatch /       payload formats of the EP all-to-alls (LogFMT-8/10, coll.h), with
 *   ep_combine,         logfmt_codec_sm_factor the SM work of the encode/decode per byte.
 *   logfmt_codec_sm_factor
 *   fabric              the cluster's scale-out fabric rebuilt as a two-layer fat-tree (plain,
 *                       multi-rail or multi-plane) or a three-layer fat-tree, same GPUs, NICs and
 *                       switches (topo.h; its price from topo_summarize).
 *   scaleup_domain_gpus GPUs per scale-up domain (an NVL72-sized NVLink domain of the same GPUs and
 *                       per-GPU NVLink bandwidth): the cluster's GPUs regrouped into whole domains
 *                       (a remainder that fills no domain is left out); a multi-rail fabric with
 *                       more rails than leaves becomes a plain fat-tree (NVL72 racks' wiring).
 *   scaleout_converged  each GPU's scale-out bandwidth raised to its scale-up figure (NIC line rate
 *                       and switch ports scaled alike).
 *
 * The defaults are today's hardware (H800): everything off, N_C = 128. */
#ifndef MOESIM_WHATIF_H
#define MOESIM_WHATIF_H

#include <stddef.h>

#include "cfg.h"
#include "ktable.h"
#include "model.h"
#include "topo.h"

typedef enum whatif_fabric {
  WHATIF_FABRIC_SAME, /* the cluster's own */
  WHATIF_FABRIC_MRFT, /* multi-rail two-layer fat-tree */
  WHATIF_FABRIC_MPFT, /* multi-plane two-layer fat-tree, one plane per GPU of a node */
  WHATIF_FABRIC_FT3,  /* three-layer fat-tree */
  WHATIF_FABRIC_FT2   /* two-layer fat-tree, a node's GPUs on consecutive leaf ports */
} whatif_fabric;

typedef struct whatif_hw {
  int comm_offload;              /* communication off the SMs (suggestion 1) */
  int unified_network;           /* forwarding in the network (suggestion 2) */
  int accum_fp32;                /* tensor cores accumulate FP8 products in FP32 (suggestion 3) */
  int mma_block_scaling;         /* the MMA applies the 1x128 / 128x128 scales (suggestion 4) */
  int promotion_interval;        /* N_C: products along K between promotions (divides 128) */
  char *promotion_table;         /* kernel table holding the FP8 GEMM promotion study (rows with
                                    variant "promo_k=N"), or NULL */
  int online_quant;              /* FP8 cast fused with the GEMM's loads (suggestion 5) */
  int transposed_gemm;           /* MMA reads transposed operands (suggestion 6) */
  int ep_fmt[2];                 /* coll_ep_fmt of the EP [dispatch, combine] payloads */
  double logfmt_codec_sm_factor; /* SM work per LogFMT byte encoded or decoded, relative to a copy */
  int fabric;                    /* whatif_fabric */
  int scaleup_domain_gpus;       /* GPUs per scale-up domain (0: the cluster's) */
  int scaleout_converged;        /* scale-out bandwidth per GPU raised to the scale-up figure */
} whatif_hw;

/* The `hw_features:` key table and its defaults. */
extern const cfg_key whatif_hw_keys[];
void whatif_hw_init(whatif_hw *hw);
/* 1 when any feature differs from today's hardware. */
int whatif_hw_active(const whatif_hw *hw);

/* Workloads, for whatif_describe. */
typedef enum whatif_workload { WHATIF_TRAIN, WHATIF_PREFILL, WHATIF_DECODE } whatif_workload;

/* One phrase per feature that is on, "; "-joined, saying what it changes in that workload's
 * simulation (or that the workload has no such work), into buf; "today's hardware" when none. */
void whatif_describe(const whatif_hw *hw, int workload, char *buf, size_t len);

/* The model side: the FP8 GEMMs' quantize and transpose passes (model_precision). */
void whatif_apply_model(const whatif_hw *hw, model_spec *m);

/* The cluster side, on a resolved topology spec before topo_build: the fabric swap, the scale-up
 * domain size (nodes = GPUs / domain size, rounded down) and the scale-out bandwidth. Returns 0, or
 * -1 with a message in err (a cluster without a node count or smaller than one domain). */
int whatif_apply_topo(const whatif_hw *hw, topo_spec *s, char *err, size_t err_len);

/* ---- the FP8 GEMM promotion step ---- */

/* What one promotion step per 128-wide K block costs, from a study timing one FP8 GEMM at several
 * promotion intervals p (kernel-table rows: kernel gemm or grouped_gemm, an fp8 dtype, variant
 * "promo_k=P" possibly followed by "/..."). For each shape (device, host, m, n, k, groups) with at
 * least two intervals, a least-squares line t = a + b x over x = 128 / p (steps per block), t the
 * row's fastest time (min_us; other programs on a shared machine only ever add time), gives the
 * share of one step at the reference (one step per block): b / (a + b), negative slopes counted as
 * 0; the shapes' median is the answer. */
typedef struct whatif_promo {
  int shapes;       /* shapes fitted */
  double step_frac; /* share of an FP8 GEMM's time one step per 128-block takes (median) */
  double min_frac, max_frac; /* spread over the shapes */
  char from[160];   /* where it came from (device, shapes, intervals) */
} whatif_promo;

/* Fits rows; 0, or -1 with a message when no shape has two intervals. */
int whatif_promo_fit(const kt_row *rows, size_t n, whatif_promo *out, char *err, size_t err_len);
/* Loads a kernel table and fits it; 0, or -1 with a message. */
int whatif_promo_load(const char *path, whatif_promo *out, char *err, size_t err_len);
/* Steps per 128-wide K block the hardware needs (1 on H800 at N_C = 128). */
double whatif_promo_steps(const whatif_hw *hw);
/* 1 when the features change the steps from the kernel table's kernels' (DeepGEMM: N_C = 128,
 * scaling on CUDA cores: one step per block), so the promotion study is needed. */
int whatif_promo_needed(const whatif_hw *hw);
/* An FP8 GEMM's time relative to the kernel table's: (1 - f) + f x steps, f = p->step_frac. */
double whatif_fp8_gemm_factor(const whatif_hw *hw, const whatif_promo *p);

#endif
