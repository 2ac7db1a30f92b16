/* sim/train_trace.c — writes the Chrome trace of a simulated training step (train_trace.h): every
 * op of every pipeline rank, its components on the compute and communication streams (DualPipe's
 * F&B chains as train_fb.c places them, or the serial order of the others), the pipeline sends and
 * the data-parallel tail. */
#include "train_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_int.h"
#include "util.h"

enum { TID_COMPUTE, TID_COMM, TID_SEND, TID_DP };

void tr_trace_ops_init(tr_trace_ops *o, const sched *s) {
  o->base = util_xcalloc((size_t)s->n_ranks + 1, sizeof *o->base);
  for (int r = 0; r < s->n_ranks; r++) o->base[r + 1] = o->base[r] + s->ranks[r].n_ops;
  size_t n = o->base[s->n_ranks] ? o->base[s->n_ranks] : 1;
  o->start = util_xcalloc(n, sizeof *o->start);
  o->end = util_xcalloc(n, sizeof *o->end);
}

void tr_trace_ops_free(tr_trace_ops *o) {
  free(o->base);
  free(o->start);
  free(o->end);
  memset(o, 0, sizeof *o);
}

typedef struct tw {
  util_buf b;   /* the JSON */
  int first;    /* no comma before the next event */
} tw;

static void ev(tw *w, int pid, int tid, const char *name, sim_ps start, sim_ps dur, const char *args) {
  if (dur == 0) return;
  util_buf_printf(&w->b, "%s\n{\"name\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f%s%s%s}",
                  w->first ? "" : ",", name, pid, tid, ps_to_us(start), ps_to_us(dur), args ? ",\"args\":{" : "",
                  args ? args : "", args ? "}" : "");
  w->first = 0;
}

static void meta(tw *w, int pid, int tid, const char *what, const char *name) {
  util_buf_printf(&w->b, "%s\n{\"name\":\"%s\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}}",
                  w->first ? "" : ",", what, pid, tid, name);
  w->first = 0;
}

/* A component placed at *t on a stream; advances *t. */
static void seq(tw *w, int pid, int tid, const char *name, sim_ps *t, sim_ps dur) {
  ev(w, pid, tid, name, *t, dur, NULL);
  *t += dur;
}

/* Components of one unit's serial forward (F) or backward (B, BI, W) from *t; advances *t. */
static void unit_serial(tw *w, int pid, const tr_unit *u, int kind, sim_ps *t) {
  if (kind == SCHED_F) {
    seq(w, pid, TID_COMPUTE, "ATTN_F", t, u->attn_f);
    seq(w, pid, TID_COMM, "DISPATCH_F", t, u->disp_f);
    seq(w, pid, TID_COMPUTE, "MLP_F", t, u->mlp_f);
    seq(w, pid, TID_COMM, "COMBINE_F", t, u->comb_f);
    seq(w, pid, TID_COMM, "TP_F", t, u->tp_f);
    return;
  }
  if (kind != SCHED_W) {
    seq(w, pid, TID_COMM, "COMBINE_B", t, u->comb_b);
    seq(w, pid, TID_COMPUTE, "MLP_B", t, u->mlp_b);
  }
  if (kind != SCHED_BI) seq(w, pid, TID_COMPUTE, "MLP_W", t, u->mlp_w);
  if (kind != SCHED_W) {
    seq(w, pid, TID_COMM, "DISPATCH_B", t, u->disp_b);
    seq(w, pid, TID_COMPUTE, "ATTN_B", t, u->attn_b);
  }
  if (kind != SCHED_BI) seq(w, pid, TID_COMPUTE, "ATTN_W", t, u->attn_w);
  if (kind != SCHED_W) seq(w, pid, TID_COMM, "TP_B", t, u->tp_b);
}

/* Components of a serial forward (F) or backward (B, BI, W) of part p, from time t. */
static void serial_part(tw *w, tr_sim *s, int pid, int p, int kind, sim_ps t) {
  const tr_part *P = &s->parts[p];
  if (kind == SCHED_F)
    for (int i = P->first; i < P->first + P->n; i++) unit_serial(w, pid, &s->units[i], kind, &t);
  else
    for (int i = P->first + P->n - 1; i >= P->first; i--) unit_serial(w, pid, &s->units[i], kind, &t);
}

/* Components of an F&B op from time t, as tr_fb_chain places them. */
static void fb_part(tw *w, tr_sim *s, int pid, int pf, int pb, sim_ps t) {
  tr_pair_times *pt = util_xcalloc((size_t)(s->parts[pf].n + s->parts[pb].n), sizeof *pt);
  tr_fb fb;
  tr_fb_chain(s, pf, pb, &fb, pt);
  for (int i = 0; i < fb.n_pairs; i++)
    for (int c = 0; c < TR_NCOMP; c++) {
      int comm = c >= OVERLAP_COMBINE_B && c < OVERLAP_NCOMP;
      const char *name = c < OVERLAP_NCOMP ? overlap_comp_name((overlap_comp)c) : c == TR_TP_F ? "TP_F" : "TP_B";
      ev(w, pid, comm ? TID_COMM : TID_COMPUTE, name, t + pt[i].start[c], pt[i].end[c] - pt[i].start[c], NULL);
    }
  free(pt);
}

static const char *op_name(sched_op_kind k) {
  switch (k) {
  case SCHED_F: return "F";
  case SCHED_B: return "B";
  case SCHED_BI: return "BI";
  case SCHED_W: return "W";
  default: return "F&B";
  }
}

int tr_trace_write(const tr_trace_in *in, const char *path) {
  tr_sim *s = in->s;
  const sched *sc = &s->sched;
  tw w = {.first = 1};
  util_buf_printf(&w.b, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"model\":\"%s\",\"cluster\":\"%s\","
                        "\"schedule\":\"%s\",\"pp\":%d,\"dp\":%d,\"tp\":%d,\"ep\":%d,\"comm_sms\":%d},\n\"traceEvents\":[",
                  s->model.name, s->cfg->topo->name, sched_kind_name(sc->kind), s->plan.pp, s->plan.dp, s->plan.tp,
                  s->plan.ep, s->plan.comm_sms);
  char name[96], args[160];
  for (int r = 0; r < sc->n_ranks; r++) {
    snprintf(name, sizeof name, "pp rank %d (GPU %d; %d DP replicas alike)", r, tr_gpu(s, r, 0, 0), s->plan.dp);
    meta(&w, r, 0, "process_name", name);
    util_buf_printf(&w.b, ",\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"sort_index\":%d}}", r, r);
    meta(&w, r, TID_COMPUTE, "thread_name", "compute");
    snprintf(name, sizeof name, "communication (%d SMs)", s->plan.comm_sms);
    meta(&w, r, TID_COMM, "thread_name", name);
    meta(&w, r, TID_SEND, "thread_name", "pipeline sends");
    meta(&w, r, TID_DP, "thread_name", "data parallel + optimizer");
    const sched_rank *rk = &sc->ranks[r];
    for (size_t i = 0; i < rk->n_ops; i++) {
      const sched_op *op = &rk->ops[i];
      sim_ps st = in->ops->start[in->ops->base[r] + i], en = in->ops->end[in->ops->base[r] + i];
      int f = op->f.mb >= 0, b = op->b.mb >= 0;
      snprintf(name, sizeof name, "%s", op_name(op->kind));
      if (f) snprintf(name + strlen(name), sizeof name - strlen(name), " %c%d", op->f.dir ? 'r' : 'f', op->f.mb);
      if (b) snprintf(name + strlen(name), sizeof name - strlen(name), " %c%d", op->b.dir ? 'r' : 'f', op->b.mb);
      snprintf(args, sizeof args, "\"stage_f\":%d,\"stage_b\":%d,\"mb_f\":%d,\"mb_b\":%d", f ? op->f.stage : -1,
               b ? op->b.stage : -1, f ? op->f.mb : -1, b ? op->b.mb : -1);
      ev(&w, r, TID_COMPUTE, name, st, en - st, args);
      if (op->kind == SCHED_FB) {
        fb_part(&w, s, r, op->f.stage, op->b.stage, st);
      } else {
        serial_part(&w, s, r, f ? op->f.stage : op->b.stage, op->kind, st);
      }
      for (uint32_t k = 0; k < op->n_send; k++) {
        const sched_msg *m = &rk->send[op->send_at + k];
        snprintf(name, sizeof name, "%s %c%d to rank %d", m->grad ? "grad" : "act", m->src.dir ? 'r' : 'f', m->src.mb,
                 m->peer);
        ev(&w, r, TID_SEND, name, en, s->p2p[r * sc->n_ranks + m->peer], NULL);
      }
    }
    const tr_trace_tail *t = &in->tail[r];
    if (t->sync_start != SIM_PS_MAX) ev(&w, r, TID_DP, "gradient sync", t->sync_start, t->sync_end - t->sync_start, NULL);
    ev(&w, r, TID_DP, "optimizer", t->opt_start, t->opt_end - t->opt_start, NULL);
    ev(&w, r, TID_DP, "weight all-gather", t->opt_end, t->gather_end - t->opt_end, NULL);
  }
  util_buf_printf(&w.b, "\n]}\n");
  int rc = util_write_file_atomic(path, w.b.data, w.b.len);
  util_buf_free(&w.b);
  return rc;
}
