/* sim/schedule_dualpipe.c — DualPipe and DualPipeV op orders, step for step as deepseek-ai/DualPipe's
 * dualpipe.py and dualpipev.py run them (DualPipe.step / DualPipeV.step).
 *
 * Each rank holds two model chunks, addressed by "phase" 0 and 1. In DualPipe, rank r holds
 * stage r of direction 0 and stage PP-1-r of direction 1; phase 0 is direction 0 on the first
 * half of the ranks and direction 1 on the second half (the reference flips the phase there). In
 * DualPipeV, rank r holds stages r (phase 0, going down the V) and 2*PP-1-r (phase 1, coming
 * back); the last rank hands phase 0's output to phase 1 locally.
 *
 * Every step follows the reference's eight phases (warm-up forwards, forward pairs, B-W-F with
 * zero-bubble, the main F&B loop, B then F&B, B-B with zero-bubble from the middle on, W-B, and
 * the deferred W), including its P2P bookkeeping: receives queue up and are committed (posted
 * and waited for) at the start of the next chunk, sends queue up and go out at that commit, i.e.
 * when the op before it ends. That is why, in step 2, a forward of phase 0 reaches the next rank
 * only after the following phase-1 forward, and why a W in step 3 waits for the next forward's
 * input. Weight gradients of zero-bubble backwards go through a FIFO, as WeightGradStore does. */
#include <assert.h>
#include <stdlib.h>

#include "schedule_gen.h"
#include "util.h"

typedef struct dp_rank {
  sched *s;         /* the schedule being built */
  int r;            /* this rank */
  int second_half;  /* DualPipe: rank >= PP/2 (phases flipped) */
  int dir[2];       /* per phase: direction */
  int stage[2];     /* per phase: stage along the direction */
  int f[2], b[2];   /* per phase: forwards / backwards computed so far */
  int rf[2], rb[2]; /* per phase: activations / gradients received so far */
  int sf[2], sb[2]; /* per phase: activations / gradients sent so far */
  sched_pass *wq;   /* deferred weight gradients (FIFO) */
  int wq_head, wq_tail;
} dp_rank;

static sched_pass dp_pass(const dp_rank *d, int ph, int mb) { return sched_pass_make(d->dir[ph], mb, d->stage[ph]); }

static void recv_forward(dp_rank *d, int ph) { sched_gen_recv_act(d->s, d->r, dp_pass(d, ph, d->rf[ph]++)); }
static void recv_backward(dp_rank *d, int ph) { sched_gen_recv_grad(d->s, d->r, dp_pass(d, ph, d->rb[ph]++)); }
static void send_forward(dp_rank *d, int ph) { sched_gen_send_act(d->s, d->r, dp_pass(d, ph, d->sf[ph]++)); }
static void send_backward(dp_rank *d, int ph) { sched_gen_send_grad(d->s, d->r, dp_pass(d, ph, d->sb[ph]++)); }

/* _forward_chunk(phase, recv, send) */
static void forward_chunk(dp_rank *d, int ph, int recv, int send) {
  if (recv) recv_forward(d, ph);
  sched_gen_op(d->s, d->r, SCHED_F, dp_pass(d, ph, d->f[ph]++), sched_pass_none());
  if (send) send_forward(d, ph);
}

/* _backward_chunk(phase, enable_zb, recv, send): a zero-bubble backward computes the input
 * gradient only and defers the weight gradient to the FIFO. */
static void backward_chunk(dp_rank *d, int ph, int zb, int recv, int send) {
  if (recv) recv_backward(d, ph);
  sched_pass p = dp_pass(d, ph, d->b[ph]++);
  sched_gen_op(d->s, d->r, zb ? SCHED_BI : SCHED_B, sched_pass_none(), p);
  if (zb) d->wq[d->wq_tail++] = p;
  if (send) send_backward(d, ph);
}

/* _forward_backward_chunk(phase0, phase1, recv0): forward of phase0 overlapped with a full
 * backward of phase1. */
static void forward_backward_chunk(dp_rank *d, int ph0, int ph1, int recv0) {
  if (recv0) recv_forward(d, ph0);
  recv_backward(d, ph1);
  sched_pass pf = dp_pass(d, ph0, d->f[ph0]++);
  sched_pass pb = dp_pass(d, ph1, d->b[ph1]++);
  sched_gen_op(d->s, d->r, SCHED_FB, pf, pb);
  send_forward(d, ph0);
  send_backward(d, ph1);
}

/* _weight_chunk(): the oldest deferred weight gradient. */
static void weight_chunk(dp_rank *d) {
  assert(d->wq_head < d->wq_tail && "pop from an empty weight-gradient queue");
  sched_gen_op(d->s, d->r, SCHED_W, sched_pass_none(), d->wq[d->wq_head++]);
}

/* One rank's step. `v` selects DualPipeV. */
static void gen_rank(sched *s, int r, int v) {
  int R = s->n_ranks;
  dp_rank d = {.s = s, .r = r};
  d.wq = util_xmalloc((size_t)(2 * s->n_mb + 2) * sizeof *d.wq);
  int hr, half, middle, n4;
  if (!v) {
    half = R / 2;
    hr = r < R - 1 - r ? r : R - 1 - r;
    d.second_half = r >= half;
    middle = r == half - 1 || r == half;
    n4 = s->n_mb - R + hr + 1; /* half_num_chunks - num_ranks + half_rank + 1 */
    for (int ph = 0; ph < 2; ph++) {
      d.dir[ph] = ph ^ d.second_half;
      d.stage[ph] = d.dir[ph] == 0 ? r : R - 1 - r;
    }
  } else {
    half = R; /* the V has 2R stages: the formulas below use R where DualPipe uses PP/2 */
    hr = r;
    middle = r == R - 1; /* the last rank, at the tip of the V */
    n4 = s->n_mb - 2 * R + r + 1; /* num_chunks - 2 * num_ranks + rank + 1 */
    for (int ph = 0; ph < 2; ph++) {
      d.dir[ph] = 0;
      d.stage[ph] = ph == 0 ? r : 2 * R - 1 - r;
    }
  }
  int n1 = (half - hr - 1) * 2, n2 = hr + 1, n3 = half - hr - 1;
  int n5 = half - hr - 1, n6 = hr + 1, n7 = half - hr - 1, n8 = hr + 1;

  /* Step 1: nF0 */
  for (int i = 0; i < n1; i++) forward_chunk(&d, 0, 1, 1);
  /* Step 2: nF0F1 */
  recv_forward(&d, 0);
  for (int i = 0; i < n2; i++) {
    int send_f1 = !middle || i < n2 - 1;
    if (!v) {
      forward_chunk(&d, 0, 0, middle);
      recv_forward(&d, 0);
      forward_chunk(&d, 1, 1, send_f1);
      if (!middle) send_forward(&d, 0);
    } else {
      forward_chunk(&d, 0, 0, 0);
      recv_forward(&d, 0);
      forward_chunk(&d, 1, 1, send_f1);
      send_forward(&d, 0);
    }
  }
  /* Step 3: nB1W1F1 (zero bubble) */
  for (int i = 0; i < n3; i++) {
    backward_chunk(&d, 1, 1, 1, 1);
    recv_forward(&d, 1);
    weight_chunk(&d);
    forward_chunk(&d, 1, 0, 1);
  }
  /* Step 4 (main): nF0B1F1B0 */
  for (int i = 0; i < n4; i++) {
    if (i == 0) {
      if (middle) { /* not overlapped, to shorten the bubble (as the reference notes) */
        forward_chunk(&d, 0, 0, 0);
        send_forward(&d, 1);
        backward_chunk(&d, 1, 0, 1, 0);
        send_forward(&d, 0);
        send_backward(&d, 1);
      } else {
        forward_backward_chunk(&d, 0, 1, 0);
      }
    } else {
      forward_backward_chunk(&d, 0, 1, 1);
    }
    forward_backward_chunk(&d, 1, 0, 1);
  }
  /* Step 5: nB1F1B0 */
  for (int i = 0; i < n5; i++) {
    backward_chunk(&d, 1, 0, 1, 1);
    forward_backward_chunk(&d, 1, 0, 1);
  }
  /* Step 6: nB1B0 (the second half of them with zero bubble) */
  int zb = 0;
  for (int i = 0; i < n6; i++) {
    if (i == n6 / 2 && hr % 2 == 1) zb = 1;
    backward_chunk(&d, 1, zb, 1, 1);
    if (i == n6 / 2 && hr % 2 == 0) zb = 1;
    backward_chunk(&d, 0, zb, 1, 1);
  }
  /* Step 7: nWB0 (zero bubble) */
  for (int i = 0; i < n7; i++) {
    weight_chunk(&d);
    backward_chunk(&d, 0, 1, 1, 1);
  }
  /* Step 8: nW */
  for (int i = 0; i < n8; i++) weight_chunk(&d);
  assert(d.wq_head == d.wq_tail && "weight-gradient queue not drained");
  for (int ph = 0; ph < 2; ph++) assert(d.f[ph] == s->n_mb && d.b[ph] == s->n_mb);
  free(d.wq);
}

void sched_gen_dualpipe(sched *s) {
  int v = s->kind == SCHED_DUALPIPEV;
  for (int r = 0; r < s->n_ranks; r++) gen_rank(s, r, v);
}
