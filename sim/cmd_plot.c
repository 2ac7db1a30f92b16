/* sim/cmd_plot.c — `moesim plot`: placeholder until its issue lands (see DESIGN.md). */
#include <stdio.h>

#include "cli.h"

int cmd_plot(int argc, char **argv) {
  if (argc > 1 && cli_is_help(argv[1])) {
    printf("usage: moesim plot ...\n\nnot yet implemented in this version.\n");
    return 0;
  }
  return cli_not_implemented("plot");
}
