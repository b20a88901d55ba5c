/*
 * halton-meter: meters the tokens and dollars of every LLM API call made on
 * this machine.  main() only finds the command and hands over argv.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/cli.h"

/* Every command, in the order `help` lists them.  Adding one is one file
 * (src/cli/cmd-NAME.c) and one line here. */
static const struct cmd *const commands[] = {
	&cmd_help,
	&cmd_version,
	&cmd_config,
	&cmd_daemon,
	&cmd_init,
	&cmd_run,
	&cmd_env,
	&cmd_uninstall,
	&cmd_doctor,
	&cmd_log,
	&cmd_report,
	&cmd_status,
	&cmd_prices,
	&cmd_dashboard,
	NULL,
};

const struct cmd *
cli_find(const char *name)
{
	const struct cmd *const *c;

	for (c = commands; *c != NULL; c++)
		if (strcmp((*c)->name, name) == 0)
			return *c;
	return NULL;
}

static void
main_usage(FILE *f)
{
	const struct cmd *const *c;

	fprintf(f, "usage: halton-meter <command> [options]\n"
		   "       halton-meter --help | --version\n\n"
		   "halton-meter meters what your LLM tools cost: a local "
		   "proxy records the token\nusage of every LLM API call.\n\n"
		   "Commands:\n");
	for (c = commands; *c != NULL; c++)
		fprintf(f, "  %-10s %s\n", (*c)->name, (*c)->summary);
	fprintf(f, "\nRun 'halton-meter help <command>' for a command's "
		   "options.\n");
}

static int
help_exec(const struct cmd *self, int argc, char **argv)
{
	const struct cmd *cmd;

	if (argc > 2)
		return cli_usage_error(self, "too many arguments");
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0)) {
		cli_help(self);
		return 0;
	}
	if (argc == 1) {
		main_usage(stdout);
		return 0;
	}
	if ((cmd = cli_find(argv[1])) == NULL) {
		cli_error(self, "unknown command '%s'", argv[1]);
		main_usage(stderr);
		return EXIT_USAGE;
	}
	cli_help(cmd);
	return 0;
}

const struct cmd cmd_help = {
	.name = "help",
	.usage = "[command]",
	.summary = "show the commands, or one command's options",
	.help = NULL,
	.exec = help_exec,
};

int
main(int argc, char **argv)
{
	const struct cmd *cmd;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		main_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("halton-meter %s\n", HALTON_VERSION);
		return 0;
	}
	if (argv[1][0] == '-') {
		fprintf(stderr, "halton-meter: unknown option '%s'\n", argv[1]);
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if ((cmd = cli_find(argv[1])) == NULL) {
		fprintf(stderr, "halton-meter: unknown command '%s'\n",
		    argv[1]);
		main_usage(stderr);
		return EXIT_USAGE;
	}
	return cmd->exec(cmd, argc - 1, argv + 1);
}
