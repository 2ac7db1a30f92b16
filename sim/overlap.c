/* sim/overlap.c — the two-stream F&B pair of overlap.h: a fixed component order per stream,
 * data dependencies between components, each component at max(stream free, inputs ready). */
#include "overlap.h"

#include <assert.h>

static const char *const comp_names[OVERLAP_NCOMP] = {
    "ATTN_F", "MLP_B", "MLP_W", "MLP_F", "ATTN_B", "ATTN_W",
    "COMBINE_B", "DISPATCH_F", "DISPATCH_B", "COMBINE_F", "PP_F", "PP_B"};

const char *overlap_comp_name(overlap_comp c) {
  assert(c >= 0 && c < OVERLAP_NCOMP);
  return comp_names[c];
}

sim_ps overlap_stretch(sim_ps t, int sms_total, int sms_comm) {
  assert(sms_comm >= 0 && sms_comm < sms_total);
  uint64_t left = (uint64_t)(sms_total - sms_comm);
  /* t * total / left, rounded up, without overflow for any realistic t (< 1e15 ps) */
  return (sim_ps)((t / left) * (uint64_t)sms_total + ((t % left) * (uint64_t)sms_total + left - 1) / left);
}

/* Inputs of each component (-1 ends the list). */
static const int deps[OVERLAP_NCOMP][2] = {
    [OVERLAP_ATTN_F] = {-1, -1},
    [OVERLAP_DISPATCH_F] = {OVERLAP_ATTN_F, -1},
    [OVERLAP_MLP_F] = {OVERLAP_DISPATCH_F, -1},
    [OVERLAP_COMBINE_F] = {OVERLAP_MLP_F, -1},
    [OVERLAP_PP_F] = {OVERLAP_COMBINE_F, -1},
    [OVERLAP_COMBINE_B] = {-1, -1},
    [OVERLAP_MLP_B] = {OVERLAP_COMBINE_B, -1},
    [OVERLAP_MLP_W] = {OVERLAP_COMBINE_B, -1},
    [OVERLAP_DISPATCH_B] = {OVERLAP_MLP_B, -1},
    [OVERLAP_ATTN_B] = {OVERLAP_DISPATCH_B, -1},
    [OVERLAP_ATTN_W] = {OVERLAP_DISPATCH_B, -1},
    [OVERLAP_PP_B] = {OVERLAP_ATTN_B, -1},
};

/* Stream orders (Figure 4's interleaving). */
static const overlap_comp compute_order[] = {OVERLAP_ATTN_F, OVERLAP_MLP_B, OVERLAP_MLP_W,
                                             OVERLAP_MLP_F, OVERLAP_ATTN_B, OVERLAP_ATTN_W};
static const overlap_comp comm_order[] = {OVERLAP_COMBINE_B, OVERLAP_DISPATCH_F, OVERLAP_DISPATCH_B,
                                          OVERLAP_COMBINE_F, OVERLAP_PP_F, OVERLAP_PP_B};
#define STREAM_LEN 6

int overlap_pair(const overlap_in *in, overlap_result *out) {
  if (in->sms_comm <= 0 || in->sms_comm >= in->sms_total) return -1;
  sim_ps dur[OVERLAP_NCOMP];
  int S = in->sms_total, C = in->sms_comm;
  dur[OVERLAP_ATTN_F] = overlap_stretch(in->attn_f, S, C);
  dur[OVERLAP_MLP_F] = overlap_stretch(in->mlp_f, S, C);
  dur[OVERLAP_ATTN_B] = overlap_stretch(in->attn_b, S, C);
  dur[OVERLAP_ATTN_W] = overlap_stretch(in->attn_w, S, C);
  dur[OVERLAP_MLP_B] = overlap_stretch(in->mlp_b, S, C);
  dur[OVERLAP_MLP_W] = overlap_stretch(in->mlp_w, S, C);
  dur[OVERLAP_DISPATCH_F] = in->dispatch_f;
  dur[OVERLAP_COMBINE_F] = in->combine_f;
  dur[OVERLAP_DISPATCH_B] = in->dispatch_b;
  dur[OVERLAP_COMBINE_B] = in->combine_b;
  dur[OVERLAP_PP_F] = in->pp_f;
  dur[OVERLAP_PP_B] = in->pp_b;

  int done[OVERLAP_NCOMP] = {0};
  int next[2] = {0, 0};             /* position in each stream */
  sim_ps free_at[2] = {0, 0};       /* when each stream is free */
  const overlap_comp *order[2] = {compute_order, comm_order};
  *out = (overlap_result){0};
  /* Advance whichever stream can: at most 12 steps, and a step always exists because each
   * component's inputs come earlier in one of the two orders. */
  for (int placed = 0; placed < OVERLAP_NCOMP;) {
    int moved = 0;
    for (int s = 0; s < 2; s++) {
      if (next[s] == STREAM_LEN) continue;
      overlap_comp c = order[s][next[s]];
      sim_ps start = free_at[s];
      int ready = 1;
      for (int k = 0; k < 2 && deps[c][k] >= 0; k++) {
        if (!done[deps[c][k]]) ready = 0;
        else if (out->end[deps[c][k]] > start) start = out->end[deps[c][k]];
      }
      if (!ready) continue;
      out->start[c] = start;
      out->end[c] = start + dur[c];
      free_at[s] = out->end[c];
      done[c] = 1;
      next[s]++;
      placed++;
      moved = 1;
      if (out->end[c] > out->pair) out->pair = out->end[c];
      if (s == 0) out->compute += dur[c];
      else out->comm += dur[c];
    }
    assert(moved && "overlap streams deadlocked");
  }
  out->exposed_comm = out->pair - out->compute;
  out->serial_f = in->attn_f + in->dispatch_f + in->mlp_f + in->combine_f + in->pp_f;
  out->serial_b = in->combine_b + in->mlp_b + in->mlp_w + in->dispatch_b + in->attn_b + in->attn_w + in->pp_b;
  return 0;
}
