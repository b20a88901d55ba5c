/*
 * envvars: the variable set, its shell and environment.d spellings, and a
 * child environment built from it.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/envvars.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

static const char *const bundle_vars[] = {
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
    NULL,
};

static void
add(struct envvars *e, const char *name, const char *value)
{
	if (e->n == ENVVARS_MAX)
		return;
	e->v[e->n].name = name;
	e->v[e->n].value = xstrdup(value);
	e->n++;
}

char *
envvars_url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct strbuf sb;
	unsigned char c;

	strbuf_init(&sb);
	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			strbuf_addc(&sb, (char)c);
		else {
			strbuf_addc(&sb, '%');
			strbuf_addc(&sb, hex[c >> 4]);
			strbuf_addc(&sb, hex[c & 15]);
		}
	}
	return strbuf_detach(&sb, NULL);
}

char *
envvars_proxy_url(const char *host, int port, const char *tag)
{
	const char *h = host;
	char *user = NULL, *url;
	int v6;

	if (strcmp(h, "0.0.0.0") == 0 || h[0] == '\0')
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	v6 = strchr(h, ':') != NULL;
	if (tag != NULL && tag[0] != '\0')
		user = envvars_url_escape(tag);
	/* The tag travels as the proxy user name.  A password must be there
	 * too: python-requests and undici send no Proxy-Authorization for a
	 * user without one.  It is a constant, not a secret. */
	url = xasprintf("http://%s%s%s%s%s:%d", user != NULL ? user : "",
	    user != NULL ? ":tag@" : "", v6 ? "[" : "", h, v6 ? "]" : "", port);
	free(user);
	return url;
}

void
envvars_build(struct envvars *e, const struct config *cfg,
    const char *state_dir, const char *tag)
{
	char *bundle, *ca, *proxy;
	size_t i;

	memset(e, 0, sizeof(*e));
	bundle = xasprintf("%s/bundle.pem", state_dir);
	ca = xasprintf("%s/ca.pem", state_dir);
	proxy = envvars_proxy_url(cfg->listen_host, cfg->listen_port, tag);
	for (i = 0; bundle_vars[i] != NULL; i++)
		add(e, bundle_vars[i], bundle);
	add(e, "NODE_EXTRA_CA_CERTS", ca);
	add(e, "HTTPS_PROXY", proxy);
	add(e, "https_proxy", proxy);
	add(e, "NO_PROXY", ENVVARS_NO_PROXY);
	add(e, "no_proxy", ENVVARS_NO_PROXY);
	add(e, "NODE_USE_ENV_PROXY", "1");
	free(bundle);
	free(ca);
	free(proxy);
}

void
envvars_free(struct envvars *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->v[i].value);
	memset(e, 0, sizeof(*e));
}

const char *
envvars_get(const struct envvars *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (strcmp(e->v[i].name, name) == 0)
			return e->v[i].value;
	return NULL;
}

static void
quote_sh(struct strbuf *sb, const char *s)
{
	strbuf_addc(sb, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			strbuf_adds(sb, "'\\''");
		else
			strbuf_addc(sb, *s);
	}
	strbuf_addc(sb, '\'');
}

static void
quote_fish(struct strbuf *sb, const char *s)
{
	strbuf_addc(sb, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'' || *s == '\\')
			strbuf_addc(sb, '\\');
		strbuf_addc(sb, *s);
	}
	strbuf_addc(sb, '\'');
}

char *
envvars_format(const struct envvars *e, enum envvars_shell shell)
{
	struct strbuf sb;
	size_t i;

	strbuf_init(&sb);
	for (i = 0; i < e->n; i++) {
		switch (shell) {
		case ENVVARS_SH:
			strbuf_addf(&sb, "export %s=", e->v[i].name);
			quote_sh(&sb, e->v[i].value);
			break;
		case ENVVARS_FISH:
			strbuf_addf(&sb, "set -gx %s ", e->v[i].name);
			quote_fish(&sb, e->v[i].value);
			break;
		case ENVVARS_ENVIRONMENT_D:
			/* environment.d(5): KEY=VALUE, no quoting. */
			strbuf_addf(&sb, "%s=%s", e->v[i].name, e->v[i].value);
			break;
		}
		strbuf_addc(&sb, '\n');
	}
	return strbuf_detach(&sb, NULL);
}

static int
in_set(const struct envvars *e, const char *entry)
{
	size_t i, n;

	for (i = 0; i < e->n; i++) {
		n = strlen(e->v[i].name);
		if (strncmp(entry, e->v[i].name, n) == 0 && entry[n] == '=')
			return 1;
	}
	return 0;
}

char **
envvars_environ(const struct envvars *e, char *const *base)
{
	size_t nbase = 0, i, n = 0;
	char **env;

	while (base != NULL && base[nbase] != NULL)
		nbase++;
	env = xcalloc(nbase + e->n + 1, sizeof(*env));
	for (i = 0; i < nbase; i++)
		if (!in_set(e, base[i]))
			env[n++] = xstrdup(base[i]);
	for (i = 0; i < e->n; i++)
		env[n++] = xasprintf("%s=%s", e->v[i].name, e->v[i].value);
	env[n] = NULL;
	return env;
}

void
envvars_environ_free(char **env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}
