/*
 * proxy: listener, CONNECT handling, blind tunnels, TLS interception and
 * the HTTP/1.1 relay.
 *
 * A connection (struct conn) has two halves, the client stream and the
 * upstream stream (stream.c: a socket, plain or TLS, with an input and an
 * output evbuffer), and exactly one close function (conn_close) that every
 * error path ends in.  Bytes are moved between the halves with
 * evbuffer_remove_buffer (no copy of the payload beyond the streams' own);
 * the HTTP parser only looks at them to find message boundaries and to
 * hand de-chunked payload to the hooks.  Everything a callback queues on a
 * half leaves in one write at the end of the loop's turn.
 *
 * Modes of a connection:
 *   FIRST     plain client, waiting for the first request (CONNECT,
 *             absolute-form http://, or origin-form for the daemon itself)
 *   TUNNEL    blind TCP relay (hosts that are not intercepted)
 *   HTTP      HTTP/1.1 relay: intercepted TLS or absolute-form plain HTTP
 *   LOCAL     answered by the daemon (doctor host over TLS, /healthz)
 *   UPGRADED  after a 101: opaque relay with the upgraded_data hook
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "halton/log.h"
#include "halton/proxy.h"
#include "halton/util.h"
#include "halton/xmalloc.h"
#include "engine-memtrim.h"
#include "exchange-priv.h"
#include "stream.h"

#define HIGH_WATER          (256 * 1024)
#define TIMEOUT_HANDSHAKE_S 15
#define TIMEOUT_CONNECT_S   15
#define TIMEOUT_IDLE_S      120
#define TIMEOUT_STREAM_S    600
#define CLOSE_FLUSH_MAX_S   10
#define POOL_MAX            16 /* idle upstream connections kept */
#define POOL_PER_HOST       4
#define POOL_IDLE_S         30  /* kept at most this long */
#define TRIM_CHURN          8   /* connections/handshakes/exchanges ... */
#define TRIM_AFTER_BURST_MS 250 /* ... then this long quiet: trim */
/* Intercepted connections whose client handshake may run at once; more
 * wait (their CONNECT answered later).  Each handshake in flight holds
 * ~40 KiB of transient buffers, and a burst of a thousand at once leaves
 * the long-lived state of the connections scattered over the heap:
 * 37-44 KiB per held connection instead of 34. */
#define HANDSHAKES_MAX 32 /* each ends within TIMEOUT_HANDSHAKE_S */

enum conn_mode {
	M_FIRST,
	M_TUNNEL,
	M_HTTP,
	M_LOCAL,
	M_UPGRADED,
};

/* The upstream half. */
enum up_state {
	U_NONE,       /* no upstream (yet) */
	U_CONNECTING, /* DNS + TCP (+ TLS handshake) in progress */
	U_PROXY,      /* waiting for the corporate proxy's CONNECT answer */
	U_TLS,        /* TLS handshake after the corporate proxy */
	U_READY,
	U_FAILED, /* up_error says why */
};

/* The request half of the current exchange. */
enum req_state {
	RQ_HEAD, /* waiting for a request head */
	RQ_BODY, /* streaming the request body upstream */
	RQ_DONE, /* request complete; waiting for the response */
};

/* The response half of the current exchange. */
enum res_state {
	RS_IDLE, /* no request outstanding */
	RS_HEAD, /* waiting for the response head */
	RS_BODY, /* streaming the response body to the client */
};

struct connect_to {
	char *host; /* "" = any */
	int port;   /* 0 = any */
	char *host2;
	int port2;
};

/* An idle upstream TLS connection kept for the next client connection to
 * the same host:port: a new client connection then costs one handshake
 * (the client's) instead of two and no upstream connect. */
struct pooled {
	struct proxy *px;
	struct stream *st;
	char *host; /* the name it was verified for (SNI) */
	int port;
	struct pooled *prev, *next;
};

struct proxy {
	struct event_base *base;
	struct evdns_base *dns;
	struct stream_set *streams;
	struct evconnlistener *listener;
	struct event *accept_retry;
	int accept_paused;
	int port;
	int max_connections;
	const struct intercept_list *intercept;
	struct ca *ca;
	SSL_CTX *server_ctx;
	SSL_CTX *client_ctx;
	SSL_CTX *(*ctx_get)(void *, int);
	void *ctx_arg;
	struct connect_to *cto;
	size_t ncto;
	char *uproxy_host;
	int uproxy_port;
	const struct exchange_hooks *hooks;
	void *hooks_arg;
	int (*local)(void *, const char *, const char *, size_t,
	    struct strbuf *, const char **);
	void *local_arg;

	struct pooled *pool; /* newest first */
	size_t npool;
	/* A connection's rs_defer buffer while it is idle: one for all of
	 * them, not one each (held connections would keep them). */
	struct strbuf defer_spare;
	uint64_t pool_reused;

	struct conn *conns;     /* doubly linked */
	struct conn *graveyard; /* closed, freed at the next loop turn */
	struct event *reaper;
	size_t nconns;
	uint64_t next_id;
	uint64_t nexchanges;
	uint64_t started_ms;
	struct event *trim_timer;
	uint64_t last_trim_ms;
	unsigned churn_since_trim;

	size_t nhandshakes;              /* HS_RUNNING connections */
	struct conn *hs_first, *hs_last; /* HS_WAITING, oldest first */
	int hs_admitting;

	int shutting_down;
	struct event *shutdown_timer;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

enum hs_state {
	HS_NONE,
	HS_WAITING, /* on px->hs_first: its CONNECT is answered later */
	HS_RUNNING, /* counted in px->nhandshakes until the handshake ends */
};

struct conn {
	struct proxy *px;
	struct conn *prev, *next;
	enum hs_state hs;
	struct conn *hs_next;
	struct exchange_conn xc;
	enum conn_mode mode;
	int tls;      /* client half speaks TLS */
	int absolute; /* plain HTTP proxying of absolute-form */
	int observe;  /* call the hooks */

	struct stream *cst;
	struct stream *ust;

	char *host; /* the target as the client named it */
	int port;
	char *chost; /* where to connect (after --connect-to) */
	int cport;
	enum up_state up;
	int up_tls;      /* upstream half speaks TLS */
	int up_reusable; /* the last exchange left the upstream clean */
	char *up_error;

	enum req_state rq;
	struct http1_framing rqf;
	uint64_t rq_left;
	struct http1_chunked rq_ch;
	int rq_upgrade;

	enum res_state rs;
	struct http1_framing rsf;
	uint64_t rs_left;
	struct http1_chunked rs_ch;
	int rs_started; /* response bytes reached the client */
	/* The response body hook runs after the bytes were written to the
	 * client (hooks->body_after_write said so at the response head):
	 * the payload waits here meanwhile. */
	int rs_after;
	struct strbuf rs_defer;

	struct exchange *ex;

	int paused_client; /* client reading paused by backpressure */
	int paused_upstream;
	int closing;      /* close once the client output drained */
	int dead;         /* closed; freed by the reaper */
	int upstream_eof; /* deliver the rest without backpressure */
	/* Client sent EOF: 1 = close once upstream has everything, 2 = then
	 * half-close the tunnel's upstream, 3 = half-closed. */
	int drain_upstream;
	uint64_t closing_since;
	struct event *flush_timer;
	uint64_t last_activity;
};

static void conn_close(struct conn *, const char *);
static void handshake_done(struct conn *);
static void idle_trim(struct proxy *);
static void burst_note(struct proxy *);
static void client_read_cb(struct stream *, void *);
static void client_write_cb(struct stream *, void *);
static void client_event_cb(struct stream *, short, void *);
static void upstream_read_cb(struct stream *, void *);
static void upstream_write_cb(struct stream *, void *);
static void upstream_event_cb(struct stream *, short, void *);
static void http_client_input(struct conn *);
static void apply_connect_to(struct conn *);
static void upstream_setup_stream(struct conn *, int);
static void upstream_ready(struct conn *);
static void http_upstream_input(struct conn *);
static void opaque_relay(struct conn *, int);

/* Small writes (SSE events) must leave at once. */
static void
set_nodelay(evutil_socket_t fd)
{
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(
		    fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
set_timeouts(struct stream *st, int read_s, int write_s)
{
	if (st != NULL)
		stream_set_timeouts(st, read_s, write_s);
}

/* Hands the response payload held back by rs_after to the body hook, and
 * wipes it (it may hold a completion). */
static void
deferred_body(struct conn *c)
{
	const struct exchange_hooks *h = c->px->hooks;

	if (c->ex != NULL && h != NULL && h->response_body != NULL)
		h->response_body(
		    c->px->hooks_arg, c->ex, c->rs_defer.data, c->rs_defer.len);
	explicit_zero(c->rs_defer.data, c->rs_defer.len);
	strbuf_clear_keep(&c->rs_defer, 64 * 1024);
}

/* Hands from's buffer (empty, its capacity kept) to to, which has none. */
static void
defer_swap(struct strbuf *to, struct strbuf *from)
{
	*to = *from;
	strbuf_init(from);
}

/* The exchange is over: the connection's deferral buffer becomes the
 * proxy's spare, or is freed if there is one. */
static void
defer_release(struct conn *c)
{
	if (c->px->defer_spare.cap == 0)
		defer_swap(&c->px->defer_spare, &c->rs_defer);
	strbuf_free(&c->rs_defer);
}

/* After relay_body moved response bytes: with rs_after, they are written
 * to the client first, then the body hook sees them, so the meter's work
 * is not between the upstream's bytes and the client. */
static void
body_after_write(struct conn *c)
{
	if (c->rs_defer.len == 0)
		return;
	if (c->cst != NULL && !c->closing)
		(void)stream_flush_now(c->cst);
	deferred_body(c);
}

/* Ends the current exchange: calls the end hook exactly once (when
 * request_head was called) and frees it. */
static void
exchange_end(struct conn *c, const char *error)
{
	struct proxy *px = c->px;
	struct exchange *ex = c->ex;

	if (ex == NULL)
		return;
	if (c->rs_defer.len > 0)
		deferred_body(c); /* the body hook always before the end */
	defer_release(c);
	c->ex = NULL;
	c->rs_after = 0;
	ex->ended_us = time_mono_us();
	px->nexchanges++;
	burst_note(px);
	if (c->observe && px->hooks != NULL && px->hooks->end != NULL)
		px->hooks->end(px->hooks_arg, ex, error);
	if (error != NULL)
		/* The query string may carry an API key (?key=): never
		 * logged. */
		log_debug("conn %llu: %s %s%.*s: %s",
		    (unsigned long long)c->xc.id, ex->method, ex->host,
		    (int)strcspn(ex->path, "?"), ex->path, error);
	exchange_free(ex);
}

static void
pool_drop(struct pooled *p)
{
	struct proxy *px = p->px;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		px->pool = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	px->npool--;
	if (p->st != NULL)
		stream_free(p->st);
	free(p->host);
	free(p);
}

/* A parked connection said something (bytes, EOF, an error or its idle
 * timeout): it is not reusable any more. */
static void
pool_read_cb(struct stream *st, void *arg)
{
	pool_drop(arg);
}

static void
pool_event_cb(struct stream *st, short what, void *arg)
{
	pool_drop(arg);
}

static void
pool_clear(struct proxy *px)
{
	while (px->pool != NULL)
		pool_drop(px->pool);
}

/* Whether p was verified for, and leads to, c's host:port. */
static int
pool_match(const struct pooled *p, const struct conn *c)
{
	return p->port == c->port && strcmp(p->host, c->host) == 0;
}

/* Parks the upstream of c if it is an intercepted TLS connection that
 * finished its last exchange cleanly and holds nothing.  Returns 1 if it
 * was taken (c->ust is then NULL). */
static int
pool_put(struct conn *c)
{
	struct proxy *px = c->px;
	struct pooled *p;
	size_t same = 0;

	if (c->ust == NULL || c->up != U_READY || !c->up_tls ||
	    !c->up_reusable || c->mode != M_HTTP || c->absolute ||
	    c->ex != NULL || c->rs != RS_IDLE || c->rq == RQ_BODY ||
	    px->shutting_down || !stream_is_clean(c->ust))
		return 0;
	for (p = px->pool; p != NULL; p = p->next)
		same += pool_match(p, c);
	if (same >= POOL_PER_HOST)
		return 0;
	if (px->npool >= POOL_MAX) { /* the oldest goes */
		for (p = px->pool; p->next != NULL; p = p->next)
			;
		pool_drop(p);
	}
	p = xcalloc(1, sizeof(*p));
	p->px = px;
	p->st = c->ust;
	p->host = xstrdup(c->host);
	p->port = c->port;
	p->next = px->pool;
	if (px->pool != NULL)
		px->pool->prev = p;
	px->pool = p;
	px->npool++;
	c->ust = NULL;
	stream_setcb(p->st, pool_read_cb, NULL, pool_event_cb, p);
	stream_setwatermark(p->st, EV_WRITE, 0, 0);
	stream_set_timeouts(p->st, POOL_IDLE_S, 0);
	stream_enable(p->st, EV_READ | EV_WRITE);
	return 1;
}

/* Gives c the newest parked connection to its host:port, if any. */
static int
pool_take(struct conn *c)
{
	struct proxy *px = c->px;
	struct pooled *p;

	for (p = px->pool; p != NULL; p = p->next)
		if (pool_match(p, c) && stream_is_clean(p->st))
			break;
	if (p == NULL)
		return 0;
	c->ust = p->st;
	p->st = NULL;
	pool_drop(p);
	c->up_tls = 1;
	apply_connect_to(c);
	px->pool_reused++;
	log_debug("conn %llu: reusing an upstream connection to %s:%d",
	    (unsigned long long)c->xc.id, c->host, c->port);
	upstream_setup_stream(c, TIMEOUT_STREAM_S);
	upstream_ready(c);
	return 1;
}

static void
conn_free_upstream(struct conn *c)
{
	if (c->ust != NULL && !pool_put(c)) {
		stream_free(c->ust);
		c->ust = NULL;
	}
	c->paused_client = 0;
	if (c->up != U_FAILED)
		c->up = U_NONE;
}

/* The one close function: ends the exchange with cause (if one is
 * active), frees both halves and the connection, and resumes accepting
 * if it was paused at the limit. */
static void
conn_close(struct conn *c, const char *cause)
{
	struct proxy *px = c->px;

	if (c->dead)
		return;
	c->dead = 1;
	c->closing = 1;
	handshake_done(c);
	exchange_end(c, cause != NULL ? cause : "connection closed");
	conn_free_upstream(c);
	if (c->cst != NULL)
		stream_free(c->cst);
	if (c->flush_timer != NULL)
		event_free(c->flush_timer);
	c->cst = NULL;
	c->flush_timer = NULL;
	exchange_conn_free(&c->xc);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	px->nconns--;
	/* Callers up the stack may still look at c (c->closing): free it
	 * at the next turn of the loop. */
	c->next = px->graveyard;
	px->graveyard = c;
	event_active(px->reaper, EV_TIMEOUT, 1);
	if (px->accept_paused && !px->shutting_down &&
	    px->nconns < (size_t)px->max_connections) {
		px->accept_paused = 0;
		evconnlistener_enable(px->listener);
	}
	if (px->nconns == 0)
		idle_trim(px);
	if (px->shutting_down && px->nconns == 0 && px->shutdown_done) {
		void (*done)(void *) = px->shutdown_done;

		px->shutdown_done = NULL;
		done(px->shutdown_arg);
	}
}

static void
reap(struct proxy *px)
{
	struct conn *c;

	while ((c = px->graveyard) != NULL) {
		px->graveyard = c->next;
		strbuf_free(&c->rs_defer);
		free(c->host);
		free(c->chost);
		free(c->up_error);
		free(c);
	}
}

/* Idle after a burst: hand freed memory back (at most every 200 ms; a
 * timer catches the end of a burst that came sooner).  A burst of
 * connections that stay open also leaves the transient memory of their
 * handshakes and exchanges behind: burst_note() pushes the timer back at
 * each of those, so it trims TRIM_AFTER_BURST_MS after the burst ends. */
static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	if (px->nconns == 0 || px->churn_since_trim >= TRIM_CHURN) {
		px->last_trim_ms = time_mono_ms();
		px->churn_since_trim = 0;
		engine_memtrim();
	}
}

static void
burst_note(struct proxy *px)
{
	struct timeval tv = {0, TRIM_AFTER_BURST_MS * 1000};

	if (++px->churn_since_trim >= TRIM_CHURN && px->trim_timer != NULL)
		evtimer_add(px->trim_timer, &tv);
}

static void
idle_trim(struct proxy *px)
{
	uint64_t now = time_mono_ms();
	struct timeval tv = {0, 200 * 1000};

	if (now - px->last_trim_ms >= 200) {
		px->last_trim_ms = now;
		engine_memtrim();
	} else if (px->trim_timer != NULL &&
	    !evtimer_pending(px->trim_timer, NULL))
		evtimer_add(px->trim_timer, &tv);
}

static void
reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	reap(arg);
}

/* Whether everything queued for the client has left the process. */
static int
client_flushed(struct conn *c)
{
	return stream_pending(c->cst) == 0;
}

static void
flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct timeval tv = {0, 50 * 1000};

	if (client_flushed(c) ||
	    time_mono_ms() - c->closing_since > CLOSE_FLUSH_MAX_S * 1000) {
		conn_close(c, NULL);
		return;
	}
	evtimer_add(c->flush_timer, &tv);
}

/* Stops reading from both halves, drops the upstream and closes the
 * connection once the client has received what is queued for it. */
static void
conn_close_after_flush(struct conn *c)
{
	struct timeval tv = {0, 50 * 1000};

	if (c->closing || c->dead)
		return;
	c->closing = 1;
	c->closing_since = time_mono_ms();
	conn_free_upstream(c);
	stream_disable(c->cst, EV_READ);
	stream_enable(c->cst, EV_WRITE);
	if (client_flushed(c)) {
		conn_close(c, NULL);
		return;
	}
	c->flush_timer = evtimer_new(c->px->base, flush_timer_cb, c);
	evtimer_add(c->flush_timer, &tv);
}

static const char *
status_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Error";
	}
}

/* Queues a complete response generated by the daemon. */
static void
send_response(struct conn *c, int status, const char *ctype, const char *body,
    int keep_alive)
{
	struct evbuffer *out = stream_output(c->cst);
	size_t len = strlen(body);

	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nConnection: %s\r\n\r\n",
	    status, status_reason(status), ctype, len,
	    keep_alive ? "keep-alive" : "close");
	evbuffer_add(out, body, len);
}

/* Answers an error and closes the connection once it is sent. */
static void
fail_response(struct conn *c, int status, const char *body)
{
	if (c->dead)
		return;
	if (!c->rs_started && !c->closing)
		send_response(c, status, "text/plain; charset=utf-8", body, 0);
	conn_close_after_flush(c);
}

static void
json_status(struct conn *c, struct strbuf *sb, int doctor)
{
	struct proxy *px = c->px;

	strbuf_addf(sb,
	    "{\"status\":\"ok\",\"version\":\"%s\",\"pid\":%ld,"
	    "\"uptime_s\":%llu,\"connections\":%zu,\"exchanges\":%llu,"
	    "\"upstream_idle\":%zu,\"upstream_reused\":%llu",
	    HALTON_VERSION, (long)getpid(),
	    (unsigned long long)((time_mono_ms() - px->started_ms) / 1000),
	    px->nconns, (unsigned long long)px->nexchanges, px->npool,
	    (unsigned long long)px->pool_reused);
	if (doctor)
		strbuf_addf(sb, ",\"host\":\"%s\",\"intercepted\":true",
		    INTERCEPT_DOCTOR_HOST);
	strbuf_adds(sb, "}\n");
}

/* Answers a request addressed to the daemon itself (origin-form on the
 * listener, or anything sent to the doctor host) whose head is the first
 * head_len bytes of the client input; consumes that head.  Returns 0 to
 * keep the connection, -1 when it is closing. */
static int
local_answer(struct conn *c, const struct http1_request *req, size_t head_len,
    int doctor)
{
	struct http1_framing f;
	struct strbuf sb;
	const char *ctype = "application/json";
	int keep, status = 200;

	if (http1_request_framing(req, &f) != 0) {
		fail_response(c, 400, "halton-meter: malformed request\n");
		return -1;
	}
	/* Local endpoints take no body; rather than draining one, answer
	 * and close. */
	keep =
	    f.keep_alive && f.body == HTTP1_BODY_NONE && !c->px->shutting_down;
	strbuf_init(&sb);
	if (doctor ||
	    (req->target_len == 8 && memcmp(req->target, "/healthz", 8) == 0)) {
		if (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0)
			json_status(c, &sb, doctor);
		else {
			strbuf_adds(
			    &sb, "{\"error\":\"method not allowed\"}\n");
			status = 405;
			keep = 0;
		}
	} else if (c->px->local != NULL &&
	    config_addr_is_loopback(c->xc.client_addr)) {
		char method[16];

		snprintf(method, sizeof(method), "%.*s",
		    (int)(req->method_len < 15 ? req->method_len : 15),
		    req->method);
		status = c->px->local(c->px->local_arg, method, req->target,
		    req->target_len, &sb, &ctype);
		if (status == 0) {
			strbuf_reset(&sb);
			strbuf_adds(&sb, "halton-meter: not found\n");
			ctype = "text/plain; charset=utf-8";
			status = 404;
		}
	} else {
		strbuf_adds(&sb, "halton-meter: not found\n");
		ctype = "text/plain; charset=utf-8";
		status = 404;
	}
	/* req points into the input: it is dead from here on. */
	evbuffer_drain(stream_input(c->cst), head_len);
	send_response(c, status, ctype, sb.data != NULL ? sb.data : "", keep);
	strbuf_free(&sb);
	if (!keep) {
		conn_close_after_flush(c);
		return -1;
	}
	return 0;
}

/*
 * Upstream connection.
 */

/* The server (client-facing) or client (upstream) TLS context, made on
 * first use when the daemon gave a getter; NULL if it cannot be made
 * (SSL_new(NULL) fails, and the connection with it). */
static SSL_CTX *
proxy_ctx(struct proxy *px, int server)
{
	SSL_CTX **p = server ? &px->server_ctx : &px->client_ctx;

	if (*p == NULL && px->ctx_get != NULL)
		*p = px->ctx_get(px->ctx_arg, server);
	return *p;
}

/* Applies --connect-to: where to connect for host:port. */
static void
apply_connect_to(struct conn *c)
{
	struct proxy *px = c->px;
	size_t i;

	free(c->chost);
	c->chost = xstrdup(c->host);
	c->cport = c->port;
	for (i = 0; i < px->ncto; i++) {
		struct connect_to *t = &px->cto[i];

		if ((t->host[0] == '\0' ||
		        str_casecmp(t->host, c->host) == 0) &&
		    (t->port == 0 || t->port == c->port)) {
			if (t->host2[0] != '\0') {
				free(c->chost);
				c->chost = xstrdup(t->host2);
			}
			if (t->port2 != 0)
				c->cport = t->port2;
			return;
		}
	}
}

static void
upstream_failed(struct conn *c, const char *cause)
{
	free(c->up_error);
	c->up_error = xstrdup(cause);
	conn_free_upstream(c);
	c->up = U_FAILED;
	log_warnx("upstream %s:%d: %s", c->host, c->port, cause);
}

static void
upstream_setup_stream(struct conn *c, int timeout_s)
{
	stream_setcb(
	    c->ust, upstream_read_cb, upstream_write_cb, upstream_event_cb, c);
	stream_setwatermark(c->ust, EV_READ, 0, HIGH_WATER);
	set_timeouts(c->ust, timeout_s, timeout_s);
	stream_enable(c->ust, EV_READ | EV_WRITE);
}

/* Starts TLS on the connected upstream stream for c->host: SNI,
 * hostname verification.  Returns 0 or -1. */
static int
upstream_start_tls(struct conn *c)
{
	SSL *ssl;

	if ((ssl = SSL_new(proxy_ctx(c->px, 0))) == NULL)
		return -1;
	if (tls_client_set_host(ssl, c->host) != 0) {
		SSL_free(ssl);
		return -1;
	}
	if (stream_start_tls(c->ust, ssl, 0) != 0) {
		SSL_free(ssl);
		return -1;
	}
	c->up = U_TLS;
	upstream_setup_stream(c, TIMEOUT_HANDSHAKE_S);
	return 0;
}

/* Starts connecting the upstream half: directly or through the corporate
 * proxy's CONNECT; TLS starts once TCP (and the proxy) are through. */
static void
upstream_connect(struct conn *c, int tls)
{
	struct proxy *px = c->px;
	const char *h;
	int p;

	conn_free_upstream(c);
	c->up = U_CONNECTING;
	c->up_tls = tls;
	apply_connect_to(c);
	h = c->chost;
	p = c->cport;
	if (px->uproxy_host != NULL) {
		h = px->uproxy_host;
		p = px->uproxy_port;
	}
	/* errno holds the connect error in the event callback. */
	c->ust = stream_new(px->streams, -1);
	if (c->ust == NULL) {
		upstream_failed(c, "out of resources");
		return;
	}
	upstream_setup_stream(c, TIMEOUT_CONNECT_S);
	if (stream_connect_hostname(c->ust, px->dns, AF_UNSPEC, h, p) != 0) {
		upstream_failed(c, "cannot connect");
		return;
	}
}

/* The upstream half is usable: deliver what waited for it. */
static void
upstream_ready(struct conn *c)
{
	c->up = U_READY;
	c->up_reusable = 1;
	set_timeouts(c->ust, 0, TIMEOUT_STREAM_S);
	if (c->mode == M_TUNNEL) {
		/* Only now does the tunnel client learn it is connected. */
		evbuffer_add_printf(stream_output(c->cst),
		    "HTTP/1.1 200 Connection established\r\n\r\n");
		set_timeouts(c->cst, TIMEOUT_STREAM_S, TIMEOUT_STREAM_S);
		set_timeouts(c->ust, TIMEOUT_STREAM_S, TIMEOUT_STREAM_S);
		stream_enable(c->cst, EV_READ);
		opaque_relay(c, 1);
		return;
	}
	if (c->mode == M_HTTP)
		http_client_input(c);
}

static void
upstream_report_failure(struct conn *c)
{
	char body[700];

	if (c->mode == M_TUNNEL) {
		snprintf(body, sizeof(body),
		    "halton-meter: cannot reach "
		    "%s:%d: %s\n",
		    c->host, c->port, c->up_error);
		fail_response(c, 502, body);
	} else
		http_client_input(c);
}

/* Reads the corporate proxy's answer to our CONNECT. */
static void
upstream_proxy_answer(struct conn *c)
{
	struct evbuffer *in = stream_input(c->ust);
	struct http1_response res;
	size_t len = evbuffer_get_length(in);
	char buf[128];
	int n;

	if (len > HTTP1_MAX_HEAD)
		len = HTTP1_MAX_HEAD;
	n = http1_parse_response(
	    (const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, &res);
	if (n == HTTP1_NEED_MORE)
		return;
	if (n < 0 || res.status / 100 != 2) {
		snprintf(buf, sizeof(buf),
		    "upstream proxy refused CONNECT "
		    "(%d)",
		    n < 0 ? 0 : res.status);
		upstream_failed(c, buf);
		upstream_report_failure(c);
		return;
	}
	evbuffer_drain(in, (size_t)n);
	if (!c->up_tls) {
		upstream_ready(c);
		return;
	}
	if (evbuffer_get_length(in) != 0 || upstream_start_tls(c) != 0) {
		upstream_failed(c,
		    "cannot start TLS through the upstream "
		    "proxy");
		upstream_report_failure(c);
	}
}

static void
upstream_connected(struct conn *c)
{
	struct proxy *px = c->px;

	set_nodelay(stream_fd(c->ust));
	if (px->uproxy_host != NULL) {
		c->up = U_PROXY;
		evbuffer_add_printf(stream_output(c->ust),
		    "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", c->chost,
		    c->cport, c->chost, c->cport);
		return;
	}
	if (c->up_tls) {
		if (upstream_start_tls(c) != 0) {
			upstream_failed(c, "cannot start TLS");
			upstream_report_failure(c);
		}
		return;
	}
	upstream_ready(c);
}

/* A failed connect or handshake, described for the 502 body.  err is the
 * errno saved on entry to the event callback. */
static void
upstream_error_cause(struct conn *c, short what, int err, char *buf, size_t len)
{
	struct stream *st = c->ust;
	SSL *ssl = NULL;
	int dnserr;

	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(buf, len, "timed out %s %s:%d",
		    c->up == U_TLS ? "in the TLS handshake with"
		                   : "connecting to",
		    c->chost, c->cport);
		return;
	}
	if (c->up == U_TLS && (ssl = stream_ssl(st))) {
		/* The stream reports its failure with OpenSSL's error queue
		 * as the failing call left it. */
		tls_client_failure(ssl, buf, len);
		ERR_clear_error();
		return;
	}
	if ((dnserr = stream_dns_error(st)) != 0)
		snprintf(buf, len, "cannot resolve %s: %s", c->chost,
		    evutil_gai_strerror(dnserr));
	else if (what & BEV_EVENT_EOF)
		snprintf(buf, len, "connection closed by %s",
		    c->up == U_PROXY ? "the upstream proxy" : "the server");
	else if (err != 0)
		snprintf(buf, len, "%s", strerror(err));
	else
		snprintf(buf, len, "connection failed");
}

static void
upstream_event_cb(struct stream *st, short what, void *arg)
{
	struct conn *c = arg;
	int err = errno;
	char cause[512];

	if (c->dead)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		/* A TLS stream reports CONNECTED after its handshake; a
		 * plain one after TCP. */
		if (c->up == U_TLS)
			upstream_ready(c);
		else
			upstream_connected(c);
		return;
	}
	if (c->up != U_READY) {
		/* Connect, proxy CONNECT or handshake failed. */
		upstream_error_cause(c, what, err, cause, sizeof(cause));
		upstream_failed(c, cause);
		upstream_report_failure(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->mode == M_TUNNEL || c->mode == M_UPGRADED) {
			if (time_mono_ms() - c->last_activity <
			    TIMEOUT_STREAM_S * 1000ULL) {
				stream_enable(st, EV_READ | EV_WRITE);
				return;
			}
			conn_close(c, "idle");
			return;
		}
		if (c->rs == RS_IDLE) {
			stream_enable(st, EV_READ | EV_WRITE);
			return;
		}
		exchange_end(c, "upstream: timeout");
		fail_response(c, 504, "halton-meter: upstream timed out\n");
		return;
	}
	/* EOF or error on a ready upstream. */
	if (what & BEV_EVENT_EOF) {
		c->upstream_eof = 1;
		/* Deliver what is still buffered. */
		if (c->mode == M_HTTP)
			http_upstream_input(c);
		else
			opaque_relay(c, 0);
		if (c->closing || c->ust == NULL)
			return;
		if (c->mode == M_HTTP && c->rs == RS_BODY &&
		    c->rsf.body == HTTP1_BODY_CLOSE) {
			/* A close-delimited body ends here: success. */
			exchange_end(c, NULL);
			conn_close_after_flush(c);
			return;
		}
		if (c->mode == M_UPGRADED)
			exchange_end(c, NULL);
		if (c->mode == M_HTTP && c->ex != NULL) {
			exchange_end(c, "upstream: connection closed");
			/* Never fake success: the client sees a close. */
			conn_close(c, NULL);
			return;
		}
		conn_close_after_flush(c);
		return;
	}
	upstream_error_cause(c, what, err, cause, sizeof(cause));
	log_debug("conn %llu: upstream %s: %s", (unsigned long long)c->xc.id,
	    c->host, cause);
	exchange_end(c, "upstream: reset");
	conn_close(c, NULL);
}

/*
 * Relaying.
 */

/* Pauses reading from the source half while the destination's output is
 * above the high-water mark; the destination's write callback resumes it.
 * Returns 1 if paused. */
static int
backpressure(struct conn *c, int to_upstream)
{
	struct stream *dst = to_upstream ? c->ust : c->cst;
	struct stream *src = to_upstream ? c->cst : c->ust;

	if (!to_upstream && c->upstream_eof)
		return 0;
	if (evbuffer_get_length(stream_output(dst)) < HIGH_WATER)
		return 0;
	stream_disable(src, EV_READ);
	stream_setwatermark(dst, EV_WRITE, HIGH_WATER / 2, 0);
	if (to_upstream)
		c->paused_client = 1;
	else
		c->paused_upstream = 1;
	return 1;
}

/* Moves everything readable from one half to the other (tunnels and
 * upgraded connections). */
static void
opaque_relay(struct conn *c, int to_upstream)
{
	struct stream *src = to_upstream ? c->cst : c->ust;
	struct stream *dst = to_upstream ? c->ust : c->cst;
	struct proxy *px = c->px;
	struct evbuffer *in;
	struct evbuffer_iovec v[8];
	int i, n;

	if (src == NULL || dst == NULL)
		return;
	in = stream_input(src);
	if (c->mode == M_UPGRADED && c->ex != NULL && c->observe &&
	    px->hooks != NULL && px->hooks->upgraded_data != NULL) {
		n = evbuffer_peek(in, -1, NULL, v, 8);
		for (i = 0; i < n && i < 8; i++)
			px->hooks->upgraded_data(px->hooks_arg, c->ex,
			    to_upstream, v[i].iov_base, v[i].iov_len);
		if (n > 8) {
			/* Rare: hand the rest over in one piece. */
			size_t done = 0;
			for (i = 0; i < 8; i++)
				done += v[i].iov_len;
			size_t rest = evbuffer_get_length(in) - done;
			unsigned char *p = evbuffer_pullup(in, -1);
			px->hooks->upgraded_data(
			    px->hooks_arg, c->ex, to_upstream, p + done, rest);
		}
	}
	if (c->ex != NULL) {
		if (to_upstream)
			c->ex->bytes_up += evbuffer_get_length(in);
		else
			c->ex->bytes_down += evbuffer_get_length(in);
	}
	evbuffer_remove_buffer(in, stream_output(dst), evbuffer_get_length(in));
	backpressure(c, to_upstream);
}

typedef void (*body_hook_fn)(void *, struct exchange *, const void *, size_t);

/* The body hook of one direction, or NULL when nobody observes it. */
static body_hook_fn
body_hook(const struct conn *c, int request)
{
	const struct exchange_hooks *h = c->px->hooks;

	if (!c->observe || h == NULL)
		return NULL;
	return request ? h->request_body : h->response_body;
}

/* Gives body bytes of one direction to its hook, or keeps response bytes
 * for after the client's write (rs_after). */
static void
give_body(struct conn *c, int request, const void *data, size_t len)
{
	body_hook_fn fn = body_hook(c, request);

	if (fn == NULL)
		return;
	if (!request && c->rs_after) {
		if (c->rs_defer.cap == 0)
			defer_swap(&c->rs_defer, &c->px->defer_spare);
		strbuf_add(&c->rs_defer, data, len);
	} else
		fn(c->px->hooks_arg, c->ex, data, len);
}

static void
hook_body(struct conn *c, struct evbuffer *buf, size_t n, int request)
{
	struct evbuffer_iovec v[16];
	struct evbuffer_ptr pos;
	int i, k;

	if (request)
		c->ex->bytes_up += n;
	else
		c->ex->bytes_down += n;
	if (body_hook(c, request) == NULL)
		return;
	evbuffer_ptr_set(buf, &pos, 0, EVBUFFER_PTR_SET);
	while (n > 0) {
		k = evbuffer_peek(buf, (ev_ssize_t)n, &pos, v, 16);
		if (k <= 0)
			break;
		for (i = 0; i < k && i < 16 && n > 0; i++) {
			size_t len = v[i].iov_len < n ? v[i].iov_len : n;

			give_body(c, request, v[i].iov_base, len);
			n -= len;
			evbuffer_ptr_set(buf, &pos, len, EVBUFFER_PTR_ADD);
		}
	}
}

/* Moves body bytes of one message from src to dst according to its
 * framing, calling the body hook with the de-chunked payload.  Returns 1
 * when the body is complete, 0 when more is needed (or backpressure
 * paused it), -1 on malformed chunked framing. */
static int
relay_body(struct conn *c, int request)
{
	struct stream *src = request ? c->cst : c->ust;
	struct stream *dst = request ? c->ust : c->cst;
	struct http1_framing *f = request ? &c->rqf : &c->rsf;
	uint64_t *left = request ? &c->rq_left : &c->rs_left;
	struct http1_chunked *ch = request ? &c->rq_ch : &c->rs_ch;
	struct evbuffer *in = stream_input(src);
	struct evbuffer *out = stream_output(dst);
	struct evbuffer_iovec v;
	size_t len, n, off, dlen;
	long k;

	for (;;) {
		if (f->body == HTTP1_BODY_NONE)
			return 1;
		if (f->body == HTTP1_BODY_LENGTH && *left == 0)
			return 1;
		if (f->body == HTTP1_BODY_CHUNKED && http1_chunked_done(ch))
			return 1;
		if ((len = evbuffer_get_length(in)) == 0)
			return 0;
		if (backpressure(c, request))
			return 0;
		switch (f->body) {
		case HTTP1_BODY_LENGTH:
			n = (uint64_t)len < *left ? len : (size_t)*left;
			hook_body(c, in, n, request);
			evbuffer_remove_buffer(in, out, n);
			*left -= n;
			break;
		case HTTP1_BODY_CLOSE:
			hook_body(c, in, len, request);
			evbuffer_remove_buffer(in, out, len);
			break;
		case HTTP1_BODY_CHUNKED:
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				return 0;
			k = http1_chunked_feed(
			    ch, v.iov_base, v.iov_len, &off, &dlen);
			if (k < 0)
				return -1;
			if (dlen > 0) {
				give_body(
				    c, request, (char *)v.iov_base + off, dlen);
				if (request)
					c->ex->bytes_up += dlen;
				else
					c->ex->bytes_down += dlen;
			}
			evbuffer_remove_buffer(in, out, (size_t)k);
			break;
		default:
			return 1;
		}
	}
}

/* Parses an absolute-form http:// target into host, port and the
 * origin-form rest.  Returns 0 or -1. */
static int
parse_absolute(const char *t, size_t len, char **host, int *port,
    const char **path, size_t *path_len)
{
	const char *p, *end = t + len, *hs, *he, *colon = NULL;
	long long v;
	char num[8];

	if (len < 8 || str_ncasecmp(t, "http://", 7) != 0)
		return -1;
	hs = t + 7;
	for (p = hs; p < end && *p != '/' && *p != '?'; p++)
		;
	he = p;
	if (memchr(hs, '@', (size_t)(he - hs)) != NULL)
		return -1;
	if (hs < he && *hs == '[') {
		const char *rb = memchr(hs, ']', (size_t)(he - hs));

		if (rb == NULL)
			return -1;
		if (rb + 1 < he && rb[1] == ':')
			colon = rb + 1;
		else if (rb + 1 != he)
			return -1;
		*host = xstrndup(hs + 1, (size_t)(rb - hs - 1));
	} else {
		colon = memchr(hs, ':', (size_t)(he - hs));
		*host = xstrndup(hs, (size_t)((colon ? colon : he) - hs));
	}
	*port = 80;
	if (colon != NULL && colon + 1 < he) {
		if ((size_t)(he - colon - 1) >= sizeof(num)) {
			free(*host);
			return -1;
		}
		memcpy(num, colon + 1, (size_t)(he - colon - 1));
		num[he - colon - 1] = '\0';
		if (str_to_ll(num, 1, 65535, &v) != 0) {
			free(*host);
			return -1;
		}
		*port = (int)v;
	}
	if ((*host)[0] == '\0') {
		free(*host);
		return -1;
	}
	*path = he;
	*path_len = (size_t)(end - he);
	return 0;
}

/* The response is complete: end the exchange and either wait for the next
 * request or close. */
static void
response_done(struct conn *c)
{
	int keep = c->rqf.keep_alive && c->rsf.keep_alive && c->rq == RQ_DONE &&
	    !c->px->shutting_down;

	exchange_end(c, NULL);
	c->rs = RS_IDLE;
	c->rs_started = 0;
	/* The upstream may carry another exchange (here or, parked, for
	 * another client connection) if it said keep-alive. */
	c->up_reusable = c->rsf.keep_alive && c->rsf.body != HTTP1_BODY_CLOSE;
	if (!keep) {
		conn_close_after_flush(c);
		return;
	}
	c->rq = RQ_HEAD;
	set_timeouts(c->cst, TIMEOUT_IDLE_S, TIMEOUT_STREAM_S);
	set_timeouts(c->ust, 0, TIMEOUT_STREAM_S);
}

static void
send_upstream_failure(struct conn *c, const struct http1_request *req,
    const char *path, size_t path_len)
{
	struct proxy *px = c->px;
	char body[900], cause[600];

	c->ex = exchange_new(&c->xc, c->host, c->port, req, path, path_len);
	if (c->observe && px->hooks != NULL && px->hooks->request_head)
		px->hooks->request_head(px->hooks_arg, c->ex);
	snprintf(cause, sizeof(cause), "upstream: %s", c->up_error);
	exchange_end(c, cause);
	snprintf(body, sizeof(body), "halton-meter: upstream %s:%d: %s\n",
	    c->host, c->port, c->up_error);
	fail_response(c, 502, body);
}

/* Handles one request head at the front of the client input in HTTP mode
 * (intercepted or absolute-form).  Returns 1 to go on, 0 to wait, -1 if
 * the connection closed or is closing. */
static int
http_request_head(struct conn *c)
{
	struct proxy *px = c->px;
	struct evbuffer *in = stream_input(c->cst);
	struct http1_request req;
	const char *path, *buf;
	size_t len, path_len;
	char *host = NULL;
	int n, port = 0;

	len = evbuffer_get_length(in);
	if (len == 0)
		return 0;
	if (len > HTTP1_MAX_HEAD)
		len = HTTP1_MAX_HEAD;
	buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	n = http1_parse_request(buf, len, &req);
	if (n == HTTP1_NEED_MORE)
		return 0;
	if (n == HTTP1_TOO_LARGE) {
		fail_response(c, 431, "halton-meter: request head too large\n");
		return -1;
	}
	if (n < 0) {
		fail_response(c, 400, "halton-meter: malformed request\n");
		return -1;
	}
	if (c->mode == M_LOCAL)
		return local_answer(c, &req, (size_t)n, 1) == 0 ? 1 : -1;
	if (c->absolute) {
		if (req.target_len > 0 && req.target[0] == '/')
			return local_answer(c, &req, (size_t)n, 0) == 0 ? 1
			                                                : -1;
		if (parse_absolute(req.target, req.target_len, &host, &port,
		        &path, &path_len) != 0) {
			fail_response(c, 400,
			    "halton-meter: only http:// "
			    "absolute-form and CONNECT are proxied\n");
			return -1;
		}
		if (c->host == NULL || str_casecmp(host, c->host) != 0 ||
		    port != c->port) {
			/* Another origin: a new upstream connection. */
			free(c->host);
			c->host = host;
			c->port = port;
			host = NULL;
			free(c->up_error);
			c->up_error = NULL;
			c->up = U_NONE;
			c->observe = px->hooks == NULL ||
			    px->hooks->intercept == NULL ||
			    px->hooks->intercept(
			        px->hooks_arg, c->host, c->port);
		}
		free(host);
		if (c->up == U_NONE)
			upstream_connect(c, 0);
	} else {
		path = req.target;
		path_len = req.target_len;
	}
	if (c->up == U_FAILED) {
		send_upstream_failure(c, &req, path, path_len);
		return -1;
	}
	if (c->up != U_READY)
		return 0; /* upstream_ready calls us again */
	if (http1_request_framing(&req, &c->rqf) != 0) {
		fail_response(c, 400,
		    "halton-meter: ambiguous request "
		    "framing (Content-Length/Transfer-Encoding)\n");
		return -1;
	}
	c->ex = exchange_new(&c->xc, c->host, c->port, &req, path, path_len);
	if (c->observe && px->hooks != NULL && px->hooks->request_head)
		px->hooks->request_head(px->hooks_arg, c->ex);
	/* Forward the head unchanged; absolute-form becomes origin-form. */
	if (c->absolute) {
		struct evbuffer *out = stream_output(c->ust);
		const char *te = req.target + req.target_len;
		size_t line;

		evbuffer_add(out, req.method, req.method_len);
		evbuffer_add(out, " ", 1);
		if (path_len == 0 || path[0] != '/')
			evbuffer_add(out, "/", 1);
		evbuffer_add(out, path, path_len);
		evbuffer_add_printf(out, " HTTP/1.%d\r\n", req.minor_version);
		/* Drop the original request line, through its LF. */
		line = (size_t)((const char *)memchr(
		                    te, '\n', (size_t)(buf + n - te)) -
		           buf) +
		    1;
		evbuffer_drain(in, line);
		evbuffer_remove_buffer(in, out, (size_t)n - line);
	} else
		evbuffer_remove_buffer(in, stream_output(c->ust), (size_t)n);
	c->rq_upgrade = c->rqf.upgrade;
	c->up_reusable = 0;
	c->rs = RS_HEAD;
	c->rs_started = 0;
	switch (c->rqf.body) {
	case HTTP1_BODY_LENGTH:
		c->rq_left = c->rqf.length;
		c->rq = RQ_BODY;
		break;
	case HTTP1_BODY_CHUNKED:
		http1_chunked_init(&c->rq_ch);
		c->rq = RQ_BODY;
		break;
	default:
		c->rq = RQ_DONE;
		break;
	}
	/* While an exchange runs, silence from the client is normal; the
	 * upstream may stay silent up to the stream timeout. */
	set_timeouts(
	    c->cst, c->rq == RQ_BODY ? TIMEOUT_STREAM_S : 0, TIMEOUT_STREAM_S);
	set_timeouts(c->ust, TIMEOUT_STREAM_S, TIMEOUT_STREAM_S);
	return 1;
}

/* Processes client input in HTTP mode. */
static void
http_client_input(struct conn *c)
{
	int rc;

	while (!c->closing) {
		if (c->rq == RQ_HEAD) {
			if (c->rs != RS_IDLE)
				return;
			if ((rc = http_request_head(c)) <= 0)
				return;
			continue;
		}
		if (c->rq == RQ_BODY) {
			if (c->ust == NULL)
				return;
			rc = relay_body(c, 1);
			if (rc < 0) {
				exchange_end(c, "malformed request body");
				fail_response(c, 400,
				    "halton-meter: malformed "
				    "chunked request body\n");
				return;
			}
			if (rc == 0)
				return;
			c->rq = RQ_DONE;
			set_timeouts(c->cst, 0, TIMEOUT_STREAM_S);
			continue;
		}
		/* RQ_DONE: wait for the response (pipelined input stays
		 * in the buffer). */
		if (c->rs == RS_IDLE) {
			c->rq = RQ_HEAD;
			continue;
		}
		return;
	}
}

/* Switches to opaque relaying after a 101. */
static void
become_upgraded(struct conn *c)
{
	c->mode = M_UPGRADED;
	c->rs = RS_IDLE;
	set_timeouts(c->cst, TIMEOUT_STREAM_S, TIMEOUT_STREAM_S);
	set_timeouts(c->ust, TIMEOUT_STREAM_S, TIMEOUT_STREAM_S);
	stream_enable(c->cst, EV_READ);
	opaque_relay(c, 1);
	if (c->ust != NULL)
		opaque_relay(c, 0);
}

/* Processes upstream input in HTTP mode. */
static void
http_upstream_input(struct conn *c)
{
	struct proxy *px = c->px;
	struct evbuffer *in;
	struct http1_response res;
	size_t len;
	int n, rc;

	while (!c->closing && c->ust != NULL && c->mode == M_HTTP) {
		in = stream_input(c->ust);
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		if (c->rs == RS_IDLE) {
			/* Bytes nobody asked for. */
			conn_close(c, NULL);
			return;
		}
		if (c->rs == RS_BODY) {
			rc = relay_body(c, 0);
			body_after_write(c);
			if (rc < 0) {
				exchange_end(c,
				    "upstream: malformed chunked "
				    "body");
				conn_close(c, NULL);
				return;
			}
			if (rc == 0)
				return;
			response_done(c);
			if (!c->closing)
				http_client_input(c);
			continue;
		}
		/* RS_HEAD */
		if (c->ex != NULL && c->ex->first_byte_us == 0)
			c->ex->first_byte_us = time_mono_us();
		if (len > HTTP1_MAX_HEAD)
			len = HTTP1_MAX_HEAD;
		n = http1_parse_response(
		    (const char *)evbuffer_pullup(in, (ev_ssize_t)len), len,
		    &res);
		if (n == HTTP1_NEED_MORE)
			return;
		if (n < 0 ||
		    http1_response_framing(&res, c->ex->method,
		        strlen(c->ex->method), &c->rsf) != 0) {
			exchange_end(c, "upstream: malformed response");
			fail_response(c, 502,
			    "halton-meter: malformed "
			    "response from upstream\n");
			return;
		}
		if (res.status >= 100 && res.status < 200 &&
		    !(res.status == 101 && c->rq_upgrade)) {
			/* Interim (100 Continue, 103): relay, keep waiting. */
			evbuffer_remove_buffer(
			    in, stream_output(c->cst), (size_t)n);
			c->rs_started = 1;
			continue;
		}
		exchange_set_response(c->ex, &res);
		if (c->observe && px->hooks != NULL && px->hooks->response_head)
			px->hooks->response_head(px->hooks_arg, c->ex);
		c->rs_after = c->observe && px->hooks != NULL &&
		    px->hooks->response_body != NULL &&
		    px->hooks->body_after_write != NULL &&
		    px->hooks->body_after_write(px->hooks_arg, c->ex);
		evbuffer_remove_buffer(in, stream_output(c->cst), (size_t)n);
		c->rs_started = 1;
		if (res.status == 101) {
			become_upgraded(c);
			return;
		}
		c->rs = RS_BODY;
		if (c->rsf.body == HTTP1_BODY_LENGTH)
			c->rs_left = c->rsf.length;
		else if (c->rsf.body == HTTP1_BODY_CHUNKED)
			http1_chunked_init(&c->rs_ch);
		if (c->rsf.body == HTTP1_BODY_NONE) {
			response_done(c);
			if (!c->closing)
				http_client_input(c);
		}
	}
}

/*
 * Client side: the first request.
 */

/* Answers the CONNECT with 200 and starts the TLS server handshake on the
 * same stream: the 200 leaves in the clear, and bytes the client sent
 * right after the CONNECT (its ClientHello) are the first TLS bytes.
 * Returns 0, or -1 when the connection was closed. */
static int
client_tls_start(struct conn *c, const char *sni_fallback)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	struct stream *tls = c->cst;
	SSL *ssl;

	if ((ssl = SSL_new(proxy_ctx(c->px, 1))) == NULL) {
		conn_close(c, NULL);
		return -1;
	}
	tls_server_set_host(ssl, sni_fallback);
	evbuffer_add(stream_output(tls), ok, sizeof(ok) - 1);
	if (stream_start_tls(tls, ssl, 1) != 0) {
		SSL_free(ssl);
		conn_close(c, NULL);
		return -1;
	}
	c->tls = 1;
	stream_setcb(tls, client_read_cb, client_write_cb, client_event_cb, c);
	stream_setwatermark(tls, EV_READ, 0, HIGH_WATER);
	set_timeouts(tls, TIMEOUT_HANDSHAKE_S, TIMEOUT_HANDSHAKE_S);
	stream_enable(tls, EV_READ | EV_WRITE);
	return 0;
}

/* Splits "host:port" / "[v6]:port" of a CONNECT target. */
static int
parse_authority(const char *t, size_t len, char **host, int *port)
{
	char *s = xstrndup(t, len), *h;
	int rc;

	rc = config_parse_addr(s, &h, port);
	free(s);
	if (rc != 0 || h[0] == '\0' || *port <= 0) {
		if (rc == 0)
			free(h);
		return -1;
	}
	*host = h;
	return 0;
}

/* Whether a waiting client is still there: it may have given up while
 * its CONNECT waited unread. */
static int
client_gone(struct conn *c)
{
	char b;
	ssize_t n = recv(stream_fd(c->cst), &b, 1, MSG_PEEK);

	if (n > 0)
		return 0;
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return 1;
}

/* Answers an intercepted CONNECT and starts both handshakes, or queues
 * the connection while HANDSHAKES_MAX others handshake. */
static void
intercept_start(struct conn *c)
{
	struct proxy *px = c->px;

	if (px->nhandshakes >= HANDSHAKES_MAX) {
		c->hs = HS_WAITING;
		c->hs_next = NULL;
		if (px->hs_last != NULL)
			px->hs_last->hs_next = c;
		else
			px->hs_first = c;
		px->hs_last = c;
		/* Its ClientHello waits in the socket meanwhile. */
		stream_disable(c->cst, EV_READ);
		return;
	}
	c->hs = HS_RUNNING;
	px->nhandshakes++;
	c->mode = M_HTTP;
	c->observe = 1;
	c->rq = RQ_HEAD;
	c->rs = RS_IDLE;
	if (client_tls_start(c, c->host) == 0 && !pool_take(c))
		upstream_connect(c, 1);
}

/* The client handshake of c ended (done, failed or the connection
 * closed): the oldest waiting connections may start theirs. */
static void
handshake_done(struct conn *c)
{
	struct proxy *px = c->px;
	struct conn *w, **pp;

	if (c->hs == HS_WAITING) {
		for (pp = &px->hs_first, w = NULL; *pp != NULL;
		     w = *pp, pp = &(*pp)->hs_next) {
			if (*pp == c) {
				*pp = c->hs_next;
				if (px->hs_last == c)
					px->hs_last = w;
				break;
			}
		}
		c->hs = HS_NONE;
		return;
	}
	if (c->hs != HS_RUNNING)
		return;
	c->hs = HS_NONE;
	px->nhandshakes--;
	if (px->hs_admitting)
		return; /* the loop below goes on */
	px->hs_admitting = 1;
	while (px->nhandshakes < HANDSHAKES_MAX && (w = px->hs_first) != NULL &&
	    !px->shutting_down) {
		px->hs_first = w->hs_next;
		if (px->hs_first == NULL)
			px->hs_last = NULL;
		w->hs = HS_NONE;
		if (client_gone(w)) {
			log_debug("conn %llu: %s:%d: the client left while "
			          "its CONNECT waited",
			    (unsigned long long)w->xc.id, w->host, w->port);
			conn_close(w, NULL);
		} else
			intercept_start(w);
	}
	px->hs_admitting = 0;
}

static void
handle_connect(struct conn *c, const struct http1_request *req, size_t n)
{
	struct proxy *px = c->px;
	struct evbuffer *in = stream_input(c->cst);
	int intercept;

	if (parse_authority(req->target, req->target_len, &c->host, &c->port) !=
	    0) {
		fail_response(c, 400, "halton-meter: bad CONNECT target\n");
		return;
	}
	str_lower(c->host);
	/* Observers may read the CONNECT's headers (Proxy-Authorization
	 * carries the tag); req dies with the drain. */
	exchange_conn_set_connect(&c->xc, req);
	evbuffer_drain(in, n);
	if (str_casecmp(c->host, INTERCEPT_DOCTOR_HOST) == 0) {
		c->mode = M_LOCAL;
		(void)client_tls_start(c, c->host);
		return;
	}
	intercept = c->port == 443 &&
	    (px->server_ctx != NULL || px->ctx_get != NULL) &&
	    intercept_list_match(px->intercept, c->host);
	if (intercept && px->ca != NULL && !ca_permits(px->ca, c->host)) {
		log_info("%s: the CA's name constraints exclude it; tunnelling",
		    c->host);
		intercept = 0;
	}
	if (intercept && px->hooks != NULL && px->hooks->intercept != NULL)
		intercept =
		    px->hooks->intercept(px->hooks_arg, c->host, c->port);
	if (!intercept) {
		c->mode = M_TUNNEL;
		/* Reading resumes once the upstream answers. */
		stream_disable(c->cst, EV_READ);
		upstream_connect(c, 0);
		if (c->up == U_FAILED) {
			char body[700];

			snprintf(body, sizeof(body),
			    "halton-meter: cannot "
			    "reach %s:%d: %s\n",
			    c->host, c->port, c->up_error);
			fail_response(c, 502, body);
		}
		return;
	}
	intercept_start(c);
}

static void
handle_first_request(struct conn *c)
{
	struct evbuffer *in = stream_input(c->cst);
	struct http1_request req;
	size_t len = evbuffer_get_length(in);
	int n;

	if (len > HTTP1_MAX_HEAD)
		len = HTTP1_MAX_HEAD;
	n = http1_parse_request(
	    (const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, &req);
	if (n == HTTP1_NEED_MORE)
		return;
	if (n == HTTP1_TOO_LARGE) {
		fail_response(c, 431, "halton-meter: request head too large\n");
		return;
	}
	if (n < 0) {
		fail_response(c, 400, "halton-meter: malformed request\n");
		return;
	}
	if (req.method_len == 7 && memcmp(req.method, "CONNECT", 7) == 0) {
		handle_connect(c, &req, (size_t)n);
		return;
	}
	/* Absolute-form (HTTP_PROXY clients) and the daemon's own pages
	 * share the HTTP relay. */
	c->mode = M_HTTP;
	c->absolute = 1;
	c->rq = RQ_HEAD;
	c->rs = RS_IDLE;
	http_client_input(c);
}

static void
client_read_cb(struct stream *st, void *arg)
{
	struct conn *c = arg;

	c->last_activity = time_mono_ms();
	switch (c->mode) {
	case M_FIRST:
		handle_first_request(c);
		break;
	case M_TUNNEL:
	case M_UPGRADED:
		if (c->up == U_READY)
			opaque_relay(c, 1);
		break;
	case M_HTTP:
	case M_LOCAL:
		http_client_input(c);
		break;
	}
}

static void
client_write_cb(struct stream *st, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		if (client_flushed(c))
			conn_close(c, NULL);
		return;
	}
	if (c->paused_upstream && c->ust != NULL) {
		/* The client drained below the low-water mark. */
		c->paused_upstream = 0;
		stream_setwatermark(st, EV_WRITE, 0, 0);
		stream_enable(c->ust, EV_READ);
		if (c->mode == M_HTTP)
			http_upstream_input(c);
		else
			opaque_relay(c, 0);
	}
}

static void
upstream_read_cb(struct stream *st, void *arg)
{
	struct conn *c = arg;

	c->last_activity = time_mono_ms();
	if (c->up == U_PROXY) {
		upstream_proxy_answer(c);
		return;
	}
	if (c->mode == M_HTTP)
		http_upstream_input(c);
	else
		opaque_relay(c, 0);
}

static void
upstream_write_cb(struct stream *st, void *arg)
{
	struct conn *c = arg;

	if (c->drain_upstream) {
		if (evbuffer_get_length(stream_output(st)) != 0)
			return;
		if (c->drain_upstream == 2) {
			/* Tunnel: pass the client's half-close on and keep
			 * relaying the answer until the server closes. */
			shutdown(stream_fd(st), SHUT_WR);
			c->drain_upstream = 3;
		} else if (c->drain_upstream == 1)
			conn_close(c, NULL);
		return;
	}
	if (c->paused_client) {
		c->paused_client = 0;
		stream_setwatermark(st, EV_WRITE, 0, 0);
		stream_enable(c->cst, EV_READ);
		if (c->mode == M_HTTP)
			http_client_input(c);
		else
			opaque_relay(c, 1);
	}
}

static void
client_event_cb(struct stream *st, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* The intercepted TLS handshake completed. */
		set_timeouts(st, TIMEOUT_IDLE_S, TIMEOUT_STREAM_S);
		burst_note(c->px);
		handshake_done(c);
		return;
	}
	if (c->closing) {
		conn_close(c, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((c->mode == M_TUNNEL || c->mode == M_UPGRADED) &&
		    time_mono_ms() - c->last_activity <
		        TIMEOUT_STREAM_S * 1000ULL) {
			stream_enable(st, EV_READ | EV_WRITE);
			return;
		}
		conn_close(c, "client: timeout");
		return;
	}
	if ((what & BEV_EVENT_EOF) &&
	    (c->mode == M_TUNNEL || c->mode == M_UPGRADED) && c->ust != NULL &&
	    c->up == U_READY) {
		/* Forward the rest, then close both. */
		opaque_relay(c, 1);
		if (c->mode == M_TUNNEL) {
			/* Half-close: the server may still answer. */
			stream_disable(st, EV_READ);
			c->drain_upstream = 2;
			stream_setwatermark(c->ust, EV_WRITE, 0, 0);
			if (evbuffer_get_length(stream_output(c->ust)) == 0)
				upstream_write_cb(c->ust, c);
			return;
		}
		exchange_end(c, NULL);
		if (evbuffer_get_length(stream_output(c->ust)) > 0) {
			/* upstream_write_cb closes once it is delivered. */
			c->drain_upstream = 1;
			stream_disable(st, EV_READ);
			stream_setwatermark(c->ust, EV_WRITE, 0, 0);
			return;
		}
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = stream_ssl_error(st);

		if (e != 0)
			log_debug("conn %llu: client TLS: %s",
			    (unsigned long long)c->xc.id,
			    ERR_reason_error_string(e));
	}
	/* A client that leaves mid-exchange takes its upstream with it. */
	conn_close(c, "client closed");
}

/*
 * Listener.
 */

static void
endpoint_string(const struct sockaddr *sa, char *buf, size_t len, int *port)
{
	buf[0] = '\0';
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)len);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
	}
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct proxy *px = arg;
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct conn *c;

	c = xcalloc(1, sizeof(*c));
	c->px = px;
	c->xc.id = ++px->next_id;
	endpoint_string(sa, c->xc.client_addr, sizeof(c->xc.client_addr),
	    &c->xc.client_port);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		endpoint_string((struct sockaddr *)&local, c->xc.local_addr,
		    sizeof(c->xc.local_addr), &c->xc.local_port);
	c->mode = M_FIRST;
	c->last_activity = time_mono_ms();
	set_nodelay(fd);
	c->cst = stream_new(px->streams, fd);
	if (c->cst == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->next = px->conns;
	if (px->conns != NULL)
		px->conns->prev = c;
	px->conns = c;
	px->nconns++;
	stream_setcb(
	    c->cst, client_read_cb, client_write_cb, client_event_cb, c);
	stream_setwatermark(c->cst, EV_READ, 0, HIGH_WATER);
	set_timeouts(c->cst, TIMEOUT_IDLE_S, TIMEOUT_STREAM_S);
	stream_enable(c->cst, EV_READ | EV_WRITE);
	burst_note(px);
	if (px->nconns >= (size_t)px->max_connections && !px->accept_paused) {
		log_warnx("%zu connections: pausing accept", px->nconns);
		px->accept_paused = 1;
		evconnlistener_disable(px->listener);
	}
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	if (!px->shutting_down && !px->accept_paused)
		evconnlistener_enable(px->listener);
}

/* accept(2) failed, usually EMFILE/ENFILE: pause for a second instead of
 * spinning or exiting. */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct proxy *px = arg;
	struct timeval tv = {1, 0};

	log_warn("accept");
	evconnlistener_disable(l);
	evtimer_add(px->accept_retry, &tv);
}

static int
parse_connect_to(struct proxy *px, const struct strlist *l, char **cause)
{
	size_t i;

	if (l == NULL)
		return 0;
	px->cto = xcalloc(l->n ? l->n : 1, sizeof(*px->cto));
	for (i = 0; i < l->n; i++) {
		char *s = xstrdup(l->v[i]), *f[4], *p = s;
		long long v[2] = {0, 0};
		int k;

		for (k = 0; k < 4; k++) {
			f[k] = p;
			if (k < 3) {
				if ((p = strchr(p, ':')) == NULL)
					break;
				*p++ = '\0';
			}
		}
		if (k < 4 ||
		    (f[1][0] != '\0' &&
		        str_to_ll(f[1], 1, 65535, &v[0]) != 0) ||
		    (f[3][0] != '\0' &&
		        str_to_ll(f[3], 1, 65535, &v[1]) != 0)) {
			*cause = xasprintf("bad --connect-to '%s' (want "
			                   "HOST:PORT:HOST2:PORT2)",
			    l->v[i]);
			free(s);
			return -1;
		}
		px->cto[px->ncto].host = xstrdup(f[0]);
		px->cto[px->ncto].port = (int)v[0];
		px->cto[px->ncto].host2 = xstrdup(f[2]);
		px->cto[px->ncto].port2 = (int)v[1];
		px->ncto++;
		free(s);
	}
	return 0;
}

int
proxy_new(struct proxy **out, struct event_base *base,
    const struct proxy_options *o, char **cause)
{
	struct proxy *px;
	struct evutil_addrinfo hints, *ai = NULL;
	char portstr[16];
	int rc;

	*out = NULL;
	*cause = NULL;
	px = xcalloc(1, sizeof(*px));
	px->base = base;
	px->max_connections = o->max_connections > 0 ? o->max_connections
	                                             : CONFIG_DEFAULT_MAX_CONN;
	px->intercept = o->intercept;
	px->ca = o->ca;
	px->server_ctx = o->server_ctx;
	px->client_ctx = o->client_ctx;
	px->ctx_get = o->ctx_get;
	px->ctx_arg = o->ctx_arg;
	px->hooks = o->hooks;
	px->hooks_arg = o->hooks_arg;
	px->local = o->local;
	px->local_arg = o->local_arg;
	px->started_ms = time_mono_ms();
	px->reaper = event_new(base, -1, 0, reaper_cb, px);
	if ((px->streams = stream_set_new(base)) == NULL) {
		*cause = xstrdup("out of memory");
		goto fail;
	}
	px->trim_timer = evtimer_new(base, trim_cb, px);
	if (parse_connect_to(px, o->connect_to, cause) != 0)
		goto fail;
	if (o->upstream_proxy != NULL) {
		const char *u = o->upstream_proxy;

		if (str_ncasecmp(u, "http://", 7) == 0)
			u += 7;
		char *s = xstrdup(u), *slash = strchr(s, '/');
		if (slash != NULL)
			*slash = '\0';
		if (config_parse_addr(s, &px->uproxy_host, &px->uproxy_port) !=
		    0) {
			*cause = xasprintf(
			    "bad upstream_proxy '%s'", o->upstream_proxy);
			free(s);
			goto fail;
		}
		free(s);
	}
	if ((px->dns = evdns_base_new(
	         base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL &&
	    (px->dns = evdns_base_new(base, 0)) == NULL) {
		*cause = xstrdup("cannot initialise DNS");
		goto fail;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	snprintf(portstr, sizeof(portstr), "%d", o->listen_port);
	if ((rc = evutil_getaddrinfo(o->listen_host, portstr, &hints, &ai)) !=
	    0) {
		*cause = xasprintf(
		    "listen %s: %s", o->listen_host, evutil_gai_strerror(rc));
		goto fail;
	}
	px->listener = evconnlistener_new_bind(base, accept_cb, px,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    512, ai->ai_addr, (int)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
	if (px->listener == NULL) {
		*cause = xasprintf("listen %s:%d: %s", o->listen_host,
		    o->listen_port, strerror(errno));
		goto fail;
	}
	evconnlistener_set_error_cb(px->listener, accept_error_cb);
	px->accept_retry = evtimer_new(base, accept_retry_cb, px);
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char tmp[64];

		if (getsockname(evconnlistener_get_fd(px->listener),
		        (struct sockaddr *)&ss, &sl) == 0)
			endpoint_string((struct sockaddr *)&ss, tmp,
			    sizeof(tmp), &px->port);
	}
	*out = px;
	return 0;
fail:
	proxy_free(px);
	return -1;
}

void
proxy_free(struct proxy *px)
{
	size_t i;

	if (px == NULL)
		return;
	px->shutdown_done = NULL;
	px->shutting_down = 1; /* nothing is parked any more */
	while (px->conns != NULL)
		conn_close(px->conns, "shutdown");
	pool_clear(px);
	strbuf_free(&px->defer_spare);
	if (px->listener != NULL)
		evconnlistener_free(px->listener);
	if (px->accept_retry != NULL)
		event_free(px->accept_retry);
	if (px->shutdown_timer != NULL)
		event_free(px->shutdown_timer);
	if (px->dns != NULL)
		evdns_base_free(px->dns, 0);
	reap(px);
	if (px->reaper != NULL)
		event_free(px->reaper);
	if (px->trim_timer != NULL)
		event_free(px->trim_timer);
	stream_set_free(px->streams);
	for (i = 0; i < px->ncto; i++) {
		free(px->cto[i].host);
		free(px->cto[i].host2);
	}
	free(px->cto);
	free(px->uproxy_host);
	free(px);
}

struct event_base *
proxy_base(const struct proxy *px)
{
	return px->base;
}

void
proxy_set_intercept(struct proxy *px, const struct intercept_list *l)
{
	px->intercept = l;
}

size_t
proxy_connections(const struct proxy *px)
{
	return px->nconns;
}

uint64_t
proxy_exchanges(const struct proxy *px)
{
	return px->nexchanges;
}

int
proxy_port(const struct proxy *px)
{
	return px->port;
}

static void
shutdown_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;
	void (*done)(void *) = px->shutdown_done;

	log_info("shutdown: closing %zu remaining connection(s)", px->nconns);
	px->shutdown_done = NULL;
	while (px->conns != NULL)
		conn_close(px->conns, "shutdown");
	if (done != NULL)
		done(px->shutdown_arg);
}

void
proxy_shutdown(struct proxy *px, int timeout_s, void (*done)(void *), void *arg)
{
	struct timeval tv = {timeout_s, 0};
	struct conn *c, *next;

	if (px->shutting_down)
		return;
	px->shutting_down = 1;
	px->shutdown_done = done;
	px->shutdown_arg = arg;
	evconnlistener_disable(px->listener);
	pool_clear(px);
	/* Idle connections go now; active exchanges may finish (their
	 * keep-alive is refused by response_done). */
	for (c = px->conns; c != NULL; c = next) {
		next = c->next;
		if (c->ex == NULL && c->mode != M_TUNNEL &&
		    c->mode != M_UPGRADED && !c->closing)
			conn_close(c, NULL);
	}
	if (px->nconns == 0) {
		px->shutdown_done = NULL;
		if (done != NULL)
			done(arg);
		return;
	}
	px->shutdown_timer = evtimer_new(px->base, shutdown_timer_cb, px);
	evtimer_add(px->shutdown_timer, &tv);
}
