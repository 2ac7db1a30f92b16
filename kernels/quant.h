/* kernels/quant.h — FP8 quantization with max-abs scaling, DeepSeek-V3's fine-grained recipe.
 *
 * quant_token: activations [M x K], one FP32 scale per 1x128 tile (per token per 128 channels).
 * quant_block: weights [N x K], one FP32 scale per 128x128 block.
 * For every tile (or block) with amax = max |x| over its finite elements:
 *     scale = max(amax, QUANT_AMAX_FLOOR) / fp8_max(fmt)        (fp8_max: 448 E4M3, 57344 E5M2)
 *     scale = 2^ceil(log2(scale))                                 only with pow2 (UE8M0 scales,
 *                                                                 DeepSeek's dispatch format)
 *     q     = fp8(x * (1 / scale))                                round to nearest even, saturating
 * and dequantization is x' = float(q) * scale. These are exactly the float operations DeepGEMM's
 * per_token_cast_to_fp8 / per_block_cast_to_fp8 perform, in the same order, so every backend is
 * bit-identical to the reference (the tests compare bits, not tolerances).
 *
 * Non-finite inputs (stated behaviour): NaN and +-Inf are ignored when the tile's amax is taken, so
 * one bad value does not wipe out its 127 neighbours; a NaN encodes as NaN, +-Inf as +-448 in E4M3
 * (which has no infinities) and as +-Inf in E5M2 — the conversions of kernels/dtype.h. A tile whose
 * finite values are all zero (or smaller than the floor) gets the floor's scale.
 *
 * Layouts: row-major, rows of K elements (no padding). Token scales are [M x ceil(K/128)] row-major;
 * block scales are [ceil(N/128) x ceil(K/128)] row-major. K (and N) need not be multiples of 128:
 * the last tile is partial. The kernels are single-threaded and stateless; callers split work by
 * rows (token) or by 128-row block rows (block) — offsetting x, q and the scales is all it takes.
 *
 * Backends: a table of function pointers per backend (ref, avx2, avx512), chosen at run time by
 * CPUID (cpu_isa_best, which honours MOESIM_ISA); quant_best() is what production code calls. */
#ifndef MOESIM_QUANT_H
#define MOESIM_QUANT_H

#include <stdint.h>

#include "cpu_isa.h"
#include "dtype.h"
#include "pool.h"

#define QUANT_TILE 128          /* elements per scale along K (and rows per block for weights) */
#define QUANT_AMAX_FLOOR 1e-4f  /* smallest amax a scale is computed from (DeepGEMM's clamp) */

/* Scales per row of K elements: ceil(K / 128). */
static inline int64_t quant_tiles(int64_t k) { return (k + QUANT_TILE - 1) / QUANT_TILE; }

/* The scale of a tile whose finite max-abs is amax (the formula above; the truth every backend
 * reproduces). Inline so that vector loops can call it without a function call, around which
 * every vector register would be spilled. */
static inline float quant_scale_of(float amax, kn_dtype fmt, int pow2) {
  float a = amax > QUANT_AMAX_FLOOR ? amax : QUANT_AMAX_FLOOR;
  float s = a / fp8_max(fmt);
  if (pow2) {
    /* Round up to a power of two: keep the exponent, bump it when any mantissa bit is set. s is
     * a normal float here (>= 1e-4 / 57344), so the bit trick is exact. */
    uint32_t u = kn_f32_bits(s);
    if (u & 0x7fffffu) u = (u & 0xff800000u) + 0x800000u;
    s = kn_bits_f32(u);
  }
  return s;
}

/* One backend's quantizers. `fmt` is KN_FP8_E4M3 or KN_FP8_E5M2; `pow2` selects power-of-two
 * scales. All functions accept M = 0 or K = 0 (nothing is written). */
typedef struct quant_kernels {
  const char *backend; /* "ref", "avx2", "avx512" */
  /* x [M x K] -> q [M x K], scales [M x ceil(K/128)] */
  void (*token_f32)(const float *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                    float *scales);
  void (*token_bf16)(const bf16_t *x, int64_t m, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                     float *scales);
  /* w [N x K] -> q [N x K], scales [ceil(N/128) x ceil(K/128)] */
  void (*block_f32)(const float *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                    float *scales);
  void (*block_bf16)(const bf16_t *w, int64_t n, int64_t k, kn_dtype fmt, int pow2, fp8_t *q,
                     float *scales);
  /* q [M x K] with token scales -> out [M x K] FP32 */
  void (*dequant_token)(const fp8_t *q, const float *scales, int64_t m, int64_t k, kn_dtype fmt,
                        float *out);
  /* q [N x K] with block scales -> out [N x K] FP32 */
  void (*dequant_block)(const fp8_t *q, const float *scales, int64_t n, int64_t k, kn_dtype fmt,
                        float *out);
} quant_kernels;

/* The plain-C reference (always present). */
const quant_kernels *quant_ref(void);
/* The backend for an ISA level, or NULL when this CPU (or MOESIM_ISA) does not allow it or no
 * backend exists at that level (CPU_AVX512BF16 maps to the AVX-512 quantizers). */
const quant_kernels *quant_backend(cpu_level level);
/* The fastest backend this CPU runs. */
const quant_kernels *quant_best(void);

/* Threaded entry points: the same kernels with rows (token) or 128-row block rows (block) split
 * across the threads of `tp` (NULL: the caller alone); `qk` NULL means quant_best(). x is FP32 when
 * in_type is KN_FP32, BF16 when KN_BF16. Results are identical to a single-threaded call. */
void quant_token_run(pool *tp, const quant_kernels *qk, kn_dtype in_type, const void *x, int64_t m,
                     int64_t k, kn_dtype fmt, int pow2, fp8_t *q, float *scales);
void quant_block_run(pool *tp, const quant_kernels *qk, kn_dtype in_type, const void *w, int64_t n,
                     int64_t k, kn_dtype fmt, int pow2, fp8_t *q, float *scales);

/* Backend tables defined in kernels/cpu (called only after a CPUID check). */
extern const quant_kernels quant_avx2_kernels;
extern const quant_kernels quant_avx512_kernels;

#endif
