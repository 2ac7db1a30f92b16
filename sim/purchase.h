/* sim/purchase.h — what a cluster costs to rent or to buy and run, and which options nothing beats:
 * the arithmetic of the `purchase` experiment kind (sim/purchase_exp.c,
 * experiments/cluster-purchase.yaml), kept apart so tests can check it against hand computations.
 *
 * Rent: GPUs x the catalogue's rental price per GPU-hour (topologies/hardware.yaml); the provider
 * pays for the network, the power and the building.
 *
 * Buy: the purchase (capex) is the GPUs at the catalogue price, the rest of each server (CPUs,
 * memory, NVSwitch baseboard, chassis: host_usd_per_gpu) and the scale-out network the topology
 * model prices (switches, switch-to-switch optics, NICs, NIC-to-switch optics: topo_summarize).
 * An hour of a bought cluster costs
 *   capex / (amortisation_years x 8760 h)                         straight-line amortisation
 * + IT power x PUE x energy price                                 energy
 * + IT power x colocation price per kW-month x 12 / 8760          space, cooling, power plant
 * where IT power = GPUs x the server's power per GPU + switches x the switch's power. The cluster
 * is assumed busy for its whole amortisation period; breakeven_utilisation = buy / rent per hour is
 * the busy fraction above which buying beats renting.
 *
 * Prices beyond the catalogue (energy, PUE, colocation, amortisation, per GPU model the host and
 * power) come from a prices file (topologies/prices.yaml, every figure with its source). */
#ifndef MOESIM_PURCHASE_H
#define MOESIM_PURCHASE_H

#include <stddef.h>

#include "cfg.h"

#define PURCHASE_HOURS_PER_YEAR 8760.0

/* The parts of a server other than its GPUs, per GPU model. */
typedef struct purchase_server {
  char *gpu;               /* catalogue GPU model it applies to */
  double host_usd_per_gpu; /* server price without the GPUs and scale-out NICs, per GPU, USD */
  double power_w_per_gpu;  /* server power (GPUs included) per GPU, W */
} purchase_server;

/* The prices file (topologies/prices.yaml). */
typedef struct purchase_prices {
  double energy_usd_per_kwh;          /* electricity, USD per kWh */
  double pue;                         /* facility power / IT power, >= 1 */
  double colocation_usd_per_kw_month; /* space, cooling and power plant, USD per IT kW per month */
  double amortisation_years;          /* straight-line amortisation period of the purchase, years */
  double switch_power_w;              /* one scale-out switch with its optics, W */
  purchase_server *servers;           /* per GPU model */
  size_t n_servers;
} purchase_prices;

/* Key table of the prices file (servers: a mapping from GPU model to {host_usd_per_gpu,
 * power_w_per_gpu}; overrides reach them as prices.servers.<gpu>.<key> when the file is included
 * under `prices`). */
extern const cfg_key purchase_prices_keys[];

/* The server entry for a GPU model, or NULL. */
const purchase_server *purchase_server_find(const purchase_prices *p, const char *gpu);

/* A cluster as bought or rented. */
typedef struct purchase_cluster {
  double gpus;                  /* GPUs */
  double gpu_usd;               /* purchase price of one GPU, USD */
  double rent_usd_per_gpu_hour; /* rental price, USD per GPU-hour */
  double host_usd_per_gpu;      /* the rest of the server, per GPU, USD */
  double power_w_per_gpu;       /* server power per GPU, W */
  double network_usd;           /* scale-out network (topology model), USD */
  double switches;              /* scale-out switches */
} purchase_cluster;

/* What an hour of the cluster costs, and what it takes to buy. */
typedef struct purchase_rates {
  double capex_usd;                 /* GPUs + servers + network, USD */
  double it_kw;                     /* IT power: servers + switches, kW */
  double rent_usd_per_hour;         /* rented, USD per hour */
  double amortisation_usd_per_hour; /* capex over the amortisation period, USD per hour */
  double energy_usd_per_hour;       /* IT power x PUE x energy price, USD per hour */
  double colocation_usd_per_hour;   /* IT power x colocation price, USD per hour */
  double buy_usd_per_hour;          /* the three above, USD per hour */
  double breakeven_utilisation;     /* buy / rent per hour: busy fraction where buying pays */
} purchase_rates;

/* The hourly costs of cluster c at prices p. */
void purchase_rates_of(const purchase_cluster *c, const purchase_prices *p, purchase_rates *r);

/* A training goal costed: tokens at a simulated throughput on a cluster of `gpus` GPUs. */
typedef struct purchase_train {
  double hours;                 /* tokens / tokens_per_s, hours */
  double gpu_hours;             /* GPUs x hours */
  double rent_usd;              /* rented for that time */
  double buy_usd;               /* bought: its amortisation, energy and colocation for that time */
  double rent_usd_per_t_tokens; /* per 1e12 tokens */
  double buy_usd_per_t_tokens;
} purchase_train;

/* Costs pre-training on `tokens` tokens at `tokens_per_s` (the whole cluster's) with the hourly
 * rates r of a cluster of `gpus` GPUs. Returns 0, or -1 when an input is not positive. */
int purchase_train_cost(double tokens, double tokens_per_s, double gpus, const purchase_rates *r, purchase_train *out);

/* USD per million output tokens of a deployment costing usd_per_hour and serving tokens_per_s. */
double purchase_usd_per_m_tokens(double usd_per_hour, double tokens_per_s);

/* A serving deployment sized for a demand. */
typedef struct purchase_serve {
  double units;        /* decode units (each decode_gpus GPUs) */
  double decode_gpus;  /* all decode units' GPUs */
  double prefill_gpus; /* prefill GPUs that keep them fed (whole nodes) */
  double gpus;         /* decode + prefill */
} purchase_serve;

/* Sizes a deployment for `demand` output tokens/s: whole decode units of decode_gpus GPUs, each
 * GPU giving out_tok_s_per_gpu, and prefill_nodes_per_decode_node whole prefill nodes of
 * gpus_per_node GPUs per decode node (rounded up over the whole deployment). Returns 0, or -1 when
 * an input is not positive (prefill may be 0). */
int purchase_serve_size(double demand, double out_tok_s_per_gpu, double decode_gpus, double prefill_nodes_per_decode_node,
                        double gpus_per_node, purchase_serve *out);

/* The Pareto front of n points (x[i], y[i]), both to be minimised: on_front[i] = 1 when no other
 * point is as good in both and better in one (points with a NaN are never on it). Returns the
 * number on the front. */
size_t purchase_front(const double *x, const double *y, size_t n, int *on_front);

#endif
