/* sim/des.c — the event queue (see des.h): a radix heap of 16-byte entries.
 *
 * Simulated time never runs backwards (des_at asserts when >= now), which is what a radix heap
 * needs: entries sit in 65 buckets by the highest bit in which their time differs from `last`, the
 * time of the last minimum taken out (bucket 0: equal to it). A push is an append. When bucket 0
 * runs dry, the lowest non-empty bucket is scanned for its minimum, which becomes `last`, and its
 * entries are redistributed to lower buckets; an entry moves at most 64 times in its life and
 * usually once or twice. Everything is sequential memory, so the queue stays fast when it holds
 * hundreds of thousands of events (a binary heap's descent misses the cache at every level).
 *
 * Ties: an entry is {time, seq << 24 | slot}; equal times must fire in insertion order. Entries of
 * one time always share a bucket (their bucket depends on the time only), and a bucket keeps them in
 * seq order: a push appends the newest entry, and a redistribution moves a bucket's entries, in
 * order, into buckets that are empty at that moment (all lower than the lowest non-empty one).
 * Bucket 0 is then a FIFO.
 *
 * The callback and context live in a slot pool. A slot records the generation of the event
 * occupying it; a handle is (generation << 32 | slot), so a stale handle (its event fired or was
 * cancelled, and the slot reused) is recognised and ignored. Cancelled entries stay queued and are
 * dropped when they come out. */
#include "des.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DES_SLOT_BITS 24 /* at most 16M events pending at once */
#define DES_SLOT_MASK ((1u << DES_SLOT_BITS) - 1)
#define DES_BUCKETS 65   /* bucket 0: time == last; bucket b: highest differing bit is b - 1 */

typedef struct des_entry {
  sim_ps when;      /* firing time */
  uint64_t seqslot; /* insertion order << 24 | slot index: FIFO among equal times */
} des_entry;

typedef struct des_bucket {
  des_entry *v;  /* entries (bucket 0: the live ones are v[head..len)) */
  uint32_t len;  /* entries stored */
  uint32_t cap;  /* entries allocated */
  uint32_t head; /* bucket 0 only: next entry to fire */
} des_bucket;

typedef struct des_slot {
  des_fn fn;      /* callback; NULL while the slot is free */
  void *ctx;      /* callback argument */
  uint32_t gen;   /* generation of the event in this slot (never 0 for a live event) */
  uint32_t state; /* 0 free, 1 pending, 2 cancelled (still queued) */
  uint32_t next_free;
} des_slot;

struct des_sim {
  sim_ps now;                  /* current time */
  uint64_t seq;                /* next insertion sequence number */
  sim_ps last;                 /* the radix heap's reference time (<= every queued time) */
  uint64_t nonempty;           /* bit b-1 set when bucket b (1..64) holds entries */
  uint64_t queued;             /* entries queued, cancelled ones included */
  des_bucket b[DES_BUCKETS];   /* the buckets */
  des_slot *slots;             /* slot pool */
  uint32_t slots_cap;          /* allocated slots */
  uint32_t free_head;          /* first free slot, or UINT32_MAX */
  uint64_t pending;            /* live (not cancelled) events */
  uint64_t fired;              /* events fired */
};

des_sim *des_new(void) {
  des_sim *s = util_xcalloc(1, sizeof *s);
  s->free_head = UINT32_MAX;
  return s;
}

void des_free(des_sim *s) {
  if (!s) return;
  for (int i = 0; i < DES_BUCKETS; i++) free(s->b[i].v);
  free(s->slots);
  free(s);
}

sim_ps des_now(const des_sim *s) { return s->now; }
uint64_t des_pending(const des_sim *s) { return s->pending; }
uint64_t des_fired(const des_sim *s) { return s->fired; }

static inline int bucket_of(sim_ps last, sim_ps when) {
  return when == last ? 0 : 64 - __builtin_clzll(when ^ last);
}

static inline void bucket_push(des_sim *s, int bi, des_entry e) {
  des_bucket *b = &s->b[bi];
  if (b->len == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 64;
    b->v = util_xrealloc(b->v, (size_t)b->cap * sizeof *b->v);
  }
  b->v[b->len++] = e;
  if (bi) s->nonempty |= 1ull << (bi - 1);
}

static uint32_t slot_alloc(des_sim *s) {
  if (s->free_head == UINT32_MAX) {
    uint32_t old = s->slots_cap, cap = old ? old * 2 : 1024;
    s->slots = util_xrealloc(s->slots, (size_t)cap * sizeof *s->slots);
    for (uint32_t i = old; i < cap; i++) s->slots[i] = (des_slot){.next_free = i + 1 < cap ? i + 1 : UINT32_MAX};
    s->slots_cap = cap;
    s->free_head = old;
  }
  uint32_t i = s->free_head;
  s->free_head = s->slots[i].next_free;
  return i;
}

static void slot_release(des_sim *s, uint32_t i) {
  s->slots[i].fn = NULL;
  s->slots[i].state = 0;
  s->slots[i].next_free = s->free_head;
  s->free_head = i;
}

des_handle des_at(des_sim *s, sim_ps when, des_fn fn, void *ctx) {
  assert(when >= s->now && "an event cannot be scheduled in the past");
  assert(fn);
  uint32_t slot = slot_alloc(s);
  if (slot > DES_SLOT_MASK) UTIL_SYSFAIL("event queue: more than %u events pending", DES_SLOT_MASK + 1);
  des_slot *sl = &s->slots[slot];
  sl->fn = fn;
  sl->ctx = ctx;
  sl->gen = sl->gen + 1 ? sl->gen + 1 : 1;
  sl->state = 1;
  /* now >= last always (last only moves to the time of an event about to fire, and now follows),
   * so when >= last: the radix invariant holds. */
  bucket_push(s, bucket_of(s->last, when), (des_entry){when, (s->seq++ << DES_SLOT_BITS) | slot});
  s->queued++;
  s->pending++;
  return ((des_handle)sl->gen << 32) | slot;
}

des_handle des_after(des_sim *s, sim_ps delay, des_fn fn, void *ctx) {
  return des_at(s, s->now + delay, fn, ctx);
}

int des_cancel(des_sim *s, des_handle h) {
  uint32_t slot = (uint32_t)h, gen = (uint32_t)(h >> 32);
  if (h == 0 || slot >= s->slots_cap) return 0;
  des_slot *sl = &s->slots[slot];
  if (sl->state != 1 || sl->gen != gen) return 0;
  sl->state = 2;
  s->pending--;
  return 1;
}

/* Makes bucket 0 hold the earliest entries (refilling it from the lowest non-empty bucket);
 * returns 0 when the queue is empty. Moves `last` forward to the earliest queued time. */
static int refill(des_sim *s) {
  des_bucket *b0 = &s->b[0];
  if (b0->head < b0->len) return 1;
  b0->head = b0->len = 0;
  if (!s->nonempty) return 0;
  int bi = __builtin_ctzll(s->nonempty) + 1;
  des_bucket *b = &s->b[bi];
  sim_ps min = b->v[0].when;
  for (uint32_t i = 1; i < b->len; i++)
    if (b->v[i].when < min) min = b->v[i].when;
  s->last = min;
  uint32_t n = b->len;
  b->len = 0;
  s->nonempty &= ~(1ull << (bi - 1));
  for (uint32_t i = 0; i < n; i++) {
    des_entry e = b->v[i];
    int nb = bucket_of(min, e.when);
    assert(nb < bi);
    bucket_push(s, nb, e);
  }
  return 1;
}

/* The earliest queued entry (cancelled ones dropped), or NULL. */
static des_entry *peek_live(des_sim *s) {
  while (refill(s)) {
    des_bucket *b0 = &s->b[0];
    des_entry *e = &b0->v[b0->head];
    uint32_t slot = (uint32_t)(e->seqslot & DES_SLOT_MASK);
    if (s->slots[slot].state != 2) return e;
    b0->head++;
    s->queued--;
    slot_release(s, slot);
  }
  return NULL;
}

int des_step(des_sim *s) {
  des_entry *top = peek_live(s);
  if (!top) return 0;
  des_entry e = *top;
  s->b[0].head++;
  s->queued--;
  uint32_t slot = (uint32_t)(e.seqslot & DES_SLOT_MASK);
  des_fn fn = s->slots[slot].fn;
  void *ctx = s->slots[slot].ctx;
  slot_release(s, slot);
  assert(e.when >= s->now);
  s->now = e.when;
  s->pending--;
  s->fired++;
  fn(s, ctx);
  return 1;
}

sim_ps des_run(des_sim *s) {
  while (des_step(s)) {
  }
  return s->now;
}

void des_run_until(des_sim *s, sim_ps until) {
  for (;;) {
    des_entry *top = peek_live(s);
    if (!top || top->when > until) break;
    des_step(s);
  }
  /* A peek may have moved `last` to the next event's time, beyond `until`; new events may then
   * be scheduled between now and last, so `last` must come back to now. Rebucketing bucket 0's
   * entries (all at the old `last`) keeps every bucket relative to the new reference. */
  if (until > s->now) s->now = until;
  if (s->last > s->now) {
    des_bucket *b0 = &s->b[0];
    uint32_t head = b0->head, len = b0->len;
    des_entry *moved = NULL;
    if (len > head) {
      moved = util_xmalloc((size_t)(len - head) * sizeof *moved);
      memcpy(moved, b0->v + head, (size_t)(len - head) * sizeof *moved);
    }
    b0->head = b0->len = 0;
    s->last = s->now;
    /* Entries in bucket b >= 1 differ from the old reference first at bit b-1; relative to the
     * new, smaller one they may belong elsewhere: move them all (each bucket's entries in order,
     * so entries of one time stay in seq order). */
    for (int bi = 1; bi < DES_BUCKETS; bi++) {
      des_bucket *b = &s->b[bi];
      if (!b->len) continue;
      uint32_t n = b->len;
      des_entry *tmp = util_xmalloc((size_t)n * sizeof *tmp);
      memcpy(tmp, b->v, (size_t)n * sizeof *tmp);
      b->len = 0;
      s->nonempty &= ~(1ull << (bi - 1));
      for (uint32_t i = 0; i < n; i++) bucket_push(s, bucket_of(s->last, tmp[i].when), tmp[i]);
      free(tmp);
    }
    for (uint32_t i = 0; moved && i < len - head; i++) bucket_push(s, bucket_of(s->last, moved[i].when), moved[i]);
    free(moved);
  }
}
