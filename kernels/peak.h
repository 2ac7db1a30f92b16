/* kernels/peak.h — the measured peak of this CPU's arithmetic units, the denominator of every
 * "fraction of peak" and of the efficiency the simulator carries from a measured kernel to a
 * target device. Measured with independent dependency chains of the widest instruction the CPU
 * has (vdpbf16ps for BF16 where present; FMA otherwise), on every thread of a pool at once. */
#ifndef MOESIM_PEAK_H
#define MOESIM_PEAK_H

#include "pool.h"

/* Peak BF16 dot-product throughput of the pool's threads together, in TFLOP/s (a multiply and an
 * add count as 2 FLOP), with the best path this CPU has: vdpbf16ps (AVX-512 BF16), else FP32 FMA
 * on converted operands (AVX-512F / AVX2 FMA), else scalar. `path` (may be NULL) receives its name. */
double peak_bf16_tflops(pool *tp, const char **path);

/* Peak FP32 FMA throughput of the pool's threads together, TFLOP/s. */
double peak_fp32_tflops(pool *tp, const char **path);

#endif
