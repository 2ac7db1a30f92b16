/* tests/test_moe_layer.c — the whole MoE layer: the fast composition against the reference
 * composition (plain-C kernels, regenerated weights) on small shapes in BF16 and FP8 (with and
 * without power-of-two scales), with the reference's own gate and with the fast routing; token
 * counts 1, odd and 0; two threads; determinism; and the layer's FLOP count. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "moe_layer.h"
#include "test.h"

static moe_layer_cfg small_cfg(kn_dtype dt) {
  moe_layer_cfg c = {256, 128, 1, {16, 4, 2, 4, 2.5f, 1}, dt, 0, 7, 0.5};
  return c;
}

/* Runs the layer on T synthetic tokens and compares every token with the reference; returns the
 * largest error relative to the output's max |value|. */
static double check_layer(pool *tp, const moe_layer_cfg *c, int64_t T, int ref_gate) {
  moe_layer *l = moe_layer_create(tp, c);
  T_CHECK(l != NULL);
  if (!l) return INFINITY;
  int64_t H = c->hidden, K = c->gate.topk;
  bf16_t *x = malloc(sizeof(bf16_t) * (size_t)(T * H + 1)), *out = malloc(sizeof(bf16_t) * (size_t)(T * H + 1));
  bf16_t *want = malloc(sizeof(bf16_t) * (size_t)(T * H + 1));
  moe_synth syn = {c->seed, c->zipf_s, 1.0};
  moe_synth_activations(&syn, H, 0, T, x);
  T_EQ_INT(moe_layer_forward(tp, l, x, T, out), 0);
  const int32_t *idx;
  const float *w, *sc;
  moe_layer_routing(l, &idx, &w, &sc);
  int64_t *tok = malloc(sizeof(int64_t) * (size_t)(T + 1));
  for (int64_t t = 0; t < T; t++) tok[t] = t;
  T_EQ_INT(moe_layer_forward_ref(c, x, tok, T, ref_gate ? NULL : idx, ref_gate ? NULL : w, want), 0);
  double rel, abs, maxw = 0, worst = 0;
  moe_layer_tolerance(c->dtype, &rel, &abs);
  char why[512] = "";
  int rc = hn_check_bf16(out, want, T * H, (hn_tol){rel, abs}, why, sizeof why);
  T_CHECKF(rc == 0, "%s T=%lld: %s", kn_dtype_name(c->dtype), (long long)T, why);
  for (int64_t i = 0; i < T * H; i++) maxw = fmax(maxw, fabs(bf16_to_f32(want[i])));
  for (int64_t i = 0; i < T * H; i++) worst = fmax(worst, fabs(bf16_to_f32(out[i]) - bf16_to_f32(want[i])));
  int finite = 1;
  for (int64_t i = 0; i < T * H; i++) finite &= isfinite(bf16_to_f32(out[i]));
  T_CHECK(finite);
  T_CHECK(T == 0 || maxw > 0.01); /* the layer produced something */
  /* a second forward gives the same bits */
  bf16_t *again = malloc(sizeof(bf16_t) * (size_t)(T * H + 1));
  moe_layer_forward(tp, l, x, T, again);
  T_CHECK(memcmp(out, again, sizeof(bf16_t) * (size_t)(T * H)) == 0);
  (void)K;
  free(x), free(out), free(want), free(tok), free(again);
  moe_layer_free(l);
  return maxw > 0 ? worst / maxw : 0;
}

static void test_bf16(void) {
  moe_layer_cfg c = small_cfg(KN_BF16);
  check_layer(NULL, &c, 37, 0);
  check_layer(NULL, &c, 1, 1);
}

static void test_fp8(void) {
  moe_layer_cfg c = small_cfg(KN_FP8_E4M3);
  check_layer(NULL, &c, 37, 0);
  c.pow2_scales = 1;
  check_layer(NULL, &c, 5, 1);
  c.dtype = KN_FP8_E5M2;
  check_layer(NULL, &c, 9, 0);
}

static void test_threads_and_edges(void) {
  pool *tp = pool_create(2, 0);
  moe_layer_cfg c = small_cfg(KN_FP8_E4M3);
  c.n_shared = 2;
  check_layer(tp, &c, 64, 0);
  c.n_shared = 0;
  c.dtype = KN_BF16;
  check_layer(tp, &c, 3, 0);
  check_layer(tp, &c, 0, 0);
  pool_destroy(tp);
}

static void test_flops_and_check(void) {
  moe_layer_cfg v3 = moe_layer_v3(KN_FP8_E4M3);
  /* per token: gate 2*256*7168, experts (8 + 1) * 6 * 7168 * 2048 */
  T_NEAR(moe_layer_flops(&v3, 1), 2.0 * 256 * 7168 + 9.0 * 6 * 7168 * 2048, 1);
  char why[128];
  T_EQ_INT(moe_layer_check(&v3, why, sizeof why), 0);
  v3.dtype = KN_FP32;
  T_EQ_INT(moe_layer_check(&v3, why, sizeof why), -1);
}

int main(void) {
  T_RUN(test_bf16);
  T_RUN(test_fp8);
  T_RUN(test_threads_and_edges);
  T_RUN(test_flops_and_check);
  return t_done();
}
