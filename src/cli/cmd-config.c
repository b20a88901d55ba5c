/*
 * config: check the config file and print the settings in force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/cli.h"
#include "halton/paths.h"

static void
print_list(const char *key, const struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		printf("%s = %s\n", key, l->v[i]);
}

static int
config_exec(const struct cmd *self, int argc, char **argv)
{
	struct config cfg;
	char *path, *db;
	int check = 0, i;

	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check") == 0)
			check = 1;
		else
			return cli_usage_error(self, "unknown option '%s'",
			    argv[i]);
	}
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	if (check) {
		path = paths_config_file();
		printf("%s: ok%s\n", path,
		    cfg.path == NULL ? " (not present; defaults apply)" : "");
		free(path);
		config_free(&cfg);
		return 0;
	}
	db = cfg.db != NULL ? strdup(cfg.db) : paths_state_file("meter.db");
	printf("# %s\n", cfg.path != NULL ? cfg.path :
	    "no config file; compiled-in defaults");
	printf("listen = %s\n", cfg.listen);
	printf("log_level = %s\n", log_level_name(cfg.log_level));
	print_list("intercept", &cfg.intercept);
	printf("db = %s\n", db);
	printf("allow_remote = %s\n", cfg.allow_remote ? "yes" : "no");
	printf("ca_name_constraints = %s\n",
	    cfg.ca_name_constraints ? "yes" : "no");
	if (cfg.upstream_proxy != NULL)
		printf("upstream_proxy = %s\n", cfg.upstream_proxy);
	print_list("upstream_ca", &cfg.upstream_ca);
	printf("max_connections = %d\n", cfg.max_connections);
	printf("meter_body_limit = %zu\n", cfg.meter_body_limit);
	free(db);
	config_free(&cfg);
	return 0;
}

const struct cmd cmd_config = {
	.name = "config",
	.usage = "[--check]",
	.summary = "check the config file and print the settings in force",
	.help = "Options:\n"
		"  --check    only check the file; print 'ok' or the bad line\n"
		"\nThe file is ~/.halton-meter/config (or $HALTON_METER_CONFIG);"
		"\nerrors name the file and line: PATH:LINE: cause.\n",
	.exec = config_exec,
};
