/*
 * provider-gemini: the Gemini API (generativelanguage.googleapis.com),
 * Vertex AI's Google publisher models, and the Code Assist backend of the
 * Gemini CLI (cloudcode-pa.googleapis.com, responses wrapped in
 * {"response": {...}}).
 *
 * Wire facts (python-genai GenerateContentResponseUsageMetadata): the model
 * is in the URL; promptTokenCount includes cachedContentTokenCount;
 * thoughtsTokenCount is NOT inside candidatesTokenCount (total = prompt +
 * candidates + toolUsePrompt + thoughts); in a stream every chunk carries
 * the cumulative usageMetadata, so the last one wins; modelVersion may
 * carry a "models/" prefix.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/provider.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

enum gemini_kind { GEMINI_OTHER = 0, GEMINI_GENERATE, GEMINI_COUNT_TOKENS };

static int
gemini_match(const char *host, const char *path)
{
	if (provider_host_is(host, "generativelanguage.googleapis.com") ||
	    provider_host_is(host, "cloudcode-pa.googleapis.com"))
		return 1;
	/* Vertex: {region}-aiplatform.googleapis.com and the multi-region
	 * aiplatform.{us,eu}.rep.googleapis.com (Anthropic publisher models
	 * are matched by provider-anthropic first). */
	if (str_has_suffix(host, "aiplatform.googleapis.com") ||
	    (str_has_prefix(host, "aiplatform.") &&
	        str_has_suffix(host, ".rep.googleapis.com")))
		return 1;
	return 0;
}

static void
gemini_begin(struct provider_state *st)
{
	const char *p = st->path, *m, *c, *method;
	char *model;

	st->kind = GEMINI_OTHER;
	if ((c = strrchr(p, ':')) == NULL || strchr(c, '/') != NULL) {
		usage_set_str(&st->rec->kind, "other");
		return;
	}
	method = c + 1;
	if (strcmp(method, "generateContent") == 0) {
		st->kind = GEMINI_GENERATE;
		st->rec->stream = 0;
	} else if (strcmp(method, "streamGenerateContent") == 0) {
		st->kind = GEMINI_GENERATE;
		st->rec->stream = 1;
	} else if (strcmp(method, "countTokens") == 0) {
		st->kind = GEMINI_COUNT_TOKENS;
	}
	usage_set_str(&st->rec->kind,
	    st->kind == GEMINI_GENERATE           ? "generate_content"
	        : st->kind == GEMINI_COUNT_TOKENS ? "count_tokens"
	                                          : "other");
	/* .../models/{model}:method */
	if ((m = strstr(p, "/models/")) != NULL && m + 8 < c) {
		model = xstrndup(m + 8, (size_t)(c - m - 8));
		usage_set_str(&st->rec->request_model, model);
		free(model);
	}
}

static void
gemini_request(struct provider_state *st, const cJSON *body)
{
	const char *s;

	/* Code Assist carries the model in the body ({"model": ...,
	 * "request": {...}}); the public API only in the URL. */
	if (st->rec->request_model == NULL &&
	    (s = provider_json_str(body, "model")) != NULL)
		usage_set_str(&st->rec->request_model, s);
}

/* Strips the Code Assist wrapper. */
static const cJSON *
gemini_unwrap(const cJSON *o)
{
	const cJSON *inner;

	if (o == NULL || !cJSON_IsObject(o))
		return NULL;
	if (cJSON_GetObjectItemCaseSensitive(o, "candidates") == NULL &&
	    cJSON_GetObjectItemCaseSensitive(o, "usageMetadata") == NULL &&
	    (inner = provider_json_obj(o, "response")) != NULL)
		return inner;
	return o;
}

static void
gemini_usage(struct provider_state *st, const cJSON *u)
{
	struct usage_record *r = st->rec;
	int64_t prompt, cached, cand, thoughts;

	if (u == NULL || !cJSON_IsObject(u))
		return;
	/* Cumulative: the last usageMetadata replaces everything. */
	provider_keep_usage(st, u, 0);
	prompt = provider_json_int(u, "promptTokenCount");
	cached = provider_json_int(u, "cachedContentTokenCount");
	cand = provider_json_int(u, "candidatesTokenCount");
	thoughts = provider_json_int(u, "thoughtsTokenCount");
	if (prompt >= 0) {
		r->input_tokens = prompt - (cached > 0 ? cached : 0);
		if (r->input_tokens < 0)
			r->input_tokens = 0;
	} else {
		r->input_tokens = -1;
	}
	r->cache_read_input_tokens = cached;
	if (cand >= 0 || thoughts >= 0)
		r->output_tokens =
		    (cand > 0 ? cand : 0) + (thoughts > 0 ? thoughts : 0);
	else
		r->output_tokens = -1;
	r->reasoning_tokens = thoughts;
}

/* One GenerateContentResponse (a body, an SSE event, an array element). */
static void
gemini_response(struct provider_state *st, const cJSON *o)
{
	char buf[32];
	const cJSON *cands, *c;
	const char *s;

	if ((o = gemini_unwrap(o)) == NULL)
		return;
	if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "error"))) {
		provider_set_error(
		    st, provider_error_type(o, buf, sizeof(buf)));
		return;
	}
	if ((s = provider_json_str(o, "modelVersion")) != NULL) {
		if (str_has_prefix(s, "models/"))
			s += strlen("models/");
		usage_set_str(&st->rec->model, s);
	}
	if ((s = provider_json_str(o, "responseId")) != NULL &&
	    st->rec->request_id == NULL)
		usage_set_str(&st->rec->request_id, s);
	if ((s = provider_json_str(o, "usageMetadata.trafficType")) != NULL)
		usage_set_str(&st->rec->service_tier, s);
	cands = cJSON_GetObjectItemCaseSensitive(o, "candidates");
	if (cands != NULL && cJSON_IsArray(cands)) {
		cJSON_ArrayForEach(c, cands)
		{
			if ((s = provider_json_str(c, "finishReason")) !=
			    NULL) {
				usage_set_str(&st->rec->stop_reason, s);
				st->terminal_seen = 1;
				break;
			}
		}
	}
	if ((s = provider_json_str(o, "promptFeedback.blockReason")) != NULL) {
		usage_set_str(&st->rec->stop_reason, s);
		st->terminal_seen = 1;
	}
	gemini_usage(st, cJSON_GetObjectItemCaseSensitive(o, "usageMetadata"));
}

static void
gemini_event(struct provider_state *st, const char *type, const cJSON *data)
{
	if (data == NULL || st->kind != GEMINI_GENERATE)
		return;
	gemini_response(st, data);
}

static void
gemini_body(struct provider_state *st, const cJSON *body)
{
	char buf[32];
	const cJSON *o;

	if (body == NULL)
		return;
	/* A non-SSE stream can still arrive whole as one array. */
	if (cJSON_IsArray(body)) {
		cJSON_ArrayForEach(o, body) gemini_body(st, o);
		return;
	}
	o = gemini_unwrap(body);
	if (o != NULL &&
	    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "error"))) {
		provider_set_error(
		    st, provider_error_type(o, buf, sizeof(buf)));
		return;
	}
	switch (st->kind) {
	case GEMINI_GENERATE:
		gemini_response(st, body);
		break;
	case GEMINI_COUNT_TOKENS:
		/* Not billable: raw usage only. */
		if (o != NULL && provider_json_int(o, "totalTokens") >= 0)
			provider_keep_usage(st, o, 0);
		break;
	default:
		break;
	}
}

static void
gemini_finish(struct provider_state *st)
{
	if (st->kind != GEMINI_GENERATE || st->error_seen || st->status < 200 ||
	    st->status >= 300)
		return;
	if (st->rec->stream == 1 && !st->terminal_seen)
		provider_set_error(st, "incomplete");
	else if (!st->usage_seen)
		provider_set_error(st, "usage_missing");
}

const struct provider provider_gemini = {
    .name = "gemini",
    .match = gemini_match,
    .begin = gemini_begin,
    .request = gemini_request,
    .body = gemini_body,
    .event = gemini_event,
    .finish = gemini_finish,
};
