/* sim/exp_kinds.c — the experiment kinds `moesim run` knows. Each simulator adds its kind here. */
#include "exp.h"

extern const exp_kind exp_kind_moe_layer;
extern const exp_kind exp_kind_collective;
extern const exp_kind exp_kind_train;
extern const exp_kind exp_kind_prefill, exp_kind_decode, exp_kind_ep_low_latency;
extern const exp_kind exp_kind_whatif;
extern const exp_kind exp_kind_purchase;

const exp_kind *const exp_kinds[] = {
    &exp_kind_moe_layer,
    &exp_kind_collective,
    &exp_kind_train,
    &exp_kind_prefill,
    &exp_kind_decode,
    &exp_kind_ep_low_latency,
    &exp_kind_whatif,
    &exp_kind_purchase,
    NULL,
};
