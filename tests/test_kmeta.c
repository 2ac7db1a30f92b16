/* tests/test_kmeta.c — the kernel table's sidecar (sim/kmeta.h) and how it makes measured rows
 * count in the compute projection (sim/compute.h): the peak lines are parsed per session (host,
 * device, threads; the last session wins), a table loaded with its sidecar projects a GEMM from a
 * measured CPU row where the same table without it falls back to the roofline, and element-wise
 * ops take the bandwidth efficiency of a measured row against the same session's memcpy row; a
 * GPU's row comes before a CPU's for a GPU target. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute.h"
#include "kmeta.h"
#include "model.h"
#include "test.h"
#include "util.h"

/* A target GPU without any rows of its own. */
static const compute_target gpu = {.device = "x900", .fp8_tflops = 4000, .bf16_tflops = 2000, .hbm_gbyte_s = 8000};

static char dir[64];

static char *path_in(const char *name) {
  util_buf b = {0};
  util_buf_printf(&b, "%s/%s", dir, name);
  return b.data;
}

static void write_text(const char *path, const char *text) { T_CHECK(util_write_file_atomic(path, text, strlen(text)) == 0); }

static const char *const table_text =
    "host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source\n"
    /* 2*512*4096*7168 FLOP in 60129.3 us = 0.5 TFLOP/s */
    "box,cpu,Test CPU,ref,gemm,-,bf16,512,4096,7168,1,2,5,601292.8,600000,0.0500,0.100,measured\n"
    "box,cpu,Test CPU,avx512bf16,gemm,-,bf16,512,4096,7168,1,2,5,60129.28,60000,0.5000,1.000,measured\n"
    /* 1e8 bytes at 20 GB/s = 5000 us; the memcpy row of the same session: 40 GB/s */
    "box,cpu,Test CPU,ref,swiglu,-,bf16,2048,1,2048,1,2,5,20000,19000,0.0000,5.000,measured\n"
    "box,cpu,Test CPU,avx512,swiglu,-,bf16,2048,1,2048,1,2,5,5000,4900,0.0000,20.000,measured\n"
    "box,cpu,Test CPU,libc,memcpy,-,fp32,1,268435456,1,1,2,5,13421.77,13000,0.0000,40.000,measured\n";

static const char *const meta_text =
    "run: 2025-01-01T00:00:00Z\nhost: box\nthreads: 2\ncpu: Test CPU\n"
    "peak_tflops.bf16: 0.8 (old session)\n"
    "\n"
    "run: 2025-01-02T00:00:00Z\nhost: box\nthreads: 1\n"
    "peak_tflops.bf16: 0.5 (one thread)\n"
    "\n"
    "run: 2025-01-03T00:00:00Z\nhost: box\nthreads: 2\nbinding: 2 threads\n"
    "counters: gemm bf16: cycles=1 (per call)\n"
    "peak_tflops.bf16: 1.0 (vdpbf16ps, every thread at once)\n"
    "peak_tflops.fp8_e4m3: 1.0 (as bf16)\n"
    "peak_tflops.fp32: 0.5 (vfmadd)\n"
    "peak_tflops.nonsense: 7\n"
    "peak_tflops.fp8_e5m2: not-a-number\n";

static void test_parse(void) {
  kmeta m = {0};
  kmeta_parse(meta_text, &m);
  T_EQ_INT(m.n, 3);
  T_NEAR(kmeta_peak(&m, "box", "cpu", 2, "bf16"), 1.0, 0); /* the last session of (box, cpu, 2) */
  T_NEAR(kmeta_peak(&m, "box", "cpu", 1, "bf16"), 0.5, 0);
  T_NEAR(kmeta_peak(&m, "box", "cpu", 2, "fp32"), 0.5, 0);
  T_NEAR(kmeta_peak(&m, "box", "cpu", 2, "fp8_e5m2"), 0, 0);  /* not a number: ignored */
  T_NEAR(kmeta_peak(&m, "box", "cpu", 4, "bf16"), 0, 0);      /* no session with 4 threads */
  T_NEAR(kmeta_peak(&m, "other", "cpu", 2, "bf16"), 0, 0);    /* another host */
  T_NEAR(kmeta_peak(&m, "box", "cuda", 2, "bf16"), 0, 0);     /* another device */
  T_NEAR(kmeta_peak(&m, "box", "cpu", 2, "int8"), 0, 0);      /* not a table dtype */
  kmeta_free(&m);
  /* what `moesim kernels` writes parses back */
  util_buf b = {0};
  util_buf_printf(&b, "run: now\nhost: h\nthreads: 3\n");
  kmeta_format_cpu_peaks(&b, 1.25, "vdpbf16ps", 0.625, "vfmadd");
  kmeta_parse(b.data, &m);
  T_NEAR(kmeta_peak(&m, "h", "cpu", 3, "bf16"), 1.25, 0);
  T_NEAR(kmeta_peak(&m, "h", "cpu", 3, "fp8_e4m3"), 1.25, 0);
  T_NEAR(kmeta_peak(&m, "h", "cpu", 3, "fp8_e5m2"), 1.25, 0);
  T_NEAR(kmeta_peak(&m, "h", "cpu", 3, "fp32"), 0.625, 0);
  kmeta_free(&m);
  util_buf_free(&b);
  char *p = kmeta_path("a/b.csv");
  T_EQ_STR(p, "a/b.csv.meta");
  free(p);
}

static compute_op gemm_op(int64_t m, int64_t n, int64_t k) {
  compute_op o = {.cls = COMPUTE_GEMM, .dtype = "bf16", .m = m, .n = n, .k = k, .groups = 1};
  o.flops = 2.0 * (double)m * (double)n * (double)k;
  o.bytes = (double)(m * k + n * k) * 2 + (double)m * n * 2;
  return o;
}

/* The same measured table with and without its sidecar: the sidecar's peak turns the CPU row into
 * an efficiency (0.5 of 1.0 TFLOP/s) and the GPU GEMM's time changes from the roofline to
 * peak x 50%. */
static void test_measured_row_changes_projection(void) {
  char *with = path_in("with.csv"), *with_meta = path_in("with.csv.meta"), *without = path_in("without.csv");
  write_text(with, table_text);
  write_text(with_meta, meta_text);
  write_text(without, table_text);
  compute_op o = gemm_op(2048, 4096, 7168);
  compute_cost a, b;

  compute_ctx *c = compute_new(&gpu);
  T_EQ_INT(compute_load_table(c, without), 0);
  double t_without = compute_op_cost(c, &o, &a);
  T_EQ_INT(a.src, COMPUTE_SRC_ROOFLINE);
  T_NEAR(t_without, o.flops / 2000e12, 1e-15);
  char names[64];
  T_EQ_INT(compute_rows_without_peak(c, names, sizeof names), 2); /* the GEMM rows; swiglu/memcpy need no FLOP peak */
  T_EQ_STR(names, "cpu/bf16");
  compute_free(c);

  c = compute_new(&gpu);
  T_EQ_INT(compute_load_table(c, with), 0);
  double t_with = compute_op_cost(c, &o, &b);
  T_EQ_INT(b.src, COMPUTE_SRC_PROJECTED);
  T_NEAR(b.efficiency, 0.5, 1e-6); /* the fast path of the shape, not the reference listed first */
  T_NEAR(t_with, o.flops / (2000e12 * 0.5), 1e-9);
  T_CHECK(t_with > 1.9 * t_without);
  T_CHECK(strstr(b.from, "cpu gemm bf16 512x4096x7168") != NULL);
  T_EQ_INT(compute_rows_without_peak(c, names, sizeof names), 0);
  /* another GPU's row, however far in shape, comes before the CPU's */
  compute_set_peak(c, "h100", "bf16", 989);
  kt_row g;
  memset(&g, 0, sizeof g);
  snprintf(g.device, sizeof g.device, "h100");
  snprintf(g.kernel, sizeof g.kernel, "gemm");
  snprintf(g.dtype, sizeof g.dtype, "bf16");
  snprintf(g.source, sizeof g.source, "published");
  g.m = 64, g.n = 512, g.k = 512, g.groups = 1, g.tflops = 296.7, g.median_us = 1;
  compute_add_rows(c, &g, 1);
  compute_op_cost(c, &o, &b);
  T_NEAR(b.efficiency, 0.3, 1e-9);
  T_CHECK(strstr(b.from, "h100 gemm") != NULL);
  compute_free(c);
  free(with), free(with_meta), free(without);
}

/* Element-wise ops: the bandwidth fraction of the nearest measured row of the op's kernel, against
 * its session's memcpy row; without a memcpy row, the roofline. */
static void test_bandwidth_projection(void) {
  char *p = path_in("bw.csv");
  write_text(p, table_text);
  compute_ctx *c = compute_new(&gpu);
  T_EQ_INT(compute_load_table(c, p), 0);
  compute_op o = {.cls = COMPUTE_ELEMENTWISE, .dtype = "bf16", .kernel = "swiglu", .groups = 1, .flops = 6e6, .bytes = 6e7};
  compute_cost cc;
  double t = compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_PROJECTED);
  T_NEAR(cc.efficiency, 0.5, 1e-12); /* 20 of 40 GB/s: the fast path, not the 5 GB/s reference */
  T_NEAR(t, 6e7 / (8000e9 * 0.5), 1e-15);
  T_CHECK(cc.memory_bound);
  T_CHECK(strstr(cc.from, "memory bandwidth") != NULL);
  /* the same op without a kernel name: the roofline at full HBM bandwidth */
  o.kernel = NULL;
  t = compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_ROOFLINE);
  T_NEAR(t, 6e7 / 8000e9, 1e-15);
  /* a kernel the table has no row of: the roofline */
  o.kernel = "combine";
  compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_ROOFLINE);
  compute_free(c);

  /* no memcpy row of the swiglu row's session: nothing to take its GB/s against */
  char *q = path_in("nomemcpy.csv");
  const char *nl = strstr(table_text, "box,cpu,Test CPU,libc,memcpy");
  util_buf b = {0};
  util_buf_append(&b, table_text, (size_t)(nl - table_text));
  util_buf_printf(&b, "box,cpu,Test CPU,libc,memcpy,-,fp32,1,268435456,1,1,1,5,13421.77,13000,0.0000,40.000,measured\n");
  write_text(q, b.data);
  c = compute_new(&gpu);
  T_EQ_INT(compute_load_table(c, q), 0);
  o.kernel = "swiglu";
  compute_op_cost(c, &o, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_ROOFLINE); /* the memcpy row ran on 1 thread, the swiglu on 2 */
  compute_free(c);
  util_buf_free(&b);

  /* Only the plain-C reference measured a kernel: it teaches nothing about efficiency (no
   * deployment runs it), so the op falls back to the roofline — even when its bytes, recomputed
   * from rounded columns, sit closer to the op than a fast row's would. */
  char *r = path_in("refonly.csv");
  util_buf rb = {0};
  util_buf_printf(&rb, "%s", "host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source\n"
                              "box,cpu,Test CPU,ref,quant_token,-,fp8_e4m3,1024,1,7168,1,2,5,63235.654,51489.315,0.0000,0.352,measured\n"
                              "box,cpu,Test CPU,libc,memcpy,-,fp32,1,268435456,1,1,2,5,13421.77,13000,0.0000,40.000,measured\n");
  write_text(r, rb.data);
  c = compute_new(&gpu);
  T_EQ_INT(compute_load_table(c, r), 0);
  compute_op qo = {.cls = COMPUTE_ELEMENTWISE, .dtype = "fp8_e4m3", .kernel = "quant_token", .groups = 1, .flops = 1e6,
                   .bytes = 22.259e6};
  compute_op_cost(c, &qo, &cc);
  T_EQ_INT(cc.src, COMPUTE_SRC_ROOFLINE);
  compute_free(c);
  util_buf_free(&rb);
  free(p), free(q), free(r);
}

/* The model's SwiGLU, MoE combine and FP8 quantize ops name the kernels that measure them. */
static void test_model_ops_name_kernels(void) {
  model_op sw = {.name = "moe.routed.swiglu", .cls = MODEL_OP_SWIGLU, .dtype = MODEL_BF16, .flops = 1, .bytes = 1};
  model_op cb = {.name = "moe.combine", .cls = MODEL_OP_ROUTE, .dtype = MODEL_BF16, .flops = 1, .bytes = 1};
  model_op rt = {.name = "moe.route", .cls = MODEL_OP_ROUTE, .dtype = MODEL_FP32, .flops = 1, .bytes = 1};
  compute_op o;
  compute_op_from_model(&sw, &o);
  T_CHECK(o.kernel && strcmp(o.kernel, "swiglu") == 0);
  compute_op_from_model(&cb, &o);
  T_CHECK(o.kernel && strcmp(o.kernel, "combine") == 0);
  compute_op_from_model(&rt, &o);
  T_CHECK(o.kernel == NULL);
  model_op q = {.name = "attn.q_proj.quant", .cls = MODEL_OP_QUANT, .dtype = MODEL_BF16, .bytes = 1};
  compute_op_from_model(&q, &o);
  T_CHECK(o.kernel && strcmp(o.kernel, "quant_token") == 0);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/moesim_test_kmeta.XXXXXX");
  if (!mkdtemp(dir)) UTIL_SYSFAIL("mkdtemp: cannot create %s", dir);
  T_RUN(test_parse);
  T_RUN(test_measured_row_changes_projection);
  T_RUN(test_bandwidth_projection);
  T_RUN(test_model_ops_name_kernels);
  const char *names[] = {"with.csv", "with.csv.meta", "without.csv", "bw.csv", "nomemcpy.csv"};
  for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++) {
    char *p = path_in(names[i]);
    unlink(p);
    free(p);
  }
  rmdir(dir);
  return t_done();
}
