/* tests/test_eplb.c — the expert-parallel load balancer (sim/eplb.h) against the worked example
 * of deepseek-ai/EPLB's README (shared/reference/eplb.md): replica counts and per-GPU loads of
 * the published plan; the building blocks against hand-worked cases; the global policy; errors;
 * and the gate's load statistics (skew makes EPLB matter, determinism). */
#include <stdlib.h>
#include <string.h>

#include "eplb.h"
#include "test.h"

/* README example: 2 layers x 12 experts, 16 slots, 4 groups, 2 nodes, 8 GPUs. */
static const double ex_weight[2][12] = {{90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86},
                                        {20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27}};
static const int ex_phy2log[2][16] = {{5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1},
                                      {7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1}};
/* Per-GPU loads derived from the published plan (reference/eplb.md). */
static const double ex_gpu_load[2][8] = {{121.5, 86.5, 125.0, 113.0, 147.5, 131.5, 156.0, 152.0},
                                         {173.0, 179.5, 120.5, 172.0, 123.0, 152.0, 118.5, 117.5}};

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void test_worked_example(void) {
  eplb_plan p;
  char why[256];
  T_CHECK(eplb_rebalance(&ex_weight[0][0], 2, 12, 16, 4, 2, 8, EPLB_AUTO, &p, why, sizeof why) == 0);
  T_EQ_INT(p.hierarchical, 1);
  T_EQ_INT(p.per_gpu, 2);
  for (int l = 0; l < 2; l++) {
    /* Replica counts: those of the published plan. */
    int cnt[12] = {0};
    for (int s = 0; s < 16; s++) cnt[ex_phy2log[l][s]]++;
    for (int e = 0; e < 12; e++) T_CHECKF(p.logcnt[l * 12 + e] == cnt[e], "layer %d expert %d: %d replicas, published %d", l, e, p.logcnt[l * 12 + e], cnt[e]);
    /* Each GPU holds the same experts as in the published plan (slot order inside a GPU may
     * differ), so the per-GPU loads match exactly, GPU by GPU. */
    double gl[8];
    double mx = eplb_gpu_loads(&p, l, ex_weight[l], gl);
    for (int g = 0; g < 8; g++) {
      T_CHECKF(gl[g] == ex_gpu_load[l][g], "layer %d GPU %d load %g, published plan %g", l, g, gl[g], ex_gpu_load[l][g]);
      int a[2] = {p.phy2log[l * 16 + 2 * g], p.phy2log[l * 16 + 2 * g + 1]};
      int b[2] = {ex_phy2log[l][2 * g], ex_phy2log[l][2 * g + 1]};
      qsort(a, 2, sizeof(int), cmp_int);
      qsort(b, 2, sizeof(int), cmp_int);
      T_CHECKF(a[0] == b[0] && a[1] == b[1], "layer %d GPU %d holds {%d,%d}, published {%d,%d}", l, g, a[0], a[1], b[0], b[1]);
    }
    T_NEAR(mx, l == 0 ? 156.0 : 179.5, 0);
    /* log2phy inverts phy2log. */
    for (int s = 0; s < 16; s++) {
      int e = p.phy2log[l * 16 + s], r = p.phy_rank[l * 16 + s];
      T_EQ_INT(p.log2phy[(l * 12 + e) * p.max_replicas + r], s);
    }
  }
  /* Without redundancy the same 12 experts on 6 GPUs are worse than the plan's max load. */
  eplb_plan id;
  T_CHECK(eplb_plan_identity(2, 12, 6, &id, why, sizeof why) == 0);
  double gl[6];
  T_CHECK(eplb_gpu_loads(&id, 0, ex_weight[0], gl) > 156.0);
  eplb_plan_free(&id);
  eplb_plan_free(&p);
}

/* Balanced packing by hand: weights 10 9 8 7 6 5 into 2 packs of 3. Heaviest first onto the
 * lightest pack with room: 10->A, 9->B, 8->B (17), 7->A (17), 6->A (23, A full), 5->B (22). */
static void test_packing(void) {
  double w[6] = {8, 10, 5, 9, 7, 6};
  int pack[6], rank[6];
  eplb_balanced_packing(w, 6, 2, pack, rank);
  int expect_pack[6] = {1, 0, 1, 1, 0, 0}, expect_rank[6] = {1, 0, 2, 0, 1, 2};
  for (int i = 0; i < 6; i++) {
    T_EQ_INT(pack[i], expect_pack[i]);
    T_EQ_INT(rank[i], expect_rank[i]);
  }
  /* One item per pack: the identity. */
  eplb_balanced_packing(w, 6, 6, pack, rank);
  for (int i = 0; i < 6; i++) T_CHECK(pack[i] == i && rank[i] == 0);
}

/* Replication by hand: loads 100 60 30, 5 slots: 100/1 -> 2 replicas (50), then 60/1 -> 2 (30). */
static void test_replicate(void) {
  double w[3] = {100, 60, 30};
  int p2l[5], rank[5], cnt[3];
  eplb_replicate(w, 3, 5, p2l, rank, cnt);
  T_EQ_INT(p2l[3], 0);
  T_EQ_INT(p2l[4], 1);
  T_EQ_INT(rank[3], 1);
  T_EQ_INT(rank[4], 1);
  T_CHECK(cnt[0] == 2 && cnt[1] == 2 && cnt[2] == 1);
}

/* Global policy (groups not divisible by nodes): every slot is used once, replica counts sum to
 * the slots, and the max load is no worse than without redundancy. */
static void test_global(void) {
  eplb_plan p;
  char why[256];
  T_CHECK(eplb_rebalance(&ex_weight[0][0], 2, 12, 16, 3, 2, 8, EPLB_AUTO, &p, why, sizeof why) == 0);
  T_EQ_INT(p.hierarchical, 0);
  for (int l = 0; l < 2; l++) {
    int sum = 0;
    for (int e = 0; e < 12; e++) sum += p.logcnt[l * 12 + e];
    T_EQ_INT(sum, 16);
    /* Lower bound: total / GPUs; and the heaviest expert's share (largest load / its replicas). */
    double tot = 0, gl[8];
    for (int e = 0; e < 12; e++) tot += ex_weight[l][e];
    double mx = eplb_gpu_loads(&p, l, ex_weight[l], gl);
    T_CHECK(mx >= tot / 8 - 1e-9);
    T_CHECK(mx <= 1.25 * tot / 8);
  }
  eplb_plan_free(&p);
}

static void test_errors(void) {
  eplb_plan p;
  char why[256] = "";
  T_CHECK(eplb_rebalance(&ex_weight[0][0], 2, 12, 10, 4, 2, 8, EPLB_AUTO, &p, why, sizeof why) == -1);
  T_CHECK(strstr(why, "cannot hold") != NULL);
  T_CHECK(eplb_rebalance(&ex_weight[0][0], 2, 12, 18, 4, 2, 8, EPLB_AUTO, &p, why, sizeof why) == -1);
  T_CHECK(strstr(why, "divide") != NULL);
  T_CHECK(eplb_rebalance(&ex_weight[0][0], 2, 12, 16, 3, 2, 8, EPLB_HIERARCHICAL, &p, why, sizeof why) == -1);
  T_CHECK(strstr(why, "hierarchical") != NULL);
  T_CHECK(eplb_rebalance(&ex_weight[0][0], 2, 12, 16, 4, 3, 8, EPLB_AUTO, &p, why, sizeof why) == -1);
  T_CHECK(strstr(why, "nodes") != NULL);
  double bad[12] = {1, 2, -3};
  T_CHECK(eplb_rebalance(bad, 1, 12, 12, 4, 2, 4, EPLB_AUTO, &p, why, sizeof why) == -1);
}

/* Gate statistics: every token counts top-k times; skew concentrates load; same seed, same
 * loads; EPLB cuts the imbalance of skewed loads on a fresh window. */
static void test_gate_loads(void) {
  enum { E = 64, L = 2, T = 2048, K = 4 };
  double *w0 = malloc(sizeof(double) * L * E), *w1 = malloc(sizeof(double) * L * E), *ws = malloc(sizeof(double) * L * E);
  eplb_gate_loads(E, 8, 4, K, 0.0, 7, L, 0, T, w0);
  eplb_gate_loads(E, 8, 4, K, 0.0, 7, L, 0, T, w1);
  T_CHECK(memcmp(w0, w1, sizeof(double) * L * E) == 0);
  double sum = 0, mx0 = 0, mxs = 0;
  for (int e = 0; e < E; e++) sum += w0[e], mx0 = w0[e] > mx0 ? w0[e] : mx0;
  T_NEAR(sum, (double)T * K, 0);
  eplb_gate_loads(E, 8, 4, K, 1.2, 7, L, 0, T, ws);
  for (int e = 0; e < E; e++) mxs = ws[e] > mxs ? ws[e] : mxs;
  T_CHECKF(mxs > 2 * mx0, "skewed max %g vs uniform max %g", mxs, mx0);
  /* Plan on one window, evaluate on the next. */
  double *fresh = malloc(sizeof(double) * L * E);
  eplb_gate_loads(E, 8, 4, K, 1.2, 7, L, T, T, fresh);
  eplb_plan bal, id;
  char why[256];
  T_CHECK(eplb_rebalance(ws, L, E, E + 16, 8, 2, 16, EPLB_AUTO, &bal, why, sizeof why) == 0);
  T_CHECK(eplb_plan_identity(L, E, 16, &id, why, sizeof why) == 0);
  for (int l = 0; l < L; l++) {
    double ib = eplb_imbalance(&bal, l, fresh + l * E), ii = eplb_imbalance(&id, l, fresh + l * E);
    T_CHECKF(ib < ii, "layer %d: balanced imbalance %.3f vs identity %.3f", l, ib, ii);
  }
  eplb_plan_free(&bal);
  eplb_plan_free(&id);
  free(w0), free(w1), free(ws), free(fresh);
}

int main(void) {
  T_RUN(test_worked_example);
  T_RUN(test_packing);
  T_RUN(test_replicate);
  T_RUN(test_global);
  T_RUN(test_errors);
  T_RUN(test_gate_loads);
  return t_done();
}
