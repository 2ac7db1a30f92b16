/* sim/kmeta.h — the kernel table's sidecar, `<table>.meta`: what a measuring session knew that
 * the table's fixed CSV schema (sim/ktable.h) has no column for. `moesim kernels` appends one block
 * per session; the compute projection (sim/compute.h) reads the peaks back, so a measured row's
 * achieved TFLOP/s can become an efficiency (achieved over the peak of the machine and thread
 * count that measured it) and be carried to a target GPU.
 *
 * Format: text, "key: value" lines; a block starts at a line "run: <UTC time>" and holds, among
 * lines for people (topology, binding, PAPI state, per-case counters), the ones read here:
 *
 *   host: vm                       the short hostname, as in the rows' host column
 *   device: cpu                    the rows' device column (absent: cpu)
 *   threads: 2                     the rows' threads column
 *   peak_tflops.bf16: 1.63 (...)   measured peak of the units that run that dtype, TFLOP/s; the
 *   peak_tflops.fp8_e4m3: 1.63     rest of the line says how it was measured
 *   peak_tflops.fp8_e5m2: 1.63
 *   peak_tflops.fp32: 0.81
 *
 * A row takes the peak of the LAST block with its host, device and thread count (a re-measured
 * machine replaces its older peaks). The memory-bandwidth denominator needs no sidecar line: it is
 * the table's own `memcpy` row of the same host, device and threads (see compute.h). */
#ifndef MOESIM_KMETA_H
#define MOESIM_KMETA_H

#include <stddef.h>

#include "util.h"

#define KMETA_N_DTYPES 4 /* bf16, fp8_e4m3, fp8_e5m2, fp32 */

/* The peaks of one measuring session. */
typedef struct kmeta_session {
  char host[64];                      /* host: */
  char device[16];                    /* device: ("cpu" when absent) */
  int threads;                        /* threads: (0 when absent) */
  double peak_tflops[KMETA_N_DTYPES]; /* per kmeta dtype index, TFLOP/s; 0 = not recorded */
} kmeta_session;

/* Every session of one sidecar, in file order. */
typedef struct kmeta {
  kmeta_session *s; /* sessions */
  size_t n;         /* how many */
} kmeta;

/* The sidecar path of a table: "<table>.meta", malloc'd. */
char *kmeta_path(const char *table_path);

/* Parses sidecar text (NUL-terminated) into m (appending). Lines it does not know are skipped;
 * a peak line whose value is not a positive number is ignored. */
void kmeta_parse(const char *text, kmeta *m);

/* Reads `<table_path>.meta` into m. Returns 1 when there is no sidecar, 0 when read, -1 when it
 * exists but cannot be read (errno set). */
int kmeta_load_for_table(const char *table_path, kmeta *m);

void kmeta_free(kmeta *m);

/* The peak recorded for rows of (host, device, threads) in `dtype` (a kernel-table dtype name), by
 * the last matching session; 0 when none. */
double kmeta_peak(const kmeta *m, const char *host, const char *device, int threads, const char *dtype);

/* Appends the peak lines of a CPU session to b: BF16 (and FP8, whose CPU GEMMs convert to BF16 in
 * registers and run on the same dot-product units) at bf16_tflops measured with bf16_how, FP32 at
 * fp32_tflops measured with fp32_how. */
void kmeta_format_cpu_peaks(util_buf *b, double bf16_tflops, const char *bf16_how, double fp32_tflops,
                            const char *fp32_how);

#endif
