/* kernels/cuda/gk_fp8.h — FP8 conversions written once for the GPU and the host: the device
 * quantizers (quant.cu) must be bit-identical to kernels/ref/quant_ref.c, whose encoders are
 * kernels/dtype.c's f32_to_fp8_e4m3/e5m2 (round to nearest even on the float's bits, saturating
 * finite overflow, E4M3 maps +-Inf to +-448, E5M2 keeps +-Inf, NaN stays NaN with dtype.c's codes).
 * These use integer operations only, so nvcc's device code and the host compiler agree; the test
 * checks them against dtype.c over millions of float patterns. */
#ifndef MOESIM_GK_FP8_H
#define MOESIM_GK_FP8_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define GK_FP8_HD __host__ __device__ __forceinline__
#else
#define GK_FP8_HD static inline
#endif

GK_FP8_HD uint32_t gk_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

GK_FP8_HD float gk_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* float -> FP8 bits (e5m2 = 0: E4M3, 1: E5M2). */
GK_FP8_HD uint8_t gk_f32_to_fp8(float f, int e5m2) {
  const uint32_t u = gk_f32_bits(f), a = u & 0x7fffffffu;
  const uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
  const int mbits = e5m2 ? 2 : 3, bias = e5m2 ? 15 : 7;
  const uint32_t maxcode = e5m2 ? 0x7bu : 0x7eu;
  const uint32_t maxbits = e5m2 ? 0x47600000u /* 57344 */ : 0x43e00000u /* 448 */;
  if (a > 0x7f800000u) return (uint8_t)(sign | (e5m2 ? 0x7eu : 0x7fu)); /* NaN */
  if (e5m2 && a == 0x7f800000u) return (uint8_t)(sign | 0x7cu);        /* Inf (E5M2 keeps it) */
  if (a >= maxbits) return (uint8_t)(sign | maxcode);                    /* saturate (E4M3 Inf too) */
  if (a == 0) return sign;
  const int efield = (int)(a >> 23);
  const int emin = 1 - bias;
  const uint32_t mant = a & 0x7fffffu;
  uint32_t code;
  if (efield - 127 < emin) {
    /* Subnormal target: q = sig * 2^(efield' - 150 + mbits - emin), rounded to nearest even. */
    const uint32_t sig = efield ? (mant | 0x800000u) : mant;
    const int shift = 150 - (efield ? efield : 1) - mbits + emin;
    if (shift > 24) return sign; /* below half the smallest subnormal */
    const uint32_t keep = sig >> shift, rest = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    code = keep + ((rest > half || (rest == half && (keep & 1u))) ? 1u : 0u);
  } else {
    const int drop = 23 - mbits;
    const uint32_t keep = mant >> drop, rest = mant & ((1u << drop) - 1u), half = 1u << (drop - 1);
    code = ((uint32_t)(efield - 127 + bias) << mbits) + keep +
           ((rest > half || (rest == half && (keep & 1u))) ? 1u : 0u);
  }
  if (code > maxcode) code = maxcode;
  return (uint8_t)(sign | code);
}

/* FP8 bits -> float, exact (NaN and E5M2 infinities included). */
GK_FP8_HD float gk_fp8_to_f32(uint32_t b, int e5m2) {
  const uint32_t sign = (b & 0x80u) << 24;
  if (e5m2) {
    if ((b & 0x7cu) == 0x7cu) return gk_bits_f32(sign | 0x7f800000u | ((b & 3u) << 21));
    return gk_bits_f32(sign | ((b & 0x7fu) << 21)) * 0x1p112f;
  }
  if ((b & 0x7fu) == 0x7fu) return gk_bits_f32(sign | 0x7fc00000u);
  return gk_bits_f32(sign | ((b & 0x7fu) << 20)) * 0x1p120f;
}

/* kernels/ref/quant_ref.c's scale: max(amax, 1e-4) / fp8_max, optionally rounded up to 2^k. */
GK_FP8_HD float gk_quant_scale(float amax, int e5m2, int pow2) {
  const float a = amax > 1e-4f ? amax : 1e-4f;
  float s = a / (e5m2 ? 57344.0f : 448.0f);
  if (pow2) {
    uint32_t u = gk_f32_bits(s);
    if (u & 0x7fffffu) u = (u & 0xff800000u) + 0x800000u;
    s = gk_bits_f32(u);
  }
  return s;
}

#endif
