/*
 * provider: how one LLM API reports usage, as a const table entry.
 *
 * A provider sees parsed JSON only: the meter (meter.c) does the decoding
 * and framing and calls, per exchange,
 *
 *	begin    once, after the request head (kind, model from the URL)
 *	request  with the request body's JSON (model, stream, include_usage)
 *	body     with a non-streamed response body (also error bodies)
 *	event    once per streamed event: type is the SSE "event:" name, the
 *	         AWS :event-type, or NULL; data is the event's JSON, or NULL
 *	         for the "[DONE]" sentinel (type "[DONE]")
 *	finish   once at the end, before the record is emitted
 *
 * Every callback fills the usage_record in the provider_state following the
 * one normalisation of usage.h (docs/metering.md).  A provider never copies
 * a prompt, a completion or a credential into the record.  Adding one is
 * one file, one line in the registry (registry.c), fixtures and a test.
 */
#ifndef HALTON_PROVIDER_H
#define HALTON_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "halton/usage.h"

/* OpenAI-compatible hosts that share the openai parser with quirks. */
enum provider_flavor {
	PROVIDER_FLAVOR_NONE = 0,
	PROVIDER_FLAVOR_OPENROUTER, /* usage.cost in USD */
	PROVIDER_FLAVOR_GROQ,       /* x_groq.usage */
	PROVIDER_FLAVOR_DEEPSEEK,   /* prompt_cache_hit/miss_tokens */
	PROVIDER_FLAVOR_MISTRAL,
	PROVIDER_FLAVOR_XAI,   /* reasoning outside completion_tokens */
	PROVIDER_FLAVOR_AZURE, /* deployment URLs, empty first model */
	PROVIDER_FLAVOR_TOGETHER,
	PROVIDER_FLAVOR_FIREWORKS
};

/* The per-exchange state a provider works on.  The meter owns it; the
 * provider only fills rec and its own counters. */
struct provider_state {
	struct usage_record *rec; /* the record being filled */
	const char *host;         /* lower-cased */
	const char *path;         /* request path without the query */
	const char *query;        /* after '?', "" if none */
	const char *method;
	int status;            /* HTTP status (0 before the head) */
	int flavor;            /* enum provider_flavor */
	int kind;              /* the provider's own endpoint id */
	int include_usage;     /* request stream_options.include_usage */
	int usage_seen;        /* a usage object was read */
	int terminal_seen;     /* a terminal event (message_stop,
	                          [DONE], response.completed) */
	int error_seen;        /* a provider error was recorded */
	int record_ready;      /* WebSocket: emit the record now */
	int ws;                /* the exchange is a WebSocket */
	int jsonl;             /* the response is JSON lines (batch
	                          results): one event per line */
	int64_t batch_results; /* batch result lines summed */
	cJSON *usage_raw;      /* merged raw usage object (owned) */
};

struct provider {
	const char *name;
	int flavor;
	/* 1 if this provider meters host + path (path without query). */
	int (*match)(const char *host, const char *path);
	void (*begin)(struct provider_state *);
	/* The request body's top-level "model", "stream" and
	 * "stream_options" only (the meter scans the body for those
	 * members instead of parsing it all): a provider that needs another
	 * member must be added to the meter's list (req_wanted_keys). */
	void (*request)(struct provider_state *, const cJSON *);
	void (*body)(struct provider_state *, const cJSON *);
	void (*event)(struct provider_state *, const char *, const cJSON *);
	void (*finish)(struct provider_state *);
	/*
	 * Optional, for streamed (SSE) events: 1 if the event named type
	 * (or NULL) with the raw JSON data[0..len) cannot change the record,
	 * so the meter need not parse it.  Must answer 0 when unsure: a
	 * cheap look at the bytes, never a parse.  A skipped event is not
	 * checked for valid JSON (no "parse error" is noted for it).  It may
	 * set terminal_seen for an end-of-stream event it recognised whole.
	 */
	int (*skip)(
	    struct provider_state *, const char *, const char *, size_t);
};

extern const struct provider provider_anthropic;
extern const struct provider provider_deepseek_anthropic;
extern const struct provider provider_openai;
extern const struct provider provider_openrouter;
extern const struct provider provider_groq;
extern const struct provider provider_deepseek;
extern const struct provider provider_mistral;
extern const struct provider provider_xai;
extern const struct provider provider_azure;
extern const struct provider provider_together;
extern const struct provider provider_fireworks;
extern const struct provider provider_gemini;
extern const struct provider provider_gemini_openai;
extern const struct provider provider_bedrock;

/* The registry, NULL-terminated, most specific first. */
extern const struct provider *const provider_registry[];

/* The provider that meters host + path (path may carry a query, which is
 * ignored), or NULL. */
const struct provider *provider_find(const char *, const char *);

/* Resets st for a new exchange (keeps nothing) and frees usage_raw. */
void provider_state_init(struct provider_state *);
void provider_state_clear(struct provider_state *);

/*
 * Helpers shared by the providers (registry.c).
 */
/* The integer at a dotted path ("a.b.c") of obj, or -1 when it is missing,
 * null or not a non-negative number. */
int64_t provider_json_int(const cJSON *, const char *);
/* The string at a dotted path, or NULL (also for ""). */
const char *provider_json_str(const cJSON *, const char *);
/* The object at a dotted path, or NULL. */
const cJSON *provider_json_obj(const cJSON *, const char *);
/* Sets *field to v when v >= 0 (last reported value wins). */
void provider_set_count(int64_t *, int64_t);
/* Replaces st->usage_raw with a copy of usage (merge = 0), or overlays the
 * non-null members of usage on it (merge = 1). */
void provider_keep_usage(struct provider_state *, const cJSON *, int);
/* The error type a provider body or event names ({"type":"error","error":
 * {"type":T}}, {"error":{"type":T}}, {"error":{"code":C}}, {"error":
 * {"status":S}}), or NULL. */
const char *provider_error_type(const cJSON *, char *, size_t);
/* Records err as the record's error unless one is already set. */
void provider_set_error(struct provider_state *, const char *);
/* The common request fields: "model", "stream", and
 * "stream_options.include_usage". */
void provider_request_common(struct provider_state *, const cJSON *);
/* The first byte at or after p (before end) that is not JSON white space. */
const char *provider_json_ws(const char *, const char *);
/* 1 if needle occurs in data[0..len). */
int provider_bytes_has(const char *, size_t, const char *);
/*
 * For a skip callback: 1 if every member named key in the raw JSON
 * data[0..len) (at any depth) has the value null or, when cur is not NULL,
 * the string cur exactly (without escapes); 0 if any has another value.
 */
int provider_raw_key_is(const char *, size_t, const char *, const char *);
/* 1 if host equals name or ends in "." + name (ASCII, case-insensitive). */
int provider_host_is(const char *, const char *);

/* Anthropic Messages usage and events, shared with Bedrock InvokeModel. */
void provider_anthropic_usage(struct provider_state *, const cJSON *, int);
void provider_anthropic_message(struct provider_state *, const cJSON *);
void provider_anthropic_event(
    struct provider_state *, const char *, const cJSON *);

#endif
