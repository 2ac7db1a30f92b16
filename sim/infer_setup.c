/* sim/infer_setup.c — prepares a deployment unit (infer.h): resolves the cluster, checks that
 * the plan fits (experts and slots divide over the GPUs, weights and the reserve fit in HBM, the
 * KV cache holds the longest request and the asked concurrency), draws the traffic sample, routes
 * two windows of synthetic tokens per routing pattern with the V3 gate — EPLB plans the redundant
 * experts on the first, the simulation uses the second — and works out each slot's share of the
 * routed tokens. Every plan error names the YAML key at fault (path:line:col). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer_int.h"
#include "util.h"

/* ---- random numbers (splitmix64: small, seedable, good enough for sampling) ---- */

uint64_t infer_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double infer_rng_uniform(uint64_t *s) { return ((double)(infer_rng_next(s) >> 11) + 0.5) * 0x1.0p-53; }

double infer_dist_draw(const infer_dist *d, uint64_t *rng) {
  double x = d->mean;
  switch (d->kind) {
  case INFER_DIST_EXPONENTIAL: x = -d->mean * log(infer_rng_uniform(rng)); break;
  case INFER_DIST_LOGNORMAL: {
    double s2 = log(1 + d->cv * d->cv), mu = log(d->mean) - s2 / 2;
    double u1 = infer_rng_uniform(rng), u2 = infer_rng_uniform(rng);
    x = exp(mu + sqrt(s2) * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    break;
  }
  case INFER_DIST_UNIFORM: x = d->mean * (1 + d->cv * (2 * infer_rng_uniform(rng) - 1)); break;
  default: break;
  }
  double lo = d->min_tokens > 1 ? d->min_tokens : 1;
  if (x < lo) x = lo;
  if (d->max_tokens > 0 && x > d->max_tokens) x = d->max_tokens;
  return floor(x + 0.5);
}

/* ---- errors at the right key ---- */

static const cfg_node *key_node(const cfg_node *map, const char *key) {
  const cfg_node *n = map && key && cfg_node_kind(map) == CFG_MAP ? cfg_node_get(map, key) : NULL;
  return n ? n : map;
}

static const cfg_node *deploy_at(const infer_setup *s, const char *key) { return key_node(s->d_node, key); }

/* ---- the compute projection ---- */

/* The target is the cluster's GPU; every catalogue GPU's peaks are known, so rows of other
 * devices (an H100's FlashAttention figure) teach their efficiency. */
static int load_compute(cfg_ctx *ctx, infer_setup *s) {
  const topo *t = s->t;
  infer_spec *sp = s->spec;
  compute_target tg = {.device = t->gpu.model ? t->gpu.model : "target", .fp8_tflops = t->gpu.fp8_tflops,
                       .bf16_tflops = t->gpu.bf16_tflops, .hbm_gbyte_s = t->gpu.hbm_gbyte_s};
  s->cc = compute_new(&tg);
  hwcat cat = {0};
  if (sp->cluster.catalogue && hwcat_load(ctx, sp->cluster.catalogue, &cat) == 0)
    for (size_t i = 0; i < cat.n_gpus; i++) {
      compute_set_peak(s->cc, cat.gpus[i].model, "fp8_e4m3", cat.gpus[i].fp8_tflops);
      compute_set_peak(s->cc, cat.gpus[i].model, "bf16", cat.gpus[i].bf16_tflops);
    }
  for (size_t i = 0; i < sp->n_kernel_tables; i++)
    if (compute_load_table(s->cc, sp->kernel_tables[i]) != 0) {
      fprintf(stderr, "%s: error: cannot load kernel table: %s\n", sp->kernel_tables[i], strerror(errno));
      return -1;
    }
  s->hw.cc = s->cc;
  return 0;
}

/* The FP8 GEMMs' promotion steps and quantization under hw_features (whatif.h). */
static int load_hw_features(cfg_ctx *ctx, infer_setup *s) {
  const whatif_hw *hw = &s->spec->hw;
  s->hw.online_quant = hw->online_quant;
  if (!whatif_promo_needed(hw) || s->m->prec.gemm != MODEL_FP8) return 0;
  whatif_promo p;
  char err[256];
  if (!hw->promotion_table)
    return cfg_error(ctx, NULL, "hw_features change the FP8 GEMMs' promotion steps: hw_features.promotion_table must "
                     "name the promotion study that says what a step costs");
  if (whatif_promo_load(hw->promotion_table, &p, err, sizeof err) != 0) return cfg_error(ctx, NULL, "%s", err);
  s->hw.fp8_gemm_factor = whatif_fp8_gemm_factor(hw, &p);
  return 0;
}

/* ---- the checks and the sample ---- */

static int check_model(cfg_ctx *ctx, infer_spec *sp) {
  model_spec *m = &sp->model;
  const cfg_node *at = sp->model_node;
  if (!m->moe.routed_experts) m->dense_layers = m->layers;
  if (m->attn.kind == MODEL_MLA && (!m->attn.kv_lora_rank || !m->attn.qk_nope_head_dim || !m->attn.v_head_dim))
    return cfg_error(ctx, key_node(at, "attention"), "MLA needs kv_lora_rank, qk_nope_head_dim and v_head_dim");
  if (m->attn.kind == MODEL_GQA && (!m->attn.kv_heads || !m->attn.head_dim))
    return cfg_error(ctx, key_node(at, "attention"), "GQA needs kv_heads and head_dim");
  if (m->dense_layers > m->layers)
    return cfg_error(ctx, key_node(at, "dense_layers"), "dense_layers (%d) exceeds layers (%d)", m->dense_layers, m->layers);
  if (m->dense_layers > 0 && !m->ffn_intermediate)
    return cfg_error(ctx, at, "dense FFN layers need ffn_intermediate");
  const model_moe *e = &m->moe;
  if (e->routed_experts) {
    if (e->routed_experts % e->expert_groups || e->groups_per_token > e->expert_groups ||
        e->experts_per_token > e->groups_per_token * (e->routed_experts / e->expert_groups))
      return cfg_error(ctx, key_node(at, "moe"), "top-%d of %d groups of %d experts (top %d groups) is not a routing",
                       e->experts_per_token, e->expert_groups, e->routed_experts / e->expert_groups, e->groups_per_token);
  }
  return 0;
}

/* Expert slots: EPLB's routed slots on the first G_routed GPUs, shared replicas on the rest. */
static int plan_slots(cfg_ctx *ctx, infer_setup *s) {
  const model_spec *m = s->m;
  const infer_deploy *d = s->d;
  s->n_log = m->moe.routed_experts;
  s->n_routed_phy = s->n_log + d->redundant_experts;
  int S = m->moe.shared_experts > 0 && d->shared_placement == INFER_SHARED_EXPERTS ? d->shared_replicas : 0;
  if (m->moe.shared_experts > 0 && d->shared_placement == INFER_SHARED_EXPERTS && S == 0)
    return cfg_error(ctx, deploy_at(s, "shared_replicas"), "shared_expert: experts needs shared_replicas > 0");
  s->n_shared_slots = S;
  s->n_slots = s->n_routed_phy + S;
  if (s->n_slots % s->G)
    return cfg_error(ctx, deploy_at(s, S ? "shared_replicas" : "redundant_experts"),
                     "the plan does not fit: %d routed + %d redundant%s expert slots do not divide evenly over the "
                     "unit's %d GPUs",
                     s->n_log, d->redundant_experts, S ? " + shared-replica" : "", s->G);
  s->per_gpu = s->n_slots / s->G;
  if (s->n_routed_phy % s->per_gpu || S % s->per_gpu)
    return cfg_error(ctx, deploy_at(s, "shared_replicas"),
                     "the plan does not fit: with %d slots per GPU, the %d routed and %d shared-replica slots do not "
                     "fill whole GPUs",
                     s->per_gpu, s->n_routed_phy, S);
  s->G_routed = s->n_routed_phy / s->per_gpu;
  if (d->eplb == INFER_EPLB_NONE && d->redundant_experts)
    return cfg_error(ctx, deploy_at(s, "eplb"), "redundant experts need a placement: eplb cannot be none");
  return 0;
}

/* Routes both windows of every pattern, plans, and measures the imbalance. */
static int plan_experts(cfg_ctx *ctx, infer_setup *s) {
  infer_spec *sp = s->spec;
  const model_moe *e = &s->m->moe;
  const infer_routing *ro = &sp->routing;
  int P = s->P = ro->layer_patterns, N = s->pool = ro->pool_tokens, K = s->topk = e->experts_per_token;
  int E = s->n_log;
  double *wplan = util_xmalloc((size_t)P * E * sizeof *wplan), *wuse = util_xcalloc((size_t)P * E, sizeof *wuse);
  eplb_gate_loads(E, e->expert_groups, e->groups_per_token, K, ro->skew_zipf_s, ro->seed, P, 0, N, wplan);
  s->pool_idx = util_xmalloc((size_t)P * N * K * sizeof *s->pool_idx);
  for (int p = 0; p < P; p++) {
    int32_t *idx = s->pool_idx + (size_t)p * N * K;
    eplb_gate_route(E, e->expert_groups, e->groups_per_token, K, ro->skew_zipf_s, ro->seed, p, N, N, idx);
    for (size_t i = 0; i < (size_t)N * K; i++)
      if (idx[i] >= 0) wuse[(size_t)p * E + idx[i]] += 1;
  }
  char why[256];
  int rc = 0, gpn = s->gpn;
  int nodes = s->G_routed % gpn == 0 ? s->G_routed / gpn : 1;
  if (s->d->eplb == INFER_EPLB_NONE) {
    rc = eplb_plan_identity(P, E, s->G_routed, &s->plan, why, sizeof why);
  } else {
    eplb_policy pol = s->d->eplb == INFER_EPLB_HIERARCHICAL ? EPLB_HIERARCHICAL
                      : s->d->eplb == INFER_EPLB_GLOBAL     ? EPLB_GLOBAL
                                                                  : EPLB_AUTO;
    rc = eplb_rebalance(wplan, P, E, s->n_routed_phy, e->expert_groups, nodes, s->G_routed, pol, &s->plan, why,
                        sizeof why);
  }
  if (rc != 0) {
    cfg_error(ctx, deploy_at(s, "eplb"), "expert placement: %s", why);
  } else {
    eplb_plan id = {0};
    int have_id = eplb_plan_identity(P, E, s->G_routed, &id, why, sizeof why) == 0;
    s->imb_planned = s->imb = s->imb_none = 0;
    for (int p = 0; p < P; p++) {
      s->imb_planned += eplb_imbalance(&s->plan, p, wplan + (size_t)p * E) / P;
      s->imb += eplb_imbalance(&s->plan, p, wuse + (size_t)p * E) / P;
      s->imb_none += have_id ? eplb_imbalance(&id, p, wuse + (size_t)p * E) / P : NAN;
    }
    eplb_plan_free(&id);
    /* Each slot's share: replicas take turns over the use window's tokens. */
    s->slot_share = util_xcalloc((size_t)P * s->n_slots, sizeof *s->slot_share);
    uint64_t *cnt = util_xcalloc((size_t)E, sizeof *cnt);
    for (int p = 0; p < P; p++) {
      memset(cnt, 0, (size_t)E * sizeof *cnt);
      double *sh = s->slot_share + (size_t)p * s->n_slots;
      const int32_t *idx = s->pool_idx + (size_t)p * N * K;
      for (size_t i = 0; i < (size_t)N * K; i++)
        if (idx[i] >= 0) sh[eplb_slot_of(&s->plan, p, idx[i], cnt[idx[i]]++)] += 1.0 / N;
      for (int j = 0; j < s->n_shared_slots; j++) sh[s->n_routed_phy + j] = 1.0 / s->n_shared_slots;
    }
    free(cnt);
  }
  free(wplan);
  free(wuse);
  return rc;
}

static void draw_traffic(infer_setup *s) {
  const infer_traffic *tr = &s->spec->traffic;
  s->n_req = tr->requests;
  s->req = util_xmalloc((size_t)s->n_req * sizeof *s->req);
  s->out_cum = util_xmalloc((size_t)s->n_req * sizeof *s->out_cum);
  uint64_t rng = tr->seed * 0x2545f4914f6cdd1dull + 17;
  double sum_out = 0, sum_ctx = 0, in = 0, cached = 0;
  for (int i = 0; i < s->n_req; i++) {
    infer_req *r = &s->req[i];
    r->in = infer_dist_draw(&tr->input, &rng);
    r->out = infer_dist_draw(&tr->output, &rng);
    r->cached = floor(r->in * tr->cache_hit_rate);
    if (r->cached > r->in - 1) r->cached = r->in - 1;
    sum_out += r->out;
    s->out_cum[i] = sum_out;
    /* The generated tokens attend to in, in + 1, ..., in + out - 1 earlier tokens. */
    sum_ctx += r->out * (r->in + (r->out - 1) / 2);
    in += r->in, cached += r->cached;
  }
  s->ctx_per_out = sum_ctx / sum_out;
  s->hit_eff = cached / in;
}

/* hw_features (whatif.h) on the model, the cluster and the units: a unit keeps its GPUs when the
 * scale-up domains change size; offloaded communication holds no SMs; a unified network or a larger
 * scale-up domain lets the low-latency kernels reach same-domain peers over NVLink. */
static int apply_hw(cfg_ctx *ctx, infer_spec *sp) {
  const whatif_hw *hw = &sp->hw;
  char err[256];
  int gpn = sp->cluster.gpus_per_node;
  whatif_apply_model(hw, &sp->model);
  if (whatif_apply_topo(hw, &sp->cluster, err, sizeof err) != 0) return cfg_error(ctx, sp->cluster_node, "%s", err);
  for (int ph = 0; ph < 2; ph++) {
    infer_deploy *d = &sp->unit[ph];
    int ngpn = sp->cluster.gpus_per_node;
    if (ngpn != gpn && sp->unit_node[ph]) {
      if ((d->nodes * gpn) % ngpn || (d->first_node * gpn) % ngpn)
        return cfg_error(ctx, sp->unit_node[ph], "the unit's %d GPUs (from GPU %d) are not whole scale-up domains of %d "
                         "(hw_features.scaleup_domain_gpus)", d->nodes * gpn, d->first_node * gpn, ngpn);
      d->nodes = d->nodes * gpn / ngpn, d->first_node = d->first_node * gpn / ngpn;
    }
    if (hw->comm_offload) d->comm_sms = 0;
    if (hw->unified_network || hw->scaleup_domain_gpus) d->ll_nvlink = 1;
  }
  return 0;
}

topo *infer_spec_cluster(cfg_ctx *ctx, infer_spec *sp) {
  if (check_model(ctx, sp) != 0) return NULL;
  if (topo_spec_resolve(ctx, &sp->cluster, sp->cluster_node) != 0) return NULL;
  if (apply_hw(ctx, sp) != 0) return NULL;
  char err[256];
  topo *t = topo_build(&sp->cluster, err, sizeof err);
  if (!t) cfg_error(ctx, sp->cluster_node, "%s", err);
  return t;
}

infer_setup *infer_setup_new(cfg_ctx *ctx, infer_spec *sp, infer_phase phase, topo *t) {
  infer_setup *s = util_xcalloc(1, sizeof *s);
  s->spec = sp, s->m = &sp->model, s->phase = phase, s->t = t;
  s->d = &sp->unit[phase], s->d_node = sp->unit_node[phase];
  const model_spec *m = s->m;
  const infer_deploy *d = s->d;
  s->gpn = t->gpus_per_node;
  s->G = d->nodes * s->gpn;
  s->tp = d->attn_tp;
  s->n_moe = m->moe.routed_experts ? m->layers - m->dense_layers : 0;
  int rc = 0;
  if (d->first_node + d->nodes > t->n_nodes)
    rc = cfg_error(ctx, deploy_at(s, "nodes"), "the unit needs nodes %d..%d but cluster '%s' has %d nodes",
                   d->first_node, d->first_node + d->nodes - 1, t->name, t->n_nodes);
  else if (s->G % s->tp || m->attn.heads % s->tp)
    rc = cfg_error(ctx, deploy_at(s, "attn_tp"), "attn_tp %d must divide the unit's %d GPUs and the %d heads", s->tp,
                   s->G, m->attn.heads);
  else if (d->mtp_depth > 0 && phase == INFER_DECODE && m->mtp_depth < 1)
    rc = cfg_error(ctx, deploy_at(s, "mtp_depth"), "MTP speculative decoding needs a model with MTP modules (mtp_depth)");
  if (rc == 0) {
    s->gpus = util_xmalloc((size_t)s->G * sizeof *s->gpus);
    for (int i = 0; i < s->G; i++) s->gpus[i] = d->first_node * s->gpn + i;
    s->ll = d->ep_kernel == INFER_EP_AUTO ? phase == INFER_DECODE : d->ep_kernel == INFER_EP_LOW_LATENCY;
    s->hw = (ic_hw){.fp8_flops = t->gpu.fp8_tflops * 1e12, .bf16_flops = t->gpu.bf16_tflops * 1e12,
                    .hbm_bytes = t->gpu.hbm_gbyte_s * 1e9, .src_s = s->src_s};
    if (sp->cost == INFER_COST_KERNEL_TABLE) rc = load_compute(ctx, s);
    if (rc == 0) rc = load_hw_features(ctx, s);
    s->nvl_gbyte_s = t->gpu.scaleup_achievable_gbyte_s;
    s->nic_gbyte_s = t->uplinks_per_gpu > 0 ? t->l[t->up[0]].gbyte_s * t->uplinks_per_gpu : 0;
    s->msg_overhead_ns = t->gpu.rdma_msg_overhead_ns;
    s->sms = t->gpu.sms;
    if (d->comm_sms >= s->sms)
      rc = cfg_error(ctx, deploy_at(s, "comm_sms"), "comm_sms %d leaves no SM of the %d for compute", d->comm_sms, s->sms);
  }
  if (rc == 0 && m->moe.routed_experts) rc = plan_slots(ctx, s);
  if (rc == 0) {
    int shared_here = m->moe.shared_experts > 0 && d->shared_placement == INFER_SHARED_ATTENTION;
    ic_weights(m, s->tp, m->moe.routed_experts ? s->per_gpu : 0, shared_here, &s->w);
    double hbm = t->gpu.hbm_gib * 1073741824.0, reserved = d->reserved_gib * 1073741824.0;
    if (s->w.total + reserved > hbm)
      rc = cfg_error(ctx, deploy_at(s, "nodes"),
                     "the plan does not fit: %.1f GiB of weights per GPU (%.1f attention, %.1f experts, %.1f "
                     "embedding/head) + %.1f GiB reserved exceed the %s's %.0f GiB; use more nodes",
                     s->w.total / 1073741824.0, s->w.attention / 1073741824.0, s->w.experts / 1073741824.0,
                     s->w.embed_head / 1073741824.0, d->reserved_gib, t->gpu.model ? t->gpu.model : "GPU",
                     t->gpu.hbm_gib);
    s->kv_bytes_token = infer_kv_bytes_per_token(m, d->kv_fmt, d->mtp_depth > 0 && m->mtp_depth > 0);
    /* MLA's latent is shared by all heads: every GPU of an attention TP group keeps the group's
     * whole cache. GQA splits the K/V heads over the group. */
    double split = m->attn.kind == MODEL_GQA ? (m->attn.kv_heads >= s->tp ? s->tp : 1) : 1;
    s->kv_cap_tokens = rc == 0 ? (hbm - reserved - s->w.total) / s->kv_bytes_token * split / s->tp : 0;
  }
  if (rc == 0) {
    draw_traffic(s);
    double longest = 0;
    for (int i = 0; i < s->n_req; i++)
      if (s->req[i].in + s->req[i].out > longest) longest = s->req[i].in + s->req[i].out;
    double split = m->attn.kind == MODEL_GQA ? (m->attn.kv_heads >= s->tp ? s->tp : 1) : 1;
    if (longest > s->kv_cap_tokens * s->tp / split)
      rc = cfg_error(ctx, deploy_at(s, "reserved_gib"),
                     "the plan does not fit: a request of %.0f tokens needs %.2f GiB of KV cache, %.2f GiB are free "
                     "per GPU",
                     longest, longest * s->kv_bytes_token / split / 1073741824.0,
                     s->kv_cap_tokens * s->tp / split * s->kv_bytes_token / 1073741824.0);
    int conc = s->d->concurrency_per_gpu;
    if (rc == 0 && phase == INFER_DECODE && conc > 0 && conc * s->ctx_per_out > s->kv_cap_tokens)
      rc = cfg_error(ctx, s->d_node,
                     "the plan does not fit: %d sequences per GPU at %.0f tokens of context need %.1f GiB of KV "
                     "cache, %.1f GiB are free per GPU",
                     conc, s->ctx_per_out, conc * s->ctx_per_out * s->kv_bytes_token / 1073741824.0,
                     s->kv_cap_tokens * s->kv_bytes_token / 1073741824.0);
  }
  if (rc == 0 && m->moe.routed_experts) rc = plan_experts(ctx, s);
  if (rc != 0) {
    infer_setup_free(s);
    return NULL;
  }
  return s;
}

void infer_setup_free(infer_setup *s) {
  if (!s) return;
  compute_free(s->cc);
  free(s->gpus);
  free(s->pool_idx);
  eplb_plan_free(&s->plan);
  free(s->slot_share);
  free(s->req);
  free(s->out_cum);
  isched_free(s->last);
  free(s);
}

const infer_weights *infer_setup_weights(const infer_setup *s) { return &s->w; }
double infer_setup_kv_capacity_tokens(const infer_setup *s) { return s->kv_cap_tokens; }
int infer_setup_gpus(const infer_setup *s) { return s->G; }

void infer_binding(const infer_setup *s, double flop_s, double mem_s, double nvl_bytes, double nic_bytes, double step_s,
                   infer_out *o) {
  o->util_tensor = flop_s / step_s;
  o->util_hbm = mem_s / step_s;
  o->util_nvlink = s->nvl_gbyte_s > 0 ? nvl_bytes / (s->nvl_gbyte_s * 1e9 * step_s) : 0;
  o->util_network = s->nic_gbyte_s > 0 ? nic_bytes / (s->nic_gbyte_s * 1e9 * step_s) : 0;
  struct { const char *name; double u; } r[4] = {
      {"compute", o->util_tensor}, {"hbm", o->util_hbm}, {"nvlink", o->util_nvlink}, {"network", o->util_network}};
  int best = 0;
  for (int i = 1; i < 4; i++)
    if (r[i].u > r[best].u) best = i;
  o->binding = r[best].name;
}

int infer_write_trace(const infer_setup *s, const char *path) {
  if (!s->last) return -1;
  return isched_write_trace(s->last, path);
}
