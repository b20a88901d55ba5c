/*
 * proxy: the forward proxy daemon's engine.  A listener that answers
 * CONNECT (intercepted with TLS on both sides for LLM API hosts, a blind
 * TCP tunnel for every other host), absolute-form http:// requests and the
 * daemon's own origin-form endpoints (GET /healthz), and relays HTTP/1.1
 * between client and upstream while calling the exchange hooks.
 *
 * Everything runs on the caller's event_base; nothing blocks.  No
 * per-connection failure ever stops the proxy.
 */
#ifndef HALTON_PROXY_H
#define HALTON_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "halton/ca.h"
#include "halton/config.h"
#include "halton/exchange.h"
#include "halton/intercept.h"
#include "halton/util.h"

struct proxy;

struct proxy_options {
	const char *listen_host; /* numeric address or "localhost" */
	int listen_port;
	int max_connections; /* accepting pauses past it */
	/* Borrowed; must outlive the proxy (or be replaced with
	 * proxy_set_intercept). */
	const struct intercept_list *intercept;
	struct ca *ca;       /* borrowed: ca_permits */
	SSL_CTX *server_ctx; /* tls_server_ctx_new (borrowed) */
	SSL_CTX *client_ctx; /* tls_client_ctx_new (borrowed) */
	/* Or, when server_ctx/client_ctx are NULL and ctx_get is set: the
	 * contexts made on first use (an idle daemon need not hold them).
	 * ctx_get(ctx_arg, 1) is the server (client-facing) context,
	 * ctx_get(ctx_arg, 0) the client (upstream) one; NULL if it cannot
	 * be made (the connection then fails, or is tunnelled). */
	SSL_CTX *(*ctx_get)(void *ctx_arg, int server);
	void *ctx_arg;
	/* "HOST:PORT:HOST2:PORT2" (curl's --connect-to; an empty HOST or
	 * PORT matches any), may be NULL. */
	const struct strlist *connect_to;
	const char *upstream_proxy;         /* NULL or "http://host:port" */
	const struct exchange_hooks *hooks; /* may be NULL */
	void *hooks_arg;
	/* Answers the daemon's own origin-form requests other than
	 * /healthz (the dashboard), for loopback clients only: returns the
	 * HTTP status and fills body and *content_type, or 0 when it does
	 * not own the target (404).  May be NULL. */
	int (*local)(void *arg, const char *method, const char *target,
	    size_t target_len, struct strbuf *body, const char **content_type);
	void *local_arg;
};

/* Creates the proxy and binds its listener.  Returns 0, or -1 with a
 * cause the caller frees. */
int proxy_new(struct proxy **, struct event_base *,
    const struct proxy_options *, char **);
/* Closes every connection (ending their exchanges) and frees the proxy. */
void proxy_free(struct proxy *);
/* The event base, for callers that add their own timers. */
struct event_base *proxy_base(const struct proxy *);
/* Replaces the intercept list (after SIGHUP); the old one may be freed
 * once this returns. */
void proxy_set_intercept(struct proxy *, const struct intercept_list *);
/* Graceful stop: stops accepting, closes idle connections, lets active
 * exchanges finish for up to timeout_s seconds, then closes the rest and
 * calls done (once). */
void proxy_shutdown(struct proxy *, int, void (*)(void *), void *);
/* Open client connections, and exchanges completed or failed so far. */
size_t proxy_connections(const struct proxy *);
uint64_t proxy_exchanges(const struct proxy *);
/* The bound port (useful with port 0). */
int proxy_port(const struct proxy *);

#endif
