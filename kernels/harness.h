/* kernels/harness.h — the kernel timing harness: validate before timing, then time honestly.
 *
 * A case is one kernel variant on one shape: a `run` function (one call of the kernel under test)
 * and a `check` function (compares the output of the last run with the reference computed on the
 * same inputs, under the tolerances below). hn_measure runs the case once and checks it; a case
 * that fails its check — or has no check — is refused: it is reported and never timed. A case that
 * passes is warmed up, then timed call by call (at least HN_MIN_REPS repetitions, more for short
 * kernels, until the session's time target), with the memory it touches flushed from the caches
 * before each call when it would fit in them (line by line for the listed buffers, by sweeping a
 * scratch buffer twice the caches' size when the case also touches memory it cannot list). The median and the minimum become a kernel-table row
 * (sim/ktable.h), appended to the session's CSV at once, with TFLOP/s and GB/s at the median.
 *
 * A session records where it ran: the hwloc topology (packages, cores, PUs, caches), the thread
 * binding, the CPU and its ISA level, PAPI's state and the caller's extra lines (the measured
 * peaks, sim/kmeta.h) — in a sidecar file next to the CSV (`<out>.meta`, "key: value" lines, one
 * block per session) since the CSV schema is fixed. PAPI
 * counters (cycles, instructions, FP ops, L2/L3 misses: whichever PAPI has) are read around each
 * timed call on the calling thread; where PAPI has none, the session prints
 * "PAPI: not available: <reason>" once and carries on. */
#ifndef MOESIM_HARNESS_H
#define MOESIM_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "ktable.h"

#define HN_MIN_REPS 5   /* timed repetitions, at least */
#define HN_MAX_BUFS 8   /* memory ranges a case can declare */
#define HN_MAX_COUNTERS 5

/* Tolerance of a comparison: |got - want| <= abs * max|want| + rel * |want| elementwise (NaN
 * matches NaN). The per-dtype values are stated in harness.c (hn_tol_for). */
typedef struct hn_tol {
  double rel; /* relative to the element */
  double abs; /* relative to the largest |want| of the output (absorbs cancellation) */
} hn_tol;

/* Tolerance for outputs stored as `out` (FP32: accumulation-order differences; BF16: one BF16
 * ulp; FP8 dequantized: one FP8 step). Exact kernels compare bytes instead (hn_check_bytes). */
hn_tol hn_tol_for(kn_dtype out);

/* Comparisons for check functions: 0 when equal within tol, else -1 with the worst element
 * described in why. */
int hn_check_f32(const float *got, const float *want, int64_t n, hn_tol tol, char *why, size_t why_len);
int hn_check_bf16(const bf16_t *got, const bf16_t *want, int64_t n, hn_tol tol, char *why, size_t why_len);
int hn_check_bytes(const void *got, const void *want, uint64_t n, char *why, size_t why_len);

typedef struct hn_buf {
  const void *p;  /* start */
  uint64_t bytes; /* length */
} hn_buf;

/* One kernel variant on one shape. */
typedef struct hn_case {
  const char *kernel;  /* kernel-table name: gemm, grouped_gemm, quant_token, ... */
  const char *backend; /* implementation family: ref, avx2, avx512, avx512bf16, ... */
  const char *variant; /* variant within the backend ("-" when there is one) */
  kn_dtype dtype;      /* the dtype column */
  int64_t m, n, k;     /* shape columns (each kernel documents its meaning) */
  int64_t groups;      /* experts, 1 for non-grouped kernels */
  double flops;        /* floating-point operations per call (0: no TFLOP/s) */
  double bytes;        /* bytes a call must move at least (0: no GB/s) */
  void (*run)(void *ctx);                                /* one call of the kernel */
  int (*check)(void *ctx, char *why, size_t why_len);    /* 0: last run matches the reference */
  void *ctx;                                             /* passed to run and check */
  hn_buf bufs[HN_MAX_BUFS]; /* memory the kernel reads and writes (flushed between calls) */
  int nbufs;                /* used entries of bufs */
  uint64_t opaque_bytes;    /* memory it touches that cannot be listed (packed weights): when the
                               total fits in the caches, they are evicted whole between calls */
} hn_case;

/* Session settings. */
typedef struct hn_opts {
  int threads;          /* threads the kernels use (the threads column) */
  double target_s;      /* keep repeating a case until this much timed time (0: 0.25 s) */
  int max_reps;         /* cap on repetitions (0: 1000) */
  const char *out_csv;  /* kernel table to append to, or NULL */
  const char *binding;  /* the thread binding, one line (from the thread pool) */
  const char *command;  /* the command line, for the metadata */
  int quiet;            /* 1: print nothing but refusals (the sidecar is still written) */
} hn_opts;

typedef struct hn_session hn_session;

/* Opens a session: reads the hwloc topology, initialises PAPI (printing the one-time
 * "PAPI: not available: <reason>" on stderr when it has no counters), prints the metadata on
 * stdout and appends it to `<out_csv>.meta`. Returns NULL when the metadata cannot be written
 * (message on stderr). */
hn_session *hn_open(const hn_opts *o);

/* Announces how many cases follow (for the progress line; 0 = unknown). */
void hn_plan(hn_session *s, int cases);

/* Validates and, when valid, times one case; the row is appended to the CSV at once (and copied
 * to *row when row is not NULL). Returns 0 when timed, 1 when refused (check failed or missing),
 * -1 when the row could not be written. */
int hn_measure(hn_session *s, const hn_case *c, kt_row *row);

/* Cases refused so far. */
int hn_refused(const hn_session *s);

/* The LLC size hwloc reports (bytes; 0 when unknown), for callers sizing cache-resident inputs. */
uint64_t hn_llc_bytes(const hn_session *s);

/* Adds "key: value" lines (each ending in a newline) to the session's block of the sidecar; they
 * are written when the session closes, after the per-case counters. For what the caller measured
 * around the cases, e.g. the peaks (sim/kmeta.h). */
void hn_note(hn_session *s, const char *lines);

/* Ends the session (clears the progress line, prints a summary) and frees it. */
void hn_close(hn_session *s);

/* The statistics of a sample (sorted in place): median (mean of the middle two when even). */
double hn_median(double *v, int n);

/* Whether PAPI counts anything here; when not, the reason (static storage). */
int hn_papi_available(const char **why);

#endif
