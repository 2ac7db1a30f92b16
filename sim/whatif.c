/* sim/whatif.c — the `hw_features:` section (whatif.h): its keys, what each feature changes in
 * each workload, the model and cluster edits, and the FP8 GEMM promotion study's fit. */
#include "whatif.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "util.h"

static const char *const fabric_names[] = {"same", "multi_rail", "multi_plane", "fat_tree3", "fat_tree2", NULL};

#define W(f) offsetof(whatif_hw, f)
const cfg_key whatif_hw_keys[] = {
    {.name = "comm_offload", .type = CFG_BOOL, .offset = W(comm_offload),
     .doc = "V3 report 3.5.1: communication on a co-processor: comm kernels hold no SMs (comm_sms -> 0), their "
            "copies, IB->NVLink forwarding and combine reductions run at the links' rates"},
    {.name = "unified_network", .type = CFG_BOOL, .offset = W(unified_network),
     .doc = "V3 report 3.5.1: one scale-up/scale-out interface: the two-hop EP kernel's forwarding (and the "
            "combine's reduction at the forwarder) done by the network, not the forwarder GPU's SMs"},
    {.name = "accum_fp32", .type = CFG_BOOL, .offset = W(accum_fp32),
     .doc = "V3 report 3.5.2: tensor cores accumulate FP8 products in FP32 (H800 keeps ~14 bits): no promotion "
            "for precision every promotion_interval"},
    {.name = "mma_block_scaling", .type = CFG_BOOL, .offset = W(mma_block_scaling),
     .doc = "V3 report 3.5.2: the MMA applies 1x128/128x128 scales (group scaling): no per-block dequantization "
            "on CUDA cores"},
    {.name = "promotion_interval", .type = CFG_INT32, .offset = W(promotion_interval), .flags = CFG_RANGE, .min = 2,
     .max = 128, .doc = "N_C, products along K between promotions to FP32 CUDA-core registers (V3: 128; divides 128)"},
    {.name = "promotion_table", .type = CFG_PATH, .offset = W(promotion_table),
     .doc = "kernel table with an FP8 GEMM promotion study (variant promo_k=N, e.g. bench_promo --out): what a "
            "CUDA-core step costs"},
    {.name = "online_quant", .type = CFG_BOOL, .offset = W(online_quant),
     .doc = "V3 report 3.5.2: FP8 cast fused with the TMA loads: no quantize passes (BF16 read, FP8 written, "
            "FP8 read again)"},
    {.name = "transposed_gemm", .type = CFG_BOOL, .offset = W(transposed_gemm),
     .doc = "V3 report 3.5.2: the MMA reads operands transposed: no Wgrad read-dequantize-transpose-requantize-"
            "write passes"},
    {.name = "ep_dispatch", .type = CFG_ENUM, .offset = W(ep_fmt[0]), .choices = coll_ep_fmt_names,
     .doc = "EP dispatch payload: default (the experiment's) | bf16 | fp8_e4m3 | logfmt8 | logfmt10 (ISCA'25 3.3)"},
    {.name = "ep_combine", .type = CFG_ENUM, .offset = W(ep_fmt[1]), .choices = coll_ep_fmt_names,
     .doc = "EP combine payload: default (BF16) | bf16 | fp8_e4m3 | logfmt8 | logfmt10 (ISCA'25 3.3)"},
    {.name = "logfmt_codec_sm_factor", .type = CFG_DOUBLE, .offset = W(logfmt_codec_sm_factor), .flags = CFG_NONNEG,
     .doc = "SM work per LogFMT byte encoded/decoded, relative to copying it (0: hardware codec; ISCA'25 3.3 "
            "measured 0.5-1.0 fused into H800 kernels)"},
    {.name = "fabric", .type = CFG_ENUM, .offset = W(fabric), .choices = fabric_names,
     .doc = "scale-out fabric rebuilt from the same switches: same | multi_rail | multi_plane | fat_tree3 | "
            "fat_tree2 (ISCA'25 4: MRFT vs MPFT vs FT2/FT3)"},
    {.name = "scaleup_domain_gpus", .type = CFG_INT32, .offset = W(scaleup_domain_gpus), .flags = CFG_NONNEG,
     .doc = "GPUs per scale-up (NVLink) domain, same GPUs and per-GPU NVLink bandwidth (0: the cluster's; "
            "ISCA'25: larger domains such as NVL72)"},
    {.name = "scaleout_converged", .type = CFG_BOOL, .offset = W(scaleout_converged),
     .doc = "ISCA'25: scale-out bandwidth per GPU raised to the GPU's achievable scale-up bandwidth (NIC and "
            "switch ports scaled alike)"},
    CFG_END};

void whatif_hw_init(whatif_hw *hw) {
  memset(hw, 0, sizeof *hw);
  hw->promotion_interval = 128;
}

int whatif_hw_active(const whatif_hw *hw) {
  return hw->comm_offload || hw->unified_network || hw->accum_fp32 || hw->mma_block_scaling ||
         hw->promotion_interval != 128 || hw->online_quant || hw->transposed_gemm || hw->ep_fmt[0] || hw->ep_fmt[1] ||
         hw->fabric || hw->scaleup_domain_gpus || hw->scaleout_converged;
}

/* ---------------------------------------------------------------- descriptions */

static void add(char *buf, size_t len, size_t *used, const char *s) {
  if (*used >= len) return;
  int n = snprintf(buf + *used, len - *used, "%s%s", *used ? "; " : "", s);
  if (n > 0) *used += (size_t)n;
}

void whatif_describe(const whatif_hw *hw, int w, char *buf, size_t len) {
  size_t u = 0;
  if (len) buf[0] = '\0';
  int dec = w == WHATIF_DECODE;
  if (hw->comm_offload)
    add(buf, len, &u,
        dec ? "offload: low-latency EP kernels hold no SMs already, nothing to free"
            : "offload: comm SMs returned to compute; EP copies/forwarding/reductions at link rates");
  if (hw->unified_network)
    add(buf, len, &u,
        dec ? "unified network: GPU-initiated sends reach same-node peers over NVLink (no IB loopback); no forwarding "
              "stage to remove"
            : "unified network: IB->NVLink forwarding and forwarder reduction by the network instead of SMs");
  if (hw->accum_fp32 || hw->mma_block_scaling || hw->promotion_interval != 128) {
    char s[200];
    snprintf(s, sizeof s, "FP8 GEMM CUDA-core steps per 128-block: %g (accumulation %s; scaling %s; N_C %d)",
             whatif_promo_steps(hw), hw->accum_fp32 ? "FP32 in tensor cores" : "14-bit + promotion",
             hw->mma_block_scaling ? "in the MMA" : "on CUDA cores", hw->promotion_interval);
    add(buf, len, &u, s);
  }
  if (hw->online_quant)
    add(buf, len, &u,
        dec ? "online quantization: FP8 cast in the GEMM loads, no quantize passes"
            : "online quantization: quantize passes before FP8 GEMMs removed (cast in the TMA loads)");
  if (hw->transposed_gemm)
    add(buf, len, &u,
        w == WHATIF_TRAIN ? "transposed GEMM: Wgrad transpose passes over x and dy removed"
                          : "transposed GEMM: no backward pass in inference, nothing to remove");
  for (int c = 0; c < 2; c++)
    if (hw->ep_fmt[c]) {
      char s[160];
      snprintf(s, sizeof s, "%s payload %s (%.0f bytes/token of 7168; codec SM factor %g)", c ? "combine" : "dispatch",
               coll_ep_fmt_names[hw->ep_fmt[c]], coll_ep_payload_bytes(hw->ep_fmt[c], 7168), hw->logfmt_codec_sm_factor);
      add(buf, len, &u, s);
    }
  if (hw->fabric) {
    char s[96];
    snprintf(s, sizeof s, "fabric rebuilt as %s", fabric_names[hw->fabric]);
    add(buf, len, &u, s);
  }
  if (hw->scaleup_domain_gpus) {
    char s[160];
    snprintf(s, sizeof s, "scale-up domains of %d GPUs (per-GPU NVLink unchanged%s)", hw->scaleup_domain_gpus,
             dec ? "; low-latency sends to same-domain peers over NVLink" : "");
    add(buf, len, &u, s);
  }
  if (hw->scaleout_converged) add(buf, len, &u, "scale-out per GPU raised to the scale-up bandwidth");
  if (!u) add(buf, len, &u, "today's hardware");
}

/* ---------------------------------------------------------------- model and cluster */

void whatif_apply_model(const whatif_hw *hw, model_spec *m) {
  m->prec.quant_passes = !hw->online_quant;
  m->prec.wgrad_transpose = !hw->transposed_gemm;
}

int whatif_apply_topo(const whatif_hw *hw, topo_spec *s, char *err, size_t err_len) {
  switch (hw->fabric) {
  case WHATIF_FABRIC_MRFT: s->fabric.kind = TOPO_FABRIC_MULTI_RAIL, s->fabric.levels = 2; break;
  case WHATIF_FABRIC_MPFT: s->fabric.kind = TOPO_FABRIC_MULTI_PLANE, s->fabric.levels = 2, s->fabric.planes = 0; break;
  case WHATIF_FABRIC_FT3: s->fabric.kind = TOPO_FABRIC_FAT_TREE, s->fabric.levels = 3; break;
  case WHATIF_FABRIC_FT2: s->fabric.kind = TOPO_FABRIC_FAT_TREE, s->fabric.levels = 2; break;
  default: break;
  }
  if (hw->scaleup_domain_gpus > 0 && hw->scaleup_domain_gpus != s->gpus_per_node) {
    int64_t gpus = s->nodes * s->gpus_per_node, d = hw->scaleup_domain_gpus;
    if (s->nodes <= 0 || gpus < d) {
      snprintf(err, err_len, "hw_features.scaleup_domain_gpus %lld: the cluster has %lld GPUs (and must give its node "
               "count)", (long long)d, (long long)gpus);
      return -1;
    }
    s->nvswitch_chips = (int)((s->nvswitch_chips * d + s->gpus_per_node - 1) / s->gpus_per_node);
    s->nodes = gpus / d;
    s->gpus_per_node = (int)d;
    /* A multi-rail fabric needs a leaf per rail (a domain's GPU index); more rails than a
     * two-layer fat-tree has leaves are wired as a plain fat-tree, as NVL72 racks are. */
    int k = s->fabric.radix ? s->fabric.radix : s->sw.radix, down = k / 2;
    int64_t rails = d * (s->nics_per_gpu > 0 ? s->nics_per_gpu : 1) * (s->nic.ports > 0 ? s->nic.ports : 1);
    if (s->fabric.kind == TOPO_FABRIC_MULTI_RAIL && down > 0 && (s->nodes + down - 1) / down * rails > k)
      s->fabric.kind = TOPO_FABRIC_FAT_TREE;
  }
  if (hw->scaleout_converged && s->fabric.kind != TOPO_FABRIC_NONE) {
    int nics = s->nics_per_gpu > 0 ? s->nics_per_gpu : 1, ports = s->nic.ports > 0 ? s->nic.ports : 1;
    double now = nics * ports * fmin(s->nic.bw_gbps, s->sw.port_gbps) / 8 * hwcat_nic_payload_fraction(&s->nic);
    double f = now > 0 ? s->gpu.scaleup_achievable_gbyte_s / now : 1;
    if (f > 1) {
      s->nic.bw_gbps *= f;
      s->sw.port_gbps *= f;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- promotion */

double whatif_promo_steps(const whatif_hw *hw) {
  double prec = hw->accum_fp32 ? 0 : 128.0 / (hw->promotion_interval > 0 ? hw->promotion_interval : 128);
  double scale = hw->mma_block_scaling ? 0 : 1;
  return prec > scale ? prec : scale;
}

int whatif_promo_needed(const whatif_hw *hw) { return whatif_promo_steps(hw) != 1; }

double whatif_fp8_gemm_factor(const whatif_hw *hw, const whatif_promo *p) {
  double f = p ? p->step_frac : 0;
  return 1 - f + f * whatif_promo_steps(hw);
}

/* The promotion interval a row's variant names ("promo_k=32/..."), or 0. */
static int promo_of(const kt_row *r) {
  if (strncmp(r->variant, "promo_k=", 8) != 0) return 0;
  int p = atoi(r->variant + 8);
  return p > 0 && p <= 128 && 128 % p == 0 ? p : 0;
}

static int same_shape(const kt_row *a, const kt_row *b) {
  return strcmp(a->device, b->device) == 0 && strcmp(a->host, b->host) == 0 && strcmp(a->kernel, b->kernel) == 0 &&
         strcmp(a->dtype, b->dtype) == 0 && a->m == b->m && a->n == b->n && a->k == b->k && a->groups == b->groups;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int whatif_promo_fit(const kt_row *rows, size_t n, whatif_promo *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  double *fr = util_xcalloc(n ? n : 1, sizeof *fr);
  char *done = util_xcalloc(n ? n : 1, 1);
  int nf = 0, p_min = 128, p_max = 0;
  const kt_row *first = NULL;
  for (size_t i = 0; i < n; i++) {
    const kt_row *r = &rows[i];
    if (done[i] || !promo_of(r) || strncmp(r->dtype, "fp8", 3) != 0 || r->median_us <= 0 ||
        (strcmp(r->kernel, "gemm") != 0 && strcmp(r->kernel, "grouped_gemm") != 0))
      continue;
    /* least squares over the shape's rows: t = a + b x, x = 128 / p */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, xmin = INFINITY, xmax = -INFINITY;
    int cnt = 0;
    for (size_t j = i; j < n; j++) {
      const kt_row *q = &rows[j];
      int p = promo_of(q);
      if (done[j] || !p || q->median_us <= 0 || !same_shape(r, q)) continue;
      done[j] = 1;
      double x = 128.0 / p, y = q->min_us > 0 ? q->min_us : q->median_us;
      sx += x, sy += y, sxx += x * x, sxy += x * y, cnt++;
      xmin = fmin(xmin, x), xmax = fmax(xmax, x);
      if (p < p_min) p_min = p;
      if (p > p_max) p_max = p;
    }
    if (cnt < 2 || xmax <= xmin) continue;
    double b = (cnt * sxy - sx * sy) / (cnt * sxx - sx * sx), a = (sy - b * sx) / cnt;
    if (b < 0) b = 0;
    fr[nf++] = a + b > 0 ? b / (a + b) : 0;
    if (!first) first = r;
  }
  free(done);
  if (!nf) {
    free(fr);
    snprintf(err, err_len, "no FP8 GEMM shape with rows at two promotion intervals (variant promo_k=N)");
    return -1;
  }
  qsort(fr, (size_t)nf, sizeof *fr, cmp_dbl);
  out->shapes = nf;
  out->step_frac = nf % 2 ? fr[nf / 2] : (fr[nf / 2 - 1] + fr[nf / 2]) / 2;
  out->min_frac = fr[0], out->max_frac = fr[nf - 1];
  snprintf(out->from, sizeof out->from, "%.15s %.40s (%.32s), %d shape%s, promo_k %d..%d", first->device, first->device_name,
           first->host, nf, nf > 1 ? "s" : "", p_min, p_max);
  free(fr);
  return 0;
}

int whatif_promo_load(const char *path, whatif_promo *out, char *err, size_t err_len) {
  kt_table t = {0};
  if (kt_load(path, &t) != 0) {
    kt_free(&t);
    snprintf(err, err_len, "cannot load the promotion study %s", path);
    return -1;
  }
  int rc = whatif_promo_fit(t.rows, t.len, out, err, err_len);
  kt_free(&t);
  return rc;
}
