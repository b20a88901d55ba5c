/*
 * Unit tests of provider-anthropic through meter.c: fixtures of
 * tests/fixtures/wire/meter fed whole, split at every byte offset and byte
 * by byte, CR/CRLF framing, gzip/zstd/br flushed per event, cumulative
 * message_delta usage, iterations[], errors mid-stream and truncation.
 */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "cJSON.h"
#include "harness.h"
#include "meter-test.h"

static const char *const json_hdrs[] = {"content-type", "application/json",
    "request-id", "req_011MeterHeaderId", NULL};
static const char *const sse_hdrs[] = {"content-type",
    "text/event-stream; charset=utf-8", "request-id", "req_011MeterSse", NULL};
static const char *const req_hdrs[] = {"content-type", "application/json",
    "user-agent", "claude-cli/2.1.105 (external, cli)", "x-api-key",
    "sk-ant-api03-meter-test-key", "x-claude-code-session-id",
    "6f1c2d4e-0000-4000-8000-meter0000001", NULL};

static struct mt_exchange
messages(const char *body_model, int stream, const char *const *resp)
{
	static char req[256];
	struct mt_exchange x;

	snprintf(req, sizeof(req),
	    "{\"model\":\"%s\",\"max_tokens\":1024,\"stream\":%s,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}",
	    body_model, stream ? "true" : "false");
	memset(&x, 0, sizeof(x));
	x.host = "api.anthropic.com";
	x.method = "POST";
	x.target = "/v1/messages?beta=true";
	x.req_headers = req_hdrs;
	x.req_body = req;
	x.status = 200;
	x.resp_headers = resp;
	return x;
}

static void
test_nonstream(void)
{
	struct mt_exchange x = messages("claude-sonnet-4-5", 0, json_hdrs);
	struct mt_result res;
	struct usage_record *r;
	size_t len;
	char *body = mt_fixture("anthropic_message.json", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		r = &res.rec[0];
		CHECK_STR(r->provider, "anthropic");
		CHECK_STR(r->kind, "messages");
		CHECK_STR(r->path, "/v1/messages");
		CHECK_INT(r->stream, 0);
		CHECK_INT(r->status, 200);
		CHECK_STR(r->request_model, "claude-sonnet-4-5");
		CHECK_STR(r->model, "claude-sonnet-4-5-20250929");
		CHECK_INT(r->input_tokens, 12);
		CHECK_INT(r->output_tokens, 29);
		CHECK_INT(r->cache_creation_input_tokens, 120);
		CHECK_INT(r->cache_creation_5m_tokens, 100);
		CHECK_INT(r->cache_creation_1h_tokens, 20);
		CHECK_INT(r->cache_read_input_tokens, 300);
		CHECK_INT(r->reasoning_tokens, -1);
		CHECK_INT(r->web_search_requests, 2);
		CHECK_STR(r->stop_reason, "end_turn");
		CHECK_STR(r->service_tier, "standard");
		CHECK_STR(r->request_id, "req_011MeterHeaderId");
		CHECK_STR(r->error, NULL);
		CHECK_STR(r->client, "claude-code");
		CHECK_STR(r->client_version, "2.1.105");
		CHECK_STR(
		    r->session_id, "6f1c2d4e-0000-4000-8000-meter0000001");
		CHECK(r->key_fp != NULL && strlen(r->key_fp) == 8);
		CHECK(r->usage_json != NULL &&
		    strstr(r->usage_json, "\"web_fetch_requests\":1") != NULL);
		CHECK_INT(r->duration_ms, 42);
		CHECK_INT(r->bytes_down, (long long)len);
	}
	mt_result_free(&res);
	free(body);
}

static void
check_cumulative(const struct usage_record *r)
{
	CHECK_STR(r->kind, "messages");
	CHECK_INT(r->stream, 1);
	CHECK_STR(r->model, "claude-opus-4-5-20251101");
	CHECK_STR(r->request_model, "claude-opus-4-5");
	/* Last non-null wins: 41 replaces 40; null cache fields keep the
	 * message_start values; nothing is summed. */
	CHECK_INT(r->input_tokens, 41);
	CHECK_INT(r->output_tokens, 57);
	CHECK_INT(r->cache_creation_input_tokens, 50);
	CHECK_INT(r->cache_creation_5m_tokens, 50);
	CHECK_INT(r->cache_creation_1h_tokens, 0);
	CHECK_INT(r->cache_read_input_tokens, 1000);
	CHECK_INT(r->reasoning_tokens, 20);
	CHECK_INT(r->web_search_requests, 2);
	CHECK_STR(r->stop_reason, "end_turn");
	CHECK_STR(r->error, NULL);
}

/* usage_json is written by the meter's own printer: byte for byte what
 * cJSON_PrintUnformatted makes of it (nested objects, arrays, strings). */
static void
check_usage_json_is_cjson(const char *usage_json)
{
	cJSON *j;
	char *again;

	CHECK(usage_json != NULL && strchr(usage_json, '{') != NULL);
	if (usage_json == NULL)
		return;
	CHECK((j = cJSON_Parse(usage_json)) != NULL);
	if (j == NULL)
		return;
	again = cJSON_PrintUnformatted(j);
	CHECK_STR(usage_json, again);
	cJSON_free(again);
	cJSON_Delete(j);
}

static void
test_stream_cumulative(void)
{
	struct mt_exchange x = messages("claude-opus-4-5", 1, sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		check_cumulative(&res.rec[0]);
		check_usage_json_is_cjson(res.rec[0].usage_json);
	}
	mt_result_free(&res);
	free(body);
}

/* Rewrites LF line ends as CRLF (crlf = 1) or CR (crlf = 0). */
static char *
relineend(const char *s, size_t len, int crlf, size_t *outlen)
{
	char *out = xmalloc(len * 2 + 1), *o = out;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n') {
			*o++ = '\r';
			if (crlf)
				*o++ = '\n';
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

static void
test_stream_crlf_cr(void)
{
	struct mt_exchange x = messages("claude-opus-4-5", 1, sse_hdrs);
	struct mt_result res;
	size_t len, n = 0;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	char *v;
	int crlf;

	for (crlf = 0; crlf <= 1; crlf++) {
		v = relineend(body, len, crlf, &n);
		mt_run_all_splits(&x, v, n, &res);
		if (res.n == 1)
			check_cumulative(&res.rec[0]);
		mt_result_free(&res);
		free(v);
	}
	free(body);
}

static void
test_stream_gzip_deflate_per_event(void)
{
	static const char *const gz_hdrs[] = {"content-type",
	    "text/event-stream", "content-encoding", "gzip", NULL};
	static const char *const df_hdrs[] = {"content-type",
	    "text/event-stream", "content-encoding", "deflate", NULL};
	struct mt_exchange x = messages("claude-opus-4-5", 1, gz_hdrs);
	struct mt_result res;
	size_t len, n = 0;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	unsigned char *enc;

	enc = mt_deflate_per_event(body, len, 31, &n);
	CHECK(enc != NULL && n > 20);
	mt_run_all_splits(&x, enc, n, &res);
	if (res.n == 1)
		check_cumulative(&res.rec[0]);
	mt_result_free(&res);
	free(enc);

	x.resp_headers = df_hdrs;
	enc = mt_deflate_per_event(body, len, 15, &n);
	mt_run_all_splits(&x, enc, n, &res);
	if (res.n == 1)
		check_cumulative(&res.rec[0]);
	mt_result_free(&res);
	free(enc);
	free(body);
}

/* zstd with a flush after each event, encoded here. */
static unsigned char *
zstd_per_event(const char *sse, size_t len, size_t *outlen)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(len) + 4096, start = 0, i;
	unsigned char *out = xmalloc(cap);
	ZSTD_outBuffer ob = {out, cap, 0};
	ZSTD_inBuffer ib;

	for (i = 2; i <= len; i++) {
		if (i != len && !(sse[i - 1] == '\n' && sse[i - 2] == '\n'))
			continue;
		ib.src = sse + start;
		ib.size = i - start;
		ib.pos = 0;
		while (ib.pos < ib.size)
			(void)ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_flush);
		(void)ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_flush);
		start = i;
	}
	ib.src = NULL;
	ib.size = 0;
	ib.pos = 0;
	while (ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end) != 0)
		;
	ZSTD_freeCCtx(c);
	*outlen = ob.pos;
	return out;
}

static void
test_stream_zstd_per_event(void)
{
	static const char *const hdrs[] = {"content-type", "text/event-stream",
	    "content-encoding", "zstd", NULL};
	struct mt_exchange x = messages("claude-opus-4-5", 1, hdrs);
	struct mt_result res;
	size_t len, n = 0;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	unsigned char *enc = zstd_per_event(body, len, &n);

	mt_run_all_splits(&x, enc, n, &res);
	if (res.n == 1)
		check_cumulative(&res.rec[0]);
	mt_result_free(&res);
	free(enc);
	free(body);
}

/* Brotli: no encoder is linked, so the decoder fixture of the parsers
 * (anthropic_stream_basic.sse, flushed per event) is used. */
static void
test_stream_brotli(void)
{
	static const char *const hdrs[] = {"content-type", "text/event-stream",
	    "content-encoding", "br", NULL};
	struct mt_exchange x = messages("claude-sonnet-4-5", 1, hdrs);
	struct mt_result res;
	size_t len;
	char *body = harness_read_file(
	    "tests/fixtures/wire/anthropic_stream_basic.sse.br", &len);

	CHECK(body != NULL);
	if (body == NULL)
		return;
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].input_tokens, 25);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 1800);
		CHECK_INT(res.rec[0].output_tokens, 9);
		CHECK_STR(res.rec[0].model, "claude-sonnet-4-5-20250929");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_iterations(void)
{
	struct mt_exchange x = messages("claude-opus-4-6", 1, sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_stream_iterations.sse", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		/* Compaction: billed usage is the sum over iterations. */
		CHECK_INT(res.rec[0].input_tokens, 60385 + 612);
		CHECK_INT(res.rec[0].output_tokens, 3000 + 100);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 0);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_error_midstream(void)
{
	struct mt_exchange x = messages("claude-haiku-4-5", 1, sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_stream_error_midstream.sse", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "overloaded_error");
		CHECK_INT(res.rec[0].status, 200);
		CHECK_INT(res.rec[0].input_tokens, 11);
		CHECK_INT(res.rec[0].output_tokens, 1);
		CHECK_STR(res.rec[0].model, "claude-haiku-4-5-20251001");
	}
	mt_result_free(&res);
	/* The connection then drops: the provider's error stays. */
	x.engine_error = "incomplete";
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1)
		CHECK_STR(res.rec[0].error, "overloaded_error");
	mt_result_free(&res);
	free(body);
}

static void
test_truncated(void)
{
	struct mt_exchange x = messages("claude-opus-4-5", 1, sse_hdrs);
	struct mt_result res;
	size_t len, cut;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);
	const char *stop = strstr(body, "event: message_stop");
	const char *first_delta = strstr(body, "event: ping");

	CHECK(stop != NULL && first_delta != NULL);
	if (stop == NULL || first_delta == NULL)
		return;
	/* Cut before message_stop, the engine reporting the cut. */
	x.engine_error = "upstream: connection reset";
	cut = (size_t)(stop - body);
	mt_run(&x, body, cut, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "incomplete");
		CHECK_INT(res.rec[0].input_tokens, 41);
		CHECK_INT(res.rec[0].output_tokens, 57);
	}
	mt_result_free(&res);
	/* Cut after message_start with a clean end of body: the missing
	 * message_stop alone says incomplete; usage so far is kept. */
	x.engine_error = NULL;
	cut = (size_t)(first_delta - body);
	mt_run(&x, body, cut, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "incomplete");
		CHECK_INT(res.rec[0].input_tokens, 40);
		CHECK_INT(res.rec[0].output_tokens, 3);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 1000);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_error_529(void)
{
	struct mt_exchange x = messages("claude-opus-4-5", 1, json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_error_529.json", &len);

	x.status = 529;
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].status, 529);
		CHECK_STR(res.rec[0].error, "overloaded_error");
		CHECK_STR(res.rec[0].kind, "messages");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_INT(res.rec[0].output_tokens, -1);
		CHECK_STR(res.rec[0].model, "claude-opus-4-5");
	}
	mt_result_free(&res);
	free(body);
}

static void
test_count_tokens(void)
{
	struct mt_exchange x = messages("claude-sonnet-4-5", 0, json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_count_tokens.json", &len);

	x.target = "/v1/messages/count_tokens?beta=true";
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "count_tokens");
		/* Not billable: no token columns, the count in usage_json. */
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].usage_json, "{\"input_tokens\":2095}");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_batch_results(void)
{
	static const char *const hdrs[] = {
	    "content-type", "application/binary", NULL};
	struct mt_exchange x = messages("x", 0, hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_batch_results.jsonl", &len);

	x.method = "GET";
	x.req_body = NULL;
	x.target = "/v1/messages/batches/msgbatch_01Meter/results";
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "batch_results");
		CHECK_INT(res.rec[0].input_tokens, 30);
		CHECK_INT(res.rec[0].output_tokens, 20);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 5);
		CHECK_STR(res.rec[0].service_tier, "batch");
		CHECK_STR(res.rec[0].model, "claude-haiku-4-5-20251001");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_other_and_ratelimit(void)
{
	static const char *const hdrs[] = {"content-type", "application/json",
	    "anthropic-ratelimit-unified-5h-utilization", "0.42",
	    "anthropic-ratelimit-unified-status", "allowed",
	    "Anthropic-RateLimit-Tokens-Remaining", "90000", "server",
	    "cloudflare", NULL};
	static const char body[] = "{\"data\":[{\"id\":\"claude-opus-4-5\"}]}";
	struct mt_exchange x = messages("x", 0, hdrs);
	struct mt_result res;

	x.method = "GET";
	x.req_body = NULL;
	x.target = "/v1/models";
	mt_run(&x, body, strlen(body), 0, 0, &res);
	CHECK_INT(res.n, 1);
	CHECK_INT(res.nsnap, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "other");
		CHECK_STR(res.rec[0].provider, "anthropic");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].error, NULL);
		CHECK_STR(res.rec[0].usage_json, NULL);
	}
	if (res.nsnap == 1) {
		CHECK_STR(res.snap[0].provider, "anthropic");
		CHECK_STR(res.snap[0].key_fp, res.rec[0].key_fp);
		CHECK_STR(res.snap[0].headers_json,
		    "{\"anthropic-ratelimit-unified-5h-utilization\":\"0.42\","
		    "\"anthropic-ratelimit-unified-status\":\"allowed\","
		    "\"anthropic-ratelimit-tokens-remaining\":\"90000\"}");
	}
	mt_result_free(&res);
}

static void
test_vertex_raw_predict(void)
{
	struct mt_exchange x = messages("ignored", 1, sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("anthropic_stream_cumulative.sse", &len);

	x.host = "api.deepseek.com";
	x.target = "/anthropic/v1/messages";
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].provider, "deepseek");
		CHECK_STR(res.rec[0].kind, "messages");
		CHECK_INT(res.rec[0].input_tokens, 41);
	}
	mt_result_free(&res);

	x.host = "us-east5-aiplatform.googleapis.com";
	x.target = "/v1/projects/p/locations/us-east5/publishers/anthropic/"
	           "models/claude-opus-4-5@20251101:streamRawPredict";
	x.req_body = "{\"anthropic_version\":\"vertex-2023-10-16\","
	             "\"stream\":true}";
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].provider, "anthropic");
		CHECK_STR(res.rec[0].request_model, "claude-opus-4-5@20251101");
		CHECK_INT(res.rec[0].output_tokens, 57);
	}
	mt_result_free(&res);
	free(body);
}

/*
 * Text events are not parsed (the meter's skip): a content_block_delta
 * whose JSON is cut short does not make a parse error, while an event
 * whose name says content_block_delta but whose JSON is something else
 * (type not first, or another type) is parsed and counted.
 */
static void
test_stream_skips_text_events(void)
{
	static const char body[] =
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"id\":"
	    "\"msg_skip\",\"model\":\"claude-sonnet-4-5\",\"usage\":"
	    "{\"input_tokens\":11,\"output_tokens\":1}}}\n\n"
	    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
	    "{\"type\":\"text_delta\",\"text\":\"cut sh\n\n"
	    "event: content_block_delta\n"
	    "data: {\"index\":0,\"type\":\"message_delta\",\"usage\":"
	    "{\"output_tokens\":77}}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
	    "\"max_tokens\"},\"usage\":{\"output_tokens\":99}}\n\n"
	    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
	struct mt_exchange x = messages("claude-sonnet-4-5", 1, sse_hdrs);
	struct mt_result res;

	mt_run_all_splits(&x, body, sizeof(body) - 1, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, NULL);
		CHECK_STR(res.rec[0].model, "claude-sonnet-4-5");
		CHECK_INT(res.rec[0].input_tokens, 11);
		CHECK_INT(res.rec[0].output_tokens, 99);
		CHECK_STR(res.rec[0].stop_reason, "max_tokens");
	}
	mt_result_free(&res);
}

/*
 * A bare message_stop is not parsed either; it still marks the end (the
 * record is complete).  A message_stop event whose JSON holds anything
 * else is parsed: here an error sent under that name.
 */
static void
test_stream_message_stop(void)
{
	static const char head[] =
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"id\":"
	    "\"msg_stop\",\"model\":\"claude-sonnet-4-5\",\"usage\":"
	    "{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
	    "event: message_delta\n"
	    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
	    "\"end_turn\"},\"usage\":{\"output_tokens\":34}}\n\n";
	static const char *const ends[] = {
	    "event: message_stop\ndata: { \"type\" : \"message_stop\" }\n\n",
	    "event: message_stop\ndata: {\"type\":\"error\",\"error\":"
	    "{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n",
	    "event: message_stop\ndata: {\"type\":\"message_stop\",\"x\":1}"
	    "\n\n",
	};
	static const char *const want_error[] = {
	    NULL, "overloaded_error", NULL};
	struct mt_exchange x = messages("claude-sonnet-4-5", 1, sse_hdrs);
	struct mt_result res;
	char body[1024];
	size_t i;

	for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		snprintf(body, sizeof(body), "%s%s", head, ends[i]);
		mt_run_all_splits(&x, body, strlen(body), &res);
		CHECK_INT(res.n, 1);
		if (res.n == 1) {
			CHECK_STR(res.rec[0].error, want_error[i]);
			CHECK_INT(res.rec[0].input_tokens, 12);
			CHECK_INT(res.rec[0].output_tokens, 34);
		}
		mt_result_free(&res);
	}
	/* Without any message_stop the same stream is incomplete. */
	mt_run_all_splits(&x, head, sizeof(head) - 1, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1)
		CHECK_STR(res.rec[0].error, "incomplete");
	mt_result_free(&res);
}

static const struct test tests[] = {
    TEST(test_nonstream),
    TEST(test_stream_cumulative),
    TEST(test_stream_skips_text_events),
    TEST(test_stream_message_stop),
    TEST(test_stream_crlf_cr),
    TEST(test_stream_gzip_deflate_per_event),
    TEST(test_stream_zstd_per_event),
    TEST(test_stream_brotli),
    TEST(test_iterations),
    TEST(test_error_midstream),
    TEST(test_truncated),
    TEST(test_error_529),
    TEST(test_count_tokens),
    TEST(test_batch_results),
    TEST(test_other_and_ratelimit),
    TEST(test_vertex_raw_predict),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
