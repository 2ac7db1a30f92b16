/* tests/test_model.c — model specs (sim/model.h): parameter counts, FLOPs per op and per token,
 * KV bytes and memory, each against a formula written out here by hand from the published shapes;
 * the four shipped specs; and the loader's errors. Runs from the repository root (make test). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "model.h"
#include "test.h"
#include "util.h"

static int load(const char *path, model_spec *m, cfg_ctx **ctx) {
  *ctx = cfg_new();
  model_init(m);
  return model_load(*ctx, path, m);
}

static const model_op *find(const model_op *ops, size_t n, model_pass pass, const char *name, int recompute) {
  for (size_t i = 0; i < n; i++)
    if (ops[i].pass == pass && ops[i].recompute == recompute && strcmp(ops[i].name, name) == 0) return &ops[i];
  return NULL;
}

/* DeepSeek-V3 from config_671B.json: totals by hand, and the published 671B / 37B / 11.5B. */
static void test_v3_params(void) {
  model_spec m;
  cfg_ctx *ctx;
  T_CHECK(load("experiments/models/deepseek-v3.yaml", &m, &ctx) == 0);
  model_params p;
  model_param_counts(&m, &p);
  uint64_t attn = 7168ull * 1536 + 1536 + 1536ull * 128 * (128 + 64) + 7168ull * (512 + 64) + 512 +
                  512ull * 128 * (128 + 128) + 128ull * 128 * 7168;
  uint64_t expert = 3ull * 7168 * 2048, gate = 256ull * 7168 + 256, dense = 3ull * 7168 * 18432;
  uint64_t layer = attn + 2 * 7168;
  uint64_t emb = 129280ull * 7168;
  uint64_t total = 2 * emb + 7168 + 61 * layer + 3 * dense + 58 * (257 * expert + gate);
  uint64_t active = 2 * emb + 7168 + 61 * layer + 3 * dense + 58 * (9 * expert + gate);
  uint64_t mtp = 2 * 7168 + 2ull * 7168 * 7168 + layer + 257 * expert + gate + 7168;
  T_EQ_INT(p.attn, attn);
  T_EQ_INT(p.total, total);
  T_EQ_INT(p.active, active);
  T_EQ_INT(p.mtp, mtp);
  T_EQ_INT(p.total, 671026419200ull);
  T_NEAR(p.total / 671e9, 1.0, 0.001);   /* the report's 671B */
  T_NEAR(p.active / 37e9, 1.0, 0.02);    /* the report's 37B (README_WEIGHTS: 36.7B) */
  T_NEAR(p.mtp / 11.5e9, 1.0, 0.02);     /* README_WEIGHTS: 11.5B unique MTP parameters */
  cfg_free(ctx);
}

/* The other three against their published totals. */
static void test_published_totals(void) {
  struct { const char *path; double total, active, tol; } cases[] = {
      {"experiments/models/deepseek-v2.yaml", 236e9, 21e9, 0.02},
      {"experiments/models/llama-3.1-405b.yaml", 405e9, 405e9, 0.01},
      {"experiments/models/mixtral-8x22b.yaml", 141e9, 39e9, 0.01},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    model_spec m;
    cfg_ctx *ctx;
    T_CHECK(load(cases[i].path, &m, &ctx) == 0);
    model_params p;
    model_param_counts(&m, &p);
    T_CHECKF(p.total / cases[i].total > 1 - cases[i].tol && p.total / cases[i].total < 1 + cases[i].tol, "%s total %.4g",
             cases[i].path, (double)p.total);
    T_CHECKF(p.active / cases[i].active > 1 - 0.03 && p.active / cases[i].active < 1 + 0.03, "%s active %.4g",
             cases[i].path, (double)p.active);
    cfg_free(ctx);
  }
  /* Llama 3.1 405B exactly: 126 layers of q, k, v, o, SwiGLU and two norms, untied 128256 x 16384. */
  model_spec m;
  cfg_ctx *ctx;
  T_CHECK(load("experiments/models/llama-3.1-405b.yaml", &m, &ctx) == 0);
  model_params p;
  model_param_counts(&m, &p);
  uint64_t h = 16384, layer = h * h + 2 * h * 1024 + h * h + 3 * h * 53248 + 2 * h;
  T_EQ_INT(p.total, 126 * layer + 2 * 128256 * h + h);
  cfg_free(ctx);
}

/* KV cache per token in BF16: MLA (512 + 64) values per layer; GQA 2 * kv_heads * head_dim. */
static void test_kv_bytes(void) {
  struct { const char *path; uint64_t bytes; } cases[] = {
      {"experiments/models/deepseek-v3.yaml", (512 + 64) * 2 * 61},
      {"experiments/models/deepseek-v2.yaml", (512 + 64) * 2 * 60},
      {"experiments/models/llama-3.1-405b.yaml", 2 * 8 * 128 * 2 * 126},
      {"experiments/models/mixtral-8x22b.yaml", 2 * 8 * 128 * 2 * 56},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    model_spec m;
    cfg_ctx *ctx;
    T_CHECK(load(cases[i].path, &m, &ctx) == 0);
    T_EQ_INT(model_kv_bytes_per_token(&m), cases[i].bytes);
    cfg_free(ctx);
  }
}

/* Per-op FLOPs and shapes of a V3 MoE layer for 2 sequences of 4096 tokens. */
static void test_v3_ops(void) {
  model_spec m;
  cfg_ctx *ctx;
  T_CHECK(load("experiments/models/deepseek-v3.yaml", &m, &ctx) == 0);
  model_op ops[MODEL_MAX_OPS];
  size_t n = model_block_ops(&m, MODEL_BLOCK_MOE, 2, ops);
  double T = 8192, pairs = 2 * 4096.0 * 4097 / 2;
  const model_op *o = find(ops, n, MODEL_PASS_F, "attn.q_down", 0);
  T_CHECK(o && o->flops == 2 * T * 7168 * 1536 && o->m == 8192 && o->n == 1536 && o->k == 7168 && o->dtype == MODEL_FP8);
  o = find(ops, n, MODEL_PASS_B, "attn.q_down", 0);
  T_CHECK(o && o->flops == 2 * T * 7168 * 1536 && o->m == 8192 && o->n == 7168 && o->k == 1536);
  o = find(ops, n, MODEL_PASS_W, "attn.q_down", 0);
  T_CHECK(o && o->flops == 2 * T * 7168 * 1536 && o->m == 7168 && o->n == 1536 && o->k == 8192);
  /* FP8 Fprop bytes: A (T x k) and B (k x n) at 1 byte, C (T x n) BF16 */
  T_CHECK(o && find(ops, n, MODEL_PASS_F, "attn.q_down", 0)->bytes == T * 7168 + 7168.0 * 1536 + T * 1536 * 2);
  o = find(ops, n, MODEL_PASS_F, "attn.core", 0);
  T_CHECK(o && o->flops == 2 * 128 * (192 + 128) * pairs && o->groups == 128);
  o = find(ops, n, MODEL_PASS_B, "attn.core", 0);
  T_CHECK(o && o->flops == 4 * 128 * (192 + 128) * pairs);
  o = find(ops, n, MODEL_PASS_B, "attn.core", 1);
  T_CHECK(o && o->flops == 2 * 128 * 192 * pairs);
  T_CHECK(find(ops, n, MODEL_PASS_W, "attn.core", 0) == NULL);
  o = find(ops, n, MODEL_PASS_F, "moe.routed.up", 0);
  T_CHECK(o && o->flops == 2 * T * 8 * 7168 * 4096 && o->m == 8 * 8192 && o->groups == 256 && o->cls == MODEL_OP_GROUPED);
  o = find(ops, n, MODEL_PASS_F, "moe.shared.down", 0);
  T_CHECK(o && o->flops == 2 * T * 2048 * 7168);
  o = find(ops, n, MODEL_PASS_F, "moe.gate", 0);
  T_CHECK(o && o->dtype == MODEL_BF16 && o->flops == 2 * T * 7168 * 256);
  o = find(ops, n, MODEL_PASS_F, "attn.norm", 0);
  T_CHECK(o && o->flops == 4 * T * 7168);
  /* Order: F first (attn.norm), then recomputation, then B back to front, W last. */
  T_EQ_STR(ops[0].name, "attn.norm");
  size_t i = 0;
  while (i < n && ops[i].pass == MODEL_PASS_F) i++;
  while (i < n && ops[i].recompute) i++;
  T_CHECK(i < n && strcmp(ops[i].name, "moe.combine") == 0 && ops[i].pass == MODEL_PASS_B);
  T_CHECK(ops[n - 1].pass == MODEL_PASS_W && strcmp(ops[n - 1].name, "attn.norm") == 0);
  /* V3's recomputation: 4 norms, 2 MLA up-projections, 2 SwiGLUs, plus FlashAttention's scores;
   * and the FP8 quantization of the recomputed GEMM inputs (the q/kv down-projections' x, the q and
   * kv latents, the dispatched x for the shared expert, the two SwiGLU outputs). */
  int rc = 0, rq = 0;
  for (size_t j = 0; j < n; j++) rc += ops[j].recompute && ops[j].cls != MODEL_OP_QUANT;
  for (size_t j = 0; j < n; j++) rq += ops[j].recompute && ops[j].cls == MODEL_OP_QUANT;
  T_EQ_INT(rc, 9);
  T_EQ_INT(rq, 6);
  m.recompute = (model_recompute){0, 0, 0, 0};
  n = model_block_ops(&m, MODEL_BLOCK_MOE, 2, ops);
  rc = 0;
  for (size_t j = 0; j < n; j++) rc += ops[j].recompute;
  T_EQ_INT(rc, 1);
  /* The head stays BF16 */
  n = model_block_ops(&m, MODEL_BLOCK_HEAD, 1, ops);
  o = find(ops, n, MODEL_PASS_F, "head.proj", 0);
  T_CHECK(o && o->dtype == MODEL_BF16 && o->flops == 2 * 4096.0 * 7168 * 129280);
  cfg_free(ctx);
}

/* Training FLOPs per token, Llama 3.1 405B, by hand: GEMMs 3 x 2 x params, attention F + 2F,
 * norms 4 + 8 + 2 per element, SwiGLU 6 + 12 per element, loss 5 + 2 per logit, embedding
 * gradient 1 per element. */
static void test_flops_per_token(void) {
  model_spec m;
  cfg_ctx *ctx;
  T_CHECK(load("experiments/models/llama-3.1-405b.yaml", &m, &ctx) == 0);
  model_flops f;
  model_flops_per_token(&m, &f);
  double h = 16384, i = 53248, V = 128256, s = 8192, L = 126, H = 128, d = 128;
  double P = h * H * d + 2 * h * 8 * d + H * d * h + 3 * h * i;
  double attn = 2 * H * 2 * d * (s + 1) / 2;
  double fwd = L * (2 * P + attn + 2 * 4 * h + 6 * i) + 4 * h + 2 * h * V + 5 * V;
  double train = L * (6 * P + 3 * attn + 2 * 14 * h + 18 * i) + 14 * h + 6 * h * V + 7 * V + h;
  T_NEAR(f.fwd / fwd, 1.0, 1e-12);
  T_NEAR(f.train / train, 1.0, 1e-12);
  T_NEAR(f.fwd_attn / (L * attn), 1.0, 1e-12);
  T_NEAR(f.recompute / (L * 2 * H * d * (s + 1) / 2), 1.0, 1e-12);
  cfg_free(ctx);
  /* V3: close to 6 x active + attention (the usual estimate), MTP included. */
  T_CHECK(load("experiments/models/deepseek-v3.yaml", &m, &ctx) == 0);
  model_flops_per_token(&m, &f);
  model_params p;
  model_param_counts(&m, &p);
  double est = 6.0 * (p.active - p.embed + p.mtp_active + p.head) + 3 * f.fwd_attn * 62.0 / 61; /* MTP: own head GEMM */
  T_NEAR(f.train / est, 1.0, 0.01);
  T_CHECK(f.fwd_mtp > 0 && f.train > 2.5e11 && f.train < 2.7e11);
  cfg_free(ctx);
}

/* Bytes per parameter and activation bytes per token per layer for V3, by hand, with and without
 * the recomputation choices. */
static void test_memory(void) {
  model_spec m;
  cfg_ctx *ctx;
  T_CHECK(load("experiments/models/deepseek-v3.yaml", &m, &ctx) == 0);
  model_memory mem;
  model_memory_use(&m, &mem);
  T_NEAR(mem.bytes_per_param, 2 + 4 + 4 + 2 * 2, 0);
  double c = 1 + 4.0 / 128, o = 1.5 + 4.0 / 128, h = 7168;
  double attn = h * 2 + 1536 * 2 + (512 + 64) * 2 + 128 * 128 * o + 128 * 4;
  T_NEAR(mem.act_attn, attn, 1e-9);
  double moe = attn + h * 2 + 8 * 8 + 8 * h * c + 8 * 2 * 2048 * c + 8 * h * 2 + 2 * 2048 * c;
  T_NEAR(mem.act_moe, moe, 1e-9);
  T_NEAR(mem.act_dense, attn + h * 2 + 2 * 18432 * c, 1e-9);
  m.recompute = (model_recompute){0, 0, 0, 0};
  model_memory_use(&m, &mem);
  double attn0 = attn + h * c + 1536 * c + 512 * c + 128 * 192 * 2 + 128 * 256 * 2;
  T_NEAR(mem.act_attn, attn0, 1e-9);
  T_NEAR(mem.act_dense, attn0 + h * 2 + h * c + 3 * 18432 * c, 1e-9);
  m.prec.moments = MODEL_FP32;
  model_memory_use(&m, &mem);
  T_NEAR(mem.bytes_per_param, 18, 0);
  cfg_free(ctx);
}

static char tmpdir[64];

/* Loads YAML text; returns model_load's status and the first line it printed on stderr. */
static int load_text(const char *text, char *msg, size_t len) {
  char path[128];
  snprintf(path, sizeof path, "%s/m.yaml", tmpdir);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  char cap[128];
  snprintf(cap, sizeof cap, "%s/err.txt", tmpdir);
  fflush(stderr);
  int saved = dup(2);
  FILE *e = freopen(cap, "w", stderr);
  (void)e;
  model_spec m;
  cfg_ctx *ctx = cfg_new();
  model_init(&m);
  int rc = model_load(ctx, path, &m);
  cfg_free(ctx);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char *out = util_read_file(cap, NULL);
  snprintf(msg, len, "%s", out ? out : "");
  free(out);
  return rc;
}

static void test_errors(void) {
  char msg[512];
  const char *base = "name: x\nvocab: 100\nhidden: 64\nlayers: 2\nseq_len: 16\nffn_intermediate: 128\n";
  char text[1024];
  snprintf(text, sizeof text, "%sattention: {kind: gqa, heads: 6, kv_heads: 4, head_dim: 8}\n", base);
  T_CHECK(load_text(text, msg, sizeof msg) == -1);
  T_CHECK(strstr(msg, "m.yaml:7:") && strstr(msg, "error: heads (6) must be a multiple of kv_heads (4)"));
  snprintf(text, sizeof text, "%sattention: {kind: mla, heads: 4}\n", base);
  T_CHECK(load_text(text, msg, sizeof msg) == -1 && strstr(msg, "MLA needs"));
  snprintf(text, sizeof text, "%sattention: {kind: gqa, heads: 4, kv_heads: 4, head_dim: 8}\nmoe: {routed_experts: 4, experts_per_token: 5, expert_intermediate: 8}\n", base);
  T_CHECK(load_text(text, msg, sizeof msg) == -1 && strstr(msg, "experts_per_token (5) exceeds"));
  snprintf(text, sizeof text, "%sattention: {kind: gqa, heads: 4, kv_heads: 4, head_dim: 8}\nprecision: {moments: fp8_e4m3}\n", base);
  T_CHECK(load_text(text, msg, sizeof msg) == -1 && strstr(msg, "precision.moments cannot be fp8_e4m3"));
  snprintf(text, sizeof text, "%sattention: {kind: gqa, heads: 4, kv_heads: 4, head_dim: 8}\nmtp_dpth: 1\n", base);
  T_CHECK(load_text(text, msg, sizeof msg) == -1 && strstr(msg, "did you mean 'mtp_depth'"));
  snprintf(text, sizeof text, "%sattention: {kind: gqa, heads: 4, kv_heads: 4, head_dim: 8}\n", base);
  T_CHECK(load_text(text, msg, sizeof msg) == 0);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_model.%d", (int)getpid());
  util_mkdirs(tmpdir);
  T_RUN(test_v3_params);
  T_RUN(test_published_totals);
  T_RUN(test_kv_bytes);
  T_RUN(test_v3_ops);
  T_RUN(test_flops_per_token);
  T_RUN(test_memory);
  T_RUN(test_errors);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return t_done();
}
