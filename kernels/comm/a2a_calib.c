/* kernels/comm/a2a_calib.c — what `moesim a2a --predict` measures besides the timed iterations,
 * so the simulator can predict them from isolated measurements only (a2a.h, a2a_calib):
 *   - every rank-local phase of the iteration (gate, pack, scatter, shared expert, experts,
 *     forwarder reduce, final reduce), one rank at a time while the others wait asleep, each time
 *     right after an untimed iteration (so the buffers are where the run leaves them: rows another
 *     rank's core just copied out of or into this rank's memory, caches holding the last phases'
 *     data), in wall and process CPU time — the CPU time is the phase's work on a core, whatever
 *     else the machine runs (what a kernel-table row means);
 *   - the same phases run by as many ranks at once as can run side by side, in CPU time: where they
 *     take longer than alone, the ranks contend for the memory bus;
 *   - memcpy of the rank's receive size alone (per CPU-second), then on those ranks at once;
 *   - one MPI message of the run's mean dispatch and combine message sizes, rank 0 -> 1 alone, from
 *     a buffer the sender has just written (as the run's rows are), per second of the receiving
 *     core's CPU time (a single-copy transport copies on the receiver), and the empty message's
 *     latency;
 *   - how much of a core a busy loop gets, alone and on every rank at once (before the timed
 *     iterations, and before and after the rest): other processes on the machine take the difference;
 *   - the CPUs each rank may run on (its affinity mask) and whether MPI yields while it waits.
 * Every figure is the median of several repetitions. */
#if MOESIM_MPI
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "a2a_internal.h"
#include "harness.h"
#include "util.h"

#define CAL_REPS 5

/* This process's CPU time, us (all its threads). */
static double cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* Touches every page so that a copy measures bandwidth, not page faults. */
static char *touched(uint64_t n) {
  char *p = util_xmalloc((size_t)n);
  for (uint64_t i = 0; i < n; i++) p[i] = (char)(i * 131u);
  return p;
}

/* Runs one local phase of this rank once. */
static void run_phase(a2a_ctx *x, int phase) {
  const bf16_t *shared = x->c->layer && x->c->n_shared ? x->shared : NULL;
  switch (phase) {
  case A2A_PH_GATE: (void)a2a_layer_gate(x); break;
  case A2A_PH_SHARED: (void)a2a_layer_shared(x); break;
  case A2A_PH_EXPERTS: (void)a2a_expert_stage(x); break;
  default: a2a_local_phase(x, phase, shared); break;
  }
}

/* One local phase, from the state an iteration leaves the buffers and caches in (rows another
 * rank's core has just copied out or in, as in the run): per repetition, one untimed iteration on
 * every rank, then each rank in turn runs the phase alone (wall and CPU time) while the others
 * sleep; then another iteration and ranks [0, k) run it at once (CPU time). Medians into *wall,
 * *cpu, *cpu_all. */
static void time_phase(a2a_ctx *x, int phase, int k, int reps, double *wall, double *cpu, double *cpu_all) {
  double t[CAL_REPS], c[CAL_REPS], a[CAL_REPS];
  for (int i = 0; i < reps; i++) {
    (void)a2a_iteration(x);
    for (int q = 0; q < x->R; q++) {
      a2a_quiet_barrier(x->world);
      if (q != x->r) continue;
      double t0 = a2a_now_us(), c0 = cpu_us();
      run_phase(x, phase);
      t[i] = a2a_now_us() - t0, c[i] = cpu_us() - c0;
    }
    (void)a2a_iteration(x);
    a2a_quiet_barrier(x->world);
    A2A_MPI(MPI_Barrier(x->world));
    if (x->r >= k) continue;
    double c0 = cpu_us();
    run_phase(x, phase);
    a[i] = cpu_us() - c0;
  }
  *wall = hn_median(t, reps), *cpu = hn_median(c, reps);
  *cpu_all = x->r < k ? hn_median(a, reps) : 0;
}

static void calib_copy(a2a_ctx *x, a2a_calib *cal, uint64_t bytes) {
  char *src = touched(bytes), *dst = touched(bytes);
  double t[CAL_REPS];
  for (int k = 0; k < x->R; k++) {
    a2a_quiet_barrier(x->world);
    if (k != x->r) continue;
    memcpy(dst, src, (size_t)bytes);
    for (int i = 0; i < CAL_REPS; i++) {
      double c0 = cpu_us();
      memcpy(dst, src, (size_t)bytes);
      t[i] = cpu_us() - c0;
    }
    double m = hn_median(t, CAL_REPS);
    cal->copy_gbyte_s = (double)bytes / ((m > 0.01 ? m : 0.01) * 1e3);
  }
  /* ranks [0, concurrent) at once: each one's rate over its CPU time */
  double all[CAL_REPS];
  for (int i = -1; i < CAL_REPS; i++) {
    a2a_quiet_barrier(x->world);
    A2A_MPI(MPI_Barrier(x->world));
    if (x->r >= cal->concurrent) continue;
    double c0 = cpu_us();
    memcpy(dst, src, (size_t)bytes);
    double c = cpu_us() - c0;
    if (i >= 0) all[i] = (double)bytes / ((c > 0.01 ? c : 0.01) * 1e3);
  }
  cal->copy_all_gbyte_s = x->r < cal->concurrent ? hn_median(all, CAL_REPS) : cal->copy_gbyte_s;
  free(src), free(dst);
}

/* Rank 0 -> 1, the others asleep: an empty ping-pong (latency), then for each of the two sizes one
 * message answered by an empty one, costed in the receiver's CPU time. */
static void calib_mpi(a2a_ctx *x, a2a_calib *cal) {
  a2a_quiet_barrier(x->world);
  if (x->R >= 2 && x->r <= 1) {
    int peer = 1 - x->r;
    uint64_t big = cal->msg_bytes[0] > cal->msg_bytes[1] ? cal->msg_bytes[0] : cal->msg_bytes[1];
    char *buf = touched(big ? big : 1);
    double lat[32], t[CAL_REPS];
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
    for (int s = 0; s < 2; s++) {
      int n = (int)cal->msg_bytes[s];
      for (int i = -1; i < CAL_REPS; i++) {
        /* the receiver posts first so that its CPU time is the copy, not the wait for the sender */
        if (x->r == 0) {
          /* the run sends rows its core has just written: so does this message */
          memset(buf, i & 0x7f, (size_t)n);
          A2A_MPI(MPI_Recv(buf, 0, MPI_BYTE, peer, 7, x->world, MPI_STATUS_IGNORE));
          A2A_MPI(MPI_Send(buf, n, MPI_BYTE, peer, 6, x->world));
          A2A_MPI(MPI_Recv(buf, 0, MPI_BYTE, peer, 6, x->world, MPI_STATUS_IGNORE));
        } else {
          MPI_Request rq;
          A2A_MPI(MPI_Irecv(buf, n, MPI_BYTE, peer, 6, x->world, &rq));
          A2A_MPI(MPI_Send(buf, 0, MPI_BYTE, peer, 7, x->world));
          double c0 = cpu_us();
          A2A_MPI(MPI_Wait(&rq, MPI_STATUS_IGNORE));
          if (i >= 0) t[i] = cpu_us() - c0;
          A2A_MPI(MPI_Send(buf, 0, MPI_BYTE, peer, 6, x->world));
        }
      }
      double m = 0;
      if (x->r == 1) {
        m = hn_median(t, CAL_REPS);
        A2A_MPI(MPI_Send(&m, 1, MPI_DOUBLE, peer, 8, x->world));
      } else {
        A2A_MPI(MPI_Recv(&m, 1, MPI_DOUBLE, peer, 8, x->world, MPI_STATUS_IGNORE));
      }
      cal->mpi_gbyte_s[s] = (double)n / ((m > 0.01 ? m : 0.01) * 1e3);
    }
    free(buf);
  }
  a2a_quiet_barrier(x->world);
}

/* The mean size of the messages between ranks (flat) or nodes (hier) of the dispatch and the
 * combine, over all ranks; at least 64 KiB. */
static void message_sizes(a2a_ctx *x, uint64_t *bytes) {
  double rows = 0, msgs = 0;
  if (!x->h) {
    for (int s = 0; s < x->R; s++)
      if (s != x->r && x->recv_cnt[s]) rows += (double)x->recv_cnt[s], msgs += 1;
  } else if (x->nr == 0) {
    for (int m = 0; m < x->N; m++)
      if (m != x->n && x->h->S[m * x->N + x->n]) rows += (double)x->h->S[m * x->N + x->n], msgs += 1;
  }
  double v[2] = {rows, msgs};
  A2A_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, x->world));
  double mean = v[1] > 0 ? v[0] / v[1] : 0;
  double d = mean * (double)x->f.bytes, c = mean * 2.0 * (double)x->H;
  bytes[0] = d > 65536 ? (uint64_t)d : 65536;
  bytes[1] = c > 65536 ? (uint64_t)c : 65536;
}

/* CPU share of a busy loop of `wall_us`: CPU time over wall time. */
static double spin_share(double wall_us) {
  double t0 = a2a_now_us(), c0 = cpu_us();
  volatile double acc = 0; /* volatile: the loop is the point */
  while (a2a_now_us() - t0 < wall_us)
    for (int i = 0; i < 2000; i++) acc = acc + (double)i * 0.5;
  double w = a2a_now_us() - t0;
  return (cpu_us() - c0) / w;
}

/* Shares alone (rank by rank) and with every rank busy at once; medians of 3. */
void a2a_calib_shares(a2a_ctx *x, double *alone, double *all) {
  double a[3], b[3];
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < x->R; k++) {
      a2a_quiet_barrier(x->world);
      if (k == x->r) a[i] = spin_share(20000);
    }
    a2a_quiet_barrier(x->world);
    A2A_MPI(MPI_Barrier(x->world));
    b[i] = spin_share(20000);
  }
  *alone = hn_median(a, 3), *all = hn_median(b, 3);
}

/* OpenMPI's mpi_yield_when_idle through the MPI tool interface (0 when unknown). */
static int mpi_yields(void) {
  int prov, num = 0, yields = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &prov) != MPI_SUCCESS) return 0;
  if (MPI_T_cvar_get_num(&num) != MPI_SUCCESS) num = 0;
  for (int i = 0; i < num; i++) {
    char name[128], desc[8];
    int nl = sizeof name, dl = sizeof desc, verb, bind, scope, cnt;
    MPI_Datatype dt;
    MPI_T_enum en;
    if (MPI_T_cvar_get_info(i, name, &nl, &verb, &dt, &en, desc, &dl, &bind, &scope) != MPI_SUCCESS) continue;
    if (strcmp(name, "mpi_yield_when_idle") != 0) continue;
    MPI_T_cvar_handle h;
    if (MPI_T_cvar_handle_alloc(i, NULL, &h, &cnt) != MPI_SUCCESS) break;
    unsigned char v[16] = {0}; /* a C bool or an int, read into zeroed bytes */
    if (MPI_T_cvar_read(h, v) == MPI_SUCCESS) yields = v[0] != 0;
    MPI_T_cvar_handle_free(&h);
    break;
  }
  MPI_T_finalize();
  return yields;
}

void a2a_calibrate(a2a_ctx *x, a2a_calib *cal, const double *share_before) {
  memset(cal, 0, sizeof *cal);
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    cal->cpus = CPU_COUNT(&set);
    for (int c = 0; c < 64; c++)
      if (CPU_ISSET(c, &set)) cal->cpu_mask |= 1ull << c;
  }
  long on = sysconf(_SC_NPROCESSORS_ONLN);
  cal->online_cpus = on > 0 ? (int)on : cal->cpus;
  /* as many ranks as the CPUs they may use can run side by side */
  uint64_t all = 0;
  A2A_MPI(MPI_Allreduce(&cal->cpu_mask, &all, 1, MPI_UINT64_T, MPI_BOR, x->world));
  int P = cal->cpus > 64 ? cal->cpus : __builtin_popcountll(all);
  cal->concurrent = x->R < P ? x->R : (P > 0 ? P : 1);
  double a0, b0, a1, b1;
  a2a_calib_shares(x, &a0, &b0);
  static const int phases[] = {A2A_PH_GATE,    A2A_PH_PACK, A2A_PH_SCATTER, A2A_PH_SHARED,
                               A2A_PH_EXPERTS, A2A_PH_FWD,  A2A_PH_REDUCE};
  /* two iterations per repetition and phase: fewer repetitions when iterations are long */
  double it_us = x->ph[A2A_PH_TOTAL], slow = 0;
  A2A_MPI(MPI_Allreduce(&it_us, &slow, 1, MPI_DOUBLE, MPI_MAX, x->world));
  int reps = slow > 2e5 ? 3 : CAL_REPS;
  for (size_t i = 0; i < sizeof phases / sizeof *phases; i++) {
    int p = phases[i];
    if (!x->c->layer && (p == A2A_PH_GATE || p == A2A_PH_SHARED)) continue;
    if (!x->h && (p == A2A_PH_SCATTER || p == A2A_PH_FWD)) continue;
    time_phase(x, p, cal->concurrent, reps, &cal->phase_us[p], &cal->phase_cpu_us[p], &cal->phase_cpu_all_us[p]);
  }
  uint64_t recv_bytes = (uint64_t)(x->nrecv - x->recv_cnt[x->r]) * x->f.bytes;
  calib_copy(x, cal, recv_bytes > (1u << 16) ? recv_bytes : (1u << 16));
  message_sizes(x, cal->msg_bytes);
  calib_mpi(x, cal);
  /* ranks 0 and 1 measured the link; everyone gets their figures */
  double link[3] = {cal->mpi_gbyte_s[0], cal->mpi_gbyte_s[1], cal->latency_us};
  A2A_MPI(MPI_Bcast(link, 3, MPI_DOUBLE, 0, x->world));
  cal->mpi_gbyte_s[0] = link[0], cal->mpi_gbyte_s[1] = link[1], cal->latency_us = link[2];
  a2a_calib_shares(x, &a1, &b1);
  /* before the iterations, and before and after the rest of the calibration */
  cal->share_alone = (share_before[0] + a0 + a1) / 3, cal->share_all = (share_before[1] + b0 + b1) / 3;
  cal->mpi_yields = mpi_yields();
}
#endif
