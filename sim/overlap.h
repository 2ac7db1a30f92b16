/* sim/overlap.h — one DualPipe F&B pair, split the way the DeepSeek-V3 report (section 3.2.1,
 * Figure 4) splits it: each chunk is attention, all-to-all dispatch, MLP and all-to-all combine
 * (backward: attention and MLP each split into input- and weight-gradient parts, as in
 * ZeroBubble), plus the pipeline sends. Two streams run side by side: a compute stream on the
 * SMs left over, and a communication stream whose kernels hold `sms_comm` SMs. The components
 * interleave so that the communication of one micro-batch overlaps the computation of the other:
 *
 *   compute: ATTN_F(x)   | MLP_B(y) MLP_W(y) | MLP_F(x)      | ATTN_B(y) ATTN_W(y)
 *   comm:    COMBINE_B(y)| DISPATCH_F(x)     | DISPATCH_B(y) | COMBINE_F(x) PP_F(x) PP_B(y)
 *
 * (x: the forward micro-batch, y: the backward one; COMBINE_B is the backward of combine — the
 * gradient all-to-all into the experts — and DISPATCH_B brings the gradients back.) Each
 * component starts when its stream is free and its inputs exist; the pair ends with the last
 * component. Compute times are given for the whole GPU and stretched by
 * sms_total / (sms_total - sms_comm) (compute scales with SMs — the assumption); communication
 * times are given as achieved with sms_comm SMs (bandwidth-bound, so the same in the serial
 * baseline). Exposed communication = pair time - compute-stream busy time. */
#ifndef MOESIM_OVERLAP_H
#define MOESIM_OVERLAP_H

#include "des.h"

typedef struct overlap_in {
  sim_ps attn_f, mlp_f;         /* forward compute of chunk x on all SMs */
  sim_ps dispatch_f, combine_f; /* forward all-to-alls of x with sms_comm SMs */
  sim_ps attn_b, attn_w;        /* attention backward of chunk y: input / weight gradients, all SMs */
  sim_ps mlp_b, mlp_w;          /* MLP backward of y: input / weight gradients, all SMs */
  sim_ps combine_b, dispatch_b; /* backward all-to-alls of y (combine's backward runs first) */
  sim_ps pp_f, pp_b;            /* pipeline sends: x's output activation, y's input gradient */
  int sms_total;                /* SMs of the GPU (H800: 132) */
  int sms_comm;                 /* SMs held by communication kernels (V3: 20), 0 < sms_comm < total */
} overlap_in;

typedef enum overlap_comp {
  OVERLAP_ATTN_F, OVERLAP_MLP_B, OVERLAP_MLP_W, OVERLAP_MLP_F, OVERLAP_ATTN_B, OVERLAP_ATTN_W, /* compute */
  OVERLAP_COMBINE_B, OVERLAP_DISPATCH_F, OVERLAP_DISPATCH_B, OVERLAP_COMBINE_F, OVERLAP_PP_F,
  OVERLAP_PP_B, /* communication */
  OVERLAP_NCOMP
} overlap_comp;

typedef struct overlap_result {
  sim_ps pair;               /* the overlapped F&B pair, start to end */
  sim_ps compute;            /* compute-stream busy time (stretched to the SMs left) */
  sim_ps comm;               /* communication-stream busy time */
  sim_ps exposed_comm;       /* pair - compute: time compute waits on communication */
  sim_ps serial_f, serial_b; /* the same forward and backward chunks one after the other, compute
                                on all SMs: the no-overlap baseline (B includes its W) */
  sim_ps start[OVERLAP_NCOMP]; /* when each component ran */
  sim_ps end[OVERLAP_NCOMP];
} overlap_result;

/* Name of a component ("ATTN_F", "COMBINE_B", ...). */
const char *overlap_comp_name(overlap_comp c);

/* Runs the pair. Returns 0, or -1 when the SM split is impossible (sms_comm outside
 * (0, sms_total)). */
int overlap_pair(const overlap_in *in, overlap_result *out);

/* Compute time t on all SMs stretched to the SMs communication leaves (rounded up). */
sim_ps overlap_stretch(sim_ps t, int sms_total, int sms_comm);

#endif
