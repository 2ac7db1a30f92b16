/* kernels/permute.h — moving tokens between token order and expert order: the route plan, dispatch
 * (permute into expert order, FP8 with 1x128 scales as DeepEP sends them, or BF16), combine
 * (weighted un-permute back to token order, FP32 accumulation, BF16 out) and SwiGLU.
 *
 * A route is one (token t, slot k) pair of the gate's idx [T x topk]; route r = t * topk + k.
 * Layouts of the permuted buffer (rows of H elements):
 * - contiguous: the routes of expert 0, then expert 1, ... (DeepGEMM's m-grouped contiguous
 *   layout). Each expert's segment is padded to a multiple of `align` rows (1 = no padding;
 *   DeepGEMM wants its block M, 128); padding rows are zero after dispatch.
 * - masked: expert e owns rows [e * slots, (e + 1) * slots) and count[e] of them are used (the
 *   DeepEP low-latency / DeepGEMM masked layout). Routes past an expert's capacity are dropped
 *   (pos = -1, counted in `dropped`) and contribute nothing to the combine; unused slots are not
 *   written by dispatch.
 * Within an expert, routes keep token order (then slot order): the plan is a stable counting sort,
 * so it is deterministic. Routes whose expert is outside [0, E) (a -1 from a caller that masks
 * non-local experts) are ignored: pos = -1, not counted as dropped.
 *
 * Numerics: dispatch is exact (FP8 through the quantizers of kernels/quant.h, bit-identical on
 * every backend). combine computes, per token and channel, acc = add (or 0); acc = acc + w_k * y_k
 * for k = 0 .. topk-1 with separate multiply and add (no FMA) and rounds once to BF16: bit-
 * identical on every backend. swiglu = silu(g) * u with silu(g) = g / (1 + exp(-g)) in FP32; the
 * vector exp is a polynomial, so backends agree to one BF16 ulp (or one FP8 step), not bit for bit. */
#ifndef MOESIM_PERMUTE_H
#define MOESIM_PERMUTE_H

#include <stdint.h>

#include "cpu_isa.h"
#include "dtype.h"
#include "pool.h"

typedef enum moe_layout {
  MOE_LAYOUT_CONTIGUOUS = 0, /* segments of routes per expert, padded to `align` rows */
  MOE_LAYOUT_MASKED = 1,     /* fixed `slots` rows per expert plus a count */
} moe_layout;

/* Where every route goes. Built by moe_plan_build, released by moe_plan_free. */
typedef struct moe_plan {
  moe_layout layout; /* contiguous or masked */
  int n_experts;     /* E */
  int topk;          /* routes per token */
  int64_t tokens;    /* T */
  int64_t align;     /* contiguous: segment alignment in rows; masked: slots per expert */
  int64_t rows;      /* rows of the permuted buffer (offset[E]) */
  int64_t *count;    /* [E] routes placed per expert */
  int64_t *offset;   /* [E + 1] first row of each expert; offset[E] = rows */
  int64_t *pos;      /* [T x topk] row of each route, -1 when dropped or ignored */
  int64_t *row_src;  /* [rows] route (t * topk + k) held by each row, -1 for padding / empty */
  int64_t dropped;   /* routes over capacity (masked layout) */
} moe_plan;

/* Builds the plan for idx [T x topk] over E experts. `align_or_slots`: the contiguous layout's
 * alignment (>= 1) or the masked layout's slots per expert (>= 0). */
void moe_plan_build(moe_plan *p, const int32_t *idx, int64_t T, int topk, int n_experts,
                    moe_layout layout, int64_t align_or_slots);
void moe_plan_free(moe_plan *p);

/* One backend's kernels. Token-range arguments [t0, t1) (and row ranges for swiglu) let callers
 * split the work across threads; the whole problem is t0 = 0, t1 = T. */
typedef struct permute_kernels {
  const char *backend; /* "ref", "avx512" */
  /* x [T x H] bf16 -> xq [rows x H] fp8 and scales [rows x ceil(H/128)] (1x128 tiles), for the
   * routes of tokens t0 .. t1-1; the call with t0 == 0 also zeroes the padding rows. */
  void (*dispatch_fp8)(const moe_plan *p, const bf16_t *x, int64_t H, kn_dtype fmt, int pow2,
                       int64_t t0, int64_t t1, fp8_t *xq, float *scales);
  /* x [T x H] bf16 -> xp [rows x H] bf16 (padding zeroed as above) */
  void (*dispatch_bf16)(const moe_plan *p, const bf16_t *x, int64_t H, int64_t t0, int64_t t1,
                        bf16_t *xp);
  /* y [rows x H] bf16, weights [T x topk] -> out [T x H] bf16 = add + sum_k w * y[pos]; add is
   * [T x H] bf16 (the shared expert's output) or NULL. */
  void (*combine)(const moe_plan *p, const bf16_t *y, const float *weights, int64_t H,
                  const bf16_t *add, int64_t t0, int64_t t1, bf16_t *out);
  /* gu [rows x 2I] bf16 (gate in columns 0..I-1, up in I..2I-1) -> out [rows x I] bf16 */
  void (*swiglu)(const bf16_t *gu, int64_t rows, int64_t I, bf16_t *out);
  /* SwiGLU fused with per-token FP8 quantization of its FP32 result (no BF16 rounding between):
   * gu [rows x 2I] -> q [rows x I], scales [rows x ceil(I/128)] */
  void (*swiglu_fp8)(const bf16_t *gu, int64_t rows, int64_t I, kn_dtype fmt, int pow2, fp8_t *q,
                     float *scales);
} permute_kernels;

/* The plain-C reference (always present). */
const permute_kernels *permute_ref(void);
/* The backend for an ISA level, or NULL when unavailable here. */
const permute_kernels *permute_backend(cpu_level level);
/* The fastest backend this CPU runs. */
const permute_kernels *permute_best(void);

/* Zeroes the padding rows of a contiguous-layout buffer (rows with row_src = -1), data
 * [rows x row_bytes]; a no-op for the masked layout. */
void moe_dispatch_pad(const moe_plan *p, void *data, uint64_t row_bytes);

/* Threaded entry points: tokens (or rows) split evenly across the threads of `tp` (NULL: the
 * caller alone); `pk` NULL means permute_best(). Same results as one whole-range call. */
void moe_dispatch_fp8(pool *tp, const permute_kernels *pk, const moe_plan *p, const bf16_t *x,
                      int64_t H, kn_dtype fmt, int pow2, fp8_t *xq, float *scales);
void moe_dispatch_bf16(pool *tp, const permute_kernels *pk, const moe_plan *p, const bf16_t *x,
                       int64_t H, bf16_t *xp);
void moe_combine(pool *tp, const permute_kernels *pk, const moe_plan *p, const bf16_t *y,
                 const float *weights, int64_t H, const bf16_t *add, bf16_t *out);
void moe_swiglu(pool *tp, const permute_kernels *pk, const bf16_t *gu, int64_t rows, int64_t I,
                bf16_t *out);
void moe_swiglu_fp8(pool *tp, const permute_kernels *pk, const bf16_t *gu, int64_t rows, int64_t I,
                    kn_dtype fmt, int pow2, fp8_t *q, float *scales);

extern const permute_kernels permute_avx512_kernels;

#endif
