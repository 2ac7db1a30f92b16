/* sim/cmd_a2a.c — `moesim a2a`: the real expert-parallel dispatch/combine all-to-all across MPI
 * ranks (kernels/comm/a2a.h), launched under mpirun; prints DeepEP/nccl-tests-style figures, appends
 * kernel-table rows with --csv, and with --predict lets the simulator predict the run from isolated
 * measurements (sim/a2a_predict.h). A binary built without MPI says so and exits 2. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a2a_predict.h"
#include "cli.h"
#include "comm/a2a.h"
#include "ktable.h"
#include "util.h"

#if MOESIM_MPI
#include <mpi.h>
#endif

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim a2a [options]                        (one rank)\n"
          "       mpirun --allow-run-as-root --oversubscribe -np N build/moesim a2a [options]\n"
          "\n"
          "Runs DeepSeek-V3's expert-parallel all-to-all for real on N MPI ranks (processes): each rank\n"
          "holds --tokens tokens of width --hidden and a contiguous block of the --experts routed experts\n"
          "(E/N each, the first ranks one fewer when N does not divide E). The gate routes seeded synthetic\n"
          "activations (top-k inside the best --topk-groups of --groups expert groups); ranks grouped\n"
          "into nodes of --ranks-per-node make the routing node-limited when groups align with nodes.\n"
          "Dispatch sends every token once per destination rank as FP8 with one scale per 128\n"
          "elements; combine returns BF16 rows weighted by the gate and sums them at the source.\n"
          "Every run verifies that each (token, expert) pair arrived exactly once and that the output\n"
          "equals the single-process reference within tolerance; a failed check exits 1.\n"
          "\n"
          "On a cluster: mpirun -np N --hostfile HOSTS build/moesim a2a ... (OpenMPI moves bytes over\n"
          "shared memory inside a host and UCX/InfiniBand or TCP between hosts; docs/a2a.md).\n"
          "\n"
          "options:\n"
          "  --tokens N          tokens per rank (default 4096)\n"
          "  --hidden H          elements per token (default 7168)\n"
          "  --experts E         routed experts over all ranks (default 256)\n"
          "  --topk K            experts per token (default 8)\n"
          "  --groups G          expert groups, dividing E (default 8)\n"
          "  --topk-groups M     groups a token may use: at most M nodes when groups align with\n"
          "                      nodes (default 4)\n"
          "  --ranks-per-node R  consecutive ranks forming one node (default 1)\n"
          "  --impl NAME         alltoallv: one MPI_Alltoallv; pairwise: MPI_Isend/MPI_Irecv per rank\n"
          "                      pair in pairwise order; hier: per node through an MPI-3 shared-memory\n"
          "                      window, one message per node pair (default alltoallv)\n"
          "  --iters N           timed iterations (default 20)\n"
          "  --warmup N          untimed iterations first (default 3)\n"
          "  --skew S            expert popularity skew: Zipf exponent, 0 = uniform (default 0)\n"
          "  --seed S            seed of activations, gate and weights (default 1)\n"
          "  --layer             time the whole MoE layer forward per iteration: gate, dispatch, shared\n"
          "                      and routed experts (FP8 grouped GEMMs, SwiGLU), combine\n"
          "  --inter I           --layer: intermediate size of one expert (default 2048)\n"
          "  --shared N          --layer: shared experts (default 1)\n"
          "  --check-tokens N    --layer: tokens per rank checked against the reference layer (default 4)\n"
          "  --threads N         compute threads per rank (default 1: one rank per core)\n"
          "  --csv FILE          append kernel-table rows (dispatch, combine, alltoall; moe_layer with\n"
          "                      --layer; memcpy with --predict) to FILE\n"
          "  --predict           also measure each rank's local phases alone, memcpy and one MPI message,\n"
          "                      build a topology of this machine's cores from them and simulate the run;\n"
          "                      the last line is 'measured X us, simulated Y us, error Z%%' (one host)\n"
          "  -h, --help          this text\n"
          "\n"
          "environment:\n"
          "  MOESIM_A2A_FAULT    test hook: mpi (an invalid MPI call), drop / dup (a received row lost /\n"
          "                      doubled), corrupt (a returned row changed); the run must fail, exit 1\n");
}

/* This process's rank as the launcher tells it (before MPI_Init), or 0. */
static int launcher_rank(void) {
  const char *v = getenv("OMPI_COMM_WORLD_RANK");
  if (!v) v = getenv("PMI_RANK");
  if (!v) v = getenv("PMIX_RANK");
  return v ? atoi(v) : 0;
}

static int bad_usage(const char *fmt, const char *arg) {
  if (launcher_rank() == 0) {
    fprintf(stderr, "moesim a2a: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    usage(stderr);
  }
  return UTIL_EXIT_USAGE;
}

/* Parses an integer in [lo, hi]; -1 with *ok = 0 when not one. */
static long long parse_int(const char *s, long long lo, long long hi, int *ok) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  *ok = *s && !*end && errno == 0 && v >= lo && v <= hi;
  return v;
}

typedef struct a2a_args {
  a2a_cfg c;        /* the run */
  const char *csv;  /* kernel table, or NULL */
} a2a_args;

/* Returns 0, or the exit status of a usage error (already reported). */
static int parse(int argc, char **argv, a2a_args *a, int *help) {
  a2a_cfg *c = &a->c;
  *c = a2a_cfg_default();
  a->csv = NULL;
  *help = 0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (cli_is_help(o)) {
      *help = 1;
      return 0;
    }
    if (strcmp(o, "--layer") == 0) {
      c->layer = 1;
      continue;
    }
    if (strcmp(o, "--predict") == 0) {
      c->predict = 1;
      continue;
    }
    static const char *const valued[] = {"--tokens", "--hidden", "--experts", "--topk", "--groups", "--topk-groups",
                                         "--ranks-per-node", "--impl", "--iters", "--warmup", "--skew", "--seed",
                                         "--inter", "--shared", "--check-tokens", "--threads", "--csv"};
    int known = 0;
    for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= strcmp(o, valued[k]) == 0;
    if (!known) return bad_usage("unknown option '%s'", o);
    if (i + 1 >= argc) return bad_usage("missing value for %s", o);
    const char *v = argv[++i];
    int ok = 1;
    if (strcmp(o, "--tokens") == 0) c->tokens = parse_int(v, 1, 1 << 30, &ok);
    else if (strcmp(o, "--hidden") == 0) c->hidden = parse_int(v, 1, 1 << 20, &ok);
    else if (strcmp(o, "--experts") == 0) c->gate.n_experts = (int)parse_int(v, 1, 1 << 16, &ok);
    else if (strcmp(o, "--topk") == 0) c->gate.topk = (int)parse_int(v, 1, 64, &ok);
    else if (strcmp(o, "--groups") == 0) c->gate.n_groups = (int)parse_int(v, 1, 1 << 16, &ok);
    else if (strcmp(o, "--topk-groups") == 0) c->gate.topk_groups = (int)parse_int(v, 1, 1 << 16, &ok);
    else if (strcmp(o, "--ranks-per-node") == 0) c->ranks_per_node = (int)parse_int(v, 1, 1 << 20, &ok);
    else if (strcmp(o, "--iters") == 0) c->iters = (int)parse_int(v, 1, 100000, &ok);
    else if (strcmp(o, "--warmup") == 0) c->warmup = (int)parse_int(v, 0, 100000, &ok);
    else if (strcmp(o, "--seed") == 0) c->seed = (uint64_t)parse_int(v, 0, INT64_MAX, &ok);
    else if (strcmp(o, "--inter") == 0) c->inter = parse_int(v, 1, 1 << 20, &ok);
    else if (strcmp(o, "--shared") == 0) c->n_shared = (int)parse_int(v, 0, 64, &ok);
    else if (strcmp(o, "--check-tokens") == 0) c->check_tokens = (int)parse_int(v, 1, 1 << 20, &ok);
    else if (strcmp(o, "--threads") == 0) c->threads = (int)parse_int(v, 1, 4096, &ok);
    else if (strcmp(o, "--csv") == 0) a->csv = v;
    else if (strcmp(o, "--impl") == 0) {
      c->impl = a2a_impl_parse(v);
      if (c->impl < 0) return bad_usage("--impl wants alltoallv, pairwise or hier, not '%s'", v);
    } else if (strcmp(o, "--skew") == 0) {
      char *end;
      c->skew = strtod(v, &end);
      ok = *v && !*end && c->skew >= 0 && c->skew <= 16;
    }
    if (!ok) {
      char msg[96];
      snprintf(msg, sizeof msg, "%s wants %s, not '%%s'", o,
               strcmp(o, "--skew") == 0 ? "a number from 0 to 16" : "an integer in its range (see --help)");
      return bad_usage(msg, v);
    }
  }
  return 0;
}

#if MOESIM_MPI

/* ---- report (rank 0) ---- */

static double mean_tok(const a2a_result *res, int which) {
  double s = 0;
  for (int r = 0; r < res->ranks; r++) {
    const a2a_bytes *b = &res->rank[r].bytes;
    s += (double)(which == 0 ? b->tok_ranks : which == 1 ? b->tok_remote : b->tok_recv);
  }
  return s / res->ranks;
}

static void print_report(const a2a_cfg *c, const a2a_result *res) {
  int R = res->ranks;
  printf("moesim a2a: %d rank%s on %d host%s, %d node%s of %d rank%s, impl %s (%s)\n", R, R == 1 ? "" : "s",
         res->hosts, res->hosts == 1 ? "" : "s", res->nodes, res->nodes == 1 ? "" : "s", c->ranks_per_node,
         c->ranks_per_node == 1 ? "" : "s", a2a_impl_name(c->impl), a2a_impl_backend(c->impl));
  printf("  %lld tokens per rank, hidden %lld, %d experts, top-%d of %d groups (top-%d groups), skew %g, seed %llu,"
         " %d thread%s per rank%s\n",
         (long long)c->tokens, (long long)c->hidden, c->gate.n_experts, c->gate.topk, c->gate.n_groups,
         c->gate.topk_groups, c->skew, (unsigned long long)c->seed, c->threads, c->threads == 1 ? "" : "s",
         c->layer ? ", whole layer" : "");
  if (c->layer)
    printf("  layer: intermediate %lld, %d shared expert%s, FP8 E4M3 experts\n", (long long)c->inter, c->n_shared,
           c->n_shared == 1 ? "" : "s");
  printf("  MPI: %s; %s\n", res->mpi_version, res->transport);
  printf("  dispatch row: %llu bytes (FP8 %lld + scales %llu + source, top-k ids and weights); combine row: %lld bytes\n",
         (unsigned long long)res->fmt.bytes, (long long)c->hidden,
         (unsigned long long)(res->fmt.payload - (uint64_t)c->hidden), (long long)(2 * c->hidden));
  printf("routing: %lld routes; a token reaches at most %d of %d node%s", (long long)res->routes, res->max_nodes,
         res->nodes, res->nodes == 1 ? "" : "s");
  if (res->node_aligned)
    printf(" (node-limited: at most %d)", c->gate.topk_groups);
  else
    printf(" (groups straddle nodes: the node limit is not enforced)");
  printf("; %lld expert%s received no token\n", (long long)res->empty_experts, res->empty_experts == 1 ? "" : "s");
  printf("\n%4s %-12s %-11s %10s %10s %10s %10s %10s %11s %11s\n", "rank", "host", "experts", "tok>ranks",
         "tok>remote", "tok>nodes", "recv", "recv_remote", "sent_MB", "recv_MB");
  for (int r = 0; r < R; r++) {
    const a2a_rank_result *q = &res->rank[r];
    char ex[24];
    if (q->e1 > q->e0) snprintf(ex, sizeof ex, "%d-%d", q->e0, q->e1 - 1);
    else snprintf(ex, sizeof ex, "none");
    printf("%4d %-12.12s %-11s %10lld %10lld %10lld %10lld %10lld %11.3f %11.3f\n", r, q->host, ex,
           (long long)q->bytes.tok_ranks, (long long)q->bytes.tok_remote, (long long)q->bytes.tok_nodes,
           (long long)q->bytes.tok_recv, (long long)q->bytes.tok_recv_remote, q->bytes.disp_wire_sent / 1e6,
           q->bytes.disp_wire_recv / 1e6);
  }
  printf("\ntimes per iteration, us (the slowest rank; min / median / max over %d iterations):\n", res->iters);
  static const struct {
    int ph;
    const char *label;
    int when; /* 0 always, 1 layer, 2 hier */
  } rows[] = {
      {A2A_PH_GATE, "gate", 1},
      {A2A_PH_DISPATCH, "dispatch", 0},
      {A2A_PH_NOTIFY, "  notify (counts)", 0},
      {A2A_PH_PACK, "  quantize + pack", 0},
      {A2A_PH_DXCHG, "  exchange", 0},
      {A2A_PH_SCATTER, "  scatter from node", 2},
      {A2A_PH_SHARED, "shared expert", 1},
      {A2A_PH_EXPERTS, "experts", 0},
      {A2A_PH_COMBINE, "combine", 0},
      {A2A_PH_FWD, "  forwarder reduce", 2},
      {A2A_PH_CXCHG, "  exchange", 0},
      {A2A_PH_REDUCE, "  reduce", 0},
      {A2A_PH_TOTAL, "total", 0},
  };
  printf("  %-22s %12s %12s %12s\n", "phase", "min", "median", "max");
  for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
    if ((rows[i].when == 1 && !c->layer) || (rows[i].when == 2 && c->impl != A2A_HIER)) continue;
    double mn, md, mx;
    a2a_phase_stats(res, rows[i].ph, &mn, &md, &mx);
    printf("  %-22s %12.1f %12.1f %12.1f\n", rows[i].label, mn, md, mx);
  }
  double mn, td, tc, mx;
  a2a_phase_stats(res, A2A_PH_DISPATCH, &mn, &td, &mx);
  a2a_phase_stats(res, A2A_PH_COMBINE, &mn, &tc, &mx);
  double pd = (double)res->fmt.payload, pc = 2.0 * (double)c->hidden;
  printf("\nbandwidth per rank at the median (payload bytes: FP8 + scales for dispatch, BF16 for combine;\n"
         "algbw counts every row a rank sends, busbw the rows to other ranks, recv the rows a rank receives):\n");
  printf("  dispatch  algbw %8.3f GB/s  busbw %8.3f GB/s  recv %8.3f GB/s\n", mean_tok(res, 0) * pd / (td * 1e3),
         mean_tok(res, 1) * pd / (td * 1e3), mean_tok(res, 2) * pd / (td * 1e3));
  printf("  combine   algbw %8.3f GB/s  busbw %8.3f GB/s  recv %8.3f GB/s\n", mean_tok(res, 0) * pc / (tc * 1e3),
         mean_tok(res, 1) * pc / (tc * 1e3), mean_tok(res, 2) * pc / (tc * 1e3));
  if (c->layer) {
    double tt;
    a2a_phase_stats(res, A2A_PH_TOTAL, &mn, &tt, &mx);
    printf("  layer     %.3f TFLOP/s over all ranks (%.3g FLOP per forward)\n", res->layer_flops / (tt * 1e6),
           res->layer_flops);
  }
  printf("\nverification: every (token, expert) pair arrived exactly once (%lld routes); the combined output\n"
         "  equals the single-process %s on %lld checked tokens (max error %.3g of max|out|)\n",
         (long long)res->routes, c->layer ? "reference layer (moe_layer_forward_ref)" : "reference",
         (long long)res->checked_tokens, res->max_err);
  uint64_t rh = 0, oh = 0;
  for (int r = 0; r < R; r++) {
    rh = a2a_hash_bytes(&res->rank[r].recv_hash, 8, rh);
    oh = a2a_hash_bytes(&res->rank[r].out_hash, 8, oh);
  }
  printf("checksums: received rows %016llx, output %016llx\n", (unsigned long long)rh, (unsigned long long)oh);
}

/* ---- kernel-table rows ---- */

static void fill_row(kt_row *row, const a2a_cfg *c, const a2a_result *res, const char *kernel, const char *dtype,
                     int ph, double bytes_per_rank) {
  memset(row, 0, sizeof *row);
  snprintf(row->host, sizeof row->host, "%s", util_hostname());
  snprintf(row->device, sizeof row->device, "cpu");
  snprintf(row->device_name, sizeof row->device_name, "%s", a2a_cpu_name());
  snprintf(row->backend, sizeof row->backend, "%s", a2a_impl_backend(c->impl));
  snprintf(row->kernel, sizeof row->kernel, "%s", kernel);
  snprintf(row->variant, sizeof row->variant, "r%dn%dtk%d", res->ranks, res->nodes, c->gate.topk_groups);
  snprintf(row->dtype, sizeof row->dtype, "%s", dtype);
  row->m = c->tokens, row->n = c->hidden, row->k = c->gate.topk, row->groups = c->gate.n_experts;
  row->threads = (int64_t)res->ranks * c->threads;
  row->reps = res->iters;
  double mx;
  a2a_phase_stats(res, ph, &row->min_us, &row->median_us, &mx);
  row->gbps = row->median_us > 0 ? bytes_per_rank / (row->median_us * 1e3) : 0;
  snprintf(row->source, sizeof row->source, "measured");
}

static int write_rows(const char *path, const a2a_cfg *c, const a2a_result *res) {
  kt_row rows[5];
  int n = 0;
  double pd = (double)res->fmt.payload, pc = 2.0 * (double)c->hidden, remote = mean_tok(res, 1);
  fill_row(&rows[n++], c, res, "dispatch", "fp8_e4m3", A2A_PH_DISPATCH, remote * pd);
  fill_row(&rows[n++], c, res, "combine", "bf16", A2A_PH_COMBINE, remote * pc);
  fill_row(&rows[n++], c, res, "alltoall", "fp8_e4m3", A2A_PH_DXCHG, remote * pd);
  if (c->layer) {
    fill_row(&rows[n], c, res, "moe_layer", "fp8_e4m3", A2A_PH_TOTAL, 0);
    rows[n].tflops = res->layer_flops / (rows[n].median_us * 1e6);
    rows[n].gbps = 0;
    snprintf(rows[n].dtype, sizeof rows[n].dtype, "fp8_e4m3");
    rows[n].n = c->hidden, rows[n].k = c->inter;
    n++;
  }
  if (c->predict) {
    kt_row *m = &rows[n++];
    memset(m, 0, sizeof *m);
    snprintf(m->host, sizeof m->host, "%s", util_hostname());
    snprintf(m->device, sizeof m->device, "cpu");
    snprintf(m->device_name, sizeof m->device_name, "%s", a2a_cpu_name());
    snprintf(m->backend, sizeof m->backend, "libc");
    snprintf(m->kernel, sizeof m->kernel, "memcpy");
    snprintf(m->variant, sizeof m->variant, "a2a-alone");
    snprintf(m->dtype, sizeof m->dtype, "fp32");
    uint64_t bytes = res->rank[0].bytes.disp_wire_recv > (1u << 16) ? res->rank[0].bytes.disp_wire_recv : (1u << 16);
    m->m = 1, m->n = (int64_t)bytes, m->k = 1, m->groups = 1, m->threads = 1, m->reps = 5;
    m->gbps = 2.0 * res->rank[0].calib.copy_gbyte_s; /* read + write, as the kernel suite counts memcpy */
    m->median_us = m->min_us = (double)bytes / (res->rank[0].calib.copy_gbyte_s * 1e3);
    snprintf(m->source, sizeof m->source, "measured");
  }
  if (kt_append(path, rows, (size_t)n) != 0) {
    fprintf(stderr, "moesim a2a: %s: cannot append the kernel-table rows\n", path);
    return -1;
  }
  printf("%d kernel-table rows appended to %s\n", n, path);
  return 0;
}

static int run_mpi(const a2a_args *a) {
  int provided = 0;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "%s:%d: MPI_Init_thread: MPI did not start\n", __FILE__, __LINE__);
    return UTIL_EXIT_SYS;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int R, r;
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  char why[256];
  if (a2a_cfg_check(&a->c, R, why, sizeof why) != 0) {
    if (r == 0) fprintf(stderr, "moesim a2a: error: %s\n", why);
    MPI_Finalize();
    return UTIL_EXIT_USAGE;
  }
  if (a->c.predict) {
    MPI_Comm host;
    int hs = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
    MPI_Comm_size(host, &hs);
    MPI_Comm_free(&host);
    if (hs != R) {
      if (r == 0)
        fprintf(stderr, "moesim a2a: error: --predict models one machine; these %d ranks span several hosts\n", R);
      MPI_Finalize();
      return UTIL_EXIT_USAGE;
    }
  }
  if (a->c.impl == A2A_HIER) {
    /* a node shares one MPI-3 window: its ranks must share memory */
    MPI_Comm node, host;
    int ns = 0, hs = 0, split = 0;
    MPI_Comm_split(MPI_COMM_WORLD, r / a->c.ranks_per_node, r, &node);
    MPI_Comm_split_type(node, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
    MPI_Comm_size(node, &ns);
    MPI_Comm_size(host, &hs);
    MPI_Comm_free(&host);
    MPI_Comm_free(&node);
    int mine = ns != hs;
    MPI_Allreduce(&mine, &split, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (split) {
      if (r == 0)
        fprintf(stderr, "moesim a2a: error: --impl hier needs the %d ranks of each node on one host; "
                        "--ranks-per-node %d groups ranks of several hosts\n", a->c.ranks_per_node, a->c.ranks_per_node);
      MPI_Finalize();
      return UTIL_EXIT_USAGE;
    }
  }
  a2a_result res;
  int rc = a2a_run(&a->c, &res);
  if (r == 0 && rc == 0) {
    print_report(&a->c, &res);
    if (a->csv && write_rows(a->csv, &a->c, &res) != 0) rc = UTIL_EXIT_SYS;
    if (a->c.predict) {
      fflush(stdout);
      if (a2a_predict(&a->c, &res, stdout) != 0) rc = UTIL_EXIT_SYS;
    }
  }
  fflush(stdout);
  a2a_result_free(&res);
  MPI_Finalize();
  return rc;
}
#endif

int cmd_a2a(int argc, char **argv) {
  a2a_args a;
  int help = 0;
  int rc = parse(argc, argv, &a, &help);
  if (rc) return rc;
  if (help) {
    usage(stdout);
    return 0;
  }
#if MOESIM_MPI
  return run_mpi(&a);
#else
  if (launcher_rank() == 0)
    fprintf(stderr, "moesim a2a: error: this moesim was built without MPI (no mpicc was found at build time); "
                    "install OpenMPI (apt-get install libopenmpi-dev openmpi-bin) and rebuild\n");
  return UTIL_EXIT_USAGE;
#endif
}
