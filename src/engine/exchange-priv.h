/*
 * exchange-priv: what the engine (and only the engine) knows about a
 * struct exchange: how it is built from parsed heads and freed.
 */
#ifndef HALTON_EXCHANGE_PRIV_H
#define HALTON_EXCHANGE_PRIV_H

#include <stdint.h>

#include "halton/exchange.h"
#include "halton/http1.h"

/* Per client connection; outlives its exchanges. */
struct exchange_conn {
	uint64_t id;
	void *data;
	void (*data_free)(void *);
	char client_addr[64];
	int client_port;
	char local_addr[64];
	int local_port;
	/* The CONNECT request's headers (intercepted connections). */
	const char **connect_hdr;
	size_t nconnect;
	char *connect_mem;
};

struct exchange {
	struct exchange_conn *conn;
	char *host;
	int port;
	const char *method;
	const char *path;
	const char **req_hdr; /* name, value, name, value, ... */
	size_t nreq;
	char *req_mem; /* one allocation behind the above */
	const char **res_hdr;
	size_t nres;
	char *res_mem;
	int status;
	uint64_t started_us;
	uint64_t first_byte_us;
	uint64_t ended_us;
	int64_t started_ms;
	uint64_t bytes_up;
	uint64_t bytes_down;
	void *data;
};

/* A new exchange for a parsed request head; path is the origin-form
 * target (for absolute-form requests, the part after the authority). */
struct exchange *exchange_new(struct exchange_conn *, const char *, int,
    const struct http1_request *, const char *, size_t);
/* Records the final response head (replacing a previous one). */
void exchange_set_response(struct exchange *, const struct http1_response *);
void exchange_free(struct exchange *);
/* Frees the observer's per-connection data. */
void exchange_conn_clear(struct exchange_conn *);
/* Keeps a copy of the CONNECT request's headers. */
void exchange_conn_set_connect(
    struct exchange_conn *, const struct http1_request *);
/* Frees everything the connection holds (observer data included). */
void exchange_conn_free(struct exchange_conn *);

#endif
