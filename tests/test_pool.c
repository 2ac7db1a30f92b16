/* tests/test_pool.c — the hwloc-pinned thread pool: every slot runs once per job, threads are
 * bound to distinct cores when there are enough, the binding text says so, and a NULL pool runs
 * the work on the caller. */
#include <sched.h>
#include <stdatomic.h>

#include "pool.h"
#include "test.h"

typedef struct job {
  atomic_int calls;   /* total calls */
  int seen[64];       /* calls per tid */
  int cpu[64];        /* CPU each tid ran on */
  int nthreads;       /* n passed to the workers */
} job;

static void work(void *arg, int tid, int n) {
  job *j = arg;
  atomic_fetch_add(&j->calls, 1);
  j->seen[tid]++;
  j->cpu[tid] = sched_getcpu();
  j->nthreads = n;
}

static void check_pool(int nthreads) {
  pool *p = pool_create(nthreads, 1);
  int n = pool_threads(p), cores = pool_cores();
  T_EQ_INT(n, nthreads ? nthreads : cores);
  for (int rep = 0; rep < 50; rep++) {
    job j = {0};
    pool_run(p, work, &j);
    T_EQ_INT(atomic_load(&j.calls), n);
    T_EQ_INT(j.nthreads, n);
    for (int t = 0; t < n; t++) T_EQ_INT(j.seen[t], 1);
    /* Bound threads run where they were bound. */
    for (int t = 0; t < n; t++)
      if (pool_thread_pu(p, t) >= 0) T_EQ_INT(j.cpu[t], pool_thread_pu(p, t));
  }
  /* With at most one thread per core, every thread is bound, to distinct PUs. */
  if (n <= cores) {
    for (int t = 0; t < n; t++) {
      T_CHECK(pool_thread_pu(p, t) >= 0);
      for (int u = 0; u < t; u++) T_CHECK(pool_thread_pu(p, t) != pool_thread_pu(p, u));
    }
    T_CHECK(strstr(pool_binding(p), "unbound") == NULL);
    T_CHECK(strstr(pool_binding(p), "t0->core0") != NULL);
  }
  char head[32];
  snprintf(head, sizeof head, "%d thread", n);
  T_CHECK(strncmp(pool_binding(p), head, strlen(head)) == 0);
  pool_destroy(p);
}

static void test_one_thread(void) { check_pool(1); }
static void test_two_threads(void) { check_pool(2); }
static void test_default_threads(void) { check_pool(0); }
static void test_oversubscribed(void) { check_pool(pool_cores() + 1); }

static void test_null_pool(void) {
  job j = {0};
  pool_run(NULL, work, &j);
  T_EQ_INT(atomic_load(&j.calls), 1);
  T_EQ_INT(j.nthreads, 1);
  T_EQ_INT(pool_threads(NULL), 1);
  T_EQ_INT(pool_thread_pu(NULL, 0), -1);
}

static void test_unpinned(void) {
  pool *p = pool_create(2, 0);
  T_EQ_INT(pool_thread_pu(p, 0), -1);
  T_EQ_INT(pool_thread_pu(p, 1), -1);
  T_CHECK(strstr(pool_binding(p), "t1->unbound") != NULL);
  job j = {0};
  pool_run(p, work, &j);
  T_EQ_INT(atomic_load(&j.calls), 2);
  pool_destroy(p);
}

int main(void) {
  T_RUN(test_one_thread);
  T_RUN(test_two_threads);
  T_RUN(test_default_threads);
  T_RUN(test_oversubscribed);
  T_RUN(test_null_pool);
  T_RUN(test_unpinned);
  return t_done();
}
