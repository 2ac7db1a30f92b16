/* sim/sweep_exec.h — running sweep points: each point in its own child process (up to `jobs` at
 * once), its stderr captured, its result row sent back as a journal line; a progress display;
 * and, under mpirun, points spread over ranks with rank 0 writing.
 *
 * A child loads its point (sweep_point_load), runs the kind with its own output directory
 * <out>/points/<index>/ and exits. A child that exits non-zero, or dies from a signal, is a
 * failed point whose error is the last line it printed (or the signal). Children die with the
 * parent (PR_SET_PDEATHSIG), so a kill -9 of `moesim run` leaves no orphan running. */
#ifndef MOESIM_SWEEP_EXEC_H
#define MOESIM_SWEEP_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "sweep.h"
#include "sweep_store.h"

/* What to run and where the results go. */
typedef struct sweep_exec {
  const sweep_spec *sp;     /* the experiment and its sweep */
  const uint64_t *hashes;   /* fingerprint of every point (sweep_check_all) */
  const char *out_dir;      /* results directory */
  int trace;                /* ask kinds for a Chrome trace */
  int jobs;                 /* points at once (>= 1) */
  /* The next point to run, or -1 when none is left (called until it says so). */
  long (*next)(void *arg);
  /* A point finished (ok or failed): r is the callee's to keep or free; log is everything the
   * point printed. A non-zero return stops the sweep (children are stopped) with that status. */
  int (*done)(void *arg, size_t point, sweep_rec *r, const char *log, double seconds);
  /* Called a few times a second while points run (or NULL). */
  void (*tick)(void *arg);
  void *arg;                /* passed to the callbacks */
} sweep_exec;

/* Runs points until next() has none left and every child has finished. Returns 0; 128+signal
 * when SIGINT/SIGTERM interrupted it (running children are stopped and not recorded); the first
 * non-zero done(); or 1 after a system failure (message printed). */
int sweep_exec_run(const sweep_exec *ex);

/* Progress on stderr: one line redrawn in place on a terminal, a plain line per point otherwise. */
typedef struct sweep_progress {
  size_t total;        /* points this invocation runs */
  size_t done;         /* of them finished */
  size_t failed;       /* of them failed */
  uint64_t start_ns;   /* when running began */
  uint64_t drawn_ns;   /* last redraw */
  int tty;             /* draw in place */
  int quiet;           /* print nothing */
  int shown;           /* a progress line is on screen (tty) */
} sweep_progress;

void sweep_progress_start(sweep_progress *p, size_t total, int quiet);
/* A point finished: counts it and shows it (label: its swept values). */
void sweep_progress_point(sweep_progress *p, size_t point, const char *label, int ok, double seconds);
/* Redraws the bar if it is due (terminal only). */
void sweep_progress_tick(sweep_progress *p);
/* Takes the bar off the screen before other output. */
void sweep_progress_clear(sweep_progress *p);

#ifdef MOESIM_MPI
/* Under mpirun with more than one rank: ranks > 0 run points handed out by rank 0 (ex->next,
 * ex->done and ex->tick are set here); rank 0 hands out points with next() and records them
 * with done(). Returns like sweep_exec_run. */
int sweep_mpi_worker(sweep_exec *ex);
int sweep_mpi_coordinator(const sweep_exec *ex, int n_workers);
#endif

#endif
