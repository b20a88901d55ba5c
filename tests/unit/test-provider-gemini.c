/*
 * Unit tests of provider-gemini through meter.c: streamGenerateContent as
 * CRLF SSE (alt=sse) and as a JSON array, generateContent, countTokens,
 * the Code Assist wrapper with multi-line data, a 429 and truncation; each
 * fixture fed whole, split at every byte offset and byte by byte.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "meter-test.h"

static const char *const req_hdrs[] = {"content-type", "application/json",
    "x-goog-api-key", "AIzaMeterTestKey", "user-agent",
    "google-genai-sdk/1.30.0 gl-python/3.12.3", NULL};
static const char *const sse_hdrs[] = {
    "content-type", "text/event-stream", NULL};
static const char *const json_hdrs[] = {
    "content-type", "application/json; charset=UTF-8", NULL};

static struct mt_exchange
gemini(const char *target, const char *const *resp)
{
	struct mt_exchange x;

	memset(&x, 0, sizeof(x));
	x.host = "generativelanguage.googleapis.com";
	x.method = "POST";
	x.target = target;
	x.req_headers = req_hdrs;
	x.req_body = "{\"contents\":[{\"parts\":[{\"text\":\"hi\"}]}]}";
	x.status = 200;
	x.resp_headers = resp;
	return x;
}

static void
test_stream_sse_crlf(void)
{
	struct mt_exchange x = gemini("/v1beta/models/gemini-2.5-flash:"
	                              "streamGenerateContent?alt=sse",
	    sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("gemini_stream.crlf.sse", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		struct usage_record *r = &res.rec[0];

		CHECK_STR(r->provider, "gemini");
		CHECK_STR(r->kind, "generate_content");
		CHECK_INT(r->stream, 1);
		CHECK_STR(r->request_model, "gemini-2.5-flash");
		CHECK_STR(r->model, "gemini-2.5-flash");
		/* Cumulative, last wins: prompt 900 - cached 600. */
		CHECK_INT(r->input_tokens, 300);
		CHECK_INT(r->cache_read_input_tokens, 600);
		/* Thoughts are outside candidatesTokenCount. */
		CHECK_INT(r->output_tokens, 23 + 185);
		CHECK_INT(r->reasoning_tokens, 185);
		CHECK_STR(r->stop_reason, "STOP");
		CHECK_STR(r->request_id, "meterGeminiSse01");
		CHECK_STR(r->service_tier, "ON_DEMAND");
		CHECK_STR(r->client, "google-genai-sdk");
		CHECK_STR(r->client_version, "1.30.0");
		CHECK(r->key_fp != NULL);
		CHECK_STR(r->error, NULL);
	}
	mt_result_free(&res);
	free(body);
}

/* The CRLF fixture rewritten with LF or CR line ends. */
static void
test_stream_sse_lf_cr(void)
{
	struct mt_exchange x = gemini("/v1beta/models/gemini-2.5-flash:"
	                              "streamGenerateContent?alt=sse",
	    sse_hdrs);
	struct mt_result res;
	size_t len, i, o;
	char *body = mt_fixture("gemini_stream.crlf.sse", &len);
	char *v = xmalloc(len + 1);
	int cr;

	for (cr = 0; cr <= 1; cr++) {
		for (i = 0, o = 0; i < len; i++) {
			if (body[i] == '\r' && i + 1 < len &&
			    body[i + 1] == '\n')
				continue;
			v[o++] = cr && body[i] == '\n' ? '\r' : body[i];
		}
		CHECK(o < len);
		mt_run_all_splits(&x, v, o, &res);
		if (res.n == 1) {
			CHECK_INT(res.rec[0].input_tokens, 300);
			CHECK_INT(res.rec[0].output_tokens, 208);
			CHECK_STR(res.rec[0].error, NULL);
		}
		mt_result_free(&res);
	}
	free(v);
	free(body);
}

static void
test_stream_json_array(void)
{
	struct mt_exchange x = gemini("/v1beta/models/gemini-3-pro-preview:"
	                              "streamGenerateContent",
	    json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("gemini_stream_array.json", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].stream, 1);
		CHECK_INT(res.rec[0].input_tokens, 9);
		CHECK_INT(res.rec[0].cache_read_input_tokens, -1);
		CHECK_INT(res.rec[0].output_tokens, 208);
		CHECK_INT(res.rec[0].reasoning_tokens, 185);
		CHECK_STR(res.rec[0].model, "gemini-3-pro-preview");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	/* Cut after the first element: incomplete with what arrived. */
	mt_run(&x, body, (size_t)(strstr(body, "\n,") - body), 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "incomplete");
		CHECK_INT(res.rec[0].input_tokens, 9);
		CHECK_INT(res.rec[0].output_tokens, -1);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_generate_content(void)
{
	struct mt_exchange x = gemini("/v1beta/models/gemini-2.5-flash-lite:"
	                              "generateContent",
	    json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("gemini_nonstream.json", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].stream, 0);
		CHECK_INT(res.rec[0].input_tokens, 51);
		CHECK_INT(res.rec[0].output_tokens, 7);
		CHECK_INT(res.rec[0].reasoning_tokens, -1);
		CHECK_STR(res.rec[0].stop_reason, "MAX_TOKENS");
	}
	mt_result_free(&res);
	free(body);
}

static void
test_count_tokens_and_error(void)
{
	struct mt_exchange x = gemini("/v1beta/models/gemini-2.5-flash:"
	                              "countTokens",
	    json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("gemini_count_tokens.json", &len);

	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "count_tokens");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK(res.rec[0].usage_json != NULL &&
		    strstr(res.rec[0].usage_json, "\"totalTokens\":31"));
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(body);

	x.target = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
	           "?alt=sse";
	x.status = 429;
	body = mt_fixture("gemini_error_429.json", &len);
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "RESOURCE_EXHAUSTED");
		CHECK_INT(res.rec[0].status, 429);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_code_assist(void)
{
	struct mt_exchange x = gemini("/v1internal:streamGenerateContent"
	                              "?alt=sse",
	    sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("gemini_code_assist.sse", &len);

	x.host = "cloudcode-pa.googleapis.com";
	x.req_body = "{\"model\":\"gemini-2.5-pro\",\"project\":\"p\","
	             "\"request\":{\"contents\":[]}}";
	mt_run_all_splits(&x, body, len, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].request_model, "gemini-2.5-pro");
		CHECK_STR(res.rec[0].model, "gemini-2.5-pro");
		CHECK_INT(res.rec[0].input_tokens, 35862 - 15105);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 15105);
		CHECK_INT(res.rec[0].output_tokens, 130);
		CHECK_INT(res.rec[0].reasoning_tokens, 40);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_vertex_and_other(void)
{
	struct mt_exchange x =
	    gemini("/v1/projects/p/locations/us-central1/"
	           "publishers/google/models/gemini-2.5-flash:generateContent",
	        json_hdrs);
	struct mt_result res;
	size_t len;
	char *body = mt_fixture("gemini_nonstream.json", &len);

	x.host = "us-central1-aiplatform.googleapis.com";
	mt_run(&x, body, len, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].provider, "gemini");
		CHECK_STR(res.rec[0].request_model, "gemini-2.5-flash");
		CHECK_INT(res.rec[0].input_tokens, 51);
	}
	mt_result_free(&res);

	x.host = "generativelanguage.googleapis.com";
	x.method = "GET";
	x.target = "/v1beta/models";
	mt_run(&x, "{\"models\":[]}", 13, 0, 0, &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "other");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(body);
}

static const struct test tests[] = {
    TEST(test_stream_sse_crlf),
    TEST(test_stream_sse_lf_cr),
    TEST(test_stream_json_array),
    TEST(test_generate_content),
    TEST(test_count_tokens_and_error),
    TEST(test_code_assist),
    TEST(test_vertex_and_other),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
