/*
 * Unit tests of meter.c itself: the Responses API over a WebSocket (frames
 * built here, masked client frames, permessage-deflate with context
 * takeover; one record per response.completed, a cut response
 * "incomplete"), the body cap ("body too large to meter"), a gzip request
 * body, the tag from the CONNECT's Proxy-Authorization, a host without a
 * provider, JSON sniffed without a Content-Type, an unknown
 * Content-Encoding, and the hook table.
 */
#include <sys/socket.h>

#include <limits.h>

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
static void
hook_exchange(
    struct meter *m, struct exchange_conn *conn, const char *body, size_t len)
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
test_hooks_engine_exchange(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct exchange_conn conn;
	struct meter_options opt;
	struct mt_result res;
	struct meter *m;
	void *cached;
	char cwd[PATH_MAX];
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	int lfd, cfd, afd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(lfd, 1), 0);
	CHECK_INT(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_INT(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	afd = accept(lfd, NULL, NULL);
	memset(&conn, 0, sizeof(conn));
	conn.id = 7;
	snprintf(conn.local_addr, sizeof(conn.local_addr), "127.0.0.1");
	conn.local_port = ntohs(sa.sin_port);
	sl = sizeof(sa);
	CHECK_INT(getsockname(cfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(conn.client_addr, sizeof(conn.client_addr), "127.0.0.1");
	conn.client_port = ntohs(sa.sin_port);

	memset(&opt, 0, sizeof(opt));
	opt.resolve_process = 1;
	memset(&res, 0, sizeof(res));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, &res);
	hook_exchange(m, &conn, body, len);
	cached = conn.data;
	CHECK(cached != NULL);
	/* A second exchange on the connection reuses the lookup. */
	hook_exchange(m, &conn, body, len);
	CHECK(conn.data == cached);
	CHECK_INT(res.n, 2);
	CHECK_INT(meter_records(m), 2);
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
#if defined(__linux__)
		CHECK_INT(r->pid, (long long)getpid());
		CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
		CHECK_STR(r->cwd, cwd);
		CHECK(r->process != NULL &&
		    strncmp(r->process, "test-meter", 10) == 0);
#else
		(void)cwd;
#endif
		CHECK_STR(res.rec[0].uuid[0] != '\0' ? "ok" : NULL, "ok");
		CHECK(strcmp(res.rec[0].uuid, r->uuid) != 0);
	}
	mt_result_free(&res);
	exchange_conn_clear(&conn);
	meter_free(m);
	close(afd);
	close(cfd);
	close(lfd);
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
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
