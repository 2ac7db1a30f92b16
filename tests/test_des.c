/* tests/test_des.c — the event core: time order, FIFO among equal times, cancel (including
 * stale handles), run_until, events scheduled from callbacks, and a million events. */
#include <stdint.h>
#include <stdlib.h>

#include "des.h"
#include "test.h"

typedef struct rec {
  sim_ps at[64];
  int id[64];
  int n;
} rec;

typedef struct ev {
  rec *r;
  int id;
} ev;

static void record(des_sim *s, void *p) {
  ev *e = p;
  e->r->at[e->r->n] = des_now(s);
  e->r->id[e->r->n++] = e->id;
}

static void test_time_order(void) {
  des_sim *s = des_new();
  rec r = {0};
  ev e[5];
  sim_ps t[5] = {50, 10, 40, 20, 30};
  for (int i = 0; i < 5; i++) {
    e[i] = (ev){&r, i};
    des_at(s, t[i], record, &e[i]);
  }
  T_EQ_INT(des_pending(s), 5);
  T_EQ_INT(des_run(s), 50);
  T_EQ_INT(r.n, 5);
  for (int i = 1; i < r.n; i++) T_CHECK(r.at[i - 1] <= r.at[i]);
  T_EQ_INT(r.id[0], 1);
  T_EQ_INT(r.id[4], 0);
  T_EQ_INT(des_fired(s), 5);
  des_free(s);
}

static void test_fifo_ties(void) {
  des_sim *s = des_new();
  rec r = {0};
  ev e[40];
  for (int i = 0; i < 40; i++) {
    e[i] = (ev){&r, i};
    des_at(s, (sim_ps)(i % 2) * 100, record, &e[i]); /* two times, 20 events each */
  }
  des_run(s);
  T_EQ_INT(r.n, 40);
  int k = 0;
  for (int i = 0; i < 40; i += 2) T_EQ_INT(r.id[k++], i); /* time 0 first, in insertion order */
  for (int i = 1; i < 40; i += 2) T_EQ_INT(r.id[k++], i);
  des_free(s);
}

static void test_cancel(void) {
  des_sim *s = des_new();
  rec r = {0};
  ev e[4];
  des_handle h[4];
  for (int i = 0; i < 4; i++) {
    e[i] = (ev){&r, i};
    h[i] = des_at(s, (sim_ps)(10 * (i + 1)), record, &e[i]);
  }
  T_EQ_INT(des_cancel(s, h[1]), 1);
  T_EQ_INT(des_cancel(s, h[1]), 0); /* already cancelled */
  T_EQ_INT(des_pending(s), 3);
  des_run(s);
  T_EQ_INT(r.n, 3);
  T_EQ_INT(r.id[0], 0);
  T_EQ_INT(r.id[1], 2);
  T_EQ_INT(des_cancel(s, h[0]), 0); /* already fired */
  T_EQ_INT(des_cancel(s, 0), 0);
  /* A stale handle must not cancel the event that reused its slot. */
  ev again = {&r, 9};
  des_handle h2 = des_after(s, 5, record, &again);
  T_CHECK(h2 != h[0] && h2 != h[1]);
  T_EQ_INT(des_cancel(s, h[1]), 0);
  des_run(s);
  T_EQ_INT(r.n, 4);
  T_EQ_INT(r.id[3], 9);
  des_free(s);
}

typedef struct chain {
  int left;
  sim_ps step;
  int fired;
} chain;

static void chain_fn(des_sim *s, void *p) {
  chain *c = p;
  c->fired++;
  if (--c->left > 0) des_after(s, c->step, chain_fn, c);
}

static void test_schedule_from_callback_and_until(void) {
  des_sim *s = des_new();
  chain c = {10, 7, 0};
  des_at(s, 0, chain_fn, &c);
  des_run_until(s, 20); /* fires at 0, 7, 14 */
  T_EQ_INT(c.fired, 3);
  T_EQ_INT(des_now(s), 20);
  des_run(s);
  T_EQ_INT(c.fired, 10);
  T_EQ_INT(des_now(s), 63);
  des_free(s);
}

static void test_units(void) {
  T_EQ_INT(ps_from_us(1.5), 1500000);
  T_EQ_INT(ps_from_ns(2), 2000);
  T_NEAR(ps_to_us(ps_from_ms(3)), 3000, 1e-9);
  /* 1 MB at 50 GB/s = 20 us; rounding up never loses a picosecond */
  T_EQ_INT(ps_for_bytes(1000000, 50), ps_from_us(20));
  T_EQ_INT(ps_for_bytes(1, 3), 334);
}

static uint64_t counter;
static void count_fn(des_sim *s, void *p) {
  (void)s;
  (void)p;
  counter++;
}

static void test_million_events(void) {
  des_sim *s = des_new();
  uint64_t x = 12345;
  counter = 0;
  sim_ps last = 0;
  for (int i = 0; i < 1000000; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    des_at(s, (x >> 20) % 1000000000ull, count_fn, NULL);
  }
  T_EQ_INT(des_pending(s), 1000000);
  int ordered = 1;
  while (des_step(s)) {
    if (des_now(s) < last) ordered = 0;
    last = des_now(s);
  }
  T_CHECK(ordered);
  T_EQ_INT(counter, 1000000);
  T_EQ_INT(des_pending(s), 0);
  des_free(s);
}

/* Random pushes (from callbacks too, many at equal times), cancels and run_until stops, checked
 * against a plain reference: the next event is always the pending one with the smallest
 * (time, insertion order). */
typedef struct ref_ev {
  sim_ps when;
  uint64_t seq;
  int live;      /* pending and not cancelled */
  des_handle h;
} ref_ev;

static ref_ev rev[6000];
static int nrev, fired_ok, fired_bad;
static uint64_t rseq, rrng = 99;
static des_sim *rsim;

static uint64_t rnext(void) {
  rrng ^= rrng << 13;
  rrng ^= rrng >> 7;
  rrng ^= rrng << 17;
  return rrng;
}

static void ref_fire(des_sim *s, void *p);

static void ref_push(sim_ps when) {
  if (nrev >= 6000) return;
  ref_ev *e = &rev[nrev];
  e->when = when;
  e->seq = rseq++;
  e->live = 1;
  e->h = des_at(rsim, when, ref_fire, (void *)(intptr_t)nrev);
  nrev++;
}

static void ref_fire(des_sim *s, void *p) {
  int id = (int)(intptr_t)p;
  int best = -1;
  for (int i = 0; i < nrev; i++)
    if (rev[i].live && (best < 0 || rev[i].when < rev[best].when || (rev[i].when == rev[best].when && rev[i].seq < rev[best].seq)))
      best = i;
  if (best == id && rev[id].when == des_now(s)) fired_ok++;
  else fired_bad++;
  rev[id].live = 0;
  /* schedule 0-2 more, often at the same time or a coarse grid, sometimes far ahead */
  int k = (int)(rnext() % 3);
  for (int j = 0; j < k; j++) {
    uint64_t r = rnext();
    sim_ps d = r % 4 == 0 ? 0 : r % 4 == 1 ? (r >> 8) % 16 * 1000 : (r >> 8) % 1000000007ull;
    ref_push(des_now(s) + d);
  }
  /* and cancel a random pending one now and then */
  if (rnext() % 5 == 0 && nrev > 0) {
    int c = (int)(rnext() % (uint64_t)nrev);
    if (rev[c].live) {
      T_EQ_INT(des_cancel(s, rev[c].h), 1);
      rev[c].live = 0;
    }
  }
}

static void test_random_against_reference(void) {
  rsim = des_new();
  nrev = fired_ok = fired_bad = 0;
  for (int i = 0; i < 300; i++) ref_push(rnext() % 50 * 1000);
  sim_ps until = 0;
  while (des_pending(rsim) > 0) {
    until += 1 + rnext() % 3000000; /* stop and restart often: run_until must not lose order */
    des_run_until(rsim, until);
    T_CHECK(des_now(rsim) >= until || des_pending(rsim) == 0);
    if (rnext() % 2) ref_push(des_now(rsim) + rnext() % 5000); /* a push right after a stop */
  }
  T_CHECKF(fired_bad == 0, "%d events fired out of order (%d in order)", fired_bad, fired_ok);
  T_CHECK(fired_ok > 1000);
  for (int i = 0; i < nrev; i++) T_CHECK(!rev[i].live);
  des_free(rsim);
}

int main(void) {
  T_RUN(test_time_order);
  T_RUN(test_fifo_ties);
  T_RUN(test_cancel);
  T_RUN(test_schedule_from_callback_and_until);
  T_RUN(test_units);
  T_RUN(test_million_events);
  T_RUN(test_random_against_reference);
  return t_done();
}
