/* sim/cmd_schedule.c — `moesim schedule`: generate a pipeline schedule, replay it on an ideal
 * machine (uniform per-chunk times, zero P2P latency unless asked), check its dependency order,
 * and print a text Gantt chart with per-rank busy/idle, the bubble beside its published formula,
 * and each rank's activation and parameter memory; or, with --csv, `rank,busy,idle`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "schedule.h"
#include "util.h"

#define UNIT_PS 1e6 /* one time unit of the options = 1e6 ps, so 6 decimals survive */

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim schedule --kind K --pp P --chunks C [--f F] [--b B] [--w W] [--fb FB]\n"
          "                       [--virt V] [--p2p L] [--eager] [--csv | --ops] [--width N]\n"
          "\n"
          "Generates a pipeline schedule per rank (the reference implementations' op order), replays\n"
          "it on an ideal machine with uniform per-chunk times, checks that no op runs before its\n"
          "inputs, and prints a text Gantt chart, per-rank busy/idle time, the bubble (largest idle\n"
          "over ranks) beside its published formula, and per-rank activation/parameter memory.\n"
          "Times are in any one unit (us, ms...); outputs use the same unit (resolution 1e-6).\n"
          "\n"
          "  --kind K     1f1b | interleaved | zb1p | dualpipe | dualpipev\n"
          "  --pp P       pipeline ranks (devices), >= 2; dualpipe: even; dualpipev: >= 1, runs 2P stages\n"
          "  --chunks C   micro-batches per step; dualpipe: even, >= 2P (both directions together);\n"
          "               dualpipev: >= 2P; interleaved: a multiple of P\n"
          "  --f F        forward time of one chunk (default 1)\n"
          "  --b B        full backward time of one chunk (default 2)\n"
          "  --w W        its backward-for-weights part; backward-for-input takes B-W (default 1)\n"
          "  --fb FB      time of an overlapped forward+backward pair (default F+B: no overlap gain)\n"
          "  --virt V     interleaved: model chunks per rank (default 2)\n"
          "  --p2p L      latency of a message between ranks (default 0, the ideal machine)\n"
          "  --eager      send each tensor when made and wait only where it is needed (how the\n"
          "               DualPipe README figures are drawn); default: batched P2P commits as the\n"
          "               reference code posts them (dualpipe.py's W can wait for the next input)\n"
          "  --csv        print only `rank,busy,idle`, one row per rank\n"
          "  --ops        print only the op lists: `rank,op,kind,f,b,start,end,recv,send`, one row per op;\n"
          "               f, b = dir:micro-batch:stage of the forward / backward part; recv, send =\n"
          "               the messages the op's commit waits for / posted when it ends, each\n"
          "               act|grad:dir:micro-batch:stage>peer, space-separated\n"
          "  --width N    widest Gantt chart, in columns (default 200)\n"
          "  -h, --help   this text\n"
          "\n"
          "example: moesim schedule --kind dualpipe --pp 8 --chunks 20 --f 1 --b 2 --w 1 --fb 2.5\n");
}

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "moesim schedule: error: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  usage(stderr);
  return UTIL_EXIT_USAGE;
}

/* Parses a non-negative time in units; -1 on a malformed or out-of-range value. */
static int parse_time(const char *s, sim_ps *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9) return -1;
  *out = (sim_ps)llround(v * UNIT_PS);
  return 0;
}

static int parse_int(const char *s, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < -1000000000L || v > 1000000000L) return -1;
  *out = (int)v;
  return 0;
}

static double units(sim_ps t) { return (double)t / UNIT_PS; }

static void print_summary(const sched *s, const sched_replay *rp, const sched_cost *c) {
  printf("\n%-6s %10s %10s %8s %10s\n", "rank", "busy", "idle", "peak_act", "param_stg");
  for (int r = 0; r < s->n_ranks; r++)
    printf("%-6d %10.6g %10.6g %8d %10d\n", r, units(rp->busy[r]), units(sched_replay_idle(rp, r)),
           sched_peak_activations(s, r), sched_param_stages(s, r));
  int exact;
  double formula = sched_bubble_formula(s, c, &exact);
  printf("\nstep (makespan): %.6g\n", units(rp->makespan));
  printf("bubble (largest idle over ranks): %.6g\n", units(sched_replay_bubble(s, rp)));
  printf("published formula %s with PP=%d: %.6g\n", sched_bubble_formula_text(s->kind), sched_table_pp(s),
         formula / UNIT_PS);
  if (exact)
    printf("  its assumptions hold here, so the replay must equal it\n");
  else
    printf("  its assumptions do not hold here (see schedule.h): the replay is the truth\n");
  int peak = 0, params = 0;
  for (int r = 0; r < s->n_ranks; r++) {
    if (sched_peak_activations(s, r) > peak) peak = sched_peak_activations(s, r);
    if (sched_param_stages(s, r) > params) params = sched_param_stages(s, r);
  }
  printf("activations: at most %d stage activations on a rank (1 = one micro-batch through 1/%d of the model)\n",
         peak, s->n_stages);
  printf("parameters: at most %d stage(s) of 1/%d of the model on a rank\n", params, s->n_stages);
}

static void print_pass(sched_pass p) {
  if (p.mb >= 0) printf("%d:%d:%d", p.dir, p.mb, p.stage);
}

static void print_msgs(const sched_msg *m, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    printf("%s%s:%d:%d:%d>%d", i ? " " : "", m[i].grad ? "grad" : "act", m[i].src.dir, m[i].src.mb, m[i].src.stage,
           m[i].peer);
}

/* One row per op: what the training simulator replays. */
static void print_ops(const sched *s, const sched_replay *rp) {
  static const char *const kinds[] = {"F", "B", "BI", "W", "FB"};
  printf("rank,op,kind,f,b,start,end,recv,send\n");
  for (int r = 0; r < s->n_ranks; r++)
    for (size_t i = 0; i < s->ranks[r].n_ops; i++) {
      const sched_op *op = &s->ranks[r].ops[i];
      size_t at = rp->op_base[r] + i;
      printf("%d,%zu,%s,", r, i, kinds[op->kind]);
      print_pass(op->f);
      putchar(',');
      print_pass(op->b);
      printf(",%.6g,%.6g,", units(rp->start[at]), units(rp->end[at]));
      print_msgs(s->ranks[r].recv + op->recv_at, op->n_recv);
      putchar(',');
      print_msgs(s->ranks[r].send + op->send_at, op->n_send);
      putchar('\n');
    }
}

int cmd_schedule(int argc, char **argv) {
  sched_spec spec = {.kind = SCHED_KIND_COUNT, .pp = 0, .chunks = 0, .virt = 2};
  sched_cost cost = {.f = (sim_ps)UNIT_PS, .b = 2 * (sim_ps)UNIT_PS, .w = (sim_ps)UNIT_PS, .p2p = 0};
  int fb_set = 0, csv = 0, ops = 0, width = 200;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      return 0;
    }
    if (strcmp(a, "--csv") == 0) {
      csv = 1;
      continue;
    }
    if (strcmp(a, "--ops") == 0) {
      ops = 1;
      continue;
    }
    if (strcmp(a, "--eager") == 0) {
      cost.eager = 1;
      continue;
    }
    if (a[0] != '-' || a[1] != '-') return bad_usage("unexpected argument '%s'", a);
    if (i + 1 >= argc) return bad_usage("option '%s' needs a value", a);
    const char *v = argv[++i];
    if (strcmp(a, "--kind") == 0) {
      if (sched_kind_parse(v, &spec.kind) != 0) return bad_usage("unknown schedule kind '%s'", v);
    } else if (strcmp(a, "--pp") == 0) {
      if (parse_int(v, &spec.pp) != 0) return bad_usage("--pp: not an integer: '%s'", v);
    } else if (strcmp(a, "--chunks") == 0) {
      if (parse_int(v, &spec.chunks) != 0) return bad_usage("--chunks: not an integer: '%s'", v);
    } else if (strcmp(a, "--virt") == 0) {
      if (parse_int(v, &spec.virt) != 0) return bad_usage("--virt: not an integer: '%s'", v);
    } else if (strcmp(a, "--width") == 0) {
      if (parse_int(v, &width) != 0 || width < 20 || width > 100000) return bad_usage("--width: want 20..100000, got '%s'", v);
    } else if (strcmp(a, "--f") == 0) {
      if (parse_time(v, &cost.f) != 0) return bad_usage("--f: want a time >= 0, got '%s'", v);
    } else if (strcmp(a, "--b") == 0) {
      if (parse_time(v, &cost.b) != 0) return bad_usage("--b: want a time >= 0, got '%s'", v);
    } else if (strcmp(a, "--w") == 0) {
      if (parse_time(v, &cost.w) != 0) return bad_usage("--w: want a time >= 0, got '%s'", v);
    } else if (strcmp(a, "--fb") == 0) {
      if (parse_time(v, &cost.fb) != 0) return bad_usage("--fb: want a time >= 0, got '%s'", v);
      fb_set = 1;
    } else if (strcmp(a, "--p2p") == 0) {
      if (parse_time(v, &cost.p2p) != 0) return bad_usage("--p2p: want a time >= 0, got '%s'", v);
    } else {
      return bad_usage("unknown option '%s'", a);
    }
  }
  if (spec.kind == SCHED_KIND_COUNT) return bad_usage("%s", "--kind is required");
  if (spec.pp == 0) return bad_usage("%s", "--pp is required");
  if (spec.chunks == 0) return bad_usage("%s", "--chunks is required");
  if (!fb_set) cost.fb = cost.f + cost.b;
  if (cost.w > cost.b) return bad_usage("%s", "--w must not exceed --b (W is part of the full backward)");

  char err[256];
  sched s;
  if (sched_build(&s, &spec, err, sizeof err) != 0) {
    fprintf(stderr, "moesim schedule: error: %s\n", err);
    return UTIL_EXIT_USAGE;
  }
  sched_replay rp;
  if (sched_replay_run(&s, &cost, &rp, err, sizeof err) != 0) {
    fprintf(stderr, "moesim schedule: internal error: %s\n", err);
    sched_free(&s);
    return UTIL_EXIT_SYS;
  }
  int bad = sched_check(&s, &rp, &cost, err, sizeof err);
  if (bad) {
    fprintf(stderr, "moesim schedule: internal error: %d dependency violations; first: %s\n", bad, err);
    sched_replay_free(&rp);
    sched_free(&s);
    return UTIL_EXIT_SYS;
  }
  if (ops) {
    print_ops(&s, &rp);
  } else if (csv) {
    printf("rank,busy,idle\n");
    for (int r = 0; r < s.n_ranks; r++) printf("%d,%.6g,%.6g\n", r, units(rp.busy[r]), units(sched_replay_idle(&rp, r)));
  } else {
    size_t n_ops = rp.op_base[s.n_ranks];
    printf("%s: %d ranks, %d stages per direction, %d micro-batches%s; F=%.6g B=%.6g W=%.6g F&B=%.6g p2p=%.6g%s\n\n",
           sched_kind_name(s.kind), s.n_ranks, s.n_stages, s.n_mb * s.n_dirs, s.n_dirs == 2 ? " (half each way)" : "",
           units(cost.f), units(cost.b), units(cost.w), units(cost.fb), units(cost.p2p),
           cost.eager ? " (eager P2P)" : "");
    sched_gantt_print(stdout, &s, &rp, UNIT_PS, width);
    print_summary(&s, &rp, &cost);
    printf("dependency check: %zu ops, no op before its inputs\n", n_ops);
  }
  sched_replay_free(&rp);
  sched_free(&s);
  return 0;
}
