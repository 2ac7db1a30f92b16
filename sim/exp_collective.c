/* sim/exp_collective.c — the `collective` experiment kind: one collective (or `groups` copies of
 * it on consecutive blocks of GPUs, running at once and sharing the fabric) simulated alone on a
 * cluster, with its time, bandwidths, the busiest link of each kind and, with links_csv, every
 * link's bytes and utilisation in <out>/links.csv.
 *
 *   name: ep64
 *   kind: collective
 *   cluster: ../topologies/h800-2048-ft2.yaml
 *   collective: ep_dispatch   # ep_dispatch | ep_combine | allreduce_ring | allreduce_tree |
 *                             # reduce_scatter_ring | allgather_ring | alltoall | p2p
 *   ranks: 64
 *   groups: 32                # 32 EP64 groups side by side
 *   comm_sms: 24
 *   ep: {tokens: 4096, routing: deepep, max_nodes: 4}
 *
 * Bandwidth columns: algbw = bytes per rank / time (the buffer for all-reduce and friends, the
 * bytes a rank sends for all-to-all and EP); for EP also DeepEP's RDMA and NVL figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "exp.h"
#include "topo.h"
#include "util.h"

enum { X_EP_DISPATCH = 100, X_EP_COMBINE = 101 };

typedef struct xc_ep {
  int tokens;        /* tokens per rank */
  int hidden;        /* elements per token */
  int experts;       /* routed experts */
  int topk;          /* experts per token */
  int max_nodes;     /* node-limited routing: nodes a token may reach (0 = min(nodes, 4)) */
  int routing;       /* 0 deepep, 1 gate, 2 trace */
  double skew;       /* gate: popularity skew (Zipf s) */
  char *trace;       /* routing trace file */
  int dispatch_fp8;  /* FP8 dispatch payload */
  int kernel;        /* coll_ep_kernel */
  int rdma_chunk;    /* tokens per RDMA message (0: DeepEP's recommended) */
} xc_ep;

typedef struct xc_spec {
  topo_spec cluster;            /* the cluster */
  const cfg_node *cluster_node; /* its YAML mapping */
  int collective;               /* index into names below */
  int ranks;                    /* participants per group */
  int groups;                   /* copies at once on consecutive GPU blocks */
  int first_gpu;                /* GPU of rank 0 of group 0 */
  uint64_t bytes;               /* non-EP: buffer per rank / bytes per pair / message */
  int comm_sms;                 /* SMs per rank (0 = not SM-limited) */
  int chunks;                   /* tree pipeline chunks */
  int path;                     /* net_path */
  uint64_t seed;                /* ECMP and routing seed */
  uint64_t chunk_bytes;         /* > 0: relayed sends move in chunks of this size */
  int links_csv;                /* write links.csv */
  xc_ep ep;                     /* EP settings */
} xc_spec;

static const char *const coll_names[] = {"ep_dispatch", "ep_combine", "allreduce_ring", "allreduce_tree",
                                         "reduce_scatter_ring", "allgather_ring", "alltoall", "p2p", NULL};
static const int coll_kinds[] = {X_EP_DISPATCH, X_EP_COMBINE, COLL_ALLREDUCE_RING, COLL_ALLREDUCE_TREE,
                                 COLL_REDUCE_SCATTER_RING, COLL_ALLGATHER_RING, COLL_ALLTOALL, COLL_P2P};
static const char *const path_names[] = {"auto", "direct", "pxn", "rail", NULL};
static const char *const routing_names[] = {"deepep", "gate", "trace", NULL};
static const char *const kernel_names[] = {"auto", "intranode", "two_hop", "direct", NULL};

#define E(nm, ty, f, fl, d) {.name = nm, .type = ty, .offset = offsetof(xc_ep, f), .flags = fl, .doc = d}
static const cfg_key ep_keys[] = {
    E("tokens", CFG_INT32, tokens, CFG_NONNEG, "tokens per rank (4096)"),
    E("hidden", CFG_INT32, hidden, CFG_POSITIVE, "elements per token (7168)"),
    E("experts", CFG_INT32, experts, CFG_POSITIVE, "routed experts, a multiple of ranks (256)"),
    E("topk", CFG_INT32, topk, CFG_POSITIVE, "experts per token (8)"),
    E("max_nodes", CFG_INT32, max_nodes, CFG_NONNEG, "nodes a token may reach (0: min(nodes, 4))"),
    {.name = "routing", .type = CFG_ENUM, .offset = offsetof(xc_ep, routing), .choices = routing_names,
     .doc = "deepep (DeepEP's benchmark) | gate (V3 gate, synthetic skew) | trace (a file)"},
    E("skew", CFG_DOUBLE, skew, CFG_NONNEG, "gate routing: expert popularity skew, Zipf s (0 uniform)"),
    E("trace", CFG_PATH, trace, 0, "routing trace file (routing: trace)"),
    E("dispatch_fp8", CFG_BOOL, dispatch_fp8, 0, "FP8 dispatch with 1x128 scales (else BF16)"),
    {.name = "kernel", .type = CFG_ENUM, .offset = offsetof(xc_ep, kernel), .choices = kernel_names,
     .doc = "auto | intranode | two_hop (DeepEP: IB once per node, NVLink onward) | direct"},
    E("rdma_chunk_tokens", CFG_INT32, rdma_chunk, CFG_NONNEG, "tokens per RDMA message (0: DeepEP's default)"),
    CFG_END};

#define K(nm, ty, f, fl, d) {.name = nm, .type = ty, .offset = offsetof(xc_spec, f), .flags = fl, .doc = d}
static const cfg_key xc_keys[] = {
    {.name = "cluster", .type = CFG_INCLUDE, .offset = offsetof(xc_spec, cluster), .sub = topo_spec_keys,
     .flags = CFG_REQUIRED | CFG_KEEP_NODE, .node_offset = offsetof(xc_spec, cluster_node),
     .doc = "cluster (a topologies/*.yaml file or an inline mapping in that format)"},
    {.name = "collective", .type = CFG_ENUM, .offset = offsetof(xc_spec, collective), .choices = coll_names,
     .flags = CFG_REQUIRED, .doc = "which collective"},
    K("ranks", CFG_INT32, ranks, CFG_POSITIVE, "participants per group (p2p: 2)"),
    K("groups", CFG_INT32, groups, CFG_POSITIVE, "copies on consecutive GPU blocks, at once (1)"),
    K("first_gpu", CFG_INT32, first_gpu, CFG_NONNEG, "GPU of rank 0 (0)"),
    K("bytes", CFG_UINT, bytes, 0, "non-EP: buffer per rank / bytes per pair (all-to-all) / message, bytes"),
    K("comm_sms", CFG_INT32, comm_sms, CFG_NONNEG, "SMs per rank for the kernel (0 = not SM-limited)"),
    K("chunks", CFG_INT32, chunks, CFG_NONNEG, "tree all-reduce pipeline chunks (1)"),
    {.name = "path", .type = CFG_ENUM, .offset = offsetof(xc_spec, path), .choices = path_names,
     .doc = "auto | direct | pxn (NVLink first) | rail (scale-out first) for sends across nodes"},
    K("seed", CFG_UINT, seed, 0, "ECMP and routing seed"),
    K("chunk_bytes", CFG_UINT, chunk_bytes, 0, "relayed sends move in chunks of this size (0: cut-through)"),
    K("links_csv", CFG_BOOL, links_csv, 0, "write links.csv: every used link's bytes and utilisation"),
    {.name = "ep", .type = CFG_STRUCT, .offset = offsetof(xc_spec, ep), .sub = ep_keys, .doc = "EP dispatch/combine"},
    CFG_END};

static void xc_init(void *p) {
  xc_spec *s = p;
  memset(s, 0, sizeof *s);
  topo_spec_init(&s->cluster);
  s->ranks = 8, s->groups = 1, s->bytes = 1 << 20, s->comm_sms = 0, s->chunks = 1, s->seed = 1;
  s->ep = (xc_ep){.tokens = 4096, .hidden = 7168, .experts = 256, .topk = 8, .dispatch_fp8 = 1};
}

/* What the groups' completions add up to. */
typedef struct xc_state {
  int pending;            /* groups not finished */
  sim_ps end;             /* last completion */
  double rdma, nvl;       /* sums of DeepEP's per-group figures, GB/s */
  double scaleout, nvlink;/* bytes */
} xc_state;

static void ep_done(net *n, void *ctx, coll_ep_result *r) {
  (void)n;
  xc_state *x = ctx;
  if (r->end > x->end) x->end = r->end;
  x->rdma += coll_ep_rdma_gbyte_s(r), x->nvl += coll_ep_nvl_gbyte_s(r);
  x->scaleout += r->scaleout_bytes, x->nvlink += r->nvlink_bytes;
  coll_ep_result_free(r);
  free(r);
  x->pending--;
}

static void coll_done(net *n, void *ctx, sim_ps start, sim_ps end) {
  (void)n, (void)start;
  xc_state *x = ctx;
  if (end > x->end) x->end = end;
  x->pending--;
}

/* Routing for one EP group; NULL after a message. */
static ep_routing *make_routing(const exp_run *run, const xc_spec *s, const topo *t, int g) {
  const xc_ep *e = &s->ep;
  if (e->routing == 2) {
    if (!e->trace) {
      fprintf(stderr, "%s: error: ep.routing is trace but ep.trace names no file\n", run->exp_path);
      return NULL;
    }
    ep_routing *r = ep_routing_load(e->trace);
    if (r && r->ranks != s->ranks) {
      fprintf(stderr, "%s: error: %s has %d ranks, the experiment %d\n", run->exp_path, e->trace, r->ranks, s->ranks);
      ep_routing_free(r);
      return NULL;
    }
    return r;
  }
  int nodes = (s->ranks + t->gpus_per_node - 1) / t->gpus_per_node;
  if (nodes < 1 || e->experts % s->ranks != 0 || e->experts % nodes != 0) {
    fprintf(stderr, "%s: error: %d experts do not divide over %d ranks in %d nodes\n", run->exp_path, e->experts,
            s->ranks, nodes);
    return NULL;
  }
  int m = e->max_nodes ? e->max_nodes : (nodes < 4 ? nodes : 4);
  if (m > nodes) m = nodes;
  ep_routing *r = ep_routing_new(s->ranks, e->tokens, e->topk, e->experts);
  uint64_t seed = s->seed * 1000003u + (uint64_t)g;
  if (e->routing == 1) ep_routing_gate(r, nodes, m, e->skew, seed);
  else ep_routing_deepep(r, nodes == 1 ? 1 : nodes, nodes == 1 ? 1 : m, seed);
  return r;
}

static int xc_run(const exp_run *run, void *p, res_row *row) {
  xc_spec *s = p;
  if (topo_spec_resolve(run->cfg, &s->cluster, s->cluster_node) != 0) return UTIL_EXIT_USAGE;
  char err[256];
  topo *t = topo_build(&s->cluster, err, sizeof err);
  if (!t) {
    fprintf(stderr, "%s: error: cluster: %s\n", run->exp_path, err);
    return UTIL_EXIT_USAGE;
  }
  int kind = coll_kinds[s->collective], ep = kind >= X_EP_DISPATCH, R = kind == COLL_P2P ? 2 : s->ranks;
  if ((int64_t)s->first_gpu + (int64_t)R * s->groups > t->n_gpus) {
    fprintf(stderr, "%s: error: %d groups of %d ranks from GPU %d exceed the cluster's %d GPUs\n", run->exp_path,
            s->groups, R, s->first_gpu, t->n_gpus);
    topo_free(t);
    return UTIL_EXIT_USAGE;
  }
  des_sim *sim = des_new();
  net *n = net_new(sim, t, &(net_opts){.seed = s->seed, .chunk_bytes = s->chunk_bytes});
  int *gpus = util_xmalloc((size_t)R * s->groups * sizeof *gpus);
  for (int i = 0; i < R * s->groups; i++) gpus[i] = s->first_gpu + i;
  ep_routing **rt = ep ? util_xcalloc((size_t)s->groups, sizeof *rt) : NULL;
  int rc = 0;
  xc_state x = {.pending = s->groups};
  for (int g = 0; ep && g < s->groups && rc == 0; g++)
    if (!(rt[g] = make_routing(run, s, t, g))) rc = UTIL_EXIT_USAGE;
  uint64_t t0 = util_now_ns(); /* simulation only: routing generation is not counted */
  for (int g = 0; g < s->groups && rc == 0; g++) {
    if (ep) {
      coll_ep_cfg cfg = {.hidden = s->ep.hidden, .dispatch_fp8 = s->ep.dispatch_fp8, .sms = s->comm_sms,
                         .kernel = s->ep.kernel, .rdma_chunk_tokens = s->ep.rdma_chunk, .gpus = gpus + R * g};
      if (coll_ep_start(n, &cfg, rt[g], kind == X_EP_COMBINE, ep_done, &x) != 0) rc = UTIL_EXIT_USAGE;
    } else {
      coll_spec cs = {.kind = kind, .gpus = gpus + R * g, .ranks = R, .bytes = s->bytes, .sms = s->comm_sms,
                      .chunks = s->chunks, .path = s->path};
      if (coll_start(n, &cs, coll_done, &x) != 0) rc = UTIL_EXIT_USAGE;
    }
  }
  if (rc == 0) des_run(sim);
  double wall_ms = (double)(util_now_ns() - t0) * 1e-6;
  if (rc == 0 && x.pending != 0) rc = 1;
  if (rc == 0) {
    double time_us = ps_to_us(x.end);
    double per_rank = 0;
    if (kind == COLL_ALLTOALL) per_rank = (double)s->bytes * (R - 1);
    else if (!ep) per_rank = (double)s->bytes;
    res_set(row, "collective", "%s", coll_names[s->collective]);
    res_set(row, "cluster", "%s", t->name);
    res_set_i(row, "ranks", R);
    res_set_i(row, "groups", s->groups);
    res_set_i(row, "comm_sms", s->comm_sms);
    res_set_f(row, "time_us", time_us);
    if (ep) {
      res_set_f(row, "rdma_gbyte_s", x.rdma / s->groups);
      res_set_f(row, "nvl_gbyte_s", x.nvl / s->groups);
      res_set_f(row, "scaleout_bytes", x.scaleout);
      res_set_f(row, "nvlink_bytes", x.nvlink);
    } else {
      res_set_f(row, "bytes", (double)s->bytes);
      res_set_f(row, "algbw_gbyte_s", time_us > 0 ? per_rank / (time_us * 1e3) : 0);
    }
    res_set_f(row, "max_util_nvlink", net_max_link_util(n, TOPO_L_NVLINK));
    res_set_f(row, "max_util_nic", net_max_link_util(n, TOPO_L_NIC));
    res_set_f(row, "max_util_fabric", net_max_link_util(n, TOPO_L_FABRIC));
    net_stats st;
    net_get_stats(n, &st);
    res_set_i(row, "flows", (long long)st.flows_started);
    res_set_i(row, "events", (long long)des_fired(sim));
    res_set_f(row, "sim_wall_ms", wall_ms);
    if (s->links_csv && run->out_dir) {
      util_buf path = {0};
      util_buf_printf(&path, "%s/links.csv", run->out_dir);
      char *data = NULL;
      size_t len = 0;
      FILE *f = open_memstream(&data, &len);
      if (!f) UTIL_SYSFAIL("open_memstream: %s", "out of memory");
      net_write_links(n, f, 0);
      fclose(f);
      if (util_mkdirs(run->out_dir) != 0 || util_write_file_atomic(path.data, data, len) != 0) rc = 1;
      free(data);
      util_buf_free(&path);
    }
    if (run->summary && !run->quiet)
      fprintf(run->summary, "%s on %s: %d group(s) of %d ranks, %.1f us, busiest NVLink %.0f%%, NIC %.0f%%, fabric %.0f%%\n",
              coll_names[s->collective], t->name, s->groups, R, time_us, 100 * net_max_link_util(n, TOPO_L_NVLINK),
              100 * net_max_link_util(n, TOPO_L_NIC), 100 * net_max_link_util(n, TOPO_L_FABRIC));
  }
  for (int g = 0; ep && g < s->groups; g++) ep_routing_free(rt[g]);
  free(rt);
  free(gpus);
  net_free(n);
  des_free(sim);
  topo_free(t);
  return rc;
}

const exp_kind exp_kind_collective = {
    .name = "collective",
    .summary = "one collective (EP dispatch/combine, all-reduce, all-to-all, ...) alone on a cluster",
    .keys = xc_keys,
    .spec_size = sizeof(xc_spec),
    .init = xc_init,
    .run = xc_run,
    .plots = NULL,
};
