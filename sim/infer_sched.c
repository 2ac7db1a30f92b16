/* sim/infer_sched.c — the layer-level schedule of one inference step (see infer_int.h): a DAG of
 * compute and communication tasks per micro-batch, played on the event core (sim/des.h) with one
 * compute stream per GPU and one communication stream for the unit.
 *
 * Rules: a compute task is ready on a GPU when its predecessors are done there (a communication
 * predecessor is done everywhere at once); a communication task — the unit's all-to-all — is
 * ready when its compute predecessors are done on every GPU. A free compute stream takes the ready
 * task of the lowest micro-batch, then the earliest in program order (so the first micro-batch
 * leads and the second fills the gaps it leaves while waiting on the network); the communication
 * stream runs ready all-to-alls one at a time in the order they became ready. While an all-to-all
 * runs, compute proceeds `stretch` times slower (communication kernels holding SMs leave fewer for
 * compute): a running task's remaining work is re-timed whenever the communication stream starts
 * or stops. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

static const char *const part_names[IS_NPART] = {"attention", "shared_expert", "experts", "dense_ffn", "head",
                                                 "dispatch", "combine"};

const char *isched_part_name(int part) { return part >= 0 && part < IS_NPART ? part_names[part] : "?"; }

isched *isched_new(int G, int M) {
  isched *s = util_xcalloc(1, sizeof *s);
  s->G = G, s->M = M, s->stretch = 1;
  return s;
}

void isched_free(isched *s) {
  if (!s) return;
  free(s->task), free(s->dur), free(s->busy), free(s->part), free(s->spans);
  free(s);
}

int isched_add(isched *s, is_kind kind, is_part part, int layer, int pred0, int pred1) {
  assert(pred0 < s->n && pred1 < s->n);
  if (s->n == s->cap) {
    int old = s->cap;
    s->cap = s->cap ? 2 * s->cap : 256;
    s->task = util_xrealloc(s->task, (size_t)s->cap * sizeof *s->task);
    sim_ps *d = util_xcalloc((size_t)s->M * s->cap * s->G, sizeof *d);
    for (int m = 0; m < s->M && old; m++)
      memcpy(&d[(size_t)m * s->cap * s->G], &s->dur[(size_t)m * old * s->G], (size_t)old * s->G * sizeof *d);
    free(s->dur);
    s->dur = d;
  }
  /* dur is laid out [M][cap][G]; isched_run packs it to [M][n][G] and sets cap = n. */
  s->task[s->n] = (is_task){.kind = (uint8_t)kind, .part = (uint8_t)part, .layer = (int16_t)layer, .pred = {pred0, pred1}};
  return s->n++;
}

/* ---- running ---- */

typedef struct run_gpu {
  struct run *r;   /* owner */
  int g;           /* GPU */
  int busy;        /* running a task */
  int cur_mb, cur; /* the running task */
  sim_ps started;
  double rem_ps;   /* its remaining work at full speed, ps */
  sim_ps t_upd;    /* when rem_ps was last brought up to date */
  des_handle ev;   /* its completion event */
  int *rl;         /* ready tasks, as mb * n + task */
  int nrl;         /* how many */
} run_gpu;

typedef struct run {
  isched *s;
  des_sim *des;
  run_gpu *gpu;       /* [G] */
  int *left;          /* [M][n][G] compute: predecessors not yet done on that GPU */
  int *cleft;         /* [M][n] communication: compute predecessor completions still to come */
  int *sfirst, *slist;/* successors of task i: slist[sfirst[i] .. sfirst[i+1]) */
  /* communication stream */
  int *cq;            /* FIFO of ready all-to-alls (mb * n + task) */
  int cq_head, cq_tail;/* the FIFO's ends */
  int comm_busy;      /* an all-to-all runs */
  int comm_cur;       /* which: mb * n + task */
  sim_ps comm_started;/* since when */
  struct run_gpu comm_ctx; /* event context of the communication stream (only .r used) */
} run;

#define IDX(r, mb, i) ((size_t)(mb) * (r)->s->n + (size_t)(i))

static void span(isched *s, sim_ps a, sim_ps b, int mb, int task, int gpu) {
  if (s->n_spans == s->cap_spans) {
    s->cap_spans = s->cap_spans ? 2 * s->cap_spans : 1024;
    s->spans = util_xrealloc(s->spans, s->cap_spans * sizeof *s->spans);
  }
  s->spans[s->n_spans++] = (struct is_span){a, b, mb, task, gpu};
}

static void gpu_try(run *r, int g);
static void on_gpu_done(des_sim *d, void *ctx);

/* Slow-down of compute right now. */
static double factor(const run *r) { return r->comm_busy ? r->s->stretch : 1.0; }

/* Re-times every running compute task after the communication stream changed state; `old` is the
 * factor that applied until now. */
static void retime(run *r, double old) {
  if (r->s->stretch == 1.0 || old == factor(r)) return;
  sim_ps now = des_now(r->des);
  for (int g = 0; g < r->s->G; g++) {
    run_gpu *rg = &r->gpu[g];
    if (!rg->busy) continue;
    rg->rem_ps -= (double)(now - rg->t_upd) / old;
    if (rg->rem_ps < 0) rg->rem_ps = 0;
    rg->t_upd = now;
    des_cancel(r->des, rg->ev);
    rg->ev = des_after(r->des, (sim_ps)(rg->rem_ps * factor(r) + 0.5), on_gpu_done, rg);
  }
}

static void make_ready(run *r, int mb, int i, int g) {
  run_gpu *rg = &r->gpu[g];
  rg->rl[rg->nrl++] = (int)IDX(r, mb, i);
}
static void comm_try(run *r);

static void task_done_on(run *r, int mb, int i, int g);

static void on_gpu_done(des_sim *d, void *ctx) {
  run_gpu *rg = ctx;
  run *r = rg->r;
  isched *s = r->s;
  sim_ps now = des_now(d);
  s->busy[rg->g] += now - rg->started;
  s->part[(size_t)rg->g * IS_NPART + s->task[rg->cur].part] += now - rg->started;
  if (now > s->makespan) s->makespan = now;
  span(s, rg->started, now, rg->cur_mb, rg->cur, rg->g);
  rg->busy = 0;
  task_done_on(r, rg->cur_mb, rg->cur, rg->g);
  gpu_try(r, rg->g);
}

static void on_comm_done(des_sim *d, void *ctx) {
  run *r = ((run_gpu *)ctx)->r;
  isched *s = r->s;
  sim_ps now = des_now(d);
  int mb = r->comm_cur / s->n, i = r->comm_cur % s->n;
  s->comm_busy += now - r->comm_started;
  s->part[s->task[i].part] += now - r->comm_started;
  if (now > s->makespan) s->makespan = now;
  span(s, r->comm_started, now, mb, i, -1);
  r->comm_busy = 0;
  retime(r, s->stretch);
  /* Done everywhere: its successors. */
  for (int k = r->sfirst[i]; k < r->sfirst[i + 1]; k++) {
    int j = r->slist[k];
    if (s->task[j].kind == IS_COMPUTE) {
      for (int g = 0; g < s->G; g++)
        if (--r->left[IDX(r, mb, j) * s->G + g] == 0) make_ready(r, mb, j, g);
    } else if (--r->cleft[IDX(r, mb, j)] == 0) {
      r->cq[r->cq_tail++] = (int)IDX(r, mb, j);
    }
  }
  for (int g = 0; g < s->G; g++) gpu_try(r, g);
  comm_try(r);
}

static void task_done_on(run *r, int mb, int i, int g) {
  isched *s = r->s;
  for (int k = r->sfirst[i]; k < r->sfirst[i + 1]; k++) {
    int j = r->slist[k];
    if (s->task[j].kind == IS_COMPUTE) {
      if (--r->left[IDX(r, mb, j) * s->G + g] == 0) make_ready(r, mb, j, g);
    } else if (--r->cleft[IDX(r, mb, j)] == 0) {
      r->cq[r->cq_tail++] = (int)IDX(r, mb, j);
      comm_try(r);
    }
  }
}

static void gpu_try(run *r, int g) {
  isched *s = r->s;
  run_gpu *rg = &r->gpu[g];
  if (rg->busy || rg->nrl == 0) return;
  /* (mb, program order) is the order of mb * n + task. */
  int best = 0;
  for (int k = 1; k < rg->nrl; k++)
    if (rg->rl[k] < rg->rl[best]) best = k;
  int x = rg->rl[best];
  rg->rl[best] = rg->rl[--rg->nrl];
  rg->busy = 1, rg->cur_mb = x / s->n, rg->cur = x % s->n;
  rg->started = rg->t_upd = des_now(r->des);
  rg->rem_ps = (double)s->dur[(size_t)x * s->G + g];
  rg->ev = des_after(r->des, (sim_ps)(rg->rem_ps * factor(r) + 0.5), on_gpu_done, rg);
}

static void comm_try(run *r) {
  if (r->comm_busy || r->cq_head == r->cq_tail) return;
  isched *s = r->s;
  int x = r->cq[r->cq_head++];
  r->comm_busy = 1, r->comm_cur = x;
  r->comm_started = des_now(r->des);
  des_after(r->des, s->dur[(size_t)x * s->G], on_comm_done, &r->comm_ctx);
  retime(r, 1.0);
}

int isched_run(isched *s) {
  int G = s->G, M = s->M, n = s->n;
  /* Pack durations from [M][cap][G] to [M][n][G]. */
  if (s->cap != n) {
    for (int m = 1; m < M; m++)
      memmove(&s->dur[(size_t)m * n * G], &s->dur[(size_t)m * s->cap * G], (size_t)n * G * sizeof *s->dur);
    s->cap = n;
  }
  free(s->busy), free(s->part);
  s->busy = util_xcalloc((size_t)G, sizeof *s->busy);
  s->part = util_xcalloc((size_t)G * IS_NPART, sizeof *s->part);
  s->makespan = 0, s->comm_busy = 0, s->n_spans = 0;
  run r = {.s = s, .des = des_new()};
  r.gpu = util_xcalloc((size_t)G, sizeof *r.gpu);
  int *rl = util_xmalloc((size_t)G * M * n * sizeof *rl);
  for (int g = 0; g < G; g++) r.gpu[g] = (run_gpu){.r = &r, .g = g, .rl = rl + (size_t)g * M * n};
  r.comm_ctx.r = &r;
  r.left = util_xcalloc((size_t)M * n * G, sizeof *r.left);
  r.cleft = util_xcalloc((size_t)M * n, sizeof *r.cleft);
  r.cq = util_xmalloc((size_t)M * n * sizeof *r.cq);
  r.sfirst = util_xcalloc((size_t)n + 1, sizeof *r.sfirst);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 2; k++)
      if (s->task[i].pred[k] >= 0) r.sfirst[s->task[i].pred[k] + 1]++;
  for (int i = 0; i < n; i++) r.sfirst[i + 1] += r.sfirst[i];
  r.slist = util_xmalloc((size_t)(r.sfirst[n] + 1) * sizeof *r.slist);
  int *fill = util_xcalloc((size_t)n, sizeof *fill);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 2; k++) {
      int p = s->task[i].pred[k];
      if (p >= 0) r.slist[r.sfirst[p] + fill[p]++] = i;
    }
  free(fill);
  for (int mb = 0; mb < M; mb++)
    for (int i = 0; i < n; i++) {
      const is_task *t = &s->task[i];
      int np = 0, ncomp = 0;
      for (int k = 0; k < 2; k++)
        if (t->pred[k] >= 0) np++, ncomp += s->task[t->pred[k]].kind == IS_COMPUTE;
      if (t->kind == IS_COMPUTE) {
        for (int g = 0; g < G; g++) {
          r.left[IDX(&r, mb, i) * G + g] = np;
          if (np == 0) make_ready(&r, mb, i, g);
        }
      } else {
        /* compute preds complete once per GPU; communication preds once */
        r.cleft[IDX(&r, mb, i)] = ncomp * G + (np - ncomp);
        if (np == 0) r.cq[r.cq_tail++] = (int)IDX(&r, mb, i);
      }
    }
  for (int g = 0; g < G; g++) gpu_try(&r, g);
  comm_try(&r);
  des_run(r.des);
  /* Every task ran (the DAG is acyclic by construction: preds precede). */
  s->busiest = 0;
  for (int g = 1; g < G; g++)
    if (s->busy[g] > s->busy[s->busiest]) s->busiest = g;
  /* Keep the busiest GPU's spans and the communication stream's. */
  size_t k = 0;
  for (size_t i = 0; i < s->n_spans; i++)
    if (s->spans[i].gpu < 0 || s->spans[i].gpu == s->busiest) s->spans[k++] = s->spans[i];
  s->n_spans = k;
  des_free(r.des);
  free(rl), free(r.gpu), free(r.left), free(r.cleft), free(r.cq), free(r.sfirst), free(r.slist);
  return 0;
}

int isched_write_trace(const isched *s, const char *path) {
  util_buf b = {0};
  util_buf_printf(&b, "{\"traceEvents\":[\n");
  util_buf_printf(&b, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":0,\"args\":{\"name\":\"GPU %d (busiest)\"}},\n",
                  s->busiest);
  util_buf_printf(&b, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,\"tid\":0,\"args\":{\"name\":\"compute\"}},\n");
  util_buf_printf(&b, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,\"tid\":1,\"args\":{\"name\":\"all-to-all\"}}");
  for (size_t i = 0; i < s->n_spans; i++) {
    const struct is_span *sp = &s->spans[i];
    const is_task *t = &s->task[sp->task];
    util_buf_printf(&b, ",\n{\"name\":\"%s L%d mb%d\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":0,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f}",
                    isched_part_name(t->part), t->layer, sp->mb, isched_part_name(t->part), sp->gpu < 0 ? 1 : 0,
                    ps_to_us(sp->start), ps_to_us(sp->end - sp->start));
  }
  util_buf_printf(&b, "\n]}\n");
  int rc = util_write_file_atomic(path, b.data, b.len);
  util_buf_free(&b);
  return rc;
}
