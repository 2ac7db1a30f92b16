/* kernels/krand.h — the small seeded random number generator of the kernel suite: splitmix64
 * (Vigna), with uniform and normal draws. Same seed, same numbers, on every machine: kernel inputs,
 * synthetic activations and test vectors are reproducible. Header-only (static inline). */
#ifndef MOESIM_KRAND_H
#define MOESIM_KRAND_H

#include <math.h>
#include <stdint.h>

typedef struct krand {
  uint64_t s; /* splitmix64 state */
} krand;

/* A generator for `seed`; distinct seeds give independent-looking streams. */
static inline krand krand_seed(uint64_t seed) {
  krand r = {seed ^ 0x6a09e667f3bcc909ull};
  return r;
}

/* Next 64 random bits. */
static inline uint64_t krand_u64(krand *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double krand_unif(krand *r) { return (double)(krand_u64(r) >> 11) * 0x1p-53; }

/* Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-32 for n < 2^32). */
static inline uint64_t krand_below(krand *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)krand_u64(r) * n) >> 64);
}

/* Standard normal (Box-Muller, one value per call; deterministic). */
static inline double krand_normal(krand *r) {
  double u1 = krand_unif(r), u2 = krand_unif(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
