/* sim/train_trace.h — the Chrome trace JSON of a simulated training step (opens in Perfetto or
 * chrome://tracing): one process per pipeline rank (its DP replicas are identical), threads for the
 * compute stream, the communication stream (EP all-to-alls and TP all-reduces on the comm SMs),
 * pipeline sends, and the data-parallel stream (gradient sync, optimizer, weight all-gather). Times
 * are microseconds. Internal to the training simulator. */
#ifndef MOESIM_TRAIN_TRACE_H
#define MOESIM_TRAIN_TRACE_H

#include "des.h"
#include "schedule.h"

struct tr_sim;

/* Start and end of every op of a replay. */
typedef struct tr_trace_ops {
  size_t *base;  /* [ranks + 1]: rank r's ops are [base[r], base[r+1]) */
  sim_ps *start; /* per op */
  sim_ps *end;   /* per op */
} tr_trace_ops;

void tr_trace_ops_init(tr_trace_ops *o, const sched *s);
void tr_trace_ops_free(tr_trace_ops *o);

/* One rank's data-parallel tail. */
typedef struct tr_trace_tail {
  sim_ps sync_start, sync_end; /* gradient syncs (SIM_PS_MAX start: none) */
  sim_ps opt_start, opt_end;   /* optimizer */
  sim_ps gather_end;           /* weight all-gather (from opt_end) */
} tr_trace_tail;

typedef struct tr_trace_in {
  struct tr_sim *s;           /* the simulation */
  const tr_trace_ops *ops;    /* op times */
  const tr_trace_tail *tail;  /* [ranks] */
} tr_trace_in;

/* Writes the trace to `path` atomically. Returns 0 or -1 (message on stderr). */
int tr_trace_write(const tr_trace_in *in, const char *path);

#endif
