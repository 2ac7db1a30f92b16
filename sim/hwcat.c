/* sim/hwcat.c — the hardware catalogue (see hwcat.h): key tables, loading, and filling a
 * topology's hardware reference from the named entry. Unset numbers are NaN (doubles) or -1
 * (ints), so "absent" and "zero" stay distinct. */
#include "hwcat.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "util.h"

#define D(nm_, st, field, fl, doc_) \
  {.name = nm_, .type = CFG_DOUBLE, .offset = offsetof(st, field), .flags = fl, .doc = doc_}
#define I(nm_, st, field, fl, doc_) \
  {.name = nm_, .type = CFG_INT32, .offset = offsetof(st, field), .flags = fl, .doc = doc_}
#define MODEL(st) \
  {.name = "model", .type = CFG_STRING, .offset = offsetof(st, model), .doc = "catalogue entry to start from"}

#define GPU_KEYS                                                                                    \
  I("sms", hw_gpu, sms, CFG_POSITIVE, "streaming multiprocessors"),                                 \
  D("fp8_tflops", hw_gpu, fp8_tflops, CFG_POSITIVE, "dense FP8 peak, TFLOP/s"),                     \
  D("bf16_tflops", hw_gpu, bf16_tflops, CFG_POSITIVE, "dense BF16 peak, TFLOP/s"),                  \
  D("hbm_gib", hw_gpu, hbm_gib, CFG_POSITIVE, "HBM capacity, GiB"),                                 \
  D("hbm_gbyte_s", hw_gpu, hbm_gbyte_s, CFG_POSITIVE, "HBM bandwidth, GB/s"),                        \
  D("scaleup_gbyte_s", hw_gpu, scaleup_gbyte_s, CFG_NONNEG, "datasheet NVLink per direction, GB/s"), \
  D("scaleup_achievable_gbyte_s", hw_gpu, scaleup_achievable_gbyte_s, CFG_NONNEG,                   \
    "usable NVLink per direction, GB/s"),                                                           \
  D("scaleup_latency_ns", hw_gpu, scaleup_latency_ns, CFG_NONNEG, "one scale-up hop, ns"),          \
  D("copy_gbyte_s_per_sm", hw_gpu, copy_gbyte_s_per_sm, CFG_POSITIVE,                               \
    "payload one SM moves in a communication kernel, GB/s (calibrated)"),                           \
  D("rdma_msg_overhead_ns", hw_gpu, rdma_msg_overhead_ns, CFG_NONNEG,                               \
    "NIC time per GPU-initiated RDMA message beyond its bytes, ns (calibrated)"),                    \
  D("price_usd", hw_gpu, price_usd, CFG_NONNEG, "purchase price assumption, USD"),                  \
  D("rent_usd_per_hour", hw_gpu, rent_usd_per_hour, CFG_NONNEG, "rental price assumption, USD/GPU-hour")

#define NIC_KEYS                                                                                    \
  D("bw_gbps", hw_nic, bw_gbps, CFG_POSITIVE, "line rate per port, Gb/s"),                          \
  I("ports", hw_nic, ports, CFG_POSITIVE, "ports (planes) per NIC"),                                \
  D("mtu_bytes", hw_nic, mtu_bytes, CFG_POSITIVE, "payload bytes per packet"),                      \
  D("header_bytes", hw_nic, header_bytes, CFG_NONNEG, "wire bytes per packet beyond the payload"),  \
  D("latency_ns", hw_nic, latency_ns, CFG_NONNEG, "one NIC end's processing latency, ns"),          \
  D("price_usd", hw_nic, price_usd, CFG_NONNEG, "price assumption per NIC, USD")

#define SWITCH_KEYS                                                                                 \
  I("radix", hw_switch, radix, CFG_POSITIVE, "ports"),                                              \
  D("port_gbps", hw_switch, port_gbps, CFG_POSITIVE, "per-port rate, Gb/s"),                        \
  D("latency_ns", hw_switch, latency_ns, CFG_NONNEG, "port-to-port latency, ns"),                   \
  D("price_usd", hw_switch, price_usd, CFG_NONNEG, "price assumption, USD")

#define CABLE_KEYS                                                                                  \
  D("latency_ns", hw_cable, latency_ns, CFG_NONNEG, "propagation latency, ns"),                     \
  D("price_usd", hw_cable, price_usd, CFG_NONNEG, "price per link with both transceivers, USD")

const cfg_key hwcat_gpu_keys[] = {GPU_KEYS, CFG_END};
const cfg_key hwcat_gpu_ref_keys[] = {MODEL(hw_gpu), GPU_KEYS, CFG_END};
const cfg_key hwcat_nic_keys[] = {NIC_KEYS, CFG_END};
const cfg_key hwcat_nic_ref_keys[] = {MODEL(hw_nic), NIC_KEYS, CFG_END};
const cfg_key hwcat_switch_keys[] = {SWITCH_KEYS, CFG_END};
const cfg_key hwcat_switch_ref_keys[] = {MODEL(hw_switch), SWITCH_KEYS, CFG_END};
const cfg_key hwcat_cable_keys[] = {CABLE_KEYS, CFG_END};
const cfg_key hwcat_cable_ref_keys[] = {MODEL(hw_cable), CABLE_KEYS, CFG_END};

/* Sets every field listed in `keys` of the struct at `base` to unset. */
static void unset_fields(const cfg_key *keys, void *base) {
  for (const cfg_key *k = keys; k->name; k++) {
    char *p = (char *)base + k->offset;
    if (k->type == CFG_DOUBLE) *(double *)p = NAN;
    else if (k->type == CFG_INT32) *(int *)p = -1;
    else if (k->type == CFG_STRING) *(char **)p = NULL;
  }
}

void hwcat_gpu_unset(hw_gpu *g) { unset_fields(hwcat_gpu_ref_keys, g); }
void hwcat_nic_unset(hw_nic *n) { unset_fields(hwcat_nic_ref_keys, n); }
void hwcat_switch_unset(hw_switch *s) { unset_fields(hwcat_switch_ref_keys, s); }
void hwcat_cable_unset(hw_cable *c) { unset_fields(hwcat_cable_ref_keys, c); }

static int field_unset(const cfg_key *k, const void *base) {
  const char *p = (const char *)base + k->offset;
  if (k->type == CFG_DOUBLE) return isnan(*(const double *)p);
  if (k->type == CFG_INT32) return *(const int *)p == -1;
  return 0;
}

/* Copies each unset field of `dst` from `src` (both structs described by `keys`). */
static void merge_fields(const cfg_key *keys, void *dst, const void *src) {
  for (const cfg_key *k = keys; k->name; k++) {
    if (k->type != CFG_DOUBLE && k->type != CFG_INT32) continue;
    if (!field_unset(k, dst)) continue;
    size_t sz = k->type == CFG_DOUBLE ? sizeof(double) : sizeof(int);
    memcpy((char *)dst + k->offset, (const char *)src + k->offset, sz);
  }
}

/* Reports the first unset field of `base`; `what` names the entry in the message. */
static int check_complete(cfg_ctx *ctx, const cfg_key *keys, const void *base, const cfg_node *at,
                          const char *what) {
  for (const cfg_key *k = keys; k->name; k++) {
    if (field_unset(k, base))
      return cfg_error(ctx, at, "%s: missing key '%s' (%s)", what, k->name, k->doc ? k->doc : "");
  }
  return 0;
}

/* Binds each entry of the mapping `sect` (name -> entry) into a new array. */
static int load_section(cfg_ctx *ctx, const cfg_node *root, const char *sect, const cfg_key *keys, size_t elem,
                        void (*unset)(void *), size_t model_off, void **out, size_t *n_out) {
  const cfg_node *m = cfg_node_get(root, sect);
  *out = NULL;
  *n_out = 0;
  if (!m) return 0;
  if (cfg_node_kind(m) != CFG_MAP) return cfg_error(ctx, m, "'%s' must be a mapping of named entries", sect);
  size_t n = cfg_node_len(m);
  char *arr = cfg_alloc(ctx, n * elem + 1);
  for (size_t i = 0; i < n; i++) {
    void *e = arr + i * elem;
    unset(e);
    char path[128];
    snprintf(path, sizeof path, "%s.%s", sect, cfg_node_key(m, i));
    if (cfg_bind(ctx, cfg_node_item(m, i), keys, e, path) != 0) return -1;
    char what[160];
    snprintf(what, sizeof what, "%s entry '%s'", sect, cfg_node_key(m, i));
    if (check_complete(ctx, keys, e, cfg_node_key_node(m, i), what) != 0) return -1;
    *(char **)((char *)e + model_off) = cfg_strdup(ctx, cfg_node_key(m, i));
  }
  *out = arr;
  *n_out = n;
  return 0;
}

static void unset_gpu_v(void *p) { hwcat_gpu_unset(p); }
static void unset_nic_v(void *p) { hwcat_nic_unset(p); }
static void unset_switch_v(void *p) { hwcat_switch_unset(p); }
static void unset_cable_v(void *p) { hwcat_cable_unset(p); }

int hwcat_load(cfg_ctx *ctx, const char *path, hwcat *cat) {
  memset(cat, 0, sizeof *cat);
  const cfg_node *root = cfg_load_file(ctx, path);
  if (!root) return -1;
  if (cfg_node_kind(root) != CFG_MAP) return cfg_error(ctx, root, "a hardware catalogue must be a mapping");
  static const char *const sections[] = {"gpus", "nics", "switches", "cables"};
  for (size_t i = 0; i < cfg_node_len(root); i++) {
    const char *k = cfg_node_key(root, i);
    int ok = 0;
    for (size_t s = 0; s < UTIL_ARRAY_LEN(sections); s++) ok |= strcmp(k, sections[s]) == 0;
    if (!ok)
      return cfg_error(ctx, cfg_node_key_node(root, i), "unknown catalogue section '%s' (expected gpus, nics, switches, cables)", k);
  }
  void *p;
  if (load_section(ctx, root, "gpus", hwcat_gpu_keys, sizeof(hw_gpu), unset_gpu_v, offsetof(hw_gpu, model), &p,
                   &cat->n_gpus) != 0)
    return -1;
  cat->gpus = p;
  if (load_section(ctx, root, "nics", hwcat_nic_keys, sizeof(hw_nic), unset_nic_v, offsetof(hw_nic, model), &p,
                   &cat->n_nics) != 0)
    return -1;
  cat->nics = p;
  if (load_section(ctx, root, "switches", hwcat_switch_keys, sizeof(hw_switch), unset_switch_v,
                   offsetof(hw_switch, model), &p, &cat->n_switches) != 0)
    return -1;
  cat->switches = p;
  if (load_section(ctx, root, "cables", hwcat_cable_keys, sizeof(hw_cable), unset_cable_v, offsetof(hw_cable, model),
                   &p, &cat->n_cables) != 0)
    return -1;
  cat->cables = p;
  return 0;
}

/* Finds entry `model` in an array of n entries of size elem whose name is at model_off; on a miss
 * prints the error with a "did you mean" and returns NULL. */
static const void *find_entry(cfg_ctx *ctx, const void *arr, size_t n, size_t elem, size_t model_off,
                              const char *model, const char *kind, const cfg_node *at) {
  const char *best = NULL;
  int best_d = 1 << 30;
  for (size_t i = 0; i < n; i++) {
    const char *name = *(char *const *)((const char *)arr + i * elem + model_off);
    if (strcmp(name, model) == 0) return (const char *)arr + i * elem;
    int d = util_edit_distance(name, model);
    if (d < best_d) best_d = d, best = name;
  }
  if (best && best_d <= 3) cfg_error(ctx, at, "unknown %s '%s' in the catalogue (did you mean '%s'?)", kind, model, best);
  else cfg_error(ctx, at, "unknown %s '%s' in the catalogue", kind, model);
  return NULL;
}

#define RESOLVE(fn, type, keys, arr, n, kind)                                                        \
  int fn(cfg_ctx *ctx, const hwcat *cat, type *x, const cfg_node *at) {                              \
    if (x->model) {                                                                                  \
      const type *e = cat ? find_entry(ctx, cat->arr, cat->n, sizeof(type), offsetof(type, model),   \
                                       x->model, kind, at)                                           \
                          : NULL;                                                                    \
      if (!cat) return cfg_error(ctx, at, "%s '%s' named but no catalogue given", kind, x->model);    \
      if (!e) return -1;                                                                             \
      merge_fields(keys, x, e);                                                                      \
    }                                                                                                \
    return check_complete(ctx, keys, x, at, kind);                                                   \
  }

RESOLVE(hwcat_gpu_resolve, hw_gpu, hwcat_gpu_keys, gpus, n_gpus, "gpu")
RESOLVE(hwcat_nic_resolve, hw_nic, hwcat_nic_keys, nics, n_nics, "nic")
RESOLVE(hwcat_switch_resolve, hw_switch, hwcat_switch_keys, switches, n_switches, "switch")
RESOLVE(hwcat_cable_resolve, hw_cable, hwcat_cable_keys, cables, n_cables, "cable")

double hwcat_nic_payload_fraction(const hw_nic *n) { return n->mtu_bytes / (n->mtu_bytes + n->header_bytes); }

/* The built-ins repeat topologies/hardware.yaml (tests/test_topo.c checks they agree). */
hw_gpu hwcat_builtin_h800(void) {
  return (hw_gpu){.model = "h800", .sms = 132, .fp8_tflops = 1979, .bf16_tflops = 989, .hbm_gib = 80,
                  .hbm_gbyte_s = 3350, .scaleup_gbyte_s = 200, .scaleup_achievable_gbyte_s = 160,
                  .scaleup_latency_ns = 1650, .copy_gbyte_s_per_sm = 13, .rdma_msg_overhead_ns = 110,
                  .price_usd = 30000,
                  .rent_usd_per_hour = 2};
}
hw_nic hwcat_builtin_cx7(void) {
  return (hw_nic){.model = "cx7-400g", .bw_gbps = 400, .ports = 1, .mtu_bytes = 4096, .header_bytes = 30,
                  .latency_ns = 1150, .price_usd = 1800};
}
hw_switch hwcat_builtin_qm9700(void) {
  return (hw_switch){.model = "qm9700", .radix = 64, .port_gbps = 400, .latency_ns = 400, .price_usd = 30000};
}
hw_cable hwcat_builtin_optical_400g(void) {
  return (hw_cable){.model = "osfp-400g-optical", .latency_ns = 50, .price_usd = 2000};
}
