/* sim/coll.c — ring and tree all-reduce, ring reduce-scatter and all-gather, all-to-all and
 * point-to-point on the flow-level network (see coll.h).
 *
 * Ring (n ranks, buffer B): the buffer is cut into n blocks; in step s every rank sends one block
 * (B / n) to its successor. A rank starts step s once its own step s-1 send is delivered and (for
 * s > 0) it has received step s-1 from its predecessor: reduce-scatter takes n-1 steps, all-gather
 * n-1, all-reduce both (2(n-1)). Tree: a binary tree in rank order (parent of i is (i-1)/2), the
 * buffer in `chunks` pieces; a rank sends chunk c up once all its children's chunk c arrived
 * (reduce), the root then sends chunk c down and every rank forwards it to its children
 * (broadcast), one chunk in flight per edge and direction. With sms > 0 each send crosses the SM
 * pools of its sender and receiver. */
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "util.h"

static const char *const kind_names[] = {"allreduce_ring", "allreduce_tree", "reduce_scatter_ring",
                                         "allgather_ring", "alltoall", "p2p"};

const char *coll_kind_name(int kind) {
  return kind >= 0 && kind < (int)UTIL_ARRAY_LEN(kind_names) ? kind_names[kind] : "?";
}

int coll_kind_parse(const char *name) {
  for (size_t i = 0; i < UTIL_ARRAY_LEN(kind_names); i++)
    if (strcmp(name, kind_names[i]) == 0) return (int)i;
  return -1;
}

typedef struct cop cop;

/* One send of a collective, with where it goes and what it is. */
typedef struct csend {
  cop *op;
  int from, to;  /* ranks */
  int step;      /* ring step, or tree chunk */
  int up;        /* tree: 1 reduce direction, 0 broadcast */
} csend;

struct cop {
  net *n;
  coll_spec s;
  int *gpus;          /* copy of s.gpus */
  uint32_t *sm;       /* [ranks] SM pools, or NULL */
  int steps;          /* ring steps */
  uint64_t block;     /* ring block / tree chunk bytes (last may be smaller: see piece()) */
  int *sent, *recv;   /* ring: sends delivered / blocks received per rank */
  int *child_cnt;     /* tree: [ranks x chunks] children's chunk arrivals */
  int *up_sent;       /* tree: next chunk to send up, per rank */
  int *up_busy;       /* ring, tree: a (reduce-direction) send in flight */
  int *down_have;     /* tree: chunks a rank holds for broadcast */
  int *down_sent;     /* tree: [ranks x 2] next chunk to each child */
  int *down_busy;     /* tree: [ranks x 2] */
  int pending;        /* sends in flight (+1 while starting) */
  int failed;
  sim_ps start;
  coll_done_fn done;
  void *ctx;
};

static void cop_free(cop *o) {
  if (o->sm)
    for (int i = 0; i < o->s.ranks; i++) net_res_remove(o->n, o->sm[i]);
  free(o->gpus), free(o->sm), free(o->sent), free(o->recv), free(o->child_cnt);
  free(o->up_sent), free(o->up_busy), free(o->down_have), free(o->down_sent), free(o->down_busy);
  free(o);
}

static void cop_finish(cop *o) {
  coll_done_fn done = o->done;
  void *ctx = o->ctx;
  net *n = o->n;
  sim_ps start = o->start;
  cop_free(o);
  if (done) done(n, ctx, start, net_now(n));
}

static void sent_cb(net *n, void *p);

/* Starts one send of `bytes` between ranks. */
static int csend_start(cop *o, int from, int to, uint64_t bytes, int step, int up) {
  csend *c = util_xmalloc(sizeof *c);
  *c = (csend){o, from, to, step, up};
  net_hop extra[2];
  int ne = 0;
  if (o->sm) {
    extra[ne++] = (net_hop){o->sm[from], 1.0};
    if (to != from) extra[ne++] = (net_hop){o->sm[to], 1.0};
  }
  net_send_opts so = {.path = o->s.path, .extra = extra, .n_extra = ne,
                      .key = (uint64_t)from * 7919u + (uint64_t)to * 104729u + (uint64_t)step};
  o->pending++;
  if (net_send(o->n, o->gpus[from], o->gpus[to], bytes, &so, sent_cb, c) != 0) {
    o->pending--;
    free(c);
    o->failed = 1;
    return -1;
  }
  return 0;
}

/* Bytes of piece i of n of the buffer. */
static uint64_t piece(uint64_t total, int n, int i) {
  uint64_t base = total / (uint64_t)n, rem = total % (uint64_t)n;
  return base + ((uint64_t)i < rem ? 1 : 0);
}

/* ---- ring ---- */

/* Starts rank r's next ring step if its previous send is delivered and it holds the block. */
static void ring_try(cop *o, int r) {
  int R = o->s.ranks, s = o->sent[r];
  if (o->up_busy[r] || s >= o->steps || (s > 0 && o->recv[r] < s)) return;
  o->up_busy[r] = 1;
  csend_start(o, r, (r + 1) % R, piece(o->s.bytes, R, (r - s + R) % R), s, 0);
}

static void ring_sent(cop *o, const csend *c) {
  o->up_busy[c->from] = 0;
  o->sent[c->from]++;
  o->recv[c->to]++;
  ring_try(o, c->from);
  ring_try(o, c->to);
}

/* ---- tree ---- */

static int tree_children(int r, int R, int *kids) {
  int n = 0;
  if (2 * r + 1 < R) kids[n++] = 2 * r + 1;
  if (2 * r + 2 < R) kids[n++] = 2 * r + 2;
  return n;
}

static void tree_try(cop *o, int r) {
  int R = o->s.ranks, C = o->s.chunks, kids[2], nk = tree_children(r, R, kids);
  /* Reduce: send chunk c up once all children delivered chunk c. */
  if (r > 0 && !o->up_busy[r] && o->up_sent[r] < C) {
    int c = o->up_sent[r];
    if (o->child_cnt[(size_t)r * C + c] == nk) {
      o->up_busy[r] = 1;
      o->up_sent[r]++;
      csend_start(o, r, (r - 1) / 2, piece(o->s.bytes, C, c), c, 1);
    }
  }
  /* The root holds a chunk for broadcast once its children's chunk c arrived. */
  if (r == 0)
    while (o->down_have[0] < C && o->child_cnt[o->down_have[0]] == nk) o->down_have[0]++;
  /* Broadcast: forward held chunks to each child, one in flight per child. */
  for (int k = 0; k < nk; k++) {
    int *ds = &o->down_sent[r * 2 + k], *db = &o->down_busy[r * 2 + k];
    if (!*db && *ds < o->down_have[r]) {
      *db = 1;
      csend_start(o, r, kids[k], piece(o->s.bytes, C, *ds), *ds, 0);
      (*ds)++;
    }
  }
}

static void tree_sent(cop *o, const csend *c) {
  int R = o->s.ranks, C = o->s.chunks, kids[2];
  if (c->up) {
    o->up_busy[c->from] = 0;
    o->child_cnt[(size_t)c->to * C + c->step]++;
    tree_try(o, c->from);
    tree_try(o, c->to);
  } else {
    int nk = tree_children(c->from, R, kids);
    for (int k = 0; k < nk; k++)
      if (kids[k] == c->to) o->down_busy[c->from * 2 + k] = 0;
    o->down_have[c->to]++;
    tree_try(o, c->from);
    tree_try(o, c->to);
  }
}

static void sent_cb(net *n, void *p) {
  (void)n;
  csend *c = p;
  cop *o = c->op;
  o->pending--;
  switch (o->s.kind) {
  case COLL_ALLREDUCE_RING:
  case COLL_REDUCE_SCATTER_RING:
  case COLL_ALLGATHER_RING: ring_sent(o, c); break;
  case COLL_ALLREDUCE_TREE: tree_sent(o, c); break;
  default: break;
  }
  free(c);
  if (o->pending == 0) cop_finish(o);
}

int coll_start(net *n, const coll_spec *s, coll_done_fn done, void *ctx) {
  topo *t = net_topo(n);
  int R = s->ranks;
  if (R < 1 || (s->kind == COLL_P2P && R != 2)) {
    fprintf(stderr, "moesim: error: %s needs %s ranks (got %d)\n", coll_kind_name(s->kind),
            s->kind == COLL_P2P ? "2" : ">= 1", R);
    return -1;
  }
  cop *o = util_xcalloc(1, sizeof *o);
  o->n = n, o->s = *s, o->done = done, o->ctx = ctx, o->start = net_now(n);
  o->gpus = util_xmalloc((size_t)R * sizeof *o->gpus);
  memcpy(o->gpus, s->gpus, (size_t)R * sizeof *o->gpus);
  if (s->sms > 0) {
    o->sm = util_xmalloc((size_t)R * sizeof *o->sm);
    for (int i = 0; i < R; i++) o->sm[i] = net_res_add(n, s->sms * t->gpu.copy_gbyte_s_per_sm, NET_RES_SM, o->gpus[i]);
  }
  o->pending = 1; /* held until every first send is started */
  int rc = 0;
  switch (s->kind) {
  case COLL_ALLREDUCE_RING:
  case COLL_REDUCE_SCATTER_RING:
  case COLL_ALLGATHER_RING:
    o->steps = s->kind == COLL_ALLREDUCE_RING ? 2 * (R - 1) : R - 1;
    o->sent = util_xcalloc((size_t)R, sizeof *o->sent);
    o->recv = util_xcalloc((size_t)R, sizeof *o->recv);
    o->up_busy = util_xcalloc((size_t)R, sizeof(int));
    for (int r = 0; r < R && o->steps > 0; r++) ring_try(o, r);
    break;
  case COLL_ALLREDUCE_TREE:
    if (o->s.chunks < 1) o->s.chunks = 1;
    o->child_cnt = util_xcalloc((size_t)R * o->s.chunks, sizeof *o->child_cnt);
    o->up_sent = util_xcalloc((size_t)R, sizeof(int));
    o->up_busy = util_xcalloc((size_t)R, sizeof(int));
    o->down_have = util_xcalloc((size_t)R, sizeof(int));
    o->down_sent = util_xcalloc((size_t)R * 2, sizeof(int));
    o->down_busy = util_xcalloc((size_t)R * 2, sizeof(int));
    for (int r = R - 1; r >= 0 && R > 1; r--) tree_try(o, r);
    break;
  case COLL_ALLTOALL:
    for (int a = 0; a < R && rc == 0; a++)
      for (int b = 0; b < R && rc == 0; b++) {
        uint64_t bytes = s->matrix ? s->matrix[(size_t)a * R + b] : s->bytes;
        if (a != b && bytes > 0) rc = csend_start(o, a, b, bytes, 0, 0);
      }
    break;
  case COLL_P2P: rc = csend_start(o, 0, 1, s->bytes, 0, 0); break;
  default:
    fprintf(stderr, "moesim: error: unknown collective kind %d\n", s->kind);
    rc = -1;
  }
  if (rc != 0 || o->failed) {
    fprintf(stderr, "moesim: error: %s: a send has no route\n", coll_kind_name(s->kind));
    /* Sends already started still complete; the op finishes when they do, reporting nothing. */
    o->done = NULL;
    if (--o->pending == 0) cop_free(o);
    return -1;
  }
  if (--o->pending == 0) {
    /* Nothing to send (one rank, or zero bytes): done now, through the event core. */
    o->pending = 1;
    csend *c = util_xmalloc(sizeof *c);
    *c = (csend){o, 0, 0, 0, 0};
    net_flow(n, 0, NULL, 0, 0, sent_cb, c);
    o->s.kind = -1;
  }
  return 0;
}

typedef struct run_state {
  sim_ps end;
  int done;
} run_state;

static void run_done(net *n, void *ctx, sim_ps start, sim_ps end) {
  (void)n, (void)start;
  run_state *r = ctx;
  r->end = end;
  r->done = 1;
}

sim_ps coll_run(topo *t, uint64_t seed, const coll_spec *s) {
  des_sim *sim = des_new();
  net *n = net_new(sim, t, &(net_opts){.seed = seed});
  run_state r = {0, 0};
  int rc = coll_start(n, s, run_done, &r);
  des_run(sim);
  net_free(n);
  des_free(sim);
  return rc == 0 && r.done ? r.end : SIM_PS_MAX;
}
