/*
 * Unit tests of the AWS event-stream parser: the Bedrock fixtures are fed
 * whole, split in two at every offset and byte by byte; headers of every
 * value type are walked; a corrupted prelude or message CRC is rejected;
 * truncated streams are reported; the {"bytes": base64} payloads decode to
 * the model's JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "feed.h"
#include "harness.h"
#include "halton/eventstream.h"
#include "halton/util.h"

#define FIXTURES "tests/fixtures/wire/"
#define MAX_MSGS 32

struct msgs {
	size_t n;
	char *message_type[MAX_MSGS];
	char *event_type[MAX_MSGS];
	char *exception_type[MAX_MSGS];
	char *content_type[MAX_MSGS];
	char *payload[MAX_MSGS];
	size_t payload_len[MAX_MSGS];
};

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int
collect_cb(void *arg, const struct eventstream_message *m)
{
	struct msgs *ms = arg;
	size_t i = ms->n;

	if (i < MAX_MSGS) {
		ms->message_type[i] = dup_or_null(m->message_type);
		ms->event_type[i] = dup_or_null(m->event_type);
		ms->exception_type[i] = dup_or_null(m->exception_type);
		ms->content_type[i] = dup_or_null(m->content_type);
		ms->payload[i] = malloc(m->payload_len + 1);
		memcpy(ms->payload[i], m->payload, m->payload_len);
		ms->payload[i][m->payload_len] = '\0';
		ms->payload_len[i] = m->payload_len;
	}
	ms->n++;
	return 0;
}

static void
msgs_free(struct msgs *ms)
{
	size_t i;

	for (i = 0; i < ms->n && i < MAX_MSGS; i++) {
		free(ms->message_type[i]);
		free(ms->event_type[i]);
		free(ms->exception_type[i]);
		free(ms->content_type[i]);
		free(ms->payload[i]);
	}
	memset(ms, 0, sizeof(*ms));
}

static char *
fixture(const char *name, size_t *len)
{
	char path[256];
	char *p;

	snprintf(path, sizeof(path), FIXTURES "%s", name);
	if ((p = harness_read_file(path, len)) == NULL)
		harness_fail(__FILE__, __LINE__, "cannot read %s", path);
	return p;
}

static int
feed_cb(void *es, const void *p, size_t n)
{
	return eventstream_feed(es, p, n);
}

/* Parses whole / split in two / byte by byte; returns the first bad rc. */
static int
parse(const void *data, size_t len, size_t split, int bytewise, struct msgs *ms,
    const char **err)
{
	struct eventstream *es = eventstream_new(collect_cb, ms);
	int rc;

	rc = feed_pieces(feed_cb, es, data, len, split, bytewise);
	if (rc == 0)
		rc = eventstream_finish(es);
	if (eventstream_messages(es) != ms->n)
		harness_fail(__FILE__, __LINE__, "message count mismatch");
	*err = eventstream_error(es);
	eventstream_free(es);
	return rc;
}

/* The n-th line of a text file. */
static char *
nth_line(const char *text, size_t n)
{
	const char *p = text, *end;

	while (n-- > 0) {
		if ((p = strchr(p, '\n')) == NULL)
			return NULL;
		p++;
	}
	end = strchr(p, '\n');
	return end ? strndup(p, (size_t)(end - p)) : strdup(p);
}

typedef void (*verify_fn)(const struct msgs *, const char *);

/* Every way of feeding the fixture must pass verify. */
static void
check_all_splits(const char *name, const char *aux, verify_fn verify)
{
	size_t len, split;
	char *data = fixture(name, &len);
	struct msgs ms = {0};
	const char *err;
	int fails = harness_failed();

	if (data == NULL)
		return;
	for (split = 0; split < len; split++) {
		CHECK_INT(parse(data, len, split, 0, &ms, &err), 0);
		verify(&ms, aux);
		msgs_free(&ms);
		if (harness_failed() != fails) {
			harness_fail(
			    __FILE__, __LINE__, "%s split at %zu", name, split);
			break;
		}
	}
	CHECK_INT(parse(data, len, 0, 1, &ms, &err), 0);
	verify(&ms, aux);
	msgs_free(&ms);
	free(data);
}

static void
verify_invoke(const struct msgs *ms, const char *lines)
{
	struct strbuf json;
	char *want;
	size_t i;

	CHECK_INT(ms->n, 7);
	for (i = 0; i < ms->n && i < 7; i++) {
		CHECK_STR(ms->message_type[i], "event");
		CHECK_STR(ms->event_type[i], "chunk");
		CHECK_STR(ms->content_type[i], "application/json");
		CHECK(ms->exception_type[i] == NULL);
		strbuf_init(&json);
		CHECK_INT(eventstream_chunk_bytes(
		              ms->payload[i], ms->payload_len[i], &json),
		    0);
		want = nth_line(lines, i);
		CHECK_STR(json.data, want);
		free(want);
		strbuf_free(&json);
	}
}

static void
test_eventstream_invoke_claude(void)
{
	size_t len;
	char *lines =
	    fixture("bedrock_invoke_stream_claude.events.jsonl", &len);

	if (lines == NULL)
		return;
	/* The last decoded chunk carries Bedrock's invocation metrics. */
	CHECK(strstr(lines, "\"inputTokenCount\":14,\"outputTokenCount\":7") !=
	    NULL);
	check_all_splits(
	    "bedrock_invoke_stream_claude.bin", lines, verify_invoke);
	free(lines);
}

static void
verify_converse(const struct msgs *ms, const char *aux)
{
	static const char *types[] = {"messageStart", "contentBlockDelta",
	    "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"};
	size_t i;

	CHECK_INT(ms->n, 6);
	for (i = 0; i < ms->n && i < 6; i++) {
		CHECK_STR(ms->event_type[i], types[i]);
		CHECK_STR(ms->message_type[i], "event");
	}
	if (ms->n == 6) {
		CHECK_STR(ms->payload[0], "{\"role\":\"assistant\"}");
		CHECK_STR(ms->payload[5],
		    "{\"usage\":{\"inputTokens\":21,\"outputTokens\":9,"
		    "\"totalTokens\":30,\"cacheReadInputTokens\":0,"
		    "\"cacheWriteInputTokens\":0},\"metrics\":{\"latencyMs\":"
		    "431}}");
	}
}

static void
test_eventstream_converse(void)
{
	check_all_splits(
	    "bedrock_converse_stream_text.bin", NULL, verify_converse);
}

static void
verify_exception(const struct msgs *ms, const char *aux)
{
	CHECK_INT(ms->n, 3);
	if (ms->n != 3)
		return;
	CHECK_STR(ms->event_type[1], "chunk");
	CHECK_STR(ms->message_type[2], "exception");
	CHECK_STR(ms->exception_type[2], "throttlingException");
	CHECK(ms->event_type[2] == NULL);
	CHECK_STR(ms->payload[2],
	    "{\"message\":\"Too many requests, please "
	    "wait before trying again.\"}");
}

static void
test_eventstream_exception_midstream(void)
{
	check_all_splits("bedrock_invoke_stream_exception_midstream.bin", NULL,
	    verify_exception);
}

static void
verify_alltypes(const struct msgs *ms, const char *aux)
{
	CHECK_INT(ms->n, 2);
	if (ms->n != 2)
		return;
	CHECK_STR(ms->event_type[0], "metadata");
	CHECK_STR(ms->message_type[0], "event");
	CHECK(ms->content_type[0] == NULL);
	CHECK_STR(ms->payload[0], "{\"usage\":{\"inputTokens\":3}}");
	/* The second frame has no headers and no payload at all. */
	CHECK(ms->event_type[1] == NULL);
	CHECK(ms->message_type[1] == NULL);
	CHECK_INT(ms->payload_len[1], 0);
}

static void
test_eventstream_all_header_types(void)
{
	check_all_splits(
	    "eventstream_all_header_types.bin", NULL, verify_alltypes);
}

/* Frame offsets of a fixture, from the length fields. */
static size_t
frame_offsets(const unsigned char *p, size_t len, size_t *off, size_t max)
{
	size_t n = 0, pos = 0;

	while (pos + 4 <= len && n < max) {
		off[n++] = pos;
		pos += (size_t)p[pos] << 24 | (size_t)p[pos + 1] << 16 |
		    (size_t)p[pos + 2] << 8 | p[pos + 3];
	}
	return n;
}

static void
test_eventstream_bad_crc(void)
{
	size_t len, off[16], n;
	unsigned char *data =
	    (unsigned char *)fixture("bedrock_invoke_stream_claude.bin", &len);
	struct msgs ms = {0};
	const char *err;

	if (data == NULL)
		return;
	n = frame_offsets(data, len, off, 16);
	CHECK_INT(n, 7);
	/* A flipped payload byte in the third frame: two frames delivered,
	 * then the message CRC fails. */
	data[off[2] + 40] ^= 0x01;
	CHECK_INT(parse(data, len, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "bad message CRC");
	CHECK_INT(ms.n, 2);
	msgs_free(&ms);
	/* Byte by byte the same. */
	CHECK_INT(parse(data, len, 0, 1, &ms, &err), -1);
	CHECK_STR(err, "bad message CRC");
	CHECK_INT(ms.n, 2);
	msgs_free(&ms);
	data[off[2] + 40] ^= 0x01;
	/* A flipped byte in the message CRC itself. */
	data[off[3] - 1] ^= 0x80;
	CHECK_INT(parse(data, len, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "bad message CRC");
	CHECK_INT(ms.n, 2);
	msgs_free(&ms);
	data[off[3] - 1] ^= 0x80;
	/* A flipped bit in the fifth frame's headers length: the prelude CRC
	 * catches it before the bad length is believed. */
	data[off[4] + 6] ^= 0x10;
	CHECK_INT(parse(data, len, 0, 1, &ms, &err), -1);
	CHECK_STR(err, "bad prelude CRC");
	CHECK_INT(ms.n, 4);
	msgs_free(&ms);
	data[off[4] + 6] ^= 0x10;
	CHECK_INT(parse(data, len, 0, 0, &ms, &err), 0);
	CHECK_INT(ms.n, 7);
	msgs_free(&ms);
	free(data);
}

static void
test_eventstream_truncated(void)
{
	size_t len, cut, off[16], n, i, complete;
	char *data = fixture("bedrock_converse_stream_text.bin", &len);
	struct msgs ms = {0};
	const char *err;

	if (data == NULL)
		return;
	n = frame_offsets((unsigned char *)data, len, off, 16);
	CHECK_INT(n, 6);
	for (cut = 1; cut < len; cut++) {
		for (complete = 0, i = 1; i < n; i++)
			if (off[i] <= cut)
				complete = i;
		int at_boundary = 0;
		for (i = 0; i < n; i++)
			if (off[i] == cut)
				at_boundary = 1;
		int rc = parse(data, cut, 0, 0, &ms, &err);
		if (at_boundary ? rc != 0 || ms.n != complete
		                : rc != -1 || ms.n != complete || err == NULL ||
		            strcmp(err, "truncated frame") != 0) {
			harness_fail(__FILE__, __LINE__,
			    "cut at %zu: rc %d, %zu messages (%s)", cut, rc,
			    ms.n, err ? err : "-");
			msgs_free(&ms);
			break;
		}
		msgs_free(&ms);
	}
	free(data);
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Builds a frame from raw header bytes; returns its length. */
static size_t
make_frame(
    unsigned char *buf, const void *hdrs, size_t hlen, const char *payload)
{
	size_t plen = strlen(payload), total = 16 + hlen + plen;

	put32(buf, (uint32_t)total);
	put32(buf + 4, (uint32_t)hlen);
	put32(buf + 8, (uint32_t)crc32(0, buf, 8));
	memcpy(buf + 12, hdrs, hlen);
	memcpy(buf + 12 + hlen, payload, plen);
	put32(buf + total - 4, (uint32_t)crc32(0, buf, (uInt)(total - 4)));
	return total;
}

/* A prelude with a valid CRC. */
static void
make_prelude(unsigned char *buf, uint32_t total, uint32_t hlen)
{
	put32(buf, total);
	put32(buf + 4, hlen);
	put32(buf + 8, (uint32_t)crc32(0, buf, 8));
}

static void
test_eventstream_bad_frames(void)
{
	static const unsigned char dup[] = "\x0b:event-type\x07\x00\x01x"
	                                   "\x0b:event-type\x07\x00\x01y";
	static const unsigned char badtype[] = "\x01z\x0a";
	static const unsigned char cut[] = "\x0b:event-type\x07\x00\x09x";
	static const unsigned char bool_event[] = "\x0b:event-type\x00"
	                                          "\x0d:message-type\x07\x00"
	                                          "\x05"
	                                          "event";
	unsigned char buf[512];
	struct msgs ms = {0};
	const char *err;
	size_t n;

	n = make_frame(buf, dup, sizeof(dup) - 1, "{}");
	CHECK_INT(parse(buf, n, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "duplicate header");
	n = make_frame(buf, badtype, sizeof(badtype) - 1, "{}");
	CHECK_INT(parse(buf, n, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "bad header value type");
	n = make_frame(buf, cut, sizeof(cut) - 1, "");
	CHECK_INT(parse(buf, n, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "truncated header");
	CHECK_INT(ms.n, 0);
	/* A named header of another type is simply absent. */
	n = make_frame(buf, bool_event, sizeof(bool_event) - 1, "{}");
	CHECK_INT(parse(buf, n, 0, 0, &ms, &err), 0);
	CHECK_INT(ms.n, 1);
	CHECK(ms.event_type[0] == NULL);
	CHECK_STR(ms.message_type[0], "event");
	msgs_free(&ms);

	make_prelude(buf, 15, 0);
	CHECK_INT(parse(buf, 12, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "frame too short");
	make_prelude(buf, 100, 85);
	CHECK_INT(parse(buf, 12, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "bad headers length");
	make_prelude(buf, 200000, 140000);
	CHECK_INT(parse(buf, 12, 0, 0, &ms, &err), -1);
	CHECK_STR(err, "headers too large");
	/* A 32 MiB frame is refused from its prelude, nothing buffered. */
	make_prelude(buf, 32u << 20, 0);
	CHECK_INT(parse(buf, 12, 0, 1, &ms, &err), -1);
	CHECK_STR(err, "payload too large");
	CHECK_INT(ms.n, 0);
}

static void
test_eventstream_base64(void)
{
	static const struct {
		const char *in, *out;
	} v[] = {
	    {"", ""},
	    {"Zg==", "f"},
	    {"Zm8=", "fo"},
	    {"Zm9v", "foo"},
	    {"Zm9vYg==", "foob"},
	    {"Zm9vYmE=", "fooba"},
	    {"Zm9vYmFy", "foobar"},
	    {"Zm9vYg", "foob"},
	    {"Zm9vYmE", "fooba"},
	    {"+/+/", "\xfb\xff\xbf"},
	};
	static const char *bad[] = {"Z", "Zm9vY", "Zm9v!A==", "Zm=v", "Zm 9v",
	    "Zg===", "=Zg=", "Zm9v\n"};
	unsigned char out[64];
	size_t i;
	long n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = eventstream_base64_decode(v[i].in, strlen(v[i].in), out);
		CHECK_INT(n, strlen(v[i].out));
		if (n >= 0 && (size_t)n == strlen(v[i].out))
			CHECK_MEM(out, v[i].out, (size_t)n);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(
		    eventstream_base64_decode(bad[i], strlen(bad[i]), out), -1);
}

static void
test_eventstream_chunk_bytes(void)
{
	static const char good[] = "{\"bytes\":\"eyJhIjoxfQ==\",\"p\":\"abc\"}";
	struct strbuf out;

	strbuf_init(&out);
	CHECK_INT(eventstream_chunk_bytes(good, sizeof(good) - 1, &out), 0);
	CHECK_STR(out.data, "{\"a\":1}");
	CHECK_INT(out.len, 7);
	strbuf_reset(&out);
	CHECK_INT(eventstream_chunk_bytes("{\"p\":\"abc\"}", 11, &out), -1);
	CHECK_INT(eventstream_chunk_bytes("{\"bytes\":7}", 11, &out), -1);
	CHECK_INT(eventstream_chunk_bytes("{\"bytes\":\"@@\"}", 14, &out), -1);
	CHECK_INT(eventstream_chunk_bytes("not json", 8, &out), -1);
	/* The length bounds the parse: a cut object is not JSON. */
	CHECK_INT(eventstream_chunk_bytes(good, 20, &out), -1);
	CHECK_INT(out.len, 0);
	strbuf_free(&out);
}

static int
stop_cb(void *arg, const struct eventstream_message *m)
{
	return -1;
}

static void
test_eventstream_consumer_stop(void)
{
	size_t len;
	char *data = fixture("bedrock_converse_stream_text.bin", &len);
	struct eventstream *es = eventstream_new(stop_cb, NULL);

	if (data == NULL)
		return;
	CHECK_INT(eventstream_feed(es, data, len), -1);
	CHECK_STR(eventstream_error(es), "stopped by consumer");
	CHECK_INT(eventstream_messages(es), 1);
	CHECK_INT(eventstream_finish(es), -1);
	eventstream_free(es);
	free(data);
}

static const struct test tests[] = {
    TEST(test_eventstream_invoke_claude),
    TEST(test_eventstream_converse),
    TEST(test_eventstream_exception_midstream),
    TEST(test_eventstream_all_header_types),
    TEST(test_eventstream_bad_crc),
    TEST(test_eventstream_truncated),
    TEST(test_eventstream_bad_frames),
    TEST(test_eventstream_base64),
    TEST(test_eventstream_chunk_bytes),
    TEST(test_eventstream_consumer_stop),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
