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

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	uint64_t hash;
	size_t events;
};

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

static int
event_cb(void *arg, const char *type, const char *data, size_t len)
{
	struct run *r = arg;

	if (data[len] != '\0' || len >= 512)
		abort();
	if (type != NULL) {
		if (strlen(type) > SSE_MAX_TYPE)
			abort();
		r->hash = fnv(r->hash, type, strlen(type));
	}
	r->hash = fnv(r->hash, "|", 1);
	r->hash = fnv(r->hash, data, len);
	r->events++;
	return 0;
}

static int
parse(const uint8_t *p, size_t len, size_t split, struct run *r)
{
	struct sse *s = sse_new(512, event_cb, r);
	int rc;

	r->hash = 0xcbf29ce484222325ULL;
	r->events = 0;
	if (split > 0 && split < len) {
		rc = sse_feed(s, p, split);
		if (rc == 0)
			rc = sse_feed(s, p + split, len - split);
	} else
		rc = sse_feed(s, p, len);
	if (rc == 0)
		rc = sse_finish(s);
	if ((rc == -1) != (sse_error(s) != NULL))
		abort();
	if (sse_events(s) != r->events || strlen(sse_last_id(s)) > 255)
		abort();
	sse_free(s);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, parts;
	size_t split;
	int a, b;

	if (size < 2)
		return 0;
	split = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	/* Once the sniffer decides, more bytes never change its mind. */
	a = sse_sniff(data, split % (size + 1));
	b = sse_sniff(data, size);
	if (a < -1 || a > 1 || b < -1 || b > 1 || (a != -1 && a != b))
		abort();
	a = parse(data, size, 0, &whole);
	b = parse(data, size, split % (size + 1), &parts);
	if (a != b || whole.events != parts.events || whole.hash != parts.hash)
		abort();
	return 0;
}
