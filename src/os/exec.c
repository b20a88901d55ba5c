/*
 * exec: argv-only command execution with a timeout and captured output.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halton/exec.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

extern char **environ;

void
exec_result_free(struct exec_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	r->out_len = r->err_len = 0;
}

static void
pipe_close(int p[2])
{
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	p[0] = p[1] = -1;
}

static int
status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

/* Reads what is available on fd into sb (up to the limit); returns 0 on
 * EOF or error, 1 while open. */
static int
drain(int fd, struct strbuf *sb)
{
	char buf[8192];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0)
		return 0;
	if (sb->len + (size_t)n <= EXEC_OUTPUT_LIMIT)
		strbuf_add(sb, buf, (size_t)n);
	return 1;
}

/* Spawn attributes that undo what this process changed: SIGINT, SIGQUIT
 * (ignored while a foreground child runs), SIGPIPE (ignored by main) and
 * the forwarded signals get their default action, and nothing is blocked.
 * flags are added to the attribute's flags. */
static void
spawn_attr_init(posix_spawnattr_t *attr, short flags)
{
	static const int sigs[] = {
	    SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
	sigset_t def, none;
	size_t i;

	sigemptyset(&def);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&def, sigs[i]);
	sigemptyset(&none);
	posix_spawnattr_init(attr);
	posix_spawnattr_setsigdefault(attr, &def);
	posix_spawnattr_setsigmask(attr, &none);
	posix_spawnattr_setflags(
	    attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | flags);
}

int
exec_run(
    const char *const *argv, int timeout_ms, int flags, struct exec_result *r)
{
	return exec_run_env(argv, environ, timeout_ms, flags, r);
}

/*
 * Runs argv like exec_run() with envp as the child's whole environment
 * (argv[0] is still looked up in this process's PATH).
 */
int
exec_run_env(const char *const *argv, char *const *envp, int timeout_ms,
    int flags, struct exec_result *r)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct strbuf out, err;
	struct pollfd pfd[2];
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, st, open_out, open_err;
	uint64_t deadline;
	struct timespec tick = {0, 5000000};
	pid_t pid = -1;
	int rc, left, n;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	strbuf_init(&out);
	strbuf_init(&err);
	if (timeout_ms <= 0)
		timeout_ms = EXEC_TIMEOUT_MS;
	if (!(flags & EXEC_DISCARD_OUTPUT) &&
	    (pipe(po) == -1 || pipe(pe) == -1)) {
		r->spawn_errno = errno;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (flags & EXEC_DISCARD_OUTPUT) {
		posix_spawn_file_actions_addopen(
		    &fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(
		    &fa, 2, "/dev/null", O_WRONLY, 0);
	} else {
		posix_spawn_file_actions_adddup2(&fa, po[1], 1);
		posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
		posix_spawn_file_actions_addclose(&fa, po[0]);
		posix_spawn_file_actions_addclose(&fa, pe[0]);
		posix_spawn_file_actions_addclose(&fa, po[1]);
		posix_spawn_file_actions_addclose(&fa, pe[1]);
	}
	spawn_attr_init(&attr, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		r->spawn_errno = rc;
		pid = -1;
		goto out;
	}
	if (po[1] != -1) {
		close(po[1]);
		close(pe[1]);
		po[1] = pe[1] = -1;
	}
	deadline = time_mono_ms() + (uint64_t)timeout_ms;
	open_out = open_err = !(flags & EXEC_DISCARD_OUTPUT);
	while (open_out || open_err) {
		uint64_t now = time_mono_ms();

		if (now >= deadline) {
			r->timed_out = 1;
			break;
		}
		left = (int)(deadline - now);
		n = 0;
		if (open_out) {
			pfd[n].fd = po[0];
			pfd[n++].events = POLLIN;
		}
		if (open_err) {
			pfd[n].fd = pe[0];
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)n, left) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (rc = 0; rc < n; rc++) {
			if (pfd[rc].revents == 0)
				continue;
			if (pfd[rc].fd == po[0])
				open_out = drain(po[0], &out);
			else
				open_err = drain(pe[0], &err);
		}
	}
	/* Output is closed (or the time is up): wait for the exit. */
	while (!r->timed_out) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid) {
			r->status = status_code(st);
			pid = -1;
			break;
		}
		if (w == -1 && errno != EINTR) {
			pid = -1;
			break;
		}
		if (time_mono_ms() >= deadline)
			r->timed_out = 1;
		else
			nanosleep(&tick, NULL);
	}
	if (r->timed_out && pid != -1) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
			;
		r->status = -1;
	}
out:
	pipe_close(po);
	pipe_close(pe);
	r->out = strbuf_detach(&out, &r->out_len);
	r->err = strbuf_detach(&err, &r->err_len);
	return r->status == 0 ? 0 : -1;
}

static int
needs_quote(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s != '\0'; s++)
		if (strchr(
		        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		        "0123456789-_./:=@%+,",
		        *s) == NULL)
			return 1;
	return 0;
}

char *
exec_quote_argv(const char *const *argv)
{
	struct strbuf sb;
	const char *s;
	size_t i;

	strbuf_init(&sb);
	for (i = 0; argv[i] != NULL; i++) {
		if (i > 0)
			strbuf_addc(&sb, ' ');
		if (!needs_quote(argv[i])) {
			strbuf_adds(&sb, argv[i]);
			continue;
		}
		strbuf_addc(&sb, '\'');
		for (s = argv[i]; *s != '\0'; s++) {
			if (*s == '\'')
				strbuf_adds(&sb, "'\\''");
			else
				strbuf_addc(&sb, *s);
		}
		strbuf_addc(&sb, '\'');
	}
	return strbuf_detach(&sb, NULL);
}

char *
exec_describe(const char *const *argv, const struct exec_result *r)
{
	char *cmd = exec_quote_argv(argv), *line, *p, *s;

	if (r->spawn_errno == ENOENT)
		s = xasprintf("`%s`: %s not found", cmd, argv[0]);
	else if (r->spawn_errno != 0)
		s = xasprintf(
		    "`%s`: cannot run: %s", cmd, strerror(r->spawn_errno));
	else if (r->timed_out)
		s = xasprintf("`%s` timed out", cmd);
	else {
		line = xstrdup(r->err != NULL && r->err[0] != '\0' ? r->err
		        : r->out != NULL                           ? r->out
		                                                   : "");
		str_trim(line);
		if ((p = strchr(line, '\n')) != NULL)
			*p = '\0';
		s = xasprintf("`%s` exited %d%s%s", cmd, r->status,
		    line[0] != '\0' ? ": " : "", line);
		free(line);
	}
	free(cmd);
	return s;
}

int
exec_in_path(const char *name)
{
	const char *path = getenv("PATH"), *p, *e;
	char *full;
	int ok = 0;

	if (strchr(name, '/') != NULL)
		return access(name, X_OK) == 0;
	if (path == NULL)
		path = "/usr/bin:/bin";
	for (p = path; !ok; p = e + 1) {
		struct stat st;

		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		full =
		    xasprintf("%.*s/%s", (int)(e - p), e == p ? "." : p, name);
		ok = stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(full, X_OK) == 0;
		free(full);
		if (*e == '\0')
			break;
	}
	return ok;
}

int
exec_start(const char *const *argv, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	/* Its own process group: the terminal's ^C is not for it. */
	spawn_attr_init(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, 0);
	rc = posix_spawnp(
	    pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

static volatile sig_atomic_t fg_child;

static void
forward_cb(int sig)
{
	if (fg_child > 0)
		kill((pid_t)fg_child, sig);
}

int
exec_foreground(char *const *argv, char *const *envp)
{
	static const int fwd[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
	struct sigaction sa, old_int, old_quit, old_fwd[4];
	posix_spawnattr_t attr;
	sigset_t fwdset, oldmask;
	pid_t pid;
	int rc, st, saved;
	size_t i;

	/* Dispositions ignored here must not leak into the child. */
	spawn_attr_init(&attr, 0);
	sigemptyset(&fwdset);
	for (i = 0; i < 4; i++)
		sigaddset(&fwdset, fwd[i]);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGQUIT, &sa, &old_quit);
	sa.sa_handler = forward_cb;
	for (i = 0; i < 4; i++)
		sigaction(fwd[i], &sa, &old_fwd[i]);
	/* A signal that comes before the pid is known waits until it is. */
	sigprocmask(SIG_BLOCK, &fwdset, &oldmask);

	rc = posix_spawnp(&pid, argv[0], NULL, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		st = -1;
		saved = rc;
		goto out;
	}
	fg_child = pid;
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	for (;;) {
		if (waitpid(pid, &st, 0) == pid) {
			fg_child = 0;
			st = status_code(st);
			break;
		}
		if (errno != EINTR) {
			saved = errno;
			st = -1;
			goto out;
		}
	}
	saved = 0;
out:
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	fg_child = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	for (i = 0; i < 4; i++)
		sigaction(fwd[i], &old_fwd[i], NULL);
	errno = saved;
	return st;
}
