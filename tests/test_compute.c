/* tests/test_compute.c — the compute projection (sim/compute.h): exact rows, the nearest shape
 * class and its ordering rules, peaks from "peak" rows, the HBM roofline floor, the roofline
 * fallback, memoisation, and op times against hand formulas for DeepSeek-V3 ops costed from the
 * published DeepGEMM table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compute.h"
#include "model.h"
#include "test.h"

static const compute_target h800 = {.device = "h800", .fp8_tflops = 1979, .bf16_tflops = 989, .hbm_gbyte_s = 3350};

static kt_row row(const char *dev, const char *kernel, const char *dtype, int64_t m, int64_t n, int64_t k,
                  int64_t groups, double tflops, const char *source) {
  kt_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.host, sizeof r.host, "test");
  snprintf(r.device, sizeof r.device, "%s", dev);
  snprintf(r.kernel, sizeof r.kernel, "%s", kernel);
  snprintf(r.dtype, sizeof r.dtype, "%s", dtype);
  snprintf(r.source, sizeof r.source, "%s", source);
  r.m = m, r.n = n, r.k = k, r.groups = groups;
  r.tflops = tflops;
  if (m && tflops > 0) r.median_us = r.min_us = 2.0 * (double)m * n * k / (tflops * 1e12) * 1e6;
  return r;
}

static compute_op gemm(const char *dtype, int64_t m, int64_t n, int64_t k) {
  compute_op o = {.cls = COMPUTE_GEMM, .dtype = dtype, .m = m, .n = n, .k = k, .groups = 1};
  double e = strcmp(dtype, "bf16") == 0 ? 2 : 1;
  o.flops = 2.0 * m * n * k;
  o.bytes = (double)(m * k + n * k) * e + (double)m * n * 2;
  return o;
}

/* An exact row of the target wins, with its own source. */
static void test_exact_rows(void) {
  compute_ctx *c = compute_new(&h800);
  kt_row rs[2] = {row("h800", "gemm", "fp8_e4m3", 4096, 7168, 2048, 1, 1168, "published"),
                  row("h800", "gemm", "fp8_e4m3", 4096, 4096, 7168, 1, 1265, "measured")};
  compute_add_rows(c, rs, 2);
  compute_cost cc;
  compute_op o = gemm("fp8_e4m3", 4096, 7168, 2048);
  double t = compute_op_cost(c, &o, &cc);
  T_NEAR(t, 2.0 * 4096 * 7168 * 2048 / 1168e12, 1e-9);
  T_EQ_INT(cc.src, COMPUTE_SRC_PUBLISHED);
  o = gemm("fp8_e4m3", 4096, 4096, 7168);
  compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_MEASURED);
  T_CHECK(strstr(cc.from, "4096x4096x7168") != NULL);
  /* another dtype is not the same row: projected */
  o = gemm("bf16", 4096, 4096, 7168);
  compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_PROJECTED);
  compute_free(c);
}

/* Projection: peak x the source row's efficiency; the source peak from a "peak" row. */
static void test_projection_from_cpu_rows(void) {
  compute_ctx *c = compute_new(&h800);
  kt_row rs[3] = {row("cpu", "peak", "bf16", 0, 0, 0, 1, 2.0, "measured"),
                  row("cpu", "gemm", "bf16", 512, 4096, 7168, 1, 1.5, "measured"),
                  row("cpu", "gemm", "bf16", 4, 4096, 7168, 1, 0.1, "measured")};
  compute_add_rows(c, rs, 3);
  T_EQ_INT(compute_rows(c), 2); /* the peak row is a peak, not a timing */
  T_NEAR(compute_peak(c, "cpu", "bf16"), 2.0, 0);
  T_NEAR(compute_peak(c, "h800", "bf16"), 989, 0);
  T_NEAR(compute_peak(c, "h100", "bf16"), 0, 0);
  compute_cost cc;
  compute_op o = gemm("bf16", 2048, 4096, 7168); /* nearest class: the 512-row GEMM (75% of peak) */
  double t = compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_PROJECTED);
  T_NEAR(cc.efficiency, 0.75, 1e-12);
  T_NEAR(t, o.flops / (989e12 * 0.75), 1e-12);
  o = gemm("bf16", 8, 4096, 7168); /* a decode shape: the 4-row GEMM's 5% efficiency */
  t = compute_op_cost(c, &o, &cc);
  T_NEAR(cc.efficiency, 0.05, 1e-12);
  /* 5% of 989 TFLOP/s would beat HBM for this shape? no: bytes / 3350 GB/s is the floor */
  double floor_s = o.bytes / 3350e9, compute_s = o.flops / (989e12 * 0.05);
  T_NEAR(t, floor_s > compute_s ? floor_s : compute_s, 1e-15);
  /* FP8 ops learn from BF16 rows when nothing else exists, against the FP8 peak */
  o = gemm("fp8_e4m3", 2048, 4096, 7168);
  t = compute_op_cost(c, &o, &cc);
  T_NEAR(t, o.flops / (1979e12 * 0.75), 1e-12);
  compute_free(c);
}

/* Ordering: the target's rows before another device's, however near; rows of a device without a
 * known peak are never used; headline rows come after shaped ones. */
static void test_candidate_order(void) {
  compute_ctx *c = compute_new(&h800);
  compute_set_peak(c, "h100", "fp8_e4m3", 1979);
  kt_row rs[4] = {row("h100", "gemm", "fp8_e4m3", 4096, 4096, 4096, 1, 1500, "published"), /* near, other device */
                  row("h800", "gemm", "fp8_e4m3", 64, 2112, 7168, 1, 206, "published"),    /* far, the target */
                  row("mystery", "gemm", "fp8_e4m3", 4096, 4096, 4096, 1, 1900, "measured"), /* no peak */
                  row("h800", "attention", "bf16", 0, 0, 0, 1, 500, "published")};
  compute_add_rows(c, rs, 4);
  compute_cost cc;
  compute_op o = gemm("fp8_e4m3", 4096, 4096, 4096);
  compute_op_cost(c, &o, &cc);
  T_CHECK(strstr(cc.from, "h800 gemm") != NULL);
  T_NEAR(cc.efficiency, 206.0 / 1979, 1e-12);
  char buf[64];
  T_EQ_INT(compute_rows_without_peak(c, buf, sizeof buf), 1); /* the target's attention row has a peak */
  T_EQ_STR(buf, "mystery/fp8_e4m3");
  compute_op a = {.cls = COMPUTE_ATTN, .dtype = "bf16", .groups = 128, .flops = 1e12, .bytes = 1e6};
  double t = compute_op_cost(c, &a, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_PROJECTED);
  T_NEAR(t, 1e12 / 500e12, 1e-12);
  compute_free(c);
}

/* Without any candidate: the roofline, compute- or memory-bound. */
static void test_roofline(void) {
  compute_ctx *c = compute_new(&h800);
  compute_cost cc;
  compute_op norm = {.cls = COMPUTE_ELEMENTWISE, .dtype = "bf16", .groups = 1, .flops = 4.0 * 4096 * 7168,
                     .bytes = 4.0 * 4096 * 7168 + 7168 * 2};
  double t = compute_op_cost(c, &norm, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_ROOFLINE);
  T_CHECK(cc.memory_bound);
  T_NEAR(t, norm.bytes / 3350e9, 1e-15);
  compute_op g = gemm("fp8_e4m3", 4096, 4096, 4096);
  t = compute_op_cost(c, &g, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_ROOFLINE);
  T_CHECK(!cc.memory_bound);
  T_NEAR(t, g.flops / 1979e12, 1e-15);
  compute_op none = {.cls = COMPUTE_ELEMENTWISE, .dtype = "bf16"};
  T_NEAR(compute_op_cost(c, &none, NULL), 0, 0);
  compute_free(c);
}

/* The same op twice gives the same answer (memoised), also after the memo has grown. */
static void test_memo(void) {
  compute_ctx *c = compute_new(&h800);
  kt_row r = row("h800", "gemm", "fp8_e4m3", 4096, 7168, 2048, 1, 1168, "published");
  compute_add_rows(c, &r, 1);
  compute_op o = gemm("fp8_e4m3", 1000, 7168, 2048);
  double first = compute_op_cost(c, &o, NULL);
  for (int i = 1; i < 2000; i++) {
    compute_op x = gemm("fp8_e4m3", i, 7168, 2048);
    compute_op_cost(c, &x, NULL);
  }
  T_NEAR(compute_op_cost(c, &o, NULL), first, 0);
  compute_free(c);
}

/* DeepSeek-V3 ops from model.h, costed from the published table (topologies/published): FLOPs
 * against 2mnk and times against the table's TFLOP/s. */
static void test_v3_ops_from_published_table(void) {
  compute_ctx *c = compute_new(&h800);
  const char *path = "topologies/published/h800-deepgemm.csv";
  if (compute_load_table(c, path) != 0) {
    compute_free(c);
    T_SKIP("%s not readable from the working directory", path);
  }
  T_EQ_INT(compute_rows(c), 28);
  model_spec m;
  model_init(&m);
  m.name = "v3-slice";
  m.vocab = 129280, m.hidden = 7168, m.layers = 4, m.dense_layers = 0, m.seq_len = 4096;
  m.attn = (model_attn){.kind = MODEL_MLA, .heads = 128, .q_lora_rank = 1536, .kv_lora_rank = 512,
                        .qk_nope_head_dim = 128, .qk_rope_head_dim = 64, .v_head_dim = 128};
  m.moe = (model_moe){.routed_experts = 256, .shared_experts = 1, .experts_per_token = 8, .expert_intermediate = 2048,
                      .expert_groups = 8, .groups_per_token = 4, .gate = MODEL_GATE_SIGMOID};
  m.prec.gemm = MODEL_FP8;
  model_op ops[MODEL_MAX_OPS];
  size_t n = model_block_ops(&m, MODEL_BLOCK_MOE, 1, ops);
  int seen = 0;
  for (size_t i = 0; i < n; i++) {
    if (ops[i].pass != MODEL_PASS_F || ops[i].recompute) continue;
    compute_op o;
    compute_op_from_model(&ops[i], &o);
    compute_cost cc;
    double t = compute_op_cost(c, &o, &cc);
    if (strcmp(ops[i].name, "attn.q_up") == 0) { /* (4096 x 1536).(1536 x 24576): the table's 1125 TFLOP/s */
      T_NEAR(o.flops, 2.0 * 4096 * 1536 * 24576, 0);
      T_EQ_INT(cc.src, COMPUTE_SRC_PUBLISHED);
      T_NEAR(t, 2.0 * 4096 * 24576 * 1536 / 1125e12, 1e-9);
      seen++;
    }
    if (strcmp(ops[i].name, "attn.o_proj") == 0) { /* (4096 x 16384).(16384 x 7168): 1426 TFLOP/s */
      T_NEAR(o.flops, 2.0 * 4096 * 16384 * 7168, 0);
      T_NEAR(t, 2.0 * 4096 * 7168 * 16384 / 1426e12, 1e-9);
      seen++;
    }
    if (strcmp(ops[i].name, "moe.routed.up") == 0) { /* 32768 rows over 256 experts: projected */
      T_NEAR(o.flops, 2.0 * 4096 * 8 * 7168 * 4096, 0);
      T_EQ_INT(cc.src, COMPUTE_SRC_PROJECTED);
      T_CHECK(cc.efficiency > 0 && cc.efficiency <= 1);
      T_CHECK(t >= o.flops / 1979e12);
      seen++;
    }
  }
  T_EQ_INT(seen, 3);
  /* a grouped weight gradient follows the table's convention: m = groups x in, k = rows per expert */
  for (size_t i = 0; i < n; i++)
    if (ops[i].pass == MODEL_PASS_W && strcmp(ops[i].name, "moe.routed.up") == 0) {
      compute_op o;
      compute_op_from_model(&ops[i], &o);
      T_EQ_INT(o.m, 7168 * 256);
      T_EQ_INT(o.k, 4096 * 8 / 256);
      T_EQ_INT(o.groups, 256);
    }
  compute_free(c);
}

int main(void) {
  T_RUN(test_exact_rows);
  T_RUN(test_projection_from_cpu_rows);
  T_RUN(test_candidate_order);
  T_RUN(test_roofline);
  T_RUN(test_memo);
  T_RUN(test_v3_ops_from_published_table);
  return t_done();
}
