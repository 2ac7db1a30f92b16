/* sim/topo.c — topology files (key tables, catalogue resolution, loading), routes over the built
 * graph, and the sizing and cost summary (see topo.h). The builders live in topo_build.c. */
#include "topo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const topo_fabric_names[] = {"none", "fat_tree", "multi_rail", "multi_plane", "dragonfly", "slim_fly", NULL};
const char *const topo_scaleup_names[] = {"none", "nvswitch", NULL};
static const char *const routing_names[] = {"ecmp", "adaptive", NULL};

#define F(name_, type_, field, fl, doc_) \
  {.name = name_, .type = type_, .offset = offsetof(topo_fabric_spec, field), .flags = fl, .doc = doc_}

static const cfg_key fabric_keys[] = {
    {.name = "kind", .type = CFG_ENUM, .offset = offsetof(topo_fabric_spec, kind), .choices = topo_fabric_names,
     .flags = CFG_REQUIRED, .doc = "none | fat_tree | multi_rail | multi_plane | dragonfly | slim_fly"},
    F("levels", CFG_INT32, levels, CFG_NONNEG, "fat-tree layers, 2 or 3 (default 2)"),
    F("radix", CFG_INT32, radix, CFG_POSITIVE, "switch ports used (default: the switch's radix)"),
    F("oversubscription", CFG_DOUBLE, oversubscription, CFG_POSITIVE, "leaf down:up port ratio (default 1)"),
    F("planes", CFG_INT32, planes, CFG_POSITIVE, "multi_plane planes (default gpus_per_node)"),
    F("routers_per_group", CFG_INT32, routers_per_group, CFG_POSITIVE, "dragonfly a"),
    F("endpoints_per_router", CFG_INT32, endpoints_per_router, CFG_POSITIVE, "dragonfly/slim fly p"),
    F("global_per_router", CFG_INT32, global_per_router, CFG_POSITIVE, "dragonfly h"),
    F("groups", CFG_INT32, groups, CFG_POSITIVE, "dragonfly g (default a*h + 1)"),
    F("q", CFG_INT32, q, CFG_POSITIVE, "slim fly prime q (q % 4 = 1 or 3)"),
    {.name = "routing", .type = CFG_ENUM, .offset = offsetof(topo_fabric_spec, adaptive), .choices = routing_names,
     .doc = "ecmp (static: a flow hashed onto one path) | adaptive (spread over all equal-cost paths)"},
    {.name = "cable", .type = CFG_STRUCT, .offset = offsetof(topo_fabric_spec, cable), .sub = hwcat_cable_ref_keys,
     .doc = "switch-to-switch link: {model: NAME, price_usd, latency_ns}"},
    {.name = "endpoint_cable", .type = CFG_STRUCT, .offset = offsetof(topo_fabric_spec, endpoint_cable),
     .sub = hwcat_cable_ref_keys, .doc = "NIC-to-switch link: {model: NAME, ...}"},
    CFG_END};

#define S(name_, type_, field, fl, doc_) \
  {.name = name_, .type = type_, .offset = offsetof(topo_spec, field), .flags = fl, .doc = doc_}

const cfg_key topo_spec_keys[] = {
    S("name", CFG_STRING, name, CFG_REQUIRED, "cluster name"),
    S("catalogue", CFG_PATH, catalogue, 0, "hardware catalogue file, relative to this file"),
    {.name = "gpu", .type = CFG_STRUCT, .offset = offsetof(topo_spec, gpu), .sub = hwcat_gpu_ref_keys,
     .flags = CFG_REQUIRED, .doc = "{model: NAME} from the catalogue, any field overridable"},
    {.name = "nic", .type = CFG_STRUCT, .offset = offsetof(topo_spec, nic), .sub = hwcat_nic_ref_keys,
     .doc = "{model: NAME} (required unless fabric is none)"},
    {.name = "switch", .type = CFG_STRUCT, .offset = offsetof(topo_spec, sw), .sub = hwcat_switch_ref_keys,
     .doc = "scale-out switch {model: NAME} (required unless fabric is none)"},
    S("nodes", CFG_INT, nodes, CFG_NONNEG, "scale-up domains (servers or racks); 0 or absent: fill the fabric"),
    {.name = "gpus_per_node", .type = CFG_INT32, .offset = offsetof(topo_spec, gpus_per_node),
     .flags = CFG_REQUIRED | CFG_RANGE, .min = 1, .max = 1024, .doc = "GPUs per scale-up domain"},
    {.name = "scaleup", .type = CFG_ENUM, .offset = offsetof(topo_spec, scaleup), .choices = topo_scaleup_names,
     .doc = "none | nvswitch (default nvswitch)"},
    S("nvswitch_chips", CFG_INT32, nvswitch_chips, CFG_NONNEG, "NVSwitch chips per domain (bill of materials)"),
    S("nics_per_gpu", CFG_INT32, nics_per_gpu, CFG_NONNEG, "NICs per GPU (default 1)"),
    {.name = "fabric", .type = CFG_STRUCT, .offset = offsetof(topo_spec, fabric), .sub = fabric_keys,
     .flags = CFG_REQUIRED, .doc = "scale-out network"},
    CFG_END};

void topo_spec_init(topo_spec *s) {
  memset(s, 0, sizeof *s);
  hwcat_gpu_unset(&s->gpu);
  hwcat_nic_unset(&s->nic);
  hwcat_switch_unset(&s->sw);
  hwcat_cable_unset(&s->fabric.cable);
  hwcat_cable_unset(&s->fabric.endpoint_cable);
  s->scaleup = TOPO_SCALEUP_NVSWITCH;
  s->fabric.oversubscription = 1;
}

/* The node of `key` inside mapping `n`, or `n` itself. */
static const cfg_node *at_key(const cfg_node *n, const char *key) {
  const cfg_node *c = n ? cfg_node_get(n, key) : NULL;
  return c ? c : n;
}

int topo_spec_resolve(cfg_ctx *ctx, topo_spec *s, const cfg_node *node) {
  hwcat cat = {0}, *catp = NULL;
  if (s->catalogue) {
    if (hwcat_load(ctx, s->catalogue, &cat) != 0) return -1;
    catp = &cat;
  }
  const cfg_node *fab = at_key(node, "fabric");
  int none = s->fabric.kind == TOPO_FABRIC_NONE;
  if (hwcat_gpu_resolve(ctx, catp, &s->gpu, at_key(node, "gpu")) != 0) return -1;
  if (none) {
    /* No scale-out: the NIC and switch are optional; unset figures become zero. */
    if (s->nic.model && hwcat_nic_resolve(ctx, catp, &s->nic, at_key(node, "nic")) != 0) return -1;
    if (s->sw.model && hwcat_switch_resolve(ctx, catp, &s->sw, at_key(node, "switch")) != 0) return -1;
    hw_nic z = {.model = s->nic.model, .ports = 1, .mtu_bytes = 4096};
    hw_switch zs = {.model = s->sw.model, .radix = 1, .port_gbps = 1};
    if (isnan(s->nic.bw_gbps)) s->nic = z;
    if (isnan(s->sw.port_gbps)) s->sw = zs;
    s->fabric.cable = s->fabric.endpoint_cable = (hw_cable){0};
    return 0;
  }
  if (!cfg_node_get(node, "nic")) return cfg_error(ctx, node, "missing key 'nic' (the fabric is not none)");
  if (!cfg_node_get(node, "switch")) return cfg_error(ctx, node, "missing key 'switch' (the fabric is not none)");
  if (hwcat_nic_resolve(ctx, catp, &s->nic, at_key(node, "nic")) != 0) return -1;
  if (hwcat_switch_resolve(ctx, catp, &s->sw, at_key(node, "switch")) != 0) return -1;
  if (!cfg_node_get(fab, "cable"))
    return cfg_error(ctx, fab, "missing key 'cable' (the switch-to-switch link: {model: NAME} from the catalogue)");
  if (!cfg_node_get(fab, "endpoint_cable"))
    return cfg_error(ctx, fab, "missing key 'endpoint_cable' (the NIC-to-switch link: {model: NAME})");
  if (hwcat_cable_resolve(ctx, catp, &s->fabric.cable, at_key(fab, "cable")) != 0) return -1;
  if (hwcat_cable_resolve(ctx, catp, &s->fabric.endpoint_cable, at_key(fab, "endpoint_cable")) != 0) return -1;
  const topo_fabric_spec *f = &s->fabric;
  int lv = f->levels ? f->levels : 2;
  if (lv != 2 && lv != 3) return cfg_error(ctx, at_key(fab, "levels"), "levels must be 2 or 3");
  if (f->oversubscription < 1) return cfg_error(ctx, at_key(fab, "oversubscription"), "oversubscription must be >= 1");
  if (f->kind == TOPO_FABRIC_DRAGONFLY && (!f->routers_per_group || !f->endpoints_per_router || !f->global_per_router))
    return cfg_error(ctx, fab, "dragonfly needs routers_per_group, endpoints_per_router and global_per_router");
  if (f->kind == TOPO_FABRIC_SLIM_FLY && !f->q) return cfg_error(ctx, fab, "slim_fly needs q");
  return 0;
}

topo *topo_load(cfg_ctx *ctx, const char *path) {
  const cfg_node *root = cfg_load_file(ctx, path);
  if (!root) return NULL;
  topo_spec s;
  topo_spec_init(&s);
  if (cfg_bind(ctx, root, topo_spec_keys, &s, "") != 0) return NULL;
  if (cfg_overrides_check_used(ctx) != 0) return NULL;
  if (topo_spec_resolve(ctx, &s, root) != 0) return NULL;
  char err[256];
  topo *t = topo_build(&s, err, sizeof err);
  if (!t) cfg_error(ctx, at_key(root, "fabric"), "%s", err);
  return t;
}

void topo_free(topo *t) {
  if (!t) return;
  free(t->name);
  free(t->gpu.model);
  free(t->nic.model);
  free(t->sw.model);
  free(t->cable.model);
  free(t->endpoint_cable.model);
  free(t->v);
  free(t->l);
  free(t->adj);
  free(t->nvl_up);
  free(t->nvl_down);
  free(t->up);
  free(t->down);
  if (t->dist)
    for (int i = 0; i < t->n_switches; i++) free(t->dist[i]);
  free(t->dist);
  free(t->mark);
  free(t);
}

int topo_same_domain(const topo *t, int a, int b) {
  return topo_node_of(t, a) == topo_node_of(t, b) && t->nvl_up[a] != UINT32_MAX;
}

int topo_route_scaleup(const topo *t, int a, int b, uint32_t *links) {
  if (a == b || !topo_same_domain(t, a, b)) return -1;
  links[0] = t->nvl_up[a];
  links[1] = t->nvl_down[b];
  return 2;
}

static inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline uint64_t route_hash(uint64_t seed, int a, int b, uint64_t key, int hop) {
  return mix64(seed ^ mix64((uint64_t)(uint32_t)a << 32 ^ (uint32_t)b) ^ mix64(key * 0x100000001b3ull + (uint64_t)hop));
}

/* Hop distances (over switch-to-switch links) from every switch to switch ordinal `dst`. */
static const uint16_t *dist_to(topo *t, int dst) {
  if (t->dist[dst]) return t->dist[dst];
  int n = t->n_switches;
  uint16_t *d = util_xmalloc((size_t)n * sizeof *d);
  int *queue = util_xmalloc((size_t)n * sizeof *queue);
  for (int i = 0; i < n; i++) d[i] = UINT16_MAX;
  int head = 0, tail = 0;
  d[dst] = 0;
  queue[tail++] = dst;
  while (head < tail) {
    int s = queue[head++];
    const topo_vertex *v = &t->v[t->first_switch + (uint32_t)s];
    for (uint32_t e = 0; e < v->out_n; e++) {
      const topo_link *l = &t->l[t->adj[v->out_first + e]];
      if (l->kind != TOPO_L_FABRIC) continue; /* links are symmetric: out-neighbours = in-neighbours */
      int o = t->v[l->dst].index;
      if (d[o] == UINT16_MAX) d[o] = (uint16_t)(d[s] + 1), queue[tail++] = o;
    }
  }
  free(queue);
  t->dist[dst] = d;
  return d;
}

int topo_route_scaleout(topo *t, int a, int b, uint64_t seed, uint64_t key, uint32_t *links) {
  int U = t->uplinks_per_gpu;
  if (U == 0 || a == b) return -1;
  /* Uplink of a: the hashed one first, then the next that reaches b's plane. */
  int start = (int)(route_hash(seed, a, b, key, 0) % (uint64_t)U);
  for (int i = 0; i < U; i++) {
    uint32_t ua = t->up[(size_t)a * U + (size_t)((start + i) % U)];
    int la = t->v[t->l[ua].dst].index;
    int cand[64], nc = 0;
    for (int j = 0; j < U && nc < 64; j++) {
      uint32_t ub = t->down[(size_t)b * U + (size_t)j];
      if (dist_to(t, t->v[t->l[ub].src].index)[la] != UINT16_MAX) cand[nc++] = j;
    }
    if (nc == 0) continue;
    uint32_t ub = t->down[(size_t)b * U + (size_t)cand[route_hash(seed, a, b, key, 1) % (uint64_t)nc]];
    int lb = t->v[t->l[ub].src].index;
    const uint16_t *d = dist_to(t, lb);
    int n = 0;
    links[n++] = ua;
    int cur = la;
    while (cur != lb) {
      const topo_vertex *v = &t->v[t->first_switch + (uint32_t)cur];
      uint32_t next[256];
      int nn = 0;
      for (uint32_t e = 0; e < v->out_n && nn < 256; e++) {
        uint32_t id = t->adj[v->out_first + e];
        const topo_link *l = &t->l[id];
        if (l->kind == TOPO_L_FABRIC && d[t->v[l->dst].index] + 1 == d[cur]) next[nn++] = id;
      }
      if (nn == 0 || n >= TOPO_MAX_HOPS - 1) return -1;
      uint32_t id = next[route_hash(seed, a, b, key, 2 + n) % (uint64_t)nn];
      links[n++] = id;
      cur = t->v[t->l[id].dst].index;
    }
    links[n++] = ub;
    return n;
  }
  return -1;
}

/* Appends (link, f) unless full; returns 0 or -2. */
static int spray_put(uint32_t *links, double *frac, int *n, int max, uint32_t l, double f) {
  if (*n >= max) return -2;
  links[*n] = l, frac[*n] = f;
  (*n)++;
  return 0;
}

/* Spreads fraction w from switch la to switch lb over the shortest-path DAG. */
static int spray_between(topo *t, int la, int lb, double w, uint32_t *links, double *frac, int *n, int max) {
  const uint16_t *d = dist_to(t, lb);
  int cap = 64, ncur = 1;
  int *cur = util_xmalloc((size_t)cap * sizeof *cur), *nxt = util_xmalloc((size_t)cap * sizeof *nxt);
  double *fc = util_xmalloc((size_t)cap * sizeof *fc), *fn = util_xmalloc((size_t)cap * sizeof *fn);
  cur[0] = la, fc[0] = w;
  int rc = 0;
  while (rc == 0 && !(ncur == 1 && cur[0] == lb)) {
    int nn = 0;
    for (int i = 0; i < ncur && rc == 0; i++) {
      const topo_vertex *v = &t->v[t->first_switch + (uint32_t)cur[i]];
      int k = 0;
      for (uint32_t e = 0; e < v->out_n; e++) {
        const topo_link *l = &t->l[t->adj[v->out_first + e]];
        k += l->kind == TOPO_L_FABRIC && d[t->v[l->dst].index] + 1 == d[cur[i]];
      }
      for (uint32_t e = 0; e < v->out_n && rc == 0; e++) {
        uint32_t id = t->adj[v->out_first + e];
        const topo_link *l = &t->l[id];
        int o = t->v[l->dst].index;
        if (l->kind != TOPO_L_FABRIC || d[o] + 1 != d[cur[i]]) continue;
        double f = fc[i] / k;
        rc = spray_put(links, frac, n, max, id, f);
        if (t->mark[o] < 0) {
          if (nn == cap) {
            cap *= 2;
            nxt = util_xrealloc(nxt, (size_t)cap * sizeof *nxt), fn = util_xrealloc(fn, (size_t)cap * sizeof *fn);
            cur = util_xrealloc(cur, (size_t)cap * sizeof *cur), fc = util_xrealloc(fc, (size_t)cap * sizeof *fc);
          }
          t->mark[o] = nn, nxt[nn] = o, fn[nn++] = 0;
        }
        fn[t->mark[o]] += f;
      }
    }
    for (int i = 0; i < nn; i++) t->mark[nxt[i]] = -1;
    int *ti = cur;
    cur = nxt, nxt = ti;
    double *tf = fc;
    fc = fn, fn = tf;
    ncur = nn;
    if (nn == 0) rc = -1;
  }
  free(cur), free(nxt), free(fc), free(fn);
  return rc;
}

int topo_route_spray(topo *t, int a, int b, uint32_t *links, double *frac, int max) {
  int U = t->uplinks_per_gpu;
  if (U == 0 || a == b) return -1;
  if (!t->mark) {
    t->mark = util_xmalloc((size_t)t->n_switches * sizeof *t->mark);
    for (int i = 0; i < t->n_switches; i++) t->mark[i] = -1;
  }
  /* Uplinks of a that reach some uplink of b (same plane), and for each, b's reachable uplinks. */
  int ua[64], nua = 0;
  for (int i = 0; i < U && nua < 64; i++) {
    int la = t->v[t->l[t->up[(size_t)a * U + (size_t)i]].dst].index, ok = 0;
    for (int j = 0; j < U && !ok; j++) ok = dist_to(t, t->v[t->l[t->down[(size_t)b * U + (size_t)j]].src].index)[la] != UINT16_MAX;
    if (ok) ua[nua++] = i;
  }
  if (nua == 0) return -1;
  int n = 0;
  for (int i = 0; i < nua; i++) {
    uint32_t up = t->up[(size_t)a * U + (size_t)ua[i]];
    int la = t->v[t->l[up].dst].index;
    if (spray_put(links, frac, &n, max, up, 1.0 / nua) != 0) return -2;
    int ub[64], nub = 0;
    for (int j = 0; j < U && nub < 64; j++)
      if (dist_to(t, t->v[t->l[t->down[(size_t)b * U + (size_t)j]].src].index)[la] != UINT16_MAX) ub[nub++] = j;
    for (int j = 0; j < nub; j++) {
      uint32_t dn = t->down[(size_t)b * U + (size_t)ub[j]];
      double w = 1.0 / nua / nub;
      int rc = spray_between(t, la, t->v[t->l[dn].src].index, w, links, frac, &n, max);
      if (rc != 0) return rc;
      if (spray_put(links, frac, &n, max, dn, w) != 0) return -2;
    }
  }
  return n;
}

sim_ps topo_route_latency(const topo *t, const uint32_t *links, int n) {
  sim_ps s = 0;
  for (int i = 0; i < n; i++) s += t->l[links[i]].latency;
  return s;
}

/* Balanced bipartition of the switch graph by greedy pair swaps from seeded random starts; returns
 * the smallest cut found times the port rate (Gb/s). An upper bound on the true bisection. */
double topo_heuristic_bisection(const topo *t) {
  int n = t->n_switches;
  if (n < 2) return 0;
  char *side = util_xmalloc((size_t)n);
  int *gain = util_xmalloc((size_t)n * sizeof *gain), *order = util_xmalloc((size_t)n * sizeof *order);
  long best = -1;
  uint64_t rng = 0x5eed;
  for (int trial = 0; trial < 4; trial++) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
      rng = mix64(rng);
      int j = (int)(rng % (uint64_t)(i + 1)), x = order[i];
      order[i] = order[j], order[j] = x;
    }
    for (int i = 0; i < n; i++) side[order[i]] = i < n / 2;
    for (int pass = 0; pass < 40; pass++) {
      for (int i = 0; i < n; i++) {
        const topo_vertex *v = &t->v[t->first_switch + (uint32_t)i];
        int g = 0;
        for (uint32_t e = 0; e < v->out_n; e++) {
          const topo_link *l = &t->l[t->adj[v->out_first + e]];
          if (l->kind == TOPO_L_FABRIC) g += side[t->v[l->dst].index] != side[i] ? 1 : -1;
        }
        gain[i] = g;
      }
      /* Best vertex on each side; swap while the pair improves the cut. */
      int ba = -1, bb = -1;
      for (int i = 0; i < n; i++) {
        if (side[i] && (ba < 0 || gain[i] > gain[ba])) ba = i;
        if (!side[i] && (bb < 0 || gain[i] > gain[bb])) bb = i;
      }
      int adj = 0;
      const topo_vertex *va = &t->v[t->first_switch + (uint32_t)ba];
      for (uint32_t e = 0; e < va->out_n; e++) {
        const topo_link *l = &t->l[t->adj[va->out_first + e]];
        adj += l->kind == TOPO_L_FABRIC && t->v[l->dst].index == bb;
      }
      if (gain[ba] + gain[bb] - 2 * adj <= 0) break;
      side[ba] = 0, side[bb] = 1;
    }
    long cut = 0;
    for (uint32_t i = 0; i < t->n_links; i++) {
      const topo_link *l = &t->l[i];
      if (l->kind == TOPO_L_FABRIC && t->v[l->src].index < t->v[l->dst].index)
        cut += side[t->v[l->src].index] != side[t->v[l->dst].index];
    }
    if (best < 0 || cut < best) best = cut;
  }
  free(side);
  free(gain);
  free(order);
  return (double)best * t->sw.port_gbps;
}

static void bom_add(topo_summary *s, const char *item, uint64_t count, double unit) {
  if (count == 0 || s->n_bom >= (int)UTIL_ARRAY_LEN(s->bom)) return;
  topo_bom_line *b = &s->bom[s->n_bom++];
  snprintf(b->item, sizeof b->item, "%s", item);
  b->count = count;
  b->unit_usd = unit;
  s->cost_usd += (double)count * unit;
}

void topo_summarize(const topo *t, topo_summary *s) {
  memset(s, 0, sizeof *s);
  s->endpoints = t->n_gpus;
  s->switches = t->n_switches;
  s->links = t->n_fabric_links;
  s->endpoint_links = t->n_gpus * t->uplinks_per_gpu;
  s->bisection_gbps = t->bisection_gbps;
  s->bisection_exact = t->bisection_exact;
  char item[64];
  if (t->n_switches) {
    snprintf(item, sizeof item, "switch %s (%d x %.0fG)", t->sw.model ? t->sw.model : "", t->sw.radix, t->sw.port_gbps);
    bom_add(s, item, (uint64_t)t->n_switches, t->sw.price_usd);
    snprintf(item, sizeof item, "switch-switch link %s", t->cable.model ? t->cable.model : "");
    bom_add(s, item, (uint64_t)t->n_fabric_links, t->cable.price_usd);
  }
  if (t->uplinks_per_gpu) {
    int nics = t->uplinks_per_gpu / (t->nic.ports > 0 ? t->nic.ports : 1);
    snprintf(item, sizeof item, "NIC %s (%d x %.0fG)", t->nic.model ? t->nic.model : "", t->nic.ports, t->nic.bw_gbps);
    bom_add(s, item, (uint64_t)t->n_gpus * (uint64_t)nics, t->nic.price_usd);
    snprintf(item, sizeof item, "NIC-switch link %s", t->endpoint_cable.model ? t->endpoint_cable.model : "");
    bom_add(s, item, (uint64_t)s->endpoint_links, t->endpoint_cable.price_usd);
  }
}

topo_counts topo_counts_ft2(int k) { return (topo_counts){(int64_t)k * k / 2, 3LL * k / 2, (int64_t)k * k / 2}; }
topo_counts topo_counts_ft3(int k) {
  return (topo_counts){(int64_t)k * k * k / 4, 5LL * k * k / 4, (int64_t)k * k * k / 2};
}
topo_counts topo_counts_mpft(int k, int planes) {
  topo_counts c = topo_counts_ft2(k);
  return (topo_counts){c.endpoints * planes, c.switches * planes, c.links * planes};
}
topo_counts topo_counts_dragonfly(int a, int p, int h, int g) {
  int64_t m = (int64_t)a * h / (g - 1), r = (int64_t)a * h - m * (g - 1);
  int64_t half_r = r / 2 < g / 2 ? r / 2 : g / 2;
  return (topo_counts){(int64_t)a * p * g, (int64_t)a * g,
                       (int64_t)a * (a - 1) / 2 * g + (int64_t)g * (g - 1) / 2 * m + (int64_t)g * half_r};
}
topo_counts topo_counts_slim_fly(int q, int p) {
  int delta = q % 4 == 1 ? 1 : -1;
  int64_t routers = 2LL * q * q, kp = (3 * q - delta) / 2;
  return (topo_counts){routers * p, routers, routers * kp / 2};
}
