/* kernels/peak_avx512.c — 512-bit FP32 FMA throughput loop (see peak.c); 12 chains in registers. */
#include <immintrin.h>

double peak_loop_avx512_fma(long iters, float *sink) {
  __m512 c0 = _mm512_set1_ps(1.0f), c1 = _mm512_set1_ps(1.0f), c2 = _mm512_set1_ps(1.0f), c3 = _mm512_set1_ps(1.0f), c4 = _mm512_set1_ps(1.0f), c5 = _mm512_set1_ps(1.0f), c6 = _mm512_set1_ps(1.0f), c7 = _mm512_set1_ps(1.0f), c8 = _mm512_set1_ps(1.0f), c9 = _mm512_set1_ps(1.0f), c10 = _mm512_set1_ps(1.0f), c11 = _mm512_set1_ps(1.0f);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; i++) {
    c0 = _mm512_fmadd_ps(c0, x, y);
    c1 = _mm512_fmadd_ps(c1, x, y);
    c2 = _mm512_fmadd_ps(c2, x, y);
    c3 = _mm512_fmadd_ps(c3, x, y);
    c4 = _mm512_fmadd_ps(c4, x, y);
    c5 = _mm512_fmadd_ps(c5, x, y);
    c6 = _mm512_fmadd_ps(c6, x, y);
    c7 = _mm512_fmadd_ps(c7, x, y);
    c8 = _mm512_fmadd_ps(c8, x, y);
    c9 = _mm512_fmadd_ps(c9, x, y);
    c10 = _mm512_fmadd_ps(c10, x, y);
    c11 = _mm512_fmadd_ps(c11, x, y);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)), _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  *sink = _mm512_reduce_add_ps(s);
  return 12.0 * 32.0 * (double)iters;
}
