/* sim/cli.h — the subcommands of `moesim` (git/perf style). Each lives in sim/cmd_<name>.c,
 * receives argv with argv[0] = the command name, prints its own --help, and returns the exit
 * status: 0 success, 2 bad usage or input, 1 system failure. */
#ifndef MOESIM_CLI_H
#define MOESIM_CLI_H

#define MOESIM_VERSION "0.1.0"

int cmd_hw(int argc, char **argv);
int cmd_kernels(int argc, char **argv);
int cmd_a2a(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_topo(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_validate(int argc, char **argv);

/* Shared option handling: returns 1 if argv[i] is -h/--help. */
int cli_is_help(const char *arg);

/* For commands a later piece of work fills in: says so on stderr and returns 2. */
int cli_not_implemented(const char *cmd);

#endif
