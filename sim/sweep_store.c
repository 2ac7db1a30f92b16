/* sim/sweep_store.c — sweep records, the append-only journal and the results table (see
 * sweep_store.h).
 *
 * Journal line:  <hash:16 hex> TAB ok|failed TAB <error> (TAB <column>=<value>)* TAB #<fnv32:8 hex> LF
 * Fields escape backslash, tab, LF and CR as \\ \t \n \r, and '=' in column names as \=. The
 * checksum covers everything before " TAB #". */
#include "sweep_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

void sweep_rec_free(sweep_rec *r) {
  free(r->error);
  res_free(&r->row);
  memset(r, 0, sizeof *r);
}

static uint32_t fnv32(const char *s, size_t n) {
  uint32_t h = 0x811c9dc5u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x01000193u;
  return h;
}

static void esc(util_buf *b, const char *s, int is_name) {
  for (; *s; s++) {
    switch (*s) {
    case '\\': util_buf_append(b, "\\\\", 2); break;
    case '\t': util_buf_append(b, "\\t", 2); break;
    case '\n': util_buf_append(b, "\\n", 2); break;
    case '\r': util_buf_append(b, "\\r", 2); break;
    case '=':
      if (is_name) util_buf_append(b, "\\=", 2);
      else util_buf_append(b, "=", 1);
      break;
    default: util_buf_append(b, s, 1);
    }
  }
}

void sweep_rec_encode(const sweep_rec *r, util_buf *b) {
  size_t start = b->len;
  util_buf_printf(b, "%016" PRIx64 "\t%s\t", r->hash, r->ok ? "ok" : "failed");
  esc(b, r->error ? r->error : "", 0);
  for (size_t i = 0; i < r->row.len; i++) {
    util_buf_append(b, "\t", 1);
    esc(b, r->row.cols[i], 1);
    util_buf_append(b, "=", 1);
    esc(b, r->row.vals[i], 0);
  }
  util_buf_printf(b, "\t#%08x\n", fnv32(b->data + start, b->len - start));
}

/* Unescapes s[*i..] up to the first unescaped `stop` (or the end); advances *i past it. */
static char *unesc(const char *s, size_t n, size_t *i, char stop) {
  util_buf b = {0};
  util_buf_append(&b, "", 0);
  while (*i < n && s[*i] != stop) {
    char c = s[*i];
    if (c == '\\' && *i + 1 < n) {
      char e = s[++*i];
      c = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : e;
    }
    util_buf_append(&b, &c, 1);
    ++*i;
  }
  if (*i < n) ++*i;
  return b.data;
}

int sweep_rec_decode(const char *line, size_t len, sweep_rec *r) {
  memset(r, 0, sizeof *r);
  /* The checksum trailer: "\t#xxxxxxxx". */
  if (len < 10 + 16 + 4 || line[len - 10] != '\t' || line[len - 9] != '#') return -1;
  char hex[9];
  memcpy(hex, line + len - 8, 8);
  hex[8] = '\0';
  char *end;
  unsigned long sum = strtoul(hex, &end, 16);
  if (*end || sum != fnv32(line, len - 10)) return -1;
  size_t n = len - 10, i = 0;
  char hbuf[17];
  memcpy(hbuf, line, 16);
  hbuf[16] = '\0';
  r->hash = strtoull(hbuf, &end, 16);
  if (*end || line[16] != '\t') return -1;
  i = 17;
  char *status = unesc(line, n, &i, '\t');
  r->ok = strcmp(status, "ok") == 0;
  int bad = !r->ok && strcmp(status, "failed") != 0;
  free(status);
  r->error = unesc(line, n, &i, '\t');
  if (r->ok || !r->error[0]) {
    free(r->error);
    r->error = NULL;
  }
  while (!bad && i < n) {
    char *col = unesc(line, n, &i, '=');
    char *val = unesc(line, n, &i, '\t');
    res_set(&r->row, col, "%s", val);
    free(col);
    free(val);
  }
  if (bad) {
    sweep_rec_free(r);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- journal */

static size_t journal_slot(const sweep_journal *j, uint64_t hash) {
  size_t mask = j->index_cap - 1, i = (size_t)(hash ^ (hash >> 29)) & mask;
  while (j->index[i] && j->recs[j->index[i] - 1]->hash != hash) i = (i + 1) & mask;
  return i;
}

static void journal_reindex(sweep_journal *j) {
  free(j->index);
  j->index_cap = 64;
  while (j->index_cap < 2 * j->cap) j->index_cap *= 2;
  j->index = util_xcalloc(j->index_cap, sizeof *j->index);
  for (size_t r = 0; r < j->n; r++) j->index[journal_slot(j, j->recs[r]->hash)] = r + 1;
}

/* Keeps *r (taking ownership): replaces the record of the same fingerprint unless that one is ok
 * and r failed. */
static void journal_keep(sweep_journal *j, sweep_rec *r) {
  if (!j->index) journal_reindex(j);
  size_t slot = journal_slot(j, r->hash);
  if (j->index[slot]) {
    sweep_rec *old = j->recs[j->index[slot] - 1];
    if (r->ok || !old->ok) {
      sweep_rec_free(old);
      *old = *r;
    } else {
      sweep_rec_free(r);
    }
    memset(r, 0, sizeof *r);
    return;
  }
  if (j->n == j->cap) {
    j->cap = j->cap ? 2 * j->cap : 64;
    j->recs = util_xrealloc(j->recs, j->cap * sizeof *j->recs);
  }
  j->recs[j->n] = util_xmalloc(sizeof **j->recs);
  *j->recs[j->n++] = *r;
  memset(r, 0, sizeof *r);
  if (2 * j->n > j->index_cap) journal_reindex(j);
  else j->index[slot] = j->n;
}

int sweep_journal_open(const char *dir, int fresh, sweep_journal *j) {
  memset(j, 0, sizeof *j);
  j->fd = j->lock_fd = -1;
  if (util_mkdirs(dir) != 0) {
    fprintf(stderr, "moesim: error: cannot create %s: %s\n", dir, strerror(errno));
    return UTIL_EXIT_SYS;
  }
  char *lock = util_path_join(dir, "sweep.lock");
  j->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j->lock_fd < 0 || flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int busy = j->lock_fd >= 0 && errno == EWOULDBLOCK;
    fprintf(stderr, "moesim: error: %s: %s\n", lock,
            busy ? "another moesim run is writing this results directory" : strerror(errno));
    free(lock);
    sweep_journal_close(j);
    return UTIL_EXIT_SYS;
  }
  free(lock);
  j->path = util_path_join(dir, "sweep.journal");
  size_t len = 0;
  char *text = fresh ? NULL : util_read_file(j->path, &len);
  if (!text && !fresh && errno != ENOENT) {
    fprintf(stderr, "moesim: error: cannot read %s: %s\n", j->path, strerror(errno));
    sweep_journal_close(j);
    return UTIL_EXIT_SYS;
  }
  for (size_t pos = 0; text && pos < len;) {
    char *nl = memchr(text + pos, '\n', len - pos);
    if (!nl) { /* a torn last line: its point was in flight */
      j->dropped++;
      break;
    }
    sweep_rec r;
    if (sweep_rec_decode(text + pos, (size_t)(nl - (text + pos)), &r) == 0) journal_keep(j, &r);
    else j->dropped++;
    pos = (size_t)(nl - text) + 1;
  }
  free(text);
  util_buf out = {0};
  util_buf_append(&out, "", 0);
  for (size_t i = 0; i < j->n; i++) sweep_rec_encode(j->recs[i], &out);
  int rc = util_write_file_atomic(j->path, out.data, out.len);
  util_buf_free(&out);
  if (rc != 0) {
    sweep_journal_close(j);
    return UTIL_EXIT_SYS;
  }
  j->fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (j->fd < 0) {
    fprintf(stderr, "moesim: error: cannot open %s: %s\n", j->path, strerror(errno));
    sweep_journal_close(j);
    return UTIL_EXIT_SYS;
  }
  return 0;
}

const sweep_rec *sweep_journal_find(const sweep_journal *j, uint64_t hash) {
  if (!j->index) return NULL;
  size_t slot = journal_slot(j, hash);
  return j->index[slot] ? j->recs[j->index[slot] - 1] : NULL;
}

int sweep_journal_add(sweep_journal *j, sweep_rec *r) {
  util_buf line = {0};
  sweep_rec_encode(r, &line);
  const char *p = line.data;
  size_t left = line.len;
  while (left > 0) {
    ssize_t n = write(j->fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fprintf(stderr, "moesim: error: writing %s: %s\n", j->path, strerror(errno));
      util_buf_free(&line);
      return UTIL_EXIT_SYS;
    }
    p += n;
    left -= (size_t)n;
  }
  util_buf_free(&line);
  journal_keep(j, r);
  return 0;
}

void sweep_journal_close(sweep_journal *j) {
  if (j->fd >= 0) close(j->fd);
  if (j->lock_fd >= 0) close(j->lock_fd);
  for (size_t i = 0; i < j->n; i++) {
    sweep_rec_free(j->recs[i]);
    free(j->recs[i]);
  }
  free(j->recs);
  free(j->index);
  free(j->path);
  memset(j, 0, sizeof *j);
  j->fd = j->lock_fd = -1;
}

/* ---------------------------------------------------------------- results table */

void sweep_csv_clean(char *s) {
  for (; *s; s++) {
    if (*s == ',') *s = ';';
    else if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
  }
}

static void csv_field(util_buf *b, int first, const char *v) {
  if (!first) util_buf_append(b, ",", 1);
  size_t at = b->len;
  util_buf_printf(b, "%s", v ? v : "");
  sweep_csv_clean(b->data + at);
}

void sweep_csv(size_t n_points, size_t n_keys, const char *const *keys, const char *const *swept,
               const sweep_rec *const *recs, util_buf *out) {
  /* The kind's columns: union over the rows, in order of first appearance by point. */
  size_t n_cols = 0, cap = 0;
  const char **cols = NULL;
  for (size_t p = 0; p < n_points; p++) {
    if (!recs[p]) continue;
    for (size_t c = 0; c < recs[p]->row.len; c++) {
      const char *name = recs[p]->row.cols[c];
      int swept = strcmp(name, "point") == 0 || strcmp(name, "status") == 0 || strcmp(name, "error") == 0;
      for (size_t k = 0; k < n_keys && !swept; k++) swept = strcmp(name, keys[k]) == 0;
      if (swept) continue; /* the swept column already holds it */
      size_t k = 0;
      while (k < n_cols && strcmp(cols[k], name) != 0) k++;
      if (k < n_cols) continue;
      if (n_cols == cap) {
        cap = cap ? 2 * cap : 32;
        cols = util_xrealloc(cols, cap * sizeof *cols);
      }
      cols[n_cols++] = name;
    }
  }
  csv_field(out, 1, "point");
  for (size_t k = 0; k < n_keys; k++) csv_field(out, 0, keys[k]);
  csv_field(out, 0, "status");
  csv_field(out, 0, "error");
  for (size_t c = 0; c < n_cols; c++) csv_field(out, 0, cols[c]);
  util_buf_append(out, "\n", 1);
  for (size_t p = 0; p < n_points; p++) {
    const sweep_rec *r = recs[p];
    if (!r) continue;
    util_buf_printf(out, "%zu", p);
    for (size_t k = 0; k < n_keys; k++) csv_field(out, 0, swept[p * n_keys + k]);
    csv_field(out, 0, r->ok ? "ok" : "failed");
    csv_field(out, 0, r->ok ? "" : r->error);
    for (size_t c = 0; c < n_cols; c++) csv_field(out, 0, res_get(&r->row, cols[c]));
    util_buf_append(out, "\n", 1);
  }
  free(cols);
}
