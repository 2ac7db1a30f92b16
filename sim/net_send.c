/* sim/net_send.c — routes and sends on the flow network (see net.h): the route of a send by path
 * kind (scale-up, direct scale-out, PXN or rail-first through a forwarding GPU), relayed sends in
 * chunks, and joins. Built on net.h's public calls only. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "util.h"

/* ---- routes and sends ---- */

/* Scale-out leg src -> dst into hops (ECMP by hash, or sprayed over every equal-cost path). */
static int scaleout(net *n, int src, int dst, uint64_t key, net_hop *hops, int room) {
  topo *t = net_topo(n);
  if (net_options(n)->spray) {
    uint32_t *links = util_xmalloc((size_t)room * sizeof *links);
    double *frac = util_xmalloc((size_t)room * sizeof *frac);
    int k = topo_route_spray(t, src, dst, links, frac, room);
    for (int i = 0; i < k; i++) hops[i] = (net_hop){links[i], frac[i]};
    free(links);
    free(frac);
    return k < 0 ? -1 : k;
  }
  uint32_t links[TOPO_MAX_HOPS];
  int k = topo_route_scaleout(t, src, dst, net_options(n)->seed, key, links);
  for (int i = 0; i < k && i < room; i++) hops[i] = (net_hop){links[i], 1.0};
  return k;
}

/* Scale-up leg src -> dst into hops. */
static int scaleup(net *n, int src, int dst, net_hop *hops) {
  uint32_t links[2];
  int k = topo_route_scaleup(net_topo(n), src, dst, links);
  for (int i = 0; i < k; i++) hops[i] = (net_hop){links[i], 1.0};
  return k;
}

int net_route(net *n, int src, int dst, const net_send_opts *o, net_hop *hops, int *relay_at) {
  static const net_send_opts defaults = {0};
  if (!o) o = &defaults;
  topo *t = net_topo(n);
  *relay_at = 0;
  if (src == dst) return 0;
  uint64_t key = o->key ? o->key : (uint64_t)src * 1000003u + (uint64_t)dst;
  int gpn = t->gpus_per_node;
  if (topo_same_domain(t, src, dst) && o->path != NET_PATH_DIRECT) return scaleup(n, src, dst, hops);
  if (o->path == NET_PATH_DIRECT || o->path == NET_PATH_AUTO) {
    int k = scaleout(n, src, dst, key, hops, NET_ROUTE_MAX);
    if (k < 0 && o->path == NET_PATH_AUTO) {
      net_send_opts p = *o;
      p.path = NET_PATH_PXN;
      return net_route(n, src, dst, &p, hops, relay_at);
    }
    return k;
  }
  int pxn = o->path == NET_PATH_PXN;
  int relay = pxn ? topo_node_of(t, src) * gpn + topo_local_of(t, dst) : topo_node_of(t, dst) * gpn + topo_local_of(t, src);
  if (relay == src || relay == dst) return scaleout(n, src, dst, key, hops, NET_ROUTE_MAX);
  int a = pxn ? scaleup(n, src, relay, hops) : scaleout(n, src, relay, key, hops, NET_ROUTE_MAX - 2);
  if (a < 0) return -1;
  int b = pxn ? scaleout(n, relay, dst, key, hops + a, NET_ROUTE_MAX - a) : scaleup(n, relay, dst, hops + a);
  if (b < 0) return -1;
  *relay_at = a;
  return a + b;
}

/* A relayed transfer in chunks. Each leg sends its chunks back to back (a chunk starts when the
 * previous one drained); a chunk can cross leg 2 once it has arrived at the relay (leg 1's drain
 * plus leg 1's latency). The transfer is delivered when the last chunk arrives at the end. */
typedef struct chain {
  net *n;
  net_hop *leg[2];   /* hops of each leg (extras included) */
  int nleg[2];
  sim_ps lat[2];     /* leg latencies */
  uint64_t bytes, chunk;
  uint32_t chunks;   /* total */
  uint32_t started[2], drained[2], arrived[2];
  net_done_fn fn;
  void *ctx;
} chain;

typedef struct chain_ev {
  chain *c;
  int leg;
} chain_ev;

static void chain_start(chain *c, int leg);

static void chain_arrived(net *n, void *p) {
  chain_ev *e = p;
  chain *c = e->c;
  int leg = e->leg;
  free(e);
  c->arrived[leg]++;
  if (leg == 0) {
    chain_start(c, 1);
  } else if (c->arrived[1] == c->chunks) {
    net_done_fn fn = c->fn;
    void *ctx = c->ctx;
    free(c->leg[0]);
    free(c->leg[1]);
    free(c);
    if (fn) fn(n, ctx);
  }
}

static void chain_drained(net *n, void *p) {
  chain_ev *e = p;
  chain *c = e->c;
  c->drained[e->leg]++;
  net_schedule(n, c->lat[e->leg], chain_arrived, e);
  chain_start(c, e->leg);
}

static void chain_start(chain *c, int leg) {
  if (c->started[leg] == c->chunks) return;
  if (c->started[leg] > c->drained[leg]) return;           /* this leg is busy */
  if (leg == 1 && c->started[1] >= c->arrived[0]) return;  /* next chunk not at the relay yet */
  uint32_t i = c->started[leg]++;
  uint64_t b = i + 1 < c->chunks ? c->chunk : c->bytes - (uint64_t)i * c->chunk;
  chain_ev *e = util_xmalloc(sizeof *e);
  *e = (chain_ev){c, leg};
  net_flow(c->n, b, c->leg[leg], c->nleg[leg], 0, chain_drained, e);
}

int net_send(net *n, int src, int dst, uint64_t bytes, const net_send_opts *o, net_done_fn done, void *ctx) {
  static const net_send_opts defaults = {0};
  if (!o) o = &defaults;
  /* Routes hold a few links; sprayed ones up to NET_ROUTE_MAX. */
  net_hop small[2 * TOPO_MAX_HOPS + 2 + 64];
  net_hop *hops = net_options(n)->spray ? util_xmalloc((NET_ROUTE_MAX + 64) * sizeof *hops) : small;
  int relay_at = 0, k = 0, rc = 0;
  if (src != dst && (k = net_route(n, src, dst, o, hops, &relay_at)) < 0) {
    rc = -1;
    goto out;
  }
  /* Latency per leg: the links' latencies weighted by the share of the traffic on them (1 on a
   * plain route; sprayed paths have equal lengths, so the sum is the path latency). */
  double lat[2] = {0, 0};
  for (int i = 0; i < k; i++) lat[relay_at && i >= relay_at] += (double)net_topo(n)->l[hops[i].res].latency * hops[i].weight;
  sim_ps l0 = (sim_ps)(lat[0] + 0.5), l1 = (sim_ps)(lat[1] + 0.5);
  int ne = o->n_extra < 64 ? o->n_extra : 64;
  if (relay_at && net_options(n)->chunk_bytes > 0 && !o->no_chunking && bytes > 0) {
    chain *c = util_xcalloc(1, sizeof *c);
    c->n = n, c->bytes = bytes, c->chunk = net_options(n)->chunk_bytes, c->fn = done, c->ctx = ctx;
    c->chunks = (uint32_t)((bytes + c->chunk - 1) / c->chunk);
    int len[2] = {relay_at, k - relay_at};
    for (int leg = 0; leg < 2; leg++) {
      c->leg[leg] = util_xmalloc((size_t)(len[leg] + ne) * sizeof(net_hop));
      memcpy(c->leg[leg], hops + (leg ? relay_at : 0), (size_t)len[leg] * sizeof(net_hop));
      if (ne) memcpy(c->leg[leg] + len[leg], o->extra, (size_t)ne * sizeof(net_hop));
      c->nleg[leg] = len[leg] + ne;
      c->lat[leg] = leg ? l1 : l0;
    }
    chain_start(c, 0);
    goto out;
  }
  if (ne) memcpy(hops + k, o->extra, (size_t)ne * sizeof(net_hop));
  net_flow(n, k + ne > 0 ? bytes : 0, hops, k + ne, l0 + l1, done, ctx);
out:
  if (hops != small) free(hops);
  return rc;
}

/* ---- joins ---- */

struct net_join {
  net *n;
  int members;     /* added and not yet delivered */
  int sealed;      /* no more members */
  net_done_fn all; /* run once all are delivered */
  void *ctx;
};

net_join *net_join_new(net *n, net_done_fn all, void *ctx) {
  net_join *j = util_xcalloc(1, sizeof *j);
  *j = (net_join){.n = n, .all = all, .ctx = ctx};
  return j;
}

net_join *net_join_add(net_join *j) {
  assert(!j->sealed);
  j->members++;
  return j;
}

static void join_fire(net *n, void *p) {
  net_join *j = p;
  net_done_fn all = j->all;
  void *ctx = j->ctx;
  free(j);
  if (all) all(n, ctx);
}

void net_join_done(net *n, void *p) {
  net_join *j = p;
  assert(j->members > 0);
  if (--j->members == 0 && j->sealed) join_fire(n, j);
}

void net_join_seal(net_join *j) {
  j->sealed = 1;
  if (j->members == 0) net_schedule(j->n, 0, join_fire, j);
}

