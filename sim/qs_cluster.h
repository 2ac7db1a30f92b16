/* sim/qs_cluster.h — the small cluster description the walking skeleton (quickstart.c) reads:
 * identical nodes of GPUs on a scale-up switch, one NIC per GPU. The network issue's topology
 * model (fat-trees, multi-plane, PXN) supersedes it. */
#ifndef MOESIM_QS_CLUSTER_H
#define MOESIM_QS_CLUSTER_H

#include "cfg.h"

typedef struct qs_cluster {
  char *name;             /* cluster name */
  int nodes;              /* nodes */
  int gpus_per_node;      /* GPUs per node, all on one NVSwitch */
  char *gpu_name;         /* GPU model */
  double gpu_bf16_tflops; /* dense BF16 tensor peak, TFLOP/s (datasheet) */
  double gpu_fp8_tflops;  /* dense FP8 tensor peak, TFLOP/s (datasheet) */
  double scaleup_gbyte_s; /* usable scale-up bandwidth per GPU per direction, GB/s */
  double nic_gbit_s;      /* NIC line rate per GPU, Gb/s */
  double latency_ns;      /* one-way message latency */
} qs_cluster;

extern const cfg_key qs_cluster_keys[];

#endif
