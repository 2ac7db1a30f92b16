/* tests/test_sched.c — pipeline schedules (sim/schedule.h) and the F&B overlap (sim/overlap.h).
 *
 * Op orders are compared with sequences derived by hand from the reference code (dualpipe.py,
 * dualpipev.py, Megatron-LM's 1F1B loops, the ZB-H1 schedule) for small cases (the DualPipe,
 * DualPipeV and ZB-H1 ones also agree with the reference code itself, executed out of tree with
 * recording stand-ins for its compute and P2P calls, message placement included); every schedule is
 * replayed and checked against the dependency rule; replayed bubbles equal the published formulas
 * wherever the formulas' assumptions hold (a grid of costs, PP 4/8/16), and the check is shown to
 * catch a broken schedule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "overlap.h"
#include "schedule.h"
#include "test.h"

/* A rank's ops as text: F3 = forward of micro-batch 3, B full backward, I backward-for-input,
 * W weights, F3b1 an F&B pair; lower case on the rank's odd model chunk. */
static void rank_ops(const sched *s, int r, char *out, size_t len) {
  size_t n = 0;
  out[0] = 0;
  for (size_t i = 0; i < s->ranks[r].n_ops; i++) {
    const sched_op *op = &s->ranks[r].ops[i];
    char f[16] = "", b[16] = "";
    if (op->kind == SCHED_F || op->kind == SCHED_FB)
      snprintf(f, sizeof f, "%c%d", sched_chunk_of(s, op->f) % 2 ? 'f' : 'F', op->f.mb);
    if (op->kind != SCHED_F) {
      char l = op->kind == SCHED_BI ? 'I' : op->kind == SCHED_W ? 'W' : 'B';
      snprintf(b, sizeof b, "%c%d", sched_chunk_of(s, op->b) % 2 ? l - 'A' + 'a' : l, op->b.mb);
    }
    n += (size_t)snprintf(out + n, len - n, "%s%s%s", i ? " " : "", f, b);
  }
}

static int build(sched *s, sched_kind k, int pp, int chunks, int virt) {
  sched_spec spec = {.kind = k, .pp = pp, .chunks = chunks, .virt = virt};
  char err[256];
  int rc = sched_build(s, &spec, err, sizeof err);
  if (rc != 0) fprintf(stderr, "build: %s\n", err);
  return rc;
}

static void expect_order(sched_kind k, int pp, int chunks, int virt, const char *const *want) {
  sched s;
  T_CHECK(build(&s, k, pp, chunks, virt) == 0);
  char got[4096];
  for (int r = 0; r < s.n_ranks; r++) {
    rank_ops(&s, r, got, sizeof got);
    T_CHECKF(strcmp(got, want[r]) == 0, "%s rank %d:\n  got  %s\n  want %s", sched_kind_name(k), r, got, want[r]);
  }
  sched_free(&s);
}

/* dualpipe.py with 4 ranks, 8 chunks (4 per direction), stepped through by hand: ranks 1 and 2
 * are the middle ranks (first F0 and B1 of step 4 not overlapped); ranks 2, 3 have phases
 * flipped, so they read like ranks 1, 0 with the directions swapped. */
static void test_dualpipe_order_pp4(void) {
  static const char *const want[] = {
      "F0 F1 F2 f0 i0 w0 f1 F3b1 f2B0 b2 f3B1 b3 I2 W2 I3 W3",
      "F0 f0 F1 f1 F2 b0 f2B0 F3b1 f3B1 b2 B2 i3 I3 w3 W3",
      "f0 F0 f1 F1 f2 B0 F2b0 f3B1 F3b1 B2 b2 I3 i3 W3 w3",
      "f0 f1 f2 F0 I0 W0 F1 f3B1 F2b0 B2 F3b1 B3 i2 w2 i3 w3",
  };
  expect_order(SCHED_DUALPIPE, 4, 8, 0, want);
}

/* dualpipev.py with 2 ranks (4 stages), 4 chunks; lower case = the way back up the V. */
static void test_dualpipev_order_pp2(void) {
  static const char *const want[] = {
      "F0 F1 F2 f0 i0 w0 f1 F3b1 f2B0 b2 f3B1 b3 I2 W2 I3 W3",
      "F0 f0 F1 f1 F2 b0 f2B0 F3b1 f3B1 b2 B2 i3 I3 w3 W3",
  };
  expect_order(SCHED_DUALPIPEV, 2, 4, 0, want);
}

/* Megatron 1F1B, 4 ranks, 6 micro-batches: PP-r-1 warm-up forwards, then 1F1B, then cool-down. */
static void test_1f1b_order(void) {
  static const char *const want[] = {
      "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5",
      "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5",
      "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5",
      "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5",
  };
  expect_order(SCHED_1F1B, 4, 6, 0, want);
}

/* ZB-H1, 4 ranks, 6 micro-batches: rank r defers r weight gradients (FIFO) to the end; rank 0
 * runs full backwards. */
static void test_zb1p_order(void) {
  static const char *const want[] = {
      "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5",
      "F0 F1 F2 I0 F3 I1 W0 F4 I2 W1 F5 I3 W2 I4 W3 I5 W4 W5",
      "F0 F1 I0 F2 I1 F3 I2 W0 F4 I3 W1 F5 I4 W2 I5 W3 W4 W5",
      "F0 I0 F1 I1 F2 I2 F3 I3 W0 F4 I4 W1 F5 I5 W2 W3 W4 W5",
  };
  expect_order(SCHED_ZB1P, 4, 6, 0, want);
}

/* Megatron interleaved 1F1B, 2 ranks x 2 chunks, 4 micro-batches: groups of PP micro-batches
 * per chunk; warm-up (PP-r-1)*2 + (v-1)*PP. */
static void test_interleaved_order(void) {
  static const char *const want[] = {
      "F0 F1 f0 f1 F2 b0 F3 b1 f2 B0 f3 B1 b2 b3 B2 B3",
      "F0 F1 f0 b0 f1 b1 F2 B0 F3 B1 f2 b2 f3 b3 B2 B3",
  };
  expect_order(SCHED_INTERLEAVED, 2, 4, 2, want);
}

/* The spec rules the reference implementations assert. */
static void test_spec_errors(void) {
  sched s;
  sched_spec bad[] = {
      {SCHED_DUALPIPE, 5, 10, 0},  /* odd PP */
      {SCHED_DUALPIPE, 4, 6, 0},   /* chunks < 2 PP */
      {SCHED_DUALPIPE, 4, 9, 0},   /* odd chunks */
      {SCHED_DUALPIPEV, 4, 7, 0},  /* chunks < 2 PP */
      {SCHED_INTERLEAVED, 4, 6, 2}, /* chunks not a multiple of PP */
      {SCHED_1F1B, 1, 4, 0},       /* PP < 2 */
      {SCHED_1F1B, 4, 0, 0},       /* no micro-batches */
  };
  char err[256];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    T_CHECKF(sched_build(&s, &bad[i], err, sizeof err) == -1, "spec %zu accepted", i);
    T_CHECK(err[0] != 0);
  }
  sched_spec ok = {SCHED_DUALPIPEV, 3, 6, 0}; /* DualPipeV takes any PP */
  T_CHECK(sched_build(&s, &ok, err, sizeof err) == 0);
  sched_free(&s);
  sched_kind k;
  T_CHECK(sched_kind_parse("dualpipev", &k) == 0 && k == SCHED_DUALPIPEV);
  T_CHECK(sched_kind_parse("gpipe", &k) == -1);
}

/* Replays and dependency checks, across kinds, sizes, costs, and both P2P models; every pass
 * runs once on its own rank. */
static void test_dependency_order(void) {
  static const sched_cost costs[] = {
      {.f = 3, .b = 5, .w = 2, .fb = 7}, {.f = 1, .b = 7, .w = 5, .fb = 3},
      {.f = 4, .b = 2, .w = 1, .fb = 9, .p2p = 2}, {.f = 2, .b = 3, .w = 1, .fb = 4, .eager = 1},
      {.f = 5, .b = 6, .w = 4, .fb = 8, .p2p = 3, .eager = 1}};
  struct { sched_kind k; int pp, chunks, virt; } cases[] = {
      {SCHED_1F1B, 4, 3, 0},        {SCHED_1F1B, 8, 17, 0},      {SCHED_ZB1P, 4, 2, 0},
      {SCHED_ZB1P, 6, 20, 0},       {SCHED_INTERLEAVED, 4, 8, 3}, {SCHED_INTERLEAVED, 3, 3, 2},
      {SCHED_DUALPIPE, 2, 4, 0},    {SCHED_DUALPIPE, 6, 14, 0},  {SCHED_DUALPIPE, 8, 20, 0},
      {SCHED_DUALPIPEV, 3, 7, 0},   {SCHED_DUALPIPEV, 4, 10, 0}, {SCHED_DUALPIPEV, 1 + 1, 9, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sched s;
    if (build(&s, cases[i].k, cases[i].pp, cases[i].chunks, cases[i].virt) != 0) {
      T_CHECK(0);
      continue;
    }
    int per_rank_f = s.n_mb * s.n_dirs * s.n_stages / s.n_ranks; /* forwards each rank runs */
    for (int r = 0; r < s.n_ranks; r++) {
      int nf = 0, nb = 0;
      for (size_t j = 0; j < s.ranks[r].n_ops; j++) {
        sched_op_kind k = s.ranks[r].ops[j].kind;
        nf += k == SCHED_F || k == SCHED_FB;
        nb += k == SCHED_B || k == SCHED_BI || k == SCHED_FB;
      }
      T_CHECKF(nf == per_rank_f && nb == per_rank_f, "%s case %zu rank %d: %d F, %d B, want %d", sched_kind_name(s.kind),
               i, r, nf, nb, per_rank_f);
    }
    for (size_t c = 0; c < sizeof costs / sizeof costs[0]; c++) {
      sched_replay rp;
      char err[256];
      int rc = sched_replay_run(&s, &costs[c], &rp, err, sizeof err);
      T_CHECKF(rc == 0, "case %zu cost %zu: %s", i, c, err);
      if (rc != 0) continue;
      int bad = sched_check(&s, &rp, &costs[c], err, sizeof err);
      T_CHECKF(bad == 0, "%s case %zu cost %zu: %d violations: %s", sched_kind_name(s.kind), i, c, bad, err);
      sched_replay_free(&rp);
    }
    sched_free(&s);
  }
}

/* The check must catch what it claims to: an op moved before its input, and a lost message. */
static void test_check_catches_errors(void) {
  sched s;
  sched_cost c = {.f = 1, .b = 2, .w = 1, .fb = 3};
  char err[256];
  sched_replay rp;
  T_CHECK(build(&s, SCHED_1F1B, 4, 6, 0) == 0);
  /* On the last rank, swap F0 and B0: the backward now runs before its forward. */
  sched_op *ops = s.ranks[3].ops, tmp = ops[0];
  ops[0] = ops[1];
  ops[1] = tmp;
  uint32_t t = ops[0].recv_at;
  ops[0].recv_at = ops[1].recv_at, ops[1].recv_at = t;
  t = ops[0].n_recv, ops[0].n_recv = ops[1].n_recv, ops[1].n_recv = t;
  T_CHECK(sched_replay_run(&s, &c, &rp, err, sizeof err) == 0);
  T_CHECK(sched_check(&s, &rp, &c, err, sizeof err) > 0);
  sched_replay_free(&rp);
  sched_free(&s);
  /* A message that is never sent deadlocks the replay. */
  T_CHECK(build(&s, SCHED_DUALPIPE, 4, 8, 0) == 0);
  s.ranks[1].ops[0].n_send = 0;
  err[0] = 0;
  T_CHECK(sched_replay_run(&s, &c, &rp, err, sizeof err) == -1);
  T_CHECK(strstr(err, "deadlock") != NULL);
  sched_free(&s);
}

/* Replayed bubble == published formula wherever sched_bubble_formula says its assumptions hold,
 * over a grid of costs; and the assumptions are not vacuous (some grid points miss them, and
 * there the formula is indeed off for ZB1P and DualPipe). */
static void test_bubble_formulas(void) {
  static const sched_kind kinds[] = {SCHED_1F1B, SCHED_INTERLEAVED, SCHED_ZB1P, SCHED_DUALPIPE, SCHED_DUALPIPEV};
  static const int pps[] = {4, 8, 16};
  int exact_cases = 0, differs[SCHED_KIND_COUNT] = {0};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
    for (size_t p = 0; p < 3; p++) {
      int pp = pps[p];
      int ranks = kinds[k] == SCHED_DUALPIPEV ? pp / 2 : pp;
      int chunks_list[2] = {2 * pp, 5 * pp};
      for (int ci = 0; ci < 2; ci++) {
        sched s;
        if (build(&s, kinds[k], ranks, chunks_list[ci], 2) != 0) {
          T_CHECK(0);
          continue;
        }
        for (sim_ps f = 1; f <= 3; f++)
          for (sim_ps bi = 1; bi <= 3; bi++)
            for (sim_ps w = 1; w <= 3; w++) {
              sim_ps b = bi + w;
              sim_ps fbs[3] = {b, b + f / 2, f + b};
              for (int fi = 0; fi < 3; fi++) {
                sched_cost c = {.f = f * 1000, .b = b * 1000, .w = w * 1000, .fb = fbs[fi] * 1000};
                sched_replay rp;
                char err[256];
                if (sched_replay_run(&s, &c, &rp, err, sizeof err) != 0) {
                  T_CHECKF(0, "%s", err);
                  continue;
                }
                int exact;
                double formula = sched_bubble_formula(&s, &c, &exact);
                double got = (double)sched_replay_bubble(&s, &rp);
                if (exact) {
                  exact_cases++;
                  T_CHECKF(got == formula, "%s pp %d chunks %d F %llu B %llu W %llu FB %llu: replay %.0f, formula %.0f",
                           sched_kind_name(s.kind), pp, chunks_list[ci], (unsigned long long)c.f,
                           (unsigned long long)c.b, (unsigned long long)c.w, (unsigned long long)c.fb, got, formula);
                } else if (got != formula) {
                  differs[s.kind]++;
                }
                sched_replay_free(&rp);
              }
            }
        sched_free(&s);
      }
    }
  T_CHECK(exact_cases > 500);
  T_CHECK(differs[SCHED_ZB1P] > 0);
  T_CHECK(differs[SCHED_DUALPIPE] > 0);
  T_CHECK(differs[SCHED_DUALPIPEV] > 0);
}

/* The README figure's case: 8 ranks, 20 micro-batches, F=1 B=2 W=1 F&B=3 gives a 6-unit bubble;
 * eager and batched P2P agree on it, and latency only adds. */
static void test_readme_case(void) {
  sched s;
  T_CHECK(build(&s, SCHED_DUALPIPE, 8, 20, 0) == 0);
  sched_cost c = {.f = 10, .b = 20, .w = 10, .fb = 30};
  sched_replay a, b, l;
  char err[256];
  T_CHECK(sched_replay_run(&s, &c, &a, err, sizeof err) == 0);
  c.eager = 1;
  T_CHECK(sched_replay_run(&s, &c, &b, err, sizeof err) == 0);
  c.eager = 0;
  c.p2p = 1;
  T_CHECK(sched_replay_run(&s, &c, &l, err, sizeof err) == 0);
  T_EQ_INT(sched_replay_bubble(&s, &a), 60);
  T_EQ_INT(a.makespan, b.makespan);
  T_CHECK(l.makespan > a.makespan);
  /* Every rank computes 20 F and 20 B worth of work, some overlapped: busy = 20*(F+B) - pairs*(F+B-F&B) = 600 here. */
  for (int r = 0; r < 8; r++) T_EQ_INT(a.busy[r], 600);
  sched_replay_free(&a);
  sched_replay_free(&b);
  sched_replay_free(&l);
  sched_free(&s);
}

/* Memory: DualPipe's table (PP+1 activations at the peak on every rank, 2 stages of parameters)
 * and 1F1B's PP on the first rank. */
static void test_memory(void) {
  sched s;
  for (int pp = 4; pp <= 16; pp *= 2) {
    T_CHECK(build(&s, SCHED_DUALPIPE, pp, 3 * pp, 0) == 0);
    for (int r = 0; r < pp; r++) {
      T_EQ_INT(sched_peak_activations(&s, r), pp + 1);
      T_EQ_INT(sched_param_stages(&s, r), 2);
    }
    sched_free(&s);
    T_CHECK(build(&s, SCHED_DUALPIPEV, pp / 2, 3 * pp, 0) == 0);
    for (int r = 0; r < pp / 2; r++) T_EQ_INT(sched_peak_activations(&s, r), pp + 1);
    sched_free(&s);
    T_CHECK(build(&s, SCHED_1F1B, pp, 3 * pp, 0) == 0);
    T_EQ_INT(sched_peak_activations(&s, 0), pp);
    T_EQ_INT(sched_peak_activations(&s, pp - 1), 1);
    T_EQ_INT(sched_param_stages(&s, 0), 1);
    sched_free(&s);
    T_CHECK(build(&s, SCHED_ZB1P, pp, 3 * pp, 0) == 0);
    T_EQ_INT(sched_peak_activations(&s, 0), pp);
    sched_free(&s);
  }
}

/* The Gantt chart: one row per rank, the labels of the ops, within the width asked. */
static void test_gantt(void) {
  sched s;
  T_CHECK(build(&s, SCHED_DUALPIPE, 4, 8, 0) == 0);
  sched_cost c = {.f = 1000000, .b = 2000000, .w = 1000000, .fb = 2500000};
  sched_replay rp;
  char err[256];
  T_CHECK(sched_replay_run(&s, &c, &rp, err, sizeof err) == 0);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  sched_gantt_print(f, &s, &rp, 1e6, 120);
  fclose(f);
  int rows = 0;
  for (char *line = buf; line && *line;) {
    char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    if (strncmp(line, "rank ", 5) == 0) {
      rows++;
      T_CHECK(n <= 9 + 120);
    }
    line = nl ? nl + 1 : NULL;
  }
  T_EQ_INT(rows, 4);
  T_CHECK(strstr(buf, "F3b1") != NULL);
  T_CHECK(strstr(buf, "rank 3   f0") != NULL);
  free(buf);
  sched_replay_free(&rp);
  sched_free(&s);
}

/* The F&B pair: communication equal to the compute beside it is hidden; twice it exposes the
 * excess; SMs taken by communication stretch compute; the serial baseline adds everything. */
static void test_overlap(void) {
  overlap_in in = {.attn_f = 700, .mlp_f = 1400, .attn_b = 700, .attn_w = 700, .mlp_b = 1400, .mlp_w = 700,
                   .sms_total = 8, .sms_comm = 1};
  /* compute stretched by 8/7: 800, 1600, 800, 800, 1600, 800 */
  T_EQ_INT(overlap_stretch(700, 8, 1), 800);
  in.combine_b = 800, in.dispatch_f = 2400, in.dispatch_b = 1600, in.combine_f = 1600;
  overlap_result o;
  T_CHECK(overlap_pair(&in, &o) == 0);
  T_EQ_INT(o.compute, 6400);
  T_EQ_INT(o.comm, 6400);
  T_EQ_INT(o.exposed_comm, 0);
  T_EQ_INT(o.pair, 6400);
  T_EQ_INT(o.start[OVERLAP_DISPATCH_F], o.end[OVERLAP_ATTN_F]);
  in.combine_b *= 2, in.dispatch_f *= 2, in.dispatch_b *= 2, in.combine_f *= 2;
  T_CHECK(overlap_pair(&in, &o) == 0);
  T_EQ_INT(o.exposed_comm, 6400);
  T_EQ_INT(o.pair, 12800);
  /* No communication at all: the pair is the stretched compute, longer than on all SMs. */
  overlap_in none = in;
  none.combine_b = none.dispatch_f = none.dispatch_b = none.combine_f = 0;
  T_CHECK(overlap_pair(&none, &o) == 0);
  T_EQ_INT(o.pair, 6400);
  T_EQ_INT(o.serial_f + o.serial_b, 5600);
  /* PP sends at the tail are exposed unless the weight gradients cover them. */
  none.pp_b = 500;
  T_CHECK(overlap_pair(&none, &o) == 0);
  T_EQ_INT(o.exposed_comm, 0); /* PP_B starts after ATTN_B and runs under ATTN_W (800) */
  none.pp_b = 1000;
  T_CHECK(overlap_pair(&none, &o) == 0);
  T_EQ_INT(o.exposed_comm, 200);
  /* The SM split must leave both sides some SMs. */
  in.sms_comm = 0;
  T_CHECK(overlap_pair(&in, &o) == -1);
  in.sms_comm = 8;
  T_CHECK(overlap_pair(&in, &o) == -1);
}

int main(void) {
  T_RUN(test_dualpipe_order_pp4);
  T_RUN(test_dualpipev_order_pp2);
  T_RUN(test_1f1b_order);
  T_RUN(test_zb1p_order);
  T_RUN(test_interleaved_order);
  T_RUN(test_spec_errors);
  T_RUN(test_dependency_order);
  T_RUN(test_check_catches_errors);
  T_RUN(test_bubble_formulas);
  T_RUN(test_readme_case);
  T_RUN(test_memory);
  T_RUN(test_gantt);
  T_RUN(test_overlap);
  return t_done();
}
