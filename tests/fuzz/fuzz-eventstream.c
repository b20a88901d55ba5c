/*
 * libFuzzer target for the AWS event-stream parser.  Byte 0 chooses
 * whether the target repairs the CRCs of the frames the input describes
 * (so the fuzzer reaches header and payload parsing, which random CRCs
 * would stop); bytes 1-2 pick a split point.  The rest is parsed whole and
 * in two pieces.  Invariant: both runs deliver the same frames (by hash)
 * and the same result; payload pointers stay inside sane bounds; each
 * payload is also run through eventstream_chunk_bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "halton/eventstream.h"
#include "halton/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	uint64_t hash;
	size_t frames;
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

static uint64_t
fnv_str(uint64_t h, const char *s)
{
	if (s == NULL)
		return fnv(h, "\1", 1);
	if (strlen(s) > EVENTSTREAM_MAX_HEADER_VALUE)
		abort();
	return fnv(fnv(h, s, strlen(s)), "\0", 1);
}

static int
frame_cb(void *arg, const struct eventstream_message *m)
{
	struct run *r = arg;
	struct strbuf out;

	if (m->payload_len > EVENTSTREAM_MAX_PAYLOAD)
		abort();
	r->hash = fnv_str(r->hash, m->message_type);
	r->hash = fnv_str(r->hash, m->event_type);
	r->hash = fnv_str(r->hash, m->exception_type);
	r->hash = fnv_str(r->hash, m->content_type);
	r->hash = fnv(r->hash, m->payload, m->payload_len);
	r->frames++;
	strbuf_init(&out);
	if (eventstream_chunk_bytes(m->payload, m->payload_len, &out) == 0 &&
	    out.len > m->payload_len)
		abort();
	strbuf_free(&out);
	return 0;
}

static int
parse(const uint8_t *p, size_t len, size_t split, struct run *r)
{
	struct eventstream *es = eventstream_new(frame_cb, r);
	int rc;

	r->hash = 0xcbf29ce484222325ULL;
	r->frames = 0;
	if (split > 0 && split < len) {
		rc = eventstream_feed(es, p, split);
		if (rc == 0)
			rc = eventstream_feed(es, p + split, len - split);
	} else
		rc = eventstream_feed(es, p, len);
	if (rc == 0)
		rc = eventstream_finish(es);
	if ((rc == -1) != (eventstream_error(es) != NULL))
		abort();
	if (eventstream_messages(es) != r->frames)
		abort();
	eventstream_free(es);
	return rc;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Rewrites both CRCs of every whole frame the lengths describe. */
static void
repair(uint8_t *p, size_t len)
{
	size_t pos = 0, total;

	while (len - pos >= 16) {
		total = (size_t)p[pos] << 24 | (size_t)p[pos + 1] << 16 |
		    (size_t)p[pos + 2] << 8 | p[pos + 3];
		if (total < 16 || total > len - pos)
			break;
		put32(p + pos + 8, (uint32_t)crc32(0, p + pos, 8));
		put32(p + pos + total - 4,
		    (uint32_t)crc32(0, p + pos, (uInt)(total - 4)));
		pos += total;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, parts;
	size_t split;
	uint8_t *copy;
	int a, b;

	if (size < 3)
		return 0;
	split = (size_t)data[1] << 8 | data[2];
	copy = malloc(size - 3 ? size - 3 : 1);
	memcpy(copy, data + 3, size - 3);
	if (data[0] & 1)
		repair(copy, size - 3);
	size -= 3;
	a = parse(copy, size, 0, &whole);
	b = parse(copy, size, split % (size + 1), &parts);
	if (a != b || whole.frames != parts.frames || whole.hash != parts.hash)
		abort();
	free(copy);
	return 0;
}
