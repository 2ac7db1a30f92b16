/* kernels/dtype.c — FP8 encode/decode (see dtype.h). The decoders are exact formulas; the
 * encoders work on the float's bits so that rounding is exactly round-to-nearest-even at every
 * exponent, subnormals included. Tests compare both against tables built independently. */
#include "dtype.h"

#include <math.h>

static const char *const dtype_names[KN_DTYPE_COUNT] = {"fp32", "bf16", "fp8_e4m3", "fp8_e5m2"};

const char *kn_dtype_name(kn_dtype t) { return (unsigned)t < KN_DTYPE_COUNT ? dtype_names[t] : "?"; }

int kn_dtype_parse(const char *name) {
  for (int i = 0; i < KN_DTYPE_COUNT; i++)
    if (strcmp(name, dtype_names[i]) == 0) return i;
  return -1;
}

/* Generic decoder for a 1.E.M format with bias 2^(E-1)-1. */
static float fp8_decode(fp8_t x, int ebits, int mbits) {
  int sign = x >> 7;
  int e = (x >> mbits) & ((1 << ebits) - 1);
  int m = x & ((1 << mbits) - 1);
  int bias = (1 << (ebits - 1)) - 1;
  float v;
  if (e == 0) v = ldexpf((float)m, 1 - bias - mbits);
  else v = ldexpf((float)((1 << mbits) | m), e - bias - mbits);
  return sign ? -v : v;
}

float fp8_e4m3_to_f32(fp8_t x) {
  if ((x & 0x7f) == 0x7f) return NAN;
  return fp8_decode(x, 4, 3);
}

float fp8_e5m2_to_f32(fp8_t x) {
  if ((x & 0x7c) == 0x7c) {
    if (x & 0x03) return NAN;
    return (x & 0x80) ? -INFINITY : INFINITY;
  }
  return fp8_decode(x, 5, 2);
}

/* Rounds |f| (finite, non-negative) to a 1.E.M value with round-to-nearest-even and returns the
 * magnitude code (exponent and mantissa bits) before any saturation. */
static unsigned fp8_round_mag(float a, int ebits, int mbits) {
  int bias = (1 << (ebits - 1)) - 1;
  int emin = 1 - bias; /* exponent of the smallest normal */
  uint32_t u = kn_f32_bits(a);
  int e = (int)((u >> 23) & 0xff) - 127;
  if (a == 0.0f) return 0;
  if (e < emin) {
    /* Subnormal in the target: value = q * 2^(emin - mbits), q an integer rounded RNE. */
    float q = ldexpf(a, mbits - emin);
    float r = nearbyintf(q); /* default rounding mode: to nearest even */
    return (unsigned)r;      /* r == 2^mbits rolls into the smallest normal: same code */
  }
  /* Normal: keep mbits of the 23-bit mantissa with RNE on the dropped bits. */
  uint32_t mant = u & 0x7fffffu;
  int drop = 23 - mbits;
  uint32_t keep = mant >> drop;
  uint32_t rest = mant & ((1u << drop) - 1);
  uint32_t half = 1u << (drop - 1);
  if (rest > half || (rest == half && (keep & 1))) keep++;
  unsigned code = ((unsigned)(e + bias) << mbits) + keep; /* a carry bumps the exponent */
  return code;
}

fp8_t f32_to_fp8_e4m3(float f) {
  uint32_t u = kn_f32_bits(f);
  fp8_t sign = (fp8_t)((u >> 24) & 0x80);
  if (isnan(f)) return (fp8_t)(sign | 0x7f);
  float a = fabsf(f);
  if (a >= FP8_E4M3_MAX) return (fp8_t)(sign | 0x7e);
  unsigned code = fp8_round_mag(a, 4, 3);
  if (code > 0x7e) code = 0x7e; /* rounded past 448: saturate */
  return (fp8_t)(sign | code);
}

fp8_t f32_to_fp8_e5m2(float f) {
  uint32_t u = kn_f32_bits(f);
  fp8_t sign = (fp8_t)((u >> 24) & 0x80);
  if (isnan(f)) return (fp8_t)(sign | 0x7e);
  if (isinf(f)) return (fp8_t)(sign | 0x7c);
  float a = fabsf(f);
  if (a >= FP8_E5M2_MAX) return (fp8_t)(sign | 0x7b);
  unsigned code = fp8_round_mag(a, 5, 2);
  if (code > 0x7b) code = 0x7b;
  return (fp8_t)(sign | code);
}

static float e4m3_tab[256], e5m2_tab[256];
const float *const kn_fp8_e4m3_table = e4m3_tab;
const float *const kn_fp8_e5m2_table = e5m2_tab;

__attribute__((constructor)) static void fp8_tables_init(void) {
  for (int i = 0; i < 256; i++) {
    e4m3_tab[i] = fp8_e4m3_to_f32((fp8_t)i);
    e5m2_tab[i] = fp8_e5m2_to_f32((fp8_t)i);
  }
}
