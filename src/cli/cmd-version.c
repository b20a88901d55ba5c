#include <stdio.h>

#include "halton/cli.h"

static int
version_exec(const struct cmd *self, int argc, char **argv)
{
	if (cli_wants_help(self, argc, argv))
		return 0;
	if (argc > 1)
		return cli_usage_error(self, "unknown argument '%s'", argv[1]);
	printf("halton-meter %s\n", HALTON_VERSION);
	return 0;
}

const struct cmd cmd_version = {
	.name = "version",
	.usage = "",
	.summary = "print the version",
	.help = NULL,
	.exec = version_exec,
};
