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
  sim_ps drain_at;   /* when the last byte drains at the current rate */
  uint32_t hpos;     /* index in the drain heap, or UINT32_MAX */
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
  double key;          /* solver: fair share, the heap key */
  uint32_t hidx;       /* solver: index in the share heap, or UINT32_MAX */
  uint32_t touch, expand, seed; /* epochs of the marks */
  uint32_t step;       /* solver: bottleneck step that last touched it */
  uint8_t kind;        /* net_res_kind */
  uint8_t live;        /* allocated */
  int32_t owner;       /* GPU of a virtual resource, or -1 */
  uint32_t next_free;  /* free list of virtual resources */
} nres;


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
  uint32_t *heap;             /* solver: resources by fair share (indexed min-heap) */
  uint32_t nheap, capheap;
  uint32_t *touched, ntouched, captouched; /* solver: resources touched in one step */
  uint32_t step;              /* solver: bottleneck steps so far */
  uint32_t *dh;               /* drain heap: flow ids ordered by drain_at */
  uint32_t ndh, capdh;
  des_handle drain_event;     /* the core event for the earliest drain (0 none) */
  sim_ps drain_event_at;      /* its time */
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
  if (t && t->adaptive) n->o.spray = 1;
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
  free(n->touched);
  free(n->dh);
  free(n);
}

des_sim *net_sim(net *n) { return n->sim; }
const net_opts *net_options(const net *n) { return &n->o; }
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

void net_schedule_at(net *n, sim_ps when, net_done_fn fn, void *ctx) {
  assert(when >= des_now(n->sim));
  net_schedule(n, when - des_now(n->sim), fn, ctx);
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

/* ---- the drain heap: live flows by drain time, one core event for the earliest ---- */

static inline int dh_less(const net *n, uint32_t a, uint32_t b) {
  const nflow *x = flow_at(n, a), *y = flow_at(n, b);
  return x->drain_at < y->drain_at || (x->drain_at == y->drain_at && a < b);
}

static void dh_set(net *n, uint32_t i, uint32_t id) {
  n->dh[i] = id;
  flow_at(n, id)->hpos = i;
}

static void dh_up(net *n, uint32_t i) {
  uint32_t id = n->dh[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!dh_less(n, id, n->dh[p])) break;
    dh_set(n, i, n->dh[p]);
    i = p;
  }
  dh_set(n, i, id);
}

static void dh_down(net *n, uint32_t i) {
  uint32_t id = n->dh[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n->ndh) break;
    if (c + 1 < n->ndh && dh_less(n, n->dh[c + 1], n->dh[c])) c++;
    if (!dh_less(n, n->dh[c], id)) break;
    dh_set(n, i, n->dh[c]);
    i = c;
  }
  dh_set(n, i, id);
}

/* Inserts or repositions flow id after its drain_at changed. */
static void dh_update(net *n, uint32_t id) {
  nflow *f = flow_at(n, id);
  if (f->hpos == UINT32_MAX) {
    PUSH(n->dh, n->ndh, n->capdh, id);
    f->hpos = n->ndh - 1;
    dh_up(n, f->hpos);
  } else {
    dh_up(n, f->hpos);
    dh_down(n, f->hpos);
  }
}

static void dh_remove(net *n, uint32_t id) {
  nflow *f = flow_at(n, id);
  uint32_t i = f->hpos, last = n->ndh - 1;
  f->hpos = UINT32_MAX;
  n->ndh--;
  if (i == last) return;
  uint32_t moved = n->dh[last];
  dh_set(n, i, moved);
  dh_up(n, i);
  dh_down(n, flow_at(n, moved)->hpos);
}

static void drain_ev(des_sim *s, void *p);

/* Keeps the core event at the earliest drain time. */
static void drain_schedule(net *n) {
  sim_ps when = n->ndh ? flow_at(n, n->dh[0])->drain_at : SIM_PS_MAX;
  if (n->drain_event && n->drain_event_at == when) return;
  if (n->drain_event) des_cancel(n->sim, n->drain_event);
  n->drain_event = 0;
  if (n->ndh) {
    n->drain_event = des_at(n->sim, when, drain_ev, n);
    n->drain_event_at = when;
  }
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

/* The solver's indexed min-heap of resources keyed by fair share. A share only grows while
 * filling (flows freeze at most at the current minimum), so updates sift down. */
static inline void heap_set(net *n, uint32_t i, uint32_t r) {
  n->heap[i] = r;
  n->res[r].hidx = i;
}

static void heap_sift_up(net *n, uint32_t i) {
  uint32_t r = n->heap[i];
  double k = n->res[r].key;
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (n->res[n->heap[p]].key <= k) break;
    heap_set(n, i, n->heap[p]);
    i = p;
  }
  heap_set(n, i, r);
}

static void heap_sift_down(net *n, uint32_t i) {
  uint32_t r = n->heap[i], m = n->nheap;
  double k = n->res[r].key;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= m) break;
    if (c + 1 < m && n->res[n->heap[c + 1]].key < n->res[n->heap[c]].key) c++;
    if (n->res[n->heap[c]].key >= k) break;
    heap_set(n, i, n->heap[c]);
    i = c;
  }
  heap_set(n, i, r);
}

static void heap_push(net *n, uint32_t r) {
  if (n->nheap == n->capheap) {
    n->capheap = n->capheap ? n->capheap * 2 : 1024;
    n->heap = util_xrealloc(n->heap, (size_t)n->capheap * sizeof *n->heap);
  }
  n->heap[n->nheap] = r;
  n->res[r].hidx = n->nheap++;
  heap_sift_up(n, n->nheap - 1);
}

static uint32_t heap_pop(net *n) {
  uint32_t top = n->heap[0];
  n->res[top].hidx = UINT32_MAX;
  if (--n->nheap > 0) {
    heap_set(n, 0, n->heap[n->nheap]);
    heap_sift_down(n, 0);
  }
  return top;
}

static inline double share(const nres *r) { return (r->rem > 0 ? r->rem : 0) / (r->wsum > 1e-300 ? r->wsum : 1e-300); }

/* Freezes f at rate x; its resources are collected in n->touched (once per step). */
static void freeze(net *n, nflow *f, double x) {
  f->frozen = 1;
  f->new_rate = x;
  for (uint32_t h = 0; h < f->nhops; h++) {
    nres *q = &n->res[f->hops[h].res];
    q->rem -= f->hops[h].w * x;
    q->wsum -= f->hops[h].w;
    q->nunf--;
    if (q->step != n->step) {
      q->step = n->step;
      PUSH(n->touched, n->ntouched, n->captouched, f->hops[h].res);
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
    r->hidx = UINT32_MAX;
    if (r->nunf > 0) {
      r->key = share(r);
      heap_push(n, n->R[i]);
    }
  }
  while (n->nheap) {
    nres *r = &n->res[heap_pop(n)];
    if (r->nunf == 0) continue;
    double x = r->key;
    n->step++;
    n->ntouched = 0;
    for (uint32_t j = 0; j < r->nfl && r->nunf > 0; j++) {
      nflow *f = flow_at(n, r->fl[j].flow);
      if (f->mark == n->epoch && !f->frozen) freeze(n, f, x);
    }
    /* Re-key each resource whose share moved (it only grows); drained ones sink to the end. */
    for (uint32_t i = 0; i < n->ntouched; i++) {
      nres *q = &n->res[n->touched[i]];
      if (q->hidx == UINT32_MAX) continue;
      q->key = q->nunf > 0 ? share(q) : INFINITY;
      heap_sift_down(n, q->hidx);
    }
  }
}

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
    assert(x > 0 && "a flow got no bandwidth: a resource of zero capacity?");
    double dt = ceil(f->rem / x);
    f->drain_at = now + (dt < 1e18 ? (sim_ps)dt : (sim_ps)1e18);
    dh_update(n, f->id);
  }
  drain_schedule(n);
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

/* Takes a drained flow off its resources; completion follows after its latency. */
static void drain_flow(net *n, nflow *f, sim_ps now) {
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
  des_after(n->sim, f->latency, complete_ev, f);
}

static void drain_ev(des_sim *s, void *p) {
  net *n = p;
  sim_ps now = des_now(s);
  n->drain_event = 0;
  while (n->ndh && flow_at(n, n->dh[0])->drain_at <= now) {
    nflow *f = flow_at(n, n->dh[0]);
    dh_remove(n, f->id);
    drain_flow(n, f, now);
  }
  mark_dirty(n);
  drain_schedule(n);
}

uint32_t net_flow(net *n, uint64_t bytes, const net_hop *hops, int n_hops, sim_ps latency, net_done_fn fn,
                  void *ctx) {
  nflow *f = flow_alloc(n);
  f->fn = fn, f->ctx = ctx, f->latency = latency;
  f->rem = (double)bytes, f->rate = 0, f->new_rate = 0, f->mark = 0, f->frozen = 0;
  f->hpos = UINT32_MAX, f->drain_at = SIM_PS_MAX;
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
