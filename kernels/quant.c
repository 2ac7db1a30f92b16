/* kernels/quant.c — threaded entry points of the FP8 quantizers (see quant.h): each thread takes
 * a contiguous range of rows (per-token) or of 128-row block rows (per-block) and calls the
 * single-threaded backend on it by offsetting the pointers. */
#include "quant.h"

typedef struct quant_job {
  const quant_kernels *qk; /* backend */
  kn_dtype in_type;        /* KN_FP32 or KN_BF16 */
  const void *x;           /* input rows */
  int64_t m, k;            /* shape */
  kn_dtype fmt;            /* FP8 format */
  int pow2;                /* power-of-two scales */
  fp8_t *q;                /* output codes */
  float *scales;           /* output scales */
  int block;               /* 1: per-block (split by 128-row block rows) */
} quant_job;

static void quant_worker(void *arg, int tid, int nthreads) {
  const quant_job *j = arg;
  int64_t unit = j->block ? QUANT_TILE : 1;
  int64_t units = (j->m + unit - 1) / unit;
  int64_t u0 = units * tid / nthreads, u1 = units * (tid + 1) / nthreads;
  int64_t r0 = u0 * unit, r1 = u1 * unit < j->m ? u1 * unit : j->m;
  if (r1 <= r0) return;
  int64_t es = j->in_type == KN_FP32 ? 4 : 2, nt = quant_tiles(j->k);
  const char *x = (const char *)j->x + r0 * j->k * es;
  fp8_t *q = j->q + r0 * j->k;
  float *s = j->scales + (j->block ? u0 : r0) * nt;
  int64_t m = r1 - r0;
  if (j->block) {
    if (j->in_type == KN_FP32) j->qk->block_f32((const float *)x, m, j->k, j->fmt, j->pow2, q, s);
    else j->qk->block_bf16((const bf16_t *)x, m, j->k, j->fmt, j->pow2, q, s);
  } else {
    if (j->in_type == KN_FP32) j->qk->token_f32((const float *)x, m, j->k, j->fmt, j->pow2, q, s);
    else j->qk->token_bf16((const bf16_t *)x, m, j->k, j->fmt, j->pow2, q, s);
  }
}

void quant_token_run(pool *tp, const quant_kernels *qk, kn_dtype in_type, const void *x, int64_t m,
                     int64_t k, kn_dtype fmt, int pow2, fp8_t *q, float *scales) {
  quant_job j = {qk ? qk : quant_best(), in_type, x, m, k, fmt, pow2, q, scales, 0};
  pool_run(tp, quant_worker, &j);
}

void quant_block_run(pool *tp, const quant_kernels *qk, kn_dtype in_type, const void *w, int64_t n,
                     int64_t k, kn_dtype fmt, int pow2, fp8_t *q, float *scales) {
  quant_job j = {qk ? qk : quant_best(), in_type, w, n, k, fmt, pow2, q, scales, 1};
  pool_run(tp, quant_worker, &j);
}
