/*
 * attribution: who made a metered request.
 *
 * From the request headers (portable, attribution.c): the client and its
 * version (User-Agent through a const table), the tag (the user name of
 * Proxy-Authorization Basic credentials), the key fingerprint (the first 8
 * hex digits of SHA-256 of the credential, never the credential) and the
 * client's session id.  From the operating system (attribution-linux.c:
 * /proc; attribution-macos.c: libproc): the local process that owns the
 * client's TCP connection, its working directory and project.  The process
 * lookup scans the process table, so the meter does it once per client
 * connection and caches the result.
 */
#ifndef HALTON_ATTRIBUTION_H
#define HALTON_ATTRIBUTION_H

#include <stddef.h>
#include <stdint.h>

#define ATTRIBUTION_FP_LEN 8

/* Looks a request header up (case-insensitive), NULL if absent. */
typedef const char *(*attribution_header_fn)(void *arg, const char *name);

struct attribution_process {
	int64_t pid;   /* -1 unknown */
	char *process; /* executable name */
	char *cwd;
	char *project; /* git top-level's (else cwd's) basename */
};

/*
 * Names the client of a User-Agent: sets *client and *version (malloc'd;
 * *version may stay NULL) and returns 0, or returns -1 (both NULL) for an
 * unknown agent.
 */
int attribution_client(const char *ua, char **client, char **version);

/* Writes the first 8 hex digits of SHA-256(cred[0..len)) and a NUL into
 * out (at least ATTRIBUTION_FP_LEN + 1 bytes). */
void attribution_key_fp(const void *cred, size_t len, char *out);

/*
 * The fingerprint of the credential a request carries: x-api-key,
 * Authorization (Bearer token; the SigV4 access key id), api-key,
 * x-goog-api-key, or a "key=" query parameter of target.  Returns 0 and
 * fills out, or -1 when the request carries none.
 */
int attribution_request_key_fp(
    attribution_header_fn, void *, const char *target, char *out);

/*
 * The tag of a Proxy-Authorization header value: the URL-decoded user name
 * of "Basic base64(user:password)".  Returns a malloc'd string or NULL.
 */
char *attribution_tag(const char *proxy_authorization);

/*
 * The project of a directory: the basename of the nearest ancestor (or the
 * directory itself) holding a ".git" entry, else the directory's own
 * basename.  Returns a malloc'd string or NULL.
 */
char *attribution_project(const char *dir);

/*
 * Finds the local process owning the TCP connection whose local end is
 * client_addr:client_port and whose remote end is server_addr:server_port
 * (the client side of a connection to the proxy).  Fills *out (pid,
 * process, cwd, project) and returns 0, or -1 when no process owns it or
 * the platform cannot tell.  Scans the process table: not for a hot path.
 */
int attribution_process_lookup(const char *client_addr, int client_port,
    const char *server_addr, int server_port, struct attribution_process *);

/*
 * Linux: 1 (the default) finds the socket through NETLINK_SOCK_DIAG, 0
 * forces the /proc/net/tcp{,6} scan (which is also the fallback when
 * netlink cannot answer).  For tests; a no-op elsewhere.
 */
void attribution_set_sock_diag(int);

/* Fills process, cwd and project of pid (pid must be set). Platform. */
int attribution_process_describe(int64_t pid, struct attribution_process *);

void attribution_process_init(struct attribution_process *);
void attribution_process_free(struct attribution_process *);

#endif
