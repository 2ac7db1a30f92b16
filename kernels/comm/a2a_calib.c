/* kernels/comm/a2a_calib.c — what `moesim a2a --predict` measures besides the run itself, so the
 * simulator can predict the run from isolated measurements only (a2a.h, a2a_calib):
 *   - every rank-local phase of the iteration (gate, pack, scatter, shared expert, experts,
 *     forwarder reduce, final reduce), one rank at a time while the others wait asleep, so a
 *     timing is the phase alone on an idle machine (what a kernel-table row means);
 *   - memcpy of the rank's receive size: alone, then on all ranks at once (the memory bus they
 *     share);
 *   - one MPI message of a dispatch-sized payload between ranks 0 and 1, alone, and the empty
 *     message's latency (ping-pong);
 *   - the CPUs each rank may run on (its affinity mask), so the model knows which ranks share cores.
 * Every figure is the median of several repetitions. */
#if MOESIM_MPI
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "a2a_internal.h"
#include "harness.h"
#include "util.h"

#define CAL_REPS 5

/* Median time (us) of CAL_REPS runs of one local phase, after one untimed run. */
static double time_phase(a2a_ctx *x, int phase) {
  double t[CAL_REPS];
  const bf16_t *shared = x->c->layer && x->c->n_shared ? x->shared : NULL;
  for (int i = -1; i < CAL_REPS; i++) {
    double t0 = a2a_now_us();
    switch (phase) {
    case A2A_PH_GATE: (void)a2a_layer_gate(x); break;
    case A2A_PH_SHARED: (void)a2a_layer_shared(x); break;
    case A2A_PH_EXPERTS: (void)a2a_expert_stage(x); break;
    default: a2a_local_phase(x, phase, shared); break;
    }
    if (i >= 0) t[i] = a2a_now_us() - t0;
  }
  return hn_median(t, CAL_REPS);
}

/* Touches every page so that a copy measures bandwidth, not page faults. */
static char *touched(uint64_t n) {
  char *p = util_xmalloc((size_t)n);
  for (uint64_t i = 0; i < n; i++) p[i] = (char)(i * 131u);
  return p;
}

static double copy_us(char *dst, const char *src, uint64_t n) {
  double t0 = a2a_now_us();
  memcpy(dst, src, (size_t)n);
  return a2a_now_us() - t0;
}

static void calib_copy(a2a_ctx *x, a2a_calib *cal, uint64_t bytes) {
  char *src = touched(bytes), *dst = touched(bytes);
  double t[CAL_REPS];
  for (int k = 0; k < x->R; k++) {
    a2a_quiet_barrier(x->world);
    if (k != x->r) continue;
    (void)copy_us(dst, src, bytes);
    for (int i = 0; i < CAL_REPS; i++) t[i] = copy_us(dst, src, bytes);
    cal->copy_gbyte_s = (double)bytes / (hn_median(t, CAL_REPS) * 1e3);
  }
  /* all ranks at once: the total rate is the bytes of all over the slowest */
  double agg[CAL_REPS];
  uint64_t total = 0;
  A2A_MPI(MPI_Allreduce(&bytes, &total, 1, MPI_UINT64_T, MPI_SUM, x->world));
  for (int i = -1; i < CAL_REPS; i++) {
    a2a_quiet_barrier(x->world);
    A2A_MPI(MPI_Barrier(x->world));
    double mine = copy_us(dst, src, bytes), slow = 0;
    A2A_MPI(MPI_Allreduce(&mine, &slow, 1, MPI_DOUBLE, MPI_MAX, x->world));
    if (i >= 0) agg[i] = (double)total / (slow * 1e3);
  }
  cal->copy_all_gbyte_s = hn_median(agg, CAL_REPS);
  cal->copy_ranks = x->R;
  free(src), free(dst);
}

/* Rank 0 -> 1: an empty ping-pong (latency) and one message of `bytes` answered by an empty one. */
static void calib_mpi(a2a_ctx *x, a2a_calib *cal, uint64_t bytes) {
  a2a_quiet_barrier(x->world);
  if (x->R < 2 || x->r > 1) {
    a2a_quiet_barrier(x->world);
    return;
  }
  int peer = 1 - x->r;
  char *buf = touched(bytes ? bytes : 1);
  double lat[32], big[CAL_REPS];
  for (int i = -4; i < 32; i++) {
    double t0 = a2a_now_us();
    if (x->r == 0) {
      A2A_MPI(MPI_Send(buf, 0, MPI_BYTE, peer, 5, x->world));
      A2A_MPI(MPI_Recv(buf, 0, MPI_BYTE, peer, 5, x->world, MPI_STATUS_IGNORE));
    } else {
      A2A_MPI(MPI_Recv(buf, 0, MPI_BYTE, peer, 5, x->world, MPI_STATUS_IGNORE));
      A2A_MPI(MPI_Send(buf, 0, MPI_BYTE, peer, 5, x->world));
    }
    if (i >= 0) lat[i] = (a2a_now_us() - t0) / 2;
  }
  cal->latency_us = hn_median(lat, 32);
  for (int i = -1; i < CAL_REPS; i++) {
    double t0 = a2a_now_us();
    if (x->r == 0) {
      A2A_MPI(MPI_Send(buf, (int)bytes, MPI_BYTE, peer, 6, x->world));
      A2A_MPI(MPI_Recv(buf, 0, MPI_BYTE, peer, 6, x->world, MPI_STATUS_IGNORE));
    } else {
      A2A_MPI(MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, 6, x->world, MPI_STATUS_IGNORE));
      A2A_MPI(MPI_Send(buf, 0, MPI_BYTE, peer, 6, x->world));
    }
    if (i >= 0) big[i] = a2a_now_us() - t0 - 2 * cal->latency_us;
  }
  double t = hn_median(big, CAL_REPS);
  cal->mpi_gbyte_s = (double)bytes / ((t > 0.01 ? t : 0.01) * 1e3);
  free(buf);
  a2a_quiet_barrier(x->world);
}

void a2a_calibrate(a2a_ctx *x, a2a_calib *cal) {
  memset(cal, 0, sizeof *cal);
  static const int phases[] = {A2A_PH_GATE,    A2A_PH_PACK, A2A_PH_SCATTER, A2A_PH_SHARED,
                               A2A_PH_EXPERTS, A2A_PH_FWD,  A2A_PH_REDUCE};
  for (int k = 0; k < x->R; k++) {
    a2a_quiet_barrier(x->world);
    if (k != x->r) continue;
    for (size_t i = 0; i < sizeof phases / sizeof *phases; i++) {
      int p = phases[i];
      if (!x->c->layer && (p == A2A_PH_GATE || p == A2A_PH_SHARED)) continue;
      if (!x->h && (p == A2A_PH_SCATTER || p == A2A_PH_FWD)) continue;
      cal->phase_us[p] = time_phase(x, p);
    }
  }
  uint64_t recv_bytes = (uint64_t)(x->nrecv - x->recv_cnt[x->r]) * x->f.bytes;
  calib_copy(x, cal, recv_bytes > (1u << 16) ? recv_bytes : (1u << 16));
  /* the message ranks 0 and 1 exchange in the dispatch (rank 1's rows from rank 0) */
  int64_t rows01 = x->R > 1 && x->r == 1 ? x->recv_cnt[0] : 0;
  A2A_MPI(MPI_Allreduce(MPI_IN_PLACE, &rows01, 1, MPI_INT64_T, MPI_MAX, x->world));
  uint64_t msg = (uint64_t)rows01 * x->f.bytes;
  a2a_calib mine = *cal;
  calib_mpi(x, &mine, msg > (1u << 16) ? msg : (1u << 16));
  /* ranks 0 and 1 measured the link; everyone gets their figures */
  double link[2] = {mine.mpi_gbyte_s, mine.latency_us};
  A2A_MPI(MPI_Bcast(link, 2, MPI_DOUBLE, 0, x->world));
  cal->mpi_gbyte_s = link[0], cal->latency_us = link[1];
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    cal->cpus = CPU_COUNT(&set);
    cal->cpu_first = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &set)) {
        if (cal->cpu_first < 0) cal->cpu_first = c;
        if (c < 64) cal->cpu_mask |= 1ull << c;
      }
  }
}
#endif
