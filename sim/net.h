/* sim/net.h — the flow-level network on the event core: the narrow API the training and inference
 * simulators drive (ASTRA-sim style: send, schedule, now).
 *
 * Model. A transfer is a flow of `bytes` over a list of resources (hops): the directed links of a
 * topology, plus virtual resources a caller adds (the SM pool of a communication kernel: a kernel
 * given S SMs moves at most S x the GPU's per-SM copy rate). A hop has a weight: bytes the flow puts
 * on that resource per byte of the flow (1 for a plain route; composite flows — one kernel's whole
 * traffic, say — use other weights). Rates are weighted max-min fair over resource capacities:
 * progressive filling raises the rate of every unfrozen flow together until a resource saturates
 * (sum of weight x rate = capacity), then freezes the flows crossing it.
 *
 * Rates are recomputed only when flows start or finish, once per instant however many changed, and
 * incrementally: only the flows connected to the changed ones through saturated resources are
 * re-solved (the rest keep their rates; the solution is checked and the set widened until exact).
 * The cost is O(F log F) in the flows re-solved (F x hops, plus a heap of resources).
 *
 * A flow's bytes drain at its rate from the moment it starts; its completion callback runs when
 * the last byte has drained plus the route's latency (sum of per-hop latencies). Transfers through a
 * forwarding GPU (PXN) are either one cut-through flow over both legs, or — with chunking — chunks
 * that cross leg 1 and then leg 2, so leg 2 of chunk c overlaps leg 1 of chunk c+1 (pipelining).
 *
 * Every resource counts the bytes that crossed it; net_res_bytes() and net_write_links() report
 * them with utilisation = bytes / (capacity x elapsed time).
 *
 * Typical use:
 *   des_sim *sim = des_new();
 *   net *n = net_new(sim, topo, &(net_opts){.seed = 1});
 *   net_send(n, 0, 9, 1 << 20, NULL, done, ctx);   // callback when delivered
 *   net_join *j = net_join_new(n, all_done, ctx);   // callback when all of a set are delivered
 *   net_send(n, 1, 17, 4096, NULL, net_join_done, net_join_add(j));
 *   net_join_seal(j);
 *   des_run(sim);
 * Collectives (coll.h) are built on these calls and report their completion time; a simulator
 * that runs compute on the same core schedules its own events with des_* or net_schedule*.
 * Everything is deterministic: same inputs and seed, same times and byte counts. */
#ifndef MOESIM_NET_H
#define MOESIM_NET_H

#include <stdint.h>
#include <stdio.h>

#include "des.h"
#include "topo.h"

typedef struct net net;

typedef struct net_opts {
  uint64_t seed;         /* ECMP seed */
  uint64_t chunk_bytes;  /* > 0: relayed transfers move in chunks of this size (pipelining) */
  int spray;             /* 1: scale-out traffic spreads evenly over every equal-cost path (adaptive
                            routing / packet spraying, as a fluid); 0: each flow takes one path
                            chosen by hash (static ECMP, with its collisions); a topology whose
                            fabric says `routing: adaptive` sprays regardless */
} net_opts;

/* Entries a route buffer must hold for net_route when spraying (2 * TOPO_MAX_HOPS + 2 suffice
 * otherwise). */
#define NET_ROUTE_MAX 4096

/* A resource crossed by a flow: `weight` bytes on it per byte of the flow. */
typedef struct net_hop {
  uint32_t res;   /* resource id (topology link id, or from net_res_add) */
  double weight;  /* > 0 */
} net_hop;

/* Called when a flow (or a send) has been delivered. */
typedef void (*net_done_fn)(net *n, void *ctx);

/* Kinds of virtual resources (for reports). */
typedef enum net_res_kind { NET_RES_LINK, NET_RES_SM, NET_RES_OTHER } net_res_kind;

/* A network over topology t (kept, not owned; may be NULL for a network of virtual resources
 * only). Resources 0 .. t->n_links-1 are the topology's links. */
net *net_new(des_sim *sim, topo *t, const net_opts *o);
void net_free(net *n);

des_sim *net_sim(net *n);
/* The options the network was made with. */
const net_opts *net_options(const net *n);
topo *net_topo(net *n);
/* Current simulated time. */
sim_ps net_now(const net *n);
/* Runs fn(n, ctx) `delay` from now (an event of the core); net_schedule_at at an absolute time
 * (>= now). "Start these flows at time t": schedule a function at t that starts them. */
void net_schedule(net *n, sim_ps delay, net_done_fn fn, void *ctx);
void net_schedule_at(net *n, sim_ps when, net_done_fn fn, void *ctx);

/* Adds a virtual resource of `gbyte_s` GB/s (e.g. an SM pool of GPU `owner`, or -1). Returns its
 * id. Remove it with net_res_remove() once no flow uses it; ids are reused. */
uint32_t net_res_add(net *n, double gbyte_s, net_res_kind kind, int owner);
void net_res_remove(net *n, uint32_t res);
/* Capacity, GB/s. */
double net_res_capacity(const net *n, uint32_t res);
/* Bytes that have crossed the resource so far (brought up to now). */
double net_res_bytes(net *n, uint32_t res);
/* Resets every resource's byte counter and the utilisation window to start now. */
void net_reset_counters(net *n);

/* Starts a flow now: `bytes` over `hops` (duplicated resources are merged, weights added), done
 * `latency` after its last byte drained. Returns a flow id (valid until done fires). */
uint32_t net_flow(net *n, uint64_t bytes, const net_hop *hops, int n_hops, sim_ps latency, net_done_fn fn,
                  void *ctx);
/* The flow's current rate, GB/s (0 once drained). */
double net_flow_rate(const net *n, uint32_t flow);

/* How a send between nodes travels. */
typedef enum net_path {
  NET_PATH_AUTO,    /* scale-up inside a domain; else direct scale-out if a plane connects the
                       two GPUs, else NET_PATH_PXN */
  NET_PATH_DIRECT,  /* scale-out only (fails across planes) */
  NET_PATH_PXN,     /* NVLink to the GPU of the source's node with the destination's local index,
                       then scale-out (NCCL's PXN) */
  NET_PATH_RAIL     /* scale-out to the GPU of the destination's node with the source's local
                       index, then NVLink (DeepEP's internode path) */
} net_path;

typedef struct net_send_opts {
  net_path path;          /* route choice */
  uint64_t key;           /* ECMP entropy (0: the source/destination pair) */
  const net_hop *extra;   /* extra resources every byte crosses (SM pools), or NULL */
  int n_extra;
  int no_chunking;        /* 1: one cut-through flow even when net_opts.chunk_bytes > 0 */
} net_send_opts;

/* Builds the route of a send (links only, weight = share of the bytes on the link: 1, or a fraction
 * when spraying) into hops[] (NET_ROUTE_MAX entries when spraying, else 2 * TOPO_MAX_HOPS + 2);
 * returns the count, -1 when unreachable. *relay_at is set to the index of the first hop of the
 * second leg when the route goes through a forwarding GPU, else 0. */
int net_route(net *n, int src, int dst, const net_send_opts *o, net_hop *hops, int *relay_at);

/* Sends `bytes` from GPU src to GPU dst; done(n, ctx) runs on delivery. src == dst is a local
 * copy: it crosses only the extra resources (immediate without them). Returns 0, or -1 when no
 * route exists (nothing is started). */
int net_send(net *n, int src, int dst, uint64_t bytes, const net_send_opts *o, net_done_fn done, void *ctx);

/* Joins: "call me back when all of these are delivered". Create one, pass net_join_done and the
 * join as the callback and context of each member send or flow (after net_join_add), then seal it:
 * `all` runs once every member has been delivered (at the last member's delivery, or at once
 * through the event core if all were delivered — or none added — before the seal). The join frees
 * itself after calling `all`. */
typedef struct net_join net_join;
net_join *net_join_new(net *n, net_done_fn all, void *ctx);
/* Counts one more member; returns the join, to pass as the member's callback context. */
net_join *net_join_add(net_join *j);
/* The member callback. */
void net_join_done(net *n, void *join);
void net_join_seal(net_join *j);

/* Statistics. */
typedef struct net_stats {
  uint64_t flows_started;   /* flows started so far */
  uint64_t flows_finished;  /* flows drained */
  uint64_t recomputes;      /* rate recomputations (instants with changes) */
  uint64_t flows_resolved;  /* flows re-solved, summed over recomputations */
  uint64_t widenings;       /* times an incremental solve had to widen its set */
} net_stats;
void net_get_stats(const net *n, net_stats *s);

/* Writes per-link counters as CSV: link,src,dst,kind,gbyte_s,bytes,utilization (links with
 * bytes > 0, or all when `all`). Utilisation is over the window since the last reset. */
void net_write_links(net *n, FILE *f, int all);

/* Highest utilisation among topology links of `kind` (topo_lkind) over the window. */
double net_max_link_util(net *n, int kind);

#endif
