/* tests/test_train.c — the training-step simulator (sim/train.h): the event-core replay against a
 * hand-derived 1F1B timeline and the schedule module's ideal replay, a golden tiny case (2 PP ranks,
 * 2 EP ranks) checked against the hand formula and a fixed figure, the HBM-fit and plan errors,
 * memory against hand formulas, determinism, the comm_sms mechanism, F&B overlap bounds and
 * ordering, and bias balancing of skewed routing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "train.h"
#include "train_int.h"
#include "util.h"

#define MS 1000000000ULL /* picoseconds per millisecond */

/* A tiny MoE model: embedding, 2 MoE layers (4 experts, top-2, 1 shared), head; GQA attention. */
static model_spec tiny_model(void) {
  model_spec m;
  model_init(&m);
  m.name = "tiny";
  m.vocab = 512, m.hidden = 256, m.layers = 2, m.dense_layers = 0, m.ffn_intermediate = 0, m.seq_len = 256;
  m.attn = (model_attn){.kind = MODEL_GQA, .heads = 4, .kv_heads = 2, .head_dim = 64};
  m.moe = (model_moe){.routed_experts = 4, .shared_experts = 1, .experts_per_token = 2, .expert_intermediate = 128,
                      .expert_groups = 1, .groups_per_token = 1, .gate = MODEL_GATE_SIGMOID};
  return m;
}

/* One node of `gpus` H800s on an NVSwitch, no scale-out fabric. */
static topo *tiny_topo(int gpus, double hbm_gib) {
  topo_spec sp;
  topo_spec_init(&sp);
  sp.name = "tiny-node";
  sp.gpu = hwcat_builtin_h800();
  sp.gpu.hbm_gib = hbm_gib;
  sp.nic = (hw_nic){.ports = 1, .mtu_bytes = 4096};
  sp.sw = (hw_switch){.radix = 1, .port_gbps = 1};
  sp.nodes = 1;
  sp.gpus_per_node = gpus;
  sp.fabric.kind = TOPO_FABRIC_NONE;
  char err[256];
  topo *t = topo_build(&sp, err, sizeof err);
  if (!t) fprintf(stderr, "tiny_topo: %s\n", err);
  return t;
}

typedef struct tiny {
  model_spec m;
  topo *t;
  compute_ctx *c;
  train_cfg cfg;
} tiny;

static void tiny_init(tiny *x, int schedule, int global_batch, int comm_sms, double hbm_gib) {
  x->m = tiny_model();
  x->t = tiny_topo(4, hbm_gib);
  compute_target tg = {.device = "h800", .fp8_tflops = 1979, .bf16_tflops = 989, .hbm_gbyte_s = 3350};
  x->c = compute_new(&tg);
  x->cfg = (train_cfg){.model = &x->m, .topo = x->t, .compute = x->c,
                       .plan = {.pp = 2, .ep = 2, .tp = 1, .zero = 1, .micro_batch_seqs = 1,
                                .global_batch_seqs = global_batch, .schedule = schedule, .virt = 1, .comm_sms = comm_sms,
                                .overlap = 1},
                       .routing = {.balance = TRAIN_BALANCE_BIAS, .seed = 1, .samples = 1},
                       .dispatch_fp8 = 0, .price_usd_per_gpu_hour = 2, .net_seed = 1};
}

static void tiny_free(tiny *x) {
  compute_free(x->c);
  topo_free(x->t);
}

/* 1F1B, PP 2, 2 micro-batches, F = 1 ms, B = 2 ms, 0.5 ms per transfer, nothing else: by hand
 *   rank 0: F0 [0,1]  F1 [1,2]                     B0 [5,7]  B1 [8,10]
 *   rank 1:        F0 [1.5,2.5] B0 [2.5,4.5] F1 [4.5,5.5] B1 [5.5,7.5]
 * (rank 1's F0 waits for act0 sent at 1; rank 0's B0 for grad0 sent at 4.5; B1 for grad1 at 7.5). */
static void test_replay_hand_1f1b(void) {
  tiny x;
  tiny_init(&x, SCHED_1F1B, 4, 0, 80);
  char err[256];
  tr_sim s;
  int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
  T_CHECKF(rc == 0, "%s", err);
  if (rc == 0) {
    T_EQ_INT(s.n_parts, 2);
    for (int p = 0; p < 2; p++) {
      tr_part *q = &s.parts[p];
      q->f = q->f_comp = 1 * MS;
      q->b = q->bi = q->b_comp = 2 * MS;
      q->w = q->w_comp = 0;
      q->params_dense = q->params_expert = 0; /* no gradients to sync, no optimizer */
      memset(q->src_s, 0, sizeof q->src_s);
    }
    s.p2p[0 * 2 + 1] = s.p2p[1 * 2 + 0] = MS / 2;
    train_result res;
    memset(&res, 0, sizeof res);
    T_EQ_INT(tr_replay(&s, &res), 0);
    T_NEAR(res.step_s, 10e-3, 1e-15);
    T_NEAR(res.phases.f_s, 2e-3, 1e-15); /* per rank: 2 forwards */
    T_NEAR(res.phases.b_s, 4e-3, 1e-15);
    T_NEAR(res.phases.bubble_s, 4e-3, 1e-15);
    T_NEAR(res.phases.exposed_comm_s, 0, 1e-15);
    /* the schedule module's list-scheduler replay agrees */
    sched_cost c = {.f = 1 * MS, .b = 2 * MS, .w = 0, .fb = 3 * MS, .p2p = MS / 2};
    sched_replay rp;
    T_EQ_INT(sched_replay_run(&s.sched, &c, &rp, err, sizeof err), 0);
    T_EQ_INT(rp.makespan, 10 * MS);
    sched_replay_free(&rp);
  }
  tr_sim_free(&s);
  tiny_free(&x);
}

/* The same check on every schedule: with uniform costs and latency the event-core replay ends
 * exactly where the schedule module's replay does (DualPipe's F&B taken as F + B: no comm). */
static void test_replay_matches_schedule_module(void) {
  static const int kinds[] = {SCHED_1F1B, SCHED_ZB1P, SCHED_DUALPIPE, SCHED_DUALPIPEV, SCHED_INTERLEAVED};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    tiny x;
    tiny_init(&x, kinds[k], 16, 0, 80);
    x.m.layers = 6; /* enough blocks for DualPipeV's and interleaved's 4 stages */
    x.cfg.plan.virt = 2;
    char err[256];
    tr_sim s;
    int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
    T_CHECKF(rc == 0, "%s: %s", sched_kind_name(kinds[k]), err);
    if (rc == 0) {
      for (int p = 0; p < s.n_parts; p++) {
        tr_part *q = &s.parts[p];
        q->f = q->f_comp = 3 * MS;
        q->b = 5 * MS, q->w = q->w_comp = 2 * MS, q->bi = q->b_comp = 3 * MS;
        q->params_dense = q->params_expert = 0;
      }
      for (int i = 0; i < s.n_parts * s.n_parts; i++) s.fb[i] = (tr_fb){.done = 1, .time = 8 * MS};
      for (int i = 0; i < 4; i++) s.p2p[i] = MS / 4;
      train_result res;
      memset(&res, 0, sizeof res);
      T_EQ_INT(tr_replay(&s, &res), 0);
      sched_cost c = {.f = 3 * MS, .b = 5 * MS, .w = 2 * MS, .fb = 8 * MS, .p2p = MS / 4};
      sched_replay rp;
      T_EQ_INT(sched_replay_run(&s.sched, &c, &rp, err, sizeof err), 0);
      T_CHECKF(ps_from_s(res.step_s) == rp.makespan, "%s: %.9g s vs %.9g s", sched_kind_name(kinds[k]), res.step_s,
               ps_to_s(rp.makespan));
      sched_replay_free(&rp);
    }
    tr_sim_free(&s);
    tiny_free(&x);
  }
}

/* The tiny case end to end: 2 PP ranks x 2 DP replicas, EP 2, 1F1B, 2 micro-batches. The step is
 * the hand timeline of test_replay_hand_1f1b with the real stage costs (F_s, B_s, transfers d)
 * plus each rank's data-parallel tail, and a fixed golden figure. */
static void test_golden_tiny(void) {
  tiny x;
  tiny_init(&x, SCHED_1F1B, 4, 0, 80);
  char err[256];
  tr_sim s;
  int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
  T_CHECKF(rc == 0, "%s", err);
  train_result res;
  if (rc == 0) rc = train_run(&x.cfg, &res, err, sizeof err);
  T_CHECKF(rc == 0, "%s", err);
  if (rc == 0) {
    double F0 = ps_to_s(s.parts[0].f), B0 = ps_to_s(s.parts[0].b), F1 = ps_to_s(s.parts[1].f), B1 = ps_to_s(s.parts[1].b);
    double d01 = ps_to_s(s.p2p[1]), d10 = ps_to_s(s.p2p[2]);
    double a1 = F0 + d01, t1 = a1 + F1 + B1;
    double t2 = fmax(t1, 2 * F0 + d01) + F1 + B1;
    double t3 = fmax(2 * F0, t1 + d10) + B0;
    double t4 = fmax(t3, t2 + d10) + B0;
    /* DP tail: reduce-scatter of FP32 gradients over the 2 replicas (experts: 1 replica), the
     * optimizer at HBM speed, the weights all-gathered, per rank */
    double tail[2];
    int g[4];
    for (int r = 0; r < 2; r++) {
      const tr_part *p = &s.parts[r];
      int n = tr_dense_group(&s, r, g);
      T_EQ_INT(n, 2);
      double rs = ps_to_s(tr_coll_time(&s, COLL_REDUCE_SCATTER_RING, g, n, p->params_dense * 4));
      double ag = ps_to_s(tr_coll_time(&s, COLL_ALLGATHER_RING, g, n, p->params_dense * 2));
      T_EQ_INT(tr_expert_group(&s, r, g), 1);
      double opt = (p->params_dense / 2 + p->params_expert / 2) * (4 + 2 * 4 + 4 * 4 + 2) / 3350e9;
      tail[r] = rs + ps_to_s(ps_from_s(opt)) + ag;
    }
    double expect = fmax(t4 + tail[0], t2 + tail[1]);
    T_NEAR(res.step_s, expect, 1e-11);
    /* golden: regenerate only when a cost model changes on purpose */
    T_NEAR(res.step_s, 0.000094133753, 1e-12);
    const train_phases *p = &res.phases;
    T_NEAR(p->f_s + p->b_s + p->w_s + p->bubble_s + p->exposed_comm_s + p->optimizer_s, res.step_s, 1e-12);
    T_EQ_INT(res.gpus, 4);
    T_EQ_INT(res.micro_batches, 2);
    T_NEAR(res.tokens_per_step, 4 * 256, 0);
    T_NEAR(res.tokens_per_s, 1024 / res.step_s, 1e-6);
    T_NEAR(res.gpu_hours_per_t_tokens, 4 * res.step_s / 3600 * 1e12 / 1024, 1e-3);
    T_NEAR(res.usd_per_t_tokens, 2 * res.gpu_hours_per_t_tokens, 1e-3);
    T_NEAR(res.mfu, res.tflops_per_gpu / 989, 1e-12); /* the tiny model computes in BF16 */
    T_CHECK(res.expert_imbalance >= 1);
    T_CHECK(res.ep_dispatch_ms > 0 && res.ep_combine_ms > 0);
  }
  tr_sim_free(&s);
  tiny_free(&x);
}

static void test_hbm_fit_error(void) {
  tiny x;
  tiny_init(&x, SCHED_1F1B, 4, 0, 0.001); /* 1 MiB of HBM */
  char err[512];
  train_result res;
  T_EQ_INT(train_run(&x.cfg, &res, err, sizeof err), 2);
  T_CHECKF(strstr(err, "does not fit in HBM") && strstr(err, "GiB"), "%s", err);
  tiny_free(&x);
}

static void test_plan_errors(void) {
  struct { int ep, global, schedule, pp; const char *msg; } cases[] = {
      {3, 4, SCHED_1F1B, 2, "ep (3) must divide"},
      {2, 5, SCHED_1F1B, 2, "global_batch_seqs (5)"},
      {2, 4, SCHED_DUALPIPE, 2, "dualpipe"},  /* 2 micro-batches < 2 PP */
      {2, 12, SCHED_1F1B, 4, "stages but the model has only"}, /* 4 stages, 4 blocks: fine... */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tiny x;
    tiny_init(&x, cases[i].schedule, cases[i].global, 0, 80);
    x.cfg.plan.ep = cases[i].ep;
    x.cfg.plan.pp = cases[i].pp;
    if (cases[i].pp == 4) x.cfg.plan.pp = 4, x.cfg.plan.ep = 1, x.cfg.plan.global_batch_seqs = 4, x.m.layers = 1;
    char err[512] = "";
    train_result res;
    int rc = train_run(&x.cfg, &res, err, sizeof err);
    T_CHECKF(rc == 2 && strstr(err, cases[i].msg), "case %zu: rc %d: %s", i, rc, err);
    tiny_free(&x);
  }
}

/* Memory of rank 0 against the hand formula: its stage's dense parameters replicated over DP 2,
 * its experts split over EP 2; BF16 weights, FP32 gradients and master, FP32 moments (the tiny
 * model's defaults); ZeRO shards what its stage says over the group (dense 2, experts 1). */
static void test_memory_hand(void) {
  for (int z = 0; z <= 3; z++) {
    tiny x;
    tiny_init(&x, SCHED_1F1B, 4, 0, 80);
    x.cfg.plan.zero = z;
    char err[256];
    tr_sim s;
    int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
    T_CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
      double d = s.parts[0].params_dense, e = s.parts[0].params_expert / 2;
      T_NEAR(s.mem_weights[0], d * 2 / (z >= 3 ? 2 : 1) + e * 2, 1e-6);
      T_NEAR(s.mem_grads[0], d * 4 / (z >= 2 ? 2 : 1) + e * 4, 1e-6);
      T_NEAR(s.mem_opt[0], d * 12 / (z >= 1 ? 2 : 1) + e * 12, 1e-6);
      /* 1F1B: rank 0 holds PP = 2 micro-batches' activations at its peak */
      T_NEAR(s.mem_act[0], 2 * s.parts[0].act_bytes, 1e-6);
      model_params p;
      model_param_counts(&x.m, &p);
      T_NEAR(s.parts[0].params_dense + s.parts[1].params_dense + s.parts[0].params_expert + s.parts[1].params_expert,
             (double)p.total, 0.5);
    }
    tr_sim_free(&s);
    tiny_free(&x);
  }
}

static int same_result(const train_result *a, const train_result *b) {
  train_result x = *a, y = *b;
  x.sim_wall_s = y.sim_wall_s = 0;
  return memcmp(&x, &y, sizeof x) == 0;
}

/* Same inputs and seeds: the same result, byte for byte, and the same trace file. */
static void test_determinism(void) {
  char dir[] = "/tmp/moesim_train_XXXXXX";
  T_CHECK(mkdtemp(dir) != NULL);
  char p1[64], p2[64];
  snprintf(p1, sizeof p1, "%s/a.json", dir);
  snprintf(p2, sizeof p2, "%s/b.json", dir);
  train_result r[2];
  const char *paths[2] = {p1, p2};
  for (int i = 0; i < 2; i++) {
    tiny x;
    tiny_init(&x, SCHED_DUALPIPE, 16, 20, 80);
    x.cfg.routing.zipf_s = 1.0;
    x.cfg.trace_path = paths[i];
    char err[256];
    memset(&r[i], 0, sizeof r[i]);
    T_CHECKF(train_run(&x.cfg, &r[i], err, sizeof err) == 0, "%s", err);
    tiny_free(&x);
  }
  T_CHECK(same_result(&r[0], &r[1]));
  size_t la, lb;
  char *a = util_read_file(p1, &la), *b = util_read_file(p2, &lb);
  T_CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
  T_CHECK(a && strstr(a, "\"traceEvents\"") && strstr(a, "\"process_name\"") && strstr(a, "DISPATCH_F"));
  free(a);
  free(b);
  unlink(p1);
  unlink(p2);
  rmdir(dir);
}

/* More SMs for communication: faster SM-bound all-to-alls, slower compute inside F&B pairs. */
static void test_comm_sms_mechanism(void) {
  sim_ps disp[2], fcomp[2], fb[2];
  int sms[2] = {8, 40};
  for (int i = 0; i < 2; i++) {
    tiny x;
    tiny_init(&x, SCHED_DUALPIPE, 16, sms[i], 80);
    x.m.seq_len = 4096; /* enough bytes for the SM copy rate to matter */
    char err[256];
    tr_sim s;
    int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
    T_CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
      disp[i] = s.ep[0].disp_f;
      const tr_fb *f = tr_cost_fb(&s, 0, 1);
      fcomp[i] = f->f_comp + f->b_comp + f->w_comp;
      fb[i] = f->time;
    }
    tr_sim_free(&s);
    tiny_free(&x);
  }
  T_CHECKF(disp[1] < disp[0], "dispatch %.3f us with 40 SMs vs %.3f us with 8", ps_to_us(disp[1]), ps_to_us(disp[0]));
  T_CHECKF(fcomp[1] > fcomp[0], "compute %.3f us with 40 SMs vs %.3f us with 8", ps_to_us(fcomp[1]), ps_to_us(fcomp[0]));
  T_CHECK(fb[0] > 0 && fb[1] > 0);
}

/* A hand-built simulation holding two one-layer stages, for the F&B chain alone. */
typedef struct fb_fixture {
  tr_sim s;
  train_cfg cfg;
  topo t;
  tr_unit units[2];
  tr_part parts[2];
  tr_fb fb[4];
} fb_fixture;

static void fb_init(fb_fixture *x, int comm_sms) {
  memset(x, 0, sizeof *x);
  x->t.gpu.sms = 132;
  x->cfg.topo = &x->t;
  x->s.cfg = &x->cfg;
  x->s.plan.schedule = SCHED_DUALPIPE;
  x->s.plan.comm_sms = comm_sms;
  x->s.plan.overlap = 1;
  x->s.units = x->units;
  x->s.parts = x->parts;
  x->s.fb = x->fb;
  x->s.n_parts = 2;
  for (int i = 0; i < 2; i++) {
    x->parts[i] = (tr_part){.first = i, .n = 1};
    x->units[i] = (tr_unit){.attn_f = 400 * MS, .mlp_f = 600 * MS, .attn_b = 500 * MS, .attn_w = 300 * MS,
                            .mlp_b = 700 * MS, .mlp_w = 500 * MS, .disp_f = 300 * MS, .comb_f = 500 * MS,
                            .comb_b = 500 * MS, .disp_b = 500 * MS};
  }
  tr_cost_parts(&x->s);
  free(x->s.fb); /* tr_cost_parts allocated a memo; use the fixture's */
  x->s.fb = x->fb;
}

/* One layer each side: the chain is overlap.h's pair; overlapped it lies between the larger of
 * the streams' loads and the serial sum; without overlap it is F + B exactly. */
static void test_fb_overlap_bounds(void) {
  fb_fixture x;
  fb_init(&x, 20);
  const tr_fb *f = tr_cost_fb(&x.s, 0, 1);
  const tr_unit *u = &x.units[0];
  overlap_in in = {.attn_f = u->attn_f, .mlp_f = u->mlp_f, .dispatch_f = u->disp_f, .combine_f = u->comb_f,
                   .attn_b = u->attn_b, .attn_w = u->attn_w, .mlp_b = u->mlp_b, .mlp_w = u->mlp_w,
                   .combine_b = u->comb_b, .dispatch_b = u->disp_b, .sms_total = 132, .sms_comm = 20};
  overlap_result o;
  overlap_pair(&in, &o);
  T_EQ_INT(f->time, o.pair);
  T_EQ_INT(f->f_comp + f->b_comp + f->w_comp, o.compute);
  sim_ps serial = x.parts[0].f + x.parts[1].b;
  T_CHECK(f->time < serial);
  T_CHECK(f->time >= o.compute && f->time >= o.comm);
  fb_fixture y;
  fb_init(&y, 20);
  y.s.plan.overlap = 0;
  const tr_fb *g = tr_cost_fb(&y.s, 0, 1);
  T_EQ_INT(g->time, serial);
  T_EQ_INT(g->f_comp, x.parts[0].f_comp);
}

/* Chained layers: the next layer's gradient all-to-all may start during this layer's ATTN_W, so
 * two layers take less than two isolated pairs; and the best alignment is used. */
static void test_fb_chain(void) {
  fb_fixture x;
  fb_init(&x, 20);
  tr_unit two[4];
  for (int i = 0; i < 4; i++) two[i] = x.units[0];
  x.s.units = two;
  x.parts[0] = (tr_part){.first = 0, .n = 2};
  x.parts[1] = (tr_part){.first = 2, .n = 2};
  tr_cost_parts(&x.s);
  free(x.s.fb);
  memset(x.fb, 0, sizeof x.fb);
  x.s.fb = x.fb;
  const tr_fb *f = tr_cost_fb(&x.s, 0, 1);
  overlap_in in = {.attn_f = two[0].attn_f, .mlp_f = two[0].mlp_f, .dispatch_f = two[0].disp_f,
                   .combine_f = two[0].comb_f, .attn_b = two[0].attn_b, .attn_w = two[0].attn_w,
                   .mlp_b = two[0].mlp_b, .mlp_w = two[0].mlp_w, .combine_b = two[0].comb_b,
                   .dispatch_b = two[0].disp_b, .sms_total = 132, .sms_comm = 20};
  overlap_result o;
  overlap_pair(&in, &o);
  T_CHECKF(f->time < 2 * o.pair, "%.1f ms vs 2 x %.1f ms", ps_to_ms(f->time), ps_to_ms(o.pair));
  T_CHECK(f->time >= 2 * o.compute);
  T_EQ_INT(f->offset, 0);
  T_EQ_INT(f->n_pairs, 2);
}

/* DualPipe with overlap beats DualPipe without it when communication is significant (same comm
 * SMs), offloading communication (no comm SMs) beats both, and ZB1P's bubble is not larger than
 * 1F1B's on the same plan. */
static void test_schedule_ordering(void) {
  double step[3], bubble[2];
  int sms[3] = {20, 20, 0}, ov[3] = {1, 0, 1};
  for (int i = 0; i < 3; i++) {
    tiny x;
    tiny_init(&x, SCHED_DUALPIPE, 16, sms[i], 80);
    x.cfg.plan.overlap = ov[i];
    x.m.seq_len = 2048;
    char err[256];
    train_result r;
    T_CHECKF(train_run(&x.cfg, &r, err, sizeof err) == 0, "%s", err);
    step[i] = r.step_s;
    tiny_free(&x);
  }
  T_CHECKF(step[0] < step[1], "overlapped %.6f s vs serial %.6f s", step[0], step[1]);
  T_CHECKF(step[2] < step[0], "offloaded %.6f s vs 20 comm SMs %.6f s", step[2], step[0]);
  int kinds[2] = {SCHED_1F1B, SCHED_ZB1P};
  for (int i = 0; i < 2; i++) {
    tiny x;
    tiny_init(&x, kinds[i], 16, 0, 80);
    char err[256];
    train_result r;
    T_CHECKF(train_run(&x.cfg, &r, err, sizeof err) == 0, "%s", err);
    bubble[i] = r.phases.bubble_s;
    tiny_free(&x);
  }
  T_CHECKF(bubble[1] <= bubble[0], "ZB1P bubble %.6f s vs 1F1B %.6f s", bubble[1], bubble[0]);
}

/* Skewed routing: the auxiliary-loss-free bias brings the busiest GPU close to the mean. */
static void test_bias_balancing(void) {
  double imb[2];
  int bal[2] = {TRAIN_BALANCE_NONE, TRAIN_BALANCE_BIAS};
  for (int i = 0; i < 2; i++) {
    tiny x;
    tiny_init(&x, SCHED_1F1B, 4, 0, 80);
    x.m.moe.routed_experts = 16;
    x.m.moe.experts_per_token = 4;
    x.cfg.routing.zipf_s = 1.5;
    x.cfg.routing.balance = bal[i];
    x.cfg.routing.seed = 2;
    char err[256];
    tr_sim s;
    int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
    T_CHECKF(rc == 0, "%s", err);
    imb[i] = rc == 0 ? s.ep[0].imbalance : 0;
    tr_sim_free(&s);
    tiny_free(&x);
  }
  T_CHECKF(imb[0] > 1.15, "raw imbalance %.3f", imb[0]);
  T_CHECKF(imb[1] < 1.1 && imb[1] < imb[0], "balanced %.3f vs raw %.3f", imb[1], imb[0]);
}

/* TP 2: each GPU carries half the tokens' work and pays an all-reduce per attention (TP stays
 * inside the node); a TP that does not divide the node is refused. */
static void test_tensor_parallel(void) {
  sim_ps attn[2] = {0, 0}, tp_f = 0;
  double tokens[2] = {0, 0};
  for (int t = 1; t <= 2; t++) {
    tiny x;
    tiny_init(&x, SCHED_1F1B, 4, 0, 80);
    x.cfg.plan.tp = t; /* dp = 4 / (2 x t) */
    char err[256];
    tr_sim s;
    int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
    T_CHECKF(rc == 0, "tp %d: %s", t, err);
    if (rc == 0) {
      attn[t - 1] = s.units[1].attn_f;
      tokens[t - 1] = s.tokens;
      if (t == 2) tp_f = s.units[1].tp_f;
      T_EQ_INT(s.plan.dp, 2 / t);
    }
    tr_sim_free(&s);
    tiny_free(&x);
  }
  T_NEAR(tokens[1], tokens[0] / 2, 0);
  T_CHECK(attn[1] < attn[0]);
  T_CHECK(tp_f > 0);
  tiny x;
  tiny_init(&x, SCHED_1F1B, 4, 0, 80);
  x.cfg.plan.tp = 3;
  char err[256];
  train_result r;
  T_EQ_INT(train_run(&x.cfg, &r, err, sizeof err), 2);
  T_CHECKF(strstr(err, "tp (3) must divide") != NULL, "%s", err);
  tiny_free(&x);
}

/* Full recomputation keeps only layer inputs (hidden x 2 bytes per token per layer) and runs the
 * forward again inside the backward. */
static void test_recompute_full(void) {
  double act[2] = {0, 0};
  sim_ps b[2] = {0, 0}, f[2] = {0, 0};
  for (int full = 0; full <= 1; full++) {
    tiny x;
    tiny_init(&x, SCHED_1F1B, 4, 0, 80);
    x.cfg.plan.recompute_full = full;
    char err[256];
    tr_sim s;
    int rc = tr_sim_build(&s, &x.cfg, err, sizeof err);
    T_CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
      const tr_unit *u = &s.units[1]; /* an MoE layer */
      act[full] = s.parts[1].act_bytes;
      b[full] = u->attn_b + u->mlp_b + u->comb_b + u->disp_b;
      f[full] = u->attn_f + u->mlp_f + u->disp_f + u->comb_f;
      if (full) {
        /* stage 1 = the second MoE layer and the head: two layer inputs per token */
        T_EQ_INT(s.parts[1].n, 2);
        T_NEAR(act[1], 2 * 256 * 2 * s.tokens, 1e-6);
      }
    }
    tr_sim_free(&s);
    tiny_free(&x);
  }
  T_CHECK(act[1] < act[0]);
  T_EQ_INT(b[1], b[0] + f[0]);
}

/* The routing cache: a second run reads the file and gives the same step; a file that no longer
 * matches the generator (here: edited) fails the spot check and is replaced, same step again. */
static void test_routing_cache(void) {
  char dir[] = "/tmp/moesim_cache_XXXXXX";
  T_CHECK(mkdtemp(dir) != NULL);
  setenv("MOESIM_CACHE", dir, 1);
  double step[3];
  char file[512] = "";
  for (int i = 0; i < 3; i++) {
    if (i == 2 && file[0]) { /* corrupt the first token of rank 0 */
      size_t len;
      char *text = util_read_file(file, &len);
      char *line = text ? strstr(text, "\nranks ") : NULL;
      line = line ? strchr(line + 1, '\n') : NULL;
      T_CHECK(line != NULL);
      if (line) {
        line[1] = line[1] == '3' ? '2' : '3';
        util_write_file_atomic(file, text, len);
      }
      free(text);
    }
    tiny x;
    tiny_init(&x, SCHED_1F1B, 4, 0, 80);
    x.cfg.routing.seed = 11;
    x.cfg.routing.zipf_s = 0.5;
    tr_routing_forget(); /* only the file may carry the routing from run to run */
    char err[256];
    train_result r;
    T_CHECKF(train_run(&x.cfg, &r, err, sizeof err) == 0, "%s", err);
    step[i] = r.step_s;
    tiny_free(&x);
    if (i == 0) {
      char cmd[600];
      snprintf(cmd, sizeof cmd, "ls %s/routing-*.txt 2>/dev/null | head -n 1", dir);
      FILE *p = popen(cmd, "r");
      if (p) {
        if (fgets(file, sizeof file, p)) file[strcspn(file, "\n")] = '\0';
        pclose(p);
      }
      T_CHECKF(file[0] != '\0', "no cache file in %s", dir);
    }
  }
  T_NEAR(step[1], step[0], 0);
  T_NEAR(step[2], step[0], 0);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  T_CHECK(system(cmd) == 0);
  setenv("MOESIM_CACHE", "off", 1);
}

int main(void) {
  setenv("MOESIM_CACHE", "off", 1); /* no files outside the test's own directories */
  T_RUN(test_replay_hand_1f1b);
  T_RUN(test_replay_matches_schedule_module);
  T_RUN(test_golden_tiny);
  T_RUN(test_hbm_fit_error);
  T_RUN(test_plan_errors);
  T_RUN(test_memory_hand);
  T_RUN(test_determinism);
  T_RUN(test_comm_sms_mechanism);
  T_RUN(test_fb_overlap_bounds);
  T_RUN(test_fb_chain);
  T_RUN(test_schedule_ordering);
  T_RUN(test_bias_balancing);
  T_RUN(test_tensor_parallel);
  T_RUN(test_recompute_full);
  T_RUN(test_routing_cache);
  return t_done();
}
