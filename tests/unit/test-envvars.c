/*
 * envvars: the variable set, URL escaping, shell spellings, child
 * environments.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/envvars.h"

static void
build(struct envvars *e, const char *listen, const char *tag)
{
	struct config cfg;

	config_defaults(&cfg);
	if (listen != NULL) {
		free(cfg.listen_host);
		CHECK_INT(config_parse_addr(
		              listen, &cfg.listen_host, &cfg.listen_port),
		    0);
	}
	envvars_build(e, &cfg, "/h/.halton-meter", tag);
	config_free(&cfg);
}

static void
test_envvars_set(void)
{
	static const char *const names[] = {"SSL_CERT_FILE",
	    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
	    "AWS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "HTTPS_PROXY",
	    "https_proxy", "NO_PROXY", "no_proxy", "NODE_USE_ENV_PROXY"};
	struct envvars e;
	size_t i;

	build(&e, NULL, NULL);
	CHECK_INT(e.n, 11);
	for (i = 0; i < 11 && i < e.n; i++)
		CHECK_STR(e.v[i].name, names[i]);
	CHECK_STR(
	    envvars_get(&e, "SSL_CERT_FILE"), "/h/.halton-meter/bundle.pem");
	CHECK_STR(
	    envvars_get(&e, "AWS_CA_BUNDLE"), "/h/.halton-meter/bundle.pem");
	CHECK_STR(
	    envvars_get(&e, "NODE_EXTRA_CA_CERTS"), "/h/.halton-meter/ca.pem");
	CHECK_STR(envvars_get(&e, "HTTPS_PROXY"), "http://127.0.0.1:8081");
	CHECK_STR(envvars_get(&e, "no_proxy"), "localhost,127.0.0.1,::1");
	CHECK_STR(envvars_get(&e, "NODE_USE_ENV_PROXY"), "1");
	CHECK(envvars_get(&e, "HTTP_PROXY") == NULL);
	envvars_free(&e);
}

static void
test_envvars_listen_address(void)
{
	struct envvars e;

	build(&e, "127.0.0.2:9000", NULL);
	CHECK_STR(envvars_get(&e, "https_proxy"), "http://127.0.0.2:9000");
	envvars_free(&e);
	build(&e, "0.0.0.0:8081", NULL);
	CHECK_STR(envvars_get(&e, "HTTPS_PROXY"), "http://127.0.0.1:8081");
	envvars_free(&e);
	build(&e, "[::1]:8081", NULL);
	CHECK_STR(envvars_get(&e, "HTTPS_PROXY"), "http://[::1]:8081");
	envvars_free(&e);
	build(&e, "[::]:8082", "t");
	CHECK_STR(envvars_get(&e, "HTTPS_PROXY"), "http://t:tag@[::1]:8082");
	envvars_free(&e);
}

static void
test_envvars_tag_escaped(void)
{
	struct envvars e;
	char *s;

	build(&e, NULL, "team a/b@c:d%");
	CHECK_STR(envvars_get(&e, "HTTPS_PROXY"),
	    "http://team%20a%2Fb%40c%3Ad%25:tag@127.0.0.1:8081");
	envvars_free(&e);
	s = envvars_url_escape("A-z_0.9~");
	CHECK_STR(s, "A-z_0.9~");
	free(s);
	s = envvars_url_escape("\xc3\xa9");
	CHECK_STR(s, "%C3%A9");
	free(s);
}

static void
test_envvars_format(void)
{
	struct envvars e;
	char *s;

	memset(&e, 0, sizeof(e));
	e.v[0].name = "A";
	e.v[0].value = strdup("it's $x");
	e.v[1].name = "B";
	e.v[1].value = strdup("a\\b");
	e.n = 2;
	s = envvars_format(&e, ENVVARS_SH);
	CHECK_STR(s, "export A='it'\\''s $x'\nexport B='a\\b'\n");
	free(s);
	s = envvars_format(&e, ENVVARS_FISH);
	CHECK_STR(s, "set -gx A 'it\\'s $x'\nset -gx B 'a\\\\b'\n");
	free(s);
	s = envvars_format(&e, ENVVARS_ENVIRONMENT_D);
	CHECK_STR(s, "A=it's $x\nB=a\\b\n");
	free(s);
	envvars_free(&e);
}

static void
test_envvars_environ(void)
{
	char *base[] = {"PATH=/bin", "HTTPS_PROXY=http://corp:1",
	    "https_proxy=x", "HTTPS_PROXY_EXTRA=keep", "HOME=/h", NULL};
	struct envvars e;
	char **env;
	size_t n;

	build(&e, NULL, NULL);
	env = envvars_environ(&e, base);
	for (n = 0; env[n] != NULL; n++)
		;
	CHECK_INT(n, 3 + 11);
	CHECK_STR(env[0], "PATH=/bin");
	CHECK_STR(env[1], "HTTPS_PROXY_EXTRA=keep");
	CHECK_STR(env[2], "HOME=/h");
	CHECK_STR(env[3], "SSL_CERT_FILE=/h/.halton-meter/bundle.pem");
	CHECK_STR(env[9], "HTTPS_PROXY=http://127.0.0.1:8081");
	CHECK_STR(env[13], "NODE_USE_ENV_PROXY=1");
	envvars_environ_free(env);
	envvars_free(&e);
}

static const struct test tests[] = {
    TEST(test_envvars_set),
    TEST(test_envvars_listen_address),
    TEST(test_envvars_tag_escaped),
    TEST(test_envvars_format),
    TEST(test_envvars_environ),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
