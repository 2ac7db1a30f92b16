/* sim/a2a_predict.h — the simulator's prediction of a real `moesim a2a` run on this machine, from
 * isolated measurements only (kernels/comm/a2a.h, a2a_calib): a topology whose devices are the
 * ranks on this machine's cores and whose links carry the memory copies, the same routing, the
 * same implementation's sequence of copies and messages, and each rank's local phases as measured
 * alone. See a2a_predict.c for the model. */
#ifndef MOESIM_A2A_PREDICT_H
#define MOESIM_A2A_PREDICT_H

#include <stdio.h>

#include "comm/a2a.h"

/* Simulates the run of `res` (gathered at rank 0, measured with c->predict) and prints the model's
 * inputs, the simulated phases beside the measured ones and, last,
 * "measured X us, simulated Y us, error Z%" for the iteration (the layer with c->layer). Returns 0,
 * or -1 when the result lacks the calibration. */
int a2a_predict(const a2a_cfg *c, const a2a_result *res, FILE *out);

#endif
