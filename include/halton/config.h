/*
 * config: ~/.halton-meter/config, one "key = value" a line.
 *
 * '#' starts a comment (at the start of a line or after white space); blank
 * lines are ignored; list keys (intercept, upstream_ca) take repeated lines
 * and/or comma-separated values.  Every default is compiled in, so no file
 * is needed.  Unknown keys and bad values are errors reported as
 * "PATH:LINE: cause".  $HALTON_METER_LISTEN overrides `listen`.
 */
#ifndef HALTON_CONFIG_H
#define HALTON_CONFIG_H

#include <stddef.h>

#include "halton/log.h"

#define CONFIG_DEFAULT_LISTEN	   "127.0.0.1:8081"
#define CONFIG_DEFAULT_MAX_CONN	   4096
#define CONFIG_DEFAULT_BODY_LIMIT  (32u * 1024 * 1024)

struct strlist {
	char **v;
	size_t n;
};

void strlist_add(struct strlist *, const char *);
void strlist_free(struct strlist *);
int strlist_contains(const struct strlist *, const char *);

struct config {
	char *listen;		/* "host:port" as written */
	char *listen_host;	/* without brackets */
	int listen_port;
	enum log_level log_level;
	struct strlist intercept;	/* extra host patterns */
	char *db;		/* NULL = state_dir/meter.db */
	int allow_remote;
	int ca_name_constraints;
	char *upstream_proxy;	/* NULL or "http://host:port" */
	struct strlist upstream_ca;
	int max_connections;
	size_t meter_body_limit;
	char *path;		/* the file read, or NULL if none existed */
};

/* Fills cfg with the compiled-in defaults. */
void config_defaults(struct config *);
/* Loads path over the defaults (a missing file is not an error) and applies
 * $HALTON_METER_LISTEN.  Returns 0, or -1 with a "PATH:LINE: cause" string
 * the caller frees. */
int config_load(struct config *, const char *, char **);
/* Parses "host:port" / "[v6]:port" into host and port; -1 if malformed. */
int config_parse_addr(const char *, char **, int *);
/* Whether host is a loopback address or "localhost". */
int config_addr_is_loopback(const char *);
void config_free(struct config *);
/* Writes the default config file (commented) if none exists.  0 or -1. */
int config_write_default(const char *, char **);

#endif
