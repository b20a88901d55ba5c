/*
 * loadgen: the benchmark load generator.  Opens TLS connections to an
 * origin, directly or through an HTTP proxy with CONNECT, verifies the
 * origin's certificate against a given CA file and name, and sends N
 * HTTP/1.1 requests at concurrency C (keep-alive, or one fresh connection
 * per request).  Prints one JSON line: counts, requests/s, a latency
 * histogram with p50/p99/max, body MiB/s and, for SSE streams whose events
 * carry a CLOCK_MONOTONIC send stamp ("t":MICROSECONDS), the per-event
 * delay (arrival - send; the upstream runs on the same machine).
 *
 *   loadgen --target HOST:PORT --sni NAME --ca FILE [--proxy HOST:PORT]
 *           [--path sse|1mib|dribble] [-n N] [-c C] [--new-conn]
 *           [--hold K [--hold-secs S]] [--first-index I] [--timeout S]
 *           [--label TEXT]
 *   loadgen --mint N          time ca_leaf() for N new host names
 *
 * "%d" in --target and --sni is replaced by a connection index (from
 * --first-index on), so every fresh connection can name a new host.
 * --hold K opens K keep-alive connections, does one request on each, prints
 * the JSON line once all are done, then keeps them open and idle for S
 * seconds (default 5) before exiting.  The exit status is 1 if any request
 * failed.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "halton/ca.h"
#include "halton/config.h"
#include "halton/intercept.h"
#include "halton/log.h"

#define MAX_HEAD 65536

enum cstate {
	C_TCP,     /* connecting to the proxy or origin */
	C_CONNECT, /* waiting for the proxy's CONNECT reply */
	C_TLS,     /* TLS handshake */
	C_HEAD,    /* request sent, reading the response head */
	C_BODY,    /* reading the body */
	C_IDLE     /* hold mode: kept open */
};

enum chstate { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

struct conn {
	enum cstate st;
	int fd;
	struct event *ev; /* TCP connect + CONNECT reply */
	struct bufferevent *bev;
	char reply[1024]; /* CONNECT reply */
	size_t replylen;
	char host[256]; /* SNI, Host: and the verified name */
	char target[300];
	uint64_t t_conn;  /* connection start */
	uint64_t t_req;   /* request sent */
	int requests;     /* on this connection */
	int server_close; /* Connection: close seen */
	int chunked;
	long long left; /* content-length or chunk bytes left */
	enum chstate ch;
	char *sse; /* dribble: dechunked body not yet scanned */
	size_t sselen, ssecap;
};

struct opts {
	char *proxy_host;
	int proxy_port;
	const char *target;
	const char *sni;
	const char *ca;
	const char *path;
	const char *label;
	long n;
	long c;
	int new_conn;
	long hold;
	int hold_secs;
	long first_index;
	int timeout;
	long mint;
};

static struct opts o = {.path = "sse",
    .label = "",
    .n = 100,
    .c = 1,
    .hold_secs = 5,
    .timeout = 300};
static struct event_base *base;
static SSL_CTX *ctx;
static struct sockaddr_in dest; /* proxy, or the origin when direct */
static long issued, done, errors, active, next_index;
static uint64_t *lat; /* microseconds, one per successful request */
static long nlat;
static uint64_t bytes_body;
static uint64_t *evdelay;
static long nev, evcap;
static uint64_t t_start, t_end;
static int finished;
static struct event *hold_timer, *deadline;
static char first_error[256];

static void conn_start(void);
static void conn_send(struct conn *);

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
pct(const uint64_t *v, long n, double p)
{
	long i;

	if (n == 0)
		return 0;
	i = (long)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* Prints the result line: latency percentiles, a log2 histogram (bucket
 * k counts latencies in [2^k, 2^(k+1)) microseconds) and event delays. */
static void
report(void)
{
	double secs = (double)(t_end - t_start) / 1e6;
	long hist[40], i, top = 0;
	double sum = 0;

	for (i = 0; i < nlat; i++)
		sum += (double)lat[i];
	qsort(lat, (size_t)nlat, sizeof(*lat), cmp_u64);
	qsort(evdelay, (size_t)nev, sizeof(*evdelay), cmp_u64);
	memset(hist, 0, sizeof(hist));
	for (i = 0; i < nlat; i++) {
		int k = 0;
		uint64_t v = lat[i];

		while (v > 1 && k < 39) {
			v >>= 1;
			k++;
		}
		hist[k]++;
		if (k > top)
			top = k;
	}
	printf("{\"label\":\"%s\",\"path\":\"%s\",\"n\":%ld,\"c\":%ld,"
	       "\"new_conn\":%d,\"proxy\":%s,\"ok\":%ld,\"errors\":%ld,"
	       "\"secs\":%.6f,\"rps\":%.2f,\"bytes\":%llu,\"mibps\":%.2f,",
	    o.label, o.path, o.hold > 0 ? o.hold : o.n, o.c, o.new_conn,
	    o.proxy_host != NULL ? "true" : "false", nlat, errors, secs,
	    secs > 0 ? (double)nlat / secs : 0.0,
	    (unsigned long long)bytes_body,
	    secs > 0 ? (double)bytes_body / 1048576.0 / secs : 0.0);
	printf("\"lat_us\":{\"min\":%llu,\"p50\":%llu,\"p90\":%llu,"
	       "\"p99\":%llu,\"max\":%llu,\"mean\":%.1f},",
	    (unsigned long long)pct(lat, nlat, 0),
	    (unsigned long long)pct(lat, nlat, 0.5),
	    (unsigned long long)pct(lat, nlat, 0.9),
	    (unsigned long long)pct(lat, nlat, 0.99),
	    (unsigned long long)pct(lat, nlat, 1),
	    nlat ? sum / (double)nlat : 0.0);
	printf("\"hist_log2_us\":[");
	for (i = 0; i <= top && nlat > 0; i++)
		printf("%s%ld", i ? "," : "", hist[i]);
	printf("],\"events\":%ld,\"ev_delay_us\":{\"p50\":%llu,\"p99\":%llu,"
	       "\"max\":%llu},\"error\":\"%s\"}\n",
	    nev, (unsigned long long)pct(evdelay, nev, 0.5),
	    (unsigned long long)pct(evdelay, nev, 0.99),
	    (unsigned long long)pct(evdelay, nev, 1), first_error);
	fflush(stdout);
}

static void
finish(void)
{
	if (finished)
		return;
	finished = 1;
	t_end = mono_us();
	report();
	if (o.hold > 0) {
		struct timeval tv = {o.hold_secs, 0};

		evtimer_add(hold_timer, &tv);
		return;
	}
	event_base_loopexit(base, NULL);
}

static void
conn_free(struct conn *cn)
{
	if (cn->ev != NULL)
		event_free(cn->ev);
	if (cn->bev != NULL)
		bufferevent_free(cn->bev);
	else if (cn->fd != -1)
		close(cn->fd);
	free(cn->sse);
	free(cn);
	active--;
}

/* Ends a connection after an error: the request it carried (if any)
 * counts as failed and a fresh connection takes over the remaining work. */
static void
conn_fail(struct conn *cn, const char *why)
{
	int had_req = cn->st != C_IDLE;

	if (first_error[0] == '\0')
		snprintf(first_error, sizeof(first_error), "%.100s: %.140s",
		    cn->host, why);
	conn_free(cn);
	if (had_req) {
		errors++;
		done++;
	}
	if (done >= (o.hold > 0 ? o.hold : o.n)) {
		finish();
		return;
	}
	if (o.hold == 0 && issued < o.n)
		conn_start();
}

static void
sse_scan(struct conn *cn, uint64_t now)
{
	size_t i = 0, start = 0;

	for (i = 0; i + 1 < cn->sselen; i++) {
		char *t, *e;

		if (cn->sse[i] != '\n' || cn->sse[i + 1] != '\n')
			continue;
		cn->sse[i] = '\0';
		if ((t = strstr(cn->sse + start, "\"t\":")) != NULL) {
			unsigned long long s = strtoull(t + 4, &e, 10);

			if (e != t + 4) {
				if (nev == evcap) {
					evcap = evcap ? evcap * 2 : 256;
					evdelay = realloc(evdelay,
					    (size_t)evcap * sizeof(*evdelay));
					if (evdelay == NULL)
						abort();
				}
				evdelay[nev++] = now > s ? now - s : 0;
			}
		}
		start = i + 2;
		i++;
	}
	memmove(cn->sse, cn->sse + start, cn->sselen - start);
	cn->sselen -= start;
}

static void
body_data(struct conn *cn, struct evbuffer *in, size_t n, uint64_t now)
{
	bytes_body += n;
	if (strcmp(o.path, "dribble") != 0) {
		evbuffer_drain(in, n);
		return;
	}
	if (cn->sselen + n + 1 > cn->ssecap) {
		cn->ssecap = (cn->sselen + n + 1) * 2;
		if ((cn->sse = realloc(cn->sse, cn->ssecap)) == NULL)
			abort();
	}
	evbuffer_remove(in, cn->sse + cn->sselen, n);
	cn->sselen += n;
	sse_scan(cn, now);
}

/* The response is complete: record it and start the next request. */
static void
response_done(struct conn *cn, uint64_t now)
{
	lat[nlat++] = now - (o.new_conn ? cn->t_conn : cn->t_req);
	done++;
	cn->requests++;
	if (o.hold > 0) {
		cn->st = C_IDLE;
		if (done >= o.hold)
			finish();
		return;
	}
	if (done >= o.n) {
		conn_free(cn);
		finish();
		return;
	}
	if (issued >= o.n) {
		conn_free(cn);
		return;
	}
	if (o.new_conn || cn->server_close) {
		conn_free(cn);
		conn_start();
		return;
	}
	conn_send(cn);
}

/* Parses the response head.  Returns 1 when parsed, 0 if more bytes are
 * needed, -1 on a bad response. */
static int
parse_head(struct conn *cn, struct evbuffer *in)
{
	struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	char *h, *line, *save, *v;
	int status = 0;
	size_t len;

	if (p.pos < 0)
		return evbuffer_get_length(in) > MAX_HEAD ? -1 : 0;
	len = (size_t)p.pos + 4;
	if ((h = malloc(len + 1)) == NULL)
		abort();
	evbuffer_remove(in, h, len);
	h[len] = '\0';
	cn->chunked = 0;
	cn->left = -1;
	cn->server_close = 0;
	line = strtok_r(h, "\r\n", &save);
	if (line == NULL || sscanf(line, "HTTP/1.%*d %d", &status) != 1 ||
	    status != 200) {
		snprintf(first_error, sizeof(first_error),
		    "%.100s: status '%.80s'", cn->host,
		    line != NULL ? line : "");
		free(h);
		return -1;
	}
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
		if ((v = strchr(line, ':')) == NULL)
			continue;
		*v++ = '\0';
		while (*v == ' ')
			v++;
		if (strcasecmp(line, "content-length") == 0)
			cn->left = strtoll(v, NULL, 10);
		else if (strcasecmp(line, "transfer-encoding") == 0 &&
		    strcasecmp(v, "chunked") == 0)
			cn->chunked = 1;
		else if (strcasecmp(line, "connection") == 0 &&
		    strcasecmp(v, "close") == 0)
			cn->server_close = 1;
	}
	free(h);
	if (!cn->chunked && cn->left < 0)
		return -1; /* read-to-close bodies are not used here */
	cn->ch = CH_SIZE;
	return 1;
}

/* Consumes body bytes.  Returns 1 when the body is complete, 0 if more
 * is needed, -1 on a framing error. */
static int
parse_body(struct conn *cn, struct evbuffer *in, uint64_t now)
{
	size_t avail, n;
	char *line;

	if (!cn->chunked) {
		avail = evbuffer_get_length(in);
		n = (long long)avail < cn->left ? avail : (size_t)cn->left;
		if (n > 0)
			body_data(cn, in, n, now);
		cn->left -= (long long)n;
		return cn->left == 0;
	}
	for (;;) {
		switch (cn->ch) {
		case CH_SIZE:
			line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
			if (line == NULL)
				return 0;
			cn->left = strtoll(line, NULL, 16);
			free(line);
			if (cn->left < 0)
				return -1;
			cn->ch = cn->left == 0 ? CH_TRAILER : CH_DATA;
			break;
		case CH_DATA:
			avail = evbuffer_get_length(in);
			if (avail == 0)
				return 0;
			n = (long long)avail < cn->left ? avail
			                                : (size_t)cn->left;
			body_data(cn, in, n, now);
			cn->left -= (long long)n;
			if (cn->left == 0)
				cn->ch = CH_DATA_CRLF;
			break;
		case CH_DATA_CRLF:
			line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
			if (line == NULL)
				return 0;
			free(line);
			cn->ch = CH_SIZE;
			break;
		case CH_TRAILER:
			line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
			if (line == NULL)
				return 0;
			if (line[0] == '\0') {
				free(line);
				return 1;
			}
			free(line);
			break;
		}
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *cn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint64_t now = mono_us();
	int r;

	if (cn->st == C_HEAD) {
		if ((r = parse_head(cn, in)) < 0) {
			conn_fail(cn,
			    first_error[0] ? "bad response"
			                   : "bad response head");
			return;
		}
		if (r == 0)
			return;
		cn->st = C_BODY;
	}
	if (cn->st == C_BODY) {
		if ((r = parse_body(cn, in, now)) < 0) {
			conn_fail(cn, "bad chunked framing");
			return;
		}
		if (r == 1)
			response_done(cn, now);
		return;
	}
	if (cn->st == C_IDLE && evbuffer_get_length(in) > 0)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *cn = arg;
	char buf[200];
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		cn->st = C_HEAD;
		conn_send(cn);
		return;
	}
	if (cn->st == C_IDLE && o.hold > 0 && !finished) {
		/* A held connection closed by the peer before the end. */
		conn_fail(cn, "held connection closed");
		return;
	}
	if ((e = bufferevent_get_openssl_error(bev)) != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s in state %d",
		    what & BEV_EVENT_EOF ? "EOF" : "socket error", (int)cn->st);
	conn_fail(cn, buf);
}

/* Sends the next request on a TLS-established connection. */
static void
conn_send(struct conn *cn)
{
	static const char body[] =
	    "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024,"
	    "\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"Write one sentence about benchmarks.\"}]}";
	struct evbuffer *out = bufferevent_get_output(cn->bev);

	char host[300];
	const char *port = strrchr(cn->target, ':');

	/* Host: the name, with the target's port unless it is 443. */
	if (port != NULL && strcmp(port, ":443") != 0)
		snprintf(host, sizeof(host), "%s%s", cn->host, port);
	else
		snprintf(host, sizeof(host), "%s", cn->host);
	issued++;
	cn->st = C_HEAD;
	cn->sselen = 0;
	cn->t_req = mono_us();
	if (strcmp(o.path, "sse") == 0)
		evbuffer_add_printf(out,
		    "POST /v1/messages HTTP/1.1\r\nHost: %s\r\n"
		    "Content-Type: application/json\r\n"
		    "anthropic-version: 2023-06-01\r\n"
		    "x-api-key: bench-dummy-key\r\n"
		    "Content-Length: %zu\r\n\r\n%s",
		    host, sizeof(body) - 1, body);
	else
		evbuffer_add_printf(
		    out, "GET /%s HTTP/1.1\r\nHost: %s\r\n\r\n", o.path, host);
}

static void
start_tls(struct conn *cn)
{
	SSL *ssl;

	if ((ssl = SSL_new(ctx)) == NULL)
		abort();
	SSL_set_tlsext_host_name(ssl, cn->host);
	SSL_set1_host(ssl, cn->host);
	cn->bev = bufferevent_openssl_socket_new(base, cn->fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (cn->bev == NULL)
		abort();
	bufferevent_openssl_set_allow_dirty_shutdown(cn->bev, 1);
	bufferevent_setcb(cn->bev, read_cb, NULL, event_cb, cn);
	bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
	cn->st = C_TLS;
}

/* Raw socket phase: the TCP connect completes, then (through a proxy) the
 * CONNECT request is sent and its reply read. */
static void
raw_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *cn = arg;
	socklen_t len = sizeof(int);
	char req[600];
	int err = 0, n;
	ssize_t r;

	if (cn->st == C_TCP) {
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			conn_fail(cn, strerror(err));
			return;
		}
		if (o.proxy_host == NULL) {
			event_free(cn->ev);
			cn->ev = NULL;
			start_tls(cn);
			return;
		}
		n = snprintf(req, sizeof(req),
		    "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", cn->target,
		    cn->target);
		if (send(fd, req, (size_t)n, 0) != n) {
			conn_fail(cn, "CONNECT send");
			return;
		}
		cn->st = C_CONNECT;
		event_free(cn->ev);
		cn->ev = event_new(base, fd, EV_READ | EV_PERSIST, raw_cb, cn);
		event_add(cn->ev, NULL);
		return;
	}
	r = recv(fd, cn->reply + cn->replylen,
	    sizeof(cn->reply) - 1 - cn->replylen, 0);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_fail(cn, "CONNECT reply: connection closed");
		return;
	}
	cn->replylen += (size_t)r;
	cn->reply[cn->replylen] = '\0';
	if (strstr(cn->reply, "\r\n\r\n") == NULL) {
		if (cn->replylen >= sizeof(cn->reply) - 1)
			conn_fail(cn, "CONNECT reply too long");
		return;
	}
	if (strncmp(cn->reply, "HTTP/1.", 7) != 0 ||
	    strncmp(cn->reply + 8, " 200", 4) != 0) {
		char line[120];

		snprintf(line, sizeof(line), "CONNECT: %.*s",
		    (int)strcspn(cn->reply, "\r\n"), cn->reply);
		conn_fail(cn, line);
		return;
	}
	event_free(cn->ev);
	cn->ev = NULL;
	start_tls(cn);
}

/* Replaces "%d" in fmt with idx. */
static void
subst(char *dst, size_t len, const char *fmt, long idx)
{
	const char *p = strstr(fmt, "%d");

	if (p == NULL)
		snprintf(dst, len, "%s", fmt);
	else
		snprintf(
		    dst, len, "%.*s%ld%s", (int)(p - fmt), fmt, idx, p + 2);
}

static void
conn_start(void)
{
	struct conn *cn;
	int one = 1;

	if ((cn = calloc(1, sizeof(*cn))) == NULL)
		abort();
	active++;
	cn->t_conn = mono_us();
	subst(cn->host, sizeof(cn->host), o.sni, next_index);
	subst(cn->target, sizeof(cn->target), o.target, next_index);
	next_index++;
	cn->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (cn->fd == -1) {
		conn_fail(cn, strerror(errno));
		return;
	}
	evutil_make_socket_nonblocking(cn->fd);
	setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(cn->fd, (struct sockaddr *)&dest, sizeof(dest)) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(cn, strerror(errno));
		return;
	}
	cn->st = C_TCP;
	cn->ev = event_new(base, cn->fd, EV_WRITE, raw_cb, cn);
	event_add(cn->ev, NULL);
}

static void
hold_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(base, NULL);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	long total = o.hold > 0 ? o.hold : o.n;

	if (first_error[0] == '\0')
		snprintf(first_error, sizeof(first_error), "timeout");
	errors += total - done;
	done = total;
	finish();
	event_base_loopexit(base, NULL);
}

static int
parse_hostport(const char *s, char **host, int *port)
{
	const char *c = strrchr(s, ':');

	if (c == NULL || c == s)
		return -1;
	*host = strndup(s, (size_t)(c - s));
	*port = atoi(c + 1);
	return *port > 0 && *port < 65536 ? 0 : -1;
}

/* Removes the files of dir (no subdirectories are made there), then dir. */
static void
rmtree(const char *dir)
{
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* --mint: times ca_leaf() for N distinct host names with a fresh CA in a
 * temporary directory, the daemon's own code path for a new host. */
static int
mint(long n)
{
	char tmpl[] = "/tmp/loadgen-mint.XXXXXX", host[64], *cause = NULL;
	struct ca_options co;
	struct strlist pats = {NULL, 0};
	struct intercept_list *il;
	struct ca *ca;
	uint64_t t0, t1, *v;
	int created;
	long i;

	if (mkdtemp(tmpl) == NULL)
		return 1;
	strlist_add(&pats, "*.bench.test");
	il = intercept_list_new(&pats);
	memset(&co, 0, sizeof(co));
	co.ca_dir = tmpl;
	co.state_dir = tmpl;
	co.intercept = il;
	co.name_constraints = 1;
	co.system_roots = o.ca; /* NULL: the platform roots */
	if (ca_load_or_create(&ca, &co, &created, &cause) != 0) {
		fprintf(stderr, "loadgen: ca: %s\n", cause);
		return 1;
	}
	if ((v = calloc((size_t)n, sizeof(*v))) == NULL)
		abort();
	t0 = mono_us();
	for (i = 0; i < n; i++) {
		uint64_t a = mono_us();

		snprintf(host, sizeof(host), "m%ld.bench.test", i);
		if (ca_leaf(ca, host, &cause) == NULL) {
			fprintf(stderr, "loadgen: leaf: %s\n", cause);
			return 1;
		}
		v[i] = mono_us() - a;
	}
	t1 = mono_us();
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	printf("{\"label\":\"mint\",\"n\":%ld,\"secs\":%.6f,"
	       "\"per_leaf_us\":{\"mean\":%.1f,\"p50\":%llu,\"p99\":%llu,"
	       "\"max\":%llu},\"errors\":0}\n",
	    n, (double)(t1 - t0) / 1e6, (double)(t1 - t0) / (double)n,
	    (unsigned long long)pct(v, n, 0.5),
	    (unsigned long long)pct(v, n, 0.99),
	    (unsigned long long)pct(v, n, 1));
	ca_free(ca);
	rmtree(tmpl);
	intercept_list_free(il);
	strlist_free(&pats);
	free(v);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen --target HOST:PORT --sni NAME --ca FILE "
	    "[--proxy HOST:PORT]\n"
	    "               [--path sse|1mib|dribble] [-n N] [-c C] "
	    "[--new-conn]\n"
	    "               [--hold K [--hold-secs S]] [--first-index I] "
	    "[--timeout S] [--label L]\n"
	    "       loadgen --mint N\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	char *dhost = NULL;
	int dport = 0, i;
	long k, want;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--new-conn") == 0) {
			o.new_conn = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--proxy") == 0) {
			if (parse_hostport(v, &o.proxy_host, &o.proxy_port))
				usage();
		} else if (strcmp(a, "--target") == 0)
			o.target = v;
		else if (strcmp(a, "--sni") == 0)
			o.sni = v;
		else if (strcmp(a, "--ca") == 0)
			o.ca = v;
		else if (strcmp(a, "--path") == 0)
			o.path = v;
		else if (strcmp(a, "--label") == 0)
			o.label = v;
		else if (strcmp(a, "-n") == 0)
			o.n = atol(v);
		else if (strcmp(a, "-c") == 0)
			o.c = atol(v);
		else if (strcmp(a, "--hold") == 0)
			o.hold = atol(v);
		else if (strcmp(a, "--hold-secs") == 0)
			o.hold_secs = atoi(v);
		else if (strcmp(a, "--first-index") == 0)
			o.first_index = atol(v);
		else if (strcmp(a, "--timeout") == 0)
			o.timeout = atoi(v);
		else if (strcmp(a, "--mint") == 0)
			o.mint = atol(v);
		else
			usage();
	}
	if (o.mint > 0)
		return mint(o.mint);
	if (o.target == NULL || o.sni == NULL || o.ca == NULL || o.n < 1 ||
	    o.c < 1)
		usage();
	if (strcmp(o.path, "sse") != 0 && strcmp(o.path, "1mib") != 0 &&
	    strcmp(o.path, "dribble") != 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (o.proxy_host != NULL) {
		dhost = o.proxy_host;
		dport = o.proxy_port;
	} else if (parse_hostport(o.target, &dhost, &dport) != 0)
		usage();
	memset(&dest, 0, sizeof(dest));
	dest.sin_family = AF_INET;
	dest.sin_port = htons((uint16_t)dport);
	if (inet_pton(AF_INET, dhost, &dest.sin_addr) != 1) {
		fprintf(stderr, "loadgen: %s: want a numeric IPv4 address\n",
		    dhost);
		return 2;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_load_verify_locations(ctx, o.ca, NULL) != 1) {
		fprintf(stderr, "loadgen: cannot load CA file %s\n", o.ca);
		return 2;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if ((base = event_base_new()) == NULL)
		return 1;
	want = o.hold > 0 ? o.hold : o.n;
	if ((lat = calloc((size_t)want, sizeof(*lat))) == NULL)
		abort();
	hold_timer = evtimer_new(base, hold_cb, NULL);
	deadline = evtimer_new(base, deadline_cb, NULL);
	{
		struct timeval tv = {o.timeout, 0};

		evtimer_add(deadline, &tv);
	}
	next_index = o.first_index;
	t_start = mono_us();
	if (o.hold > 0) {
		o.n = o.hold;
		o.c = o.hold;
	}
	for (k = 0; k < o.c && k < want; k++)
		conn_start();
	event_base_dispatch(base);
	if (!finished) {
		snprintf(first_error, sizeof(first_error), "loop ended early");
		errors += want - done;
		finish();
	}
	return errors > 0 ? 1 : 0;
}
