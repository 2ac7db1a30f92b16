/* kernels/ref/permute_ref.c — the route plan and the plain-C dispatch, combine and SwiGLU
 * (contracts in kernels/permute.h). The plan is a stable counting sort of the routes by expert;
 * the kernels are straight loops in the order the header states, the truth for every backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "permute.h"
#include "quant.h"
#include "util.h"

void moe_plan_build(moe_plan *p, const int32_t *idx, int64_t T, int topk, int n_experts,
                    moe_layout layout, int64_t align_or_slots) {
  memset(p, 0, sizeof *p);
  p->layout = layout;
  p->n_experts = n_experts;
  p->topk = topk;
  p->tokens = T;
  p->align = align_or_slots;
  int E = n_experts;
  int64_t R = T * topk;
  p->count = util_xcalloc((size_t)E, sizeof *p->count);
  p->offset = util_xcalloc((size_t)E + 1, sizeof *p->offset);
  p->pos = util_xmalloc((size_t)(R ? R : 1) * sizeof *p->pos);
  int64_t *want = util_xcalloc((size_t)E, sizeof *want);
  for (int64_t r = 0; r < R; r++)
    if (idx[r] >= 0 && idx[r] < E) want[idx[r]]++;
  for (int e = 0; e < E; e++) {
    int64_t seg;
    if (layout == MOE_LAYOUT_MASKED) {
      p->count[e] = want[e] < align_or_slots ? want[e] : align_or_slots;
      p->dropped += want[e] - p->count[e];
      seg = align_or_slots;
    } else {
      int64_t a = align_or_slots < 1 ? 1 : align_or_slots;
      p->count[e] = want[e];
      seg = (want[e] + a - 1) / a * a;
    }
    p->offset[e + 1] = p->offset[e] + seg;
  }
  p->rows = p->offset[E];
  p->row_src = util_xmalloc((size_t)(p->rows ? p->rows : 1) * sizeof *p->row_src);
  for (int64_t i = 0; i < p->rows; i++) p->row_src[i] = -1;
  memset(want, 0, (size_t)E * sizeof *want); /* now: rows placed so far */
  for (int64_t r = 0; r < R; r++) {
    int32_t e = idx[r];
    p->pos[r] = -1;
    if (e < 0 || e >= E || want[e] >= p->count[e]) continue;
    int64_t row = p->offset[e] + want[e]++;
    p->pos[r] = row;
    p->row_src[row] = r;
  }
  free(want);
}

void moe_plan_free(moe_plan *p) {
  free(p->count), free(p->offset), free(p->pos), free(p->row_src);
  memset(p, 0, sizeof *p);
}

void moe_dispatch_pad(const moe_plan *p, void *data, uint64_t row_bytes) {
  if (p->layout != MOE_LAYOUT_CONTIGUOUS) return;
  for (int e = 0; e < p->n_experts; e++)
    for (int64_t row = p->offset[e] + p->count[e]; row < p->offset[e + 1]; row++)
      memset((char *)data + (uint64_t)row * row_bytes, 0, row_bytes);
}

static void dispatch_fp8(const moe_plan *p, const bf16_t *x, int64_t H, kn_dtype fmt, int pow2,
                         int64_t t0, int64_t t1, fp8_t *xq, float *scales) {
  int64_t nt = quant_tiles(H);
  const quant_kernels *qk = quant_ref();
  for (int64_t t = t0; t < t1; t++)
    for (int k = 0; k < p->topk; k++) {
      int64_t row = p->pos[t * p->topk + k];
      if (row >= 0) qk->token_bf16(x + t * H, 1, H, fmt, pow2, xq + row * H, scales + row * nt);
    }
  if (t0 == 0) {
    moe_dispatch_pad(p, xq, (uint64_t)H);
    moe_dispatch_pad(p, scales, (uint64_t)nt * sizeof(float));
  }
}

static void dispatch_bf16(const moe_plan *p, const bf16_t *x, int64_t H, int64_t t0, int64_t t1,
                          bf16_t *xp) {
  for (int64_t t = t0; t < t1; t++)
    for (int k = 0; k < p->topk; k++) {
      int64_t row = p->pos[t * p->topk + k];
      if (row >= 0)
        for (int64_t h = 0; h < H; h++) xp[row * H + h] = x[t * H + h];
    }
  if (t0 == 0) moe_dispatch_pad(p, xp, (uint64_t)H * sizeof(bf16_t));
}

static void combine(const moe_plan *p, const bf16_t *y, const float *weights, int64_t H,
                    const bf16_t *add, int64_t t0, int64_t t1, bf16_t *out) {
  int K = p->topk;
  for (int64_t t = t0; t < t1; t++)
    for (int64_t h = 0; h < H; h++) {
      float acc = add ? bf16_to_f32(add[t * H + h]) : 0.0f;
      for (int k = 0; k < K; k++) {
        int64_t row = p->pos[t * K + k];
        if (row < 0) continue;
        float prod = weights[t * K + k] * bf16_to_f32(y[row * H + h]);
        acc = acc + prod;
      }
      out[t * H + h] = f32_to_bf16(acc);
    }
}

static inline float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

static void swiglu(const bf16_t *gu, int64_t rows, int64_t I, bf16_t *out) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < I; i++)
      out[r * I + i] = f32_to_bf16(silu_mul(bf16_to_f32(gu[r * 2 * I + i]), bf16_to_f32(gu[r * 2 * I + I + i])));
}

static void swiglu_fp8(const bf16_t *gu, int64_t rows, int64_t I, kn_dtype fmt, int pow2, fp8_t *q,
                       float *scales) {
  float *h = util_xmalloc((size_t)(I ? I : 1) * sizeof *h);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t i = 0; i < I; i++)
      h[i] = silu_mul(bf16_to_f32(gu[r * 2 * I + i]), bf16_to_f32(gu[r * 2 * I + I + i]));
    quant_ref()->token_f32(h, 1, I, fmt, pow2, q + r * I, scales + r * quant_tiles(I));
  }
  free(h);
}

static const permute_kernels permute_ref_kernels = {
    "ref", dispatch_fp8, dispatch_bf16, combine, swiglu, swiglu_fp8,
};

const permute_kernels *permute_ref(void) { return &permute_ref_kernels; }

const permute_kernels *permute_backend(cpu_level level) {
  if (level > cpu_isa_best()) return NULL;
  if (level == CPU_SCALAR) return &permute_ref_kernels;
  if (level >= CPU_AVX512) return &permute_avx512_kernels;
  return NULL;
}

const permute_kernels *permute_best(void) {
  const permute_kernels *k = permute_backend(cpu_isa_best());
  return k ? k : &permute_ref_kernels;
}
