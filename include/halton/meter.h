/*
 * meter: turns each intercepted exchange into one usage record (one per
 * response for a Responses API WebSocket).
 *
 * The engine calls the hook table of meter_hooks() with the struct meter
 * as arg.  Per exchange the meter picks a provider by host + path, reads
 * the request JSON (model, stream, include_usage), decodes the response's
 * Content-Encoding on a copy with one persistent decoder, frames it (JSON,
 * SSE, SSE sniffed by content, Gemini JSON array, AWS event-stream, JSON
 * lines, WebSocket messages after a 101), feeds the provider, adds the
 * attribution (client, tag, key fingerprint, process) and, at the end,
 * hands the finished record to record_cb.  Nothing here blocks (beyond
 * the bounded wait below), and nothing here can change a forwarded byte.
 *
 * The client process (resolve_process) is looked up once per client
 * connection on the meter's own worker thread, never in a hook: the first
 * exchange of a connection queues the lookup and goes on.  The end hook
 * gives a lookup still in progress at most 2 ms (the client of a very
 * short exchange is still connected then); after that the record waits
 * inside the meter, the owner gets poll_cb and must then call
 * meter_poll() from its event loop until meter_pending() is 0.  meter_free() emits every waiting record (it lets
 * the worker finish the lookups still queued first).  Every record reaches
 * record_cb exactly once, on the thread that calls the hooks, meter_poll()
 * or meter_free(); a record whose lookup fails carries pid -1.
 *
 * What the daemon (src/cli/cmd-daemon.c) does with it:
 *   - meter_options.poll_cb = a callback that arms the flush timer
 *     (flush_schedule(d, 0)); its arg is the meter's arg;
 *   - at the top of the flush timer's callback: meter_poll(d->meter);
 *     at its end: if (meter_pending(d->meter) > 0) flush_schedule(d, 0);
 *   - meter_free() after proxy_free() and before store_close(), as now.
 *
 * The same pipeline is reachable without a struct exchange through the
 * meter_exchange_* calls (what the hooks use, and what the tests feed).
 */
#ifndef HALTON_METER_H
#define HALTON_METER_H

#include <stddef.h>
#include <stdint.h>

#include "halton/attribution.h"
#include "halton/exchange.h"
#include "halton/usage.h"

/* Receives a finished record and takes ownership of it: the callee ends
 * with usage_record_free(rec) and free(rec). */
typedef void (*meter_record_cb)(void *arg, struct usage_record *rec);
/* Receives a rate-limit snapshot, same ownership rule
 * (ratelimit_snapshot_free + free). */
typedef void (*meter_ratelimit_cb)(void *arg, struct ratelimit_snapshot *);

struct meter_options {
	/* Largest request or response JSON body buffered for metering; 0
	 * means CONFIG_DEFAULT_BODY_LIMIT (config `meter_body_limit`). */
	size_t body_limit;
	/* 1: find the local process of each client connection (once per
	 * connection, on a worker thread meter_new starts: do not fork
	 * after meter_new).  0: skip (tests, remote clients). */
	int resolve_process;
	/* The engine's intercept decision, forwarded by the intercept hook;
	 * NULL intercepts every host. */
	int (*intercept)(void *arg, const char *host, int port);
	void *intercept_arg;
	/* Called (on the loop, from a hook, with the meter's arg) when a
	 * finished record starts waiting for its process lookup: the owner
	 * must call meter_poll() soon (within ~200 ms) and again while
	 * meter_pending() > 0.  NULL: the owner polls on its own. */
	void (*poll_cb)(void *arg);
	/* The process lookup run on the worker thread; NULL means
	 * attribution_process_lookup (tests put a counting wrapper here). */
	int (*lookup)(const char *client_addr, int client_port,
	    const char *server_addr, int server_port,
	    struct attribution_process *);
};

struct meter;

struct meter *meter_new(const struct meter_options *, meter_record_cb,
    meter_ratelimit_cb, void *arg);
/* Stops the lookup worker (after it has finished the queued lookups),
 * emits every record still waiting, and frees the meter.  Connections
 * (their cached lookups) may outlive it. */
void meter_free(struct meter *);

/* Emits the waiting records whose process lookup has finished.  Cheap,
 * never blocks: call it from the event loop (the daemon's flush timer). */
void meter_poll(struct meter *);
/* Finished records still waiting for their process lookup. */
size_t meter_pending(const struct meter *);
/* Process lookups run so far (at most one per client connection). */
uint64_t meter_lookups(struct meter *);

/* The hook table for the engine; the hooks' arg is the struct meter. */
const struct exchange_hooks *meter_hooks(void);

/* Records emitted so far (for status and tests). */
uint64_t meter_records(const struct meter *);

/*
 * The exchange pipeline without the engine.
 */
struct meter_header {
	const char *name;
	const char *value;
};

struct meter_request_info {
	const char *host; /* lower-cased */
	const char *method;
	const char *target; /* origin-form path + query */
	const struct meter_header *headers;
	size_t nheaders;
	/* The Proxy-Authorization of the CONNECT that opened the
	 * connection, or NULL. */
	const char *connect_proxy_authorization;
	int64_t started_ms; /* epoch ms; 0 = now */
};

struct meter_end_info {
	const char *error; /* the engine's cause, NULL = complete */
	int64_t ttfb_ms;   /* -1 if no response byte */
	int64_t duration_ms;
	uint64_t bytes_up;
	uint64_t bytes_down;
};

struct meter_exchange;

/* Starts an exchange after its request head (headers are read now, not
 * kept). */
struct meter_exchange *meter_exchange_begin(
    struct meter *, const struct meter_request_info *);
/* Attaches the client process (copied). */
void meter_exchange_set_process(
    struct meter_exchange *, const struct attribution_process *);
void meter_exchange_request_body(struct meter_exchange *, const void *, size_t);
void meter_exchange_response_head(
    struct meter_exchange *, int, const struct meter_header *, size_t);
void meter_exchange_response_body(
    struct meter_exchange *, const void *, size_t);
/* After a 101: the bytes of one direction (to_upstream 1 = from the
 * client). */
void meter_exchange_upgraded(
    struct meter_exchange *, int, const void *, size_t);
/* Finishes the record(s), emits them and frees the exchange. */
void meter_exchange_end(struct meter_exchange *, const struct meter_end_info *);

#endif
