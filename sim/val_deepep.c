/* sim/val_deepep.c — `moesim validate deepep`: DeepEP's normal-kernel bandwidth table on H800
 * (deepseek-ai/DeepEP docs/legacy.md; shared/reference/deepep.md) against the network model.
 *
 * Setting, as DeepEP's benchmark (tests/legacy/test_intranode.py, test_internode.py): 4096 tokens
 * per rank, hidden 7168, 256 experts, top-8, FP8 dispatch (1 byte + a 4-byte scale per 128
 * elements), BF16 combine, 24 SMs; intranode routing is a plain top-8 of |N(0,1)|+1 scores,
 * internode routing keeps the top min(nodes, 4) nodes by best expert score first. The cluster is
 * topologies/h800-2048-ft2.yaml cut to 1, 2, 4 and 8 nodes (H800 + one CX7 400G per GPU), with the
 * catalogue's one calibrated figure (copy_gbyte_s_per_sm) and nothing tuned per row.
 *
 * Bandwidth is computed as DeepEP's tests do, per rank, averaged over ranks: internode "RDMA"
 * = (token, node) pairs of the rank, its own node included, x token bytes / kernel time;
 * intranode "NVL" = tokens the rank receives x token bytes / kernel time. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "coll.h"
#include "topo.h"
#include "util.h"
#include "val_deepep.h"
#include "validate.h"

/* The first of $MOESIM_TOPOLOGIES, ./topologies, and ../topologies or ../../topologies beside the
 * executable that holds `name`; written to buf. Returns 0 or -1. */
static int find_topology(const char *name, char *buf, size_t n) {
  char exe[PATH_MAX];
  const char *env = getenv("MOESIM_TOPOLOGIES");
  char dirs[4][PATH_MAX];
  int nd = 0;
  if (env && *env) snprintf(dirs[nd++], PATH_MAX, "%s", env);
  snprintf(dirs[nd++], PATH_MAX, "topologies");
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = 0;
    char *d = util_dirname(exe);
    snprintf(dirs[nd++], PATH_MAX, "%.3000s/../topologies", d);
    snprintf(dirs[nd++], PATH_MAX, "%.3000s/../../topologies", d);
    free(d);
  }
  for (int i = 0; i < nd; i++) {
    snprintf(buf, n, "%.3000s/%.200s", dirs[i], name);
    if (access(buf, R_OK) == 0) return 0;
  }
  fprintf(stderr, "moesim validate: error: cannot find topologies/%s (set MOESIM_TOPOLOGIES)\n", name);
  return -1;
}

typedef struct deepep_row {
  int ep;           /* ranks */
  double dispatch;  /* GB/s published */
  double combine;
} deepep_row;

/* docs/legacy.md, "Normal kernels with NVLink and RDMA forwarding" (values since commit 3b1045d). */
static const deepep_row rows[] = {{8, 153, 158}, {16, 43, 43}, {32, 58, 57}, {64, 51, 50}};

/* Loads the V3 cluster file cut to `nodes` nodes. */
static topo *load_cluster(const char *path, int nodes) {
  cfg_ctx *ctx = cfg_new();
  char set[64];
  snprintf(set, sizeof set, "nodes=%d", nodes);
  topo *t = NULL;
  if (cfg_override(ctx, set, "validate deepep") == 0) t = topo_load(ctx, path);
  cfg_free(ctx);
  return t;
}

static int suite(val_report *rep) {
  char path[PATH_MAX];
  if (find_topology("h800-2048-ft2.yaml", path, sizeof path) != 0) return -1;
  for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
    int ep = rows[i].ep, nodes = ep / 8;
    topo *t = load_cluster(path, nodes);
    if (!t) return -1;
    ep_routing *r = ep_routing_new(ep, 4096, 8, 256);
    ep_routing_deepep(r, nodes, nodes < 4 ? nodes : 4, 20250101u + (uint64_t)ep);
    coll_ep_cfg cfg = {.hidden = 7168, .dispatch_fp8 = 1, .sms = 24, .kernel = COLL_EP_AUTO};
    for (int combine = 0; combine <= 1; combine++) {
      coll_ep_result res;
      if (coll_ep_run(t, 1, &cfg, r, combine, &res) != 0) {
        ep_routing_free(r);
        topo_free(t);
        return -1;
      }
      int intra = nodes == 1;
      double sim = intra ? coll_ep_nvl_gbyte_s(&res) : coll_ep_rdma_gbyte_s(&res);
      char name[128], note[128];
      snprintf(name, sizeof name, "deepep.%s.ep%d.%s_gbyte_s", intra ? "intranode" : "internode", ep,
               combine ? "combine" : "dispatch");
      snprintf(note, sizeof note, "%s, DeepEP docs/legacy.md", intra ? "NVLink" : "RDMA");
      val_add(rep, name, combine ? rows[i].combine : rows[i].dispatch, sim, "GB/s", 10, note);
      coll_ep_result_free(&res);
    }
    ep_routing_free(r);
    topo_free(t);
  }
  return 0;
}

int val_deepep(val_report *r) { return suite(r); }
