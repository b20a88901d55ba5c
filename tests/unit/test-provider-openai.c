/*
 * Unit tests of provider-openai and the OpenAI-compatible hosts through
 * meter.c: Chat Completions (stream with and without include_usage, body,
 * error mid-stream), Responses (stream, failed), Embeddings, errors, and
 * the quirks of OpenRouter, Groq, DeepSeek, Mistral, xAI, Azure, Together
 * and Fireworks.  Every fixture is also fed split at each byte offset and
 * byte by byte.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/provider.h"
#include "harness.h"
#include "meter-test.h"

static const char *const sse_hdrs[] = {"content-type",
    "text/event-stream; charset=utf-8", "x-request-id",
    "req_0123456789abcdef0123456789abcdef", NULL};
static const char *const json_hdrs[] = {
    "content-type", "application/json", NULL};
static const char *const req_hdrs[] = {"content-type", "application/json",
    "user-agent", "OpenAI/Python 1.99.1", "authorization",
    "Bearer sk-proj-meter-test-key", NULL};

static struct mt_exchange
chat(const char *host, const char *target, const char *req,
    const char *const *resp)
{
	struct mt_exchange x;

	memset(&x, 0, sizeof(x));
	x.host = host;
	x.method = "POST";
	x.target = target;
	x.req_headers = req_hdrs;
	x.req_body = req;
	x.status = 200;
	x.resp_headers = resp;
	return x;
}

/* Runs a fixture through every split; returns the whole run's record in
 * res (the caller frees). */
static int
run_fixture(
    const struct mt_exchange *x, const char *name, struct mt_result *res)
{
	size_t len;
	char *body = mt_fixture(name, &len);

	mt_run_all_splits(x, body, len, res);
	free(body);
	return res->n == 1;
}

static void
test_chat_stream_include_usage(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/chat/completions",
	    "{\"model\":\"gpt-5-mini\",\"stream\":true,\"stream_options\":"
	    "{\"include_usage\":true},\"messages\":[]}",
	    sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openai_chat_stream_include_usage.sse", &res)) {
		struct usage_record *r = &res.rec[0];

		CHECK_STR(r->provider, "openai");
		CHECK_STR(r->kind, "chat");
		CHECK_INT(r->stream, 1);
		CHECK_STR(r->request_model, "gpt-5-mini");
		CHECK_STR(r->model, "gpt-5-mini-2025-08-07");
		/* prompt 200 of which 64 cached. */
		CHECK_INT(r->input_tokens, 136);
		CHECK_INT(r->cache_read_input_tokens, 64);
		CHECK_INT(r->output_tokens, 50);
		CHECK_INT(r->reasoning_tokens, 16);
		CHECK_STR(r->stop_reason, "stop");
		CHECK_STR(r->service_tier, "default");
		CHECK_STR(
		    r->request_id, "req_0123456789abcdef0123456789abcdef");
		CHECK_STR(r->error, NULL);
		CHECK_STR(r->client, "openai-sdk-python");
		CHECK_STR(r->client_version, "1.99.1");
	}
	mt_result_free(&res);
}

static void
test_chat_stream_gzip_per_event(void)
{
	static const char *const gz[] = {"content-type", "text/event-stream",
	    "content-encoding", "gzip", NULL};
	struct mt_exchange x = chat("api.openai.com", "/v1/chat/completions",
	    "{\"model\":\"gpt-5-mini\",\"stream\":true,\"stream_options\":"
	    "{\"include_usage\":true}}",
	    gz);
	struct mt_result res;
	size_t len, n = 0;
	char *body = mt_fixture("openai_chat_stream_include_usage.sse", &len);
	unsigned char *enc = mt_deflate_per_event(body, len, 31, &n);

	mt_run_all_splits(&x, enc, n, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].input_tokens, 136);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 64);
		CHECK_INT(res.rec[0].output_tokens, 50);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
	free(enc);
	free(body);
}

static void
test_chat_stream_no_usage(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/chat/completions",
	    "{\"model\":\"gpt-4o\",\"stream\":true}", sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openai_chat_stream_no_usage.sse", &res)) {
		/* Never invent numbers. */
		CHECK_STR(res.rec[0].error, "usage_missing");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_INT(res.rec[0].output_tokens, -1);
		CHECK_STR(res.rec[0].model, "gpt-4o-2024-08-06");
	}
	mt_result_free(&res);
}

static void
test_chat_stream_error_and_truncation(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/chat/completions",
	    "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":"
	    "{\"include_usage\":true}}",
	    sse_hdrs);
	struct mt_result res;
	size_t len;
	char *body;

	if (run_fixture(&x, "openai_chat_stream_error.sse", &res))
		CHECK_STR(res.rec[0].error, "server_error");
	mt_result_free(&res);

	/* Cut before the usage chunk: incomplete, no numbers. */
	body = mt_fixture("openai_chat_stream_include_usage.sse", &len);
	mt_run(&x, body, (size_t)(strstr(body, "\"choices\":[],") - body), 0, 0,
	    &res);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, "incomplete");
		CHECK_INT(res.rec[0].input_tokens, -1);
	}
	mt_result_free(&res);
	free(body);
}

static void
test_chat_nonstream_and_error(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/chat/completions",
	    "{\"model\":\"gpt-5-nano\"}", json_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openai_chat_nonstream.json", &res)) {
		CHECK_INT(res.rec[0].stream, 0);
		CHECK_INT(res.rec[0].input_tokens, 1500 - 1024);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 1024);
		CHECK_INT(res.rec[0].cache_creation_input_tokens, 0);
		CHECK_INT(res.rec[0].output_tokens, 100);
		CHECK_INT(res.rec[0].reasoning_tokens, 100);
		CHECK_STR(res.rec[0].stop_reason, "length");
		CHECK_STR(res.rec[0].request_id, "chatcmpl-MeterFixture04");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	x.status = 429;
	if (run_fixture(&x, "openai_error_429.json", &res)) {
		CHECK_INT(res.rec[0].status, 429);
		CHECK_STR(res.rec[0].error, "insufficient_quota");
		CHECK_INT(res.rec[0].input_tokens, -1);
	}
	mt_result_free(&res);
}

static void
test_responses_stream(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/responses",
	    "{\"model\":\"gpt-5.1-codex\",\"stream\":true}", sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openai_responses_stream.sse", &res)) {
		struct usage_record *r = &res.rec[0];

		CHECK_STR(r->kind, "responses");
		CHECK_INT(r->input_tokens, 7112 - 3072);
		CHECK_INT(r->cache_read_input_tokens, 3072);
		CHECK_INT(r->output_tokens, 463);
		CHECK_INT(r->reasoning_tokens, 64);
		CHECK_STR(r->service_tier, "default");
		CHECK_STR(r->stop_reason, "completed");
		CHECK_STR(r->model, "gpt-5.1-codex");
		CHECK_STR(r->error, NULL);
	}
	mt_result_free(&res);

	/* The Codex backend without a Content-Type: SSE sniffed. */
	x.host = "chatgpt.com";
	x.target = "/backend-api/codex/responses";
	x.resp_headers = NULL;
	if (run_fixture(&x, "openai_responses_stream.sse", &res)) {
		CHECK_INT(res.rec[0].stream, 1);
		CHECK_INT(res.rec[0].output_tokens, 463);
		CHECK_STR(res.rec[0].provider, "openai");
	}
	mt_result_free(&res);
}

static void
test_responses_failed(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/responses",
	    "{\"model\":\"gpt-5\",\"stream\":true}", sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openai_responses_failed.sse", &res)) {
		CHECK_STR(res.rec[0].error, "insufficient_quota");
		CHECK_INT(res.rec[0].input_tokens, -1);
		CHECK_STR(res.rec[0].stop_reason, "failed");
	}
	mt_result_free(&res);
}

static void
test_responses_done_incomplete_completions(void)
{
	static const char done[] =
	    "event: response.done\n"
	    "data: {\"type\":\"response.done\",\"response\":{\"id\":"
	    "\"resp_d\",\"status\":\"completed\",\"model\":\"gpt-5-codex\","
	    "\"usage\":{\"input_tokens\":90,\"input_tokens_details\":"
	    "{\"cached_tokens\":40},\"output_tokens\":12,"
	    "\"output_tokens_details\":{\"reasoning_tokens\":5},"
	    "\"total_tokens\":102}}}\n\n";
	static const char incomplete[] =
	    "data: {\"type\":\"response.incomplete\",\"response\":{\"id\":"
	    "\"resp_i\",\"status\":\"incomplete\",\"model\":\"gpt-5\","
	    "\"incomplete_details\":{\"reason\":\"max_output_tokens\"},"
	    "\"usage\":{\"input_tokens\":10,\"input_tokens_details\":"
	    "{\"cached_tokens\":0},\"output_tokens\":64,"
	    "\"output_tokens_details\":{\"reasoning_tokens\":64},"
	    "\"total_tokens\":74}}}\n\n";
	static const char legacy[] =
	    "{\"id\":\"cmpl-1\",\"object\":"
	    "\"text_completion\",\"model\":\"gpt-3.5-turbo-instruct\","
	    "\"choices\":[{\"text\":\"x\",\"index\":0,\"finish_reason\":"
	    "\"length\"}],\"usage\":{\"prompt_tokens\":5,"
	    "\"completion_tokens\":7,\"total_tokens\":12}}";
	struct mt_exchange x =
	    chat("chatgpt.com", "/backend-api/codex/responses",
	        "{\"model\":\"gpt-5-codex\","
	        "\"stream\":true}",
	        sse_hdrs);
	struct mt_result res;

	mt_run_all_splits(&x, done, sizeof(done) - 1, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].input_tokens, 50);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 40);
		CHECK_INT(res.rec[0].output_tokens, 12);
		CHECK_STR(res.rec[0].stop_reason, "completed");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	x.host = "api.openai.com";
	x.target = "/v1/responses";
	mt_run_all_splits(&x, incomplete, sizeof(incomplete) - 1, &res);
	if (res.n == 1) {
		CHECK_INT(res.rec[0].output_tokens, 64);
		CHECK_INT(res.rec[0].reasoning_tokens, 64);
		CHECK_STR(res.rec[0].stop_reason, "max_output_tokens");
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);

	x.target = "/v1/completions";
	x.resp_headers = json_hdrs;
	x.req_body = "{\"model\":\"gpt-3.5-turbo-instruct\"}";
	mt_run_all_splits(&x, legacy, sizeof(legacy) - 1, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "completions");
		CHECK_INT(res.rec[0].stream, 0);
		CHECK_INT(res.rec[0].input_tokens, 5);
		CHECK_INT(res.rec[0].output_tokens, 7);
		CHECK_STR(res.rec[0].stop_reason, "length");
	}
	mt_result_free(&res);
}

static void
test_embeddings(void)
{
	struct mt_exchange x = chat("api.openai.com", "/v1/embeddings",
	    "{\"model\":\"text-embedding-3-small\",\"input\":\"x\"}",
	    json_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openai_embeddings.json", &res)) {
		CHECK_STR(res.rec[0].kind, "embeddings");
		CHECK_INT(res.rec[0].input_tokens, 8);
		CHECK_INT(res.rec[0].output_tokens, -1);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
}

static void
test_openrouter_cost(void)
{
	struct mt_exchange x = chat("openrouter.ai", "/api/v1/chat/completions",
	    "{\"model\":\"google/gemini-2.5-flash\",\"stream\":true}",
	    sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "openrouter_chat_stream.sse", &res)) {
		CHECK_STR(res.rec[0].provider, "openrouter");
		/* 30 prompt = 15 uncached + 10 read + 5 written. */
		CHECK_INT(res.rec[0].input_tokens, 15);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 10);
		CHECK_INT(res.rec[0].cache_creation_input_tokens, 5);
		CHECK_INT(res.rec[0].output_tokens, 12);
		CHECK_INT(res.rec[0].reasoning_tokens, 4);
		CHECK(res.rec[0].provider_cost_usd > 0.0012299 &&
		    res.rec[0].provider_cost_usd < 0.0012301);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
}

static void
test_groq_x_groq_usage(void)
{
	struct mt_exchange x =
	    chat("api.groq.com", "/openai/v1/chat/completions",
	        "{\"model\":\"llama-3.3-70b-versatile\",\"stream\":true}",
	        sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "groq_chat_stream.sse", &res)) {
		CHECK_STR(res.rec[0].provider, "groq");
		CHECK_INT(res.rec[0].input_tokens, 210);
		CHECK_INT(res.rec[0].output_tokens, 31);
		CHECK_STR(res.rec[0].error, NULL);
	}
	mt_result_free(&res);
}

static void
test_deepseek_hit_miss(void)
{
	struct mt_exchange x = chat("api.deepseek.com", "/chat/completions",
	    "{\"model\":\"deepseek-reasoner\",\"stream\":true}", sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "deepseek_chat_stream.sse", &res)) {
		CHECK_STR(res.rec[0].provider, "deepseek");
		CHECK_INT(res.rec[0].input_tokens, 72);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 128);
		CHECK_INT(res.rec[0].output_tokens, 219);
		CHECK_INT(res.rec[0].reasoning_tokens, 205);
	}
	mt_result_free(&res);
}

static void
test_mistral(void)
{
	struct mt_exchange x = chat("api.mistral.ai", "/v1/chat/completions",
	    "{\"model\":\"mistral-small-latest\",\"stream\":true}", sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "mistral_chat_stream.sse", &res)) {
		CHECK_STR(res.rec[0].provider, "mistral");
		CHECK_INT(res.rec[0].input_tokens, 13);
		CHECK_INT(res.rec[0].output_tokens, 34);
		CHECK_INT(res.rec[0].cache_read_input_tokens, -1);
	}
	mt_result_free(&res);
}

static void
test_xai_reasoning_and_ticks(void)
{
	struct mt_exchange x = chat("api.x.ai", "/v1/chat/completions",
	    "{\"model\":\"grok-3-mini\",\"stream\":true,\"stream_options\":"
	    "{\"include_usage\":true}}",
	    sse_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "xai_chat_stream.sse", &res)) {
		CHECK_STR(res.rec[0].provider, "xai");
		CHECK_INT(res.rec[0].input_tokens, 1);
		CHECK_INT(res.rec[0].cache_read_input_tokens, 11);
		/* Reasoning is outside completion_tokens at xAI. */
		CHECK_INT(res.rec[0].output_tokens, 1 + 290);
		CHECK_INT(res.rec[0].reasoning_tokens, 290);
		CHECK(res.rec[0].provider_cost_usd > 0.0037189 &&
		    res.rec[0].provider_cost_usd < 0.0037191);
	}
	mt_result_free(&res);
}

static void
test_azure_deployment(void)
{
	static const char *const hdrs[] = {"content-type", "application/json",
	    "api-key", "azure-meter-test-key", NULL};
	struct mt_exchange x = chat("meter-res.openai.azure.com",
	    "/openai/deployments/my-gpt5/chat/completions"
	    "?api-version=2025-04-01-preview",
	    "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
	    sse_hdrs);
	struct mt_result res;

	x.req_headers = hdrs;
	if (run_fixture(&x, "azure_chat_stream.sse", &res)) {
		CHECK_STR(res.rec[0].provider, "azure");
		CHECK_STR(res.rec[0].request_model, "my-gpt5");
		/* The empty model of the first chunk is ignored. */
		CHECK_STR(res.rec[0].model, "gpt-5-nano-2025-08-07");
		CHECK_STR(res.rec[0].request_id,
		    "req_0123456789abcdef0123456789abcdef");
		CHECK_INT(res.rec[0].input_tokens, 15);
		CHECK_INT(res.rec[0].output_tokens, 78);
		CHECK_INT(res.rec[0].reasoning_tokens, 64);
		CHECK(res.rec[0].key_fp != NULL);
	}
	mt_result_free(&res);
}

static void
test_together_fireworks(void)
{
	struct mt_exchange x = chat("api.together.xyz", "/v1/chat/completions",
	    "{\"model\":\"meta-llama/Llama-3.3-70B-Instruct-Turbo\"}",
	    json_hdrs);
	struct mt_result res;

	if (run_fixture(&x, "together_chat_nonstream.json", &res)) {
		CHECK_STR(res.rec[0].provider, "together");
		CHECK_INT(res.rec[0].input_tokens, 21);
		CHECK_INT(res.rec[0].output_tokens, 9);
	}
	mt_result_free(&res);
	x.host = "api.fireworks.ai";
	x.target = "/inference/v1/chat/completions";
	if (run_fixture(&x, "fireworks_chat_nonstream.json", &res)) {
		CHECK_STR(res.rec[0].provider, "fireworks");
		CHECK_INT(res.rec[0].input_tokens, 17);
		CHECK_INT(res.rec[0].output_tokens, 5);
		CHECK_STR(res.rec[0].model,
		    "accounts/fireworks/models/llama-v3p1-8b-instruct");
	}
	mt_result_free(&res);
}

static void
test_ratelimit_headers(void)
{
	static const char *const hdrs[] = {"content-type", "application/json",
	    "x-ratelimit-limit-requests", "5000",
	    "x-ratelimit-remaining-tokens", "3999000", NULL};
	struct mt_exchange x = chat("api.openai.com", "/v1/models", NULL, hdrs);
	struct mt_result res;
	static const char body[] = "{\"object\":\"list\",\"data\":[]}";

	x.method = "GET";
	mt_run(&x, body, strlen(body), 0, 0, &res);
	CHECK_INT(res.n, 1);
	CHECK_INT(res.nsnap, 1);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].kind, "other");
		CHECK_STR(res.rec[0].error, NULL);
	}
	if (res.nsnap == 1) {
		CHECK_STR(res.snap[0].provider, "openai");
		CHECK_STR(res.snap[0].headers_json,
		    "{\"x-ratelimit-limit-requests\":\"5000\","
		    "\"x-ratelimit-remaining-tokens\":\"3999000\"}");
	}
	mt_result_free(&res);
}

/*
 * Chat chunks that repeat what is known are not parsed (the meter's skip):
 * a cut-short content chunk makes no parse error; a chunk naming another
 * model, a service tier, a finish_reason or a usage object is parsed.
 */
static void
test_chat_stream_skips_repeats(void)
{
	static const char body[] =
	    "data: {\"id\":\"chatcmpl-skip\",\"object\":"
	    "\"chat.completion.chunk\",\"model\":\"gpt-4o-2024-08-06\","
	    "\"service_tier\":\"default\",\"choices\":[{\"index\":0,"
	    "\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}],"
	    "\"usage\":null}\n\n"
	    "data: {\"id\":\"chatcmpl-skip\",\"model\":\"gpt-4o-2024-08-06\","
	    "\"service_tier\":\"default\",\"choices\":[{\"delta\":"
	    "{\"content\":\"usage: model \\\"x\\\" cut sh\n\n"
	    "data: {\"id\":\"chatcmpl-skip\",\"model\": \"gpt-4o-mini\","
	    "\"service_tier\":\"default\",\"choices\":[{\"delta\":"
	    "{\"content\":\"!\"},\"finish_reason\":null}],\"usage\":null}\n\n"
	    "data: {\"id\":\"chatcmpl-skip\",\"model\":\"gpt-4o-mini\","
	    "\"service_tier\":\"flex\",\"choices\":[{\"delta\":{},"
	    "\"finish_reason\":\"length\"}],\"usage\":null}\n\n"
	    "data: {\"id\":\"chatcmpl-skip\",\"model\":\"gpt-4o-mini\","
	    "\"service_tier\":\"flex\",\"choices\":[],\"usage\":"
	    "{\"prompt_tokens\":21,\"completion_tokens\":8,"
	    "\"total_tokens\":29}}\n\n"
	    "data: [DONE]\n\n";
	struct mt_exchange x = chat("api.openai.com", "/v1/chat/completions",
	    "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":"
	    "{\"include_usage\":true},\"messages\":[]}",
	    sse_hdrs);
	struct mt_result res;

	mt_run_all_splits(&x, body, sizeof(body) - 1, &res);
	if (res.n == 1) {
		CHECK_STR(res.rec[0].error, NULL);
		CHECK_STR(res.rec[0].model, "gpt-4o-mini");
		CHECK_STR(res.rec[0].service_tier, "flex");
		CHECK_STR(res.rec[0].stop_reason, "length");
		CHECK_INT(res.rec[0].input_tokens, 21);
		CHECK_INT(res.rec[0].output_tokens, 8);
	}
	mt_result_free(&res);
}

/*
 * The request body is scanned for its top-level members, not parsed
 * whole: quotes, escapes, brackets and "model" keys inside the prompt do
 * not confuse it, the first top-level "model" wins (as with cJSON), and
 * a body that is not one whole object tells nothing.
 */
static void
test_request_members_scan(void)
{
	static const char body[] =
	    "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[],"
	    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
	    "data: [DONE]\n\n";
	static const char r0[] =
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"say \\\"model"
	    "\\\": {\\\"x\\\"} ] } \\\\\"},{\"model\":\"inner\",\"stream\":"
	    "false}],\n \"model\" : \"gpt-4o-req\",\"temperature\":0.5e1,"
	    "\"stop\":null,\"stream\":true,\"model\":\"dup\"}";
	static const char r1[] =
	    "{\"messages\":[{\"content\":\"ends in a backslash \\\\\"}],"
	    "\"model\":\"gpt-4o-req\",\"stream\":true}";
	static const char r2[] =
	    "{\"model\":\"gpt-4o-req\",\"stream\":true,\"messages\":[{\"c\":";
	static const char *const reqs[] = {r0, r1, r2};
	struct mt_exchange x;
	struct mt_result res;
	size_t i;

	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		x = chat("api.openai.com", "/v1/chat/completions", reqs[i],
		    sse_hdrs);
		mt_run(&x, body, sizeof(body) - 1, 0, 0, &res);
		if (res.n == 1) {
			CHECK_STR(res.rec[0].request_model,
			    i < 2 ? "gpt-4o-req" : NULL);
			CHECK_INT(res.rec[0].stream, 1);
			CHECK_INT(res.rec[0].input_tokens, 3);
		} else
			CHECK_INT(res.n, 1);
		mt_result_free(&res);
	}
}

/* The raw-bytes helpers the skip callbacks use. */
static void
test_raw_key_helpers(void)
{
	static const char j[] = "{\"model\":\"m1\",\"x\":{\"usage\": null},"
	                        "\"s\":\"model\",\"finish_reason\" : null}";
	size_t n = sizeof(j) - 1;

	CHECK_INT(provider_bytes_has(j, n, "usage"), 1);
	CHECK_INT(provider_bytes_has(j, n, "Usage"), 0);
	CHECK_INT(provider_bytes_has(j, n, "_reason"), 1);
	CHECK_INT(provider_bytes_has(j, 3, "model\""), 0);
	CHECK_INT(provider_raw_key_is(j, n, "model", "m1"), 1);
	CHECK_INT(provider_raw_key_is(j, n, "model", "m"), 0);
	CHECK_INT(provider_raw_key_is(j, n, "model", NULL), 0);
	CHECK_INT(provider_raw_key_is(j, n, "usage", NULL), 1);
	CHECK_INT(provider_raw_key_is(j, n, "finish_reason", NULL), 1);
	CHECK_INT(provider_raw_key_is(j, n, "absent", NULL), 1);
	CHECK_INT(provider_raw_key_is("{\"usage\":{}}", 12, "usage", NULL), 0);
}

static const struct test tests[] = {
    TEST(test_chat_stream_include_usage),
    TEST(test_chat_stream_gzip_per_event),
    TEST(test_chat_stream_no_usage),
    TEST(test_chat_stream_error_and_truncation),
    TEST(test_chat_nonstream_and_error),
    TEST(test_responses_stream),
    TEST(test_responses_failed),
    TEST(test_responses_done_incomplete_completions),
    TEST(test_embeddings),
    TEST(test_openrouter_cost),
    TEST(test_groq_x_groq_usage),
    TEST(test_deepseek_hit_miss),
    TEST(test_mistral),
    TEST(test_xai_reasoning_and_ticks),
    TEST(test_azure_deployment),
    TEST(test_together_fireworks),
    TEST(test_ratelimit_headers),
    TEST(test_chat_stream_skips_repeats),
    TEST(test_raw_key_helpers),
    TEST(test_request_members_scan),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
