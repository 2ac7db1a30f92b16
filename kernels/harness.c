/* kernels/harness.c — validate-before-time kernel harness (contract in harness.h): tolerances and
 * comparisons, the session's metadata (hwloc topology, binding, CPU, PAPI), and the timing loop
 * (warm-up, per-call timing with cache flushes, median and min, kernel-table rows). */
#include "harness.h"

#include <hwloc.h>
#include <math.h>
#include <papi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

#include "cli.h"
#include "cpu_isa.h"
#include "util.h"

/* ---- tolerances and comparisons ---- */

hn_tol hn_tol_for(kn_dtype out) {
  switch (out) {
  case KN_FP32: /* FP32 accumulation in another order than the double reference */
    return (hn_tol){1e-5, 1e-5};
  case KN_BF16: /* one BF16 ulp (2^-7 relative) from rounding a slightly different FP32 value */
    return (hn_tol){0x1p-7, 1e-4};
  case KN_FP8_E4M3: /* one E4M3 step (3 mantissa bits), compared after dequantization */
    return (hn_tol){0x1p-3, 0x1p-9};
  case KN_FP8_E5M2: /* one E5M2 step (2 mantissa bits) */
    return (hn_tol){0x1p-2, 0x1p-16};
  default:
    return (hn_tol){0, 0};
  }
}

/* Shared loop of the two float comparisons; get(i) reads element i of an array. */
#define HN_CHECK_BODY(GOT, WANT)                                                                  \
  do {                                                                                            \
    double maxw = 0.0;                                                                            \
    for (int64_t i = 0; i < n; i++) {                                                             \
      double w = fabs((double)(WANT));                                                            \
      if (isfinite(w) && w > maxw) maxw = w;                                                      \
    }                                                                                             \
    int64_t bad = 0, worst = -1;                                                                  \
    double worst_excess = -1.0;                                                                   \
    for (int64_t i = 0; i < n; i++) {                                                             \
      double g = (GOT), w = (WANT);                                                               \
      if (isnan(g) && isnan(w)) continue;                                                         \
      if (isinf(w) && g == w) continue;                                                           \
      double lim = tol.abs * maxw + tol.rel * fabs(w), err = fabs(g - w);                         \
      if (!(err <= lim)) {                                                                        \
        bad++;                                                                                    \
        double ex = isnan(err) ? INFINITY : err - lim;                                            \
        if (ex > worst_excess) worst_excess = ex, worst = i;                                      \
      }                                                                                           \
    }                                                                                             \
    if (!bad) return 0;                                                                           \
    int64_t i = worst;                                                                            \
    snprintf(why, why_len, "%lld of %lld elements out of tolerance (rel %.3g, abs %.3g x max %.4g); " \
             "worst [%lld]: got %.9g, want %.9g", (long long)bad, (long long)n, tol.rel, tol.abs,  \
             maxw, (long long)i, (double)(GOT), (double)(WANT));                                  \
    return -1;                                                                                    \
  } while (0)

int hn_check_f32(const float *got, const float *want, int64_t n, hn_tol tol, char *why, size_t why_len) {
  HN_CHECK_BODY(got[i], want[i]);
}

int hn_check_bf16(const bf16_t *got, const bf16_t *want, int64_t n, hn_tol tol, char *why, size_t why_len) {
  HN_CHECK_BODY(bf16_to_f32(got[i]), bf16_to_f32(want[i]));
}

int hn_check_bytes(const void *got, const void *want, uint64_t n, char *why, size_t why_len) {
  const unsigned char *g = got, *w = want;
  uint64_t bad = 0, first = 0;
  for (uint64_t i = 0; i < n; i++)
    if (g[i] != w[i] && bad++ == 0) first = i;
  if (!bad) return 0;
  snprintf(why, why_len, "%llu of %llu bytes differ from the reference; first at %llu: 0x%02x, want 0x%02x",
           (unsigned long long)bad, (unsigned long long)n, (unsigned long long)first, g[first], w[first]);
  return -1;
}

double hn_median(double *v, int n) {
  for (int i = 1; i < n; i++) { /* insertion sort: samples are few */
    double x = v[i];
    int j = i;
    while (j > 0 && v[j - 1] > x) v[j] = v[j - 1], j--;
    v[j] = x;
  }
  if (n == 0) return 0.0;
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- PAPI ---- */

static const int papi_events[HN_MAX_COUNTERS] = {PAPI_TOT_CYC, PAPI_TOT_INS, PAPI_FP_OPS, PAPI_L2_TCM,
                                                 PAPI_L3_TCM};
static const char *const papi_names[HN_MAX_COUNTERS] = {"cycles", "instructions", "fp_ops", "l2_misses",
                                                         "l3_misses"};

typedef struct hn_papi {
  int tried;                   /* initialisation attempted */
  int eventset;                /* PAPI event set with the counters that could be added */
  int n;                       /* counters in the set */
  int which[HN_MAX_COUNTERS];  /* index into papi_events of each counter in the set */
  char why[1400];              /* reason when n == 0 */
} hn_papi;

static hn_papi papi_state;

static void papi_init(void) {
  hn_papi *p = &papi_state;
  if (p->tried) return;
  p->tried = 1;
  p->eventset = PAPI_NULL;
  int v = PAPI_library_init(PAPI_VER_CURRENT);
  if (v != PAPI_VER_CURRENT) {
    snprintf(p->why, sizeof p->why, "PAPI_library_init: %s", v < 0 ? PAPI_strerror(v) : "version mismatch");
    return;
  }
  if (PAPI_num_cmp_hwctrs(0) <= 0) {
    const PAPI_component_info_t *ci = PAPI_get_component_info(0);
    snprintf(p->why, sizeof p->why, "no hardware counters (%s component: %s)", ci ? ci->name : "cpu",
             ci && ci->disabled_reason[0] ? ci->disabled_reason : "no counters");
    return;
  }
  int rc = PAPI_create_eventset(&p->eventset);
  if (rc != PAPI_OK) {
    snprintf(p->why, sizeof p->why, "PAPI_create_eventset: %s", PAPI_strerror(rc));
    return;
  }
  for (int i = 0; i < HN_MAX_COUNTERS; i++) {
    rc = PAPI_add_event(p->eventset, papi_events[i]);
    if (rc == PAPI_OK) p->which[p->n++] = i;
    else if (!p->why[0]) snprintf(p->why, sizeof p->why, "%s: %s", papi_names[i], PAPI_strerror(rc));
  }
  if (p->n && PAPI_start(p->eventset) != PAPI_OK) {
    snprintf(p->why, sizeof p->why, "PAPI_start failed");
    p->n = 0;
  }
}

int hn_papi_available(const char **why) {
  papi_init();
  if (why) *why = papi_state.n ? "" : papi_state.why;
  return papi_state.n > 0;
}

/* ---- session ---- */

struct hn_session {
  hn_opts o;              /* settings (strings borrowed) */
  hwloc_topology_t topo;  /* loaded topology */
  uint64_t llc_bytes;     /* last-level cache (bytes) */
  uint64_t cache_bytes;   /* all data caches summed: a footprint below it may be resident */
  int cases, done;        /* progress: planned and finished cases */
  int refused;            /* cases refused */
  int tty;                /* stderr is a terminal: draw the progress line */
  char meta_path[4096];   /* sidecar path ("" without a CSV) */
  util_buf counters;      /* lines for the sidecar written at close: per-case PAPI counters, notes */
  unsigned char *scratch; /* eviction buffer (2 x cache_bytes), allocated on first use */
  uint64_t scratch_bytes; /* its size */
};

static void fmt_bytes(char *b, size_t n, uint64_t v) {
  if (v >= (1ull << 20) && v % (1ull << 20) == 0) snprintf(b, n, "%llu MiB", (unsigned long long)(v >> 20));
  else if (v >= 1024 && v % 1024 == 0) snprintf(b, n, "%llu KiB", (unsigned long long)(v >> 10));
  else snprintf(b, n, "%llu B", (unsigned long long)v);
}

/* The topology and cache summary lines; also fills the session's cache sizes. */
static void describe_topology(hn_session *s, util_buf *m) {
  hwloc_topology_t t = s->topo;
  util_buf_printf(m, "topology: %d package(s), %d NUMA node(s), %d core(s), %d PU(s)\n",
                  hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE), hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE),
                  hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE), hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU));
  static const hwloc_obj_type_t levels[] = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE,
                                            HWLOC_OBJ_L4CACHE};
  util_buf_printf(m, "caches:");
  int any = 0;
  for (size_t l = 0; l < UTIL_ARRAY_LEN(levels); l++) {
    int n = hwloc_get_nbobjs_by_type(t, levels[l]);
    if (n <= 0) continue;
    hwloc_obj_t o = hwloc_get_obj_by_type(t, levels[l], 0);
    uint64_t sz = o->attr ? o->attr->cache.size : 0;
    char b[32];
    fmt_bytes(b, sizeof b, sz);
    util_buf_printf(m, "%s L%d %s x%d", any ? "," : "", (int)l + 1, b, n);
    any = 1;
    s->cache_bytes += sz * (uint64_t)n;
    if (sz) s->llc_bytes = sz;
  }
  util_buf_printf(m, "%s\n", any ? "" : " unknown");
  /* the cores, by OS index of their first PU */
  util_buf_printf(m, "cores:");
  int nc = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
  for (int i = 0; i < nc; i++) {
    hwloc_obj_t c = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, (unsigned)i);
    char set[64];
    hwloc_bitmap_list_snprintf(set, sizeof set, c->cpuset);
    util_buf_printf(m, " core%d=pu{%s}", i, set);
  }
  util_buf_printf(m, "\n");
}

hn_session *hn_open(const hn_opts *o) {
  hn_session *s = util_xcalloc(1, sizeof *s);
  s->o = *o;
  if (s->o.target_s <= 0) s->o.target_s = 0.25;
  if (s->o.max_reps <= 0) s->o.max_reps = 1000;
  if (s->o.threads <= 0) s->o.threads = 1;
  s->tty = util_stderr_is_tty();
  if (hwloc_topology_init(&s->topo) != 0 || hwloc_topology_load(s->topo) != 0)
    UTIL_SYSFAIL("hwloc_topology_load: cannot read the topology");
  util_buf m = {0};
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const cpu_isa *isa = cpu_isa_get();
  util_buf_printf(&m, "run: %s\nhost: %s\nmoesim: %s\n", when, util_hostname(), MOESIM_VERSION);
  if (o->command) util_buf_printf(&m, "command: %s\n", o->command);
  util_buf_printf(&m, "cpu: %s (%s)\nisa: %s\n", isa->brand[0] ? isa->brand : "unknown", isa->vendor,
                  cpu_level_name(cpu_isa_best()));
  describe_topology(s, &m);
  util_buf_printf(&m, "threads: %d\nbinding: %s\n", s->o.threads, o->binding ? o->binding : "unbound");
  const char *why;
  if (hn_papi_available(&why)) {
    util_buf_printf(&m, "papi: counters");
    for (int i = 0; i < papi_state.n; i++) util_buf_printf(&m, " %s", papi_names[papi_state.which[i]]);
    util_buf_printf(&m, " (calling thread)\n");
  } else {
    if (!o->quiet) fprintf(stderr, "PAPI: not available: %s\n", why);
    util_buf_printf(&m, "papi: not available: %s\n", why);
  }
  if (!o->quiet) fputs(m.data, stdout), fflush(stdout);
  if (o->out_csv) {
    snprintf(s->meta_path, sizeof s->meta_path, "%s.meta", o->out_csv);
    size_t len = 0;
    char *old = util_read_file(s->meta_path, &len);
    util_buf all = {0};
    if (old) util_buf_append(&all, old, len), util_buf_append(&all, "\n", 1);
    util_buf_append(&all, m.data, m.len);
    free(old);
    int rc = util_write_file_atomic(s->meta_path, all.data, all.len);
    util_buf_free(&all);
    if (rc != 0) {
      util_buf_free(&m);
      hwloc_topology_destroy(s->topo);
      free(s);
      return NULL;
    }
  }
  util_buf_free(&m);
  return s;
}

void hn_plan(hn_session *s, int cases) { s->cases = cases; }
int hn_refused(const hn_session *s) { return s->refused; }
uint64_t hn_llc_bytes(const hn_session *s) { return s->llc_bytes; }

static void progress(hn_session *s, const hn_case *c) {
  if (!s->tty) return;
  char tot[16] = "?";
  if (s->cases) snprintf(tot, sizeof tot, "%d", s->cases);
  fprintf(stderr, "\r\033[K[%d/%s] %s %s/%s %s m=%lld n=%lld k=%lld", s->done + 1, tot, c->kernel, c->backend,
          c->variant, kn_dtype_name(c->dtype), (long long)c->m, (long long)c->n, (long long)c->k);
  fflush(stderr);
}

static void progress_clear(hn_session *s) {
  if (s->tty) fputs("\r\033[K", stderr);
}

/* Evicts the case's memory from every cache level (clflush is SSE2: any x86-64). */
static void flush_bufs(const hn_case *c) {
#if defined(__x86_64__) || defined(__i386__)
  for (int b = 0; b < c->nbufs; b++) {
    const char *p = c->bufs[b].p;
    for (uint64_t off = 0; off < c->bufs[b].bytes; off += 64) _mm_clflush(p + off);
  }
  _mm_mfence();
#else
  (void)c;
#endif
}

/* Evicts everything from the caches by writing every line of a buffer twice their size. */
static void evict_all(hn_session *s) {
  if (!s->scratch) {
    s->scratch_bytes = 2 * (s->cache_bytes ? s->cache_bytes : 64ull << 20);
    s->scratch = util_xcalloc(1, s->scratch_bytes);
  }
  for (uint64_t i = 0; i < s->scratch_bytes; i += 64) s->scratch[i]++;
}

static void case_label(const hn_case *c, char *b, size_t n) {
  snprintf(b, n, "%s %s/%s %s m=%lld n=%lld k=%lld g=%lld", c->kernel, c->backend, c->variant,
           kn_dtype_name(c->dtype), (long long)c->m, (long long)c->n, (long long)c->k, (long long)c->groups);
}

int hn_measure(hn_session *s, const hn_case *c, kt_row *row_out) {
  char label[256], why[512] = "";
  case_label(c, label, sizeof label);
  progress(s, c);
  /* validate on the same inputs the timing uses */
  int ok = 0;
  if (!c->check) snprintf(why, sizeof why, "no reference check");
  else {
    c->run(c->ctx);
    ok = c->check(c->ctx, why, sizeof why) == 0;
  }
  if (!ok) {
    progress_clear(s);
    fprintf(stderr, "moesim kernels: %s: validation failed: %s; not timed\n", label, why);
    s->refused++;
    s->done++;
    return 1;
  }
  /* warm-up: at least one call, up to 50 ms */
  uint64_t t0 = util_now_ns();
  do c->run(c->ctx);
  while (util_now_ns() - t0 < 50000000ull);
  uint64_t foot = c->opaque_bytes;
  for (int b = 0; b < c->nbufs; b++) foot += c->bufs[b].bytes;
  int flush = (c->nbufs > 0 || c->opaque_bytes > 0) && foot <= (s->cache_bytes ? s->cache_bytes : 64ull << 20);
  int cap = s->o.max_reps;
  double *t = util_xmalloc((size_t)cap * sizeof *t);
  long long cnt[HN_MAX_COUNTERS] = {0}, before[HN_MAX_COUNTERS], after[HN_MAX_COUNTERS];
  int np = papi_state.n;
  double timed = 0.0;
  uint64_t wall0 = util_now_ns();
  int reps = 0;
  while (reps < cap) {
    if (flush) {
      if (c->opaque_bytes) evict_all(s);
      flush_bufs(c);
    }
    if (np) PAPI_read(papi_state.eventset, before);
    uint64_t a = util_now_ns();
    c->run(c->ctx);
    uint64_t b = util_now_ns();
    if (np) {
      PAPI_read(papi_state.eventset, after);
      for (int i = 0; i < np; i++) cnt[i] += after[i] - before[i];
    }
    t[reps++] = (double)(b - a) * 1e-9;
    timed += (double)(b - a) * 1e-9;
    double wall = (double)(util_now_ns() - wall0) * 1e-9;
    if (reps >= HN_MIN_REPS && (timed >= s->o.target_s || wall >= 4.0 * s->o.target_s)) break;
  }
  double med = hn_median(t, reps), mn = t[0];
  free(t);
  kt_row r;
  memset(&r, 0, sizeof r);
  snprintf(r.host, sizeof r.host, "%s", util_hostname());
  snprintf(r.device, sizeof r.device, "cpu");
  const char *brand = cpu_isa_get()->brand;
  snprintf(r.device_name, sizeof r.device_name, "%s", brand[0] ? brand : "unknown");
  for (char *p = r.device_name; *p; p++)
    if (*p == ',') *p = ' ';
  snprintf(r.backend, sizeof r.backend, "%s", c->backend);
  snprintf(r.kernel, sizeof r.kernel, "%s", c->kernel);
  snprintf(r.variant, sizeof r.variant, "%s", c->variant);
  snprintf(r.dtype, sizeof r.dtype, "%s", kn_dtype_name(c->dtype));
  r.m = c->m, r.n = c->n, r.k = c->k, r.groups = c->groups > 0 ? c->groups : 1;
  r.threads = s->o.threads;
  r.reps = reps;
  r.median_us = med * 1e6;
  r.min_us = mn * 1e6;
  r.tflops = med > 0 ? c->flops / med * 1e-12 : 0.0;
  r.gbps = med > 0 ? c->bytes / med * 1e-9 : 0.0;
  snprintf(r.source, sizeof r.source, "measured");
  if (row_out) *row_out = r;
  progress_clear(s);
  if (!s->o.quiet) {
    printf("%-12s %-10s %-18s %-8s m=%-5lld n=%-5lld k=%-5lld g=%-3lld reps=%-4d median %10.1f us  min %10.1f us",
           c->kernel, c->backend, c->variant, kn_dtype_name(c->dtype), (long long)c->m, (long long)c->n,
           (long long)c->k, (long long)r.groups, reps, r.median_us, r.min_us);
    if (c->flops > 0) printf("  %7.3f TFLOP/s", r.tflops);
    if (c->bytes > 0) printf("  %7.2f GB/s", r.gbps);
    printf("%s\n", flush ? "  (cold caches)" : "");
    fflush(stdout);
  }
  if (np) {
    util_buf line = {0};
    for (int i = 0; i < np; i++)
      util_buf_printf(&line, " %s=%.0f", papi_names[papi_state.which[i]], (double)cnt[i] / reps);
    util_buf_printf(&s->counters, "counters: %s:%s (per call)\n", label, line.data);
    if (!s->o.quiet) printf("  papi per call:%s\n", line.data);
    util_buf_free(&line);
  }
  s->done++;
  if (s->o.out_csv && kt_append(s->o.out_csv, &r, 1) != 0) return -1;
  return 0;
}

void hn_note(hn_session *s, const char *lines) {
  util_buf_printf(&s->counters, "%s", lines);
  if (!s->o.quiet) fputs(lines, stdout);
}

void hn_close(hn_session *s) {
  if (!s) return;
  progress_clear(s);
  if (s->counters.len && s->meta_path[0]) {
    size_t len = 0;
    char *old = util_read_file(s->meta_path, &len);
    util_buf all = {0};
    if (old) util_buf_append(&all, old, len);
    util_buf_append(&all, s->counters.data, s->counters.len);
    free(old);
    if (util_write_file_atomic(s->meta_path, all.data, all.len) != 0)
      fprintf(stderr, "moesim kernels: counters and notes not recorded in %s\n", s->meta_path);
    util_buf_free(&all);
  }
  if (!s->o.quiet) printf("%d case(s) timed, %d refused\n", s->done - s->refused, s->refused);
  util_buf_free(&s->counters);
  free(s->scratch);
  hwloc_topology_destroy(s->topo);
  free(s);
}
