/* kernels/dtype.h — the number formats of the kernel suite and their conversions.
 *
 * BF16 is stored as uint16_t (the top half of an IEEE float32). FP8 is stored as uint8_t in one
 * of two OCP formats: E4M3 ("fn": no infinities, S.1111.111 is NaN, largest finite 448) and E5M2
 * (IEEE-like: infinities and NaNs, largest finite 57344). Conversions to the narrow formats round
 * to nearest even; the FP8 ones saturate finite values to the largest finite number (what
 * DeepSeek's quantizers do after scaling) and keep NaN as NaN. These scalar functions are the
 * truth the vectorised paths are tested against. */
#ifndef MOESIM_DTYPE_H
#define MOESIM_DTYPE_H

#include <stdint.h>
#include <string.h>

typedef uint16_t bf16_t; /* bfloat16 bits */
typedef uint8_t fp8_t;   /* FP8 bits, E4M3 or E5M2 (the format travels beside the data) */

/* Data types as the kernel table names them (dtype column). */
typedef enum kn_dtype {
  KN_FP32 = 0,
  KN_BF16,
  KN_FP8_E4M3,
  KN_FP8_E5M2,
  KN_DTYPE_COUNT
} kn_dtype;

/* "fp32", "bf16", "fp8_e4m3", "fp8_e5m2". */
const char *kn_dtype_name(kn_dtype t);
/* Parses a dtype name; -1 if unknown. */
int kn_dtype_parse(const char *name);

#define FP8_E4M3_MAX 448.0f
#define FP8_E5M2_MAX 57344.0f

static inline float kn_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t kn_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float bf16_to_f32(bf16_t h) { return kn_bits_f32((uint32_t)h << 16); }

/* Round to nearest even; NaN stays a (quiet) NaN. */
static inline bf16_t f32_to_bf16(float f) {
  uint32_t u = kn_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (bf16_t)(u >> 16);
}

/* Decoding: exact (every FP8 value is a float32 value). */
float fp8_e4m3_to_f32(fp8_t x);
float fp8_e5m2_to_f32(fp8_t x);
/* Encoding: round to nearest even, saturate finite overflow (and +-inf for E4M3) to +-max;
 * NaN -> NaN. E5M2 keeps +-inf as +-inf. */
fp8_t f32_to_fp8_e4m3(float f);
fp8_t f32_to_fp8_e5m2(float f);

static inline float fp8_to_f32(fp8_t x, kn_dtype fmt) {
  return fmt == KN_FP8_E5M2 ? fp8_e5m2_to_f32(x) : fp8_e4m3_to_f32(x);
}
static inline fp8_t f32_to_fp8(float f, kn_dtype fmt) {
  return fmt == KN_FP8_E5M2 ? f32_to_fp8_e5m2(f) : f32_to_fp8_e4m3(f);
}
static inline float fp8_max(kn_dtype fmt) { return fmt == KN_FP8_E5M2 ? FP8_E5M2_MAX : FP8_E4M3_MAX; }

/* Decode tables (256 entries each), for kernels that convert by lookup. */
extern const float *const kn_fp8_e4m3_table;
extern const float *const kn_fp8_e5m2_table;

#endif
