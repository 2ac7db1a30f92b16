/* kernels/cuda/suite.c — the CUDA kernel suite's driver (gpu.h: gpu_suite_run, gpu_run_suite):
 * picks the device, sets up the stream, events and L2 flush buffer, runs the families of the
 * chosen suite (each validates before it times), appends the rows to the kernel table and writes
 * the summary. Also the harness helpers of suite.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/check.h"
#include "cuda/suite.h"

typedef struct gs_family {
  const char *name;               /* for --only */
  void (*run)(gs_ctx *c, int full); /* the family */
  const char *what;               /* one line for the help */
} gs_family;

static const gs_family families[] = {
    {"gemm", gs_family_gemm, "FP8 block-scaled dense GEMM: own variants vs cuBLASLt, DeepGEMM's H800 table"},
    {"grouped", gs_family_grouped, "FP8 grouped GEMM, contiguous and masked layouts (DeepGEMM's shapes)"},
    {"bf16", gs_family_bf16, "BF16 dense GEMM (own vs cuBLAS) and BF16 grouped GEMM"},
    {"quant", gs_family_quant, "per-token 1x128 and 128x128 FP8 quantization, dequantization"},
    {"permute", gs_family_permute, "copy kernel (yardstick), route layout, dispatch, combine"},
    {"nccl", gs_family_nccl, "NCCL all-to-all across the visible GPUs (skipped with one GPU)"},
};

typedef struct gs_suite {
  const char *name;   /* --suite value */
  const char *fams;   /* families it runs */
  int full;           /* 1: the full shape lists */
  const char *what;   /* one line for the help */
} gs_suite;

static const gs_suite suites[] = {
    {"quick", "gemm,grouped,bf16,quant,permute,nccl", 0, "a few shapes of every family (well under a minute)"},
    {"deepgemm", "gemm,grouped", 1, "DeepGEMM's FP8 table: dense, contiguous, masked"},
    {"moe", "gemm,grouped,quant,permute,nccl", 1, "the V3 MoE shapes: DeepGEMM's table, quantization, dispatch/combine, all-to-all"},
    {"full", "gemm,grouped,bf16,quant,permute,nccl", 1, "everything, BF16 included"},
};

void gpu_suite_help(FILE *f) {
  fprintf(f, "  suites:\n");
  for (size_t i = 0; i < UTIL_ARRAY_LEN(suites); i++)
    fprintf(f, "    %-9s %s (%s)\n", suites[i].name, suites[i].what, suites[i].fams);
  fprintf(f, "  families (--only):\n");
  for (size_t i = 0; i < UTIL_ARRAY_LEN(families); i++) fprintf(f, "    %-9s %s\n", families[i].name, families[i].what);
}

/* 1 if `name` is an element of the comma-separated list. */
static int in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

gs_time gs_time_it(gs_ctx *c, gs_fn fn, void *arg, int flush) {
  gs_time t = {0, 0, c->reps};
  double *v = util_xcalloc((size_t)c->reps, sizeof *v);
  for (int i = 0; i < 2; i++)
    if (fn(arg, c->s)) UTIL_SYSFAIL("gs_time_it: the measured operation failed to launch");
  for (int r = 0; r < c->reps; r++) {
    if (flush && c->flush) CUDA_CHECK(cudaMemsetAsync(c->flush, r & 0xff, c->flush_bytes, c->s));
    CUDA_CHECK(cudaEventRecord(c->ev0, c->s));
    if (fn(arg, c->s)) UTIL_SYSFAIL("gs_time_it: the measured operation failed to launch");
    CUDA_CHECK(cudaEventRecord(c->ev1, c->s));
    CUDA_CHECK(cudaEventSynchronize(c->ev1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, c->ev0, c->ev1));
    v[r] = ms * 1e3;
  }
  qsort(v, (size_t)c->reps, sizeof *v, cmp_double);
  t.median_us = v[c->reps / 2];
  t.min_us = v[0];
  free(v);
  return t;
}

void gs_row(gs_ctx *c, const char *backend, const char *kernel, const char *variant, const char *dtype, int64_t m,
            int64_t n, int64_t k, int64_t groups, int sms, gs_time t, double flops, double bytes) {
  kt_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.host, sizeof r.host, "%s", util_hostname());
  snprintf(r.device, sizeof r.device, "cuda");
  snprintf(r.device_name, sizeof r.device_name, "%s", c->device_name);
  snprintf(r.backend, sizeof r.backend, "%s", backend);
  snprintf(r.kernel, sizeof r.kernel, "%s", kernel);
  snprintf(r.variant, sizeof r.variant, "%s", variant);
  snprintf(r.dtype, sizeof r.dtype, "%s", dtype);
  r.m = m, r.n = n, r.k = k, r.groups = groups, r.threads = sms, r.reps = t.reps;
  r.median_us = t.median_us;
  r.min_us = t.min_us;
  r.tflops = t.median_us > 0 ? flops / (t.median_us * 1e-6) / 1e12 : 0;
  r.gbps = t.median_us > 0 ? bytes / (t.median_us * 1e-6) / 1e9 : 0;
  snprintf(r.source, sizeof r.source, "measured");
  kt_push(&c->rows, &r);
}

void gs_say(gs_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t at = c->summary.len;
  util_buf_vprintf(&c->summary, fmt, ap);
  va_end(ap);
  util_buf_append(&c->summary, "\n", 1);
  fputs(c->summary.data + at, stdout);
  fflush(stdout);
}

void gs_progress(gs_ctx *c, const char *fmt, ...) {
  if (c->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("cuda: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void *gs_dalloc(size_t bytes) {
  void *p = NULL;
  CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
  return p;
}

void gs_free(void *p) {
  if (p) CUDA_CHECK(cudaFree(p));
}

void gs_put(void *dst, const void *src, size_t bytes) {
  if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void gs_get(void *dst, const void *src, size_t bytes) {
  if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void gs_sync(gs_ctx *c) { CUDA_CHECK(cudaStreamSynchronize(c->s)); }

int gs_close(float got, double ref, double absref, double atol_rel, double *worst) {
  double tol = 0.00390625 * (ref < 0 ? -ref : ref) + atol_rel * absref + 1e-30;
  double err = (double)got - ref;
  if (err < 0) err = -err;
  if (got != got || err > 1e300) {
    if (worst) *worst = 1e30;
    return 0;
  }
  if (worst && err / tol > *worst) *worst = err / tol;
  return err <= tol;
}

static void version_str(char *buf, size_t n, int v, int major_div, int minor_div, int minor_mod) {
  if (v <= 0) snprintf(buf, n, "none");
  else snprintf(buf, n, "%d.%d (%d)", v / major_div, (v / minor_div) % minor_mod, v);
}

int gpu_suite_run(const gpu_suite_opts *o) {
  const char *suite_name = o->suite ? o->suite : "quick";
  const gs_suite *su = NULL;
  for (size_t i = 0; i < UTIL_ARRAY_LEN(suites); i++)
    if (strcmp(suites[i].name, suite_name) == 0) su = &suites[i];
  if (!su) {
    fprintf(stderr, "moesim: error: unknown CUDA suite '%s' (quick, deepgemm, moe, full)\n", suite_name);
    return UTIL_EXIT_USAGE;
  }
  if (o->only) {
    for (const char *p = o->only; *p;) {
      const char *e = strchr(p, ',');
      size_t len = e ? (size_t)(e - p) : strlen(p);
      int ok = 0;
      for (size_t i = 0; i < UTIL_ARRAY_LEN(families); i++)
        if (strlen(families[i].name) == len && strncmp(p, families[i].name, len) == 0) ok = 1;
      if (!ok) {
        fprintf(stderr, "moesim: error: unknown CUDA family '%.*s' in --only\n", (int)len, p);
        return UTIL_EXIT_USAGE;
      }
      if (!e) break;
      p = e + 1;
    }
  }
  if (o->reps < 0 || o->reps > 100000) {
    fprintf(stderr, "moesim: error: --reps must be between 1 and 100000\n");
    return UTIL_EXIT_USAGE;
  }
  gs_ctx c;
  memset(&c, 0, sizeof c);
  char why[256] = "";
  gpu_info infos[16];
  c.ndev = gpu_query(infos, 16, why, (int)sizeof why);
  if (c.ndev <= 0) {
    fprintf(stderr, "moesim: error: no CUDA GPU present (%s)\n", why);
    return UTIL_EXIT_USAGE;
  }
  CUDA_CHECK(cudaSetDevice(0));
  c.gpu = infos[0];
  gpu_get_versions(&c.ver);
  snprintf(c.device_name, sizeof c.device_name, "%.95s", c.gpu.name);
  for (char *p = c.device_name; *p; p++)
    if (*p == ',' || *p == '\n') *p = ' ';
  c.suite = su->name;
  c.reps = o->reps > 0 ? o->reps : 20;
  c.validate_only = o->validate_only;
  c.quiet = o->quiet;
  /* A blocking stream: the synchronous cudaMemcpy calls of the checks (legacy default stream)
   * are ordered with the kernels on it. */
  CUDA_CHECK(cudaStreamCreate(&c.s));
  CUDA_CHECK(cudaEventCreate(&c.ev0));
  CUDA_CHECK(cudaEventCreate(&c.ev1));
  int l2 = 0;
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
  c.flush_bytes = (size_t)(l2 > 0 ? l2 : 32 << 20) * 2;
  c.flush = gs_dalloc(c.flush_bytes);

  char rt[32], drv[32], lt[32], nccl[32];
  version_str(rt, sizeof rt, c.ver.runtime, 1000, 10, 100);
  version_str(drv, sizeof drv, c.ver.driver, 1000, 10, 100);
  version_str(lt, sizeof lt, c.ver.cublaslt, 10000, 100, 100);
  version_str(nccl, sizeof nccl, c.ver.nccl, 10000, 100, 100);
  gs_say(&c, "moesim CUDA suite '%s' on %s: compute capability %d.%d, %d SMs, SM clock %d MHz, memory clock %d MHz, "
             "%.1f GiB, L2 %d MiB, %d GPU(s) visible",
         su->name, c.gpu.name, c.gpu.cc_major, c.gpu.cc_minor, c.gpu.sm_count, c.gpu.clock_mhz, c.gpu.mem_clock_mhz,
         (double)c.gpu.mem_bytes / (1 << 30), l2 >> 20, c.ndev);
  gs_say(&c, "host %s, %s; CUDA runtime %s, driver supports CUDA %s, cuBLASLt %s, NCCL %s", util_hostname(),
         util_today(), rt, drv, lt, nccl);
  gs_say(&c, "timing: CUDA events, %d repetitions after 2 warm-ups, L2 flushed (%zu MiB memset) before each, "
             "median (min) reported",
         c.reps, c.flush_bytes >> 20);

  for (size_t i = 0; i < UTIL_ARRAY_LEN(families); i++) {
    if (!in_list(su->fams, families[i].name)) continue;
    if (o->only && !in_list(o->only, families[i].name)) continue;
    gs_say(&c, "%s", "");
    gs_say(&c, "== %s: %s", families[i].name, families[i].what);
    families[i].run(&c, su->full);
  }
  gs_say(&c, "%s", "");
  gs_say(&c, "result: %zu rows, %d validation failure(s), %d measurement(s) skipped", c.rows.len, c.failures,
         c.skipped);

  int rc = c.failures ? UTIL_EXIT_SYS : 0;
  if (o->out_csv && c.rows.len > 0 && kt_append(o->out_csv, c.rows.rows, c.rows.len) != 0) rc = UTIL_EXIT_SYS;
  char *spath = NULL;
  if (o->summary) spath = util_xstrdup(o->summary);
  else if (o->out_csv) {
    util_buf b = {0};
    util_buf_printf(&b, "%s.summary.txt", o->out_csv);
    spath = b.data;
  }
  if (spath && util_write_file_atomic(spath, c.summary.data, c.summary.len) != 0) rc = UTIL_EXIT_SYS;
  free(spath);
  gs_free(c.flush);
  cudaEventDestroy(c.ev0);
  cudaEventDestroy(c.ev1);
  cudaStreamDestroy(c.s);
  kt_free(&c.rows);
  util_buf_free(&c.summary);
  return rc;
}

int gpu_run_suite(const char *suite, const char *out_csv, int reps) {
  gpu_suite_opts o;
  memset(&o, 0, sizeof o);
  o.suite = suite;
  o.out_csv = out_csv;
  o.reps = reps;
  return gpu_suite_run(&o);
}
