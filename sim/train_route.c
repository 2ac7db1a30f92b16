/* sim/train_route.c — the token -> expert routing the training simulator feeds its EP collectives
 * and expert GEMMs with (train.h): DeepSeek-V3's gate (kernels/gate.h) over the project's seeded
 * synthetic affinities, Zipf-skewed, raw or balanced by the auxiliary-loss-free bias; or a
 * recorded trace.
 *
 * Bias balancing. Training adjusts b_e by +-gamma per step until each expert gets its share; the
 * simulator wants the bias that process converges to, not its path. It solves for it on a
 * calibration batch of fresh tokens (the same stream, far from the routed ones): each expert's
 * bias moves by its own step toward balance, the step halving whenever the expert's load crosses
 * the mean (a per-expert bisection); the converged bias then routes the step's tokens, which it has
 * never seen, so the residual imbalance is the honest one. The routing of the last request is
 * kept (one entry), so a sweep over plans that share it routes once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "train_int.h"
#include "util.h"

#define TR_CAL_TOKENS 4096 /* calibration batch for the bias */
#define TR_CAL_ITERS 48    /* bisection steps: the step shrinks to 2^-48 of its start */
#define TR_CAL_STEP 0.25   /* first step, in affinity units (sigmoid scores lie in (0, 1)) */

/* The last routing produced, with what it was made from. */
static struct {
  int valid;
  int ranks, tokens, topk, experts, groups, topk_groups, balance, sample;
  double zipf_s;
  uint64_t seed;
  ep_routing *r;
} tr_route_cache;

static moe_gate_cfg gate_of(const model_spec *m) {
  moe_gate_cfg g = moe_gate_v3();
  g.n_experts = m->moe.routed_experts;
  g.n_groups = m->moe.expert_groups;
  g.topk_groups = m->moe.groups_per_token;
  g.topk = m->moe.experts_per_token;
  return g;
}

/* Tokens of the synthetic stream the calibration uses: far past any routed token. */
#define TR_CAL_T0 ((int64_t)1 << 40)

static void calibrate_bias(const moe_gate_cfg *g, const moe_synth *syn, float *bias) {
  int E = g->n_experts, K = g->topk, T = TR_CAL_TOKENS;
  float *scores = util_xmalloc((size_t)T * E * sizeof *scores), *w = util_xmalloc((size_t)T * K * sizeof *w);
  int32_t *idx = util_xmalloc((size_t)T * K * sizeof *idx);
  int64_t *load = util_xmalloc((size_t)E * sizeof *load);
  double *step = util_xmalloc((size_t)E * sizeof *step);
  int *last = util_xcalloc((size_t)E, sizeof *last);
  moe_synth_scores(syn, E, TR_CAL_T0, T, scores);
  for (int e = 0; e < E; e++) bias[e] = 0, step[e] = TR_CAL_STEP;
  double mean = (double)T * K / E;
  for (int it = 0; it < TR_CAL_ITERS; it++) {
    moe_gate_select(g, scores, bias, T, idx, w);
    moe_gate_load(idx, T, K, E, load);
    for (int e = 0; e < E; e++) {
      int dir = (double)load[e] > mean ? -1 : (double)load[e] < mean ? 1 : 0;
      if (dir && last[e] && dir != last[e]) step[e] *= 0.5;
      if (dir) last[e] = dir;
      bias[e] += (float)(dir * step[e]);
    }
  }
  free(scores), free(w), free(idx), free(load), free(step), free(last);
}

static ep_routing *route_gate(const model_spec *m, int ranks, int tokens, const train_routing *rt, int sample) {
  moe_gate_cfg g = gate_of(m);
  /* each sample is its own stream (its own expert popularity ranking under skew) */
  moe_synth syn = {.seed = rt->seed + 0x9e3779b97f4a7c15ull * (uint64_t)sample, .zipf_s = rt->zipf_s, .noise = 1.0};
  int E = g.n_experts, K = g.topk;
  float *bias = NULL;
  if (rt->balance == TRAIN_BALANCE_BIAS) {
    bias = util_xmalloc((size_t)E * sizeof *bias);
    calibrate_bias(&g, &syn, bias);
  }
  ep_routing *r = ep_routing_new(ranks, tokens, K, E);
  float *scores = util_xmalloc((size_t)tokens * E * sizeof *scores), *w = util_xmalloc((size_t)tokens * K * sizeof *w);
  for (int rank = 0; rank < ranks; rank++) {
    moe_synth_scores(&syn, E, (int64_t)rank * tokens, tokens, scores);
    moe_gate_select(&g, scores, bias, tokens, &r->idx[(size_t)rank * tokens * K], w);
  }
  free(scores), free(w), free(bias);
  return r;
}

ep_routing *tr_routing(tr_sim *s, int sample, int *code) {
  const train_routing *rt = &s->cfg->routing;
  const model_spec *m = &s->model;
  int ranks = s->plan.ep, tokens = (int)s->tokens, K = m->moe.experts_per_token, E = m->moe.routed_experts;
  if (rt->trace) {
    ep_routing *r = ep_routing_load(rt->trace);
    if (!r) {
      *code = 2;
      tr_fail(s, 2, "cannot use routing trace %s (message above)", rt->trace);
      return NULL;
    }
    if (r->ranks != ranks || r->tokens < tokens || r->topk != K || r->experts != E) {
      *code = 2;
      tr_fail(s, 2, "routing trace %s has ranks %d, tokens %d, topk %d, experts %d; the plan needs ranks %d (ep), "
                    "at least %d tokens per rank, topk %d, experts %d",
              rt->trace, r->ranks, r->tokens, r->topk, r->experts, ranks, tokens, K, E);
      ep_routing_free(r);
      return NULL;
    }
    if (r->tokens > tokens) { /* keep each rank's first `tokens` tokens */
      ep_routing *c = ep_routing_new(ranks, tokens, K, E);
      for (int i = 0; i < ranks; i++)
        memcpy(&c->idx[(size_t)i * tokens * K], &r->idx[(size_t)i * r->tokens * K], (size_t)tokens * K * sizeof *c->idx);
      ep_routing_free(r);
      r = c;
    }
    return r;
  }
  if (tr_route_cache.valid && tr_route_cache.ranks == ranks && tr_route_cache.tokens == tokens &&
      tr_route_cache.topk == K && tr_route_cache.experts == E && tr_route_cache.groups == m->moe.expert_groups &&
      tr_route_cache.topk_groups == m->moe.groups_per_token && tr_route_cache.balance == rt->balance &&
      tr_route_cache.sample == sample && tr_route_cache.zipf_s == rt->zipf_s && tr_route_cache.seed == rt->seed) {
    ep_routing *c = ep_routing_new(ranks, tokens, K, E);
    memcpy(c->idx, tr_route_cache.r->idx, (size_t)ranks * tokens * K * sizeof *c->idx);
    return c;
  }
  ep_routing *r = route_gate(m, ranks, tokens, rt, sample);
  ep_routing_free(tr_route_cache.r);
  tr_route_cache.valid = 1;
  tr_route_cache.ranks = ranks, tr_route_cache.tokens = tokens, tr_route_cache.topk = K, tr_route_cache.experts = E;
  tr_route_cache.groups = m->moe.expert_groups, tr_route_cache.topk_groups = m->moe.groups_per_token;
  tr_route_cache.balance = rt->balance, tr_route_cache.sample = sample;
  tr_route_cache.zipf_s = rt->zipf_s, tr_route_cache.seed = rt->seed;
  tr_route_cache.r = ep_routing_new(ranks, tokens, K, E);
  memcpy(tr_route_cache.r->idx, r->idx, (size_t)ranks * tokens * K * sizeof *r->idx);
  return r;
}
