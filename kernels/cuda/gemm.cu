/* kernels/cuda/gemm.cu — the GEMM variants of the CUDA backend behind one switch (llm.c style),
 * and their plans. Variant 1 (naive) is the device-side truth: one thread per output, FP32 sums
 * per 128-deep block, promoted with the scales exactly as the CPU reference does. Variant 2 (mma)
 * is a classic Ampere-style tensor-core kernel: 128x128 CTA tile, 8 warps of 64x32, a 3-stage
 * cp.async ring of 128-byte K slices in padded shared memory (144-byte rows: ldmatrix without bank
 * conflicts), ldmatrix.x4 fragments. With FP8 on sm_89 and later it issues mma.sync m16n8k32 E4M3;
 * the sm_80 build has no FP8 tensor-core instruction, so there it converts each FP8 fragment to
 * BF16 in registers (exact: every E4M3 value is a BF16 value) and issues two m16n8k16 BF16 mmas
 * per k32 step, pairing A and B k-indices identically so the dot products are unchanged; an sm_89
 * GPU runs the sm_80 code (no sm_89 gencode), hence the BF16 path there too. Variant 3 (wgmma,
 * sm_90a) lives in gemm_wgmma.cu. Every variant covers dense, contiguous and masked layouts in
 * FP8 (block-scaled, promotion every 128 along K) and BF16.
 *
 * Plans are built once per problem (tile choice, TMA descriptors, grid) and launched many times. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gemm_common.cuh"
#include "cuda/gemm_wgmma.h"
#include "cuda/gk_rand.h"

/* E4M3 bits -> float, exact for every finite code (0x7f/0xff, the NaNs, come out as +-480):
 * the exponent and mantissa bits dropped into an FP32 pattern (subnormal inputs become FP32
 * subnormals) and rescaled by 2^(127-7). */
GK_HD float gk_e4m3_to_f32(uint32_t b) {
  const uint32_t u = ((b & 0x80u) << 24) | ((b & 0x7fu) << 20);
  float f;
  memcpy(&f, &u, 4);
  return f * 0x1p120f;
}

extern "C" float gk_e4m3_to_f32_host(uint8_t x) { return gk_e4m3_to_f32(x); }

/* ---------------- variant 1: naive ---------------- */

template <bool FP8>
__global__ void __launch_bounds__(256) k_gemm_naive(const gk_kargs p) {
  __shared__ gk_sched S;
  gk_sched_build(&S, p, 16);
  const int total = gk_sched_total(&S, p);
  for (int t = blockIdx.x; t < total; t += gridDim.x) {
    const gk_tile T = gk_sched_tile(&S, p, t, 16, 16);
    const int r = threadIdx.y, c = threadIdx.x;
    const int64_t col = T.n0 + c;
    if (r >= T.rows || col >= p.n) continue;
    const int64_t row = T.row + r;
    const uint8_t *a = p.a + row * p.row_bytes;
    const uint8_t *b = p.b + ((int64_t)T.g * p.n + col) * p.row_bytes;
    float tot = 0.0f;
    if constexpr (FP8) {
      const float *sfb = p.sfb + ((int64_t)T.g * p.nb128 + col / 128) * p.kblocks;
      for (int kb = 0; kb < p.kblocks; kb++) {
        float part = 0.0f;
        for (int e = kb * 128; e < kb * 128 + 128; e++) part += gk_e4m3_to_f32(a[e]) * gk_e4m3_to_f32(b[e]);
        tot += part * (p.sfa[(int64_t)kb * p.sfa_ld + row] * sfb[kb]);
      }
    } else {
      const __nv_bfloat16 *ah = reinterpret_cast<const __nv_bfloat16 *>(a);
      const __nv_bfloat16 *bh = reinterpret_cast<const __nv_bfloat16 *>(b);
      for (int64_t e = 0; e < p.k; e++) tot += __bfloat162float(ah[e]) * __bfloat162float(bh[e]);
    }
    p.d[row * p.n + col] = __bfloat16_as_ushort(__float2bfloat16_rn(tot));
  }
}

/* ---------------- variant 2: mma.sync ---------------- */

#define GK_MMA_BM 128
#define GK_MMA_BN 128
#define GK_MMA_LD 144 /* bytes per shared-memory row: 128 + 16 of padding */
#define GK_MMA_STAGES 3
#define GK_MMA_SCHED_BYTES ((int)((sizeof(gk_sched) + 127) / 128 * 128))
#define GK_MMA_SMEM (GK_MMA_SCHED_BYTES + GK_MMA_STAGES * (GK_MMA_BM + GK_MMA_BN) * GK_MMA_LD)
static_assert(GK_MMA_SMEM <= 163 * 1024, "the mma variant must fit an sm_80 CTA's shared memory (163 KiB)");

static __device__ __forceinline__ void mma_cp16(void *dst, const void *src, bool ok) {
  const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(ok ? 16 : 0) : "memory");
}

static __device__ __forceinline__ void mma_ldm4(uint32_t *r, const void *p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

static __device__ __forceinline__ void mma_bf16(float *c, const uint32_t *a, const uint32_t *b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ < 890
/* Two FP8 codes (bits 0-7, 8-15 of x) -> a BF16 pair (first in the low half). */
static __device__ __forceinline__ uint32_t mma_e4m3x2_bf16x2(uint32_t x) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(gk_e4m3_to_f32(x & 0xffu), gk_e4m3_to_f32((x >> 8) & 0xffu));
  return *reinterpret_cast<const uint32_t *>(&v);
}
#endif

/* One m16n8k32 FP8 step: native on sm_89+, two converted BF16 m16n8k16 steps below that. */
static __device__ __forceinline__ void mma_fp8(float *c, const uint32_t *a, const uint32_t *b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  /* Thread (group g, lane t) holds A[g][4t..4t+3] in a[0] (and row g+8 in a[1]; k+16 in a[2], a[3])
   * and B[4t..4t+3][g] in b[0] (k+16 in b[1]). Bytes 0-1 go to BF16 k-slots 2t, 2t+1 and bytes
   * 2-3 to 2t+8, 2t+9, for A and B alike. */
  for (int h = 0; h < 2; h++) {
    const uint32_t lo0 = a[2 * h], lo1 = a[2 * h + 1];
    const uint32_t ab[4] = {mma_e4m3x2_bf16x2(lo0), mma_e4m3x2_bf16x2(lo1), mma_e4m3x2_bf16x2(lo0 >> 16),
                            mma_e4m3x2_bf16x2(lo1 >> 16)};
    const uint32_t bb[2] = {mma_e4m3x2_bf16x2(b[h]), mma_e4m3x2_bf16x2(b[h] >> 16)};
    mma_bf16(c, ab, bb);
  }
#endif
}

template <bool FP8>
__global__ void __launch_bounds__(256, 1) k_gemm_mma(const gk_kargs p) {
  extern __shared__ __align__(128) uint8_t smem[];
  gk_sched *S = reinterpret_cast<gk_sched *>(smem);
  uint8_t *sA = smem + GK_MMA_SCHED_BYTES;
  uint8_t *sB = sA + GK_MMA_STAGES * GK_MMA_BM * GK_MMA_LD;
  gk_sched_build(S, p, GK_MMA_BM);
  const int total = gk_sched_total(S, p);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wm = warp / 4, wn = warp % 4;

  for (int t = blockIdx.x; t < total; t += gridDim.x) {
    const gk_tile T = gk_sched_tile(S, p, t, GK_MMA_BM, GK_MMA_BN);
    const int64_t brow = (int64_t)T.g * p.n + T.n0;
    auto load = [&](int stage, int kb) {
      uint8_t *as = sA + stage * GK_MMA_BM * GK_MMA_LD, *bs = sB + stage * GK_MMA_BN * GK_MMA_LD;
      for (int c = threadIdx.x; c < GK_MMA_BM * 8; c += 256) {
        const int r = c >> 3, ch = c & 7;
        const bool ok = r < T.rows;
        mma_cp16(as + r * GK_MMA_LD + ch * 16, p.a + (ok ? T.row + r : 0) * p.row_bytes + kb * 128 + ch * 16, ok);
      }
      for (int c = threadIdx.x; c < GK_MMA_BN * 8; c += 256) {
        const int r = c >> 3, ch = c & 7;
        const bool ok = T.n0 + r < p.n;
        mma_cp16(bs + r * GK_MMA_LD + ch * 16, p.b + (ok ? brow + r : 0) * p.row_bytes + kb * 128 + ch * 16, ok);
      }
    };
    float acc[4][4][4], tot[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[i][j][e] = tot[i][j][e] = 0.0f;
    const float *sfb = FP8 ? p.sfb + ((int64_t)T.g * p.nb128 + T.n0 / 128) * p.kblocks : nullptr;

    for (int s = 0; s < GK_MMA_STAGES - 1; s++) {
      if (s < p.kblocks) load(s, s);
      asm volatile("cp.async.commit_group;" ::: "memory");
    }
    for (int kb = 0; kb < p.kblocks; kb++) {
      asm volatile("cp.async.wait_group %0;" ::"n"(GK_MMA_STAGES - 2) : "memory");
      __syncthreads();
      const int next = kb + GK_MMA_STAGES - 1;
      if (next < p.kblocks) load(next % GK_MMA_STAGES, next);
      asm volatile("cp.async.commit_group;" ::: "memory");

      const int st = kb % GK_MMA_STAGES;
      const uint8_t *as = sA + st * GK_MMA_BM * GK_MMA_LD, *bs = sB + st * GK_MMA_BN * GK_MMA_LD;
#pragma unroll
      for (int kk = 0; kk < 4; kk++) {
        uint32_t a[4][4], b[4][2];
#pragma unroll
        for (int i = 0; i < 4; i++)
          mma_ldm4(a[i], as + (wm * 64 + i * 16 + (lane % 8) + 8 * ((lane / 8) % 2)) * GK_MMA_LD + kk * 32 +
                             16 * (lane / 16));
#pragma unroll
        for (int jp = 0; jp < 2; jp++) {
          uint32_t r[4];
          mma_ldm4(r, bs + (wn * 32 + jp * 16 + (lane % 8) + 8 * (lane / 16)) * GK_MMA_LD + kk * 32 +
                          16 * ((lane / 8) % 2));
          b[2 * jp][0] = r[0], b[2 * jp][1] = r[1], b[2 * jp + 1][0] = r[2], b[2 * jp + 1][1] = r[3];
        }
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
          for (int j = 0; j < 4; j++) {
            if constexpr (FP8) mma_fp8(acc[i][j], a[i], b[j]);
            else mma_bf16(acc[i][j], a[i], b[j]);
          }
      }
      if constexpr (FP8) {
        const float sb = __ldg(sfb + kb);
        const float *sfa = p.sfa + (int64_t)kb * p.sfa_ld + T.row;
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int ra = wm * 64 + i * 16 + lane / 4, rb = ra + 8;
          const float s0 = (ra < T.rows ? __ldg(sfa + ra) : 0.0f) * sb;
          const float s1 = (rb < T.rows ? __ldg(sfa + rb) : 0.0f) * sb;
#pragma unroll
          for (int j = 0; j < 4; j++) {
            tot[i][j][0] += s0 * acc[i][j][0], tot[i][j][1] += s0 * acc[i][j][1];
            tot[i][j][2] += s1 * acc[i][j][2], tot[i][j][3] += s1 * acc[i][j][3];
            acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;
          }
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int ra = wm * 64 + i * 16 + lane / 4, rb = ra + 8;
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const float *v = FP8 ? tot[i][j] : acc[i][j];
        const int64_t col = T.n0 + wn * 32 + j * 8 + 2 * (lane % 4);
        if (col >= p.n) continue;
        if (ra < T.rows) gk_store_bf16x2(p.d, p.n, T.row + ra, col, v[0], v[1]);
        if (rb < T.rows) gk_store_bf16x2(p.d, p.n, T.row + rb, col, v[2], v[3]);
      }
    }
    __syncthreads(); /* the next tile's loads reuse the stages */
  }
}

/* ---------------- plans and the switch ---------------- */

struct gk_gemm_plan {
  int variant;       /* GK_GEMM_* */
  int fp8;           /* operand type */
  int bm, bn;        /* CTA tile */
  int grid, threads; /* launch shape */
  int smem;          /* dynamic shared memory bytes */
  int sms;           /* multiprocessors occupied */
  char name[48];     /* "wgmma_128x128" */
  gk_kargs args;     /* the problem */
  gk_wgmma_plan wg;  /* variant 3's own plan */
};

/* A zeroed plan, aligned as its type asks: it holds CUtensorMaps (alignas(128) in cuda.h), which
 * cuTensorMapEncodeTiled refuses unless 64-byte aligned, and calloc gives 16. */
static gk_gemm_plan *gk_plan_alloc(void) {
  void *p = nullptr;
  if (posix_memalign(&p, alignof(gk_gemm_plan), sizeof(gk_gemm_plan)) != 0) return nullptr;
  memset(p, 0, sizeof(gk_gemm_plan));
  return (gk_gemm_plan *)p;
}

extern "C" int gk_gemm_plan_align_check(char *why, size_t why_len) {
  gk_gemm_plan *keep[16];
  int rc = 0;
  for (int i = 0; i < 16; i++) {
    keep[i] = gk_plan_alloc(); /* held, so that each allocation lands somewhere new */
    const uintptr_t a0 = keep[i] ? (uintptr_t)&keep[i]->wg.tm[0] : 0, a1 = keep[i] ? (uintptr_t)&keep[i]->wg.tm[1] : 0;
    if (rc == 0 && (!keep[i] || a0 % 64 || a1 % 64)) {
      snprintf(why, why_len, "plan %d: tensor maps at %#lx and %#lx, not 64-byte aligned", i, (unsigned long)a0,
               (unsigned long)a1);
      rc = -1;
    }
  }
  for (int i = 0; i < 16; i++) free(keep[i]);
  return rc;
}

extern "C" int64_t gk_gemm_rows(const gk_gemm_desc *d) {
  return d->layout == GK_MASKED ? (int64_t)d->groups * d->m : d->m;
}

extern "C" const char *gk_gemm_variant_name(int variant) {
  switch (variant) {
  case GK_GEMM_NAIVE: return "naive";
  case GK_GEMM_MMA: return "mma";
  case GK_GEMM_WGMMA: return "wgmma";
  default: return "?";
  }
}

extern "C" int gk_gemm_tiles(int variant, int dtype, int *bm, int *bn, int max) {
  static const int wg[6][2] = {{64, 32}, {64, 64}, {64, 128}, {128, 32}, {128, 64}, {128, 128}};
  (void)dtype;
  int n = 0;
  if (variant == GK_GEMM_WGMMA)
    for (int i = 0; i < 6 && n < max; i++, n++) bm[n] = wg[i][0], bn[n] = wg[i][1];
  else if (variant == GK_GEMM_MMA && max > 0) bm[0] = GK_MMA_BM, bn[0] = GK_MMA_BN, n = 1;
  else if (variant == GK_GEMM_NAIVE && max > 0) bm[0] = 16, bn[0] = 16, n = 1;
  return n;
}

/* The wgmma tile by a roofline estimate: per CTA and 128-byte K slice, the larger of the tensor
 * time (2 bm bn 128 FLOP at 1/132 of ~1979 TFLOP/s) and the load time ((bm + bn) * 128 bytes at
 * ~150 GB/s per SM), times the waves of tiles over the SMs; ties go to the larger tile. */
static void gk_pick_wgmma_tile(const gk_kargs &p, int sms, int *bm_out, int *bn_out) {
  double best = 0;
  int bm_best = 128, bn_best = 128;
  int bms[6], bns[6];
  const int n = gk_gemm_tiles(GK_GEMM_WGMMA, 0, bms, bns, 6);
  for (int i = n - 1; i >= 0; i--) {
    int64_t rows = p.layout == GK_CONTIG ? (p.m + p.groups - 1) / p.groups : p.m;
    int64_t mt = (rows + bms[i] - 1) / bms[i] * (p.layout == GK_DENSE ? 1 : p.groups);
    int64_t tiles = mt * ((p.n + bns[i] - 1) / bns[i]);
    double per = 2.0 * bms[i] * bns[i] * 128 / 15.0e12, load = (bms[i] + bns[i]) * 128.0 / 150e9;
    double est = (double)((tiles + sms - 1) / sms) * (per > load ? per : load);
    if (i == n - 1 || est < best * 0.97) best = est, bm_best = bms[i], bn_best = bns[i];
  }
  *bm_out = bm_best;
  *bn_out = bn_best;
}

/* 1 if `name` is an element of the comma-separated list. */
static int gk_in_list(const char *list, const char *name) {
  const size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    const size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

extern "C" int gk_gemm_plan_make(const gk_gemm_desc *d, int variant, gk_gemm_plan **out, char *why,
                                 size_t why_len) {
  why[0] = 0;
  *out = nullptr;
  const int fp8 = d->dtype == GK_FP8;
  if (d->k <= 0 || d->k % 128 || d->n <= 0 || d->n % 8 || d->m < 0 || d->groups < 1 ||
      d->groups > GK_MAX_GROUPS || (d->layout == GK_DENSE && d->groups != 1) ||
      (d->layout != GK_DENSE && !d->d_counts) || !d->a || !d->b || !d->d ||
      (fp8 && (!d->sfa || !d->sfb || d->sfa_ld < gk_gemm_rows(d)))) {
    snprintf(why, why_len, "unsupported problem (k %% 128, n %% 8, groups <= %d, scales)", GK_MAX_GROUPS);
    return -1;
  }
  const char *allow = getenv("MOESIM_CUDA_VARIANTS");
  if (allow && *allow && !gk_in_list(allow, gk_gemm_variant_name(variant))) {
    snprintf(why, why_len, "%s disabled by MOESIM_CUDA_VARIANTS=%s", gk_gemm_variant_name(variant), allow);
    return -1;
  }
  int dev = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    snprintf(why, why_len, "no CUDA device");
    cudaGetLastError();
    return -1;
  }
  gk_gemm_plan *P = gk_plan_alloc();
  if (!P) {
    snprintf(why, why_len, "out of memory");
    return -1;
  }
  P->variant = variant;
  P->fp8 = fp8;
  gk_kargs &a = P->args;
  a.a = (const uint8_t *)d->a;
  a.b = (const uint8_t *)d->b;
  a.sfa = d->sfa;
  a.sfb = d->sfb;
  a.d = d->d;
  a.counts = d->d_counts;
  a.m = d->m, a.n = d->n, a.k = d->k;
  a.sfa_ld = d->sfa_ld;
  a.row_bytes = d->k * (fp8 ? 1 : 2);
  a.rows_total = gk_gemm_rows(d);
  a.layout = d->layout;
  a.groups = d->groups;
  a.kblocks = (int)(a.row_bytes / 128);
  a.nb128 = (int)((d->n + 127) / 128);

  int rc = 0;
  cudaFuncAttributes fa;
  cudaError_t e = cudaSuccess;
  switch (variant) {
  case GK_GEMM_NAIVE:
    P->bm = P->bn = 16;
    P->threads = 256;
    e = fp8 ? cudaFuncGetAttributes(&fa, k_gemm_naive<true>) : cudaFuncGetAttributes(&fa, k_gemm_naive<false>);
    break;
  case GK_GEMM_MMA:
    if (d->bm && (d->bm != GK_MMA_BM || d->bn != GK_MMA_BN)) {
      snprintf(why, why_len, "mma: only the %dx%d tile", GK_MMA_BM, GK_MMA_BN);
      rc = -1;
      break;
    }
    P->bm = GK_MMA_BM, P->bn = GK_MMA_BN;
    P->threads = 256;
    P->smem = GK_MMA_SMEM;
    if (fp8) {
      e = cudaFuncGetAttributes(&fa, k_gemm_mma<true>);
      if (e == cudaSuccess) e = cudaFuncSetAttribute(k_gemm_mma<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, P->smem);
    } else {
      e = cudaFuncGetAttributes(&fa, k_gemm_mma<false>);
      if (e == cudaSuccess) e = cudaFuncSetAttribute(k_gemm_mma<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, P->smem);
    }
    break;
  case GK_GEMM_WGMMA:
    if (prop.major != 9) {
      snprintf(why, why_len, "wgmma needs compute capability 9.0 (sm_90a); this GPU is %d.%d", prop.major,
               prop.minor);
      rc = -1;
      break;
    }
    if (d->bm) P->bm = d->bm, P->bn = d->bn;
    else gk_pick_wgmma_tile(a, prop.multiProcessorCount, &P->bm, &P->bn);
    break;
  default:
    snprintf(why, why_len, "no GEMM variant %d", variant);
    rc = -1;
  }
  if (rc == 0 && e != cudaSuccess) {
    snprintf(why, why_len, "%s: %s", gk_gemm_variant_name(variant), cudaGetErrorString(e));
    cudaGetLastError();
    rc = -1;
  }
  if (rc == 0) {
    a.n_tiles = (int)((d->n + P->bn - 1) / P->bn);
    const int64_t bound = gk_tiles_bound(a, P->bm);
    if (variant == GK_GEMM_WGMMA) {
      rc = gk_wgmma_prepare(&P->wg, &a, d->dtype, P->bm, P->bn, prop.multiProcessorCount, why, why_len);
      P->grid = P->wg.grid;
    } else {
      const int64_t cap = (int64_t)prop.multiProcessorCount * (variant == GK_GEMM_NAIVE ? 16 : 1);
      P->grid = (int)(bound < cap ? (bound > 0 ? bound : 1) : cap);
    }
    P->sms = P->grid < prop.multiProcessorCount ? P->grid : prop.multiProcessorCount;
  }
  if (rc != 0) {
    free(P);
    return -1;
  }
  if (variant == GK_GEMM_NAIVE) snprintf(P->name, sizeof P->name, "naive");
  else snprintf(P->name, sizeof P->name, "%s_%dx%d", gk_gemm_variant_name(variant), P->bm, P->bn);
  *out = P;
  return 0;
}

extern "C" int gk_gemm_launch(const gk_gemm_plan *P, cudaStream_t s) {
  switch (P->variant) {
  case GK_GEMM_NAIVE:
    if (P->fp8) k_gemm_naive<true><<<P->grid, dim3(16, 16), 0, s>>>(P->args);
    else k_gemm_naive<false><<<P->grid, dim3(16, 16), 0, s>>>(P->args);
    return (int)cudaGetLastError();
  case GK_GEMM_MMA:
    if (P->fp8) k_gemm_mma<true><<<P->grid, P->threads, P->smem, s>>>(P->args);
    else k_gemm_mma<false><<<P->grid, P->threads, P->smem, s>>>(P->args);
    return (int)cudaGetLastError();
  case GK_GEMM_WGMMA: return gk_wgmma_launch(&P->wg, s);
  default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" const char *gk_gemm_plan_name(const gk_gemm_plan *P) { return P->name; }
extern "C" int gk_gemm_plan_sms(const gk_gemm_plan *P) { return P->sms; }
extern "C" void gk_gemm_plan_free(gk_gemm_plan *P) { free(P); }

/* The scheduler's host twin of gk_sched_build (serial), then every tile enumerated: each valid
 * (row, column tile) of D must be covered exactly once, by a tile inside its group's rows. */
extern "C" int gk_sched_check(int layout, int groups, const int32_t *counts, int64_t m, int64_t n, int bm, int bn,
                              char *why, size_t why_len) {
  gk_kargs p;
  memset(&p, 0, sizeof p);
  p.layout = layout, p.groups = groups, p.m = m, p.n = n, p.counts = counts;
  p.n_tiles = (int)((n + bn - 1) / bn);
  p.rows_total = layout == GK_MASKED ? groups * m : m;
  gk_sched *S = (gk_sched *)calloc(1, sizeof *S);
  int row = 0, mt = 0;
  for (int g = 0; g < groups; g++) {
    int cnt = layout == GK_DENSE ? (int)m : counts[g];
    if (cnt < 0) cnt = 0;
    if (layout == GK_MASKED && cnt > m) cnt = (int)m;
    S->rows[g] = cnt;
    S->row_base[g] = layout == GK_MASKED ? (int)(g * m) : row;
    S->mt_prefix[g] = mt;
    row += cnt, mt += (cnt + bm - 1) / bm;
  }
  S->mt_prefix[groups] = mt;
  const int64_t total = (int64_t)mt * p.n_tiles;
  int rc = 0;
  if (total > gk_tiles_bound(p, bm)) {
    snprintf(why, why_len, "%lld tiles exceed the launch bound %lld", (long long)total, (long long)gk_tiles_bound(p, bm));
    rc = -1;
  }
  unsigned char *seen = (unsigned char *)calloc((size_t)(p.rows_total * p.n_tiles) + 1, 1);
  for (int t = 0; t < total && rc == 0; t++) {
    const gk_tile T = gk_sched_tile(S, p, t, bm, bn);
    const int64_t lo = S->row_base[T.g], hi = lo + S->rows[T.g];
    if (T.rows < 1 || T.rows > bm || T.row < lo || T.row + T.rows > hi || T.n0 % bn || T.n0 >= n) {
      snprintf(why, why_len, "tile %d: group %d rows [%lld, +%d) n0 %d outside the group's rows [%lld, %lld)", t, T.g,
               (long long)T.row, T.rows, T.n0, (long long)lo, (long long)hi);
      rc = -1;
      break;
    }
    for (int r = 0; r < T.rows; r++) seen[(T.row + r) * p.n_tiles + T.n0 / bn]++;
  }
  for (int g = 0; g < groups && rc == 0; g++)
    for (int64_t r = S->row_base[g]; r < S->row_base[g] + S->rows[g] && rc == 0; r++)
      for (int j = 0; j < p.n_tiles; j++)
        if (seen[r * p.n_tiles + j] != 1) {
          snprintf(why, why_len, "row %lld column tile %d covered %d times", (long long)r, j, seen[r * p.n_tiles + j]);
          rc = -1;
          break;
        }
  free(seen);
  free(S);
  return rc;
}
