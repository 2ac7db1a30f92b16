/* sim/compute.h — the compute projection: how long one operator (a GEMM, a grouped GEMM over
 * experts, an attention core, an element-wise kernel) takes on a target GPU, costed from the
 * kernel table (sim/ktable.h) and the target's datasheet figures. Training (sim/train.h) and
 * inference share it.
 *
 * The rule, in order:
 *  1. A row for the target device with the op's kernel, dtype and exact shape (groups included for
 *     grouped GEMMs): its median time. The source is the row's: measured, or published (e.g.
 *     DeepGEMM's H800 table in topologies/published/).
 *  2. Otherwise a projection: the target's datasheet peak for the op's dtype times the efficiency
 *     (achieved TFLOP/s over that device's peak) of the nearest measured shape class. Candidates
 *     are the rows of the op's kernel family (gemm and grouped_gemm are one family; attention is
 *     another) on any device whose peak is known; among them the lexicographically smallest
 *       (other device than the target, a CPU's row (device "cpu") for a GPU target, other dtype
 *        than the op's, other kernel than the op's, shape distance, lower efficiency)
 *     wins, shape distance being the Euclidean distance of the shape classes: (log2 FLOPs per group,
 *     log2 arithmetic intensity), intensity = FLOPs per byte of one pass over A and B in the
 *     dtype and C in BF16 — where the GEMM sits under the roofline and how much work it offers.
 *     The last entry makes the best of several implementations of one shape (a table with the
 *     reference and the fast paths) the one that teaches the efficiency. Rows without a shape (m = n = k = 0: a headline figure) come after every shaped row. The
 *     projected time is never below the roofline floor bytes / HBM bandwidth. A CPU's rows (this
 *     machine's, `moesim kernels`) thus teach a GPU only what no GPU row covers: a GPU's
 *     efficiency says more about another GPU than a CPU's does.
 *  2b. An element-wise op that a table kernel measures (op.kernel: "swiglu" for SwiGLU, "combine"
 *     for the MoE combine's weighted un-permute, "quant_token" for the FP8 quantization of a GEMM
 *     input): the target's HBM bandwidth times the fraction of its device's memory bandwidth the
 *     nearest row of that kernel achieved — rows ordered by
 *       (other device than the target, a CPU's row for a GPU target, other dtype than the op's,
 *        |log2 bytes moved - log2 op bytes| in thousandths, lower bandwidth fraction)
 *     — and never faster than FLOPs / peak. A row's memory bandwidth is the target's HBM for the
 *     target's rows, else the table's `memcpy` row of the same device, host and thread count.
 *  3. Without any candidate (norms, routing, loss, embedding, and any kernel the table lacks): the
 *     roofline, max(FLOPs / peak, bytes / HBM bandwidth).
 * Every cost carries its source and a one-line description of where it came from, so outputs can
 * state them.
 *
 * Peaks of source rows, first found: the peak the table's sidecar (`<table>.meta`, sim/kmeta.h)
 * records for the session that measured the row (its host, device and thread count; `moesim
 * kernels` writes this CPU's measured BF16/FP8 and FP32 peaks there, kernels/peak.h); the target's
 * datasheet figures for the target's rows; a peak registered with compute_set_peak (the hardware
 * catalogue's GPUs, say) or by a legacy row whose kernel is "peak" (m = n = k = 0, tflops = the
 * peak). A GEMM or attention row without a known peak is never used for a projection. Costs are memoised per distinct op, so a simulator may ask for the same shape
 * millions of times. */
#ifndef MOESIM_COMPUTE_H
#define MOESIM_COMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include "ktable.h"
#include "model.h"

typedef enum compute_src {
  COMPUTE_SRC_MEASURED,  /* a measured kernel-table row of the target device, this shape */
  COMPUTE_SRC_PUBLISHED, /* a published row of the target device, this shape */
  COMPUTE_SRC_PROJECTED, /* peak x the efficiency of the nearest shape class (any device) */
  COMPUTE_SRC_ROOFLINE,  /* no row to learn from: FLOPs at peak or bytes at HBM bandwidth */
  COMPUTE_SRC_COUNT
} compute_src;

typedef enum compute_class {
  COMPUTE_GEMM,       /* dense GEMM C[m,n] = A[m,k] B[n,k]^T: kernel "gemm" */
  COMPUTE_GROUPED,    /* grouped GEMM over experts, m = rows over all groups: "grouped_gemm" */
  COMPUTE_ATTN,       /* attention core: "attention" */
  COMPUTE_ELEMENTWISE /* norms, activations, routing, loss, gathers: roofline, or rule 2b */
} compute_class;

/* One operator to cost. */
typedef struct compute_op {
  compute_class cls;  /* kernel family */
  const char *dtype;  /* kernel-table dtype of its arithmetic: fp8_e4m3, bf16, fp32 */
  int64_t m, n, k;    /* GEMM shape (0 for attention and element-wise ops); grouped: m = rows of
                         A over all groups, so a weight gradient has m = groups x in, k = rows
                         per expert */
  int64_t groups;     /* grouped GEMM: experts the rows are spread over (else 1) */
  const char *kernel; /* element-wise ops: the kernel-table kernel that measures it ("swiglu",
                         "combine", "quant_token"), or NULL (rule 2b) */
  double flops;       /* floating-point operations */
  double bytes;       /* bytes moved to and from HBM */
} compute_op;

/* The device the ops run on. */
typedef struct compute_target {
  const char *device; /* its name in the kernel table's device column (e.g. "h800") */
  double fp8_tflops;  /* dense FP8 tensor-core peak, TFLOP/s */
  double bf16_tflops; /* dense BF16 tensor-core peak, TFLOP/s (also used for FP32 and other dtypes) */
  double hbm_gbyte_s; /* HBM bandwidth, GB/s */
} compute_target;

/* The cost of one op and where it came from. */
typedef struct compute_cost {
  double seconds;    /* time on the target */
  compute_src src;   /* which rule gave it */
  int memory_bound;  /* 1: the HBM roofline floor set the time */
  double efficiency; /* for projections: the source row's fraction of its peak (else 0) */
  char from[160];    /* e.g. "h800 grouped_gemm fp8_e4m3 32768x4096x7168 g4 (published)" */
} compute_cost;

typedef struct compute_ctx compute_ctx;

/* A context for target t (its strings are copied). */
compute_ctx *compute_new(const compute_target *t);
void compute_free(compute_ctx *c);

/* Adds kernel-table rows (copied); "peak" rows register peaks. Clears the memo. */
void compute_add_rows(compute_ctx *c, const kt_row *rows, size_t n);
/* Loads a kernel-table CSV and adds its rows, with the peaks its sidecar `<path>.meta` records
 * when there is one. Returns 0, or -1 (kt_load's message printed, or errno set when the file or
 * its existing sidecar cannot be read). */
int compute_load_table(compute_ctx *c, const char *path);
/* Registers the peak of a source device for a dtype ("fp8_e4m3", "bf16", ...), TFLOP/s. */
void compute_set_peak(compute_ctx *c, const char *device, const char *dtype, double tflops);
/* The known peak of device for dtype (the target's datasheet for the target), or 0. */
double compute_peak(const compute_ctx *c, const char *device, const char *dtype);
/* Rows held. */
size_t compute_rows(const compute_ctx *c);
/* GEMM and attention rows that can never teach an efficiency (no peak known for them); writes
 * "device/dtype" names of those pairs, comma-separated, to buf. */
size_t compute_rows_without_peak(const compute_ctx *c, char *buf, size_t len);

/* Costs op on the target. Always succeeds (the roofline is the last resort); returns the cost's
 * seconds. `out` may be NULL. */
double compute_op_cost(compute_ctx *c, const compute_op *op, compute_cost *out);

/* The compute_op of a model operator (model.h): class, dtype name, shape, FLOPs, bytes. */
void compute_op_from_model(const model_op *mo, compute_op *out);
/* The kernel-table dtype name of a model_fmt ("fp8_e4m3", "bf16", "fp32"). */
const char *compute_dtype_name(int model_fmt);

/* "measured", "published", "projected", "roofline". */
const char *compute_src_name(compute_src s);

#endif
