/* sim/ktable.c — kernel table CSV reading and atomic appending (see ktable.h). */
#include "ktable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int kt_format_row(const kt_row *r, char *buf, size_t size) {
  return snprintf(buf, size, "%s,%s,%s,%s,%s,%s,%s,%lld,%lld,%lld,%lld,%lld,%lld,%.3f,%.3f,%.4f,%.3f,%s",
                  r->host, r->device, r->device_name, r->backend, r->kernel, r->variant, r->dtype,
                  (long long)r->m, (long long)r->n, (long long)r->k, (long long)r->groups,
                  (long long)r->threads, (long long)r->reps, r->median_us, r->min_us, r->tflops, r->gbps,
                  r->source);
}

void kt_push(kt_table *t, const kt_row *r) {
  if (t->len == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 64;
    t->rows = util_xrealloc(t->rows, t->cap * sizeof *t->rows);
  }
  t->rows[t->len++] = *r;
}

void kt_free(kt_table *t) {
  free(t->rows);
  t->rows = NULL;
  t->len = t->cap = 0;
}

int kt_append(const char *path, const kt_row *rows, size_t n) {
  util_buf b = {0};
  size_t len = 0;
  char *old = util_read_file(path, &len);
  if (old && len > 0) {
    if (strncmp(old, KT_HEADER, strlen(KT_HEADER)) != 0) {
      fprintf(stderr, "%s:1:1: error: not a kernel table (expected header '%s')\n", path, KT_HEADER);
      free(old);
      return -1;
    }
    util_buf_append(&b, old, len);
    if (old[len - 1] != '\n') util_buf_append(&b, "\n", 1);
  } else {
    util_buf_printf(&b, "%s\n", KT_HEADER);
  }
  free(old);
  char line[1024];
  for (size_t i = 0; i < n; i++) {
    kt_format_row(&rows[i], line, sizeof line);
    util_buf_printf(&b, "%s\n", line);
  }
  int rc = util_write_file_atomic(path, b.data, b.len);
  util_buf_free(&b);
  return rc;
}

/* Copies CSV field `f` into a fixed-size char array, truncating. */
#define KT_COPY(dst, f) snprintf((dst), sizeof(dst), "%s", (f))

static int parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end) return -1;
  *out = v;
  return 0;
}

static int parse_f64(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end) return -1;
  *out = v;
  return 0;
}

int kt_load(const char *path, kt_table *t) {
  size_t len;
  char *text = util_read_file(path, &len);
  if (!text) return -1;
  char *save = NULL;
  int lineno = 0, rc = 0;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    size_t l = strlen(line);
    if (l && line[l - 1] == '\r') line[--l] = '\0';
    if (lineno == 1) {
      if (strcmp(line, KT_HEADER) != 0) {
        fprintf(stderr, "%s:1:1: error: not a kernel table (expected header '%s')\n", path, KT_HEADER);
        rc = -1;
        break;
      }
      continue;
    }
    if (!l || line[0] == '#') continue;
    char *f[18];
    int nf = 0;
    char *p = line;
    int col[18];
    while (nf < 18) {
      col[nf] = (int)(p - line) + 1;
      f[nf++] = p;
      char *c = strchr(p, ',');
      if (!c) break;
      *c = '\0';
      p = c + 1;
    }
    if (nf != 18) {
      fprintf(stderr, "%s:%d:1: error: expected 18 fields, found %d\n", path, lineno, nf);
      rc = -1;
      break;
    }
    kt_row r;
    memset(&r, 0, sizeof r);
    KT_COPY(r.host, f[0]);
    KT_COPY(r.device, f[1]);
    KT_COPY(r.device_name, f[2]);
    KT_COPY(r.backend, f[3]);
    KT_COPY(r.kernel, f[4]);
    KT_COPY(r.variant, f[5]);
    KT_COPY(r.dtype, f[6]);
    int64_t *ints[] = {&r.m, &r.n, &r.k, &r.groups, &r.threads, &r.reps};
    double *dbls[] = {&r.median_us, &r.min_us, &r.tflops, &r.gbps};
    int bad = -1;
    for (int i = 0; i < 6 && bad < 0; i++)
      if (parse_i64(f[7 + i], ints[i])) bad = 7 + i;
    for (int i = 0; i < 4 && bad < 0; i++)
      if (parse_f64(f[13 + i], dbls[i])) bad = 13 + i;
    if (bad >= 0) {
      fprintf(stderr, "%s:%d:%d: error: bad number '%s'\n", path, lineno, col[bad], f[bad]);
      rc = -1;
      break;
    }
    if (strcmp(f[17], "measured") != 0 && strcmp(f[17], "published") != 0) {
      fprintf(stderr, "%s:%d:%d: error: source must be measured or published, not '%s'\n", path, lineno,
              col[17], f[17]);
      rc = -1;
      break;
    }
    KT_COPY(r.source, f[17]);
    kt_push(t, &r);
  }
  free(text);
  return rc;
}

const kt_row *kt_find(const kt_table *t, const char *device, const char *kernel, const char *dtype,
                      int64_t m, int64_t n, int64_t k) {
  const kt_row *best = NULL;
  for (size_t i = 0; i < t->len; i++) {
    const kt_row *r = &t->rows[i];
    if (device && strcmp(r->device, device) != 0) continue;
    if (strcmp(r->kernel, kernel) != 0 || strcmp(r->dtype, dtype) != 0) continue;
    if (r->m != m || r->n != n || r->k != k) continue;
    if (!best || r->median_us < best->median_us) best = r;
  }
  return best;
}
