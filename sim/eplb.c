/* sim/eplb.c — DeepSeek's expert-parallel load balancer (see eplb.h): balanced packing,
 * replication by largest load per replica, the hierarchical and global policies, per-GPU loads,
 * and load statistics from the V3 gate over synthetic tokens.
 *
 * The three steps of the hierarchical policy keep three numberings apart, as eplb.py does:
 * logical experts (the model's), "node-major logical" ids (experts renumbered so each node's
 * groups are contiguous) and physical slots (numbered GPU by GPU). */
#include "eplb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "util.h"

typedef struct wi {
  double w; /* weight */
  int i;    /* item index */
} wi;

/* Heaviest first; equal weights by lower index (a total order: qsort is then deterministic). */
static int cmp_wi(const void *a, const void *b) {
  const wi *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

void eplb_balanced_packing(const double *weight, int n, int packs, int *pack, int *rank_in_pack) {
  int per = n / packs;
  if (per == 1) {
    for (int i = 0; i < n; i++) pack[i] = i, rank_in_pack[i] = 0;
    return;
  }
  wi *order = util_xmalloc((size_t)n * sizeof *order);
  for (int i = 0; i < n; i++) order[i] = (wi){weight[i], i};
  qsort(order, (size_t)n, sizeof *order, cmp_wi);
  double *pw = util_xcalloc((size_t)packs, sizeof *pw);
  int *items = util_xcalloc((size_t)packs, sizeof *items);
  for (int j = 0; j < n; j++) {
    int best = -1;
    for (int p = 0; p < packs; p++)
      if (items[p] < per && (best < 0 || pw[p] < pw[best])) best = p;
    int it = order[j].i;
    pack[it] = best;
    rank_in_pack[it] = items[best]++;
    pw[best] += weight[it];
  }
  free(order);
  free(pw);
  free(items);
}

void eplb_replicate(const double *weight, int n_log, int n_phy, int *phy2log, int *rank, int *logcnt) {
  for (int i = 0; i < n_log; i++) phy2log[i] = i, rank[i] = 0, logcnt[i] = 1;
  for (int s = n_log; s < n_phy; s++) {
    int best = 0;
    for (int e = 1; e < n_log; e++)
      if (weight[e] / logcnt[e] > weight[best] / logcnt[best]) best = e;
    phy2log[s] = best;
    rank[s] = logcnt[best]++;
  }
}

/* One layer of the hierarchical policy (groups = nodes = 1 is the global one). Writes
 * phy2log[n_phy], rank[n_phy], logcnt[n_log]. */
static void plan_layer(const double *w, int n_log, int n_phy, int groups, int nodes, int gpus, int *phy2log,
                       int *rank, int *logcnt) {
  int gsize = n_log / groups, gpn = groups / nodes, per_gpu = n_phy / gpus;
  int log_pn = n_log / nodes, phy_pn = n_phy / nodes, gpus_pn = gpus / nodes;
  /* 1: groups onto nodes. */
  double *gw = util_xcalloc((size_t)groups, sizeof *gw);
  int *gpack = util_xmalloc((size_t)groups * sizeof *gpack), *grank = util_xmalloc((size_t)groups * sizeof *grank);
  for (int e = 0; e < n_log; e++) gw[e / gsize] += w[e];
  eplb_balanced_packing(gw, groups, nodes, gpack, grank);
  int *mlog2log = util_xmalloc((size_t)n_log * sizeof *mlog2log), *log2mlog = util_xmalloc((size_t)n_log * sizeof *log2mlog);
  for (int e = 0; e < n_log; e++) {
    int g = e / gsize;
    int m = (gpack[g] * gpn + grank[g]) * gsize + e % gsize;
    log2mlog[e] = m;
    mlog2log[m] = e;
  }
  double *mw = util_xmalloc((size_t)log_pn * sizeof *mw), *pw = util_xmalloc((size_t)phy_pn * sizeof *pw);
  int *p2m = util_xmalloc((size_t)phy_pn * sizeof *p2m), *prank = util_xmalloc((size_t)phy_pn * sizeof *prank);
  int *mcnt = util_xmalloc((size_t)log_pn * sizeof *mcnt);
  int *pack = util_xmalloc((size_t)phy_pn * sizeof *pack), *rip = util_xmalloc((size_t)phy_pn * sizeof *rip);
  for (int node = 0; node < nodes; node++) {
    /* 2: replicate inside the node. */
    for (int j = 0; j < log_pn; j++) mw[j] = w[mlog2log[node * log_pn + j]];
    eplb_replicate(mw, log_pn, phy_pn, p2m, prank, mcnt);
    /* 3: the node's physical experts onto its GPUs. */
    for (int s = 0; s < phy_pn; s++) pw[s] = mw[p2m[s]] / mcnt[p2m[s]];
    eplb_balanced_packing(pw, phy_pn, gpus_pn, pack, rip);
    for (int s = 0; s < phy_pn; s++) {
      int slot = node * phy_pn + pack[s] * per_gpu + rip[s];
      phy2log[slot] = mlog2log[node * log_pn + p2m[s]];
      rank[slot] = prank[s];
    }
    for (int j = 0; j < log_pn; j++) logcnt[mlog2log[node * log_pn + j]] = mcnt[j];
  }
  (void)log2mlog;
  free(gw), free(gpack), free(grank), free(mlog2log), free(log2mlog);
  free(mw), free(pw), free(p2m), free(prank), free(mcnt), free(pack), free(rip);
}

static void plan_alloc(eplb_plan *p, int layers, int n_log, int n_phy, int gpus) {
  memset(p, 0, sizeof *p);
  p->layers = layers, p->n_log = n_log, p->n_phy = n_phy, p->gpus = gpus, p->per_gpu = n_phy / gpus;
  p->phy2log = util_xmalloc((size_t)layers * n_phy * sizeof *p->phy2log);
  p->phy_rank = util_xmalloc((size_t)layers * n_phy * sizeof *p->phy_rank);
  p->logcnt = util_xmalloc((size_t)layers * n_log * sizeof *p->logcnt);
}

/* Builds log2phy from phy2log/phy_rank/logcnt. */
static void plan_index(eplb_plan *p) {
  int mr = 1;
  for (size_t i = 0; i < (size_t)p->layers * p->n_log; i++) mr = p->logcnt[i] > mr ? p->logcnt[i] : mr;
  p->max_replicas = mr;
  size_t n = (size_t)p->layers * p->n_log * mr;
  p->log2phy = util_xmalloc(n * sizeof *p->log2phy);
  for (size_t i = 0; i < n; i++) p->log2phy[i] = -1;
  for (int l = 0; l < p->layers; l++)
    for (int s = 0; s < p->n_phy; s++) {
      size_t i = (size_t)l * p->n_phy + s;
      p->log2phy[((size_t)l * p->n_log + p->phy2log[i]) * mr + p->phy_rank[i]] = s;
    }
}

int eplb_rebalance(const double *weight, int layers, int n_log, int n_phy, int groups, int nodes, int gpus,
                   eplb_policy policy, eplb_plan *out, char *why, size_t why_len) {
  memset(out, 0, sizeof *out);
  if (layers < 1 || n_log < 1 || gpus < 1 || nodes < 1 || groups < 1) {
    snprintf(why, why_len, "layers, experts, groups, nodes and GPUs must be positive");
    return -1;
  }
  if (n_phy < n_log) {
    snprintf(why, why_len, "%d physical slots cannot hold %d logical experts", n_phy, n_log);
    return -1;
  }
  if (n_phy % gpus != 0) {
    snprintf(why, why_len, "%d physical slots do not divide evenly over %d GPUs", n_phy, gpus);
    return -1;
  }
  if (gpus % nodes != 0) {
    snprintf(why, why_len, "%d GPUs do not divide evenly over %d nodes", gpus, nodes);
    return -1;
  }
  for (size_t i = 0; i < (size_t)layers * n_log; i++)
    if (!(weight[i] >= 0)) {
      snprintf(why, why_len, "expert load %g (layer %zu, expert %zu) is not a non-negative number", weight[i],
               i / (size_t)n_log, i % (size_t)n_log);
      return -1;
    }
  int hier_ok = n_log % groups == 0 && groups % nodes == 0;
  if (policy == EPLB_HIERARCHICAL && !hier_ok) {
    snprintf(why, why_len, "the hierarchical policy needs the %d experts in %d equal groups and the groups "
             "divisible over %d nodes", n_log, groups, nodes);
    return -1;
  }
  int hier = policy == EPLB_HIERARCHICAL || (policy == EPLB_AUTO && hier_ok);
  if (!hier) groups = 1, nodes = 1;
  plan_alloc(out, layers, n_log, n_phy, gpus);
  out->hierarchical = hier;
  for (int l = 0; l < layers; l++)
    plan_layer(weight + (size_t)l * n_log, n_log, n_phy, groups, nodes, gpus, out->phy2log + (size_t)l * n_phy,
               out->phy_rank + (size_t)l * n_phy, out->logcnt + (size_t)l * n_log);
  plan_index(out);
  return 0;
}

int eplb_plan_identity(int layers, int n_log, int gpus, eplb_plan *out, char *why, size_t why_len) {
  memset(out, 0, sizeof *out);
  if (layers < 1 || n_log < 1 || gpus < 1 || n_log % gpus != 0) {
    snprintf(why, why_len, "%d experts do not divide evenly over %d GPUs", n_log, gpus);
    return -1;
  }
  plan_alloc(out, layers, n_log, n_log, gpus);
  for (int l = 0; l < layers; l++)
    for (int e = 0; e < n_log; e++) {
      out->phy2log[(size_t)l * n_log + e] = e;
      out->phy_rank[(size_t)l * n_log + e] = 0;
      out->logcnt[(size_t)l * n_log + e] = 1;
    }
  plan_index(out);
  return 0;
}

void eplb_plan_free(eplb_plan *p) {
  if (!p) return;
  free(p->phy2log);
  free(p->phy_rank);
  free(p->logcnt);
  free(p->log2phy);
  memset(p, 0, sizeof *p);
}

double eplb_gpu_loads(const eplb_plan *p, int layer, const double *weight, double *gpu_load) {
  const int *p2l = p->phy2log + (size_t)layer * p->n_phy, *cnt = p->logcnt + (size_t)layer * p->n_log;
  double mx = 0;
  for (int g = 0; g < p->gpus; g++) {
    double s = 0;
    for (int j = 0; j < p->per_gpu; j++) {
      int e = p2l[g * p->per_gpu + j];
      s += weight[e] / cnt[e];
    }
    gpu_load[g] = s;
    mx = s > mx ? s : mx;
  }
  return mx;
}

double eplb_imbalance(const eplb_plan *p, int layer, const double *weight) {
  double *gl = util_xmalloc((size_t)p->gpus * sizeof *gl), sum = 0;
  double mx = eplb_gpu_loads(p, layer, weight, gl);
  for (int g = 0; g < p->gpus; g++) sum += gl[g];
  free(gl);
  return sum > 0 ? mx / (sum / p->gpus) : 1.0;
}

void eplb_gate_route(int n_experts, int n_groups, int topk_groups, int topk, double zipf_s, uint64_t seed, int layer,
                     int64_t t0, int64_t tokens, int32_t *idx) {
  moe_gate_cfg g = moe_gate_v3();
  g.n_experts = n_experts, g.n_groups = n_groups, g.topk_groups = topk_groups, g.topk = topk;
  enum { CHUNK = 1024 };
  float *scores = util_xmalloc((size_t)CHUNK * n_experts * sizeof *scores);
  float *w = util_xmalloc((size_t)CHUNK * topk * sizeof *w);
  moe_synth syn = {.seed = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(layer + 1), .zipf_s = zipf_s, .noise = 1.0};
  for (int64_t t = 0; t < tokens; t += CHUNK) {
    int64_t n = tokens - t < CHUNK ? tokens - t : CHUNK;
    moe_synth_scores(&syn, n_experts, t0 + t, n, scores);
    moe_gate_select(&g, scores, NULL, n, idx + t * topk, w);
  }
  free(scores);
  free(w);
}

void eplb_gate_loads(int n_experts, int n_groups, int topk_groups, int topk, double zipf_s, uint64_t seed,
                     int layers, int64_t t0, int64_t tokens, double *weight) {
  int32_t *idx = util_xmalloc((size_t)tokens * topk * sizeof *idx);
  int64_t *load = util_xmalloc((size_t)n_experts * sizeof *load);
  for (int l = 0; l < layers; l++) {
    eplb_gate_route(n_experts, n_groups, topk_groups, topk, zipf_s, seed, l, t0, tokens, idx);
    moe_gate_load(idx, tokens, topk, n_experts, load);
    for (int e = 0; e < n_experts; e++) weight[(size_t)l * n_experts + e] = (double)load[e];
  }
  free(idx);
  free(load);
}
