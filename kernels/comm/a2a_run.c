/* kernels/comm/a2a_run.c — the distributed all-to-all benchmark (a2a.h): each rank generates its
 * tokens and routes them, runs warmup and timed iterations of dispatch -> expert stage -> combine
 * (the whole layer with cfg->layer), verifies the result against the single-process reference and
 * the exactly-once pair sums, and gathers every rank's record at rank 0. */
#if MOESIM_MPI
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "a2a_internal.h"
#include "harness.h"
#include "quant.h"
#include "util.h"

/* ---- setup ---- */

static void route_once(a2a_ctx *x) {
  bf16_t *gw = util_xmalloc((size_t)((int64_t)x->E * x->H) * sizeof *gw);
  moe_synth syn = {x->c->seed, x->c->skew, 1.0};
  moe_synth_gate_weight(&syn, x->E, x->H, gw);
  gemm_mat gm = {KN_BF16, gw, x->H, NULL, 0};
  gemm_packed *pw = gemm_pack(&gm, x->E, x->H);
  if (!pw || moe_gate_forward_packed(x->tp, &x->c->gate, x->x, pw, NULL, x->T, x->idx, x->w, x->scores) != 0) {
    fprintf(stderr, "moesim a2a: error: the gate GEMM rejected its arguments\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  gemm_packed_free(pw);
  free(gw);
}

static void ctx_init(a2a_ctx *x, const a2a_cfg *c) {
  memset(x, 0, sizeof *x);
  x->c = c;
  x->world = MPI_COMM_WORLD;
  A2A_MPI(MPI_Comm_size(x->world, &x->R));
  A2A_MPI(MPI_Comm_rank(x->world, &x->r));
  x->N = a2a_nodes(x->R, c->ranks_per_node), x->n = a2a_node_of(x->r, c->ranks_per_node);
  x->T = c->tokens, x->H = c->hidden, x->K = c->gate.topk, x->E = c->gate.n_experts;
  a2a_expert_range(x->E, x->R, x->r, &x->e0, &x->e1);
  x->f = a2a_row_format(x->H, x->K);
  x->tp = c->threads > 1 ? pool_create(c->threads, 0) : NULL;
  x->fault = a2a_fault();
  x->x = util_xmalloc((size_t)(x->T * x->H) * sizeof *x->x);
  moe_synth syn = {c->seed, c->skew, 1.0};
  moe_synth_activations(&syn, x->H, (int64_t)x->r * x->T, x->T, x->x);
  x->idx = util_xmalloc((size_t)(x->T * x->K) * sizeof *x->idx);
  x->w = util_xmalloc((size_t)(x->T * x->K) * sizeof *x->w);
  x->scores = util_xmalloc((size_t)(x->T * x->E) * sizeof *x->scores);
  x->xq = util_xmalloc((size_t)(x->T * x->H));
  x->xs = util_xmalloc((size_t)(x->T * quant_tiles(x->H)) * sizeof *x->xs);
  if (c->layer) {
    x->ex = a2a_experts_create(x);
    x->shared = util_xmalloc((size_t)(x->T * x->H) * sizeof *x->shared);
    if (a2a_layer_gate(x) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
  } else {
    route_once(x);
  }
  a2a_layout_build(&x->lay, x->idx, x->T, x->K, x->E, x->R, c->ranks_per_node);
  a2a_comm_setup(x);
}

static void ctx_free(a2a_ctx *x) {
  a2a_comm_free(x);
  a2a_layout_free(&x->lay);
  if (x->ex) a2a_experts_free(x->ex);
  pool_destroy(x->tp);
  free(x->x), free(x->idx), free(x->w), free(x->scores), free(x->xq), free(x->xs), free(x->shared);
}

/* ---- one iteration ---- */

typedef struct toy_job {
  a2a_ctx *x;
  bf16_t *part;
} toy_job;

static void toy_worker(void *arg, int tid, int nt) {
  toy_job *j = arg;
  int64_t n = j->x->nrecv;
  a2a_toy_experts(&j->x->f, j->x->recvbuf, n * tid / nt, n * (tid + 1) / nt, j->x->e0, j->x->e1, j->part);
}

int a2a_expert_stage(a2a_ctx *x) {
  double t0 = a2a_now_us();
  bf16_t *part = a2a_partial_buf(x);
  int rc = 0;
  if (x->c->layer) {
    rc = a2a_layer_experts(x, x->recvbuf, x->nrecv, part, NULL);
  } else {
    toy_job j = {x, part};
    pool_run(x->tp, toy_worker, &j);
  }
  x->ph[A2A_PH_EXPERTS] = a2a_now_us() - t0;
  return rc;
}

int a2a_iteration(a2a_ctx *x) {
  memset(x->ph, 0, sizeof x->ph);
  int rc = 0;
  A2A_MPI(MPI_Barrier(x->world));
  double t0 = a2a_now_us();
  if (x->c->layer) {
    rc |= a2a_layer_gate(x);
    x->ph[A2A_PH_GATE] = a2a_now_us() - t0;
    a2a_dispatch(x);
    double t1 = a2a_now_us();
    rc |= a2a_layer_shared(x);
    x->ph[A2A_PH_SHARED] = a2a_now_us() - t1;
    rc |= a2a_expert_stage(x);
    a2a_combine(x, x->c->n_shared ? x->shared : NULL);
    x->ph[A2A_PH_TOTAL] = a2a_now_us() - t0;
  } else {
    a2a_dispatch(x);
    A2A_MPI(MPI_Barrier(x->world));
    rc |= a2a_expert_stage(x);
    A2A_MPI(MPI_Barrier(x->world));
    a2a_combine(x, NULL);
    x->ph[A2A_PH_TOTAL] = x->ph[A2A_PH_DISPATCH] + x->ph[A2A_PH_EXPERTS] + x->ph[A2A_PH_COMBINE];
  }
  return rc;
}

/* ---- verification ---- */

/* Every (token, expert) pair of the rank's experts arrived exactly once: per-expert counts and hash
 * sums of the received rows against those the sources routed (summed over all ranks). */
static int check_pairs(a2a_ctx *x, int64_t *expert_cnt, char *why, size_t n) {
  int E = x->E, ne = x->e1 - x->e0;
  int64_t *cnt = util_xcalloc((size_t)E, sizeof *cnt);
  uint64_t *sum = util_xcalloc((size_t)E, sizeof *sum);
  a2a_pairs_expected(x->idx, x->T, x->K, (int64_t)x->r * x->T, E, cnt, sum);
  A2A_MPI(MPI_Allreduce(MPI_IN_PLACE, cnt, E, MPI_INT64_T, MPI_SUM, x->world));
  A2A_MPI(MPI_Allreduce(MPI_IN_PLACE, sum, E, MPI_UINT64_T, MPI_SUM, x->world));
  uint64_t *got = util_xcalloc((size_t)ne + 1, sizeof *got);
  memset(expert_cnt, 0, (size_t)ne * sizeof *expert_cnt);
  for (int64_t i = 0; i < x->nrecv; i++) {
    const char *row = (const char *)x->recvbuf + (uint64_t)i * x->f.bytes;
    const int32_t *src = a2a_row_src(&x->f, row), *idx = a2a_row_idx(&x->f, row);
    for (int k = 0; k < x->K; k++)
      if (idx[k] >= x->e0 && idx[k] < x->e1) {
        expert_cnt[idx[k] - x->e0]++;
        got[idx[k] - x->e0] += a2a_pair_hash((int64_t)src[0] * x->T + src[1], idx[k]);
      }
  }
  int rc = 0;
  for (int e = x->e0; e < x->e1 && rc == 0; e++)
    if (expert_cnt[e - x->e0] != cnt[e] || got[e - x->e0] != sum[e]) {
      snprintf(why, n, "expert %d received %lld (token, expert) pairs, %s than the %lld routed to it", e,
               (long long)expert_cnt[e - x->e0], expert_cnt[e - x->e0] == cnt[e] ? "other pairs" : "a different count",
               (long long)cnt[e]);
      rc = -1;
    }
  free(cnt), free(sum), free(got);
  return rc;
}

static int check_output(a2a_ctx *x, double *max_err, int64_t *checked, char *why, size_t n) {
  if (x->c->layer) return a2a_layer_check(x, max_err, checked, why, n);
  bf16_t *want = util_xmalloc((size_t)(x->T * x->H) * sizeof *want);
  a2a_toy_reference(x->x, x->T, x->H, x->idx, x->w, x->K, want);
  double rel, abs, mx = 0, err = 0;
  a2a_combine_tolerance(&rel, &abs);
  int64_t m = x->T * x->H;
  for (int64_t i = 0; i < m; i++) {
    double v = fabs((double)bf16_to_f32(want[i]));
    if (v > mx) mx = v;
  }
  for (int64_t i = 0; i < m; i++) {
    double d = fabs((double)bf16_to_f32(x->out[i]) - (double)bf16_to_f32(want[i])) / (mx > 0 ? mx : 1);
    if (d > err) err = d;
  }
  *max_err = err, *checked = x->T;
  int rc = hn_check_bf16(x->out, want, m, (hn_tol){rel, abs}, why, n);
  free(want);
  return rc;
}

/* ---- results ---- */

/* The fixed part of a rank's record, as sent to rank 0 (ranks of one run share the ABI). */
typedef struct rank_wire {
  int e0, e1;
  a2a_bytes bytes;
  int64_t expert_rows;
  a2a_calib calib;
  uint64_t recv_hash, out_hash;
  char host[64];
} rank_wire;

/* OpenMPI's vader single-copy mechanism through the MPI tool interface ("" when not found). */
static void single_copy_of(char *out, size_t n) {
  int prov, num = 0;
  out[0] = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &prov) != MPI_SUCCESS) return;
  if (MPI_T_cvar_get_num(&num) != MPI_SUCCESS) num = 0;
  for (int i = 0; i < num && !out[0]; i++) {
    char name[128], desc[8];
    int nl = sizeof name, dl = sizeof desc, verb, bind, scope, cnt, val = -1;
    MPI_Datatype dt;
    MPI_T_enum en;
    if (MPI_T_cvar_get_info(i, name, &nl, &verb, &dt, &en, desc, &dl, &bind, &scope) != MPI_SUCCESS) continue;
    if (strcmp(name, "btl_vader_single_copy_mechanism") != 0 || dt != MPI_INT || en == MPI_T_ENUM_NULL) continue;
    MPI_T_cvar_handle h;
    if (MPI_T_cvar_handle_alloc(i, NULL, &h, &cnt) != MPI_SUCCESS) continue;
    if (MPI_T_cvar_read(h, &val) == MPI_SUCCESS) {
      int items = 0;
      char en_name[64];
      int enl = sizeof en_name;
      if (MPI_T_enum_get_info(en, &items, en_name, &enl) == MPI_SUCCESS)
        for (int k = 0; k < items; k++) {
          char item[32];
          int v, il = sizeof item;
          if (MPI_T_enum_get_item(en, k, &v, item, &il) == MPI_SUCCESS && v == val) snprintf(out, n, "%.15s", item);
        }
    }
    MPI_T_cvar_handle_free(&h);
  }
  MPI_T_finalize();
}

static void transport_of(a2a_result *res) {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(v, &len) == MPI_SUCCESS) {
    v[len < MPI_MAX_LIBRARY_VERSION_STRING ? len : MPI_MAX_LIBRARY_VERSION_STRING - 1] = 0;
    char *nl = strpbrk(v, "\n,");
    if (nl) *nl = 0;
    snprintf(res->mpi_version, sizeof res->mpi_version, "%.150s", v);
  }
  single_copy_of(res->single_copy, sizeof res->single_copy);
  if (res->hosts <= 1)
    snprintf(res->transport, sizeof res->transport, "one host: shared memory (OpenMPI btl vader, single copy %s)",
             res->single_copy[0] ? res->single_copy : "unknown");
  else
    snprintf(res->transport, sizeof res->transport,
             "%d hosts: shared memory inside a host, the network between hosts (OpenMPI pml ucx on "
             "InfiniBand/RoCE, else btl tcp)", res->hosts);
}

static void gather(a2a_ctx *x, const double *us, const int64_t *expert_cnt, int64_t expert_rows,
                   const a2a_calib *cal, a2a_result *res) {
  int R = x->R, PH = A2A_PH_COUNT, iters = x->c->iters, ne = x->e1 - x->e0;
  rank_wire w = {x->e0, x->e1, {0}, expert_rows, *cal, 0, 0, ""};
  a2a_bytes *b = &w.bytes;
  for (int d = 0; d < R; d++) {
    b->tok_ranks += x->lay.rank_cnt[d];
    if (d != x->r) b->tok_remote += x->lay.rank_cnt[d];
  }
  for (int m = 0; m < x->N; m++) b->tok_nodes += x->lay.node_cnt[m];
  b->tok_recv = x->nrecv, b->tok_recv_remote = x->nrecv - x->recv_cnt[x->r];
  b->disp_wire_sent = (uint64_t)b->tok_remote * x->f.bytes;
  b->disp_wire_recv = (uint64_t)b->tok_recv_remote * x->f.bytes;
  w.recv_hash = a2a_hash_bytes(x->recvbuf, (uint64_t)x->nrecv * x->f.bytes, 0);
  w.out_hash = a2a_hash_bytes(x->out, (uint64_t)(x->T * x->H) * 2, 0);
  snprintf(w.host, sizeof w.host, "%s", util_hostname());
  rank_wire *all = x->r == 0 ? util_xmalloc((size_t)R * sizeof *all) : NULL;
  double *all_us = x->r == 0 ? util_xmalloc((size_t)R * iters * PH * sizeof *all_us) : NULL;
  int64_t *all_cnt = x->r == 0 ? util_xmalloc((size_t)R * R * sizeof *all_cnt) : NULL;
  int64_t *all_ncnt = x->r == 0 ? util_xmalloc((size_t)R * x->N * sizeof *all_ncnt) : NULL;
  A2A_MPI(MPI_Gather(&w, (int)sizeof w, MPI_BYTE, all, (int)sizeof w, MPI_BYTE, 0, x->world));
  A2A_MPI(MPI_Gather(us, iters * PH, MPI_DOUBLE, all_us, iters * PH, MPI_DOUBLE, 0, x->world));
  A2A_MPI(MPI_Gather(x->lay.rank_cnt, R, MPI_INT64_T, all_cnt, R, MPI_INT64_T, 0, x->world));
  A2A_MPI(MPI_Gather(x->lay.node_cnt, x->N, MPI_INT64_T, all_ncnt, x->N, MPI_INT64_T, 0, x->world));
  int *rc = x->r == 0 ? util_xmalloc((size_t)R * sizeof *rc) : NULL, *ro = NULL;
  int64_t *ecnt = NULL;
  if (x->r == 0) {
    ro = util_xmalloc((size_t)R * sizeof *ro);
    for (int s = 0, o = 0; s < R; s++) {
      rc[s] = all[s].e1 - all[s].e0, ro[s] = o, o += rc[s];
    }
    ecnt = util_xmalloc((size_t)(x->E + 1) * sizeof *ecnt);
  }
  A2A_MPI(MPI_Gatherv(expert_cnt, ne, MPI_INT64_T, ecnt, rc, ro, MPI_INT64_T, 0, x->world));
  if (x->r == 0) {
    res->rank = util_xcalloc((size_t)R, sizeof *res->rank);
    for (int s = 0; s < R; s++) {
      a2a_rank_result *q = &res->rank[s];
      q->e0 = all[s].e0, q->e1 = all[s].e1, q->bytes = all[s].bytes, q->expert_rows = all[s].expert_rows;
      q->calib = all[s].calib, q->recv_hash = all[s].recv_hash, q->out_hash = all[s].out_hash;
      snprintf(q->host, sizeof q->host, "%s", all[s].host);
      q->send_cnt = util_xmalloc((size_t)R * sizeof *q->send_cnt);
      memcpy(q->send_cnt, all_cnt + (int64_t)s * R, (size_t)R * sizeof *q->send_cnt);
      q->node_cnt = util_xmalloc((size_t)x->N * sizeof *q->node_cnt);
      memcpy(q->node_cnt, all_ncnt + (int64_t)s * x->N, (size_t)x->N * sizeof *q->node_cnt);
      q->expert_cnt = util_xmalloc((size_t)(rc[s] + 1) * sizeof *q->expert_cnt);
      memcpy(q->expert_cnt, ecnt + ro[s], (size_t)rc[s] * sizeof *q->expert_cnt);
      q->us = util_xmalloc((size_t)iters * PH * sizeof *q->us);
      memcpy(q->us, all_us + (int64_t)s * iters * PH, (size_t)iters * PH * sizeof *q->us);
      for (int e = 0; e < rc[s]; e++) res->empty_experts += q->expert_cnt[e] == 0;
    }
    res->hosts = 0;
    for (int s = 0; s < R; s++) {
      int seen = 0;
      for (int p = 0; p < s && !seen; p++) seen = strcmp(all[p].host, all[s].host) == 0;
      res->hosts += !seen;
    }
    transport_of(res);
  }
  free(all), free(all_us), free(all_cnt), free(all_ncnt), free(rc), free(ro), free(ecnt);
}

int a2a_run(const a2a_cfg *c, a2a_result *res) {
  memset(res, 0, sizeof *res);
  a2a_ctx x;
  ctx_init(&x, c);
  res->ranks = x.R, res->nodes = x.N, res->iters = c->iters, res->fmt = x.f;
  res->node_aligned = a2a_groups_node_aligned(&c->gate, x.R, c->ranks_per_node);
  int max_nodes = x.lay.max_nodes;
  A2A_MPI(MPI_Allreduce(&max_nodes, &res->max_nodes, 1, MPI_INT, MPI_MAX, x.world));
  int64_t routes = 0;
  for (int64_t i = 0; i < x.T * x.K; i++) routes += x.idx[i] >= 0;
  A2A_MPI(MPI_Allreduce(&routes, &res->routes, 1, MPI_INT64_T, MPI_SUM, x.world));
  if (c->layer) res->layer_flops = moe_layer_flops(&(moe_layer_cfg){.hidden = x.H, .inter = c->inter,
                                                                     .n_shared = c->n_shared, .gate = c->gate},
                                                   x.T) * x.R;
  double *us = util_xcalloc((size_t)c->iters * A2A_PH_COUNT, sizeof *us);
  int fail = 0;
  double share_before[2] = {0, 0};
  if (c->predict) a2a_calib_shares(&x, &share_before[0], &share_before[1]);
  for (int it = 0; it < c->warmup + c->iters; it++) {
    fail |= a2a_iteration(&x) != 0;
    if (it >= c->warmup) memcpy(us + (int64_t)(it - c->warmup) * A2A_PH_COUNT, x.ph, sizeof x.ph);
  }
  char why[512] = "";
  int ne = x.e1 - x.e0;
  int64_t *expert_cnt = util_xcalloc((size_t)ne + 1, sizeof *expert_cnt), expert_rows = 0, checked = 0;
  double err = 0;
  if (fail) snprintf(why, sizeof why, "a GEMM rejected its arguments");
  else if (check_pairs(&x, expert_cnt, why, sizeof why) != 0) fail = 1;
  else if (check_output(&x, &err, &checked, why, sizeof why) != 0) fail = 1;
  for (int e = 0; e < ne; e++) expert_rows += expert_cnt[e];
  if (fail) fprintf(stderr, "moesim a2a: error: verification failed on rank %d: %s\n", x.r, why);
  int any = fail;
  A2A_MPI(MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, x.world));
  A2A_MPI(MPI_Allreduce(&err, &res->max_err, 1, MPI_DOUBLE, MPI_MAX, x.world));
  A2A_MPI(MPI_Allreduce(&checked, &res->checked_tokens, 1, MPI_INT64_T, MPI_SUM, x.world));
  a2a_calib cal;
  memset(&cal, 0, sizeof cal);
  if (!any && c->predict) a2a_calibrate(&x, &cal, share_before);
  gather(&x, us, expert_cnt, expert_rows, &cal, res);
  free(us), free(expert_cnt);
  ctx_free(&x);
  return any ? 1 : 0;
}

void a2a_result_free(a2a_result *res) {
  if (res->rank)
    for (int s = 0; s < res->ranks; s++) {
      free(res->rank[s].send_cnt), free(res->rank[s].node_cnt), free(res->rank[s].expert_cnt), free(res->rank[s].us);
    }
  free(res->rank);
  memset(res, 0, sizeof *res);
}
#endif
