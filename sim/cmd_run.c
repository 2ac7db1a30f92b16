/* sim/cmd_run.c — `moesim run EXPERIMENT.yaml [--set k=v]... [--jobs N] [--mpi] [--fresh] ...`.
 *
 * Without `sweep:` it loads the experiment, runs its kind once in this process and writes
 * <out>/results.csv (the kind's header + one row) atomically, then draws the figures.
 *
 * With `sweep:` every point is loaded and checked before any runs (errors exit 2 and write
 * nothing); points whose inputs already have a finished record in <out>/sweep.journal are
 * reused; the others run in child processes, --jobs at a time (or spread over MPI ranks), each
 * recorded in the journal as it finishes and results.csv rebuilt atomically from the records
 * (sweep_store.h). Rows are in point order whatever order points finish in, so the table does not
 * depend on --jobs. A failed point is a row with status=failed and its error; the sweep goes on
 * and the exit status is 3. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MOESIM_MPI
#include <mpi.h>
#endif

#include "cli.h"
#include "exp.h"
#include "plot.h"
#include "sweep.h"
#include "sweep_exec.h"
#include "sweep_store.h"
#include "util.h"

#define RUN_EXIT_POINTS_FAILED 3 /* the sweep finished but some points failed */
#define RUN_CSV_EVERY_NS 1000000000ull /* rebuild results.csv at most this often while running */

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim run EXPERIMENT.yaml [--set KEY=VALUE]... [--out DIR] [--jobs N] [--mpi]\n"
          "                  [--fresh] [--trace] [--quiet]\n"
          "\n"
          "Runs an experiment, or every point of its sweep: <out>/results.csv (one row per point), the\n"
          "figures it names in plots: (PNG and SVG, gnuplot), and a summary on stdout.\n"
          "\n"
          "  --set KEY=VALUE  override any key by its dotted path (repeatable); VALUE is YAML,\n"
          "                   e.g. --set parallel.pp=8 --set 'sizes=[8, 16]'; --set sweep= runs\n"
          "                   the experiment once without its sweep\n"
          "  --out DIR        results directory (default results/<name>)\n"
          "  --jobs N         sweep points run at once, each in its own process (default: the\n"
          "                   number of cores; 1 per rank with --mpi); the table does not depend on\n"
          "                   N, but kinds that time kernels here measure best with --jobs 1\n"
          "  --mpi            under mpirun: spread the points over the ranks; rank 0 hands them out\n"
          "                   and writes the results (e.g. mpirun -np 8 moesim run X.yaml --mpi)\n"
          "  --fresh          forget the finished points of an earlier run (sweep.journal)\n"
          "  --trace          also write a Chrome trace (trace.json, opens in Perfetto) where the\n"
          "                   kind supports it\n"
          "  --quiet          no summary or progress\n"
          "  -h, --help       this text\n"
          "\n"
          "sweeps (the experiment's sweep: key):\n"
          "  sweep:\n"
          "    grid: {schedule: [1f1b, dualpipe], comm_sms: [0, 20]}   # every combination\n"
          "    zip:  {cluster: [a.yaml, b.yaml], parallel.ep: [8, 16]} # i-th values together\n"
          "  Keys are dotted paths to any key (also inside included files and lists); values are\n"
          "  YAML (scalars, lists, mappings, or a file path where the key includes a file, resolved\n"
          "  against the experiment). Axes nest in the order written, the first outermost: each grid\n"
          "  key is an axis, zip: is one axis. Every point is checked before any runs.\n"
          "\n"
          "  results.csv columns: point, the swept keys (dotted paths, in axis order), status (ok or\n"
          "  failed), error, then the kind's columns. Commas inside values are written as ';'.\n"
          "  A point's own files go to <out>/points/<point>/. Finished points are recorded in\n"
          "  <out>/sweep.journal as they finish: after an interruption (even kill -9), the same\n"
          "  command reruns only the points not finished, or whose inputs (the experiment's keys,\n"
          "  the files it includes, the overrides) changed; failed points run again.\n"
          "  Progress: a bar with ETA on a terminal, one line per point otherwise.\n"
          "\n"
          "exit status: 0 done; 1 system failure; 2 bad usage or input (nothing written);\n"
          "             3 the sweep finished but some points failed; 128+N interrupted by signal N.\n"
          "\n"
          "figures (plots: [KIND[:X[:Y[:SERIES]]], ...]; `moesim plot --help` for the kinds)\n"
          "\n"
          "experiment kinds and their keys (units are in the key names):\n");
  for (int i = 0; exp_kinds[i]; i++) {
    fprintf(f, "\n  kind: %s — %s\n", exp_kinds[i]->name, exp_kinds[i]->summary);
    cfg_print_keys(exp_common_keys, 4, f);
    cfg_print_keys(exp_kinds[i]->keys, 4, f);
    if (exp_kinds[i]->plots) {
      fprintf(f, "    plots:");
      for (int j = 0; exp_kinds[i]->plots[j]; j++) fprintf(f, " %s", exp_kinds[i]->plots[j]);
      fprintf(f, "\n");
    }
  }
}

/* The command line. */
typedef struct run_opts {
  const char *exp_path; /* the experiment */
  const char *out_dir;  /* --out, or NULL */
  char **sets;          /* --set assignments */
  size_t n_sets;        /* how many */
  int jobs;             /* --jobs (0: default) */
  int mpi;              /* --mpi */
  int fresh;            /* --fresh */
  int trace;            /* --trace */
  int quiet;            /* --quiet */
} run_opts;

static int parse_args(int argc, char **argv, run_opts *o) {
  memset(o, 0, sizeof *o);
  o->sets = util_xcalloc((size_t)argc, sizeof *o->sets);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      return -1;
    } else if (strcmp(a, "--set") == 0 || strncmp(a, "--set=", 6) == 0) {
      const char *v = a[5] == '=' ? a + 6 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return util_usage_error("--set needs KEY=VALUE");
      o->sets[o->n_sets++] = (char *)v;
    } else if (strcmp(a, "--out") == 0) {
      if (i + 1 >= argc) return util_usage_error("--out needs a directory");
      o->out_dir = argv[++i];
    } else if (strcmp(a, "--jobs") == 0 || strcmp(a, "-j") == 0) {
      char *end;
      long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
      if (i + 1 >= argc || *end || n < 1 || n > 4096)
        return util_usage_error("--jobs needs a number of processes from 1 to 4096");
      o->jobs = (int)n;
      i++;
    } else if (strcmp(a, "--mpi") == 0) {
      o->mpi = 1;
    } else if (strcmp(a, "--fresh") == 0) {
      o->fresh = 1;
    } else if (strcmp(a, "--trace") == 0) {
      o->trace = 1;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      o->quiet = 1;
    } else if (a[0] == '-') {
      fprintf(stderr, "moesim run: error: unknown option '%s'\n\n", a);
      usage(stderr);
      return UTIL_EXIT_USAGE;
    } else if (!o->exp_path) {
      o->exp_path = a;
    } else {
      return util_usage_error("moesim run takes one experiment file (got '%s' and '%s')", o->exp_path, a);
    }
  }
  if (!o->exp_path) {
    fprintf(stderr, "moesim run: error: no experiment file\n");
    fprintf(stderr, "usage: moesim run EXPERIMENT.yaml [--set KEY=VALUE]... [--out DIR] [--jobs N] [--mpi] [--fresh]\n");
    return UTIL_EXIT_USAGE;
  }
#ifndef MOESIM_MPI
  if (o->mpi) return util_usage_error("--mpi: this moesim was built without MPI (install libopenmpi-dev, rebuild)");
#endif
  return 0;
}

static int draw_figures(const exp_common *common, const char *csv, const char *dir, int quiet) {
  plot_opts po = {.quiet = quiet};
  for (size_t i = 0; i < common->n_plots; i++)
    if (plot_draw(common->plots[i], csv, dir, &po) != 0) return UTIL_EXIT_SYS;
  return 0;
}

/* ---------------------------------------------------------------- one point, in process */

static int run_single(const run_opts *o, cfg_ctx *ctx, const exp_common *common, const exp_kind *kind, void *spec,
                      const char *dir) {
  exp_run run = {.exp_path = o->exp_path, .out_dir = dir, .point = 0, .quiet = o->quiet, .trace = o->trace,
                 .cfg = ctx, .summary = o->quiet ? NULL : stdout};
  res_row row = {0};
  int rc = kind->run(&run, spec, &row);
  if (rc == 0) {
    util_buf csv = {0}, path = {0};
    for (size_t i = 0; i < row.len; i++) util_buf_printf(&csv, "%s%s", i ? "," : "", row.cols[i]);
    util_buf_append(&csv, "\n", 1);
    for (size_t i = 0; i < row.len; i++) util_buf_printf(&csv, "%s%s", i ? "," : "", row.vals[i]);
    util_buf_append(&csv, "\n", 1);
    util_buf_printf(&path, "%s/results.csv", dir);
    if (util_write_file_atomic(path.data, csv.data, csv.len) != 0) rc = UTIL_EXIT_SYS;
    if (rc == 0 && kind->finish) rc = kind->finish(path.data, dir, o->quiet ? NULL : stdout);
    if (rc == 0) rc = draw_figures(common, path.data, dir, o->quiet);
    if (rc == 0 && !o->quiet) printf("results   %s\n", path.data);
    util_buf_free(&csv);
    util_buf_free(&path);
  }
  res_free(&row);
  return rc;
}

/* ---------------------------------------------------------------- sweeps */

/* What the sweep callbacks share. */
typedef struct run_state {
  const run_opts *o;        /* the command line */
  const sweep *sw;          /* the sweep */
  cfg_ctx *ctx;             /* the base ctx (owns the sweep's nodes) */
  const uint64_t *hashes;   /* per point */
  const char **swept;       /* per point and key: the value as written in the CSV */
  sweep_journal j;          /* records */
  size_t *todo;             /* points to run, in order */
  size_t n_todo, next;      /* how many; the next to hand out */
  char *csv_path;           /* <dir>/results.csv */
  uint64_t csv_ns;          /* when it was last rebuilt */
  sweep_progress prog;      /* the display */
  size_t ok, failed;        /* points run now that finished / failed */
} run_state;

static int write_csv(run_state *st) {
  const sweep_rec **recs = util_xcalloc(st->sw->n_points, sizeof *recs);
  for (size_t p = 0; p < st->sw->n_points; p++) recs[p] = sweep_journal_find(&st->j, st->hashes[p]);
  util_buf csv = {0};
  sweep_csv(st->sw->n_points, st->sw->n_keys, st->sw->keys, st->swept, recs, &csv);
  int rc = util_write_file_atomic(st->csv_path, csv.data, csv.len) != 0 ? UTIL_EXIT_SYS : 0;
  util_buf_free(&csv);
  free(recs);
  st->csv_ns = util_now_ns();
  return rc;
}

static long on_next(void *arg) {
  run_state *st = arg;
  return st->next < st->n_todo ? (long)st->todo[st->next++] : -1;
}

/* Prints a point's own output, each line indented (nothing when it is one line, already shown
 * as the error). */
static void print_log(const char *log, int skip_single) {
  const char *nl = strchr(log, '\n');
  if (skip_single && (!nl || nl[1] == '\0')) return;
  for (const char *p = log; *p;) {
    const char *nl = strchr(p, '\n');
    int n = nl ? (int)(nl - p) : (int)strlen(p);
    fprintf(stderr, "    | %.*s\n", n, p);
    p += n + (nl != NULL);
  }
}

static int on_done(void *arg, size_t point, sweep_rec *r, const char *log, double seconds) {
  run_state *st = arg;
  int ok = r->ok;
  char *label = sweep_point_label(st->sw, point, st->ctx);
  sweep_progress_clear(&st->prog);
  if (!ok) {
    fprintf(stderr, "moesim run: point %zu (%s) failed: %s\n", point, label, r->error ? r->error : "?");
    print_log(log, 1);
  } else if (log[0] && !st->o->quiet) {
    fprintf(stderr, "moesim run: point %zu (%s) printed:\n", point, label);
    print_log(log, 0);
  }
  int rc = sweep_journal_add(&st->j, r);
  sweep_rec_free(r);
  st->ok += ok;
  st->failed += !ok;
  sweep_progress_point(&st->prog, point, label, ok, seconds);
  free(label);
  if (rc == 0 && util_now_ns() - st->csv_ns >= RUN_CSV_EVERY_NS) rc = write_csv(st);
  return rc;
}

static void on_tick(void *arg) { sweep_progress_tick(&((run_state *)arg)->prog); }

/* Checks that no --set names a swept key (the sweep would silently override it). */
static int check_sets(const run_opts *o, cfg_ctx *ctx, const sweep *sw) {
  for (size_t i = 0; i < o->n_sets; i++) {
    size_t len = strcspn(o->sets[i], "=");
    for (size_t k = 0; k < sw->n_keys; k++)
      if (strlen(sw->keys[k]) == len && strncmp(sw->keys[k], o->sets[i], len) == 0)
        return cfg_error(ctx, sw->key_nodes[k], "'%s' is swept here and also set by --set %s; drop one", sw->keys[k],
                         o->sets[i]);
  }
  return 0;
}

static int run_sweep(const run_opts *o, cfg_ctx *ctx, const exp_common *common, const exp_kind *kind, const sweep *sw,
                     const char *dir, int rank, int size) {
  sweep_spec sp = {o->exp_path, o->sets, o->n_sets, sw};
  uint64_t *hashes = util_xcalloc(sw->n_points, sizeof *hashes);
  run_state st = {.o = o, .sw = sw, .ctx = ctx, .hashes = hashes};
  int saved_err = -1;
  if (rank > 0) { /* every rank checks; rank 0 speaks */
    saved_err = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2), close(devnull);
  }
  int rc = sweep_check_all(&sp, hashes, 10);
  if (saved_err >= 0) dup2(saved_err, 2), close(saved_err);
  if (rc != 0) {
    free(hashes);
    return rc;
  }
  sweep_exec ex = {.sp = &sp, .hashes = hashes, .out_dir = dir, .trace = o->trace,
                   .jobs = o->jobs ? o->jobs : (o->mpi ? 1 : (int)sysconf(_SC_NPROCESSORS_ONLN))};
  if (ex.jobs < 1) ex.jobs = 1;
#ifdef MOESIM_MPI
  if (rank > 0) {
    rc = sweep_mpi_worker(&ex);
    free(hashes);
    return rc;
  }
#endif
  rc = sweep_journal_open(dir, o->fresh, &st.j);
  if (rc != 0) {
    free(hashes);
    return rc;
  }
  st.swept = cfg_alloc(ctx, (sw->n_points * sw->n_keys + 1) * sizeof *st.swept);
  for (size_t p = 0; p < sw->n_points; p++)
    for (size_t k = 0; k < sw->n_keys; k++) {
      char *v = cfg_strdup(ctx, cfg_node_text(ctx, sweep_value(sw, p, k)));
      sweep_csv_clean(v);
      st.swept[p * sw->n_keys + k] = v;
    }
  st.todo = util_xcalloc(sw->n_points, sizeof *st.todo);
  for (size_t p = 0; p < sw->n_points; p++) {
    const sweep_rec *r = sweep_journal_find(&st.j, hashes[p]);
    if (!r || !r->ok) st.todo[st.n_todo++] = p;
  }
  size_t reused = sw->n_points - st.n_todo;
  util_buf csv = {0};
  util_buf_printf(&csv, "%s/results.csv", dir);
  st.csv_path = csv.data;
  if (!o->quiet) {
    if (st.j.dropped) fprintf(stderr, "moesim run: %zu torn or corrupt journal lines dropped\n", st.j.dropped);
    if (reused)
      fprintf(stderr, "moesim run: %zu of %zu points already finished (%s); running %zu\n", reused, sw->n_points,
              st.j.path, st.n_todo);
    else
      fprintf(stderr, "moesim run: %zu points, %d at a time%s\n", sw->n_points, ex.jobs,
              size > 1 ? " per rank" : "");
  }
  sweep_progress_start(&st.prog, st.n_todo, o->quiet);
  ex.next = on_next;
  ex.done = on_done;
  ex.tick = on_tick;
  ex.arg = &st;
#ifdef MOESIM_MPI
  if (size > 1) rc = sweep_mpi_coordinator(&ex, size - 1);
  else rc = sweep_exec_run(&ex);
#else
  rc = sweep_exec_run(&ex);
#endif
  sweep_progress_clear(&st.prog);
  int wrc = write_csv(&st);
  if (rc == 0) rc = wrc;
  size_t ok_total = 0, failed_total = 0;
  for (size_t p = 0; p < sw->n_points; p++) {
    const sweep_rec *r = sweep_journal_find(&st.j, hashes[p]);
    ok_total += r && r->ok;
    failed_total += r && !r->ok;
  }
  if (!o->quiet) {
    printf("sweep     %zu points: %zu ok", sw->n_points, ok_total);
    if (reused) printf(" (%zu reused)", reused);
    printf(", %zu failed", failed_total);
    if (ok_total + failed_total < sw->n_points) printf(", %zu not run", sw->n_points - ok_total - failed_total);
    printf("\n");
  }
  if (rc == 0 && ok_total > 0 && kind->finish) rc = kind->finish(st.csv_path, dir, o->quiet ? NULL : stdout);
  if (rc == 0 && ok_total > 0) rc = draw_figures(common, st.csv_path, dir, o->quiet);
  if (!o->quiet) printf("results   %s\n", st.csv_path);
  if (rc > 128 && !o->quiet)
    fprintf(stderr, "moesim run: interrupted; running the same command again resumes the sweep\n");
  if (rc == 0 && failed_total) rc = RUN_EXIT_POINTS_FAILED;
  sweep_journal_close(&st.j);
  util_buf_free(&csv);
  free(st.todo);
  free(hashes);
  return rc;
}

int cmd_run(int argc, char **argv) {
  run_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) {
    free(o.sets);
    return rc < 0 ? 0 : rc;
  }
  int rank = 0, size = 1;
#ifdef MOESIM_MPI
  if (o.mpi) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
#endif
  cfg_ctx *ctx = cfg_new();
  exp_common common;
  const exp_kind *kind = NULL;
  void *spec = NULL;
  sweep sw;
  for (size_t i = 0; rc == 0 && i < o.n_sets; i++)
    if (cfg_override(ctx, o.sets[i], "--set") != 0) rc = UTIL_EXIT_USAGE;
  if (rc == 0) rc = exp_load(ctx, o.exp_path, &common, &kind, &spec);
  if (rc == 0 && (sweep_parse(ctx, common.sweep, &sw) != 0 || check_sets(&o, ctx, &sw) != 0)) rc = UTIL_EXIT_USAGE;
  if (rc == 0) {
    util_buf dir = {0};
    if (o.out_dir) util_buf_printf(&dir, "%s", o.out_dir);
    else util_buf_printf(&dir, "results/%s", common.name);
    if (sw.n_keys > 0) rc = run_sweep(&o, ctx, &common, kind, &sw, dir.data, rank, size);
    else if (rank == 0) rc = run_single(&o, ctx, &common, kind, spec, dir.data);
    util_buf_free(&dir);
  }
#ifdef MOESIM_MPI
  if (o.mpi) MPI_Finalize();
#endif
  free(spec);
  cfg_free(ctx);
  free(o.sets);
  return rc;
}
