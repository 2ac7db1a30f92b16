/* kernels/cuda/gemm_wgmma.cu — GEMM variant 3: the Hopper (sm_90a) kernel, for FP8 block-scaled
 * and BF16 operands, dense and grouped (see gk.h for layouts; gemm.cu's switch plans and launches).
 *
 * Structure (DeepGEMM's, written afresh here): a persistent grid of one CTA per SM walks the tile
 * list of gemm_common.cuh. In each CTA one producer warpgroup (a single thread of it) streams
 * 128-byte-deep K slices of A (bm rows) and B (bn rows) into a ring of shared-memory stages with
 * TMA (cp.async.bulk.tensor, 128-byte swizzle), each stage guarded by a "full" mbarrier (TMA
 * transaction bytes) and an "empty" one (consumer warps' arrivals). One or two consumer
 * warpgroups (64 rows each) issue wgmma.mma_async m64nBNk32 (FP8) or k16 (BF16) with both
 * operands read from shared memory through matrix descriptors. FP8: each 128-deep K block
 * accumulates in a fresh FP32 register tile, which is then scaled by the block's A-row and B
 * scales and added to the running FP32 total (promotion every 128 along K). BF16 accumulates in
 * place. setmaxnreg moves registers from the producer to the consumers. Barrier waits trap after
 * ~1 s instead of hanging. Compiled for sm_80 too, where the kernel body is empty: the plan
 * refuses this variant on anything but compute capability 9.0. */
#include <cuda.h>
#include <cuda_bf16.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "cuda/gemm_common.cuh"
#include "cuda/gemm_wgmma.h"

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GK_WGMMA_DEVICE 1
#endif

#ifdef GK_WGMMA_DEVICE
static __device__ __forceinline__ uint32_t wg_smem(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void wg_mbar_init(uint64_t *bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(wg_smem(bar)), "r"(count) : "memory");
}

static __device__ __forceinline__ void wg_mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(wg_smem(bar)), "r"(bytes)
               : "memory");
}

static __device__ __forceinline__ void wg_mbar_arrive(uint64_t *bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(wg_smem(bar)) : "memory");
}

/* Waits for the phase of parity `parity` to complete; traps after GK_HANG_CYCLES. */
static __device__ __forceinline__ void wg_mbar_wait(uint64_t *bar, uint32_t parity) {
  const uint32_t a = wg_smem(bar);
  long long t0 = 0;
  for (;;) {
    uint32_t done;
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity)
        : "memory");
    if (done) return;
    const long long now = clock64();
    if (t0 == 0) t0 = now;
    else if (now - t0 > GK_HANG_CYCLES) __trap();
  }
}

/* 2-D TMA load of the box at (x = inner element, y = row) into shared memory, completing on bar. */
static __device__ __forceinline__ void wg_tma_load(const CUtensorMap *map, uint64_t *bar, void *dst, int x,
                                                   int y) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];" ::
          "r"(wg_smem(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(wg_smem(bar)), "r"(x), "r"(y)
      : "memory");
}

/* Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart. */
static __device__ __forceinline__ uint64_t wg_desc(const void *p) {
  const uint64_t a = wg_smem(p);
  return ((a & 0x3ffff) >> 4) | ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

static __device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
static __device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
static __device__ __forceinline__ void wg_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
static __device__ __forceinline__ void wg_reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }

/* The wgmma instructions: D (+)= A * B^T for one 64 x N x 32-byte slice; scale_d 0 overwrites D.
 * Generated (one per N and type) because each needs N/2 accumulator operands spelled out. */
static __device__ __forceinline__ void wg_mma_fp8_n32(float *d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k32.f32.e4m3.e4m3 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
      "}, %16, %17, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db), "r"(scale_d));
}

static __device__ __forceinline__ void wg_mma_fp8_n64(float *d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

static __device__ __forceinline__ void wg_mma_fp8_n128(float *d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}

static __device__ __forceinline__ void wg_mma_bf16_n32(float *d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
      "}, %16, %17, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db), "r"(scale_d));
}

static __device__ __forceinline__ void wg_mma_bf16_n64(float *d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}

static __device__ __forceinline__ void wg_mma_bf16_n128(float *d, uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}

template <int BN, bool FP8>
static __device__ __forceinline__ void wg_mma(float *d, uint64_t da, uint64_t db, int scale_d) {
  if constexpr (FP8) {
    if constexpr (BN == 32) wg_mma_fp8_n32(d, da, db, scale_d);
    else if constexpr (BN == 64) wg_mma_fp8_n64(d, da, db, scale_d);
    else wg_mma_fp8_n128(d, da, db, scale_d);
  } else {
    if constexpr (BN == 32) wg_mma_bf16_n32(d, da, db, scale_d);
    else if constexpr (BN == 64) wg_mma_bf16_n64(d, da, db, scale_d);
    else wg_mma_bf16_n128(d, da, db, scale_d);
  }
}
#endif /* GK_WGMMA_DEVICE */

/* Compile-time shape of one kernel instance. */
template <int BM, int BN>
struct wg_cfg {
  static constexpr int kConsumers = BM / 64;                 /* consumer warpgroups */
  static constexpr int kThreads = (kConsumers + 1) * 128;    /* + the producer warpgroup */
  static constexpr int kStageBytes = (BM + BN) * 128;        /* one 128-byte K slice of A and B */
  static constexpr int kStages = 196608 / kStageBytes < 8 ? 196608 / kStageBytes : 8;
  static constexpr int kSmem = kStages * kStageBytes + 2 * kStages * 8 + (int)sizeof(gk_sched) + 1024;
  static_assert(kSmem <= 227 * 1024, "more dynamic shared memory than an sm_90 CTA may have");
  static_assert((BM * 128) % 1024 == 0 && (BN * 128) % 1024 == 0,
                "every stage must start 1024-byte aligned: the 128-byte swizzle atom the descriptors assume");
  static_assert(kThreads <= 1024 && (kConsumers == 1 || kConsumers == 2), "one or two consumer warpgroups");
};

template <int BM, int BN, bool FP8>
__global__ void __launch_bounds__(wg_cfg<BM, BN>::kThreads, 1)
    k_gemm_wgmma(const __grid_constant__ CUtensorMap tm_a, const __grid_constant__ CUtensorMap tm_b,
                 const gk_kargs p) {
#ifdef GK_WGMMA_DEVICE
  using C = wg_cfg<BM, BN>;
  constexpr int KE = FP8 ? 128 : 64; /* elements per 128-byte K slice */
  extern __shared__ uint8_t smem_raw[];
  uint8_t *smem = smem_raw + ((1024 - (wg_smem(smem_raw) & 1023)) & 1023);
  uint8_t *sA = smem;
  uint8_t *sB = smem + C::kStages * BM * 128;
  uint64_t *full = reinterpret_cast<uint64_t *>(sB + C::kStages * BN * 128);
  uint64_t *empty = full + C::kStages;
  gk_sched *S = reinterpret_cast<gk_sched *>(empty + C::kStages);

  if (threadIdx.x == 0) {
    for (int s = 0; s < C::kStages; s++) {
      wg_mbar_init(&full[s], 1);
      wg_mbar_init(&empty[s], C::kConsumers * 4);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  gk_sched_build(S, p, BM); /* ends with __syncthreads: barriers and table visible */
  const int total = gk_sched_total(S, p);
  const int wg = threadIdx.x / 128;

  if (wg == C::kConsumers) {
    /* Producer warpgroup: one thread issues every TMA load. */
    if constexpr (C::kConsumers == 2) asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
    if (threadIdx.x % 128 == 0) {
      uint32_t it = 0;
      for (int t = blockIdx.x; t < total; t += gridDim.x) {
        const gk_tile T = gk_sched_tile(S, p, t, BM, BN);
        const int brow = (int)((int64_t)T.g * p.n + T.n0);
        for (int kb = 0; kb < p.kblocks; kb++, it++) {
          const int s = (int)(it % C::kStages);
          wg_mbar_wait(&empty[s], ((it / C::kStages) & 1) ^ 1);
          wg_mbar_expect_tx(&full[s], C::kStageBytes);
          wg_tma_load(&tm_a, &full[s], sA + s * BM * 128, kb * KE, (int)T.row);
          wg_tma_load(&tm_b, &full[s], sB + s * BN * 128, kb * KE, brow);
        }
      }
    }
  } else {
    /* Consumer warpgroup wg: rows [64 wg, 64 wg + 64) of the tile. */
    if constexpr (C::kConsumers == 2) asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int r0 = wg * 64 + warp * 16 + lane / 4, r1 = r0 + 8; /* tile rows this thread holds */
    uint32_t it = 0;
    for (int t = blockIdx.x; t < total; t += gridDim.x) {
      const gk_tile T = gk_sched_tile(S, p, t, BM, BN);
      float acc[BN / 2], tot[BN / 2];
#pragma unroll
      for (int i = 0; i < BN / 2; i++) tot[i] = 0.0f;
      const float *sfb = FP8 ? p.sfb + ((int64_t)T.g * p.nb128 + T.n0 / 128) * p.kblocks : nullptr;
      for (int kb = 0; kb < p.kblocks; kb++, it++) {
        const int s = (int)(it % C::kStages);
        float sa0 = 0.0f, sa1 = 0.0f, sb = 0.0f;
        if constexpr (FP8) {
          const float *sfa = p.sfa + (int64_t)kb * p.sfa_ld + T.row;
          if (r0 < T.rows) sa0 = __ldg(sfa + r0);
          if (r1 < T.rows) sa1 = __ldg(sfa + r1);
          sb = __ldg(sfb + kb);
        }
        wg_mbar_wait(&full[s], (it / C::kStages) & 1);
#pragma unroll
        for (int i = 0; i < BN / 2; i++) wg_reg_fence(acc[i]);
        wg_fence();
        const uint8_t *a = sA + s * BM * 128 + wg * 64 * 128;
        const uint8_t *b = sB + s * BN * 128;
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
          wg_mma<BN, FP8>(acc, wg_desc(a + kk * 32), wg_desc(b + kk * 32), FP8 ? kk > 0 : (kb > 0 || kk > 0));
        wg_commit();
#pragma unroll
        for (int i = 0; i < BN / 2; i++) wg_reg_fence(acc[i]);
        wg_wait0();
        if (lane == 0) wg_mbar_arrive(&empty[s]);
        if constexpr (FP8) {
          const float s0 = sa0 * sb, s1 = sa1 * sb;
#pragma unroll
          for (int i = 0; i < BN / 8; i++) {
            tot[4 * i + 0] += s0 * acc[4 * i + 0];
            tot[4 * i + 1] += s0 * acc[4 * i + 1];
            tot[4 * i + 2] += s1 * acc[4 * i + 2];
            tot[4 * i + 3] += s1 * acc[4 * i + 3];
          }
        }
      }
      const float *v = FP8 ? tot : acc;
#pragma unroll
      for (int i = 0; i < BN / 8; i++) {
        const int col = T.n0 + 8 * i + 2 * (lane % 4);
        if (col >= p.n) continue;
        if (r0 < T.rows) gk_store_bf16x2(p.d, p.n, T.row + r0, col, v[4 * i + 0], v[4 * i + 1]);
        if (r1 < T.rows) gk_store_bf16x2(p.d, p.n, T.row + r1, col, v[4 * i + 2], v[4 * i + 3]);
      }
    }
  }
#endif
}

/* ---- host side ---- */

static PFN_cuTensorMapEncodeTiled_v12000 wg_encode_fn(void) {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  if (!fn) {
    void *f = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) ==
            cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }
  return fn;
}

/* A 2-D tensor map over `rows` rows of `row_bytes` bytes, box = 128 bytes x box_rows, swizzle 128B. */
static int wg_map(CUtensorMap *m, const void *base, int fp8, uint64_t row_bytes, uint64_t rows, int box_rows,
                  char *why, size_t why_len) {
  PFN_cuTensorMapEncodeTiled_v12000 fn = wg_encode_fn();
  if (!fn) {
    snprintf(why, why_len, "cuTensorMapEncodeTiled not available from the driver");
    return -1;
  }
  const int esize = fp8 ? 1 : 2;
  cuuint64_t dims[2] = {row_bytes / esize, rows};
  cuuint64_t strides[1] = {row_bytes};
  cuuint32_t box[2] = {(cuuint32_t)(128 / esize), (cuuint32_t)box_rows};
  cuuint32_t es[2] = {1, 1};
  CUresult r = fn(m, fp8 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(base),
                  dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    snprintf(why, why_len, "cuTensorMapEncodeTiled failed (CUresult %d)", (int)r);
    return -1;
  }
  return 0;
}

template <int BM, int BN, bool FP8>
static int wg_setup(int *smem, char *why, size_t why_len) {
  using C = wg_cfg<BM, BN>;
  cudaFuncAttributes fa;
  cudaError_t e = cudaFuncGetAttributes(&fa, k_gemm_wgmma<BM, BN, FP8>);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(k_gemm_wgmma<BM, BN, FP8>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem);
  if (e != cudaSuccess) {
    snprintf(why, why_len, "wgmma %dx%d: %s", BM, BN, cudaGetErrorString(e));
    cudaGetLastError();
    return -1;
  }
  *smem = C::kSmem;
  return 0;
}

template <int BM, int BN, bool FP8>
static int wg_run(const gk_wgmma_plan *w, cudaStream_t s) {
  using C = wg_cfg<BM, BN>;
  k_gemm_wgmma<BM, BN, FP8><<<w->grid, C::kThreads, C::kSmem, s>>>(w->tm[0], w->tm[1], w->args);
  return (int)cudaGetLastError();
}

#define GK_WG_TILES(X) X(64, 32) X(64, 64) X(64, 128) X(128, 32) X(128, 64) X(128, 128)

int gk_wgmma_prepare(gk_wgmma_plan *w, const gk_kargs *p, int dtype, int bm, int bn, int sms, char *why,
                     size_t why_len) {
  const int fp8 = dtype == GK_FP8;
  int smem = 0, rc = -1;
  w->args = *p;
  w->bm = bm;
  w->bn = bn;
  w->fp8 = fp8;
#define GK_WG_SETUP(BM, BN)                                                   \
  if (bm == BM && bn == BN)                                                   \
    rc = fp8 ? wg_setup<BM, BN, true>(&smem, why, why_len) : wg_setup<BM, BN, false>(&smem, why, why_len);
  GK_WG_TILES(GK_WG_SETUP)
#undef GK_WG_SETUP
  if (rc != 0) {
    if (!why[0]) snprintf(why, why_len, "wgmma: no kernel for tile %dx%d", bm, bn);
    return -1;
  }
  if (wg_map(&w->tm[0], p->a, fp8, (uint64_t)p->row_bytes, (uint64_t)p->rows_total, bm, why, why_len) ||
      wg_map(&w->tm[1], p->b, fp8, (uint64_t)p->row_bytes, (uint64_t)p->groups * (uint64_t)p->n, bn, why, why_len))
    return -1;
  const int64_t bound = gk_tiles_bound(*p, bm);
  w->grid = (int)(bound < sms ? (bound > 0 ? bound : 1) : sms);
  w->smem = smem;
  return 0;
}

int gk_wgmma_launch(const gk_wgmma_plan *w, cudaStream_t s) {
#define GK_WG_RUN(BM, BN) \
  if (w->bm == BM && w->bn == BN) return w->fp8 ? wg_run<BM, BN, true>(w, s) : wg_run<BM, BN, false>(w, s);
  GK_WG_TILES(GK_WG_RUN)
#undef GK_WG_RUN
  return (int)cudaErrorInvalidValue;
}
