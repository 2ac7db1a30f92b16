/* tests/test_purchase.c — the purchase arithmetic (sim/purchase.h) against hand computations: rent
 * and buy per hour (amortisation, energy with PUE, colocation), a training goal's time and cost,
 * serving sizes with their rounding, the Pareto front (NaN points left out, exact ties both kept),
 * the kind's front.csv from a golden results table (tests/golden/purchase.csv), and the prices file
 * as shipped (topologies/prices.yaml). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "exp.h"
#include "purchase.h"
#include "test.h"
#include "util.h"

extern const exp_kind exp_kind_purchase;

static const purchase_prices prices = {.energy_usd_per_kwh = 0.1, .pue = 1.5, .colocation_usd_per_kw_month = 100,
                                       .amortisation_years = 5, .switch_power_w = 2000};

/* 1000 GPUs at $20k with $5k of server each, a $1M network of 10 switches, 1 kW per GPU, $2 per
 * GPU-hour: worked by hand. */
static void test_rates_by_hand(void) {
  purchase_cluster c = {.gpus = 1000, .gpu_usd = 20000, .rent_usd_per_gpu_hour = 2, .host_usd_per_gpu = 5000,
                        .power_w_per_gpu = 1000, .network_usd = 1e6, .switches = 10};
  purchase_rates r;
  purchase_rates_of(&c, &prices, &r);
  T_NEAR(r.capex_usd, 26e6, 1e-6);                            /* 1000 x 25000 + 1e6 */
  T_NEAR(r.it_kw, 1020, 1e-9);                                /* 1000 kW of servers + 10 x 2 kW of switches */
  T_NEAR(r.rent_usd_per_hour, 2000, 1e-9);
  T_NEAR(r.amortisation_usd_per_hour, 26e6 / 43800, 1e-9);    /* 5 years x 8760 h */
  T_NEAR(r.energy_usd_per_hour, 153, 1e-9);                   /* 1020 kW x 1.5 x $0.1 */
  T_NEAR(r.colocation_usd_per_hour, 1020 * 100 * 12 / 8760.0, 1e-9);
  double buy = 26e6 / 43800 + 153 + 1020 * 100 * 12 / 8760.0;
  T_NEAR(r.buy_usd_per_hour, buy, 1e-9);
  T_NEAR(r.breakeven_utilisation, buy / 2000, 1e-12);
  /* twice the amortisation period halves the amortisation, nothing else */
  purchase_prices p2 = prices;
  p2.amortisation_years = 10;
  purchase_rates r2;
  purchase_rates_of(&c, &p2, &r2);
  T_NEAR(r2.amortisation_usd_per_hour, r.amortisation_usd_per_hour / 2, 1e-9);
  T_NEAR(r2.energy_usd_per_hour, r.energy_usd_per_hour, 0);
}

/* 1e12 tokens at 1e6 tokens/s: 1e6 s = 277.78 h; costs are the hourly rates times that. */
static void test_train_by_hand(void) {
  purchase_rates r = {.rent_usd_per_hour = 2000, .buy_usd_per_hour = 900};
  purchase_train t;
  T_EQ_INT(purchase_train_cost(1e12, 1e6, 1000, &r, &t), 0);
  T_NEAR(t.hours, 1e6 / 3600, 1e-9);
  T_NEAR(t.gpu_hours, 1000 * 1e6 / 3600, 1e-6);
  T_NEAR(t.rent_usd, 2000 * 1e6 / 3600, 1e-6);
  T_NEAR(t.buy_usd, 900 * 1e6 / 3600, 1e-6);
  T_NEAR(t.rent_usd_per_t_tokens, t.rent_usd, 1e-6); /* exactly one trillion tokens */
  T_EQ_INT(purchase_train_cost(14.8e12, 1e6, 1000, &r, &t), 0);
  T_NEAR(t.buy_usd_per_t_tokens, t.buy_usd / 14.8, 1e-6);
  T_EQ_INT(purchase_train_cost(1e12, 0, 1000, &r, &t), -1);
  /* $3600 an hour serving 1e6 tokens/s = 3600 M tokens an hour: $1 per million */
  T_NEAR(purchase_usd_per_m_tokens(3600, 1e6), 1.0, 1e-12);
}

/* Whole decode units for the demand, prefill nodes rounded up over the deployment. */
static void test_serve_size(void) {
  purchase_serve s;
  /* 1e6 / (2000 x 144) = 3.47 -> 4 units = 576 GPUs = 72 nodes; x 0.8 = 57.6 -> 58 prefill nodes */
  T_EQ_INT(purchase_serve_size(1e6, 2000, 144, 0.8, 8, &s), 0);
  T_NEAR(s.units, 4, 0);
  T_NEAR(s.decode_gpus, 576, 0);
  T_NEAR(s.prefill_gpus, 58 * 8, 0);
  T_NEAR(s.gpus, 576 + 464, 0);
  /* a demand one unit set serves exactly needs no extra unit */
  T_EQ_INT(purchase_serve_size(576000, 2000, 144, 0, 8, &s), 0);
  T_NEAR(s.units, 2, 0);
  T_NEAR(s.prefill_gpus, 0, 0);
  /* tiny demand: still one unit; racks of 72 */
  T_EQ_INT(purchase_serve_size(10, 8000, 72, 1.7, 72, &s), 0);
  T_NEAR(s.units, 1, 0);
  T_NEAR(s.prefill_gpus, 2 * 72, 0);
  T_EQ_INT(purchase_serve_size(1e6, 0, 144, 0.8, 8, &s), -1);
  T_EQ_INT(purchase_serve_size(1e6, 2000, 144, -1, 8, &s), -1);
}

static void test_front(void) {
  double x[] = {1, 2, 2, 3, NAN, 0.5, 4};
  double y[] = {5, 3, 3, 1, 0.1, NAN, 1};
  int on[7];
  T_EQ_INT(purchase_front(x, y, 7, on), 4);
  int want[7] = {1, 1, 1, 1, 0, 0, 0}; /* (2,3) twice: a tie, both kept; (4,1) beaten by (3,1); NaN never */
  for (int i = 0; i < 7; i++) T_EQ_INT(on[i], want[i]);
}

static char tmpdir[64];

static char *tmp_path(const char *name) {
  util_buf b = {0};
  util_buf_printf(&b, "%s/%s", tmpdir, name);
  return b.data;
}

/* The kind's finish on a golden results table writes the golden front, byte for byte. */
static void test_front_csv_golden(void) {
  T_EQ_INT(exp_kind_purchase.finish("tests/golden/purchase.csv", tmpdir, NULL), 0);
  char *got_path = tmp_path("front.csv");
  char *got = util_read_file(got_path, NULL), *want = util_read_file("tests/golden/purchase_front.csv", NULL);
  T_CHECK(got && want);
  if (got && want) T_EQ_STR(got, want);
  free(got), free(want);
  /* serving: a deployment over the TPOT bound has no cost per token and is never on the front */
  char *serve = tmp_path("serve.csv");
  const char *text = "option,goal,gpus,tpot_ms,rent_usd_per_m_tokens,buy_usd_per_m_tokens\n"
                     "a,serve,800,20,0.6,0.5\n"
                     "a,serve,700,55,,\n"
                     "b,serve,600,30,0.55,0.4\n";
  T_CHECK(util_write_file_atomic(serve, text, strlen(text)) == 0);
  T_EQ_INT(exp_kind_purchase.finish(serve, tmpdir, NULL), 0);
  got = util_read_file(got_path, NULL);
  T_CHECK(got != NULL);
  if (got)
    T_EQ_STR(got, "finance,option,gpus,tpot_ms,usd_per_m_tokens\n"
                  "rent,a,800,20,0.6\n"
                  "rent,b,600,30,0.55\n"
                  "buy,a,800,20,0.5\n"
                  "buy,b,600,30,0.4\n");
  free(got);
  unlink(serve);
  unlink(got_path);
  free(serve), free(got_path);
}

typedef struct wrap {
  purchase_prices p; /* prices: */
} wrap;

static const cfg_key wrap_keys[] = {
    {.name = "prices", .type = CFG_INCLUDE, .offset = offsetof(wrap, p), .sub = purchase_prices_keys}, CFG_END};

/* The shipped prices file binds, every GPU of the catalogue has a server entry, and an override
 * reaches an entry by its GPU's name. */
static void test_prices_file(void) {
  char *exp = tmp_path("exp.yaml");
  char *cwd = getcwd(NULL, 0);
  util_buf b = {0};
  util_buf_printf(&b, "prices: %s/topologies/prices.yaml\n", cwd);
  T_CHECK(util_write_file_atomic(exp, b.data, b.len) == 0);
  cfg_ctx *ctx = cfg_new();
  T_EQ_INT(cfg_override(ctx, "prices.servers.h800.power_w_per_gpu=1000", "test"), 0);
  wrap w;
  memset(&w, 0, sizeof w);
  T_EQ_INT(cfg_load_bind(ctx, exp, wrap_keys, &w), 0);
  T_EQ_INT(cfg_overrides_check_used(ctx), 0);
  T_CHECK(w.p.pue >= 1 && w.p.energy_usd_per_kwh > 0 && w.p.amortisation_years > 0);
  static const char *const gpus[] = {"h800", "h100", "h200", "b200", "gb200", "mi300x"};
  for (size_t i = 0; i < UTIL_ARRAY_LEN(gpus); i++) {
    const purchase_server *s = purchase_server_find(&w.p, gpus[i]);
    T_CHECKF(s && s->power_w_per_gpu > 0, "%s", gpus[i]);
  }
  T_NEAR(purchase_server_find(&w.p, "h800")->power_w_per_gpu, 1000, 0);
  T_CHECK(purchase_server_find(&w.p, "nope") == NULL);
  cfg_free(ctx);
  unlink(exp);
  util_buf_free(&b);
  free(cwd), free(exp);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/moesim_test_purchase.XXXXXX");
  if (!mkdtemp(tmpdir)) UTIL_SYSFAIL("mkdtemp: cannot create %s", tmpdir);
  T_RUN(test_rates_by_hand);
  T_RUN(test_train_by_hand);
  T_RUN(test_serve_size);
  T_RUN(test_front);
  T_RUN(test_front_csv_golden);
  T_RUN(test_prices_file);
  rmdir(tmpdir);
  return t_done();
}
