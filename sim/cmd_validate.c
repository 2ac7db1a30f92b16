/* sim/cmd_validate.c — `moesim validate`: placeholder until its issue lands (see DESIGN.md). */
#include <stdio.h>

#include "cli.h"

int cmd_validate(int argc, char **argv) {
  if (argc > 1 && cli_is_help(argv[1])) {
    printf("usage: moesim validate ...\n\nnot yet implemented in this version.\n");
    return 0;
  }
  return cli_not_implemented("validate");
}
