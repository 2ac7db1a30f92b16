/* tests/test_a2a_predict.c — the simulator's model of a `moesim a2a` run (sim/a2a_predict.h) on
 * hand-made calibrations whose simulated times are worked out by hand below: two ranks on their own
 * cores (phases in sequence, messages copied on the receiver's core at the measured cost, the
 * latency of syncs and messages), the same two ranks sharing one CPU (every phase and copy shared
 * fairly), other processes on the CPUs (the share they leave), busy-polling against yielding
 * ranks, the memory bus (a phase that two ranks ran at once twice as slow), and the hierarchical
 * path's node program. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "a2a_predict.h"
#include "test.h"

/* H = 128, top-2: dispatch rows of 160 bytes, combine rows of 256. */
enum { H = 128, K = 2 };

typedef struct fake {
  a2a_cfg c;
  a2a_result res;
  a2a_rank_result rk[2];
  int64_t cnt[2][2], ncnt[2][1];
} fake;

/* Two ranks: rank r sends cnt[r][d] tokens to rank d; pack 100 us, experts 1000 us, reduce 50 us of
 * CPU; MPI messages cost the receiver 1 GB/s (1 us per kB), memcpy 1000 GB/s, latency 1 us. */
static void fake_init(fake *f, const int64_t cnt[2][2]) {
  memset(f, 0, sizeof *f);
  f->c = a2a_cfg_default();
  f->c.hidden = H, f->c.gate.topk = K;
  f->res.ranks = 2, f->res.nodes = 2, f->res.iters = 1;
  f->res.fmt = a2a_row_format(H, K);
  snprintf(f->res.single_copy, sizeof f->res.single_copy, "cma");
  f->res.rank = f->rk;
  for (int r = 0; r < 2; r++) {
    a2a_rank_result *q = &f->rk[r];
    a2a_calib *k = &q->calib;
    for (int d = 0; d < 2; d++) f->cnt[r][d] = cnt[r][d];
    f->ncnt[r][0] = cnt[r][0] + cnt[r][1];
    q->send_cnt = f->cnt[r], q->node_cnt = f->ncnt[r];
    k->phase_cpu_us[A2A_PH_PACK] = k->phase_cpu_all_us[A2A_PH_PACK] = 100;
    k->phase_cpu_us[A2A_PH_EXPERTS] = k->phase_cpu_all_us[A2A_PH_EXPERTS] = 1000;
    k->phase_cpu_us[A2A_PH_REDUCE] = k->phase_cpu_all_us[A2A_PH_REDUCE] = 50;
    k->copy_gbyte_s = k->copy_all_gbyte_s = 1000;
    k->mpi_gbyte_s[0] = k->mpi_gbyte_s[1] = 1;
    k->latency_us = 1;
    k->share_alone = k->share_all = 1;
    k->cpus = 1, k->cpu_mask = 1ull << r, k->online_cpus = 2, k->concurrent = 2;
  }
}

static double total(const fake *f) {
  a2a_sim s;
  if (a2a_simulate(&f->c, &f->res, &s) != 0) return -1;
  return s.phase_us[A2A_PH_TOTAL];
}

/* Rank 1 sends 30 rows to rank 0 and keeps 40; rank 0 sends 20 and keeps 10. Dispatch: counts
 * (1 us), pack 100, own rows (rank 1's 6400 B at 1000 GB/s: 0.0064), then both messages at once
 * (4800 B onto rank 0's core: 4.8 us, plus 1 us latency): 106.8064. Combine: own rows (10240 B:
 * 0.01024), the 30 rows back onto rank 1's core (7680 B: 7.68 + 1), reduce 50: 58.69024. */
static void test_bound_quiet(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{10, 20}, {30, 40}});
  a2a_sim s;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  T_NEAR(s.phase_us[A2A_PH_DISPATCH], 106.8064, 0.001);
  T_NEAR(s.phase_us[A2A_PH_DXCHG], 5.8064, 0.001);
  T_NEAR(s.phase_us[A2A_PH_COMBINE], 58.69024, 0.001);
  T_NEAR(s.phase_us[A2A_PH_TOTAL], 106.8064 + 1000 + 58.69024, 0.001);
  T_NEAR(s.background, 0, 0);
  T_EQ_INT(s.copies, 1);
}

/* Both ranks on CPU 0: pack and experts take twice as long; each exchange copies both messages on
 * the one core (4800 + 3200 B: 8 us, + 1), the combine's (5120 + 7680 B: 12.8 us, + 1); the own rows
 * (tiny) also share it. */
static void test_one_cpu(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{10, 20}, {30, 40}});
  for (int r = 0; r < 2; r++) f.rk[r].calib.cpu_mask = 1, f.rk[r].calib.mpi_yields = 1, f.rk[r].calib.concurrent = 1;
  double want = 1 + 200 + 9 + 2000 + 13.8 + 100;
  T_NEAR(total(&f), want, 0.05);
  /* the same with MPI copying twice (in and out of shared buffers): the sender's core copies too */
  snprintf(f.res.single_copy, sizeof f.res.single_copy, "none");
  T_NEAR(total(&f), want + 8 + 12.8, 0.05);
}

/* Every rank got half a core with all busy on 2 CPUs: two other busy tasks. Symmetric traffic
 * (20 rows each way, 20 kept): every phase and copy at half speed, latencies unchanged. */
static void test_background(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{20, 20}, {20, 20}});
  for (int r = 0; r < 2; r++) f.rk[r].calib.share_all = 0.5, f.rk[r].calib.mpi_yields = 1;
  a2a_sim s;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  T_NEAR(s.background, 2, 1e-12);
  double d = 1 + 200 + 2 * 0.0032 + 2 * 3.2 + 1, c = 2 * 0.00512 + 2 * 5.12 + 1 + 100;
  T_NEAR(s.phase_us[A2A_PH_TOTAL], d + 2000 + c, 0.01);
}

/* Rank 1 packs for 300 us, rank 0 for 100, with two other busy tasks on the 2 CPUs. A rank that
 * busy-polls while it waits keeps its half core: rank 1 does 100 us of work by t = 201 at half speed,
 * then the rest at half speed: 600. One that yields leaves its core to the others: three tasks on
 * two CPUs, 2/3 each: 100 + 200 / (2/3) = 500. (The model spins in steps of 5 us of CPU; the step
 * running when a wait ends finishes beside the next phase: within 5 us.) */
static void test_spin_or_yield(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{20, 20}, {20, 20}});
  for (int r = 0; r < 2; r++) f.rk[r].calib.share_all = 0.5;
  f.rk[1].calib.phase_cpu_us[A2A_PH_PACK] = f.rk[1].calib.phase_cpu_all_us[A2A_PH_PACK] = 300;
  a2a_sim s;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  T_EQ_INT(s.spin, 1);
  T_NEAR(s.phase_us[A2A_PH_PACK], 600, 5);
  for (int r = 0; r < 2; r++) f.rk[r].calib.mpi_yields = 1;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  T_EQ_INT(s.spin, 0);
  T_NEAR(s.phase_us[A2A_PH_PACK], 500, 0.01);
}

/* Pack took twice its CPU time when both ranks ran it at once: together they saturate the bus, so
 * the simulated pack takes 200 on both; alone (rank 0 twice as fast) it would not. */
static void test_bus(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{10, 20}, {30, 40}});
  double base = total(&f);
  for (int r = 0; r < 2; r++) f.rk[r].calib.phase_cpu_all_us[A2A_PH_PACK] = 200;
  T_NEAR(total(&f), base + 100, 0.001);
  /* rank 0 packs for 50 and is done before the bus would matter much: 50 at half speed means
   * 100 us for both; then rank 1 alone on the bus finishes its remaining 50 at full speed: 150 */
  f.rk[0].calib.phase_cpu_us[A2A_PH_PACK] = 50;
  f.rk[0].calib.phase_cpu_all_us[A2A_PH_PACK] = 100;
  a2a_sim s;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  T_NEAR(s.phase_us[A2A_PH_PACK], 150, 0.001);
}

/* hier with both ranks in one node: no message; node barriers (1 us each) around the exchange and
 * around the forwarder reduce and the messages back. Dispatch: 1 + 100 + 2 + scatter 10; combine:
 * 1 + forwarder 20 + 1 + 1 + reduce 50. */
static void test_hier_one_node(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{10, 20}, {30, 40}});
  f.c.impl = A2A_HIER, f.c.ranks_per_node = 2, f.res.nodes = 1;
  for (int r = 0; r < 2; r++) {
    f.rk[r].calib.phase_cpu_us[A2A_PH_SCATTER] = f.rk[r].calib.phase_cpu_all_us[A2A_PH_SCATTER] = 10;
    f.rk[r].calib.phase_cpu_us[A2A_PH_FWD] = f.rk[r].calib.phase_cpu_all_us[A2A_PH_FWD] = 20;
  }
  a2a_sim s;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  T_NEAR(s.phase_us[A2A_PH_DISPATCH], 113, 0.001);
  T_NEAR(s.phase_us[A2A_PH_COMBINE], 73, 0.001);
  T_NEAR(s.phase_us[A2A_PH_TOTAL], 113 + 1000 + 73, 0.001);
}

/* The layer: no barriers between phases, so a rank that finishes its experts early waits for the
 * other in the combine exchange; the total is the last rank's end. */
static void test_layer(void) {
  fake f;
  fake_init(&f, (const int64_t[2][2]){{10, 20}, {30, 40}});
  f.c.layer = 1;
  for (int r = 0; r < 2; r++) {
    f.rk[r].calib.phase_cpu_us[A2A_PH_GATE] = f.rk[r].calib.phase_cpu_all_us[A2A_PH_GATE] = 30;
    f.rk[r].calib.phase_cpu_us[A2A_PH_SHARED] = f.rk[r].calib.phase_cpu_all_us[A2A_PH_SHARED] = 70;
  }
  f.rk[0].calib.phase_cpu_us[A2A_PH_EXPERTS] = f.rk[0].calib.phase_cpu_all_us[A2A_PH_EXPERTS] = 400;
  a2a_sim s;
  T_EQ_INT(a2a_simulate(&f.c, &f.res, &s), 0);
  /* gate 30, dispatch 106.8064 (as above), shared 70, experts 1000 (rank 1), combine 58.69024 */
  T_NEAR(s.phase_us[A2A_PH_TOTAL], 30 + 106.8064 + 70 + 1000 + 58.69024, 0.001);
  /* rank 0 waited 600 us in the combine exchange */
  T_NEAR(s.phase_us[A2A_PH_CXCHG], 600 + 8.69024, 0.001);
}

int main(void) {
  T_RUN(test_bound_quiet);
  T_RUN(test_one_cpu);
  T_RUN(test_background);
  T_RUN(test_spin_or_yield);
  T_RUN(test_bus);
  T_RUN(test_hier_one_node);
  T_RUN(test_layer);
  return t_done();
}
