/* kernels/cuda/gk_rand.h — counter-based random numbers that the GPU and the host compute alike.
 * Large benchmark operands (a 4096 x 16384 FP8 matrix) are generated on the device by index, and
 * the host recomputes any element from (seed, index) to check sampled outputs of a timed kernel
 * against the CPU without copying the operands back. splitmix64's finaliser is the hash. */
#ifndef MOESIM_GK_RAND_H
#define MOESIM_GK_RAND_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define GK_HD __host__ __device__ __forceinline__
#else
#define GK_HD static inline
#endif

/* splitmix64 of seed + index: 64 well-mixed bits for element `i` of stream `seed`. */
GK_HD uint64_t gk_hash(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [-1, 1): 24 random bits. */
GK_HD float gk_uniform(uint64_t seed, uint64_t i) {
  return (float)(int32_t)((uint32_t)(gk_hash(seed, i) >> 40) - (1u << 23)) * (1.0f / 8388608.0f);
}

/* A random FP8 E4M3 bit pattern that is finite (0x7f/0xff are NaN in E4M3, mapped to 0x7e/0xfe). */
GK_HD uint8_t gk_fp8_e4m3(uint64_t seed, uint64_t i) {
  uint8_t b = (uint8_t)(gk_hash(seed, i) >> 32);
  return (b & 0x7f) == 0x7f ? (uint8_t)(b - 1) : b;
}

/* A positive scale in [2^-8, 2^-4): what 1x128 / 128x128 scales of unit-range data look like. */
GK_HD float gk_scale(uint64_t seed, uint64_t i) {
  uint64_t h = gk_hash(seed, i);
  float mant = 1.0f + (float)(h >> 41) * (1.0f / 8388608.0f); /* [1, 2) */
  int e = (int)((h >> 8) & 3) - 8;                             /* -8 .. -5 */
  return mant * (float)(1 << (e + 16)) * (1.0f / 65536.0f);
}

/* A BF16 bit pattern of a uniform value in [-1, 1) (rounded to nearest even). */
GK_HD uint16_t gk_bf16(uint64_t seed, uint64_t i) {
  float f = gk_uniform(seed, i);
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

#endif
