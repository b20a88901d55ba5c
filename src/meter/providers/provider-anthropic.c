/*
 * provider-anthropic: the Anthropic Messages API (api.anthropic.com, the
 * Messages-shaped Bedrock Mantle / AWS external / Azure Foundry endpoints
 * and Vertex rawPredict).
 *
 * Wire facts (anthropic-sdk-python types/usage.py, lib/streaming/
 * _messages.py; docs "Streaming Messages"): input_tokens excludes cache
 * reads and writes; output_tokens includes thinking; message_delta usage is
 * cumulative, so the last non-null value of each field wins and nothing is
 * ever summed; the cache_creation TTL split only comes in message_start;
 * with iterations[] (server-side compaction) the billed usage is the sum
 * over the iterations.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/provider.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

enum anthropic_kind {
	ANTHROPIC_OTHER = 0,
	ANTHROPIC_MESSAGES,
	ANTHROPIC_COUNT_TOKENS,
	ANTHROPIC_BATCH_RESULTS
};

static int
anthropic_is_vertex(const char *host, const char *path)
{
	return (str_has_suffix(host, "aiplatform.googleapis.com") ||
	           (str_has_prefix(host, "aiplatform.") &&
	               str_has_suffix(host, ".rep.googleapis.com"))) &&
	    strstr(path, "/publishers/anthropic/") != NULL;
}

static int
anthropic_match(const char *host, const char *path)
{
	if (provider_host_is(host, "api.anthropic.com"))
		return 1;
	if (anthropic_is_vertex(host, path))
		return 1;
	/* Messages-shaped endpoints of other clouds (anthropic-sdk lib/). */
	if (str_has_prefix(host, "bedrock-mantle.") &&
	    str_has_suffix(host, ".api.aws"))
		return str_has_prefix(path, "/anthropic/");
	if (str_has_prefix(host, "aws-external-anthropic.") &&
	    str_has_suffix(host, ".api.aws"))
		return 1;
	if (str_has_suffix(host, ".services.ai.azure.com"))
		return str_has_prefix(path, "/anthropic/");
	return 0;
}

static void
anthropic_begin(struct provider_state *st)
{
	const char *p = st->path, *m, *c;
	const char *kind = "other";
	char *model;

	st->kind = ANTHROPIC_OTHER;
	if (anthropic_is_vertex(st->host, p)) {
		/* .../publishers/anthropic/models/{model}:rawPredict */
		if ((m = strstr(p, "/models/")) != NULL &&
		    (c = strchr(m + 8, ':')) != NULL) {
			if (str_has_prefix(m + 8, "count-tokens:")) {
				st->kind = ANTHROPIC_COUNT_TOKENS;
			} else {
				model = xstrndup(m + 8, (size_t)(c - m - 8));
				usage_set_str(&st->rec->request_model, model);
				free(model);
				st->kind = ANTHROPIC_MESSAGES;
				if (strcmp(c, ":streamRawPredict") == 0)
					st->rec->stream = 1;
			}
		}
	} else if (str_has_suffix(p, "/v1/messages")) {
		st->kind = ANTHROPIC_MESSAGES;
	} else if (str_has_suffix(p, "/v1/messages/count_tokens")) {
		st->kind = ANTHROPIC_COUNT_TOKENS;
	} else if (strstr(p, "/v1/messages/batches/") != NULL &&
	    str_has_suffix(p, "/results")) {
		st->kind = ANTHROPIC_BATCH_RESULTS;
		st->jsonl = 1;
	}
	switch (st->kind) {
	case ANTHROPIC_MESSAGES:
		kind = "messages";
		break;
	case ANTHROPIC_COUNT_TOKENS:
		kind = "count_tokens";
		break;
	case ANTHROPIC_BATCH_RESULTS:
		kind = "batch_results";
		break;
	default:
		break;
	}
	usage_set_str(&st->rec->kind, kind);
}

static void
anthropic_request(struct provider_state *st, const cJSON *body)
{
	char *keep = NULL;

	/* Vertex puts the model in the URL: keep it over a body model. */
	if (st->rec->request_model != NULL)
		keep = xstrdup(st->rec->request_model);
	provider_request_common(st, body);
	if (keep != NULL) {
		usage_set_str(&st->rec->request_model, keep);
		free(keep);
	}
	if (st->kind == ANTHROPIC_MESSAGES && st->rec->stream < 0)
		st->rec->stream = 0;
}

/* Sums one count over iterations[]; -1 if no item reports it. */
static int64_t
iterations_sum(const cJSON *iters, const char *field)
{
	const cJSON *it;
	int64_t sum = -1, v;

	cJSON_ArrayForEach(it, iters)
	{
		if ((v = provider_json_int(it, field)) < 0)
			continue;
		sum = (sum < 0 ? 0 : sum) + v;
	}
	return sum;
}

/*
 * Applies one usage object: it is overlaid on the merged raw usage (null
 * members never replace a value) and the record's columns are recomputed
 * from the merged object, so the last non-null value of each field wins.
 */
void
provider_anthropic_usage(
    struct provider_state *st, const cJSON *usage, int merge)
{
	struct usage_record *r = st->rec;
	const cJSON *u, *iters;
	const char *s;
	int64_t v;

	if (usage == NULL || !cJSON_IsObject(usage))
		return;
	provider_keep_usage(st, usage, merge);
	u = st->usage_raw;
	provider_set_count(
	    &r->input_tokens, provider_json_int(u, "input_tokens"));
	provider_set_count(
	    &r->output_tokens, provider_json_int(u, "output_tokens"));
	provider_set_count(&r->cache_read_input_tokens,
	    provider_json_int(u, "cache_read_input_tokens"));
	provider_set_count(&r->cache_creation_input_tokens,
	    provider_json_int(u, "cache_creation_input_tokens"));
	provider_set_count(&r->cache_creation_5m_tokens,
	    provider_json_int(u, "cache_creation.ephemeral_5m_input_tokens"));
	provider_set_count(&r->cache_creation_1h_tokens,
	    provider_json_int(u, "cache_creation.ephemeral_1h_input_tokens"));
	provider_set_count(&r->web_search_requests,
	    provider_json_int(u, "server_tool_use.web_search_requests"));
	provider_set_count(&r->reasoning_tokens,
	    provider_json_int(u, "output_tokens_details.thinking_tokens"));
	if ((s = provider_json_str(u, "service_tier")) != NULL)
		usage_set_str(&r->service_tier, s);

	/* Compaction: the top level leaves out the compaction iteration;
	 * billing is the sum over iterations[]. */
	iters = cJSON_GetObjectItemCaseSensitive(u, "iterations");
	if (iters != NULL && cJSON_IsArray(iters) &&
	    cJSON_GetArraySize(iters) > 0) {
		if ((v = iterations_sum(iters, "input_tokens")) >= 0)
			r->input_tokens = v;
		if ((v = iterations_sum(iters, "output_tokens")) >= 0)
			r->output_tokens = v;
		if ((v = iterations_sum(iters, "cache_read_input_tokens")) >= 0)
			r->cache_read_input_tokens = v;
		if ((v = iterations_sum(
		         iters, "cache_creation_input_tokens")) >= 0)
			r->cache_creation_input_tokens = v;
		if ((v = iterations_sum(iters,
		         "cache_creation.ephemeral_5m_input_tokens")) >= 0)
			r->cache_creation_5m_tokens = v;
		if ((v = iterations_sum(iters,
		         "cache_creation.ephemeral_1h_input_tokens")) >= 0)
			r->cache_creation_1h_tokens = v;
	}
}

/* A Message object (non-streamed body or message_start.message). */
void
provider_anthropic_message(struct provider_state *st, const cJSON *msg)
{
	const char *s;

	if (msg == NULL || !cJSON_IsObject(msg))
		return;
	if ((s = provider_json_str(msg, "model")) != NULL)
		usage_set_str(&st->rec->model, s);
	if (st->rec->request_id == NULL &&
	    (s = provider_json_str(msg, "id")) != NULL)
		usage_set_str(&st->rec->request_id, s);
	if ((s = provider_json_str(msg, "stop_reason")) != NULL)
		usage_set_str(&st->rec->stop_reason, s);
	provider_anthropic_usage(
	    st, cJSON_GetObjectItemCaseSensitive(msg, "usage"), 1);
}

/* Bedrock's amazon-bedrock-invocationMetrics (on message_stop, or inside a
 * legacy model's chunk): used when no Anthropic usage arrived. */
static void
bedrock_metrics(struct provider_state *st, const cJSON *data)
{
	const cJSON *m;
	struct usage_record *r = st->rec;

	m = provider_json_obj(data, "amazon-bedrock-invocationMetrics");
	if (m == NULL || st->usage_seen)
		return;
	provider_keep_usage(st, m, 0);
	provider_set_count(
	    &r->input_tokens, provider_json_int(m, "inputTokenCount"));
	provider_set_count(
	    &r->output_tokens, provider_json_int(m, "outputTokenCount"));
	provider_set_count(&r->cache_read_input_tokens,
	    provider_json_int(m, "cacheReadInputTokenCount"));
	provider_set_count(&r->cache_creation_input_tokens,
	    provider_json_int(m, "cacheWriteInputTokenCount"));
}

void
provider_anthropic_event(
    struct provider_state *st, const char *type, const cJSON *data)
{
	char buf[32];
	const char *t;

	if (data == NULL)
		return;
	/* The JSON type equals the event name; trust the JSON. */
	if ((t = provider_json_str(data, "type")) == NULL)
		t = type;
	if (t == NULL) {
		bedrock_metrics(st, data);
		return;
	}
	if (strcmp(t, "message_start") == 0) {
		provider_anthropic_message(
		    st, cJSON_GetObjectItemCaseSensitive(data, "message"));
	} else if (strcmp(t, "message_delta") == 0) {
		const char *s = provider_json_str(data, "delta.stop_reason");

		if (s != NULL)
			usage_set_str(&st->rec->stop_reason, s);
		provider_anthropic_usage(
		    st, cJSON_GetObjectItemCaseSensitive(data, "usage"), 1);
	} else if (strcmp(t, "message_stop") == 0) {
		st->terminal_seen = 1;
		bedrock_metrics(st, data);
	} else if (strcmp(t, "error") == 0) {
		provider_set_error(
		    st, provider_error_type(data, buf, sizeof(buf)));
	} else {
		bedrock_metrics(st, data);
	}
}

/* One line of a batch results file: a succeeded result's Message usage is
 * added to the record (results are separate messages, so here summing is
 * right); service_tier is "batch". */
static void
anthropic_batch_line(struct provider_state *st, const cJSON *line)
{
	struct usage_record *r = st->rec;
	const cJSON *msg, *u;
	const char *s;
	int64_t *cols[] = {&r->input_tokens, &r->output_tokens,
	    &r->cache_read_input_tokens, &r->cache_creation_input_tokens,
	    &r->cache_creation_5m_tokens, &r->cache_creation_1h_tokens,
	    &r->web_search_requests};
	const char *names[] = {"input_tokens", "output_tokens",
	    "cache_read_input_tokens", "cache_creation_input_tokens",
	    "cache_creation.ephemeral_5m_input_tokens",
	    "cache_creation.ephemeral_1h_input_tokens",
	    "server_tool_use.web_search_requests"};
	size_t i;
	int64_t v;
	cJSON *sum;

	s = provider_json_str(line, "result.type");
	if (s == NULL || strcmp(s, "succeeded") != 0)
		return;
	msg = provider_json_obj(line, "result.message");
	u = provider_json_obj(msg, "usage");
	if (u == NULL)
		return;
	if (r->model == NULL && (s = provider_json_str(msg, "model")) != NULL)
		usage_set_str(&r->model, s);
	for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		if ((v = provider_json_int(u, names[i])) < 0)
			continue;
		*cols[i] = (*cols[i] < 0 ? 0 : *cols[i]) + v;
	}
	if ((s = provider_json_str(u, "service_tier")) != NULL)
		usage_set_str(&r->service_tier, s);
	st->batch_results++;
	st->usage_seen = 1;
	/* The raw usage of a results file is the per-line sum. */
	if ((sum = cJSON_CreateObject()) == NULL)
		return;
	cJSON_AddNumberToObject(sum, "results", (double)st->batch_results);
	for (i = 0; i < 4; i++)
		if (*cols[i] >= 0)
			cJSON_AddNumberToObject(
			    sum, names[i], (double)*cols[i]);
	cJSON_Delete(st->usage_raw);
	st->usage_raw = sum;
}

static void
anthropic_event(struct provider_state *st, const char *type, const cJSON *data)
{
	if (st->kind == ANTHROPIC_BATCH_RESULTS) {
		if (data != NULL)
			anthropic_batch_line(st, data);
		return;
	}
	if (st->kind != ANTHROPIC_MESSAGES)
		return;
	provider_anthropic_event(st, type, data);
}

/* Whether data is exactly {"type":"message_stop"}, give or take white
 * space: the end of the stream and nothing else. */
static int
bare_message_stop(const char *data, size_t len)
{
	static const char *const tok[] = {
	    "{", "\"type\"", ":", "\"message_stop\"", "}"};
	const char *p = data, *end = data + len;
	size_t i, n;

	for (i = 0; i < sizeof(tok) / sizeof(tok[0]); i++) {
		p = provider_json_ws(p, end);
		n = strlen(tok[i]);
		if ((size_t)(end - p) < n || memcmp(p, tok[i], n) != 0)
			return 0;
		p += n;
	}
	return provider_json_ws(p, end) == end;
}

/*
 * The events of a Messages stream that carry text, not usage, are not
 * parsed: a content_block_* or ping event whose JSON starts with its
 * "type" member naming that same event (the first member is what a parse
 * would read), unless its bytes hold Bedrock's invocation metrics.  A
 * bare message_stop only marks the end.  Anything else is parsed as
 * before.
 */
static int
anthropic_skip(
    struct provider_state *st, const char *type, const char *data, size_t len)
{
	static const char *const names[] = {"content_block_delta", "ping",
	    "content_block_start", "content_block_stop"};
	const char *p = data, *end = data + len;
	size_t i, n;

	if (st->kind != ANTHROPIC_MESSAGES || type == NULL)
		return 0;
	if (type[0] == 'm') {
		if (strcmp(type, "message_stop") != 0 ||
		    !bare_message_stop(data, len))
			return 0;
		st->terminal_seen = 1; /* what anthropic_event would do */
		return 1;
	}
	if (type[0] != 'c' && type[0] != 'p')
		return 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(type, names[i]) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		return 0;
	/* {"type":"NAME" with optional white space around the tokens. */
	p = provider_json_ws(p, end);
	if (p == end || *p++ != '{')
		return 0;
	p = provider_json_ws(p, end);
	if ((size_t)(end - p) < 6 || memcmp(p, "\"type\"", 6) != 0)
		return 0;
	p += 6;
	p = provider_json_ws(p, end);
	if (p == end || *p++ != ':')
		return 0;
	p = provider_json_ws(p, end);
	n = strlen(type);
	if ((size_t)(end - p) < n + 2 || *p != '"' ||
	    memcmp(p + 1, type, n) != 0 || p[n + 1] != '"')
		return 0;
	/* Its anchor, an upper-case letter, is rare in text deltas. */
	return memchr(data, 'M', len) == NULL ||
	    !provider_bytes_has(data, len, "invocationMetrics");
}

static void
anthropic_body(struct provider_state *st, const cJSON *body)
{
	char buf[32];
	const char *t;

	if (body == NULL || !cJSON_IsObject(body))
		return;
	t = provider_json_str(body, "type");
	if ((t != NULL && strcmp(t, "error") == 0) ||
	    cJSON_GetObjectItemCaseSensitive(body, "error") != NULL) {
		provider_set_error(
		    st, provider_error_type(body, buf, sizeof(buf)));
		return;
	}
	switch (st->kind) {
	case ANTHROPIC_MESSAGES:
		provider_anthropic_message(st, body);
		st->terminal_seen = 1;
		break;
	case ANTHROPIC_COUNT_TOKENS:
		/* Not billable: kept as raw usage only, no token columns. */
		if (provider_json_int(body, "input_tokens") >= 0)
			provider_keep_usage(st, body, 0);
		break;
	case ANTHROPIC_BATCH_RESULTS:
		anthropic_batch_line(st, body);
		break;
	default:
		break;
	}
}

static void
anthropic_finish(struct provider_state *st)
{
	if (st->kind == ANTHROPIC_BATCH_RESULTS &&
	    st->rec->service_tier == NULL && st->batch_results > 0)
		usage_set_str(&st->rec->service_tier, "batch");
	if (st->kind == ANTHROPIC_MESSAGES && st->rec->stream == 1 &&
	    st->status >= 200 && st->status < 300 && !st->terminal_seen &&
	    !st->error_seen)
		provider_set_error(st, "incomplete");
}

const struct provider provider_anthropic = {
    .name = "anthropic",
    .match = anthropic_match,
    .begin = anthropic_begin,
    .request = anthropic_request,
    .body = anthropic_body,
    .event = anthropic_event,
    .finish = anthropic_finish,
    .skip = anthropic_skip,
};

/* DeepSeek's Anthropic-shaped endpoint (api.deepseek.com/anthropic/v1/
 * messages): Anthropic framing, DeepSeek's name. */
static int
deepseek_anthropic_match(const char *host, const char *path)
{
	return provider_host_is(host, "api.deepseek.com") &&
	    str_has_prefix(path, "/anthropic/");
}

const struct provider provider_deepseek_anthropic = {
    .name = "deepseek",
    .match = deepseek_anthropic_match,
    .begin = anthropic_begin,
    .request = anthropic_request,
    .body = anthropic_body,
    .event = anthropic_event,
    .finish = anthropic_finish,
    .skip = anthropic_skip,
};
