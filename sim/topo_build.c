/* sim/topo_build.c — builds the graph of a topology spec (see topo.h): GPUs and their NVSwitch
 * domains, then the scale-out fabric by kind, then the adjacency index and the bisection figure.
 * Switch and link counts follow the closed forms of shared/reference/topology-cost.md at full
 * size; smaller clusters get the fewest leaves that hold their ports and spines in proportion. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"
#include "util.h"

typedef struct bctx {
  topo *t;
  uint32_t vcap, lcap;  /* allocated vertices / links */
  double port_gbyte_s;  /* switch port payload capacity */
  double nic_gbyte_s;   /* NIC port payload capacity */
  sim_ps lat_up;        /* GPU -> switch */
  sim_ps lat_down;      /* switch -> GPU */
  sim_ps lat_fabric;    /* switch -> switch */
  char *err;            /* message buffer */
  size_t errlen;
} bctx;

static int fail(bctx *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(bctx *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->err, b->errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static uint32_t add_vertex(bctx *b, int kind, int level, int plane, int group, int index) {
  topo *t = b->t;
  if (t->n_vertices == b->vcap) {
    b->vcap = b->vcap ? b->vcap * 2 : 1024;
    t->v = util_xrealloc(t->v, b->vcap * sizeof *t->v);
  }
  t->v[t->n_vertices] = (topo_vertex){.kind = (uint8_t)kind, .level = (uint8_t)level, .plane = (uint16_t)plane,
                                      .group = group, .index = index};
  return t->n_vertices++;
}

/* Adds links x -> y and y -> x; returns the id of x -> y (the reverse is id + 1). */
static uint32_t add_pair(bctx *b, uint32_t x, uint32_t y, int kind, double gbyte_s, sim_ps lat_xy, sim_ps lat_yx) {
  topo *t = b->t;
  if (t->n_links + 2 > b->lcap) {
    b->lcap = b->lcap ? b->lcap * 2 : 4096;
    t->l = util_xrealloc(t->l, b->lcap * sizeof *t->l);
  }
  uint32_t id = t->n_links;
  t->l[id] = (topo_link){.src = x, .dst = y, .rev = id + 1, .kind = (uint8_t)kind, .gbyte_s = gbyte_s, .latency = lat_xy};
  t->l[id + 1] = (topo_link){.src = y, .dst = x, .rev = id, .kind = (uint8_t)kind, .gbyte_s = gbyte_s, .latency = lat_yx};
  t->n_links += 2;
  return id;
}

static uint32_t add_switch(bctx *b, int level, int plane, int group) {
  return add_vertex(b, TOPO_V_SWITCH, level, plane, group, b->t->n_switches++);
}

static void add_fabric(bctx *b, uint32_t lower, uint32_t upper) {
  add_pair(b, lower, upper, TOPO_L_FABRIC, b->port_gbyte_s, b->lat_fabric, b->lat_fabric);
  b->t->n_fabric_links++;
}

/* Attaches uplink slot j of GPU g to switch s. */
static void attach(bctx *b, int g, int j, uint32_t s) {
  topo *t = b->t;
  uint32_t id = add_pair(b, (uint32_t)g, s, TOPO_L_NIC, b->nic_gbyte_s, b->lat_up, b->lat_down);
  t->up[(size_t)g * t->uplinks_per_gpu + j] = id;
  t->down[(size_t)g * t->uplinks_per_gpu + j] = id + 1;
}

static int ceil_div(int64_t a, int64_t b) { return (int)((a + b - 1) / b); }

/* One 2-layer fat-tree over `n` endpoint ports: port i is (gpu[i], slot[i]) on leaf leaf_of[i]
 * (< n_leaves). Leaf uplink m of leaf i goes to spine (i*u + m) % S. Returns the up-capacity of
 * the leaf layer (ports x line rate, Gb/s) for the bisection. */
static double build_ft2(bctx *b, const int *gpu, const int *slot, const int *leaf_of, int n, int n_leaves, int d,
                        int u, int plane, int rails) {
  topo *t = b->t;
  uint32_t *leaf = util_xmalloc((size_t)n_leaves * sizeof *leaf);
  int per_rail = rails > 0 ? n_leaves / rails : n_leaves;
  for (int i = 0; i < n_leaves; i++) leaf[i] = add_switch(b, 0, plane, rails > 0 ? i / per_rail : -1);
  int S = n_leaves > 1 ? ceil_div((int64_t)n_leaves * u, t->radix) : 0;
  uint32_t spine0 = t->n_vertices;
  for (int s = 0; s < S; s++) add_switch(b, 1, plane, -1);
  for (int i = 0; i < n; i++) attach(b, gpu[i], slot[i], leaf[leaf_of[i]]);
  for (int i = 0; i < n_leaves && S > 0; i++)
    for (int m = 0; m < u; m++) add_fabric(b, leaf[i], spine0 + (uint32_t)(((int64_t)i * u + m) % S));
  free(leaf);
  (void)d;
  return S > 0 ? (double)n_leaves * u * t->sw.port_gbps : 0;
}

/* Leaf down/up split of radix k at oversubscription o (down:up). */
static void split_ports(int k, double o, int *d, int *u) {
  *d = (int)floor(k * o / (1 + o) + 0.5);
  if (*d >= k) *d = k - 1;
  *u = k - *d;
}

static int build_fat_tree(bctx *b, const topo_spec *s) {
  topo *t = b->t;
  int k = t->radix, d, u, U = t->uplinks_per_gpu;
  split_ports(k, s->fabric.oversubscription, &d, &u);
  int n = t->n_gpus * U;
  int *gpu = util_xmalloc((size_t)n * sizeof *gpu), *slot = util_xmalloc((size_t)n * sizeof *slot);
  int *leaf_of = util_xmalloc((size_t)n * sizeof *leaf_of);
  for (int i = 0; i < n; i++) gpu[i] = i / U, slot[i] = i % U;
  double inject = (double)n * fmin(t->nic.bw_gbps, t->sw.port_gbps);
  int rc = 0;
  if (t->levels == 2) {
    int n_leaves = ceil_div(n, d);
    if (n_leaves > k) {
      rc = fail(b, "%d endpoint ports need %d leaves but a 2-layer fat-tree of radix %d holds %d (at most %d ports)",
                n, n_leaves, k, k, k * d);
      goto out;
    }
    for (int i = 0; i < n; i++) leaf_of[i] = i / d;
    double up = build_ft2(b, gpu, slot, leaf_of, n, n_leaves, d, u, 0, 0);
    t->bisection_gbps = (n_leaves > 1 ? fmin(inject, up) : inject) / 2;
  } else {
    int half = k / 2, n_edges = ceil_div(n, d), pods = ceil_div(n_edges, half);
    if (pods > k) {
      rc = fail(b, "%d endpoint ports need %d pods but a 3-layer fat-tree of radix %d holds %d (at most %lld ports)", n,
                pods, k, k, (long long)k * half * d);
      goto out;
    }
    int C = pods > 1 ? ceil_div((int64_t)pods * half, k) : 0; /* cores per core group */
    uint32_t *edge = util_xmalloc((size_t)n_edges * sizeof *edge);
    uint32_t *agg = util_xmalloc((size_t)pods * u * sizeof *agg);
    for (int p = 0; p < pods; p++) {
      for (int e = p * half; e < n_edges && e < (p + 1) * half; e++) edge[e] = add_switch(b, 0, 0, p);
      for (int j = 0; j < u; j++) agg[p * u + j] = add_switch(b, 1, 0, p);
    }
    uint32_t core0 = t->n_vertices;
    for (int c = 0; c < u * C; c++) add_switch(b, 2, 0, -1);
    for (int i = 0; i < n; i++) attach(b, gpu[i], slot[i], edge[i / d]);
    for (int e = 0; e < n_edges; e++)
      for (int j = 0; j < u; j++) add_fabric(b, edge[e], agg[(e / half) * u + j]);
    for (int p = 0; p < pods && C > 0; p++)
      for (int j = 0; j < u; j++)
        for (int m = 0; m < half; m++) add_fabric(b, agg[p * u + j], core0 + (uint32_t)(j * C + ((p * half + m) % C)));
    double edge_up = (double)n_edges * u * t->sw.port_gbps;
    double agg_up = C > 0 ? (double)pods * u * half * t->sw.port_gbps : INFINITY;
    t->bisection_gbps = (n_edges > 1 ? fmin(inject, fmin(edge_up, agg_up)) : inject) / 2;
    free(edge);
    free(agg);
  }
out:
  free(gpu);
  free(slot);
  free(leaf_of);
  return rc;
}

/* MRFT (rails) or MPFT (planes). A node's port r = local * U + j is its rail r; multi_rail gives
 * each rail its own leaves under shared spines; multi_plane builds one FT2 per plane over the
 * ports with r % planes == plane. */
static int build_rails_or_planes(bctx *b, const topo_spec *s, int planes_mode) {
  topo *t = b->t;
  int k = t->radix, d, u, U = t->uplinks_per_gpu;
  split_ports(k, s->fabric.oversubscription, &d, &u);
  int rails = t->gpus_per_node * U; /* ports per node */
  int P = planes_mode ? t->planes : 1;
  if (planes_mode && rails % P != 0)
    return fail(b, "multi_plane: %d ports per node do not divide into %d planes", rails, P);
  /* Ports per plane per node; each plane is a rail-optimised or plain FT2 over its ports. */
  int per_node = rails / P, n_plane = t->n_nodes * per_node;
  int n_leaves_rail = ceil_div(t->n_nodes, d); /* per rail, used by multi_rail */
  int n_leaves = planes_mode ? ceil_div(n_plane, d) : n_leaves_rail * rails;
  if (n_leaves > k)
    return fail(b, "%d ports per %s need %d leaves but a 2-layer fat-tree of radix %d holds %d", n_plane,
                planes_mode ? "plane" : "fabric", n_leaves, k, k);
  int *gpu = util_xmalloc((size_t)(n_plane > 0 ? n_plane : 1) * P * sizeof *gpu);
  int *slot = util_xmalloc((size_t)(n_plane > 0 ? n_plane : 1) * P * sizeof *slot);
  int *leaf_of = util_xmalloc((size_t)(n_plane > 0 ? n_plane : 1) * P * sizeof *leaf_of);
  double inject = (double)t->n_gpus * U * fmin(t->nic.bw_gbps, t->sw.port_gbps), up = 0;
  for (int p = 0; p < P; p++) {
    int n = 0;
    for (int g = 0; g < t->n_gpus; g++) {
      int node = g / t->gpus_per_node, l = g % t->gpus_per_node;
      for (int j = 0; j < U; j++) {
        int r = l * U + j; /* rail of this port */
        if (planes_mode && r % P != p) continue;
        gpu[n] = g, slot[n] = j;
        leaf_of[n] = planes_mode ? n / d : r * n_leaves_rail + node / d;
        n++;
      }
    }
    up += build_ft2(b, gpu, slot, leaf_of, n, n_leaves, d, u, p, planes_mode ? 0 : rails);
  }
  t->bisection_gbps = (n_leaves > 1 ? fmin(inject, up) : inject) / 2;
  free(gpu);
  free(slot);
  free(leaf_of);
  return 0;
}

static int build_dragonfly(bctx *b, const topo_spec *s) {
  topo *t = b->t;
  int a = s->fabric.routers_per_group, p = s->fabric.endpoints_per_router, h = s->fabric.global_per_router;
  int g = s->fabric.groups ? s->fabric.groups : a * h + 1;
  if (p + h + a - 1 > t->radix)
    return fail(b, "dragonfly: p + h + a - 1 = %d ports exceed the radix %d", p + h + a - 1, t->radix);
  if (g < 2 || g > a * h + 1) return fail(b, "dragonfly: groups must be in [2, a*h + 1 = %d]", a * h + 1);
  int ports = t->n_gpus * t->uplinks_per_gpu;
  if (ports > a * p * g) return fail(b, "dragonfly: %d endpoint ports exceed a*p*g = %d", ports, a * p * g);
  uint32_t r0 = t->n_vertices;
  for (int gi = 0; gi < g; gi++)
    for (int r = 0; r < a; r++) add_switch(b, 0, 0, gi);
  for (int i = 0; i < ports; i++) attach(b, i / t->uplinks_per_gpu, i % t->uplinks_per_gpu, r0 + (uint32_t)(i / p));
  for (int gi = 0; gi < g; gi++)
    for (int x = 0; x < a; x++)
      for (int y = x + 1; y < a; y++) add_fabric(b, r0 + (uint32_t)(gi * a + x), r0 + (uint32_t)(gi * a + y));
  /* Relative arrangement: each group pair gets m links; the r = a*h - m*(g-1) spare ports of a
   * group link it to its next r/2 groups (forward) and serve its previous r/2 groups (backward). */
  int m = (a * h) / (g - 1), r = a * h - m * (g - 1), half_r = r / 2;
  if (half_r > g / 2) half_r = g / 2;
  for (int i = 0; i < g; i++)
    for (int j = i + 1; j < g; j++) {
      int dij = j - i, dji = g - dij;
      for (int c = 0; c < m; c++) {
        int pi = (dij - 1) + c * (g - 1), pj = (dji - 1) + c * (g - 1);
        add_fabric(b, r0 + (uint32_t)(i * a + pi / h), r0 + (uint32_t)(j * a + pj / h));
      }
    }
  for (int i = 0; i < g; i++)
    for (int e = 0; e < half_r; e++) {
      int j = (i + e + 1) % g, pi = m * (g - 1) + e, pj = m * (g - 1) + half_r + e;
      add_fabric(b, r0 + (uint32_t)(i * a + pi / h), r0 + (uint32_t)(j * a + pj / h));
    }
  /* Bisection: global links between the first and the second half of the groups. */
  int64_t cut = 0;
  for (int i = 0; i < g / 2; i++)
    for (int j = g / 2; j < g; j++) cut += m;
  for (int i = 0; i < g; i++)
    for (int e = 0; e < half_r; e++) cut += (i < g / 2) != ((i + e + 1) % g < g / 2);
  double inject = (double)ports * fmin(t->nic.bw_gbps, t->sw.port_gbps);
  t->bisection_gbps = fmin(inject / 2, (double)cut * t->sw.port_gbps);
  return 0;
}

/* Smallest primitive root modulo prime q. */
static int primitive_root(int q) {
  for (int x = 2; x < q; x++) {
    int ok = 1;
    for (int f = 2; f < q && ok; f++) {
      if ((q - 1) % f) continue;
      int prime = 1;
      for (int e = 2; e * e <= f; e++) prime &= f % e != 0;
      if (!prime) continue;
      long long r = 1, base = x;
      for (int e = (q - 1) / f; e; e >>= 1, base = base * base % q)
        if (e & 1) r = r * base % q;
      ok = r != 1;
    }
    if (ok) return x;
  }
  return 1;
}

static int is_prime(int q) {
  if (q < 2) return 0;
  for (int e = 2; e * e <= q; e++)
    if (q % e == 0) return 0;
  return 1;
}

static int build_slim_fly(bctx *b, const topo_spec *s) {
  topo *t = b->t;
  int q = s->fabric.q;
  if (!is_prime(q) || (q % 4 != 1 && q % 4 != 3))
    return fail(b, "slim_fly: q = %d must be a prime with q %% 4 == 1 or 3", q);
  int delta = q % 4 == 1 ? 1 : -1, w = (q - delta) / 4, kp = (3 * q - delta) / 2;
  int p = s->fabric.endpoints_per_router ? s->fabric.endpoints_per_router : (kp + 1) / 2;
  if (kp + p > t->radix) return fail(b, "slim_fly: network radix %d + %d endpoints exceed the radix %d", kp, p, t->radix);
  int ports = t->n_gpus * t->uplinks_per_gpu;
  if (ports > 2 * q * q * p) return fail(b, "slim_fly: %d endpoint ports exceed 2q^2 p = %d", ports, 2 * q * q * p);
  /* Generator sets X (for subgraph 0) and X' (subgraph 1) from powers of a primitive root xi. */
  int xi = primitive_root(q);
  char *inX = util_xcalloc((size_t)q, 1), *inXp = util_xcalloc((size_t)q, 1);
  long long acc = 1;
  int *powv = util_xmalloc((size_t)q * sizeof *powv);
  for (int e = 0; e < q - 1; e++, acc = acc * xi % q) powv[e] = (int)acc;
  if (delta == 1) {
    for (int e = 0; e <= q - 3; e += 2) inX[powv[e % (q - 1)]] = 1;
    for (int e = 1; e <= q - 2; e += 2) inXp[powv[e % (q - 1)]] = 1;
  } else {
    for (int e = 0; e <= 2 * w - 2; e += 2) inX[powv[e % (q - 1)]] = 1;
    for (int e = 2 * w - 1; e <= 4 * w - 3; e += 2) inX[powv[e % (q - 1)]] = 1;
    for (int e = 1; e <= 2 * w - 1; e += 2) inXp[powv[e % (q - 1)]] = 1;
    for (int e = 2 * w; e <= 4 * w - 2; e += 2) inXp[powv[e % (q - 1)]] = 1;
  }
  uint32_t r0 = t->n_vertices; /* router (sub, x, y) at r0 + sub*q*q + x*q + y */
  for (int i = 0; i < 2 * q * q; i++) add_switch(b, 0, 0, i / (q * q));
  for (int i = 0; i < ports; i++) attach(b, i / t->uplinks_per_gpu, i % t->uplinks_per_gpu, r0 + (uint32_t)(i / p));
  for (int x = 0; x < q; x++)
    for (int y = 0; y < q; y++)
      for (int y2 = y + 1; y2 < q; y2++) {
        int diff = (y2 - y + q) % q;
        if (inX[diff]) add_fabric(b, r0 + (uint32_t)(x * q + y), r0 + (uint32_t)(x * q + y2));
        if (inXp[diff]) add_fabric(b, r0 + (uint32_t)(q * q + x * q + y), r0 + (uint32_t)(q * q + x * q + y2));
      }
  for (int x = 0; x < q; x++)
    for (int y = 0; y < q; y++)
      for (int m = 0; m < q; m++) {
        int c = ((y - m * x) % q + q) % q; /* y = m x + c */
        add_fabric(b, r0 + (uint32_t)(x * q + y), r0 + (uint32_t)(q * q + m * q + c));
      }
  free(inX);
  free(inXp);
  free(powv);
  t->bisection_exact = 0; /* set after the adjacency exists */
  return 0;
}

static void finalize_adjacency(topo *t) {
  for (uint32_t i = 0; i < t->n_vertices; i++) t->v[i].out_n = 0;
  for (uint32_t i = 0; i < t->n_links; i++) t->v[t->l[i].src].out_n++;
  uint32_t acc = 0;
  for (uint32_t i = 0; i < t->n_vertices; i++) t->v[i].out_first = acc, acc += t->v[i].out_n, t->v[i].out_n = 0;
  t->adj = util_xmalloc((size_t)(t->n_links ? t->n_links : 1) * sizeof *t->adj);
  for (uint32_t i = 0; i < t->n_links; i++) {
    topo_vertex *v = &t->v[t->l[i].src];
    t->adj[v->out_first + v->out_n++] = i;
  }
}

static char *dup_or_null(const char *s) { return s ? util_xstrdup(s) : NULL; }

topo *topo_build(const topo_spec *s, char *err, size_t errlen) {
  topo *t = util_xcalloc(1, sizeof *t);
  bctx b = {.t = t, .err = err, .errlen = errlen};
  if (errlen) err[0] = 0;
  t->name = util_xstrdup(s->name ? s->name : "cluster");
  t->gpu = s->gpu, t->nic = s->nic, t->sw = s->sw;
  t->cable = s->fabric.cable, t->endpoint_cable = s->fabric.endpoint_cable;
  t->gpu.model = dup_or_null(s->gpu.model), t->nic.model = dup_or_null(s->nic.model);
  t->sw.model = dup_or_null(s->sw.model), t->cable.model = dup_or_null(s->fabric.cable.model);
  t->endpoint_cable.model = dup_or_null(s->fabric.endpoint_cable.model);
  t->fabric_kind = s->fabric.kind;
  t->adaptive = s->fabric.adaptive;
  t->levels = s->fabric.levels ? s->fabric.levels : 2;
  t->radix = s->fabric.radix ? s->fabric.radix : s->sw.radix;
  t->gpus_per_node = s->gpus_per_node;
  t->nvswitch_chips = s->nvswitch_chips;
  int none = s->fabric.kind == TOPO_FABRIC_NONE;
  t->uplinks_per_gpu = none ? 0 : (s->nics_per_gpu ? s->nics_per_gpu : 1) * s->nic.ports;
  t->planes = s->fabric.kind == TOPO_FABRIC_MULTI_PLANE ? (s->fabric.planes ? s->fabric.planes : s->gpus_per_node) : 1;
  t->bisection_exact = 1;
  double pf = none ? 1 : hwcat_nic_payload_fraction(&s->nic);
  b.port_gbyte_s = s->sw.port_gbps / 8 * pf;
  b.nic_gbyte_s = fmin(s->nic.bw_gbps, s->sw.port_gbps) / 8 * pf;
  b.lat_up = ps_from_ns(s->nic.latency_ns + s->fabric.endpoint_cable.latency_ns + s->sw.latency_ns);
  b.lat_down = ps_from_ns(s->fabric.endpoint_cable.latency_ns + s->nic.latency_ns);
  b.lat_fabric = ps_from_ns(s->fabric.cable.latency_ns + s->sw.latency_ns);
  int rc = 0;
  if (t->radix > s->sw.radix && !none) {
    rc = fail(&b, "fabric radix %d exceeds the switch's %d ports", t->radix, s->sw.radix);
    goto done;
  }
  /* Endpoint count: given, or what the fabric holds. */
  int64_t nodes = s->nodes;
  if (nodes == 0) {
    int k = t->radix, d, u, U = t->uplinks_per_gpu;
    split_ports(k, s->fabric.oversubscription, &d, &u);
    int64_t ports = 0;
    switch (s->fabric.kind) {
    case TOPO_FABRIC_NONE: ports = s->gpus_per_node; U = 1; break;
    case TOPO_FABRIC_FAT_TREE: ports = t->levels == 2 ? (int64_t)k * d : (int64_t)k * (k / 2) * d; break;
    case TOPO_FABRIC_MULTI_RAIL: ports = (int64_t)k * d; break;
    case TOPO_FABRIC_MULTI_PLANE: ports = (int64_t)t->planes * k * d; break;
    case TOPO_FABRIC_DRAGONFLY: {
      int g = s->fabric.groups ? s->fabric.groups : s->fabric.routers_per_group * s->fabric.global_per_router + 1;
      ports = (int64_t)s->fabric.routers_per_group * s->fabric.endpoints_per_router * g;
      break;
    }
    case TOPO_FABRIC_SLIM_FLY: {
      int q = s->fabric.q, delta = q % 4 == 1 ? 1 : -1, kp = (3 * q - delta) / 2;
      int p = s->fabric.endpoints_per_router ? s->fabric.endpoints_per_router : (kp + 1) / 2;
      ports = 2LL * q * q * p;
      break;
    }
    }
    nodes = ports / U / s->gpus_per_node;
  }
  if (nodes < 1 || nodes * s->gpus_per_node > (1 << 24)) {
    rc = fail(&b, "the cluster must have between 1 and %d GPUs (got %lld nodes)", 1 << 24, (long long)nodes);
    goto done;
  }
  if (none && nodes > 1) {
    rc = fail(&b, "fabric kind none holds one node (got %lld)", (long long)nodes);
    goto done;
  }
  t->n_nodes = (int)nodes;
  t->n_gpus = t->n_nodes * t->gpus_per_node;
  size_t nu = (size_t)t->n_gpus * (t->uplinks_per_gpu ? t->uplinks_per_gpu : 1);
  t->up = util_xmalloc(nu * sizeof *t->up);
  t->down = util_xmalloc(nu * sizeof *t->down);
  t->nvl_up = util_xmalloc((size_t)t->n_gpus * sizeof *t->nvl_up);
  t->nvl_down = util_xmalloc((size_t)t->n_gpus * sizeof *t->nvl_down);
  for (int g = 0; g < t->n_gpus; g++) add_vertex(&b, TOPO_V_GPU, 0, 0, g / t->gpus_per_node, g % t->gpus_per_node);
  for (int g = 0; g < t->n_gpus; g++) t->nvl_up[g] = t->nvl_down[g] = UINT32_MAX;
  if (s->scaleup == TOPO_SCALEUP_NVSWITCH && t->gpus_per_node > 1) {
    double c = s->gpu.scaleup_achievable_gbyte_s;
    sim_ps lat = ps_from_ns(s->gpu.scaleup_latency_ns);
    for (int n = 0; n < t->n_nodes; n++) {
      uint32_t sw = add_vertex(&b, TOPO_V_NVSWITCH, 0, 0, n, 0);
      for (int l = 0; l < t->gpus_per_node; l++) {
        int g = n * t->gpus_per_node + l;
        t->nvl_up[g] = add_pair(&b, (uint32_t)g, sw, TOPO_L_NVLINK, c, lat, lat);
        t->nvl_down[g] = t->nvl_up[g] + 1;
      }
    }
  }
  t->first_switch = t->n_vertices;
  switch (s->fabric.kind) {
  case TOPO_FABRIC_NONE: break;
  case TOPO_FABRIC_FAT_TREE: rc = build_fat_tree(&b, s); break;
  case TOPO_FABRIC_MULTI_RAIL:
    if (t->levels != 2) rc = fail(&b, "multi_rail is built with 2 levels");
    else rc = build_rails_or_planes(&b, s, 0);
    break;
  case TOPO_FABRIC_MULTI_PLANE:
    if (t->levels != 2) rc = fail(&b, "multi_plane is built with 2 levels per plane");
    else rc = build_rails_or_planes(&b, s, 1);
    break;
  case TOPO_FABRIC_DRAGONFLY: rc = build_dragonfly(&b, s); break;
  case TOPO_FABRIC_SLIM_FLY: rc = build_slim_fly(&b, s); break;
  }
  if (rc == 0) {
    finalize_adjacency(t);
    t->dist = util_xcalloc((size_t)(t->n_switches ? t->n_switches : 1), sizeof *t->dist);
    if (!t->bisection_exact) {
      double inject = (double)t->n_gpus * t->uplinks_per_gpu * fmin(t->nic.bw_gbps, t->sw.port_gbps);
      t->bisection_gbps = fmin(inject / 2, topo_heuristic_bisection(t));
    }
  }
done:
  if (rc != 0) {
    topo_free(t);
    return NULL;
  }
  assert(t->n_links % 2 == 0);
  return t;
}
