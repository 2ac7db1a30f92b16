/* sim/cmd_hw.c — `moesim hw`: what this machine offers (hw.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hw.h"
#include "util.h"

int cmd_hw(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      printf("usage: moesim hw\n\n"
             "Prints what this machine offers: the hwloc topology (packages, cores, PUs, caches,\n"
             "NUMA nodes, PCI GPUs and NICs), the CPU's instruction set extensions (CPUID) and the\n"
             "kernel path moesim will use, PAPI's hardware counters (or why there are none), and\n"
             "the CUDA GPUs (or why there are none).\n\n"
             "  -h, --help   this text\n\n"
             "environment: MOESIM_ISA=scalar|avx2|avx512|avx512bf16 caps the kernel path.\n");
      return 0;
    }
    fprintf(stderr, "moesim hw: error: unknown option '%s'\nusage: moesim hw [--help]\n", argv[i]);
    return UTIL_EXIT_USAGE;
  }
  hw_info hw;
  hw_probe(&hw);
  hw_print(stdout, &hw);
  return 0;
}
