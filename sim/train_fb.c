/* sim/train_fb.c — a DualPipe F&B op as the training simulator runs it (train.h): the forward
 * chunk's layers and the backward chunk's layers (back to front) are paired, layer i of the
 * forward with layer i from the end of the backward, and each pair is split as overlap.h splits it
 * (the V3 report's Figure 4): a compute stream on the SMs communication leaves and a communication
 * stream holding comm_sms SMs (none when communication is offloaded: comm_sms = 0),
 *
 *   compute: ATTN_F TP_F | MLP_B MLP_W | MLP_F | ATTN_B TP_B ATTN_W
 *   comm:    COMBINE_B   | DISPATCH_F  | DISPATCH_B | COMBINE_F
 *
 * with overlap.c's data dependencies inside a pair. The two layer lists are aligned at the offset
 * that makes the op shortest (forward layer i meets backward layer i - offset; DualPipe's
 * overlapped chunk is arranged by hand per model, and where stages differ — the embedding and dense
 * layers of stage 0 against the head and MTP of the last — index order would leave the MoE layers
 * without partners). Unlike overlap_pair, which starts one pair on
 * idle streams, the op is a chain: both streams run on from pair to pair, and a pair's components
 * wait only for what they consume from the previous pair — ATTN_F for the previous layer's forward
 * output, COMBINE_B for the previous layer's input gradient (so the next layer's gradient
 * all-to-all can start while this layer's ATTN_W still computes). TP all-reduces (TP > 1) block the
 * compute stream right after attention. A pair with nothing to overlap (a dense or embedding
 * layer on both sides, or a layer without partner) runs in series on all SMs once both streams
 * are free. Components of zero length wait for their inputs only, not for their stream. */
#include <string.h>

#include "train_int.h"

static int has_comm(const tr_unit *u) { return u->disp_f || u->comb_f || u->comb_b || u->disp_b; }
static int has_work(const tr_unit *u) {
  return has_comm(u) || u->attn_f || u->mlp_f || u->attn_b || u->attn_w || u->mlp_b || u->mlp_w || u->tp_f || u->tp_b;
}

int tr_pair_overlaps(const tr_sim *s, const tr_unit *fu, const tr_unit *bu) {
  int k = s->plan.schedule;
  if (!s->plan.overlap || (k != SCHED_DUALPIPE && k != SCHED_DUALPIPEV)) return 0;
  return has_work(fu) && has_work(bu) && (has_comm(fu) || has_comm(bu));
}

/* Stream orders and the one input of each component inside a pair (-1: from the previous pair). */
static const int comp_order[] = {OVERLAP_ATTN_F, TR_TP_F, OVERLAP_MLP_B, OVERLAP_MLP_W,
                                 OVERLAP_MLP_F, OVERLAP_ATTN_B, TR_TP_B, OVERLAP_ATTN_W};
static const int comm_order[] = {OVERLAP_COMBINE_B, OVERLAP_DISPATCH_F, OVERLAP_DISPATCH_B, OVERLAP_COMBINE_F};
static const int dep[TR_NCOMP] = {
    [OVERLAP_ATTN_F] = -1,                [TR_TP_F] = OVERLAP_ATTN_F,
    [OVERLAP_DISPATCH_F] = TR_TP_F,       [OVERLAP_MLP_F] = OVERLAP_DISPATCH_F,
    [OVERLAP_COMBINE_F] = OVERLAP_MLP_F,  [OVERLAP_COMBINE_B] = -1,
    [OVERLAP_MLP_B] = OVERLAP_COMBINE_B,  [OVERLAP_MLP_W] = OVERLAP_COMBINE_B,
    [OVERLAP_DISPATCH_B] = OVERLAP_MLP_B, [OVERLAP_ATTN_B] = OVERLAP_DISPATCH_B,
    [TR_TP_B] = OVERLAP_ATTN_B,           [OVERLAP_ATTN_W] = OVERLAP_DISPATCH_B,
    [OVERLAP_PP_F] = OVERLAP_COMBINE_F,   [OVERLAP_PP_B] = OVERLAP_ATTN_B};

/* The components' lengths for a pair (compute stretched when overlapped). */
static void lengths(const tr_sim *s, const tr_unit *fu, const tr_unit *bu, int ov, sim_ps d[TR_NCOMP]) {
  int S = s->cfg->topo->gpu.sms, C = ov ? s->plan.comm_sms : 0;
  memset(d, 0, sizeof(sim_ps) * TR_NCOMP);
  d[OVERLAP_ATTN_F] = overlap_stretch(fu->attn_f, S, C);
  d[OVERLAP_MLP_F] = overlap_stretch(fu->mlp_f, S, C);
  d[OVERLAP_ATTN_B] = overlap_stretch(bu->attn_b, S, C);
  d[OVERLAP_ATTN_W] = overlap_stretch(bu->attn_w, S, C);
  d[OVERLAP_MLP_B] = overlap_stretch(bu->mlp_b, S, C);
  d[OVERLAP_MLP_W] = overlap_stretch(bu->mlp_w, S, C);
  d[OVERLAP_DISPATCH_F] = fu->disp_f, d[OVERLAP_COMBINE_F] = fu->comb_f;
  d[OVERLAP_COMBINE_B] = bu->comb_b, d[OVERLAP_DISPATCH_B] = bu->disp_b;
  d[TR_TP_F] = fu->tp_f, d[TR_TP_B] = bu->tp_b;
}

/* The chain with forward unit i paired with backward unit i - offset (backward units counted in
 * backward order); pair slots run over both lists' union. */
static void chain(tr_sim *s, int pf, int pb, int offset, tr_fb *x, tr_pair_times *pairs) {
  const tr_part *F = &s->parts[pf], *B = &s->parts[pb];
  static const tr_unit zero;
  int lo = offset < 0 ? offset : 0, hi = F->n > B->n + offset ? F->n : B->n + offset;
  sim_ps free_at[2] = {0, 0}; /* compute, comm */
  sim_ps f_out = 0, b_out = 0; /* the previous pair's forward output and input gradient */
  memset(x, 0, sizeof *x);
  x->offset = offset;
  x->n_pairs = hi - lo;
  for (int slot = lo; slot < hi; slot++) {
    int i = slot, j = slot - offset;
    const tr_unit *fu = i >= 0 && i < F->n ? &s->units[F->first + i] : &zero;
    const tr_unit *bu = j >= 0 && j < B->n ? &s->units[B->first + B->n - 1 - j] : &zero;
    int ov = tr_pair_overlaps(s, fu, bu);
    sim_ps d[TR_NCOMP], st[TR_NCOMP] = {0}, en[TR_NCOMP] = {0};
    lengths(s, fu, bu, ov, d);
    if (!ov) { /* in series on all SMs: the forward layer, then the backward layer */
      static const int order[] = {OVERLAP_ATTN_F, TR_TP_F, OVERLAP_DISPATCH_F, OVERLAP_MLP_F, OVERLAP_COMBINE_F,
                                  OVERLAP_COMBINE_B, OVERLAP_MLP_B, OVERLAP_MLP_W, OVERLAP_DISPATCH_B,
                                  OVERLAP_ATTN_B, TR_TP_B, OVERLAP_ATTN_W};
      sim_ps t = free_at[0] > free_at[1] ? free_at[0] : free_at[1];
      for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        st[order[k]] = t;
        t += d[order[k]];
        en[order[k]] = t;
      }
      free_at[0] = free_at[1] = t;
    } else {
      int next[2] = {0, 0}, len[2] = {8, 4}, done[TR_NCOMP] = {0};
      const int *ord[2] = {comp_order, comm_order};
      for (int placed = 0; placed < 12;) {
        int moved = 0;
        for (int sm = 0; sm < 2; sm++) {
          if (next[sm] == len[sm]) continue;
          int c = ord[sm][next[sm]];
          sim_ps ready;
          if (dep[c] >= 0) {
            if (!done[dep[c]]) continue;
            ready = en[dep[c]];
          } else {
            ready = c == OVERLAP_ATTN_F ? f_out : b_out;
          }
          st[c] = d[c] && free_at[sm] > ready ? free_at[sm] : ready;
          en[c] = st[c] + d[c];
          if (d[c]) free_at[sm] = en[c];
          done[c] = 1;
          next[sm]++;
          placed++;
          moved = 1;
        }
        if (!moved) break; /* cannot happen: each input comes earlier in one of the orders */
      }
    }
    f_out = en[OVERLAP_COMBINE_F];
    b_out = en[TR_TP_B];
    for (int c = 0; c < TR_NCOMP; c++) {
      if (en[c] > f_out && (c == OVERLAP_ATTN_F || c == TR_TP_F || c == OVERLAP_DISPATCH_F || c == OVERLAP_MLP_F)) f_out = en[c];
      if (en[c] > b_out && (c == OVERLAP_COMBINE_B || c == OVERLAP_MLP_B || c == OVERLAP_DISPATCH_B || c == OVERLAP_ATTN_B))
        b_out = en[c];
      if (en[c] > x->time) x->time = en[c];
    }
    x->f_comp += d[OVERLAP_ATTN_F] + d[OVERLAP_MLP_F];
    x->b_comp += d[OVERLAP_ATTN_B] + d[OVERLAP_MLP_B];
    x->w_comp += d[OVERLAP_ATTN_W] + d[OVERLAP_MLP_W];
    if (pairs) {
      pairs[slot - lo].overlapped = ov;
      memcpy(pairs[slot - lo].start, st, sizeof st);
      memcpy(pairs[slot - lo].end, en, sizeof en);
    }
  }
  if (free_at[0] > x->time) x->time = free_at[0];
  if (free_at[1] > x->time) x->time = free_at[1];
  x->done = 1;
}

void tr_fb_chain(tr_sim *s, int pf, int pb, tr_fb *x, tr_pair_times *pairs) {
  int nf = s->parts[pf].n, nb = s->parts[pb].n;
  tr_fb best = {0}, t;
  /* offsets by distance from 0, the smaller first on ties: deterministic */
  for (int d = 0; d < nf + nb; d++)
    for (int sign = 1; sign >= -1; sign -= 2) {
      int o = sign * d;
      if ((d == 0 && sign < 0) || o <= -nb || o >= nf) continue;
      chain(s, pf, pb, o, &t, NULL);
      if (!best.done || t.time < best.time) best = t;
    }
  *x = best;
  if (pairs) chain(s, pf, pb, best.offset, x, pairs);
}

const tr_fb *tr_cost_fb(tr_sim *s, int pf, int pb) {
  tr_fb *x = &s->fb[pf * s->n_parts + pb];
  if (!x->done) tr_fb_chain(s, pf, pb, x, NULL);
  return x;
}
