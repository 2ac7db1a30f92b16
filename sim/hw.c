/* sim/hw.c — machine discovery with hwloc, CPUID and PAPI (see hw.h). PAPI is initialised once
 * and asked how many counters its CPU component has; on machines without a PMU (this KVM guest)
 * it reports the component's own reason, which we pass on rather than failing. */
#include "hw.h"

#include <hwloc.h>
#include <papi.h>
#include <string.h>
#include <unistd.h>

#include "cpu_isa.h"
#include "cuda/gpu.h"
#include "util.h"

static uint64_t cache_size(hwloc_topology_t t, hwloc_obj_type_t type, int *count) {
  int n = hwloc_get_nbobjs_by_type(t, type);
  if (count) *count = n;
  if (n <= 0) return 0;
  hwloc_obj_t o = hwloc_get_obj_by_type(t, type, 0);
  return o && o->attr ? o->attr->cache.size : 0;
}

static void probe_pci(hwloc_topology_t t, hw_info *hw) {
  for (hwloc_obj_t o = hwloc_get_next_pcidev(t, NULL); o && hw->n_pci < HW_MAX_PCI; o = hwloc_get_next_pcidev(t, o)) {
    unsigned cls = o->attr->pcidev.class_id >> 8; /* base class */
    const char *kind = cls == 0x03 ? "gpu" : cls == 0x02 ? "nic" : cls == 0x0c && (o->attr->pcidev.class_id & 0xff) == 0x06 ? "nic" : NULL;
    if (!kind) continue;
    hw_pci *p = &hw->pci[hw->n_pci++];
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    snprintf(p->busid, sizeof p->busid, "%04x:%02x:%02x.%01x", o->attr->pcidev.domain, o->attr->pcidev.bus,
             o->attr->pcidev.dev, o->attr->pcidev.func);
    if (o->name) snprintf(p->name, sizeof p->name, "%s", o->name);
    else snprintf(p->name, sizeof p->name, "%04x:%04x", o->attr->pcidev.vendor_id, o->attr->pcidev.device_id);
    p->osdev[0] = '\0';
    for (hwloc_obj_t c = o->io_first_child; c; c = c->next_sibling) {
      if (c->type != HWLOC_OBJ_OS_DEVICE || !c->name) continue;
      size_t used = strlen(p->osdev);
      snprintf(p->osdev + used, sizeof p->osdev - used, "%s%s", used ? " " : "", c->name);
    }
  }
}

static void probe_papi(hw_info *hw) {
  int v = PAPI_library_init(PAPI_VER_CURRENT);
  if (v != PAPI_VER_CURRENT) {
    snprintf(hw->papi_status, sizeof hw->papi_status, "not available: PAPI_library_init: %s",
             v > 0 ? "version mismatch" : PAPI_strerror(v));
    return;
  }
  const PAPI_component_info_t *ci = PAPI_get_component_info(0);
  if (!ci) {
    snprintf(hw->papi_status, sizeof hw->papi_status, "not available: no CPU component");
    return;
  }
  if (ci->disabled || ci->num_cntrs <= 0) {
    const char *why = ci->disabled_reason[0] ? ci->disabled_reason : "the CPU component has no hardware counters";
    snprintf(hw->papi_status, sizeof hw->papi_status, "not available: %.200s", why);
    return;
  }
  hw->papi_ok = 1;
  hw->papi_counters = ci->num_cntrs;
  snprintf(hw->papi_status, sizeof hw->papi_status, "%d hardware counters (component %s)", ci->num_cntrs, ci->name);
}

void hw_probe(hw_info *hw) {
  memset(hw, 0, sizeof *hw);
  unsigned ver = hwloc_get_api_version();
  snprintf(hw->hwloc_version, sizeof hw->hwloc_version, "%u.%u.%u", ver >> 16, (ver >> 8) & 0xff, ver & 0xff);
  hwloc_topology_t t;
  if (hwloc_topology_init(&t) == 0) {
    hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(t) == 0) {
      hw->packages = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE);
      hw->cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
      hw->pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
      hw->numa_nodes = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
      if (hw->numa_nodes < 1) hw->numa_nodes = 1;
      hw->l1d_bytes = cache_size(t, HWLOC_OBJ_L1CACHE, NULL);
      hw->l2_bytes = cache_size(t, HWLOC_OBJ_L2CACHE, &hw->l2_count);
      hw->l3_bytes = cache_size(t, HWLOC_OBJ_L3CACHE, &hw->l3_count);
      long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
      hw->mem_bytes = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
      probe_pci(t, hw);
    }
    hwloc_topology_destroy(t);
  }
  probe_papi(hw);
}

static void kib(char *buf, size_t n, uint64_t bytes) {
  if (bytes >= (1ull << 30)) snprintf(buf, n, "%.1f GiB", (double)bytes / (1ull << 30));
  else if (bytes >= (1ull << 20)) snprintf(buf, n, "%.0f MiB", (double)bytes / (1ull << 20));
  else if (bytes) snprintf(buf, n, "%.0f KiB", (double)bytes / 1024);
  else snprintf(buf, n, "unknown");
}

void hw_print(FILE *f, const hw_info *hw) {
  const cpu_isa *isa = cpu_isa_get();
  char l1[32], l2[32], l3[32], mem[32];
  kib(l1, sizeof l1, hw->l1d_bytes);
  kib(l2, sizeof l2, hw->l2_bytes);
  kib(l3, sizeof l3, hw->l3_bytes);
  kib(mem, sizeof mem, hw->mem_bytes);
  fprintf(f, "host      %s\n", util_hostname());
  fprintf(f, "cpu       %s (%s)\n", isa->brand[0] ? isa->brand : "unknown", isa->vendor[0] ? isa->vendor : "?");
  fprintf(f, "topology  %d package(s), %d core(s), %d PU(s), %d NUMA node(s), %s memory  [hwloc %s]\n", hw->packages,
          hw->cores, hw->pus, hw->numa_nodes, mem, hw->hwloc_version);
  fprintf(f, "caches    L1d %s per core, L2 %s x %d, L3 %s x %d\n", l1, l2, hw->l2_count, l3, hw->l3_count);
  fprintf(f, "isa       ");
  struct { const char *name; int on; } flags[] = {
      {"sse4.2", isa->sse42},           {"avx", isa->avx},           {"avx2", isa->avx2},
      {"fma", isa->fma},                {"f16c", isa->f16c},         {"avx512f", isa->avx512f},
      {"avx512bw", isa->avx512bw},      {"avx512vl", isa->avx512vl}, {"avx512dq", isa->avx512dq},
      {"avx512vnni", isa->avx512vnni},  {"avx512bf16", isa->avx512bf16}, {"avx512fp16", isa->avx512fp16},
      {"amx-tile", isa->amx_tile},      {"amx-bf16", isa->amx_bf16}, {"amx-int8", isa->amx_int8},
  };
  int any = 0;
  for (size_t i = 0; i < UTIL_ARRAY_LEN(flags); i++)
    if (flags[i].on) fprintf(f, "%s%s", any++ ? " " : "", flags[i].name);
  fprintf(f, "%s\n", any ? "" : "(none beyond x86-64)");
  fprintf(f, "          missing:");
  for (size_t i = 0; i < UTIL_ARRAY_LEN(flags); i++)
    if (!flags[i].on) fprintf(f, " %s", flags[i].name);
  fprintf(f, "\n");
  fprintf(f, "kernels   best CPU path: %s (FP8 has no CPU instructions: converted in registers)\n",
          cpu_level_name(cpu_isa_best()));
  fprintf(f, "papi      %s\n", hw->papi_status);
  int gpus = 0, nics = 0;
  for (int i = 0; i < hw->n_pci; i++) {
    const hw_pci *p = &hw->pci[i];
    gpus += strcmp(p->kind, "gpu") == 0;
    nics += strcmp(p->kind, "nic") == 0;
    fprintf(f, "pci       %-3s %s  %s%s%s\n", p->kind, p->busid, p->name, p->osdev[0] ? "  -> " : "", p->osdev);
  }
  if (!gpus && !nics) fprintf(f, "pci       no GPUs or NICs found by hwloc\n");
  gpu_info g[16];
  char why[256] = "";
  int n = gpu_query(g, 16, why, sizeof why);
  if (!gpu_built()) fprintf(f, "cuda      not built (%s)\n", why);
  else if (n == 0) fprintf(f, "cuda      built; no GPU: %s\n", why);
  else
    for (int i = 0; i < n && i < 16; i++)
      fprintf(f, "cuda      %d: %s, %d SMs, sm_%d%d, %.1f GiB, %d MHz\n", i, g[i].name, g[i].sm_count, g[i].cc_major,
              g[i].cc_minor, (double)g[i].mem_bytes / (1ull << 30), g[i].clock_mhz);
}
