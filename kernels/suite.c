/* kernels/suite.c — which cases make up the quick, moe and full suites (see suite.h), and their
 * one-line descriptions. Backends a CPU cannot run are left out when the list is made, so every
 * listed case runs here. */
#include "suite.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "gemm.h"
#include "util.h"

typedef struct ks_list {
  ks_spec *v; /* cases */
  int n, cap; /* used, allocated */
} ks_list;

static void add(ks_list *l, ks_spec s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->v = util_xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
  }
  l->v[l->n++] = s;
}

static const int64_t v3_m[6] = {4, 16, 128, 512, 2048, 4096};
static const int64_t v3_kn[2][2] = {{7168, 4096}, {2048, 7168}}; /* (K, N): fused gate+up, down */

/* Quantizer cases: the best backend (AVX-512 also serves the AVX-512 BF16 level), or every
 * backend this CPU runs; plus power-of-two scales on the best. */
static void add_quant(ks_list *l, int all_backends, int64_t m, int64_t n, int64_t k, kn_dtype fmt) {
  int best = cpu_isa_best() >= CPU_AVX512 ? CPU_AVX512 : (int)cpu_isa_best();
  for (int lv = all_backends ? CPU_SCALAR : best; lv <= best; lv++) {
    add(l, (ks_spec){KS_QUANT_TOKEN, fmt, m, 1, k, 1, 0, lv, 0, NULL});
    add(l, (ks_spec){KS_QUANT_BLOCK, fmt, 1, n, k, 1, 0, lv, 0, NULL});
  }
  add(l, (ks_spec){KS_QUANT_TOKEN, fmt, m, 1, k, 1, 0, best, 1, NULL}); /* DeepSeek's dispatch scales */
}

static void add_moe_ops(ks_list *l, int64_t T, int64_t H, int64_t I, int E, int all) {
  add(l, (ks_spec){KS_GATE, KN_BF16, T, E, H, E, 0, -1, 0, NULL});
  for (int masked = 0; masked < 2; masked++) {
    add(l, (ks_spec){KS_DISPATCH, KN_FP8_E4M3, T, 0, H, E, masked, -1, masked, NULL});
    add(l, (ks_spec){KS_DISPATCH, KN_BF16, T, 0, H, E, masked, -1, 0, NULL});
    add(l, (ks_spec){KS_COMBINE, KN_BF16, T, 0, H, E, masked, -1, 0, NULL});
  }
  add(l, (ks_spec){KS_SWIGLU, KN_BF16, T * 8, 1, I, 1, 0, -1, 0, NULL});
  add(l, (ks_spec){KS_SWIGLU, KN_FP8_E4M3, T * 8, 1, I, 1, 0, -1, 0, NULL});
  if (all) { /* the plain-C references, for the speedup */
    add(l, (ks_spec){KS_DISPATCH, KN_FP8_E4M3, T, 0, H, E, 0, CPU_SCALAR, 0, NULL});
    add(l, (ks_spec){KS_COMBINE, KN_BF16, T, 0, H, E, 0, CPU_SCALAR, 0, NULL});
    add(l, (ks_spec){KS_SWIGLU, KN_BF16, T * 8, 1, I, 1, 0, CPU_SCALAR, 0, NULL});
  }
}

ks_spec *ks_suite(const char *name, int *n) {
  ks_list l = {0};
  int quick = strcmp(name, "quick") == 0, moe = strcmp(name, "moe") == 0, full = strcmp(name, "full") == 0;
  int smoke = strcmp(name, "smoke") == 0;
  if (!quick && !moe && !full && !smoke) return NULL;
  add(&l, (ks_spec){KS_MEMCPY, KN_FP32, 1, smoke ? 4ll << 20 : 256ll << 20, 1, 1, 0, -1, 0, NULL});
  if (smoke) {
    add_quant(&l, 1, 64, 256, 512, KN_FP8_E4M3);
    add_quant(&l, 0, 33, 130, 200, KN_FP8_E5M2);
    add_moe_ops(&l, 32, 512, 256, 64, 1);
    for (int d = 0; d < 2; d++) {
      kn_dtype dt = d ? KN_FP8_E4M3 : KN_BF16;
      add(&l, (ks_spec){KS_GEMM, dt, 16, 256, 512, 1, 0, -1, 0, NULL});
      add(&l, (ks_spec){KS_GROUPED, dt, 64, 256, 512, 8, d, -1, 0, NULL});
    }
    add(&l, (ks_spec){KS_MOE_LAYER, KN_FP8_E4M3, 16, 256, 128, 16, 0, -1, 1, NULL});
    add(&l, (ks_spec){KS_MOE_LAYER, KN_BF16, 16, 256, 128, 16, 0, -1, 0, NULL});
  } else if (quick) {
    add_quant(&l, 1, 1024, 2048, 7168, KN_FP8_E4M3);
    add_moe_ops(&l, 256, 7168, 2048, 256, 0);
    for (int d = 0; d < 2; d++) {
      kn_dtype dt = d ? KN_FP8_E4M3 : KN_BF16;
      add(&l, (ks_spec){KS_GEMM, dt, 128, 7168, 2048, 1, 0, -1, 0, NULL});
      add(&l, (ks_spec){KS_GROUPED, dt, 512, 7168, 2048, 8, 0, -1, 0, NULL});
    }
    add(&l, (ks_spec){KS_MOE_LAYER, KN_FP8_E4M3, 128, 2048, 512, 32, 0, -1, 0, NULL});
  } else {
    add_quant(&l, full, 4096, 4096, 7168, KN_FP8_E4M3);
    add_quant(&l, full, 4096, 7168, 2048, KN_FP8_E4M3);
    if (full) add_quant(&l, 0, 4096, 4096, 7168, KN_FP8_E5M2);
    add_moe_ops(&l, 4096, 7168, 2048, 256, full);
    int dtypes = full ? 3 : 2;
    for (int d = 0; d < dtypes; d++) {
      kn_dtype dt = d == 0 ? KN_BF16 : d == 1 ? KN_FP8_E4M3 : KN_FP8_E5M2;
      for (int s = 0; s < 2; s++)
        for (int i = 0; i < 6; i++) {
          if (!full) {
            add(&l, (ks_spec){KS_GEMM, dt, v3_m[i], v3_kn[s][1], v3_kn[s][0], 1, 0, -1, 0, NULL});
            continue;
          }
          for (int vi = 0; vi < gemm_variant_count(); vi++) { /* every variant this CPU runs */
            const gemm_variant *v = gemm_variant_at(vi);
            if (v->supported())
              add(&l, (ks_spec){KS_GEMM, dt, v3_m[i], v3_kn[s][1], v3_kn[s][0], 1, 0, -1, 0, v->name});
          }
        }
      if (d == 2) continue;
      static const int experts[3] = {8, 32, 256};
      for (int e = 0; e < 3; e++)
        for (int masked = 0; masked < 2; masked++)
          for (int s = 0; s < 2; s++)
            add(&l, (ks_spec){KS_GROUPED, dt, 4096, v3_kn[s][1], v3_kn[s][0], experts[e], masked, -1, 0, NULL});
    }
    add(&l, (ks_spec){KS_MOE_LAYER, KN_FP8_E4M3, 512, 7168, 2048, 16, 0, -1, 0, NULL});
    add(&l, (ks_spec){KS_MOE_LAYER, KN_BF16, 512, 7168, 2048, 16, 0, -1, 0, NULL});
    if (full) add(&l, (ks_spec){KS_MOE_LAYER, KN_FP8_E4M3, 512, 7168, 2048, 32, 0, -1, 1, NULL});
  }
  *n = l.n;
  return l.v;
}

static const char *const kind_names[KS_KIND_COUNT] = {"memcpy", "quant_token", "quant_block", "gate", "dispatch",
                                                      "combine", "swiglu", "gemm", "grouped_gemm", "moe_layer"};

void ks_describe(const ks_spec *s, char *buf, size_t len) {
  const char *be = s->level < 0 ? "best" : cpu_level_name((cpu_level)s->level);
  if (s->gvar) be = s->gvar;
  switch (s->kind) {
  case KS_MEMCPY: snprintf(buf, len, "memcpy %lld MiB", (long long)(s->n >> 20)); break;
  case KS_QUANT_TOKEN:
  case KS_QUANT_BLOCK:
    snprintf(buf, len, "%s bf16->%s %lldx%lld %s%s", kind_names[s->kind], kn_dtype_name(s->dtype),
             (long long)(s->kind == KS_QUANT_TOKEN ? s->m : s->n), (long long)s->k, be, s->pow2 ? " pow2" : "");
    break;
  case KS_GATE:
    snprintf(buf, len, "gate T=%lld E=%lld H=%lld", (long long)s->m, (long long)s->n, (long long)s->k);
    break;
  case KS_DISPATCH:
  case KS_COMBINE:
    snprintf(buf, len, "%s %s T=%lld H=%lld E=%d %s %s", kind_names[s->kind], kn_dtype_name(s->dtype), (long long)s->m,
             (long long)s->k, s->groups, s->masked ? "masked" : "contiguous", be);
    break;
  case KS_SWIGLU:
    snprintf(buf, len, "swiglu ->%s rows=%lld I=%lld %s", kn_dtype_name(s->dtype), (long long)s->m, (long long)s->k, be);
    break;
  case KS_GEMM:
  case KS_GROUPED:
    snprintf(buf, len, "%s %s M=%lld N=%lld K=%lld", kind_names[s->kind], kn_dtype_name(s->dtype), (long long)s->m,
             (long long)s->n, (long long)s->k);
    if (s->kind == KS_GROUPED)
      snprintf(buf + strlen(buf), len - strlen(buf), " experts=%d %s", s->groups, s->masked ? "masked" : "contiguous");
    snprintf(buf + strlen(buf), len - strlen(buf), " %s", be);
    break;
  case KS_MOE_LAYER:
    snprintf(buf, len, "moe_layer %s T=%lld H=%lld I=%lld experts=%d%s", kn_dtype_name(s->dtype), (long long)s->m,
             (long long)s->n, (long long)s->k, s->groups, s->pow2 ? " pow2" : "");
    break;
  default: snprintf(buf, len, "?"); break;
  }
}
