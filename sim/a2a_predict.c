/* sim/a2a_predict.c — the simulator predicting a real `moesim a2a` run on this machine (contract
 * in a2a_predict.h). Nothing measured during the run's timed iterations enters the model; it sees
 * only the routing (tokens each rank sends to each rank and node) and the isolated calibration of
 * kernels/comm/a2a_calib.c, and replays the implementation's program on the event core and the
 * flow-level network:
 *
 *   topology  "this machine": one node whose devices are the ranks (each runs on a core), joined
 *             by a switch whose links carry MPI messages at the measured rate; the memory bus is one
 *             more shared resource (capacity 1: saturated).
 *   bus       a phase (or a copy) that k ranks ran at once took f times its CPU time alone (k = as
 *             many ranks as can run side by side): k of them saturate the bus by 1/f, so each puts
 *             f / k on it per unit of work (nothing when f ~ 1); any mix of phases running at once
 *             then shares the bus max-min fairly.
 *   cores     work is CPU time. A rank's work flows through its main thread (one core), its
 *             threads (--threads cores), the CPU set its affinity mask allows when that is smaller
 *             than the machine's, and the pool of the CPUs the ranks may use; max-min fair sharing
 *             of those is how the scheduler shares cores, so ranks bound one per core run side by
 *             side and oversubscribed ranks share. Other processes on the machine are as many
 *             busy tasks in the pool as the measured shares imply (a busy loop on every rank at
 *             once got share s_r of a core: B = n (P - sum s_r) / sum s_r tasks on the P CPUs).
 *             A rank waiting in MPI busy-polls on its core unless MPI yields (oversubscribed); that
 *             matters where something else could use the core, and is modelled only there.
 *   compute   each rank-local phase (gate, quantize + pack, scatter, shared expert, experts,
 *             forwarder reduce, reduce) is its CPU time measured alone.
 *   messages  OpenMPI's shared-memory transport with a single-copy mechanism (CMA, XPMEM, KNEM)
 *             copies a message once, on the receiving rank's core, when both sides have posted;
 *             without one (copy in and out of shared buffers) the sender's core copies it too and
 *             the bus carries it twice. A message costs the copying core the measured CPU time per
 *             byte of an MPI message alone; the own rows of alltoallv / pairwise are a memcpy.
 *   syncs     the counts exchange, barriers and node barriers release their ranks when the last one
 *             arrives, plus the measured message latency.
 * The flat implementations post every message of an exchange at once (MPI_Alltoallv's linear and
 * pairwise algorithms for these sizes, and the Isend/Irecv path); hier follows its node program:
 * pack, node barrier, one message per node pair between the ranks the pair maps to, node barrier,
 * scatter, ..., node barrier, the node's ranks' slices of the forwarder reduce, node barrier, the
 * messages back, node barrier, reduce. */
#include "a2a_predict.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "des.h"
#include "net.h"
#include "topo.h"
#include "util.h"

#define PM_MAX_SYNCS 64       /* barrier instances per group in one iteration (a few are used) */
#define PM_SPIN_NS 5000.0     /* CPU a busy-polling rank burns per step of the model (the step
                                 outlives the wait by at most this much: the model's only
                                 approximation of a spinning rank) */
#define PM_BG_NS 500000.0     /* CPU another process burns per step of the model */

typedef enum pm_kind { PO_COMPUTE, PO_COPY, PO_SYNC, PO_XCHG } pm_kind;

/* One step of a rank's program. */
typedef struct pm_op {
  int kind;      /* pm_kind */
  int phase;     /* a2a_phase it is counted in, or -1 */
  double us;     /* COMPUTE: CPU time alone */
  double bus;    /* COMPUTE: bus demand per unit of work */
  uint64_t bytes;/* COPY: bytes */
  int group;     /* SYNC: -1 all ranks, else a node */
  int xid;       /* XCHG: 0 dispatch, 1 combine */
} pm_op;

typedef struct pm_msg {
  int src, dst;   /* ranks */
  uint64_t bytes; /* payload */
  int xid;        /* exchange */
} pm_msg;

typedef struct pm_rank {
  pm_op *ops;          /* program */
  int nops, pc;        /* length, next op */
  sim_ps t_op;         /* start of the running op */
  sim_ps end;          /* when the program finished */
  sim_ps ph[A2A_PH_COUNT]; /* time per phase */
  int entered[2];      /* in exchange xid */
  int pending[2];      /* its messages of exchange xid not delivered */
  int waiting;         /* blocked in an exchange or sync */
  int copying;         /* message copies running on its core */
  int spinning;        /* a busy-poll step is in flight */
  int syncs[2];        /* syncs passed: [0] all-rank, [1] own node */
  uint32_t main;       /* its main thread: one core (MPI's copies run there) */
  uint32_t thread;     /* all its threads: --threads cores */
  uint32_t mask;       /* its CPU set when smaller than the pool, else UINT32_MAX */
  double copy_gbyte_s; /* its memcpy rate per CPU-second */
  double copy_bus;     /* bus demand of a byte copied */
} pm_rank;

typedef struct pm {
  const a2a_cfg *c;
  const a2a_result *res;
  int R, N, rpn;
  net *n;
  topo *t;
  pm_rank *rk;
  pm_msg *msg;
  int nmsg, capmsg;
  uint32_t bus;            /* the memory bus */
  uint32_t pool;           /* the CPUs the ranks may use */
  double pool_cpus;        /* how many */
  double background;       /* other processes' busy tasks in the pool */
  uint32_t *bg;            /* [ceil(background)] their threads */
  int nbg;
  int spin;                /* waiting ranks busy-poll */
  int alive;               /* ranks not finished */
  double link_gbyte_s[2];  /* MPI message rate, dispatch and combine sizes */
  int copies;              /* copies per MPI message: 1 single-copy, 2 copy in and out */
  sim_ps latency;          /* one message's latency */
  int arrived[PM_MAX_SYNCS];/* all-rank sync arrivals per instance */
  int *node_arrived;       /* [N x PM_MAX_SYNCS] node sync arrivals per instance */
} pm;

typedef struct pm_ev {
  pm *m;
  int rank;
  int msg;
} pm_ev;

static void advance(pm *m, int r);

static void push(pm_rank *k, int *cap, pm_op op) {
  if (k->nops == *cap) {
    *cap = *cap ? *cap * 2 : 16;
    k->ops = util_xrealloc(k->ops, (size_t)*cap * sizeof *k->ops);
  }
  k->ops[k->nops++] = op;
}

static void add_msg(pm *m, int src, int dst, uint64_t bytes, int xid) {
  if (!bytes) return;
  if (m->nmsg == m->capmsg) {
    m->capmsg = m->capmsg ? m->capmsg * 2 : 16;
    m->msg = util_xrealloc(m->msg, (size_t)m->capmsg * sizeof *m->msg);
  }
  m->msg[m->nmsg++] = (pm_msg){src, dst, bytes, xid};
  m->rk[src].pending[xid]++, m->rk[dst].pending[xid]++;
}

static int peer_of(const pm *m, int node, int other) {
  return a2a_node_first(node, m->rpn) + other % a2a_node_size(node, m->R, m->rpn);
}

/* ---- programs ---- */

/* Bus demand per unit of work of something k ranks at once ran f times slower than alone. */
static double bus_demand(double alone, double all, int k) {
  double f = alone > 0 && all > 0 ? all / alone : 1;
  return f > 1.05 && k > 1 ? f / k : 0;
}

/* Phase ph of a rank: its CPU time alone, and its bus demand. */
static pm_op compute(const a2a_calib *cr, int ph) {
  return (pm_op){PO_COMPUTE, ph, cr->phase_cpu_us[ph],
                 bus_demand(cr->phase_cpu_us[ph], cr->phase_cpu_all_us[ph], cr->concurrent), 0, 0, 0};
}

static pm_op sync_all(int ph) { return (pm_op){PO_SYNC, ph, 0, 0, 0, -1, 0}; }
static pm_op sync_node(int ph, int node) { return (pm_op){PO_SYNC, ph, 0, 0, 0, node, 0}; }
static pm_op xchg(int ph, int xid) { return (pm_op){PO_XCHG, ph, 0, 0, 0, 0, xid}; }
static pm_op copy(int ph, uint64_t bytes) { return (pm_op){PO_COPY, ph, 0, 0, bytes, 0, 0}; }

static void build_programs(pm *m) {
  const a2a_cfg *c = m->c;
  int R = m->R, N = m->N, hier = c->impl == A2A_HIER, layer = c->layer;
  uint64_t rb = m->res->fmt.bytes, cb = 2 * (uint64_t)c->hidden;
  for (int r = 0; r < R; r++) {
    pm_rank *k = &m->rk[r];
    const a2a_calib *cr = &m->res->rank[r].calib;
    const int64_t *cnt = m->res->rank[r].send_cnt;
    int cap = 0, node = a2a_node_of(r, m->rpn);
    if (layer) push(k, &cap, compute(cr, A2A_PH_GATE));
    push(k, &cap, sync_all(A2A_PH_NOTIFY));
    push(k, &cap, compute(cr, A2A_PH_PACK));
    if (hier) {
      push(k, &cap, sync_node(A2A_PH_DXCHG, node));
      push(k, &cap, xchg(A2A_PH_DXCHG, 0));
      push(k, &cap, sync_node(A2A_PH_DXCHG, node));
      push(k, &cap, compute(cr, A2A_PH_SCATTER));
    } else {
      push(k, &cap, copy(A2A_PH_DXCHG, (uint64_t)cnt[r] * rb));
      push(k, &cap, xchg(A2A_PH_DXCHG, 0));
    }
    if (!layer) push(k, &cap, sync_all(-1));
    if (layer) push(k, &cap, compute(cr, A2A_PH_SHARED));
    push(k, &cap, compute(cr, A2A_PH_EXPERTS));
    if (!layer) push(k, &cap, sync_all(-1));
    if (hier) {
      push(k, &cap, sync_node(A2A_PH_FWD, node));
      push(k, &cap, compute(cr, A2A_PH_FWD));
      push(k, &cap, sync_node(A2A_PH_CXCHG, node));
      push(k, &cap, xchg(A2A_PH_CXCHG, 1));
      push(k, &cap, sync_node(A2A_PH_CXCHG, node));
    } else {
      push(k, &cap, copy(A2A_PH_CXCHG, (uint64_t)cnt[r] * cb));
      push(k, &cap, xchg(A2A_PH_CXCHG, 1));
    }
    push(k, &cap, compute(cr, A2A_PH_REDUCE));
  }
  if (!hier) {
    for (int s = 0; s < R; s++)
      for (int d = 0; d < R; d++)
        if (s != d) {
          uint64_t rows = (uint64_t)m->res->rank[s].send_cnt[d];
          add_msg(m, s, d, rows * rb, 0);
          add_msg(m, d, s, rows * cb, 1);
        }
    return;
  }
  /* node messages: the rows node a sends to node b, between the ranks the pair maps to */
  for (int a = 0; a < N; a++)
    for (int b = 0; b < N; b++) {
      if (a == b) continue;
      uint64_t rows = 0;
      for (int s = a2a_node_first(a, m->rpn); s < a2a_node_first(a, m->rpn) + a2a_node_size(a, R, m->rpn); s++)
        rows += (uint64_t)m->res->rank[s].node_cnt[b];
      add_msg(m, peer_of(m, a, b), peer_of(m, b, a), rows * rb, 0);
      add_msg(m, peer_of(m, b, a), peer_of(m, a, b), rows * cb, 1);
    }
}

/* ---- events ---- */

/* The CPU resources a rank's main thread (one_core) or its whole team crosses, each with weight w. */
static int cpu_hops(const pm *m, const pm_rank *k, int one_core, double w, net_hop *h) {
  int n = 0;
  if (one_core) h[n++] = (net_hop){k->main, w};
  h[n++] = (net_hop){k->thread, w};
  if (k->mask != UINT32_MAX) h[n++] = (net_hop){k->mask, w};
  h[n++] = (net_hop){m->pool, w};
  return n;
}

static void spin_kick(pm *m, int r);

static void spin_done(net *n, void *ctx) {
  (void)n;
  pm_ev *e = ctx;
  pm *m = e->m;
  int r = e->rank;
  free(e);
  m->rk[r].spinning = 0;
  spin_kick(m, r);
}

/* A waiting rank that copies nothing busy-polls: one more step of spinning CPU. */
static void spin_kick(pm *m, int r) {
  pm_rank *k = &m->rk[r];
  if (!m->spin || k->spinning || !k->waiting || k->copying) return;
  net_hop h[4];
  int nh = cpu_hops(m, k, 1, 1.0, h);
  pm_ev *e = util_xmalloc(sizeof *e);
  *e = (pm_ev){m, r, -1};
  k->spinning = 1;
  net_flow(m->n, (uint64_t)PM_SPIN_NS, h, nh, 0, spin_done, e);
}

static void bg_kick(net *n, void *ctx);

/* Another process's busy task: steps of CPU on its thread and the pool while any rank runs. */
static void bg_kick(net *n, void *ctx) {
  pm_ev *e = ctx;
  pm *m = e->m;
  if (m->alive == 0) {
    free(e);
    return;
  }
  net_hop h[2] = {{m->bg[e->rank], 1.0}, {m->pool, 1.0}};
  net_flow(n, (uint64_t)PM_BG_NS, h, 2, 0, bg_kick, e);
}

static void op_done(net *n, void *ctx) {
  (void)n;
  pm_ev *e = ctx;
  pm *m = e->m;
  int r = e->rank;
  free(e);
  pm_rank *k = &m->rk[r];
  pm_op *op = &k->ops[k->pc];
  if (op->phase >= 0) k->ph[op->phase] += net_now(m->n) - k->t_op;
  k->pc++;
  advance(m, r);
}

/* Ends rank r's wait in its current step. */
static void release(pm *m, int r) {
  m->rk[r].waiting = 0;
  pm_ev *d = util_xmalloc(sizeof *d);
  *d = (pm_ev){m, r, -1};
  op_done(m->n, d);
}

static void msg_done(net *n, void *ctx) {
  (void)n;
  pm_ev *e = ctx;
  pm *m = e->m;
  pm_msg *g = &m->msg[e->msg];
  int ends[2] = {g->src, g->dst};
  free(e);
  m->rk[g->dst].copying--;
  if (m->copies == 2) m->rk[g->src].copying--;
  for (int i = 0; i < 2; i++) {
    pm_rank *k = &m->rk[ends[i]];
    if (--k->pending[g->xid] == 0 && k->waiting && k->ops[k->pc].kind == PO_XCHG && k->ops[k->pc].xid == g->xid)
      release(m, ends[i]);
    else
      spin_kick(m, ends[i]);
  }
}

static void start_msg(pm *m, int i) {
  pm_msg *g = &m->msg[i];
  double L = m->link_gbyte_s[g->xid];
  pm_rank *s = &m->rk[g->src], *d = &m->rk[g->dst];
  net_hop h[12];
  int nh = 0;
  /* The flow is the copying core's work (CPU-ns: L bytes each), so that cores are shared fairly
   * in CPU time as the scheduler shares them; the receiver's link carries L bytes per unit, the bus
   * what the copy puts on it. Copy in and out adds the sender's link and core. */
  h[nh++] = (net_hop){m->t->nvl_down[g->dst], L};
  nh += cpu_hops(m, d, 1, 1.0, h + nh);
  d->copying++;
  if (m->copies == 2) {
    h[nh++] = (net_hop){m->t->nvl_up[g->src], L};
    nh += cpu_hops(m, s, 1, 1.0, h + nh);
    s->copying++;
  }
  if (d->copy_bus > 0) h[nh++] = (net_hop){m->bus, m->copies * d->copy_bus * L};
  pm_ev *e = util_xmalloc(sizeof *e);
  *e = (pm_ev){m, -1, i};
  uint64_t work = (uint64_t)llround((double)g->bytes / L);
  net_flow(m->n, work ? work : 1, h, nh, m->latency, msg_done, e);
}

/* A sync instance: group (-1 all ranks, else a node) and instance number. */
typedef struct pm_sync {
  pm *m;
  int group, inst;
} pm_sync;

/* Releases the ranks of a sync instance once all have arrived (plus the latency). */
static void sync_release(net *n, void *ctx) {
  (void)n;
  pm_sync *e = ctx;
  pm *m = e->m;
  int g = e->group, inst = e->inst;
  free(e);
  for (int r = 0; r < m->R; r++) {
    pm_rank *k = &m->rk[r];
    if (!k->waiting || k->ops[k->pc].kind != PO_SYNC) continue;
    int grp = k->ops[k->pc].group;
    if (grp != g || k->syncs[grp >= 0] != inst + 1) continue;
    release(m, r);
  }
}

static void advance(pm *m, int r) {
  pm_rank *k = &m->rk[r];
  if (k->pc >= k->nops) {
    k->end = net_now(m->n);
    m->alive--;
    return;
  }
  pm_op *op = &k->ops[k->pc];
  k->t_op = net_now(m->n);
  net_hop h[6];
  int nh;
  switch (op->kind) {
  case PO_COMPUTE: {
    uint64_t work = (uint64_t)llround(op->us * 1e3); /* core-ns: a core moves 1 "GB/s" of them */
    nh = cpu_hops(m, k, m->c->threads == 1, 1.0, h);
    if (op->bus > 0) h[nh++] = (net_hop){m->bus, op->bus};
    pm_ev *e = util_xmalloc(sizeof *e);
    *e = (pm_ev){m, r, -1};
    net_flow(m->n, work, work ? h : NULL, work ? nh : 0, 0, op_done, e);
    break;
  }
  case PO_COPY: {
    /* a memcpy: CPU-ns of work (copy_gbyte_s bytes each), and its bus demand */
    double c = k->copy_gbyte_s;
    uint64_t work = (uint64_t)llround((double)op->bytes / c);
    nh = cpu_hops(m, k, 1, 1.0, h);
    if (k->copy_bus > 0) h[nh++] = (net_hop){m->bus, k->copy_bus * c};
    pm_ev *e = util_xmalloc(sizeof *e);
    *e = (pm_ev){m, r, -1};
    net_flow(m->n, work, work ? h : NULL, work ? nh : 0, 0, op_done, e);
    break;
  }
  case PO_SYNC: {
    int g = op->group, inst = k->syncs[g >= 0]++;
    assert(inst < PM_MAX_SYNCS);
    int *cnt = g < 0 ? &m->arrived[inst] : &m->node_arrived[g * PM_MAX_SYNCS + inst];
    int need = g < 0 ? m->R : a2a_node_size(g, m->R, m->rpn);
    k->waiting = 1;
    spin_kick(m, r);
    if (++*cnt == need) {
      pm_sync *s = util_xmalloc(sizeof *s);
      *s = (pm_sync){m, g, inst};
      net_schedule(m->n, m->latency, sync_release, s);
    }
    break;
  }
  case PO_XCHG: {
    int x = op->xid;
    k->entered[x] = 1;
    k->waiting = 1;
    for (int i = 0; i < m->nmsg; i++) {
      pm_msg *g = &m->msg[i];
      if (g->xid != x || (g->src != r && g->dst != r)) continue;
      int other = g->src == r ? g->dst : g->src;
      if (m->rk[other].entered[x]) start_msg(m, i);
    }
    if (k->pending[x] == 0) {
      k->waiting = 0;
      pm_ev *d = util_xmalloc(sizeof *d);
      *d = (pm_ev){m, r, -1};
      net_schedule(m->n, 0, op_done, d);
    } else {
      spin_kick(m, r);
    }
    break;
  }
  }
}

static void start_rank(net *n, void *ctx) {
  (void)n;
  pm_ev *e = ctx;
  pm *m = e->m;
  int r = e->rank;
  free(e);
  advance(m, r);
}

/* ---- setup and report ---- */

/* The topology of this machine as the run used it: one node of R devices (the ranks' cores) on a
 * switch whose links carry MPI messages at the measured rate. */
static topo *machine_topology(int R, double link_gbyte_s, double latency_us, char *err, size_t errlen) {
  topo_spec sp;
  topo_spec_init(&sp);
  sp.name = "this-machine-cpu";
  sp.gpu = (hw_gpu){.model = "cpu-core", .sms = 1, .scaleup_gbyte_s = link_gbyte_s,
                    .scaleup_achievable_gbyte_s = link_gbyte_s, .scaleup_latency_ns = latency_us * 1e3 / 2,
                    .copy_gbyte_s_per_sm = link_gbyte_s};
  sp.nic = (hw_nic){.ports = 1, .mtu_bytes = 4096};
  sp.sw = (hw_switch){.radix = 1, .port_gbps = 1};
  sp.nodes = 1, sp.gpus_per_node = R, sp.scaleup = TOPO_SCALEUP_NVSWITCH;
  sp.fabric.kind = TOPO_FABRIC_NONE;
  return topo_build(&sp, err, errlen);
}

static void cpus_text(uint64_t mask, int cpus, char *buf, size_t n) {
  size_t o = 0;
  buf[0] = 0;
  for (int c = 0; c < 64 && o + 8 < n; c++)
    if (mask >> c & 1) o += (size_t)snprintf(buf + o, n - o, "%s%d", o ? "," : "", c);
  if (cpus > 64 && o + 8 < n) snprintf(buf + o, n - o, ",...");
}

/* Per rank: the simulated time of a measured phase (composites summed from their parts). */
static double sim_phase_us(const pm *m, int r, int p) {
  const sim_ps *ph = m->rk[r].ph;
  sim_ps t = 0;
  if (p == A2A_PH_DISPATCH) t = ph[A2A_PH_NOTIFY] + ph[A2A_PH_PACK] + ph[A2A_PH_DXCHG] + ph[A2A_PH_SCATTER];
  else if (p == A2A_PH_COMBINE) t = ph[A2A_PH_FWD] + ph[A2A_PH_CXCHG] + ph[A2A_PH_REDUCE];
  else if (p == A2A_PH_TOTAL)
    return m->c->layer ? ps_to_us(m->rk[r].end)
                       : sim_phase_us(m, r, A2A_PH_DISPATCH) + ps_to_us(ph[A2A_PH_EXPERTS]) +
                             sim_phase_us(m, r, A2A_PH_COMBINE);
  else t = ph[p];
  return ps_to_us(t);
}

static double sim_slowest(const pm *m, int p) {
  double v = 0;
  for (int r = 0; r < m->R; r++) v = fmax(v, sim_phase_us(m, r, p));
  return v;
}

static void print_inputs(const a2a_sim *m, const a2a_result *res, FILE *out) {
  int R = res->ranks;
  const a2a_calib *c0 = &res->rank[0].calib;
  fprintf(out, "\nprediction: the simulator replays this run (same routing, same program) on a topology of this\n"
               "machine built from isolated measurements only:\n");
  fprintf(out, "  devices    %d ranks on %g CPUs; %s; MPI %s while it waits%s\n", R, m->pool_cpus,
          m->copies == 1 ? "MPI copies a message once, on the receiver's core"
                         : "MPI copies a message twice (in and out of shared buffers)",
          res->rank[0].calib.mpi_yields ? "yields the core" : "busy-polls",
          m->spin ? " (modelled: others could use the core)" : "");
  if (R > 1)
    fprintf(out, "  links      an MPI message rank 0 -> 1 alone costs the receiving core %.3f GB/s at %.2f MB (dispatch),\n"
                 "             %.3f GB/s at %.2f MB (combine); latency %.2f us\n",
            m->link_gbyte_s[0], c0->msg_bytes[0] / 1e6, m->link_gbyte_s[1], c0->msg_bytes[1] / 1e6, c0->latency_us);
  fprintf(out, "  memory     memcpy alone %.3f GB/s per CPU-second; %d ranks at once %.3f GB/s each\n",
          c0->copy_gbyte_s, c0->concurrent, c0->copy_all_gbyte_s);
  fprintf(out, "  cores     ");
  for (int r = 0; r < R; r++) {
    char cpus[128];
    cpus_text(res->rank[r].calib.cpu_mask, res->rank[r].calib.cpus, cpus, sizeof cpus);
    fprintf(out, " rank %d cpu {%s} share %.2f alone, %.2f all busy%s", r, cpus, res->rank[r].calib.share_alone,
            res->rank[r].calib.share_all, r + 1 < R ? ";" : "\n");
  }
  fprintf(out, "  others     %.2f busy tasks of other processes on these CPUs\n", m->background);
  static const int ph[] = {A2A_PH_GATE, A2A_PH_PACK, A2A_PH_SCATTER, A2A_PH_SHARED, A2A_PH_EXPERTS, A2A_PH_FWD, A2A_PH_REDUCE};
  fprintf(out, "  kernels    local phases alone, CPU us (wall us) x the CPU time when %d ranks ran them at once:\n  %6s",
          c0->concurrent, "rank");
  for (size_t i = 0; i < sizeof ph / sizeof *ph; i++)
    if (res->rank[0].calib.phase_us[ph[i]] > 0) fprintf(out, " %26s", a2a_phase_names[ph[i]]);
  fprintf(out, "\n");
  for (int r = 0; r < R; r++) {
    const a2a_calib *cr = &res->rank[r].calib;
    fprintf(out, "  %6d", r);
    for (size_t i = 0; i < sizeof ph / sizeof *ph; i++) {
      if (res->rank[0].calib.phase_us[ph[i]] <= 0) continue;
      char cell[64];
      double f = cr->phase_cpu_us[ph[i]] > 0 ? cr->phase_cpu_all_us[ph[i]] / cr->phase_cpu_us[ph[i]] : 0;
      snprintf(cell, sizeof cell, "%.0f (%.0f) x%.2f", cr->phase_cpu_us[ph[i]], cr->phase_us[ph[i]], f);
      fprintf(out, " %26s", cell);
    }
    fprintf(out, "\n");
  }
}

int a2a_simulate(const a2a_cfg *c, const a2a_result *res, a2a_sim *out) {
  int R = res->ranks;
  memset(out, 0, sizeof *out);
  if (!res->rank || res->rank[0].calib.copy_gbyte_s <= 0) {
    fprintf(stderr, "moesim a2a: the run carries no calibration to predict from\n");
    return -1;
  }
  pm m;
  memset(&m, 0, sizeof m);
  m.c = c, m.res = res, m.R = R, m.N = res->nodes, m.rpn = c->ranks_per_node;
  const a2a_calib *c0 = &res->rank[0].calib;
  m.link_gbyte_s[0] = R > 1 ? c0->mpi_gbyte_s[0] : c0->copy_gbyte_s;
  m.link_gbyte_s[1] = R > 1 ? c0->mpi_gbyte_s[1] : c0->copy_gbyte_s;
  m.copies = strcmp(res->single_copy, "none") == 0 ? 2 : 1;
  m.latency = ps_from_us(c0->latency_us);
  char err[256];
  m.t = machine_topology(R, fmax(m.link_gbyte_s[0], m.link_gbyte_s[1]), c0->latency_us, err, sizeof err);
  if (!m.t) {
    fprintf(stderr, "moesim a2a: the machine's topology: %s\n", err);
    return -1;
  }
  des_sim *sim = des_new();
  m.n = net_new(sim, m.t, &(net_opts){.seed = 1});
  m.bus = net_res_add(m.n, 1.0, NET_RES_OTHER, -1);
  m.rk = util_xcalloc((size_t)R, sizeof *m.rk);
  m.node_arrived = util_xcalloc((size_t)m.N * PM_MAX_SYNCS, sizeof *m.node_arrived);
  /* the CPUs the ranks may use, other processes there, and whether waiting ranks spin */
  uint64_t all = 0;
  double share = 0;
  for (int r = 0; r < R; r++) all |= res->rank[r].calib.cpu_mask, share += res->rank[r].calib.share_all;
  int P = __builtin_popcountll(all);
  if (P == 0 || c0->cpus > 64) P = c0->online_cpus > 0 ? c0->online_cpus : 1;
  m.pool_cpus = P;
  m.pool = net_res_add(m.n, P, NET_RES_OTHER, -1);
  /* ranks that all got (nearly) a whole core show no measurable competition */
  m.background = share > 0 && share < 0.95 * fmin(R, P) ? R * (P - share) / share : 0;
  m.nbg = (int)ceil(m.background - 1e-9);
  m.bg = util_xcalloc((size_t)m.nbg + 1, sizeof *m.bg);
  for (int i = 0; i < m.nbg; i++) m.bg[i] = net_res_add(m.n, fmin(1.0, m.background - i), NET_RES_OTHER, -1);
  /* a busy-polling rank matters only where something else could have used its core: other
   * processes, or more ranks than CPUs (where OpenMPI normally yields anyway) */
  m.spin = !c0->mpi_yields && (m.nbg > 0 || R > P);
  /* one core-time resource per distinct CPU set smaller than the pool, shared by its ranks */
  uint64_t *masks = util_xcalloc((size_t)R, sizeof *masks);
  uint32_t *sets = util_xcalloc((size_t)R, sizeof *sets);
  int nsets = 0;
  for (int r = 0; r < R; r++) {
    const a2a_calib *cr = &res->rank[r].calib;
    pm_rank *k = &m.rk[r];
    k->main = net_res_add(m.n, 1.0, NET_RES_OTHER, r);
    k->thread = net_res_add(m.n, (double)c->threads, NET_RES_OTHER, r);
    k->copy_gbyte_s = cr->copy_gbyte_s > 0 ? cr->copy_gbyte_s : c0->copy_gbyte_s;
    /* per byte: the demand per CPU-ns of a memcpy times its CPU-ns per byte */
    k->copy_bus = bus_demand(1.0 / k->copy_gbyte_s, cr->copy_all_gbyte_s > 0 ? 1.0 / cr->copy_all_gbyte_s : 0,
                             cr->concurrent) / k->copy_gbyte_s;
    k->mask = UINT32_MAX;
    int cpus = __builtin_popcountll(cr->cpu_mask);
    if (cpus == 0 || cpus >= P) continue;
    int q = 0;
    while (q < nsets && masks[q] != cr->cpu_mask) q++;
    if (q == nsets) masks[nsets] = cr->cpu_mask, sets[nsets++] = net_res_add(m.n, cpus, NET_RES_OTHER, -1);
    k->mask = sets[q];
  }
  free(masks), free(sets);
  build_programs(&m);
  m.alive = R;
  for (int r = 0; r < R; r++) {
    pm_ev *e = util_xmalloc(sizeof *e);
    *e = (pm_ev){&m, r, -1};
    net_schedule(m.n, 0, start_rank, e);
  }
  for (int i = 0; i < m.nbg; i++) {
    pm_ev *e = util_xmalloc(sizeof *e);
    *e = (pm_ev){&m, i, -1};
    net_schedule(m.n, 0, bg_kick, e);
  }
  /* a model that deadlocked would spin forever: stop far beyond any plausible end (all the work
   * done one thing at a time, a hundred times over) */
  double bound_us = 1e6;
  for (int r = 0; r < R; r++) {
    for (int p = 0; p < A2A_PH_COUNT; p++) bound_us += 100.0 * res->rank[r].calib.phase_cpu_us[p];
    for (int d = 0; d < R; d++)
      bound_us += 100.0 * (double)res->rank[r].send_cnt[d] * (double)(res->fmt.bytes + 2 * (uint64_t)c->hidden) /
                  (1e3 * fmin(m.link_gbyte_s[0], m.link_gbyte_s[1]));
  }
  des_run_until(sim, ps_from_us(bound_us));
  int rc = 0;
  for (int r = 0; r < R; r++)
    if (m.rk[r].pc < m.rk[r].nops) {
      fprintf(stderr, "moesim a2a: the simulated rank %d stopped at step %d of %d (a deadlock in the model)\n", r,
              m.rk[r].pc, m.rk[r].nops);
      rc = -1;
    }
  for (int p = 0; p < A2A_PH_COUNT; p++) out->phase_us[p] = sim_slowest(&m, p);
  out->pool_cpus = m.pool_cpus, out->background = m.background, out->spin = m.spin, out->copies = m.copies;
  out->link_gbyte_s[0] = m.link_gbyte_s[0], out->link_gbyte_s[1] = m.link_gbyte_s[1];
  for (int r = 0; r < R; r++) free(m.rk[r].ops);
  free(m.rk), free(m.msg), free(m.node_arrived), free(m.bg);
  net_free(m.n);
  des_free(sim);
  topo_free(m.t);
  return rc;
}

int a2a_predict(const a2a_cfg *c, const a2a_result *res, FILE *out) {
  a2a_sim sm;
  if (a2a_simulate(c, res, &sm) != 0) return -1;
  print_inputs(&sm, res, out);
  static const struct {
    int ph, when;
    const char *label;
  } rows[] = {{A2A_PH_GATE, 1, "gate"},         {A2A_PH_DISPATCH, 0, "dispatch"},   {A2A_PH_PACK, 0, "  quantize + pack"},
              {A2A_PH_DXCHG, 0, "  exchange"},   {A2A_PH_SCATTER, 2, "  scatter"},   {A2A_PH_SHARED, 1, "shared expert"},
              {A2A_PH_EXPERTS, 0, "experts"},    {A2A_PH_COMBINE, 0, "combine"},     {A2A_PH_FWD, 2, "  forwarder reduce"},
              {A2A_PH_CXCHG, 0, "  exchange"},   {A2A_PH_REDUCE, 0, "  reduce"},     {A2A_PH_TOTAL, 0, "total"}};
  fprintf(out, "\n  %-22s %14s %14s %9s\n", "phase (slowest rank)", "measured_us", "simulated_us", "error");
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    if ((rows[i].when == 1 && !c->layer) || (rows[i].when == 2 && c->impl != A2A_HIER)) continue;
    double mn, md, mx, sv = sm.phase_us[rows[i].ph];
    a2a_phase_stats(res, rows[i].ph, &mn, &md, &mx);
    fprintf(out, "  %-22s %14.1f %14.1f %8.1f%%\n", rows[i].label, md, sv, md > 0 ? 100.0 * (sv - md) / md : 0.0);
  }
  double mn, md, mx, sv = sm.phase_us[A2A_PH_TOTAL];
  a2a_phase_stats(res, A2A_PH_TOTAL, &mn, &md, &mx);
  fprintf(out, "\n%s: measured %.1f us, simulated %.1f us, error %.1f%%\n",
          c->layer ? "layer" : "dispatch + experts + combine", md, sv, md > 0 ? 100.0 * (sv - md) / md : 0.0);
  return 0;
}
