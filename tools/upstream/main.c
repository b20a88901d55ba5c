/*
 * upstream: a fake LLM API origin for the benchmarks.  TLS on loopback with
 * a test certificate, HTTP/1.1 keep-alive, and three resources:
 *
 *   POST /v1/messages   an Anthropic-style SSE stream of about 4 KB
 *                       (message_start and message_delta carry usage)
 *   GET  /1mib          1 MiB of body (Content-Length)
 *   GET  /dribble       50 SSE events, one every 20 ms, each carrying the
 *                       CLOCK_MONOTONIC send time in microseconds ("t")
 *
 * Usage: upstream --cert FILE --key FILE [--listen HOST:PORT]
 *        [--port-file FILE]
 * The bound port is printed on stdout ("port N") and written to --port-file.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_HEADER       16384
#define MAX_BODY         (4 * 1024 * 1024)
#define BIG_SIZE         (1024 * 1024)
#define DRIBBLE_EVENTS   50
#define DRIBBLE_MS       20
#define SSE_TARGET_BYTES 4096

struct client {
	struct bufferevent *bev;
	struct event *timer; /* dribble */
	int dribble_left;
	int dribble_seq;
	int closing;
	size_t need_body; /* request body bytes still to skip */
	int have_req;
	char method[16];
	char path[256];
	int want_close;
};

static SSL_CTX *ssl_ctx;
static struct event_base *base;
static char *sse_body;
static size_t sse_len;
static char *big_body;

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
client_free(struct client *cl)
{
	if (cl->timer != NULL)
		event_free(cl->timer);
	bufferevent_free(cl->bev);
	free(cl);
}

/* Appends one SSE event to b. */
static void
sse_event(char **b, size_t *len, size_t *cap, const char *ev, const char *data)
{
	size_t n = strlen(ev) + strlen(data) + 32;
	int w;

	if (*len + n >= *cap) {
		*cap = (*len + n) * 2;
		if ((*b = realloc(*b, *cap)) == NULL)
			abort();
	}
	w = snprintf(
	    *b + *len, *cap - *len, "event: %s\ndata: %s\n\n", ev, data);
	*len += (size_t)w;
}

/* Builds the static SSE response body: a real Anthropic message stream
 * with enough text deltas to weigh about SSE_TARGET_BYTES. */
static void
build_sse(void)
{
	size_t cap = 8192, len = 0;
	char *b = malloc(cap);
	int i;

	if (b == NULL)
		abort();
	sse_event(&b, &len, &cap, "message_start",
	    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench01\","
	    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
	    "\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,"
	    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":1234,"
	    "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":"
	    "512,\"output_tokens\":1}}}");
	sse_event(&b, &len, &cap, "content_block_start",
	    "{\"type\":\"content_block_start\",\"index\":0,"
	    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
	sse_event(&b, &len, &cap, "ping", "{\"type\": \"ping\"}");
	for (i = 0; len < SSE_TARGET_BYTES - 600; i++)
		sse_event(&b, &len, &cap, "content_block_delta",
		    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
		    "{\"type\":\"text_delta\",\"text\":\"The quick brown fox "
		    "jumps over the lazy dog. \"}}");
	sse_event(&b, &len, &cap, "content_block_stop",
	    "{\"type\":\"content_block_stop\",\"index\":0}");
	sse_event(&b, &len, &cap, "message_delta",
	    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
	    "\"end_turn\",\"stop_sequence\":null},\"usage\":"
	    "{\"output_tokens\":321}}");
	sse_event(
	    &b, &len, &cap, "message_stop", "{\"type\":\"message_stop\"}");
	sse_body = b;
	sse_len = len;
}

static void
send_head(struct client *cl, int status, const char *ctype, long clen)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);

	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "request-id: req_bench\r\n",
	    status, status == 200 ? "OK" : "Not Found", ctype);
	if (clen >= 0)
		evbuffer_add_printf(out, "Content-Length: %ld\r\n", clen);
	else
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	if (cl->want_close)
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add(out, "\r\n", 2);
}

static void
dribble_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	struct timeval tv = {0, DRIBBLE_MS * 1000};
	char ev[160];
	int n;

	n = snprintf(ev, sizeof(ev),
	    "event: content_block_delta\ndata: {\"type\":"
	    "\"content_block_delta\",\"i\":%d,\"t\":%llu}\n\n",
	    cl->dribble_seq, (unsigned long long)mono_us());
	evbuffer_add_printf(out, "%x\r\n", n);
	evbuffer_add(out, ev, (size_t)n);
	evbuffer_add(out, "\r\n", 2);
	cl->dribble_seq++;
	if (--cl->dribble_left > 0) {
		evtimer_add(cl->timer, &tv);
		return;
	}
	evbuffer_add(out, "0\r\n\r\n", 5);
	cl->have_req = 0;
	if (cl->want_close)
		cl->closing = 1;
}

static void
respond(struct client *cl)
{
	struct evbuffer *out = bufferevent_get_output(cl->bev);
	struct timeval tv = {0, DRIBBLE_MS * 1000};

	if (strcmp(cl->path, "/v1/messages") == 0 ||
	    strncmp(cl->path, "/v1/messages?", 13) == 0) {
		send_head(cl, 200, "text/event-stream", -1);
		evbuffer_add_printf(out, "%zx\r\n", sse_len);
		evbuffer_add_reference(out, sse_body, sse_len, NULL, NULL);
		evbuffer_add(out, "\r\n0\r\n\r\n", 7);
	} else if (strcmp(cl->path, "/1mib") == 0) {
		send_head(cl, 200, "application/octet-stream", BIG_SIZE);
		evbuffer_add_reference(out, big_body, BIG_SIZE, NULL, NULL);
	} else if (strcmp(cl->path, "/dribble") == 0) {
		send_head(cl, 200, "text/event-stream", -1);
		cl->dribble_left = DRIBBLE_EVENTS;
		cl->dribble_seq = 0;
		if (cl->timer == NULL)
			cl->timer = evtimer_new(base, dribble_cb, cl);
		evtimer_add(cl->timer, &tv);
		return; /* have_req stays set until the stream ends */
	} else {
		send_head(cl, 404, "text/plain", 10);
		evbuffer_add(out, "not found\n", 10);
	}
	cl->have_req = 0;
	if (cl->want_close)
		cl->closing = 1;
}

/* Parses as many complete requests as the input holds (one at a time: a
 * dribble in progress blocks the next). */
static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		struct evbuffer_ptr p;
		char *head, *line, *save, *sp;
		size_t hlen, avail;
		long clen = 0;

		if (cl->need_body > 0) {
			avail = evbuffer_get_length(in);
			if (avail > cl->need_body)
				avail = cl->need_body;
			evbuffer_drain(in, avail);
			cl->need_body -= avail;
			if (cl->need_body > 0)
				return;
			respond(cl);
			continue;
		}
		if (cl->have_req || cl->closing)
			return;
		p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > MAX_HEADER)
				cl->closing = 1;
			return;
		}
		hlen = (size_t)p.pos + 4;
		if ((head = malloc(hlen + 1)) == NULL)
			abort();
		evbuffer_remove(in, head, hlen);
		head[hlen] = '\0';
		cl->want_close = 0;
		line = strtok_r(head, "\r\n", &save);
		if (line == NULL ||
		    sscanf(line, "%15s %255s", cl->method, cl->path) != 2) {
			free(head);
			cl->closing = 1;
			return;
		}
		while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
			if ((sp = strchr(line, ':')) == NULL)
				continue;
			*sp++ = '\0';
			while (*sp == ' ')
				sp++;
			if (strcasecmp(line, "content-length") == 0)
				clen = strtol(sp, NULL, 10);
			else if (strcasecmp(line, "connection") == 0 &&
			    strcasecmp(sp, "close") == 0)
				cl->want_close = 1;
		}
		free(head);
		if (clen < 0 || clen > MAX_BODY) {
			cl->closing = 1;
			return;
		}
		cl->have_req = 1;
		cl->need_body = (size_t)clen;
		if (cl->need_body == 0)
			respond(cl);
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	if (cl->closing)
		client_free(cl);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		client_free(cl);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct client *cl;
	SSL *ssl;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((cl = calloc(1, sizeof(*cl))) == NULL ||
	    (ssl = SSL_new(ssl_ctx)) == NULL)
		abort();
	cl->bev = bufferevent_openssl_socket_new(
	    base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (cl->bev == NULL)
		abort();
	bufferevent_openssl_set_allow_dirty_shutdown(cl->bev, 1);
	bufferevent_setcb(cl->bev, read_cb, write_cb, event_cb, cl);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(base, NULL);
}

int
main(int argc, char **argv)
{
	struct evconnlistener *l;
	struct sockaddr_in sin;
	struct event *sigev;
	socklen_t slen = sizeof(sin);
	const char *cert = NULL, *key = NULL, *portfile = NULL;
	char host[64] = "127.0.0.1";
	int port = 0, i;
	FILE *f;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
			portfile = argv[++i];
		else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			if (sscanf(argv[++i], "%63[^:]:%d", host, &port) != 2) {
				fprintf(stderr, "upstream: bad --listen\n");
				return 2;
			}
		} else {
			fprintf(stderr,
			    "usage: upstream --cert FILE --key FILE "
			    "[--listen HOST:PORT] [--port-file FILE]\n");
			return 2;
		}
	}
	if (cert == NULL || key == NULL) {
		fprintf(stderr, "upstream: --cert and --key are required\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	build_sse();
	if ((big_body = malloc(BIG_SIZE)) == NULL)
		abort();
	for (i = 0; i < BIG_SIZE; i++)
		big_body[i] = (char)('a' + i % 26);
	if ((ssl_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	if ((base = event_base_new()) == NULL)
		return 1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "upstream: bad host %s\n", host);
		return 2;
	}
	l = evconnlistener_new_bind(base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL) {
		fprintf(stderr, "upstream: bind: %s\n", strerror(errno));
		return 1;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
	port = ntohs(sin.sin_port);
	if (portfile != NULL) {
		if ((f = fopen(portfile, "w")) == NULL) {
			perror(portfile);
			return 1;
		}
		fprintf(f, "%d\n", port);
		fclose(f);
	}
	printf("port %d\n", port);
	fflush(stdout);
	sigev = evsignal_new(base, SIGTERM, stop_cb, NULL);
	evsignal_add(sigev, NULL);
	event_base_dispatch(base);
	event_free(sigev);
	evconnlistener_free(l);
	event_base_free(base);
	SSL_CTX_free(ssl_ctx);
	free(sse_body);
	free(big_body);
	return 0;
}
