/*
 * meter-test: helpers shared by the meter and provider unit tests.  They
 * drive meter.c's engine-free entry points (meter_exchange_*) with a
 * request and a response body, in any split, and collect the records.
 */
#ifndef METER_TEST_H
#define METER_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "harness.h"
#include "halton/meter.h"
#include "halton/usage.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define MT_FIXTURES    "tests/fixtures/wire/meter/"
#define MT_MAX_RECORDS 16

struct mt_result {
	struct usage_record rec[MT_MAX_RECORDS];
	int n;
	struct ratelimit_snapshot snap[4];
	int nsnap;
};

/* One exchange: headers are NULL-terminated name, value, name, value. */
struct mt_exchange {
	const char *host;
	const char *method;
	const char *target;
	const char *const *req_headers;
	const char *req_body;
	int status;
	const char *const *resp_headers;
	const char *engine_error;
	const char *connect_auth;
};

static inline void
mt_record_cb(void *arg, struct usage_record *r)
{
	struct mt_result *res = arg;

	if (res->n < MT_MAX_RECORDS)
		res->rec[res->n++] = *r;
	else
		usage_record_free(r);
	free(r);
}

static inline void
mt_ratelimit_cb(void *arg, struct ratelimit_snapshot *s)
{
	struct mt_result *res = arg;

	if (res->nsnap < 4)
		res->snap[res->nsnap++] = *s;
	else
		ratelimit_snapshot_free(s);
	free(s);
}

static inline void
mt_result_free(struct mt_result *res)
{
	int i;

	for (i = 0; i < res->n; i++)
		usage_record_free(&res->rec[i]);
	for (i = 0; i < res->nsnap; i++)
		ratelimit_snapshot_free(&res->snap[i]);
	memset(res, 0, sizeof(*res));
}

static inline size_t
mt_headers(const char *const *kv, struct meter_header *h, size_t max)
{
	size_t n = 0;

	while (kv != NULL && kv[0] != NULL && n < max) {
		h[n].name = kv[0];
		h[n].value = kv[1];
		n++;
		kv += 2;
	}
	return n;
}

/* Starts x, writes the request body and the response head. */
static inline struct meter_exchange *
mt_start(struct meter *m, const struct mt_exchange *x)
{
	struct meter_header rq[32], rs[32];
	struct meter_request_info ri;
	struct meter_exchange *mx;

	memset(&ri, 0, sizeof(ri));
	ri.host = x->host;
	ri.method = x->method != NULL ? x->method : "POST";
	ri.target = x->target;
	ri.headers = rq;
	ri.nheaders = mt_headers(x->req_headers, rq, 32);
	ri.connect_proxy_authorization = x->connect_auth;
	ri.started_ms = 1764000000000LL;
	mx = meter_exchange_begin(m, &ri);
	if (x->req_body != NULL)
		meter_exchange_request_body(
		    mx, x->req_body, strlen(x->req_body));
	if (x->status != 0)
		meter_exchange_response_head(
		    mx, x->status, rs, mt_headers(x->resp_headers, rs, 32));
	return mx;
}

static inline void
mt_end(struct meter_exchange *mx, const struct mt_exchange *x, size_t len)
{
	struct meter_end_info end;

	memset(&end, 0, sizeof(end));
	end.error = x->engine_error;
	end.ttfb_ms = 5;
	end.duration_ms = 42;
	end.bytes_up = x->req_body != NULL ? strlen(x->req_body) : 0;
	end.bytes_down = len;
	meter_exchange_end(mx, &end);
}

/*
 * Runs x with body delivered in pieces: split 0 whole, 1 byte by byte, or
 * cut once at offset cut (when cut > 0 and split == 2).
 */
static inline void
mt_run(const struct mt_exchange *x, const void *body, size_t len, int split,
    size_t cut, struct mt_result *res)
{
	struct meter_options opt;
	struct meter *m;
	struct meter_exchange *mx;
	const unsigned char *p = body;
	size_t i;

	memset(res, 0, sizeof(*res));
	memset(&opt, 0, sizeof(opt));
	m = meter_new(&opt, mt_record_cb, mt_ratelimit_cb, res);
	mx = mt_start(m, x);
	if (split == 0) {
		meter_exchange_response_body(mx, p, len);
	} else if (split == 1) {
		for (i = 0; i < len; i++)
			meter_exchange_response_body(mx, p + i, 1);
	} else {
		meter_exchange_response_body(mx, p, cut);
		meter_exchange_response_body(mx, p + cut, len - cut);
	}
	mt_end(mx, x, len);
	meter_free(m);
}

static inline int
mt_str_eq(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Whether two records carry the same metering result. */
static inline int
mt_same(const struct usage_record *a, const struct usage_record *b)
{
	return a->input_tokens == b->input_tokens &&
	    a->output_tokens == b->output_tokens &&
	    a->cache_creation_input_tokens == b->cache_creation_input_tokens &&
	    a->cache_creation_5m_tokens == b->cache_creation_5m_tokens &&
	    a->cache_creation_1h_tokens == b->cache_creation_1h_tokens &&
	    a->cache_read_input_tokens == b->cache_read_input_tokens &&
	    a->reasoning_tokens == b->reasoning_tokens &&
	    a->web_search_requests == b->web_search_requests &&
	    a->stream == b->stream && a->status == b->status &&
	    a->provider_cost_usd == b->provider_cost_usd &&
	    mt_str_eq(a->model, b->model) &&
	    mt_str_eq(a->request_model, b->request_model) &&
	    mt_str_eq(a->stop_reason, b->stop_reason) &&
	    mt_str_eq(a->error, b->error) &&
	    mt_str_eq(a->usage_json, b->usage_json) &&
	    mt_str_eq(a->kind, b->kind) && mt_str_eq(a->provider, b->provider);
}

/*
 * Runs x whole into *whole (the caller checks it and frees it), then split
 * at every byte offset and byte by byte, and checks each run yields one
 * record equal to the whole run's.
 */
static inline void
mt_run_all_splits(const struct mt_exchange *x, const void *body, size_t len,
    struct mt_result *whole)
{
	struct mt_result r;
	size_t cut;

	mt_run(x, body, len, 0, 0, whole);
	if (whole->n != 1) {
		harness_fail(__FILE__, __LINE__, "%d records for %s", whole->n,
		    x->target);
		return;
	}
	for (cut = 1; cut < len; cut++) {
		mt_run(x, body, len, 2, cut, &r);
		if (r.n != 1 || !mt_same(&r.rec[0], &whole->rec[0]))
			harness_fail(__FILE__, __LINE__,
			    "%s split at %zu differs (error %s)", x->target,
			    cut,
			    r.n == 1 && r.rec[0].error ? r.rec[0].error : "-");
		mt_result_free(&r);
		if (harness_failed())
			return;
	}
	mt_run(x, body, len, 1, 0, &r);
	if (r.n != 1 || !mt_same(&r.rec[0], &whole->rec[0]))
		harness_fail(
		    __FILE__, __LINE__, "%s byte by byte differs", x->target);
	mt_result_free(&r);
}

static inline char *
mt_fixture(const char *name, size_t *len)
{
	char path[512];
	char *p;

	snprintf(path, sizeof(path), MT_FIXTURES "%s", name);
	if ((p = harness_read_file(path, len)) == NULL) {
		harness_fail(__FILE__, __LINE__, "cannot read %s", path);
		p = xstrdup("");
		*len = 0;
	}
	return p;
}

/*
 * Encodes an SSE body with gzip (window 31) or zlib/deflate (15), one
 * Z_SYNC_FLUSH after each event (blank line), as servers that flush per
 * event send it.  Returns a malloc'd buffer.
 */
static inline unsigned char *
mt_deflate_per_event(const char *sse, size_t len, int window, size_t *outlen)
{
	z_stream z;
	unsigned char *out;
	size_t cap = len * 2 + 1024, start = 0, i;

	*outlen = 0;
	int flush;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return NULL;
	out = xmalloc(cap);
	z.next_out = out;
	z.avail_out = (uInt)cap;
	for (i = 0; i <= len; i++) {
		int boundary = i == len ||
		    (i >= 1 && sse[i - 1] == '\n' && i >= 2 &&
		        sse[i - 2] == '\n');

		if (!boundary || i == start)
			continue;
		flush = i == len ? Z_FINISH : Z_SYNC_FLUSH;
		z.next_in = (Bytef *)(uintptr_t)(sse + start);
		z.avail_in = (uInt)(i - start);
		(void)deflate(&z, flush);
		start = i;
	}
	if (start == len) {
		z.next_in = NULL;
		z.avail_in = 0;
		(void)deflate(&z, Z_FINISH);
	}
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

#endif
