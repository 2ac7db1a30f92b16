/* sim/main.c — the moesim command line: `moesim [--version] [--help] COMMAND [ARGS]`.
 * Dispatches to the subcommands of cli.h; unknown commands print the usage on stderr and exit 2. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "util.h"

typedef struct cli_command {
  const char *name;                  /* what the user types */
  int (*fn)(int argc, char **argv);  /* the implementation, argv[0] = name */
  const char *summary;               /* one line for the usage text */
} cli_command;

static const cli_command commands[] = {
    {"hw", cmd_hw, "what this machine offers: hwloc topology, CPU ISA, PAPI counters, CUDA GPUs"},
    {"kernels", cmd_kernels, "run real kernels, validate against the reference, append timing rows"},
    {"a2a", cmd_a2a, "real expert-parallel dispatch/combine across MPI ranks (under mpirun)"},
    {"run", cmd_run, "run an experiment or sweep: results.csv, figures, optional trace"},
    {"topo", cmd_topo, "size and price a cluster topology"},
    {"model", cmd_model, "parameters, training FLOPs per token, KV-cache bytes of a model"},
    {"schedule", cmd_schedule, "replay a pipeline schedule on an ideal machine (Gantt chart)"},
    {"plot", cmd_plot, "redraw a figure from a results file"},
    {"validate", cmd_validate, "published references side by side with simulated figures"},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: moesim [--version] [--help] COMMAND [ARGS]\n"
          "\n"
          "Measures FP8/BF16 MoE and all-to-all kernels on this machine and simulates\n"
          "DeepSeek-V3-class models on whole clusters from those measurements.\n"
          "\n"
          "commands:\n");
  for (size_t i = 0; i < UTIL_ARRAY_LEN(commands); i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n'moesim COMMAND --help' documents each command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return UTIL_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (cli_is_help(cmd) || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    printf("moesim %s\n", MOESIM_VERSION);
    return 0;
  }
  for (size_t i = 0; i < UTIL_ARRAY_LEN(commands); i++)
    if (strcmp(cmd, commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "moesim: error: unknown %s '%s'\n\n", cmd[0] == '-' ? "option" : "command", cmd);
  usage(stderr);
  return UTIL_EXIT_USAGE;
}
