/* kernels/comm/a2a_plan.c — the pure pieces of the distributed all-to-all (contract in a2a.h):
 * configuration, expert ownership, the dispatch row format, one rank's routing layout and
 * packing, the stand-in expert stage and its single-process reference, exactly-once hashes.
 * Nothing here calls MPI, so tests/test_a2a.c exercises it directly. */
#include "a2a.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_isa.h"
#include "quant.h"
#include "util.h"

static const char *const impl_names[] = {"alltoallv", "pairwise", "hier"};
static const char *const impl_backends[] = {"mpi-alltoallv", "mpi-pairwise", "mpi-hier"};

const char *a2a_impl_name(int impl) { return impl >= 0 && impl < 3 ? impl_names[impl] : "?"; }
const char *a2a_impl_backend(int impl) { return impl >= 0 && impl < 3 ? impl_backends[impl] : "?"; }

int a2a_impl_parse(const char *name) {
  for (int i = 0; i < 3; i++)
    if (strcmp(name, impl_names[i]) == 0) return i;
  return -1;
}

const char *const a2a_phase_names[A2A_PH_COUNT] = {
    "gate", "notify", "pack", "dispatch_exchange", "scatter", "shared_expert", "experts",
    "forward_reduce", "combine_exchange", "reduce", "dispatch", "combine", "total"};

a2a_cfg a2a_cfg_default(void) {
  a2a_cfg c = {.tokens = 4096, .hidden = 7168, .inter = 2048, .n_shared = 1, .gate = moe_gate_v3(),
               .ranks_per_node = 1, .impl = A2A_ALLTOALLV, .iters = 20, .warmup = 3, .skew = 0.0, .seed = 1,
               .layer = 0, .threads = 1, .check_tokens = 4, .predict = 0};
  return c;
}

int a2a_cfg_check(const a2a_cfg *c, int ranks, char *why, size_t why_len) {
  const char *msg = NULL;
  if (c->tokens < 1 || c->tokens > INT32_MAX / 2) msg = "--tokens must be between 1 and 2^30";
  else if (c->hidden < 1 || c->hidden > (1 << 20)) msg = "--hidden must be between 1 and 2^20";
  else if (c->inter < 1 || c->inter > (1 << 20)) msg = "--inter must be between 1 and 2^20";
  else if (c->n_shared < 0 || c->n_shared > 64) msg = "--shared must be between 0 and 64";
  else if (c->ranks_per_node < 1) msg = "--ranks-per-node must be at least 1";
  else if (c->impl < 0 || c->impl > A2A_HIER) msg = "--impl must be alltoallv, pairwise or hier";
  else if (c->iters < 1) msg = "--iters must be at least 1";
  else if (c->warmup < 0) msg = "--warmup must be at least 0";
  else if (!(c->skew >= 0) || c->skew > 16) msg = "--skew must be between 0 and 16";
  else if (c->threads < 1) msg = "--threads must be at least 1";
  else if (c->check_tokens < 1) msg = "--check-tokens must be at least 1";
  else if (ranks < 1) msg = "at least one rank is needed";
  if (msg) {
    snprintf(why, why_len, "%s", msg);
    return -1;
  }
  const moe_gate_cfg *g = &c->gate;
  if (g->n_groups < 1 || g->n_experts % g->n_groups != 0)
    snprintf(why, why_len, "--experts (%d) must be a multiple of --groups (%d)", g->n_experts, g->n_groups);
  else if (g->topk_groups < 1 || g->topk_groups > g->n_groups)
    snprintf(why, why_len, "--topk-groups (%d) must be between 1 and --groups (%d)", g->topk_groups, g->n_groups);
  else if (g->topk < 1 || g->topk > g->topk_groups * (g->n_experts / g->n_groups))
    snprintf(why, why_len, "--topk (%d) must be between 1 and the %d experts of --topk-groups groups", g->topk,
             g->topk_groups * (g->n_experts / g->n_groups));
  else
    return moe_gate_check(g, why, why_len);
  return -1;
}

/* ---- ownership ---- */

void a2a_expert_range(int n_experts, int ranks, int r, int *e0, int *e1) {
  *e0 = (int)((int64_t)r * n_experts / ranks);
  *e1 = (int)((int64_t)(r + 1) * n_experts / ranks);
}

int a2a_expert_owner(int n_experts, int ranks, int e) {
  /* The largest r with floor(r E / R) <= e: r = floor(((e + 1) R - 1) / E). */
  int r = (int)(((int64_t)(e + 1) * ranks - 1) / n_experts);
  return r < ranks ? r : ranks - 1;
}

int a2a_groups_node_aligned(const moe_gate_cfg *g, int ranks, int rpn) {
  int per = g->n_experts / g->n_groups;
  for (int gr = 0; gr < g->n_groups; gr++) {
    int first = gr * per, last = first + per - 1;
    int n0 = a2a_node_of(a2a_expert_owner(g->n_experts, ranks, first), rpn);
    int n1 = a2a_node_of(a2a_expert_owner(g->n_experts, ranks, last), rpn);
    if (n0 != n1) return 0;
  }
  return 1;
}

/* ---- rows ---- */

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

a2a_row_fmt a2a_row_format(int64_t hidden, int topk) {
  a2a_row_fmt f = {.hidden = hidden, .topk = topk};
  uint64_t nt = (uint64_t)quant_tiles(hidden);
  f.off_scale = round_up((uint64_t)hidden, 4);
  f.off_src = f.off_scale + 4 * nt;
  f.off_idx = f.off_src + 8;
  f.off_w = f.off_idx + 4 * (uint64_t)topk;
  f.bytes = round_up(f.off_w + 4 * (uint64_t)topk, 16);
  f.payload = (uint64_t)hidden + 4 * nt;
  return f;
}

void a2a_row_write(const a2a_row_fmt *f, void *row, const fp8_t *q, const float *scales, int src_rank,
                   int32_t src_token, const int32_t *idx, const float *w) {
  char *p = row;
  memcpy(p, q, (size_t)f->hidden);
  memset(p + f->hidden, 0, f->off_scale - (uint64_t)f->hidden);
  memcpy(p + f->off_scale, scales, 4 * (size_t)quant_tiles(f->hidden));
  int32_t src[2] = {src_rank, src_token};
  memcpy(p + f->off_src, src, sizeof src);
  memcpy(p + f->off_idx, idx, 4 * (size_t)f->topk);
  memcpy(p + f->off_w, w, 4 * (size_t)f->topk);
  uint64_t end = f->off_w + 4 * (uint64_t)f->topk;
  memset(p + end, 0, f->bytes - end);
}

/* ---- layout ---- */

/* Destinations of token t: calls fn for each distinct rank (and node) in ascending order of first
 * appearance; `mark` [R] and `nmark` [nodes] hold the last token that touched each. */
typedef struct layout_scan {
  const int32_t *idx;
  int topk, n_experts, ranks, rpn;
  int64_t *mark, *nmark;
} layout_scan;

/* Counts the distinct ranks and nodes of token t; appends them to rk[] / nd[] (each sized K). */
static void token_dests(layout_scan *s, int64_t t, int *rk, int *nrk, int *nd, int *nnd) {
  *nrk = *nnd = 0;
  for (int k = 0; k < s->topk; k++) {
    int e = s->idx[t * s->topk + k];
    if (e < 0 || e >= s->n_experts) continue;
    int r = a2a_expert_owner(s->n_experts, s->ranks, e), n = a2a_node_of(r, s->rpn);
    if (s->mark[r] != t) s->mark[r] = t, rk[(*nrk)++] = r;
    if (s->nmark[n] != t) s->nmark[n] = t, nd[(*nnd)++] = n;
  }
}

void a2a_layout_build(a2a_layout *l, const int32_t *idx, int64_t T, int topk, int n_experts, int ranks,
                      int rpn) {
  memset(l, 0, sizeof *l);
  int N = a2a_nodes(ranks, rpn);
  l->ranks = ranks, l->nodes = N, l->rpn = rpn, l->tokens = T;
  l->rank_cnt = util_xcalloc((size_t)ranks, sizeof *l->rank_cnt);
  l->rank_off = util_xcalloc((size_t)ranks + 1, sizeof *l->rank_off);
  l->node_cnt = util_xcalloc((size_t)N, sizeof *l->node_cnt);
  l->node_off = util_xcalloc((size_t)N + 1, sizeof *l->node_off);
  layout_scan s = {idx, topk, n_experts, ranks, rpn, util_xmalloc((size_t)ranks * sizeof(int64_t)),
                   util_xmalloc((size_t)N * sizeof(int64_t))};
  for (int r = 0; r < ranks; r++) s.mark[r] = -1;
  for (int n = 0; n < N; n++) s.nmark[n] = -1;
  int *rk = util_xmalloc((size_t)(topk + 1) * sizeof *rk), *nd = util_xmalloc((size_t)(topk + 1) * sizeof *nd);
  int nrk, nnd;
  for (int64_t t = 0; t < T; t++) {
    token_dests(&s, t, rk, &nrk, nd, &nnd);
    for (int i = 0; i < nrk; i++) l->rank_cnt[rk[i]]++;
    for (int i = 0; i < nnd; i++) l->node_cnt[nd[i]]++;
    if (nrk > l->max_ranks) l->max_ranks = nrk;
    if (nnd > l->max_nodes) l->max_nodes = nnd;
  }
  for (int r = 0; r < ranks; r++) l->rank_off[r + 1] = l->rank_off[r] + l->rank_cnt[r];
  for (int n = 0; n < N; n++) l->node_off[n + 1] = l->node_off[n] + l->node_cnt[n];
  l->rank_tok = util_xmalloc((size_t)(l->rank_off[ranks] + 1) * sizeof *l->rank_tok);
  l->node_tok = util_xmalloc((size_t)(l->node_off[N] + 1) * sizeof *l->node_tok);
  int64_t *rfill = util_xcalloc((size_t)ranks, sizeof *rfill), *nfill = util_xcalloc((size_t)N, sizeof *nfill);
  for (int r = 0; r < ranks; r++) s.mark[r] = -1;
  for (int n = 0; n < N; n++) s.nmark[n] = -1;
  for (int64_t t = 0; t < T; t++) {
    token_dests(&s, t, rk, &nrk, nd, &nnd);
    for (int i = 0; i < nrk; i++) l->rank_tok[l->rank_off[rk[i]] + rfill[rk[i]]++] = (int32_t)t;
    for (int i = 0; i < nnd; i++) l->node_tok[l->node_off[nd[i]] + nfill[nd[i]]++] = (int32_t)t;
  }
  free(rfill), free(nfill), free(rk), free(nd), free(s.mark), free(s.nmark);
}

void a2a_layout_free(a2a_layout *l) {
  free(l->rank_cnt), free(l->rank_off), free(l->rank_tok);
  free(l->node_cnt), free(l->node_off), free(l->node_tok);
  memset(l, 0, sizeof *l);
}

void a2a_pack_ranks(const a2a_layout *l, const a2a_row_fmt *f, const fp8_t *q, const float *scales,
                    const int32_t *idx, const float *w, int src_rank, int64_t t0, int64_t t1, void *buf) {
  int64_t H = f->hidden, nt = quant_tiles(H);
  int K = f->topk;
  for (int d = 0; d < l->ranks; d++) {
    const int32_t *tok = l->rank_tok + l->rank_off[d];
    /* tokens ascend within a destination: find the sub-range [t0, t1) by bisection */
    int64_t lo = 0, hi = l->rank_cnt[d];
    while (lo < hi) {
      int64_t mid = (lo + hi) / 2;
      if (tok[mid] < t0) lo = mid + 1;
      else hi = mid;
    }
    for (int64_t i = lo; i < l->rank_cnt[d] && tok[i] < t1; i++) {
      int64_t t = tok[i];
      a2a_row_write(f, (char *)buf + (uint64_t)(l->rank_off[d] + i) * f->bytes, q + t * H, scales + t * nt,
                    src_rank, (int32_t)t, idx + t * K, w + t * K);
    }
  }
}

/* ---- expert stage ---- */

void a2a_toy_experts(const a2a_row_fmt *f, const void *rows, int64_t i0, int64_t i1, int e0, int e1,
                     bf16_t *partial) {
  int64_t H = f->hidden;
  int K = f->topk;
  float lut[256];
  for (int v = 0; v < 256; v++) lut[v] = fp8_e4m3_to_f32((fp8_t)v);
  float *acc = util_xmalloc((size_t)H * sizeof *acc);
  for (int64_t i = i0; i < i1; i++) {
    const char *row = (const char *)rows + (uint64_t)i * f->bytes;
    const fp8_t *q = a2a_row_q(row);
    const float *s = a2a_row_scales(f, row), *w = a2a_row_w(f, row);
    const int32_t *idx = a2a_row_idx(f, row);
    for (int64_t j = 0; j < H; j++) acc[j] = 0.0f;
    for (int k = 0; k < K; k++) {
      int e = idx[k];
      if (e < e0 || e >= e1) continue;
      float se = a2a_toy_scale(e), wk = w[k];
      for (int64_t j = 0; j < H; j++) {
        float y = bf16_to_f32(f32_to_bf16(se * (lut[q[j]] * s[j / QUANT_TILE])));
        float p = wk * y;
        acc[j] = acc[j] + p;
      }
    }
    bf16_t *out = partial + i * H;
    for (int64_t j = 0; j < H; j++) out[j] = f32_to_bf16(acc[j]);
  }
  free(acc);
}

void a2a_toy_reference(const bf16_t *x, int64_t T, int64_t H, const int32_t *idx, const float *w, int topk,
                       bf16_t *out) {
  int64_t nt = quant_tiles(H);
  fp8_t *q = util_xmalloc((size_t)H);
  float *s = util_xmalloc((size_t)nt * sizeof *s), *acc = util_xmalloc((size_t)H * sizeof *acc);
  for (int64_t t = 0; t < T; t++) {
    quant_ref()->token_bf16(x + t * H, 1, H, KN_FP8_E4M3, 0, q, s);
    for (int64_t j = 0; j < H; j++) acc[j] = 0.0f;
    for (int k = 0; k < topk; k++) {
      int e = idx[t * topk + k];
      if (e < 0) continue;
      float se = a2a_toy_scale(e), wk = w[t * topk + k];
      for (int64_t j = 0; j < H; j++) {
        float deq = fp8_e4m3_to_f32(q[j]) * s[j / QUANT_TILE];
        float p = wk * bf16_to_f32(f32_to_bf16(se * deq));
        acc[j] = acc[j] + p;
      }
    }
    for (int64_t j = 0; j < H; j++) out[t * H + j] = f32_to_bf16(acc[j]);
  }
  free(q), free(s), free(acc);
}

void a2a_combine_tolerance(double *rel, double *abs) {
  /* Each destination's partial is rounded to BF16 (unit roundoff u = 2^-8) before the source adds
   * it, and the hierarchical path rounds once more at the forwarder: the reference rounds once, the
   * distributed sum up to three times, |error| <= 3 u sum|terms|. Terms of one sign (the stand-in)
   * give 3 u |want| <= 2^-7 |want| + 2^-7 max|want|; the abs part absorbs cancellation (layer). */
  *rel = 0x1p-7;
  *abs = 0x1p-7;
}

/* ---- hashes ---- */

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t a2a_pair_hash(int64_t global_token, int expert) {
  return mix64((uint64_t)global_token * 0x9e3779b97f4a7c15ull + (uint64_t)(uint32_t)expert + 1);
}

void a2a_pairs_expected(const int32_t *idx, int64_t T, int topk, int64_t t0, int n_experts, int64_t *cnt,
                        uint64_t *sum) {
  for (int64_t t = 0; t < T; t++)
    for (int k = 0; k < topk; k++) {
      int e = idx[t * topk + k];
      if (e < 0 || e >= n_experts) continue;
      cnt[e]++;
      sum[e] += a2a_pair_hash(t0 + t, e);
    }
}

uint64_t a2a_hash_bytes(const void *p, uint64_t n, uint64_t h) {
  const unsigned char *b = p;
  if (!h) h = 0xcbf29ce484222325ull;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, b + i, 8);
    h = (h ^ v) * 0x100000001b3ull;
  }
  for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

const char *a2a_fault(void) {
  const char *f = getenv("MOESIM_A2A_FAULT");
  return f && *f ? f : NULL;
}

/* ---- results ---- */

/* Per-iteration value of phase p: the slowest rank. */
static double slowest(const a2a_result *res, int it, int p) {
  double m = 0;
  for (int s = 0; s < res->ranks; s++) {
    double v = res->rank[s].us[it * A2A_PH_COUNT + p];
    if (v > m) m = v;
  }
  return m;
}

void a2a_phase_stats(const a2a_result *res, int p, double *mn, double *med, double *mx) {
  double *v = util_xmalloc((size_t)res->iters * sizeof *v);
  for (int it = 0; it < res->iters; it++) v[it] = slowest(res, it, p);
  *mn = *mx = v[0];
  for (int it = 1; it < res->iters; it++) {
    if (v[it] < *mn) *mn = v[it];
    if (v[it] > *mx) *mx = v[it];
  }
  /* median */
  for (int i = 1; i < res->iters; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double t = v[j];
      v[j] = v[j - 1], v[j - 1] = t;
    }
  int n = res->iters;
  *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  free(v);
}

/* Average over ranks of tokens sent (0), sent to other ranks (1), received (2). */
const char *a2a_cpu_name(void) {
  static char name[96];
  const char *b = cpu_isa_get()->brand;
  snprintf(name, sizeof name, "%s", b[0] ? b : "unknown");
  for (char *p = name; *p; p++)
    if (*p == ',') *p = ' ';
  return name;
}
