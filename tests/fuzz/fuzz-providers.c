/*
 * libFuzzer target for the meter and every provider: the first byte picks
 * an exchange (provider, endpoint, status, Content-Type, Content-Encoding,
 * WebSocket or not), the second a chunk size; the rest is the response
 * body (or, for a WebSocket, the server's bytes), fed through meter.c's
 * engine-free entry points in chunks.  The record must come out, every
 * time, exactly once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/meter.h"
#include "halton/usage.h"

struct scenario {
	const char *host;
	const char *target;
	const char *req;
	int status;
	const char *ctype;
	const char *encoding;
	int ws;
};

static const struct scenario scenarios[] = {
    {"api.anthropic.com", "/v1/messages",
        "{\"model\":\"m\",\"stream\":"
        "true}",
        200, "text/event-stream", NULL, 0},
    {"api.anthropic.com", "/v1/messages", "{\"model\":\"m\"}", 200,
        "application/json", NULL, 0},
    {"api.anthropic.com", "/v1/messages", "{\"stream\":true}", 200,
        "text/event-stream", "gzip", 0},
    {"api.anthropic.com", "/v1/messages/batches/b/results", NULL, 200,
        "application/binary", NULL, 0},
    {"api.anthropic.com", "/v1/messages", NULL, 529, "application/json", NULL,
        0},
    {"api.openai.com", "/v1/chat/completions",
        "{\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true}}",
        200, "text/event-stream", NULL, 0},
    {"api.openai.com", "/v1/responses", "{\"stream\":true}", 200, NULL, NULL,
        0},
    {"api.openai.com", "/v1/responses", NULL, 101, NULL, NULL, 1},
    {"api.openai.com", "/v1/embeddings", NULL, 200, "application/json", "zstd",
        0},
    {"openrouter.ai", "/api/v1/chat/completions", NULL, 200,
        "text/event-stream", NULL, 0},
    {"api.groq.com", "/openai/v1/chat/completions", NULL, 200,
        "text/event-stream", NULL, 0},
    {"api.deepseek.com", "/chat/completions", NULL, 200, "text/event-stream",
        NULL, 0},
    {"api.x.ai", "/v1/chat/completions", NULL, 200, "text/event-stream", "br",
        0},
    {"r.openai.azure.com", "/openai/deployments/d/chat/completions", NULL, 200,
        "text/event-stream", NULL, 0},
    {"generativelanguage.googleapis.com",
        "/v1beta/models/g:streamGenerateContent?alt=sse", NULL, 200,
        "text/event-stream", NULL, 0},
    {"generativelanguage.googleapis.com",
        "/v1beta/models/g:streamGenerateContent", NULL, 200, "application/json",
        NULL, 0},
    {"cloudcode-pa.googleapis.com", "/v1internal:generateContent",
        "{\"model\":\"g\"}", 200, "application/json", "deflate", 0},
    {"bedrock-runtime.us-east-1.amazonaws.com",
        "/model/a%3Ab/invoke-with-response-stream", NULL, 200,
        "application/vnd.amazon.eventstream", NULL, 0},
    {"bedrock-runtime.us-east-1.amazonaws.com", "/model/a/converse-stream",
        NULL, 200, "application/vnd.amazon.eventstream", NULL, 0},
    {"bedrock-runtime.us-east-1.amazonaws.com", "/model/a/converse", NULL, 200,
        "application/json", NULL, 0},
};

static int records;

static void
record_cb(void *arg, struct usage_record *r)
{
	records++;
	usage_record_free(r);
	free(r);
}

static void
ratelimit_cb(void *arg, struct ratelimit_snapshot *s)
{
	ratelimit_snapshot_free(s);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct meter_header req_ws[] = {{"upgrade", "websocket"}};
	const struct scenario *sc;
	struct meter_options opt;
	struct meter_request_info ri;
	struct meter_header rh[3];
	struct meter_end_info end;
	struct meter *m;
	struct meter_exchange *mx;
	size_t chunk, n, off, nh = 0;

	if (size < 2)
		return 0;
	sc = &scenarios[data[0] % (sizeof(scenarios) / sizeof(scenarios[0]))];
	chunk = (size_t)data[1] + 1;
	data += 2;
	size -= 2;

	memset(&opt, 0, sizeof(opt));
	opt.body_limit = 1 << 20;
	records = 0;
	m = meter_new(&opt, record_cb, ratelimit_cb, NULL);
	memset(&ri, 0, sizeof(ri));
	ri.host = sc->host;
	ri.method = sc->ws ? "GET" : "POST";
	ri.target = sc->target;
	ri.headers = sc->ws ? req_ws : NULL;
	ri.nheaders = sc->ws ? 1 : 0;
	ri.started_ms = 1;
	mx = meter_exchange_begin(m, &ri);
	if (sc->req != NULL)
		meter_exchange_request_body(mx, sc->req, strlen(sc->req));
	if (sc->ctype != NULL) {
		rh[nh].name = "content-type";
		rh[nh++].value = sc->ctype;
	}
	if (sc->encoding != NULL) {
		rh[nh].name = "content-encoding";
		rh[nh++].value = sc->encoding;
	}
	if (sc->ws) {
		rh[nh].name = "sec-websocket-extensions";
		rh[nh++].value = "permessage-deflate";
	}
	meter_exchange_response_head(mx, sc->status, rh, nh);
	for (off = 0; off < size; off += n) {
		n = size - off < chunk ? size - off : chunk;
		if (sc->ws)
			meter_exchange_upgraded(mx, 0, data + off, n);
		else
			meter_exchange_response_body(mx, data + off, n);
	}
	memset(&end, 0, sizeof(end));
	end.ttfb_ms = -1;
	end.duration_ms = 1;
	meter_exchange_end(mx, &end);
	if (!sc->ws && records != 1)
		abort();
	meter_free(m);
	return 0;
}
