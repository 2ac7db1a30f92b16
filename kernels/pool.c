/* kernels/pool.c — the fork-join thread pool of pool.h.
 *
 * Workers wait on a generation counter: pool_run publishes (fn, arg), bumps the generation and
 * wakes everyone; each worker runs its slot and decrements the pending count; the caller runs slot
 * 0 and then waits for the count to reach zero. A worker spins briefly on the generation before
 * sleeping on the condition variable, so back-to-back kernel calls do not pay a wake-up each, but
 * an idle pool does not burn a core shared with other programs. Binding uses hwloc's core objects
 * (logical order) and the first PU of each core; what was obtained is recorded per thread. */
#include "pool.h"

#include <hwloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define POOL_SPIN 20000 /* generation polls before a worker sleeps */
#define GATE_CLOSED UINT64_C(1) /* gate: the dynamic job takes no more workers */
#define GATE_STATIC UINT64_C(2) /* gate: every worker runs the job */
#define GATE_ONE UINT64_C(4)    /* gate: one entered worker */

typedef struct pool_worker {
  pool *owner;     /* the pool */
  int tid;         /* slot index (>= 1 for workers) */
  pthread_t th;    /* the thread */
} pool_worker;

struct pool {
  int n;                     /* threads, caller included */
  int pin;                   /* bind threads to cores */
  hwloc_topology_t topo;     /* loaded once at creation */
  int have_topo;             /* topo is valid */
  hwloc_cpuset_t caller_set; /* caller's binding before the pool changed it (NULL if unknown) */
  int *pu;                   /* per thread: OS index of the bound PU, -1 if unbound */
  pool_worker *workers;      /* n - 1 workers (slots 1..n-1) */
  pthread_mutex_t mu;        /* guards the sleeping side of gen and stop */
  pthread_cond_t wake;       /* signalled when gen changes or stop is set */
  pthread_cond_t done;       /* signalled when pending reaches 0 */
  atomic_uint gen;           /* job generation, bumped by pool_run */
  atomic_int pending;        /* static job: workers still running it */
  _Atomic uint64_t gate;     /* current job: generation << 32 | entered workers << 2 | static << 1 | closed */
  atomic_int dyn_done;       /* dynamic job: entered workers that have finished */
  int stop;                  /* workers exit */
  pool_fn fn;                /* current job */
  void *arg;                 /* its argument */
  char binding[512];         /* pool_binding() text */
};

static int topo_cores(hwloc_topology_t topo) {
  int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  if (n <= 0) n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  return n > 0 ? n : 1;
}

int pool_cores(void) {
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return 1;
  if (hwloc_topology_load(topo) != 0) {
    hwloc_topology_destroy(topo);
    return 1;
  }
  int n = topo_cores(topo);
  hwloc_topology_destroy(topo);
  return n;
}

/* Binds the calling thread to core (tid mod cores); records the PU or -1. */
static void pool_bind_self(pool *p, int tid) {
  p->pu[tid] = -1;
  if (!p->pin || !p->have_topo) return;
  int cores = topo_cores(p->topo);
  hwloc_obj_t core = hwloc_get_obj_by_type(p->topo, HWLOC_OBJ_CORE, (unsigned)(tid % cores));
  if (!core) core = hwloc_get_obj_by_type(p->topo, HWLOC_OBJ_PU, (unsigned)(tid % cores));
  if (!core || !core->cpuset) return;
  hwloc_cpuset_t set = hwloc_bitmap_dup(core->cpuset);
  hwloc_bitmap_singlify(set);
  if (hwloc_set_cpubind(p->topo, set, HWLOC_CPUBIND_THREAD) == 0) p->pu[tid] = hwloc_bitmap_first(set);
  hwloc_bitmap_free(set);
}

static void *pool_main(void *v) {
  pool_worker *w = v;
  pool *p = w->owner;
  pool_bind_self(p, w->tid);
  unsigned seen = 0;
  for (;;) {
    unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
    for (int spin = 0; g == seen && spin < POOL_SPIN; spin++) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      g = atomic_load_explicit(&p->gen, memory_order_acquire);
    }
    if (g == seen) {
      pthread_mutex_lock(&p->mu);
      while (atomic_load(&p->gen) == seen && !p->stop) pthread_cond_wait(&p->wake, &p->mu);
      int stop = p->stop;
      g = atomic_load(&p->gen);
      pthread_mutex_unlock(&p->mu);
      if (stop && g == seen) return NULL;
    }
    seen = g;
    uint64_t v = atomic_load_explicit(&p->gate, memory_order_acquire);
    if ((uint32_t)(v >> 32) != g) continue; /* that job is over and a newer one started: look again */
    if (v & GATE_STATIC) {
      p->fn(p->arg, w->tid, p->n);
      if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
      }
      continue;
    }
    /* Dynamic job: enter unless the caller has closed it (then it no longer needs us). */
    int entered = 0;
    while (!(v & GATE_CLOSED) && (uint32_t)(v >> 32) == g && !entered)
      entered = atomic_compare_exchange_weak_explicit(&p->gate, &v, v + GATE_ONE, memory_order_acq_rel,
                                                      memory_order_acquire);
    if (!entered) continue;
    p->fn(p->arg, w->tid, p->n);
    atomic_fetch_add_explicit(&p->dyn_done, 1, memory_order_acq_rel);
    pthread_mutex_lock(&p->mu);
    pthread_cond_signal(&p->done);
    pthread_mutex_unlock(&p->mu);
  }
}

static void pool_describe(pool *p) {
  int len = snprintf(p->binding, sizeof p->binding, "%d thread%s:", p->n, p->n == 1 ? "" : "s");
  for (int t = 0; t < p->n && len < (int)sizeof p->binding; t++) {
    int core = -1;
    if (p->pu[t] >= 0 && p->have_topo) {
      hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(p->topo, (unsigned)p->pu[t]);
      hwloc_obj_t c = pu ? hwloc_get_ancestor_obj_by_type(p->topo, HWLOC_OBJ_CORE, pu) : NULL;
      if (c) core = (int)c->logical_index;
    }
    if (p->pu[t] < 0) len += snprintf(p->binding + len, sizeof p->binding - (size_t)len, " t%d->unbound", t);
    else if (core >= 0)
      len += snprintf(p->binding + len, sizeof p->binding - (size_t)len, " t%d->core%d/pu%d", t, core, p->pu[t]);
    else len += snprintf(p->binding + len, sizeof p->binding - (size_t)len, " t%d->pu%d", t, p->pu[t]);
  }
}

pool *pool_create(int nthreads, int pin) {
  pool *p = util_xcalloc(1, sizeof *p);
  p->pin = pin;
  if (hwloc_topology_init(&p->topo) == 0) {
    if (hwloc_topology_load(p->topo) == 0) p->have_topo = 1;
    else hwloc_topology_destroy(p->topo);
  }
  p->n = nthreads > 0 ? nthreads : (p->have_topo ? topo_cores(p->topo) : 1);
  p->pu = util_xcalloc((size_t)p->n, sizeof *p->pu);
  if (pin && p->have_topo) {
    p->caller_set = hwloc_bitmap_alloc();
    if (hwloc_get_cpubind(p->topo, p->caller_set, HWLOC_CPUBIND_THREAD) != 0) {
      hwloc_bitmap_free(p->caller_set);
      p->caller_set = NULL;
    }
  }
  pool_bind_self(p, 0);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->gen, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->gate, 0);
  atomic_init(&p->dyn_done, 0);
  p->workers = util_xcalloc((size_t)(p->n > 1 ? p->n - 1 : 1), sizeof *p->workers);
  for (int t = 1; t < p->n; t++) {
    pool_worker *w = &p->workers[t - 1];
    w->owner = p;
    w->tid = t;
    p->pu[t] = -1;
    int rc = pthread_create(&w->th, NULL, pool_main, w);
    if (rc != 0) UTIL_SYSFAIL("pthread_create: %s", strerror(rc));
  }
  /* Workers record their binding as they start; run an empty job so that it is known. */
  pool_run(p, NULL, NULL);
  pool_describe(p);
  return p;
}

void pool_destroy(pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int t = 1; t < p->n; t++) pthread_join(p->workers[t - 1].th, NULL);
  if (p->caller_set) {
    hwloc_set_cpubind(p->topo, p->caller_set, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(p->caller_set);
  }
  if (p->have_topo) hwloc_topology_destroy(p->topo);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p->workers);
  free(p->pu);
  free(p);
}

int pool_threads(const pool *p) { return p ? p->n : 1; }

static void pool_nop(void *arg, int tid, int n) {
  (void)arg;
  (void)tid;
  (void)n;
}

/* Starts the next generation with gate flags `flags` and wakes the workers. */
static void pool_publish(pool *p, uint64_t flags) {
  unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
  atomic_store_explicit(&p->gate, (uint64_t)g << 32 | flags, memory_order_release);
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&p->gen, g, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
}

void pool_run(pool *p, pool_fn fn, void *arg) {
  if (!fn) fn = pool_nop;
  if (!p || p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  pool_publish(p, GATE_STATIC);
  fn(arg, 0, p->n);
  for (int spin = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && spin < POOL_SPIN; spin++) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
}

void pool_run_dynamic(pool *p, pool_fn fn, void *arg) {
  if (!p || p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->dyn_done, 0, memory_order_relaxed);
  pool_publish(p, 0);
  fn(arg, 0, p->n);
  uint64_t v = atomic_fetch_or_explicit(&p->gate, GATE_CLOSED, memory_order_acq_rel);
  int entered = (int)((v & 0xffffffffu) >> 2);
  for (int spin = 0; atomic_load_explicit(&p->dyn_done, memory_order_acquire) < entered && spin < POOL_SPIN; spin++) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  if (atomic_load_explicit(&p->dyn_done, memory_order_acquire) < entered) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->dyn_done) < entered) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
}

int pool_thread_pu(const pool *p, int tid) {
  if (!p || tid < 0 || tid >= p->n) return -1;
  return p->pu[tid];
}

const char *pool_binding(const pool *p) {
  if (!p) return "1 thread: t0->unbound";
  return p->binding;
}
