/* kernels/cuda/suite_moe.c — the MoE data-movement families of the CUDA suite: FP8 quantization,
 * the copy yardstick, route layout / dispatch / combine, and NCCL all-to-all.
 *
 * Every device kernel here is bit-identical to its CPU reference (kmoe's kernels/ref/quant_ref.c
 * and kernels/ref/permute_ref.c), so validation compares bytes: quantized values and scales in
 * both FP8 formats, with and without power-of-two scales, in both scale layouts, on inputs that
 * include an all-zero tile, tiny values, +NaN and +-Inf (a NaN's sign is not compared: the GPU's
 * multiply returns the canonical positive NaN); dispatch against permute_ref's dispatch_fp8 (which
 * quantizes per route: the same bytes as quantizing once and copying); combine against
 * permute_ref's combine (multiply, then add, no FMA, in slot order). Routing comes from kmoe's
 * synthetic gate (moe_synth_scores + the V3 gate), skewed like real traffic. Bandwidths count the
 * bytes read plus written and are reported against the copy kernel's, measured in the same run. */
#include <stdlib.h>
#include <string.h>

#include "cuda/check.h"
#include "cuda/gk.h"
#include "cuda/suite.h"
#include "gate.h"
#include "krand.h"
#include "permute.h"
#include "quant.h"

static double copy_gbps_cached; /* the copy kernel's bandwidth in this process (0: not yet) */

typedef struct copy_arg {
  const void *src; /* device */
  void *dst;       /* device */
  uint64_t bytes;  /* per run */
  int memcpy_api;  /* 1: cudaMemcpyAsync instead of the kernel */
} copy_arg;

static int copy_fn(void *arg, cudaStream_t s) {
  const copy_arg *a = arg;
  if (a->memcpy_api) return (int)cudaMemcpyAsync(a->dst, a->src, a->bytes, cudaMemcpyDeviceToDevice, s);
  return gk_copy(a->src, a->dst, a->bytes, s);
}

/* The copy kernel's GB/s (read + write) over 512 MiB, measured once; rows for it and for
 * cudaMemcpyAsync. 0 in validate-only runs. */
static double copy_yardstick(gs_ctx *c) {
  if (copy_gbps_cached > 0 || c->validate_only) return copy_gbps_cached;
  const uint64_t bytes = 512ull << 20;
  void *src = gs_dalloc(bytes), *dst = gs_dalloc(bytes);
  CUDA_CHECK(cudaMemsetAsync(src, 0x5a, bytes, c->s));
  copy_arg a = {src, dst, bytes, 0};
  CUDA_CHECK(gk_copy(src, dst, bytes, c->s));
  gs_sync(c);
  uint8_t probe[64];
  gs_get(probe, (uint8_t *)dst + bytes - sizeof probe, sizeof probe);
  for (size_t i = 0; i < sizeof probe; i++)
    if (probe[i] != 0x5a) {
      gs_say(c, "  FAILED: the copy kernel did not copy");
      c->failures++;
      gs_free(src), gs_free(dst);
      return 0;
    }
  gs_time t = gs_time_it(c, copy_fn, &a, 1);
  gs_row(c, "cuda", "memcpy", "copy_kernel", "fp32", 1, (int64_t)bytes, 1, 1, c->gpu.sm_count, t, 0, 2.0 * (double)bytes);
  a.memcpy_api = 1;
  gs_time tm = gs_time_it(c, copy_fn, &a, 1);
  gs_row(c, "cuda", "memcpy", "cudaMemcpyAsync", "fp32", 1, (int64_t)bytes, 1, 1, c->gpu.sm_count, tm, 0,
         2.0 * (double)bytes);
  copy_gbps_cached = 2.0 * (double)bytes / (t.median_us * 1e-6) / 1e9;
  gs_say(c, "  copy yardstick: copy kernel %.0f GB/s, cudaMemcpyAsync %.0f GB/s (512 MiB, read + write)",
         copy_gbps_cached, 2.0 * (double)bytes / (tm.median_us * 1e-6) / 1e9);
  gs_free(src), gs_free(dst);
  return copy_gbps_cached;
}

/* BF16 test activations: magnitudes 10^-4 .. 10^4 by row, an all-zero row, tiny values, and
 * +NaN / +-Inf in one row. */
static void test_input(bf16_t *x, int64_t rows, int64_t h, uint64_t seed) {
  krand r = krand_seed(seed);
  for (int64_t i = 0; i < rows; i++) {
    double mag = 1.0;
    for (int e = 0; e < (int)(i % 9); e++) mag *= 10.0;
    mag *= 1e-4;
    for (int64_t j = 0; j < h; j++) {
      double v = (krand_unif(&r) * 2 - 1) * mag;
      if (i % 13 == 3) v = 0;
      if (i % 13 == 6) v *= 1e-30;
      x[i * h + j] = f32_to_bf16((float)v);
    }
    if (i % 13 == 5) {
      x[i * h + 7 % h] = 0x7fc0;  /* +NaN */
      x[i * h + 200 % h] = 0x7f80; /* +Inf */
      x[i * h + 300 % h] = 0xff80; /* -Inf */
    }
  }
}

/* FP8 bytes equal, NaN codes compared without their sign. */
static int same_fp8(uint8_t a, uint8_t b, int e5m2) {
  if (a == b) return 1;
  const int nan_a = e5m2 ? (a & 0x7f) > 0x7c : (a & 0x7f) == 0x7f, nan_b = e5m2 ? (b & 0x7f) > 0x7c : (b & 0x7f) == 0x7f;
  return nan_a && nan_b;
}

static int validate_quant(gs_ctx *c) {
  const int64_t T = 67, H = 1024, nt = H / 128, R = 300;
  const int64_t nx = (T > R ? T : R) * H;
  bf16_t *x = util_xmalloc((size_t)nx * 2);
  uint8_t *q = util_xmalloc((size_t)nx), *gq = util_xmalloc((size_t)nx);
  float *sf = util_xmalloc((size_t)(R * nt) * 4), *gsf = util_xmalloc((size_t)(R * nt) * 4);
  float *deq = util_xmalloc((size_t)nx * 4);
  uint16_t *gy = util_xmalloc((size_t)nx * 2);
  void *dx = gs_dalloc((size_t)nx * 2), *dq = gs_dalloc((size_t)nx), *dsf = gs_dalloc((size_t)(R * nt) * 4);
  void *dy = gs_dalloc((size_t)nx * 2);
  int bad = 0;
  test_input(x, R, H, 11);
  gs_put(dx, x, (size_t)nx * 2);
  for (int fmt = 0; fmt < 2; fmt++)
    for (int pow2 = 0; pow2 < 2; pow2++) {
      const kn_dtype kf = fmt ? KN_FP8_E5M2 : KN_FP8_E4M3;
      int ok = 1;
      quant_ref()->token_bf16(x, T, H, kf, pow2, q, sf);
      for (int mm = 0; mm < 2; mm++) {
        CUDA_CHECK(gk_quant_token(dx, T, H, fmt, pow2, dq, dsf, mm, T, c->s));
        gs_sync(c);
        gs_get(gq, dq, (size_t)(T * H));
        gs_get(gsf, dsf, (size_t)(T * nt) * 4);
        for (int64_t i = 0; i < T * H; i++) ok &= same_fp8(q[i], gq[i], fmt);
        for (int64_t i = 0; i < T; i++)
          for (int64_t j = 0; j < nt; j++) ok &= sf[i * nt + j] == (mm ? gsf[j * T + i] : gsf[i * nt + j]);
      }
      /* dequantization of the reference's output */
      gs_put(dq, q, (size_t)(T * H));
      gs_put(dsf, sf, (size_t)(T * nt) * 4);
      CUDA_CHECK(gk_dequant_token(dq, dsf, T, H, fmt, dy, c->s));
      gs_sync(c);
      gs_get(gy, dy, (size_t)(T * H) * 2);
      quant_ref()->dequant_token(q, sf, T, H, kf, deq);
      for (int64_t i = 0; i < T * H; i++) {
        const bf16_t want = f32_to_bf16(deq[i]);
        ok &= gy[i] == want || (deq[i] != deq[i] && (gy[i] & 0x7fff) > 0x7f80);
      }
      /* 128x128 blocks, rows not a multiple of 128 */
      quant_ref()->block_bf16(x, R, H, kf, pow2, q, sf);
      CUDA_CHECK(gk_quant_block(dx, R, H, fmt, pow2, dq, dsf, c->s));
      gs_sync(c);
      gs_get(gq, dq, (size_t)(R * H));
      gs_get(gsf, dsf, (size_t)(quant_tiles(R) * nt) * 4);
      for (int64_t i = 0; i < R * H; i++) ok &= same_fp8(q[i], gq[i], fmt);
      for (int64_t i = 0; i < quant_tiles(R) * nt; i++) ok &= sf[i] == gsf[i];
      gs_say(c, "  validate quant %s%s: token (both scale layouts), dequant, block %s", fmt ? "e5m2" : "e4m3",
             pow2 ? " pow2" : "", ok ? "ok (bit-identical)" : "FAILED");
      if (!ok) bad++, c->failures++;
    }
  free(x), free(q), free(gq), free(sf), free(gsf), free(deq), free(gy);
  gs_free(dx), gs_free(dq), gs_free(dsf), gs_free(dy);
  return bad == 0;
}

typedef struct q_arg {
  int kind;          /* 0 token, 1 block, 2 dequant */
  const void *x;     /* input */
  void *q, *sf, *y;  /* outputs */
  int64_t rows, h;   /* shape */
  int pow2, mmajor;  /* options */
} q_arg;

static int q_fn(void *arg, cudaStream_t s) {
  const q_arg *a = arg;
  if (a->kind == 0) return gk_quant_token(a->x, a->rows, a->h, GK_E4M3, a->pow2, a->q, a->sf, a->mmajor, a->rows, s);
  if (a->kind == 1) return gk_quant_block(a->x, a->rows, a->h, GK_E4M3, a->pow2, a->q, a->sf, s);
  return gk_dequant_token(a->q, a->sf, a->rows, a->h, GK_E4M3, a->y, s);
}

void gs_family_quant(gs_ctx *c, int full) {
  const int valid = validate_quant(c);
  if (!valid) gs_say(c, "  (quantizers failed validation: not timed)");
  if (c->validate_only || !valid) return;
  const double copy = copy_yardstick(c);
  const int64_t T = full ? 16384 : 4096, H = 7168, N = 7168, K = 2048;
  const int64_t nx = T * H > N * K ? T * H : N * K;
  uint16_t *x = gs_dalloc((size_t)nx * 2), *y = gs_dalloc((size_t)nx * 2);
  uint8_t *q = gs_dalloc((size_t)nx);
  float *sf = gs_dalloc((size_t)(nx / 128) * 4);
  CUDA_CHECK(gk_fill_bf16(x, (uint64_t)nx, 31, c->s));
  gs_sync(c);
  static const struct {
    int kind, pow2, mmajor;
    const char *variant;
  } cases[] = {{0, 0, 1, "1x128_mmajor"}, {0, 1, 0, "1x128_pow2"}, {1, 0, 0, "128x128"}, {2, 0, 0, "dequant_bf16"}};
  gs_say(c, "  %-14s %-16s %10s %9s %9s", "kernel", "variant", "shape", "GB/s", "of copy");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    q_arg a = {cases[i].kind, x, q, sf, y, cases[i].kind == 1 ? N : T, cases[i].kind == 1 ? K : H, cases[i].pow2,
               cases[i].mmajor};
    if (cases[i].kind == 2) CUDA_CHECK(gk_quant_token(x, T, H, GK_E4M3, 0, q, sf, 0, T, c->s));
    gs_time t = gs_time_it(c, q_fn, &a, 1);
    const double elems = (double)a.rows * (double)a.h, scales = elems / 128;
    const double bytes = elems * 3 + scales * 4;
    const char *kernel = cases[i].kind == 1 ? "quant_block" : "quant_token";
    if (cases[i].kind == 1) gs_row(c, "cuda", kernel, cases[i].variant, "fp8_e4m3", 1, a.rows, a.h, 1, c->gpu.sm_count, t, 0, bytes);
    else gs_row(c, "cuda", kernel, cases[i].variant, "fp8_e4m3", a.rows, 1, a.h, 1, c->gpu.sm_count, t, 0, bytes);
    const double gbps = bytes / (t.median_us * 1e-6) / 1e9;
    char shape[32];
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)a.rows, (long long)a.h);
    gs_say(c, "  %-14s %-16s %10s %9.0f %8.0f%%", kernel, cases[i].variant, shape, gbps, copy > 0 ? 100 * gbps / copy : 0);
  }
  gs_free(x), gs_free(y), gs_free(q), gs_free(sf);
}

/* Synthetic V3 routing for T tokens: idx and weights [T x topk] (Zipf-skewed popularity). */
static void synth_routing(int64_t T, uint64_t seed, int64_t t0, int32_t *idx, float *w) {
  moe_gate_cfg g = moe_gate_v3();
  moe_synth syn = {seed, 1.0, 1.0};
  float *scores = util_xmalloc((size_t)(T * g.n_experts) * sizeof *scores);
  moe_synth_scores(&syn, g.n_experts, t0, T, scores);
  moe_gate_select(&g, scores, NULL, T, idx, w);
  free(scores);
}

typedef struct p_arg {
  int kind;              /* 0 layout, 1 dispatch, 2 combine */
  const int32_t *idx;    /* device routing */
  const float *w;        /* device weights */
  int32_t *counts, *offsets, *pos;
  void *scratch;
  const uint8_t *xq;     /* dispatch input */
  const float *xsf;
  uint8_t *yq;           /* dispatch output */
  float *ysf;
  const uint16_t *ye;    /* combine input */
  uint16_t *out;         /* combine output */
  int64_t T, H;
  int topk, E;
} p_arg;

static int p_fn(void *arg, cudaStream_t s) {
  const p_arg *a = arg;
  if (a->kind == 0) return gk_route_layout(a->idx, a->T, a->topk, a->E, a->counts, a->offsets, a->pos, a->scratch, s);
  if (a->kind == 1) return gk_dispatch(a->xq, a->xsf, a->T, a->H, a->topk, a->pos, a->yq, a->ysf, s);
  return gk_combine(a->ye, a->w, a->pos, a->T, a->H, a->topk, a->out, s);
}

/* Device buffers of one permute problem, routed and laid out on the GPU. */
typedef struct p_prob {
  p_arg a;           /* kernel arguments */
  int32_t *h_idx;    /* host routing */
  float *h_w;        /* host weights */
  int64_t R;         /* routes = rows of the expert-ordered buffer */
} p_prob;

static void p_prob_make(gs_ctx *c, p_prob *p, int64_t T, int64_t H, uint64_t seed) {
  memset(p, 0, sizeof *p);
  moe_gate_cfg g = moe_gate_v3();
  p_arg *a = &p->a;
  a->T = T, a->H = H, a->topk = g.topk, a->E = g.n_experts;
  p->R = T * g.topk;
  p->h_idx = util_xmalloc((size_t)p->R * 4);
  p->h_w = util_xmalloc((size_t)p->R * 4);
  synth_routing(T, seed, 0, p->h_idx, p->h_w);
  int32_t *di = gs_dalloc((size_t)p->R * 4);
  float *dw = gs_dalloc((size_t)p->R * 4);
  gs_put(di, p->h_idx, (size_t)p->R * 4);
  gs_put(dw, p->h_w, (size_t)p->R * 4);
  a->idx = di, a->w = dw;
  a->counts = gs_dalloc((size_t)a->E * 4);
  a->offsets = gs_dalloc((size_t)(a->E + 1) * 4);
  a->pos = gs_dalloc((size_t)p->R * 4);
  a->scratch = gs_dalloc(gk_route_scratch_bytes(T, a->topk, a->E));
  uint8_t *xq = gs_dalloc((size_t)(T * H));
  float *xsf = gs_dalloc((size_t)(T * H / 128) * 4);
  a->xq = xq, a->xsf = xsf;
  a->yq = gs_dalloc((size_t)(p->R * H));
  a->ysf = gs_dalloc((size_t)(p->R * H / 128) * 4);
  a->ye = gs_dalloc((size_t)(p->R * H) * 2);
  a->out = gs_dalloc((size_t)(T * H) * 2);
  CUDA_CHECK(gk_route_layout(a->idx, T, a->topk, a->E, a->counts, a->offsets, a->pos, a->scratch, c->s));
  gs_sync(c);
}

static void p_prob_free(p_prob *p) {
  p_arg *a = &p->a;
  gs_free((void *)a->idx), gs_free((void *)a->w), gs_free(a->counts), gs_free(a->offsets), gs_free(a->pos);
  gs_free(a->scratch), gs_free((void *)a->xq), gs_free((void *)a->xsf), gs_free(a->yq), gs_free(a->ysf);
  gs_free((void *)a->ye), gs_free(a->out);
  free(p->h_idx), free(p->h_w);
}

static int validate_permute(gs_ctx *c) {
  const int64_t T = 1000, H = 1024, nt = H / 128;
  p_prob P;
  p_prob_make(c, &P, T, H, 21);
  p_arg *a = &P.a;
  moe_plan plan;
  moe_plan_build(&plan, P.h_idx, T, a->topk, a->E, MOE_LAYOUT_CONTIGUOUS, 1);
  int ok_layout = plan.rows == P.R;
  int32_t *pos = util_xmalloc((size_t)P.R * 4), *cnt = util_xmalloc((size_t)a->E * 4), *off = util_xmalloc((size_t)(a->E + 1) * 4);
  gs_get(pos, a->pos, (size_t)P.R * 4);
  gs_get(cnt, a->counts, (size_t)a->E * 4);
  gs_get(off, a->offsets, (size_t)(a->E + 1) * 4);
  for (int64_t i = 0; i < P.R && ok_layout; i++) ok_layout = pos[i] == plan.pos[i];
  for (int e = 0; e < a->E && ok_layout; e++) ok_layout = cnt[e] == plan.count[e] && off[e] == plan.offset[e];
  ok_layout = ok_layout && off[a->E] == plan.offset[a->E];

  /* dispatch: quantize on the GPU (validated by the quant family), then permute */
  bf16_t *x = util_xmalloc((size_t)(T * H) * 2);
  test_input(x, T, H, 23);
  uint16_t *dx = gs_dalloc((size_t)(T * H) * 2);
  gs_put(dx, x, (size_t)(T * H) * 2);
  CUDA_CHECK(gk_quant_token(dx, T, H, GK_E4M3, 0, (uint8_t *)a->xq, (float *)a->xsf, 0, T, c->s));
  CUDA_CHECK(gk_dispatch(a->xq, a->xsf, T, H, a->topk, a->pos, a->yq, a->ysf, c->s));
  gs_sync(c);
  uint8_t *q = util_xmalloc((size_t)(P.R * H)), *gq = util_xmalloc((size_t)(P.R * H));
  float *s = util_xmalloc((size_t)(P.R * nt) * 4), *gsf = util_xmalloc((size_t)(P.R * nt) * 4);
  permute_ref()->dispatch_fp8(&plan, x, H, KN_FP8_E4M3, 0, 0, T, q, s);
  gs_get(gq, a->yq, (size_t)(P.R * H));
  gs_get(gsf, a->ysf, (size_t)(P.R * nt) * 4);
  int ok_dispatch = 1;
  for (int64_t i = 0; i < P.R * H; i++) ok_dispatch &= same_fp8(q[i], gq[i], 0);
  for (int64_t i = 0; i < P.R * nt; i++) ok_dispatch &= s[i] == gsf[i];

  /* combine: random expert outputs */
  bf16_t *y = util_xmalloc((size_t)(P.R * H) * 2), *o = util_xmalloc((size_t)(T * H) * 2);
  uint16_t *go = util_xmalloc((size_t)(T * H) * 2);
  krand r = krand_seed(29);
  for (int64_t i = 0; i < P.R * H; i++) y[i] = f32_to_bf16((float)(krand_unif(&r) * 4 - 2));
  gs_put((void *)a->ye, y, (size_t)(P.R * H) * 2);
  CUDA_CHECK(gk_combine(a->ye, a->w, a->pos, T, H, a->topk, a->out, c->s));
  gs_sync(c);
  gs_get(go, a->out, (size_t)(T * H) * 2);
  permute_ref()->combine(&plan, y, P.h_w, H, NULL, 0, T, o);
  int ok_combine = 1;
  for (int64_t i = 0; i < T * H; i++) ok_combine &= go[i] == o[i];

  gs_say(c, "  validate route layout (stable, %lld routes, 256 experts): %s", (long long)P.R, ok_layout ? "ok (identical)" : "FAILED");
  gs_say(c, "  validate dispatch fp8 rows + 1x128 scales: %s", ok_dispatch ? "ok (bit-identical)" : "FAILED");
  gs_say(c, "  validate combine bf16 (fp32 sum, no FMA): %s", ok_combine ? "ok (bit-identical)" : "FAILED");
  const int bad = !ok_layout + !ok_dispatch + !ok_combine;
  c->failures += bad;
  moe_plan_free(&plan);
  free(pos), free(cnt), free(off), free(x), free(q), free(gq), free(s), free(gsf), free(y), free(o), free(go);
  gs_free(dx);
  p_prob_free(&P);
  return bad == 0;
}

void gs_family_permute(gs_ctx *c, int full) {
  const int valid = validate_permute(c);
  if (!valid) gs_say(c, "  (permutation kernels failed validation: not timed)");
  if (c->validate_only || !valid) return;
  const double copy = copy_yardstick(c);
  const int64_t T = 4096, H = 7168;
  (void)full;
  p_prob P;
  p_prob_make(c, &P, T, H, 41);
  p_arg *a = &P.a;
  CUDA_CHECK(gk_fill_fp8((uint8_t *)a->xq, (uint64_t)(T * H), 43, c->s));
  CUDA_CHECK(gk_fill_scale((float *)a->xsf, (uint64_t)(T * H / 128), 44, c->s));
  CUDA_CHECK(gk_fill_bf16((uint16_t *)a->ye, (uint64_t)(P.R * H), 45, c->s));
  gs_sync(c);
  const double row_fp8 = (double)H + 4.0 * (double)H / 128;
  const struct {
    int kind;
    const char *kernel, *variant, *dtype;
    double bytes;
  } cases[] = {
      {0, "dispatch", "route_layout", "fp32", 4.0 * (double)P.R * 3},
      {1, "dispatch", "fp8_rows", "fp8_e4m3", row_fp8 * (double)(T + P.R)},
      {2, "combine", "bf16_fp32acc", "bf16", 2.0 * (double)H * (double)(P.R + T) + 8.0 * (double)P.R},
  };
  gs_say(c, "  T %lld tokens, hidden %lld, top-%d of %d experts (synthetic V3 gate, Zipf 1.0 popularity)", (long long)T,
         (long long)H, a->topk, a->E);
  gs_say(c, "  %-10s %-14s %10s %9s %9s", "kernel", "variant", "time us", "GB/s", "of copy");
  for (int i = 0; i < 3; i++) {
    a->kind = cases[i].kind;
    gs_time t = gs_time_it(c, p_fn, a, 1);
    gs_row(c, "cuda", cases[i].kernel, cases[i].variant, cases[i].dtype, T, P.R, H, a->E, c->gpu.sm_count, t, 0,
           cases[i].bytes);
    const double gbps = cases[i].bytes / (t.median_us * 1e-6) / 1e9;
    gs_say(c, "  %-10s %-14s %10.1f %9.0f %8.0f%%", cases[i].kernel, cases[i].variant, t.median_us, gbps,
           copy > 0 ? 100 * gbps / copy : 0);
  }
  gs_say(c, "  (target: dispatch and combine at >= 70%% of the copy kernel's bandwidth; route_layout is the index "
            "computation alone)");
  p_prob_free(&P);
}

void gs_family_nccl(gs_ctx *c, int full) {
  (void)full;
  if (c->ndev < 2) {
    gs_say(c, "  alltoall: skipped (%d GPU visible; NCCL all-to-all needs 2 or more)", c->ndev);
    c->skipped++;
    return;
  }
  if (c->validate_only) return;
  const int n = c->ndev;
  const int64_t T = 4096, H = 7168;
  moe_gate_cfg g = moe_gate_v3();
  const int per = g.n_experts / n > 0 ? g.n_experts / n : 1;
  uint64_t *bytes = util_xcalloc((size_t)(n * n), sizeof *bytes);
  int32_t *idx = util_xmalloc((size_t)(T * g.topk) * 4);
  float *w = util_xmalloc((size_t)(T * g.topk) * 4);
  const double row = (double)H + 4.0 * (double)H / 128;
  uint64_t most = 0, total = 0;
  for (int r = 0; r < n; r++) {
    synth_routing(T, 51, (int64_t)r * T, idx, w);
    for (int64_t t = 0; t < T; t++) {
      uint64_t seen = 0;
      for (int k = 0; k < g.topk; k++) {
        int p = idx[t * g.topk + k] / per;
        if (p >= n) p = n - 1;
        if (!(seen >> p & 1)) bytes[r * n + p] += (uint64_t)row, seen |= 1ull << p;
      }
    }
  }
  for (int i = 0; i < n * n; i++) total += bytes[i], most = bytes[i] > most ? bytes[i] : most;
  char why[256];
  double med, mn;
  for (int mode = 0; mode < 2; mode++) {
    uint64_t *b = bytes, *eq = NULL;
    if (mode == 1) {
      eq = util_xmalloc((size_t)(n * n) * sizeof *eq);
      for (int i = 0; i < n * n; i++) eq[i] = most;
      b = eq;
    }
    if (gk_nccl_a2a_time(n, b, mode, c->reps, &med, &mn, why, sizeof why)) {
      gs_say(c, "  alltoall %s: skipped: %s", mode ? "ncclAlltoAll" : "send/recv", why);
      c->skipped++;
    } else {
      gs_time t = {med, mn, c->reps};
      const double per_rank = (double)(mode ? most * (uint64_t)n : total) / n;
      gs_row(c, "nccl", "alltoall", mode ? "alltoall_equal" : "sendrecv_routed", "fp8_e4m3", T, n, H, g.n_experts, n, t,
             0, per_rank);
      gs_say(c, "  alltoall %-16s %d GPUs: %.1f us, %.1f GB/s per GPU (bytes sent per GPU / time)",
             mode ? "ncclAlltoAll" : "send/recv routed", n, med, per_rank / (med * 1e-6) / 1e9);
    }
    free(eq);
  }
  free(bytes), free(idx), free(w);
}
