/* sim/cmd_a2a.c — `moesim a2a`: placeholder until its issue lands (see DESIGN.md). */
#include <stdio.h>

#include "cli.h"

int cmd_a2a(int argc, char **argv) {
  if (argc > 1 && cli_is_help(argv[1])) {
    printf("usage: moesim a2a ...\n\nnot yet implemented in this version.\n");
    return 0;
  }
  return cli_not_implemented("a2a");
}
