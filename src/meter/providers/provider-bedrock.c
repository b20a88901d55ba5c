/*
 * provider-bedrock: AWS Bedrock Runtime (bedrock-runtime.{region}.
 * amazonaws.com): InvokeModel / InvokeModelWithResponseStream with
 * Anthropic payloads, and Converse / ConverseStream.
 *
 * Wire facts (botocore bedrock-runtime service-2; anthropic-sdk lib/
 * bedrock): the model id is the URL-encoded {modelId} of /model/{modelId}/
 * {operation}; an invoke stream is AWS event-stream "chunk" frames whose
 * base64 "bytes" are the Anthropic stream events (the meter decodes them
 * and hands the inner JSON here), the final message_stop adding
 * amazon-bedrock-invocationMetrics; ConverseStream's usage is in the last
 * "metadata" event (inputTokens excludes cache reads and writes, as in
 * Anthropic usage).
 */
#include <stdlib.h>
#include <string.h>

#include "halton/provider.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

enum bedrock_kind {
	BEDROCK_OTHER = 0,
	BEDROCK_INVOKE,
	BEDROCK_CONVERSE,
	BEDROCK_COUNT_TOKENS
};

static int
bedrock_match(const char *host, const char *path)
{
	return str_has_prefix(host, "bedrock-runtime.") &&
	    (str_has_suffix(host, ".amazonaws.com") ||
	        str_has_suffix(host, ".amazonaws.com.cn"));
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes n bytes of s into a new string. */
static char *
url_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static void
bedrock_begin(struct provider_state *st)
{
	const char *p = st->path, *id, *op;
	const char *kind = "other";
	char *model;

	st->kind = BEDROCK_OTHER;
	if (str_has_prefix(p, "/model/") && (op = strrchr(p, '/')) != NULL &&
	    op > p + 7) {
		id = p + 7;
		model = url_decode(id, (size_t)(op - id));
		op++;
		if (strcmp(op, "invoke") == 0) {
			st->kind = BEDROCK_INVOKE;
			st->rec->stream = 0;
		} else if (strcmp(op, "invoke-with-response-stream") == 0) {
			st->kind = BEDROCK_INVOKE;
			st->rec->stream = 1;
		} else if (strcmp(op, "converse") == 0) {
			st->kind = BEDROCK_CONVERSE;
			st->rec->stream = 0;
		} else if (strcmp(op, "converse-stream") == 0) {
			st->kind = BEDROCK_CONVERSE;
			st->rec->stream = 1;
		} else if (strcmp(op, "count-tokens") == 0) {
			st->kind = BEDROCK_COUNT_TOKENS;
		}
		if (st->kind != BEDROCK_OTHER)
			usage_set_str(&st->rec->request_model, model);
		free(model);
	}
	switch (st->kind) {
	case BEDROCK_INVOKE:
		kind = "invoke";
		break;
	case BEDROCK_CONVERSE:
		kind = "converse";
		break;
	case BEDROCK_COUNT_TOKENS:
		kind = "count_tokens";
		break;
	default:
		break;
	}
	usage_set_str(&st->rec->kind, kind);
}

static void
bedrock_request(struct provider_state *st, const cJSON *body)
{
	/* The model is in the URL; the body has none. */
}

/* Converse TokenUsage. */
static void
converse_usage(struct provider_state *st, const cJSON *u)
{
	struct usage_record *r = st->rec;
	const cJSON *details, *d;
	const char *ttl;
	int64_t v;

	if (u == NULL || !cJSON_IsObject(u))
		return;
	provider_keep_usage(st, u, 0);
	r->input_tokens = provider_json_int(u, "inputTokens");
	r->output_tokens = provider_json_int(u, "outputTokens");
	if ((v = provider_json_int(u, "cacheReadInputTokens")) < 0)
		v = provider_json_int(u, "cacheReadInputTokenCount");
	r->cache_read_input_tokens = v;
	if ((v = provider_json_int(u, "cacheWriteInputTokens")) < 0)
		v = provider_json_int(u, "cacheWriteInputTokenCount");
	r->cache_creation_input_tokens = v;
	details = cJSON_GetObjectItemCaseSensitive(u, "cacheDetails");
	if (details != NULL && cJSON_IsArray(details)) {
		cJSON_ArrayForEach(d, details)
		{
			ttl = provider_json_str(d, "ttl");
			v = provider_json_int(d, "inputTokens");
			if (ttl == NULL || v < 0)
				continue;
			if (strcmp(ttl, "5m") == 0)
				r->cache_creation_5m_tokens =
				    (r->cache_creation_5m_tokens < 0
				            ? 0
				            : r->cache_creation_5m_tokens) +
				    v;
			else if (strcmp(ttl, "1h") == 0)
				r->cache_creation_1h_tokens =
				    (r->cache_creation_1h_tokens < 0
				            ? 0
				            : r->cache_creation_1h_tokens) +
				    v;
		}
	}
}

static void
bedrock_event(struct provider_state *st, const char *type, const cJSON *data)
{
	const char *s;

	if (data == NULL)
		return;
	if (st->kind == BEDROCK_INVOKE) {
		/* The decoded "bytes" of a chunk: an Anthropic event. */
		provider_anthropic_event(st, NULL, data);
		return;
	}
	if (st->kind != BEDROCK_CONVERSE || type == NULL)
		return;
	if (strcmp(type, "messageStop") == 0) {
		if ((s = provider_json_str(data, "stopReason")) != NULL)
			usage_set_str(&st->rec->stop_reason, s);
	} else if (strcmp(type, "metadata") == 0) {
		converse_usage(
		    st, cJSON_GetObjectItemCaseSensitive(data, "usage"));
		if ((s = provider_json_str(data, "serviceTier.type")) != NULL)
			usage_set_str(&st->rec->service_tier, s);
		st->terminal_seen = 1;
	}
}

static void
bedrock_body(struct provider_state *st, const cJSON *body)
{
	const char *s;

	if (body == NULL || !cJSON_IsObject(body))
		return;
	if (st->status >= 400) {
		/* {"message": "..."}: the type is in x-amzn-ErrorType, which
		 * the meter reads. */
		if ((s = provider_json_str(body, "__type")) != NULL)
			provider_set_error(st, s);
		return;
	}
	switch (st->kind) {
	case BEDROCK_INVOKE:
		s = provider_json_str(body, "type");
		if (s != NULL && strcmp(s, "message") == 0)
			provider_anthropic_message(st, body);
		else
			provider_anthropic_event(st, NULL, body);
		st->terminal_seen = 1;
		break;
	case BEDROCK_CONVERSE:
		if ((s = provider_json_str(body, "stopReason")) != NULL)
			usage_set_str(&st->rec->stop_reason, s);
		converse_usage(
		    st, cJSON_GetObjectItemCaseSensitive(body, "usage"));
		st->terminal_seen = 1;
		break;
	case BEDROCK_COUNT_TOKENS:
		if (provider_json_int(body, "inputTokens") >= 0)
			provider_keep_usage(st, body, 0);
		break;
	default:
		break;
	}
}

static void
bedrock_finish(struct provider_state *st)
{
	/* The URL model id is what Bedrock bills (and prices) by. */
	if (st->kind != BEDROCK_OTHER && st->rec->request_model != NULL)
		usage_set_str(&st->rec->model, st->rec->request_model);
	if ((st->kind != BEDROCK_INVOKE && st->kind != BEDROCK_CONVERSE) ||
	    st->error_seen || st->status < 200 || st->status >= 300)
		return;
	if (st->rec->stream == 1 && !st->terminal_seen)
		provider_set_error(st, "incomplete");
	else if (!st->usage_seen)
		provider_set_error(st, "usage_missing");
}

const struct provider provider_bedrock = {
    .name = "bedrock",
    .match = bedrock_match,
    .begin = bedrock_begin,
    .request = bedrock_request,
    .body = bedrock_body,
    .event = bedrock_event,
    .finish = bedrock_finish,
};
