/* sim/schedule.c — schedule generation (1F1B, interleaved 1F1B, ZB1P here; DualPipe and DualPipeV in
 * schedule_dualpipe.c), the dependency rule, memory counts and the published bubble formulas.
 *
 * Sources of the op orders:
 *  - 1F1B and interleaved 1F1B: Megatron-LM's forward_backward_pipelining_{without_,with_}
 *    interleaving — warm-up forwards, steady one-forward-one-backward, cool-down backwards; the
 *    interleaved one walks micro-batches in groups of PP through the rank's model chunks.
 *  - ZB1P: ZB-H1 of "Zero Bubble Pipeline Parallelism" (Qi et al., ICLR 2024) as its authors
 *    implement it with exact semantics: rank r runs PP-r-1 warm-up forwards, then r steps of F and
 *    backward-for-input with the weight gradient deferred, then F, BI, W steps (W popping the
 *    oldest deferred weight gradient), then BI, W, then the r deferred W. The first rank runs full
 *    backwards. The deferred W fill the cool-down, which cuts 1F1B's bubble by 2W per stage at
 *    1F1B's activation memory. */
#include "schedule.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "schedule_gen.h"
#include "util.h"

static const char *const kind_names[SCHED_KIND_COUNT] = {"1f1b", "interleaved", "zb1p", "dualpipe", "dualpipev"};

const char *sched_kind_name(sched_kind k) {
  assert(k >= 0 && k < SCHED_KIND_COUNT);
  return kind_names[k];
}

int sched_kind_parse(const char *name, sched_kind *out) {
  for (int k = 0; k < SCHED_KIND_COUNT; k++)
    if (strcmp(name, kind_names[k]) == 0) {
      *out = (sched_kind)k;
      return 0;
    }
  return -1;
}

/* ---- generator helpers ---- */

#define GROW(arr, n, cap)                                                  \
  do {                                                                     \
    if ((n) == (cap)) {                                                    \
      (cap) = (cap) ? (cap) * 2 : 16;                                      \
      (arr) = util_xrealloc((arr), (cap) * sizeof *(arr));                 \
    }                                                                      \
  } while (0)

void sched_gen_op(sched *s, int r, sched_op_kind kind, sched_pass f, sched_pass b) {
  sched_rank *rk = &s->ranks[r];
  GROW(rk->ops, rk->n_ops, rk->cap_ops);
  sched_op *op = &rk->ops[rk->n_ops++];
  op->kind = kind;
  op->f = f;
  op->b = b;
  op->recv_at = (uint32_t)rk->recv_attached;
  op->n_recv = (uint32_t)(rk->n_recv - rk->recv_attached);
  rk->recv_attached = rk->n_recv;
  op->send_at = (uint32_t)rk->n_send;
  op->n_send = 0;
}

static void push_recv(sched *s, int r, sched_pass src, int grad, int peer) {
  sched_rank *rk = &s->ranks[r];
  GROW(rk->recv, rk->n_recv, rk->cap_recv);
  rk->recv[rk->n_recv++] = (sched_msg){.src = src, .grad = (int8_t)grad, .peer = peer};
}

static void push_send(sched *s, int r, sched_pass src, int grad, int peer) {
  sched_rank *rk = &s->ranks[r];
  assert(rk->n_ops > 0 && "a send follows the op that produced it");
  GROW(rk->send, rk->n_send, rk->cap_send);
  rk->send[rk->n_send++] = (sched_msg){.src = src, .grad = (int8_t)grad, .peer = peer};
  rk->ops[rk->n_ops - 1].n_send++;
}

static int stage_rank(const sched *s, int dir, int stage) { return s->stage_rank[dir * s->n_stages + stage]; }

void sched_gen_recv_act(sched *s, int r, sched_pass p) {
  if (p.stage == 0) return;
  int from = stage_rank(s, p.dir, p.stage - 1);
  if (from != r) push_recv(s, r, sched_pass_make(p.dir, p.mb, p.stage - 1), 0, from);
}

void sched_gen_recv_grad(sched *s, int r, sched_pass p) {
  if (p.stage == s->n_stages - 1) return;
  int from = stage_rank(s, p.dir, p.stage + 1);
  if (from != r) push_recv(s, r, sched_pass_make(p.dir, p.mb, p.stage + 1), 1, from);
}

void sched_gen_send_act(sched *s, int r, sched_pass p) {
  if (p.stage == s->n_stages - 1) return;
  int to = stage_rank(s, p.dir, p.stage + 1);
  if (to != r) push_send(s, r, p, 0, to);
}

void sched_gen_send_grad(sched *s, int r, sched_pass p) {
  if (p.stage == 0) return;
  int to = stage_rank(s, p.dir, p.stage - 1);
  if (to != r) push_send(s, r, p, 1, to);
}

void sched_gen_forward(sched *s, int r, sched_pass p) {
  sched_gen_recv_act(s, r, p);
  sched_gen_op(s, r, SCHED_F, p, sched_pass_none());
  sched_gen_send_act(s, r, p);
}

void sched_gen_backward(sched *s, int r, sched_op_kind kind, sched_pass p) {
  assert(kind == SCHED_B || kind == SCHED_BI);
  sched_gen_recv_grad(s, r, p);
  sched_gen_op(s, r, kind, sched_pass_none(), p);
  sched_gen_send_grad(s, r, p);
}

/* ---- 1F1B, interleaved 1F1B, ZB1P ---- */

static void gen_1f1b(sched *s) {
  int p = s->n_ranks, m = s->n_mb;
  for (int r = 0; r < p; r++) {
    int warm = p - r - 1 < m ? p - r - 1 : m;
    for (int i = 0; i < warm; i++) sched_gen_forward(s, r, sched_pass_make(0, i, r));
    for (int i = 0; i < m - warm; i++) {
      sched_gen_forward(s, r, sched_pass_make(0, warm + i, r));
      sched_gen_backward(s, r, SCHED_B, sched_pass_make(0, i, r));
    }
    for (int i = m - warm; i < m; i++) sched_gen_backward(s, r, SCHED_B, sched_pass_make(0, i, r));
  }
}

/* Megatron's k-th forward (or backward) op of a rank with v chunks: micro-batches go in groups
 * of PP through chunk 0, then chunk 1, ...; backwards walk the chunks in reverse. */
static sched_pass interleaved_pass(const sched *s, int r, int k, int backward) {
  int p = s->n_ranks, v = s->n_stages / s->n_ranks;
  int chunk = (k % (p * v)) / p;
  if (backward) chunk = v - 1 - chunk;
  int mb = (k / (p * v)) * p + k % p;
  return sched_pass_make(0, mb, chunk * p + r);
}

static void gen_interleaved(sched *s) {
  int p = s->n_ranks, v = s->n_stages / s->n_ranks, total = s->n_mb * v;
  for (int r = 0; r < p; r++) {
    int warm = s->n_mb == p ? total : (p - r - 1) * 2 + (v - 1) * p;
    if (warm > total) warm = total;
    for (int k = 0; k < warm; k++) sched_gen_forward(s, r, interleaved_pass(s, r, k, 0));
    for (int k = 0; k < total - warm; k++) {
      sched_gen_forward(s, r, interleaved_pass(s, r, k + warm, 0));
      sched_gen_backward(s, r, SCHED_B, interleaved_pass(s, r, k, 1));
    }
    for (int k = total - warm; k < total; k++) sched_gen_backward(s, r, SCHED_B, interleaved_pass(s, r, k, 1));
  }
}

/* The W for the oldest deferred BI (the reference's weight-gradient store is a FIFO). */
static void gen_w_pop(sched *s, int r, sched_pass *fifo, int *head, int tail) {
  assert(*head < tail);
  sched_gen_op(s, r, SCHED_W, sched_pass_none(), fifo[(*head)++]);
}

static void gen_zb1p(sched *s) {
  int p = s->n_ranks, m = s->n_mb;
  sched_pass *fifo = util_xmalloc((size_t)m * sizeof *fifo);
  for (int r = 0; r < p; r++) {
    int f = 0, b = 0, head = 0, tail = 0;
    for (int i = 0; i < p - r - 1 && f < m; i++) sched_gen_forward(s, r, sched_pass_make(0, f++, r));
    for (int i = 0; i < r && f < m; i++) { /* W deferred */
      sched_gen_forward(s, r, sched_pass_make(0, f++, r));
      fifo[tail++] = sched_pass_make(0, b, r);
      sched_gen_backward(s, r, SCHED_BI, sched_pass_make(0, b++, r));
    }
    while (f < m || b < m) {
      if (f < m) sched_gen_forward(s, r, sched_pass_make(0, f++, r));
      if (r == 0) {
        sched_gen_backward(s, r, SCHED_B, sched_pass_make(0, b++, r));
        continue;
      }
      fifo[tail++] = sched_pass_make(0, b, r);
      sched_gen_backward(s, r, SCHED_BI, sched_pass_make(0, b++, r));
      gen_w_pop(s, r, fifo, &head, tail);
    }
    while (head < tail) gen_w_pop(s, r, fifo, &head, tail);
  }
  free(fifo);
}

/* ---- building ---- */

static int spec_error(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int spec_error(char *err, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && len) vsnprintf(err, len, fmt, ap);
  va_end(ap);
  return -1;
}

#define SCHED_MAX_PP 4096
#define SCHED_MAX_CHUNKS 1000000
#define SCHED_MAX_VIRT 64

static int check_spec(const sched_spec *sp, char *err, size_t len) {
  if (sp->kind < 0 || sp->kind >= SCHED_KIND_COUNT) return spec_error(err, len, "unknown schedule kind");
  const char *k = kind_names[sp->kind];
  int min_pp = sp->kind == SCHED_DUALPIPEV ? 1 : 2; /* one device still holds both arms of a V */
  if (sp->pp < min_pp || sp->pp > SCHED_MAX_PP)
    return spec_error(err, len, "%s: pp must be in [%d, %d], got %d", k, min_pp, SCHED_MAX_PP, sp->pp);
  if (sp->chunks < 1 || sp->chunks > SCHED_MAX_CHUNKS)
    return spec_error(err, len, "%s: chunks (micro-batches) must be in [1, %d], got %d", k, SCHED_MAX_CHUNKS, sp->chunks);
  switch (sp->kind) {
  case SCHED_INTERLEAVED:
    if (sp->virt < 1 || sp->virt > SCHED_MAX_VIRT)
      return spec_error(err, len, "interleaved: virtual chunks per rank must be in [1, %d], got %d", SCHED_MAX_VIRT, sp->virt);
    if (sp->chunks % sp->pp != 0)
      return spec_error(err, len, "interleaved: chunks (%d) must be a multiple of pp (%d), as in Megatron-LM", sp->chunks, sp->pp);
    break;
  case SCHED_DUALPIPE:
    if (sp->pp % 2 != 0) return spec_error(err, len, "dualpipe: pp must be even, got %d", sp->pp);
    if (sp->chunks % 2 != 0 || sp->chunks < 2 * sp->pp)
      return spec_error(err, len, "dualpipe: chunks must be even and >= 2*pp (%d), got %d (as dualpipe.py asserts)", 2 * sp->pp, sp->chunks);
    break;
  case SCHED_DUALPIPEV:
    if (sp->chunks < 2 * sp->pp)
      return spec_error(err, len, "dualpipev: chunks must be >= 2*pp (%d), got %d (as dualpipev.py asserts)", 2 * sp->pp, sp->chunks);
    break;
  default:
    break;
  }
  return 0;
}

int sched_build(sched *s, const sched_spec *sp, char *err, size_t err_len) {
  memset(s, 0, sizeof *s);
  if (check_spec(sp, err, err_len) != 0) return -1;
  int p = sp->pp;
  s->kind = sp->kind;
  s->n_ranks = p;
  s->n_dirs = sp->kind == SCHED_DUALPIPE ? 2 : 1;
  s->n_stages = sp->kind == SCHED_INTERLEAVED ? p * sp->virt : sp->kind == SCHED_DUALPIPEV ? 2 * p : p;
  s->n_mb = sp->kind == SCHED_DUALPIPE ? sp->chunks / 2 : sp->chunks;
  s->stage_rank = util_xmalloc((size_t)(s->n_dirs * s->n_stages) * sizeof *s->stage_rank);
  for (int d = 0; d < s->n_dirs; d++)
    for (int st = 0; st < s->n_stages; st++) {
      int r = st % p;
      if (sp->kind == SCHED_DUALPIPE && d == 1) r = p - 1 - st;
      if (sp->kind == SCHED_DUALPIPEV && st >= p) r = 2 * p - 1 - st;
      s->stage_rank[d * s->n_stages + st] = r;
    }
  s->ranks = util_xcalloc((size_t)p, sizeof *s->ranks);
  switch (sp->kind) {
  case SCHED_1F1B: gen_1f1b(s); break;
  case SCHED_INTERLEAVED: gen_interleaved(s); break;
  case SCHED_ZB1P: gen_zb1p(s); break;
  case SCHED_DUALPIPE:
  case SCHED_DUALPIPEV: sched_gen_dualpipe(s); break;
  default: assert(0);
  }
  for (int r = 0; r < p; r++) assert(s->ranks[r].recv_attached == s->ranks[r].n_recv && "receive left uncommitted");
  return 0;
}

void sched_free(sched *s) {
  if (s->ranks)
    for (int r = 0; r < s->n_ranks; r++) {
      free(s->ranks[r].ops);
      free(s->ranks[r].recv);
      free(s->ranks[r].send);
    }
  free(s->ranks);
  free(s->stage_rank);
  memset(s, 0, sizeof *s);
}

/* ---- queries ---- */

int sched_rank_of(const sched *s, sched_pass p) {
  assert(p.mb >= 0 && p.dir >= 0 && p.dir < s->n_dirs && p.stage >= 0 && p.stage < s->n_stages);
  return stage_rank(s, p.dir, p.stage);
}

int sched_chunk_of(const sched *s, sched_pass p) {
  switch (s->kind) {
  case SCHED_INTERLEAVED: return p.stage / s->n_ranks;
  case SCHED_DUALPIPE: return p.dir;
  case SCHED_DUALPIPEV: return p.stage >= s->n_ranks;
  default: return 0;
  }
}

int sched_deps(const sched *s, const sched_op *op, sched_msg out[4]) {
  int n = 0;
  if (op->kind == SCHED_F || op->kind == SCHED_FB) {
    sched_pass p = op->f;
    if (p.stage > 0) out[n++] = (sched_msg){.src = sched_pass_make(p.dir, p.mb, p.stage - 1), .grad = 0, .peer = -1};
  }
  if (op->kind == SCHED_B || op->kind == SCHED_BI || op->kind == SCHED_FB) {
    sched_pass p = op->b;
    out[n++] = (sched_msg){.src = p, .grad = 0, .peer = -1}; /* its own forward (and, last stage, the loss) */
    if (p.stage < s->n_stages - 1)
      out[n++] = (sched_msg){.src = sched_pass_make(p.dir, p.mb, p.stage + 1), .grad = 1, .peer = -1};
  }
  if (op->kind == SCHED_W) out[n++] = (sched_msg){.src = op->b, .grad = 1, .peer = -1};
  return n;
}

int sched_param_stages(const sched *s, int rank) {
  int n = 0;
  for (int st = 0; st < s->n_stages; st++) {
    int held = 0;
    for (int d = 0; d < s->n_dirs; d++) held |= stage_rank(s, d, st) == rank;
    n += held;
  }
  return n;
}

int sched_peak_activations(const sched *s, int rank) {
  const sched_rank *rk = &s->ranks[rank];
  int live = 0, peak = 0;
  for (size_t i = 0; i < rk->n_ops; i++) {
    sched_op_kind k = rk->ops[i].kind;
    if (k == SCHED_F || k == SCHED_FB) live++;
    if (live > peak) peak = live;
    if (k == SCHED_B || k == SCHED_BI || k == SCHED_FB) live--;
  }
  return peak;
}

sim_ps sched_op_time(const sched_cost *c, sched_op_kind k) {
  switch (k) {
  case SCHED_F: return c->f;
  case SCHED_B: return c->b;
  case SCHED_BI: assert(c->w <= c->b); return c->b - c->w;
  case SCHED_W: return c->w;
  case SCHED_FB: return c->fb;
  }
  assert(0);
  return 0;
}

int sched_table_pp(const sched *s) { return s->kind == SCHED_DUALPIPEV ? 2 * s->n_ranks : s->n_ranks; }

const char *sched_bubble_formula_text(sched_kind k) {
  switch (k) {
  case SCHED_1F1B: return "(PP-1)(F+B)";
  case SCHED_INTERLEAVED: return "(PP-1)(F+B), per-chunk F and B";
  case SCHED_ZB1P: return "(PP-1)(F+B-2W)";
  case SCHED_DUALPIPE:
  case SCHED_DUALPIPEV: return "(PP/2-1)(F&B+B-3W)";
  default: return "?";
  }
}

double sched_bubble_formula(const sched *s, const sched_cost *c, int *exact) {
  double f = (double)c->f, b = (double)c->b, w = (double)c->w, fb = (double)c->fb;
  int pp = sched_table_pp(s);
  int ok = c->p2p == 0;
  double v;
  switch (s->kind) {
  case SCHED_1F1B:
  case SCHED_INTERLEAVED: v = (pp - 1) * (f + b); break;
  case SCHED_ZB1P:
    v = (pp - 1) * (f + b - 2 * w);
    ok = ok && c->w <= c->f && c->w <= c->b - c->w;
    break;
  case SCHED_DUALPIPE:
  case SCHED_DUALPIPEV:
    v = (pp / 2 - 1) * (fb + b - 3 * w);
    ok = ok && c->b - c->w == c->f && c->w <= c->f && c->fb >= c->b && c->fb <= c->f + c->b;
    break;
  default: assert(0); v = 0;
  }
  if (exact) *exact = ok;
  return v;
}
