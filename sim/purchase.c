/* sim/purchase.c — rent and buy arithmetic, serving size and the Pareto front (see purchase.h), and
 * the key table of the prices file. */
#include "purchase.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* ---------------------------------------------------------------- the prices file */

static const cfg_key server_keys[] = {
    {.name = "host_usd_per_gpu", .type = CFG_DOUBLE, .offset = offsetof(purchase_server, host_usd_per_gpu),
     .flags = CFG_REQUIRED | CFG_NONNEG, .doc = "server price without GPUs and scale-out NICs, per GPU, USD"},
    {.name = "power_w_per_gpu", .type = CFG_DOUBLE, .offset = offsetof(purchase_server, power_w_per_gpu),
     .flags = CFG_REQUIRED | CFG_NONNEG, .doc = "server power (GPUs included) per GPU, W"},
    CFG_END};

/* servers: {gpu-model: {host_usd_per_gpu, power_w_per_gpu}, ...} into an array. */
static int bind_servers(cfg_ctx *ctx, const cfg_node *n, void *field, const cfg_key *k) {
  (void)k;
  purchase_prices *p = (purchase_prices *)((char *)field - offsetof(purchase_prices, servers));
  if (cfg_node_kind(n) != CFG_MAP)
    return cfg_error(ctx, n, "servers: expected a mapping from GPU model to {host_usd_per_gpu, power_w_per_gpu}");
  size_t len = cfg_node_len(n);
  p->servers = cfg_alloc(ctx, (len ? len : 1) * sizeof *p->servers);
  p->n_servers = len;
  for (size_t i = 0; i < len; i++) {
    purchase_server *s = &p->servers[i];
    s->gpu = cfg_strdup(ctx, cfg_node_key(n, i));
    util_buf path = {0};
    util_buf_printf(&path, "prices.servers.%s", s->gpu);
    int rc = cfg_bind(ctx, cfg_node_item(n, i), server_keys, s, path.data);
    util_buf_free(&path);
    if (rc) return -1;
  }
  return 0;
}

const cfg_key purchase_prices_keys[] = {
    {.name = "energy_usd_per_kwh", .type = CFG_DOUBLE, .offset = offsetof(purchase_prices, energy_usd_per_kwh),
     .flags = CFG_REQUIRED | CFG_NONNEG, .doc = "electricity price, USD per kWh"},
    {.name = "pue", .type = CFG_DOUBLE, .offset = offsetof(purchase_prices, pue), .flags = CFG_REQUIRED | CFG_RANGE,
     .min = 1, .max = 10, .doc = "power usage effectiveness: facility power / IT power"},
    {.name = "colocation_usd_per_kw_month", .type = CFG_DOUBLE,
     .offset = offsetof(purchase_prices, colocation_usd_per_kw_month), .flags = CFG_REQUIRED | CFG_NONNEG,
     .doc = "data-centre space, cooling and power plant, USD per IT kW per month"},
    {.name = "amortisation_years", .type = CFG_DOUBLE, .offset = offsetof(purchase_prices, amortisation_years),
     .flags = CFG_REQUIRED | CFG_POSITIVE, .doc = "straight-line amortisation period of a purchase, years"},
    {.name = "switch_power_w", .type = CFG_DOUBLE, .offset = offsetof(purchase_prices, switch_power_w),
     .flags = CFG_REQUIRED | CFG_NONNEG, .doc = "one scale-out switch with its optics, W"},
    {.name = "servers", .type = CFG_CUSTOM, .offset = offsetof(purchase_prices, servers), .custom = bind_servers,
     .flags = CFG_REQUIRED, .doc = "per GPU model: {host_usd_per_gpu, power_w_per_gpu}"},
    CFG_END};

const purchase_server *purchase_server_find(const purchase_prices *p, const char *gpu) {
  for (size_t i = 0; gpu && i < p->n_servers; i++)
    if (strcmp(p->servers[i].gpu, gpu) == 0) return &p->servers[i];
  return NULL;
}

/* ---------------------------------------------------------------- arithmetic */

void purchase_rates_of(const purchase_cluster *c, const purchase_prices *p, purchase_rates *r) {
  memset(r, 0, sizeof *r);
  r->capex_usd = c->gpus * (c->gpu_usd + c->host_usd_per_gpu) + c->network_usd;
  r->it_kw = (c->gpus * c->power_w_per_gpu + c->switches * p->switch_power_w) / 1000;
  r->rent_usd_per_hour = c->gpus * c->rent_usd_per_gpu_hour;
  r->amortisation_usd_per_hour = r->capex_usd / (p->amortisation_years * PURCHASE_HOURS_PER_YEAR);
  r->energy_usd_per_hour = r->it_kw * p->pue * p->energy_usd_per_kwh;
  r->colocation_usd_per_hour = r->it_kw * p->colocation_usd_per_kw_month * 12 / PURCHASE_HOURS_PER_YEAR;
  r->buy_usd_per_hour = r->amortisation_usd_per_hour + r->energy_usd_per_hour + r->colocation_usd_per_hour;
  r->breakeven_utilisation = r->rent_usd_per_hour > 0 ? r->buy_usd_per_hour / r->rent_usd_per_hour : NAN;
}

int purchase_train_cost(double tokens, double tokens_per_s, double gpus, const purchase_rates *r, purchase_train *out) {
  memset(out, 0, sizeof *out);
  if (!(tokens > 0) || !(tokens_per_s > 0) || !(gpus > 0)) return -1;
  out->hours = tokens / tokens_per_s / 3600;
  out->gpu_hours = gpus * out->hours;
  out->rent_usd = r->rent_usd_per_hour * out->hours;
  out->buy_usd = r->buy_usd_per_hour * out->hours;
  out->rent_usd_per_t_tokens = out->rent_usd / (tokens / 1e12);
  out->buy_usd_per_t_tokens = out->buy_usd / (tokens / 1e12);
  return 0;
}

double purchase_usd_per_m_tokens(double usd_per_hour, double tokens_per_s) {
  return usd_per_hour / (tokens_per_s * 3600 / 1e6);
}

int purchase_serve_size(double demand, double out_tok_s_per_gpu, double decode_gpus, double prefill_nodes_per_decode_node,
                        double gpus_per_node, purchase_serve *out) {
  memset(out, 0, sizeof *out);
  if (!(demand > 0) || !(out_tok_s_per_gpu > 0) || !(decode_gpus > 0) || !(gpus_per_node > 0) ||
      !(prefill_nodes_per_decode_node >= 0))
    return -1;
  out->units = ceil(demand / (out_tok_s_per_gpu * decode_gpus) - 1e-9);
  if (out->units < 1) out->units = 1;
  out->decode_gpus = out->units * decode_gpus;
  out->prefill_gpus = ceil(out->decode_gpus / gpus_per_node * prefill_nodes_per_decode_node - 1e-9) * gpus_per_node;
  out->gpus = out->decode_gpus + out->prefill_gpus;
  return 0;
}

size_t purchase_front(const double *x, const double *y, size_t n, int *on_front) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++) {
    int dominated = isnan(x[i]) || isnan(y[i]);
    for (size_t j = 0; j < n && !dominated; j++)
      dominated = j != i && !isnan(x[j]) && !isnan(y[j]) && x[j] <= x[i] && y[j] <= y[i] && (x[j] < x[i] || y[j] < y[i]);
    on_front[i] = !dominated;
    count += !dominated;
  }
  return count;
}
