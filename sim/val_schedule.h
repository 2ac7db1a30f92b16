/* sim/val_schedule.h — the "schedule" validation suite (val_schedule.c) for `moesim validate`. */
#ifndef MOESIM_VAL_SCHEDULE_H
#define MOESIM_VAL_SCHEDULE_H

#include "validate.h"

/* Adds the checks: replayed bubbles against the published formulas for PP 4, 8, 16 and 1F1B,
 * ZB1P, DualPipe, DualPipeV under the formulas' assumptions (exact); DualPipe's table of
 * activation (PP+1) and parameter (2x) memory; the F&B overlap (communication equal to compute is
 * hidden; twice the compute exposes the excess). Returns 0, or -1 if a schedule failed to build. */
int val_schedule(val_report *r);

#endif
