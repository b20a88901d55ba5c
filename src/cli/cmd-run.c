/*
 * run: run one command with the meter's variables in its environment
 * only, starting the daemon when none answers.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halton/cli.h"
#include "halton/envvars.h"
#include "halton/exec.h"
#include "halton/healthz.h"
#include "halton/paths.h"
#include "halton/platform.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define RUN_START_WAIT_MS      3000
#define RUN_HEALTHZ_TIMEOUT_MS 1000

extern char **environ;

/* Whether GET /healthz at host:port answers 200 within about a second. */
static int
healthz_ok(const char *host, int port)
{
	struct healthz h;

	return healthz_probe(host, port, RUN_HEALTHZ_TIMEOUT_MS, &h, NULL) ==
	    0 &&
	    h.http_status == 200;
}

/* Starts `halton-meter daemon` (it detaches) and waits until /healthz
 * answers, at most RUN_START_WAIT_MS.  0 or -1 (reported). */
static int
start_daemon(const struct cmd *self, const char *host, int port)
{
	char *exe = platform_self_exe();
	const char *argv[] = {exe, "daemon", NULL};
	struct timespec tick = {0, 50 * 1000000};
	uint64_t deadline;
	pid_t pid, w;
	int st, reaped = 0, rc = -1;

	if (exec_start(argv, &pid) == -1) {
		cli_error(
		    self, "cannot start %s daemon: %s", exe, strerror(errno));
		goto out;
	}
	deadline = time_mono_ms() + RUN_START_WAIT_MS;
	while (time_mono_ms() < deadline) {
		if (!reaped && (w = waitpid(pid, &st, WNOHANG)) == pid) {
			reaped = 1;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				cli_error(self,
				    "the daemon failed to start "
				    "(exit %d); see ~/.halton-meter/daemon.log "
				    "or run `halton-meter daemon --foreground`",
				    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
				goto out;
			}
		}
		if (healthz_ok(host, port)) {
			rc = 0;
			goto out;
		}
		nanosleep(&tick, NULL);
	}
	cli_error(self, "the daemon did not answer on %s:%d within %d s", host,
	    port, RUN_START_WAIT_MS / 1000);
out:
	free(exe);
	return rc;
}

static int
run_exec(const struct cmd *self, int argc, char **argv)
{
	const char *tag = NULL, *host;
	struct envvars env;
	struct config cfg;
	char **envp, *sd, *ca, *bundle;
	int i, no_start = 0, st;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (argv[i][0] != '-')
			break;
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			cli_help(self);
			return 0;
		}
		if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc)
			tag = argv[++i];
		else if (str_has_prefix(argv[i], "--tag="))
			tag = argv[i] + 6;
		else if (strcmp(argv[i], "--no-start") == 0)
			no_start = 1;
		else
			return cli_usage_error(
			    self, "unknown option '%s'", argv[i]);
	}
	if (i >= argc)
		return cli_usage_error(self, "no command given");
	if (tag != NULL && tag[0] == '\0')
		return cli_usage_error(self, "--tag: empty name");
	if (cli_load_config(self, &cfg) == -1)
		return 1;
	ca = paths_state_file("ca.pem");
	bundle = paths_state_file("bundle.pem");
	if ((!file_exists(ca) || !file_exists(bundle)) &&
	    cmd_init_env_only(self, &cfg) != 0) {
		cli_error(self,
		    "setting up the CA failed; run `halton-meter "
		    "init`");
		free(ca);
		free(bundle);
		config_free(&cfg);
		return 1;
	}
	free(ca);
	free(bundle);
	host = cfg.listen_host;
	if (strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	if (!no_start && !healthz_ok(host, cfg.listen_port) &&
	    start_daemon(self, host, cfg.listen_port) == -1)
		fprintf(stderr,
		    "halton-meter: run: going on: the command may "
		    "fail to connect\n");
	sd = paths_state_dir();
	envvars_build(&env, &cfg, sd, tag);
	free(sd);
	envp = envvars_environ(&env, environ);
	fflush(stdout);
	st = exec_foreground(argv + i, envp);
	if (st == -1) {
		if (errno == ENOENT)
			cli_error(self, "%s: command not found", argv[i]);
		else
			cli_error(self, "%s: cannot execute: %s", argv[i],
			    strerror(errno));
		st = 127;
	}
	envvars_environ_free(envp);
	envvars_free(&env);
	config_free(&cfg);
	return st;
}

const struct cmd cmd_run = {
    .name = "run",
    .usage = "[--tag NAME] [--no-start] [--] COMMAND [ARGS...]",
    .summary = "run one command with its LLM API calls metered",
    .help = "Options:\n"
            "  --tag NAME   record the command's requests under NAME "
            "(sent as proxy\n"
            "               credentials: http://NAME@127.0.0.1:8081)\n"
            "  --no-start   do not start the daemon when none answers\n"
            "\nOnly the command's environment gets the variables.  Without "
            "a CA, the\nenv-only part of init runs first.  Exits with the "
            "command's status\n(128 + signal when it was killed), 127 when "
            "it cannot be executed.\n",
    .exec = run_exec,
};
