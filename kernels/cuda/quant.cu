/* kernels/cuda/quant.cu — FP8 quantization on the GPU, bit-identical to kernels/ref/quant_ref.c
 * (same amax over finite values, same scale formula, q = fp8(x * (1 / scale)) with gk_fp8.h's
 * round-to-nearest-even encoder).
 *
 * quant_token (the fused per-token 1x128 quantizer activations go through before dispatch and the
 * FP8 GEMM): half a warp per 128-element tile, 16-byte loads (8 BF16 per lane), the tile's amax by
 * four xor-shuffles, 8-byte FP8 stores, the scale written row-major or M-major (what the GEMM and
 * cuBLASLt read). quant_block (weights, 128x128 blocks): one CTA per block. dequant_token: FP8 and
 * scales back to BF16. Rows of h elements with h a multiple of 128. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "cuda/gk.h"
#include "cuda/gk_fp8.h"

extern "C" uint8_t gk_f32_to_fp8_host(float f, int e5m2) { return gk_f32_to_fp8(f, e5m2); }
extern "C" float gk_fp8_to_f32_host(uint8_t b, int e5m2) { return gk_fp8_to_f32(b, e5m2); }
extern "C" float gk_quant_scale_host(float amax, int e5m2, int pow2) { return gk_quant_scale(amax, e5m2, pow2); }

static __device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

/* Largest finite |v| of 8 BF16 values packed in a uint4 (NaN/Inf ignored, as the reference does). */
static __device__ __forceinline__ float amax8(uint4 v, float *f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  float a = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = bf16_bits_to_f32(w[i] & 0xffffu);
    f[2 * i + 1] = bf16_bits_to_f32(w[i] >> 16);
  }
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const float x = fabsf(f[i]);
    if (isfinite(x) && x > a) a = x;
  }
  return a;
}

__global__ void __launch_bounds__(256) k_quant_token(const uint16_t *__restrict__ x, int64_t t, int64_t h, int e5m2,
                                                     int pow2, uint8_t *__restrict__ q, float *__restrict__ sf,
                                                     int sf_mmajor, int64_t sf_ld) {
  const int64_t tiles_per_row = h / 128;
  const int64_t tile = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 16;
  const int sub = threadIdx.x % 16;
  const bool live = tile < t * tiles_per_row;
  const int64_t row = live ? tile / tiles_per_row : 0, j = live ? tile % tiles_per_row : 0;
  const int64_t off = row * h + j * 128 + sub * 8;
  float f[8];
  float a = 0.0f;
  if (live) a = amax8(*reinterpret_cast<const uint4 *>(x + off), f);
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
  if (!live) return;
  const float s = gk_quant_scale(a, e5m2, pow2);
  const float inv = 1.0f / s;
  uint32_t lo = 0, hi = 0;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    lo |= (uint32_t)gk_f32_to_fp8(f[i] * inv, e5m2) << (8 * i);
    hi |= (uint32_t)gk_f32_to_fp8(f[4 + i] * inv, e5m2) << (8 * i);
  }
  *reinterpret_cast<uint2 *>(q + off) = make_uint2(lo, hi);
  if (sub == 0) {
    if (sf_mmajor) sf[j * sf_ld + row] = s;
    else sf[row * tiles_per_row + j] = s;
  }
}

extern "C" int gk_quant_token(const uint16_t *x, int64_t t, int64_t h, int fmt, int pow2, uint8_t *q, float *sf,
                              int sf_mmajor, int64_t sf_ld, cudaStream_t s) {
  if (h % 128 || t < 0 || (sf_mmajor && sf_ld < t)) return (int)cudaErrorInvalidValue;
  const int64_t threads = t * (h / 128) * 16;
  if (threads == 0) return 0;
  const int64_t blocks = (threads + 255) / 256;
  k_quant_token<<<(unsigned)blocks, 256, 0, s>>>(x, t, h, fmt == GK_E5M2, pow2, q, sf, sf_mmajor, sf_ld);
  return (int)cudaGetLastError();
}

/* One CTA per 128x128 block: thread (ty, tx) covers columns 8 tx .. 8 tx + 7 of rows ty, ty + 16, ... */
__global__ void __launch_bounds__(256) k_quant_block(const uint16_t *__restrict__ w, int64_t rows, int64_t cols,
                                                     int e5m2, int pow2, uint8_t *__restrict__ q,
                                                     float *__restrict__ sf) {
  __shared__ float warp_max[8];
  const int64_t nbc = cols / 128;
  const int64_t br = blockIdx.x / nbc, bc = blockIdx.x % nbc;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float f[8][8];
  float a = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const int64_t r = br * 128 + ty + 16 * i;
    if (r < rows) a = fmaxf(a, amax8(*reinterpret_cast<const uint4 *>(w + r * cols + bc * 128 + tx * 8), f[i]));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = a;
  __syncthreads();
  a = warp_max[0];
  for (int i = 1; i < 8; i++) a = fmaxf(a, warp_max[i]);
  const float s = gk_quant_scale(a, e5m2, pow2);
  const float inv = 1.0f / s;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const int64_t r = br * 128 + ty + 16 * i;
    if (r >= rows) continue;
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int e = 0; e < 4; e++) {
      lo |= (uint32_t)gk_f32_to_fp8(f[i][e] * inv, e5m2) << (8 * e);
      hi |= (uint32_t)gk_f32_to_fp8(f[i][4 + e] * inv, e5m2) << (8 * e);
    }
    *reinterpret_cast<uint2 *>(q + r * cols + bc * 128 + tx * 8) = make_uint2(lo, hi);
  }
  if (threadIdx.x == 0) sf[br * nbc + bc] = s;
}

extern "C" int gk_quant_block(const uint16_t *w, int64_t rows, int64_t cols, int fmt, int pow2, uint8_t *q,
                              float *sf, cudaStream_t s) {
  if (cols % 128 || rows < 0) return (int)cudaErrorInvalidValue;
  const int64_t blocks = (rows + 127) / 128 * (cols / 128);
  if (blocks == 0) return 0;
  k_quant_block<<<(unsigned)blocks, 256, 0, s>>>(w, rows, cols, fmt == GK_E5M2, pow2, q, sf);
  return (int)cudaGetLastError();
}

/* Each thread: 8 FP8 values -> 8 BF16 (one 16-byte store). */
__global__ void k_dequant_token(const uint8_t *__restrict__ q, const float *__restrict__ sf, int64_t t, int64_t h,
                                int e5m2, uint16_t *__restrict__ y) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; /* 8-element chunk */
  if (i >= t * h / 8) return;
  const int64_t off = i * 8, row = off / h, col = off % h;
  const float s = sf[row * (h / 128) + col / 128];
  const uint2 v = *reinterpret_cast<const uint2 *>(q + off);
  uint32_t out[4];
#pragma unroll
  for (int e = 0; e < 4; e++) {
    const uint32_t b0 = ((e < 2 ? v.x : v.y) >> (16 * (e % 2))) & 0xffu;
    const uint32_t b1 = ((e < 2 ? v.x : v.y) >> (16 * (e % 2) + 8)) & 0xffu;
    const __nv_bfloat162 p = __floats2bfloat162_rn(gk_fp8_to_f32(b0, e5m2) * s, gk_fp8_to_f32(b1, e5m2) * s);
    out[e] = *reinterpret_cast<const uint32_t *>(&p);
  }
  *reinterpret_cast<uint4 *>(y + off) = make_uint4(out[0], out[1], out[2], out[3]);
}

extern "C" int gk_dequant_token(const uint8_t *q, const float *sf, int64_t t, int64_t h, int fmt, uint16_t *y,
                                cudaStream_t s) {
  if (h % 128 || t < 0) return (int)cudaErrorInvalidValue;
  const int64_t chunks = t * h / 8;
  if (chunks == 0) return 0;
  k_dequant_token<<<(unsigned)((chunks + 255) / 256), 256, 0, s>>>(q, sf, t, h, fmt == GK_E5M2, y);
  return (int)cudaGetLastError();
}
