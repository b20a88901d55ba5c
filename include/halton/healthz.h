/*
 * healthz: the daemon's health probe, GET http://HOST:PORT/healthz over a
 * plain socket within a timeout, and its JSON answer
 * {status, version, pid, uptime_s, connections, exchanges}.
 *
 * `status`, `run` and `doctor` all ask the daemon through this.
 */
#ifndef HALTON_HEALTHZ_H
#define HALTON_HEALTHZ_H

#define HEALTHZ_MAX_BYTES 65536 /* more of an answer is not read */

struct healthz {
	int http_status;  /* the answer's status code (200) */
	int is_json;      /* the body is a JSON object */
	int has_version;  /* it carries a string "version" */
	char status[32];  /* "status" ("ok"), or "" */
	char version[64]; /* "version", or "" */
	long pid;         /* these are -1 when absent */
	long uptime_s;
	long connections;
	long exchanges;
};

/*
 * Asks GET /healthz at host:port, all of it (resolving, connecting,
 * writing, reading) within timeout_ms.  Returns 0 when an HTTP answer came
 * back, whatever its status, with out filled from it; else -1 with out
 * zeroed (numbers -1) and, when cause is not NULL, *cause set to why
 * ("Connection refused", "connected, but no answer (timed out after
 * 1000 ms)", ...) for the caller to free.
 */
int healthz_probe(const char *, int, int, struct healthz *, char **);

#endif
