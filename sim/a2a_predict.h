/* sim/a2a_predict.h — the simulator's prediction of a real `moesim a2a` run on this machine, from
 * isolated measurements only (kernels/comm/a2a.h, a2a_calib): a topology whose devices are the
 * ranks on this machine's cores and whose links carry the memory copies, the same routing, the
 * same implementation's sequence of copies and messages, and each rank's local phases as measured
 * alone. See a2a_predict.c for the model. */
#ifndef MOESIM_A2A_PREDICT_H
#define MOESIM_A2A_PREDICT_H

#include <stdio.h>

#include "comm/a2a.h"

/* What the simulator found. */
typedef struct a2a_sim {
  double phase_us[A2A_PH_COUNT]; /* per phase (a2a_phase), the slowest rank's simulated time; TOTAL:
                                    the layer's end (layer) or dispatch + experts + combine */
  double pool_cpus;              /* CPUs the ranks may use */
  double background;             /* other processes' busy tasks on them, as the shares imply */
  int spin;                      /* waiting ranks busy-poll (MPI does not yield) */
  int copies;                    /* copies of an MPI message: 1 single-copy, 2 in and out */
  double link_gbyte_s[2];        /* MPI message cost, dispatch and combine sizes (receiver CPU) */
} a2a_sim;

/* Replays the run of `res` (its routing and calibration; the timed iterations are not used) on the
 * model. Returns 0, or -1 (message on stderr) without calibration or when the model deadlocks. */
int a2a_simulate(const a2a_cfg *c, const a2a_result *res, a2a_sim *out);

/* Simulates the run of `res` (gathered at rank 0, measured with c->predict) and prints the model's
 * inputs, the simulated phases beside the measured ones and, last,
 * "measured X us, simulated Y us, error Z%" for the iteration (the layer with c->layer). Returns 0,
 * or -1 when the result lacks the calibration. */
int a2a_predict(const a2a_cfg *c, const a2a_result *res, FILE *out);

#endif
