/* sim/cmd_plot.c — `moesim plot RESULTS.csv --kind K [--out DIR] [--x COL] [--y COL] [--series COL]`:
 * redraws a figure from a results table (or, for the roofline, a kernel table) without running
 * anything. The figure is the same `moesim run` draws for the spec K:X:Y:SERIES (plot.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"
#include "util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim plot RESULTS.csv --kind KIND [--out DIR] [--x COL] [--y COL[+COL...]]\n"
          "                   [--series COL[+COL...]] [--title TEXT] [--ceiling NAME:TFLOPS:GBPS]...\n"
          "\n"
          "Redraws a figure from a results file: DIR/FIGURE.png (pngcairo) and .svg, and the data\n"
          "it plotted, DIR/FIGURE.dat. FIGURE is the kind and the columns named, joined by '_'\n"
          "(e.g. throughput_vs_comm_sms), the same file `moesim run` draws for plots: [K:X:Y:S].\n"
          "Rows whose status column is not ok are left out.\n"
          "\n"
          "  --kind KIND     the figure (below); KIND:X:Y:SERIES is accepted too\n"
          "  --out DIR       where to write (default: the directory of RESULTS.csv)\n"
          "  --x COL         column for the x axis (or the bar labels)\n"
          "  --y COL         column for the y axis; several joined by '+' where the kind stacks\n"
          "                  or overlays them (breakdown phases, a2a_bw bandwidths)\n"
          "  --series COL    one line (or bar colour) per value of COL; several joined by '+'\n"
          "                  make one series per combination\n"
          "  --title TEXT    figure title\n"
          "  --ceiling NAME:TFLOPS:GBPS  roofline: a roof with this peak (TFLOP/s) and memory\n"
          "                  bandwidth (GB/s); repeatable (this CPU's peak from moesim hw, an H800's\n"
          "                  989 BF16 TFLOP/s and 3350 GB/s, ...)\n"
          "  -h, --help      this text\n"
          "\n"
          "Defaults below: 'the swept columns' are those between point and status in a sweep's\n"
          "results.csv.\n"
          "\n"
          "kinds:\n");
  plot_print_kinds(f);
  fprintf(f, "\nexit status: 0 drawn; 1 gnuplot or the system failed; 2 bad usage, or the table lacks\n"
             "what the figure needs.\n");
}

int cmd_plot(int argc, char **argv) {
  const char *csv = NULL, *kind = NULL, *out = NULL, *field[4] = {NULL, NULL, NULL, NULL};
  char **ceilings = util_xcalloc((size_t)argc, sizeof *ceilings);
  plot_opts po = {0};
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    const char **slot = strcmp(a, "--kind") == 0     ? &kind
                        : strcmp(a, "--out") == 0    ? &out
                        : strcmp(a, "--x") == 0      ? &field[1]
                        : strcmp(a, "--y") == 0      ? &field[2]
                        : strcmp(a, "--series") == 0 ? &field[3]
                        : strcmp(a, "--title") == 0  ? &po.title
                                                     : NULL;
    if (cli_is_help(a)) {
      usage(stdout);
      free(ceilings);
      return 0;
    } else if (slot || strcmp(a, "--ceiling") == 0) {
      if (i + 1 >= argc) {
        rc = util_usage_error("%s needs a value (see moesim plot --help)", a);
        break;
      }
      if (slot) *slot = argv[++i];
      else ceilings[po.n_ceilings++] = argv[++i];
    } else if (a[0] == '-') {
      fprintf(stderr, "moesim plot: error: unknown option '%s'\n\n", a);
      usage(stderr);
      rc = UTIL_EXIT_USAGE;
    } else if (!csv) {
      csv = a;
    } else {
      rc = util_usage_error("moesim plot takes one results file (got '%s' and '%s')", csv, a);
    }
  }
  if (rc == 0 && (!csv || !kind)) {
    fprintf(stderr, "moesim plot: error: %s\nusage: moesim plot RESULTS.csv --kind KIND [--out DIR] [--x COL] "
                    "[--y COL] [--series COL]\n", !csv ? "no results file" : "no --kind (see moesim plot --help)");
    rc = UTIL_EXIT_USAGE;
  }
  if (rc == 0 && !plot_kind_known(kind)) {
    fprintf(stderr, "moesim plot: error: unknown kind '%s'\n\n", kind);
    usage(stderr);
    rc = UTIL_EXIT_USAGE;
  }
  if (rc == 0) {
    /* The spec: --kind's own fields, overridden by --x/--y/--series. */
    char *copy = util_xstrdup(kind), *p = copy;
    const char *from_kind[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4 && p; i++) {
      char *colon = strchr(p, ':');
      if (colon) *colon = '\0';
      from_kind[i] = p;
      p = colon ? colon + 1 : NULL;
    }
    util_buf spec = {0};
    int last = 0;
    for (int i = 0; i < 4; i++)
      if ((field[i] ? field[i] : from_kind[i]) && *(field[i] ? field[i] : from_kind[i])) last = i;
    for (int i = 0; i <= last; i++) {
      const char *v = i == 0 ? from_kind[0] : field[i] ? field[i] : from_kind[i] ? from_kind[i] : "";
      util_buf_printf(&spec, "%s%s", i ? ":" : "", v);
    }
    char *dir = out ? util_xstrdup(out) : util_dirname(csv);
    po.ceilings = ceilings;
    rc = plot_draw(spec.data, csv, dir, &po);
    free(dir);
    free(copy);
    util_buf_free(&spec);
  }
  free(ceilings);
  return rc;
}
