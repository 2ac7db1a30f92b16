/* sim/kmeta.c — reading and writing the peak lines of a kernel table's sidecar (see kmeta.h). */
#include "kmeta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dtype_names[KMETA_N_DTYPES] = {"bf16", "fp8_e4m3", "fp8_e5m2", "fp32"};

static int dtype_index(const char *dtype, size_t len) {
  for (int i = 0; i < KMETA_N_DTYPES; i++)
    if (strlen(dtype_names[i]) == len && strncmp(dtype_names[i], dtype, len) == 0) return i;
  return -1;
}

char *kmeta_path(const char *table_path) {
  util_buf b = {0};
  util_buf_printf(&b, "%s.meta", table_path);
  return b.data;
}

/* Copies the value of a "key: value" line (leading blanks skipped, up to the first blank) into
 * dst. */
static void copy_word(char *dst, size_t size, const char *v, const char *end) {
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  size_t n = 0;
  while (v + n < end && v[n] != ' ' && v[n] != '\t' && v[n] != '\r') n++;
  if (n >= size) n = size - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static kmeta_session *new_session(kmeta *m) {
  m->s = util_xrealloc(m->s, (m->n + 1) * sizeof *m->s);
  kmeta_session *s = &m->s[m->n++];
  memset(s, 0, sizeof *s);
  snprintf(s->device, sizeof s->device, "cpu");
  return s;
}

void kmeta_parse(const char *text, kmeta *m) {
  kmeta_session *cur = NULL;
  for (const char *p = text; *p;) {
    const char *end = strchr(p, '\n');
    if (!end) end = p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon) {
      size_t klen = (size_t)(colon - p);
      const char *v = colon + 1;
      if (klen == 3 && strncmp(p, "run", 3) == 0) {
        cur = new_session(m);
      } else if (cur && klen == 4 && strncmp(p, "host", 4) == 0) {
        copy_word(cur->host, sizeof cur->host, v, end);
      } else if (cur && klen == 6 && strncmp(p, "device", 6) == 0) {
        copy_word(cur->device, sizeof cur->device, v, end);
      } else if (cur && klen == 7 && strncmp(p, "threads", 7) == 0) {
        cur->threads = atoi(v);
      } else if (cur && klen > 12 && strncmp(p, "peak_tflops.", 12) == 0) {
        int d = dtype_index(p + 12, klen - 12);
        char *num_end;
        double x = strtod(v, &num_end);
        if (d >= 0 && num_end != v && x > 0) cur->peak_tflops[d] = x;
      }
    }
    p = *end ? end + 1 : end;
  }
}

int kmeta_load_for_table(const char *table_path, kmeta *m) {
  char *path = kmeta_path(table_path);
  size_t len = 0;
  char *text = util_read_file(path, &len);
  int err = errno;
  free(path);
  if (!text) {
    errno = err;
    return err == ENOENT ? 1 : -1;
  }
  kmeta_parse(text, m);
  free(text);
  return 0;
}

void kmeta_free(kmeta *m) {
  free(m->s);
  m->s = NULL;
  m->n = 0;
}

double kmeta_peak(const kmeta *m, const char *host, const char *device, int threads, const char *dtype) {
  int d = dtype_index(dtype, strlen(dtype));
  if (d < 0) return 0;
  for (size_t i = m->n; i-- > 0;) {
    const kmeta_session *s = &m->s[i];
    if (s->threads == threads && strcmp(s->host, host) == 0 && strcmp(s->device, device) == 0)
      return s->peak_tflops[d];
  }
  return 0;
}

void kmeta_format_cpu_peaks(util_buf *b, double bf16_tflops, const char *bf16_how, double fp32_tflops,
                            const char *fp32_how) {
  util_buf_printf(b, "peak_tflops.bf16: %.6g (%s, every thread at once)\n", bf16_tflops, bf16_how);
  util_buf_printf(b, "peak_tflops.fp8_e4m3: %.6g (no FP8 units: FP8 GEMMs convert to BF16 and run on %s)\n",
                  bf16_tflops, bf16_how);
  util_buf_printf(b, "peak_tflops.fp8_e5m2: %.6g (as fp8_e4m3)\n", bf16_tflops);
  util_buf_printf(b, "peak_tflops.fp32: %.6g (%s, every thread at once)\n", fp32_tflops, fp32_how);
}
