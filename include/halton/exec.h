/*
 * exec: run an external command as an argv (posix_spawnp, never a shell),
 * with a timeout, capturing its stdout, stderr and status.
 *
 * Every OS command halton-meter runs (security, launchctl, networksetup,
 * systemctl, update-ca-certificates, certutil, keytool, gsettings, python)
 * goes through exec_run(), so failures are reported the same way: the
 * command line and its stderr.
 */
#ifndef HALTON_EXEC_H
#define HALTON_EXEC_H

#include <stddef.h>
#include <sys/types.h>

#define EXEC_TIMEOUT_MS   15000 /* default for OS commands */
#define EXEC_OUTPUT_LIMIT (1024 * 1024)

/* exec_run flags */
#define EXEC_DISCARD_OUTPUT 0x01 /* stdout/stderr to /dev/null */

struct exec_result {
	int status;      /* exit status, 128 + signal, or -1 */
	int timed_out;   /* killed after the timeout */
	int spawn_errno; /* non-zero: the command could not start */
	char *out;       /* captured stdout (NUL-terminated) */
	size_t out_len;
	char *err; /* captured stderr (NUL-terminated) */
	size_t err_len;
};

/* Runs argv[0] (looked up in PATH) with argv, stdin from /dev/null, and
 * waits at most timeout_ms (0 = EXEC_TIMEOUT_MS) before killing it.
 * Output beyond EXEC_OUTPUT_LIMIT per stream is dropped.  Returns 0 when
 * the command ran and exited 0, else -1; r is filled either way and must
 * be released with exec_result_free(). */
int exec_run(const char *const *, int, int, struct exec_result *);
/* exec_run() with envp as the child's whole environment instead of
 * environ (argv[0] is still looked up in this process's PATH). */
int exec_run_env(
    const char *const *, char *const *, int, int, struct exec_result *);
void exec_result_free(struct exec_result *);

/* A one-line description of a failed run for messages:
 * "`cmd arg` exited 3: <first stderr line>", "`cmd`: cmd not found". */
char *exec_describe(const char *const *, const struct exec_result *);
/* The argv as a shell-quoted line (for dry-run and manual instructions). */
char *exec_quote_argv(const char *const *);
/* Whether a program is found in PATH (or is an executable path). */
int exec_in_path(const char *);

/* Starts argv in the background (its own process group, stdio on
 * /dev/null) without waiting.  0 with *pid, or -1 with errno. */
int exec_start(const char *const *, pid_t *);

/* Runs argv in the foreground with envp: the child shares the terminal and
 * process group, SIGINT and SIGQUIT are ignored here while it runs (the
 * terminal delivers them to the child), SIGTERM, SIGHUP, SIGUSR1 and
 * SIGUSR2 are forwarded to it.  Returns the child's exit status, 128 +
 * signal when it was killed, or -1 with errno when it could not start. */
int exec_foreground(char *const *, char *const *);

#endif
