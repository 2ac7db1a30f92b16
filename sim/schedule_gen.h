/* sim/schedule_gen.h — what the schedule generators share (schedule.c, schedule_dualpipe.c); not a public
 * interface. A generator appends, per rank, receives (they join the next op's commit), ops, and
 * sends (they are posted when the last appended op ends), mirroring how the reference
 * implementations queue P2P operations and commit them in batches. */
#ifndef MOESIM_SCHEDULE_GEN_H
#define MOESIM_SCHEDULE_GEN_H

#include "schedule.h"

/* A pass value. */
static inline sched_pass sched_pass_make(int dir, int mb, int stage) {
  sched_pass p = {.mb = mb, .stage = (int16_t)stage, .dir = (int8_t)dir};
  return p;
}
static inline sched_pass sched_pass_none(void) { return sched_pass_make(0, -1, 0); }

/* Appends an op to rank r; it takes the receives appended since the previous op. */
void sched_gen_op(sched *s, int r, sched_op_kind kind, sched_pass f, sched_pass b);

/* Queues the receive of the activation feeding forward pass p (from stage p.stage-1), when that
 * stage runs on another rank; nothing otherwise. */
void sched_gen_recv_act(sched *s, int r, sched_pass p);
/* Queues the receive of the gradient feeding backward pass p (from stage p.stage+1), when that
 * stage runs on another rank. */
void sched_gen_recv_grad(sched *s, int r, sched_pass p);
/* Posts, at the end of the last op appended to rank r, the activation of forward pass p to the
 * next stage's rank, when that is another rank. */
void sched_gen_send_act(sched *s, int r, sched_pass p);
/* Posts the input gradient of backward pass p to the previous stage's rank, when that is another
 * rank. */
void sched_gen_send_grad(sched *s, int r, sched_pass p);

/* Forward op of pass p with its receive before and its send after (the plain pattern). */
void sched_gen_forward(sched *s, int r, sched_pass p);
/* Backward op (B or BI) of pass p with its receive before and its send after. */
void sched_gen_backward(sched *s, int r, sched_op_kind kind, sched_pass p);

/* DualPipe and DualPipeV (schedule_dualpipe.c); spec already validated, s's shape set. */
void sched_gen_dualpipe(sched *s);

#endif
