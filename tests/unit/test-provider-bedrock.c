/*
 * Unit tests of provider-bedrock through meter.c: AWS event-stream frames
 * are built here (both CRCs, base64 "bytes" chunks) from the JSON events of
 * tests/fixtures/wire/meter, then fed whole, split at every byte offset
 * and byte by byte: InvokeModelWithResponseStream (Anthropic events,
 * invocation metrics), ConverseStream (metadata usage, cacheDetails), an
 * exception frame mid-stream, a frame with a bad CRC, and the non-streamed
 * Converse and InvokeModel bodies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "harness.h"
#include "meter-test.h"

static void
put32(struct strbuf *sb, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v};

	strbuf_add(sb, b, 4);
}

static void
add_header(struct strbuf *h, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);
	unsigned char b[3];

	b[0] = (unsigned char)n;
	strbuf_add(h, b, 1);
	strbuf_add(h, name, n);
	b[0] = 7; /* string */
	b[1] = (unsigned char)(v >> 8);
	b[2] = (unsigned char)v;
	strbuf_add(h, b, 3);
	strbuf_add(h, value, v);
}

/* Appends one event-stream frame: message type, event or exception type,
 * payload. */
static void
add_frame(struct strbuf *out, const char *mtype, const char *etype,
    const char *payload)
{
	struct strbuf h, f;
	uint32_t crc;

	strbuf_init(&h);
	strbuf_init(&f);
	add_header(&h, ":message-type", mtype);
	add_header(&h,
	    strcmp(mtype, "event") == 0 ? ":event-type" : ":exception-type",
	    etype);
	add_header(&h, ":content-type", "application/json");
	put32(&f, (uint32_t)(12 + h.len + strlen(payload) + 4));
	put32(&f, (uint32_t)h.len);
	put32(&f, (uint32_t)crc32(0, (const Bytef *)f.data, 8));
	strbuf_add(&f, h.data, h.len);
	strbuf_adds(&f, payload);
	crc = (uint32_t)crc32(0, (const Bytef *)f.data, (uInt)f.len);
	put32(&f, crc);
	strbuf_add(out, f.data, f.len);
	strbuf_free(&h);
	strbuf_free(&f);
}

/* The invoke stream: each JSON line as a base64 "bytes" chunk. */
static void
invoke_stream(struct strbuf *out, const char *jsonl)
{
	const char *line = jsonl, *nl;
	unsigned char *b64;
	char *payload;
	size_t n;

	while (*line != '\0') {
		nl = strchr(line, '\n');
		n = nl != NULL ? (size_t)(nl - line) : strlen(line);
		if (n > 0) {
			b64 = xmalloc(4 * ((n + 2) / 3) + 1);
			EVP_EncodeBlock(
			    b64, (const unsigned char *)line, (int)n);
			payload =
			    xasprintf("{\"bytes\":\"%s\",\"p\":\"abcdefg\"}",
			        (char *)b64);
			add_frame(out, "event", "chunk", payload);
			free(payload);
			free(b64);
		}
		line += n + (nl != NULL);
	}
}

static const char *const es_hdrs[] = {"content-type",
    "application/vnd.amazon.eventstream", "x-amzn-requestid",
    "8c3f0a4e-meter-fixture", NULL};
static const char *const req_hdrs[] = {"content-type", "application/json",
    "authorization",
    "AWS4-HMAC-SHA256 Credential=AKIAMETERTEST/20261128/us-east-1/"
    "bedrock/aws4_request, SignedHeaders=host, Signature=abc",
    "user-agent", "Boto3/1.40.0 md/Botocore#1.40.0", NULL};

static struct mt_exchange
bedrock(const char *target, const char *const *resp)
{
	struct mt_exchange x;

	memset(&x, 0, sizeof(x));
	x.host = "bedrock-runtime.us-east-1.amazonaws.com";
	x.method = "POST";
	x.target = target;
	x.req_headers = req_hdrs;
	x.req_body = "{\"anthropic_version\":\"bedrock-2023-05-31\","
	             "\"max_tokens\":100,\"messages\":[]}";
	x.status = 200;
	x.resp_headers = resp;
	return x;
}

static void
test_invoke_stream(void)
{
	struct mt_exchange x =
	    bedrock("/model/us.anthropic.claude-sonnet-4-5-"
	            "20250929-v1%3A0/invoke-with-response-stream",
	        es_hdrs);
	struct mt_result res;
	struct strbuf sb;
	size_t len;
	char *ev = mt_fixture("bedrock_invoke_stream.events.jsonl", &len);

	strbuf_init(&sb);
	invoke_stream(&sb, ev);
	mt_run_all_splits(&x, sb.data, sb.len, &res);
	if (res.n == 1) {
		struct usage_record *r = &res.rec[0];

		CHECK_STR(r->provider, "bedrock");
		CHECK_STR(r->kind, "invoke");
		CHECK_INT(r->stream, 1);
		/* The URL model id, URL-decoded. */
		CHECK_STR(r->request_model,
		    "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
		CHECK_STR(
		    r->model, "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
		CHECK_INT(r->input_tokens, 10);
		CHECK_INT(r->output_tokens, 47);
		CHECK_INT(r->cache_read_input_tokens, 147942);
		CHECK_INT(r->cache_creation_input_tokens, 953);
		CHECK_STR(r->stop_reason, "end_turn");
		CHECK_STR(r->request_id, "8c3f0a4e-meter-fixture");
		CHECK_STR(r->error, NULL);
		CHECK(r->key_fp != NULL);
	}
	mt_result_free(&res);
	strbuf_free(&sb);
	free(ev);
}

static void
test_invoke_metrics_only(void)
{
	/* A legacy model's chunk carries only the invocation metrics. */
	struct mt_exchange x = bedrock("/model/ai21.jamba-1-5-mini-v1%3A0/"
	                               "invoke-with-response-stream",
	    es_hdrs);
	struct mt_result res;
	struct strbuf sb;

	strbuf_init(&sb);
	invoke_stream(&sb,
	    "{\"outputs\":[{\"text\":\"x\"}],"
	    "\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":17,"
	    "\"outputTokenCount\":5,\"invocationLatency\":300,"
	    "\"firstByteLatency\":200}}\n");
	mt_run(&x, sb.data, sb.len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].input_tokens, 17);
		CHECK_INT(res.rec[0].output_tokens, 5);
		CHECK_STR(res.rec[0].model, "ai21.jamba-1-5-mini-v1:0");
	}
	mt_result_free(&res);
	strbuf_free(&sb);
}

static void
converse_stream(struct strbuf *out, const char *tsv)
{
	const char *line = tsv, *nl, *tab;
	char *type, *json;
	size_t n;

	while (*line != '\0') {
		nl = strchr(line, '\n');
		n = nl != NULL ? (size_t)(nl - line) : strlen(line);
		tab = memchr(line, '\t', n);
		if (tab != NULL) {
			type = xstrndup(line, (size_t)(tab - line));
			json = xstrndup(tab + 1, n - (size_t)(tab - line) - 1);
			add_frame(out, "event", type, json);
			free(type);
			free(json);
		}
		line += n + (nl != NULL);
	}
}

static void
test_converse_stream(void)
{
	struct mt_exchange x = bedrock("/model/anthropic.claude-3-haiku-"
	                               "20240307-v1:0/converse-stream",
	    es_hdrs);
	struct mt_result res;
	struct strbuf sb;
	size_t len;
	char *ev = mt_fixture("bedrock_converse_stream.events.tsv", &len);

	strbuf_init(&sb);
	converse_stream(&sb, ev);
	mt_run_all_splits(&x, sb.data, sb.len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "converse");
		CHECK_INT(res.rec[0].input_tokens, 22);
		CHECK_INT(res.rec[0].output_tokens, 57);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 30);
		CHECK_INT(res.rec[0].cache_creation_input_tokens, 12);
		CHECK_INT(res.rec[0].cache_creation_5m_tokens, 10);
		CHECK_INT(res.rec[0].cache_creation_1h_tokens, 2);
		CHECK_STR(res.rec[0].stop_reason, "max_tokens");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	/* Cut before the metadata frame: incomplete, no numbers. */
	mt_run(&x, sb.data, sb.len - 40, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "incomplete");
		CHECK_INT(res.rec[0].input_tokens, -1);
	}
	mt_result_free(&res);
	strbuf_free(&sb);
	free(ev);
}

static void
test_exception_midstream(void)
{
	struct mt_exchange x =
	    bedrock("/model/anthropic.claude-3-haiku-"
	            "20240307-v1:0/invoke-with-response-stream",
	        es_hdrs);
	struct mt_result res;
	struct strbuf sb;

	strbuf_init(&sb);
	invoke_stream(&sb,
	    "{\"type\":\"message_start\",\"message\":"
	    "{\"model\":\"claude-3-haiku\",\"usage\":{\"input_tokens\":33,"
	    "\"output_tokens\":1}}}\n");
	add_frame(&sb, "exception", "throttlingException",
	    "{\"message\":\"Too many requests, please wait.\"}");
	mt_run_all_splits(&x, sb.data, sb.len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "throttlingException");
		CHECK_INT(res.rec[0].input_tokens, 33);
		CHECK_INT(res.rec[0].status, 200);
	}
	mt_result_free(&res);
	strbuf_free(&sb);
}

static void
test_bad_crc(void)
{
	struct mt_exchange x = bedrock("/model/anthropic.claude-3-haiku-"
	                               "20240307-v1:0/converse-stream",
	    es_hdrs);
	struct mt_result res;
	struct strbuf sb;
	size_t len;
	char *ev = mt_fixture("bedrock_converse_stream.events.tsv", &len);

	strbuf_init(&sb);
	converse_stream(&sb, ev);
	/* Corrupt the last frame's payload: its message CRC fails. */
	sb.data[sb.len - 20] ^= 0x20;
	mt_run(&x, sb.data, sb.len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK(res.rec[0].error != NULL &&
		    strncmp(res.rec[0].error, "parse error: event-stream",
		        25) == 0);
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].stop_reason, "max_tokens");
	}
	mt_result_free(&res);
	strbuf_free(&sb);
	free(ev);
}

static void
test_nonstream_bodies(void)
{
	static const char *const json_hdrs[] = {
	    "content-type", "application/json", NULL};
	static const char *const err_hdrs[] = {"content-type",
	    "application/json", "x-amzn-ErrorType",
	    "ThrottlingException:http://internal.amazon.com/coral/", NULL};
	struct mt_exchange x = bedrock("/model/anthropic.claude-3-haiku-"
	                               "20240307-v1:0/converse",
	    json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("bedrock_converse.json", &len);
	static const char invoke[] =
	    "{\"id\":\"msg_bdrk_1\",\"type\":"
	    "\"message\",\"role\":\"assistant\",\"model\":\"claude-3-haiku\","
	    "\"content\":[],\"stop_reason\":\"end_turn\",\"usage\":"
	    "{\"input_tokens\":14,\"output_tokens\":6}}";
	static const char err[] = "{\"message\":\"Too many requests\"}";

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].stream, 0);
		CHECK_INT(res.rec[0].input_tokens, 22);
		CHECK_INT(res.rec[0].output_tokens, 57);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 30);
		CHECK_INT(res.rec[0].cache_creation_input_tokens, 12);
		CHECK_STR(res.rec[0].stop_reason, "end_turn");
	}
	mt_result_free(&res);
	free(body);

	x.target = "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke";
	mt_run_all_splits(&x, invoke, strlen(invoke), &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "invoke");
		CHECK_INT(res.rec[0].input_tokens, 14);
		CHECK_INT(res.rec[0].output_tokens, 6);
	}
	mt_result_free(&res);

	x.status = 429;
	x.resp_headers = err_hdrs;
	mt_run(&x, err, strlen(err), 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1)
		CHECK_STR(res.rec[0].error, "ThrottlingException");
	mt_result_free(&res);
}

static const struct test tests[] = {
    TEST(test_invoke_stream),
    TEST(test_invoke_metrics_only),
    TEST(test_converse_stream),
    TEST(test_exception_midstream),
    TEST(test_bad_crc),
    TEST(test_nonstream_bodies),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
