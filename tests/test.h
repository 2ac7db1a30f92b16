/* tests/test.h — the test helper every tests/test_<module>.c includes.
 *
 * A test is a function run with T_RUN(fn); it passes when none of its checks failed, is skipped
 * when it called T_SKIP (a GPU test on a machine without a GPU, say), and fails otherwise. Only
 * failures are printed, with file:line and the failed expression. t_done() prints the closing line
 * "N passed, N failed, N skipped" that tests/run.sh adds up, and returns the exit status. */
#ifndef MOESIM_TEST_H
#define MOESIM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int t_passed, t_failed, t_skipped; /* tests, not checks */
static int t_cur_failed;                   /* checks failed in the running test */
static int t_cur_skipped;                  /* the running test called T_SKIP */
static const char *t_cur_name;             /* name of the running test */

#define T_CHECK(cond)                                                                            \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, t_cur_name, #cond);   \
      t_cur_failed++;                                                                            \
    }                                                                                            \
  } while (0)

/* Like T_CHECK, with a printf-style explanation (the values involved). */
#define T_CHECKF(cond, ...)                                                                      \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "%s:%d: %s: check failed: %s: ", __FILE__, __LINE__, t_cur_name, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                                              \
      fputc('\n', stderr);                                                                       \
      t_cur_failed++;                                                                            \
    }                                                                                            \
  } while (0)

#define T_EQ_INT(a, b) T_CHECKF((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
#define T_EQ_STR(a, b) T_CHECKF(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
/* |a - b| <= tol (absolute). */
#define T_NEAR(a, b, tol) \
  T_CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %.3g)", (double)(a), (double)(b), (double)(tol))

/* Marks the running test skipped (and returns from it); say why. */
#define T_SKIP(...)                                                                              \
  do {                                                                                           \
    fprintf(stderr, "%s: skipped: ", t_cur_name);                                                \
    fprintf(stderr, __VA_ARGS__);                                                                \
    fputc('\n', stderr);                                                                         \
    t_cur_skipped = 1;                                                                           \
    return;                                                                                      \
  } while (0)

#define T_RUN(fn)                                                                                \
  do {                                                                                           \
    t_cur_name = #fn;                                                                            \
    t_cur_failed = 0;                                                                            \
    t_cur_skipped = 0;                                                                           \
    fn();                                                                                        \
    if (t_cur_failed) t_failed++;                                                                \
    else if (t_cur_skipped) t_skipped++;                                                         \
    else t_passed++;                                                                             \
  } while (0)

/* ---- scratch files and stderr capture, for tests of loaders and error messages ---- */

/* A per-process scratch directory (created on first use, removed by t_done). */
static char t_scratch_dir[256];
static inline const char *t_scratch(void) {
  if (!t_scratch_dir[0]) {
    snprintf(t_scratch_dir, sizeof t_scratch_dir, "/tmp/moesim-test-%ld", (long)getpid());
    util_mkdirs(t_scratch_dir);
  }
  return t_scratch_dir;
}

/* Writes `text` to scratch/name (creating subdirectories) and returns its path; the last 8 paths
 * stay valid. */
static inline const char *t_put(const char *name, const char *text) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", t_scratch(), name);
  char *dir = util_dirname(p);
  util_mkdirs(dir);
  free(dir);
  FILE *f = fopen(p, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return p;
}

/* Redirects stderr into a scratch file until t_capture_end(), which returns what was written
 * (malloc'd). */
static int t_saved_fd = -1;
static inline void t_capture_begin(void) {
  char path[512];
  fflush(stderr);
  snprintf(path, sizeof path, "%s/stderr.txt", t_scratch());
  t_saved_fd = dup(2);
  if (!freopen(path, "w", stderr)) t_saved_fd = -1;
}
static inline char *t_capture_end(void) {
  char path[512];
  fflush(stderr);
  if (t_saved_fd >= 0) {
    dup2(t_saved_fd, 2);
    close(t_saved_fd);
  }
  snprintf(path, sizeof path, "%s/stderr.txt", t_scratch());
  return util_read_file(path, NULL);
}

static inline int t_done(void) {
  if (t_scratch_dir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_scratch_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t_scratch_dir);
  }
  printf("%d passed, %d failed, %d skipped\n", t_passed, t_failed, t_skipped);
  return t_failed ? 1 : 0;
}

#endif
