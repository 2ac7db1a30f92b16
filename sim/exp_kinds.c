/* sim/exp_kinds.c — the experiment kinds `moesim run` knows. Each simulator adds its kind here. */
#include "exp.h"

extern const exp_kind exp_kind_moe_layer;

const exp_kind *const exp_kinds[] = {
    &exp_kind_moe_layer,
    NULL,
};
