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
  int nthreads[64];   /* n passed to each tid */
} job;

static void work(void *arg, int tid, int n) {
  job *j = arg;
  atomic_fetch_add(&j->calls, 1);
  j->seen[tid]++;
  j->cpu[tid] = sched_getcpu();
  j->nthreads[tid] = n;
}

static void check_pool(int nthreads) {
  pool *p = pool_create(nthreads, 1);
  int n = pool_threads(p), cores = pool_cores();
  T_EQ_INT(n, nthreads ? nthreads : cores);
  for (int rep = 0; rep < 50; rep++) {
    job j = {0};
    pool_run(p, work, &j);
    T_EQ_INT(atomic_load(&j.calls), n);
    for (int t = 0; t < n; t++) T_EQ_INT(j.seen[t], 1);
    for (int t = 0; t < n; t++) T_EQ_INT(j.nthreads[t], n);
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
  T_EQ_INT(j.nthreads[0], 1);
  T_EQ_INT(pool_threads(NULL), 1);
  T_EQ_INT(pool_thread_pu(NULL, 0), -1);
}

/* Dynamic jobs: every item is taken exactly once, whoever runs; mixed with static jobs. */
typedef struct djob {
  atomic_int next;       /* next item to take */
  atomic_int hits[1000]; /* times each item was done */
  atomic_int callers;    /* calls of the function */
} djob;

static void dwork(void *arg, int tid, int n) {
  djob *d = arg;
  (void)tid;
  (void)n;
  atomic_fetch_add(&d->callers, 1);
  for (int i; (i = atomic_fetch_add(&d->next, 1)) < 1000;) atomic_fetch_add(&d->hits[i], 1);
}

static void test_dynamic(void) {
  for (int nt = 1; nt <= 3; nt++) {
    pool *p = pool_create(nt, nt <= pool_cores());
    for (int rep = 0; rep < 200; rep++) {
      static djob d;
      memset(&d, 0, sizeof d);
      pool_run_dynamic(p, dwork, &d);
      int bad = 0;
      for (int i = 0; i < 1000; i++) bad += atomic_load(&d.hits[i]) != 1;
      T_EQ_INT(bad, 0);
      T_CHECK(atomic_load(&d.callers) >= 1 && atomic_load(&d.callers) <= nt);
      if (rep % 3 == 0) { /* a static job in between still reaches every thread */
        job j = {0};
        pool_run(p, work, &j);
        T_EQ_INT(atomic_load(&j.calls), nt);
      }
    }
    pool_destroy(p);
  }
  static djob d0;
  pool_run_dynamic(NULL, dwork, &d0);
  T_EQ_INT(atomic_load(&d0.callers), 1);
  T_EQ_INT(atomic_load(&d0.next), 1001);
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
  T_RUN(test_dynamic);
  return t_done();
}
