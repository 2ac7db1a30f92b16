/* sim/cli.c — option helpers shared by the subcommands (cli.h). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_not_implemented(const char *cmd) {
  fprintf(stderr, "moesim %s: not yet implemented\n", cmd);
  return UTIL_EXIT_USAGE;
}
