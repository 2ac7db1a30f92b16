/* tests/test_infer.c — the inference simulator (sim/infer.h): KV-cache bytes per token of the
 * shipped models against formulas written out by hand; a decode step of a trivial model against a
 * hand-computed roofline; the layer schedule against hand-worked timelines; the low-latency
 * all-to-all against its bytes and link capacities; MTP, EPLB and micro-batch overlap effects;
 * determinism; and the plan-does-not-fit errors. Runs from the repository root (make test). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer_int.h"
#include "test.h"
#include "util.h"

/* A unit from inline YAML (paths relative to the repository root). */
typedef struct fix {
  cfg_ctx *ctx;
  infer_spec sp;
  topo *t;
  infer_setup *s;
} fix;

static int fix_load(fix *f, const exp_kind *kind, infer_phase ph, const char *yaml) {
  memset(f, 0, sizeof *f);
  f->ctx = cfg_new();
  kind->init(&f->sp);
  const cfg_node *root = cfg_load_string(f->ctx, "inline.yaml", yaml);
  if (!root || cfg_bind(f->ctx, root, kind->keys, &f->sp, "") != 0) return -1;
  f->t = infer_spec_cluster(f->ctx, &f->sp);
  if (!f->t) return -1;
  f->s = infer_setup_new(f->ctx, &f->sp, ph, f->t);
  return f->s ? 0 : -1;
}

static void fix_free(fix *f) {
  infer_setup_free(f->s);
  topo_free(f->t);
  cfg_free(f->ctx);
}

/* Runs fix_load with stderr captured; returns the load's result and the text in buf. */
static int fix_load_err(fix *f, const exp_kind *kind, infer_phase ph, const char *yaml, char *buf, size_t n) {
  fflush(stderr);
  char path[] = "/tmp/moesim_test_infer_XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  dup2(fd, 2);
  int rc = fix_load(f, kind, ph, yaml);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  ssize_t k = read(fd, buf, n - 1);
  buf[k > 0 ? k : 0] = 0;
  close(fd);
  unlink(path);
  return rc;
}

/* ---- KV-cache bytes per token, by hand from the published shapes ---- */

static void test_kv_bytes(void) {
  struct { const char *path; double per_layer, layers; } c[] = {
      /* MLA: (kv_lora_rank 512 + rope 64) values, BF16 */
      {"experiments/models/deepseek-v3.yaml", (512 + 64) * 2.0, 61},
      {"experiments/models/deepseek-v2.yaml", (512 + 64) * 2.0, 60},
      /* GQA: K and V, 8 KV heads of 128, BF16 */
      {"experiments/models/llama-3.1-405b.yaml", 2 * 8 * 128 * 2.0, 126},
      {"experiments/models/mixtral-8x22b.yaml", 2 * 8 * 128 * 2.0, 56},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    cfg_ctx *ctx = cfg_new();
    model_spec m;
    model_init(&m);
    T_CHECK(model_load(ctx, c[i].path, &m) == 0);
    T_NEAR(infer_kv_bytes_per_layer(&m, INFER_KV_BF16), c[i].per_layer, 0);
    T_NEAR(infer_kv_bytes_per_token(&m, INFER_KV_BF16, 0), c[i].per_layer * c[i].layers, 0);
    /* The model module's own figure agrees. */
    T_NEAR(infer_kv_bytes_per_token(&m, INFER_KV_BF16, 0), (double)model_kv_bytes_per_token(&m), 0);
    cfg_free(ctx);
  }
  cfg_ctx *ctx = cfg_new();
  model_spec m;
  model_init(&m);
  T_CHECK(model_load(ctx, "experiments/models/deepseek-v3.yaml", &m) == 0);
  T_NEAR(infer_kv_bytes_per_token(&m, INFER_KV_BF16, 1), 576 * 2.0 * 62, 0);          /* + the MTP layer */
  T_NEAR(infer_kv_bytes_per_token(&m, INFER_KV_FP8, 0), (576 + 5 * 4.0) * 61, 0);      /* 1 B + a scale per 128 */
  cfg_free(ctx);
}

/* ---- a decode step of a trivial model against the roofline by hand ---- */

static const char *tiny_decode =
    "model: {name: tiny, vocab: 1000, hidden: 256, layers: 1, ffn_intermediate: 512, seq_len: 128,\n"
    "        attention: {kind: gqa, heads: 4, kv_heads: 2, head_dim: 64}}\n"
    "cluster: topologies/this-machine.yaml\n"
    "decode: {nodes: 1, micro_batches: 1, attn_stages: 1, mtp_depth: 0, max_seqs_per_gpu: 4,\n"
    "         concurrency_per_gpu: 4, reserved_gib: 1}\n"
    "traffic: {input_tokens: {dist: fixed, mean: 100}, output_tokens: {dist: fixed, mean: 1}, requests: 16}\n"
    "compute: roofline\n";

static double roof(double flops, double bytes) {
  double tf = flops / 989e12, tm = bytes / 4800e9; /* H200: BF16 peak, HBM */
  return tf > tm ? tf : tm;
}

static void test_decode_roofline(void) {
  fix f;
  T_CHECK(fix_load(&f, &exp_kind_decode, INFER_DECODE, tiny_decode) == 0);
  if (!f.s) return;
  infer_out o;
  T_CHECK(infer_decode_point(f.s, 0, &o) == 0);
  /* 4 sequences of 100 tokens of context, 1 query token each: 404 (query, key) pairs and 404
   * cache entries read; h = 256, 4 heads of 64 (2 KV heads), FFN 512, vocabulary 1000, BF16. */
  double T = 4, h = 256, gemm_qkvo = 2 * T * 256 * h, gemm_qkvo_b = T * h * 2 + h * 256 * 2 + T * 256 * 2;
  double norm_f = 4 * T * h, norm_b = 2 * 2 * T * h;
  double step = roof(norm_f, norm_b)                                            /* attn.norm */
                + 3 * roof(gemm_qkvo, gemm_qkvo_b)                              /* q, kv (2x2x64 = 256), o */
                + roof(2 * 4 * 2 * 64 * 404.0, T * 4 * 64 * 2 * 2 + 404 * 512.0) /* core; K+V 512 B a token */
                + roof(norm_f, norm_b)                                          /* ffn.norm */
                + roof(2 * T * 1024 * h, T * h * 2 + h * 1024 * 2 + T * 1024 * 2) /* up (gate+up) */
                + roof(6 * T * 512, 3 * 2 * T * 512)                            /* SwiGLU */
                + roof(2 * T * h * 512, T * 512 * 2 + 512 * h * 2 + T * h * 2)  /* down */
                + roof(norm_f, norm_b)                                          /* head.norm */
                + roof(2 * T * 1000 * h, T * h * 2 + h * 1000 * 2 + T * 1000 * 2); /* head */
  T_NEAR(o.step_ms, step * 1e3, 3e-9); /* each of the 3 tasks is rounded to a picosecond */
  T_NEAR(o.seqs_per_gpu, 4, 0);
  T_NEAR(o.tokens_per_step, 1, 0);
  T_NEAR(o.out_tok_s_gpu, 4 / (o.step_ms * 1e-3), 1e-6);
  T_NEAR(o.tpot_ms, o.step_ms, 0);
  T_NEAR(o.ctx_per_output_token, 100, 0);
  T_CHECKF(!strcmp(o.binding, "hbm"), "binding %s", o.binding);
  T_NEAR(o.util_hbm, 1, 1e-5);
  T_NEAR(o.exposed_comm_ms, 0, 1e-9);
  fix_free(&f);
}

/* ---- the layer schedule ---- */

/* Two GPUs, one micro-batch: A (compute 3/5 us) -> C (communication 4 us) -> B (compute 2/1 us).
 * C waits for the slower GPU: starts at 5, ends at 9; B ends at 11 on GPU 0. */
static void test_sched_barrier(void) {
  isched *s = isched_new(2, 1);
  int a = isched_add(s, IS_COMPUTE, IS_ATTN, 0, -1, -1);
  int c = isched_add(s, IS_COMM, IS_DISPATCH, 0, a, -1);
  int b = isched_add(s, IS_COMPUTE, IS_EXPERTS, 0, c, -1);
  isched_dur(s, 0, a)[0] = ps_from_us(3), isched_dur(s, 0, a)[1] = ps_from_us(5);
  isched_dur(s, 0, c)[0] = ps_from_us(4);
  isched_dur(s, 0, b)[0] = ps_from_us(2), isched_dur(s, 0, b)[1] = ps_from_us(1);
  isched_run(s);
  T_EQ_INT(s->makespan, ps_from_us(11));
  T_EQ_INT(s->busy[0], ps_from_us(5));
  T_EQ_INT(s->busy[1], ps_from_us(6));
  T_EQ_INT(s->busiest, 1);
  T_EQ_INT(s->comm_busy, ps_from_us(4));
  isched_free(s);
}

/* One GPU, two micro-batches of A (2) -> D (comm 3) -> E (2): micro-batch 0's A, then 1's A while
 * 0's D runs; 0's E at 5 (D ends at 5), 1's D from 5 to 8, 1's E from 8 to 10. Serially (one
 * micro-batch of twice the work) it would take 4 + 6 + 4 = 14. */
static void test_sched_overlap(void) {
  isched *s = isched_new(1, 2);
  int a = isched_add(s, IS_COMPUTE, IS_ATTN, 0, -1, -1);
  int d = isched_add(s, IS_COMM, IS_DISPATCH, 0, a, -1);
  int e = isched_add(s, IS_COMPUTE, IS_EXPERTS, 0, d, -1);
  for (int mb = 0; mb < 2; mb++) {
    isched_dur(s, mb, a)[0] = ps_from_us(2);
    isched_dur(s, mb, d)[0] = ps_from_us(3);
    isched_dur(s, mb, e)[0] = ps_from_us(2);
  }
  isched_run(s);
  T_EQ_INT(s->makespan, ps_from_us(10));
  /* Communication holding SMs: compute 2x slower while an all-to-all runs. A0 0-2; D0 2-5; A1
   * from 2 at half speed does 1.5 us of work by 5, the last 0.5 at full speed: ends 5.5. D1
   * 5.5-8.5; E0 from 5.5 at half speed does 1.5 by 8.5, then 0.5: ends 9. E1 9-11. */
  s->stretch = 2;
  isched_run(s);
  T_EQ_INT(s->makespan, ps_from_us(11));
  T_EQ_INT(s->busy[0], ps_from_us(11)); /* 2 + 3.5 + 3.5 + 2: never idle */
  isched_free(s);
}

/* ---- the low-latency all-to-all ---- */

/* tiny2x2: 2 nodes x 2 H800, one 400G NIC each. Rank 0 sends 100 messages of 7408 B to rank 2
 * (other node) and nothing else moves: NIC-bound at the link's payload rate; lockstep and
 * max-min agree; with NVLink, rank 0 -> rank 1 (same node) never touches the NIC. */
static void test_low_latency(void) {
  cfg_ctx *ctx = cfg_new();
  topo *t = topo_load(ctx, "tests/fixtures/tiny2x2.yaml");
  T_CHECK(t != NULL);
  if (!t) return;
  int gpus[4] = {0, 1, 2, 3};
  double copies[16] = {0};
  copies[0 * 4 + 2] = 100;
  ia_result a, b;
  T_CHECK(ia_low_latency(t, gpus, 4, copies, 7408, 0, 1, 0, 0, 0, 1, &a) == 0);
  T_CHECK(ia_low_latency(t, gpus, 4, copies, 7408, 0, 1, 0, 0, 1, 1, &b) == 0);
  double cap = t->l[t->up[0]].gbyte_s * 1e9, bytes = 100 * 7408.0;
  T_CHECKF(a.time_s >= bytes / cap && a.time_s < bytes / cap + 20e-6, "%g vs %g", a.time_s, bytes / cap);
  T_NEAR(a.time_s, b.time_s, 1e-9);
  T_NEAR(a.nic_bytes, bytes, 0);
  T_NEAR(a.copies, 100, 0);
  /* A per-request overhead of 110 ns adds 100 x 110 ns of NIC time (plus 5 atomics per peer). */
  T_CHECK(ia_low_latency(t, gpus, 4, copies, 7408, 0, 1, 110, 5, 1, 1, &b) == 0);
  T_NEAR(b.time_s - a.time_s, 105 * 110e-9, 2e-9);
  /* Same node over NVLink: no NIC bytes, NVLink rate. */
  memset(copies, 0, sizeof copies);
  copies[0 * 4 + 1] = 100;
  T_CHECK(ia_low_latency(t, gpus, 4, copies, 7408, 0, 1, 110, 5, 0, 1, &a) == 0);
  T_NEAR(a.nic_bytes, 0, 0);
  T_NEAR(a.nvl_bytes, bytes, 0);
  T_CHECK(a.time_s < bytes / (t->gpu.scaleup_achievable_gbyte_s * 1e9) + 10e-6);
  /* Pure RDMA: the same pair goes through the NIC. */
  T_CHECK(ia_low_latency(t, gpus, 4, copies, 7408, 0, 0, 0, 0, 0, 1, &a) == 0);
  T_NEAR(a.nic_bytes, bytes, 0);
  topo_free(t);
  cfg_free(ctx);
}

/* ---- a small MoE unit on the 2 x 2 fixture ---- */

static const char *tiny_moe =
    "model: {name: tiny-moe, vocab: 2000, hidden: 512, layers: 3, dense_layers: 1, ffn_intermediate: 1024,\n"
    "        seq_len: 128, mtp_depth: 1, precision: {gemm: fp8_e4m3},\n"
    "        attention: {kind: mla, heads: 8, q_lora_rank: 128, kv_lora_rank: 64, qk_nope_head_dim: 32,\n"
    "                    qk_rope_head_dim: 16, v_head_dim: 32},\n"
    "        moe: {routed_experts: 16, shared_experts: 1, experts_per_token: 4, expert_intermediate: 128,\n"
    "              expert_groups: 4, groups_per_token: 2, gate: sigmoid}}\n"
    "cluster: tests/fixtures/tiny2x2.yaml\n"
    "decode: {nodes: 2, redundant_experts: 4, mtp_depth: 1, mtp_acceptance: 0.8, max_seqs_per_gpu: 16,\n"
    "         ll_nvlink: false, reserved_gib: 1}\n"
    "prefill: {nodes: 2, redundant_experts: 4, max_tokens_per_gpu: 1024, chunk_tokens: 512, reserved_gib: 1}\n"
    "traffic: {input_tokens: {dist: exponential, mean: 400, max_tokens: 4000},\n"
    "          output_tokens: {dist: exponential, mean: 100}, cache_hit_rate: 0.5, load: 0.5, requests: 64}\n"
    "routing: {skew_zipf_s: 1.0, layer_patterns: 2, pool_tokens: 512}\n"
    "compute: roofline\n";

static void test_moe_unit(void) {
  fix f;
  T_CHECK(fix_load(&f, &exp_kind_decode, INFER_DECODE, tiny_moe) == 0);
  if (!f.s) return;
  infer_out o, o2;
  T_CHECK(infer_decode_point(f.s, 8, &o) == 0);
  T_NEAR(o.tokens_per_step, 1.8, 1e-12); /* 1 + p */
  T_NEAR(o.out_tok_s_user, 1.8 / (o.step_ms * 1e-3), 1e-9);
  T_NEAR(o.out_tok_s_node, o.out_tok_s_gpu * 2, 1e-9);
  T_CHECK(o.dispatch_ms > 0 && o.combine_ms > 0);
  T_CHECK(o.util_network > 0);
  /* 20 slots over 4 GPUs: EPLB beats no redundancy on skewed routing. */
  T_EQ_INT(f.s->per_gpu, 5);
  T_CHECKF(o.imbalance < o.imbalance_no_eplb, "EPLB %.3f vs none %.3f", o.imbalance, o.imbalance_no_eplb);
  /* Determinism: the same point again, and from a fresh setup. */
  T_CHECK(infer_decode_point(f.s, 8, &o2) == 0);
  T_CHECK(o.step_ms == o2.step_ms && o.out_tok_s_gpu == o2.out_tok_s_gpu);
  fix g;
  T_CHECK(fix_load(&g, &exp_kind_decode, INFER_DECODE, tiny_moe) == 0);
  if (g.s) {
    T_CHECK(infer_decode_point(g.s, 8, &o2) == 0);
    T_CHECK(o.step_ms == o2.step_ms && o.dispatch_ms == o2.dispatch_ms);
  }
  /* More sequences: more tokens/s per GPU, fewer per user. */
  T_CHECK(infer_decode_point(f.s, 16, &o2) == 0);
  T_CHECK(o2.out_tok_s_gpu > o.out_tok_s_gpu && o2.out_tok_s_user < o.out_tok_s_user);
  fix_free(&g);
  fix_free(&f);
}

static void test_moe_prefill(void) {
  fix f;
  T_CHECK(fix_load(&f, &exp_kind_prefill, INFER_PREFILL, tiny_moe) == 0);
  if (!f.s) return;
  infer_out o, o2, lo;
  T_CHECK(infer_prefill_point(f.s, 0, &o) == 0);
  T_CHECK(o.capacity_in_tok_s_node > 0);
  T_NEAR(o.load, 0.5, 0.02);
  /* Input tokens count the cache hits: computed x input / computed. */
  T_NEAR(o.in_tok_s_gpu, o.computed_tok_s_gpu / (1 - f.s->hit_eff), 1e-6 * o.in_tok_s_gpu);
  T_CHECK(o.ttft_ms > 0 && o.ttft_p90_ms >= o.ttft_p50_ms);
  T_CHECK(infer_prefill_point(f.s, 0, &o2) == 0);
  T_CHECK(o.ttft_ms == o2.ttft_ms && o.capacity_in_tok_s_node == o2.capacity_in_tok_s_node);
  /* A lighter load waits less. */
  f.sp.traffic.load = 0.1;
  T_CHECK(infer_prefill_point(f.s, 0, &lo) == 0);
  T_CHECKF(lo.ttft_ms < o.ttft_ms, "TTFT at 10%% load %.3f ms vs 50%% %.3f ms", lo.ttft_ms, o.ttft_ms);
  fix_free(&f);
}

/* ---- plans that do not fit ---- */

static void test_does_not_fit(void) {
  fix f;
  char err[2048];
  /* V3 on one H800 node: 671B parameters in FP8 do not fit 8 x 80 GiB with a reserve. */
  const char *v3_one_node =
      "model: experiments/models/deepseek-v3.yaml\ncluster: topologies/h800-2node.yaml\n"
      "decode: {nodes: 1}\ntraffic: {input_tokens: {mean: 1000}, output_tokens: {mean: 100}}\n";
  T_CHECK(fix_load_err(&f, &exp_kind_decode, INFER_DECODE, v3_one_node, err, sizeof err) != 0);
  T_CHECKF(strstr(err, "does not fit") && strstr(err, "weights"), "%s", err);
  T_CHECKF(strstr(err, "inline.yaml:3:") != NULL, "error not at the decode unit: %s", err);
  fix_free(&f);
  /* Slots that do not divide: 256 + 3 redundant over 16 GPUs. */
  const char *bad_slots =
      "model: experiments/models/deepseek-v3.yaml\ncluster: topologies/h800-2node.yaml\n"
      "decode: {nodes: 2, redundant_experts: 3}\ntraffic: {input_tokens: {mean: 1000}, output_tokens: {mean: 100}}\n";
  T_CHECK(fix_load_err(&f, &exp_kind_decode, INFER_DECODE, bad_slots, err, sizeof err) != 0);
  T_CHECKF(strstr(err, "do not divide") != NULL, "%s", err);
  fix_free(&f);
  /* A request longer than the KV cache holds (tiny model, 1 GPU, prompt of 10^9 tokens). */
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "%s", tiny_decode);
  char *p = strstr(yaml, "mean: 100}");
  memcpy(p, "mean: 1e9}", 10);
  T_CHECK(fix_load_err(&f, &exp_kind_decode, INFER_DECODE, yaml, err, sizeof err) != 0);
  T_CHECKF(strstr(err, "does not fit") && strstr(err, "KV cache"), "%s", err);
  fix_free(&f);
  /* More sequences than the cache holds. */
  const char *too_many =
      "model: experiments/models/deepseek-v3.yaml\ncluster: topologies/h800-2048-ft2.yaml\n"
      "decode: {nodes: 18, redundant_experts: 32, concurrency_per_gpu: 4000}\n"
      "traffic: {input_tokens: {mean: 4000, dist: fixed}, output_tokens: {mean: 1000, dist: fixed}, requests: 16}\n";
  T_CHECK(fix_load_err(&f, &exp_kind_decode, INFER_DECODE, too_many, err, sizeof err) != 0);
  T_CHECKF(strstr(err, "4000 sequences") && strstr(err, "does not fit"), "%s", err);
  fix_free(&f);
  /* A unit larger than the cluster. */
  const char *too_big =
      "model: experiments/models/deepseek-v3.yaml\ncluster: topologies/h800-2node.yaml\n"
      "prefill: {nodes: 4}\ntraffic: {input_tokens: {mean: 1000}, output_tokens: {mean: 100}}\n";
  T_CHECK(fix_load_err(&f, &exp_kind_prefill, INFER_PREFILL, too_big, err, sizeof err) != 0);
  T_CHECKF(strstr(err, "has 2 nodes") != NULL, "%s", err);
  fix_free(&f);
}

int main(void) {
  T_RUN(test_kv_bytes);
  T_RUN(test_decode_roofline);
  T_RUN(test_sched_barrier);
  T_RUN(test_sched_overlap);
  T_RUN(test_low_latency);
  T_RUN(test_moe_unit);
  T_RUN(test_moe_prefill);
  T_RUN(test_does_not_fit);
  return t_done();
}
