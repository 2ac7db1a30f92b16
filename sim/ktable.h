/* sim/ktable.h — the kernel table: one CSV schema for every measured or published kernel timing,
 * on any device. The measuring side (kernels/, `moesim kernels`, `moesim a2a`) appends rows; the
 * simulator reads them to cost its compute and communication ops.
 *
 * Header, exactly in this order:
 *   host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source
 * - host: machine the row was measured on (short hostname) or "published"
 * - device: "cpu" or "cuda" (or e.g. "h800" for published rows); device_name: model name
 * - backend: implementation family (ref, avx512bf16, avx2, cuda, cublaslt, mpi-alltoallv, ...)
 * - kernel: gemm, grouped_gemm, quant_token, quant_block, gate, dispatch, combine, swiglu,
 *   moe_layer, alltoall, memcpy
 * - variant: the numbered/tuned variant within the backend
 * - dtype: bf16, fp8_e4m3, fp8_e5m2, fp32
 * - m, n, k: problem shape (GEMM: C[m,n] = A[m,k] B[n,k]^T; other kernels document theirs)
 * - groups: experts for grouped kernels (1 otherwise); threads: CPU threads or GPU SMs used
 * - reps: timed repetitions; median_us, min_us: microseconds
 * - tflops: 1e12 FLOP/s at the median; gbps: 1e9 bytes/s at the median
 * - source: measured | published
 * Fields never contain commas. */
#ifndef MOESIM_KTABLE_H
#define MOESIM_KTABLE_H

#include <stddef.h>
#include <stdint.h>

#define KT_HEADER \
  "host,device,device_name,backend,kernel,variant,dtype,m,n,k,groups,threads,reps,median_us,min_us,tflops,gbps,source"

typedef struct kt_row {
  char host[64];         /* machine measured on, or "published" */
  char device[16];       /* cpu | cuda | a named device for published rows */
  char device_name[96];  /* e.g. "AMD EPYC", "NVIDIA H800 SXM5" */
  char backend[32];      /* implementation family */
  char kernel[24];       /* one of the kernel names above */
  char variant[48];      /* variant within the backend */
  char dtype[16];        /* bf16 | fp8_e4m3 | fp8_e5m2 | fp32 */
  int64_t m, n, k;       /* shape */
  int64_t groups;        /* experts (grouped kernels), else 1 */
  int64_t threads;       /* CPU threads or GPU SMs */
  int64_t reps;          /* timed repetitions */
  double median_us;      /* median time, microseconds */
  double min_us;         /* fastest time, microseconds */
  double tflops;         /* at the median, 1e12 FLOP/s (0 when not meaningful) */
  double gbps;           /* at the median, 1e9 B/s (0 when not meaningful) */
  char source[12];       /* measured | published */
} kt_row;

typedef struct kt_table {
  kt_row *rows; /* rows in file order */
  size_t len;   /* rows used */
  size_t cap;   /* rows allocated */
} kt_table;

/* Formats one row as a CSV line (no newline) into buf; returns the length. */
int kt_format_row(const kt_row *r, char *buf, size_t size);

/* Appends rows to the table file at `path` atomically (old rows + new rows written to a
 * temporary file, then renamed); creates it with the header when absent. Returns 0 or -1. */
int kt_append(const char *path, const kt_row *rows, size_t n);

/* Loads a table; an unreadable file is -1 (errno), a malformed one -1 with "path:line:col: error"
 * printed. Rows are appended to `t` (several files can be loaded into one table). */
int kt_load(const char *path, kt_table *t);
void kt_push(kt_table *t, const kt_row *r);
void kt_free(kt_table *t);

/* Finds the row for (device, kernel, dtype, m, n, k) with the smallest median; NULL if none.
 * device NULL matches any; a measured row wins over a published one only by being faster. */
const kt_row *kt_find(const kt_table *t, const char *device, const char *kernel, const char *dtype,
                      int64_t m, int64_t n, int64_t k);

#endif
