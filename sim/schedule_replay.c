/* sim/schedule_replay.c — a schedule replayed on an ideal machine, the dependency check, and the text
 * Gantt chart.
 *
 * The replay is a list scheduler, which is exact here because nothing is shared between ranks
 * but messages: each rank runs its ops in order; an op starts when the previous one ended and
 * every message its commit waits for has arrived; a message leaves when the op it follows ends
 * and arrives p2p picoseconds later. Sweeping the ranks until none can advance computes every
 * start time (each is a max over known ends); a rank left with ops is a deadlock. Sends never
 * block, i.e. messages are buffered — the ideal machine of the published bubble analyses. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "util.h"

/* Index of a tensor (activation or gradient of a pass) in flat per-tensor arrays. */
static size_t tensor_index(const sched *s, sched_pass p, int grad) {
  assert(p.mb >= 0 && p.mb < s->n_mb && p.stage >= 0 && p.stage < s->n_stages && p.dir >= 0 && p.dir < s->n_dirs);
  return (((size_t)grad * (size_t)s->n_dirs + (size_t)p.dir) * (size_t)s->n_mb + (size_t)p.mb) * (size_t)s->n_stages +
         (size_t)p.stage;
}
static size_t tensor_count(const sched *s) { return 2 * (size_t)s->n_dirs * (size_t)s->n_mb * (size_t)s->n_stages; }

static void set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && len) vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

int sched_replay_run(const sched *s, const sched_cost *c, sched_replay *out, char *err, size_t err_len) {
  int R = s->n_ranks;
  memset(out, 0, sizeof *out);
  out->op_base = util_xmalloc((size_t)(R + 1) * sizeof *out->op_base);
  out->op_base[0] = 0;
  for (int r = 0; r < R; r++) out->op_base[r + 1] = out->op_base[r] + s->ranks[r].n_ops;
  size_t n_ops = out->op_base[R];
  out->start = util_xcalloc(n_ops ? n_ops : 1, sizeof *out->start);
  out->end = util_xcalloc(n_ops ? n_ops : 1, sizeof *out->end);
  out->busy = util_xcalloc((size_t)R, sizeof *out->busy);
  size_t nt = tensor_count(s);
  sim_ps *sent = util_xmalloc(nt * sizeof *sent); /* when each message left; SIM_PS_MAX = not yet */
  sim_ps *made = util_xmalloc(nt * sizeof *made); /* when each tensor was produced */
  for (size_t i = 0; i < nt; i++) sent[i] = made[i] = SIM_PS_MAX;
  size_t *pos = util_xcalloc((size_t)R, sizeof *pos);
  sim_ps *now = util_xcalloc((size_t)R, sizeof *now);
  int progress = 1, rc = 0;
  while (progress) {
    progress = 0;
    for (int r = 0; r < R; r++) {
      const sched_rank *rk = &s->ranks[r];
      while (pos[r] < rk->n_ops) {
        const sched_op *op = &rk->ops[pos[r]];
        sim_ps start = now[r];
        int ready = 1;
        if (c->eager) {
          sched_msg need[4];
          int n = sched_deps(s, op, need);
          for (int k = 0; k < n && ready; k++) {
            size_t t = tensor_index(s, need[k].src, need[k].grad);
            sim_ps lat = sched_rank_of(s, need[k].src) == r ? 0 : c->p2p;
            if (made[t] == SIM_PS_MAX) ready = 0;
            else if (made[t] + lat > start) start = made[t] + lat;
          }
        }
        for (uint32_t k = 0; k < op->n_recv && ready && !c->eager; k++) {
          const sched_msg *m = &rk->recv[op->recv_at + k];
          sim_ps t = sent[tensor_index(s, m->src, m->grad)];
          if (t == SIM_PS_MAX) ready = 0;
          else if (t + c->p2p > start) start = t + c->p2p;
        }
        if (!ready) break;
        sim_ps end = start + sched_op_time(c, op->kind);
        size_t at = out->op_base[r] + pos[r];
        out->start[at] = start;
        out->end[at] = end;
        out->busy[r] += end - start;
        if (op->kind == SCHED_F || op->kind == SCHED_FB) made[tensor_index(s, op->f, 0)] = end;
        if (op->kind == SCHED_B || op->kind == SCHED_BI || op->kind == SCHED_FB) made[tensor_index(s, op->b, 1)] = end;
        for (uint32_t k = 0; k < op->n_send; k++) {
          const sched_msg *m = &rk->send[op->send_at + k];
          sent[tensor_index(s, m->src, m->grad)] = end;
        }
        now[r] = end;
        if (end > out->makespan) out->makespan = end;
        pos[r]++;
        progress = 1;
      }
    }
  }
  for (int r = 0; r < R; r++)
    if (pos[r] < s->ranks[r].n_ops) {
      const sched_op *op = &s->ranks[r].ops[pos[r]];
      set_err(err, err_len, "deadlock: rank %d stops at op %zu (of %zu, kind %d), waiting for a message never sent", r,
              pos[r], s->ranks[r].n_ops, (int)op->kind);
      rc = -1;
      break;
    }
  free(sent);
  free(made);
  free(pos);
  free(now);
  if (rc != 0) sched_replay_free(out);
  return rc;
}

void sched_replay_free(sched_replay *r) {
  free(r->op_base);
  free(r->start);
  free(r->end);
  free(r->busy);
  memset(r, 0, sizeof *r);
}

sim_ps sched_replay_idle(const sched_replay *r, int rank) { return r->makespan - r->busy[rank]; }

sim_ps sched_replay_bubble(const sched *s, const sched_replay *r) {
  sim_ps worst = 0;
  for (int k = 0; k < s->n_ranks; k++)
    if (sched_replay_idle(r, k) > worst) worst = sched_replay_idle(r, k);
  return worst;
}

/* ---- the independent check ---- */

typedef struct check_state {
  const sched *s;         /* the schedule */
  char *err;              /* first violation */
  size_t err_len;
  int bad;                /* violations so far */
  sim_ps *done;           /* per tensor: end of the op producing it (SIM_PS_MAX = never) */
  size_t *done_rank;      /* per tensor: rank that produced it */
  size_t *done_op;        /* per tensor: index of that op on its rank */
  unsigned char *is_bi;   /* per backward pass: its backward was a BI (W pending) */
  unsigned char *w_done;  /* per backward pass: its W ran */
  int *recv_rank;         /* per tensor: the rank that received it as a message (-1 = none) */
  size_t *recv_op;        /* per tensor: the op whose commit received it */
  int *send_rank;         /* per tensor: the rank that sent it (-1 = none) */
  size_t *send_op;        /* per tensor: the op after which it was sent */
} check_state;

static void violation(check_state *cs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(check_state *cs, const char *fmt, ...) {
  if (cs->bad++ == 0 && cs->err && cs->err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cs->err, cs->err_len, fmt, ap);
    va_end(ap);
  }
}

/* Records that rank r's op i produced tensor (p, grad), ending at `end`. */
static void produce(check_state *cs, int r, size_t i, sched_pass p, int grad, sim_ps end) {
  if (p.mb < 0 || p.mb >= cs->s->n_mb || p.stage < 0 || p.stage >= cs->s->n_stages || p.dir < 0 || p.dir >= cs->s->n_dirs) {
    violation(cs, "rank %d op %zu: pass out of range", r, i);
    return;
  }
  if (sched_rank_of(cs->s, p) != r)
    violation(cs, "rank %d op %zu: runs dir %d stage %d, which belongs to rank %d", r, i, p.dir, p.stage,
              sched_rank_of(cs->s, p));
  size_t t = tensor_index(cs->s, p, grad);
  if (cs->done[t] != SIM_PS_MAX) violation(cs, "rank %d op %zu: %s of dir %d mb %d stage %d runs twice", r, i,
                                            grad ? "backward" : "forward", p.dir, p.mb, p.stage);
  cs->done[t] = end;
  cs->done_rank[t] = (size_t)r;
  cs->done_op[t] = i;
}

int sched_check(const sched *s, const sched_replay *rp, const sched_cost *c, char *err, size_t err_len) {
  size_t nt = tensor_count(s), np = nt / 2;
  check_state cs = {.s = s, .err = err, .err_len = err_len};
  cs.done = util_xmalloc(nt * sizeof *cs.done);
  cs.done_rank = util_xcalloc(nt, sizeof *cs.done_rank);
  cs.done_op = util_xcalloc(nt, sizeof *cs.done_op);
  cs.recv_rank = util_xmalloc(nt * sizeof *cs.recv_rank);
  cs.recv_op = util_xcalloc(nt, sizeof *cs.recv_op);
  cs.send_rank = util_xmalloc(nt * sizeof *cs.send_rank);
  cs.send_op = util_xcalloc(nt, sizeof *cs.send_op);
  cs.is_bi = util_xcalloc(np, 1);
  cs.w_done = util_xcalloc(np, 1);
  for (size_t t = 0; t < nt; t++) {
    cs.done[t] = SIM_PS_MAX;
    cs.recv_rank[t] = cs.send_rank[t] = -1;
  }
  /* Pass 1: who produces, sends and receives what. */
  for (int r = 0; r < s->n_ranks; r++) {
    const sched_rank *rk = &s->ranks[r];
    for (size_t i = 0; i < rk->n_ops; i++) {
      const sched_op *op = &rk->ops[i];
      sim_ps end = rp->end[rp->op_base[r] + i];
      if (op->kind == SCHED_F || op->kind == SCHED_FB) produce(&cs, r, i, op->f, 0, end);
      if (op->kind == SCHED_B || op->kind == SCHED_BI || op->kind == SCHED_FB) {
        produce(&cs, r, i, op->b, 1, end);
        if (op->kind == SCHED_BI && cs.bad == 0) cs.is_bi[tensor_index(s, op->b, 1) - np] = 1;
      }
      for (uint32_t k = 0; k < op->n_recv; k++) {
        const sched_msg *m = &rk->recv[op->recv_at + k];
        size_t t = tensor_index(s, m->src, m->grad);
        if (cs.recv_rank[t] >= 0) violation(&cs, "rank %d op %zu: tensor received twice", r, i);
        cs.recv_rank[t] = r;
        cs.recv_op[t] = i;
      }
      for (uint32_t k = 0; k < op->n_send; k++) {
        const sched_msg *m = &rk->send[op->send_at + k];
        size_t t = tensor_index(s, m->src, m->grad);
        if (cs.send_rank[t] >= 0) violation(&cs, "rank %d op %zu: tensor sent twice", r, i);
        cs.send_rank[t] = r;
        cs.send_op[t] = i;
      }
    }
  }
  for (size_t t = 0; t < nt && cs.bad == 0; t++)
    if (cs.done[t] == SIM_PS_MAX) violation(&cs, "a %s pass never runs", t < np ? "forward" : "backward");
  /* Pass 2: every op after what it needs; messages carry what crosses ranks. */
  for (int r = 0; r < s->n_ranks && cs.bad == 0; r++) {
    const sched_rank *rk = &s->ranks[r];
    sim_ps prev_end = 0;
    for (size_t i = 0; i < rk->n_ops; i++) {
      const sched_op *op = &rk->ops[i];
      sim_ps start = rp->start[rp->op_base[r] + i];
      if (start < prev_end) violation(&cs, "rank %d op %zu: starts before the previous op ends", r, i);
      prev_end = rp->end[rp->op_base[r] + i];
      sched_msg need[4];
      int n = sched_deps(s, op, need);
      for (int k = 0; k < n; k++) {
        size_t t = tensor_index(s, need[k].src, need[k].grad);
        sim_ps ready = cs.done[t];
        if (op->kind == SCHED_W) {
          size_t bp = t - np;
          if (!cs.is_bi[bp]) violation(&cs, "rank %d op %zu: W of a pass whose backward was not a BI", r, i);
          if (cs.w_done[bp]++) violation(&cs, "rank %d op %zu: a second W for one BI", r, i);
        }
        if (cs.done_rank[t] != (size_t)r) {
          if (cs.recv_rank[t] != r || cs.recv_op[t] > i) {
            violation(&cs, "rank %d op %zu: needs a tensor from rank %zu that no earlier commit received", r, i,
                      cs.done_rank[t]);
            continue;
          }
          if (cs.send_rank[t] != (int)cs.done_rank[t] || cs.send_op[t] < cs.done_op[t]) {
            violation(&cs, "rank %d op %zu: a tensor it needs is sent before it is produced", r, i);
            continue;
          }
          ready = c->eager ? ready + c->p2p : rp->end[rp->op_base[cs.done_rank[t]] + cs.send_op[t]] + c->p2p;
        } else if (cs.done_op[t] >= i) {
          violation(&cs, "rank %d op %zu: needs the output of its own later op %zu", r, i, cs.done_op[t]);
          continue;
        }
        if (ready > start)
          violation(&cs, "rank %d op %zu: starts at %llu ps, before its input is there at %llu ps", r, i,
                    (unsigned long long)start, (unsigned long long)ready);
      }
    }
  }
  for (size_t bp = 0; bp < np && cs.bad == 0; bp++)
    if (cs.is_bi[bp] && !cs.w_done[bp]) violation(&cs, "a BI's weight gradient never runs");
  free(cs.done);
  free(cs.done_rank);
  free(cs.done_op);
  free(cs.recv_rank);
  free(cs.recv_op);
  free(cs.send_rank);
  free(cs.send_op);
  free(cs.is_bi);
  free(cs.w_done);
  return cs.bad;
}

/* ---- Gantt chart ---- */

static sim_ps gcd_ps(sim_ps a, sim_ps b) {
  while (b) {
    sim_ps t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* Label of an op: kind letter(s) and micro-batch; lower case on the rank's odd model chunks
 * (DualPipe's reverse direction, the way back up DualPipeV's V, interleaved chunks 1, 3...). */
static void op_label(const sched *s, const sched_op *op, char *buf, size_t len) {
  static const char letter[] = {'F', 'B', 'I', 'W'};
  char part[2][16];
  int n = 0;
  if (op->kind == SCHED_F || op->kind == SCHED_FB) {
    int lower = sched_chunk_of(s, op->f) % 2;
    snprintf(part[n++], sizeof part[0], "%c%d", lower ? 'f' : 'F', op->f.mb);
  }
  if (op->kind != SCHED_F) {
    int lower = sched_chunk_of(s, op->b) % 2;
    char l = op->kind == SCHED_FB ? 'B' : letter[op->kind];
    snprintf(part[n++], sizeof part[0], "%c%d", lower ? (char)(l - 'A' + 'a') : l, op->b.mb);
  }
  if (n == 1) snprintf(buf, len, "%s", part[0]);
  else snprintf(buf, len, "%s%s", part[0], part[1]);
}

void sched_gantt_print(FILE *f, const sched *s, const sched_replay *r, double unit_ps, int max_cols) {
  if (r->makespan == 0) return;
  sim_ps q = 0, shortest = SIM_PS_MAX;
  size_t n_ops = r->op_base[s->n_ranks];
  for (size_t i = 0; i < n_ops; i++) {
    sim_ps d = r->end[i] - r->start[i];
    q = gcd_ps(gcd_ps(q, r->start[i]), d);
    if (d > 0 && d < shortest) shortest = d;
  }
  if (q == 0) q = r->makespan;
  /* Columns per quantum: enough for the shortest op to show a 2-character label. */
  uint64_t per_q = shortest == SIM_PS_MAX ? 1 : (2 * q + shortest - 1) / shortest;
  if (per_q < 1) per_q = 1;
  double cols_d = (double)(r->makespan / q) * (double)per_q;
  int cols = cols_d > max_cols ? max_cols : (int)cols_d;
  if (cols < 1) cols = 1;
  char *row = util_xmalloc((size_t)cols + 1);
  char label[40];
  /* Ruler: the time (in units) at every 10th column. */
  memset(row, ' ', (size_t)cols);
  for (int col = 0; col < cols; col += 10) {
    char num[24];
    int n = snprintf(num, sizeof num, "|%.4g", (double)r->makespan * col / cols / unit_ps);
    if (col + n <= cols) memcpy(row + col, num, (size_t)n);
  }
  row[cols] = 0;
  fprintf(f, "%-8s %s\n", "time", row);
  for (int k = 0; k < s->n_ranks; k++) {
    memset(row, ' ', (size_t)cols);
    for (size_t i = 0; i < s->ranks[k].n_ops; i++) {
      size_t at = r->op_base[k] + i;
      int c0 = (int)floor((double)r->start[at] * cols / (double)r->makespan + 1e-9);
      int c1 = (int)floor((double)r->end[at] * cols / (double)r->makespan + 1e-9);
      if (c1 > cols) c1 = cols;
      if (c1 <= c0) continue;
      const sched_op *op = &s->ranks[k].ops[i];
      static const char fill[] = {'-', '=', '=', '~', '#'};
      memset(row + c0, fill[op->kind], (size_t)(c1 - c0));
      op_label(s, op, label, sizeof label);
      size_t n = strlen(label);
      if (n > (size_t)(c1 - c0)) n = (size_t)(c1 - c0);
      memcpy(row + c0, label, n);
    }
    row[cols] = 0;
    fprintf(f, "rank %-3d %s\n", k, row);
  }
  fprintf(f,
          "legend: F forward (-), B full backward (=), I backward for input (=), W backward for weights (~),\n"
          "        FnBm a forward and a backward overlapped (#); the number is the micro-batch; lower case =\n"
          "        the rank's second model chunk; blank = idle\n");
  free(row);
}
