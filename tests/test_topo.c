/* tests/test_topo.c — topology builders and routes: switch/link/endpoint counts against the closed
 * forms of shared/reference/topology-cost.md for every fabric kind, route correctness (a chain of
 * links from the source GPU to the destination, shortest, plane-aware) for every kind, ECMP
 * determinism, bisection figures, the shipped YAML files, and the catalogue's error messages. */
#include <stdlib.h>
#include <unistd.h>

#include "cfg.h"
#include "net.h"
#include "test.h"
#include "topo.h"
#include "util.h"

static topo_spec base_spec(int kind, int gpn, int64_t nodes) {
  topo_spec s;
  topo_spec_init(&s);
  s.name = "t";
  s.gpu = hwcat_builtin_h800();
  s.nic = hwcat_builtin_cx7();
  s.sw = hwcat_builtin_qm9700();
  s.fabric.cable = s.fabric.endpoint_cable = hwcat_builtin_optical_400g();
  s.gpus_per_node = gpn;
  s.nodes = nodes;
  s.nics_per_gpu = 1;
  s.fabric.kind = kind;
  return s;
}

static topo *build(const topo_spec *s) {
  char err[256];
  topo *t = topo_build(s, err, sizeof err);
  if (!t) fprintf(stderr, "build: %s\n", err);
  return t;
}

static void check_counts(topo *t, topo_counts c, const char *what) {
  T_CHECKF(t != NULL, "%s did not build", what);
  if (!t) return;
  T_CHECKF(t->n_gpus == c.endpoints, "%s endpoints %d vs %lld", what, t->n_gpus, (long long)c.endpoints);
  T_CHECKF(t->n_switches == c.switches, "%s switches %d vs %lld", what, t->n_switches, (long long)c.switches);
  T_CHECKF(t->n_fabric_links == c.links, "%s links %d vs %lld", what, t->n_fabric_links, (long long)c.links);
}

/* Checks that a route is a chain of links from GPU a to GPU b. */
static int route_ok(const topo *t, int a, int b, const uint32_t *links, int n) {
  if (n < 1 || t->l[links[0]].src != (uint32_t)a || t->l[links[n - 1]].dst != (uint32_t)b) return 0;
  for (int i = 1; i < n; i++)
    if (t->l[links[i]].src != t->l[links[i - 1]].dst) return 0;
  return 1;
}

/* Routes every (sampled) pair; returns the longest route, or -1 on a broken one. */
static int check_routes(topo *t, int stride, int max_len) {
  uint32_t links[TOPO_MAX_HOPS];
  int longest = 0;
  for (int a = 0; a < t->n_gpus; a += stride)
    for (int b = 0; b < t->n_gpus; b += stride + 1) {
      if (a == b) continue;
      int n = topo_same_domain(t, a, b) ? topo_route_scaleup(t, a, b, links) : topo_route_scaleout(t, a, b, 3, 0, links);
      if (n < 0 || !route_ok(t, a, b, links, n) || n > max_len) {
        fprintf(stderr, "route %d -> %d: %d links\n", a, b, n);
        return -1;
      }
      if (n > longest) longest = n;
    }
  return longest;
}

static void test_fat_tree_counts_and_routes(void) {
  for (int k = 8; k <= 64; k *= 2) {
    topo_spec s = base_spec(TOPO_FABRIC_FAT_TREE, 8, 0);
    s.fabric.radix = k;
    s.sw.radix = 64;
    topo *t = build(&s);
    char what[32];
    snprintf(what, sizeof what, "FT2 k=%d", k);
    check_counts(t, topo_counts_ft2(k), what);
    if (t) {
      T_NEAR(t->bisection_gbps, (double)t->n_gpus / 2 * 400, 1e-6);
      /* Same leaf: up + down; other leaf: up, leaf-spine, spine-leaf, down. */
      T_EQ_INT(check_routes(t, k == 64 ? 37 : 3, 4), 4);
    }
    topo_free(t);
  }
  for (int k = 8; k <= 16; k *= 2) {
    topo_spec s = base_spec(TOPO_FABRIC_FAT_TREE, 4, 0);
    s.fabric.levels = 3;
    s.fabric.radix = k;
    topo *t = build(&s);
    check_counts(t, topo_counts_ft3(k), "FT3");
    if (t) T_EQ_INT(check_routes(t, 5, 6), 6);
    topo_free(t);
  }
  /* Oversubscription 3:1 at the leaf: 48 down, 16 up; bisection a third of the injection. */
  topo_spec s = base_spec(TOPO_FABRIC_FAT_TREE, 8, 64);
  s.fabric.oversubscription = 3;
  topo *t = build(&s);
  T_CHECK(t != NULL);
  if (t) {
    T_EQ_INT(t->n_switches, 11 + 3); /* 512 ports / 48 = 11 leaves; 11 x 16 / 64 = 3 spines */
    T_NEAR(t->bisection_gbps, 11.0 * 16 * 400 / 2, 1e-6);
  }
  topo_free(t);
}

static void test_multi_rail_and_plane(void) {
  /* V3: 256 nodes x 8 rails, radix 64: 8 leaves per rail, 32 spines; same-rail pairs within 32
   * nodes share a leaf. */
  topo_spec s = base_spec(TOPO_FABRIC_MULTI_RAIL, 8, 256);
  topo *t = build(&s);
  check_counts(t, topo_counts_ft2(64), "MRFT");
  if (t) {
    uint32_t links[TOPO_MAX_HOPS];
    T_EQ_INT(topo_route_scaleout(t, 3, 8 * 31 + 3, 1, 0, links), 2);  /* rail 3, nodes 0 and 31 */
    T_EQ_INT(topo_route_scaleout(t, 3, 8 * 32 + 3, 1, 0, links), 4);  /* rail 3, nodes 0 and 32 */
    T_EQ_INT(topo_route_scaleout(t, 3, 8 * 1 + 4, 1, 0, links), 4);   /* rails 3 and 4 */
    T_CHECK(check_routes(t, 61, 4) == 4);
  }
  topo_free(t);
  /* MPFT: 8 planes of full FT2(k=16) = 8 x 128 endpoints. */
  s = base_spec(TOPO_FABRIC_MULTI_PLANE, 8, 0);
  s.fabric.radix = 16;
  t = build(&s);
  check_counts(t, topo_counts_mpft(16, 8), "MPFT");
  if (t) {
    uint32_t links[TOPO_MAX_HOPS];
    T_EQ_INT(topo_route_scaleout(t, 0, 8 * 5 + 1, 1, 0, links), -1); /* planes 0 and 1 never meet */
    int n = topo_route_scaleout(t, 2, 8 * 100 + 2, 1, 0, links);
    T_CHECK(n > 0 && route_ok(t, 2, 802, links, n));
    for (int i = 1; i < n - 1; i++) T_EQ_INT(t->v[t->l[links[i]].dst].plane, 2);
    /* The network forwards across planes over NVLink (PXN): NVLink to GPU 1 of node 0 first. */
    des_sim *sim = des_new();
    net *x = net_new(sim, t, NULL);
    net_hop hops[2 * TOPO_MAX_HOPS + 2];
    int relay;
    n = net_route(x, 0, 8 * 5 + 1, NULL, hops, &relay);
    T_EQ_INT(relay, 2);
    T_EQ_INT(t->l[hops[0].res].kind, TOPO_L_NVLINK);
    T_EQ_INT(t->l[hops[1].res].dst, 1);
    T_EQ_INT(t->l[hops[n - 1].res].dst, 41);
    net_free(x);
    des_free(sim);
  }
  topo_free(t);
}

static void test_dragonfly(void) {
  topo_spec s = base_spec(TOPO_FABRIC_DRAGONFLY, 2, 0);
  s.fabric.routers_per_group = 4, s.fabric.endpoints_per_router = 2, s.fabric.global_per_router = 2;
  topo *t = build(&s);
  check_counts(t, topo_counts_dragonfly(4, 2, 2, 9), "DF balanced");
  if (t) T_EQ_INT(check_routes(t, 1, 5), 5); /* up, local, global, local, down */
  topo_free(t);
  /* Fewer groups than a*h + 1: pairs get several global links and spare ports pair up. */
  s.fabric.groups = 5;
  t = build(&s);
  check_counts(t, topo_counts_dragonfly(4, 2, 2, 5), "DF g=5");
  if (t) T_CHECK(check_routes(t, 1, 5) > 0);
  topo_free(t);
  /* The ISCA'25 comparison point: 261,632 endpoints, 16,352 routers, 384,272 links. */
  topo_counts c = topo_counts_dragonfly(32, 16, 16, 511);
  T_EQ_INT(c.endpoints, 261632);
  T_EQ_INT(c.switches, 16352);
  T_EQ_INT(c.links, 384272);
}

static void test_slim_fly(void) {
  for (int q = 5; q <= 7; q += 2) {
    topo_spec s = base_spec(TOPO_FABRIC_SLIM_FLY, 1, 0);
    s.fabric.q = q;
    topo *t = build(&s);
    int delta = q % 4 == 1 ? 1 : -1, kp = (3 * q - delta) / 2;
    check_counts(t, topo_counts_slim_fly(q, (kp + 1) / 2), "SF");
    if (!t) continue;
    /* Every router has network radix (3q - delta)/2, and the diameter is 2. */
    int bad = 0;
    for (int i = 0; i < t->n_switches; i++) {
      const topo_vertex *v = &t->v[t->first_switch + (uint32_t)i];
      int deg = 0;
      for (uint32_t e = 0; e < v->out_n; e++) deg += t->l[t->adj[v->out_first + e]].kind == TOPO_L_FABRIC;
      bad += deg != kp;
    }
    T_EQ_INT(bad, 0);
    T_EQ_INT(check_routes(t, 1, 4), 4); /* up, <= 2 router hops, down */
    T_CHECK(!t->bisection_exact && t->bisection_gbps > 0);
    topo_free(t);
  }
}

static void test_scaleup_domains(void) {
  topo_spec s = base_spec(TOPO_FABRIC_FAT_TREE, 72, 4);
  s.gpu.scaleup_achievable_gbyte_s = 720;
  topo *t = build(&s);
  T_CHECK(t != NULL);
  if (t) {
    T_CHECK(topo_same_domain(t, 0, 71));
    T_CHECK(!topo_same_domain(t, 71, 72));
    uint32_t links[4];
    T_EQ_INT(topo_route_scaleup(t, 5, 70, links), 2);
    T_NEAR(t->l[links[0]].gbyte_s, 720, 1e-9);
    T_EQ_INT(topo_route_scaleup(t, 5, 75, links), -1);
  }
  topo_free(t);
}

static void test_ecmp_determinism(void) {
  topo_spec s = base_spec(TOPO_FABRIC_FAT_TREE, 8, 256);
  topo *t = build(&s), *u = build(&s);
  uint32_t a[TOPO_MAX_HOPS], b[TOPO_MAX_HOPS];
  int same = 1, differs = 0;
  for (int g = 0; g < 2048; g += 97) {
    int n = topo_route_scaleout(t, g, 2047 - g, 5, 0, a), m = topo_route_scaleout(u, g, 2047 - g, 5, 0, b);
    same &= n == m && memcmp(a, b, (size_t)n * sizeof *a) == 0;
    m = topo_route_scaleout(u, g, 2047 - g, 6, 0, b);
    differs |= n != m || memcmp(a, b, (size_t)n * sizeof *a) != 0;
  }
  T_CHECK(same);
  T_CHECK(differs);
  topo_free(t);
  topo_free(u);
}

static topo *load_yaml(const char *file, const char *set) {
  cfg_ctx *ctx = cfg_new();
  char path[256];
  snprintf(path, sizeof path, "topologies/%s", file);
  if (set) cfg_override(ctx, set, "test");
  topo *t = topo_load(ctx, path);
  cfg_free(ctx);
  return t;
}

static void test_shipped_files(void) {
  if (access("topologies/hardware.yaml", R_OK) != 0) T_SKIP("run from the repository root");
  struct {
    const char *file;
    int endpoints, switches, links;
  } want[] = {
      {"h800-2048-ft2.yaml", 2048, 96, 2048},   {"h800-2048-mpft.yaml", 2048, 96, 2048},
      {"mpft-16384.yaml", 16384, 768, 16384},   {"ft3-64.yaml", 65536, 5120, 131072},
      {"gb200-nvl72.yaml", 2016, 95, 2016},     {"h800-2node.yaml", 16, 1, 0},
      {"this-machine.yaml", 1, 0, 0},           {"slimfly-64.yaml", 35320, 1682, 36163},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    topo *t = load_yaml(want[i].file, NULL);
    T_CHECKF(t != NULL, "%s", want[i].file);
    if (!t) continue;
    T_CHECKF(t->n_gpus == want[i].endpoints && t->n_switches == want[i].switches &&
                 t->n_fabric_links == want[i].links,
             "%s: %d/%d/%d", want[i].file, t->n_gpus, t->n_switches, t->n_fabric_links);
    topo_free(t);
  }
  /* The built-ins repeat the catalogue. */
  topo *t = load_yaml("h800-2node.yaml", NULL);
  if (t) {
    hw_gpu g = hwcat_builtin_h800();
    hw_nic n = hwcat_builtin_cx7();
    hw_switch w = hwcat_builtin_qm9700();
    hw_cable c = hwcat_builtin_optical_400g();
    T_CHECK(g.sms == t->gpu.sms && g.copy_gbyte_s_per_sm == t->gpu.copy_gbyte_s_per_sm &&
            g.rdma_msg_overhead_ns == t->gpu.rdma_msg_overhead_ns &&
            g.scaleup_achievable_gbyte_s == t->gpu.scaleup_achievable_gbyte_s &&
            g.scaleup_latency_ns == t->gpu.scaleup_latency_ns && g.price_usd == t->gpu.price_usd);
    T_CHECK(n.bw_gbps == t->nic.bw_gbps && n.mtu_bytes == t->nic.mtu_bytes && n.header_bytes == t->nic.header_bytes &&
            n.latency_ns == t->nic.latency_ns && n.price_usd == t->nic.price_usd);
    T_CHECK(w.radix == t->sw.radix && w.latency_ns == t->sw.latency_ns && w.price_usd == t->sw.price_usd);
    T_CHECK(c.latency_ns == t->cable.latency_ns && c.price_usd == t->cable.price_usd);
    topo_free(t);
  }
  /* Overrides reach catalogue fields through the reference. */
  t = load_yaml("h800-2node.yaml", "gpu.copy_gbyte_s_per_sm=20");
  T_CHECK(t && t->gpu.copy_gbyte_s_per_sm == 20);
  topo_free(t);
}

static char tmpdir[] = "/tmp/moesim_topo_XXXXXX";

static char *load_error(const char *yaml) {
  char path[128], cap[128];
  snprintf(path, sizeof path, "%s/bad.yaml", tmpdir);
  snprintf(cap, sizeof cap, "%s/err.txt", tmpdir);
  FILE *f = fopen(path, "w");
  fputs(yaml, f);
  fclose(f);
  fflush(stderr);
  int saved = dup(2);
  FILE *e = freopen(cap, "w", stderr);
  (void)e;
  cfg_ctx *ctx = cfg_new();
  topo *t = topo_load(ctx, path);
  cfg_free(ctx);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  topo_free(t);
  return t ? NULL : util_read_file(cap, NULL);
}

static void test_errors(void) {
  if (access("topologies/hardware.yaml", R_OK) != 0) T_SKIP("run from the repository root");
  char cat[300];
  snprintf(cat, sizeof cat, "%s/topologies/hardware.yaml", getcwd((char[256]){0}, 256));
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "name: x\ncatalogue: %s\ngpu: {model: h8000}\nnic: {model: cx7-400g}\nswitch: {model: qm9700}\n"
           "nodes: 2\ngpus_per_node: 8\nfabric: {kind: fat_tree}\n",
           cat);
  char *err = load_error(yaml);
  T_CHECK(err && strstr(err, "bad.yaml:3:6: error: unknown gpu 'h8000' in the catalogue (did you mean 'h800'?)"));
  free(err);
  snprintf(yaml, sizeof yaml,
           "name: x\ncatalogue: %s\ngpu: {model: h800}\nnic: {model: cx7-400g}\nswitch: {model: qm9700}\n"
           "nodes: 2\ngpus_per_node: 8\nfabric: {kind: fat_three}\n",
           cat);
  err = load_error(yaml);
  T_CHECK(err && strstr(err, "bad.yaml:8:16: error: unknown kind 'fat_three' (did you mean 'fat_tree'?"));
  free(err);
  snprintf(yaml, sizeof yaml,
           "name: x\ncatalogue: %s\ngpu: {model: h800}\nnic: {model: cx7-400g}\nswitch: {model: qm9700}\n"
           "nodes: 5000\ngpus_per_node: 8\nfabric: {kind: fat_tree}\n",
           cat);
  err = load_error(yaml);
  T_CHECK(err && strstr(err, "bad.yaml:8:9: error: missing key 'cable'"));
  free(err);
  snprintf(yaml, sizeof yaml,
           "name: x\ncatalogue: %s\ngpu: {model: h800}\nnic: {model: cx7-400g}\nswitch: {model: qm9700}\n"
           "nodes: 5000\ngpus_per_node: 8\nfabric: {kind: fat_tree, cable: {model: osfp-400g-optical},\n"
           "  endpoint_cable: {model: osfp-400g-optical}}\n",
           cat);
  err = load_error(yaml);
  T_CHECK(err && strstr(err, "bad.yaml:8:9: error: 40000 endpoint ports need 1250 leaves"));
  free(err);
}

int main(void) {
  if (!mkdtemp(tmpdir)) return 1;
  T_RUN(test_fat_tree_counts_and_routes);
  T_RUN(test_multi_rail_and_plane);
  T_RUN(test_dragonfly);
  T_RUN(test_slim_fly);
  T_RUN(test_scaleup_domains);
  T_RUN(test_ecmp_determinism);
  T_RUN(test_shipped_files);
  T_RUN(test_errors);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
  return t_done();
}
