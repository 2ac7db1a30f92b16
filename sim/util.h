/* sim/util.h — small helpers every module uses: the three error tiers, checked allocation,
 * a growable string, atomic file output (write a temporary file, then rename) and clocks.
 *
 * Error tiers (STYLE.md): user input errors are reported by the module that found them with
 * path:line:col and make the command exit 2; system/library failures use util_die_sys() /
 * UTIL_SYSFAIL ("file:line: what: why", exit 1); broken invariants are assert()s. */
#ifndef MOESIM_UTIL_H
#define MOESIM_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define UTIL_EXIT_USAGE 2 /* bad user input or usage */
#define UTIL_EXIT_SYS 1   /* the system or a library failed */

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* "file:line: what: why" on stderr, exit 1. Use for failures of the system or of a library. */
#define UTIL_SYSFAIL(...) util_die_sys(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void util_die_sys(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "moesim: error: ..." on stderr; returns 2 so commands can `return util_usage_error(...)`. */
int util_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Allocation that cannot return NULL (it dies with UTIL_SYSFAIL on exhaustion). */
void *util_xmalloc(size_t n);
void *util_xcalloc(size_t count, size_t size);
void *util_xrealloc(void *p, size_t n);
char *util_xstrdup(const char *s);

/* A growable, always NUL-terminated string. */
typedef struct util_buf {
  char *data; /* NUL-terminated contents (NULL until the first append) */
  size_t len; /* bytes used, excluding the NUL */
  size_t cap; /* bytes allocated */
} util_buf;
void util_buf_printf(util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void util_buf_vprintf(util_buf *b, const char *fmt, va_list ap);
void util_buf_append(util_buf *b, const void *data, size_t n);
void util_buf_free(util_buf *b);

/* Writes `len` bytes to `path` atomically: a temporary file in the same directory, fsync'd, then
 * renamed over `path`, so a reader (or a crash) never sees a half-written file. Creates missing
 * parent directories. Returns 0, or -1 with a message on stderr. */
int util_write_file_atomic(const char *path, const void *data, size_t len);

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL (errno set) on failure. */
char *util_read_file(const char *path, size_t *len);

/* mkdir -p. Returns 0 or -1 (errno set). */
int util_mkdirs(const char *path);

/* Directory part of a path ("." when it has none), malloc'd. */
char *util_dirname(const char *path);
/* `rel` resolved against directory `dir` unless it is absolute; malloc'd. */
char *util_path_join(const char *dir, const char *rel);

/* Monotonic clock in nanoseconds, for timing. */
uint64_t util_now_ns(void);

/* Host name (short) and today's date (YYYY-MM-DD, UTC), for table rows. Static storage. */
const char *util_hostname(void);
const char *util_today(void);

/* Levenshtein distance between two short strings (for "did you mean"). */
int util_edit_distance(const char *a, const char *b);

/* 1 when stderr is a terminal (progress lines are drawn in place only then). */
int util_stderr_is_tty(void);

#endif
