/* sim/cmd_model.c — `moesim model FILE`: what a model spec implies — parameters (total, active,
 * MTP), training FLOPs per token, KV-cache bytes per token, training memory — as text, as one CSV
 * row (--csv), or as the per-block F/B/W operator table (--ops). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"
#include "model.h"
#include "util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim model FILE [--csv] [--ops [--seqs N]] [--set KEY=VALUE]...\n"
          "\n"
          "Reads a model spec (experiments/models/*.yaml) and prints its parameters (total, active per\n"
          "token, MTP modules), training FLOPs per token at its seq_len (forward + backward, model\n"
          "FLOPs: no recomputation), KV-cache bytes per token (BF16) and training memory.\n"
          "\n"
          "  --csv         print `name,params_total,params_active,train_flops_per_token,kv_bytes_per_token`\n"
          "                (with --ops: the operator table as CSV)\n"
          "  --ops         print every block's F, B (input gradient) and W (weight gradient) operators:\n"
          "                shape, FLOPs, bytes moved, dtype, recomputation\n"
          "  --seqs N      micro-batch of N sequences for --ops (default 1)\n"
          "  --set K=V     override a key of the file (dotted path, e.g. --set moe.experts_per_token=4)\n"
          "  -h, --help    this text\n"
          "\n"
          "params_total counts the main model without MTP modules (DeepSeek's 671B convention);\n"
          "params_active includes the embedding and output head; training FLOPs include MTP.\n"
          "\nkeys of a model file:\n");
  cfg_print_keys(model_keys, 2, f);
}

static void print_summary(const model_spec *m, const char *path) {
  model_params p;
  model_flops fl;
  model_memory mem;
  model_param_counts(m, &p);
  model_flops_per_token(m, &fl);
  model_memory_use(m, &mem);
  printf("%s (%s)\n\n", m->name, path);
  printf("parameters\n");
  printf("  total, main model (no MTP)    %10.2f B  (%llu)\n", p.total / 1e9, (unsigned long long)p.total);
  printf("  active per token              %10.2f B  (%llu; embedding %.2f B and head %.2f B included)\n",
         p.active / 1e9, (unsigned long long)p.active, p.embed / 1e9, p.head / 1e9);
  if (m->mtp_depth)
    printf("  MTP modules (x%d, unique)      %10.2f B  (%.2f B active; embedding and head shared)\n", m->mtp_depth,
           p.mtp / 1e9, p.mtp_active / 1e9);
  printf("  per layer: attention %.1f M", p.attn / 1e6);
  if (m->dense_layers) printf(", dense FFN %.1f M (%d layers)", p.dense_ffn / 1e6, m->dense_layers);
  if (m->moe.routed_experts)
    printf(", MoE FFN %.2f B (%d layers; one expert %.1f M, gate %.2f M), of which active %.1f M", p.moe / 1e9,
           m->layers - m->dense_layers, p.expert / 1e6, p.gate / 1e6, p.moe_active / 1e6);
  printf("\n\ntraining FLOPs per token at seq_len %d\n", m->seq_len);
  printf("  forward                       %10.2f G  (layers %.2f G, of which attention cores %.2f G; head %.2f G",
         fl.fwd / 1e9, fl.fwd_layers / 1e9, fl.fwd_attn / 1e9, fl.fwd_head / 1e9);
  if (m->mtp_depth) printf("; MTP %.2f G", fl.fwd_mtp / 1e9);
  printf(")\n  forward + backward            %10.2f G  (model FLOPs; recomputation adds %.2f G)\n", fl.train / 1e9,
         fl.recompute / 1e9);
  uint64_t kv = model_kv_bytes_per_token(m);
  printf("\nKV cache per token (BF16)     %10llu bytes  (%.1f KiB over %d layers)\n", (unsigned long long)kv,
         kv / 1024.0, m->layers);
  printf("\ntraining memory (whole model incl. MTP, before any sharding)\n");
  printf("  per parameter                 %10.4g bytes (weights %s, master %s, gradients %s, 2 moments %s)\n",
         mem.bytes_per_param, model_fmt_name(m->prec.weights), model_fmt_name(m->prec.master),
         model_fmt_name(m->prec.grads), model_fmt_name(m->prec.moments));
  printf("  weights %.2f TB, master %.2f TB, gradients %.2f TB, optimizer %.2f TB\n", mem.weights / 1e12,
         mem.master / 1e12, mem.grads / 1e12, mem.optimizer / 1e12);
  printf("  activations per token per layer: dense %.1f KB", mem.act_dense / 1e3);
  if (m->moe.routed_experts) printf(", MoE %.1f KB", mem.act_moe / 1e3);
  printf(" (attention %.1f KB; recompute rmsnorm=%d mla_up=%d swiglu=%d expert_out=%d; cache %s)\n",
         mem.act_attn / 1e3, m->recompute.rmsnorm, m->recompute.mla_up, m->recompute.swiglu, m->recompute.expert_out,
         model_fmt_name(m->prec.act_cache));
}

static const char *const class_names[] = {"gemm", "grouped_gemm", "attention", "rmsnorm",
                                          "swiglu", "route", "embed", "loss", "quant", "transpose"};

static void print_ops(const model_spec *m, int seqs, int csv) {
  model_op ops[MODEL_MAX_OPS];
  if (csv) printf("block,pass,op,class,dtype,recompute,m,n,k,groups,flops,bytes\n");
  for (int b = 0; b < MODEL_BLOCK_COUNT; b++) {
    if (b == MODEL_BLOCK_DENSE && m->dense_layers == 0) continue;
    if (b == MODEL_BLOCK_MOE && !m->moe.routed_experts) continue;
    if (b == MODEL_BLOCK_MTP && !m->mtp_depth) continue;
    size_t n = model_block_ops(m, (model_block)b, seqs, ops);
    if (!csv)
      printf("%s%s (micro-batch of %d x %d tokens)\n%-4s %-20s %-12s %-8s %-3s %8s %8s %8s %6s %12s %12s\n",
             b ? "\n" : "", model_block_name((model_block)b), seqs, m->seq_len, "pass", "op", "class", "dtype", "rc",
             "m", "n", "k", "groups", "GFLOP", "MB");
    for (size_t i = 0; i < n; i++) {
      const model_op *o = &ops[i];
      if (csv)
        printf("%s,%s,%s,%s,%s,%d,%lld,%lld,%lld,%lld,%.6g,%.6g\n", model_block_name((model_block)b),
               model_pass_name(o->pass), o->name, class_names[o->cls], model_fmt_name(o->dtype), o->recompute,
               (long long)o->m, (long long)o->n, (long long)o->k, (long long)o->groups, o->flops, o->bytes);
      else
        printf("%-4s %-20s %-12s %-8s %-3s %8lld %8lld %8lld %6lld %12.3f %12.3f\n", model_pass_name(o->pass), o->name,
               class_names[o->cls], model_fmt_name(o->dtype), o->recompute ? "yes" : "", (long long)o->m,
               (long long)o->n, (long long)o->k, (long long)o->groups, o->flops / 1e9, o->bytes / 1e6);
    }
  }
}

static int bad_usage(const char *msg, const char *arg) {
  fprintf(stderr, "moesim model: error: %s%s%s%s\n", msg, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
  usage(stderr);
  return UTIL_EXIT_USAGE;
}

int cmd_model(int argc, char **argv) {
  const char *path = NULL;
  int csv = 0, ops = 0, seqs = 1;
  cfg_ctx *ctx = cfg_new();
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      cfg_free(ctx);
      return 0;
    } else if (strcmp(a, "--csv") == 0) {
      csv = 1;
    } else if (strcmp(a, "--ops") == 0) {
      ops = 1;
    } else if (strcmp(a, "--seqs") == 0) {
      char *end;
      errno = 0;
      long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
      if (i + 1 >= argc || errno || *end || v < 1 || v > 1 << 20) rc = bad_usage("--seqs wants a count in 1..1048576", i + 1 < argc ? argv[i + 1] : NULL);
      seqs = (int)v;
      i++;
    } else if (strcmp(a, "--set") == 0) {
      if (i + 1 >= argc) rc = bad_usage("--set needs KEY=VALUE", NULL);
      else if (cfg_override(ctx, argv[++i], "--set") != 0) rc = UTIL_EXIT_USAGE;
    } else if (a[0] == '-') {
      rc = bad_usage("unknown option", a);
    } else if (path) {
      rc = bad_usage("more than one model file given:", a);
    } else {
      path = a;
    }
  }
  if (rc == 0 && !path) rc = bad_usage("no model file given", NULL);
  model_spec m;
  model_init(&m);
  if (rc == 0 && (model_load(ctx, path, &m) != 0 || cfg_overrides_check_used(ctx) != 0)) rc = UTIL_EXIT_USAGE;
  if (rc == 0) {
    if (ops) {
      print_ops(&m, seqs, csv);
    } else if (csv) {
      model_params p;
      model_flops fl;
      model_param_counts(&m, &p);
      model_flops_per_token(&m, &fl);
      printf("name,params_total,params_active,train_flops_per_token,kv_bytes_per_token\n");
      printf("%s,%llu,%llu,%.6g,%llu\n", m.name, (unsigned long long)p.total, (unsigned long long)p.active, fl.train,
             (unsigned long long)model_kv_bytes_per_token(&m));
    } else {
      print_summary(&m, path);
    }
  }
  cfg_free(ctx);
  return rc;
}
