/* sim/val_deepep.h — the "deepep" validation suite (val_deepep.c) for `moesim validate`: DeepEP's
 * normal-kernel dispatch/combine bandwidths on H800 against the network model. */
#ifndef MOESIM_VAL_DEEPEP_H
#define MOESIM_VAL_DEEPEP_H

#include "validate.h"

/* Adds one check per published row (EP8 intranode, EP16/32/64 internode; dispatch and combine),
 * tolerance 10%. Returns 0, or -1 when the topology files cannot be found or built. */
int val_deepep(val_report *r);

#endif
