/*
 * provider-openai: the OpenAI APIs (Chat Completions, Responses, legacy
 * Completions, Embeddings, and the Responses API over WebSocket) and the
 * OpenAI-compatible hosts that share the parser, each with its quirks
 * (enum provider_flavor):
 *
 *	openrouter  usage.cost is the provider-reported cost in USD; usage is
 *	            always in the last chunk
 *	groq        the final chunk has usage and x_groq.usage (same counts)
 *	deepseek    prompt_cache_hit_tokens / prompt_cache_miss_tokens
 *	mistral     usage in the chunk that carries finish_reason
 *	xai         completion_tokens EXCLUDES reasoning_tokens; cost in
 *	            cost_in_usd_ticks (1 USD = 1e10 ticks)
 *	azure       /openai/deployments/{deployment}/...; the first chunk may
 *	            have an empty model and id
 *	together, fireworks  OpenAI-shaped
 *
 * Wire facts: openai-python types/completion_usage.py (cached_tokens are
 * inside prompt_tokens, reasoning_tokens inside completion_tokens),
 * chat_completion_stream_options_param.py (usage only with include_usage,
 * in a final chunk with choices []), types/responses/response_usage.py.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/provider.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

enum openai_kind {
	OPENAI_OTHER = 0,
	OPENAI_CHAT,
	OPENAI_RESPONSES,
	OPENAI_COMPLETIONS,
	OPENAI_EMBEDDINGS
};

static int
openai_match(const char *host, const char *path)
{
	if (provider_host_is(host, "api.openai.com"))
		return 1;
	/* The Codex CLI's ChatGPT backend. */
	if (provider_host_is(host, "chatgpt.com"))
		return str_has_prefix(path, "/backend-api/codex/");
	return 0;
}

static int
openrouter_match(const char *host, const char *path)
{
	return provider_host_is(host, "openrouter.ai") &&
	    str_has_prefix(path, "/api/");
}

static int
groq_match(const char *host, const char *path)
{
	return provider_host_is(host, "api.groq.com");
}

static int
deepseek_match(const char *host, const char *path)
{
	/* /anthropic is DeepSeek's Anthropic-shaped endpoint. */
	return provider_host_is(host, "api.deepseek.com") &&
	    !str_has_prefix(path, "/anthropic");
}

static int
mistral_match(const char *host, const char *path)
{
	return provider_host_is(host, "api.mistral.ai") ||
	    provider_host_is(host, "codestral.mistral.ai");
}

static int
xai_match(const char *host, const char *path)
{
	return provider_host_is(host, "api.x.ai");
}

static int
azure_match(const char *host, const char *path)
{
	return (str_has_suffix(host, ".openai.azure.com") ||
	           str_has_suffix(host, ".cognitiveservices.azure.com")) &&
	    str_has_prefix(path, "/openai/");
}

static int
together_match(const char *host, const char *path)
{
	return provider_host_is(host, "api.together.xyz") ||
	    provider_host_is(host, "api.together.ai");
}

static int
fireworks_match(const char *host, const char *path)
{
	return provider_host_is(host, "api.fireworks.ai");
}

static void
openai_begin(struct provider_state *st)
{
	const char *p = st->path, *d, *e;
	const char *kind = "other";
	char *dep;

	if (str_has_suffix(p, "/chat/completions")) {
		st->kind = OPENAI_CHAT;
		kind = "chat";
	} else if (str_has_suffix(p, "/responses")) {
		st->kind = OPENAI_RESPONSES;
		kind = "responses";
	} else if (str_has_suffix(p, "/completions")) {
		st->kind = OPENAI_COMPLETIONS;
		kind = "completions";
	} else if (str_has_suffix(p, "/embeddings")) {
		st->kind = OPENAI_EMBEDDINGS;
		kind = "embeddings";
	} else {
		st->kind = OPENAI_OTHER;
	}
	usage_set_str(&st->rec->kind, kind);
	/* Azure: the deployment name stands for the model until a body or a
	 * response names one. */
	if (st->flavor == PROVIDER_FLAVOR_AZURE &&
	    (d = strstr(p, "/deployments/")) != NULL) {
		d += strlen("/deployments/");
		if ((e = strchr(d, '/')) != NULL && e > d) {
			dep = xstrndup(d, (size_t)(e - d));
			usage_set_str(&st->rec->request_model, dep);
			free(dep);
		}
	}
	if (st->ws)
		st->rec->stream = 1;
}

static void
openai_request(struct provider_state *st, const cJSON *body)
{
	provider_request_common(st, body);
	if (st->kind != OPENAI_OTHER && st->rec->stream < 0)
		st->rec->stream = 0;
}

/* Chat / Completions / Embeddings usage, with the host's quirks. */
static void
chat_usage(struct provider_state *st, const cJSON *u)
{
	struct usage_record *r = st->rec;
	int64_t prompt, completion, cached, cwrite, reasoning, miss, input;
	const cJSON *cost;

	if (u == NULL || !cJSON_IsObject(u))
		return;
	provider_keep_usage(st, u, 0);
	prompt = provider_json_int(u, "prompt_tokens");
	completion = provider_json_int(u, "completion_tokens");
	cached = provider_json_int(u, "prompt_tokens_details.cached_tokens");
	cwrite =
	    provider_json_int(u, "prompt_tokens_details.cache_write_tokens");
	reasoning =
	    provider_json_int(u, "completion_tokens_details.reasoning_tokens");
	if (reasoning < 0) /* DeepSeek's older top-level field */
		reasoning = provider_json_int(u, "reasoning_tokens");
	miss = -1;
	if (st->flavor == PROVIDER_FLAVOR_DEEPSEEK &&
	    provider_json_int(u, "prompt_cache_hit_tokens") >= 0) {
		cached = provider_json_int(u, "prompt_cache_hit_tokens");
		miss = provider_json_int(u, "prompt_cache_miss_tokens");
	}
	if (miss >= 0) {
		input = miss;
	} else if (prompt >= 0) {
		input = prompt - (cached > 0 ? cached : 0) -
		    (cwrite > 0 ? cwrite : 0);
		if (input < 0)
			input = 0;
	} else {
		input = -1;
	}
	r->input_tokens = input;
	r->cache_read_input_tokens = cached;
	r->cache_creation_input_tokens = cwrite;
	r->reasoning_tokens = reasoning;
	if (st->flavor == PROVIDER_FLAVOR_XAI && completion >= 0 &&
	    reasoning > 0)
		r->output_tokens = completion + reasoning;
	else
		r->output_tokens = completion;
	if (st->flavor == PROVIDER_FLAVOR_OPENROUTER &&
	    (cost = cJSON_GetObjectItemCaseSensitive(u, "cost")) != NULL &&
	    cJSON_IsNumber(cost) && cost->valuedouble >= 0)
		r->provider_cost_usd = cost->valuedouble;
	if (st->flavor == PROVIDER_FLAVOR_XAI &&
	    (cost = cJSON_GetObjectItemCaseSensitive(u, "cost_in_usd_ticks")) !=
	        NULL &&
	    cJSON_IsNumber(cost) && cost->valuedouble >= 0)
		r->provider_cost_usd = cost->valuedouble / 1e10;
}

/* Responses API usage: cached inside input, reasoning inside output. */
static void
responses_usage(struct provider_state *st, const cJSON *u)
{
	struct usage_record *r = st->rec;
	int64_t in, cached, cwrite;

	if (u == NULL || !cJSON_IsObject(u))
		return;
	provider_keep_usage(st, u, 0);
	in = provider_json_int(u, "input_tokens");
	cached = provider_json_int(u, "input_tokens_details.cached_tokens");
	cwrite =
	    provider_json_int(u, "input_tokens_details.cache_write_tokens");
	if (in >= 0) {
		in -= (cached > 0 ? cached : 0) + (cwrite > 0 ? cwrite : 0);
		if (in < 0)
			in = 0;
	}
	r->input_tokens = in;
	r->cache_read_input_tokens = cached;
	r->cache_creation_input_tokens = cwrite;
	r->output_tokens = provider_json_int(u, "output_tokens");
	r->reasoning_tokens =
	    provider_json_int(u, "output_tokens_details.reasoning_tokens");
	if (st->flavor == PROVIDER_FLAVOR_XAI &&
	    provider_json_int(u, "cost_in_usd_ticks") >= 0)
		r->provider_cost_usd =
		    (double)provider_json_int(u, "cost_in_usd_ticks") / 1e10;
	if (st->flavor == PROVIDER_FLAVOR_OPENROUTER &&
	    cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(u, "cost")))
		r->provider_cost_usd =
		    cJSON_GetObjectItemCaseSensitive(u, "cost")->valuedouble;
}

/* A chat.completion(.chunk), text_completion or embedding list object. */
static void
chat_object(struct provider_state *st, const cJSON *o)
{
	const cJSON *choices, *c, *u;
	const char *s;

	if ((s = provider_json_str(o, "model")) != NULL)
		usage_set_str(&st->rec->model, s);
	if (st->rec->request_id == NULL &&
	    (s = provider_json_str(o, "id")) != NULL)
		usage_set_str(&st->rec->request_id, s);
	if ((s = provider_json_str(o, "service_tier")) != NULL)
		usage_set_str(&st->rec->service_tier, s);
	choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
	if (choices != NULL && cJSON_IsArray(choices)) {
		cJSON_ArrayForEach(c, choices)
		{
			if ((s = provider_json_str(c, "finish_reason")) !=
			    NULL) {
				usage_set_str(&st->rec->stop_reason, s);
				break;
			}
		}
	}
	u = cJSON_GetObjectItemCaseSensitive(o, "usage");
	if (u == NULL || !cJSON_IsObject(u))
		u = provider_json_obj(o, "x_groq.usage");
	chat_usage(st, u);
}

/* A Response object (terminal event or non-streamed body). */
static void
response_object(struct provider_state *st, const cJSON *resp)
{
	char buf[32];
	const char *s;
	const cJSON *err;

	if (resp == NULL || !cJSON_IsObject(resp))
		return;
	if ((s = provider_json_str(resp, "model")) != NULL)
		usage_set_str(&st->rec->model, s);
	if ((s = provider_json_str(resp, "id")) != NULL &&
	    (st->rec->request_id == NULL || st->ws))
		usage_set_str(&st->rec->request_id, s);
	if ((s = provider_json_str(resp, "service_tier")) != NULL)
		usage_set_str(&st->rec->service_tier, s);
	if ((s = provider_json_str(resp, "incomplete_details.reason")) != NULL)
		usage_set_str(&st->rec->stop_reason, s);
	else if ((s = provider_json_str(resp, "status")) != NULL &&
	    strcmp(s, "in_progress") != 0 && strcmp(s, "queued") != 0)
		usage_set_str(&st->rec->stop_reason, s);
	err = cJSON_GetObjectItemCaseSensitive(resp, "error");
	if (err != NULL && cJSON_IsObject(err)) {
		if ((s = provider_json_str(err, "code")) == NULL &&
		    (s = provider_json_str(err, "type")) == NULL)
			s = "failed";
		provider_set_error(st, s);
	} else if ((s = provider_json_str(resp, "status")) != NULL &&
	    strcmp(s, "failed") == 0) {
		provider_set_error(st, "failed");
	}
	responses_usage(st, cJSON_GetObjectItemCaseSensitive(resp, "usage"));
	(void)buf;
}

static void
responses_event(struct provider_state *st, const char *type, const cJSON *data)
{
	char buf[32];
	const char *t;

	if ((t = provider_json_str(data, "type")) == NULL)
		t = type;
	if (t == NULL)
		return;
	if (strcmp(t, "response.created") == 0 ||
	    strcmp(t, "response.in_progress") == 0) {
		const char *m = provider_json_str(data, "response.model");

		if (m != NULL)
			usage_set_str(&st->rec->model, m);
		if (st->ws && (m = provider_json_str(data, "response.id")))
			usage_set_str(&st->rec->request_id, m);
	} else if (strcmp(t, "response.completed") == 0 ||
	    strcmp(t, "response.done") == 0 ||
	    strcmp(t, "response.incomplete") == 0 ||
	    strcmp(t, "response.failed") == 0) {
		response_object(
		    st, cJSON_GetObjectItemCaseSensitive(data, "response"));
		st->terminal_seen = 1;
		if (st->ws)
			st->record_ready = 1;
	} else if (strcmp(t, "error") == 0) {
		provider_set_error(
		    st, provider_error_type(data, buf, sizeof(buf)));
		/* response.failed usually follows; on a WebSocket the error
		 * may be all there is for this response. */
	}
}

static void
openai_event(struct provider_state *st, const char *type, const cJSON *data)
{
	char buf[32];

	if (type != NULL && strcmp(type, "[DONE]") == 0) {
		st->terminal_seen = 1;
		return;
	}
	if (data == NULL || !cJSON_IsObject(data))
		return;
	if (st->kind == OPENAI_RESPONSES) {
		responses_event(st, type, data);
		return;
	}
	/* Chat / Completions: an error chunk has an "error" member. */
	if (cJSON_GetObjectItemCaseSensitive(data, "error") != NULL) {
		provider_set_error(
		    st, provider_error_type(data, buf, sizeof(buf)));
		return;
	}
	chat_object(st, data);
}

/* Responses events that only stream output (names ending in ".delta"),
 * unless their bytes name a terminal type or an error. */
static int
responses_skip(const char *type, const char *data, size_t len)
{
	static const char *const keep[] = {"response.created",
	    "response.in_progress", "response.completed", "response.done",
	    "response.incomplete", "response.failed", "error"};
	size_t i;

	if (type == NULL || !str_has_suffix(type, ".delta"))
		return 0;
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (provider_bytes_has(data, len, keep[i]))
			return 0;
	return 1;
}

/*
 * A chat or completions chunk is skipped when parsing it could not change
 * the record: the id and model are known and the chunk repeats the model
 * and service tier, every finish_reason and usage is null, and there is no
 * error member.  The first chunk, the last ones (finish_reason, usage)
 * and anything unusual are parsed.
 */
static int
openai_skip(
    struct provider_state *st, const char *type, const char *data, size_t len)
{
	const struct usage_record *r = st->rec;

	if (st->ws)
		return 0;
	if (st->kind == OPENAI_RESPONSES)
		return responses_skip(type, data, len);
	if (st->kind != OPENAI_CHAT && st->kind != OPENAI_COMPLETIONS)
		return 0;
	if (r->request_id == NULL || r->model == NULL)
		return 0;
	return !provider_bytes_has(data, len, "\"error\"") &&
	    provider_raw_key_is(data, len, "model", r->model) &&
	    provider_raw_key_is(data, len, "service_tier", r->service_tier) &&
	    provider_raw_key_is(data, len, "finish_reason", NULL) &&
	    provider_raw_key_is(data, len, "usage", NULL);
}

static void
openai_body(struct provider_state *st, const cJSON *body)
{
	char buf[32];

	if (body == NULL || !cJSON_IsObject(body))
		return;
	if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(body, "error"))) {
		provider_set_error(
		    st, provider_error_type(body, buf, sizeof(buf)));
		return;
	}
	switch (st->kind) {
	case OPENAI_RESPONSES:
		response_object(st, body);
		st->terminal_seen = 1;
		break;
	case OPENAI_CHAT:
	case OPENAI_COMPLETIONS:
	case OPENAI_EMBEDDINGS:
		chat_object(st, body);
		st->terminal_seen = 1;
		break;
	default:
		break;
	}
}

static void
openai_finish(struct provider_state *st)
{
	if (st->kind == OPENAI_OTHER || st->error_seen || st->status < 200 ||
	    st->status >= 300)
		return;
	if (st->ws)
		return; /* each response was emitted on its own */
	if (st->rec->stream == 1 && !st->terminal_seen) {
		provider_set_error(st, "incomplete");
		return;
	}
	/* Never invent numbers: a stream without include_usage (or a body
	 * without usage) says so. */
	if (!st->usage_seen)
		provider_set_error(st, "usage_missing");
}

#define OPENAI_PROVIDER(sym, nm, fl, fn)                                       \
	const struct provider sym = {                                          \
	    .name = nm,                                                        \
	    .flavor = fl,                                                      \
	    .match = fn,                                                       \
	    .begin = openai_begin,                                             \
	    .request = openai_request,                                         \
	    .body = openai_body,                                               \
	    .event = openai_event,                                             \
	    .finish = openai_finish,                                           \
	    .skip = openai_skip,                                               \
	}

OPENAI_PROVIDER(provider_openai, "openai", PROVIDER_FLAVOR_NONE, openai_match);
OPENAI_PROVIDER(provider_openrouter, "openrouter", PROVIDER_FLAVOR_OPENROUTER,
    openrouter_match);
OPENAI_PROVIDER(provider_groq, "groq", PROVIDER_FLAVOR_GROQ, groq_match);
OPENAI_PROVIDER(
    provider_deepseek, "deepseek", PROVIDER_FLAVOR_DEEPSEEK, deepseek_match);
OPENAI_PROVIDER(
    provider_mistral, "mistral", PROVIDER_FLAVOR_MISTRAL, mistral_match);
OPENAI_PROVIDER(provider_xai, "xai", PROVIDER_FLAVOR_XAI, xai_match);
OPENAI_PROVIDER(provider_azure, "azure", PROVIDER_FLAVOR_AZURE, azure_match);
OPENAI_PROVIDER(
    provider_together, "together", PROVIDER_FLAVOR_TOGETHER, together_match);
OPENAI_PROVIDER(provider_fireworks, "fireworks", PROVIDER_FLAVOR_FIREWORKS,
    fireworks_match);

/* Gemini's OpenAI-compatible endpoint (/v1beta/openai/chat/completions) is
 * Gemini traffic in OpenAI shape. */
static int
gemini_openai_match(const char *host, const char *path)
{
	return provider_host_is(host, "generativelanguage.googleapis.com") &&
	    strstr(path, "/openai/") != NULL;
}

OPENAI_PROVIDER(provider_gemini_openai, "gemini", PROVIDER_FLAVOR_NONE,
    gemini_openai_match);
