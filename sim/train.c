/* sim/train.c — the training simulator's driver (train.h): resolve the plan, cost the routing
 * samples and blocks, cut the model into stages, check memory, replay the step, and turn its
 * time into throughput, MFU and cost. */
#include "train.h"

#include <stdlib.h>
#include <string.h>

#include "train_int.h"
#include "util.h"

const char *train_balance_name(int b) { return b == TRAIN_BALANCE_BIAS ? "bias" : "none"; }

void tr_sim_free(tr_sim *s) {
  sched_free(&s->sched);
  for (int k = 0; k < s->n_ep; k++) {
    free(s->ep[k].rows);
    free(s->ep[k].rows_pad);
  }
  free(s->ep);
  free(s->blocks);
  free(s->units);
  free(s->parts);
  free(s->fb);
  free(s->p2p);
  free(s->coll);
  free(s->mem_weights);
  free(s->mem_grads);
  free(s->mem_opt);
  free(s->mem_act);
}

static void log_stages(const tr_sim *s, FILE *f) {
  fprintf(f, "stages    %d, cut on measured cost (blocks: E embedding, D dense, M MoE, H head, T MTP):\n", s->n_parts);
  for (int k = 0; k < s->n_parts; k++) {
    const tr_part *p = &s->parts[k];
    char kinds[160] = "";
    size_t l = 0;
    for (int i = p->first; i < p->first + p->n && l + 2 < sizeof kinds; i++) {
      static const char code[] = "EDMHT";
      kinds[l++] = code[s->blocks[i].kind];
    }
    kinds[l] = '\0';
    fprintf(f, "  stage %2d  %-12s F %8.2f ms  B %8.2f ms  W %8.2f ms  act %6.2f GiB/micro-batch\n", k, kinds,
            ps_to_ms(p->f), ps_to_ms(p->b - p->w), ps_to_ms(p->w), p->act_bytes / 1073741824.0);
  }
}

int tr_sim_build(tr_sim *s, const train_cfg *cfg, char *err, size_t err_len) {
  memset(s, 0, sizeof *s);
  s->cfg = cfg, s->model = *cfg->model, s->plan = cfg->plan, s->err = err, s->err_len = err_len;
  int rc = tr_plan_resolve(s);
  if (rc == 0) rc = tr_cost_ep(s);
  if (rc == 0) rc = tr_cost_blocks(s);
  if (rc == 0) rc = tr_partition(s);
  if (rc == 0) {
    tr_cost_parts(s);
    rc = tr_cost_p2p(s);
  }
  if (rc == 0) rc = tr_memory(s);
  return rc;
}

int train_run(const train_cfg *cfg, train_result *res, char *err, size_t err_len) {
  uint64_t t0 = util_now_ns();
  memset(res, 0, sizeof *res);
  if (err && err_len) err[0] = '\0';
  tr_sim s;
  int rc = tr_sim_build(&s, cfg, err, err_len);
  if (rc == 0 && cfg->log) {
    tr_print_sources(&s, cfg->log);
    log_stages(&s, cfg->log);
  }
  if (rc == 0) rc = tr_replay(&s, res);
  if (rc == 0) {
    const train_plan *p = &s.plan;
    const hw_gpu *g = &cfg->topo->gpu;
    model_flops fl;
    model_flops_per_token(&s.model, &fl);
    res->gpus = s.gpus;
    res->dp = p->dp;
    res->micro_batches = p->global_batch_seqs / (p->dp * p->micro_batch_seqs);
    res->n_stages = s.n_parts;
    res->tokens_per_step = (double)p->global_batch_seqs * p->seq_len;
    res->tokens_per_s = res->tokens_per_step / res->step_s;
    res->model_flops_per_token = fl.train;
    res->tflops_per_gpu = fl.train * res->tokens_per_step / res->step_s / s.gpus * 1e-12;
    res->mfu = res->tflops_per_gpu / (s.model.prec.gemm == MODEL_FP8 ? g->fp8_tflops : g->bf16_tflops);
    res->mfu_bf16 = res->tflops_per_gpu / g->bf16_tflops;
    res->bubble_frac = res->phases.bubble_s / res->step_s;
    res->exposed_comm_frac = res->phases.exposed_comm_s / res->step_s;
    res->gpu_hours_per_t_tokens = s.gpus * res->step_s / 3600.0 * (1e12 / res->tokens_per_step);
    res->usd_per_t_tokens = res->gpu_hours_per_t_tokens * cfg->price_usd_per_gpu_hour;
    const double G = 1073741824.0;
    double worst = -1;
    for (int r = 0; r < p->pp; r++) {
      double t = s.mem_weights[r] + s.mem_grads[r] + s.mem_opt[r] + s.mem_act[r];
      if (t > worst) worst = t, res->peak_mem_rank = r;
    }
    int w = res->peak_mem_rank;
    res->peak_mem_gib = worst / G;
    res->hbm_gib = g->hbm_gib;
    res->mem_weights_gib = s.mem_weights[w] / G;
    res->mem_grads_gib = s.mem_grads[w] / G;
    res->mem_optimizer_gib = s.mem_opt[w] / G;
    res->mem_act_gib = s.mem_act[w] / G;
    if (s.n_ep) {
      res->ep_dispatch_ms = ps_to_ms(s.ep[0].disp_f);
      res->ep_combine_ms = ps_to_ms(s.ep[0].comb_f);
      res->expert_imbalance = s.ep[0].imbalance;
    }
    for (int i = 0; i < s.n_blocks; i++) {
      if (s.blocks[i].kind != MODEL_BLOCK_MOE) continue;
      const tr_unit *u = &s.units[i];
      res->moe_layer_compute_ms = ps_to_ms(u->attn_f + u->mlp_f + u->attn_b + u->mlp_b + u->attn_w + u->mlp_w);
      res->moe_layer_comm_ms = ps_to_ms(u->disp_f + u->comb_f + u->comb_b + u->disp_b);
      break;
    }
  }
  tr_sim_free(&s);
  res->sim_wall_s = (double)(util_now_ns() - t0) * 1e-9;
  return rc;
}
