/* sim/infer_kinds.c — the experiment kinds `prefill` and `decode` (a serving deployment, see
 * infer.h). (DeepEP's low-latency benchmark is the kind `ep_low_latency`, infer_coll.c.)
 *
 * A prefill or decode experiment may describe both units of a disaggregated deployment; its row
 * then carries both phases' figures: input tokens/s per node and TTFT from the prefill unit,
 * output tokens/s per node and per user and TPOT from the decode unit, and how many prefill nodes
 * keep one decode node fed (the traffic's input/output ratio over the two rates). The kind says
 * which phase the experiment is about (the trace, the summary first). A latency-vs-throughput
 * curve is a sweep: decode over decode.concurrency_per_gpu, prefill over traffic.load. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

static void set_opt(res_row *r, const char *col, int have, double v) {
  if (have && isfinite(v)) res_set_f(r, col, v);
  else res_set(r, col, "%s", "");
}

static void unit_cols(res_row *row, const char *ph, const infer_setup *s, const infer_out *o) {
  char c[96];
#define COL(name) (snprintf(c, sizeof c, "%s_%s", ph, name), c)
  res_set_i(row, COL("nodes"), s->d->nodes);
  res_set_i(row, COL("gpus"), s->G);
  res_set_i(row, COL("attn_tp"), s->tp);
  res_set_i(row, COL("expert_slots_per_gpu"), s->per_gpu);
  res_set_i(row, COL("redundant_experts"), s->d->redundant_experts);
  res_set(row, COL("ep_kernel"), "%s", s->ll ? "low_latency" : "normal");
  res_set_f(row, COL("step_ms"), o->step_ms);
  res_set_f(row, COL("compute_ms"), o->compute_ms);
  res_set_f(row, COL("exposed_comm_ms"), o->exposed_comm_ms);
  res_set_f(row, COL("attention_ms"), o->attention_ms);
  res_set_f(row, COL("shared_expert_ms"), o->shared_ms);
  res_set_f(row, COL("experts_ms"), o->experts_ms);
  res_set_f(row, COL("dense_ffn_ms"), o->dense_ms);
  res_set_f(row, COL("head_ms"), o->head_ms);
  res_set_f(row, COL("dispatch_ms"), o->dispatch_ms);
  res_set_f(row, COL("combine_ms"), o->combine_ms);
  res_set_f(row, COL("util_compute"), o->util_tensor);
  res_set_f(row, COL("util_hbm"), o->util_hbm);
  res_set_f(row, COL("util_nvlink"), o->util_nvlink);
  res_set_f(row, COL("util_network"), o->util_network);
  res_set(row, COL("binding"), "%s", o->binding);
  res_set_f(row, COL("expert_imbalance"), o->imbalance);
  res_set_f(row, COL("expert_imbalance_planned"), o->imbalance_planned);
  set_opt(row, COL("expert_imbalance_no_eplb"), 1, o->imbalance_no_eplb);
  res_set_f(row, COL("weights_gib"), s->w.total / 1073741824.0);
  res_set_f(row, COL("kv_capacity_tokens_per_gpu"), s->kv_cap_tokens);
  double tot = 0;
  for (int k = 0; k < COMPUTE_SRC_COUNT; k++) tot += s->src_s[k];
  for (int k = 0; k < COMPUTE_SRC_COUNT; k++) {
    char name[48];
    snprintf(name, sizeof name, "compute_%s_frac", compute_src_name((compute_src)k));
    res_set_f(row, COL(name), tot > 0 ? s->src_s[k] / tot : 0);
  }
#undef COL
}

/* Runs the experiment's units; the kind's phase first. */
static int run_infer(const exp_run *run, infer_spec *sp, infer_phase primary, res_row *row) {
  topo *t = infer_spec_cluster(run->cfg, sp);
  if (!t) return UTIL_EXIT_USAGE;
  infer_setup *su[2] = {NULL, NULL};
  infer_out out[2];
  int rc = 0;
  for (int ph = 0; ph < 2 && rc == 0; ph++) {
    if (!sp->unit_node[ph]) continue;
    su[ph] = infer_setup_new(run->cfg, sp, (infer_phase)ph, t);
    if (!su[ph]) rc = UTIL_EXIT_USAGE;
  }
  for (int k = 0; k < 2 && rc == 0; k++) {
    int ph = k == 0 ? primary : 1 - primary;
    if (!su[ph]) continue;
    int r = ph == INFER_PREFILL ? infer_prefill_point(su[ph], su[ph]->spec->traffic.request_rate_per_s, &out[ph])
                                : infer_decode_point(su[ph], 0, &out[ph]);
    if (r != 0) rc = UTIL_EXIT_SYS;
  }
  if (rc == 0) {
    int hp = su[INFER_PREFILL] != NULL, hd = su[INFER_DECODE] != NULL;
    const infer_out *P = &out[INFER_PREFILL], *D = &out[INFER_DECODE];
    const infer_setup *any = su[primary];
    res_set(row, "model", "%s", sp->model.name);
    res_set(row, "cluster", "%s", t->name);
    res_set(row, "gpu", "%s", t->gpu.model ? t->gpu.model : "gpu");
    res_set_i(row, "gpus_per_node", t->gpus_per_node);
    topo_summary ts;
    topo_summarize(t, &ts);
    res_set_f(row, "network_cost_usd", ts.cost_usd); /* the whole cluster's scale-out network */
    res_set(row, "fabric", "%s", topo_fabric_names[t->fabric_kind]);
    set_opt(row, "input_tokens_per_s_per_node", hp, P->in_tok_s_node);
    set_opt(row, "output_tokens_per_s_per_node", hd, D->out_tok_s_node);
    set_opt(row, "output_tokens_per_s_per_user", hd, D->out_tok_s_user);
    set_opt(row, "ttft_ms", hp, P->ttft_ms);
    set_opt(row, "tpot_ms", hd, D->tpot_ms);
    double in_mean = 0, out_mean = 0;
    for (int i = 0; i < any->n_req; i++) in_mean += any->req[i].in / any->n_req, out_mean += any->req[i].out / any->n_req;
    set_opt(row, "prefill_nodes_per_decode_node", hp && hd,
            hp && hd ? D->out_tok_s_node * (in_mean / out_mean) / P->capacity_in_tok_s_node : NAN);
    res_set_f(row, "cache_hit_rate", any->hit_eff);
    res_set_f(row, "ctx_per_output_token", any->ctx_per_out);
    res_set_f(row, "kv_bytes_per_token", any->kv_bytes_token);
    if (hp) {
      res_set_f(row, "capacity_input_tokens_per_s_per_node", P->capacity_in_tok_s_node);
      res_set_f(row, "computed_tokens_per_s_per_gpu", P->computed_tok_s_gpu);
      res_set_f(row, "prefill_load", P->load);
      res_set_f(row, "ttft_p50_ms", P->ttft_p50_ms);
      res_set_f(row, "ttft_p90_ms", P->ttft_p90_ms);
      res_set_f(row, "prefill_passes", P->passes);
      unit_cols(row, "prefill", su[INFER_PREFILL], P);
    }
    if (hd) {
      res_set_f(row, "seqs_per_gpu", D->seqs_per_gpu);
      res_set_f(row, "tokens_per_step", D->tokens_per_step);
      res_set_f(row, "output_tokens_per_s_per_gpu", D->out_tok_s_gpu);
      res_set_f(row, "kv_used_frac", D->kv_used_frac);
      res_set_i(row, "kv_limited", D->kv_limited);
      unit_cols(row, "decode", su[INFER_DECODE], D);
    }
    FILE *f = run->summary;
    char no_eplb[32] = "n/a: experts do not divide";
    if (hp && isfinite(P->imbalance_no_eplb)) snprintf(no_eplb, sizeof no_eplb, "%.2f", P->imbalance_no_eplb);
    if (f) {
      fprintf(f, "%s on %s (%s)\n", sp->model.name, t->name, t->gpu.model ? t->gpu.model : "gpu");
      if (hp)
        fprintf(f,
                "prefill  %d nodes, EP%d, %d slots/GPU: %.0f input tokens/s per node (capacity %.0f, load %.2f), "
                "TTFT %.0f ms (p90 %.0f), pass %.1f ms, bound by %s; expert imbalance %.2f (no EPLB %s)\n",
                su[0]->d->nodes, su[0]->G, su[0]->per_gpu, P->in_tok_s_node, P->capacity_in_tok_s_node, P->load,
                P->ttft_ms, P->ttft_p90_ms, P->step_ms, P->binding, P->imbalance, no_eplb);
      if (hd)
        fprintf(f,
                "decode   %d nodes, EP%d, %d slots/GPU: %.0f output tokens/s per node, %.1f per user, TPOT %.1f ms, "
                "step %.1f ms (%.0f seqs/GPU, %.2f tokens/step), bound by %s; exposed comm %.1f ms; KV %.0f%% used\n",
                su[1]->d->nodes, su[1]->G, su[1]->per_gpu, D->out_tok_s_node, D->out_tok_s_user, D->tpot_ms,
                D->step_ms, D->seqs_per_gpu, D->tokens_per_step, D->binding, D->exposed_comm_ms, 100 * D->kv_used_frac);
    }
    if (run->trace) {
      util_buf path = {0};
      util_buf_printf(&path, "%s/trace.json", run->out_dir);
      if (infer_write_trace(su[primary], path.data) != 0) rc = UTIL_EXIT_SYS;
      else if (f) fprintf(f, "trace    %s\n", path.data);
      util_buf_free(&path);
    }
  }
  infer_setup_free(su[0]);
  infer_setup_free(su[1]);
  topo_free(t);
  return rc;
}

static int run_prefill(const exp_run *run, void *spec, res_row *row) { return run_infer(run, spec, INFER_PREFILL, row); }
static int run_decode(const exp_run *run, void *spec, res_row *row) { return run_infer(run, spec, INFER_DECODE, row); }

static const char *const infer_plots[] = {"throughput_vs", "step_time_vs", "breakdown", NULL};

const exp_kind exp_kind_prefill = {
    .name = "prefill",
    .summary = "a prefill unit (and optionally its decode unit): input tokens/s per node, TTFT, binding resource",
    .keys = infer_prefill_keys,
    .spec_size = sizeof(infer_spec),
    .init = infer_spec_init_prefill,
    .run = run_prefill,
    .plots = infer_plots,
};

const exp_kind exp_kind_decode = {
    .name = "decode",
    .summary = "a decode unit (and optionally its prefill unit): output tokens/s per node and per user, TPOT",
    .keys = infer_decode_keys,
    .spec_size = sizeof(infer_spec),
    .init = infer_spec_init_decode,
    .run = run_decode,
    .plots = infer_plots,
};
