/* sim/des.h — the discrete-event core.
 *
 * Time is an integer count of picoseconds (sim_ps): no rounding drift, and a run is
 * byte-for-byte reproducible. Events live in a binary heap ordered by (time, insertion
 * sequence), so events at the same time fire in the order they were scheduled (FIFO) — the
 * deterministic tie-break. An event is a callback with a context pointer; scheduling returns a
 * handle that can cancel it before it fires. Cancellation is lazy (the heap entry is skipped when
 * it surfaces), which keeps push and pop at O(log n) with small constants. */
#ifndef MOESIM_DES_H
#define MOESIM_DES_H

#include <stdint.h>

typedef uint64_t sim_ps; /* simulated time in picoseconds */

#define SIM_PS_MAX UINT64_MAX

static inline sim_ps ps_from_ns(double ns) { return (sim_ps)(ns * 1e3 + 0.5); }
static inline sim_ps ps_from_us(double us) { return (sim_ps)(us * 1e6 + 0.5); }
static inline sim_ps ps_from_ms(double ms) { return (sim_ps)(ms * 1e9 + 0.5); }
static inline sim_ps ps_from_s(double s) { return (sim_ps)(s * 1e12 + 0.5); }
static inline double ps_to_us(sim_ps t) { return (double)t * 1e-6; }
static inline double ps_to_ms(sim_ps t) { return (double)t * 1e-9; }
static inline double ps_to_s(sim_ps t) { return (double)t * 1e-12; }

/* Time to move `bytes` at `gbytes_per_s` (GB/s, 1e9 bytes per second), rounded up to a picosecond. */
static inline sim_ps ps_for_bytes(uint64_t bytes, double gbytes_per_s) {
  double ps = (double)bytes * 1e3 / gbytes_per_s;
  sim_ps t = (sim_ps)ps;
  return (double)t < ps ? t + 1 : t;
}

typedef struct des_sim des_sim;
typedef void (*des_fn)(des_sim *sim, void *ctx);
typedef uint64_t des_handle; /* 0 is never a valid handle */

des_sim *des_new(void);
void des_free(des_sim *sim);

/* Current simulated time. */
sim_ps des_now(const des_sim *sim);

/* Schedules fn(sim, ctx) at absolute time `when` (asserted >= now). */
des_handle des_at(des_sim *sim, sim_ps when, des_fn fn, void *ctx);
/* Schedules fn(sim, ctx) `delay` picoseconds from now. */
des_handle des_after(des_sim *sim, sim_ps delay, des_fn fn, void *ctx);

/* Cancels a pending event. Returns 1 if it was pending, 0 if it already fired, was already
 * cancelled, or the handle is unknown. */
int des_cancel(des_sim *sim, des_handle h);

/* Fires the next event; returns 0 when none is pending. */
int des_step(des_sim *sim);
/* Runs until no event is pending. Returns the time of the last event. */
sim_ps des_run(des_sim *sim);
/* Runs events with time <= `until`, then sets now = max(now, until) if events remain. */
void des_run_until(des_sim *sim, sim_ps until);

/* Pending (non-cancelled) events, and events fired so far. */
uint64_t des_pending(const des_sim *sim);
uint64_t des_fired(const des_sim *sim);

#endif
