/* sim/infer_decode.c — one decode step of a unit (infer.h): the batch, its routing, its
 * all-to-alls on the network, the step's schedule and the figures that follow.
 *
 * The batch. In steady state a GPU's sequences are requests caught at a random point of their
 * generation: a request is in the batch in proportion to its output length, at a uniformly random
 * position of it (length-biased sampling), so the mean context of the batch is the traffic's
 * context per output token. Each attention group (attn_tp GPUs) holds seqs_per_gpu x attn_tp
 * sequences, split over the micro-batches; every sequence has 1 + mtp_depth query tokens
 * (the token and the MTP drafts to verify).
 *
 * Routing. Every token of a micro-batch takes the top-k experts of a token of the routing pattern
 * of its layer (the use window routed by the V3 gate), drawn by a seeded hash; each selection
 * goes to one replica of its expert (replicas take turns) and with the shared expert placed in
 * slots, to one shared replica. From that: each GPU's expert rows and slots touched, and the
 * (sender, receiver) selection counts the all-to-alls move. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

/* Draws a sequence's context: a request by output length, a uniform position in its output. */
static double draw_ctx(const infer_setup *s, uint64_t *rng) {
  double total = s->out_cum[s->n_req - 1], x = infer_rng_uniform(rng) * total;
  int lo = 0, hi = s->n_req - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (s->out_cum[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  const infer_req *r = &s->req[lo];
  return r->in + floor(infer_rng_uniform(rng) * r->out);
}

int infer_decode_point(infer_setup *s, double seqs_req, infer_out *o) {
  memset(o, 0, sizeof *o);
  const infer_spec *sp = s->spec;
  const model_spec *m = s->m;
  const infer_deploy *d = s->d;
  int G = s->G, tp = s->tp, M = d->micro_batches, groups = G / tp;
  int depth = m->mtp_depth > 0 ? d->mtp_depth : 0, q = 1 + depth;
  /* How many sequences. */
  double B = seqs_req > 0 ? seqs_req : s->d->concurrency_per_gpu > 0 ? s->d->concurrency_per_gpu : s->d->max_seqs_per_gpu;
  if (B > s->d->max_seqs_per_gpu) B = s->d->max_seqs_per_gpu;
  double kv_max = floor(s->kv_cap_tokens / s->ctx_per_out);
  if (B > kv_max) B = kv_max, o->kv_limited = 1;
  if (B < 1) B = 1;
  int per_group = (int)llround(B * tp);
  /* Contexts per group, micro-batch by micro-batch (sequence j in micro-batch j % M). */
  infer_attn_work *work = util_xcalloc((size_t)groups * M, sizeof *work), *mwork = util_xcalloc((size_t)groups * M, sizeof *mwork);
  double kv_max_used = 0;
  double cap = s->kv_cap_tokens * tp; /* a group's cache, tokens */
  int drawn = 0;
  for (int g = 0; g < groups; g++) {
    uint64_t rng = sp->traffic.seed * 0x9e3779b97f4a7c15ull + (uint64_t)g * 0x632be59bd9b4e019ull + 3;
    double used = 0;
    for (int j = 0; j < per_group; j++) {
      double c = draw_ctx(s, &rng);
      if (used + c + q > cap) {
        o->kv_limited = 1; /* this group's cache is full: it runs fewer sequences */
        break;
      }
      infer_attn_work *w = &work[g * M + j % M], *mw = &mwork[g * M + j % M];
      w->seqs += 1, w->q_tokens += q, w->pairs += q * c + q * (q + 1) / 2.0, w->kv_tokens += c + q;
      mw->seqs += 1, mw->q_tokens += depth, mw->pairs += depth * (c + 1), mw->kv_tokens += depth * (c + 1);
      used += c + q;
      drawn++;
    }
    if (used > kv_max_used) kv_max_used = used;
  }
  o->kv_used_frac = kv_max_used / cap;
  o->ctx_per_output_token = s->ctx_per_out;
  o->seqs_per_gpu = (double)drawn / G;

  /* MoE: tokens per GPU (a group's tokens split by sequence parallelism), routed per pattern. */
  int P = m->moe.routed_experts ? s->P : 0, with_mtp = depth > 0;
  int np = P * M + (with_mtp && P ? M : 0);
  ia_moe_pass *mp = util_xcalloc((size_t)(np ? np : 1), sizeof *mp);
  double *tok = util_xmalloc((size_t)G * sizeof *tok);
  int rc = 0;
  for (int x = 0; x < np && rc == 0; x++) {
    int mtp = x >= P * M, mb = x % M, p = mtp ? s->n_moe % P : (x / M) % P;
    for (int g = 0; g < G; g++) {
      const infer_attn_work *w = &(mtp ? mwork : work)[(g / tp) * M + mb];
      int k = g % tp;
      /* tokens k, k + tp, ... of the group's micro-batch */
      tok[g] = floor((w->q_tokens - k + tp - 1) / tp);
    }
    rc = ia_route_pass(s, p, tok, (uint64_t)x + 1, &mp[x]);
  }
  free(tok);
  if (rc != 0) {
    for (int x = 0; x < np; x++) ia_moe_pass_free(&mp[x]);
    free(mp), free(work), free(mwork);
    return 1;
  }

  /* The schedule. */
  istep_map map;
  isched *sc = istep_build(s, M, with_mtp, &map);
  double *flop_s = util_xcalloc((size_t)G, sizeof *flop_s), *mem_s = util_xcalloc((size_t)G, sizeof *mem_s);
  double nic = 0, nvl = 0;
  for (int mb = 0; mb < M; mb++) {
    for (int l = 0; l < map.n_layers; l++) {
      int mtp = map.mtp && l == map.n_layers - 1;
      int moe = istep_is_moe(s, &map, l), moe_idx = moe ? (mtp ? s->n_moe : l - m->dense_layers) : -1;
      const ia_moe_pass *pp = moe ? &mp[mtp ? P * M + mb : ((moe_idx % P) * M + mb)] : NULL;
      for (int g = 0; g < G; g++) {
        const infer_attn_work *w = &(mtp ? mwork : work)[(g / tp) * M + mb];
        double Ts = w->q_tokens / tp;
        ic_time a0 = {0}, a1 = {0}, f = {0}, sh = {0}, ex = {0};
        if (mtp) ic_mtp_proj(&s->hw, m, Ts, &a0);
        ic_attention(&s->hw, m, INFER_DECODE, d->kv_fmt, tp, w, 0, &a0);
        ic_attention(&s->hw, m, INFER_DECODE, d->kv_fmt, tp, w, 1, &a1);
        ic_ffn_in(&s->hw, m, Ts, moe, &a1);
        double tp_s = 0;
        if (tp > 1) {
          /* SP <-> TP: all-gather of the latents, reduce-scatter of the output (NVLink). */
          double by = w->q_tokens * ((double)m->attn.q_lora_rank + m->attn.kv_lora_rank + m->attn.qk_rope_head_dim) * 2 +
                      w->q_tokens * m->hidden * 2;
          tp_s = by * (tp - 1) / tp / (s->nvl_gbyte_s * 1e9);
          if (g == 0) nvl += by * (tp - 1) / tp;
        }
        if (map.a1[l] >= 0) {
          isched_dur(sc, mb, map.a0[l])[g] = ps_from_s(a0.s + tp_s / 2);
          isched_dur(sc, mb, map.a1[l])[g] = ps_from_s(a1.s + tp_s / 2);
        } else {
          isched_dur(sc, mb, map.a0[l])[g] = ps_from_s(a0.s + a1.s + tp_s);
        }
        if (moe) {
          if (map.shared[l] >= 0) {
            ic_shared_expert(&s->hw, m, Ts, &sh);
            isched_dur(sc, mb, map.shared[l])[g] = ps_from_s(sh.s);
          }
          ic_experts(&s->hw, m, pp->rows[g], pp->active[g], &ex);
          isched_dur(sc, mb, map.exp[l])[g] = ps_from_s(ex.s);
        } else {
          ic_dense_ffn(&s->hw, m, Ts, &f);
          isched_dur(sc, mb, map.dense[l])[g] = ps_from_s(f.s);
        }
        flop_s[g] += a0.flop_s + a1.flop_s + f.flop_s + sh.flop_s + ex.flop_s;
        mem_s[g] += a0.mem_s + a1.mem_s + f.mem_s + sh.mem_s + ex.mem_s;
        if (l == m->layers - 1 || mtp) {
          ic_time hd = {0};
          ic_head(&s->hw, m, Ts, &hd);
          isched_dur(sc, mb, mtp ? map.mtp_head : map.head)[g] = ps_from_s(hd.s);
          flop_s[g] += hd.flop_s, mem_s[g] += hd.mem_s;
        }
      }
      if (moe) {
        isched_dur(sc, mb, map.disp[l])[0] = ps_from_s(pp->t_disp);
        isched_dur(sc, mb, map.comb[l])[0] = ps_from_s(pp->t_comb);
        nic += pp->nic, nvl += pp->nvl;
      }
    }
  }
  isched_run(sc);
  double step = ps_to_s(sc->makespan);
  int b = sc->busiest;
  o->step_ms = step * 1e3;
  o->compute_ms = ps_to_ms(sc->busy[b]);
  o->comm_ms = ps_to_ms(sc->comm_busy);
  o->exposed_comm_ms = o->step_ms - o->compute_ms;
  const sim_ps *pt = &sc->part[(size_t)b * IS_NPART];
  o->attention_ms = ps_to_ms(pt[IS_ATTN]), o->shared_ms = ps_to_ms(pt[IS_SHARED]);
  o->experts_ms = ps_to_ms(pt[IS_EXPERTS]), o->dense_ms = ps_to_ms(pt[IS_DENSE]), o->head_ms = ps_to_ms(pt[IS_HEAD]);
  o->dispatch_ms = ps_to_ms(sc->part[IS_DISPATCH]), o->combine_ms = ps_to_ms(sc->part[IS_COMBINE]);
  double fl = 0, me = 0;
  for (int g = 0; g < G; g++) fl = flop_s[g] > fl ? flop_s[g] : fl, me = mem_s[g] > me ? mem_s[g] : me;
  infer_binding(s, fl, me, nvl, nic, step, o);
  double pacc = d->mtp_acceptance, e = 1, pk = 1;
  for (int i = 0; i < depth; i++) pk *= pacc, e += pk;
  o->tokens_per_step = e;
  o->tpot_ms = o->step_ms / e;
  o->out_tok_s_gpu = o->seqs_per_gpu * e / step;
  o->out_tok_s_node = o->out_tok_s_gpu * s->gpn;
  o->out_tok_s_user = e / step;
  o->imbalance_planned = s->imb_planned, o->imbalance = s->imb, o->imbalance_no_eplb = s->imb_none;
  isched_free(s->last);
  s->last = sc;
  istep_map_free(&map);
  for (int x = 0; x < np; x++) ia_moe_pass_free(&mp[x]);
  free(mp), free(work), free(mwork), free(flop_s), free(mem_s);
  return 0;
}
