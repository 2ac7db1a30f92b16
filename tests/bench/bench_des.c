/* tests/bench/bench_des.c — event-core throughput: push+pop pairs per second on one core, with a
 * steady-state queue (each fired event schedules one more, like a network simulation) and with a
 * bulk load/drain. Target from the foundation issue: at least 10 million push+pop per second. */
#include <stdio.h>

#include "des.h"
#include "util.h"

static uint64_t rng = 88172645463325252ull;
static inline uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint64_t remaining;
static void hop(des_sim *s, void *p) {
  if (remaining > 0) {
    remaining--;
    des_after(s, 1 + next_rand() % 1000000, hop, p);
  }
}

static double steady(int queue, uint64_t total) {
  des_sim *s = des_new();
  remaining = total;
  for (int i = 0; i < queue; i++) des_at(s, next_rand() % 1000000, hop, NULL);
  uint64_t t0 = util_now_ns();
  des_run(s);
  double sec = (double)(util_now_ns() - t0) * 1e-9;
  uint64_t fired = des_fired(s);
  des_free(s);
  return (double)fired / sec;
}

static void noop(des_sim *s, void *p) {
  (void)s;
  (void)p;
}

static double bulk(uint64_t n) {
  des_sim *s = des_new();
  uint64_t t0 = util_now_ns();
  for (uint64_t i = 0; i < n; i++) des_at(s, next_rand() % 1000000000ull, noop, NULL);
  des_run(s);
  double sec = (double)(util_now_ns() - t0) * 1e-9;
  des_free(s);
  return (double)n / sec;
}

int main(void) {
  printf("event core (push+pop pairs per second, one core; target >= 10e6)\n");
  int queues[] = {64, 4096, 262144};
  for (int i = 0; i < 3; i++) {
    double best = 0;
    for (int r = 0; r < 3; r++) {
      double v = steady(queues[i], 5000000);
      if (v > best) best = v;
    }
    printf("  steady state, %7d pending: %6.1f M events/s\n", queues[i], best / 1e6);
  }
  double best = 0;
  for (int r = 0; r < 3; r++) {
    double v = bulk(2000000);
    if (v > best) best = v;
  }
  printf("  bulk 2M push then 2M pop:   %6.1f M events/s\n", best / 1e6);
  return 0;
}
