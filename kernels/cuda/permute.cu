/* kernels/cuda/permute.cu — the local half of expert-parallel all-to-all on one GPU, and the
 * bandwidth yardstick it is judged against.
 *
 * route layout: (token, slot) -> expert pairs become per-expert counts, offsets and each pair's row
 *   in the expert-ordered buffer. Stable (pairs of an expert keep token order), so the layout is a
 *   pure function of the routing, as the CPU reference's is: chunks of 1024 pairs are histogrammed
 *   (shared-memory atomics: counts only, order-free), one CTA scans chunks x experts, then one warp
 *   per chunk ranks its pairs 32 at a time with __match_any_sync.
 * dispatch: one CTA per token reads its FP8 row (and 1x128 scales) once with 16-byte loads and
 *   writes it to each of its top-k expert rows.
 * combine: one CTA per token gathers its top-k expert output rows (BF16), sums them weighted in
 *   FP32 (multiply, then add, in slot order: no FMA, so it is bit-identical to
 *   kernels/ref/permute_ref.c) and writes one BF16 row.
 * copy: a grid-stride 16-byte copy, the device-to-device bandwidth that dispatch and combine are
 *   reported against. Plus the fill kernels that generate benchmark operands from gk_rand.h. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/gk.h"
#include "cuda/gk_rand.h"

#define GK_ROUTE_CHUNK 1024
#define GK_ROUTE_MAX_EXPERTS 1024

static int64_t route_chunks(int64_t t, int topk) { return (t * topk + GK_ROUTE_CHUNK - 1) / GK_ROUTE_CHUNK; }

extern "C" size_t gk_route_scratch_bytes(int64_t t, int topk, int n_experts) {
  return (size_t)(route_chunks(t, topk) > 0 ? route_chunks(t, topk) : 1) * (size_t)n_experts * sizeof(int32_t);
}

__global__ void k_route_hist(const int32_t *__restrict__ idx, int64_t pairs, int n_experts, int32_t *chunk_counts) {
  extern __shared__ int32_t hist[];
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  const int64_t p0 = (int64_t)blockIdx.x * GK_ROUTE_CHUNK;
  for (int i = threadIdx.x; i < GK_ROUTE_CHUNK && p0 + i < pairs; i += blockDim.x) {
    const int e = idx[p0 + i];
    if (e >= 0 && e < n_experts) atomicAdd(&hist[e], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) chunk_counts[(int64_t)blockIdx.x * n_experts + e] = hist[e];
}

/* One CTA of 1024 threads: chunk_counts -> per-chunk first row of each expert; counts; offsets. */
__global__ void __launch_bounds__(1024) k_route_scan(int32_t *chunk_base, int64_t chunks, int n_experts,
                                                     int32_t *counts, int32_t *offsets) {
  __shared__ int32_t tot[GK_ROUTE_MAX_EXPERTS];
  __shared__ int32_t warp_sum[32];
  const int e = threadIdx.x;
  int32_t run = 0;
  if (e < n_experts)
    for (int64_t c = 0; c < chunks; c++) {
      const int32_t v = chunk_base[c * n_experts + e];
      chunk_base[c * n_experts + e] = run;
      run += v;
    }
  /* Exclusive scan of run over experts: warp scans, then a scan of the warp sums. */
  const int lane = e % 32, warp = e / 32;
  int32_t x = e < n_experts ? run : 0;
  for (int o = 1; o < 32; o <<= 1) {
    const int32_t y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) warp_sum[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int32_t w = warp_sum[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const int32_t y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    warp_sum[lane] = w;
  }
  __syncthreads();
  const int32_t excl = x - (e < n_experts ? run : 0) + (warp > 0 ? warp_sum[warp - 1] : 0);
  if (e < n_experts) {
    tot[e] = excl;
    counts[e] = run;
    offsets[e] = excl;
    if (e == n_experts - 1) offsets[n_experts] = excl + run;
  }
  __syncthreads();
  if (e < n_experts)
    for (int64_t c = 0; c < chunks; c++) chunk_base[c * n_experts + e] += tot[e];
}

/* One warp per chunk: pairs in order, 32 at a time; equal experts ranked by lane. */
__global__ void k_route_pos(const int32_t *__restrict__ idx, int64_t pairs, int n_experts,
                            const int32_t *__restrict__ chunk_base, int32_t *__restrict__ pos) {
  extern __shared__ int32_t next[];
  const int lane = threadIdx.x;
  for (int e = lane; e < n_experts; e += 32) next[e] = chunk_base[(int64_t)blockIdx.x * n_experts + e];
  __syncwarp();
  const int64_t p0 = (int64_t)blockIdx.x * GK_ROUTE_CHUNK;
  for (int step = 0; step < GK_ROUTE_CHUNK / 32; step++) {
    const int64_t p = p0 + step * 32 + lane;
    int e = p < pairs ? idx[p] : -1;
    if (e >= n_experts) e = -1;
    const unsigned peers = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(peers & ((1u << lane) - 1u));
    const int leader = __ffs(peers) - 1;
    int32_t base = 0;
    if (e >= 0) base = next[e];
    __syncwarp();
    if (p < pairs) pos[p] = e >= 0 ? base + rank : -1;
    if (e >= 0 && lane == leader) next[e] = base + __popc(peers);
    __syncwarp();
  }
}

extern "C" int gk_route_layout(const int32_t *topk_idx, int64_t t, int topk, int n_experts, int32_t *counts,
                               int32_t *offsets, int32_t *pos, void *scratch, cudaStream_t s) {
  if (n_experts < 1 || n_experts > GK_ROUTE_MAX_EXPERTS || topk < 1 || t < 0) return (int)cudaErrorInvalidValue;
  const int64_t pairs = t * topk, chunks = route_chunks(t, topk);
  int32_t *chunk_base = (int32_t *)scratch;
  const size_t hist_smem = (size_t)n_experts * sizeof(int32_t);
  if (chunks > 0) k_route_hist<<<(unsigned)chunks, 256, hist_smem, s>>>(topk_idx, pairs, n_experts, chunk_base);
  k_route_scan<<<1, 1024, 0, s>>>(chunk_base, chunks, n_experts, counts, offsets);
  if (chunks > 0) k_route_pos<<<(unsigned)chunks, 32, hist_smem, s>>>(topk_idx, pairs, n_experts, chunk_base, pos);
  return (int)cudaGetLastError();
}

#define GK_PERMUTE_THREADS 128
#define GK_MAX_TOPK 32

__global__ void __launch_bounds__(GK_PERMUTE_THREADS) k_dispatch(const uint8_t *__restrict__ xq,
                                                                  const float *__restrict__ xsf, int64_t h, int topk,
                                                                  const int32_t *__restrict__ pos,
                                                                  uint8_t *__restrict__ yq, float *__restrict__ ysf) {
  __shared__ int32_t dst[GK_MAX_TOPK];
  const int64_t tok = blockIdx.x;
  if (threadIdx.x < topk) dst[threadIdx.x] = pos[tok * topk + threadIdx.x];
  __syncthreads();
  const int64_t chunks = h / 16;
  const uint4 *src = reinterpret_cast<const uint4 *>(xq + tok * h);
  for (int64_t c = threadIdx.x; c < chunks; c += GK_PERMUTE_THREADS) {
    const uint4 v = __ldg(src + c);
    for (int k = 0; k < topk; k++)
      if (dst[k] >= 0) reinterpret_cast<uint4 *>(yq + (int64_t)dst[k] * h)[c] = v;
  }
  const int64_t ns = h / 128;
  for (int64_t j = threadIdx.x; j < ns; j += GK_PERMUTE_THREADS) {
    const float v = __ldg(xsf + tok * ns + j);
    for (int k = 0; k < topk; k++)
      if (dst[k] >= 0) ysf[(int64_t)dst[k] * ns + j] = v;
  }
}

extern "C" int gk_dispatch(const uint8_t *xq, const float *xsf, int64_t t, int64_t h, int topk, const int32_t *pos,
                           uint8_t *yq, float *ysf, cudaStream_t s) {
  if (h % 128 || topk < 1 || topk > GK_MAX_TOPK || t < 0) return (int)cudaErrorInvalidValue;
  if (t == 0) return 0;
  k_dispatch<<<(unsigned)t, GK_PERMUTE_THREADS, 0, s>>>(xq, xsf, h, topk, pos, yq, ysf);
  return (int)cudaGetLastError();
}

__global__ void __launch_bounds__(GK_PERMUTE_THREADS) k_combine(const uint16_t *__restrict__ ye,
                                                                 const float *__restrict__ w,
                                                                 const int32_t *__restrict__ pos, int64_t h, int topk,
                                                                 uint16_t *__restrict__ out) {
  __shared__ int32_t src[GK_MAX_TOPK];
  __shared__ float wt[GK_MAX_TOPK];
  const int64_t tok = blockIdx.x;
  if (threadIdx.x < topk) {
    src[threadIdx.x] = pos[tok * topk + threadIdx.x];
    wt[threadIdx.x] = w[tok * topk + threadIdx.x];
  }
  __syncthreads();
  const int64_t chunks = h / 8;
  for (int64_t c = threadIdx.x; c < chunks; c += GK_PERMUTE_THREADS) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < topk; k++) {
      if (src[k] < 0) continue;
      const uint4 v = __ldg(reinterpret_cast<const uint4 *>(ye + (int64_t)src[k] * h) + c);
      const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int i = 0; i < 4; i++) {
        acc[2 * i] = __fadd_rn(acc[2 * i], __fmul_rn(wt[k], __uint_as_float(u[i] << 16)));
        acc[2 * i + 1] = __fadd_rn(acc[2 * i + 1], __fmul_rn(wt[k], __uint_as_float(u[i] & 0xffff0000u)));
      }
    }
    uint32_t o[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const __nv_bfloat162 p = __floats2bfloat162_rn(acc[2 * i], acc[2 * i + 1]);
      o[i] = *reinterpret_cast<const uint32_t *>(&p);
    }
    reinterpret_cast<uint4 *>(out + tok * h)[c] = make_uint4(o[0], o[1], o[2], o[3]);
  }
}

extern "C" int gk_combine(const uint16_t *ye, const float *w, const int32_t *pos, int64_t t, int64_t h, int topk,
                          uint16_t *out, cudaStream_t s) {
  if (h % 8 || topk < 1 || topk > GK_MAX_TOPK || t < 0) return (int)cudaErrorInvalidValue;
  if (t == 0) return 0;
  k_combine<<<(unsigned)t, GK_PERMUTE_THREADS, 0, s>>>(ye, w, pos, h, topk, out);
  return (int)cudaGetLastError();
}

__global__ void k_copy16(const uint4 *__restrict__ src, uint4 *__restrict__ dst, uint64_t n16) {
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n16; i += (uint64_t)gridDim.x * blockDim.x)
    dst[i] = __ldg(src + i);
}

__global__ void k_copy1(const uint8_t *__restrict__ src, uint8_t *__restrict__ dst, uint64_t n) {
  const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i];
}

extern "C" int gk_copy(const void *src, void *dst, uint64_t bytes, cudaStream_t s) {
  static int sms = 0; /* of the first device used: enough for sizing a grid-stride loop */
  if (sms == 0) {
    int dev = 0, n = 132;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) n = 132;
    sms = n;
  }
  const uint64_t n16 = bytes / 16;
  if (n16) {
    uint64_t blocks = (n16 + 511) / 512;
    if (blocks > (uint64_t)sms * 8) blocks = (uint64_t)sms * 8;
    k_copy16<<<(unsigned)blocks, 512, 0, s>>>((const uint4 *)src, (uint4 *)dst, n16);
  }
  if (bytes % 16)
    k_copy1<<<1, 16, 0, s>>>((const uint8_t *)src + n16 * 16, (uint8_t *)dst + n16 * 16, bytes % 16);
  return (int)cudaGetLastError();
}

__global__ void k_fill_fp8(uint8_t *p, uint64_t n, uint64_t seed) {
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    p[i] = gk_fp8_e4m3(seed, i);
}

__global__ void k_fill_scale(float *p, uint64_t n, uint64_t seed) {
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    p[i] = gk_scale(seed, i);
}

__global__ void k_fill_bf16(uint16_t *p, uint64_t n, uint64_t seed) {
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (uint64_t)gridDim.x * blockDim.x)
    p[i] = gk_bf16(seed, i);
}

static unsigned fill_blocks(uint64_t n) { return (unsigned)(n / 256 + 1 < 65536 ? n / 256 + 1 : 65536); }

extern "C" int gk_fill_fp8(uint8_t *p, uint64_t n, uint64_t seed, cudaStream_t s) {
  k_fill_fp8<<<fill_blocks(n), 256, 0, s>>>(p, n, seed);
  return (int)cudaGetLastError();
}

extern "C" int gk_fill_scale(float *p, uint64_t n, uint64_t seed, cudaStream_t s) {
  k_fill_scale<<<fill_blocks(n), 256, 0, s>>>(p, n, seed);
  return (int)cudaGetLastError();
}

extern "C" int gk_fill_bf16(uint16_t *p, uint64_t n, uint64_t seed, cudaStream_t s) {
  k_fill_bf16<<<fill_blocks(n), 256, 0, s>>>(p, n, seed);
  return (int)cudaGetLastError();
}
