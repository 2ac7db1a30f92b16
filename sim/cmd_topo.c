/* sim/cmd_topo.c — `moesim topo FILE [--csv] [--set key=value]...`: builds a cluster topology
 * and prints its size and price: endpoints, switches, switch-to-switch links, bisection bandwidth,
 * the bill of materials of the scale-out network and its cost per endpoint (the method of
 * shared/reference/topology-cost.md). --csv prints one header line and one row. */
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"
#include "topo.h"
#include "util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim topo FILE [--csv] [--set KEY=VALUE]...\n"
          "\n"
          "Builds the cluster described by the topology FILE (topologies/*.yaml) and prints its\n"
          "endpoints, switches, switch-to-switch links, bisection bandwidth, the bill of materials of\n"
          "the scale-out network, its cost and the cost per endpoint.\n"
          "\n"
          "  --csv              print name,endpoints,switches,links,bisection_gbps,cost_usd,\n"
          "                     cost_per_endpoint_usd (a header and one row)\n"
          "  --set KEY=VALUE    override a key of the file (dotted path, e.g. nodes=128,\n"
          "                     fabric.oversubscription=2, switch.price_usd=25000); repeatable\n"
          "  -h, --help         this text\n"
          "\n"
          "Prices are the catalogue's assumptions (topologies/hardware.yaml) unless overridden.\n");
}

static const char *kind_line(const topo *t, char *buf, size_t n) {
  const char *k = topo_fabric_names[t->fabric_kind];
  switch (t->fabric_kind) {
  case TOPO_FABRIC_FAT_TREE:
  case TOPO_FABRIC_MULTI_RAIL: snprintf(buf, n, "%s, %d levels, radix %d", k, t->levels, t->radix); break;
  case TOPO_FABRIC_MULTI_PLANE: snprintf(buf, n, "%s, %d planes of 2 levels, radix %d", k, t->planes, t->radix); break;
  case TOPO_FABRIC_NONE: snprintf(buf, n, "no scale-out network"); break;
  default: snprintf(buf, n, "%s, radix %d", k, t->radix); break;
  }
  return buf;
}

static void print_table(const topo *t, const topo_summary *s) {
  char buf[128];
  printf("cluster              %s (%s%s)\n", t->name, kind_line(t, buf, sizeof buf),
         t->fabric_kind == TOPO_FABRIC_NONE ? "" : t->adaptive ? ", adaptive routing" : ", static ECMP routing");
  printf("endpoints            %d GPUs (%d nodes x %d %s)\n", s->endpoints, t->n_nodes, t->gpus_per_node,
         t->gpu.model ? t->gpu.model : "gpu");
  if (t->nvl_up[0] != UINT32_MAX)
    printf("scale-up             NVSwitch domains of %d GPUs, %.0f GB/s per GPU per direction\n", t->gpus_per_node,
           t->gpu.scaleup_achievable_gbyte_s);
  else printf("scale-up             none\n");
  printf("switches             %d\n", s->switches);
  printf("switch-switch links  %d\n", s->links);
  printf("NIC-switch links     %d\n", s->endpoint_links);
  printf("bisection            %.0f Gb/s (%.1f TB/s)%s\n", s->bisection_gbps, s->bisection_gbps / 8000,
         s->bisection_exact ? "" : ", heuristic cut: an upper bound");
  printf("\nbill of materials (scale-out network)\n");
  printf("  %-40s %10s %12s %16s\n", "item", "count", "unit USD", "total USD");
  for (int i = 0; i < s->n_bom; i++) {
    const topo_bom_line *b = &s->bom[i];
    printf("  %-40s %10llu %12.0f %16.0f\n", b->item, (unsigned long long)b->count, b->unit_usd,
           b->unit_usd * (double)b->count);
  }
  if (t->nvswitch_chips)
    printf("  %-40s %10llu %12s %16s\n", "NVSwitch chips (in the nodes, not priced)",
           (unsigned long long)t->nvswitch_chips * (unsigned long long)t->n_nodes, "-", "-");
  printf("cost                 %.0f USD\n", s->cost_usd);
  printf("cost per endpoint    %.0f USD\n", s->endpoints ? s->cost_usd / s->endpoints : 0);
}

int cmd_topo(int argc, char **argv) {
  int csv = 0;
  const char *file = NULL;
  cfg_ctx *ctx = cfg_new();
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      usage(stdout);
      goto out;
    } else if (strcmp(argv[i], "--csv") == 0) {
      csv = 1;
    } else if (strcmp(argv[i], "--set") == 0 || strncmp(argv[i], "--set=", 6) == 0) {
      const char *a = argv[i][5] == '=' ? argv[i] + 6 : (i + 1 < argc ? argv[++i] : NULL);
      if (!a) {
        fprintf(stderr, "moesim topo: error: --set needs KEY=VALUE\n");
        usage(stderr);
        rc = UTIL_EXIT_USAGE;
        goto out;
      }
      if (cfg_override(ctx, a, "--set") != 0) {
        rc = UTIL_EXIT_USAGE;
        goto out;
      }
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "moesim topo: error: unknown option '%s'\n", argv[i]);
      usage(stderr);
      rc = UTIL_EXIT_USAGE;
      goto out;
    } else if (file) {
      fprintf(stderr, "moesim topo: error: one topology file at a time ('%s' and '%s')\n", file, argv[i]);
      usage(stderr);
      rc = UTIL_EXIT_USAGE;
      goto out;
    } else {
      file = argv[i];
    }
  }
  if (!file) {
    fprintf(stderr, "moesim topo: error: no topology file given\n");
    usage(stderr);
    rc = UTIL_EXIT_USAGE;
    goto out;
  }
  topo *t = topo_load(ctx, file);
  if (!t) {
    rc = UTIL_EXIT_USAGE;
    goto out;
  }
  topo_summary s;
  topo_summarize(t, &s);
  if (csv) {
    printf("name,endpoints,switches,links,bisection_gbps,cost_usd,cost_per_endpoint_usd\n");
    printf("%s,%d,%d,%d,%.0f,%.0f,%.2f\n", t->name, s.endpoints, s.switches, s.links, s.bisection_gbps, s.cost_usd,
           s.endpoints ? s.cost_usd / s.endpoints : 0);
  } else {
    print_table(t, &s);
  }
  topo_free(t);
out:
  cfg_free(ctx);
  return rc;
}
