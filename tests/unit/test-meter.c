/*
 * Unit tests of meter.c itself: the Responses API over a WebSocket (frames
 * built here, masked client frames, permessage-deflate with context
 * takeover; one record per response.completed, a cut response
 * "incomplete"), the body cap ("body too large to meter"), a gzip request
 * body, the tag from the CONNECT's Proxy-Authorization, a host without a
 * provider, JSON sniffed without a Content-Type, an unknown
 * Content-Encoding, and the hook table; the process lookup off the event
 * loop (one per connection, on the worker thread, records waiting for it
 * emitted by meter_poll and meter_free).
 */
#include <sys/socket.h>

#include <limits.h>
#include <pthread.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "harness.h"
#include "meter-test.h"
#include "halton/http1.h"
/* The engine's private constructors, to drive the real hook table. */
#include "../../src/engine/exchange-priv.h"

/* permessage-deflate sender: one raw deflate stream (context takeover). */
struct pmd {
	z_stream z;
};

static void
pmd_init(struct pmd *p)
{
	memset(p, 0, sizeof(*p));
	deflateInit2(&p->z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
}

/* Compresses one message; RFC 7692 drops the trailing 00 00 ff ff. */
static void
pmd_compress(struct pmd *p, const char *msg, struct strbuf *out)
{
	unsigned char buf[8192];

	p->z.next_in = (Bytef *)(uintptr_t)msg;
	p->z.avail_in = (uInt)strlen(msg);
	p->z.next_out = buf;
	p->z.avail_out = sizeof(buf);
	deflate(&p->z, Z_SYNC_FLUSH);
	strbuf_add(out, buf, sizeof(buf) - p->z.avail_out - 4);
}

/* Appends one text frame (FIN set). */
static void
ws_frame(
    struct strbuf *out, const char *payload, size_t len, int masked, int rsv1)
{
	static const unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
	unsigned char h[14];
	size_t n = 0, i;

	h[n++] = (unsigned char)(0x81 | (rsv1 ? 0x40 : 0));
	if (len < 126) {
		h[n++] = (unsigned char)((masked ? 0x80 : 0) | len);
	} else {
		h[n++] = (unsigned char)((masked ? 0x80 : 0) | 126);
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	}
	if (masked) {
		memcpy(h + n, key, 4);
		n += 4;
	}
	strbuf_add(out, h, n);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)payload[i];

		if (masked)
			c ^= key[i % 4];
		strbuf_add(out, &c, 1);
	}
}

static void
ws_message(struct strbuf *out, struct pmd *p, const char *msg, int masked)
{
	struct strbuf c;

	strbuf_init(&c);
	pmd_compress(p, msg, &c);
	ws_frame(out, c.data, c.len, masked, 1);
	strbuf_free(&c);
}

static const char *const ws_req[] = {"user-agent",
    "codex_cli_rs/0.118.0 (Debian 12; x86_64)", "authorization",
    "Bearer sk-codex-meter-test", "upgrade", "websocket", "connection",
    "Upgrade", "openai-beta", "responses_websockets=2026-02-06", NULL};
static const char *const ws_resp[] = {"upgrade", "websocket",
    "sec-websocket-extensions", "permessage-deflate", NULL};

#define MINI_CREATE                                                            \
	"{\"type\":\"response.create\",\"model\":\"gpt-5.1-codex-mini\"}"

#define RESP_DONE(id, model, in, cached, out, reasoning)                       \
	"{\"type\":\"response.completed\",\"sequence_number\":9,"              \
	"\"response\":{\"id\":\"" id "\",\"object\":\"response\","             \
	"\"status\":\"completed\",\"model\":\"" model "\",\"usage\":"          \
	"{\"input_tokens\":" in ",\"input_tokens_details\":"                   \
	"{\"cached_tokens\":" cached "},\"output_tokens\":" out ","            \
	"\"output_tokens_details\":{\"reasoning_tokens\":" reasoning "},"      \
	"\"total_tokens\":0}}}"

/* Only the client's side of a socket (no answer ever came): still one
 * record, without usage. */
static void
ws_run_client_only(struct mt_result *res)
{
	struct mt_exchange x;
	struct meter_options opt;
	struct meter *m;
	struct meter_exchange *mx;
	struct strbuf up;
	struct pmd pu;

	memset(&x, 0, sizeof(x));
	x.host = "api.openai.com";
	x.method = "GET";
	x.target = "/v1/responses";
	x.req_headers = ws_req;
	x.status = 101;
	x.resp_headers = ws_resp;
	strbuf_init(&up);
	pmd_init(&pu);
	ws_message(&up, &pu,
	    "{\"type\":\"response.create\",\"model\":\"gpt-5.1-codex\"}", 1);
	ws_frame(&up, MINI_CREATE, strlen(MINI_CREATE), 1, 0);
	memset(&opt, 0, sizeof(opt));
	memset(res, 0, sizeof(*res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, res);
	mx = mt_start(m, &x);
	meter_exchange_upgraded(mx, 1, up.data, up.len);
	strbuf_free(&up);
	deflateEnd(&pu.z);
	mt_end(mx, &x, 0);
	meter_free(m);
}

/* Feeds a realistic interleaving: each client request, then the server's
 * answer, byte by byte or whole. */
static void
ws_run_interleaved(int bytewise, struct mt_result *res)
{
	struct mt_exchange x;
	struct meter_options opt;
	struct meter *m;
	struct meter_exchange *mx;
	struct strbuf seg[6];
	struct pmd pu, pd;
	size_t i, k;
	int dir[6] = {1, 0, 1, 0, 1, 0};

	memset(&x, 0, sizeof(x));
	x.host = "api.openai.com";
	x.method = "GET";
	x.target = "/v1/responses";
	x.req_headers = ws_req;
	x.status = 101;
	x.resp_headers = ws_resp;
	x.engine_error = "client closed";
	for (k = 0; k < 6; k++)
		strbuf_init(&seg[k]);
	pmd_init(&pu);
	pmd_init(&pd);
	ws_message(&seg[0], &pu,
	    "{\"type\":\"response.create\",\"model\":"
	    "\"gpt-5.1-codex\",\"input\":[]}",
	    1);
	ws_message(&seg[1], &pd,
	    "{\"type\":\"response.created\","
	    "\"response\":{\"id\":\"resp_ws1\",\"model\":\"gpt-5.1-codex\","
	    "\"status\":\"in_progress\",\"usage\":null}}",
	    0);
	ws_message(&seg[1], &pd,
	    "{\"type\":\"response.output_text.delta\","
	    "\"delta\":\"Fixture\"}",
	    0);
	ws_message(&seg[1], &pd,
	    RESP_DONE("resp_ws1", "gpt-5.1-codex", "1000", "200", "50", "10"),
	    0);
	ws_frame(&seg[2], MINI_CREATE, strlen(MINI_CREATE), 1, 0);
	ws_message(&seg[3], &pd,
	    "{\"type\":\"response.created\","
	    "\"response\":{\"id\":\"resp_ws2\",\"status\":\"in_progress\"}}",
	    0);
	ws_message(&seg[3], &pd,
	    RESP_DONE("resp_ws2", "gpt-5.1-codex-mini", "300", "0", "20", "0"),
	    0);
	ws_message(&seg[4], &pu,
	    "{\"type\":\"response.create\",\"model\":"
	    "\"gpt-5.1-codex\"}",
	    1);
	ws_message(&seg[5], &pd,
	    "{\"type\":\"response.created\","
	    "\"response\":{\"id\":\"resp_ws3\",\"status\":\"in_progress\"}}",
	    0);

	memset(&opt, 0, sizeof(opt));
	memset(res, 0, sizeof(*res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, res);
	mx = mt_start(m, &x);
	for (k = 0; k < 6; k++) {
		if (bytewise)
			for (i = 0; i < seg[k].len; i++)
				meter_exchange_upgraded(
				    mx, dir[k], seg[k].data + i, 1);
		else
			meter_exchange_upgraded(
			    mx, dir[k], seg[k].data, seg[k].len);
		strbuf_free(&seg[k]);
	}
	deflateEnd(&pu.z);
	deflateEnd(&pd.z);
	mt_end(mx, &x, 0);
	meter_free(m);
}

static void
test_websocket_responses(void)
{
	struct mt_result res;
	int bytewise;

	ws_run_client_only(&res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "responses");
		CHECK_INT(res.rec[0].status, 101);
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].request_model, "gpt-5.1-codex-mini");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	for (bytewise = 0; bytewise <= 1; bytewise++) {
		ws_run_interleaved(bytewise, &res);
		CHECK_INT(res.n, 3);
		if (res.n != 3) {
			mt_result_free(&res);
			continue;
		}
		CHECK_STR(res.rec[0].provider, "openai");
		CHECK_STR(res.rec[0].kind, "responses");
		CHECK_INT(res.rec[0].stream, 1);
		CHECK_STR(res.rec[0].client, "codex");
		CHECK_STR(res.rec[0].request_model, "gpt-5.1-codex");
		CHECK_STR(res.rec[0].request_id, "resp_ws1");
		CHECK_INT(res.rec[0].input_tokens, 800);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 200);
		CHECK_INT(res.rec[0].output_tokens, 50);
		CHECK_INT(res.rec[0].reasoning_tokens, 10);
		CHECK_STR(res.rec[0].error, NULL);
		CHECK_STR(res.rec[1].request_model, "gpt-5.1-codex-mini");
		CHECK_STR(res.rec[1].model, "gpt-5.1-codex-mini");
		CHECK_STR(res.rec[1].request_id, "resp_ws2");
		CHECK_INT(res.rec[1].input_tokens, 300);
		CHECK_INT(res.rec[1].output_tokens, 20);
		CHECK_STR(res.rec[1].client, "codex");
		CHECK_STR(res.rec[1].key_fp, res.rec[0].key_fp);
		CHECK(strcmp(res.rec[0].uuid, res.rec[1].uuid) != 0);
		CHECK_STR(res.rec[2].error, "incomplete");
		CHECK_STR(res.rec[2].request_id, "resp_ws3");
		CHECK_INT(res.rec[2].input_tokens, -1);
		mt_result_free(&res);
	}
}

static void
test_body_cap(void)
{
	static const char *const hdrs[] = {
	    "content-type", "application/json", NULL};
	static const char *const req[] = {
	    "content-type", "application/json", NULL};
	struct mt_exchange x;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	struct meter_exchange *mx;
	size_t len;
	char *body = mt_fixture("openai_chat_nonstream.json", &len);

	memset(&x, 0, sizeof(x));
	x.host = "api.openai.com";
	x.target = "/v1/chat/completions";
	x.req_headers = req;
	x.req_body = "{\"model\":\"gpt-5-nano\"}";
	x.status = 200;
	x.resp_headers = hdrs;
	memset(&opt, 0, sizeof(opt));
	opt.body_limit = 100;
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, NULL, &res);
	mx = mt_start(m, &x);
	meter_exchange_response_body(mx, body, len);
	mt_end(mx, &x, len);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "body too large to meter");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].request_model, "gpt-5-nano");
	}
	mt_result_free(&res);
	CHECK_INT(meter_records(m), 1);

	/* The same body under a cap it fits. */
	opt.body_limit = len;
	meter_free(m);
	m = meter_new(&opt, mt_record_cb, NULL, &res);
	mx = mt_start(m, &x);
	meter_exchange_response_body(mx, body, len);
	mt_end(mx, &x, len);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, NULL);
		CHECK_INT(res.rec[0].output_tokens, 100);
	}
	mt_result_free(&res);
	meter_free(m);
	free(body);
}

static void
test_gzip_request_and_tag(void)
{
	static const char *const req[] = {"content-type", "application/json",
	    "content-encoding", "gzip", "user-agent", "curl/8.5.0", NULL};
	static const char *const hdrs[] = {
	    "content-type", "application/json", NULL};
	static const char reqjson[] = "{\"model\":\"claude-sonnet-4-5\","
	                              "\"stream\":false,\"max_tokens\":5}";
	struct mt_exchange x;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	struct meter_exchange *mx;
	size_t len, zlen = 0;
	char *body = mt_fixture("anthropic_message.json", &len);
	unsigned char *z =
	    mt_deflate_per_event(reqjson, strlen(reqjson), 31, &zlen);

	memset(&x, 0, sizeof(x));
	x.host = "api.anthropic.com";
	x.target = "/v1/messages";
	x.req_headers = req;
	x.status = 100; /* 100 Continue first, then the body, then 200 */
	x.resp_headers = hdrs;
	/* base64("team%2Fa:x") */
	x.connect_auth = "Basic dGVhbSUyRmE6eA==";
	memset(&opt, 0, sizeof(opt));
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, NULL, &res);
	mx = mt_start(m, &x);
	meter_exchange_request_body(mx, z, zlen);
	meter_exchange_response_head(mx, 200, NULL, 0);
	meter_exchange_response_body(mx, body, len);
	mt_end(mx, &x, len);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].request_model, "claude-sonnet-4-5");
		CHECK_INT(res.rec[0].stream, 0);
		CHECK_STR(res.rec[0].tag, "team/a");
		CHECK_STR(res.rec[0].client, "curl");
		CHECK_STR(res.rec[0].user_agent, "curl/8.5.0");
		CHECK_INT(res.rec[0].output_tokens, 29);
		CHECK_STR(res.rec[0].key_fp, NULL);
	}
	mt_result_free(&res);
	meter_free(m);
	free(z);
	free(body);
}

static void
test_unknown_host_and_sniffing(void)
{
	static const char *const none[] = {NULL};
	static const char *const weird[] = {"content-type", "application/json",
	    "content-encoding", "snappy", NULL};
	struct mt_exchange x;
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("openai_chat_nonstream.json", &len);

	memset(&x, 0, sizeof(x));
	x.host = "llm.example.internal";
	x.target = "/v1/chat/completions";
	x.req_body = "{\"model\":\"x\"}";
	x.status = 200;
	x.resp_headers = none;
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].provider, NULL);
		CHECK_STR(res.rec[0].kind, "other");
		CHECK_STR(res.rec[0].host, "llm.example.internal");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	/* No Content-Type: JSON recognised from the first byte. */
	x.host = "api.openai.com";
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].input_tokens, 476);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	/* An encoding the meter cannot undo: recorded, nothing invented. */
	x.resp_headers = weird;
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK(res.rec[0].error != NULL &&
		    strncmp(res.rec[0].error, "parse error: content-encoding",
		        29) == 0);
		CHECK_INT(res.rec[0].input_tokens, -1);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_no_secrets_in_record(void)
{
	static const char *const req[] = {"content-type", "application/json",
	    "x-api-key", "sk-ant-api03-SECRETSECRETSECRET", NULL};
	static const char *const hdrs[] = {
	    "content-type", "text/event-stream", NULL};
	struct mt_exchange x;
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	struct usage_record *r;
	const char *strs[8];
	size_t i;

	memset(&x, 0, sizeof(x));
	x.host = "api.anthropic.com";
	x.target = "/v1/messages";
	x.req_headers = req;
	x.req_body = "{\"model\":\"claude-opus-4-5\",\"stream\":true,"
	             "\"messages\":[{\"role\":\"user\",\"content\":"
	             "\"PROMPT-SENTENCE-42\"}]}";
	x.status = 200;
	x.resp_headers = hdrs;
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		r = &res.rec[0];
		strs[0] = r->usage_json;
		strs[1] = r->key_fp;
		strs[2] = r->error;
		strs[3] = r->stop_reason;
		strs[4] = r->model;
		strs[5] = r->request_model;
		strs[6] = r->path;
		strs[7] = r->user_agent;
		for (i = 0; i < 8; i++) {
			if (strs[i] == NULL)
				continue;
			CHECK(strstr(strs[i], "SECRET") == NULL);
			CHECK(strstr(strs[i], "PROMPT-SENTENCE") == NULL);
			CHECK(strstr(strs[i], "Fixture answer") == NULL);
		}
		CHECK(r->usage_json != NULL);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_hooks_table(void)
{
	const struct exchange_hooks *h = meter_hooks();

	CHECK(h != NULL);
	CHECK(h->intercept != NULL && h->request_head != NULL &&
	    h->request_body != NULL && h->response_head != NULL &&
	    h->response_body != NULL && h->end != NULL &&
	    h->upgraded_data != NULL);
}

/* One exchange through the real hook table and the engine's struct
 * exchange, on a connection whose client end is a real loopback socket of
 * this process. */
static void wait_worker_in_gate(void);

/* One whole exchange through the hook table.  With hold_worker, the end
 * hook runs only once the worker thread is inside the test's lookup (held
 * at the gate), so the lookup is running, not merely queued. */
static void
hook_exchange_at(struct meter *m, struct exchange_conn *conn, const char *body,
    size_t len, int hold_worker)
{
	static const char reqhead[] =
	    "POST /v1/messages?beta=true HTTP/1.1\r\n"
	    "Host: api.anthropic.com\r\n"
	    "Content-Type: application/json\r\n"
	    "User-Agent: claude-cli/2.1.105 (external, cli)\r\n"
	    "X-Api-Key: abc\r\n"
	    "Proxy-Authorization: Basic YWxpY2U6\r\n\r\n";
	static const char reqbody[] = "{\"model\":\"claude-opus-4-5\","
	                              "\"stream\":true}";
	static const char resphead[] = "HTTP/1.1 200 OK\r\n"
	                               "Content-Type: text/event-stream\r\n"
	                               "request-id: req_hook\r\n\r\n";
	const struct exchange_hooks *h = meter_hooks();
	struct http1_request req;
	struct http1_response res;
	struct exchange *ex;
	size_t i;

	CHECK(http1_parse_request(reqhead, sizeof(reqhead) - 1, &req) > 0);
	CHECK(http1_parse_response(resphead, sizeof(resphead) - 1, &res) > 0);
	CHECK_INT(h->intercept(m, "api.anthropic.com", 443), 1);
	ex = exchange_new(
	    conn, "api.anthropic.com", 443, &req, "/v1/messages?beta=true", 22);
	h->request_head(m, ex);
	if (hold_worker)
		wait_worker_in_gate();
	h->request_body(m, ex, reqbody, sizeof(reqbody) - 1);
	exchange_set_response(ex, &res);
	h->response_head(m, ex);
	for (i = 0; i < len; i += 7)
		h->response_body(m, ex, body + i, len - i < 7 ? len - i : 7);
	h->end(m, ex, NULL);
	CHECK(exchange_data(ex) == NULL);
	exchange_free(ex);
}

static void
hook_exchange(
    struct meter *m, struct exchange_conn *conn, const char *body, size_t len)
{
	hook_exchange_at(m, conn, body, len, 0);
}

/* A real loopback TCP connection whose client end is this process, and the
 * engine's connection record for it. */
struct loop_conn {
	int lfd, cfd, afd;
	struct exchange_conn conn;
};

static void
loop_conn_open(struct loop_conn *lc, uint64_t id)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(lc, 0, sizeof(*lc));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lc->lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT(bind(lc->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(lc->lfd, 1), 0);
	CHECK_INT(getsockname(lc->lfd, (struct sockaddr *)&sa, &sl), 0);
	lc->cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT(connect(lc->cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	lc->afd = accept(lc->lfd, NULL, NULL);
	CHECK(lc->afd >= 0);
	lc->conn.id = id;
	snprintf(lc->conn.local_addr, sizeof(lc->conn.local_addr), "127.0.0.1");
	lc->conn.local_port = ntohs(sa.sin_port);
	sl = sizeof(sa);
	CHECK_INT(getsockname(lc->cfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(
	    lc->conn.client_addr, sizeof(lc->conn.client_addr), "127.0.0.1");
	lc->conn.client_port = ntohs(sa.sin_port);
}

static void
loop_conn_close(struct loop_conn *lc)
{
	exchange_conn_clear(&lc->conn);
	close(lc->afd);
	close(lc->cfd);
	close(lc->lfd);
}

/*
 * The test's process lookup: counts the lookups, notes the thread that ran
 * them, and (while the gate is closed) holds the worker before the real
 * lookup.  The wait is bounded so that a lookup wrongly run inside a hook
 * makes the test fail instead of hang.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int gate_closed;
	int entered; /* lookups that reached the gate off the main thread */
	int lookups;
	int on_main_thread;
	int polls;
	pthread_t main_thread;
} lt = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static int
test_lookup(const char *caddr, int cport, const char *saddr, int sport,
    struct attribution_process *out)
{
	struct timespec until;

	pthread_mutex_lock(&lt.lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	/* The gate holds the worker only: a lookup the end hook takes over
	 * runs on the loop's thread at once. */
	if (!pthread_equal(pthread_self(), lt.main_thread))
		lt.entered++;
	while (
	    lt.gate_closed && !pthread_equal(pthread_self(), lt.main_thread)) {
		if (pthread_cond_timedwait(&lt.cond, &lt.lock, &until) != 0)
			break;
	}
	lt.lookups++;
	if (pthread_equal(pthread_self(), lt.main_thread))
		lt.on_main_thread++;
	pthread_mutex_unlock(&lt.lock);
	return attribution_process_lookup(caddr, cport, saddr, sport, out);
}

static void
lt_reset(int closed)
{
	pthread_mutex_lock(&lt.lock);
	lt.gate_closed = closed;
	lt.entered = 0;
	lt.lookups = 0;
	lt.on_main_thread = 0;
	lt.polls = 0;
	lt.main_thread = pthread_self();
	pthread_mutex_unlock(&lt.lock);
}

static void
lt_open(void)
{
	pthread_mutex_lock(&lt.lock);
	lt.gate_closed = 0;
	pthread_cond_broadcast(&lt.cond);
	pthread_mutex_unlock(&lt.lock);
}

/* Waits (at most ~5 s) until the worker has reached the gate. */
static void
wait_worker_in_gate(void)
{
	struct timespec ms = {0, 1000000};
	int i, in = 0;

	for (i = 0; i < 5000 && !in; i++) {
		pthread_mutex_lock(&lt.lock);
		in = lt.entered > 0;
		pthread_mutex_unlock(&lt.lock);
		if (!in)
			nanosleep(&ms, NULL);
	}
	CHECK(in);
}

static int
lt_lookups(void)
{
	int n;

	pthread_mutex_lock(&lt.lock);
	n = lt.lookups;
	pthread_mutex_unlock(&lt.lock);
	return n;
}

static void
lt_poll_cb(void *arg)
{
	lt.polls++; /* on the loop (this) thread */
}

/* What the daemon's flush timer does: polls until no record waits (at
 * most ~10 s; the lookup itself takes milliseconds). */
static void
poll_until_idle(struct meter *m)
{
	struct timespec ms = {0, 1000000};
	int i;

	for (i = 0; i < 10000 && meter_pending(m) > 0; i++) {
		meter_poll(m);
		if (meter_pending(m) > 0)
			nanosleep(&ms, NULL);
	}
}

static void
meter_opts(struct meter_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->resolve_process = 1;
	opt->lookup = test_lookup;
	opt->poll_cb = lt_poll_cb;
}

/* The record carries this process (pid, executable, working directory). */
static void
check_own_process(const struct usage_record *r)
{
	char cwd[PATH_MAX];

#if defined(__linux__)
	CHECK_INT(r->pid, (long long)getpid());
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK_STR(r->cwd, cwd);
	CHECK(r->process != NULL && strncmp(r->process, "test-meter", 10) == 0);
	CHECK(r->project != NULL && r->project[0] != '\0');
#else
	(void)cwd;
	(void)r;
#endif
}

static void
test_hooks_engine_exchange(void)
{
	struct loop_conn lc;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	void *cached;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);

	loop_conn_open(&lc, 7);
	lt_reset(0);
	meter_opts(&opt);
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange(m, &lc.conn, body, len);
	cached = lc.conn.data;
	CHECK(cached != NULL);
	/* A second exchange on the connection reuses the lookup. */
	hook_exchange(m, &lc.conn, body, len);
	CHECK(lc.conn.data == cached);
	poll_until_idle(m);
	CHECK_INT(meter_pending(m), 0);
	CHECK_INT(res.n, 2);
	CHECK_INT(meter_records(m), 2);
	CHECK_INT(lt_lookups(), 1);
	CHECK_INT(meter_lookups(m), 1);
	if (res.n == 2) {
		struct usage_record *r = &res.rec[1];

		CHECK_STR(r->provider, "anthropic");
		CHECK_STR(r->path, "/v1/messages");
		CHECK_STR(r->request_model, "claude-opus-4-5");
		CHECK_INT(r->input_tokens, 41);
		CHECK_INT(r->output_tokens, 57);
		CHECK_STR(r->request_id, "req_hook");
		CHECK_STR(r->client, "claude-code");
		CHECK_STR(r->key_fp, "ba7816bf");
		CHECK_STR(r->tag, "alice");
		CHECK_INT(r->bytes_up, 0);
		CHECK(r->ttfb_ms == -1);
		CHECK(r->duration_ms >= 0);
		check_own_process(&res.rec[0]);
		check_own_process(r);
		CHECK_STR(res.rec[0].uuid[0] != '\0' ? "ok" : NULL, "ok");
		CHECK(strcmp(res.rec[0].uuid, r->uuid) != 0);
	}
	mt_result_free(&res);
	loop_conn_close(&lc);
	meter_free(m);
	free(body);
}

/*
 * The hooks never run the lookup: with the worker held at the gate, a
 * connection's exchanges all finish (the lookup count stays 0, nothing is
 * emitted yet, every record waits and poll_cb asked for a poll); once the
 * gate opens, one lookup on the worker thread attributes all of them, in
 * order, each exactly once.
 */
static void
test_lookup_off_loop(void)
{
	struct loop_conn lc;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	char *uuids[6];
	int i, j;

	loop_conn_open(&lc, 8);
	lt_reset(1);
	meter_opts(&opt);
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange_at(m, &lc.conn, body, len, 1);
	CHECK_INT(lt_lookups(), 0);
	CHECK_INT(meter_lookups(m) <= 1, 1);
	CHECK_INT(res.n, 0);
	CHECK_INT(meter_records(m), 0);
	CHECK_INT(meter_pending(m), 1);
	CHECK_INT(lt.polls, 1);
	meter_poll(m); /* the lookup is still held: nothing to emit */
	CHECK_INT(res.n, 0);
	for (i = 1; i < 6; i++)
		hook_exchange(m, &lc.conn, body, len);
	CHECK_INT(lt_lookups(), 0);
	CHECK_INT(res.n, 0);
	CHECK_INT(meter_pending(m), 6);
	CHECK_INT(lt.polls, 6);

	lt_open();
	poll_until_idle(m);
	CHECK_INT(meter_pending(m), 0);
	CHECK_INT(res.n, 6);
	CHECK_INT(meter_records(m), 6);
	CHECK_INT(lt_lookups(), 1);
	CHECK_INT(meter_lookups(m), 1);
	CHECK_INT(lt.on_main_thread, 0);
	for (i = 0; i < res.n; i++) {
		check_own_process(&res.rec[i]);
		CHECK_INT(res.rec[i].input_tokens, 41);
		uuids[i] = res.rec[i].uuid;
		for (j = 0; j < i; j++)
			CHECK(strcmp(uuids[i], uuids[j]) != 0);
		/* Emitted in the order the exchanges ended. */
		if (i > 0)
			CHECK(
			    res.rec[i].started_at >= res.rec[i - 1].started_at);
	}
	/* Another connection: one more lookup, emitted at once when the
	 * lookup has finished before the exchange ends. */
	{
		struct loop_conn lc2;

		loop_conn_open(&lc2, 9);
		hook_exchange(m, &lc2.conn, body, len);
		poll_until_idle(m);
		CHECK_INT(res.n, 7);
		CHECK_INT(lt_lookups(), 2);
		if (res.n == 7)
			check_own_process(&res.rec[6]);
		loop_conn_close(&lc2);
	}
	meter_free(m);
	CHECK_INT(res.n, 7);
	mt_result_free(&res);
	loop_conn_close(&lc);
	free(body);
}

static void *
gate_opener(void *arg)
{
	struct timespec ms = {0, 20 * 1000000};

	nanosleep(&ms, NULL);
	lt_open();
	return NULL;
}

/*
 * meter_free with a lookup still held: it waits for the worker, then emits
 * the waiting record with its process.  The connection outlives the meter
 * (its cached lookup is freed after).  A lookup that fails still emits
 * its record, pid -1.
 */
/*
 * A lookup the worker has not started when its exchange ends (the worker
 * is busy: here held inside another connection's lookup) is taken out of
 * the queue and run by the end hook, so a client that exits at once is
 * still attributed; the record is emitted at once, nothing waits.
 */
static void
test_end_runs_queued_lookup(void)
{
	struct loop_conn a, b;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);

	loop_conn_open(&a, 10);
	loop_conn_open(&b, 11);
	lt_reset(1);
	meter_opts(&opt);
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange_at(m, &a.conn, body, len, 1); /* worker held in a's */
	CHECK_INT(meter_pending(m), 1);
	hook_exchange(m, &b.conn, body, len);
	/* b's record went out at once, attributed on this thread. */
	CHECK_INT(res.n, 1);
	CHECK_INT(lt.on_main_thread, 1);
	CHECK_INT(meter_pending(m), 1);
	if (res.n == 1)
		check_own_process(&res.rec[0]);
	lt_open();
	poll_until_idle(m);
	CHECK_INT(res.n, 2);
	CHECK_INT(meter_lookups(m), 2);
	CHECK_INT(lt_lookups(), 2);
	if (res.n == 2)
		check_own_process(&res.rec[1]);
	meter_free(m);
	mt_result_free(&res);
	loop_conn_close(&a);
	loop_conn_close(&b);
	free(body);
}

static void
test_free_emits_pending(void)
{
	struct loop_conn lc;
	struct exchange_conn nobody;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	pthread_t opener;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);

	loop_conn_open(&lc, 10);
	lt_reset(1);
	meter_opts(&opt);
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange_at(m, &lc.conn, body, len, 1);
	hook_exchange(m, &lc.conn, body, len);
	CHECK_INT(res.n, 0);
	CHECK_INT(meter_pending(m), 2);
	CHECK_INT(pthread_create(&opener, NULL, gate_opener, NULL), 0);
	meter_free(m);
	pthread_join(opener, NULL);
	CHECK_INT(res.n, 2);
	CHECK_INT(lt_lookups(), 1);
	if (res.n == 2) {
		check_own_process(&res.rec[0]);
		check_own_process(&res.rec[1]);
	}
	mt_result_free(&res);
	loop_conn_close(&lc);

	/* Nobody owns 127.0.0.1:1 -> 127.0.0.1:2. */
	memset(&nobody, 0, sizeof(nobody));
	nobody.id = 11;
	snprintf(nobody.client_addr, sizeof(nobody.client_addr), "127.0.0.1");
	nobody.client_port = 1;
	snprintf(nobody.local_addr, sizeof(nobody.local_addr), "127.0.0.1");
	nobody.local_port = 2;
	lt_reset(0);
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange(m, &nobody, body, len);
	meter_free(m);
	CHECK_INT(res.n, 1);
	CHECK_INT(lt_lookups(), 1);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].pid, -1);
		CHECK_STR(res.rec[0].process, NULL);
		CHECK_STR(res.rec[0].cwd, NULL);
		CHECK_INT(res.rec[0].input_tokens, 41);
	}
	mt_result_free(&res);
	exchange_conn_clear(&nobody);
	free(body);
}

/* Without resolve_process no lookup is queued and no record waits. */
static void
test_no_resolve(void)
{
	struct loop_conn lc;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);

	loop_conn_open(&lc, 12);
	lt_reset(0);
	meter_opts(&opt);
	opt.resolve_process = 0;
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange(m, &lc.conn, body, len);
	CHECK_INT(res.n, 1);
	CHECK_INT(meter_pending(m), 0);
	CHECK_INT(lt.polls, 0);
	if (res.n == 1)
		CHECK_INT(res.rec[0].pid, -1);
	meter_free(m);
	CHECK_INT(lt_lookups(), 0);
	mt_result_free(&res);
	loop_conn_close(&lc);
	free(body);
}

static const struct test tests[] = {
    TEST(test_websocket_responses),
    TEST(test_body_cap),
    TEST(test_gzip_request_and_tag),
    TEST(test_unknown_host_and_sniffing),
    TEST(test_no_secrets_in_record),
    TEST(test_hooks_table),
    TEST(test_hooks_engine_exchange),
    TEST(test_lookup_off_loop),
    TEST(test_end_runs_queued_lookup),
    TEST(test_free_emits_pending),
    TEST(test_no_resolve),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
