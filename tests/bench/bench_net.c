/* tests/bench/bench_net.c — speed of the network model (issue 5's performance figures):
 *   1. one EP64 dispatch + combine (64 H800, 4096 tokens each, DeepEP routing, M = 4 nodes) on the
 *      V3 cluster's first 8 nodes — target under 50 ms of simulation;
 *   2. the same for all 2048 GPUs of the V3 cluster: 32 EP64 groups at once sharing the fabric —
 *      target under 1 s;
 *   3. the cost of a rate update as the number of live flows F grows (per-pair all-to-all flows
 *      on a fat-tree): microseconds per recomputation and per (F log2 F), which should stay flat.
 * Times are CPU seconds of this process (medians of repeated runs; the wall time, inflated when
 * the machine is shared, is printed beside them); they include counting the routing into a plan,
 * not generating it (timed apart). Flows and events per second are reported for 1 and 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "coll.h"
#include "des.h"
#include "net.h"
#include "topo.h"
#include "util.h"

static topo *v3_cluster(int nodes) {
  topo_spec s;
  topo_spec_init(&s);
  s.name = "v3";
  s.gpu = hwcat_builtin_h800();
  s.nic = hwcat_builtin_cx7();
  s.sw = hwcat_builtin_qm9700();
  s.fabric.cable = s.fabric.endpoint_cable = hwcat_builtin_optical_400g();
  s.gpus_per_node = 8;
  s.nodes = nodes;
  s.nics_per_gpu = 1;
  s.fabric.kind = TOPO_FABRIC_MULTI_RAIL;
  char err[256];
  topo *t = topo_build(&s, err, sizeof err);
  if (!t) fprintf(stderr, "bench_net: %s\n", err);
  return t;
}

/* CPU time of this process, seconds (the figure a dedicated core would see as wall time). */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int pending;
static sim_ps last_end;
static void ep_done(net *n, void *ctx, coll_ep_result *r) {
  (void)n, (void)ctx;
  if (r->end > last_end) last_end = r->end;
  coll_ep_result_free(r);
  free(r);
  pending--;
}

typedef struct run_stats {
  double wall_s;       /* simulation wall time */
  double cpu_s;        /* simulation CPU time */
  sim_ps sim_time;     /* simulated dispatch + combine */
  uint64_t flows, events, recomputes, resolved;
} run_stats;

/* groups EP64 groups, each a dispatch then (after all dispatches) a combine. */
static run_stats run_groups(topo *t, ep_routing **r, int groups) {
  run_stats st = {0};
  des_sim *s = des_new();
  net *n = net_new(s, t, &(net_opts){.seed = 1});
  uint64_t t0 = util_now_ns();
  double c0 = cpu_s();
  /* The routing is counted once per group (a plan) and serves dispatch and combine. */
  coll_ep_plan **plan = util_xmalloc((size_t)groups * sizeof *plan);
  for (int g = 0; g < groups; g++) {
    coll_ep_cfg cfg = {.hidden = 7168, .dispatch_fp8 = 1, .sms = 24, .base_gpu = 64 * g};
    plan[g] = coll_ep_plan_new(t, &cfg, r[g]);
    if (!plan[g]) exit(1);
  }
  for (int phase = 0; phase < 2; phase++) {
    pending = groups;
    for (int g = 0; g < groups; g++)
      if (coll_ep_start_plan(n, plan[g], phase, ep_done, NULL) != 0) exit(1);
    des_run(s);
  }
  st.wall_s = (double)(util_now_ns() - t0) * 1e-9;
  st.cpu_s = cpu_s() - c0;
  for (int g = 0; g < groups; g++) coll_ep_plan_free(plan[g]);
  free(plan);
  st.sim_time = last_end;
  net_stats ns;
  net_get_stats(n, &ns);
  st.flows = ns.flows_started;
  st.recomputes = ns.recomputes;
  st.resolved = ns.flows_resolved;
  st.events = des_fired(s);
  net_free(n);
  des_free(s);
  return st;
}

static void report(const char *what, topo *t, int groups, int reps, double target_s) {
  ep_routing **r = util_xmalloc((size_t)groups * sizeof *r);
  uint64_t t0 = util_now_ns();
  for (int g = 0; g < groups; g++) {
    r[g] = ep_routing_new(64, 4096, 8, 256);
    ep_routing_deepep(r[g], 8, 4, 1000 + (uint64_t)g);
  }
  double gen_s = (double)(util_now_ns() - t0) * 1e-9;
  double w[16], c[16];
  run_stats st = {0};
  for (int i = 0; i < reps; i++) {
    last_end = 0;
    st = run_groups(t, r, groups);
    w[i] = st.wall_s;
    c[i] = st.cpu_s;
  }
  qsort(w, (size_t)reps, sizeof *w, cmp_double);
  qsort(c, (size_t)reps, sizeof *c, cmp_double);
  double med = c[reps / 2];
  printf("%s: %d GPUs, %d EP64 groups, dispatch + combine\n", what, 64 * groups, groups);
  printf("  simulated time        %.3f ms (dispatch + combine, groups in parallel)\n", ps_to_ms(st.sim_time));
  printf("  CPU time (median/%d)  %.1f ms   target < %.0f ms   ratio to target %.2f   (wall %.1f ms on a shared machine)\n",
         reps, med * 1e3, target_s * 1e3, med / target_s, w[reps / 2] * 1e3);
  printf("  flows                 %llu (%.0f flows/s)\n", (unsigned long long)st.flows, (double)st.flows / med);
  printf("  events                %llu (%.0f events/s)\n", (unsigned long long)st.events, (double)st.events / med);
  printf("  rate updates          %llu, %.1f flows re-solved each on average\n", (unsigned long long)st.recomputes,
         st.recomputes ? (double)st.resolved / (double)st.recomputes : 0);
  printf("  routing generation    %.1f ms (not in the CPU time)\n", gen_s * 1e3);
  for (int g = 0; g < groups; g++) ep_routing_free(r[g]);
  free(r);
}

/* Per-pair all-to-all over g GPUs: F = g(g-1) flows; returns seconds per rate update. */
static double update_cost(topo *t, int g, double *flows_per_update) {
  des_sim *s = des_new();
  net *n = net_new(s, t, &(net_opts){.seed = 2});
  for (int a = 0; a < g; a++)
    for (int b = 0; b < g; b++)
      if (a != b) net_send(n, a * 8 % t->n_gpus + a / (t->n_gpus / 8), b * 8 % t->n_gpus + b / (t->n_gpus / 8),
                           100000 + (uint64_t)((a * 7919 + b * 104729) % 900000), NULL, NULL, NULL);
  double c0 = cpu_s();
  des_run(s);
  double sec = cpu_s() - c0;
  net_stats st;
  net_get_stats(n, &st);
  *flows_per_update = (double)st.flows_resolved / (double)st.recomputes;
  net_free(n);
  des_free(s);
  return sec / (double)st.recomputes;
}

int main(void) {
  topo *t8 = v3_cluster(8), *t256 = v3_cluster(256);
  if (!t8 || !t256) return 1;
  report("EP64", t8, 1, 5, 0.050);
  printf("\n");
  report("V3 cluster", t256, 32, 3, 1.0);
  printf("\nrate update cost (per-pair all-to-all flows on the 2048-GPU fat-tree, spread over rails)\n");
  printf("  %8s %10s %14s %16s %18s\n", "GPUs", "flows F", "re-solved/upd", "us per update", "ns per F log2 F");
  for (int g = 16; g <= 64; g *= 2) {
    double f;
    double c = update_cost(t256, g, &f);
    printf("  %8d %10d %14.0f %16.1f %18.2f\n", g, g * (g - 1), f, c * 1e6, c * 1e9 / (f * log2(f > 2 ? f : 2)));
  }
  topo_free(t8);
  topo_free(t256);
  return 0;
}
