/* kernels/gate.c — the production gate forward (contract in gate.h): the logits x w^T come from
 * the fastest BF16 GEMM (kernels/gemm.h, FP32 output), then sigmoid and the one selection routine
 * run on token ranges split across the pool's threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gate.h"
#include "util.h"

typedef struct gate_job {
  const moe_gate_cfg *g; /* gate */
  float *scores;         /* [T x E] logits in, affinities out */
  const float *bias;     /* [E] or NULL */
  int64_t T;             /* tokens */
  int32_t *idx;          /* [T x topk] */
  float *weights;        /* [T x topk] */
} gate_job;

static void gate_worker(void *arg, int tid, int nthreads) {
  const gate_job *j = arg;
  int64_t a = j->T * tid / nthreads, b = j->T * (tid + 1) / nthreads;
  int E = j->g->n_experts, K = j->g->topk;
  for (int64_t i = a * E; i < b * E; i++) j->scores[i] = 1.0f / (1.0f + expf(-j->scores[i]));
  if (b > a) moe_gate_select(j->g, j->scores + a * E, j->bias, b - a, j->idx + a * K, j->weights + a * K);
}

int moe_gate_forward_packed(pool *tp, const moe_gate_cfg *g, const bf16_t *x, const gemm_packed *w,
                            const float *bias, int64_t T, int32_t *idx, float *weights,
                            float *scores_out) {
  int64_t H = gemm_packed_k(w);
  gemm_mat a = {KN_BF16, x, H, NULL, 0};
  gemm_out c = {KN_FP32, scores_out, g->n_experts};
  if (T > 0 && gemm_run(tp, T, &a, w, &c, NULL) != 0) return -1;
  gate_job j = {g, scores_out, bias, T, idx, weights};
  pool_run(tp, gate_worker, &j);
  return 0;
}

void moe_gate_forward(const moe_gate_cfg *g, const bf16_t *x, const bf16_t *w, int64_t H,
                      const float *bias, int64_t T, int32_t *idx, float *weights, float *scores_out) {
  gemm_mat wm = {KN_BF16, w, H, NULL, 0};
  gemm_packed *pw = gemm_pack(&wm, g->n_experts, H);
  float *s = scores_out ? scores_out : util_xmalloc((size_t)(T * g->n_experts + 1) * sizeof *s);
  if (!pw || moe_gate_forward_packed(NULL, g, x, pw, bias, T, idx, weights, s) != 0) {
    fprintf(stderr, "moe_gate_forward: the gate GEMM rejected its arguments (E=%d H=%lld)\n", g->n_experts,
            (long long)H);
    abort();
  }
  gemm_packed_free(pw);
  if (s != scores_out) free(s);
}
