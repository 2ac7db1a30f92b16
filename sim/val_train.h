/* sim/val_train.h — the "train" validation suite (val_train.c) for `moesim validate`: the
 * DeepSeek-V3 pre-training step (experiments/v3-pretrain.yaml) against the figures the V3 report
 * publishes for it. */
#ifndef MOESIM_VAL_TRAIN_H
#define MOESIM_VAL_TRAIN_H

#include "validate.h"

/* Runs experiments/v3-pretrain.yaml and adds its checks. Returns 0, or -1 when the experiment
 * cannot be found or run. */
int val_train(val_report *r);

#endif
