/*
 * exchange: the engine's record of one request/response pair, and the
 * read-only accessors observers use.  Heads are copied once into one
 * allocation each, so observers can read them for the whole exchange.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halton/util.h"
#include "halton/xmalloc.h"
#include "exchange-priv.h"

/* Copies n header fields (and up to two leading strings) into one block:
 * an array of 2n pointers followed by the NUL-terminated strings. */
static char *
copy_fields(const struct http1_header *h, size_t n, const char *s1,
    size_t s1len, const char *s2, size_t s2len, const char ***arr,
    const char **o1, const char **o2)
{
	size_t i, size = s1len + 1 + s2len + 1;
	const char **v;
	char *mem, *p;

	for (i = 0; i < n; i++)
		size += h[i].name_len + 1 + h[i].value_len + 1;
	mem = xmalloc(2 * n * sizeof(*v) + size);
	v = (const char **)(void *)mem;
	p = mem + 2 * n * sizeof(*v);
	*o1 = p;
	memcpy(p, s1, s1len);
	p += s1len;
	*p++ = '\0';
	*o2 = p;
	memcpy(p, s2, s2len);
	p += s2len;
	*p++ = '\0';
	for (i = 0; i < n; i++) {
		v[2 * i] = p;
		memcpy(p, h[i].name, h[i].name_len);
		p += h[i].name_len;
		*p++ = '\0';
		v[2 * i + 1] = p;
		memcpy(p, h[i].value, h[i].value_len);
		p += h[i].value_len;
		*p++ = '\0';
	}
	*arr = v;
	return mem;
}

struct exchange *
exchange_new(struct exchange_conn *conn, const char *host, int port,
    const struct http1_request *req, const char *path, size_t path_len)
{
	struct exchange *ex = xcalloc(1, sizeof(*ex));

	ex->conn = conn;
	ex->host = xstrdup(host);
	str_lower(ex->host);
	ex->port = port;
	ex->req_mem = copy_fields(req->headers, req->nheaders, req->method,
	    req->method_len, path, path_len, &ex->req_hdr, &ex->method,
	    &ex->path);
	ex->nreq = req->nheaders;
	ex->started_us = time_mono_us();
	ex->started_ms = time_now_ms();
	return ex;
}

void
exchange_set_response(struct exchange *ex, const struct http1_response *res)
{
	const char *a, *b;

	free(ex->res_mem);
	ex->res_mem = copy_fields(
	    res->headers, res->nheaders, "", 0, "", 0, &ex->res_hdr, &a, &b);
	ex->nres = res->nheaders;
	ex->status = res->status;
}

void
exchange_free(struct exchange *ex)
{
	if (ex == NULL)
		return;
	free(ex->host);
	free(ex->req_mem);
	free(ex->res_mem);
	free(ex);
}

void
exchange_conn_clear(struct exchange_conn *conn)
{
	if (conn->data != NULL && conn->data_free != NULL)
		conn->data_free(conn->data);
	conn->data = NULL;
	conn->data_free = NULL;
}

void
exchange_conn_set_connect(
    struct exchange_conn *conn, const struct http1_request *req)
{
	const char *a, *b;

	free(conn->connect_mem);
	conn->connect_mem = copy_fields(req->headers, req->nheaders, "", 0, "",
	    0, &conn->connect_hdr, &a, &b);
	conn->nconnect = req->nheaders;
}

void
exchange_conn_free(struct exchange_conn *conn)
{
	exchange_conn_clear(conn);
	free(conn->connect_mem);
	conn->connect_mem = NULL;
	conn->connect_hdr = NULL;
	conn->nconnect = 0;
}

static const char *
find(const char **v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (str_casecmp(v[2 * i], name) == 0)
			return v[2 * i + 1];
	return NULL;
}

const char *
exchange_host(const struct exchange *ex)
{
	return ex->host;
}

int
exchange_port(const struct exchange *ex)
{
	return ex->port;
}

const char *
exchange_method(const struct exchange *ex)
{
	return ex->method;
}

const char *
exchange_path(const struct exchange *ex)
{
	return ex->path;
}

const char *
exchange_request_header(const struct exchange *ex, const char *name)
{
	return find(ex->req_hdr, ex->nreq, name);
}

int
exchange_request_header_at(
    const struct exchange *ex, size_t i, const char **name, const char **value)
{
	if (i >= ex->nreq)
		return -1;
	*name = ex->req_hdr[2 * i];
	*value = ex->req_hdr[2 * i + 1];
	return 0;
}

int
exchange_status(const struct exchange *ex)
{
	return ex->status;
}

const char *
exchange_response_header(const struct exchange *ex, const char *name)
{
	if (ex->res_mem == NULL)
		return NULL;
	return find(ex->res_hdr, ex->nres, name);
}

int
exchange_response_header_at(
    const struct exchange *ex, size_t i, const char **name, const char **value)
{
	if (ex->res_mem == NULL || i >= ex->nres)
		return -1;
	*name = ex->res_hdr[2 * i];
	*value = ex->res_hdr[2 * i + 1];
	return 0;
}

const char *
exchange_connect_header(const struct exchange *ex, const char *name)
{
	if (ex->conn->connect_mem == NULL)
		return NULL;
	return find(ex->conn->connect_hdr, ex->conn->nconnect, name);
}

uint64_t
exchange_started_us(const struct exchange *ex)
{
	return ex->started_us;
}

uint64_t
exchange_first_byte_us(const struct exchange *ex)
{
	return ex->first_byte_us;
}

int64_t
exchange_started_ms(const struct exchange *ex)
{
	return ex->started_ms;
}

uint64_t
exchange_bytes_up(const struct exchange *ex)
{
	return ex->bytes_up;
}

uint64_t
exchange_bytes_down(const struct exchange *ex)
{
	return ex->bytes_down;
}

int
exchange_client_endpoint(const struct exchange *ex, char *caddr,
    size_t caddrlen, int *cport, char *laddr, size_t laddrlen, int *lport)
{
	if (caddr != NULL && caddrlen > 0)
		snprintf(caddr, caddrlen, "%s", ex->conn->client_addr);
	if (cport != NULL)
		*cport = ex->conn->client_port;
	if (laddr != NULL && laddrlen > 0)
		snprintf(laddr, laddrlen, "%s", ex->conn->local_addr);
	if (lport != NULL)
		*lport = ex->conn->local_port;
	return ex->conn->client_addr[0] != '\0' ? 0 : -1;
}

uint64_t
exchange_conn_id(const struct exchange *ex)
{
	return ex->conn->id;
}

void *
exchange_conn_data(const struct exchange *ex)
{
	return ex->conn->data;
}

void
exchange_set_conn_data(struct exchange *ex, void *data, void (*fn)(void *))
{
	exchange_conn_clear(ex->conn);
	ex->conn->data = data;
	ex->conn->data_free = fn;
}

void *
exchange_data(const struct exchange *ex)
{
	return ex->data;
}

void
exchange_set_data(struct exchange *ex, void *data)
{
	ex->data = data;
}
