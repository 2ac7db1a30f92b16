/* sim/des.c — the event queue (see des.h): a 4-ary min-heap of 16-byte entries.
 *
 * An entry is {time, seq << 24 | slot}: comparing the second word compares insertion order (the
 * slot bits never decide, as seq is unique), so the FIFO tie-break costs nothing extra. Four
 * children share one 64-byte cache line (the array is offset by 3 entries and line-aligned), which
 * halves the cache misses of a binary heap once the queue outgrows the caches. The callback and
 * context live in a slot pool. A slot records the generation of the event occupying it; a handle
 * is (generation << 32 | slot), so a stale handle (its event fired or was cancelled, and the slot
 * reused) is recognised and ignored. Cancelled entries stay in the heap and are dropped when
 * they reach the top. */
#include "des.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DES_SLOT_BITS 24 /* at most 16M events pending at once */
#define DES_SLOT_MASK ((1u << DES_SLOT_BITS) - 1)
#define DES_PAD 3        /* heap[DES_PAD] is the root; children of i are 4i+1..4i+4 */

typedef struct des_entry {
  sim_ps when;      /* firing time */
  uint64_t seqslot; /* insertion order << 24 | slot index: FIFO among equal times */
} des_entry;

typedef struct des_slot {
  des_fn fn;      /* callback; NULL while the slot is free */
  void *ctx;      /* callback argument */
  uint32_t gen;   /* generation of the event in this slot (never 0 for a live event) */
  uint32_t state; /* 0 free, 1 pending, 2 cancelled (still in the heap) */
  uint32_t next_free;
} des_slot;

struct des_sim {
  sim_ps now;           /* current time */
  uint64_t seq;         /* next insertion sequence number */
  des_entry *mem;       /* allocation behind heap (64-byte aligned) */
  des_entry *heap;      /* 4-ary min-heap on (when, seqslot), logical index 0 at mem[DES_PAD] */
  uint32_t heap_len;    /* entries in the heap, cancelled ones included */
  uint32_t heap_cap;    /* allocated entries */
  des_slot *slots;      /* slot pool */
  uint32_t slots_cap;   /* allocated slots */
  uint32_t free_head;   /* first free slot, or UINT32_MAX */
  uint64_t pending;     /* live (not cancelled) events */
  uint64_t fired;       /* events fired */
};

des_sim *des_new(void) {
  des_sim *s = util_xcalloc(1, sizeof *s);
  s->free_head = UINT32_MAX;
  return s;
}

void des_free(des_sim *s) {
  if (!s) return;
  free(s->mem);
  free(s->slots);
  free(s);
}

sim_ps des_now(const des_sim *s) { return s->now; }
uint64_t des_pending(const des_sim *s) { return s->pending; }
uint64_t des_fired(const des_sim *s) { return s->fired; }

static inline int entry_less(const des_entry *a, const des_entry *b) {
  return a->when < b->when || (a->when == b->when && a->seqslot < b->seqslot);
}

static void heap_grow(des_sim *s) {
  uint32_t cap = s->heap_cap ? s->heap_cap * 2 : 1024;
  des_entry *mem = NULL;
  if (posix_memalign((void **)&mem, 64, ((size_t)cap + 4) * sizeof *mem) != 0)
    UTIL_SYSFAIL("posix_memalign: out of memory for %u events", cap);
  if (s->heap_len) memcpy(mem + DES_PAD, s->heap, (size_t)s->heap_len * sizeof *mem);
  free(s->mem);
  s->mem = mem;
  s->heap = mem + DES_PAD;
  s->heap_cap = cap;
}

static uint32_t slot_alloc(des_sim *s) {
  if (s->free_head == UINT32_MAX) {
    uint32_t old = s->slots_cap, cap = old ? old * 2 : 1024;
    s->slots = util_xrealloc(s->slots, (size_t)cap * sizeof *s->slots);
    for (uint32_t i = old; i < cap; i++) {
      s->slots[i] = (des_slot){.next_free = i + 1 < cap ? i + 1 : UINT32_MAX};
    }
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
  if (s->heap_len == s->heap_cap) heap_grow(s);
  des_entry e = {when, (s->seq++ << DES_SLOT_BITS) | slot};
  uint32_t i = s->heap_len++;
  while (i > 0) { /* sift up */
    uint32_t p = (i - 1) / 4;
    if (!entry_less(&e, &s->heap[p])) break;
    s->heap[i] = s->heap[p];
    i = p;
  }
  s->heap[i] = e;
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

/* Removes the top entry of the heap. */
static des_entry heap_pop(des_sim *s) {
  des_entry top = s->heap[0];
  des_entry last = s->heap[--s->heap_len];
  uint32_t n = s->heap_len, i = 0;
  for (;;) { /* sift down */
    uint32_t first = 4 * i + 1;
    if (first >= n) break;
    uint32_t c = first, end = first + 4 < n ? first + 4 : n;
    for (uint32_t j = first + 1; j < end; j++)
      if (entry_less(&s->heap[j], &s->heap[c])) c = j;
    if (!entry_less(&s->heap[c], &last)) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (n > 0) s->heap[i] = last;
  return top;
}

int des_step(des_sim *s) {
  while (s->heap_len > 0) {
    des_entry e = heap_pop(s);
    uint32_t slot = (uint32_t)(e.seqslot & DES_SLOT_MASK);
    des_slot *sl = &s->slots[slot];
    if (sl->state == 2) { /* cancelled */
      slot_release(s, slot);
      continue;
    }
    des_fn fn = sl->fn;
    void *ctx = sl->ctx;
    slot_release(s, slot);
    assert(e.when >= s->now);
    s->now = e.when;
    s->pending--;
    s->fired++;
    fn(s, ctx);
    return 1;
  }
  return 0;
}

sim_ps des_run(des_sim *s) {
  while (des_step(s)) {
  }
  return s->now;
}

void des_run_until(des_sim *s, sim_ps until) {
  while (s->heap_len > 0) {
    /* Drop cancelled entries at the top so the time check sees a live event. */
    des_entry *top = &s->heap[0];
    uint32_t slot = (uint32_t)(top->seqslot & DES_SLOT_MASK);
    if (s->slots[slot].state == 2) {
      heap_pop(s);
      slot_release(s, slot);
      continue;
    }
    if (top->when > until) break;
    des_step(s);
  }
  if (until > s->now) s->now = until;
}
