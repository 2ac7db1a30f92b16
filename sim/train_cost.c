/* sim/train_cost.c — what each piece of a training step costs (train.h): every block's compute
 * (model.h ops through compute.h), the EP all-to-alls and expert load of each routing sample
 * (coll.h on the cluster's network), TP all-reduces and pipeline transfers. Collectives are
 * simulated once per distinct (kind, GPUs, bytes) and reused. F&B ops are in train_fb.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train_int.h"
#include "util.h"
#include "whatif.h"

#define TR_EXPERT_ALIGN 128 /* DeepGEMM's contiguous layout pads each expert's rows to its block M */

static sim_ps ps_of(double s) { return s > 0 ? ps_from_s(s) : 0; }

/* ---------------------------------------------------------------- collectives */

static uint64_t gpus_hash(const int *g, int n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < n; i++) h = (h ^ (uint64_t)(uint32_t)g[i]) * 0x100000001b3ull;
  return h;
}

sim_ps tr_coll_time(tr_sim *s, int kind, const int *gpus, int n, double bytes) {
  if (n <= 1 || bytes <= 0) return 0;
  uint64_t b = (uint64_t)llround(bytes), h = gpus_hash(gpus, n);
  for (size_t i = 0; i < s->n_coll; i++) {
    const tr_coll_memo *m = &s->coll[i];
    if (m->kind == kind && m->n == n && m->bytes == b && m->ghash == h) return m->t;
  }
  coll_spec cs = {.kind = kind, .gpus = gpus, .ranks = n, .bytes = b, .path = NET_PATH_AUTO};
  sim_ps t = coll_run(s->cfg->topo, s->cfg->net_seed, &cs);
  if (s->n_coll == s->cap_coll) {
    s->cap_coll = s->cap_coll ? 2 * s->cap_coll : 32;
    s->coll = util_xrealloc(s->coll, s->cap_coll * sizeof *s->coll);
  }
  s->coll[s->n_coll++] = (tr_coll_memo){kind, n, b, h, t};
  return t;
}

/* ---------------------------------------------------------------- EP */

/* One all-to-all of the EP group whose first GPU is base: its end minus its start. `fmt` is the
 * payload's coll_ep_fmt (DEFAULT: FP8 or BF16 as fp8 says for dispatch, BF16 for combine). */
static sim_ps ep_time(tr_sim *s, const ep_routing *r, int base, int combine, int fp8, int fmt, int *code) {
  const whatif_hw *hw = s->cfg->hw;
  coll_ep_cfg c = {.hidden = s->model.hidden, .dispatch_fp8 = fp8, .sms = s->plan.comm_sms,
                   .kernel = s->cfg->ep_kernel, .gpus = NULL, .base_gpu = base,
                   .codec_sm_factor = hw ? hw->logfmt_codec_sm_factor : 0, .hw_forward = hw && hw->unified_network};
  c.fmt[combine] = fmt;
  coll_ep_result res;
  if (coll_ep_run(s->cfg->topo, s->cfg->net_seed, &c, r, combine, &res) != 0) {
    *code = tr_fail(s, 2, "the EP all-to-all of %d ranks cannot run on cluster %s (message above)", r->ranks,
                    s->cfg->topo->name);
    return SIM_PS_MAX;
  }
  sim_ps t = res.end - res.start;
  coll_ep_result_free(&res);
  return t;
}

/* The first GPU of one EP group per distinct alignment inside the nodes (first GPU mod
 * gpus_per_node): groups aligned alike span alike nodes and are simulated once. Returns how
 * many, into bases[] (room for gpus_per_node). */
static int ep_group_bases(const tr_sim *s, int *bases) {
  int n = 0, gpn = s->cfg->topo->gpus_per_node, per_rank = s->plan.dp * s->plan.tp / s->plan.ep;
  for (int r = 0; r < s->plan.pp; r++)
    for (int j = 0; j < per_rank; j++) {
      int g0 = tr_gpu(s, r, 0, 0) + j * s->plan.ep, seen = 0;
      for (int i = 0; i < n && !seen; i++) seen = bases[i] % gpn == g0 % gpn;
      if (!seen) bases[n++] = g0;
    }
  return n;
}

/* The four all-to-alls of sample r: the slowest over the distinct group alignments (each DP
 * replica waits for its own groups; the step for the slowest replica). */
static int ep_times(tr_sim *s, const ep_routing *r, tr_ep *x) {
  int *bases = util_xmalloc((size_t)s->cfg->topo->gpus_per_node * sizeof *bases), nb = ep_group_bases(s, bases);
  int code = 0;
  for (int i = 0; i < nb && code == 0; i++) {
    sim_ps t[3];
    const whatif_hw *hw = s->cfg->hw;
    t[0] = ep_time(s, r, bases[i], 0, s->cfg->dispatch_fp8, hw ? hw->ep_fmt[0] : 0, &code);
    /* backward: the combine's gradient travels the dispatch path (BF16), the dispatch's gradient
     * the combine path (BF16, reduced); payload formats of hw_features apply to the forward's */
    t[1] = code ? 0 : ep_time(s, r, bases[i], 1, 0, hw ? hw->ep_fmt[1] : 0, &code);
    t[2] = code ? 0 : ep_time(s, r, bases[i], 0, 0, COLL_EP_FMT_DEFAULT, &code);
    if (code) break;
    if (t[0] > x->disp_f) x->disp_f = t[0];
    if (t[1] > x->comb_f) x->comb_f = x->disp_b = t[1];
    if (t[2] > x->comb_b) x->comb_b = t[2];
  }
  free(bases);
  return code;
}

int tr_cost_ep(tr_sim *s) {
  const model_moe *e = &s->model.moe;
  if (!e->routed_experts) return 0;
  int n = s->cfg->routing.samples > 0 ? s->cfg->routing.samples : 1, moe_blocks = 0;
  for (int i = 0; i < s->n_blocks; i++) moe_blocks += s->blocks[i].kind == MODEL_BLOCK_MOE || s->blocks[i].kind == MODEL_BLOCK_MTP;
  if (n > moe_blocks) n = moe_blocks;
  s->n_ep = n;
  s->ep = util_xcalloc((size_t)n, sizeof *s->ep);
  int ep = s->plan.ep, local = e->routed_experts / ep;
  for (int k = 0; k < n; k++) {
    int code = 1;
    ep_routing *r = tr_routing(s, k, &code);
    if (!r) return code;
    tr_ep *x = &s->ep[k];
    if (ep > 1 && (code = ep_times(s, r, x)) != 0) {
      ep_routing_free(r);
      return code;
    }
    /* rows per GPU: the load of its experts, actual and padded to the GEMM block */
    int64_t *load = util_xcalloc((size_t)e->routed_experts, sizeof *load);
    size_t total = (size_t)r->ranks * (size_t)r->tokens * (size_t)r->topk;
    for (size_t i = 0; i < total; i++)
      if (r->idx[i] >= 0) load[r->idx[i]]++;
    x->rows = util_xcalloc((size_t)ep, sizeof *x->rows);
    x->rows_pad = util_xcalloc((size_t)ep, sizeof *x->rows_pad);
    double sum = 0, mx = 0;
    for (int g = 0; g < ep; g++) {
      for (int j = 0; j < local; j++) {
        int64_t l = load[g * local + j];
        x->rows[g] += (double)l;
        x->rows_pad[g] += (double)((l + TR_EXPERT_ALIGN - 1) / TR_EXPERT_ALIGN * TR_EXPERT_ALIGN);
      }
      sum += x->rows[g];
      if (x->rows[g] > mx) mx = x->rows[g];
    }
    x->imbalance = sum > 0 ? mx / (sum / ep) : 1;
    free(load);
    ep_routing_free(r);
  }
  return 0;
}

/* ---------------------------------------------------------------- blocks */

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* 1 for the ops DualPipe's "MLP" component holds (experts, dense FFN), 0 for the rest. */
static int mlp_side(const char *name) {
  return starts(name, "moe.shared.") || starts(name, "moe.routed.") || starts(name, "moe.combine") ||
         (starts(name, "ffn.") && !starts(name, "ffn.norm"));
}

static int pass_of(const model_op *o) { return o->pass == MODEL_PASS_F ? TR_F : o->pass == MODEL_PASS_B ? TR_B : TR_W; }

/* An op's compute_op_cost, with an FP8 GEMM's time scaled by the hardware's promotion steps
 * (train_cfg.fp8_gemm_factor) but never below its bytes at HBM bandwidth. Only times that come
 * from a real kernel (a measured or published row, or a projection from one: DeepGEMM's kernels,
 * one step per block) carry steps to change; a roofline time has none. */
static double op_cost(tr_sim *s, const compute_op *op, compute_cost *out) {
  compute_cost cc;
  double t = compute_op_cost(s->cfg->compute, op, &cc), f = s->cfg->fp8_gemm_factor;
  if (f > 0 && f != 1 && cc.src != COMPUTE_SRC_ROOFLINE && (op->cls == COMPUTE_GEMM || op->cls == COMPUTE_GROUPED) &&
      strncmp(op->dtype, "fp8", 3) == 0) {
    double floor = op->bytes / (s->cfg->topo->gpu.hbm_gbyte_s * 1e9);
    t = t * f > floor ? t * f : floor > t ? t : floor;
    cc.seconds = t;
    size_t u = strlen(cc.from);
    snprintf(cc.from + u, sizeof cc.from - u, "; x%.3f promotion steps", f);
  }
  if (out) *out = cc;
  return t;
}

/* The cost of a non-routed op on one GPU (TP takes 1/tp of it). */
static double op_seconds(tr_sim *s, const model_op *mo, compute_cost *cc) {
  compute_op op;
  compute_op_from_model(mo, &op);
  int tp = s->plan.tp;
  if (tp > 1) {
    op.flops /= tp;
    op.bytes /= tp;
    if (op.cls == COMPUTE_GEMM) { /* the split dimension of a column- or row-parallel linear */
      if (op.n >= op.k) op.n = (op.n + tp - 1) / tp;
      else op.k = (op.k + tp - 1) / tp;
    }
  }
  return op_cost(s, &op, cc);
}

/* The cost of a routed-expert op on a GPU computing `rows` (padded) rows of `local` experts; the
 * model op is for the whole micro-batch (base rows = tokens x top-k, over all experts). */
static double routed_seconds(tr_sim *s, const model_op *mo, double rows, compute_cost *cc) {
  compute_op op;
  compute_op_from_model(mo, &op);
  const model_moe *e = &s->model.moe;
  double base = s->tokens_mb * e->experts_per_token, local = (double)e->routed_experts / s->plan.ep;
  double f = base > 0 ? rows / base : 0;
  op.flops *= f;
  if (op.cls == COMPUTE_GROUPED) {
    double sz = mo->dtype == MODEL_FP8 ? 1 : 2, in, out;
    op.groups = (int64_t)local;
    if (mo->pass == MODEL_PASS_W) {
      in = (double)mo->m, out = (double)mo->n;
      op.m = (int64_t)(in * local);
      op.k = (int64_t)(rows / local > 1 ? rows / local : 1);
      op.bytes = rows * in * sz + rows * out * sz + local * in * out * 4;
    } else {
      in = (double)mo->k, out = (double)mo->n;
      op.m = (int64_t)rows;
      op.bytes = rows * in * sz + local * in * out * sz + rows * out * 2;
    }
  } else {
    op.bytes *= f;
  }
  if (rows <= 0) return 0;
  return op_cost(s, &op, cc);
}

/* Adds the routed ops of `ops` for sample k on its slowest GPU (per pass) to u. */
static void add_routed(tr_sim *s, tr_unit *u, const model_op *ops, size_t n, int k) {
  const tr_ep *x = &s->ep[k];
  int ep = s->plan.ep;
  double best[TR_NPASS] = {0};
  int who[TR_NPASS] = {0};
  for (int g = 0; g < ep; g++) {
    double t[TR_NPASS] = {0};
    for (size_t i = 0; i < n; i++)
      if (starts(ops[i].name, "moe.routed.")) t[pass_of(&ops[i])] += routed_seconds(s, &ops[i], x->rows_pad[g], NULL);
    for (int p = 0; p < TR_NPASS; p++)
      if (t[p] > best[p]) best[p] = t[p], who[p] = g;
  }
  for (size_t i = 0; i < n; i++) {
    if (!starts(ops[i].name, "moe.routed.")) continue;
    int p = pass_of(&ops[i]);
    compute_cost cc;
    double t = routed_seconds(s, &ops[i], x->rows_pad[who[p]], &cc);
    u->src_s[p][cc.src] += t;
  }
  u->mlp_f += ps_of(best[TR_F]);
  u->mlp_b += ps_of(best[TR_B]);
  u->mlp_w += ps_of(best[TR_W]);
}

static int block_unit(tr_sim *s, const tr_block *b, tr_unit *u) {
  memset(u, 0, sizeof *u);
  model_op *ops = util_xmalloc(MODEL_MAX_OPS * sizeof *ops);
  size_t n = model_block_ops(&s->model, (model_block)b->kind, s->plan.micro_batch_seqs, ops);
  int moe = (b->kind == MODEL_BLOCK_MOE || b->kind == MODEL_BLOCK_MTP) && s->model.moe.routed_experts > 0;
  double t[2][TR_NPASS] = {{0}};
  for (size_t i = 0; i < n; i++) {
    if (moe && starts(ops[i].name, "moe.routed.")) continue;
    compute_cost cc;
    double sec = op_seconds(s, &ops[i], &cc);
    int p = pass_of(&ops[i]);
    t[mlp_side(ops[i].name)][p] += sec;
    u->src_s[p][cc.src] += sec;
  }
  u->attn_f = ps_of(t[0][TR_F]), u->attn_b = ps_of(t[0][TR_B]), u->attn_w = ps_of(t[0][TR_W]);
  u->mlp_f = ps_of(t[1][TR_F]), u->mlp_b = ps_of(t[1][TR_B]), u->mlp_w = ps_of(t[1][TR_W]);
  if (moe) {
    int k = (b->kind == MODEL_BLOCK_MTP ? s->model.layers + b->layer : b->layer) % s->n_ep;
    add_routed(s, u, ops, n, k);
    u->disp_f = s->ep[k].disp_f, u->comb_f = s->ep[k].comb_f;
    u->comb_b = s->ep[k].comb_b, u->disp_b = s->ep[k].disp_b;
  }
  free(ops);
  /* TP: one all-reduce of the block's activations per attention and per dense FFN, each way
   * (sequence parallelism: an all-gather and a reduce-scatter moving the same bytes) */
  if (s->plan.tp > 1) {
    int n_ar = b->kind == MODEL_BLOCK_DENSE ? 2 : b->kind == MODEL_BLOCK_MOE || b->kind == MODEL_BLOCK_MTP ? 1
             : b->kind == MODEL_BLOCK_EMBED ? 1 : 0;
    int *g = util_xmalloc((size_t)s->plan.tp * sizeof *g);
    for (int i = 0; i < s->plan.tp; i++) g[i] = i;
    sim_ps ar = tr_coll_time(s, COLL_ALLREDUCE_RING, g, s->plan.tp, s->tokens_mb * s->model.hidden * 2);
    free(g);
    if (ar == SIM_PS_MAX) return tr_fail(s, 1, "the TP all-reduce cannot run on cluster %s", s->cfg->topo->name);
    u->tp_f = (sim_ps)n_ar * ar;
    u->tp_b = b->kind == MODEL_BLOCK_EMBED ? 0 : (sim_ps)n_ar * ar;
  }
  /* Full recomputation re-runs the forward (compute and all-to-alls) before the backward. */
  if (s->plan.recompute_full && (b->kind == MODEL_BLOCK_DENSE || b->kind == MODEL_BLOCK_MOE || b->kind == MODEL_BLOCK_MTP)) {
    u->attn_b += u->attn_f;
    u->mlp_b += u->mlp_f;
    u->comb_b += u->disp_f;
    u->disp_b += u->comb_f;
    u->tp_b += u->tp_f;
    for (int c = 0; c < COMPUTE_SRC_COUNT; c++) u->src_s[TR_B][c] += u->src_s[TR_F][c];
  }
  return 0;
}

int tr_cost_blocks(tr_sim *s) {
  s->units = util_xcalloc((size_t)s->n_blocks, sizeof *s->units);
  /* blocks of one kind share their costs unless their routing sample differs */
  for (int i = 0; i < s->n_blocks; i++) {
    const tr_block *b = &s->blocks[i];
    int reuse = -1;
    for (int j = 0; j < i && reuse < 0; j++) {
      const tr_block *c = &s->blocks[j];
      if (c->kind != b->kind) continue;
      if (b->kind == MODEL_BLOCK_MOE && c->layer % (s->n_ep ? s->n_ep : 1) != b->layer % (s->n_ep ? s->n_ep : 1)) continue;
      if (b->kind == MODEL_BLOCK_MTP) continue;
      reuse = j;
    }
    if (reuse >= 0) {
      s->units[i] = s->units[reuse];
      continue;
    }
    int rc = block_unit(s, b, &s->units[i]);
    if (rc) return rc;
  }
  return 0;
}

void tr_cost_parts(tr_sim *s) {
  for (int k = 0; k < s->n_parts; k++) {
    tr_part *p = &s->parts[k];
    for (int i = p->first; i < p->first + p->n; i++) {
      const tr_unit *u = &s->units[i];
      p->f += u->attn_f + u->disp_f + u->mlp_f + u->comb_f + u->tp_f;
      p->w += u->attn_w + u->mlp_w;
      p->b += u->comb_b + u->mlp_b + u->mlp_w + u->disp_b + u->attn_b + u->attn_w + u->tp_b;
      p->f_comp += u->attn_f + u->mlp_f;
      p->b_comp += u->attn_b + u->mlp_b;
      for (int q = 0; q < TR_NPASS; q++)
        for (int c = 0; c < COMPUTE_SRC_COUNT; c++) p->src_s[q][c] += u->src_s[q][c];
    }
    p->bi = p->b - p->w;
    p->w_comp = p->w;
  }
  s->fb = util_xcalloc((size_t)s->n_parts * (size_t)s->n_parts, sizeof *s->fb);
}

int tr_cost_p2p(tr_sim *s) {
  int R = s->plan.pp;
  s->p2p = util_xcalloc((size_t)R * (size_t)R, sizeof *s->p2p);
  double bytes = s->tokens * s->model.hidden * 2; /* BF16 activations (or gradients) of one GPU's share */
  for (int r = 0; r < R; r++) {
    const sched_rank *rk = &s->sched.ranks[r];
    for (size_t i = 0; i < rk->n_send; i++) {
      int to = rk->send[i].peer;
      if (s->p2p[r * R + to]) continue;
      int g[2] = {tr_gpu(s, r, 0, 0), tr_gpu(s, to, 0, 0)};
      sim_ps t = tr_coll_time(s, COLL_P2P, g, 2, bytes);
      if (t == SIM_PS_MAX)
        return tr_fail(s, 1, "no route between GPUs %d and %d of cluster %s", g[0], g[1], s->cfg->topo->name);
      s->p2p[r * R + to] = t ? t : 1;
    }
  }
  return 0;
}

void tr_print_sources(tr_sim *s, FILE *f) {
  int bi = -1;
  for (int i = 0; i < s->n_blocks && bi < 0; i++)
    if (s->blocks[i].kind == MODEL_BLOCK_MOE) bi = i;
  if (bi < 0) bi = 1;
  model_op *ops = util_xmalloc(MODEL_MAX_OPS * sizeof *ops);
  size_t n = model_block_ops(&s->model, (model_block)s->blocks[bi].kind, s->plan.micro_batch_seqs, ops);
  fprintf(f, "op costs  one %s, one micro-batch (%.0f tokens per GPU), on %s\n", model_block_name(s->blocks[bi].kind),
          s->tokens, s->cfg->topo->gpu.model ? s->cfg->topo->gpu.model : "the GPU");
  fprintf(f, "  %-22s %-4s %10s  %-10s %s\n", "op", "pass", "time_us", "source", "from");
  for (size_t i = 0; i < n; i++) {
    compute_cost cc;
    double t;
    if (starts(ops[i].name, "moe.routed.") && s->n_ep) {
      double mean = 0;
      for (int g = 0; g < s->plan.ep; g++) mean += s->ep[0].rows_pad[g];
      t = routed_seconds(s, &ops[i], mean / s->plan.ep, &cc);
    } else {
      t = op_seconds(s, &ops[i], &cc);
    }
    fprintf(f, "  %-22s %-4s %10.1f  %-10s %s%s\n", ops[i].name, ops[i].recompute ? "B(r)" : model_pass_name(ops[i].pass),
            t * 1e6, compute_src_name(cc.src), cc.from, cc.memory_bound && cc.src == COMPUTE_SRC_PROJECTED ? " [HBM-bound]" : "");
  }
  free(ops);
}
