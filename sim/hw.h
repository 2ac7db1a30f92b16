/* sim/hw.h — what this machine offers, for `moesim hw` and for the metadata that travels with
 * measured kernel rows: the hwloc topology (packages, cores, PUs, caches, NUMA nodes, PCI GPUs and
 * NICs), the CPU's instruction set (CPUID), PAPI's hardware counters (or why there are none), and
 * the CUDA GPUs (or why there are none). */
#ifndef MOESIM_HW_H
#define MOESIM_HW_H

#include <stdint.h>
#include <stdio.h>

#define HW_MAX_PCI 32

typedef struct hw_pci {
  char kind[8];     /* "gpu", "nic" or "other" */
  char name[96];    /* hwloc's name or vendor:device */
  char busid[16];   /* domain:bus:dev.fn */
  char osdev[32];   /* OS device names attached (e.g. "mlx5_0", "cuda0"), comma-free */
} hw_pci;

typedef struct hw_info {
  int packages;          /* sockets */
  int cores;             /* physical cores */
  int pus;               /* hardware threads */
  int numa_nodes;        /* NUMA nodes (>= 1) */
  uint64_t l1d_bytes;    /* per-core L1 data cache */
  uint64_t l2_bytes;     /* L2 per instance */
  uint64_t l3_bytes;     /* L3 per instance */
  int l2_count, l3_count;/* instances */
  uint64_t mem_bytes;    /* total memory */
  int n_pci;             /* entries in pci[] */
  hw_pci pci[HW_MAX_PCI];/* PCI GPUs and NICs found by hwloc */
  char hwloc_version[16];/* hwloc library version */
  int papi_ok;           /* PAPI initialised and has hardware counters */
  int papi_counters;     /* hardware counters of the CPU component */
  char papi_status[256]; /* "N counters (component)" or "not available: <reason>" */
} hw_info;

/* Fills `hw` (never fails: what cannot be discovered is reported as unknown/zero). */
void hw_probe(hw_info *hw);

/* Prints the machine summary `moesim hw` shows (hwloc, CPU ISA, PAPI, CUDA). */
void hw_print(FILE *f, const hw_info *hw);

#endif
