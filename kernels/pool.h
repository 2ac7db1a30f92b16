/* kernels/pool.h — a small fork-join thread pool for the CPU kernels, pinned with hwloc.
 *
 * A pool owns N worker slots; slot 0 is the calling thread, slots 1..N-1 are persistent pthreads
 * that sleep between jobs. pool_run() hands one function to every slot and returns when all have
 * finished, so a kernel splits its work by (tid, nthreads) and needs no locking of its own.
 * By default there is one thread per core and thread i is bound to core i (hwloc's logical core
 * order; the first PU of the core). The binding actually obtained is recorded per thread so that
 * the timing harness can print it in its metadata; where binding is impossible (no hwloc
 * permission, more threads than cores) the thread runs unbound and the record says so.
 *
 * A NULL pool is valid wherever a pool is taken: the work runs on the calling thread alone. */
#ifndef MOESIM_POOL_H
#define MOESIM_POOL_H

#include <stddef.h>

typedef struct pool pool;

/* Work handed to every thread: tid in [0, nthreads). */
typedef void (*pool_fn)(void *arg, int tid, int nthreads);

/* Creates a pool of `nthreads` threads (0: one per core of this machine, as hwloc counts cores;
 * the calling thread is thread 0). With `pin` non-zero, thread i is bound to core i mod cores
 * (the caller's own binding is changed for the pool's lifetime and restored by pool_destroy).
 * Dies with UTIL_SYSFAIL when threads cannot be created. */
pool *pool_create(int nthreads, int pin);

/* Joins the workers, restores the caller's binding and frees the pool. NULL is a no-op. */
void pool_destroy(pool *p);

/* Number of threads (1 for a NULL pool). */
int pool_threads(const pool *p);

/* Runs fn(arg, tid, n) on every thread of the pool and returns when all calls have returned.
 * Not reentrant: fn must not call pool_run on the same pool. */
void pool_run(pool *p, pool_fn fn, void *arg);

/* Like pool_run, for work that is shared out dynamically: fn(arg, tid, n) runs on the caller and
 * on each worker that starts before the caller's own call has returned, so fn must take its work
 * from a shared counter in arg (never split it by tid: some threads may not be called at all).
 * Returns when every call that started has returned. On a machine shared with other programs a
 * descheduled worker then delays nothing: the threads that run do its part. */
void pool_run_dynamic(pool *p, pool_fn fn, void *arg);

/* OS index of the PU thread `tid` is bound to, or -1 when it runs unbound. */
int pool_thread_pu(const pool *p, int tid);

/* One line describing the binding, e.g. "2 threads: t0->core0/pu0 t1->core1/pu1" or
 * "1 thread: t0->unbound". Static storage inside the pool; valid until pool_destroy. */
const char *pool_binding(const pool *p);

/* Number of cores hwloc sees on this machine (at least 1). */
int pool_cores(void);

#endif
