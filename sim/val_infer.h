/* sim/val_infer.h — the "infer" validation suite (val_infer.c) for `moesim validate`: DeepSeek's
 * published production serving figures beside the simulated V3 deployment, and DeepEP's
 * low-latency kernel table beside the low-latency all-to-all model. */
#ifndef MOESIM_VAL_INFER_H
#define MOESIM_VAL_INFER_H

#include "validate.h"

/* Adds the checks. Returns 0, or -1 when an experiment or topology file cannot be found or run. */
int val_infer(val_report *r);

#endif
