/* kernels/gemm.h — the GEMMs of the MoE kernel suite: BF16, DeepSeek-style FP8 block-scaled,
 * grouped (experts) in contiguous and masked layouts, with an optional fused SwiGLU epilogue.
 *
 * Conventions (those of linear layers): C[M x N] = A[M x K] * W[N x K]^T.
 * - A (activations) is row-major M x K, BF16, or FP8 (E4M3/E5M2) with one FP32 scale per row and
 *   128-wide K block (DeepSeek's 1x128 tiles): scale matrix M x ceil(K/128).
 * - W (weights) is N x K row-major as a linear layer stores it, BF16, or FP8 with one FP32 scale per
 *   128x128 block: scale matrix ceil(N/128) x ceil(K/128). Weights are packed once (gemm_pack) and
 *   the packed object is used by many calls; FP8 weights stay FP8 in the packed object.
 * - The true value is C[m][n] = sum_kb sa[m][kb] * sw[n/128][kb] * sum_{k in kb} a[m][k] * w[n][k]
 *   (sa = sw = 1 for BF16). Fast paths accumulate in FP32: FP8 partial sums over the promotion
 *   interval N_C (promo_k, dividing 128) are scaled and added into the FP32 accumulator.
 * - C is FP32 or BF16 (round to nearest even), row-major with its own leading dimension.
 * - Any M >= 0, N >= 1, K >= 1 (no multiples required). NaN and Inf in the inputs propagate as IEEE
 *   arithmetic propagates them (a NaN anywhere in a dot product gives NaN; Inf*0 gives NaN); the
 *   fast paths do not flush subnormal BF16 inputs except where vdpbf16ps itself does (it treats
 *   BF16 subnormal inputs as zero and rounds to nearest even) — tests use normal inputs for
 *   that path, and bound the rest by the per-dtype tolerances stated in tests/test_gemm.c.
 *
 * kernels/ref/gemm_ref.c holds the plain-C truth (double accumulation, unpacked weights) and the
 * emulated limited-precision accumulator; kernels/gemm.c the portable loop nest, packing and the
 * variant registry; kernels/cpu/gemm_*.c the per-ISA micro-kernels. */
#ifndef MOESIM_GEMM_H
#define MOESIM_GEMM_H

#include <stdint.h>
#include <stdio.h>

#include "cpu_isa.h"
#include "dtype.h"
#include "pool.h"

#define GEMM_BLOCK 128 /* edge of the FP8 scale blocks (1x128 activations, 128x128 weights) */

/* A matrix operand as it lies in memory (activations, or weights before packing). */
typedef struct gemm_mat {
  kn_dtype dtype;     /* KN_BF16, KN_FP8_E4M3 or KN_FP8_E5M2 */
  const void *data;   /* row-major: element (r, c) at ((T *)data)[r * ld + c] */
  int64_t ld;         /* elements between consecutive rows (>= columns) */
  const float *scale; /* FP8 only (NULL for BF16): activations M x ceil(K/128), one per row and
                         128-wide K block; weights ceil(N/128) x ceil(K/128), one per 128x128 block */
  int64_t ld_scale;   /* floats between consecutive rows of scale (>= ceil(K/128)) */
} gemm_mat;

/* The output matrix. */
typedef struct gemm_out {
  kn_dtype dtype; /* KN_FP32 or KN_BF16 */
  void *data;     /* row-major M x N (M x N/2 with the SwiGLU epilogue) */
  int64_t ld;     /* elements between consecutive rows */
} gemm_out;

/* What happens to the FP32 accumulator before it is stored. */
typedef enum gemm_epi {
  GEMM_EPI_NONE = 0, /* C = A W^T */
  GEMM_EPI_SWIGLU,   /* W has 2I rows, gate rows [0, I) then up rows [I, 2I) (w1 and w3 stacked);
                        C[m][i] = silu(g) * u with g = (A W^T)[m][i], u = (A W^T)[m][I + i],
                        silu(x) = x / (1 + exp(-x)); C is M x I. N must be even. */
} gemm_epi;

/* A micro-kernel family: one ISA and one register tile. */
typedef struct gemm_variant {
  const char *name;       /* e.g. "avx512bf16_14x32": ISA, rows x columns of the register tile */
  cpu_level isa;          /* ISA level it needs (cpu_isa_best() must be at least this) */
  int mr;                 /* rows of C per micro-tile */
  int nr;                 /* columns of C per micro-tile (a multiple of 16) */
  int (*supported)(void); /* 1 when this CPU runs it (CPUID, honouring MOESIM_ISA), else 0 */
  const void *impl;       /* internal: the micro-kernel table (kernels/gemm.c) */
} gemm_variant;

/* Options of a GEMM call; a NULL pointer means all defaults (zero-initialise to extend). */
typedef struct gemm_opts {
  const gemm_variant *variant; /* NULL: gemm_variant_best() for this dtype and M */
  int promo_k;                 /* FP8 promotion interval N_C: an even divisor of 128; 0 means 128 */
  gemm_epi epi;                /* epilogue */
} gemm_opts;

/* Packed weights (opaque): strips of 16 output columns with K pairs interleaved, as vdpbf16ps
 * reads them; FP8 keeps FP8 bytes and its block scales. One layout serves every variant. */
typedef struct gemm_packed gemm_packed;

/* Packs W (N x K, w->dtype BF16 or FP8 with scales) for the fast paths. Returns NULL with a message
 * on stderr if the description is invalid (bad dtype, ld < k, FP8 without scales). */
gemm_packed *gemm_pack(const gemm_mat *w, int64_t n, int64_t k);
void gemm_packed_free(gemm_packed *p); /* NULL is a no-op */
int64_t gemm_packed_n(const gemm_packed *p);          /* N (rows of W) */
int64_t gemm_packed_k(const gemm_packed *p);          /* K */
kn_dtype gemm_packed_dtype(const gemm_packed *p);     /* W's dtype */
uint64_t gemm_packed_bytes(const gemm_packed *p);     /* bytes of the packed weights and scales */

/* C = epi(A W^T) for M rows. A's dtype must be BF16 with BF16 weights, FP8 (either format) with FP8
 * weights. Threads from `tp` (NULL: the caller alone). Returns 0, or -1 with a message on stderr
 * when the arguments are inconsistent (dtypes, missing scales, bad promo_k, unsupported variant). */
int gemm_run(pool *tp, int64_t m, const gemm_mat *a, const gemm_packed *w, const gemm_out *c,
             const gemm_opts *opts);

/* Grouped GEMM, contiguous layout: group g owns rows [off_g, off_g + rows[g]) of A and C, where
 * off_g = rows[0] + ... + rows[g-1] (its tokens concatenated in expert order), multiplied by w[g].
 * rows[g] may be 0 (an empty expert). All w[g] share dtype, N and K. Returns 0 or -1 as gemm_run. */
int gemm_grouped_contig(pool *tp, int groups, const int64_t *rows, const gemm_mat *a,
                        gemm_packed *const *w, const gemm_out *c, const gemm_opts *opts);

/* Grouped GEMM, masked layout: group g owns `slots` rows starting at row g * slots of A and C
 * (fixed buffers, as CUDA-graph decoding uses), of which the first valid[g] (0 <= valid[g] <=
 * slots) are computed; the other rows of C are left untouched. Returns 0 or -1 as gemm_run. */
int gemm_grouped_masked(pool *tp, int groups, int64_t slots, const int64_t *valid,
                        const gemm_mat *a, gemm_packed *const *w, const gemm_out *c,
                        const gemm_opts *opts);

/* The registry: every variant compiled in, in a fixed order (supported or not here). */
int gemm_variant_count(void);
const gemm_variant *gemm_variant_at(int i);
const gemm_variant *gemm_variant_by_name(const char *name); /* NULL if unknown */
/* The fastest supported variant here for weights of `wtype` and about `m` rows: chosen among the
 * variants of the highest usable ISA level (so the choice never changes results' rounding
 * between runs) by timing each once on a probe shape; cached per (dtype class, M class). */
const gemm_variant *gemm_variant_best(kn_dtype wtype, int64_t m);

/* ---- plain-C reference (kernels/ref/gemm_ref.c): the truth the fast paths are tested against ---- */

/* C = epi(A W^T) computed in double from unpacked operands (a, w as gemm_mat; FP8 decoded exactly,
 * scales applied per 128 block), rounded once to C's dtype. Returns 0 or -1 as gemm_run. */
int gemm_ref(int64_t m, int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w,
             const gemm_out *c, gemm_epi epi);
/* Grouped references, same layouts as the fast paths; w[g] are unpacked weights. */
int gemm_ref_grouped_contig(int groups, const int64_t *rows, int64_t n, int64_t k,
                            const gemm_mat *a, const gemm_mat *w, const gemm_out *c, gemm_epi epi);
int gemm_ref_grouped_masked(int groups, int64_t slots, const int64_t *valid, int64_t n, int64_t k,
                            const gemm_mat *a, const gemm_mat *w, const gemm_out *c, gemm_epi epi);

/* ---- emulated limited-precision accumulator (kernels/accum.c) ---- */

/* How a tensor core's FP8 accumulator is emulated. */
typedef struct gemm_accum_cfg {
  int mant_bits; /* B: explicit mantissa bits the running sum keeps (23 = FP32); each addition is
                    exact, then truncated toward zero to B bits (H800 keeps about 13-14) */
  int promo_k;   /* N_C: after every N_C products of a 128-wide K block the limited partial sum is
                    scaled and added into an FP32 accumulator, and restarts from 0 (a divisor of
                    128); 0 = no promotion: the whole K runs in the limited accumulator, which then
                    requires the scales of each row of A and each row block of W to be equal
                    across K blocks (per-row / per-tensor scaling) */
} gemm_accum_cfg;

/* FP8 GEMM (a, w FP8 with scales, unpacked) with the emulated accumulator; C is FP32 M x N.
 * Returns 0, or -1 with a message on stderr for invalid arguments (including promo_k = 0 with
 * scales that vary along K). */
int gemm_ref_fp8_accum(int64_t m, int64_t n, int64_t k, const gemm_mat *a, const gemm_mat *w,
                       const gemm_accum_cfg *cfg, float *c, int64_t ldc);

/* The accumulation study (`moesim kernels --accum-study`): for K = 128, 256, ..., 16384 prints the
 * maximum relative error of the emulated FP8 GEMM against the exact product of the same FP8
 * inputs, without promotion and with promotion every N_C = promo_k (0: 128), for the input
 * distribution it states in its header (uniform(0,1) quantized to E4M3, 32x32 outputs), with
 * B = mant_bits (0: 14, the paper's "about 14 bits"), inputs drawn from `seed`. Writes a CSV table
 * with '#' comment lines to `out`; returns 0, or -1 on a write error or invalid argument. */
int gemm_accum_study(FILE *out, int mant_bits, int promo_k, uint64_t seed);

#endif
