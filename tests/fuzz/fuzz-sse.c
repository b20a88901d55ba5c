/*
 * libFuzzer target for the SSE parser.  The first two bytes pick a split
 * point; the rest is parsed whole and in two pieces, with a small event
 * limit so the limits are reached.  Invariant: both runs dispatch the same
 * events (type and data, compared by hash) and agree on success, and every
 * event's data is NUL-terminated.  sse_sniff, once it decides on a prefix,
 * decides the same on the whole input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/sse.h"

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
event_cb(void *arg, const char *type, const char *data, size_t len)
{
	struct fuzz_run *r = arg;

	if (data[len] != '\0' || len >= 512)
		abort();
	if (type != NULL) {
		if (strlen(type) > SSE_MAX_TYPE)
			abort();
		fuzz_run_add(r, type, strlen(type));
	}
	fuzz_run_add(r, "|", 1);
	fuzz_run_add(r, data, len);
	r->count++;
	return 0;
}

static int
feed_cb(void *parser, const void *p, size_t len)
{
	return sse_feed(parser, p, len);
}

static int
parse(const uint8_t *p, size_t len, size_t split, struct fuzz_run *r)
{
	struct sse *s = sse_new(512, event_cb, r);
	int rc;

	fuzz_run_init(r);
	rc = fuzz_feed_split(feed_cb, s, p, len, split);
	if (rc == 0)
		rc = sse_finish(s);
	if ((rc == -1) != (sse_error(s) != NULL))
		abort();
	if (sse_events(s) != r->count || strlen(sse_last_id(s)) > 255)
		abort();
	sse_free(s);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, parts;
	size_t split;
	int a, b;

	if (size < 2)
		return 0;
	split = fuzz_split(data, size - 2);
	data += 2;
	size -= 2;
	/* Once the sniffer decides, more bytes never change its mind. */
	a = sse_sniff(data, split);
	b = sse_sniff(data, size);
	if (a < -1 || a > 1 || b < -1 || b > 1 || (a != -1 && a != b))
		abort();
	a = parse(data, size, 0, &whole);
	b = parse(data, size, split, &parts);
	fuzz_check_same(a, b, &whole, &parts);
	return 0;
}
