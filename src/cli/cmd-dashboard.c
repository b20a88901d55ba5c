/*
 * dashboard: opens the daemon's local web page (open / xdg-open), or
 * prints its address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "halton/cli.h"
#include "halton/exec.h"
#include "halton/xmalloc.h"

#if defined(__APPLE__)
#define OPENER "open"
#else
#define OPENER "xdg-open"
#endif

/* Whether a browser can be opened here: macOS always; elsewhere only with
 * a graphical session. */
static int
can_open(void)
{
#if defined(__APPLE__)
	return 1;
#else
	const char *d = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");

	return (d != NULL && *d != '\0') || (w != NULL && *w != '\0');
#endif
}

static int
dashboard_exec(const struct cmd *self, int argc, char **argv)
{
	struct config cfg;
	const char *args[3];
	char *url;
	pid_t pid;
	int i, print_only = 0;

	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--print") == 0)
			print_only = 1;
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	url = xasprintf("http://%s/", cfg.listen);
	config_free(&cfg);
	printf("%s\n", url);
	fflush(stdout);
	if (!print_only && can_open() && exec_in_path(OPENER)) {
		args[0] = OPENER;
		args[1] = url;
		args[2] = NULL;
		if (exec_start(args, &pid) == -1)
			cli_error(self,
			    "%s: could not start; open the address "
			    "above",
			    OPENER);
	}
	free(url);
	return 0;
}

const struct cmd cmd_dashboard = {
    .name = "dashboard",
    .usage = "[--print]",
    .summary = "open the local dashboard in a browser",
    .help = "Options:\n"
            "  --print    only print the address\n"
            "\nThe daemon serves the dashboard at http://LISTEN/ (loopback "
            "clients\nonly); this prints the address and opens it with " OPENER
            " when a\ngraphical session is available.\n",
    .exec = dashboard_exec,
};
