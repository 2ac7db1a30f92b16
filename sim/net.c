/* sim/net.c — flow-level network (see net.h): resources, flows, incremental weighted max-min
 * rates, drain/complete events, routes and sends.
 *
 * Internals. Rates are bytes per picosecond. A resource keeps the list of (flow, hop) crossing it,
 * so a flow leaves every list in O(hops) by swap-removal. A recomputation runs once per instant
 * with changes (an event scheduled at the instant of the first change) over the set A: flows on
 * resources touched by a change, closed under "shares a saturated resource". Resources A crosses
 * that also carry other flows (boundary resources) lend A what those flows leave; if A's solution
 * saturates one of them, A is widened by its flows and solved again. Progressive filling uses a
 * binary heap of resources keyed by fair share rem / (sum of unfrozen weights), lazily invalidated
 * by a version number. */
#include "net.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SAT_TOL 1e-9 /* a resource with load >= (1 - SAT_TOL) x capacity is saturated */
#define FLOW_BLOCK 4096

typedef struct nhop {
  uint32_t res; /* resource */
  uint32_t pos; /* index of this flow in the resource's list */
  double w;     /* bytes on the resource per byte of the flow */
} nhop;

typedef struct nflow {
  net *net;          /* owner (drain/complete events carry the flow pointer) */
  uint32_t id;       /* index */
  uint32_t nhops;    /* hops */
  nhop *hops;        /* hops[nhops] */
  double rem;        /* bytes left at t_upd */
  double rate;       /* bytes/ps */
  double new_rate;   /* solver output */
  sim_ps t_upd;      /* time rem was last brought up to date */
  sim_ps latency;    /* added after the last byte drains */
  des_handle ev;     /* pending drain event (0 none) */
  net_done_fn fn;    /* completion callback */
  void *ctx;
  uint32_t mark;     /* epoch in which the flow joined A */
  uint32_t next_free;/* free list */
  uint8_t live;      /* allocated */
  uint8_t active;    /* on its resources' lists (not yet drained) */
  uint8_t frozen;    /* solver: rate fixed */
} nflow;

typedef struct nent {
  uint32_t flow; /* flow id */
  uint32_t hop;  /* index of the hop in the flow */
} nent;

typedef struct nres {
  double cap;          /* capacity, bytes/ps */
  double load;         /* sum of weight x rate, bytes/ps */
  double bytes;        /* bytes crossed up to t_upd */
  sim_ps t_upd;        /* time of the last byte-counter update */
  nent *fl;            /* flows crossing it */
  uint32_t nfl, capfl;
  double rem, wsum;    /* solver: capacity left, unfrozen weight */
  uint32_t nunf;       /* solver: unfrozen A flows */
  uint32_t na;         /* solver: A incidences */
  uint32_t ver;        /* heap entry version */
  uint32_t touch, expand, seed; /* epochs of the marks */
  uint8_t kind;        /* net_res_kind */
  uint8_t live;        /* allocated */
  int32_t owner;       /* GPU of a virtual resource, or -1 */
  uint32_t next_free;  /* free list of virtual resources */
} nres;

typedef struct hent {
  double key;
  uint32_t res, ver;
} hent;

struct net {
  des_sim *sim;
  topo *t;
  net_opts o;
  nres *res;
  uint32_t n_res, cap_res, res_free, n_links;
  nflow **blocks; /* flows in stable blocks of FLOW_BLOCK */
  uint32_t n_blocks, n_flows, flow_free;
  uint32_t *seeds; /* resources changed since the last recomputation */
  uint32_t n_seeds, cap_seeds;
  des_handle recompute_ev;
  uint32_t epoch;
  uint32_t *A, nA, capA;      /* flows being solved */
  uint32_t *R, nR, capR;      /* resources they touch */
  uint32_t *stack, nstack, capstack;
  hent *heap;
  uint32_t nheap, capheap;
  sim_ps t_reset;             /* start of the utilisation window */
  net_stats st;
};

static inline nflow *flow_at(const net *n, uint32_t id) { return &n->blocks[id / FLOW_BLOCK][id % FLOW_BLOCK]; }

#define PUSH(arr, len, cap, val)                                          \
  do {                                                                    \
    if ((len) == (cap)) {                                                 \
      (cap) = (cap) ? (cap) * 2 : 256;                                    \
      (arr) = util_xrealloc((arr), (size_t)(cap) * sizeof *(arr));        \
    }                                                                     \
    (arr)[(len)++] = (val);                                               \
  } while (0)

static uint32_t res_new(net *n, double bytes_per_ps, int kind, int owner) {
  uint32_t id;
  if (n->res_free != UINT32_MAX) {
    id = n->res_free;
    n->res_free = n->res[id].next_free;
  } else {
    if (n->n_res == n->cap_res) {
      n->cap_res = n->cap_res ? n->cap_res * 2 : 1024;
      n->res = util_xrealloc(n->res, (size_t)n->cap_res * sizeof *n->res);
    }
    id = n->n_res++;
    memset(&n->res[id], 0, sizeof n->res[id]);
  }
  nres *r = &n->res[id];
  nent *fl = r->fl;
  uint32_t capfl = r->capfl;
  memset(r, 0, sizeof *r);
  r->fl = fl, r->capfl = capfl;
  r->cap = bytes_per_ps;
  r->kind = (uint8_t)kind;
  r->owner = owner;
  r->live = 1;
  r->t_upd = des_now(n->sim);
  return id;
}

net *net_new(des_sim *sim, topo *t, const net_opts *o) {
  net *n = util_xcalloc(1, sizeof *n);
  n->sim = sim;
  n->t = t;
  if (o) n->o = *o;
  n->res_free = n->flow_free = UINT32_MAX;
  n->recompute_ev = 0;
  if (t) {
    for (uint32_t i = 0; i < t->n_links; i++) {
      uint32_t id = res_new(n, t->l[i].gbyte_s * 1e-3, NET_RES_LINK, -1);
      assert(id == i);
      (void)id;
    }
    n->n_links = t->n_links;
  }
  n->t_reset = des_now(sim);
  return n;
}

void net_free(net *n) {
  if (!n) return;
  for (uint32_t i = 0; i < n->n_res; i++) free(n->res[i].fl);
  free(n->res);
  for (uint32_t b = 0; b < n->n_blocks; b++) {
    for (uint32_t i = 0; i < FLOW_BLOCK; i++) free(n->blocks[b][i].hops);
    free(n->blocks[b]);
  }
  free(n->blocks);
  free(n->seeds);
  free(n->A);
  free(n->R);
  free(n->stack);
  free(n->heap);
  free(n);
}

des_sim *net_sim(net *n) { return n->sim; }
topo *net_topo(net *n) { return n->t; }
sim_ps net_now(const net *n) { return des_now(n->sim); }

typedef struct sched_ctx {
  net *n;
  net_done_fn fn;
  void *ctx;
} sched_ctx;

static void sched_fire(des_sim *s, void *p) {
  (void)s;
  sched_ctx c = *(sched_ctx *)p;
  free(p);
  c.fn(c.n, c.ctx);
}

void net_schedule(net *n, sim_ps delay, net_done_fn fn, void *ctx) {
  sched_ctx *c = util_xmalloc(sizeof *c);
  *c = (sched_ctx){n, fn, ctx};
  des_after(n->sim, delay, sched_fire, c);
}

uint32_t net_res_add(net *n, double gbyte_s, net_res_kind kind, int owner) {
  assert(gbyte_s > 0);
  return res_new(n, gbyte_s * 1e-3, kind, owner);
}

void net_res_remove(net *n, uint32_t id) {
  assert(id >= n->n_links && id < n->n_res && n->res[id].live && n->res[id].nfl == 0);
  n->res[id].live = 0;
  n->res[id].next_free = n->res_free;
  n->res_free = id;
}

double net_res_capacity(const net *n, uint32_t id) { return n->res[id].cap * 1e3; }

static inline void res_catch_up(nres *r, sim_ps now) {
  r->bytes += r->load * (double)(now - r->t_upd);
  r->t_upd = now;
}

double net_res_bytes(net *n, uint32_t id) {
  res_catch_up(&n->res[id], des_now(n->sim));
  return n->res[id].bytes;
}

void net_reset_counters(net *n) {
  sim_ps now = des_now(n->sim);
  for (uint32_t i = 0; i < n->n_res; i++) n->res[i].bytes = 0, n->res[i].t_upd = now;
  n->t_reset = now;
}

static void seed(net *n, uint32_t r) {
  if (n->res[r].seed == n->epoch + 1) return;
  n->res[r].seed = n->epoch + 1; /* the next recomputation's epoch */
  PUSH(n->seeds, n->n_seeds, n->cap_seeds, r);
}

static void recompute_ev(des_sim *s, void *p);

static void mark_dirty(net *n) {
  if (!n->recompute_ev) n->recompute_ev = des_at(n->sim, des_now(n->sim), recompute_ev, n);
}

/* ---- the solver ---- */

static void touch(net *n, uint32_t r) {
  if (n->res[r].touch == n->epoch) return;
  n->res[r].touch = n->epoch;
  PUSH(n->R, n->nR, n->capR, r);
}

static inline int saturated(const nres *r) { return r->load >= r->cap * (1 - SAT_TOL); }

/* Adds every flow on resource r to A, following saturated resources (explicit stack). */
static void expand(net *n, uint32_t r0) {
  if (n->res[r0].expand == n->epoch) return;
  n->res[r0].expand = n->epoch;
  n->nstack = 0;
  PUSH(n->stack, n->nstack, n->capstack, r0);
  while (n->nstack) {
    uint32_t r = n->stack[--n->nstack];
    touch(n, r);
    for (uint32_t i = 0; i < n->res[r].nfl; i++) {
      nflow *f = flow_at(n, n->res[r].fl[i].flow);
      if (f->mark == n->epoch) continue;
      f->mark = n->epoch;
      PUSH(n->A, n->nA, n->capA, f->id);
      for (uint32_t h = 0; h < f->nhops; h++) {
        uint32_t q = f->hops[h].res;
        touch(n, q);
        if (n->res[q].expand != n->epoch && saturated(&n->res[q])) {
          n->res[q].expand = n->epoch;
          PUSH(n->stack, n->nstack, n->capstack, q);
        }
      }
    }
  }
}

static void heap_push(net *n, double key, uint32_t r) {
  if (n->nheap == n->capheap) {
    n->capheap = n->capheap ? n->capheap * 2 : 1024;
    n->heap = util_xrealloc(n->heap, (size_t)n->capheap * sizeof *n->heap);
  }
  hent e = {key, r, n->res[r].ver};
  uint32_t i = n->nheap++;
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (n->heap[p].key <= key) break;
    n->heap[i] = n->heap[p];
    i = p;
  }
  n->heap[i] = e;
}

static hent heap_pop(net *n) {
  hent top = n->heap[0], last = n->heap[--n->nheap];
  uint32_t i = 0, m = n->nheap;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && n->heap[c + 1].key < n->heap[c].key) c++;
    if (n->heap[c].key >= last.key) break;
    n->heap[i] = n->heap[c];
    i = c;
  }
  if (m) n->heap[i] = last;
  return top;
}

static inline double share(const nres *r) { return (r->rem > 0 ? r->rem : 0) / (r->wsum > 1e-300 ? r->wsum : 1e-300); }

static void freeze(net *n, nflow *f, double x) {
  f->frozen = 1;
  f->new_rate = x;
  for (uint32_t h = 0; h < f->nhops; h++) {
    nres *q = &n->res[f->hops[h].res];
    q->rem -= f->hops[h].w * x;
    q->wsum -= f->hops[h].w;
    q->nunf--;
    if (q->nunf > 0) {
      q->ver++;
      heap_push(n, share(q), f->hops[h].res);
    }
  }
}

/* Progressive filling over A given the boundary loads. */
static void solve(net *n) {
  for (uint32_t i = 0; i < n->nR; i++) {
    nres *r = &n->res[n->R[i]];
    r->rem = r->cap, r->wsum = 0, r->nunf = 0, r->na = 0;
  }
  for (uint32_t i = 0; i < n->nA; i++) {
    nflow *f = flow_at(n, n->A[i]);
    f->frozen = 0;
    for (uint32_t h = 0; h < f->nhops; h++) {
      nres *r = &n->res[f->hops[h].res];
      r->wsum += f->hops[h].w, r->nunf++, r->na++;
    }
  }
  n->nheap = 0;
  for (uint32_t i = 0; i < n->nR; i++) {
    nres *r = &n->res[n->R[i]];
    if (r->na < r->nfl) /* boundary: the others keep their rates */
      for (uint32_t j = 0; j < r->nfl; j++) {
        const nflow *g = flow_at(n, r->fl[j].flow);
        if (g->mark != n->epoch) r->rem -= g->hops[r->fl[j].hop].w * g->rate;
      }
    if (r->nunf > 0) {
      r->ver++;
      heap_push(n, share(r), n->R[i]);
    }
  }
  while (n->nheap) {
    hent e = heap_pop(n);
    nres *r = &n->res[e.res];
    if (e.ver != r->ver || r->nunf == 0) continue;
    double x = e.key;
    for (uint32_t j = 0; j < r->nfl && r->nunf > 0; j++) {
      nflow *f = flow_at(n, r->fl[j].flow);
      if (f->mark == n->epoch && !f->frozen) freeze(n, f, x);
    }
  }
}

static void drain_ev(des_sim *s, void *p);

static void apply(net *n) {
  sim_ps now = des_now(n->sim);
  for (uint32_t i = 0; i < n->nR; i++) res_catch_up(&n->res[n->R[i]], now);
  for (uint32_t i = 0; i < n->nA; i++) {
    nflow *f = flow_at(n, n->A[i]);
    double x = f->new_rate;
    if (f->rate > 0 && fabs(x - f->rate) <= 1e-12 * f->rate) continue;
    f->rem -= f->rate * (double)(now - f->t_upd);
    if (f->rem < 0) f->rem = 0;
    f->t_upd = now;
    f->rate = x;
    if (f->ev) des_cancel(n->sim, f->ev);
    assert(x > 0 && "a flow got no bandwidth: a resource of zero capacity?");
    double dt = ceil(f->rem / x);
    f->ev = des_at(n->sim, now + (dt < 1e18 ? (sim_ps)dt : (sim_ps)1e18), drain_ev, f);
  }
  for (uint32_t i = 0; i < n->nR; i++) {
    nres *r = &n->res[n->R[i]];
    double load = 0;
    for (uint32_t j = 0; j < r->nfl; j++) {
      const nflow *g = flow_at(n, r->fl[j].flow);
      load += g->hops[r->fl[j].hop].w * g->rate;
    }
    r->load = load;
  }
}

static void recompute_ev(des_sim *s, void *p) {
  (void)s;
  net *n = p;
  n->recompute_ev = 0;
  n->epoch++;
  n->nA = n->nR = 0;
  for (uint32_t i = 0; i < n->n_seeds; i++) expand(n, n->seeds[i]);
  n->n_seeds = 0;
  for (;;) {
    solve(n);
    /* Exactness check: a boundary resource A saturates must share with its other flows. */
    int widened = 0;
    for (uint32_t i = 0; i < n->nR; i++) {
      nres *r = &n->res[n->R[i]];
      if (r->expand != n->epoch && r->na < r->nfl && r->rem <= r->cap * SAT_TOL) {
        expand(n, n->R[i]);
        widened = 1;
      }
    }
    if (!widened) break;
    n->st.widenings++;
  }
  apply(n);
  n->st.recomputes++;
  n->st.flows_resolved += n->nA;
}

/* ---- flows ---- */

static nflow *flow_alloc(net *n) {
  if (n->flow_free == UINT32_MAX) {
    n->blocks = util_xrealloc(n->blocks, (size_t)(n->n_blocks + 1) * sizeof *n->blocks);
    nflow *b = util_xcalloc(FLOW_BLOCK, sizeof *b);
    n->blocks[n->n_blocks] = b;
    for (uint32_t i = FLOW_BLOCK; i-- > 0;) {
      b[i].id = n->n_blocks * FLOW_BLOCK + i;
      b[i].net = n;
      b[i].next_free = n->flow_free;
      n->flow_free = b[i].id;
    }
    n->n_blocks++;
  }
  nflow *f = flow_at(n, n->flow_free);
  n->flow_free = f->next_free;
  f->live = 1;
  return f;
}

static void flow_release(net *n, nflow *f) {
  f->live = 0;
  f->nhops = 0;
  f->next_free = n->flow_free;
  n->flow_free = f->id;
}

static void complete_ev(des_sim *s, void *p) {
  (void)s;
  nflow *f = p;
  net *n = f->net;
  net_done_fn fn = f->fn;
  void *ctx = f->ctx;
  flow_release(n, f);
  if (fn) fn(n, ctx);
}

static void drain_ev(des_sim *s, void *p) {
  nflow *f = p;
  net *n = f->net;
  sim_ps now = des_now(s);
  f->ev = 0;
  for (uint32_t h = 0; h < f->nhops; h++) {
    uint32_t r = f->hops[h].res;
    nres *q = &n->res[r];
    res_catch_up(q, now);
    uint32_t pos = f->hops[h].pos, last = --q->nfl;
    if (pos != last) {
      q->fl[pos] = q->fl[last];
      flow_at(n, q->fl[pos].flow)->hops[q->fl[pos].hop].pos = pos;
    }
    seed(n, r);
  }
  f->active = 0;
  f->rem = 0;
  f->rate = 0;
  n->st.flows_finished++;
  mark_dirty(n);
  des_after(s, f->latency, complete_ev, f);
}

uint32_t net_flow(net *n, uint64_t bytes, const net_hop *hops, int n_hops, sim_ps latency, net_done_fn fn,
                  void *ctx) {
  nflow *f = flow_alloc(n);
  f->fn = fn, f->ctx = ctx, f->latency = latency;
  f->rem = (double)bytes, f->rate = 0, f->new_rate = 0, f->ev = 0, f->mark = 0, f->frozen = 0;
  f->t_upd = des_now(n->sim);
  n->st.flows_started++;
  if (bytes == 0 || n_hops == 0) {
    assert(bytes == 0 && "a flow with bytes needs at least one resource");
    f->nhops = 0;
    des_after(n->sim, latency, complete_ev, f);
    return f->id;
  }
  f->hops = util_xrealloc(f->hops, (size_t)n_hops * sizeof *f->hops);
  /* Merge duplicate resources, adding their weights. */
  uint32_t m = 0;
  for (int i = 0; i < n_hops; i++) {
    uint32_t r = hops[i].res;
    assert(r < n->n_res && n->res[r].live && hops[i].weight > 0);
    /* A repeated resource already has this flow as the last entry of its list. */
    nres *q0 = &n->res[r];
    uint32_t j = q0->nfl > 0 && q0->fl[q0->nfl - 1].flow == f->id ? q0->fl[q0->nfl - 1].hop : m;
    if (j < m) {
      f->hops[j].w += hops[i].weight;
      continue;
    }
    nres *q = &n->res[r];
    if (q->nfl == q->capfl) {
      q->capfl = q->capfl ? q->capfl * 2 : 8;
      q->fl = util_xrealloc(q->fl, (size_t)q->capfl * sizeof *q->fl);
    }
    f->hops[m] = (nhop){.res = r, .pos = q->nfl, .w = hops[i].weight};
    q->fl[q->nfl++] = (nent){f->id, m};
    res_catch_up(q, f->t_upd);
    seed(n, r);
    m++;
  }
  f->nhops = m;
  f->active = 1;
  mark_dirty(n);
  return f->id;
}

double net_flow_rate(const net *n, uint32_t id) {
  const nflow *f = flow_at(n, id);
  return f->live && f->active ? f->rate * 1e3 : 0;
}

void net_get_stats(const net *n, net_stats *s) { *s = n->st; }

/* ---- routes and sends ---- */

int net_route(net *n, int src, int dst, const net_send_opts *o, net_hop *hops, int *relay_at) {
  static const net_send_opts defaults = {0};
  if (!o) o = &defaults;
  topo *t = n->t;
  *relay_at = 0;
  if (src == dst) return 0;
  uint64_t key = o->key ? o->key : (uint64_t)src * 1000003u + (uint64_t)dst;
  uint32_t links[2 * TOPO_MAX_HOPS + 2];
  int k = -1;
  int same = topo_same_domain(t, src, dst);
  int gpn = t->gpus_per_node;
  if (same && o->path != NET_PATH_DIRECT) {
    k = topo_route_scaleup(t, src, dst, links);
  } else if (o->path == NET_PATH_DIRECT || o->path == NET_PATH_AUTO) {
    k = topo_route_scaleout(t, src, dst, n->o.seed, key, links);
    if (k < 0 && o->path == NET_PATH_AUTO) {
      net_send_opts p = *o;
      p.path = NET_PATH_PXN;
      return net_route(n, src, dst, &p, hops, relay_at);
    }
  } else if (o->path == NET_PATH_PXN || o->path == NET_PATH_RAIL) {
    int pxn = o->path == NET_PATH_PXN;
    int relay = pxn ? topo_node_of(t, src) * gpn + topo_local_of(t, dst) : topo_node_of(t, dst) * gpn + topo_local_of(t, src);
    if (relay == src || relay == dst) {
      k = topo_route_scaleout(t, src, dst, n->o.seed, key, links);
    } else {
      int a = pxn ? topo_route_scaleup(t, src, relay, links) : topo_route_scaleout(t, src, relay, n->o.seed, key, links);
      if (a < 0) return -1;
      int b = pxn ? topo_route_scaleout(t, relay, dst, n->o.seed, key, links + a) : topo_route_scaleup(t, relay, dst, links + a);
      if (b < 0) return -1;
      k = a + b;
      *relay_at = a;
    }
  }
  if (k < 0) return -1;
  for (int i = 0; i < k; i++) hops[i] = (net_hop){links[i], 1.0};
  return k;
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
  net_hop hops[2 * TOPO_MAX_HOPS + 2 + 64];
  int relay_at = 0, k = 0;
  if (src != dst) {
    k = net_route(n, src, dst, o, hops, &relay_at);
    if (k < 0) return -1;
  }
  sim_ps lat[2] = {0, 0};
  for (int i = 0; i < k; i++) lat[relay_at && i >= relay_at] += n->t->l[hops[i].res].latency;
  int ne = o->n_extra < 64 ? o->n_extra : 64;
  if (relay_at && n->o.chunk_bytes > 0 && !o->no_chunking && bytes > 0) {
    chain *c = util_xcalloc(1, sizeof *c);
    c->n = n, c->bytes = bytes, c->chunk = n->o.chunk_bytes, c->fn = done, c->ctx = ctx;
    c->chunks = (uint32_t)((bytes + c->chunk - 1) / c->chunk);
    int len[2] = {relay_at, k - relay_at};
    for (int leg = 0; leg < 2; leg++) {
      c->leg[leg] = util_xmalloc((size_t)(len[leg] + ne) * sizeof(net_hop));
      memcpy(c->leg[leg], hops + (leg ? relay_at : 0), (size_t)len[leg] * sizeof(net_hop));
      if (ne) memcpy(c->leg[leg] + len[leg], o->extra, (size_t)ne * sizeof(net_hop));
      c->nleg[leg] = len[leg] + ne;
      c->lat[leg] = lat[leg];
    }
    chain_start(c, 0);
    return 0;
  }
  if (ne) memcpy(hops + k, o->extra, (size_t)ne * sizeof(net_hop));
  net_flow(n, k + ne > 0 ? bytes : 0, hops, k + ne, lat[0] + lat[1], done, ctx);
  return 0;
}

/* ---- reports ---- */

static const char *const lkind_names[] = {"nvlink", "nic", "fabric"};

void net_write_links(net *n, FILE *f, int all) {
  sim_ps now = des_now(n->sim);
  double win = (double)(now - n->t_reset);
  fprintf(f, "link,src,dst,kind,gbyte_s,bytes,utilization\n");
  for (uint32_t i = 0; i < n->n_links; i++) {
    double b = net_res_bytes(n, i);
    if (!all && b <= 0) continue;
    const topo_link *l = &n->t->l[i];
    double u = win > 0 ? b / (n->res[i].cap * win) : 0;
    fprintf(f, "%u,%u,%u,%s,%.3f,%.0f,%.4f\n", i, l->src, l->dst, lkind_names[l->kind], l->gbyte_s, b, u);
  }
}

double net_max_link_util(net *n, int kind) {
  sim_ps now = des_now(n->sim);
  double win = (double)(now - n->t_reset), best = 0;
  if (win <= 0) return 0;
  for (uint32_t i = 0; i < n->n_links; i++) {
    if (n->t->l[i].kind != kind) continue;
    double u = net_res_bytes(n, i) / (n->res[i].cap * win);
    if (u > best) best = u;
  }
  return best;
}
