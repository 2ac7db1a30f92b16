/* sim/compute.c — kernel-table lookups, nearest-shape-class projection and roofline for one op on a
 * target GPU (see compute.h), memoised per distinct op. */
#include "compute.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeta.h"
#include "util.h"

typedef struct peak_entry {
  char device[16]; /* kernel-table device */
  char dtype[16];  /* dtype */
  double tflops;   /* peak */
} peak_entry;

typedef struct memo_entry {
  compute_op op;      /* the key (dtype and kernel compared by content) */
  char dtype[16];     /* owned copy of op.dtype */
  char kernel[24];    /* owned copy of op.kernel ("" for none) */
  compute_cost cost;  /* the answer */
  int used;           /* slot taken */
} memo_entry;

struct compute_ctx {
  char device[16];         /* target device name */
  compute_target t;        /* target figures (device points at .device above) */
  kt_row *rows;            /* rows that can cost ops (peak rows excluded) */
  double *row_peak;        /* [cap_rows] each row's peak for its dtype from its table's sidecar
                              (sim/kmeta.h), TFLOP/s; 0: the peak registered for its device */
  size_t n_rows, cap_rows;
  peak_entry *peaks;       /* source-device peaks */
  size_t n_peaks, cap_peaks;
  memo_entry *memo;        /* open-addressing hash of costs */
  size_t memo_cap, memo_len;
};

static const char *const src_names[COMPUTE_SRC_COUNT] = {"measured", "published", "projected", "roofline"};

const char *compute_src_name(compute_src s) { return s >= 0 && s < COMPUTE_SRC_COUNT ? src_names[s] : "?"; }

const char *compute_dtype_name(int f) {
  switch (f) {
  case MODEL_FP8: return "fp8_e4m3";
  case MODEL_BF16: return "bf16";
  case MODEL_FP32: return "fp32";
  case MODEL_E5M6: return "e5m6";
  default: return "bf16";
  }
}

compute_ctx *compute_new(const compute_target *t) {
  compute_ctx *c = util_xcalloc(1, sizeof *c);
  snprintf(c->device, sizeof c->device, "%s", t->device ? t->device : "target");
  c->t = *t;
  c->t.device = c->device;
  return c;
}

void compute_free(compute_ctx *c) {
  if (!c) return;
  free(c->rows);
  free(c->row_peak);
  free(c->peaks);
  free(c->memo);
  free(c);
}

static void memo_clear(compute_ctx *c) {
  free(c->memo);
  c->memo = NULL;
  c->memo_cap = c->memo_len = 0;
}

void compute_set_peak(compute_ctx *c, const char *device, const char *dtype, double tflops) {
  for (size_t i = 0; i < c->n_peaks; i++)
    if (strcmp(c->peaks[i].device, device) == 0 && strcmp(c->peaks[i].dtype, dtype) == 0) {
      c->peaks[i].tflops = tflops;
      memo_clear(c);
      return;
    }
  if (c->n_peaks == c->cap_peaks) {
    c->cap_peaks = c->cap_peaks ? 2 * c->cap_peaks : 16;
    c->peaks = util_xrealloc(c->peaks, c->cap_peaks * sizeof *c->peaks);
  }
  peak_entry *p = &c->peaks[c->n_peaks++];
  snprintf(p->device, sizeof p->device, "%s", device);
  snprintf(p->dtype, sizeof p->dtype, "%s", dtype);
  p->tflops = tflops;
  memo_clear(c);
}

static int is_fp8(const char *dtype) { return strncmp(dtype, "fp8", 3) == 0; }

/* The target's datasheet peak for a dtype: FP8 for FP8 operands, BF16 for everything else. */
static double target_peak(const compute_ctx *c, const char *dtype) {
  return is_fp8(dtype) ? c->t.fp8_tflops : c->t.bf16_tflops;
}

double compute_peak(const compute_ctx *c, const char *device, const char *dtype) {
  for (size_t i = 0; i < c->n_peaks; i++)
    if (strcmp(c->peaks[i].device, device) == 0 && strcmp(c->peaks[i].dtype, dtype) == 0) return c->peaks[i].tflops;
  if (strcmp(device, c->device) == 0) return target_peak(c, dtype);
  return 0;
}

/* Adds rows, each with the peak its sidecar records for it (meta may be NULL). */
static void add_rows(compute_ctx *c, const kt_row *rows, size_t n, const kmeta *meta) {
  for (size_t i = 0; i < n; i++) {
    const kt_row *r = &rows[i];
    if (strcmp(r->kernel, "peak") == 0) {
      if (r->tflops > 0) compute_set_peak(c, r->device, r->dtype, r->tflops);
      continue;
    }
    if (c->n_rows == c->cap_rows) {
      c->cap_rows = c->cap_rows ? 2 * c->cap_rows : 64;
      c->rows = util_xrealloc(c->rows, c->cap_rows * sizeof *c->rows);
      c->row_peak = util_xrealloc(c->row_peak, c->cap_rows * sizeof *c->row_peak);
    }
    c->row_peak[c->n_rows] = meta ? kmeta_peak(meta, r->host, r->device, (int)r->threads, r->dtype) : 0;
    c->rows[c->n_rows++] = *r;
  }
  memo_clear(c);
}

void compute_add_rows(compute_ctx *c, const kt_row *rows, size_t n) { add_rows(c, rows, n, NULL); }

int compute_load_table(compute_ctx *c, const char *path) {
  kt_table t = {0};
  int rc = kt_load(path, &t);
  if (rc == 0) {
    kmeta meta = {0};
    if (kmeta_load_for_table(path, &meta) < 0) rc = -1; /* a sidecar that exists must be readable */
    else add_rows(c, t.rows, t.len, &meta);
    kmeta_free(&meta);
  }
  kt_free(&t);
  return rc;
}

/* The peak a row's efficiency is taken against: its sidecar's, else its device's (0: unknown). */
static double row_peak(const compute_ctx *c, size_t i) {
  return c->row_peak[i] > 0 ? c->row_peak[i] : compute_peak(c, c->rows[i].device, c->rows[i].dtype);
}

/* The memory bandwidth a row's GB/s is taken against, GB/s: the target's HBM for the target's
 * rows; otherwise the table's memcpy row of the same device, host and thread count (the largest
 * copy, where there are several); 0 when there is none. */
static double row_bandwidth(const compute_ctx *c, const kt_row *r) {
  if (strcmp(r->device, c->device) == 0) return c->t.hbm_gbyte_s;
  const kt_row *best = NULL;
  for (size_t i = 0; i < c->n_rows; i++) {
    const kt_row *m = &c->rows[i];
    if (strcmp(m->kernel, "memcpy") != 0 || m->gbps <= 0 || m->threads != r->threads ||
        strcmp(m->device, r->device) != 0 || strcmp(m->host, r->host) != 0)
      continue;
    if (!best || m->n * m->m > best->n * best->m || (m->n * m->m == best->n * best->m && m->gbps > best->gbps))
      best = m;
  }
  return best ? best->gbps : 0;
}

size_t compute_rows(const compute_ctx *c) { return c->n_rows; }

/* Kernels whose rows teach an efficiency against a FLOP peak. */
static int needs_flop_peak(const char *k) {
  return strcmp(k, "gemm") == 0 || strcmp(k, "grouped_gemm") == 0 || strcmp(k, "attention") == 0;
}

size_t compute_rows_without_peak(const compute_ctx *c, char *buf, size_t len) {
  size_t n = 0, used = 0;
  if (len) buf[0] = '\0';
  for (size_t i = 0; i < c->n_rows; i++) {
    const kt_row *r = &c->rows[i];
    if (!needs_flop_peak(r->kernel) || row_peak(c, i) > 0) continue;
    n++;
    int seen = 0; /* list each device/dtype once */
    for (size_t j = 0; j < i && !seen; j++)
      seen = needs_flop_peak(c->rows[j].kernel) && row_peak(c, j) <= 0 && strcmp(c->rows[j].device, r->device) == 0 &&
             strcmp(c->rows[j].dtype, r->dtype) == 0;
    if (!seen && used < len) used += (size_t)snprintf(buf + used, len - used, "%s%s/%s", used ? ", " : "", r->device, r->dtype);
  }
  return n;
}

void compute_op_from_model(const model_op *mo, compute_op *out) {
  memset(out, 0, sizeof *out);
  switch (mo->cls) {
  case MODEL_OP_GEMM: out->cls = COMPUTE_GEMM; break;
  case MODEL_OP_GROUPED: out->cls = COMPUTE_GROUPED; break;
  case MODEL_OP_ATTN: out->cls = COMPUTE_ATTN; break;
  default: out->cls = COMPUTE_ELEMENTWISE; break;
  }
  out->dtype = compute_dtype_name(mo->dtype);
  /* element-wise ops a table kernel measures: SwiGLU, the weighted un-permute of the MoE combine,
   * and the FP8 quantization of a GEMM input (BF16 in, FP8 and 1x128 scales out: quant_token) */
  if (mo->cls == MODEL_OP_SWIGLU) out->kernel = "swiglu";
  else if (mo->cls == MODEL_OP_QUANT) out->kernel = "quant_token";
  else if (mo->cls == MODEL_OP_ROUTE && mo->name && strcmp(mo->name, "moe.combine") == 0) out->kernel = "combine";
  if (out->cls == COMPUTE_GEMM || out->cls == COMPUTE_GROUPED) {
    out->m = mo->m, out->n = mo->n, out->k = mo->k;
    out->groups = mo->groups > 0 ? mo->groups : 1;
    if (out->cls == COMPUTE_GROUPED && mo->pass == MODEL_PASS_W) {
      /* each expert's weight gradient is an (in x rows_e).(rows_e x out) GEMM: in the table's
       * convention m counts A's rows over all groups, k is the (mean) rows per expert */
      out->m = mo->m * out->groups;
      out->k = mo->k / out->groups > 0 ? mo->k / out->groups : 1;
    }
  } else {
    out->groups = 1;
  }
  out->flops = mo->flops;
  out->bytes = mo->bytes;
}

/* ---------------------------------------------------------------- memo */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t op_hash(const compute_op *op) {
  uint64_t h = 0xcbf29ce484222325ull;
  int cls = (int)op->cls;
  h = fnv(h, &cls, sizeof cls);
  h = fnv(h, op->dtype, strlen(op->dtype));
  if (op->kernel) h = fnv(h, op->kernel, strlen(op->kernel));
  h = fnv(h, &op->m, sizeof op->m);
  h = fnv(h, &op->n, sizeof op->n);
  h = fnv(h, &op->k, sizeof op->k);
  h = fnv(h, &op->groups, sizeof op->groups);
  h = fnv(h, &op->flops, sizeof op->flops);
  return fnv(h, &op->bytes, sizeof op->bytes);
}

static int op_equal(const memo_entry *e, const compute_op *op) {
  return e->op.cls == op->cls && strcmp(e->dtype, op->dtype) == 0 && strcmp(e->kernel, op->kernel ? op->kernel : "") == 0 &&
         e->op.m == op->m && e->op.n == op->n &&
         e->op.k == op->k && e->op.groups == op->groups && e->op.flops == op->flops && e->op.bytes == op->bytes;
}

static memo_entry *memo_slot(compute_ctx *c, const compute_op *op) {
  if (c->memo_len * 2 >= c->memo_cap) {
    size_t cap = c->memo_cap ? 2 * c->memo_cap : 256;
    memo_entry *old = c->memo;
    size_t old_cap = c->memo_cap;
    c->memo = util_xcalloc(cap, sizeof *c->memo);
    c->memo_cap = cap;
    c->memo_len = 0;
    for (size_t i = 0; i < old_cap; i++)
      if (old[i].used) {
        memo_entry *e = memo_slot(c, &old[i].op);
        *e = old[i];
        e->op.dtype = e->dtype;
        e->op.kernel = e->kernel[0] ? e->kernel : NULL;
        c->memo_len++;
      }
    free(old);
  }
  size_t i = (size_t)(op_hash(op) & (c->memo_cap - 1));
  while (c->memo[i].used && !op_equal(&c->memo[i], op)) i = (i + 1) & (c->memo_cap - 1);
  return &c->memo[i];
}

/* ---------------------------------------------------------------- costing */

static const char *kernel_of(compute_class cls) {
  switch (cls) {
  case COMPUTE_GEMM: return "gemm";
  case COMPUTE_GROUPED: return "grouped_gemm";
  case COMPUTE_ATTN: return "attention";
  default: return "";
  }
}

/* 1 when a row of kernel `k` can teach op class `cls` its efficiency. */
static int in_family(compute_class cls, const char *k) {
  if (cls == COMPUTE_GEMM || cls == COMPUTE_GROUPED) return strcmp(k, "gemm") == 0 || strcmp(k, "grouped_gemm") == 0;
  if (cls == COMPUTE_ATTN) return strcmp(k, "attention") == 0;
  return 0;
}

static double dtype_bytes(const char *dtype) {
  if (strncmp(dtype, "fp8", 3) == 0) return 1;
  if (strcmp(dtype, "fp32") == 0) return 4;
  return 2;
}

/* A GEMM's shape class: log2 of its FLOPs per group and of its arithmetic intensity (FLOPs per
 * byte of operands in `dtype` and a BF16 output, one pass each): where it sits under the roofline
 * and how much parallel work it offers. */
static void shape_class(double m, double n, double k, double groups, const char *dtype, double out[2]) {
  double g = groups > 0 ? groups : 1, mg = m / g, e = dtype_bytes(dtype);
  double flops = 2 * mg * n * k, bytes = (mg * k + n * k) * e + mg * n * 2;
  out[0] = log2(flops > 1 ? flops : 1);
  out[1] = log2(bytes > 0 && flops > bytes ? flops / bytes : 1);
}

/* Shape distance of a row from the op; INFINITY for rows without a shape. */
static double shape_distance(const kt_row *r, const compute_op *op) {
  if (op->cls == COMPUTE_ATTN) return r->m == 0 && r->n == 0 && r->k == 0 ? INFINITY : 0;
  if (r->m <= 0 || r->n <= 0 || r->k <= 0) return INFINITY;
  double a[2], b[2];
  shape_class((double)r->m, (double)r->n, (double)r->k, (double)r->groups, r->dtype, a);
  shape_class((double)op->m, (double)op->n, (double)op->k, (double)op->groups, op->dtype, b);
  return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]));
}

/* Achieved TFLOP/s of a row (its column, else 2mnk over its median). */
static double row_tflops(const kt_row *r) {
  if (r->tflops > 0) return r->tflops;
  if (r->median_us > 0 && r->m > 0) return 2.0 * (double)r->m * (double)r->n * (double)r->k / (r->median_us * 1e-6) * 1e-12;
  return 0;
}

static void describe(char *buf, size_t n, const kt_row *r) {
  if (!r->m && !r->n && !r->k) {
    snprintf(buf, n, "%s %s %s headline figure (%s)", r->device, r->kernel, r->dtype, r->source);
    return;
  }
  char g[32] = "";
  if (r->groups > 1) snprintf(g, sizeof g, " g%lld", (long long)r->groups);
  snprintf(buf, n, "%s %s %s %lldx%lldx%lld%s (%s)", r->device, r->kernel, r->dtype, (long long)r->m, (long long)r->n,
           (long long)r->k, g, r->source);
}

/* 1 for a CPU's row when the target is not that CPU: a GPU's efficiency says more about another
 * GPU (same kind of units, memory and occupancy limits) than a CPU's does, so CPU rows come after
 * every GPU row and teach only what no GPU row covers. */
static int cpu_row_for_gpu(const compute_ctx *c, const kt_row *r) {
  return strcmp(r->device, "cpu") == 0 && strcmp(c->device, "cpu") != 0;
}

/* 1 for the plain-C reference's rows: the truth kernels are checked against, timed only for
 * comparison; no deployment runs them, so they teach nothing about a device's efficiency. */
static int reference_row(const kt_row *r) { return strcmp(r->backend, "ref") == 0; }

/* Bytes a row moved per call (GB/s at the median times the median). */
static double row_bytes(const kt_row *r) { return r->gbps * 1e9 * r->median_us * 1e-6; }

/* Rule 2b (compute.h): costs an element-wise op from the nearest row of its kernel whose device's
 * memory bandwidth is known. Returns 1 when it did, 0 when no row qualifies. */
static int project_bandwidth(const compute_ctx *c, const compute_op *op, double peak, compute_cost *out) {
  const kt_row *best = NULL;
  double best_key[5] = {0}, best_bw = 0;
  for (size_t i = 0; i < c->n_rows; i++) {
    const kt_row *r = &c->rows[i];
    if (strcmp(r->kernel, op->kernel) != 0 || r->gbps <= 0 || r->median_us <= 0 || reference_row(r)) continue;
    double bw = row_bandwidth(c, r);
    if (bw <= 0) continue;
    /* the size distance in twentieths of a doubling, so rows of one shape tie (their bytes are
     * recomputed from rounded columns), and then the best implementation of it wins */
    double dist = round(20 * fabs(log2(row_bytes(r)) - log2(op->bytes > 1 ? op->bytes : 1))) / 20;
    double key[5] = {strcmp(r->device, c->device) != 0, cpu_row_for_gpu(c, r), strcmp(r->dtype, op->dtype) != 0, dist,
                     -r->gbps / bw};
    int better = !best;
    for (int j = 0; j < 5 && !better; j++) {
      if (key[j] < best_key[j]) better = 1;
      if (key[j] != best_key[j]) break;
    }
    if (better) {
      best = r;
      best_bw = bw;
      memcpy(best_key, key, sizeof key);
    }
  }
  if (!best || c->t.hbm_gbyte_s <= 0) return 0;
  double eff = best->gbps / best_bw;
  if (eff > 1) eff = 1;
  double t_mem = op->bytes / (c->t.hbm_gbyte_s * 1e9 * eff), t_flop = peak > 0 ? op->flops / peak : 0;
  out->src = COMPUTE_SRC_PROJECTED;
  out->efficiency = eff;
  out->memory_bound = t_mem >= t_flop;
  out->seconds = t_mem > t_flop ? t_mem : t_flop;
  char d[128];
  describe(d, sizeof d, best);
  snprintf(out->from, sizeof out->from, "%.0f%% of memory bandwidth, as %s", 100 * eff, d);
  return 1;
}

static void cost_op(compute_ctx *c, const compute_op *op, compute_cost *out) {
  memset(out, 0, sizeof *out);
  double peak = target_peak(c, op->dtype) * 1e12;
  double t_mem = op->bytes / (c->t.hbm_gbyte_s * 1e9);
  const char *kernel = kernel_of(op->cls);
  /* 1: an exact row of the target. */
  if (op->cls != COMPUTE_ELEMENTWISE && op->cls != COMPUTE_ATTN) {
    const kt_row *best = NULL;
    for (size_t i = 0; i < c->n_rows; i++) {
      const kt_row *r = &c->rows[i];
      if (strcmp(r->device, c->device) != 0 || strcmp(r->kernel, kernel) != 0 || strcmp(r->dtype, op->dtype) != 0)
        continue;
      if (r->m != op->m || r->n != op->n || r->k != op->k || r->median_us <= 0) continue;
      if (op->cls == COMPUTE_GROUPED && r->groups != op->groups) continue;
      if (!best || r->median_us < best->median_us) best = r;
    }
    if (best) {
      out->seconds = best->median_us * 1e-6;
      out->src = strcmp(best->source, "published") == 0 ? COMPUTE_SRC_PUBLISHED : COMPUTE_SRC_MEASURED;
      out->efficiency = peak > 0 ? op->flops / out->seconds / peak : 0;
      describe(out->from, sizeof out->from, best);
      return;
    }
  }
  /* 2: the nearest shape class with a known peak. */
  const kt_row *best = NULL;
  double best_key[6] = {0}, best_peak = 0;
  for (size_t i = 0; i < c->n_rows; i++) {
    const kt_row *r = &c->rows[i];
    if (!in_family(op->cls, r->kernel) || reference_row(r)) continue;
    double rp = row_peak(c, i), rt = row_tflops(r);
    if (rp <= 0 || rt <= 0) continue;
    double key[6] = {strcmp(r->device, c->device) != 0, cpu_row_for_gpu(c, r), strcmp(r->dtype, op->dtype) != 0,
                     strcmp(r->kernel, kernel) != 0, shape_distance(r, op), -rt / rp};
    int better = !best;
    for (int j = 0; j < 6 && !better; j++) {
      if (key[j] < best_key[j]) better = 1;
      if (key[j] != best_key[j]) break;
    }
    if (better) {
      best = r;
      best_peak = rp;
      memcpy(best_key, key, sizeof key);
    }
  }
  if (best && peak > 0) {
    double eff = row_tflops(best) / best_peak;
    if (eff > 1) eff = 1;
    double t = op->flops / (peak * eff);
    out->src = COMPUTE_SRC_PROJECTED;
    out->efficiency = eff;
    char d[128];
    describe(d, sizeof d, best);
    snprintf(out->from, sizeof out->from, "%.0f%% of peak, as %s", 100 * eff, d);
    out->memory_bound = t_mem > t;
    out->seconds = t_mem > t ? t_mem : t;
    return;
  }
  /* 2b: an element-wise op a table kernel measures: its HBM bandwidth x the fraction of the memory
   * bandwidth the nearest such row achieved on its device (never above the FLOP roof). */
  if (op->cls == COMPUTE_ELEMENTWISE && op->kernel && project_bandwidth(c, op, peak, out)) return;
  /* 3: the roofline. */
  double t = peak > 0 ? op->flops / peak : 0;
  out->src = COMPUTE_SRC_ROOFLINE;
  out->memory_bound = t_mem >= t;
  out->seconds = t_mem > t ? t_mem : t;
  snprintf(out->from, sizeof out->from, "roofline: %s at %.0f GB/s HBM", out->memory_bound ? "bytes" : "FLOPs at peak",
           c->t.hbm_gbyte_s);
}

double compute_op_cost(compute_ctx *c, const compute_op *op, compute_cost *out) {
  if (op->flops <= 0 && op->bytes <= 0) {
    if (out) {
      memset(out, 0, sizeof *out);
      out->src = COMPUTE_SRC_ROOFLINE;
      snprintf(out->from, sizeof out->from, "nothing to do");
    }
    return 0;
  }
  memo_entry *e = memo_slot(c, op);
  if (!e->used) {
    e->used = 1;
    e->op = *op;
    snprintf(e->dtype, sizeof e->dtype, "%s", op->dtype);
    snprintf(e->kernel, sizeof e->kernel, "%s", op->kernel ? op->kernel : "");
    e->op.dtype = e->dtype;
    e->op.kernel = e->kernel[0] ? e->kernel : NULL;
    cost_op(c, op, &e->cost);
    c->memo_len++;
  }
  if (out) *out = e->cost;
  return e->cost.seconds;
}
