/* sim/hwcat.h — the hardware catalogue: GPUs, NICs, switches and cables with their datasheet
 * figures (and the few calibrated model parameters), loaded from topologies/hardware.yaml.
 *
 * Units follow the key names: *_gbps is gigabits per second (network convention: a "400G" NIC is
 * bw_gbps: 400), *_gbyte_s is gigabytes (1e9 bytes) per second (memory and NVLink convention),
 * *_tflops is dense tensor-core TFLOP/s, *_ns nanoseconds, *_usd US dollars.
 *
 * The catalogue file holds four mappings, each entry named by its key:
 *
 *   gpus:     {h800: {sms: 132, fp8_tflops: 1979, ...}, ...}
 *   nics:     {cx7-400g: {bw_gbps: 400, ...}, ...}
 *   switches: {qm9700: {radix: 64, port_gbps: 400, ...}, ...}
 *   cables:   {osfp-400g-optical: {price_usd: ..., latency_ns: ...}, ...}
 *
 * A topology names an entry and may override any of its fields in place:
 *   gpu: {model: h800, copy_gbyte_s_per_sm: 14}
 * Fields start "unset" (NaN / -1 / NULL); hwcat_*_merge() fills the unset ones from the named
 * catalogue entry, and hwcat_*_check() reports what is still missing. */
#ifndef MOESIM_HWCAT_H
#define MOESIM_HWCAT_H

#include <stddef.h>

#include "cfg.h"

typedef struct hw_gpu {
  char *model;                       /* catalogue entry name (NULL for an inline definition) */
  int sms;                           /* streaming multiprocessors */
  double fp8_tflops;                 /* dense FP8 tensor-core peak, TFLOP/s */
  double bf16_tflops;                /* dense BF16 tensor-core peak, TFLOP/s */
  double hbm_gib;                    /* HBM capacity, GiB */
  double hbm_gbyte_s;                /* HBM bandwidth, GB/s */
  double scaleup_gbyte_s;            /* datasheet scale-up (NVLink) bandwidth per direction, GB/s */
  double scaleup_achievable_gbyte_s; /* usable scale-up bandwidth per direction, GB/s (the model's) */
  double scaleup_latency_ns;         /* one scale-up hop (GPU to switch or switch to GPU), ns */
  double copy_gbyte_s_per_sm;        /* payload one SM moves per second in a communication kernel, GB/s
                                        (calibrated; see the catalogue) */
  double rdma_msg_overhead_ns;       /* NIC time each GPU-initiated RDMA message costs beyond its bytes,
                                        ns (calibrated; see the catalogue) */
  double price_usd;                  /* purchase price assumption, USD */
  double rent_usd_per_hour;          /* rental price assumption, USD per GPU-hour */
} hw_gpu;

typedef struct hw_nic {
  char *model;          /* catalogue entry name */
  double bw_gbps;       /* line rate per port, Gb/s */
  int ports;            /* ports (planes) per NIC; each port carries bw_gbps */
  double mtu_bytes;     /* payload bytes per packet */
  double header_bytes;  /* wire bytes per packet beyond the payload (headers, CRCs, framing) */
  double latency_ns;    /* one-way processing latency of one NIC end (send or receive), ns */
  double price_usd;     /* price assumption per NIC, USD */
} hw_nic;

typedef struct hw_switch {
  char *model;       /* catalogue entry name */
  int radix;         /* ports */
  double port_gbps;  /* per-port rate, Gb/s */
  double latency_ns; /* port-to-port latency, ns */
  double price_usd;  /* price assumption, USD */
} hw_switch;

typedef struct hw_cable {
  char *model;       /* catalogue entry name */
  double latency_ns; /* propagation latency, ns */
  double price_usd;  /* price per link, both transceivers included, USD */
} hw_cable;

/* The whole catalogue; entries owned by the cfg_ctx that loaded it. */
typedef struct hwcat {
  hw_gpu *gpus;        /* gpus[n_gpus] */
  size_t n_gpus;
  hw_nic *nics;        /* nics[n_nics] */
  size_t n_nics;
  hw_switch *switches; /* switches[n_switches] */
  size_t n_switches;
  hw_cable *cables;    /* cables[n_cables] */
  size_t n_cables;
} hwcat;

/* Key tables for the entries; the *_ref tables add `model:` (a catalogue entry to start from). */
extern const cfg_key hwcat_gpu_keys[], hwcat_gpu_ref_keys[];
extern const cfg_key hwcat_nic_keys[], hwcat_nic_ref_keys[];
extern const cfg_key hwcat_switch_keys[], hwcat_switch_ref_keys[];
extern const cfg_key hwcat_cable_keys[], hwcat_cable_ref_keys[];

/* Marks every field unset (call before binding). */
void hwcat_gpu_unset(hw_gpu *g);
void hwcat_nic_unset(hw_nic *n);
void hwcat_switch_unset(hw_switch *s);
void hwcat_cable_unset(hw_cable *c);

/* Loads a catalogue file into `cat` (memory owned by ctx). Returns 0, or -1 after printing
 * path:line:col errors. Every entry must be complete. */
int hwcat_load(cfg_ctx *ctx, const char *path, hwcat *cat);

/* Fills the unset fields of `x` from the catalogue entry x->model (when model is set), then checks
 * that nothing required is missing. `at` is the node errors point to. Returns 0 or -1. */
int hwcat_gpu_resolve(cfg_ctx *ctx, const hwcat *cat, hw_gpu *x, const cfg_node *at);
int hwcat_nic_resolve(cfg_ctx *ctx, const hwcat *cat, hw_nic *x, const cfg_node *at);
int hwcat_switch_resolve(cfg_ctx *ctx, const hwcat *cat, hw_switch *x, const cfg_node *at);
int hwcat_cable_resolve(cfg_ctx *ctx, const hwcat *cat, hw_cable *x, const cfg_node *at);

/* Payload fraction of a NIC's line rate: mtu / (mtu + header). */
double hwcat_nic_payload_fraction(const hw_nic *n);

/* Built-in entries matching topologies/hardware.yaml for H800, CX7 and QM9700, for tests and
 * benchmarks that must not depend on files. */
hw_gpu hwcat_builtin_h800(void);
hw_nic hwcat_builtin_cx7(void);
hw_switch hwcat_builtin_qm9700(void);
hw_cable hwcat_builtin_optical_400g(void);

#endif
