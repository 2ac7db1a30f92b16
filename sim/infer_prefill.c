/* sim/infer_prefill.c — prefill of a unit (infer.h): requests queue per attention group, forward
 * passes take chunks of them, and the passes' schedules give throughput and time to first token.
 *
 * Requests go, on arrival, to the attention group with the least outstanding work. A pass starts
 * when the previous one ends and some group has work (or at the next arrival): each group fills
 * its budget (max_tokens_per_gpu x attn_tp new tokens) from its queue in arrival order, at most
 * chunk_tokens of one prompt per pass; a chunk of c tokens after a prefix of p tokens (the cached
 * prefix and the chunks before) costs c p + c (c + 1) / 2 attention pairs, and its keys and values
 * are up-projected over p + c tokens. Chunks go to the micro-batch with fewer tokens. A request's
 * first token is ready when the pass with its last chunk ends (its logits come from that pass):
 * TTFT = that end - arrival.
 *
 * Expert rows of a pass are its routed selections times each GPU's share of the use window's
 * routing (thousands of tokens per pass: the shares are what the GPUs see); the all-to-all time of
 * a pattern is run once on the network for a full micro-batch (max_tokens_per_gpu / micro_batches
 * tokens per GPU) and scaled by the busiest GPU's tokens (bandwidth-bound).
 *
 * Saturated capacity: all requests queued at time 0; throughput over the passes in which every
 * group filled its budget. At an offered rate: Poisson arrivals (seeded). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

typedef struct pf_req {
  double arrival;  /* s */
  double rem;      /* tokens still to compute */
  double done;     /* prefix available (cached + computed) */
  double finish;   /* s, when the last chunk's pass ended (-1: not yet) */
  int group;       /* attention group */
} pf_req;

typedef struct pf {
  infer_setup *s;
  int groups, M;
  pf_req *r;           /* [n] in arrival order */
  int n;
  int **q;             /* [groups] queue of request ids */
  int *qh, *qt;        /* head, tail */
  double *backlog;     /* [groups] outstanding work, s (estimated) */
  double t_tok, t_pair;/* estimated compute per new token and per attention pair, s */
  double budget_s;     /* a group's estimated compute per pass: a full pass of tokens at the
                          traffic's mean prefix */
  istep_map map;
  isched *sc;
  double *share_gpu;   /* [P][G] expected rows per routed token on each GPU */
  double *active_gpu;  /* [P][G] slots with any share */
  double *t_ref;       /* [P][2] dispatch, combine time of a full micro-batch */
  double *nic_ref, *nvl_ref; /* [P] bytes per GPU of a full micro-batch (both directions) */
  double tok_ref;      /* tokens per GPU of a full micro-batch */
  infer_attn_work *w;  /* [groups][M] this pass */
  double *mb_tok;      /* [groups][M] tokens */
  double *finishing;   /* [groups] requests whose last chunk is in this pass */
  int *touched;        /* [n] request touched in this pass (last chunk) */
  /* accumulated */
  double flop_s, mem_s, nic, nvl, busy_ms_parts[IS_NPART], compute_ms, comm_ms;
} pf;

static int ref_comm(pf *x) {
  infer_setup *s = x->s;
  int G = s->G, P = s->P;
  x->t_ref = util_xcalloc((size_t)P * 2, sizeof *x->t_ref);
  x->nic_ref = util_xcalloc((size_t)P, sizeof *x->nic_ref);
  x->nvl_ref = util_xcalloc((size_t)P, sizeof *x->nvl_ref);
  x->tok_ref = floor((double)s->d->max_tokens_per_gpu / x->M);
  double *tok = util_xmalloc((size_t)G * sizeof *tok);
  for (int g = 0; g < G; g++) tok[g] = x->tok_ref;
  int rc = 0;
  for (int p = 0; p < P && rc == 0; p++) {
    ia_moe_pass mp;
    rc = ia_route_pass(s, p, tok, 1000 + (uint64_t)p, &mp);
    if (rc == 0) {
      x->t_ref[p * 2] = mp.t_disp, x->t_ref[p * 2 + 1] = mp.t_comb;
      x->nic_ref[p] = mp.nic, x->nvl_ref[p] = mp.nvl;
    }
    ia_moe_pass_free(&mp);
  }
  free(tok);
  return rc;
}

static void pf_setup(pf *x, infer_setup *s) {
  memset(x, 0, sizeof *x);
  x->s = s;
  x->M = s->d->micro_batches;
  x->groups = s->G / s->tp;
  x->sc = istep_build(s, x->M, 0, &x->map);
  const infer_deploy *d = s->d;
  if (!s->ll && d->comm_sms > 0) x->sc->stretch = (double)s->sms / (s->sms - d->comm_sms);
  if (s->m->moe.routed_experts) {
    int P = s->P, G = s->G;
    x->share_gpu = util_xcalloc((size_t)P * G, sizeof *x->share_gpu);
    x->active_gpu = util_xcalloc((size_t)P * G, sizeof *x->active_gpu);
    for (int p = 0; p < P; p++)
      for (int sl = 0; sl < s->n_slots; sl++) {
        double sh = s->slot_share[(size_t)p * s->n_slots + sl];
        x->share_gpu[(size_t)p * G + sl / s->per_gpu] += sh;
        x->active_gpu[(size_t)p * G + sl / s->per_gpu] += sh > 0;
      }
  }
  /* Per-token and per-pair compute of one layer, from the cost model. */
  infer_attn_work w0 = {.q_tokens = 1024, .kv_tokens = 1024, .seqs = 1}, w1 = w0;
  w1.pairs = 1024.0 * 1024;
  ic_time t0 = {0}, t1 = {0}, te = {0};
  for (int st = 0; st < 2; st++) {
    ic_attention(&s->hw, s->m, INFER_PREFILL, d->kv_fmt, s->tp, &w0, st, &t0);
    ic_attention(&s->hw, s->m, INFER_PREFILL, d->kv_fmt, s->tp, &w1, st, &t1);
  }
  ic_ffn_in(&s->hw, s->m, 1024.0 / s->tp, 1, &t0);
  ic_ffn_in(&s->hw, s->m, 1024.0 / s->tp, 1, &t1);
  if (s->m->moe.routed_experts) ic_experts(&s->hw, s->m, 1024.0 * s->topk, s->per_gpu, &te);
  x->t_tok = (t0.s + te.s) / 1024, x->t_pair = (t1.s - t0.s) / w1.pairs;
  /* The mean prefix a computed token attends to, over the traffic sample. */
  double tok = 0, pairs = 0;
  for (int i = 0; i < s->n_req; i++) {
    double c = s->req[i].in - s->req[i].cached, p = s->req[i].cached;
    tok += c, pairs += c * p + c * (c + 1) / 2;
  }
  x->budget_s = s->d->max_tokens_per_gpu * (x->t_tok + x->t_pair * (tok > 0 ? pairs / tok : 0));
  x->w = util_xcalloc((size_t)x->groups * x->M, sizeof *x->w);
  x->mb_tok = util_xcalloc((size_t)x->groups * x->M, sizeof *x->mb_tok);
  x->finishing = util_xcalloc((size_t)x->groups, sizeof *x->finishing);
}

static void pf_free(pf *x) {
  isched_free(x->sc);
  istep_map_free(&x->map);
  free(x->share_gpu), free(x->active_gpu), free(x->t_ref), free(x->nic_ref), free(x->nvl_ref);
  free(x->w), free(x->mb_tok), free(x->finishing);
}

/* Queues requests [0, n) with the given arrivals. */
static void pf_load(pf *x, const double *arrival, int n) {
  infer_setup *s = x->s;
  x->n = n;
  x->r = util_xcalloc((size_t)n, sizeof *x->r);
  x->touched = util_xcalloc((size_t)n, sizeof *x->touched);
  x->q = util_xcalloc((size_t)x->groups, sizeof *x->q);
  x->qh = util_xcalloc((size_t)x->groups, sizeof *x->qh);
  x->qt = util_xcalloc((size_t)x->groups, sizeof *x->qt);
  x->backlog = util_xcalloc((size_t)x->groups, sizeof *x->backlog);
  for (int g = 0; g < x->groups; g++) x->q[g] = util_xmalloc((size_t)n * sizeof **x->q);
  for (int i = 0; i < n; i++) {
    const infer_req *rq = &s->req[i % s->n_req];
    x->r[i] = (pf_req){.arrival = arrival[i], .rem = rq->in - rq->cached, .done = rq->cached, .finish = -1, .group = -1};
  }
}

static void pf_unload(pf *x) {
  for (int g = 0; g < x->groups; g++) free(x->q[g]);
  free(x->q), free(x->qh), free(x->qt), free(x->backlog), free(x->r), free(x->touched);
}

/* Estimated compute of c new tokens after a prefix of p. */
static double pf_work(const pf *x, double c, double p) { return c * x->t_tok + (c * p + c * (c + 1) / 2) * x->t_pair; }

/* The most new tokens after a prefix of p whose estimated compute fits in r seconds. */
static double pf_fit(const pf *x, double p, double r) {
  if (x->t_pair <= 0) return floor(r / x->t_tok);
  double b = x->t_tok + x->t_pair * (p + 0.5);
  return floor((-b + sqrt(b * b + 2 * x->t_pair * r)) / x->t_pair);
}

/* A new request goes to the group with the least estimated work queued (DeepSeek's prefill load
 * balancer evens out both core attention and tokens per GPU). */
static void pf_admit(pf *x, int i) {
  int best = 0;
  for (int g = 1; g < x->groups; g++)
    if (x->backlog[g] < x->backlog[best]) best = g;
  x->r[i].group = best;
  x->q[best][x->qt[best]++] = i;
  x->backlog[best] += pf_work(x, x->r[i].rem, x->r[i].done);
}

/* One pass starting at t (every queued request has arrived). Returns its duration (s) and the
 * new tokens it computed (*computed); marks finished requests; *full = every group filled its
 * budget. */
static double pf_pass(pf *x, double t, double *computed, int *full) {
  infer_setup *s = x->s;
  const model_spec *m = s->m;
  int G = s->G, tp = s->tp, M = x->M;
  memset(x->w, 0, (size_t)x->groups * M * sizeof *x->w);
  memset(x->mb_tok, 0, (size_t)x->groups * M * sizeof *x->mb_tok);
  memset(x->finishing, 0, (size_t)x->groups * sizeof *x->finishing);
  *computed = 0, *full = 1;
  int nfin = 0;
  for (int g = 0; g < x->groups; g++) {
    /* A group takes chunks until its tokens or its estimated compute reach the budget, so the
     * passes of the groups take alike (core attention balanced, as DeepSeek's prefill load
     * balancer does); a long prompt late in its prefill goes in smaller chunks. */
    double budget = (double)s->d->max_tokens_per_gpu * tp, work = x->budget_s * tp;
    for (int k = x->qh[g]; k < x->qt[g] && budget > 0 && work > 0; k++) {
      pf_req *r = &x->r[x->q[g][k]];
      if (r->rem <= 0) continue;
      double c = r->rem < s->d->chunk_tokens ? r->rem : s->d->chunk_tokens;
      if (c > budget) c = budget;
      double fit = pf_fit(x, r->done, work);
      if (c > fit) c = fit > 1 ? fit : 1;
      int mb = 0;
      for (int j = 1; j < M; j++)
        if (x->mb_tok[g * M + j] < x->mb_tok[g * M + mb]) mb = j;
      infer_attn_work *w = &x->w[g * M + mb];
      w->q_tokens += c, w->seqs += 1, w->pairs += c * r->done + c * (c + 1) / 2, w->kv_tokens += r->done + c;
      x->mb_tok[g * M + mb] += c;
      double cw = pf_work(x, c, r->done);
      x->backlog[g] -= cw;
      work -= cw;
      r->rem -= c, r->done += c, budget -= c;
      *computed += c;
      if (r->rem <= 0) x->finishing[g] += 1, x->touched[nfin++] = x->q[g][k];
    }
    if (budget > 0 && work > 0) *full = 0;
    while (x->qh[g] < x->qt[g] && x->r[x->q[g][x->qh[g]]].rem <= 0) x->qh[g]++;
  }
  /* Durations. */
  isched *sc = x->sc;
  const istep_map *map = &x->map;
  const infer_deploy *d = s->d;
  double fl_sum = 0, me_sum = 0;
  double *tok_gpu = util_xmalloc((size_t)M * sizeof *tok_gpu);
  for (int mb = 0; mb < M; mb++) {
    double tot = 0, mx = 0;
    for (int g = 0; g < x->groups; g++) tot += x->mb_tok[g * M + mb], mx = x->mb_tok[g * M + mb] > mx ? x->mb_tok[g * M + mb] : mx;
    tok_gpu[mb] = tot;
    for (int l = 0; l < map->n_layers; l++) {
      int moe = istep_is_moe(s, map, l);
      int p = moe ? (l - m->dense_layers) % s->P : 0;
      double fl_max = 0, me_max = 0;
      for (int gpu = 0; gpu < G; gpu++) {
        const infer_attn_work *w = &x->w[(gpu / tp) * M + mb];
        double Ts = w->q_tokens / tp;
        ic_time a0 = {0}, a1 = {0}, f = {0}, sh = {0}, ex = {0}, hd = {0};
        ic_attention(&s->hw, m, INFER_PREFILL, d->kv_fmt, tp, w, 0, &a0);
        ic_attention(&s->hw, m, INFER_PREFILL, d->kv_fmt, tp, w, 1, &a1);
        ic_ffn_in(&s->hw, m, Ts, moe, &a1);
        double tp_s = 0;
        if (tp > 1) {
          double by = w->q_tokens * ((double)m->attn.q_lora_rank + m->attn.kv_lora_rank + m->attn.qk_rope_head_dim) * 2 +
                      w->q_tokens * m->hidden * 2;
          tp_s = by * (tp - 1) / tp / (s->nvl_gbyte_s * 1e9);
          if (gpu == 0) x->nvl += by * (tp - 1) / tp;
        }
        if (map->a1[l] >= 0) {
          isched_dur(sc, mb, map->a0[l])[gpu] = ps_from_s(a0.s + tp_s / 2);
          isched_dur(sc, mb, map->a1[l])[gpu] = ps_from_s(a1.s + tp_s / 2);
        } else {
          isched_dur(sc, mb, map->a0[l])[gpu] = ps_from_s(a0.s + a1.s + tp_s);
        }
        if (moe) {
          if (map->shared[l] >= 0) {
            ic_shared_expert(&s->hw, m, Ts, &sh);
            isched_dur(sc, mb, map->shared[l])[gpu] = ps_from_s(sh.s);
          }
          double rows = tot * x->share_gpu[(size_t)p * G + gpu];
          ic_experts(&s->hw, m, rows, rows > 0 ? x->active_gpu[(size_t)p * G + gpu] : 0, &ex);
          isched_dur(sc, mb, map->exp[l])[gpu] = ps_from_s(ex.s);
        } else {
          ic_dense_ffn(&s->hw, m, Ts, &f);
          isched_dur(sc, mb, map->dense[l])[gpu] = ps_from_s(f.s);
        }
        if (l == m->layers - 1) {
          ic_head(&s->hw, m, mb == 0 ? x->finishing[gpu / tp] / tp : 0, &hd);
          isched_dur(sc, mb, map->head)[gpu] = ps_from_s(hd.s);
        }
        double fl = a0.flop_s + a1.flop_s + f.flop_s + sh.flop_s + ex.flop_s + hd.flop_s;
        double me = a0.mem_s + a1.mem_s + f.mem_s + sh.mem_s + ex.mem_s + hd.mem_s;
        if (gpu == 0 || fl + me > fl_max + me_max) fl_max = fl, me_max = me;
      }
      fl_sum += fl_max, me_sum += me_max;
      if (moe) {
        double scale = x->tok_ref > 0 ? mx / tp / x->tok_ref : 0;
        isched_dur(sc, mb, map->disp[l])[0] = ps_from_s(x->t_ref[p * 2] * scale);
        isched_dur(sc, mb, map->comb[l])[0] = ps_from_s(x->t_ref[p * 2 + 1] * scale);
        x->nic += x->nic_ref[p] * scale, x->nvl += x->nvl_ref[p] * scale;
      }
    }
  }
  free(tok_gpu);
  isched_run(sc);
  double dur = ps_to_s(sc->makespan);
  for (int i = 0; i < nfin; i++) x->r[x->touched[i]].finish = t + dur;
  x->flop_s += fl_sum, x->mem_s += me_sum;
  x->compute_ms += ps_to_ms(sc->busy[sc->busiest]), x->comm_ms += ps_to_ms(sc->comm_busy);
  for (int k = 0; k < IS_NPART; k++)
    x->busy_ms_parts[k] += ps_to_ms(k >= IS_DISPATCH ? sc->part[k] : sc->part[(size_t)sc->busiest * IS_NPART + k]);
  return dur;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Runs requests with the given arrivals to completion; fills the pass figures of o. Returns the
 * sum of full-pass time and tokens in *full_s / *full_tok (all passes when none was full). */
static void pf_run(pf *x, const double *arrival, int n, infer_out *o, double *span_s, double *tok_all, double *full_s,
                   double *full_tok) {
  pf_load(x, arrival, n);
  double t = 0, fs = 0, ft = 0, all_s = 0, all_tok = 0;
  int next = 0, passes = 0, left = n;
  x->flop_s = x->mem_s = x->nic = x->nvl = x->compute_ms = x->comm_ms = 0;
  memset(x->busy_ms_parts, 0, sizeof x->busy_ms_parts);
  while (left > 0) {
    while (next < n && x->r[next].arrival <= t) pf_admit(x, next++);
    int work = 0;
    for (int g = 0; g < x->groups && !work; g++) work = x->qh[g] < x->qt[g];
    if (!work) {
      t = x->r[next].arrival;
      continue;
    }
    double computed;
    int full;
    double dur = pf_pass(x, t, &computed, &full);
    t += dur, passes++, all_s += dur, all_tok += computed;
    if (full) fs += dur, ft += computed;
    left = 0;
    for (int i = 0; i < n; i++) left += x->r[i].finish < 0;
  }
  o->passes = passes;
  *span_s = t;
  *tok_all = all_tok;
  *full_s = ft > 0 ? fs : all_s, *full_tok = ft > 0 ? ft : all_tok;
  double *ttft = util_xmalloc((size_t)n * sizeof *ttft), sum = 0;
  for (int i = 0; i < n; i++) ttft[i] = x->r[i].finish - x->r[i].arrival, sum += ttft[i];
  qsort(ttft, (size_t)n, sizeof *ttft, cmp_double);
  o->ttft_ms = sum / n * 1e3;
  o->ttft_p50_ms = ttft[n / 2] * 1e3;
  o->ttft_p90_ms = ttft[(int)(0.9 * (n - 1))] * 1e3;
  o->step_ms = all_s / passes * 1e3;
  o->compute_ms = x->compute_ms / passes, o->comm_ms = x->comm_ms / passes;
  o->exposed_comm_ms = o->step_ms - o->compute_ms;
  o->attention_ms = x->busy_ms_parts[IS_ATTN] / passes, o->shared_ms = x->busy_ms_parts[IS_SHARED] / passes;
  o->experts_ms = x->busy_ms_parts[IS_EXPERTS] / passes, o->dense_ms = x->busy_ms_parts[IS_DENSE] / passes;
  o->head_ms = x->busy_ms_parts[IS_HEAD] / passes, o->dispatch_ms = x->busy_ms_parts[IS_DISPATCH] / passes;
  o->combine_ms = x->busy_ms_parts[IS_COMBINE] / passes;
  infer_binding(x->s, x->flop_s, x->mem_s, x->nvl, x->nic, all_s, o);
  free(ttft);
  pf_unload(x);
}

int infer_prefill_point(infer_setup *s, double rate, infer_out *o) {
  memset(o, 0, sizeof *o);
  pf x;
  pf_setup(&x, s);
  if (s->m->moe.routed_experts && ref_comm(&x) != 0) {
    pf_free(&x);
    return 1;
  }
  int n = s->n_req;
  double *arr = util_xcalloc((size_t)n, sizeof *arr);
  double span, tok, fs, ft;
  /* Saturated: everything queued at 0. */
  pf_run(&x, arr, n, o, &span, &tok, &fs, &ft);
  double in_per_computed = 1 / (1 - s->hit_eff);
  double cap_gpu = ft / fs / s->G * in_per_computed;
  o->capacity_in_tok_s_node = cap_gpu * s->gpn;
  double sat_rate = cap_gpu * s->G / (tok / n * in_per_computed); /* requests per second */
  if (rate <= 0 && s->spec->traffic.load > 0) rate = s->spec->traffic.load * sat_rate;
  if (rate > 0) {
    uint64_t rng = s->spec->traffic.seed * 0xd1b54a32d192ed03ull + 5;
    double t = 0;
    for (int i = 0; i < n; i++) t += -log(infer_rng_uniform(&rng)) / rate, arr[i] = t;
    double cap = o->capacity_in_tok_s_node;
    pf_run(&x, arr, n, o, &span, &tok, &fs, &ft);
    o->capacity_in_tok_s_node = cap;
    /* Achieved: the work over the time from the first arrival to the last completion. */
    o->computed_tok_s_gpu = tok / (span - arr[0]) / s->G;
    o->load = rate / sat_rate;
  } else {
    o->computed_tok_s_gpu = ft / fs / s->G;
    o->load = 1;
  }
  o->in_tok_s_gpu = o->computed_tok_s_gpu * in_per_computed;
  o->in_tok_s_node = o->in_tok_s_gpu * s->gpn;
  o->imbalance_planned = s->imb_planned, o->imbalance = s->imb, o->imbalance_no_eplb = s->imb_none;
  isched_free(s->last);
  s->last = x.sc;
  x.sc = NULL;
  pf_free(&x);
  free(arr);
  return 0;
}
