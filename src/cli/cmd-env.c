/*
 * env: print the lines that set the meter's variables in the current
 * shell: eval "$(halton-meter env)".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/cli.h"
#include "halton/envvars.h"
#include "halton/paths.h"
#include "halton/util.h"

static int
env_exec(const struct cmd *self, int argc, char **argv)
{
	const char *shell = NULL, *tag = NULL, *sh;
	enum envvars_shell kind = ENVVARS_SH;
	struct envvars env;
	struct config cfg;
	char *sd, *text;
	int i;

	if (cli_wants_help(self, argc, argv))
		return 0;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--shell") == 0 && i + 1 < argc)
			shell = argv[++i];
		else if (str_has_prefix(argv[i], "--shell="))
			shell = argv[i] + 8;
		else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc)
			tag = argv[++i];
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	if (shell == NULL) {
		sh = getenv("SHELL");
		if (sh != NULL && strrchr(sh, '/') != NULL)
			sh = strrchr(sh, '/') + 1;
		shell = sh != NULL && strcmp(sh, "fish") == 0 ? "fish" : "sh";
	}
	if (strcmp(shell, "fish") == 0)
		kind = ENVVARS_FISH;
	else if (strcmp(shell, "sh") != 0 && strcmp(shell, "bash") != 0 &&
	    strcmp(shell, "zsh") != 0)
		return cli_usage_error(
		    self, "--shell: '%s' is not sh or fish", shell);
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	sd = paths_state_dir();
	envvars_build(&env, &cfg, sd, tag);
	text = envvars_format(&env, kind);
	fputs(text, stdout);
	free(text);
	free(sd);
	envvars_free(&env);
	config_free(&cfg);
	return 0;
}

const struct cmd cmd_env = {
    .name = "env",
    .usage = "[--shell sh|fish] [--tag NAME]",
    .summary = "print the variables for this shell: eval \"$(halton-meter "
               "env)\"",
    .help = "Options:\n"
            "  --shell S   sh (also bash, zsh) or fish; default: from "
            "$SHELL\n"
            "  --tag NAME  record requests made with these variables "
            "under NAME\n",
    .exec = env_exec,
};
