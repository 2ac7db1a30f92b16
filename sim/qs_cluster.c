/* sim/qs_cluster.c — key table of the skeleton's cluster description (qs_cluster.h). */
#include "qs_cluster.h"

#include <stddef.h>

const cfg_key qs_cluster_keys[] = {
    {.name = "name", .type = CFG_STRING, .offset = offsetof(qs_cluster, name), .flags = CFG_REQUIRED, .doc = "cluster name"},
    {.name = "nodes", .type = CFG_INT32, .offset = offsetof(qs_cluster, nodes), .flags = CFG_REQUIRED | CFG_POSITIVE,
     .doc = "nodes"},
    {.name = "gpus_per_node", .type = CFG_INT32, .offset = offsetof(qs_cluster, gpus_per_node),
     .flags = CFG_REQUIRED | CFG_RANGE, .min = 1, .max = 576, .doc = "GPUs per node (one scale-up domain)"},
    {.name = "gpu_name", .type = CFG_STRING, .offset = offsetof(qs_cluster, gpu_name), .flags = CFG_REQUIRED,
     .doc = "GPU model"},
    {.name = "gpu_bf16_tflops", .type = CFG_DOUBLE, .offset = offsetof(qs_cluster, gpu_bf16_tflops),
     .flags = CFG_REQUIRED | CFG_POSITIVE, .doc = "dense BF16 peak, TFLOP/s"},
    {.name = "gpu_fp8_tflops", .type = CFG_DOUBLE, .offset = offsetof(qs_cluster, gpu_fp8_tflops), .flags = CFG_POSITIVE,
     .doc = "dense FP8 peak, TFLOP/s"},
    {.name = "scaleup_gbyte_s", .type = CFG_DOUBLE, .offset = offsetof(qs_cluster, scaleup_gbyte_s),
     .flags = CFG_REQUIRED | CFG_POSITIVE, .doc = "usable scale-up bandwidth per GPU per direction, GB/s"},
    {.name = "nic_gbit_s", .type = CFG_DOUBLE, .offset = offsetof(qs_cluster, nic_gbit_s),
     .flags = CFG_REQUIRED | CFG_POSITIVE, .doc = "NIC line rate per GPU, Gb/s"},
    {.name = "latency_ns", .type = CFG_DOUBLE, .offset = offsetof(qs_cluster, latency_ns), .flags = CFG_NONNEG,
     .doc = "one-way message latency, ns"},
    CFG_END};
