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

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Folds the header value s (NULL too) into r, terminated. */
static void
add_str(struct fuzz_run *r, const char *s)
{
	if (s == NULL) {
		fuzz_run_add(r, "\1", 1);
		return;
	}
	if (strlen(s) > EVENTSTREAM_MAX_HEADER_VALUE)
		abort();
	fuzz_run_add(r, s, strlen(s));
	fuzz_run_add(r, "\0", 1);
}

static int
frame_cb(void *arg, const struct eventstream_message *m)
{
	struct fuzz_run *r = arg;
	struct strbuf out;

	if (m->payload_len > EVENTSTREAM_MAX_PAYLOAD)
		abort();
	add_str(r, m->message_type);
	add_str(r, m->event_type);
	add_str(r, m->exception_type);
	add_str(r, m->content_type);
	fuzz_run_add(r, m->payload, m->payload_len);
	r->count++;
	strbuf_init(&out);
	if (eventstream_chunk_bytes(m->payload, m->payload_len, &out) == 0 &&
	    out.len > m->payload_len)
		abort();
	strbuf_free(&out);
	return 0;
}

static int
feed_cb(void *parser, const void *p, size_t len)
{
	return eventstream_feed(parser, p, len);
}

static int
parse(const uint8_t *p, size_t len, size_t split, struct fuzz_run *r)
{
	struct eventstream *es = eventstream_new(frame_cb, r);
	int rc;

	fuzz_run_init(r);
	rc = fuzz_feed_split(feed_cb, es, p, len, split);
	if (rc == 0)
		rc = eventstream_finish(es);
	if ((rc == -1) != (eventstream_error(es) != NULL))
		abort();
	if (eventstream_messages(es) != r->count)
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
	struct fuzz_run whole, parts;
	size_t split;
	uint8_t *copy;
	int a, b;

	if (size < 3)
		return 0;
	split = fuzz_split(data + 1, size - 3);
	copy = malloc(size - 3 ? size - 3 : 1);
	memcpy(copy, data + 3, size - 3);
	if (data[0] & 1)
		repair(copy, size - 3);
	size -= 3;
	a = parse(copy, size, 0, &whole);
	b = parse(copy, size, split, &parts);
	fuzz_check_same(a, b, &whole, &parts);
	free(copy);
	return 0;
}
