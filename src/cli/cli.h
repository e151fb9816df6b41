/* cli — the `cbrec` front end: argument parsing, printing and exit codes.
 * No recommender logic lives here; each command parses its options, calls
 * the library, prints, and returns an exit status. */
#ifndef CB_CLI_H
#define CB_CLI_H

#include "cbrec.h"
#include <stdio.h>

/* Exit statuses shared by all commands. */
enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

/* Print "cbrec <cmd>: <message>" to stderr and return CLI_ERROR. */
int cli_error(const char *cmd, const cb_error *err);
/* Print a formatted error to stderr and return `status`. */
int cli_fail(int status, const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Commands: int cmd_<name>(int argc, char **argv), argv[0] is the command name. */
int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_similar(int argc, char **argv);
int cmd_precompute(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_add_item(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_experiment(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
