/* tests/test_a2a.c — the pure pieces of the distributed all-to-all (kernels/comm/a2a.h), without
 * MPI: expert ownership against a brute-force search (uneven and empty ranks), node grouping and
 * group alignment, the dispatch row format, one rank's routing layout against a direct count
 * (each (token, rank) and (token, node) exactly once, tokens ascending), packing split across
 * threads, the stand-in expert stage against its single-process reference (bit for bit when one rank
 * holds every expert; within the stated tolerance when partial sums are rounded per rank, and a
 * corrupted partial caught), the exactly-once pair sums, configuration checks and the phase
 * statistics. The MPI paths are exercised by tests/t_a2a.sh. */
#include <math.h>
#include <stdlib.h>

#include "comm/a2a.h"
#include "harness.h"
#include "krand.h"
#include "quant.h"
#include "test.h"

static void test_ownership(void) {
  static const int cases[][2] = {{256, 2}, {256, 3}, {10, 3}, {10, 4}, {2, 3}, {1, 4}, {7, 7}, {16, 5}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    int E = cases[c][0], R = cases[c][1], next = 0, lo = E, hi = 0;
    for (int r = 0; r < R; r++) {
      int e0, e1;
      a2a_expert_range(E, R, r, &e0, &e1);
      T_EQ_INT(e0, next); /* contiguous cover of [0, E) */
      T_CHECK(e1 >= e0);
      lo = e1 - e0 < lo ? e1 - e0 : lo, hi = e1 - e0 > hi ? e1 - e0 : hi;
      for (int e = e0; e < e1; e++) T_EQ_INT(a2a_expert_owner(E, R, e), r);
      next = e1;
    }
    T_EQ_INT(next, E);
    T_CHECK(hi - lo <= 1); /* as even as integers allow */
  }
  int e0, e1;
  a2a_expert_range(2, 3, 0, &e0, &e1);
  T_EQ_INT(e1 - e0, 0); /* E < R: rank 0 holds no expert */
}

static void test_nodes(void) {
  T_EQ_INT(a2a_nodes(4, 2), 2);
  T_EQ_INT(a2a_nodes(3, 2), 2);
  T_EQ_INT(a2a_node_size(1, 3, 2), 1); /* the last node is smaller */
  T_EQ_INT(a2a_node_of(3, 2), 1);
  moe_gate_cfg g = moe_gate_v3();
  T_CHECK(a2a_groups_node_aligned(&g, 2, 1));  /* 8 groups of 32 over 2 nodes of 128 experts */
  T_CHECK(a2a_groups_node_aligned(&g, 8, 1));  /* DeepSeek: a group per node */
  T_CHECK(!a2a_groups_node_aligned(&g, 3, 1)); /* 85/85/86 experts: groups straddle ranks */
  T_CHECK(a2a_groups_node_aligned(&g, 16, 2)); /* a group per node of 2 ranks */
}

static void test_row_format(void) {
  a2a_row_fmt f = a2a_row_format(7168, 8);
  T_EQ_INT(f.payload, 7168 + 4 * 56);
  T_EQ_INT(f.bytes % 16, 0);
  T_CHECK(f.off_scale >= 7168 && f.off_src >= f.off_scale + 4 * 56 && f.off_idx == f.off_src + 8);
  T_CHECK(f.off_w == f.off_idx + 32 && f.bytes >= f.off_w + 32);
  f = a2a_row_format(130, 3); /* a partial last tile, an odd hidden */
  T_EQ_INT(f.payload, 130 + 8);
  T_EQ_INT(f.off_scale % 4, 0);
  fp8_t q[130];
  float s[2] = {0.5f, 2.0f}, w[3] = {0.25f, 0.5f, 0.25f};
  int32_t idx[3] = {7, -1, 3};
  for (int i = 0; i < 130; i++) q[i] = (fp8_t)i;
  unsigned char row[512];
  memset(row, 0xab, sizeof row);
  a2a_row_write(&f, row, q, s, 5, 1234, idx, w);
  T_CHECK(memcmp(a2a_row_q(row), q, 130) == 0);
  T_CHECK(a2a_row_scales(&f, row)[1] == 2.0f);
  T_EQ_INT(a2a_row_src(&f, row)[0], 5);
  T_EQ_INT(a2a_row_src(&f, row)[1], 1234);
  T_EQ_INT(a2a_row_idx(&f, row)[2], 3);
  T_CHECK(a2a_row_w(&f, row)[1] == 0.5f);
  T_EQ_INT(row[130], 0); /* padding is zeroed: rows hash the same on every run */
  T_EQ_INT(row[f.bytes - 1], 0);
  T_EQ_INT(row[f.bytes], 0xab); /* nothing past the row */
}

/* Random routing: K distinct experts per token, some slots -1. */
static int32_t *random_idx(int64_t T, int K, int E, uint64_t seed) {
  int32_t *idx = malloc((size_t)(T * K) * sizeof *idx);
  krand r = krand_seed(seed);
  for (int64_t t = 0; t < T; t++)
    for (int k = 0; k < K; k++) {
      int e;
      int dup;
      do {
        e = krand_below(&r, 8) == 0 ? -1 : (int)krand_below(&r, (uint64_t)E);
        dup = 0;
        for (int j = 0; j < k && e >= 0; j++) dup |= idx[t * K + j] == e;
      } while (dup);
      idx[t * K + k] = e;
    }
  return idx;
}

static void test_layout(void) {
  const int64_t T = 300;
  const int K = 4, E = 10, R = 3, rpn = 2;
  int32_t *idx = random_idx(T, K, E, 7);
  a2a_layout l;
  a2a_layout_build(&l, idx, T, K, E, R, rpn);
  T_EQ_INT(l.nodes, 2);
  int max_nodes = 0;
  for (int d = 0; d < R; d++) {
    int64_t want = 0;
    for (int64_t t = 0; t < T; t++) {
      int hit = 0;
      for (int k = 0; k < K; k++) hit |= idx[t * K + k] >= 0 && a2a_expert_owner(E, R, idx[t * K + k]) == d;
      want += hit;
    }
    T_EQ_INT(l.rank_cnt[d], want);
    T_EQ_INT(l.rank_off[d + 1] - l.rank_off[d], want);
    for (int64_t i = 1; i < l.rank_cnt[d]; i++) T_CHECK(l.rank_tok[l.rank_off[d] + i] > l.rank_tok[l.rank_off[d] + i - 1]);
    for (int64_t i = 0; i < l.rank_cnt[d]; i++) {
      int64_t t = l.rank_tok[l.rank_off[d] + i];
      int hit = 0;
      for (int k = 0; k < K; k++) hit |= idx[t * K + k] >= 0 && a2a_expert_owner(E, R, idx[t * K + k]) == d;
      T_CHECK(hit);
    }
  }
  for (int64_t t = 0; t < T; t++) {
    int nodes[2] = {0, 0}, n = 0;
    for (int k = 0; k < K; k++)
      if (idx[t * K + k] >= 0) nodes[a2a_node_of(a2a_expert_owner(E, R, idx[t * K + k]), rpn)] = 1;
    n = nodes[0] + nodes[1];
    if (n > max_nodes) max_nodes = n;
  }
  T_EQ_INT(l.max_nodes, max_nodes);
  int64_t sum = 0;
  for (int m = 0; m < l.nodes; m++) sum += l.node_cnt[m];
  T_EQ_INT(l.node_off[l.nodes], sum);
  /* node 1 holds only rank 2: its tokens are rank 2's */
  T_EQ_INT(l.node_cnt[1], l.rank_cnt[2]);
  T_CHECK(memcmp(l.node_tok + l.node_off[1], l.rank_tok + l.rank_off[2], (size_t)l.rank_cnt[2] * 4) == 0);
  a2a_layout_free(&l);
  free(idx);
}

/* Quantized tokens and gate weights for T tokens of width H. */
typedef struct toks {
  bf16_t *x;
  fp8_t *q;
  float *s, *w;
  int32_t *idx;
} toks;

static toks make_toks(int64_t T, int64_t H, int K, int E, uint64_t seed) {
  toks k;
  k.x = malloc((size_t)(T * H) * sizeof *k.x);
  k.q = malloc((size_t)(T * H));
  k.s = malloc((size_t)(T * quant_tiles(H)) * sizeof *k.s);
  k.w = malloc((size_t)(T * K) * sizeof *k.w);
  krand r = krand_seed(seed);
  for (int64_t i = 0; i < T * H; i++) k.x[i] = f32_to_bf16((float)krand_normal(&r));
  for (int64_t i = 0; i < T * K; i++) k.w[i] = (float)krand_unif(&r) + 0.1f;
  quant_ref()->token_bf16(k.x, T, H, KN_FP8_E4M3, 0, k.q, k.s);
  k.idx = random_idx(T, K, E, seed + 1);
  return k;
}

static void free_toks(toks *k) { free(k->x), free(k->q), free(k->s), free(k->w), free(k->idx); }

static void test_pack_split(void) {
  const int64_t T = 97, H = 200;
  const int K = 3, E = 8, R = 4;
  toks k = make_toks(T, H, K, E, 3);
  a2a_layout l;
  a2a_layout_build(&l, k.idx, T, K, E, R, 1);
  a2a_row_fmt f = a2a_row_format(H, K);
  uint64_t n = (uint64_t)l.rank_off[R] * f.bytes;
  char *a = calloc(1, n + 1), *b = calloc(1, n + 1);
  a2a_pack_ranks(&l, &f, k.q, k.s, k.idx, k.w, 2, 0, T, a);
  for (int64_t t0 = 0; t0 < T; t0 += 10) a2a_pack_ranks(&l, &f, k.q, k.s, k.idx, k.w, 2, t0, t0 + 10 < T ? t0 + 10 : T, b);
  T_CHECK(memcmp(a, b, n) == 0);
  for (int d = 0; d < R; d++)
    for (int64_t i = 0; i < l.rank_cnt[d]; i++) {
      const char *row = a + (uint64_t)(l.rank_off[d] + i) * f.bytes;
      int64_t t = l.rank_tok[l.rank_off[d] + i];
      T_EQ_INT(a2a_row_src(&f, row)[1], t);
      T_EQ_INT(a2a_row_src(&f, row)[0], 2);
      T_CHECK(memcmp(a2a_row_q(row), k.q + t * H, (size_t)H) == 0);
    }
  free(a), free(b);
  a2a_layout_free(&l);
  free_toks(&k);
}

/* Stand-in experts over rows packed for ranks of R: every rank's partials, summed per token in
 * rank order after rounding each to BF16 (what combine does), against the reference. */
static void distributed_toy(const toks *k, int64_t T, int64_t H, int K, int E, int R, bf16_t *out) {
  a2a_layout l;
  a2a_layout_build(&l, k->idx, T, K, E, R, 1);
  a2a_row_fmt f = a2a_row_format(H, K);
  char *rows = malloc((size_t)((uint64_t)l.rank_off[R] * f.bytes + 1));
  a2a_pack_ranks(&l, &f, k->q, k->s, k->idx, k->w, 0, 0, T, rows);
  bf16_t *part = malloc((size_t)(l.rank_off[R] * H + 1) * sizeof *part);
  float *acc = calloc((size_t)(T * H), sizeof *acc);
  for (int d = 0; d < R; d++) {
    int e0, e1;
    a2a_expert_range(E, R, d, &e0, &e1);
    a2a_toy_experts(&f, rows + (uint64_t)l.rank_off[d] * f.bytes, 0, l.rank_cnt[d], e0, e1, part + l.rank_off[d] * H);
    for (int64_t i = 0; i < l.rank_cnt[d]; i++) {
      int64_t t = l.rank_tok[l.rank_off[d] + i];
      for (int64_t j = 0; j < H; j++) acc[t * H + j] += bf16_to_f32(part[(l.rank_off[d] + i) * H + j]);
    }
  }
  for (int64_t i = 0; i < T * H; i++) out[i] = f32_to_bf16(acc[i]);
  free(rows), free(part), free(acc);
  a2a_layout_free(&l);
}

static void test_toy_experts(void) {
  const int64_t T = 64, H = 300;
  const int K = 4, E = 12;
  toks k = make_toks(T, H, K, E, 11);
  bf16_t *want = malloc((size_t)(T * H) * sizeof *want), *got = malloc((size_t)(T * H) * sizeof *got);
  a2a_toy_reference(k.x, T, H, k.idx, k.w, K, want);
  distributed_toy(&k, T, H, K, E, 1, got);
  /* one rank holds every expert: the same operations in the same order, bit for bit */
  T_CHECK(memcmp(got, want, (size_t)(T * H) * sizeof *got) == 0);
  double rel, abs;
  a2a_combine_tolerance(&rel, &abs);
  char why[256];
  for (int R = 2; R <= 5; R++) {
    distributed_toy(&k, T, H, K, E, R, got);
    T_CHECKF(hn_check_bf16(got, want, T * H, (hn_tol){rel, abs}, why, sizeof why) == 0, "R=%d: %s", R, why);
  }
  got[5 * H + 7] = f32_to_bf16(bf16_to_f32(got[5 * H + 7]) * 1.5f + 1.0f);
  T_CHECK(hn_check_bf16(got, want, T * H, (hn_tol){rel, abs}, why, sizeof why) != 0);
  /* the stand-in's factor makes the expert matter: a token's output moves if one slot's expert does */
  k.idx[3 * K] = k.idx[3 * K] >= 0 ? (k.idx[3 * K] + 1) % E : 0;
  int dup = 0;
  for (int j = 1; j < K; j++) dup |= k.idx[3 * K + j] == k.idx[3 * K];
  bf16_t *moved = malloc((size_t)(T * H) * sizeof *moved);
  a2a_toy_reference(k.x, T, H, k.idx, k.w, K, moved);
  if (!dup) T_CHECK(memcmp(moved + 3 * H, want + 3 * H, (size_t)H * sizeof *moved) != 0);
  free(moved), free(want), free(got);
  free_toks(&k);
}

static void test_pairs(void) {
  const int64_t T = 50;
  const int K = 4, E = 9;
  int32_t *idx = random_idx(T, K, E, 5);
  int64_t cnt[9] = {0}, cnt2[9] = {0};
  uint64_t sum[9] = {0}, sum2[9] = {0};
  a2a_pairs_expected(idx, T, K, 100, E, cnt, sum);
  int64_t routes = 0;
  for (int64_t i = 0; i < T * K; i++) routes += idx[i] >= 0;
  int64_t total = 0;
  for (int e = 0; e < E; e++) total += cnt[e];
  T_EQ_INT(total, routes);
  /* the same pairs in two halves add up; a pair moved to another token does not */
  a2a_pairs_expected(idx, 20, K, 100, E, cnt2, sum2);
  a2a_pairs_expected(idx + 20 * K, T - 20, K, 120, E, cnt2, sum2);
  T_CHECK(memcmp(cnt, cnt2, sizeof cnt) == 0 && memcmp(sum, sum2, sizeof sum) == 0);
  T_CHECK(a2a_pair_hash(3, 4) != a2a_pair_hash(4, 3));
  T_CHECK(a2a_pair_hash(0, 0) != 0);
  free(idx);
}

static void test_cfg(void) {
  char why[128];
  a2a_cfg c = a2a_cfg_default();
  T_EQ_INT(a2a_cfg_check(&c, 2, why, sizeof why), 0);
  T_EQ_INT(c.tokens, 4096);
  T_EQ_INT(c.hidden, 7168);
  c.gate.n_groups = 7; /* does not divide 256 */
  T_EQ_INT(a2a_cfg_check(&c, 2, why, sizeof why), -1);
  c = a2a_cfg_default();
  c.gate.topk_groups = 1, c.gate.topk = 64; /* more experts than one group holds */
  T_EQ_INT(a2a_cfg_check(&c, 2, why, sizeof why), -1);
  c = a2a_cfg_default();
  c.iters = 0;
  T_EQ_INT(a2a_cfg_check(&c, 2, why, sizeof why), -1);
  T_EQ_INT(a2a_impl_parse("hier"), A2A_HIER);
  T_EQ_INT(a2a_impl_parse("ring"), -1);
  T_EQ_STR(a2a_impl_backend(A2A_PAIRWISE), "mpi-pairwise");
}

static void test_phase_stats(void) {
  a2a_result res;
  memset(&res, 0, sizeof res);
  res.ranks = 2, res.iters = 3;
  a2a_rank_result rr[2];
  memset(rr, 0, sizeof rr);
  double u0[3 * A2A_PH_COUNT] = {0}, u1[3 * A2A_PH_COUNT] = {0};
  double a[3] = {5, 1, 9}, b[3] = {4, 7, 2};
  for (int i = 0; i < 3; i++) u0[i * A2A_PH_COUNT + A2A_PH_DISPATCH] = a[i], u1[i * A2A_PH_COUNT + A2A_PH_DISPATCH] = b[i];
  rr[0].us = u0, rr[1].us = u1;
  res.rank = rr;
  double mn, md, mx;
  a2a_phase_stats(&res, A2A_PH_DISPATCH, &mn, &md, &mx); /* slowest per iteration: 5, 7, 9 */
  T_NEAR(mn, 5, 0);
  T_NEAR(md, 7, 0);
  T_NEAR(mx, 9, 0);
}

int main(void) {
  T_RUN(test_ownership);
  T_RUN(test_nodes);
  T_RUN(test_row_format);
  T_RUN(test_layout);
  T_RUN(test_pack_split);
  T_RUN(test_toy_experts);
  T_RUN(test_pairs);
  T_RUN(test_cfg);
  T_RUN(test_phase_stats);
  return t_done();
}
