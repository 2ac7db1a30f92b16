/* tests/bench/bench_quant.c — FP8 quantizers against memcpy bandwidth measured in the same run.
 *
 * Target (issue 3): each quantizer moves at least 60% of the bytes per second memcpy moves on this
 * machine. Bytes counted for both: read + written (memcpy 2 x size; quant_token from BF16: 2 bytes
 * read + 1 written per element + 4 per 128-element scale). Shapes are DeepSeek-V3 sizes, and a
 * 64 MiB buffer is rewritten before every timed call, so that both stream from memory (7168 x 2048
 * BF16 is 28 MiB: without the flush it sits partly in a 32 MiB L3, and whichever call comes second
 * reads it from there). The quantizer and memcpy calls alternate, each
 * timed 15 times, and the medians are compared (target 0.60), so that noise from other work on the
 * machine affects both alike; the ratio of the fastest calls is printed beside it. Run: make bench
 * (or build/bench/bench_quant). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "krand.h"
#include "pool.h"
#include "quant.h"
#include "util.h"

#define REPS 15

typedef struct cp_job {
  char *dst;        /* destination */
  const char *src;  /* source */
  uint64_t n;       /* bytes */
} cp_job;

static void cp_worker(void *arg, int tid, int nt) {
  cp_job *j = arg;
  uint64_t a = j->n * (uint64_t)tid / (uint64_t)nt, b = j->n * (uint64_t)(tid + 1) / (uint64_t)nt;
  memcpy(j->dst + a, j->src + a, b - a);
}

static double now_s(void) { return (double)util_now_ns() * 1e-9; }

#define FLUSH_BYTES (64u << 20) /* twice the L3 of the machines seen so far */
static char *flush_buf;

/* Evicts the caches' contents (dirty lines included) by rewriting a buffer larger than the LLC. */
static void flush_caches(void) {
  static unsigned char v;
  memset(flush_buf, ++v, FLUSH_BYTES);
}

/* One shape: median GB/s of memcpy and of the quantizer, interleaved; returns their ratio. */
static double bench(pool *tp, const quant_kernels *qk, int block, int64_t m, int64_t k, int pow2) {
  int64_t n = m * k, ns = block ? quant_tiles(m) * quant_tiles(k) : m * quant_tiles(k);
  bf16_t *x = malloc((size_t)n * 2);
  fp8_t *q = NULL; /* 64-byte aligned, as the kernel suite allocates (the quantizers may then stream) */
  if (posix_memalign((void **)&q, 64, (size_t)n ? (size_t)n : 64) != 0) UTIL_SYSFAIL("posix_memalign(%lld): out of memory", (long long)n);
  float *s = malloc((size_t)ns * 4);
  char *cpy = malloc((size_t)n * 2);
  krand r = krand_seed(3);
  for (int64_t i = 0; i < n; i++) x[i] = f32_to_bf16((float)krand_normal(&r));
  memset(q, 0, (size_t)n), memset(cpy, 0, (size_t)n * 2), memset(s, 0, (size_t)ns * 4);
  double tq[REPS], tc[REPS];
  cp_job cj = {cpy, (const char *)x, (uint64_t)n * 2};
  for (int rep = -2; rep < REPS; rep++) { /* two warm-up rounds */
    flush_caches();
    double t0 = now_s();
    pool_run(tp, cp_worker, &cj);
    double t1 = now_s();
    flush_caches();
    double t2 = now_s();
    if (block) quant_block_run(tp, qk, KN_BF16, x, m, k, KN_FP8_E4M3, pow2, q, s);
    else quant_token_run(tp, qk, KN_BF16, x, m, k, KN_FP8_E4M3, pow2, q, s);
    double t3 = now_s();
    if (rep >= 0) tc[rep] = t1 - t0, tq[rep] = t3 - t2;
  }
  double bc = 4.0 * (double)n, bq = 3.0 * (double)n + 4.0 * (double)ns;
  double mc = tc[0], mq = tq[0];
  for (int i = 1; i < REPS; i++) mc = tc[i] < mc ? tc[i] : mc, mq = tq[i] < mq ? tq[i] : mq;
  double gc = bc / hn_median(tc, REPS) * 1e-9, gq = bq / hn_median(tq, REPS) * 1e-9;
  printf("%-11s %-7s %-4s %5lld x %-5lld threads=%d  memcpy %6.1f GB/s  quant %6.1f GB/s  ratio %.3f %-8s"
         "  (best-of-%d ratio %.2f)\n",
         block ? "quant_block" : "quant_token", qk->backend, pow2 ? "pow2" : "", (long long)m, (long long)k,
         pool_threads(tp), gc, gq, gq / gc, gq / gc >= 0.6 ? ">= 0.60" : "< 0.60", REPS, (bq / mq) / (bc / mc));
  free(x), free(q), free(s), free(cpy);
  return gq / gc;
}

int main(void) {
  flush_buf = util_xmalloc(FLUSH_BYTES);
  printf("bench_quant: BF16 -> FP8 E4M3 quantizers vs memcpy (bytes read + written), median of %d\n", REPS);
  printf("this CPU's quantizers: %s (what moesim runs here); %s\n", quant_best()->backend,
         quant_backend(CPU_AVX2) && quant_backend(CPU_AVX2) != quant_best()
             ? "avx2 rows: the fallback of a CPU without AVX-512, run here for reference"
             : "no other backend to compare");
  printf("a quantizer reading at memcpy's read rate scores 0.75 (it writes 1 byte per 2 read; memcpy 2 per 2)\n");
  int rows[2] = {0, 0}, met[2] = {0, 0}; /* [this CPU's backend, the AVX2 fallback] */
  for (int th = 1; th <= 2; th++) {
    pool *tp = pool_create(th, 1);
    const quant_kernels *be[3] = {quant_best(), quant_backend(CPU_AVX2), NULL};
    for (int b = 0; b < 2 && be[b]; b++) {
      if (b == 1 && be[1] == be[0]) break;
      double r[4];
      int nr = 0;
      r[nr++] = bench(tp, be[b], 0, 4096, 7168, 0);
      if (b == 0) r[nr++] = bench(tp, be[b], 0, 4096, 7168, 1);
      r[nr++] = bench(tp, be[b], 1, 4096, 7168, 0);
      r[nr++] = bench(tp, be[b], 1, 7168, 2048, 0);
      for (int i = 0; i < nr; i++) rows[b]++, met[b] += r[i] >= 0.6;
    }
    pool_destroy(tp);
  }
  printf("target (>= 0.60): %s (this CPU's quantizers) %d of %d rows", quant_best()->backend, met[0], rows[0]);
  if (rows[1]) printf("; avx2 (fallback, for reference) %d of %d", met[1], rows[1]);
  printf("\n");
  free(flush_buf);
  return 0;
}
