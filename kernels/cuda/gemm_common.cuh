/* kernels/cuda/gemm_common.cuh — what every GEMM variant of gemm.cu / gemm_wgmma_*.cu shares:
 * the kernel argument block and the tile scheduler that maps a flat tile number to (expert,
 * rows, columns) for the dense, contiguous and masked layouts of gk.h.
 *
 * Scheduling: each CTA builds, in shared memory, the per-group table (first A row, valid rows,
 * cumulative M tiles) from the device-side counts with one warp-wide scan, so a grouped GEMM needs
 * no host synchronisation. Tiles are numbered group by group; inside a group, runs of 16 M tiles
 * sweep all N tiles before moving on (B tiles stay hot in L2 while A's slab is reused). */
#ifndef MOESIM_GEMM_COMMON_CUH
#define MOESIM_GEMM_COMMON_CUH

#include <stdint.h>

#include <cuda_bf16.h>

#include "cuda/gk.h"

/* Cycles a barrier wait may spin before the kernel traps instead of hanging (~1 s at 2 GHz). */
#define GK_HANG_CYCLES 2000000000LL

typedef struct gk_kargs {
  const uint8_t *a;        /* A bytes, [rows_total][k] */
  const uint8_t *b;        /* B bytes, [groups * n][k] */
  const float *sfa;        /* FP8: [k/128][sfa_ld] */
  const float *sfb;        /* FP8: [groups][nb128][k/128] */
  uint16_t *d;             /* BF16 [rows_total][n] */
  const int32_t *counts;   /* device [groups] or NULL (dense) */
  int64_t m, n, k;         /* as gk_gemm_desc */
  int64_t sfa_ld;          /* FP8 A-scale leading dimension */
  int64_t row_bytes;       /* bytes of one A/B row (k * element size) */
  int64_t rows_total;      /* rows of A and D */
  int layout;              /* GK_DENSE / GK_CONTIG / GK_MASKED */
  int groups;              /* G */
  int kblocks;             /* 128-byte K blocks = k / 128 (FP8) or k / 64 (BF16) */
  int nb128;               /* ceil(n / 128): 128-row blocks of B scales per group */
  int n_tiles;             /* ceil(n / bn) */
} gk_kargs;

typedef struct gk_sched {
  int mt_prefix[GK_MAX_GROUPS + 1]; /* M tiles before group g; [groups] = all of them */
  int row_base[GK_MAX_GROUPS];      /* first row of A/D of group g */
  int rows[GK_MAX_GROUPS];          /* valid rows of group g */
} gk_sched;

typedef struct gk_tile {
  int g;       /* group (expert) */
  int64_t row; /* first row of A and D */
  int rows;    /* valid rows in this tile (<= bm) */
  int n0;      /* first column of D (row of B within the group) */
} gk_tile;

/* Fills the table; called by all threads of the CTA (warp 0 works, then a __syncthreads). Warp 0
 * and its lanes come from the linear thread index, so 2-D blocks (the naive kernel's 16 x 16) work. */
__device__ __forceinline__ void gk_sched_build(gk_sched *S, const gk_kargs &p, int bm) {
  const int tid = (int)(threadIdx.x + threadIdx.y * blockDim.x);
  if (tid < 32) {
    const unsigned full = 0xffffffffu;
    const int lane = tid;
    int row_carry = 0, mt_carry = 0;
    for (int g0 = 0; g0 < p.groups; g0 += 32) {
      const int g = g0 + lane;
      int cnt = 0;
      if (g < p.groups) {
        cnt = p.layout == GK_DENSE ? (int)p.m : p.counts[g];
        if (cnt < 0) cnt = 0;
        if (p.layout == GK_MASKED && cnt > p.m) cnt = (int)p.m;
      }
      const int mt = (cnt + bm - 1) / bm;
      int cs = cnt, ms = mt;
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(full, cs, o), w = __shfl_up_sync(full, ms, o);
        if (lane >= o) cs += v, ms += w;
      }
      if (g < p.groups) {
        S->rows[g] = cnt;
        S->row_base[g] = p.layout == GK_MASKED ? (int)(g * p.m) : row_carry + cs - cnt;
        S->mt_prefix[g] = mt_carry + ms - mt;
      }
      row_carry += __shfl_sync(full, cs, 31);
      mt_carry += __shfl_sync(full, ms, 31);
    }
    if (lane == 0) S->mt_prefix[p.groups] = mt_carry;
  }
  __syncthreads();
}

/* Number of tiles of the whole problem (after gk_sched_build). */
__device__ __forceinline__ int gk_sched_total(const gk_sched *S, const gk_kargs &p) {
  return S->mt_prefix[p.groups] * p.n_tiles;
}

/* Tile number t (< total) -> its coordinates (also compiled for the host, for the tests). */
__host__ __device__ __forceinline__ gk_tile gk_sched_tile(const gk_sched *S, const gk_kargs &p, int t, int bm,
                                                          int bn) {
  int lo = 0, hi = p.groups - 1; /* largest g with mt_prefix[g] * n_tiles <= t */
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (S->mt_prefix[mid] * p.n_tiles <= t) lo = mid;
    else hi = mid - 1;
  }
  const int g = lo;
  const int local = t - S->mt_prefix[g] * p.n_tiles;
  const int nmt = S->mt_prefix[g + 1] - S->mt_prefix[g];
  const int run = 16 * p.n_tiles;
  const int sup = local / run, r = local % run;
  const int cnt = nmt - sup * 16 < 16 ? nmt - sup * 16 : 16;
  const int mt = sup * 16 + r % cnt, nt = r / cnt;
  gk_tile T;
  T.g = g;
  T.row = (int64_t)S->row_base[g] + (int64_t)mt * bm;
  T.rows = S->rows[g] - mt * bm < bm ? S->rows[g] - mt * bm : bm;
  T.n0 = nt * bn;
  return T;
}

/* Upper bound of the tile count, known on the host without reading the device counts. */
static inline int64_t gk_tiles_bound(const gk_kargs &p, int bm) {
  int64_t mt;
  if (p.layout == GK_DENSE) mt = (p.m + bm - 1) / bm;
  else if (p.layout == GK_MASKED) mt = (int64_t)p.groups * ((p.m + bm - 1) / bm);
  else mt = (p.m + bm - 1) / bm + p.groups;
  return mt * p.n_tiles;
}

/* Stores two adjacent BF16 outputs (row, col) and (row, col + 1), rounding to nearest even. */
__device__ __forceinline__ void gk_store_bf16x2(uint16_t *d, int64_t ldd, int64_t row, int64_t col,
                                                float v0, float v1) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(v0, v1);
  *reinterpret_cast<__nv_bfloat162 *>(d + row * ldd + col) = v;
}

#endif
