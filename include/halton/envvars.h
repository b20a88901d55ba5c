/*
 * envvars: the variable set that points clients at the meter.
 *
 *   SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO
 *   AWS_CA_BUNDLE        -> STATE_DIR/bundle.pem (system roots + CA)
 *   NODE_EXTRA_CA_CERTS  -> STATE_DIR/ca.pem
 *   HTTPS_PROXY https_proxy -> http://[TAG@]HOST:PORT (the listen address)
 *   NO_PROXY no_proxy    -> localhost,127.0.0.1,::1
 *   NODE_USE_ENV_PROXY   -> 1
 *
 * The same set feeds `run` (the child's environment), `env` (export
 * lines), the rc blocks, environment.d and launchctl setenv.
 */
#ifndef HALTON_ENVVARS_H
#define HALTON_ENVVARS_H

#include <stddef.h>

#include "halton/config.h"

#define ENVVARS_MAX      16
#define ENVVARS_NO_PROXY "localhost,127.0.0.1,::1"

struct envvar {
	const char *name;
	char *value;
};

struct envvars {
	struct envvar v[ENVVARS_MAX];
	size_t n;
};

enum envvars_shell { ENVVARS_SH, ENVVARS_FISH, ENVVARS_ENVIRONMENT_D };

/* Builds the set from the config (listen address) and the state
 * directory; tag (may be NULL) becomes the proxy URL's user name. */
void envvars_build(
    struct envvars *, const struct config *, const char *, const char *);
void envvars_free(struct envvars *);
const char *envvars_get(const struct envvars *, const char *);
/* "http://HOST:PORT" for the listen address (wildcard addresses become
 * loopback, IPv6 is bracketed); with a tag, "http://TAG@HOST:PORT" with
 * the tag percent-encoded. */
char *envvars_proxy_url(const char *, int, const char *);
/* Percent-encodes everything but RFC 3986 unreserved characters. */
char *envvars_url_escape(const char *);
/* The lines that set the variables in a shell or an environment.d file
 * (one per variable, each ending in a newline). */
char *envvars_format(const struct envvars *, enum envvars_shell);
/* A new environment: base without the variables of the set, followed by
 * them.  The array and its strings are malloc'd; free with
 * envvars_environ_free(). */
char **envvars_environ(const struct envvars *, char *const *);
void envvars_environ_free(char **);

#endif
