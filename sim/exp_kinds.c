/* sim/exp_kinds.c — the experiment kinds `moesim run` knows. Each simulator adds its kind here. */
#include "exp.h"

const exp_kind *const exp_kinds[] = {
    NULL,
};
