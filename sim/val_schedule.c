/* sim/val_schedule.c — validation suite "schedule": pipeline schedules replayed on an ideal
 * machine against DualPipe's published table (deepseek-ai/DualPipe README: bubble, parameters
 * and activations per device, devices), and the DeepSeek-V3 report's claim for its F&B overlap.
 *
 * The bubble formulas are exact only under their assumptions (schedule.h, sched_bubble_formula);
 * the costs used here meet all of them at once — F=3, B=5, W=2, F&B=7 (B-W = F, W <= F,
 * B <= F&B <= F+B) — so every replay must equal its formula to the picosecond. Outside them the
 * replay is the truth; `moesim schedule` prints both. */
#include "val_schedule.h"

#include <stdio.h>

#include "overlap.h"
#include "schedule.h"

#define MS 1000000000ULL /* picoseconds per millisecond */

/* One kind at one PP (the table's PP: stages; DualPipeV runs them on PP/2 devices). */
static int check_kind(val_report *r, sched_kind kind, int pp) {
  sched_spec spec = {.kind = kind, .pp = kind == SCHED_DUALPIPEV ? pp / 2 : pp, .chunks = 3 * pp, .virt = 1};
  sched_cost cost = {.f = 3 * MS, .b = 5 * MS, .w = 2 * MS, .fb = 7 * MS, .p2p = 0};
  sched s;
  sched_replay rp;
  char err[256], name[128], note[128];
  if (sched_build(&s, &spec, err, sizeof err) != 0) {
    fprintf(stderr, "validate schedule: %s\n", err);
    return -1;
  }
  if (sched_replay_run(&s, &cost, &rp, err, sizeof err) != 0) {
    fprintf(stderr, "validate schedule: %s: %s\n", sched_kind_name(kind), err);
    sched_free(&s);
    return -1;
  }
  int bad = sched_check(&s, &rp, &cost, err, sizeof err);
  const char *k = sched_kind_name(kind);
  int exact;
  double formula = sched_bubble_formula(&s, &cost, &exact);
  snprintf(name, sizeof name, "schedule.%s.pp%d.bubble", k, pp);
  snprintf(note, sizeof note, "%s; F=3 B=5 W=2 F&B=7 ms, %d micro-batches%s", sched_bubble_formula_text(kind), 3 * pp,
           exact ? "" : " (assumptions NOT met)");
  val_add(r, name, formula / (double)MS, (double)sched_replay_bubble(&s, &rp) / (double)MS, "ms", 0, note);
  snprintf(name, sizeof name, "schedule.%s.pp%d.dependency_violations", k, pp);
  val_add(r, name, 0, bad, "ops", 0, bad ? err : "no op before its inputs");

  int peak = 0, params = 0;
  for (int i = 0; i < s.n_ranks; i++) {
    if (sched_peak_activations(&s, i) > peak) peak = sched_peak_activations(&s, i);
    if (sched_param_stages(&s, i) > params) params = sched_param_stages(&s, i);
  }
  int dual = kind == SCHED_DUALPIPE || kind == SCHED_DUALPIPEV;
  snprintf(name, sizeof name, "schedule.%s.pp%d.activations", k, pp);
  val_add(r, name, dual ? pp + 1 : pp, peak, "chunks", 0, dual ? "table: PP+1 (peak over ranks)" : "table: PP");
  /* Parameters per device in units of 1F1B's (1/PP of the model). */
  snprintf(name, sizeof name, "schedule.%s.pp%d.parameters", k, pp);
  val_add(r, name, dual ? 2 : 1, (double)params * sched_table_pp(&s) / s.n_stages, "x", 0, dual ? "table: 2x" : "table: 1x");
  if (kind == SCHED_DUALPIPEV) { /* the others run PP stages on PP devices by construction */
    snprintf(name, sizeof name, "schedule.%s.pp%d.devices", k, pp);
    val_add(r, name, pp / 2, s.n_ranks, "GPUs", 0, "table: PP/2");
  }
  sched_replay_free(&rp);
  sched_free(&s);
  return 0;
}

/* The report's overlap claim on one F&B pair: communication as long as the computation it is
 * paired with is hidden completely; twice as long exposes exactly the excess. Compute times are
 * illustrative (us on 132 SMs, 20 held by communication); the claim is about their ratio. */
static void check_overlap(val_report *r) {
  overlap_in in = {.attn_f = 400, .mlp_f = 600, .attn_b = 500, .attn_w = 300, .mlp_b = 700, .mlp_w = 500,
                   .sms_total = 132, .sms_comm = 20};
  sim_ps us = 1000000;
  in.attn_f *= us, in.mlp_f *= us, in.attn_b *= us, in.attn_w *= us, in.mlp_b *= us, in.mlp_w *= us;
  for (int mult = 1; mult <= 2; mult++) {
    /* each communication component = mult x the compute it runs beside (Figure 4's pairing) */
    in.combine_b = mult * overlap_stretch(in.attn_f, 132, 20);
    in.dispatch_f = mult * (overlap_stretch(in.mlp_b, 132, 20) + overlap_stretch(in.mlp_w, 132, 20));
    in.dispatch_b = mult * overlap_stretch(in.mlp_f, 132, 20);
    in.combine_f = mult * (overlap_stretch(in.attn_b, 132, 20) + overlap_stretch(in.attn_w, 132, 20));
    overlap_result o;
    overlap_pair(&in, &o);
    char name[128];
    snprintf(name, sizeof name, "schedule.overlap.comm_%dx_compute.exposed_comm", mult);
    double excess = mult == 1 ? 0 : ((double)o.comm - (double)o.compute) / (double)us;
    val_add(r, name, excess, (double)o.exposed_comm / (double)us, "us", 0,
            mult == 1 ? "V3 report: fully hidden (0)" : "excess of communication over compute");
    snprintf(name, sizeof name, "schedule.overlap.comm_%dx_compute.pair", mult);
    val_add(r, name, (double)(mult == 1 ? o.compute : o.comm) / (double)us, (double)o.pair / (double)us, "us", 0,
            mult == 1 ? "pair = compute (on 112 of 132 SMs)" : "pair = communication");
  }
}

int val_schedule(val_report *r) {
  static const sched_kind kinds[] = {SCHED_1F1B, SCHED_ZB1P, SCHED_DUALPIPE, SCHED_DUALPIPEV};
  static const int pps[] = {4, 8, 16};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
    for (size_t p = 0; p < sizeof pps / sizeof pps[0]; p++)
      if (check_kind(r, kinds[k], pps[p]) != 0) return -1;
  check_overlap(r);
  return 0;
}
