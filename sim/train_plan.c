/* sim/train_plan.c — the parallel plan of a training step (train.h): its checks, the GPU
 * placement and sharding groups, the model's cut into stages, and per-rank memory with the
 * HBM-fit check. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_int.h"
#include "util.h"

int tr_fail(tr_sim *s, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (s->err && s->err_len) vsnprintf(s->err, s->err_len, fmt, ap);
  va_end(ap);
  return code;
}

int tr_gpu(const tr_sim *s, int rank, int replica, int t) {
  return (rank * s->plan.dp + replica) * s->plan.tp + t;
}

int tr_plan_resolve(tr_sim *s) {
  train_plan *p = &s->plan;
  const topo *t = s->cfg->topo;
  model_spec *m = &s->model;
  if (p->seq_len > 0) m->seq_len = p->seq_len;
  p->seq_len = m->seq_len;
  if (p->pp < 1 || p->tp < 1 || p->ep < 1 || p->micro_batch_seqs < 1 || p->global_batch_seqs < 1)
    return tr_fail(s, 2, "pp, tp, ep, micro_batch_seqs and global_batch_seqs must be at least 1");
  if (p->zero < 0 || p->zero > 3) return tr_fail(s, 2, "zero must be 0, 1, 2 or 3 (got %d)", p->zero);
  if (p->tp > t->gpus_per_node || t->gpus_per_node % p->tp != 0)
    return tr_fail(s, 2, "tp (%d) must divide the %d GPUs of a scale-up domain (TP stays inside one)", p->tp,
                   t->gpus_per_node);
  if (p->dp == 0) {
    if (t->n_gpus % (p->pp * p->tp) != 0)
      return tr_fail(s, 2, "the cluster's %d GPUs do not split into pp x tp = %d x %d; set parallel.dp", t->n_gpus, p->pp,
                     p->tp);
    p->dp = t->n_gpus / (p->pp * p->tp);
  }
  s->gpus = p->pp * p->dp * p->tp;
  if (p->dp < 1 || s->gpus > t->n_gpus)
    return tr_fail(s, 2, "pp x dp x tp = %d x %d x %d = %d GPUs, but the cluster has %d", p->pp, p->dp, p->tp, s->gpus,
                   t->n_gpus);
  int moe = m->moe.routed_experts > 0;
  if (!moe && p->ep != 1) return tr_fail(s, 2, "ep = %d, but %s has no routed experts (use ep: 1)", p->ep, m->name);
  if ((p->dp * p->tp) % p->ep != 0)
    return tr_fail(s, 2, "ep (%d) must divide dp x tp = %d (an EP group is made of one rank's GPUs)", p->ep,
                   p->dp * p->tp);
  if (moe && m->moe.routed_experts % p->ep != 0)
    return tr_fail(s, 2, "ep (%d) must divide the %d routed experts", p->ep, m->moe.routed_experts);
  if (p->global_batch_seqs % (p->dp * p->micro_batch_seqs) != 0)
    return tr_fail(s, 2, "global_batch_seqs (%d) must be a multiple of dp x micro_batch_seqs = %d x %d",
                   p->global_batch_seqs, p->dp, p->micro_batch_seqs);
  s->tokens_mb = (double)p->micro_batch_seqs * p->seq_len;
  if ((int64_t)s->tokens_mb % p->tp != 0)
    return tr_fail(s, 2, "a micro-batch's %.0f tokens do not split over tp = %d", s->tokens_mb, p->tp);
  s->tokens = s->tokens_mb / p->tp;
  if (p->comm_sms < 0 || p->comm_sms >= t->gpu.sms)
    return tr_fail(s, 2, "comm_sms (%d) must be from 0 to %d (the GPU has %d SMs)", p->comm_sms, t->gpu.sms - 1,
                   t->gpu.sms);
  int chunks = p->global_batch_seqs / (p->dp * p->micro_batch_seqs);
  sched_spec ss = {.kind = (sched_kind)p->schedule, .pp = p->pp, .chunks = chunks, .virt = p->virt > 0 ? p->virt : 1};
  char why[256];
  if (sched_build(&s->sched, &ss, why, sizeof why) != 0)
    return tr_fail(s, 2, "schedule %s with pp %d and %d micro-batches per step: %s", sched_kind_name(ss.kind), p->pp,
                   chunks, why);
  /* Blocks: embedding, layers, head, MTP modules. */
  s->n_blocks = m->layers + 2 + m->mtp_depth;
  s->blocks = util_xcalloc((size_t)s->n_blocks, sizeof *s->blocks);
  int b = 0;
  s->blocks[b++] = (tr_block){MODEL_BLOCK_EMBED, -1};
  for (int l = 0; l < m->layers; l++)
    s->blocks[b++] = (tr_block){model_layer_is_moe(m, l) ? MODEL_BLOCK_MOE : MODEL_BLOCK_DENSE, l};
  s->blocks[b++] = (tr_block){MODEL_BLOCK_HEAD, -1};
  for (int d = 0; d < m->mtp_depth; d++) s->blocks[b++] = (tr_block){MODEL_BLOCK_MTP, d};
  if (s->sched.n_stages > s->n_blocks)
    return tr_fail(s, 2, "%d stages but the model has only %d blocks (embedding, %d layers, head, %d MTP)",
                   s->sched.n_stages, s->n_blocks, m->layers, m->mtp_depth);
  return 0;
}

/* ---------------------------------------------------------------- partition
 *
 * Contiguous blocks per stage, minimising the largest stage cost. (Under DualPipe a rank runs
 * stages r and S-1-r; balancing the pair's sum instead yields stages of very different depth whose
 * F&B ops cannot overlap layer for layer, which costs more than it saves.) */

/* What a block adds to a stage's time: its serial F + B + W, or, where F&B pairs overlap, the
 * larger of its compute on the SMs left and its all-to-alls (plus TP, never overlapped). */
static sim_ps unit_cost(const tr_sim *s, const tr_unit *u) {
  sim_ps comp = u->attn_f + u->mlp_f + u->attn_b + u->mlp_b + u->attn_w + u->mlp_w;
  sim_ps comm = u->disp_f + u->comb_f + u->comb_b + u->disp_b;
  int k = s->plan.schedule;
  if (s->plan.overlap && comm > 0 && (k == SCHED_DUALPIPE || k == SCHED_DUALPIPEV)) {
    sim_ps st = overlap_stretch(comp, s->cfg->topo->gpu.sms, s->plan.comm_sms);
    return (st > comm ? st : comm) + u->tp_f + u->tp_b;
  }
  return comp + comm + u->tp_f + u->tp_b;
}

/* Parameters of a block, split into dense and routed-expert parts. */
static void block_params(const tr_sim *s, const tr_block *b, double *dense, double *expert) {
  model_params p;
  model_param_counts(&s->model, &p);
  const model_moe *e = &s->model.moe;
  double routed = (double)e->routed_experts * (double)p.expert;
  *dense = *expert = 0;
  switch (b->kind) {
  case MODEL_BLOCK_EMBED: *dense = (double)p.embed; break;
  case MODEL_BLOCK_DENSE: *dense = (double)(p.attn + p.block_norms + p.dense_ffn); break;
  case MODEL_BLOCK_MOE:
    *dense = (double)(p.attn + p.block_norms + p.gate) + (double)e->shared_experts * (double)p.expert;
    *expert = routed;
    break;
  case MODEL_BLOCK_HEAD: *dense = (double)(p.final_norm + (p.head ? p.head : p.embed)); break;
  case MODEL_BLOCK_MTP: {
    double one = (double)p.mtp / s->model.mtp_depth;
    *expert = e->routed_experts ? routed : 0;
    *dense = one - *expert;
    break;
  }
  default: break;
  }
}

/* Activation bytes one token leaves in a block (for the backward). */
static double block_act(const tr_sim *s, const tr_block *b) {
  model_memory mem;
  model_memory_use(&s->model, &mem);
  double h = s->model.hidden, layer_in = h * 2; /* the BF16 residual stream */
  int full = s->plan.recompute_full;
  switch (b->kind) {
  case MODEL_BLOCK_DENSE: return full ? layer_in : mem.act_dense;
  case MODEL_BLOCK_MOE: return full ? layer_in : mem.act_moe;
  case MODEL_BLOCK_HEAD: return layer_in; /* the final norm's input; the loss is fused (no logits kept) */
  case MODEL_BLOCK_MTP: /* its inputs (hidden state and next-token embedding), its layer, its head input */
    return 2 * layer_in + (full ? layer_in : (s->model.moe.routed_experts ? mem.act_moe : mem.act_dense)) + layer_in;
  default: return 0;
  }
}

static int part_totals(tr_sim *s);

int tr_partition(tr_sim *s) {
  int n = s->n_blocks, S = s->sched.n_stages;
  double *pre = util_xcalloc((size_t)n + 1, sizeof *pre);
  for (int i = 0; i < n; i++) pre[i + 1] = pre[i] + (double)unit_cost(s, &s->units[i]);
  /* best[k][i]: the smallest largest stage cost cutting blocks [0, i) into k stages; cut[k][i]
   * where the last stage starts. Ties keep the earliest cut. */
  double *best = util_xmalloc((size_t)(S + 1) * (size_t)(n + 1) * sizeof *best);
  int *cut = util_xcalloc((size_t)(S + 1) * (size_t)(n + 1), sizeof *cut);
#define BEST(k, i) best[(size_t)(k) * (size_t)(n + 1) + (size_t)(i)]
#define CUT(k, i) cut[(size_t)(k) * (size_t)(n + 1) + (size_t)(i)]
  for (int k = 0; k <= S; k++)
    for (int i = 0; i <= n; i++) BEST(k, i) = INFINITY;
  BEST(0, 0) = 0;
  for (int k = 1; k <= S; k++)
    for (int i = k; i <= n - (S - k); i++)
      for (int j = k - 1; j < i; j++) {
        double prev = BEST(k - 1, j);
        if (isinf(prev)) continue;
        double c = pre[i] - pre[j], v = prev > c ? prev : c;
        if (v < BEST(k, i)) BEST(k, i) = v, CUT(k, i) = j;
      }
  s->n_parts = S;
  s->parts = util_xcalloc((size_t)S, sizeof *s->parts);
  for (int k = S, i = n; k >= 1; k--) {
    int j = CUT(k, i);
    s->parts[k - 1].first = j;
    s->parts[k - 1].n = i - j;
    i = j;
  }
#undef BEST
#undef CUT
  free(pre);
  free(best);
  free(cut);
  return part_totals(s);
}

/* Parameters and activations of each part from its blocks. */
static int part_totals(tr_sim *s) {
  for (int k = 0; k < s->n_parts; k++) {
    tr_part *p = &s->parts[k];
    for (int i = p->first; i < p->first + p->n; i++) {
      double d, e;
      block_params(s, &s->blocks[i], &d, &e);
      p->params_dense += d;
      p->params_expert += e;
      p->act_bytes += block_act(s, &s->blocks[i]) * s->tokens;
    }
    assert(p->n > 0);
  }
  return 0;
}

/* ---------------------------------------------------------------- groups and memory */

int tr_parts_of_rank(const tr_sim *s, int rank, int *parts) {
  int n = 0;
  for (int d = 0; d < s->sched.n_dirs; d++)
    for (int st = 0; st < s->sched.n_stages; st++) {
      if (s->sched.stage_rank[d * s->sched.n_stages + st] != rank) continue;
      int seen = 0;
      for (int i = 0; i < n; i++) seen |= parts[i] == st;
      if (!seen) parts[n++] = st;
    }
  return n;
}

/* Ranks holding part p (1, or 2 under DualPipe where both directions run every stage). */
static int holders(const tr_sim *s, int part, int *ranks) {
  int n = 0;
  for (int d = 0; d < s->sched.n_dirs; d++) {
    int r = s->sched.stage_rank[d * s->sched.n_stages + part], seen = 0;
    for (int i = 0; i < n; i++) seen |= ranks[i] == r;
    if (!seen) ranks[n++] = r;
  }
  return n;
}

/* Orders a group for its ring rail-major (by local index, then node), as NCCL's rings run on a
 * rail-optimised cluster: consecutive members share a rail and a leaf, and each node is left once
 * per local index. Insertion sort: groups are small and mostly ordered already. */
static void rail_order(const tr_sim *s, int *g, int n) {
  const topo *t = s->cfg->topo;
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0; j--) {
      int a = g[j - 1], b = g[j];
      int ka = topo_local_of(t, a), kb = topo_local_of(t, b);
      if (ka < kb || (ka == kb && topo_node_of(t, a) <= topo_node_of(t, b))) break;
      g[j - 1] = b, g[j] = a;
    }
}

int tr_dense_group(const tr_sim *s, int part, int *gpus) {
  int rk[2], nh = holders(s, part, rk), n = 0;
  for (int h = 0; h < nh; h++)
    for (int d = 0; d < s->plan.dp; d++) gpus[n++] = tr_gpu(s, rk[h], d, 0);
  rail_order(s, gpus, n);
  return n;
}

int tr_expert_group(const tr_sim *s, int part, int *gpus) {
  int rk[2], nh = holders(s, part, rk), n = 0, groups = s->plan.dp * s->plan.tp / s->plan.ep;
  for (int h = 0; h < nh; h++)
    for (int j = 0; j < groups; j++) gpus[n++] = rk[h] * s->plan.dp * s->plan.tp + j * s->plan.ep;
  rail_order(s, gpus, n);
  return n;
}

static double fmt_bytes(int f) {
  switch (f) {
  case MODEL_FP32: return 4;
  case MODEL_BF16: return 2;
  case MODEL_FP8: return 1;
  default: return 0;
  }
}

/* Peak live activation bytes of rank r along its op order. */
static double peak_act(const tr_sim *s, int r) {
  const sched_rank *rk = &s->sched.ranks[r];
  double live = 0, peak = 0;
  for (size_t i = 0; i < rk->n_ops; i++) {
    const sched_op *op = &rk->ops[i];
    if (op->kind == SCHED_F || op->kind == SCHED_FB) live += s->parts[op->f.stage].act_bytes;
    if (live > peak) peak = live;
    if (op->kind == SCHED_B || op->kind == SCHED_BI || op->kind == SCHED_FB) live -= s->parts[op->b.stage].act_bytes;
  }
  return peak;
}

int tr_memory(tr_sim *s) {
  int R = s->plan.pp;
  const model_precision *pr = &s->model.prec;
  double wb = fmt_bytes(pr->weights), gb = fmt_bytes(pr->grads), mb = fmt_bytes(pr->master),
         ob = 2 * fmt_bytes(pr->moments);
  if (pr->weights == MODEL_NONE) wb = 0;
  s->mem_weights = util_xcalloc((size_t)R, sizeof(double));
  s->mem_grads = util_xcalloc((size_t)R, sizeof(double));
  s->mem_opt = util_xcalloc((size_t)R, sizeof(double));
  s->mem_act = util_xcalloc((size_t)R, sizeof(double));
  int *parts = util_xmalloc((size_t)s->n_parts * sizeof *parts);
  int *grp = util_xmalloc((size_t)(2 * s->gpus + 2) * sizeof *grp);
  double cap = s->cfg->topo->gpu.hbm_gib * 1073741824.0;
  int worst = 0, z = s->plan.zero;
  double worst_total = -1;
  for (int r = 0; r < R; r++) {
    int np = tr_parts_of_rank(s, r, parts);
    for (int i = 0; i < np; i++) {
      const tr_part *p = &s->parts[parts[i]];
      double gd = tr_dense_group(s, parts[i], grp), ge = tr_expert_group(s, parts[i], grp);
      double d = p->params_dense / s->plan.tp, e = p->params_expert / s->plan.ep;
      s->mem_weights[r] += d * wb / (z >= 3 ? gd : 1) + e * wb / (z >= 3 ? ge : 1);
      s->mem_grads[r] += d * gb / (z >= 2 ? gd : 1) + e * gb / (z >= 2 ? ge : 1);
      s->mem_opt[r] += d * (mb + ob) / (z >= 1 ? gd : 1) + e * (mb + ob) / (z >= 1 ? ge : 1);
    }
    s->mem_act[r] = peak_act(s, r);
    double total = s->mem_weights[r] + s->mem_grads[r] + s->mem_opt[r] + s->mem_act[r];
    if (total > worst_total) worst_total = total, worst = r;
  }
  free(parts);
  free(grp);
  if (worst_total > cap) {
    const double G = 1073741824.0;
    return tr_fail(s, 2,
                   "the plan does not fit in HBM: pipeline rank %d needs %.1f GiB (weights %.1f, gradients %.1f, "
                   "optimizer %.1f, activations %.1f at the peak) but the %s has %.0f GiB; try a higher zero stage, "
                   "recompute.full, a smaller micro_batch_seqs, or more pp/tp/ep",
                   worst, worst_total / G, s->mem_weights[worst] / G, s->mem_grads[worst] / G, s->mem_opt[worst] / G,
                   s->mem_act[worst] / G, s->cfg->topo->gpu.model ? s->cfg->topo->gpu.model : "GPU",
                   s->cfg->topo->gpu.hbm_gib);
  }
  return 0;
}
