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
 *       (other device than the target, other dtype than the op's, other kernel than the op's,
 *        shape distance)
 *     wins, shape distance being the Euclidean distance of the shape classes: (log2 FLOPs per group,
 *     log2 arithmetic intensity), intensity = FLOPs per byte of one pass over A and B in the
 *     dtype and C in BF16 — where the GEMM sits under the roofline and how much work it offers.
 *     Rows without a shape (m = n = k = 0: a headline figure) come after every shaped row. The
 *     projected time is never below the roofline floor bytes / HBM bandwidth.
 *  3. Without any candidate (element-wise ops: norms, SwiGLU, routing, loss, embedding, and any
 *     kernel the table lacks): the roofline, max(FLOPs / peak, bytes / HBM bandwidth).
 * Every cost carries its source and a one-line description of where it came from, so outputs can
 * state them.
 *
 * Peaks of source devices: the target's are its datasheet figures; others are registered with
 * compute_set_peak (the hardware catalogue's GPUs, say) or come from kernel-table rows whose kernel
 * is "peak" (m = n = k = 0, tflops = the device's measured peak for that dtype, e.g. this CPU's from
 * kernels/peak.h). A row whose device has no known peak for its dtype is never used for a
 * projection. Costs are memoised per distinct op, so a simulator may ask for the same shape
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
  COMPUTE_ELEMENTWISE /* norms, activations, routing, loss, gathers: roofline only */
} compute_class;

/* One operator to cost. */
typedef struct compute_op {
  compute_class cls;  /* kernel family */
  const char *dtype;  /* kernel-table dtype of its arithmetic: fp8_e4m3, bf16, fp32 */
  int64_t m, n, k;    /* GEMM shape (0 for attention and element-wise ops); grouped: m = rows of
                         A over all groups, so a weight gradient has m = groups x in, k = rows
                         per expert */
  int64_t groups;     /* grouped GEMM: experts the rows are spread over (else 1) */
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
/* Loads a kernel-table CSV and adds its rows. Returns 0, or -1 (kt_load's message printed, or
 * errno set when the file cannot be read). */
int compute_load_table(compute_ctx *c, const char *path);
/* Registers the peak of a source device for a dtype ("fp8_e4m3", "bf16", ...), TFLOP/s. */
void compute_set_peak(compute_ctx *c, const char *device, const char *dtype, double tflops);
/* The known peak of device for dtype (the target's datasheet for the target), or 0. */
double compute_peak(const compute_ctx *c, const char *device, const char *dtype);
/* Rows held. */
size_t compute_rows(const compute_ctx *c);
/* Rows that can never teach an efficiency (their device has no known peak for their dtype);
 * writes "device/dtype" names of those pairs, comma-separated, to buf. */
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
