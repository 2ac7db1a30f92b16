/* sim/des.c — binary-heap event queue (see des.h).
 *
 * The heap holds small entries {time, seq, slot}; the callback and context live in a slot pool
 * so heap moves copy 24 bytes. A slot records the generation of the event occupying it; a handle
 * is (generation << 32 | slot), so a stale handle (its event fired or was cancelled, and the slot
 * reused) is recognised and ignored. Cancelled entries stay in the heap and are dropped when
 * they reach the top. */
#include "des.h"

#include <assert.h>
#include <stdlib.h>

#include "util.h"

typedef struct des_entry {
  sim_ps when;   /* firing time */
  uint64_t seq;  /* insertion order: FIFO among equal times */
  uint32_t slot; /* index into the slot pool */
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
  des_entry *heap;      /* binary min-heap on (when, seq) */
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
  free(s->heap);
  free(s->slots);
  free(s);
}

sim_ps des_now(const des_sim *s) { return s->now; }
uint64_t des_pending(const des_sim *s) { return s->pending; }
uint64_t des_fired(const des_sim *s) { return s->fired; }

static inline int entry_less(const des_entry *a, const des_entry *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
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
  des_slot *sl = &s->slots[slot];
  sl->fn = fn;
  sl->ctx = ctx;
  sl->gen = sl->gen + 1 ? sl->gen + 1 : 1;
  sl->state = 1;
  if (s->heap_len == s->heap_cap) {
    s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;
    s->heap = util_xrealloc(s->heap, (size_t)s->heap_cap * sizeof *s->heap);
  }
  des_entry e = {when, s->seq++, slot};
  uint32_t i = s->heap_len++;
  while (i > 0) { /* sift up */
    uint32_t p = (i - 1) / 2;
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
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && entry_less(&s->heap[c + 1], &s->heap[c])) c++;
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
    des_slot *sl = &s->slots[e.slot];
    if (sl->state == 2) { /* cancelled */
      slot_release(s, e.slot);
      continue;
    }
    des_fn fn = sl->fn;
    void *ctx = sl->ctx;
    slot_release(s, e.slot);
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
    if (s->slots[top->slot].state == 2) {
      des_entry e = heap_pop(s);
      slot_release(s, e.slot);
      continue;
    }
    if (top->when > until) break;
    des_step(s);
  }
  if (until > s->now) s->now = until;
}
