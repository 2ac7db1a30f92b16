/* kernels/gemm.c — the portable part of the fast GEMMs: weight packing, the loop nest written once
 * for every ISA (BLIS-style), threading, epilogues and the variant registry.
 *
 * A call becomes a list of jobs (one per expert for grouped GEMMs), each an M x N product.
 * Phase 1 packs every job's activations into MR-row micro-panels of BF16 pairs (FP8 decoded
 * exactly), in parallel. Phase 2 cuts the output columns of every job into panels of NV strips,
 * groups (job, row block, run of panels) into units, and the threads take units from a shared
 * counter (pool_run_dynamic), so a thread that another program delays holds nobody up.
 * Within a unit, for each panel and K block the micro-kernel runs over the unit's rows (the KC x NR
 * weight block stays in L1 while the activation micro-panels stream from L2/L3; when a panel's
 * weights over the whole K fit in L2, or there is a single row tile, K is not blocked at all),
 * accumulating into an FP32 tile buffer; FP8 blocks are decoded to BF16 just before use (or in
 * registers, for short M) and their partial sums scaled every promo_k. The epilogue turns the tile
 * buffer into C (FP32, BF16, or SwiGLU of the gate and up halves). Weights that stream from memory
 * are prefetched ahead (by the first row tile, or a share per tile for the next K block), and the
 * large buffers sit on transparent huge pages: both were worth 5-15% here.
 *
 * The #ifndef constants below are the tuning knobs (overridable with -D for experiments); the
 * values are the ones measured best on the Zen 5 machine this was written on. */
#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "gemm.h"
#include "gemm_internal.h"
#include "util.h"

#ifndef GEMM_KC_BYTES
#define GEMM_KC_BYTES (32 << 10) /* BF16 weights per K block and panel, kept in L1 (48 KiB) while the row tiles pass:
                                    256 K values for 64 columns, 512 for 32 */
#endif
#ifndef GEMM_BPF_TILES
#define GEMM_BPF_TILES 4 /* row tiles per K block from which the next block's weights are prefetched */
#endif
#ifndef GEMM_UNITS_PER_THREAD
#define GEMM_UNITS_PER_THREAD 256 /* phase-2 units per thread, at most: one panel per unit in practice (a
                                         thread that finishes early then waits for at most one panel) */
#endif
#ifndef GEMM_USE_PF
#define GEMM_USE_PF 1 /* the first row tile of a cold weight block prefetches ahead */
#endif
#ifndef GEMM_FULLK_BYTES
#define GEMM_FULLK_BYTES (384 << 10) /* weights of a panel over the whole K that L2 keeps for all row tiles */
#endif
#ifndef GEMM_DIRECT_A
#define GEMM_DIRECT_A 1 /* let variants that can read BF16 activations in place do so */
#endif
#ifndef GEMM_FUSE_OUT
#define GEMM_FUSE_OUT 1 /* BF16: the last K block's micro-kernel writes C (no separate epilogue pass) */
#endif
#ifndef GEMM_MC
#define GEMM_MC 336 /* rows per activation block, at most (a multiple of every MR: 14, 8, 6, 4) */
#endif

static int is_fp8(kn_dtype t) { return t == KN_FP8_E4M3 || t == KN_FP8_E5M2; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void *aligned_alloc64(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) UTIL_SYSFAIL("posix_memalign(%zu): out of memory", bytes);
  return p;
}

/* A large buffer (packed weights, packed activations): 2 MiB aligned and, where the kernel offers
 * transparent huge pages on request, backed by them, so that streaming tens of megabytes does not
 * walk a page table every 4 KiB. Small buffers are plain aligned allocations. */
static void *big_alloc(size_t bytes) {
  if (bytes < (4u << 20)) return aligned_alloc64(bytes);
  void *p = NULL;
  size_t huge = 2u << 20;
  if (posix_memalign(&p, huge, (bytes + huge - 1) / huge * huge) != 0) UTIL_SYSFAIL("posix_memalign(%zu): out of memory", bytes);
#ifdef MADV_HUGEPAGE
  madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE); /* advisory: failure changes nothing */
#endif
  return p;
}

/* A few large buffers kept between calls: a fresh multi-megabyte allocation per call would pay a
 * page fault per 4 KiB on first touch (milliseconds for the packed activations of a big GEMM). */
#define WS_CACHE 4
static struct {
  void *p;       /* buffer, or NULL */
  size_t bytes;  /* its size */
} ws_cache[WS_CACHE];
static pthread_mutex_t ws_mu = PTHREAD_MUTEX_INITIALIZER;

/* A 64-byte aligned buffer of at least `bytes`, from the cache when one is big enough. */
static void *ws_get(size_t bytes, size_t *got) {
  pthread_mutex_lock(&ws_mu);
  int best = -1;
  for (int i = 0; i < WS_CACHE; i++)
    if (ws_cache[i].p && ws_cache[i].bytes >= bytes && (best < 0 || ws_cache[i].bytes < ws_cache[best].bytes)) best = i;
  void *p = NULL;
  if (best >= 0) {
    p = ws_cache[best].p;
    *got = ws_cache[best].bytes;
    ws_cache[best].p = NULL;
  }
  pthread_mutex_unlock(&ws_mu);
  if (!p) {
    p = big_alloc(bytes);
    *got = bytes;
  }
  return p;
}

/* Returns a buffer from ws_get to the cache (replacing the smallest cached one if full). */
static void ws_put(void *p, size_t bytes) {
  pthread_mutex_lock(&ws_mu);
  int slot = -1;
  for (int i = 0; i < WS_CACHE && slot < 0; i++)
    if (!ws_cache[i].p) slot = i;
  if (slot < 0) {
    slot = 0;
    for (int i = 1; i < WS_CACHE; i++)
      if (ws_cache[i].bytes < ws_cache[slot].bytes) slot = i;
    if (ws_cache[slot].bytes >= bytes) {
      pthread_mutex_unlock(&ws_mu);
      free(p);
      return;
    }
    free(ws_cache[slot].p);
  }
  ws_cache[slot].p = p;
  ws_cache[slot].bytes = bytes;
  pthread_mutex_unlock(&ws_mu);
}

/* ---------------------------------------------------------------- FP8 tables and packing */

static gemm_fp8_lut lut_e4m3 __attribute__((aligned(64))), lut_e5m2 __attribute__((aligned(64)));
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_fill(gemm_fp8_lut *t, kn_dtype fmt) {
  for (int x = 0; x < 256; x++) t->bf16[x] = f32_to_bf16(fp8_to_f32((fp8_t)x, fmt)); /* exact */
  for (int x = 0; x < 128; x++) {
    t->hi[x] = (uint8_t)(t->bf16[x] >> 8);
    t->lo[x] = (uint8_t)(t->bf16[x] & 0xff);
  }
}

static void lut_init(void) {
  lut_fill(&lut_e4m3, KN_FP8_E4M3);
  lut_fill(&lut_e5m2, KN_FP8_E5M2);
}

const gemm_fp8_lut *gemm_fp8_lut_of(kn_dtype fmt) {
  pthread_once(&lut_once, lut_init);
  return fmt == KN_FP8_E5M2 ? &lut_e5m2 : &lut_e4m3;
}

gemm_packed *gemm_pack(const gemm_mat *w, int64_t n, int64_t k) {
  if (n < 1 || k < 1) {
    fprintf(stderr, "gemm: pack: bad shape n=%lld k=%lld\n", (long long)n, (long long)k);
    return NULL;
  }
  if (gemm_check_mat("weights", w, n, k, cdiv(n, GEMM_BLOCK))) return NULL;
  gemm_packed *p = util_xcalloc(1, sizeof *p);
  p->dtype = w->dtype;
  p->n = n;
  p->k = k;
  p->strips = cdiv(cdiv(n, GEMM_STRIP), GEMM_GROUP) * GEMM_GROUP;
  p->kp = cdiv(k, 4) * 2;
  p->kblocks = cdiv(k, GEMM_BLOCK);
  size_t elems = (size_t)(p->strips * p->kp * 32);
  if (w->dtype == KN_BF16) {
    bf16_t *d = big_alloc(elems * 2);
    const bf16_t *src = w->data;
    for (int64_t s = 0; s < p->strips; s++)
      for (int64_t pr = 0; pr < p->kp; pr++)
        for (int j = 0; j < 16; j++)
          for (int h = 0; h < 2; h++) {
            int64_t row = 16 * s + j, col = 2 * pr + h;
            d[((s / GEMM_GROUP) * p->kp + pr) * GEMM_PS + (s % GEMM_GROUP) * 32 + 2 * j + h] =
                row < n && col < k ? src[row * w->ld + col] : 0;
          }
    p->data = d;
    p->bytes = elems * 2;
  } else {
    fp8_t *d = big_alloc(elems);
    const fp8_t *src = w->data;
    for (int64_t s = 0; s < p->strips; s++)
      for (int64_t q = 0; q < p->kp / 2; q++)
        for (int lane = 0; lane < 4; lane++)
          for (int h = 0; h < 2; h++)
            for (int i = 0; i < 8; i++) {
              int e = 8 * lane + i; /* word index within the pair's 32 words */
              int64_t row = 16 * s + e / 2, col = 4 * q + 2 * h + e % 2;
              d[((s / GEMM_GROUP) * (p->kp / 2) + q) * 64 * GEMM_GROUP + (s % GEMM_GROUP) * 64 + 16 * lane + 8 * h + i] =
                  row < n && col < k ? src[row * w->ld + col] : 0;
            }
    p->data = d;
    p->scale = util_xmalloc((size_t)(p->strips * p->kblocks) * sizeof(float));
    for (int64_t s = 0; s < p->strips; s++)
      for (int64_t kb = 0; kb < p->kblocks; kb++)
        p->scale[s * p->kblocks + kb] = 16 * s < n ? w->scale[(16 * s / GEMM_BLOCK) * w->ld_scale + kb] : 0.0f;
    p->bytes = elems + (uint64_t)(p->strips * p->kblocks) * sizeof(float);
  }
  return p;
}

void gemm_packed_free(gemm_packed *p) {
  if (!p) return;
  free(p->data);
  free(p->scale);
  free(p);
}

int64_t gemm_packed_n(const gemm_packed *p) { return p->n; }
int64_t gemm_packed_k(const gemm_packed *p) { return p->k; }
kn_dtype gemm_packed_dtype(const gemm_packed *p) { return p->dtype; }
uint64_t gemm_packed_bytes(const gemm_packed *p) { return p->bytes; }

/* ---------------------------------------------------------------- jobs and the loop nest */

typedef struct gemm_job {
  int64_t m;              /* rows */
  gemm_mat a;             /* activations, rows [0, m) */
  const gemm_packed *w;   /* weights */
  gemm_out c;             /* output, rows [0, m) */
  uint32_t *apk;          /* packed activations: cdiv(m, MR) panels of kp * MR words */
  int64_t panels;         /* output panels of NV strips */
  int64_t apanel0;        /* index of its first activation micro-panel among all jobs' */
  int64_t mc;             /* rows per row block: at most GEMM_MC, a multiple of MR, blocks of equal size */
  int direct;             /* BF16 activations read in place by the micro-kernel (no packing) */
} gemm_job;

/* A unit of phase-2 work: rows [r0, r0 + mc) of a job times its panels [p0, p1). */
typedef struct gemm_unit {
  int job;            /* job index */
  int64_t r0;         /* first row */
  int64_t p0, p1;     /* panel range */
} gemm_unit;

/* A contiguous run of units that one thread starts on; threads that finish theirs take units from
 * the front of the others' (one cache line each: the counters are written by every thread). */
typedef struct gemm_range {
  atomic_llong next; /* next unit of the run */
  int64_t end;       /* one past its last unit */
  char pad[64 - sizeof(atomic_llong) - sizeof(int64_t)];
} gemm_range;

typedef struct gemm_call {
  const gemm_impl *impl;  /* micro-kernels */
  gemm_job *jobs;         /* the jobs */
  int njobs;              /* how many */
  int64_t apanels;        /* activation micro-panels of all jobs */
  atomic_llong next_apanel; /* phase 1: next micro-panel to pack */
  gemm_unit *units;       /* phase 2 work, in locality order */
  int64_t nunits;         /* how many */
  gemm_range *ranges;     /* phase 2: one run of units per thread */
  int nranges;            /* how many */
  int64_t kp;             /* K pairs (shared by all jobs) */
  int64_t kblocks;        /* 128-wide K blocks */
  int promo_pairs;        /* FP8 promotion interval in pairs */
  gemm_epi epi;           /* epilogue */
  int64_t out_strips;     /* strips of the output columns handled per job */
  int64_t up_strip0;      /* SwiGLU: first strip of the up half */
  const gemm_fp8_lut *lut; /* FP8 decode tables of the weights' format */
} gemm_call;

#define PACK_GRAB 4 /* micro-panels per grab in phase 1 */

/* Phase 1: the threads that run take micro-panels to pack from a shared counter. */
static void pack_a_worker(void *arg, int tid, int nthreads) {
  gemm_call *cl = arg;
  (void)tid;
  (void)nthreads;
  int mr = cl->impl->mr;
  int64_t kp = cl->kp;
  int j = 0;
  for (;;) {
    int64_t i0 = atomic_fetch_add(&cl->next_apanel, PACK_GRAB);
    if (i0 >= cl->apanels) return;
    for (int64_t idx = i0; idx < i0 + PACK_GRAB && idx < cl->apanels; idx++) {
      while (idx >= cl->jobs[j].apanel0 + (cl->jobs[j].direct ? 0 : cdiv(cl->jobs[j].m, mr))) j++;
      gemm_job *jb = &cl->jobs[j];
      int64_t q = idx - jb->apanel0;
      int rows = (int)min64(mr, jb->m - q * mr);
      size_t esz = jb->a.dtype == KN_BF16 ? 2 : 1;
      const char *src = (const char *)jb->a.data + (size_t)(q * mr * jb->a.ld) * esz;
      cl->impl->pack_a(src, jb->a.ld, jb->a.dtype, rows, mr, jb->w->k, kp, jb->apk + q * kp * mr,
                       is_fp8(jb->a.dtype) ? gemm_fp8_lut_of(jb->a.dtype)->bf16 : NULL);
    }
  }
}

/* Per-thread scratch. */
typedef struct gemm_scratch {
  float *ws[2];   /* FP32 tile buffers, GEMM_MC x NR (gate and up for SwiGLU) */
  bf16_t *dec;    /* decoded FP8 block: 64 pairs x GEMM_PS words (the packed BF16 layout) */
  int64_t ldws;   /* NR */
} gemm_scratch;

/* K pairs per block of the BF16 loop for `tiles` row tiles of an nv-strip panel over kp pairs. One
 * row tile reuses nothing: the whole K runs in registers. Several tiles run the whole K too when
 * the panel's weights fit in L2 (no FP32 round trips through the tile buffer); otherwise K goes in
 * blocks of GEMM_KC_BYTES of weights that stay in L1 while the tiles pass. */
static int64_t gemm_kc_pairs(int64_t kp, int64_t tiles, int nv) {
  if (tiles == 1 || kp * nv * 64 <= GEMM_FULLK_BYTES) return kp;
  return GEMM_KC_BYTES / (nv * 64);
}

/* Accumulates rows [r0, r0 + mc) of job jb, strips [s0, s0 + nv) into ws over the whole K; with
 * `fuse` (BF16 weights, a variant with ukr_out, all 16 nv columns inside C, no SwiGLU) the last K
 * block writes the result to C itself instead (no block_store). */
static void block_compute(const gemm_call *cl, const gemm_job *jb, int64_t r0, int64_t mc, int64_t s0, int nv,
                          float *ws, gemm_scratch *sc, int fuse) {
  const gemm_impl *im = cl->impl;
  const gemm_packed *w = jb->w;
  int mr = im->mr;
  int64_t kp = cl->kp;
  if (w->dtype == KN_BF16) {
    const bf16_t *wb = (const bf16_t *)w->data + (s0 / GEMM_GROUP) * kp * GEMM_PS + (s0 % GEMM_GROUP) * 32;
    int64_t tiles = cdiv(mc, mr);
    int64_t kc = gemm_kc_pairs(kp, tiles, nv);
    int bpf = tiles >= GEMM_BPF_TILES; /* else (short M) the first tile prefetches as it streams */
    for (int64_t p0 = 0; p0 < kp; p0 += kc) {
      int64_t np = min64(kc, kp - p0);
      /* The next K block's weights (np2 pairs of nv strips, one line each) are prefetched a share of
       * pairs per tile, so that the first tile of the next block does not wait for memory: into L1
       * (into L2 only, the first tile then ran from L2: BF16 M = 128 on (7168, 4096) 2-5% slower at
       * one thread, the same at two threads and at M = 2048). */
      int64_t np2 = bpf ? min64(kc, kp - p0 - np) : 0, per = cdiv(np2, tiles), done = 0;
      const bf16_t *next = wb + (p0 + np) * GEMM_PS;
      for (int64_t t = 0; t < tiles; t++) {
        /* Rows read in place are shared out evenly (128 rows: 6 and 5 per tile, not 21 x 6 and a
         * 2-row tile that the latency of vdpbf16ps would slow down); micro-panels are MR rows. */
        int64_t i = jb->direct ? mc * t / tiles : t * mr;
        int rows = (int)(jb->direct ? mc * (t + 1) / tiles - i : min64(mr, mc - i));
        const uint32_t *ap = jb->direct ? (const uint32_t *)jb->a.data + (r0 + i) * (jb->a.ld / 2) + p0
                                        : jb->apk + ((r0 + i) / mr) * kp * mr + p0 * mr;
        for (int64_t end = min64(done + per, np2); done < end; done++)
          for (int v = 0; v < nv; v++) __builtin_prefetch(next + done * GEMM_PS + v * 32, 0, 3);
        int flags = (p0 == 0 ? GEMM_UKR_FIRST : 0) | (t == 0 && (np2 == 0 || p0 == 0) && GEMM_USE_PF ? GEMM_UKR_PF : 0) |
                    (jb->direct ? GEMM_UKR_ROWMAJOR : 0);
        if (fuse && p0 + np == kp) {
          int bf = jb->c.dtype == KN_BF16;
          char *c = (char *)jb->c.data + (size_t)((r0 + i) * jb->c.ld + 16 * s0) * (bf ? 2 : 4);
          im->ukr_out[rows - 1](np, ap, jb->direct ? jb->a.ld / 2 : mr, wb + p0 * GEMM_PS, 32, ws + i * sc->ldws,
                                sc->ldws, c, jb->c.ld, flags | (bf ? GEMM_UKR_CBF16 : 0));
          continue;
        }
        im->ukr[rows - 1](np, ap, jb->direct ? jb->a.ld / 2 : mr, wb + p0 * GEMM_PS, 32, ws + i * sc->ldws, sc->ldws,
                          NULL, NULL, flags);
      }
    }
    return;
  }
  /* FP8: per 128-wide K block, decode the nv strips, then promote every promo_pairs pairs. */
  const fp8_t *wf = (const fp8_t *)w->data + (s0 / GEMM_GROUP) * kp * 32 * GEMM_GROUP + (s0 % GEMM_GROUP) * 64;
  float srow[GEMM_MR_MAX], sstrip[GEMM_NV_MAX];
  if (mc <= GEMM_FUSED_MR && cl->promo_pairs % 2 == 0 && im->ukr8_ok && im->ukr8_ok()) {
    /* Short M: decode in registers inside the fused kernel, no staging. */
    const uint32_t *ap = jb->apk + (r0 / mr) * kp * mr;
    for (int64_t kb = 0; kb < cl->kblocks; kb++) {
      int64_t p0 = kb * (GEMM_BLOCK / 2), np = min64(GEMM_BLOCK / 2, kp - p0);
      for (int v = 0; v < nv; v++) sstrip[v] = w->scale[(s0 + v) * w->kblocks + kb];
      for (int r = 0; r < mc; r++) srow[r] = jb->a.scale[(r0 + r) * jb->a.ld_scale + kb];
      for (int64_t pc = 0; pc < np; pc += cl->promo_pairs) {
        int64_t n2 = min64(cl->promo_pairs, np - pc);
        im->ukr8[mc - 1](n2, ap + (p0 + pc) * mr, mr, wf + (p0 + pc) * 32 * GEMM_GROUP, 64, ws, sc->ldws,
                                 srow, sstrip, kb == 0 && pc == 0, cl->lut);
      }
    }
    return;
  }
  for (int64_t kb = 0; kb < cl->kblocks; kb++) {
    int64_t p0 = kb * (GEMM_BLOCK / 2), np = min64(GEMM_BLOCK / 2, kp - p0);
    for (int v = 0; v < nv; v++) {
      im->decode(np / 2, wf + p0 * 32 * GEMM_GROUP + v * 64, sc->dec + v * 32, cl->lut);
      sstrip[v] = w->scale[(s0 + v) * w->kblocks + kb];
    }
    for (int64_t i = 0; i < mc; i += mr) {
      int rows = (int)min64(mr, mc - i);
      for (int r = 0; r < rows; r++) srow[r] = jb->a.scale[(r0 + i + r) * jb->a.ld_scale + kb];
      const uint32_t *ap = jb->apk + ((r0 + i) / mr) * kp * mr;
      for (int64_t pc = 0; pc < np; pc += cl->promo_pairs) {
        int64_t n2 = min64(cl->promo_pairs, np - pc);
        im->ukr[rows - 1](n2, ap + (p0 + pc) * mr, mr, sc->dec + pc * GEMM_PS, 32,
                                  ws + i * sc->ldws, sc->ldws, srow, sstrip, kb == 0 && pc == 0 ? GEMM_UKR_FIRST : 0);
      }
    }
  }
}

/* Writes the tile buffer(s) of rows [r0, r0 + mc) and output columns [c0, c1) of job jb to C. */
static void block_store(const gemm_call *cl, const gemm_job *jb, int64_t r0, int64_t mc, int64_t c0, int64_t c1,
                        const gemm_scratch *sc) {
  int bf = jb->c.dtype == KN_BF16, sw = cl->epi == GEMM_EPI_SWIGLU;
  size_t esz = bf ? 2 : 4;
  for (int64_t i = 0; i < mc; i++) {
    char *o = (char *)jb->c.data + ((size_t)((r0 + i) * jb->c.ld + c0)) * esz;
    cl->impl->store(sc->ws[0] + i * sc->ldws, sc->ws[1] + i * sc->ldws, c1 - c0, o, bf, sw);
  }
}

/* Phase 2: thread tid computes its own run of units first, in order (the weights of consecutive
 * panels are contiguous: one stream from memory, prefetched across panel boundaries), then takes
 * units from the front of the other runs, so that a thread descheduled by another program on a
 * shared machine (or never started: pool_run_dynamic) delays nothing: the others do its part. */
static int64_t next_unit(gemm_call *cl, int *r) {
  for (int tries = 0; tries < cl->nranges; tries++, *r = (*r + 1) % cl->nranges) {
    gemm_range *g = &cl->ranges[*r];
    if (atomic_load_explicit(&g->next, memory_order_relaxed) >= g->end) continue;
    int64_t u = atomic_fetch_add(&g->next, 1);
    if (u < g->end) return u;
  }
  return -1;
}

static void compute_worker(void *arg, int tid, int nthreads) {
  gemm_call *cl = arg;
  (void)nthreads;
  int nv_max = cl->impl->nv;
  gemm_scratch sc = {.ldws = 16 * nv_max};
  int have = 0, r = tid % cl->nranges;
  for (;;) {
    int64_t u = next_unit(cl, &r);
    if (u < 0) break;
    if (!have) {
      sc.ws[0] = aligned_alloc64((size_t)(GEMM_MC * sc.ldws) * sizeof(float));
      sc.ws[1] = cl->epi == GEMM_EPI_SWIGLU ? aligned_alloc64((size_t)(GEMM_MC * sc.ldws) * sizeof(float)) : sc.ws[0];
      sc.dec = aligned_alloc64((size_t)(GEMM_BLOCK / 2) * GEMM_PS * sizeof(bf16_t));
      have = 1;
    }
    const gemm_unit *un = &cl->units[u];
    const gemm_job *jb = &cl->jobs[un->job];
    int64_t mc = min64(jb->mc, jb->m - un->r0);
    int64_t ncols = cl->epi == GEMM_EPI_SWIGLU ? jb->w->n / 2 : jb->w->n;
    for (int64_t pn = un->p0; pn < un->p1; pn++) {
      int64_t s0 = pn * nv_max;
      int nv = nv_max; /* the last panel reads zero-padded strips and stores only real columns */
      int fuse = GEMM_FUSE_OUT && cl->impl->ukr_out[0] && jb->w->dtype == KN_BF16 && cl->epi == GEMM_EPI_NONE &&
                 16 * (s0 + nv) <= ncols;
      block_compute(cl, jb, un->r0, mc, s0, nv, sc.ws[0], &sc, fuse);
      if (cl->epi == GEMM_EPI_SWIGLU) block_compute(cl, jb, un->r0, mc, cl->up_strip0 + s0, nv, sc.ws[1], &sc, 0);
      if (!fuse) block_store(cl, jb, un->r0, mc, 16 * s0, min64(16 * (s0 + nv), ncols), &sc);
    }
  }
  if (!have) return;
  if (sc.ws[1] != sc.ws[0]) free(sc.ws[1]);
  free(sc.ws[0]);
  free(sc.dec);
}

/* Cuts the jobs into phase-2 units: per job and block of mc rows, runs of panels of near-equal
 * length (never a long run beside a short remainder, which would leave a thread idle at the end)
 * sized so that there are about GEMM_UNITS_PER_THREAD units per thread (fewer for small work). */
static void make_units(gemm_call *cl, int nthreads) {
  int64_t blocks = 0;
  for (int j = 0; j < cl->njobs; j++) blocks += cdiv(cl->jobs[j].m, cl->jobs[j].mc) * cl->jobs[j].panels;
  int64_t per = blocks / (GEMM_UNITS_PER_THREAD * (int64_t)nthreads);
  if (per < 1) per = 1;
  int64_t n = 0;
  for (int j = 0; j < cl->njobs; j++) n += cdiv(cl->jobs[j].m, cl->jobs[j].mc) * cdiv(cl->jobs[j].panels, per);
  cl->units = util_xmalloc((size_t)(n ? n : 1) * sizeof *cl->units);
  cl->nunits = 0;
  for (int j = 0; j < cl->njobs; j++) {
    int64_t panels = cl->jobs[j].panels, runs = cdiv(panels, per);
    for (int64_t r0 = 0; r0 < cl->jobs[j].m; r0 += cl->jobs[j].mc)
      for (int64_t u = 0; u < runs; u++)
        cl->units[cl->nunits++] = (gemm_unit){j, r0, panels * u / runs, panels * (u + 1) / runs};
  }
  /* A panel narrower than a group owns only some of the lines of its group's weights (the strips
   * are interleaved line by line): the threads then share one run, so that the panels of a group
   * run at the same time and the lines fetched in pairs are used by both (14x32, 16 rows: 3% faster
   * than separate runs) */
  cl->nranges = cl->impl->nv < GEMM_GROUP ? 1 : nthreads;
  cl->ranges = aligned_alloc64((size_t)cl->nranges * sizeof *cl->ranges);
  for (int t = 0; t < cl->nranges; t++) {
    atomic_init(&cl->ranges[t].next, cl->nunits * t / cl->nranges);
    cl->ranges[t].end = cl->nunits * (t + 1) / cl->nranges;
  }
}

/* Checks shared by all entry points; fills *impl and *promo_pairs. */
static int call_setup(const gemm_opts *o, kn_dtype wtype, int64_t m_hint, const gemm_impl **impl, int *promo_pairs) {
  const gemm_variant *v = o && o->variant ? o->variant : gemm_variant_best(wtype, m_hint);
  if (!v->supported()) {
    fprintf(stderr, "gemm: variant %s is not supported on this CPU (or capped by MOESIM_ISA)\n", v->name);
    return -1;
  }
  int pk = o && o->promo_k ? o->promo_k : GEMM_BLOCK;
  if (pk < 2 || pk % 2 != 0 || GEMM_BLOCK % pk != 0) {
    fprintf(stderr, "gemm: promo_k %d is not an even divisor of %d\n", pk, GEMM_BLOCK);
    return -1;
  }
  *impl = v->impl;
  *promo_pairs = pk / 2;
  return 0;
}

/* Runs a list of jobs sharing W's shape and dtype (not the same W). */
static int run_jobs(pool *tp, gemm_job *jobs, int njobs, const gemm_opts *o) {
  gemm_epi epi = o ? o->epi : GEMM_EPI_NONE;
  const gemm_packed *w0 = jobs[0].w;
  int64_t mtot = 0;
  for (int j = 0; j < njobs; j++) mtot += jobs[j].m;
  gemm_call cl = {.jobs = jobs, .njobs = njobs, .kp = w0->kp, .kblocks = w0->kblocks, .epi = epi};
  if (call_setup(o, w0->dtype, njobs ? mtot / njobs : 0, &cl.impl, &cl.promo_pairs)) return -1;
  if (is_fp8(w0->dtype)) cl.lut = gemm_fp8_lut_of(w0->dtype);
  int64_t ncols = epi == GEMM_EPI_SWIGLU ? w0->n / 2 : w0->n;
  if (epi == GEMM_EPI_SWIGLU && ncols % (GEMM_STRIP * GEMM_GROUP) != 0) {
    /* The up half would start inside a strip group: compute A W^T in FP32, then apply SwiGLU. */
    gemm_opts o2 = o ? *o : (gemm_opts){0};
    o2.epi = GEMM_EPI_NONE;
    for (int j = 0; j < njobs; j++) {
      if (jobs[j].m == 0) continue;
      float *tmp = util_xmalloc((size_t)(jobs[j].m * w0->n) * sizeof(float));
      gemm_out to = {KN_FP32, tmp, w0->n};
      int rc = gemm_run(tp, jobs[j].m, &jobs[j].a, jobs[j].w, &to, &o2);
      for (int64_t i = 0; rc == 0 && i < jobs[j].m; i++)
        for (int64_t c = 0; c < ncols; c++)
          gemm_store(&jobs[j].c, i, c, gemm_silu_mul(tmp[i * w0->n + c], tmp[i * w0->n + ncols + c]));
      free(tmp);
      if (rc) return rc;
    }
    return 0;
  }
  int mr = cl.impl->mr, nv = cl.impl->nv;
  assert(GEMM_MC % mr == 0 && GEMM_GROUP % nv == 0 && mr <= GEMM_MR_MAX);
  cl.out_strips = cdiv(ncols, GEMM_STRIP);
  cl.up_strip0 = ncols / GEMM_STRIP;
  size_t apk_words = 0;
  for (int j = 0; j < njobs; j++) {
    jobs[j].panels = cdiv(cl.out_strips, nv);
    /* BF16 rows the micro-kernel can read in place (whole pairs, K a multiple of 4 so that no pair
     * past K is read) need no packing: a pass over A and a copy of it saved (1.5-2% at M = 2048),
     * and the K blocks' row pieces stream from L3 as fast as packed micro-panels do. */
    jobs[j].direct = GEMM_DIRECT_A && cl.impl->rowmajor_a && jobs[j].a.dtype == KN_BF16 && w0->k % 4 == 0 &&
                     jobs[j].a.ld % 2 == 0 && (uintptr_t)jobs[j].a.data % 4 == 0;
    /* equal row blocks: 2048 rows become 7 blocks of 294 (MR 6), not 6 of 336 and one of 32 */
    int64_t nblk = cdiv(jobs[j].m, GEMM_MC);
    jobs[j].mc = nblk ? cdiv(cdiv(jobs[j].m, nblk), mr) * mr : mr;
    jobs[j].apanel0 = cl.apanels;
    if (jobs[j].direct) continue;
    cl.apanels += cdiv(jobs[j].m, mr);
    apk_words += (size_t)(cdiv(jobs[j].m, mr) * mr * cl.kp);
  }
  size_t apk_bytes;
  uint32_t *apk = ws_get(apk_words * 4, &apk_bytes);
  for (int j = 0; j < njobs; j++) jobs[j].apk = apk + jobs[j].apanel0 * mr * cl.kp;
  make_units(&cl, pool_threads(tp));
  atomic_init(&cl.next_apanel, 0);
  pool_run_dynamic(tp, pack_a_worker, &cl);
  pool_run_dynamic(tp, compute_worker, &cl);
  free(cl.units);
  free(cl.ranges);
  ws_put(apk, apk_bytes);
  return 0;
}

static int check_call(int64_t m, const gemm_mat *a, const gemm_packed *w, const gemm_out *c, const gemm_opts *o) {
  gemm_epi epi = o ? o->epi : GEMM_EPI_NONE;
  if (!w) {
    fprintf(stderr, "gemm: no packed weights\n");
    return -1;
  }
  if (m < 0) {
    fprintf(stderr, "gemm: negative row count %lld\n", (long long)m);
    return -1;
  }
  if (gemm_check_mat("activations", a, m, w->k, m) || gemm_check_pair(a->dtype, w->dtype) ||
      gemm_check_epi(epi, w->n) || gemm_check_out(c, m, epi == GEMM_EPI_SWIGLU ? w->n / 2 : w->n))
    return -1;
  return 0;
}

int gemm_run(pool *tp, int64_t m, const gemm_mat *a, const gemm_packed *w, const gemm_out *c, const gemm_opts *opts) {
  if (check_call(m, a, w, c, opts)) return -1;
  if (m == 0) return 0;
  gemm_job jb = {.m = m, .a = *a, .w = w, .c = *c};
  return run_jobs(tp, &jb, 1, opts);
}

static int check_group_w(int groups, gemm_packed *const *w) {
  if (groups < 1 || !w || !w[0]) {
    fprintf(stderr, "gemm: grouped: need at least one group with weights\n");
    return -1;
  }
  for (int g = 1; g < groups; g++)
    if (!w[g] || w[g]->n != w[0]->n || w[g]->k != w[0]->k || w[g]->dtype != w[0]->dtype) {
      fprintf(stderr, "gemm: grouped: weights of group %d differ in shape or dtype from group 0\n", g);
      return -1;
    }
  return 0;
}

int gemm_grouped_contig(pool *tp, int groups, const int64_t *rows, const gemm_mat *a, gemm_packed *const *w,
                        const gemm_out *c, const gemm_opts *opts) {
  if (check_group_w(groups, w)) return -1;
  int64_t total = 0;
  for (int g = 0; g < groups; g++) {
    if (rows[g] < 0) {
      fprintf(stderr, "gemm: group %d: negative row count %lld\n", g, (long long)rows[g]);
      return -1;
    }
    total += rows[g];
  }
  if (check_call(total, a, w[0], c, opts)) return -1;
  gemm_job *jobs = util_xcalloc((size_t)groups, sizeof *jobs);
  int64_t off = 0;
  for (int g = 0; g < groups; g++) {
    jobs[g] = (gemm_job){.m = rows[g], .a = gemm_mat_rows(a, off), .w = w[g], .c = gemm_out_rows(c, off)};
    off += rows[g];
  }
  int rc = total ? run_jobs(tp, jobs, groups, opts) : 0;
  free(jobs);
  return rc;
}

int gemm_grouped_masked(pool *tp, int groups, int64_t slots, const int64_t *valid, const gemm_mat *a,
                        gemm_packed *const *w, const gemm_out *c, const gemm_opts *opts) {
  if (check_group_w(groups, w)) return -1;
  int64_t total = 0;
  for (int g = 0; g < groups; g++) {
    if (valid[g] < 0 || valid[g] > slots) {
      fprintf(stderr, "gemm: group %d: valid rows %lld outside [0, %lld]\n", g, (long long)valid[g], (long long)slots);
      return -1;
    }
    total += valid[g];
  }
  if (check_call(slots * groups, a, w[0], c, opts)) return -1;
  gemm_job *jobs = util_xcalloc((size_t)groups, sizeof *jobs);
  for (int g = 0; g < groups; g++)
    jobs[g] = (gemm_job){.m = valid[g], .a = gemm_mat_rows(a, g * slots), .w = w[g], .c = gemm_out_rows(c, g * slots)};
  int rc = total ? run_jobs(tp, jobs, groups, opts) : 0;
  free(jobs);
  return rc;
}

/* ---------------------------------------------------------------- the variant registry */

static int sup_scalar(void) { return 1; }
static int sup_avx2(void) { return cpu_isa_best() >= CPU_AVX2; }
static int sup_avx512(void) { return cpu_isa_best() >= CPU_AVX512; }
static int sup_avx512bf16(void) { return cpu_isa_best() >= CPU_AVX512BF16; }

static const gemm_variant variants[] = {
    {"avx512bf16_14x32", CPU_AVX512BF16, 14, 32, sup_avx512bf16, &gemm_impl_avx512bf16_14x32},
    {"avx512bf16_6x64", CPU_AVX512BF16, 6, 64, sup_avx512bf16, &gemm_impl_avx512bf16_6x64},
    {"avx512_8x32", CPU_AVX512, 8, 32, sup_avx512, &gemm_impl_avx512_8x32},
    {"avx2_4x16", CPU_AVX2, 4, 16, sup_avx2, &gemm_impl_avx2_4x16},
    {"scalar_4x16", CPU_SCALAR, 4, 16, sup_scalar, &gemm_impl_scalar_4x16},
};

int gemm_variant_count(void) { return (int)UTIL_ARRAY_LEN(variants); }

const gemm_variant *gemm_variant_at(int i) {
  return i >= 0 && i < gemm_variant_count() ? &variants[i] : NULL;
}

const gemm_variant *gemm_variant_by_name(const char *name) {
  for (int i = 0; i < gemm_variant_count(); i++)
    if (strcmp(variants[i].name, name) == 0) return &variants[i];
  return NULL;
}

#define BEST_ROUNDS 5 /* interleaved timing rounds of the registry probe */
#define BEST_MCLASSES 4
static const int64_t best_probe_m[BEST_MCLASSES] = {4, 32, 192, 512}; /* probe rows per M class */
static const gemm_variant *best_cache[CPU_AVX512BF16 + 1][2][BEST_MCLASSES]; /* [ISA cap][fp8][M class] */
static pthread_mutex_t best_mu = PTHREAD_MUTEX_INITIALIZER;

static int m_class(int64_t m) { return m <= 8 ? 0 : m <= 64 ? 1 : m <= 256 ? 2 : 3; }

/* Evicts the packed weights from every cache level (clflush, SSE2), as an expert's weights are
 * evicted between layers. */
static void evict_weights(const gemm_packed *w) {
#if defined(__x86_64__) || defined(__i386__)
  const char *d = w->data;
  size_t n = (size_t)(w->strips * w->kp * 32) * (w->dtype == KN_BF16 ? 2 : 1);
  for (size_t i = 0; i < n; i += 64) _mm_clflush(d + i);
  _mm_mfence();
#else
  (void)w;
#endif
}

/* Seconds of one run of variant v on the probe shape (1e30 if it fails), its weights first evicted
 * from the caches: the weights of an expert come
 * from memory in a real layer, and which tile streams them best is what the probe must find (with
 * the weights in L3, a different tile wins at 16-32 rows: by 15-20% the wrong way on a cold run). */
static double probe_time(const gemm_variant *v, int64_t m, const gemm_mat *a, const gemm_packed *w, gemm_out *c) {
  gemm_opts o = {.variant = v};
  evict_weights(w);
  uint64_t t0 = util_now_ns();
  if (gemm_run(NULL, m, a, w, c, &o) != 0) return 1e30;
  return (double)(util_now_ns() - t0) * 1e-9;
}

const gemm_variant *gemm_variant_best(kn_dtype wtype, int64_t m) {
  int f = is_fp8(wtype), mc = m_class(m);
  cpu_level lvl = cpu_isa_best();
  pthread_mutex_lock(&best_mu);
  const gemm_variant *best = best_cache[lvl][f][mc];
  if (best) {
    pthread_mutex_unlock(&best_mu);
    return best;
  }
  cpu_level top = CPU_SCALAR;
  int candidates = 0;
  for (int i = 0; i < gemm_variant_count(); i++)
    if (variants[i].supported() && variants[i].isa > top) top = variants[i].isa;
  for (int i = 0; i < gemm_variant_count(); i++)
    if (variants[i].supported() && variants[i].isa == top) {
      candidates++;
      best = &variants[i];
    }
  if (candidates > 1) {
    /* Time each candidate on a probe shape with deterministic inputs: DeepSeek-V3's longest expert
     * K (no variant's panel of weights fits L2 there, so all run the K-blocked loop they run on
     * the gate+up projection) and enough columns that packing weighs as it does in real layers. */
    const int64_t n = 1024, k = 7168, pm = best_probe_m[mc];
    size_t esz = f ? 1 : 2;
    unsigned char *wd = util_xmalloc((size_t)(n * k) * esz), *ad = util_xmalloc((size_t)(pm * k) * esz);
    float *ws = util_xmalloc((size_t)(cdiv(n, GEMM_BLOCK) * cdiv(k, GEMM_BLOCK)) * sizeof(float));
    float *as = util_xmalloc((size_t)(pm * cdiv(k, GEMM_BLOCK)) * sizeof(float));
    float *cd = util_xmalloc((size_t)(pm * n) * sizeof(float));
    for (size_t i = 0; i < (size_t)(n * k) * esz; i++) wd[i] = (unsigned char)(f ? (i * 37) % 0x70 : (i % 2 ? 0x3f : i % 97));
    for (size_t i = 0; i < (size_t)(pm * k) * esz; i++) ad[i] = (unsigned char)(f ? (i * 11) % 0x70 : (i % 2 ? 0x3f : i % 89));
    for (int64_t i = 0; i < cdiv(n, GEMM_BLOCK) * cdiv(k, GEMM_BLOCK); i++) ws[i] = 1.0f;
    for (int64_t i = 0; i < pm * cdiv(k, GEMM_BLOCK); i++) as[i] = 1.0f;
    kn_dtype dt = f ? wtype : KN_BF16;
    gemm_mat wm = {dt, wd, k, f ? ws : NULL, cdiv(k, GEMM_BLOCK)}, am = {dt, ad, k, f ? as : NULL, cdiv(k, GEMM_BLOCK)};
    gemm_out co = {KN_FP32, cd, n};
    gemm_packed *wp = gemm_pack(&wm, n, k);
    /* The candidates run in interleaved rounds (a burst of load from other programs then hits them
     * alike), and each keeps its fastest run (other programs only ever slow a run down). */
    double t[UTIL_ARRAY_LEN(variants)];
    for (size_t i = 0; i < UTIL_ARRAY_LEN(variants); i++) t[i] = 1e30;
    for (int r = 0; r < BEST_ROUNDS; r++)
      for (int i = 0; i < gemm_variant_count(); i++) {
        if (!variants[i].supported() || variants[i].isa != top) continue;
        double s = probe_time(&variants[i], pm, &am, wp, &co);
        if (s < t[i]) t[i] = s;
      }
    double tbest = 1e30;
    for (int i = 0; i < gemm_variant_count(); i++)
      if (t[i] < tbest) {
        tbest = t[i];
        best = &variants[i];
      }
    gemm_packed_free(wp);
    free(wd);
    free(ad);
    free(ws);
    free(as);
    free(cd);
  }
  best_cache[lvl][f][mc] = best;
  pthread_mutex_unlock(&best_mu);
  return best;
}
