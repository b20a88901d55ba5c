/*
 * cli: the command table and what every command shares.
 *
 * One src/cli/cmd-NAME.c per command, each exporting one const struct cmd;
 * src/cli/main.c lists them.  A command returns its exit status: 0 ok,
 * 1 failure, 2 usage.  Errors go to stderr as "halton-meter: NAME: cause".
 */
#ifndef HALTON_CLI_H
#define HALTON_CLI_H

#include "halton/config.h"

#define EXIT_USAGE 2

struct cmd {
	const char *name;
	const char *usage;	/* arguments after the name */
	const char *summary;	/* one line */
	const char *help;	/* options, one per line; may be NULL */
	int (*exec)(const struct cmd *, int, char **);
};

/* Prints "halton-meter: NAME: cause" to stderr. */
void cli_error(const struct cmd *, const char *, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints the usage line to stderr and returns EXIT_USAGE. */
int cli_usage_error(const struct cmd *, const char *, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints the full help of a command to stdout. */
void cli_help(const struct cmd *);
/* Loads the config; on error prints it (naming file and line) and
 * returns -1. */
int cli_load_config(const struct cmd *, struct config *);
/* Handles "-h"/"--help" as the only argument: prints help, returns 1. */
int cli_wants_help(const struct cmd *, int, char **);

const struct cmd *cli_find(const char *);

extern const struct cmd cmd_help;
extern const struct cmd cmd_version;
extern const struct cmd cmd_config;
extern const struct cmd cmd_daemon;
extern const struct cmd cmd_init;
extern const struct cmd cmd_run;
extern const struct cmd cmd_env;
extern const struct cmd cmd_uninstall;
extern const struct cmd cmd_doctor;

/* The env-only part of init, quietly (run uses it when there is no CA
 * yet).  Returns 0 or 1 (problems were printed). */
int cmd_init_env_only(const struct cmd *, const struct config *);
extern const struct cmd cmd_log;
extern const struct cmd cmd_report;
extern const struct cmd cmd_status;
extern const struct cmd cmd_prices;
extern const struct cmd cmd_dashboard;

#endif
