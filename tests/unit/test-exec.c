/*
 * exec: argv execution, capture, status, timeout, descriptions.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/exec.h"
#include "halton/util.h"

static void
test_exec_captures_output_and_status(void)
{
	const char *argv[] = {"sh", "-c",
	    "printf 'out\\n'; printf err >&2; "
	    "exit 3",
	    NULL};
	struct exec_result r;

	CHECK_INT(exec_run(argv, 5000, 0, &r), -1);
	CHECK_INT(r.status, 3);
	CHECK_INT(r.timed_out, 0);
	CHECK_INT(r.spawn_errno, 0);
	CHECK_STR(r.out, "out\n");
	CHECK_INT(r.out_len, 4);
	CHECK_STR(r.err, "err");
	exec_result_free(&r);
}

static void
test_exec_success_and_no_shell(void)
{
	/* The argument reaches the program as one word: no shell. */
	const char *argv[] = {"printf", "%s|", "a b;$HOME `x`", NULL};
	struct exec_result r;

	CHECK_INT(exec_run(argv, 5000, 0, &r), 0);
	CHECK_INT(r.status, 0);
	CHECK_STR(r.out, "a b;$HOME `x`|");
	exec_result_free(&r);
}

static void
test_exec_signal_status(void)
{
	const char *argv[] = {"sh", "-c", "kill -TERM $$", NULL};
	struct exec_result r;

	CHECK_INT(exec_run(argv, 5000, 0, &r), -1);
	CHECK_INT(r.status, 128 + SIGTERM);
	exec_result_free(&r);
}

static void
test_exec_not_found(void)
{
	const char *argv[] = {"no-such-program-halton", "x", NULL};
	struct exec_result r;
	char *d;

	CHECK_INT(exec_run(argv, 5000, 0, &r), -1);
	CHECK_INT(r.spawn_errno, ENOENT);
	CHECK_INT(r.status, -1);
	d = exec_describe(argv, &r);
	CHECK_STR(d,
	    "`no-such-program-halton x`: no-such-program-halton "
	    "not found");
	free(d);
	exec_result_free(&r);
	CHECK_INT(exec_in_path("no-such-program-halton"), 0);
	CHECK_INT(exec_in_path("sh"), 1);
}

static void
test_exec_timeout_kills(void)
{
	const char *argv[] = {"sleep", "30", NULL};
	struct exec_result r;
	uint64_t t0 = time_mono_ms();
	char *d;

	CHECK_INT(exec_run(argv, 200, 0, &r), -1);
	CHECK_INT(r.timed_out, 1);
	CHECK_INT(r.status, -1);
	CHECK(time_mono_ms() - t0 < 10000);
	d = exec_describe(argv, &r);
	CHECK_STR(d, "`sleep 30` timed out");
	free(d);
	exec_result_free(&r);
}

static void
test_exec_timeout_with_closed_output(void)
{
	/* The child closes its output but keeps running. */
	const char *argv[] = {
	    "sh", "-c", "exec >/dev/null 2>&1; sleep 30", NULL};
	struct exec_result r;

	CHECK_INT(exec_run(argv, 300, 0, &r), -1);
	CHECK_INT(r.timed_out, 1);
	exec_result_free(&r);
}

static void
test_exec_describe_uses_stderr(void)
{
	const char *argv[] = {"sh", "-c",
	    "echo first line >&2; "
	    "echo second >&2; exit 14",
	    NULL};
	struct exec_result r;
	char *d;

	exec_run(argv, 5000, 0, &r);
	d = exec_describe(argv, &r);
	CHECK_STR(d,
	    "`sh -c 'echo first line >&2; echo second >&2; exit 14'` "
	    "exited 14: first line");
	free(d);
	exec_result_free(&r);
}

static void
test_exec_quote_argv(void)
{
	const char *argv[] = {"networksetup", "-setsecurewebproxy", "Wi-Fi",
	    "127.0.0.1", "8081", NULL};
	const char *argv2[] = {
	    "certutil", "-n", "halton-meter CA", "", "it's", NULL};
	char *q;

	q = exec_quote_argv(argv);
	CHECK_STR(q, "networksetup -setsecurewebproxy Wi-Fi 127.0.0.1 8081");
	free(q);
	q = exec_quote_argv(argv2);
	CHECK_STR(q, "certutil -n 'halton-meter CA' '' 'it'\\''s'");
	free(q);
}

static void
test_exec_discard_output(void)
{
	const char *argv[] = {"sh", "-c", "echo hidden; exit 0", NULL};
	struct exec_result r;

	CHECK_INT(exec_run(argv, 5000, EXEC_DISCARD_OUTPUT, &r), 0);
	CHECK_INT(r.out_len, 0);
	exec_result_free(&r);
}

static void
test_exec_foreground_status(void)
{
	char *argv[] = {"sh", "-c", "exit 7", NULL};
	char *argv2[] = {"sh", "-c", "kill -INT $$", NULL};
	char *argv3[] = {"no-such-program-halton", NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};

	CHECK_INT(exec_foreground(argv, envp), 7);
	CHECK_INT(exec_foreground(argv2, envp), 130);
	errno = 0;
	CHECK_INT(exec_foreground(argv3, envp), -1);
	CHECK_INT(errno, ENOENT);
}

/* The child gets exactly envp: the one variable, nothing of ours. */
static void
test_exec_run_env_exact(void)
{
	const char *argv[] = {"env", NULL};
	char *envp[] = {"HALTON_EXEC_T=one two=3", NULL};
	struct exec_result r;

	setenv("HALTON_EXEC_PARENT", "leak", 1);
	CHECK_INT(exec_run_env(argv, envp, 5000, 0, &r), 0);
	CHECK_INT(r.status, 0);
	CHECK_STR(r.out, "HALTON_EXEC_T=one two=3\n");
	CHECK_INT(r.out_len, 24);
	exec_result_free(&r);
	unsetenv("HALTON_EXEC_PARENT");
}

static const struct test tests[] = {
    TEST(test_exec_captures_output_and_status),
    TEST(test_exec_success_and_no_shell),
    TEST(test_exec_signal_status),
    TEST(test_exec_not_found),
    TEST(test_exec_timeout_kills),
    TEST(test_exec_timeout_with_closed_output),
    TEST(test_exec_describe_uses_stderr),
    TEST(test_exec_quote_argv),
    TEST(test_exec_discard_output),
    TEST(test_exec_foreground_status),
    TEST(test_exec_run_env_exact),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
