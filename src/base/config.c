#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/config.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

void
strlist_add(struct strlist *l, const char *s)
{
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = xstrdup(s);
}

void
strlist_free(struct strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int
strlist_contains(const struct strlist *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

int
config_parse_addr(const char *s, char **hostp, int *portp)
{
	const char *colon, *host_end, *host = s;
	long long port;

	*hostp = NULL;
	if (*s == '[') {
		if ((host_end = strchr(s, ']')) == NULL || host_end[1] != ':')
			return -1;
		host = s + 1;
		colon = host_end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;	/* bare IPv6 needs brackets */
		host_end = colon;
	}
	if (host_end == host)
		return -1;
	if (str_to_ll(colon + 1, 1, 65535, &port) == -1)
		return -1;
	*hostp = xstrndup(host, (size_t)(host_end - host));
	*portp = (int)port;
	return 0;
}

int
config_addr_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (str_casecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
	return 0;
}

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = xstrdup(CONFIG_DEFAULT_LISTEN);
	(void)config_parse_addr(cfg->listen, &cfg->listen_host,
	    &cfg->listen_port);
	cfg->log_level = LOG_INFO;
	cfg->ca_name_constraints = 1;
	cfg->max_connections = CONFIG_DEFAULT_MAX_CONN;
	cfg->meter_body_limit = CONFIG_DEFAULT_BODY_LIMIT;
}

void
config_free(struct config *cfg)
{
	free(cfg->listen);
	free(cfg->listen_host);
	strlist_free(&cfg->intercept);
	free(cfg->db);
	free(cfg->upstream_proxy);
	strlist_free(&cfg->upstream_ca);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

static int
set_listen(struct config *cfg, const char *v, char **cause)
{
	char *host;
	int port;

	if (config_parse_addr(v, &host, &port) == -1) {
		*cause = xasprintf("listen: '%s' is not HOST:PORT "
		    "(e.g. 127.0.0.1:8081 or [::1]:8081)", v);
		return -1;
	}
	free(cfg->listen);
	free(cfg->listen_host);
	cfg->listen = xstrdup(v);
	cfg->listen_host = host;
	cfg->listen_port = port;
	return 0;
}

/* A host pattern: a DNS name, optionally starting with "*." (one or more
 * leading labels) or containing '*' inside the first label. */
static int
valid_host_pattern(const char *p)
{
	const char *s;
	int dots = 0;

	if (*p == '\0' || strlen(p) > 253)
		return 0;
	for (s = p; *s != '\0'; s++) {
		if (*s == '.') {
			if (s == p || s[1] == '\0' || s[1] == '.')
				return 0;
			dots++;
		} else if (!((*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '*'))
			return 0;
		else if (*s == '*' && strchr(p, '.') < s)
			return 0;	/* '*' only in the first label */
	}
	return dots >= 1;
}

static int
add_list(struct strlist *l, const char *key, const char *v, int hosts,
    char **cause)
{
	char *copy = xstrdup(v), *item, *next;
	int rc = -1;

	for (item = copy; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		str_trim(item);
		if (*item == '\0') {
			*cause = xasprintf("%s: empty list item", key);
			goto out;
		}
		if (hosts) {
			str_lower(item);
			if (!valid_host_pattern(item)) {
				*cause = xasprintf("%s: '%s' is not a host "
				    "name or pattern like *.example.com", key,
				    item);
				goto out;
			}
		}
		if (!strlist_contains(l, item))
			strlist_add(l, item);
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

static int
set_bool(int *out, const char *key, const char *v, char **cause)
{
	if (str_to_bool(v, out) == -1) {
		*cause = xasprintf("%s: '%s' is not yes or no", key, v);
		return -1;
	}
	return 0;
}

static int
config_set(struct config *cfg, const char *key, const char *v, char **cause)
{
	long long n;
	char *host;
	int port;

	if (strcmp(key, "listen") == 0)
		return set_listen(cfg, v, cause);
	if (strcmp(key, "log_level") == 0) {
		if (log_level_parse(v, &cfg->log_level) == -1) {
			*cause = xasprintf("log_level: '%s' is not one of "
			    "error, warn, info, debug", v);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "intercept") == 0)
		return add_list(&cfg->intercept, key, v, 1, cause);
	if (strcmp(key, "upstream_ca") == 0)
		return add_list(&cfg->upstream_ca, key, v, 0, cause);
	if (strcmp(key, "db") == 0) {
		free(cfg->db);
		cfg->db = xstrdup(v);
		return 0;
	}
	if (strcmp(key, "allow_remote") == 0)
		return set_bool(&cfg->allow_remote, key, v, cause);
	if (strcmp(key, "ca_name_constraints") == 0)
		return set_bool(&cfg->ca_name_constraints, key, v, cause);
	if (strcmp(key, "upstream_proxy") == 0) {
		const char *hp = v;
		if (str_has_prefix(v, "http://"))
			hp = v + 7;
		if (config_parse_addr(hp, &host, &port) == -1 ||
		    strchr(hp, '/') != NULL) {
			*cause = xasprintf("upstream_proxy: '%s' is not "
			    "http://HOST:PORT", v);
			return -1;
		}
		free(host);
		free(cfg->upstream_proxy);
		cfg->upstream_proxy = xstrdup(v);
		return 0;
	}
	if (strcmp(key, "max_connections") == 0) {
		if (str_to_ll(v, 16, 1000000, &n) == -1) {
			*cause = xasprintf("max_connections: '%s' is not a "
			    "number from 16 to 1000000", v);
			return -1;
		}
		cfg->max_connections = (int)n;
		return 0;
	}
	if (strcmp(key, "meter_body_limit") == 0) {
		if (str_to_ll(v, 1024, 1LL << 32, &n) == -1) {
			*cause = xasprintf("meter_body_limit: '%s' is not a "
			    "byte count from 1024 to 4294967296", v);
			return -1;
		}
		cfg->meter_body_limit = (size_t)n;
		return 0;
	}
	*cause = xasprintf("unknown key '%s'", key);
	return -1;
}

static int
config_parse_line(struct config *cfg, char *line, char **cause)
{
	char *eq, *key, *value, *hash;

	/* A comment starts at '#' at the line start or after white space. */
	for (hash = line; (hash = strchr(hash, '#')) != NULL; hash++) {
		if (hash == line || hash[-1] == ' ' || hash[-1] == '\t') {
			*hash = '\0';
			break;
		}
	}
	str_trim(line);
	if (*line == '\0')
		return 0;
	if ((eq = strchr(line, '=')) == NULL) {
		*cause = xasprintf("expected 'key = value', got '%s'", line);
		return -1;
	}
	*eq = '\0';
	key = str_trim(line);
	value = str_trim(eq + 1);
	if (*key == '\0') {
		*cause = xstrdup("missing key before '='");
		return -1;
	}
	if (*value == '\0') {
		*cause = xasprintf("%s: missing value", key);
		return -1;
	}
	return config_set(cfg, key, value, cause);
}

int
config_load(struct config *cfg, const char *path, char **cause)
{
	char *text, *line, *next, *why = NULL;
	const char *env;
	size_t len;
	int lineno = 0, rc = -1;

	*cause = NULL;
	config_defaults(cfg);
	if (path != NULL && (text = file_read(path, &len)) != NULL) {
		cfg->path = xstrdup(path);
		if (memchr(text, '\0', len) != NULL) {
			*cause = xasprintf("%s: binary data in config file",
			    path);
			free(text);
			return -1;
		}
		for (line = text; line != NULL && *line != '\0'; line = next) {
			lineno++;
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if (config_parse_line(cfg, line, &why) == -1) {
				*cause = xasprintf("%s:%d: %s", path, lineno,
				    why);
				free(why);
				free(text);
				return -1;
			}
		}
		free(text);
	} else if (path != NULL && errno != ENOENT) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if ((env = getenv("HALTON_METER_LISTEN")) != NULL && *env != '\0') {
		if (set_listen(cfg, env, &why) == -1) {
			*cause = xasprintf("HALTON_METER_LISTEN: %s", why);
			free(why);
			return -1;
		}
	}
	rc = 0;
	return rc;
}

static const char default_config[] =
    "# halton-meter configuration: one 'key = value' a line.\n"
    "# Every key is optional; the values shown are the defaults.\n"
    "#\n"
    "# Address of the local proxy (HALTON_METER_LISTEN overrides it).\n"
    "# listen = " CONFIG_DEFAULT_LISTEN "\n"
    "# log_level = info\n"
    "# Extra hosts to meter, besides the built-in LLM API hosts\n"
    "# (repeat the key or separate with commas; *. matches subdomains).\n"
    "# intercept = llm.example.com, *.llm.example.net\n"
    "# SQLite database (default ~/.halton-meter/meter.db).\n"
    "# db = /path/to/meter.db\n"
    "# Reach upstreams through an existing HTTP proxy.\n"
    "# upstream_proxy = http://proxy.example.com:3128\n"
    "# Extra CA certificates to trust for upstream servers.\n"
    "# upstream_ca = /path/to/corporate-ca.pem\n";

int
config_write_default(const char *path, char **cause)
{
	*cause = NULL;
	if (file_exists(path))
		return 0;
	if (file_write_atomic(path, default_config, sizeof(default_config) - 1,
	    0600) == -1) {
		*cause = xasprintf("cannot write %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}
