/* kernels/comm/a2a_mpi.c — the transports of the distributed all-to-all (a2a.h): the checked MPI
 * call, the node communicator and its MPI-3 shared-memory window, and dispatch / combine by
 * MPI_Alltoallv, by pairwise MPI_Isend/MPI_Irecv, and hierarchically (one message per node pair,
 * gathered and scattered through the node's window). Every path leaves the same receive buffer. */
#if MOESIM_MPI
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "a2a_internal.h"
#include "quant.h"
#include "util.h"

void a2a_mpi_check(int rc, const char *call, const char *file, int line) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING + 1] = "";
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error code %d", rc);
  msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = 0;
  int n = 0;
  while (call[n] && call[n] != '(') n++;
  fprintf(stderr, "%s:%d: %.*s: %s\n", file, line, n, call, msg);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);
}

void a2a_quiet_barrier(MPI_Comm comm) {
  MPI_Request rq;
  A2A_MPI(MPI_Ibarrier(comm, &rq));
  int done = 0;
  struct timespec ts = {0, 50000};
  for (;;) {
    A2A_MPI(MPI_Test(&rq, &done, MPI_STATUS_IGNORE));
    if (done) break;
    nanosleep(&ts, NULL);
  }
}

/* ---- setup ---- */

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

static int to_int(int64_t v) {
  if (v > 0x7fffffff) {
    fprintf(stderr, "moesim a2a: error: %lld rows in one message exceed MPI's int counts\n", (long long)v);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return (int)v;
}

static void hier_setup(a2a_ctx *x) {
  a2a_hier *h = util_xcalloc(1, sizeof *h);
  x->h = h;
  int R = x->R, N = x->N, rpn = x->c->ranks_per_node;
  h->C = util_xmalloc((size_t)R * N * sizeof *h->C);
  A2A_MPI(MPI_Allgather(x->lay.node_cnt, N, MPI_INT64_T, h->C, N, MPI_INT64_T, x->world));
  h->S = util_xcalloc((size_t)N * N, sizeof *h->S);
  for (int s = 0; s < R; s++)
    for (int m = 0; m < N; m++) h->S[a2a_node_of(s, rpn) * N + m] += h->C[s * N + m];
  /* receive region: source nodes in order, their ranks in order */
  h->roff = util_xcalloc((size_t)N + 1, sizeof *h->roff);
  h->rjoff = util_xcalloc((size_t)R, sizeof *h->rjoff);
  for (int s = 0; s < N; s++) {
    h->roff[s + 1] = h->roff[s] + h->S[s * N + x->n];
    int64_t o = h->roff[s];
    for (int j = a2a_node_first(s, rpn); j < a2a_node_first(s, rpn) + a2a_node_size(s, R, rpn); j++)
      h->rjoff[j] = o, o += h->C[j * N + x->n];
  }
  h->rrows = h->roff[N];
  /* send region: destination nodes other than this one, this node's ranks in order */
  h->soff = util_xcalloc((size_t)N + 1, sizeof *h->soff);
  h->sjoff = util_xcalloc((size_t)N, sizeof *h->sjoff);
  int first = a2a_node_first(x->n, rpn);
  for (int m = 0; m < N; m++) {
    h->soff[m + 1] = h->soff[m] + (m == x->n ? 0 : h->S[x->n * N + m]);
    int64_t o = m == x->n ? h->rjoff[first] : h->soff[m];
    for (int j = first; j < x->r; j++) o += h->C[j * N + m];
    h->sjoff[m] = o;
  }
  h->srows = h->soff[N];
  h->nrecv = util_xmalloc((size_t)x->nsize * sizeof *h->nrecv);
  A2A_MPI(MPI_Allgather(&x->nrecv, 1, MPI_INT64_T, h->nrecv, 1, MPI_INT64_T, x->node));
  h->poff = util_xcalloc((size_t)x->nsize + 1, sizeof *h->poff);
  for (int q = 0; q < x->nsize; q++) h->poff[q + 1] = h->poff[q] + h->nrecv[q];
  uint64_t rb = x->f.bytes, cb = 2 * (uint64_t)x->H, o = 0;
  h->o_recv = o, o = align64(o + (uint64_t)h->rrows * rb);
  h->o_send = o, o = align64(o + (uint64_t)h->srows * rb);
  h->o_part = o, o = align64(o + (uint64_t)h->poff[x->nsize] * cb);
  h->o_map = o, o = align64(o + (uint64_t)x->nsize * (uint64_t)h->rrows * sizeof(int64_t));
  h->o_red = o, o = align64(o + (uint64_t)h->rrows * cb);
  h->o_back = o, o = align64(o + (uint64_t)h->srows * cb);
  void *mine;
  A2A_MPI(MPI_Win_allocate_shared(x->nr == 0 ? (MPI_Aint)(o + 64) : 0, 1, MPI_INFO_NULL, x->node, &mine, &h->win));
  MPI_Aint sz;
  int du;
  void *base;
  A2A_MPI(MPI_Win_shared_query(h->win, 0, &sz, &du, &base));
  h->base = base;
  A2A_MPI(MPI_Win_lock_all(MPI_MODE_NOCHECK, h->win));
}

void a2a_comm_setup(a2a_ctx *x) {
  int R = x->R;
  A2A_MPI(MPI_Comm_split(x->world, x->n, x->r, &x->node));
  A2A_MPI(MPI_Comm_set_errhandler(x->node, MPI_ERRORS_RETURN));
  A2A_MPI(MPI_Comm_size(x->node, &x->nsize));
  A2A_MPI(MPI_Comm_rank(x->node, &x->nr));
  A2A_MPI(MPI_Type_contiguous((int)x->f.bytes, MPI_BYTE, &x->rowt));
  A2A_MPI(MPI_Type_commit(&x->rowt));
  A2A_MPI(MPI_Type_contiguous((int)(2 * x->H), MPI_BYTE, &x->crowt));
  A2A_MPI(MPI_Type_commit(&x->crowt));
  x->recv_cnt = util_xmalloc((size_t)R * sizeof *x->recv_cnt);
  x->recv_off = util_xcalloc((size_t)R + 1, sizeof *x->recv_off);
  A2A_MPI(MPI_Alltoall(x->lay.rank_cnt, 1, MPI_INT64_T, x->recv_cnt, 1, MPI_INT64_T, x->world));
  for (int s = 0; s < R; s++) x->recv_off[s + 1] = x->recv_off[s] + x->recv_cnt[s];
  x->nrecv = x->recv_off[R];
  x->ci_cnt = util_xmalloc((size_t)R * sizeof(int)), x->ci_off = util_xmalloc((size_t)R * sizeof(int));
  x->co_cnt = util_xmalloc((size_t)R * sizeof(int)), x->co_off = util_xmalloc((size_t)R * sizeof(int));
  for (int d = 0; d < R; d++) {
    x->ci_cnt[d] = to_int(x->lay.rank_cnt[d]), x->ci_off[d] = to_int(x->lay.rank_off[d]);
    x->co_cnt[d] = to_int(x->recv_cnt[d]), x->co_off[d] = to_int(x->recv_off[d]);
  }
  uint64_t rb = x->f.bytes, cb = 2 * (uint64_t)x->H;
  int64_t nsend = x->lay.rank_off[R];
  x->recvbuf = util_xmalloc((size_t)((uint64_t)x->nrecv * rb + 64));
  x->acc = util_xmalloc((size_t)(x->T * x->H) * sizeof *x->acc);
  x->out = util_xmalloc((size_t)(x->T * x->H) * sizeof *x->out);
  if (x->c->impl == A2A_HIER) {
    hier_setup(x);
  } else {
    x->sendbuf = util_xmalloc((size_t)((uint64_t)nsend * rb + 64));
    x->partial = util_xmalloc((size_t)((uint64_t)x->nrecv * cb + 64));
    x->cret = util_xmalloc((size_t)((uint64_t)nsend * cb + 64));
  }
}

void a2a_comm_free(a2a_ctx *x) {
  if (x->h) {
    a2a_hier *h = x->h;
    MPI_Win_unlock_all(h->win);
    MPI_Win_free(&h->win);
    free(h->C), free(h->S), free(h->roff), free(h->rjoff), free(h->soff), free(h->sjoff);
    free(h->nrecv), free(h->poff), free(h);
    x->h = NULL;
  }
  MPI_Type_free(&x->rowt), MPI_Type_free(&x->crowt);
  MPI_Comm_free(&x->node);
  free(x->recv_cnt), free(x->recv_off), free(x->ci_cnt), free(x->ci_off), free(x->co_cnt), free(x->co_off);
  free(x->recvbuf), free(x->acc), free(x->out), free(x->sendbuf), free(x->partial), free(x->cret);
}

/* Makes the window's stores visible to the node's ranks and waits for them. */
static void node_sync(a2a_ctx *x) {
  A2A_MPI(MPI_Win_sync(x->h->win));
  A2A_MPI(MPI_Barrier(x->node));
  A2A_MPI(MPI_Win_sync(x->h->win));
}

static char *hregion(const a2a_ctx *x, uint64_t off) { return x->h->base + off; }

/* ---- threaded pieces ---- */

typedef struct pack_job {
  a2a_ctx *x;
} pack_job;

/* Token range of thread tid. */
static void split(int64_t n, int tid, int nt, int64_t *a, int64_t *b) {
  *a = n * tid / nt, *b = n * (tid + 1) / nt;
}

/* First index i in tok[0, n) with tok[i] >= t (tokens ascend). */
static int64_t lower(const int32_t *tok, int64_t n, int64_t t) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (tok[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static void pack_worker(void *arg, int tid, int nt) {
  a2a_ctx *x = ((pack_job *)arg)->x;
  int64_t t0, t1;
  split(x->T, tid, nt, &t0, &t1);
  if (!x->h) {
    a2a_pack_ranks(&x->lay, &x->f, x->xq, x->xs, x->idx, x->w, x->r, t0, t1, x->sendbuf);
    return;
  }
  int64_t H = x->H, ntl = quant_tiles(H);
  for (int m = 0; m < x->N; m++) {
    const int32_t *tok = x->lay.node_tok + x->lay.node_off[m];
    char *dst = hregion(x, m == x->n ? x->h->o_recv : x->h->o_send) + (uint64_t)x->h->sjoff[m] * x->f.bytes;
    for (int64_t i = lower(tok, x->lay.node_cnt[m], t0); i < x->lay.node_cnt[m] && tok[i] < t1; i++) {
      int64_t t = tok[i];
      a2a_row_write(&x->f, dst + (uint64_t)i * x->f.bytes, x->xq + t * H, x->xs + t * ntl, x->r, (int32_t)t,
                    x->idx + t * x->K, x->w + t * x->K);
    }
  }
}

/* acc[t] (+)= rows for the tokens of this thread, destinations in order; then out = bf16(acc). */
typedef struct reduce_job {
  a2a_ctx *x;
  const bf16_t *shared;
} reduce_job;

static void add_rows(a2a_ctx *x, const int32_t *tok, int64_t n, const bf16_t *rows, int64_t t0, int64_t t1) {
  int64_t H = x->H;
  for (int64_t i = lower(tok, n, t0); i < n && tok[i] < t1; i++) {
    float *a = x->acc + (int64_t)tok[i] * H;
    const bf16_t *p = rows + i * H;
    for (int64_t j = 0; j < H; j++) a[j] = a[j] + bf16_to_f32(p[j]);
  }
}

static void reduce_worker(void *arg, int tid, int nt) {
  reduce_job *j = arg;
  a2a_ctx *x = j->x;
  int64_t t0, t1, H = x->H;
  split(x->T, tid, nt, &t0, &t1);
  for (int64_t i = t0 * H; i < t1 * H; i++) x->acc[i] = j->shared ? bf16_to_f32(j->shared[i]) : 0.0f;
  if (!x->h) {
    for (int d = 0; d < x->R; d++)
      add_rows(x, x->lay.rank_tok + x->lay.rank_off[d], x->lay.rank_cnt[d], x->cret + x->lay.rank_off[d] * H, t0, t1);
  } else {
    for (int m = 0; m < x->N; m++) {
      const bf16_t *rows = (const bf16_t *)hregion(x, m == x->n ? x->h->o_red : x->h->o_back) + x->h->sjoff[m] * H;
      add_rows(x, x->lay.node_tok + x->lay.node_off[m], x->lay.node_cnt[m], rows, t0, t1);
    }
  }
  for (int64_t i = t0 * H; i < t1 * H; i++) x->out[i] = f32_to_bf16(x->acc[i]);
}

/* ---- dispatch ---- */

static void check_counts(const int64_t *got, const int64_t *want, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (got[i] != want[i]) {
      fprintf(stderr, "moesim a2a: error: the routing changed between iterations (counts differ)\n");
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

static void notify(a2a_ctx *x) {
  if (!x->h) {
    int64_t *got = util_xmalloc((size_t)x->R * sizeof *got);
    A2A_MPI(MPI_Alltoall(x->lay.rank_cnt, 1, MPI_INT64_T, got, 1, MPI_INT64_T, x->world));
    check_counts(got, x->recv_cnt, x->R);
    free(got);
  } else {
    int64_t *got = util_xmalloc((size_t)x->R * x->N * sizeof *got);
    A2A_MPI(MPI_Allgather(x->lay.node_cnt, x->N, MPI_INT64_T, got, x->N, MPI_INT64_T, x->world));
    check_counts(got, x->h->C, (int64_t)x->R * x->N);
    free(got);
  }
}

/* The rank of node m that talks to node n (its local index n mod size(m)). */
static int peer_of(const a2a_ctx *x, int m, int n) {
  int rpn = x->c->ranks_per_node;
  return a2a_node_first(m, rpn) + n % a2a_node_size(m, x->R, rpn);
}

static void pairwise(a2a_ctx *x, const void *sbuf, const int *scnt, const int *soff, void *rbuf, const int *rcnt,
                     const int *roff, MPI_Datatype t, uint64_t tbytes, int tag) {
  int R = x->R, r = x->r, nq = 0;
  MPI_Request *rq = util_xmalloc((size_t)2 * R * sizeof *rq);
  for (int s = 1; s < R; s++) {
    int src = (r - s + R) % R;
    if (rcnt[src]) A2A_MPI(MPI_Irecv((char *)rbuf + (uint64_t)roff[src] * tbytes, rcnt[src], t, src, tag, x->world, &rq[nq++]));
  }
  for (int s = 1; s < R; s++) {
    int dst = (r + s) % R;
    if (scnt[dst]) A2A_MPI(MPI_Isend((const char *)sbuf + (uint64_t)soff[dst] * tbytes, scnt[dst], t, dst, tag, x->world, &rq[nq++]));
  }
  memcpy((char *)rbuf + (uint64_t)roff[r] * tbytes, (const char *)sbuf + (uint64_t)soff[r] * tbytes,
         (size_t)((uint64_t)scnt[r] * tbytes));
  A2A_MPI(MPI_Waitall(nq, rq, MPI_STATUSES_IGNORE));
  free(rq);
}

/* Hier exchange of one direction: the node's send slabs to the other nodes and its receive slabs
 * from them, one message per node pair, handled by the local rank the pair maps to. */
static void hier_exchange(a2a_ctx *x, int combine) {
  a2a_hier *h = x->h;
  int N = x->N, nq = 0;
  uint64_t rb = combine ? 2 * (uint64_t)x->H : x->f.bytes;
  MPI_Datatype t = combine ? x->crowt : x->rowt;
  uint64_t o_out = combine ? h->o_red : h->o_send, o_in = combine ? h->o_back : h->o_recv;
  MPI_Request *rq = util_xmalloc((size_t)2 * N * sizeof *rq);
  for (int m = 0; m < N; m++) {
    if (m == x->n || peer_of(x, x->n, m) != x->r) continue;
    /* dispatch: receive node m's slab for us, send ours for m; combine: the reverse regions */
    int64_t in_rows = combine ? h->S[x->n * N + m] : h->S[m * N + x->n];
    int64_t in_off = combine ? h->soff[m] : h->roff[m];
    int64_t out_rows = combine ? h->S[m * N + x->n] : h->S[x->n * N + m];
    int64_t out_off = combine ? h->roff[m] : h->soff[m];
    int peer = peer_of(x, m, x->n);
    if (in_rows)
      A2A_MPI(MPI_Irecv(hregion(x, o_in) + (uint64_t)in_off * rb, to_int(in_rows), t, peer, 10 + combine, x->world, &rq[nq++]));
    if (out_rows)
      A2A_MPI(MPI_Isend(hregion(x, o_out) + (uint64_t)out_off * rb, to_int(out_rows), t, peer, 10 + combine, x->world, &rq[nq++]));
  }
  A2A_MPI(MPI_Waitall(nq, rq, MPI_STATUSES_IGNORE));
  free(rq);
}

/* Copies the rows holding this rank's experts out of the node's receive region, in order, and
 * records where each went (map[nr][row], -1 when not taken). */
static void hier_scatter(a2a_ctx *x) {
  a2a_hier *h = x->h;
  int64_t *map = (int64_t *)hregion(x, h->o_map) + (int64_t)x->nr * h->rrows, p = 0;
  const char *rows = hregion(x, h->o_recv);
  for (int64_t i = 0; i < h->rrows; i++) {
    const char *row = rows + (uint64_t)i * x->f.bytes;
    const int32_t *idx = a2a_row_idx(&x->f, row);
    int mine = 0;
    for (int k = 0; k < x->K && !mine; k++) mine = idx[k] >= x->e0 && idx[k] < x->e1;
    map[i] = mine ? p : -1;
    if (mine) memcpy((char *)x->recvbuf + (uint64_t)p++ * x->f.bytes, row, x->f.bytes);
  }
  if (p != x->nrecv) {
    fprintf(stderr, "moesim a2a: error: rank %d took %lld rows from its node, expected %lld\n", x->r,
            (long long)p, (long long)x->nrecv);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

static void inject_receive_fault(a2a_ctx *x) {
  if (!x->fault || x->r != x->R - 1 || x->nrecv < 2) return;
  char *rows = x->recvbuf;
  if (strcmp(x->fault, "drop") == 0) {
    int32_t *idx = (int32_t *)(rows + (uint64_t)(x->nrecv - 1) * x->f.bytes + x->f.off_idx);
    for (int k = 0; k < x->K; k++) idx[k] = -1;
  } else if (strcmp(x->fault, "dup") == 0) {
    memcpy(rows + x->f.bytes, rows, x->f.bytes);
  }
}

void a2a_dispatch(a2a_ctx *x) {
  double t0 = a2a_now_us();
  notify(x);
  double t1 = a2a_now_us();
  quant_token_run(x->tp, NULL, KN_BF16, x->x, x->T, x->H, KN_FP8_E4M3, 0, x->xq, x->xs);
  pack_job pj = {x};
  pool_run(x->tp, pack_worker, &pj);
  double t2 = a2a_now_us();
  if (x->fault && strcmp(x->fault, "mpi") == 0) {
    /* a send to a rank that does not exist: MPI must refuse it */
    A2A_MPI(MPI_Send(x->sendbuf ? x->sendbuf : x->recvbuf, 1, MPI_BYTE, x->R, 0, x->world));
  }
  if (x->c->impl == A2A_ALLTOALLV) {
    A2A_MPI(MPI_Alltoallv(x->sendbuf, x->ci_cnt, x->ci_off, x->rowt, x->recvbuf, x->co_cnt, x->co_off, x->rowt,
                          x->world));
  } else if (x->c->impl == A2A_PAIRWISE) {
    pairwise(x, x->sendbuf, x->ci_cnt, x->ci_off, x->recvbuf, x->co_cnt, x->co_off, x->rowt, x->f.bytes, 1);
  } else {
    node_sync(x);
    hier_exchange(x, 0);
    node_sync(x);
  }
  double t3 = a2a_now_us();
  if (x->h) hier_scatter(x);
  inject_receive_fault(x);
  double t4 = a2a_now_us();
  x->ph[A2A_PH_NOTIFY] = t1 - t0, x->ph[A2A_PH_PACK] = t2 - t1, x->ph[A2A_PH_DXCHG] = t3 - t2;
  x->ph[A2A_PH_SCATTER] = t4 - t3, x->ph[A2A_PH_DISPATCH] = t4 - t0;
}

/* ---- combine ---- */

bf16_t *a2a_partial_buf(a2a_ctx *x) {
  if (!x->h) return x->partial;
  return (bf16_t *)hregion(x, x->h->o_part) + x->h->poff[x->nr] * x->H;
}

typedef struct fwd_job {
  a2a_ctx *x;
  int64_t i0, i1; /* rows of the node's receive region this rank reduces */
} fwd_job;

static void fwd_worker(void *arg, int tid, int nt) {
  fwd_job *j = arg;
  a2a_ctx *x = j->x;
  a2a_hier *h = x->h;
  int64_t H = x->H, i0, i1;
  split(j->i1 - j->i0, tid, nt, &i0, &i1);
  const int64_t *map = (const int64_t *)hregion(x, h->o_map);
  const bf16_t *part = (const bf16_t *)hregion(x, h->o_part);
  bf16_t *red = (bf16_t *)hregion(x, h->o_red);
  float *acc = util_xmalloc((size_t)H * sizeof *acc);
  for (int64_t i = j->i0 + i0; i < j->i0 + i1; i++) {
    for (int64_t e = 0; e < H; e++) acc[e] = 0.0f;
    for (int q = 0; q < x->nsize; q++) {
      int64_t p = map[(int64_t)q * h->rrows + i];
      if (p < 0) continue;
      const bf16_t *src = part + (h->poff[q] + p) * H;
      for (int64_t e = 0; e < H; e++) acc[e] = acc[e] + bf16_to_f32(src[e]);
    }
    for (int64_t e = 0; e < H; e++) red[i * H + e] = f32_to_bf16(acc[e]);
  }
  free(acc);
}

/* This rank's share of the node's forwarder reduction: an even slice of the rows of the receive
 * region (every source node's), reduced over the node's ranks into the region the messages back
 * leave from; the node's ranks together reduce every row. */
static void forward_reduce(a2a_ctx *x) {
  int64_t n = x->h->rrows;
  fwd_job j = {x, n * x->nr / x->nsize, n * (x->nr + 1) / x->nsize};
  pool_run(x->tp, fwd_worker, &j);
}

void a2a_combine(a2a_ctx *x, const bf16_t *shared) {
  double t0 = a2a_now_us(), t1 = t0;
  if (x->fault && strcmp(x->fault, "corrupt") == 0 && x->r == x->R - 1 && x->nrecv > 0)
    a2a_partial_buf(x)[0] ^= 0x4000; /* flips an exponent bit of one returned element */
  if (x->c->impl == A2A_ALLTOALLV) {
    A2A_MPI(MPI_Alltoallv(x->partial, x->co_cnt, x->co_off, x->crowt, x->cret, x->ci_cnt, x->ci_off, x->crowt,
                          x->world));
  } else if (x->c->impl == A2A_PAIRWISE) {
    pairwise(x, x->partial, x->co_cnt, x->co_off, x->cret, x->ci_cnt, x->ci_off, x->crowt, 2 * (uint64_t)x->H, 2);
  } else {
    node_sync(x);
    forward_reduce(x);
    t1 = a2a_now_us();
    node_sync(x);
    hier_exchange(x, 1);
    node_sync(x);
  }
  double t2 = a2a_now_us();
  reduce_job rj = {x, shared};
  pool_run(x->tp, reduce_worker, &rj);
  double t3 = a2a_now_us();
  x->ph[A2A_PH_FWD] = t1 - t0, x->ph[A2A_PH_CXCHG] = t2 - t1, x->ph[A2A_PH_REDUCE] = t3 - t2;
  x->ph[A2A_PH_COMBINE] = t3 - t0;
}
void a2a_local_phase(a2a_ctx *x, int phase, const bf16_t *shared) {
  if (phase == A2A_PH_PACK) {
    quant_token_run(x->tp, NULL, KN_BF16, x->x, x->T, x->H, KN_FP8_E4M3, 0, x->xq, x->xs);
    pack_job pj = {x};
    pool_run(x->tp, pack_worker, &pj);
  } else if (phase == A2A_PH_SCATTER && x->h) {
    hier_scatter(x);
  } else if (phase == A2A_PH_FWD && x->h) {
    forward_reduce(x);
  } else if (phase == A2A_PH_REDUCE) {
    reduce_job rj = {x, shared};
    pool_run(x->tp, reduce_worker, &rj);
  }
}
#endif
