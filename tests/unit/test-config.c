#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/config.h"
#include "harness.h"

/* Writes text to a config file in the test's tmpdir and loads it. */
static int
load_text(struct config *cfg, const char *text, char **cause, char *path,
    size_t len)
{
	snprintf(path, len, "%s/config", harness_tmpdir());
	if (harness_write_file(path, text, strlen(text)) == -1)
		return -2;
	return config_load(cfg, path, cause);
}

static void
test_defaults(void)
{
	struct config cfg;
	char *cause;

	unsetenv("HALTON_METER_LISTEN");
	CHECK_INT(config_load(&cfg, "/nonexistent/halton/config", &cause), 0);
	CHECK(cause == NULL);
	CHECK_STR(cfg.listen, "127.0.0.1:8081");
	CHECK_STR(cfg.listen_host, "127.0.0.1");
	CHECK_INT(cfg.listen_port, 8081);
	CHECK_INT(cfg.log_level, LOG_INFO);
	CHECK_INT(cfg.intercept.n, 0);
	CHECK(cfg.db == NULL);
	CHECK_INT(cfg.allow_remote, 0);
	CHECK_INT(cfg.ca_name_constraints, 1);
	CHECK(cfg.upstream_proxy == NULL);
	CHECK_INT(cfg.max_connections, 4096);
	CHECK_INT(cfg.meter_body_limit, 32 * 1024 * 1024);
	CHECK(cfg.path == NULL);
	config_free(&cfg);
}

static void
test_good_file(void)
{
	struct config cfg;
	char *cause, path[512];

	unsetenv("HALTON_METER_LISTEN");
	CHECK_INT(load_text(&cfg,
	    "# a comment\n"
	    "\n"
	    "  listen = [::1]:9000   # after a value\n"
	    "log_level=debug\n"
	    "intercept = LLM.Example.com, *.corp.example\n"
	    "intercept = llm.example.com\n"
	    "intercept = *-gw.example.net\n"
	    "db = /var/tmp/x#y.db\n"
	    "allow_remote = yes\n"
	    "ca_name_constraints = off\n"
	    "upstream_proxy = http://proxy.corp:3128\n"
	    "upstream_ca = /a.pem,/b.pem\n"
	    "max_connections = 100\n"
	    "meter_body_limit = 1048576\n",
	    &cause, path, sizeof(path)), 0);
	CHECK(cause == NULL);
	CHECK_STR(cfg.listen_host, "::1");
	CHECK_INT(cfg.listen_port, 9000);
	CHECK_INT(cfg.log_level, LOG_DEBUG);
	CHECK_INT(cfg.intercept.n, 3);
	CHECK_STR(cfg.intercept.v[0], "llm.example.com");
	CHECK_STR(cfg.intercept.v[1], "*.corp.example");
	CHECK_STR(cfg.intercept.v[2], "*-gw.example.net");
	/* '#' inside a value (not after white space) is not a comment. */
	CHECK_STR(cfg.db, "/var/tmp/x#y.db");
	CHECK_INT(cfg.allow_remote, 1);
	CHECK_INT(cfg.ca_name_constraints, 0);
	CHECK_STR(cfg.upstream_proxy, "http://proxy.corp:3128");
	CHECK_INT(cfg.upstream_ca.n, 2);
	CHECK_STR(cfg.upstream_ca.v[1], "/b.pem");
	CHECK_INT(cfg.max_connections, 100);
	CHECK_INT(cfg.meter_body_limit, 1048576);
	CHECK_STR(cfg.path, path);
	config_free(&cfg);
}

/* Each bad line gives exactly "PATH:LINE: cause". */
static void
test_bad_lines(void)
{
	static const struct {
		const char *text;
		const char *want; /* after "PATH:" */
	} cases[] = {
		{ "frob = 1\n", "1: unknown key 'frob'" },
		{ "\n\nlisten\n", "3: expected 'key = value', got 'listen'" },
		{ "= 3\n", "1: missing key before '='" },
		{ "listen =\n", "1: listen: missing value" },
		{ "listen = 127.0.0.1\n",
		    "1: listen: '127.0.0.1' is not HOST:PORT (e.g. "
		    "127.0.0.1:8081 or [::1]:8081)" },
		{ "listen = 127.0.0.1:70000\n",
		    "1: listen: '127.0.0.1:70000' is not HOST:PORT (e.g. "
		    "127.0.0.1:8081 or [::1]:8081)" },
		{ "listen = ::1:80\n",
		    "1: listen: '::1:80' is not HOST:PORT (e.g. "
		    "127.0.0.1:8081 or [::1]:8081)" },
		{ "log_level = verbose\n",
		    "1: log_level: 'verbose' is not one of error, warn, info, "
		    "debug" },
		{ "intercept = a..b\n",
		    "1: intercept: 'a..b' is not a host name or pattern like "
		    "*.example.com" },
		{ "intercept = com\n",
		    "1: intercept: 'com' is not a host name or pattern like "
		    "*.example.com" },
		{ "intercept = a.b,,c.d\n", "1: intercept: empty list item" },
		{ "intercept = a.*.b\n",
		    "1: intercept: 'a.*.b' is not a host name or pattern like "
		    "*.example.com" },
		{ "allow_remote = maybe\n",
		    "1: allow_remote: 'maybe' is not yes or no" },
		{ "upstream_proxy = socks5://x:1\n",
		    "1: upstream_proxy: 'socks5://x:1' is not "
		    "http://HOST:PORT" },
		{ "max_connections = 10\n",
		    "1: max_connections: '10' is not a number from 16 to "
		    "1000000" },
		{ "max_connections = 12abc\n",
		    "1: max_connections: '12abc' is not a number from 16 to "
		    "1000000" },
	};
	struct config cfg;
	char *cause, path[512], want[1024];
	size_t i;

	unsetenv("HALTON_METER_LISTEN");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cause = NULL;
		CHECK_INT(load_text(&cfg, cases[i].text, &cause, path,
		    sizeof(path)), -1);
		snprintf(want, sizeof(want), "%s:%s", path, cases[i].want);
		CHECK_STR(cause, want);
		free(cause);
		config_free(&cfg);
	}
}

static void
test_listen_env(void)
{
	struct config cfg;
	char *cause, path[512];

	setenv("HALTON_METER_LISTEN", "127.0.0.2:1234", 1);
	CHECK_INT(load_text(&cfg, "listen = 127.0.0.1:9999\n", &cause, path,
	    sizeof(path)), 0);
	CHECK_STR(cfg.listen, "127.0.0.2:1234");
	CHECK_INT(cfg.listen_port, 1234);
	config_free(&cfg);
	setenv("HALTON_METER_LISTEN", "oops", 1);
	CHECK_INT(load_text(&cfg, "", &cause, path, sizeof(path)), -1);
	CHECK_STR(cause, "HALTON_METER_LISTEN: listen: 'oops' is not HOST:PORT "
			 "(e.g. 127.0.0.1:8081 or [::1]:8081)");
	free(cause);
	config_free(&cfg);
	unsetenv("HALTON_METER_LISTEN");
}

static void
test_loopback(void)
{
	CHECK_INT(config_addr_is_loopback("127.0.0.1"), 1);
	CHECK_INT(config_addr_is_loopback("127.3.2.1"), 1);
	CHECK_INT(config_addr_is_loopback("::1"), 1);
	CHECK_INT(config_addr_is_loopback("LocalHost"), 1);
	CHECK_INT(config_addr_is_loopback("0.0.0.0"), 0);
	CHECK_INT(config_addr_is_loopback("192.168.1.1"), 0);
	CHECK_INT(config_addr_is_loopback("::"), 0);
}

static void
test_write_default(void)
{
	struct config cfg;
	char *cause, path[512], *text;

	unsetenv("HALTON_METER_LISTEN");
	snprintf(path, sizeof(path), "%s/sub/config", harness_tmpdir());
	/* Parent directory missing: a clear error, not a crash. */
	CHECK_INT(config_write_default(path, &cause), -1);
	CHECK(cause != NULL && strstr(cause, "cannot write") != NULL);
	free(cause);
	snprintf(path, sizeof(path), "%s/config", harness_tmpdir());
	CHECK_INT(config_write_default(path, &cause), 0);
	/* The written defaults parse and equal the compiled-in ones. */
	CHECK_INT(config_load(&cfg, path, &cause), 0);
	CHECK_STR(cfg.listen, "127.0.0.1:8081");
	config_free(&cfg);
	/* A second call keeps the user's edits. */
	harness_write_file(path, "listen = 127.0.0.1:1\n", 21);
	CHECK_INT(config_write_default(path, &cause), 0);
	text = harness_read_file(path, NULL);
	CHECK_STR(text, "listen = 127.0.0.1:1\n");
	free(text);
}

static const struct test tests[] = {
	TEST(test_defaults),
	TEST(test_good_file),
	TEST(test_bad_lines),
	TEST(test_listen_env),
	TEST(test_loopback),
	TEST(test_write_default),
	{ 0 },
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
