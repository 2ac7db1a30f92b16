/* tests/test_whatif.c — the hardware suggestions as mechanisms (sim/whatif.h): each hw_features
 * switch changes what it should and nothing else. The model's FP8 passes (quantize bytes by hand;
 * transposed GEMM removes exactly the transpose ops, online quantization exactly the quantize ops
 * and the GEMMs' operand reads), LogFMT payload bytes (LogFMT-10 = 10/16 of BF16 plus its tile
 * metadata) and the EP collective's counted bytes, hardware forwarding (no SM work at the
 * forwarder: never slower, faster when SM-bound, identical without SMs), the promotion study's fit
 * and the steps rule, the cluster edits, and a small training step: offload never slower and, in a
 * schedule without overlap, its gain bounded by the exposed communication; every switch never
 * slower; all of them together at least as good as the best one alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "schedule.h"
#include "test.h"
#include "train.h"
#include "whatif.h"

#define Q8 (1 + 4.0 / 128)

/* ---------------------------------------------------------------- model passes */

static model_spec v3_like(void) {
  model_spec m;
  model_init(&m);
  m.name = "v3-like";
  m.vocab = 1000, m.hidden = 7168, m.layers = 4, m.dense_layers = 1, m.ffn_intermediate = 18432, m.seq_len = 256;
  m.attn = (model_attn){.kind = MODEL_MLA, .heads = 128, .q_lora_rank = 1536, .kv_lora_rank = 512,
                        .qk_nope_head_dim = 128, .qk_rope_head_dim = 64, .v_head_dim = 128};
  m.moe = (model_moe){.routed_experts = 256, .shared_experts = 1, .experts_per_token = 8, .expert_intermediate = 2048,
                      .expert_groups = 8, .groups_per_token = 4, .gate = MODEL_GATE_SIGMOID};
  m.prec.gemm = MODEL_FP8;
  m.recompute = (model_recompute){.rmsnorm = 1, .mla_up = 1, .swiglu = 1, .expert_out = 1};
  return m;
}

static const model_op *find(const model_op *ops, size_t n, model_pass pass, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (ops[i].pass == pass && !ops[i].recompute && strcmp(ops[i].name, name) == 0) return &ops[i];
  return NULL;
}

static int same_op(const model_op *a, const model_op *b) {
  return strcmp(a->name, b->name) == 0 && a->pass == b->pass && a->cls == b->cls && a->recompute == b->recompute &&
         a->flops == b->flops && a->bytes == b->bytes && a->m == b->m && a->n == b->n && a->k == b->k;
}

/* Quantize ops by hand: BF16 read (2 bytes), FP8 and a 4-byte scale per 128 written. */
static void test_quant_bytes(void) {
  model_spec m = v3_like();
  model_op *ops = malloc(MODEL_MAX_OPS * sizeof *ops);
  size_t n = model_block_ops(&m, MODEL_BLOCK_MOE, 1, ops);
  double T = 256;
  const model_op *q = find(ops, n, MODEL_PASS_F, "attn.q_down.quant_x");
  T_CHECK(q && q->cls == MODEL_OP_QUANT && q->flops == 0);
  if (q) T_NEAR(q->bytes, T * 7168 * (2 + Q8), 1e-6);
  q = find(ops, n, MODEL_PASS_F, "moe.routed.down.quant_x"); /* every dispatched row's SwiGLU output */
  T_CHECK(q != NULL);
  if (q) T_NEAR(q->bytes, T * 8 * 2048 * (2 + Q8), 1e-6);
  q = find(ops, n, MODEL_PASS_B, "attn.o_proj.quant_dy");
  T_CHECK(q != NULL);
  if (q) T_NEAR(q->bytes, T * 7168 * (2 + Q8), 1e-6);
  q = find(ops, n, MODEL_PASS_W, "attn.kv_up.transpose_x");
  T_CHECK(q && q->cls == MODEL_OP_TRANSPOSE);
  if (q) T_NEAR(q->bytes, T * 512 * 2 * Q8, 1e-6);
  /* kv_down reads the q path's copy of x: no quantize or transpose of its own */
  T_CHECK(find(ops, n, MODEL_PASS_F, "attn.kv_down.quant_x") == NULL);
  T_CHECK(find(ops, n, MODEL_PASS_W, "attn.kv_down.transpose_x") == NULL);
  T_CHECK(find(ops, n, MODEL_PASS_W, "attn.kv_down.transpose_dy") != NULL);
  /* the router and the head stay BF16: nothing to quantize */
  T_CHECK(find(ops, n, MODEL_PASS_F, "moe.gate.quant_x") == NULL && find(ops, n, MODEL_PASS_B, "moe.gate.quant_dy") == NULL);
  /* a BF16 model has none of these passes */
  m.prec.gemm = MODEL_BF16;
  n = model_block_ops(&m, MODEL_BLOCK_MOE, 1, ops);
  for (size_t i = 0; i < n; i++) T_CHECK(ops[i].cls != MODEL_OP_QUANT && ops[i].cls != MODEL_OP_TRANSPOSE);
  free(ops);
}

/* Transposed GEMM removes exactly the transpose ops (and their bytes); nothing else changes. */
static void test_transposed_gemm_removes_exactly(void) {
  model_spec m = v3_like();
  model_op *a = malloc(MODEL_MAX_OPS * sizeof *a), *b = malloc(MODEL_MAX_OPS * sizeof *b);
  for (int blk = MODEL_BLOCK_EMBED; blk < MODEL_BLOCK_COUNT; blk++) {
    m.prec.wgrad_transpose = 1;
    size_t na = model_block_ops(&m, (model_block)blk, 1, a);
    m.prec.wgrad_transpose = 0;
    size_t nb = model_block_ops(&m, (model_block)blk, 1, b);
    double removed = 0, expect = 0;
    size_t j = 0;
    for (size_t i = 0; i < na; i++) {
      if (a[i].cls == MODEL_OP_TRANSPOSE) {
        removed += a[i].bytes;
        continue;
      }
      T_CHECK(j < nb && same_op(&a[i], &b[j]));
      j++;
    }
    T_EQ_INT(j, nb);
    for (size_t i = 0; i < nb; i++) T_CHECK(b[i].cls != MODEL_OP_TRANSPOSE);
    /* by hand: every FP8 Wgrad transposes its dy (T x out), and its x (T x in) unless it shares it */
    double T = 256, h = 7168, rows = T * 8;
    if (blk == MODEL_BLOCK_MOE) {
      double attn = T * (1536 + 128 * 192 + 576 + 128 * 256 + h) + T * (h + 1536 + 512 + 128 * 128);
      double shared = T * (2 * 2048 + h) + T * (h + 2048);
      double routed = rows * (2 * 2048 + h) + rows * (h + 2048);
      expect = (attn + shared + routed) * 2 * Q8;
      T_NEAR(removed / expect, 1, 1e-12);
    }
    if (blk == MODEL_BLOCK_EMBED || blk == MODEL_BLOCK_HEAD) T_NEAR(removed, 0, 0);
  }
  free(a);
  free(b);
}

/* Online quantization removes exactly the quantize ops; the FP8 GEMMs read BF16 and write the FP8
 * copy the backward keeps; FLOPs never change. */
static void test_online_quant_removes_exactly(void) {
  model_spec m = v3_like();
  model_op *a = malloc(MODEL_MAX_OPS * sizeof *a), *b = malloc(MODEL_MAX_OPS * sizeof *b);
  m.prec.quant_passes = 1;
  size_t na = model_block_ops(&m, MODEL_BLOCK_MOE, 1, a);
  m.prec.quant_passes = 0;
  size_t nb = model_block_ops(&m, MODEL_BLOCK_MOE, 1, b);
  size_t j = 0, nq = 0;
  double fa = 0, fb = 0;
  for (size_t i = 0; i < na; i++) {
    fa += a[i].flops;
    if (a[i].cls == MODEL_OP_QUANT) {
      nq++;
      continue;
    }
    T_CHECK(j < nb && strcmp(a[i].name, b[j].name) == 0 && a[i].pass == b[j].pass && a[i].flops == b[j].flops);
    if (j < nb && a[i].cls != MODEL_OP_GEMM && a[i].cls != MODEL_OP_GROUPED) T_CHECK(same_op(&a[i], &b[j]));
    j++;
  }
  for (size_t i = 0; i < nb; i++) {
    fb += b[i].flops;
    T_CHECK(b[i].cls != MODEL_OP_QUANT);
  }
  T_EQ_INT(j, nb);
  T_CHECK(nq > 0);
  T_NEAR(fa, fb, 0);
  /* q_down's Fprop reads x in BF16 and writes its FP8 copy; its Dgrad reads dy in BF16 */
  double T = 256, h = 7168;
  const model_op *o = find(b, nb, MODEL_PASS_F, "attn.q_down");
  T_CHECK(o != NULL);
  if (o) T_NEAR(o->bytes, T * h * 2 + h * 1536 + T * 1536 * 2 + T * h * Q8, 1e-6);
  o = find(b, nb, MODEL_PASS_B, "attn.q_down");
  T_CHECK(o != NULL);
  if (o) T_NEAR(o->bytes, T * 1536 * 2 + h * 1536 + T * h * 2 + T * 1536 * Q8, 1e-6);
  /* model FLOPs per token are the same with and without the passes */
  model_flops f1, f2;
  m.prec.quant_passes = 1, m.prec.wgrad_transpose = 1;
  model_flops_per_token(&m, &f1);
  m.prec.quant_passes = 0, m.prec.wgrad_transpose = 0;
  model_flops_per_token(&m, &f2);
  T_NEAR(f1.train, f2.train, 0);
  T_NEAR(f1.recompute, f2.recompute, 0);
  free(a);
  free(b);
}

/* ---------------------------------------------------------------- EP payloads and forwarding */

static void test_logfmt_bytes(void) {
  double h = 7168, tiles = 56;
  T_NEAR(coll_ep_payload_bytes(COLL_EP_FMT_BF16, 7168), 2 * h, 0);
  T_NEAR(coll_ep_payload_bytes(COLL_EP_FMT_FP8, 7168), h + tiles * 4, 0);
  /* LogFMT-10: 10/16 of BF16's element bytes, plus the tile metadata */
  T_NEAR(coll_ep_payload_bytes(COLL_EP_FMT_LOGFMT10, 7168) - tiles * COLL_EP_LOGFMT_TILE_BYTES, 2 * h * 10 / 16, 0);
  T_NEAR(coll_ep_payload_bytes(COLL_EP_FMT_LOGFMT8, 7168) - tiles * COLL_EP_LOGFMT_TILE_BYTES, h, 0);
  /* the default combine is BF16 and the old entry point agrees */
  T_NEAR(coll_ep_payload_bytes(COLL_EP_FMT_DEFAULT, 7168), 2 * h, 0);
  T_NEAR(coll_ep_token_bytes(7168, 8, 1, 0), 16 * ceil((h + tiles * 4 + 8 + 64) / 16), 0);
}

/* 4 nodes x 2 H800 on a multi-rail two-layer fat-tree of Quantum-2 switches. */
static topo *small_cluster(int nodes, int gpn, int fabric) {
  topo_spec sp;
  topo_spec_init(&sp);
  sp.name = "whatif-small";
  sp.gpu = hwcat_builtin_h800();
  sp.nic = hwcat_builtin_cx7();
  sp.sw = hwcat_builtin_qm9700();
  sp.nodes = nodes;
  sp.gpus_per_node = gpn;
  sp.scaleup = TOPO_SCALEUP_NVSWITCH;
  sp.nics_per_gpu = 1;
  sp.fabric.kind = fabric;
  sp.fabric.levels = 2;
  sp.fabric.cable = sp.fabric.endpoint_cable = hwcat_builtin_optical_400g();
  char err[256];
  topo *t = topo_build(&sp, err, sizeof err);
  if (!t) fprintf(stderr, "small_cluster: %s\n", err);
  return t;
}

static void test_ep_payload_and_forwarding(void) {
  topo *t = small_cluster(4, 2, TOPO_FABRIC_MULTI_RAIL);
  T_CHECK(t != NULL);
  if (!t) return;
  ep_routing *r = ep_routing_new(8, 256, 4, 32);
  ep_routing_deepep(r, 4, 2, 5);
  coll_ep_result a, b;
  /* combine in BF16 vs LogFMT-10: DeepEP's counted bytes scale exactly with the payload */
  coll_ep_cfg c = {.hidden = 7168, .dispatch_fp8 = 1, .sms = 8, .kernel = COLL_EP_TWO_HOP};
  T_EQ_INT(coll_ep_run(t, 1, &c, r, 1, &a), 0);
  c.fmt[1] = COLL_EP_FMT_LOGFMT10;
  T_EQ_INT(coll_ep_run(t, 1, &c, r, 1, &b), 0);
  double ratio = coll_ep_payload_bytes(COLL_EP_FMT_LOGFMT10, 7168) / coll_ep_payload_bytes(COLL_EP_FMT_BF16, 7168);
  for (int i = 0; i < 8; i++) T_NEAR(b.rdma_bytes[i], a.rdma_bytes[i] * ratio, 1e-6 * a.rdma_bytes[i]);
  T_CHECK(b.end - b.start < a.end - a.start);
  coll_ep_result_free(&a), coll_ep_result_free(&b);
  /* the codec on the SMs costs SM time, never less */
  c.codec_sm_factor = 1.0;
  T_EQ_INT(coll_ep_run(t, 1, &c, r, 1, &a), 0);
  c.codec_sm_factor = 0;
  T_EQ_INT(coll_ep_run(t, 1, &c, r, 1, &b), 0);
  T_CHECK(a.end - a.start >= b.end - b.start);
  coll_ep_result_free(&a), coll_ep_result_free(&b);
  /* hardware forwarding: the same bytes on the same links, no SM work at the forwarder */
  for (int sms = 0; sms <= 24; sms += 2) {
    coll_ep_cfg f = {.hidden = 7168, .dispatch_fp8 = 1, .sms = sms, .kernel = COLL_EP_TWO_HOP};
    for (int comb = 0; comb < 2; comb++) {
      f.hw_forward = 0;
      T_EQ_INT(coll_ep_run(t, 1, &f, r, comb, &a), 0);
      f.hw_forward = 1;
      T_EQ_INT(coll_ep_run(t, 1, &f, r, comb, &b), 0);
      sim_ps ta = a.end - a.start, tb = b.end - b.start;
      T_CHECKF(tb <= ta, "sms %d combine %d: %llu > %llu", sms, comb, (unsigned long long)tb, (unsigned long long)ta);
      if (sms == 0) T_EQ_INT(tb, ta); /* no SMs: nothing to remove */
      if (sms == 2) T_CHECKF(tb < ta, "2 SMs (SM-bound): %llu vs %llu", (unsigned long long)tb, (unsigned long long)ta);
      T_NEAR(a.scaleout_bytes, b.scaleout_bytes, 0);
      T_NEAR(a.nvlink_bytes, b.nvlink_bytes, 0);
      coll_ep_result_free(&a), coll_ep_result_free(&b);
    }
  }
  ep_routing_free(r);
  topo_free(t);
}

/* ---------------------------------------------------------------- promotion */

static kt_row promo_row(int p, int64_t n, double us) {
  kt_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.host, sizeof r.host, "h");
  snprintf(r.device, sizeof r.device, "cpu");
  snprintf(r.kernel, sizeof r.kernel, "gemm");
  snprintf(r.variant, sizeof r.variant, "promo_k=%d/x", p);
  snprintf(r.dtype, sizeof r.dtype, "fp8_e4m3");
  r.m = 256, r.n = n, r.k = 7168, r.groups = 1, r.median_us = us + 50, r.min_us = us;
  return r;
}

static void test_promotion_fit_and_steps(void) {
  /* exact lines t = a + b x (x = 128 / p): the fit returns b / (a + b) */
  kt_row rows[10];
  int ps[] = {128, 64, 32, 16, 8};
  for (int i = 0; i < 5; i++) rows[i] = promo_row(ps[i], 2048, 1000 + 40 * (128.0 / ps[i]));
  for (int i = 0; i < 5; i++) rows[5 + i] = promo_row(ps[i], 7168, 2000 + 100 * (128.0 / ps[i]));
  whatif_promo p;
  char err[200];
  T_EQ_INT(whatif_promo_fit(rows, 10, &p, err, sizeof err), 0);
  T_EQ_INT(p.shapes, 2);
  T_NEAR(p.min_frac, 40.0 / 1040, 1e-12);
  T_NEAR(p.max_frac, 100.0 / 2100, 1e-12);
  T_NEAR(p.step_frac, (40.0 / 1040 + 100.0 / 2100) / 2, 1e-12);
  /* noise that makes finer intervals faster counts as no cost, not a negative one */
  for (int i = 0; i < 5; i++) rows[i] = promo_row(ps[i], 2048, 1000 - 10 * (128.0 / ps[i]));
  T_EQ_INT(whatif_promo_fit(rows, 5, &p, err, sizeof err), 0);
  T_NEAR(p.step_frac, 0, 0);
  /* one interval is no study */
  T_CHECK(whatif_promo_fit(rows, 1, &p, err, sizeof err) != 0 && strstr(err, "promo_k"));
  /* steps per 128-block: a step both promotes and scales */
  whatif_hw hw;
  whatif_hw_init(&hw);
  T_NEAR(whatif_promo_steps(&hw), 1, 0);
  T_CHECK(!whatif_promo_needed(&hw) && !whatif_hw_active(&hw));
  hw.accum_fp32 = 1;
  T_NEAR(whatif_promo_steps(&hw), 1, 0); /* still scaled on CUDA cores every block */
  hw.accum_fp32 = 0, hw.mma_block_scaling = 1;
  T_NEAR(whatif_promo_steps(&hw), 1, 0); /* still promoted for precision every 128 */
  hw.accum_fp32 = 1;
  T_NEAR(whatif_promo_steps(&hw), 0, 0);
  whatif_promo q = {.shapes = 1, .step_frac = 0.05};
  T_NEAR(whatif_fp8_gemm_factor(&hw, &q), 0.95, 1e-15);
  whatif_hw_init(&hw);
  hw.promotion_interval = 32; /* finer promotion: 4 steps a block */
  T_NEAR(whatif_promo_steps(&hw), 4, 0);
  T_NEAR(whatif_fp8_gemm_factor(&hw, &q), 1.15, 1e-15);
  hw.accum_fp32 = 1; /* only the scaling steps remain */
  T_NEAR(whatif_promo_steps(&hw), 1, 0);
  T_NEAR(whatif_fp8_gemm_factor(&hw, NULL), 1, 0);
  /* the measured table shipped with the experiments fits */
  T_EQ_INT(whatif_promo_load("topologies/measured/fp8-promotion-cpu.csv", &p, err, sizeof err), 0);
  T_CHECKF(p.shapes >= 2 && p.step_frac > 0 && p.step_frac < 0.5, "%d shapes, %g", p.shapes, p.step_frac);
}

/* ---------------------------------------------------------------- cluster edits */

static void test_cluster_edits(void) {
  topo_spec s;
  topo_spec_init(&s);
  s.gpu = hwcat_builtin_h800();
  s.nic = hwcat_builtin_cx7();
  s.sw = hwcat_builtin_qm9700();
  s.nodes = 256, s.gpus_per_node = 8, s.nics_per_gpu = 1, s.nvswitch_chips = 4;
  s.fabric.kind = TOPO_FABRIC_MULTI_RAIL;
  whatif_hw hw;
  whatif_hw_init(&hw);
  char err[200];
  topo_spec a = s;
  hw.scaleup_domain_gpus = 64; /* 32 domains; 64 rails of one leaf each fit radix 64 */
  T_EQ_INT(whatif_apply_topo(&hw, &a, err, sizeof err), 0);
  T_EQ_INT(a.nodes * a.gpus_per_node, 2048);
  T_EQ_INT(a.gpus_per_node, 64);
  T_EQ_INT(a.fabric.kind, TOPO_FABRIC_MULTI_RAIL);
  a = s;
  hw.scaleup_domain_gpus = 72; /* 28 domains (2016 GPUs); 72 rails > 64 leaves: a plain fat-tree */
  T_EQ_INT(whatif_apply_topo(&hw, &a, err, sizeof err), 0);
  T_EQ_INT(a.nodes, 28);
  T_EQ_INT(a.fabric.kind, TOPO_FABRIC_FAT_TREE);
  a = s;
  hw.scaleup_domain_gpus = 4096;
  T_CHECK(whatif_apply_topo(&hw, &a, err, sizeof err) != 0);
  /* bandwidth convergence: each GPU's scale-out payload rate becomes its scale-up figure */
  whatif_hw_init(&hw);
  hw.scaleout_converged = 1;
  a = s;
  T_EQ_INT(whatif_apply_topo(&hw, &a, err, sizeof err), 0);
  double now = a.nic.bw_gbps / 8 * hwcat_nic_payload_fraction(&a.nic);
  T_NEAR(now, a.gpu.scaleup_achievable_gbyte_s, 1e-9);
  T_NEAR(a.sw.port_gbps, a.nic.bw_gbps, 1e-9);
  /* fabric swaps keep everything else */
  whatif_hw_init(&hw);
  hw.fabric = WHATIF_FABRIC_FT3;
  a = s;
  T_EQ_INT(whatif_apply_topo(&hw, &a, err, sizeof err), 0);
  T_CHECK(a.fabric.kind == TOPO_FABRIC_FAT_TREE && a.fabric.levels == 3 && a.nodes == 256 && a.nic.bw_gbps == s.nic.bw_gbps);
  char d[600];
  whatif_hw_init(&hw);
  whatif_describe(&hw, WHATIF_TRAIN, d, sizeof d);
  T_EQ_STR(d, "today's hardware");
  hw.transposed_gemm = 1;
  whatif_describe(&hw, WHATIF_DECODE, d, sizeof d);
  T_CHECK(strstr(d, "nothing to remove") != NULL);
  whatif_describe(&hw, WHATIF_TRAIN, d, sizeof d);
  T_CHECK(strstr(d, "transpose passes") != NULL && !strchr(d, ','));
}

/* ---------------------------------------------------------------- a training step */

static int wt_tables = 1; /* 0: no kernel table, every op on the roofline */

typedef struct wt {
  model_spec m;
  topo *t;
  compute_ctx *c;
  whatif_hw hw;
  train_cfg cfg;
} wt;

/* A small FP8 MoE model, PP 2 x DP 4 on 4 nodes of 2 H800s (EP 4 spans two nodes: two-hop). */
static void wt_init(wt *x, int schedule, int comm_sms, const whatif_hw *hw, double fp8_factor) {
  model_init(&x->m);
  x->m.name = "wt";
  x->m.vocab = 512, x->m.hidden = 2048, x->m.layers = 4, x->m.seq_len = 2048; /* GEMMs FLOP-bound at roofline */
  x->m.attn = (model_attn){.kind = MODEL_GQA, .heads = 16, .kv_heads = 4, .head_dim = 128};
  x->m.moe = (model_moe){.routed_experts = 8, .shared_experts = 1, .experts_per_token = 2, .expert_intermediate = 1024,
                         .expert_groups = 1, .groups_per_token = 1, .gate = MODEL_GATE_SIGMOID};
  x->m.prec.gemm = MODEL_FP8;
  x->hw = *hw;
  whatif_apply_model(&x->hw, &x->m);
  x->t = small_cluster(4, 2, TOPO_FABRIC_MULTI_RAIL);
  compute_target tg = {.device = "h800", .fp8_tflops = 1979, .bf16_tflops = 989, .hbm_gbyte_s = 3350};
  x->c = compute_new(&tg);
  /* DeepGEMM's H800 rows: FP8 GEMM times from real kernels, whose promotion steps the factor changes */
  if (wt_tables && compute_load_table(x->c, "topologies/published/h800-deepgemm.csv") != 0)
    fprintf(stderr, "wt_init: no DeepGEMM table\n");
  x->cfg = (train_cfg){.model = &x->m, .topo = x->t, .compute = x->c,
                       .plan = {.pp = 2, .ep = 4, .tp = 1, .zero = 1, .micro_batch_seqs = 1, .global_batch_seqs = 32,
                                .schedule = schedule, .virt = 1, .comm_sms = hw->comm_offload ? 0 : comm_sms, .overlap = 1},
                       .routing = {.balance = TRAIN_BALANCE_BIAS, .seed = 1, .samples = 1},
                       .dispatch_fp8 = 1, .price_usd_per_gpu_hour = 2, .net_seed = 1, .hw = &x->hw,
                       .fp8_gemm_factor = fp8_factor};
}

static int wt_run(int schedule, int comm_sms, const whatif_hw *hw, double fp8_factor, train_result *r) {
  wt x;
  wt_init(&x, schedule, comm_sms, hw, fp8_factor);
  char err[256];
  int rc = x.t ? train_run(&x.cfg, r, err, sizeof err) : -1;
  if (rc) fprintf(stderr, "wt_run: %s\n", err);
  compute_free(x.c);
  topo_free(x.t);
  return rc;
}

static void test_offload_bounds(void) {
  whatif_hw base, off;
  whatif_hw_init(&base);
  off = base;
  off.comm_offload = 1;
  train_result a, b;
  /* 1F1B: no overlap, compute never shares the SMs, so the gain is the communication's alone */
  for (int sms = 4; sms <= 20; sms += 8) {
    T_EQ_INT(wt_run(SCHED_1F1B, sms, &base, 1, &a), 0);
    T_EQ_INT(wt_run(SCHED_1F1B, sms, &off, 1, &b), 0);
    double gain = a.step_s - b.step_s;
    T_CHECKF(gain >= 0, "offload slower with %d SMs: %g -> %g", sms, a.step_s, b.step_s);
    T_CHECKF(gain <= a.phases.exposed_comm_s + 1e-9, "gain %g > exposed communication %g", gain, a.phases.exposed_comm_s);
    T_NEAR(b.phases.f_s + b.phases.b_s + b.phases.w_s, a.phases.f_s + a.phases.b_s + a.phases.w_s, 1e-9);
  }
  /* DualPipe: compute also gets the SMs back; never slower */
  T_EQ_INT(wt_run(SCHED_DUALPIPE, 20, &base, 1, &a), 0);
  T_EQ_INT(wt_run(SCHED_DUALPIPE, 20, &off, 1, &b), 0);
  T_CHECKF(b.step_s <= a.step_s, "%g -> %g", a.step_s, b.step_s);
}

static void test_each_and_all(void) {
  whatif_hw base;
  whatif_hw_init(&base);
  whatif_hw one[6], all = base;
  const double f_steps = 0.9; /* the FP8 GEMM factor with no promotion steps (a 10% step share) */
  for (int i = 0; i < 6; i++) one[i] = base;
  one[0].comm_offload = 1;
  one[1].unified_network = 1;
  one[2].online_quant = 1;
  one[3].transposed_gemm = 1;
  one[4].accum_fp32 = one[4].mma_block_scaling = 1;
  one[5].ep_fmt[0] = COLL_EP_FMT_LOGFMT8, one[5].ep_fmt[1] = COLL_EP_FMT_LOGFMT10;
  all.comm_offload = all.unified_network = all.online_quant = all.transposed_gemm = 1;
  all.accum_fp32 = all.mma_block_scaling = 1;
  all.ep_fmt[0] = COLL_EP_FMT_LOGFMT8, all.ep_fmt[1] = COLL_EP_FMT_LOGFMT10;
  train_result r0, r, ra;
  T_EQ_INT(wt_run(SCHED_DUALPIPE, 8, &base, 1, &r0), 0);
  double best = r0.step_s;
  for (int i = 0; i < 6; i++) {
    T_EQ_INT(wt_run(SCHED_DUALPIPE, 8, &one[i], i == 4 ? f_steps : 1, &r), 0);
    T_CHECKF(r.step_s <= r0.step_s, "suggestion %d slower: %g -> %g", i, r0.step_s, r.step_s);
    if (r.step_s < best) best = r.step_s;
    /* what a switch does not touch stays: memory, GPUs, model FLOPs */
    T_NEAR(r.peak_mem_gib, r0.peak_mem_gib, 1e-12);
    T_NEAR(r.model_flops_per_token, r0.model_flops_per_token, 0);
    if (i == 3) T_CHECK(r.phases.w_s < r0.phases.w_s && r.phases.f_s == r0.phases.f_s); /* W passes only */
    if (i == 4) { /* FP8 GEMMs 10% faster where FLOP-bound: compute shrinks, by at most 10% */
      double c0 = r0.phases.f_s + r0.phases.b_s + r0.phases.w_s, c1 = r.phases.f_s + r.phases.b_s + r.phases.w_s;
      T_CHECKF(c1 < c0 && c1 >= 0.9 * c0 - 1e-12, "compute %g -> %g", c0, c1);
    }
    if (i == 5) T_CHECK(r.ep_combine_ms < r0.ep_combine_ms);
  }
  T_CHECK(best < r0.step_s);
  T_EQ_INT(wt_run(SCHED_DUALPIPE, 8, &all, f_steps, &ra), 0);
  T_CHECKF(ra.step_s <= best, "all %g vs best single %g", ra.step_s, best);
  /* the same inputs give the same step */
  T_EQ_INT(wt_run(SCHED_DUALPIPE, 8, &all, f_steps, &r), 0);
  T_CHECK(r.step_s == ra.step_s);
}

/* A roofline time is FLOPs at the peak: no promotion steps in it to remove. */
static void test_promotion_needs_a_kernel(void) {
  whatif_hw hw;
  whatif_hw_init(&hw);
  hw.accum_fp32 = hw.mma_block_scaling = 1;
  train_result a, b;
  wt_tables = 0;
  T_EQ_INT(wt_run(SCHED_1F1B, 8, &hw, 1, &a), 0);
  T_EQ_INT(wt_run(SCHED_1F1B, 8, &hw, 0.9, &b), 0);
  T_CHECK(a.step_s == b.step_s);
  wt_tables = 1;
  T_EQ_INT(wt_run(SCHED_1F1B, 8, &hw, 1, &a), 0);
  T_EQ_INT(wt_run(SCHED_1F1B, 8, &hw, 0.9, &b), 0);
  T_CHECK(b.step_s < a.step_s);
}

int main(void) {
  T_RUN(test_quant_bytes);
  T_RUN(test_transposed_gemm_removes_exactly);
  T_RUN(test_online_quant_removes_exactly);
  T_RUN(test_logfmt_bytes);
  T_RUN(test_ep_payload_and_forwarding);
  T_RUN(test_promotion_fit_and_steps);
  T_RUN(test_cluster_edits);
  T_RUN(test_offload_bounds);
  T_RUN(test_each_and_all);
  T_RUN(test_promotion_needs_a_kernel);
  return t_done();
}
