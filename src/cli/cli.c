#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/cli.h"
#include "halton/paths.h"

void
cli_error(const struct cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "halton-meter: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_usage_error(const struct cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fprintf(stderr, "halton-meter: %s: ", cmd->name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: halton-meter %s%s%s\n", cmd->name,
	    cmd->usage[0] != '\0' ? " " : "", cmd->usage);
	fprintf(stderr, "Run 'halton-meter help %s' for details.\n", cmd->name);
	return EXIT_USAGE;
}

void
cli_help(const struct cmd *cmd)
{
	printf("usage: halton-meter %s%s%s\n\n%s\n", cmd->name,
	    cmd->usage[0] != '\0' ? " " : "", cmd->usage, cmd->summary);
	if (cmd->help != NULL)
		printf("\n%s", cmd->help);
}

int
cli_wants_help(const struct cmd *cmd, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cli_help(cmd);
			return 1;
		}
	}
	return 0;
}

int
cli_load_config(const struct cmd *cmd, struct config *cfg)
{
	char *path = paths_config_file(), *cause;
	int rc;

	rc = config_load(cfg, path, &cause);
	free(path);
	if (rc == -1) {
		cli_error(cmd, "%s", cause);
		free(cause);
		config_free(cfg);
		return -1;
	}
	return 0;
}
