/* tests/test_harness.c — the timing harness: medians, tolerances and comparisons, a valid case
 * timed into a kernel-table row (>= 5 reps, median >= min, rates from the median, the row in the
 * CSV and the metadata sidecar beside it), and refused cases (failing or missing check) that run
 * once for validation and are never timed. */
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "ktable.h"
#include "test.h"
#include "util.h"

static void test_median(void) {
  double a[5] = {5, 1, 4, 2, 3}, b[4] = {4, 1, 3, 2};
  T_NEAR(hn_median(a, 5), 3.0, 0);
  T_NEAR(hn_median(b, 4), 2.5, 0);
  T_NEAR(a[0], 1.0, 0); /* sorted in place */
}

static void test_checks(void) {
  char why[512];
  float want[4] = {1.0f, -2.0f, 1000.0f, NAN}, got[4] = {1.0f, -2.0f, 1000.0f, NAN};
  hn_tol t = hn_tol_for(KN_FP32);
  T_EQ_INT(hn_check_f32(got, want, 4, t, why, sizeof why), 0);
  got[1] = -2.0f + 2e-2f; /* within abs 1e-5 x 1000 + rel 1e-5 x 2 = 0.01002? no: 0.02 > 0.01002 */
  T_EQ_INT(hn_check_f32(got, want, 4, t, why, sizeof why), -1);
  T_CHECK(strstr(why, "[1]") != NULL);
  got[1] = -2.0f + 5e-3f; /* inside: absorbed by the output's scale */
  T_EQ_INT(hn_check_f32(got, want, 4, t, why, sizeof why), 0);
  got[3] = 1.0f; /* a number where NaN was expected */
  T_EQ_INT(hn_check_f32(got, want, 4, t, why, sizeof why), -1);
  bf16_t bw[2] = {f32_to_bf16(1.0f), f32_to_bf16(3.0f)}, bg[2] = {f32_to_bf16(1.0f), (bf16_t)(bw[1] + 1)};
  T_EQ_INT(hn_check_bf16(bg, bw, 2, hn_tol_for(KN_BF16), why, sizeof why), 0); /* one ulp */
  bg[1] = (bf16_t)(bw[1] + 3);
  T_EQ_INT(hn_check_bf16(bg, bw, 2, hn_tol_for(KN_BF16), why, sizeof why), -1);
  unsigned char x[3] = {1, 2, 3}, y[3] = {1, 2, 4};
  T_EQ_INT(hn_check_bytes(x, x, 3, why, sizeof why), 0);
  T_EQ_INT(hn_check_bytes(x, y, 3, why, sizeof why), -1);
  T_CHECK(strstr(why, "first at 2") != NULL);
}

/* A small kernel: y = 2 x over 64 Ki floats; `bug` makes it wrong. */
typedef struct dbl_ctx {
  float *x, *y;
  int n, bug, runs;
} dbl_ctx;

static void dbl_run(void *p) {
  dbl_ctx *c = p;
  for (int i = 0; i < c->n; i++) c->y[i] = 2.0f * c->x[i] + (c->bug && i == 7 ? 100.0f : 0.0f);
  c->runs++;
}

static int dbl_check(void *p, char *why, size_t n) {
  dbl_ctx *c = p;
  float *want = malloc(sizeof(float) * (size_t)c->n);
  for (int i = 0; i < c->n; i++) want[i] = 2.0f * c->x[i];
  int rc = hn_check_f32(c->y, want, c->n, hn_tol_for(KN_FP32), why, n);
  free(want);
  return rc;
}

static void test_measure(void) {
  char dir[] = "/tmp/moesim_test_harness_XXXXXX";
  T_CHECK(mkdtemp(dir) != NULL);
  char csv[256], meta[300];
  snprintf(csv, sizeof csv, "%s/k.csv", dir);
  snprintf(meta, sizeof meta, "%s.meta", csv);
  hn_opts o = {.threads = 1, .target_s = 0.01, .out_csv = csv, .binding = "1 thread: t0->unbound",
               .command = "test_harness", .quiet = 1};
  hn_session *s = hn_open(&o);
  T_CHECK(s != NULL);
  if (!s) return;
  dbl_ctx c = {malloc(sizeof(float) << 16), malloc(sizeof(float) << 16), 1 << 16, 0, 0};
  for (int i = 0; i < c.n; i++) c.x[i] = (float)i;
  hn_case k = {"memcpy", "ref", "-", KN_FP32, c.n, 1, 1, 1, 0, 8.0 * c.n, dbl_run, dbl_check, &c,
               {{c.x, sizeof(float) * (uint64_t)c.n}, {c.y, sizeof(float) * (uint64_t)c.n}}, 2, 0};
  kt_row r;
  T_EQ_INT(hn_measure(s, &k, &r), 0);
  T_CHECK(r.reps >= HN_MIN_REPS);
  T_CHECK(r.min_us > 0 && r.median_us >= r.min_us);
  T_NEAR(r.gbps, 8.0 * c.n / (r.median_us * 1e-6) * 1e-9, 1e-6 * r.gbps + 1e-9);
  T_EQ_STR(r.source, "measured");
  T_EQ_STR(r.dtype, "fp32");
  /* memory it cannot list: the caches are swept between calls, and it is still timed */
  k.opaque_bytes = 1 << 20;
  T_EQ_INT(hn_measure(s, &k, &r), 0);
  T_CHECK(r.reps >= HN_MIN_REPS);
  k.opaque_bytes = 0;
  /* a wrong kernel is validated once and refused */
  c.bug = 1, c.runs = 0;
  T_EQ_INT(hn_measure(s, &k, NULL), 1);
  T_EQ_INT(c.runs, 1);
  /* so is a kernel without a reference check */
  k.check = NULL, c.runs = 0;
  T_EQ_INT(hn_measure(s, &k, NULL), 1);
  T_EQ_INT(c.runs, 0);
  T_EQ_INT(hn_refused(s), 2);
  hn_close(s);
  kt_table t = {0};
  T_EQ_INT(kt_load(csv, &t), 0);
  T_EQ_INT(t.len, 2); /* only the timed cases have rows */
  if (t.len == 2) T_EQ_STR(t.rows[0].kernel, "memcpy");
  kt_free(&t);
  char *m = util_read_file(meta, NULL);
  T_CHECK(m != NULL);
  if (m) {
    T_CHECK(strstr(m, "topology: ") != NULL);
    T_CHECK(strstr(m, "binding: 1 thread: t0->unbound") != NULL);
    T_CHECK(strstr(m, "papi: ") != NULL);
    T_CHECK(strchr(m, '#') == NULL);
  }
  free(m);
  const char *why;
  int have = hn_papi_available(&why);
  T_CHECK(have || strlen(why) > 0);
  unlink(meta), unlink(csv), rmdir(dir);
  free(c.x), free(c.y);
}

int main(void) {
  T_RUN(test_median);
  T_RUN(test_checks);
  T_RUN(test_measure);
  return t_done();
}
