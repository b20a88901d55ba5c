/*
 * usage: the usage record of one metered exchange, as the meter builds it
 * and the store keeps it.
 *
 * Token counts follow one normalisation for every provider (docs/metering.md):
 *   input_tokens      input neither read from nor written to a cache
 *   cache_read_input_tokens, cache_creation_input_tokens (= 5m + 1h)
 *   output_tokens     everything generated, reasoning included
 *   reasoning_tokens  the reasoning part on its own
 * A count the provider did not report is -1 (NULL in the DB), never 0.
 * Strings are malloc'd and owned by the record; NULL when unknown.  Nothing
 * here may hold a prompt, a completion or a credential.
 */
#ifndef HALTON_USAGE_H
#define HALTON_USAGE_H

#include <stdint.h>

#define USAGE_UUID_LEN 36

struct usage_record {
	char uuid[USAGE_UUID_LEN + 1];
	int64_t started_at; /* epoch ms */
	int64_t ended_at;   /* epoch ms */
	int64_t ttfb_ms;    /* -1 if no response byte */
	int64_t duration_ms;
	char *provider; /* "anthropic", "openai", ... or NULL */
	char *kind;     /* "messages", "chat", "responses", "embeddings",
	                   "count_tokens", "other", ... */
	char *host;
	char *method;
	char *path; /* without the query string */
	int status; /* HTTP status, 0 if none */
	int stream; /* 1 streamed, 0 not, -1 unknown */
	char *request_model;
	char *model;
	int64_t input_tokens;
	int64_t output_tokens;
	int64_t cache_creation_input_tokens;
	int64_t cache_creation_5m_tokens;
	int64_t cache_creation_1h_tokens;
	int64_t cache_read_input_tokens;
	int64_t reasoning_tokens;
	int64_t web_search_requests;
	char *stop_reason;
	char *request_id;
	char *error; /* NULL, "incomplete", "usage_missing",
	                provider error type, "parse error: ..." */
	char *service_tier;
	char *client;
	char *client_version;
	char *user_agent;
	char *tag;
	int64_t pid; /* -1 unknown */
	char *process;
	char *cwd;
	char *project;
	char *key_fp; /* 8 hex digits of SHA-256(credential) */
	char *session_id;
	int64_t bytes_up;
	int64_t bytes_down;
	double provider_cost_usd; /* < 0 if not reported */
	char *usage_json;         /* the provider's raw usage object */
};

/* Sets every count to -1, every string to NULL, and a fresh uuid: v7
 * (Unix ms, then a per-process random start counted up per record), so
 * unique, and increasing within a process while the clock does not step
 * back; no system call per record. */
void usage_record_init(struct usage_record *);
void usage_record_free(struct usage_record *);
/* Clears r's string pointers without freeing them (their owner moved). */
void usage_record_forget(struct usage_record *);
/* Replaces a string field (frees the old value; copies s, NULL ok). */
void usage_set_str(char **, const char *);

/* Rate-limit snapshot headers of one response (for `status`). */
struct ratelimit_snapshot {
	char *provider;
	char *key_fp;
	int64_t observed_at; /* epoch ms */
	char *headers_json;  /* {"anthropic-ratelimit-...": "value", ...} */
};

void ratelimit_snapshot_free(struct ratelimit_snapshot *);

#endif
