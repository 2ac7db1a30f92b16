/* kernels/permute.c — threaded entry points of dispatch, combine and SwiGLU (see permute.h): each
 * thread takes an even, contiguous range of tokens (or rows) and calls the backend on it. */
#include "permute.h"
#include "quant.h"

typedef struct perm_job {
  const permute_kernels *pk; /* backend */
  const moe_plan *p;         /* route plan (dispatch, combine) */
  const bf16_t *x;           /* tokens (dispatch) or gate/up rows (swiglu) */
  const bf16_t *y;           /* expert outputs (combine) */
  const float *weights;      /* gate weights (combine) */
  const bf16_t *add;         /* added to the combine, or NULL */
  int64_t H;                 /* hidden size, or I for swiglu */
  int64_t n;                 /* tokens or rows */
  kn_dtype fmt;              /* FP8 format */
  int pow2;                  /* power-of-two scales */
  fp8_t *q;                  /* FP8 output */
  float *scales;             /* FP8 scales */
  bf16_t *out;               /* BF16 output */
  int op;                    /* which kernel */
} perm_job;

enum { OP_DISPATCH_FP8, OP_DISPATCH_BF16, OP_COMBINE, OP_SWIGLU, OP_SWIGLU_FP8 };

static void perm_worker(void *arg, int tid, int nthreads) {
  const perm_job *j = arg;
  int64_t a = j->n * tid / nthreads, b = j->n * (tid + 1) / nthreads;
  /* exactly one thread starts at token 0 (dispatch zeroes the padding there), even when T = 0 */
  if (b <= a && !(j->n == 0 && tid == 0)) return;
  switch (j->op) {
  case OP_DISPATCH_FP8: j->pk->dispatch_fp8(j->p, j->x, j->H, j->fmt, j->pow2, a, b, j->q, j->scales); break;
  case OP_DISPATCH_BF16: j->pk->dispatch_bf16(j->p, j->x, j->H, a, b, j->out); break;
  case OP_COMBINE: j->pk->combine(j->p, j->y, j->weights, j->H, j->add, a, b, j->out); break;
  case OP_SWIGLU: j->pk->swiglu(j->x + a * 2 * j->H, b - a, j->H, j->out + a * j->H); break;
  case OP_SWIGLU_FP8:
    j->pk->swiglu_fp8(j->x + a * 2 * j->H, b - a, j->H, j->fmt, j->pow2, j->q + a * j->H,
                      j->scales + a * quant_tiles(j->H));
    break;
  }
}

static void perm_go(pool *tp, perm_job *j, const permute_kernels *pk) {
  j->pk = pk ? pk : permute_best();
  pool_run(tp, perm_worker, j);
}

void moe_dispatch_fp8(pool *tp, const permute_kernels *pk, const moe_plan *p, const bf16_t *x,
                      int64_t H, kn_dtype fmt, int pow2, fp8_t *xq, float *scales) {
  perm_job j = {.p = p, .x = x, .H = H, .n = p->tokens, .fmt = fmt, .pow2 = pow2, .q = xq, .scales = scales,
                .op = OP_DISPATCH_FP8};
  perm_go(tp, &j, pk);
}

void moe_dispatch_bf16(pool *tp, const permute_kernels *pk, const moe_plan *p, const bf16_t *x,
                       int64_t H, bf16_t *xp) {
  perm_job j = {.p = p, .x = x, .H = H, .n = p->tokens, .out = xp, .op = OP_DISPATCH_BF16};
  perm_go(tp, &j, pk);
}

void moe_combine(pool *tp, const permute_kernels *pk, const moe_plan *p, const bf16_t *y,
                 const float *weights, int64_t H, const bf16_t *add, bf16_t *out) {
  perm_job j = {.p = p, .y = y, .weights = weights, .add = add, .H = H, .n = p->tokens, .out = out,
                .op = OP_COMBINE};
  perm_go(tp, &j, pk);
}

void moe_swiglu(pool *tp, const permute_kernels *pk, const bf16_t *gu, int64_t rows, int64_t I,
                bf16_t *out) {
  perm_job j = {.x = gu, .H = I, .n = rows, .out = out, .op = OP_SWIGLU};
  perm_go(tp, &j, pk);
}

void moe_swiglu_fp8(pool *tp, const permute_kernels *pk, const bf16_t *gu, int64_t rows, int64_t I,
                    kn_dtype fmt, int pow2, fp8_t *q, float *scales) {
  perm_job j = {.x = gu, .H = I, .n = rows, .fmt = fmt, .pow2 = pow2, .q = q, .scales = scales,
                .op = OP_SWIGLU_FP8};
  perm_go(tp, &j, pk);
}
