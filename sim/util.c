/* sim/util.c — see util.h. Nothing here knows about MoE or networks; it is the plumbing that the
 * rest shares so no module writes its own atomic-rename or error printer. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void util_die_sys(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(UTIL_EXIT_SYS);
}

int util_usage_error(const char *fmt, ...) {
  va_list ap;
  fputs("moesim: error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return UTIL_EXIT_USAGE;
}

void *util_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) UTIL_SYSFAIL("malloc(%zu): out of memory", n);
  return p;
}

void *util_xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) UTIL_SYSFAIL("calloc(%zu, %zu): out of memory", count, size);
  return p;
}

void *util_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) UTIL_SYSFAIL("realloc(%zu): out of memory", n);
  return q;
}

char *util_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = util_xmalloc(n);
  memcpy(d, s, n);
  return d;
}

static void buf_reserve(util_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  b->data = util_xrealloc(b->data, cap);
  b->cap = cap;
}

void util_buf_vprintf(util_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) UTIL_SYSFAIL("vsnprintf: bad format");
  buf_reserve(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void util_buf_printf(util_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  util_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void util_buf_append(util_buf *b, const void *data, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void util_buf_free(util_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int util_mkdirs(const char *path) {
  char *p = util_xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      free(p);
      return -1;
    }
    *s = '/';
  }
  int rc = (mkdir(p, 0777) != 0 && errno != EEXIST) ? -1 : 0;
  free(p);
  return rc;
}

char *util_dirname(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return util_xstrdup(".");
  if (slash == path) return util_xstrdup("/");
  size_t n = (size_t)(slash - path);
  char *d = util_xmalloc(n + 1);
  memcpy(d, path, n);
  d[n] = '\0';
  return d;
}

char *util_path_join(const char *dir, const char *rel) {
  if (rel[0] == '/' || !dir || !dir[0] || strcmp(dir, ".") == 0) return util_xstrdup(rel);
  util_buf b = {0};
  util_buf_printf(&b, "%s/%s", dir, rel);
  return b.data;
}

int util_write_file_atomic(const char *path, const void *data, size_t len) {
  char *dir = util_dirname(path);
  if (util_mkdirs(dir) != 0) {
    fprintf(stderr, "moesim: error: cannot create directory %s: %s\n", dir, strerror(errno));
    free(dir);
    return -1;
  }
  free(dir);
  util_buf tmp = {0};
  util_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) {
    fprintf(stderr, "moesim: error: cannot write %s: %s\n", tmp.data, strerror(errno));
    util_buf_free(&tmp);
    return -1;
  }
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "moesim: error: writing %s: %s\n", tmp.data, strerror(errno));
      close(fd);
      unlink(tmp.data);
      util_buf_free(&tmp);
      return -1;
    }
    p += n;
    left -= (size_t)n;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp.data, path) != 0) {
    fprintf(stderr, "moesim: error: cannot finish %s: %s\n", path, strerror(errno));
    unlink(tmp.data);
    util_buf_free(&tmp);
    return -1;
  }
  util_buf_free(&tmp);
  return 0;
}

char *util_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  util_buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) util_buf_append(&b, chunk, n);
  int err = ferror(f);
  fclose(f);
  if (err) {
    util_buf_free(&b);
    errno = EIO;
    return NULL;
  }
  if (!b.data) util_buf_append(&b, "", 0);
  if (len) *len = b.len;
  return b.data;
}

uint64_t util_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *util_hostname(void) {
  static char name[256];
  if (!name[0]) {
    if (gethostname(name, sizeof name - 1) != 0) strcpy(name, "unknown");
    char *dot = strchr(name, '.');
    if (dot) *dot = '\0';
    for (char *c = name; *c; c++)
      if (*c == ',' || *c == '"') *c = '_'; /* the name goes into CSV rows unquoted */
  }
  return name;
}

const char *util_today(void) {
  static char day[16];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(day, sizeof day, "%Y-%m-%d", &tm);
  return day;
}

int util_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 64;
  int d[64][64];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      int m = sub < del ? sub : del;
      d[i][j] = m < ins ? m : ins;
    }
  return d[la][lb];
}

int util_stderr_is_tty(void) { return isatty(2); }
