/* kernels/cpu_isa.h — what the CPU can execute, read once with CPUID/XGETBV. Kernel registries use
 * it to pick the fastest path at run time, so one binary runs on any x86-64 (and non-x86 builds
 * report no extensions). */
#ifndef MOESIM_CPU_ISA_H
#define MOESIM_CPU_ISA_H

typedef struct cpu_isa {
  int sse42;       /* SSE4.2 */
  int avx;         /* AVX with OS support for YMM state */
  int avx2;        /* AVX2 */
  int fma;         /* FMA3 */
  int f16c;        /* half-precision conversions */
  int avx512f;     /* AVX-512 Foundation with OS support for ZMM state */
  int avx512bw;    /* AVX-512 byte/word */
  int avx512vl;    /* AVX-512 vector length extensions */
  int avx512dq;    /* AVX-512 doubleword/quadword */
  int avx512vnni;  /* AVX-512 VNNI */
  int avx512bf16;  /* AVX-512 BF16 (vdpbf16ps, vcvtne2ps2bf16) */
  int avx512fp16;  /* AVX-512 FP16 */
  int amx_tile;    /* AMX tiles with OS support */
  int amx_bf16;    /* AMX BF16 */
  int amx_int8;    /* AMX INT8 */
  char vendor[13]; /* "GenuineIntel", "AuthenticAMD", ... */
  char brand[49];  /* processor brand string */
} cpu_isa;

/* The ISA of this CPU (computed once, thread-safe after the first call returns). */
const cpu_isa *cpu_isa_get(void);

/* Environment override for tests and comparisons: MOESIM_ISA=scalar|avx2|avx512|avx512bf16 caps
 * what cpu_isa_best() reports (never raises it). */
typedef enum cpu_level { CPU_SCALAR = 0, CPU_AVX2, CPU_AVX512, CPU_AVX512BF16 } cpu_level;

/* Highest kernel level usable here: AVX512BF16 needs avx512f+bw+vl+dq+bf16; AVX512 needs
 * avx512f+bw+vl+dq; AVX2 needs avx2+fma+f16c. Honours MOESIM_ISA. */
cpu_level cpu_isa_best(void);
const char *cpu_level_name(cpu_level l);

#endif
