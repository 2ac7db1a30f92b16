/* sim/topo.h — cluster topologies: a YAML spec (the files in topologies/), the graph it builds
 * (GPUs, scale-up switches, scale-out switches and directed links), deterministic ECMP routes,
 * and the sizing/costing `moesim topo` prints.
 *
 * A cluster is `nodes` scale-up domains of `gpus_per_node` GPUs. Inside a domain GPUs meet on one
 * logical non-blocking NVSwitch (an 8-GPU HGX board, or a 72-GPU NVL72 rack): each GPU has one link
 * up and one down of the GPU's usable scale-up bandwidth. Across domains every GPU has
 * nics_per_gpu x nic.ports uplinks into the scale-out fabric:
 *
 *   fat_tree     2 or 3 layers from switches of radix k, leaf down:up = oversubscription; a node's
 *                GPUs fill consecutive leaf ports.
 *   multi_rail   2 layers; GPU i of every node lands on the leaves of rail i (rail-optimised), spines
 *                shared by all rails (MRFT).
 *   multi_plane  one independent 2-layer fat-tree per plane; uplink j of local GPU l is on plane
 *                (l * uplinks + j) % planes (MPFT: 8 planes, GPU i on plane i). Planes meet only
 *                inside nodes (forwarding over NVLink).
 *   dragonfly    balanced (a routers per group, p endpoints and h global links per router, g groups).
 *   slim_fly     MMS graph for a prime q = 4w +- 1: 2q^2 routers, network radix (3q - delta)/2.
 *   none         a single scale-up domain (or one machine).
 *
 * Vertices 0 .. n_gpus-1 are the GPUs (GPU g is global rank g: node g / gpus_per_node, local index
 * g % gpus_per_node). Every link has a reverse link. Capacities are payload bytes per second: a
 * network port's line rate times the NIC packet format's payload fraction. Latencies: a link into a
 * switch carries that switch's port-to-port latency plus the cable's; a NIC link adds the NIC's
 * processing latency at its GPU end.
 *
 * Routes are shortest paths over the switch graph; among equal-cost next hops (and among a GPU's
 * uplinks) the choice is hash(seed, src, dst, key, hop): the same seed gives the same routes. */
#ifndef MOESIM_TOPO_H
#define MOESIM_TOPO_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "des.h"
#include "hwcat.h"

typedef enum topo_fabric_kind {
  TOPO_FABRIC_NONE,
  TOPO_FABRIC_FAT_TREE,
  TOPO_FABRIC_MULTI_RAIL,
  TOPO_FABRIC_MULTI_PLANE,
  TOPO_FABRIC_DRAGONFLY,
  TOPO_FABRIC_SLIM_FLY
} topo_fabric_kind;

typedef enum topo_scaleup_kind { TOPO_SCALEUP_NONE, TOPO_SCALEUP_NVSWITCH } topo_scaleup_kind;

/* The `fabric:` mapping of a topology file. Zero means "the default" where noted. */
typedef struct topo_fabric_spec {
  int kind;                 /* topo_fabric_kind */
  int levels;               /* fat-tree layers, 2 or 3 (0 = 2) */
  int radix;                /* switch ports used (0 = the switch's radix) */
  double oversubscription;  /* leaf down:up port ratio, >= 1 (0 = 1) */
  int planes;               /* multi_plane planes (0 = gpus_per_node) */
  int routers_per_group;    /* dragonfly a */
  int endpoints_per_router; /* dragonfly p, slim fly p (0 = slim fly default ceil(radix'/2)) */
  int global_per_router;    /* dragonfly h */
  int groups;               /* dragonfly g (0 = a*h + 1) */
  int q;                    /* slim fly prime q, q % 4 == 1 or 3 */
  int adaptive;             /* routing: 0 static ECMP (a flow hashed onto one path), 1 adaptive
                               (traffic spread over every equal-cost path) */
  hw_cable cable;           /* switch-to-switch link (model + overrides) */
  hw_cable endpoint_cable;  /* NIC-to-switch link */
} topo_fabric_spec;

/* A topology file, as bound from YAML (hardware references resolved by topo_spec_resolve). */
typedef struct topo_spec {
  char *name;              /* cluster name */
  char *catalogue;         /* hardware catalogue path (relative to the topology file) */
  hw_gpu gpu;              /* GPU model + overrides */
  hw_nic nic;              /* NIC model + overrides */
  hw_switch sw;            /* scale-out switch model + overrides (YAML key "switch") */
  int64_t nodes;           /* scale-up domains (servers, racks); 0 = fill the fabric */
  int gpus_per_node;       /* GPUs per scale-up domain */
  int scaleup;             /* topo_scaleup_kind */
  int nvswitch_chips;      /* NVSwitch chips per domain (bill of materials only) */
  int nics_per_gpu;        /* NICs per GPU (0 = 1; with fabric none, 0) */
  topo_fabric_spec fabric; /* scale-out network */
} topo_spec;

/* Key table of a topology file (for experiments that include a cluster with CFG_INCLUDE). Call
 * topo_spec_init() on the struct first. */
extern const cfg_key topo_spec_keys[];
void topo_spec_init(topo_spec *s);
/* Loads the catalogue the spec names and fills its hardware references; `node` is the topology's
 * mapping (for error positions). Returns 0 or -1 after printing path:line:col errors. */
int topo_spec_resolve(cfg_ctx *ctx, topo_spec *s, const cfg_node *node);

typedef enum topo_vkind { TOPO_V_GPU, TOPO_V_NVSWITCH, TOPO_V_SWITCH } topo_vkind;
typedef enum topo_lkind { TOPO_L_NVLINK, TOPO_L_NIC, TOPO_L_FABRIC } topo_lkind;

typedef struct topo_vertex {
  uint8_t kind;        /* topo_vkind */
  uint8_t level;       /* switches: 0 leaf/router, 1 spine/aggregation, 2 core */
  uint16_t plane;      /* multi_plane plane of a switch (0 otherwise) */
  int32_t group;       /* GPU/NVSwitch: node; switch: pod, rail or dragonfly group (-1 none) */
  int32_t index;       /* GPU: local index; switch: ordinal among scale-out switches */
  uint32_t out_first;  /* first entry in topo.adj of this vertex's out-links */
  uint32_t out_n;      /* number of out-links */
} topo_vertex;

typedef struct topo_link {
  uint32_t src, dst;   /* vertices */
  uint32_t rev;        /* the reverse link */
  uint8_t kind;        /* topo_lkind */
  double gbyte_s;      /* payload capacity, GB/s */
  sim_ps latency;      /* traversal latency */
} topo_link;

typedef struct topo {
  char *name;               /* owned copy of the spec's name */
  hw_gpu gpu;               /* resolved hardware (model names owned) */
  hw_nic nic;
  hw_switch sw;
  hw_cable cable, endpoint_cable;
  int fabric_kind;          /* topo_fabric_kind */
  int levels;               /* fat-tree layers */
  int radix;                /* switch ports used */
  int planes;               /* planes (1 unless multi_plane) */
  int adaptive;             /* the fabric routes adaptively (see topo_fabric_spec) */
  int n_gpus;               /* endpoints */
  int gpus_per_node;
  int n_nodes;
  int uplinks_per_gpu;      /* NIC ports per GPU into the fabric */
  int nvswitch_chips;       /* per node, BOM only */
  uint32_t n_vertices, n_links;
  topo_vertex *v;           /* v[n_vertices] */
  topo_link *l;             /* l[n_links] */
  uint32_t *adj;            /* out-link ids, grouped by source vertex */
  uint32_t *nvl_up;         /* [n_gpus] GPU -> NVSwitch link, or UINT32_MAX */
  uint32_t *nvl_down;       /* [n_gpus] NVSwitch -> GPU link, or UINT32_MAX */
  uint32_t *up;             /* [n_gpus * uplinks_per_gpu] GPU -> switch links */
  uint32_t *down;           /* [n_gpus * uplinks_per_gpu] switch -> GPU links */
  uint32_t first_switch;    /* vertex id of scale-out switch 0 */
  int n_switches;           /* scale-out switches */
  int n_fabric_links;       /* switch-to-switch links (cables, counted once) */
  double bisection_gbps;    /* bisection bandwidth, Gb/s (line rate) */
  int bisection_exact;      /* 1: closed form; 0: heuristic cut (an upper bound) */
  uint16_t **dist;          /* [n_switches] lazily built hop distances to each switch */
  int32_t *mark;            /* [n_switches] scratch for topo_route_spray (lazily allocated) */
} topo;

/* Builds the graph of a resolved spec. Returns NULL and writes a message to err on an impossible
 * spec (e.g. more endpoints than the fabric holds). */
topo *topo_build(const topo_spec *spec, char *err, size_t errlen);
void topo_free(topo *t);

/* Loads a topology file (catalogue included) and builds it; NULL after printing an error. Extra
 * overrides may be registered on ctx before the call. */
topo *topo_load(cfg_ctx *ctx, const char *path);

static inline int topo_node_of(const topo *t, int gpu) { return gpu / t->gpus_per_node; }
static inline int topo_local_of(const topo *t, int gpu) { return gpu % t->gpus_per_node; }
/* 1 when GPUs a and b share a scale-up domain (and it has an NVSwitch). */
int topo_same_domain(const topo *t, int a, int b);

#define TOPO_MAX_HOPS 16

/* Scale-up route a -> b (same domain): 2 links. Returns the count, or -1 if not in one domain. */
int topo_route_scaleup(const topo *t, int a, int b, uint32_t *links);
/* Scale-out route a -> b (any two GPUs whose uplinks share a plane): uplink, switch links,
 * downlink. Returns the hop count (<= TOPO_MAX_HOPS), or -1 when no plane connects them. */
int topo_route_scaleout(topo *t, int a, int b, uint64_t seed, uint64_t key, uint32_t *links);
/* The same pair spread over every equal-cost path (adaptive routing or packet spraying as a fluid):
 * each uplink, switch hop and downlink choice splits the traffic evenly. Writes links and the
 * fraction of the traffic on each (fractions of one layer sum to 1) into links/frac (at most max
 * entries). Returns the count, -1 when unreachable, -2 when more than max entries are needed. */
int topo_route_spray(topo *t, int a, int b, uint32_t *links, double *frac, int max);

/* Sum of the links' latencies. */
sim_ps topo_route_latency(const topo *t, const uint32_t *links, int n);

/* Smallest cut found by greedy pair swaps over seeded random balanced bipartitions of the switch
 * graph, times the port rate (Gb/s): an upper bound on the bisection, for fabrics without a closed
 * form (Slim Fly). */
double topo_heuristic_bisection(const topo *t);

/* Sizing for `moesim topo`. */
typedef struct topo_bom_line {
  char item[64];     /* what */
  uint64_t count;    /* how many */
  double unit_usd;   /* price each */
} topo_bom_line;

typedef struct topo_summary {
  int endpoints;          /* GPUs */
  int switches;           /* scale-out switches */
  int links;              /* switch-to-switch links */
  int endpoint_links;     /* NIC-to-switch links */
  double bisection_gbps;  /* Gb/s */
  int bisection_exact;    /* closed form (1) or heuristic (0) */
  double cost_usd;        /* scale-out network: switches, links, NICs, endpoint cables */
  int n_bom;              /* lines in bom */
  topo_bom_line bom[8];   /* bill of materials */
} topo_summary;

void topo_summarize(const topo *t, topo_summary *s);

/* Closed-form counts of a full-size fabric (tests compare the built graph against these). */
typedef struct topo_counts {
  int64_t endpoints, switches, links;
} topo_counts;
topo_counts topo_counts_ft2(int k);
topo_counts topo_counts_ft3(int k);
topo_counts topo_counts_mpft(int k, int planes);
topo_counts topo_counts_dragonfly(int a, int p, int h, int g);
topo_counts topo_counts_slim_fly(int q, int p);

/* Names of the enums as written in YAML. */
extern const char *const topo_fabric_names[];
extern const char *const topo_scaleup_names[];

#endif
