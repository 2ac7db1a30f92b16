/* tests/test_net.c — the flow-level network: max-min rates against hand-solved cases (bottleneck
 * sharing, parking lot, weighted hops), completion times, latency, chunked pipelining through a
 * relay, byte conservation, and the incremental solver against the max-min conditions on random
 * workloads (feasible, and every flow has a saturated bottleneck where no flow is faster). */
#include <stdlib.h>

#include "des.h"
#include "net.h"
#include "test.h"
#include "topo.h"

static double cap_gbs[64];

/* A network of n virtual resources with the given capacities (GB/s). */
static net *mk(des_sim **s, const double *caps, int n) {
  *s = des_new();
  net *x = net_new(*s, NULL, NULL);
  for (int i = 0; i < n; i++) {
    uint32_t id = net_res_add(x, caps[i], NET_RES_OTHER, -1);
    cap_gbs[id] = caps[i];
  }
  return x;
}

static uint32_t flow(net *x, uint64_t bytes, int n, const uint32_t *res, const double *w) {
  net_hop h[16];
  for (int i = 0; i < n; i++) h[i] = (net_hop){res[i], w ? w[i] : 1.0};
  return net_flow(x, bytes, h, n, 0, NULL, NULL);
}

static void test_bottleneck_sharing(void) {
  des_sim *s;
  net *x = mk(&s, (double[]){10, 4}, 2);
  uint32_t a = flow(x, 1 << 30, 1, (uint32_t[]){0}, NULL);
  uint32_t b = flow(x, 1 << 30, 1, (uint32_t[]){0}, NULL);
  uint32_t c = flow(x, 1 << 30, 2, (uint32_t[]){0, 1}, NULL);
  des_run_until(s, 0);
  /* Link 1 (4) is not the bottleneck of c: all three share link 0 (10) equally. */
  T_NEAR(net_flow_rate(x, a), 10.0 / 3, 1e-9);
  T_NEAR(net_flow_rate(x, b), 10.0 / 3, 1e-9);
  T_NEAR(net_flow_rate(x, c), 10.0 / 3, 1e-9);
  net_free(x);
  des_free(s);
}

static void test_parking_lot(void) {
  des_sim *s;
  /* Three links in a row; the long flow crosses all three, one short flow on each. */
  net *x = mk(&s, (double[]){1, 2, 3}, 3);
  uint32_t lg = flow(x, 1 << 30, 3, (uint32_t[]){0, 1, 2}, NULL);
  uint32_t s0 = flow(x, 1 << 30, 1, (uint32_t[]){0}, NULL);
  uint32_t s1 = flow(x, 1 << 30, 1, (uint32_t[]){1}, NULL);
  uint32_t s2 = flow(x, 1 << 30, 1, (uint32_t[]){2}, NULL);
  des_run_until(s, 0);
  T_NEAR(net_flow_rate(x, lg), 0.5, 1e-9); /* bottleneck: link 0 shared by 2 */
  T_NEAR(net_flow_rate(x, s0), 0.5, 1e-9);
  T_NEAR(net_flow_rate(x, s1), 1.5, 1e-9);
  T_NEAR(net_flow_rate(x, s2), 2.5, 1e-9);
  net_free(x);
  des_free(s);
}

static void test_two_bottlenecks(void) {
  des_sim *s;
  net *x = mk(&s, (double[]){1, 3}, 2);
  uint32_t f1 = flow(x, 1 << 30, 1, (uint32_t[]){0}, NULL);
  uint32_t f2 = flow(x, 1 << 30, 2, (uint32_t[]){0, 1}, NULL);
  uint32_t f3 = flow(x, 1 << 30, 1, (uint32_t[]){1}, NULL);
  des_run_until(s, 0);
  T_NEAR(net_flow_rate(x, f1), 0.5, 1e-9);
  T_NEAR(net_flow_rate(x, f2), 0.5, 1e-9);
  T_NEAR(net_flow_rate(x, f3), 2.5, 1e-9);
  net_free(x);
  des_free(s);
}

static void test_weighted(void) {
  des_sim *s;
  net *x = mk(&s, (double[]){3, 10}, 2);
  /* f1 puts 2 bytes on link 0 per byte: 2x + x = 3 -> x = 1 each; f2 then also gets the rest of
   * link 1? No: link 1 carries only f2 (10), its bottleneck is link 0. */
  uint32_t f1 = flow(x, 1 << 30, 1, (uint32_t[]){0}, (double[]){2});
  uint32_t f2 = flow(x, 1 << 30, 2, (uint32_t[]){0, 1}, (double[]){1, 1});
  des_run_until(s, 0);
  T_NEAR(net_flow_rate(x, f1), 1.0, 1e-9);
  T_NEAR(net_flow_rate(x, f2), 1.0, 1e-9);
  /* Duplicate hops merge: weight 0.5 + 0.5 = 1 on link 1, alone there. */
  uint32_t f3 = flow(x, 1 << 30, 2, (uint32_t[]){1, 1}, (double[]){0.5, 0.5});
  des_run_until(s, 1);
  T_NEAR(net_flow_rate(x, f3), 9.0, 1e-9);
  net_free(x);
  des_free(s);
}

static sim_ps done_at[8];
static void mark_done(net *x, void *ctx) { done_at[(intptr_t)ctx] = net_now(x); }

static void test_completion_times(void) {
  des_sim *s;
  net *x = mk(&s, (double[]){10}, 1);
  net_hop h = {0, 1};
  net_flow(x, 1000000, &h, 1, 0, mark_done, (void *)0);
  net_flow(x, 2000000, &h, 1, ps_from_us(1), mark_done, (void *)1);
  des_run(s);
  /* 5 GB/s each until 1 MB drains at 200 us; the other's last 1 MB at 10 GB/s: 100 us more. */
  T_NEAR(ps_to_us(done_at[0]), 200, 1e-5);
  T_NEAR(ps_to_us(done_at[1]), 301, 1e-5); /* + 1 us latency */
  /* Conservation: 3 MB crossed the link. */
  T_NEAR(net_res_bytes(x, 0), 3e6, 1.0);
  net_stats st;
  net_get_stats(x, &st);
  T_EQ_INT(st.flows_started, 2);
  T_EQ_INT(st.flows_finished, 2);
  net_free(x);
  des_free(s);
}

static topo *two_node(int n_nodes) {
  topo_spec sp;
  topo_spec_init(&sp);
  sp.name = "t";
  sp.gpu = hwcat_builtin_h800();
  sp.nic = hwcat_builtin_cx7();
  sp.sw = hwcat_builtin_qm9700();
  sp.fabric.cable = sp.fabric.endpoint_cable = hwcat_builtin_optical_400g();
  sp.nodes = n_nodes;
  sp.gpus_per_node = 8;
  sp.nics_per_gpu = 1;
  sp.fabric.kind = TOPO_FABRIC_FAT_TREE;
  char err[256];
  topo *t = topo_build(&sp, err, sizeof err);
  if (!t) fprintf(stderr, "%s\n", err);
  return t;
}

static void test_send_routes_and_latency(void) {
  topo *t = two_node(2);
  des_sim *s = des_new();
  net *x = net_new(s, t, &(net_opts){.seed = 7});
  /* A 64-byte send inside a node: two NVLink hops (3.3 us); across nodes on one leaf: 2.8 us. */
  T_EQ_INT(net_send(x, 0, 3, 64, NULL, mark_done, (void *)0), 0);
  T_EQ_INT(net_send(x, 0, 9, 64, NULL, mark_done, (void *)1), 0);
  des_run(s);
  double nvl = 64 / (t->gpu.scaleup_achievable_gbyte_s * 1e-3) * 1e-6; /* us of transmission */
  double ib = 64 / (t->l[t->up[0]].gbyte_s * 1e-3) * 1e-6;
  T_NEAR(ps_to_us(done_at[0]), 3.3 + nvl, 1e-5);
  T_NEAR(ps_to_us(done_at[1]), 2.8 + ib, 1e-5);
  net_free(x);
  des_free(s);
  topo_free(t);
}

static void test_chunked_relay(void) {
  topo *t = two_node(2);
  uint64_t B = 64ull << 20;
  double ib = t->l[t->up[0]].gbyte_s, nvl = t->gpu.scaleup_achievable_gbyte_s;
  for (int chunked = 0; chunked <= 2; chunked++) {
    des_sim *s = des_new();
    net *x = net_new(s, t, &(net_opts){.chunk_bytes = chunked == 2 ? B / 8 : chunked ? B : 0});
    /* GPU 0 -> GPU 9 (node 1, local 1) by DeepEP's path: IB to GPU 8, NVLink to 9. */
    net_send_opts o = {.path = NET_PATH_RAIL};
    T_EQ_INT(net_send(x, 0, 9, B, &o, mark_done, (void *)0), 0);
    des_run(s);
    double t_ib = (double)B / (ib * 1e-3) * 1e-6, t_nvl = (double)B / (nvl * 1e-3) * 1e-6; /* us */
    double lat = 2.8 + 3.3; /* IB leg, then NVLink leg */
    double expect = chunked == 0 ? t_ib + lat             /* cut-through at the IB rate */
                    : chunked == 1 ? t_ib + t_nvl + lat    /* store and forward */
                                   : t_ib + t_nvl / 8 + lat; /* 8 chunks: only the last crosses leg 2 alone */
    T_CHECKF(fabs(ps_to_us(done_at[0]) - expect) < 0.01, "chunked=%d %.4f us vs %.4f", chunked,
             ps_to_us(done_at[0]), expect);
    net_free(x);
    des_free(s);
  }
  topo_free(t);
}

/* Checks the max-min conditions on the live flows (ids and hops recorded by the caller). */
typedef struct rec {
  uint32_t id;
  int n;
  uint32_t res[6];
  double w[6];
  int live;
} rec;
static rec recs[400];
static int n_recs;

static void rec_done(net *x, void *ctx) {
  (void)x;
  recs[(intptr_t)ctx].live = 0;
}

static int check_maxmin(net *x, int n_res) {
  double load[64] = {0};
  for (int i = 0; i < n_recs; i++) {
    if (!recs[i].live) continue;
    double r = net_flow_rate(x, recs[i].id);
    if (r <= 0) continue;
    for (int h = 0; h < recs[i].n; h++) load[recs[i].res[h]] += recs[i].w[h] * r;
  }
  int bad = 0;
  for (int q = 0; q < n_res; q++) bad += load[q] > cap_gbs[q] * (1 + 1e-7);
  for (int i = 0; i < n_recs; i++) {
    if (!recs[i].live) continue;
    double r = net_flow_rate(x, recs[i].id);
    if (r <= 0) continue; /* drained, completion pending */
    int has = 0;
    for (int h = 0; h < recs[i].n && !has; h++) {
      int q = (int)recs[i].res[h];
      if (load[q] < cap_gbs[q] * (1 - 1e-7)) continue;
      int max = 1;
      for (int j = 0; j < n_recs && max; j++) {
        if (!recs[j].live || j == i) continue;
        for (int g = 0; g < recs[j].n; g++)
          if ((int)recs[j].res[g] == q && net_flow_rate(x, recs[j].id) > r * (1 + 1e-7)) max = 0;
      }
      has = max;
    }
    bad += !has;
  }
  return bad;
}

static void start_random(des_sim *s, void *p);
static net *g_net;
static uint64_t g_rng;
static int g_nres;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
  return g_rng;
}

static void start_random(des_sim *s, void *p) {
  (void)s, (void)p;
  if (n_recs >= (int)(sizeof recs / sizeof recs[0])) return;
  rec *r = &recs[n_recs];
  r->n = 1 + (int)(rnd() % 4);
  net_hop h[6];
  for (int k = 0; k < r->n; k++) {
    r->res[k] = (uint32_t)(rnd() % (uint64_t)g_nres);
    for (int j = 0; j < k; j++)
      if (r->res[j] == r->res[k]) r->res[k] = (r->res[k] + 1) % (uint32_t)g_nres, j = -1;
    r->w[k] = (rnd() % 3) ? 1.0 : 0.25 + (double)(rnd() % 8) / 4;
    h[k] = (net_hop){r->res[k], r->w[k]};
  }
  r->live = 1;
  r->id = net_flow(g_net, 10000 + rnd() % 5000000, h, r->n, 0, rec_done, (void *)(intptr_t)n_recs);
  n_recs++;
}

static void test_incremental_is_maxmin(void) {
  for (int trial = 0; trial < 3; trial++) {
    des_sim *s;
    g_nres = 24;
    double caps[24];
    g_rng = 0x9e3779b97f4a7c15ull + (uint64_t)trial;
    for (int i = 0; i < g_nres; i++) caps[i] = 1 + (double)(rnd() % 100);
    g_net = mk(&s, caps, g_nres);
    n_recs = 0;
    for (int i = 0; i < 300; i++) des_at(s, rnd() % ps_from_us(400), start_random, NULL);
    int bad = 0, checks = 0;
    for (sim_ps t = 0; t < ps_from_us(2000); t += ps_from_us(7)) {
      des_run_until(s, t);
      int live = 0;
      for (int i = 0; i < n_recs; i++) live += recs[i].live;
      if (live < 5) continue;
      bad += check_maxmin(g_net, g_nres);
      checks++;
    }
    T_CHECKF(checks > 50, "only %d checks with flows live", checks);
    des_run(s);
    T_CHECKF(bad == 0, "trial %d: %d violations in %d checks", trial, bad, checks);
    net_stats st;
    net_get_stats(g_net, &st);
    T_EQ_INT(st.flows_finished, 300);
    T_CHECK(st.widenings + st.recomputes > 0);
    net_free(g_net);
    des_free(s);
  }
}

/* Two disjoint groups of flows: a change in one re-solves only that group. */
static void test_incremental_scope(void) {
  des_sim *s;
  net *x = mk(&s, (double[]){10, 10}, 2);
  for (int i = 0; i < 100; i++) {
    net_hop h = {0, 1}, k = {1, 1};
    net_flow(x, 1000000 + 1000 * (uint64_t)i, &h, 1, 0, NULL, NULL);
    net_flow(x, 1000000, &k, 1, 0, NULL, NULL); /* group 2 all finish together */
  }
  des_run(s);
  net_stats st;
  net_get_stats(x, &st);
  /* 1 start + 100 finish instants for group 1 (group 2's 100 finish at one instant, the same as
   * group 1's first). A full re-solve would touch 200 + 199 + ... flows. */
  T_CHECKF(st.recomputes <= 101, "%llu recomputes", (unsigned long long)st.recomputes);
  T_CHECKF(st.flows_resolved <= 200 + 100 * 101 / 2 + 100, "%llu flows re-solved", (unsigned long long)st.flows_resolved);
  net_free(x);
  des_free(s);
}

static void test_conservation(void) {
  des_sim *s;
  double caps[6] = {3, 5, 7, 11, 13, 17};
  net *x = mk(&s, caps, 6);
  double expect[6] = {0};
  uint64_t rng = 12345;
  for (int i = 0; i < 50; i++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t a = (uint32_t)((rng >> 33) % 6), b = (a + 1 + (uint32_t)((rng >> 40) % 5)) % 6;
    uint64_t bytes = 1000 + (rng >> 20) % 100000;
    double wb = 0.5 + (double)((rng >> 50) % 4);
    net_hop h[2] = {{a, 1}, {b, wb}};
    net_flow(x, bytes, h, 2, 0, NULL, NULL);
    expect[a] += (double)bytes, expect[b] += wb * (double)bytes;
  }
  des_run(s);
  for (int q = 0; q < 6; q++) T_CHECKF(fabs(net_res_bytes(x, (uint32_t)q) - expect[q]) < 1e-6 * expect[q] + 1,
                                       "res %d: %.1f vs %.1f", q, net_res_bytes(x, (uint32_t)q), expect[q]);
  net_free(x);
  des_free(s);
}

static void test_determinism(void) {
  sim_ps end[2];
  for (int rep = 0; rep < 2; rep++) {
    topo *t = two_node(4);
    des_sim *s = des_new();
    net *x = net_new(s, t, &(net_opts){.seed = 42});
    for (int a = 0; a < 32; a++)
      for (int b = 0; b < 32; b++)
        if (a != b) net_send(x, a, b, 100000 + (uint64_t)(a * 131 + b * 17) % 50000, NULL, NULL, NULL);
    end[rep] = des_run(s);
    net_free(x);
    des_free(s);
    topo_free(t);
  }
  T_EQ_INT(end[0], end[1]);
  T_CHECK(end[0] > 0);
}

/* 32 GPUs on leaf 0 each send to one GPU on leaf 1 through 32 parallel leaf-spine links: static
 * ECMP collides (some links carry two flows), spraying spreads every flow over all 32 links. */
static void test_spray_vs_ecmp(void) {
  topo *t = two_node(8); /* 64 ports: 2 leaves of 32, one spine */
  T_EQ_INT(t->n_switches, 3);
  uint64_t B = 16ull << 20;
  double ib = t->l[t->up[0]].gbyte_s;
  sim_ps end[2];
  for (int spray = 0; spray <= 1; spray++) {
    des_sim *s = des_new();
    net *x = net_new(s, t, &(net_opts){.seed = 3, .spray = spray});
    for (int g = 0; g < 32; g++) net_send(x, g, 32 + (g + 5) % 32, B, &(net_send_opts){.path = NET_PATH_DIRECT}, NULL, NULL);
    end[spray] = des_run(s);
    net_free(x);
    des_free(s);
  }
  double ideal = (double)B / (ib * 1e-3) * 1e-6 + 3.7; /* us: NIC rate, cross-leaf latency */
  T_CHECKF(fabs(ps_to_us(end[1]) - ideal) < 1e-3 * ideal, "spray %.3f us vs %.3f", ps_to_us(end[1]), ideal);
  T_CHECKF(ps_to_us(end[0]) > 1.5 * ideal, "ECMP %.3f us: no collision among 32 flows on 32 links?", ps_to_us(end[0]));
  /* Sprayed fractions: each layer sums to 1. */
  uint32_t links[256];
  double frac[256], up = 0, fab = 0;
  int n = topo_route_spray(t, 0, 40, links, frac, 256);
  T_EQ_INT(n, 1 + 32 + 32 + 1);
  for (int i = 0; i < n; i++) {
    if (t->l[links[i]].kind == TOPO_L_FABRIC && t->v[t->l[links[i]].src].level == 0) up += frac[i];
    else if (t->l[links[i]].kind == TOPO_L_FABRIC) fab += frac[i];
  }
  T_NEAR(up, 1, 1e-12);
  T_NEAR(fab, 1, 1e-12);
  topo_free(t);
}

static int joined;
static sim_ps joined_at;
static void on_all(net *x, void *ctx) {
  joined += (int)(intptr_t)ctx;
  joined_at = net_now(x);
}

static void test_join(void) {
  des_sim *s;
  net *x = mk(&s, (double[]){10}, 1);
  net_hop h = {0, 1};
  net_join *j = net_join_new(x, on_all, (void *)1);
  for (int i = 1; i <= 3; i++) net_flow(x, 1000000 * (uint64_t)i, &h, 1, 0, net_join_done, net_join_add(j));
  net_join_seal(j);
  /* An empty join fires too, at once. */
  net_join_seal(net_join_new(x, on_all, (void *)10));
  des_run(s);
  T_EQ_INT(joined, 11);
  T_NEAR(ps_to_us(joined_at), 600, 1e-5); /* 6 MB through 10 GB/s */
  net_free(x);
  des_free(s);
}

int main(void) {
  T_RUN(test_bottleneck_sharing);
  T_RUN(test_parking_lot);
  T_RUN(test_two_bottlenecks);
  T_RUN(test_weighted);
  T_RUN(test_completion_times);
  T_RUN(test_send_routes_and_latency);
  T_RUN(test_chunked_relay);
  T_RUN(test_incremental_is_maxmin);
  T_RUN(test_incremental_scope);
  T_RUN(test_conservation);
  T_RUN(test_determinism);
  T_RUN(test_join);
  T_RUN(test_spray_vs_ecmp);
  return t_done();
}
