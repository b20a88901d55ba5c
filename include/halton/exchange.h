/*
 * exchange: one HTTP request/response pair seen by the engine, and the hook
 * table through which observers (the meter) see it.
 *
 * The engine owns every struct exchange; observers only read it through
 * these accessors and may hang one pointer of their own on it
 * (exchange_set_data).  Hooks are called on the event loop; they must not
 * block and can never change a forwarded byte.  Bodies arrive de-chunked
 * but still content-encoded, exactly as on the wire.
 */
#ifndef HALTON_EXCHANGE_H
#define HALTON_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

struct exchange;

struct exchange_hooks {
	/* At CONNECT (or an absolute-form request): 1 = intercept and
	 * observe, 0 = blind tunnel / do not observe. */
	int (*intercept)(void *arg, const char *host, int port);
	void (*request_head)(void *arg, struct exchange *);
	void (*request_body)(
	    void *arg, struct exchange *, const void *, size_t);
	void (*response_head)(void *arg, struct exchange *);
	void (*response_body)(
	    void *arg, struct exchange *, const void *, size_t);
	/* Called exactly once per exchange whose request_head was called.
	 * error is NULL when the response completed, else a short cause
	 * ("incomplete", "client closed", "upstream: <reason>", ...). */
	void (*end)(void *arg, struct exchange *, const char *error);
	/* After the 101 of a WebSocket upgrade: the relayed bytes of each
	 * direction (to_upstream = 1 for client -> server), unchanged.  May be
	 * NULL. */
	void (*upgraded_data)(void *arg, struct exchange *, int to_upstream,
	    const void *, size_t);
	/* Optional, asked once per response after response_head: 1 = the
	 * response_body calls may come after the bytes they carry were
	 * written to the client (and end after them), so the observer's work
	 * is not on the response's way; 0 = as the bytes arrive, before they
	 * are written (an observer that needs the client to still be waiting
	 * when end runs says 0). */
	int (*body_after_write)(void *arg, struct exchange *);
};

/* The CONNECT (or absolute-URI) host, lower-cased, and port. */
const char *exchange_host(const struct exchange *);
int exchange_port(const struct exchange *);
const char *exchange_method(const struct exchange *);
/* The request target as sent (origin-form path + query). */
const char *exchange_path(const struct exchange *);
/* Request header lookup, case-insensitive; the first value, or NULL. */
const char *exchange_request_header(const struct exchange *, const char *);
/* Iterates request headers: returns 0 and sets *name and *value for index i,
 * or -1 past the end. */
int exchange_request_header_at(
    const struct exchange *, size_t, const char **, const char **);
/* Response status (0 before response_head). */
int exchange_status(const struct exchange *);
const char *exchange_response_header(const struct exchange *, const char *);
int exchange_response_header_at(
    const struct exchange *, size_t, const char **, const char **);
/* A header of the CONNECT request that opened the client connection
 * (case-insensitive; the first value, or NULL; NULL for absolute-form
 * requests).  The meter reads Proxy-Authorization here for the tag. */
#define EXCHANGE_HAS_CONNECT_HEADER 1
const char *exchange_connect_header(const struct exchange *, const char *);
/* Monotonic microseconds: request head seen, first response byte seen
 * (0 if none), end. */
uint64_t exchange_started_us(const struct exchange *);
uint64_t exchange_first_byte_us(const struct exchange *);
/* Wall clock (epoch ms) of the request head. */
int64_t exchange_started_ms(const struct exchange *);
/* Body bytes relayed so far in each direction (after de-chunking). */
uint64_t exchange_bytes_up(const struct exchange *);
uint64_t exchange_bytes_down(const struct exchange *);
/* The local client's TCP endpoint (for process attribution): the client's
 * address/port and the proxy's address/port on that connection. */
int exchange_client_endpoint(
    const struct exchange *, char *, size_t, int *, char *, size_t, int *);
/* A per-client-connection id (same for every exchange on that
 * connection), and the observer's own per-connection pointer. */
uint64_t exchange_conn_id(const struct exchange *);
void *exchange_conn_data(const struct exchange *);
void exchange_set_conn_data(struct exchange *, void *, void (*)(void *));

void *exchange_data(const struct exchange *);
void exchange_set_data(struct exchange *, void *);

#endif
