/* kernels/cpu_isa.c — CPUID/XGETBV decoding (see cpu_isa.h). A feature counts only when the OS also
 * saves the register state it needs (XCR0), as an instruction would otherwise fault. */
#include "cpu_isa.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}
#endif

static cpu_isa isa;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

static void isa_init(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return;
  unsigned max_leaf = a;
  memcpy(isa.vendor, &b, 4);
  memcpy(isa.vendor + 4, &d, 4);
  memcpy(isa.vendor + 8, &c, 4);
  __get_cpuid(1, &a, &b, &c, &d);
  int osxsave = (c >> 27) & 1;
  unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  int ymm_ok = (xcr0 & 0x6) == 0x6;
  int zmm_ok = (xcr0 & 0xe6) == 0xe6;
  int amx_ok = (xcr0 & 0x60000) == 0x60000;
  isa.sse42 = (c >> 20) & 1;
  isa.avx = ((c >> 28) & 1) && ymm_ok;
  isa.fma = ((c >> 12) & 1) && ymm_ok;
  isa.f16c = ((c >> 29) & 1) && ymm_ok;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    isa.avx2 = ((b >> 5) & 1) && ymm_ok;
    isa.avx512f = ((b >> 16) & 1) && zmm_ok;
    isa.avx512dq = ((b >> 17) & 1) && zmm_ok;
    isa.avx512bw = ((b >> 30) & 1) && zmm_ok;
    isa.avx512vl = ((b >> 31) & 1) && zmm_ok;
    isa.avx512vnni = ((c >> 11) & 1) && zmm_ok;
    isa.avx512fp16 = ((d >> 23) & 1) && zmm_ok;
    isa.amx_bf16 = ((d >> 22) & 1) && amx_ok;
    isa.amx_tile = ((d >> 24) & 1) && amx_ok;
    isa.amx_int8 = ((d >> 25) & 1) && amx_ok;
    unsigned sub = a;
    if (sub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      isa.avx512bf16 = ((a >> 5) & 1) && zmm_ok;
    }
  }
  unsigned ext = __get_cpuid_max(0x80000000, NULL);
  if (ext >= 0x80000004) {
    unsigned *w = (unsigned *)isa.brand;
    for (unsigned leaf = 0; leaf < 3; leaf++) __get_cpuid(0x80000002 + leaf, &w[4 * leaf], &w[4 * leaf + 1], &w[4 * leaf + 2], &w[4 * leaf + 3]);
    isa.brand[48] = '\0';
    /* trim leading and trailing spaces */
    char *s = isa.brand;
    while (*s == ' ') s++;
    memmove(isa.brand, s, strlen(s) + 1);
    for (size_t n = strlen(isa.brand); n > 0 && isa.brand[n - 1] == ' '; n--) isa.brand[n - 1] = '\0';
  }
#endif
}

const cpu_isa *cpu_isa_get(void) {
  pthread_once(&isa_once, isa_init);
  return &isa;
}

static const char *const level_names[] = {"scalar", "avx2", "avx512", "avx512bf16"};

const char *cpu_level_name(cpu_level l) { return (unsigned)l <= CPU_AVX512BF16 ? level_names[l] : "?"; }

cpu_level cpu_isa_best(void) {
  const cpu_isa *i = cpu_isa_get();
  cpu_level l = CPU_SCALAR;
  if (i->avx2 && i->fma && i->f16c) l = CPU_AVX2;
  if (l == CPU_AVX2 && i->avx512f && i->avx512bw && i->avx512vl && i->avx512dq) l = CPU_AVX512;
  if (l == CPU_AVX512 && i->avx512bf16) l = CPU_AVX512BF16;
  const char *cap = getenv("MOESIM_ISA");
  if (cap) {
    for (int k = 0; k <= CPU_AVX512BF16; k++)
      if (strcmp(cap, level_names[k]) == 0 && (cpu_level)k < l) l = (cpu_level)k;
  }
  return l;
}
