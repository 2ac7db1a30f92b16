/* sim/ep_routing.c — token->expert assignments for the EP collectives (coll.h): DeepEP's benchmark
 * routing, DeepSeek-V3's gate over synthetic affinities (kernels/gate.h), and routing trace files.
 *
 * DeepEP draws scores |N(0,1)| + 1 and only ever compares them (group maxima, top groups, top-k),
 * so any strictly increasing transform of the scores selects the same experts with the same
 * probabilities: we draw 32-bit uniforms (|N(0,1)|'s CDF transform) and save the normals. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "gate.h"
#include "util.h"

ep_routing *ep_routing_new(int ranks, int tokens, int topk, int experts) {
  ep_routing *r = util_xcalloc(1, sizeof *r);
  r->ranks = ranks, r->tokens = tokens, r->topk = topk, r->experts = experts;
  r->idx = util_xmalloc((size_t)ranks * tokens * topk * sizeof *r->idx);
  for (size_t i = 0; i < (size_t)ranks * tokens * topk; i++) r->idx[i] = -1;
  return r;
}

void ep_routing_free(ep_routing *r) {
  if (!r) return;
  free(r->idx);
  free(r);
}

static inline uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Indices of the k largest of v[0..n) into out, largest first; ties to the lower index. */
static void top_k_u32(const uint32_t *v, int n, int k, int *out) {
  int m = 0;
  for (int i = 0; i < n; i++) {
    if (m == k && v[i] <= v[out[k - 1]]) continue;
    int j = m < k ? m++ : k - 1;
    while (j > 0 && v[out[j - 1]] < v[i]) out[j] = out[j - 1], j--;
    out[j] = i;
  }
}

void ep_routing_deepep(ep_routing *r, int groups, int topk_groups, uint64_t seed) {
  int E = r->experts, per = E / groups;
  uint32_t *s = util_xmalloc((size_t)(E + 1) * sizeof *s), *gmax = util_xmalloc((size_t)groups * sizeof *gmax);
  uint32_t *cand = util_xmalloc((size_t)E * sizeof *cand);
  int *gsel = util_xmalloc((size_t)groups * sizeof *gsel), *cid = util_xmalloc((size_t)E * sizeof *cid);
  int *pick = util_xmalloc((size_t)r->topk * sizeof *pick);
  for (int rank = 0; rank < r->ranks; rank++) {
    uint64_t st = seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(rank + 1));
    for (int t = 0; t < r->tokens; t++) {
      /* 32-bit uniform scores, two per draw (ties have probability ~E^2 / 2^33 per token). */
      for (int e = 0; e < E; e += 2) {
        uint64_t z = splitmix64(&st);
        s[e] = (uint32_t)z, s[e + 1] = (uint32_t)(z >> 32);
      }
      for (int g = 0; g < groups; g++) {
        uint32_t m = 0;
        for (int e = g * per; e < (g + 1) * per; e++) m = s[e] > m ? s[e] : m;
        gmax[g] = m;
      }
      top_k_u32(gmax, groups, topk_groups, gsel);
      int nc = 0;
      for (int i = 0; i < topk_groups; i++)
        for (int e = gsel[i] * per; e < (gsel[i] + 1) * per; e++) cand[nc] = s[e], cid[nc++] = e;
      int k = r->topk < nc ? r->topk : nc;
      top_k_u32(cand, nc, k, pick);
      int32_t *out = &r->idx[((size_t)rank * r->tokens + (size_t)t) * r->topk];
      for (int i = 0; i < r->topk; i++) out[i] = i < k ? cid[pick[i]] : -1;
    }
  }
  free(s), free(gmax), free(cand), free(gsel), free(cid), free(pick);
}

void ep_routing_gate(ep_routing *r, int groups, int topk_groups, double zipf_s, uint64_t seed) {
  moe_gate_cfg g = moe_gate_v3();
  g.n_experts = r->experts, g.n_groups = groups, g.topk_groups = topk_groups, g.topk = r->topk;
  moe_synth syn = {.seed = seed, .zipf_s = zipf_s, .noise = 1.0};
  int T = r->tokens, E = r->experts;
  float *scores = util_xmalloc((size_t)T * E * sizeof *scores), *w = util_xmalloc((size_t)T * r->topk * sizeof *w);
  for (int rank = 0; rank < r->ranks; rank++) {
    moe_synth_scores(&syn, E, (int64_t)rank * T, T, scores);
    moe_gate_select(&g, scores, NULL, T, &r->idx[(size_t)rank * T * r->topk], w);
  }
  free(scores);
  free(w);
}

/* ---- trace files ---- */

typedef struct lexer {
  const char *path;
  char *p;      /* cursor */
  int line;     /* 1-based */
  char *bol;    /* start of the current line */
} lexer;

static int lex_error(const lexer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lex_error(const lexer *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d:%d: error: ", x->path, x->line, (int)(x->p - x->bol) + 1);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return -1;
}

/* Skips blanks, comments and newlines. */
static void skip(lexer *x) {
  for (;;) {
    while (*x->p == ' ' || *x->p == '\t' || *x->p == '\r') x->p++;
    if (*x->p == '#')
      while (*x->p && *x->p != '\n') x->p++;
    if (*x->p != '\n') return;
    x->p++;
    x->line++;
    x->bol = x->p;
  }
}

static int lex_int(lexer *x, long *v, const char *what) {
  skip(x);
  if (!*x->p) return lex_error(x, "unexpected end of file, expected %s", what);
  char *end;
  errno = 0;
  long n = strtol(x->p, &end, 10);
  if (end == x->p || (*end && !isspace((unsigned char)*end) && *end != '#') || errno)
    return lex_error(x, "expected %s (an integer)", what);
  *v = n;
  x->p = end;
  return 0;
}

static int lex_word(lexer *x, const char *w) {
  skip(x);
  size_t n = strlen(w);
  if (strncmp(x->p, w, n) != 0 || (x->p[n] && !isspace((unsigned char)x->p[n])))
    return lex_error(x, "expected '%s'", w);
  x->p += n;
  return 0;
}

ep_routing *ep_routing_load(const char *path) {
  size_t len;
  char *text = util_read_file(path, &len);
  if (!text) {
    fprintf(stderr, "%s: error: cannot read routing trace: %s\n", path, strerror(errno));
    return NULL;
  }
  lexer x = {.path = path, .p = text, .line = 1, .bol = text};
  long ver, R, T, K, E;
  ep_routing *r = NULL;
  if (lex_word(&x, "moesim-routing") || lex_int(&x, &ver, "the format version")) goto fail;
  if (ver != 1) {
    lex_error(&x, "unsupported routing trace version %ld (expected 1)", ver);
    goto fail;
  }
  if (lex_word(&x, "ranks") || lex_int(&x, &R, "the rank count") || lex_word(&x, "tokens") ||
      lex_int(&x, &T, "tokens per rank") || lex_word(&x, "topk") || lex_int(&x, &K, "topk") ||
      lex_word(&x, "experts") || lex_int(&x, &E, "the expert count"))
    goto fail;
  if (R < 1 || T < 0 || K < 1 || E < 1 || E % R != 0 || R * T * K > (1L << 31)) {
    lex_error(&x, "bad header: need ranks >= 1, tokens >= 0, topk >= 1, experts a multiple of ranks");
    goto fail;
  }
  r = ep_routing_new((int)R, (int)T, (int)K, (int)E);
  for (long i = 0; i < R * T * K; i++) {
    long e;
    if (lex_int(&x, &e, "an expert id")) goto fail;
    if (e < -1 || e >= E) {
      x.p--;
      lex_error(&x, "expert id %ld out of range [-1, %ld)", e, E);
      goto fail;
    }
    r->idx[i] = (int32_t)e;
  }
  skip(&x);
  if (*x.p) {
    lex_error(&x, "trailing data after the %ld x %ld token lines", R, T);
    goto fail;
  }
  free(text);
  return r;
fail:
  ep_routing_free(r);
  free(text);
  return NULL;
}

int ep_routing_write(const ep_routing *r, const char *path) {
  util_buf b = {0};
  util_buf_printf(&b, "moesim-routing 1\n# rank-major: one line per token, its expert ids (-1 = none)\n");
  util_buf_printf(&b, "ranks %d tokens %d topk %d experts %d\n", r->ranks, r->tokens, r->topk, r->experts);
  for (size_t t = 0; t < (size_t)r->ranks * r->tokens; t++) {
    for (int k = 0; k < r->topk; k++) util_buf_printf(&b, k ? " %d" : "%d", r->idx[t * r->topk + k]);
    util_buf_append(&b, "\n", 1);
  }
  int rc = util_write_file_atomic(path, b.data, b.len);
  util_buf_free(&b);
  return rc;
}
