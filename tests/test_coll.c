/* tests/test_coll.c — collectives on the flow network: ring/tree all-reduce, reduce-scatter,
 * all-gather, all-to-all (with and without SM limits) and point-to-point against hand-computed
 * times; EP routing (node limit, trace files); EP dispatch/combine byte accounting, conservation
 * on the links, two-hop versus direct, determinism; and the DeepEP validation within tolerance. */
#include <stdlib.h>
#include <unistd.h>

#include "coll.h"
#include "gate.h"
#include "test.h"
#include "util.h"
#include "val_deepep.h"

static topo *cluster(int nodes, int gpn, int kind, double msg_overhead_ns) {
  topo_spec s;
  topo_spec_init(&s);
  s.name = "t";
  s.gpu = hwcat_builtin_h800();
  s.gpu.rdma_msg_overhead_ns = msg_overhead_ns;
  s.nic = hwcat_builtin_cx7();
  s.sw = hwcat_builtin_qm9700();
  s.fabric.cable = s.fabric.endpoint_cable = hwcat_builtin_optical_400g();
  s.gpus_per_node = gpn;
  s.nodes = nodes;
  s.nics_per_gpu = 1;
  s.fabric.kind = kind;
  char err[256];
  topo *t = topo_build(&s, err, sizeof err);
  if (!t) fprintf(stderr, "%s\n", err);
  return t;
}

static const int iota[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                             22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
                             44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

#define NVL 160.0 /* GB/s per direction, H800 */
#define LAT_NVL 3.3

/* us to move b bytes at g GB/s */
static double us(double b, double g) { return b / g * 1e-3; }

static void test_rings(void) {
  topo *t = cluster(1, 8, TOPO_FABRIC_NONE, 0);
  uint64_t B = 64ull << 20;
  struct {
    int kind, steps;
  } k[] = {{COLL_ALLREDUCE_RING, 14}, {COLL_REDUCE_SCATTER_RING, 7}, {COLL_ALLGATHER_RING, 7}};
  for (int i = 0; i < 3; i++) {
    coll_spec s = {.kind = k[i].kind, .gpus = iota, .ranks = 8, .bytes = B};
    double got = ps_to_us(coll_run(t, 1, &s)), want = k[i].steps * (us(B / 8.0, NVL) + LAT_NVL);
    T_CHECKF(fabs(got - want) < 1e-3 * want, "%s: %.3f us vs %.3f", coll_kind_name(k[i].kind), got, want);
  }
  topo_free(t);
}

static void test_tree(void) {
  topo *t = cluster(1, 8, TOPO_FABRIC_NONE, 0);
  uint64_t B = 32ull << 20;
  for (int C = 1; C <= 4; C *= 4) {
    coll_spec s = {.kind = COLL_ALLREDUCE_TREE, .gpus = iota, .ranks = 3, .bytes = B, .chunks = C};
    /* Both children share the root's NVLink (80 GB/s each) up, then the root's down; chunks
     * overlap the two directions: (C + 1) latencies + B/80 x (1 + 1/C). */
    double got = ps_to_us(coll_run(t, 1, &s)), want = (C + 1) * LAT_NVL + us((double)B, NVL / 2) * (1 + 1.0 / C);
    T_CHECKF(fabs(got - want) < 1e-3 * want, "chunks %d: %.3f us vs %.3f", C, got, want);
  }
  /* 8 ranks: completes, and pipelining helps. */
  coll_spec s1 = {.kind = COLL_ALLREDUCE_TREE, .gpus = iota, .ranks = 8, .bytes = B, .chunks = 1};
  coll_spec s8 = s1;
  s8.chunks = 8;
  sim_ps a = coll_run(t, 1, &s1), b = coll_run(t, 1, &s8);
  T_CHECK(a != SIM_PS_MAX && b < a);
  topo_free(t);
}

static void test_alltoall_sm_limit(void) {
  topo *t = cluster(1, 8, TOPO_FABRIC_NONE, 0);
  uint64_t b = 8ull << 20;
  coll_spec s = {.kind = COLL_ALLTOALL, .gpus = iota, .ranks = 8, .bytes = b};
  /* NVLink-bound: 7 flows share each GPU's link. */
  double got = ps_to_us(coll_run(t, 1, &s)), want = us((double)b, NVL / 7) + LAT_NVL;
  T_CHECKF(fabs(got - want) < 1e-3 * want, "no SM limit: %.3f vs %.3f", got, want);
  /* 4 SMs x 13 GB/s per GPU carry 7 sends + 7 receives: 52/14 GB/s per flow. */
  s.sms = 4;
  got = ps_to_us(coll_run(t, 1, &s)), want = us((double)b, 4 * 13.0 / 14) + LAT_NVL;
  T_CHECKF(fabs(got - want) < 1e-3 * want, "4 SMs: %.3f vs %.3f", got, want);
  topo_free(t);
}

static void test_p2p(void) {
  topo *t = cluster(2, 8, TOPO_FABRIC_FAT_TREE, 0);
  uint64_t B = 64ull << 20;
  int pair[2] = {3, 11};
  coll_spec s = {.kind = COLL_P2P, .gpus = pair, .ranks = 2, .bytes = B};
  double ib = 400.0 / 8 * 4096 / (4096 + 30);
  double got = ps_to_us(coll_run(t, 1, &s)), want = us((double)B, ib) + 2.8;
  T_CHECKF(fabs(got - want) < 1e-3 * want, "%.3f vs %.3f", got, want);
  topo_free(t);
}

static void test_routing_node_limit(void) {
  ep_routing *r = ep_routing_new(16, 512, 8, 256);
  for (int gate = 0; gate <= 1; gate++) {
    if (gate) ep_routing_gate(r, 8, 4, 1.0, 3);
    else ep_routing_deepep(r, 8, 4, 3);
    int bad = 0;
    for (int t = 0; t < 16 * 512; t++) {
      unsigned nodes = 0;
      const int32_t *e = &r->idx[(size_t)t * 8];
      for (int k = 0; k < 8; k++) {
        bad += e[k] < 0 || e[k] >= 256;
        for (int j = 0; j < k; j++) bad += e[j] == e[k];
        if (e[k] >= 0) nodes |= 1u << (e[k] / 32);
      }
      bad += __builtin_popcount(nodes) > 4;
    }
    T_CHECKF(bad == 0, "%s routing: %d violations", gate ? "gate" : "deepep", bad);
  }
  /* Skew concentrates the gate's choices: the busiest expert gets more tokens than uniform. */
  int64_t load[256];
  ep_routing_gate(r, 8, 4, 1.2, 3);
  moe_gate_load(r->idx, 16 * 512, 8, 256, load);
  int64_t mx = 0;
  for (int e = 0; e < 256; e++) mx = load[e] > mx ? load[e] : mx;
  T_CHECK(mx > 3 * 16 * 512 * 8 / 256);
  ep_routing_free(r);
}

static void test_trace_files(void) {
  char dir[] = "/tmp/moesim_coll_XXXXXX";
  if (!mkdtemp(dir)) T_SKIP("no temporary directory");
  char path[128];
  snprintf(path, sizeof path, "%s/trace.txt", dir);
  ep_routing *r = ep_routing_new(4, 100, 8, 64);
  ep_routing_deepep(r, 2, 2, 9);
  r->idx[5] = -1;
  T_EQ_INT(ep_routing_write(r, path), 0);
  ep_routing *q = ep_routing_load(path);
  T_CHECK(q && q->ranks == 4 && q->tokens == 100 && q->topk == 8 && q->experts == 64 &&
          memcmp(q->idx, r->idx, 4 * 100 * 8 * sizeof *r->idx) == 0);
  ep_routing_free(q);
  /* A bad id is reported with its position. */
  FILE *f = fopen(path, "w");
  fputs("moesim-routing 1\nranks 1 tokens 1 topk 2 experts 4\n0 7\n", f);
  fclose(f);
  fflush(stderr);
  int saved = dup(2);
  char cap[160];
  snprintf(cap, sizeof cap, "%s/err.txt", dir);
  FILE *e = freopen(cap, "w", stderr);
  (void)e;
  q = ep_routing_load(path);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char *msg = util_read_file(cap, NULL);
  T_CHECK(!q && msg && strstr(msg, "trace.txt:3:3: error: expert id 7 out of range"));
  free(msg);
  ep_routing_free(r);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  T_EQ_INT(system(cmd), 0);
}

/* Keeps a collective's result in *ctx. */
static void capture(net *x, void *ctx, coll_ep_result *rr) {
  (void)x;
  coll_ep_result_move(ctx, rr);
  free(rr);
}

static void test_ep_accounting(void) {
  topo *t = cluster(2, 8, TOPO_FABRIC_FAT_TREE, 0);
  ep_routing *r = ep_routing_new(16, 1024, 8, 256);
  ep_routing_deepep(r, 2, 2, 5);
  coll_ep_cfg cfg = {.hidden = 7168, .dispatch_fp8 = 1, .sms = 24};
  double Tb = coll_ep_token_bytes(7168, 8, 1, 0), Tc = 7168 * (1 + 1.0 / 32);
  T_NEAR(Tb, 7472, 0); /* DeepEP's get_num_bytes_per_token for this setting */
  /* Count the pairs by hand. */
  double node_pairs = 0, remote_node_pairs = 0, rank_pairs[16] = {0};
  for (int a = 0; a < 16; a++)
    for (int tok = 0; tok < 1024; tok++) {
      const int32_t *e = &r->idx[((size_t)a * 1024 + tok) * 8];
      unsigned ranks = 0, nodes = 0;
      for (int k = 0; k < 8; k++) ranks |= 1u << (e[k] / 16), nodes |= 1u << (e[k] / 128);
      node_pairs += __builtin_popcount(nodes);
      remote_node_pairs += __builtin_popcount(nodes & ~(1u << (a / 8)));
      for (int b = 0; b < 16; b++) rank_pairs[b] += (ranks >> b) & 1;
    }
  des_sim *sim = des_new();
  net *n = net_new(sim, t, NULL);
  coll_ep_result res;
  coll_ep_plan *p = coll_ep_plan_new(t, &cfg, r);
  T_CHECK(p != NULL);
  T_EQ_INT(coll_ep_start_plan(n, p, 0, capture, &res), 0);
  des_run(sim);
  double sum_rdma = 0;
  for (int a = 0; a < 16; a++) sum_rdma += res.rdma_bytes[a];
  T_NEAR(sum_rdma, node_pairs * Tc, 1e-6 * sum_rdma);
  for (int b = 0; b < 16; b++) T_NEAR(res.nvl_bytes[b], rank_pairs[b] * Tc, 1e-6 * res.nvl_bytes[b]);
  T_NEAR(res.scaleout_bytes, remote_node_pairs * Tb, 1e-6 * res.scaleout_bytes);
  /* Conservation on the links: NIC uplinks carried the scale-out bytes, NVLink ups the NVLink bytes. */
  double up = 0, nvl = 0;
  for (int g = 0; g < 16; g++) up += net_res_bytes(n, t->up[g]), nvl += net_res_bytes(n, t->nvl_up[g]);
  T_NEAR(up, res.scaleout_bytes, 1e-6 * up + 16);
  T_NEAR(nvl, res.nvlink_bytes, 1e-6 * nvl + 16);
  for (int a = 0; a < 16; a++) T_CHECK(res.rank_time[a] > 0 && res.rank_time[a] <= res.end - res.start);
  coll_ep_result_free(&res);
  net_free(n);
  des_free(sim);

  /* Two-hop sends each token once per node over IB; direct once per rank: less IB, faster. */
  coll_ep_result two, direct;
  cfg.sms = 0;
  T_EQ_INT(coll_ep_run(t, 1, &cfg, r, 0, &two), 0);
  cfg.kernel = COLL_EP_DIRECT;
  T_EQ_INT(coll_ep_run(t, 1, &cfg, r, 0, &direct), 0);
  T_CHECKF(two.scaleout_bytes < 0.8 * direct.scaleout_bytes, "%.0f vs %.0f", two.scaleout_bytes, direct.scaleout_bytes);
  T_CHECK(two.end < direct.end);
  coll_ep_result_free(&two);
  coll_ep_result_free(&direct);
  coll_ep_plan_free(p);
  ep_routing_free(r);
  topo_free(t);
}

static void test_ep_determinism_and_sms(void) {
  topo *t = cluster(4, 8, TOPO_FABRIC_MULTI_RAIL, 110);
  ep_routing *r = ep_routing_new(32, 1024, 8, 256);
  ep_routing_deepep(r, 4, 4, 11);
  coll_ep_cfg cfg = {.hidden = 7168, .dispatch_fp8 = 1, .sms = 24};
  coll_ep_result a, b, c;
  T_EQ_INT(coll_ep_run(t, 7, &cfg, r, 1, &a), 0);
  T_EQ_INT(coll_ep_run(t, 7, &cfg, r, 1, &b), 0);
  T_CHECK(a.end == b.end && memcmp(a.rank_time, b.rank_time, 32 * sizeof *a.rank_time) == 0);
  /* Fewer SMs for communication: slower (SMs are a bandwidth limit, not a label). */
  cfg.sms = 8;
  T_EQ_INT(coll_ep_run(t, 7, &cfg, r, 1, &c), 0);
  T_CHECKF(c.end > a.end * 1.5, "8 SMs %.1f us vs 24 SMs %.1f us", ps_to_us(c.end), ps_to_us(a.end));
  coll_ep_result_free(&a);
  coll_ep_result_free(&b);
  coll_ep_result_free(&c);
  ep_routing_free(r);
  topo_free(t);
}

static void test_deepep_validation(void) {
  if (access("topologies/hardware.yaml", R_OK) != 0) T_SKIP("run from the repository root");
  val_report rep = {0};
  T_EQ_INT(val_deepep(&rep), 0);
  T_EQ_INT(rep.len, 8);
  for (size_t i = 0; i < rep.len; i++)
    T_CHECKF(val_pass(&rep.checks[i]), "%s: %.2f vs %.2f GB/s (%+.1f%%)", rep.checks[i].name, rep.checks[i].simulated,
             rep.checks[i].reference, val_error_pct(&rep.checks[i]));
  val_free(&rep);
}

int main(void) {
  T_RUN(test_rings);
  T_RUN(test_tree);
  T_RUN(test_alltoall_sm_limit);
  T_RUN(test_p2p);
  T_RUN(test_routing_node_limit);
  T_RUN(test_trace_files);
  T_RUN(test_ep_accounting);
  T_RUN(test_ep_determinism_and_sms);
  T_RUN(test_deepep_validation);
  return t_done();
}
