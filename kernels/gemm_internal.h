/* kernels/gemm_internal.h — what the GEMM's pieces share and nobody else needs: the packed weight
 * layout, the micro-kernel interface every ISA implements, and argument-checking helpers.
 *
 * Packed weights: N is cut into strips of 16 output columns, and strips into groups of 4 (64
 * columns; missing strips and columns are zero); K is rounded up to a multiple of 4 (zero-padded).
 * For each K pair p, strip s holds the 16 words
 *   (w[16s + j][2p], w[16s + j][2p + 1]) for j = 0..15
 * i.e. 64 bytes, exactly the second operand of vdpbf16ps, and the 4 strips of a group lie side by
 * side: BF16 word e of (strip s, pair p) is at ((s / 4) * kp + p) * 128 + (s % 4) * 32 + e, so a
 * 64-column panel is one contiguous stream over K (GEMM_PS = 128 words between pairs).
 * FP8 strips hold the same values as bytes in a shuffled order: for each K quad q (pairs 2q and
 * 2q+1) 64 bytes where byte 16*L + h*8 + i (lane L = 0..3, half h = 0..1, i = 0..7) is element
 * 8*L + i of pair 2q + h in the BF16 word order above (this lets an AVX-512 decoder turn one
 * 64-byte load into the two BF16 pair vectors with two in-lane byte interleaves); byte x of (strip
 * s, quad q) is at ((s / 4) * (kp / 2) + q) * 256 + (s % 4) * 64 + x. FP8 scales are kept per strip
 * and 128-wide K block. Register tiles are 1, 2 or 4 strips wide and start at a multiple of their
 * width, so a tile never straddles two groups.
 *
 * Packed activations (per call): micro-panels of MR rows; for each K pair p, MR 32-bit words holding
 * the BF16 pair (a[i][2p], a[i][2p + 1]) (FP8 activations are decoded exactly into BF16). */
#ifndef MOESIM_GEMM_INTERNAL_H
#define MOESIM_GEMM_INTERNAL_H

#include <stdint.h>

#include "gemm.h"

#define GEMM_STRIP 16 /* output columns per packed strip (one zmm of FP32) */
#define GEMM_MR_MAX 16 /* largest register-tile height of any variant */
#define GEMM_NV_MAX 4  /* largest register-tile width of any variant, in strips */
#define GEMM_GROUP 4   /* strips per packed group (nv of every variant divides it) */
#define GEMM_PS (32 * GEMM_GROUP) /* BF16 words between consecutive K pairs of a strip */

struct gemm_packed {
  kn_dtype dtype;     /* KN_BF16, KN_FP8_E4M3, KN_FP8_E5M2 */
  int64_t n, k;       /* logical shape of W */
  int64_t strips;     /* ceil(n / 16) rounded up to a multiple of GEMM_GROUP */
  int64_t kp;         /* K pairs in the packed layout: round_up(k, 4) / 2 */
  int64_t kblocks;    /* ceil(k / 128): scale blocks along K */
  void *data;         /* strips * kp * 32 elements (bf16_t or fp8_t), 64-byte aligned, layout above */
  float *scale;       /* FP8: strips x kblocks scales (the 128x128 block's scale of each strip) */
  uint64_t bytes;     /* bytes of data + scale */
};

/* One micro-kernel call: C tile (mr rows x nv strips) from kp K pairs.
 * a: packed activation micro-panel, pair p of row i at a[p * a_stride + i].
 * b: strip 0 of the tile, pair p at b + p * GEMM_PS (bf16 elements); strip v at b + v * b_stride.
 * ws: FP32 tile, row i strip v at ws[i * ldws + 16 * v .. + 15].
 * scale_row (mr floats) and scale_strip (nv floats): when non-NULL the tile's sum is multiplied by
 * scale_row[i] * scale_strip[v] before it reaches ws (FP8 promotion); when NULL it is not.
 * flags: GEMM_UKR_FIRST: ws = result, else ws += result; GEMM_UKR_PF: the weights are cold (the first
 * row tile of a block): prefetch them ahead as they stream (kernels may ignore it). */
#define GEMM_UKR_FIRST 1
#define GEMM_UKR_PF 2
/* GEMM_UKR_ROWMAJOR (only for variants with rowmajor_a): a is not a packed micro-panel but BF16
 * activation rows read in place, row i at a + i * a_stride words, pair p at word p of its row. */
#define GEMM_UKR_ROWMAJOR 4
typedef void (*gemm_ukr_fn)(int64_t kp, const uint32_t *a, int64_t a_stride, const bf16_t *b,
                            int64_t b_stride, float *ws, int64_t ldws, const float *scale_row,
                            const float *scale_strip, int flags);

/* A BF16 micro-kernel that finishes the tile: like gemm_ukr_fn without scales (flags FIRST, PF and
 * ROWMAJOR as there), but the result (the sum, plus ws unless GEMM_UKR_FIRST) goes straight to the
 * output rows c (ldc elements apart; FP32, or BF16 rounded exactly as gemm_store_fn rounds it with
 * GEMM_UKR_CBF16), all nv strips of the tile, instead of back to ws. This saves the epilogue's pass
 * over the tile buffer, and the output's cache misses overlap the next tile's arithmetic. */
#define GEMM_UKR_CBF16 8
typedef void (*gemm_ukr_out_fn)(int64_t kp, const uint32_t *a, int64_t a_stride, const bf16_t *b, int64_t b_stride,
                                const float *ws, int64_t ldws, void *c, int64_t ldc, int flags);

/* FP8 -> BF16 tables of one format (exact: every FP8 value is a BF16 value). */
typedef struct gemm_fp8_lut {
  bf16_t bf16[256]; /* BF16 code of each FP8 byte */
  uint8_t hi[128];  /* high byte of the BF16 code of each magnitude (sign bit clear) */
  uint8_t lo[128];  /* low byte of the same */
} gemm_fp8_lut;

/* Decodes `quads` K quads of one packed FP8 strip (64 bytes each, the shuffled order above, 4 * 64
 * bytes apart) into BF16 pairs GEMM_PS words apart from dst (the packed BF16 layout). */
typedef void (*gemm_decode_fn)(int64_t quads, const fp8_t *src, bf16_t *dst, const gemm_fp8_lut *lut);

/* Fused FP8 micro-kernel for short M: like gemm_ukr_fn, but b points at packed FP8 strips (quads of
 * 64 bytes 4 * 64 bytes apart, b_stride bytes between strips; kp even) decoded in registers. */
typedef void (*gemm_ukr8_fn)(int64_t kp, const uint32_t *a, int64_t a_stride, const fp8_t *b, int64_t b_stride,
                             float *ws, int64_t ldws, const float *scale_row, const float *scale_strip, int first,
                             const gemm_fp8_lut *lut);
#define GEMM_FUSED_MR 4 /* rows up to which the fused FP8 kernels are used */

/* Epilogue of one row: n outputs from the FP32 tile row g (and u, the up half, for SwiGLU) to dst,
 * FP32 or BF16 (rounded as f32_to_bf16). */
typedef void (*gemm_store_fn)(const float *g, const float *u, int64_t n, void *dst, int out_bf16, int swiglu);

/* Packs one activation micro-panel: `rows` (<= mr) rows of K values (BF16, or FP8 decoded with the
 * BF16 table lut) starting at src with ld elements between rows, into kp pairs x mr words at dst
 * (rows past `rows` and K past k are zero). */
typedef void (*gemm_pack_a_fn)(const void *src, int64_t ld, kn_dtype dt, int rows, int mr, int64_t k, int64_t kp,
                               uint32_t *dst, const bf16_t *lut);

/* A variant's implementation: micro-kernels for every row count up to MR (edge tiles included),
 * all NV strips wide (the packed groups are zero-padded, so the last panel is computed whole and
 * stored in part). */
typedef struct gemm_impl {
  int mr;                                         /* MR: rows of the full tile */
  int nv;                                         /* NV: strips of the full tile */
  gemm_ukr_fn ukr[GEMM_MR_MAX];                   /* ukr[rows - 1]: rows <= mr, nv strips */
  gemm_ukr_out_fn ukr_out[GEMM_MR_MAX];           /* the same finishing into C, or NULL (no fused epilogue) */
  int rowmajor_a;                                 /* ukr honours GEMM_UKR_ROWMAJOR */
  gemm_decode_fn decode;                          /* FP8 strip decoder of this ISA */
  gemm_store_fn store;                            /* epilogue of this ISA */
  gemm_pack_a_fn pack_a;                          /* activation packing of this ISA */
  gemm_ukr8_fn ukr8[GEMM_FUSED_MR];               /* fused FP8 kernels ukr8[rows - 1] (nv strips), or NULL */
  int (*ukr8_ok)(void);                           /* 1 when this CPU runs ukr8 (NULL: no ukr8) */
} gemm_impl;

/* Implementations, one per variant (kernels/cpu/gemm_*.c and the portable one in gemm.c). */
extern const gemm_impl gemm_impl_scalar_4x16;
extern const gemm_impl gemm_impl_avx2_4x16;
extern const gemm_impl gemm_impl_avx512_8x32;
extern const gemm_impl gemm_impl_avx512bf16_14x32;
extern const gemm_impl gemm_impl_avx512bf16_6x64;

/* Portable and AVX-512 activation packing. */
void gemm_pack_a_c(const void *src, int64_t ld, kn_dtype dt, int rows, int mr, int64_t k, int64_t kp, uint32_t *dst,
                   const bf16_t *lut);
void gemm_pack_a_avx512(const void *src, int64_t ld, kn_dtype dt, int rows, int mr, int64_t k, int64_t kp,
                        uint32_t *dst, const bf16_t *lut);

/* Portable and AVX-512 epilogues. */
void gemm_store_c(const float *g, const float *u, int64_t n, void *dst, int out_bf16, int swiglu);
void gemm_store_avx512(const float *g, const float *u, int64_t n, void *dst, int out_bf16, int swiglu);

/* Portable FP8 strip decoder (by table), used by scalar variants and as the truth for others. */
void gemm_decode_fp8_c(int64_t quads, const fp8_t *src, bf16_t *dst, const gemm_fp8_lut *lut);
/* The tables of E4M3 or E5M2 (built once). */
const gemm_fp8_lut *gemm_fp8_lut_of(kn_dtype fmt);

/* Argument checks shared by the reference and the fast paths (messages on stderr, -1 on error).
 * srows: rows of the scale matrix required for FP8 (ignored for BF16). */
int gemm_check_mat(const char *what, const gemm_mat *x, int64_t rows, int64_t cols, int64_t srows);
int gemm_check_out(const gemm_out *c, int64_t rows, int64_t cols);
int gemm_check_pair(kn_dtype a, kn_dtype w);
int gemm_check_epi(gemm_epi epi, int64_t n);

/* Element access for the plain-C paths. */
float gemm_load(const gemm_mat *x, int64_t r, int64_t c);
void gemm_store(const gemm_out *c, int64_t r, int64_t col, float v);
float gemm_silu_mul(float g, float u); /* silu(g) * u in FP32 */

/* Views starting at row r0 (scales follow the rows). */
gemm_mat gemm_mat_rows(const gemm_mat *x, int64_t r0);
gemm_out gemm_out_rows(const gemm_out *c, int64_t r0);

#endif
