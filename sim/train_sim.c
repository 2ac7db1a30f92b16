/* sim/train_sim.c — the training step replayed on the event core (train.h): each pipeline rank
 * runs its schedule's ops in order; an op starts when its rank is free and every message its
 * commit waits for has arrived; its sends leave when it ends and arrive after the network's
 * point-to-point transfer time between the two ranks. Then the data-parallel tail (gradient
 * reduce-scatter or all-reduce, optimizer, weight all-gather) per rank, the per-phase breakdown,
 * and the figures of the step. */
#include <stdlib.h>
#include <string.h>

#include "train_int.h"
#include "train_trace.h"
#include "util.h"

typedef struct rp_rank {
  struct rp *rp; /* the replay */
  int r;         /* rank */
} rp_rank;

typedef struct rp_msg {
  struct rp *rp; /* the replay */
  int to;        /* receiving rank */
  size_t tensor; /* which tensor */
} rp_msg;

typedef struct rp {
  tr_sim *s;
  des_sim *des;
  size_t *pos;        /* [pp] next op */
  int *busy;          /* [pp] running an op */
  sim_ps *arrived;    /* [tensors] arrival at the receiver (SIM_PS_MAX: not yet) */
  rp_rank *rk;        /* [pp] event contexts */
  rp_msg *msg;        /* [all sends] event contexts */
  size_t *send_base;  /* [pp + 1] first send of each rank in msg */
  tr_trace_ops ops;   /* start and end of every op, per rank */
  sim_ps *zero3_ag;   /* [parts] ZeRO-3 weight all-gather of a part */
  sim_ps *zero3_rs;   /* [parts] ZeRO-3 gradient reduce-scatter of a part */
} rp;

static size_t tensor_index(const sched *s, sched_pass p, int grad) {
  return (((size_t)grad * (size_t)s->n_dirs + (size_t)p.dir) * (size_t)s->n_mb + (size_t)p.mb) * (size_t)s->n_stages +
         (size_t)p.stage;
}

/* Duration of an op and its compute per pass. */
typedef struct op_cost {
  sim_ps time;                   /* the op */
  sim_ps comp[TR_NPASS];         /* compute: forward, backward-for-input, weights */
} op_cost;

static void op_cost_of(rp *x, const sched_op *op, op_cost *c) {
  tr_sim *s = x->s;
  memset(c, 0, sizeof *c);
  const tr_part *F = op->f.mb >= 0 ? &s->parts[op->f.stage] : NULL, *B = op->b.mb >= 0 ? &s->parts[op->b.stage] : NULL;
  sim_ps extra = 0; /* ZeRO-3 traffic the op must have moved */
  switch (op->kind) {
  case SCHED_F:
    c->time = F->f, c->comp[TR_F] = F->f_comp;
    if (x->zero3_ag) extra = x->zero3_ag[op->f.stage];
    break;
  case SCHED_B:
    c->time = B->b, c->comp[TR_B] = B->b_comp, c->comp[TR_W] = B->w_comp;
    if (x->zero3_ag) extra = x->zero3_ag[op->b.stage] + x->zero3_rs[op->b.stage];
    break;
  case SCHED_BI:
    c->time = B->bi, c->comp[TR_B] = B->b_comp;
    if (x->zero3_ag) extra = x->zero3_ag[op->b.stage];
    break;
  case SCHED_W:
    c->time = B->w, c->comp[TR_W] = B->w_comp;
    if (x->zero3_rs) extra = x->zero3_rs[op->b.stage];
    break;
  case SCHED_FB: {
    const tr_fb *fb = tr_cost_fb(s, op->f.stage, op->b.stage);
    c->time = fb->time, c->comp[TR_F] = fb->f_comp, c->comp[TR_B] = fb->b_comp, c->comp[TR_W] = fb->w_comp;
    if (x->zero3_ag) extra = x->zero3_ag[op->f.stage] + x->zero3_ag[op->b.stage] + x->zero3_rs[op->b.stage];
    break;
  }
  }
  if (extra > c->time) c->time = extra; /* prefetched behind the op, on its own stream */
}

static void try_start(rp *x, int r);

static void on_arrive(des_sim *d, void *p) {
  rp_msg *m = p;
  m->rp->arrived[m->tensor] = des_now(d);
  try_start(m->rp, m->to);
}

static void on_end(des_sim *d, void *p) {
  rp_rank *k = p;
  rp *x = k->rp;
  tr_sim *s = x->s;
  int r = k->r, R = s->plan.pp;
  const sched_rank *rk = &s->sched.ranks[r];
  const sched_op *op = &rk->ops[x->pos[r]];
  x->ops.end[x->ops.base[r] + x->pos[r]] = des_now(d);
  for (uint32_t i = 0; i < op->n_send; i++) {
    size_t at = x->send_base[r] + op->send_at + i;
    des_after(d, s->p2p[r * R + x->msg[at].to], on_arrive, &x->msg[at]);
  }
  x->pos[r]++;
  x->busy[r] = 0;
  try_start(x, r);
}

static void try_start(rp *x, int r) {
  tr_sim *s = x->s;
  const sched_rank *rk = &s->sched.ranks[r];
  if (x->busy[r] || x->pos[r] >= rk->n_ops) return;
  const sched_op *op = &rk->ops[x->pos[r]];
  for (uint32_t i = 0; i < op->n_recv; i++) {
    const sched_msg *m = &rk->recv[op->recv_at + i];
    if (x->arrived[tensor_index(&s->sched, m->src, m->grad)] == SIM_PS_MAX) return; /* woken by its arrival */
  }
  op_cost c;
  op_cost_of(x, op, &c);
  x->busy[r] = 1;
  x->ops.start[x->ops.base[r] + x->pos[r]] = des_now(x->des);
  des_after(x->des, c.time, on_end, &x->rk[r]);
}

/* ---------------------------------------------------------------- the DP tail */

static double fmt_bytes(int f) { return f == MODEL_FP32 ? 4 : f == MODEL_BF16 ? 2 : f == MODEL_FP8 ? 1 : 0; }

/* Gradient sync of part p (ZeRO 0: all-reduce; 1, 2: reduce-scatter; 3: done per op). */
static sim_ps part_sync(tr_sim *s, int p, int *grp) {
  if (s->plan.zero >= 3) return 0;
  int kind = s->plan.zero == 0 ? COLL_ALLREDUCE_RING : COLL_REDUCE_SCATTER_RING;
  double gb = fmt_bytes(s->model.prec.grads);
  int n = tr_dense_group(s, p, grp);
  sim_ps t = tr_coll_time(s, kind, grp, n, s->parts[p].params_dense / s->plan.tp * gb);
  n = tr_expert_group(s, p, grp);
  sim_ps e = tr_coll_time(s, kind, grp, n, s->parts[p].params_expert / s->plan.ep * gb);
  return t == SIM_PS_MAX || e == SIM_PS_MAX ? SIM_PS_MAX : t + e;
}

/* Weight all-gather of part p after the optimizer (ZeRO 1 and 2), or before each use (ZeRO 3). */
static sim_ps part_gather(tr_sim *s, int p, int *grp) {
  if (s->plan.zero == 0) return 0;
  double wb = fmt_bytes(s->model.prec.weights);
  if (s->model.prec.weights == MODEL_NONE) wb = fmt_bytes(s->model.prec.master);
  int n = tr_dense_group(s, p, grp);
  sim_ps t = tr_coll_time(s, COLL_ALLGATHER_RING, grp, n, s->parts[p].params_dense / s->plan.tp * wb);
  n = tr_expert_group(s, p, grp);
  sim_ps e = tr_coll_time(s, COLL_ALLGATHER_RING, grp, n, s->parts[p].params_expert / s->plan.ep * wb);
  return t == SIM_PS_MAX || e == SIM_PS_MAX ? SIM_PS_MAX : t + e;
}

/* AdamW over the rank's shard of part p: read the gradient, read and write master weights and
 * both moments, write the working weights; memory-bound, at HBM bandwidth. */
static double part_opt_seconds(tr_sim *s, int p, int *grp) {
  const model_precision *pr = &s->model.prec;
  double per = fmt_bytes(pr->grads) + 2 * fmt_bytes(pr->master) + 4 * fmt_bytes(pr->moments) +
               (pr->master == MODEL_NONE ? 2 : 1) * fmt_bytes(pr->weights == MODEL_NONE ? pr->master : pr->weights);
  double d = s->parts[p].params_dense / s->plan.tp, e = s->parts[p].params_expert / s->plan.ep;
  if (s->plan.zero >= 1) {
    d /= tr_dense_group(s, p, grp);
    e /= tr_expert_group(s, p, grp);
  }
  return (d + e) * per / (s->cfg->topo->gpu.hbm_gbyte_s * 1e9);
}

/* ---------------------------------------------------------------- the step */

int tr_replay(tr_sim *s, train_result *res) {
  const sched *sc = &s->sched;
  int R = s->plan.pp, P = s->n_parts;
  rp x = {.s = s};
  x.des = des_new();
  x.pos = util_xcalloc((size_t)R, sizeof *x.pos);
  x.busy = util_xcalloc((size_t)R, sizeof *x.busy);
  size_t nt = 2 * (size_t)sc->n_dirs * (size_t)sc->n_mb * (size_t)sc->n_stages;
  x.arrived = util_xmalloc(nt * sizeof *x.arrived);
  for (size_t i = 0; i < nt; i++) x.arrived[i] = SIM_PS_MAX;
  x.rk = util_xcalloc((size_t)R, sizeof *x.rk);
  x.send_base = util_xcalloc((size_t)R + 1, sizeof *x.send_base);
  tr_trace_ops_init(&x.ops, sc);
  for (int r = 0; r < R; r++) x.send_base[r + 1] = x.send_base[r] + sc->ranks[r].n_send;
  x.msg = util_xcalloc(x.send_base[R] ? x.send_base[R] : 1, sizeof *x.msg);
  for (int r = 0; r < R; r++) {
    x.rk[r] = (rp_rank){&x, r};
    for (size_t i = 0; i < sc->ranks[r].n_send; i++) {
      const sched_msg *m = &sc->ranks[r].send[i];
      x.msg[x.send_base[r] + i] = (rp_msg){&x, m->peer, tensor_index(sc, m->src, m->grad)};
    }
  }
  int *grp = util_xmalloc((size_t)(2 * s->gpus + 2) * sizeof *grp);
  int rc = 0;
  if (s->plan.zero >= 3) {
    x.zero3_ag = util_xcalloc((size_t)P, sizeof *x.zero3_ag);
    x.zero3_rs = util_xcalloc((size_t)P, sizeof *x.zero3_rs);
    for (int p = 0; p < P && rc == 0; p++) {
      x.zero3_ag[p] = part_gather(s, p, grp);
      double gb = fmt_bytes(s->model.prec.grads);
      int n = tr_dense_group(s, p, grp);
      sim_ps a = tr_coll_time(s, COLL_REDUCE_SCATTER_RING, grp, n, s->parts[p].params_dense / s->plan.tp * gb);
      n = tr_expert_group(s, p, grp);
      sim_ps b = tr_coll_time(s, COLL_REDUCE_SCATTER_RING, grp, n, s->parts[p].params_expert / s->plan.ep * gb);
      x.zero3_rs[p] = a + b;
      if (x.zero3_ag[p] == SIM_PS_MAX || a == SIM_PS_MAX || b == SIM_PS_MAX)
        rc = tr_fail(s, 1, "a ZeRO-3 collective cannot run on cluster %s", s->cfg->topo->name);
    }
  }
  if (rc == 0) {
    for (int r = 0; r < R; r++) try_start(&x, r);
    des_run(x.des);
    for (int r = 0; r < R && rc == 0; r++)
      if (x.pos[r] < sc->ranks[r].n_ops)
        rc = tr_fail(s, 1, "the schedule deadlocked: rank %d stopped at op %zu of %zu", r, x.pos[r], sc->ranks[r].n_ops);
  }
  /* Per-rank accounting and the DP tail. */
  sim_ps *ready = util_xcalloc((size_t)P, sizeof *ready); /* part p's gradients final */
  sim_ps *last = util_xcalloc((size_t)R, sizeof *last), *done = util_xcalloc((size_t)R, sizeof *done);
  double *opt = util_xcalloc((size_t)R, sizeof *opt);
  train_phases *ph = util_xcalloc((size_t)R, sizeof *ph);
  tr_trace_tail *tail = util_xcalloc((size_t)R, sizeof *tail);
  int *parts = util_xmalloc((size_t)P * sizeof *parts);
  for (int r = 0; r < R && rc == 0; r++) {
    const sched_rank *rk = &sc->ranks[r];
    for (size_t i = 0; i < rk->n_ops; i++) {
      const sched_op *op = &rk->ops[i];
      sim_ps e = x.ops.end[x.ops.base[r] + i];
      if (e > last[r]) last[r] = e;
      if (op->b.mb >= 0 && e > ready[op->b.stage]) ready[op->b.stage] = e;
      op_cost c;
      op_cost_of(&x, op, &c);
      ph[r].f_s += ps_to_s(c.comp[TR_F]);
      ph[r].b_s += ps_to_s(c.comp[TR_B]);
      ph[r].w_s += ps_to_s(c.comp[TR_W]);
      ph[r].exposed_comm_s += ps_to_s(c.time - c.comp[TR_F] - c.comp[TR_B] - c.comp[TR_W]);
      for (int k = 0; k < COMPUTE_SRC_COUNT; k++) {
        if (op->f.mb >= 0) res->compute_src_s[k] += s->parts[op->f.stage].src_s[TR_F][k] / R;
        if (op->kind == SCHED_B || op->kind == SCHED_BI || op->kind == SCHED_FB)
          res->compute_src_s[k] += s->parts[op->b.stage].src_s[TR_B][k] / R;
        if (op->kind == SCHED_B || op->kind == SCHED_W || op->kind == SCHED_FB)
          res->compute_src_s[k] += s->parts[op->b.stage].src_s[TR_W][k] / R;
      }
    }
  }
  sim_ps makespan = 0;
  for (int r = 0; r < R && rc == 0; r++) {
    int np = tr_parts_of_rank(s, r, parts);
    /* syncs in the order their parts become ready */
    for (int i = 1; i < np; i++)
      for (int j = i; j > 0 && ready[parts[j]] < ready[parts[j - 1]]; j--) {
        int t = parts[j];
        parts[j] = parts[j - 1], parts[j - 1] = t;
      }
    sim_ps t = 0, sync_total = 0, gather = 0;
    tail[r].sync_start = SIM_PS_MAX;
    for (int i = 0; i < np && rc == 0; i++) {
      sim_ps d = part_sync(s, parts[i], grp), st = t > ready[parts[i]] ? t : ready[parts[i]];
      if (d == SIM_PS_MAX) rc = tr_fail(s, 1, "a gradient collective cannot run on cluster %s", s->cfg->topo->name);
      if (d && st < tail[r].sync_start) tail[r].sync_start = st;
      t = st + d;
      sync_total += d;
      opt[r] += part_opt_seconds(s, parts[i], grp);
      if (s->plan.zero == 1 || s->plan.zero == 2) {
        sim_ps g = part_gather(s, parts[i], grp);
        if (g == SIM_PS_MAX) rc = tr_fail(s, 1, "a weight all-gather cannot run on cluster %s", s->cfg->topo->name);
        gather += g;
      }
    }
    tail[r].sync_end = t;
    tail[r].opt_start = t > last[r] ? t : last[r];
    tail[r].opt_end = tail[r].opt_start + ps_from_s(opt[r]);
    tail[r].gather_end = tail[r].opt_end + gather;
    done[r] = tail[r].gather_end;
    (void)sync_total;
    if (done[r] > makespan) makespan = done[r];
  }
  double step = ps_to_s(makespan);
  memset(&res->phases, 0, sizeof res->phases);
  for (int r = 0; r < R && rc == 0; r++) {
    double o = ps_to_s(tail[r].opt_end - tail[r].opt_start);
    double dp = ps_to_s(done[r] - last[r]) - o;
    ph[r].optimizer_s = o;
    ph[r].exposed_comm_s += dp;
    ph[r].bubble_s = step - ph[r].f_s - ph[r].b_s - ph[r].w_s - ph[r].exposed_comm_s - ph[r].optimizer_s;
    res->phases.f_s += ph[r].f_s / R;
    res->phases.b_s += ph[r].b_s / R;
    res->phases.w_s += ph[r].w_s / R;
    res->phases.exposed_comm_s += ph[r].exposed_comm_s / R;
    res->phases.bubble_s += ph[r].bubble_s / R;
    res->phases.optimizer_s += ph[r].optimizer_s / R;
  }
  res->step_s = step;
  if (rc == 0 && s->cfg->trace_path) {
    tr_trace_in ti = {.s = s, .ops = &x.ops, .tail = tail};
    if (tr_trace_write(&ti, s->cfg->trace_path) != 0)
      rc = tr_fail(s, 1, "cannot write the trace %s", s->cfg->trace_path);
  }
  free(ready), free(last), free(done), free(opt), free(ph), free(tail), free(parts), free(grp);
  free(x.zero3_ag), free(x.zero3_rs);
  tr_trace_ops_free(&x.ops);
  free(x.pos), free(x.busy), free(x.arrived), free(x.rk), free(x.msg), free(x.send_base);
  des_free(x.des);
  return rc;
}
