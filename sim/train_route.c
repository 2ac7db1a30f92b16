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
 * never seen, so the residual imbalance is the honest one.
 *
 * Caches. Routing V3's EP group (64 ranks x 4096 tokens x 256 affinities) costs seconds, and is a
 * pure function of its parameters, so it is kept twice: the last one in the process (a sweep
 * worker reuses it), and as a routing trace file (coll.h's format) in a cache directory —
 * $MOESIM_CACHE, else $XDG_CACHE_HOME/moesim, else ~/.cache/moesim; MOESIM_CACHE=off disables it —
 * named by a hash of the parameters. A cached file is trusted only after a spot check: the first
 * tokens of the first and last rank are routed afresh (with a freshly calibrated bias) and must
 * match it, so a changed generator or gate never leaves a stale routing in use. Files are written
 * atomically; an unwritable cache directory is skipped (it is only a cache). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define TR_SPOT_TOKENS 32 /* tokens per checked rank when trusting a cached routing */

/* Routes tokens [0, n) of each listed rank (all ranks when `only` is NULL) into r. */
static void route_ranks(const moe_gate_cfg *g, const moe_synth *syn, const float *bias, ep_routing *r, int n,
                        const int *only, int n_only) {
  int E = g->n_experts, K = g->topk;
  float *scores = util_xmalloc((size_t)n * E * sizeof *scores), *w = util_xmalloc((size_t)n * K * sizeof *w);
  int count = only ? n_only : r->ranks;
  for (int i = 0; i < count; i++) {
    int rank = only ? only[i] : i;
    moe_synth_scores(syn, E, (int64_t)rank * r->tokens, n, scores);
    moe_gate_select(g, scores, bias, n, &r->idx[(size_t)rank * r->tokens * K], w);
  }
  free(scores), free(w);
}

/* The stream of sample k (each sample its own: its own popularity ranking under skew). */
static moe_synth synth_of(const train_routing *rt, int sample) {
  moe_synth syn = {.seed = rt->seed + 0x9e3779b97f4a7c15ull * (uint64_t)sample, .zipf_s = rt->zipf_s, .noise = 1.0};
  return syn;
}

/* The cache file of a routing, malloc'd, or NULL when the cache is off. */
static char *cache_path(const model_spec *m, int ranks, int tokens, const train_routing *rt, int sample) {
  const char *env = getenv("MOESIM_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  util_buf dir = {0};
  if (env) {
    if (!*env || strcmp(env, "off") == 0) return NULL;
    util_buf_printf(&dir, "%s", env);
  } else if (xdg && *xdg) {
    util_buf_printf(&dir, "%s/moesim", xdg);
  } else if (home && *home) {
    util_buf_printf(&dir, "%s/.cache/moesim", home);
  } else {
    return NULL;
  }
  uint64_t h = 0xcbf29ce484222325ull;
  int64_t v[10] = {ranks, tokens, m->moe.experts_per_token, m->moe.routed_experts, m->moe.expert_groups,
                   m->moe.groups_per_token, rt->balance, sample, TR_CAL_TOKENS, TR_CAL_ITERS};
  double d[2] = {rt->zipf_s, TR_CAL_STEP};
  const unsigned char *b = (const unsigned char *)v;
  for (size_t i = 0; i < sizeof v; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  b = (const unsigned char *)d;
  for (size_t i = 0; i < sizeof d; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  h = (h ^ rt->seed) * 0x100000001b3ull;
  util_buf_printf(&dir, "/routing-%016llx.txt", (unsigned long long)h);
  return dir.data;
}

/* A cached routing, if present, of the right shape and matching a fresh spot check. */
static ep_routing *cache_load(const char *path, const moe_gate_cfg *g, const moe_synth *syn, const float *bias,
                              int ranks, int tokens) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  fclose(f);
  ep_routing *r = ep_routing_load(path);
  if (!r) return NULL;
  int K = g->topk, n = tokens < TR_SPOT_TOKENS ? tokens : TR_SPOT_TOKENS, check[2] = {0, ranks - 1};
  if (r->ranks != ranks || r->tokens != tokens || r->topk != K || r->experts != g->n_experts) {
    ep_routing_free(r);
    return NULL;
  }
  ep_routing *fresh = ep_routing_new(ranks, tokens, K, g->n_experts);
  route_ranks(g, syn, bias, fresh, n, check, ranks > 1 ? 2 : 1);
  int same = 1;
  for (int i = 0; i < (ranks > 1 ? 2 : 1) && same; i++) {
    size_t at = (size_t)check[i] * tokens * K;
    same = memcmp(&r->idx[at], &fresh->idx[at], (size_t)n * K * sizeof *r->idx) == 0;
  }
  ep_routing_free(fresh);
  if (!same) {
    ep_routing_free(r);
    return NULL;
  }
  return r;
}

static ep_routing *route_gate(const model_spec *m, int ranks, int tokens, const train_routing *rt, int sample) {
  moe_gate_cfg g = gate_of(m);
  moe_synth syn = synth_of(rt, sample);
  int E = g.n_experts, K = g.topk;
  float *bias = NULL;
  if (rt->balance == TRAIN_BALANCE_BIAS) {
    bias = util_xmalloc((size_t)E * sizeof *bias);
    calibrate_bias(&g, &syn, bias);
  }
  char *path = cache_path(m, ranks, tokens, rt, sample);
  ep_routing *r = path ? cache_load(path, &g, &syn, bias, ranks, tokens) : NULL;
  if (!r) {
    r = ep_routing_new(ranks, tokens, K, E);
    route_ranks(&g, &syn, bias, r, tokens, NULL, 0);
    if (path) {
      char *dir = util_dirname(path);
      int ok = util_mkdirs(dir) == 0 && access(dir, W_OK) == 0;
      free(dir);
      if (ok) ep_routing_write(r, path); /* a failure is reported by the writer; the run goes on */
    }
  }
  free(path);
  free(bias);
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

void tr_routing_forget(void) {
  ep_routing_free(tr_route_cache.r);
  memset(&tr_route_cache, 0, sizeof tr_route_cache);
}
