/*
 * Unit tests of the WebSocket decoder: a Responses-API session is built in
 * the test (server frames unmasked, client frames masked, messages
 * compressed with raw deflate per RFC 7692 with and without context
 * takeover, fragments with a ping between them) and fed whole, split in two
 * at every offset and byte by byte; every message must come out exactly.
 * Protocol errors, size limits and the extension header parser are checked
 * too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "harness.h"
#include "halton/util.h"
#include "halton/ws.h"

#define MAX_MSGS 32

struct msgs {
	size_t n;
	int opcode[MAX_MSGS];
	char *data[MAX_MSGS];
	size_t len[MAX_MSGS];
};

static int
collect_cb(void *arg, int opcode, const char *data, size_t len)
{
	struct msgs *m = arg;

	if (data[len] != '\0')
		harness_fail(__FILE__, __LINE__, "message not NUL-terminated");
	if (m->n < MAX_MSGS) {
		m->opcode[m->n] = opcode;
		m->data[m->n] = malloc(len + 1);
		memcpy(m->data[m->n], data, len + 1);
		m->len[m->n] = len;
	}
	m->n++;
	return 0;
}

static void
msgs_free(struct msgs *m)
{
	size_t i;

	for (i = 0; i < m->n && i < MAX_MSGS; i++)
		free(m->data[i]);
	memset(m, 0, sizeof(*m));
}

/* Appends one frame; mask NULL for an unmasked (server) frame. */
static void
put_frame(struct strbuf *out, int fin, int rsv1, int opcode,
    const unsigned char *mask, const void *payload, size_t len)
{
	unsigned char h[14];
	const unsigned char *p = payload;
	size_t n = 0, i;

	h[n++] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
	if (len < 126)
		h[n++] = (unsigned char)len;
	else if (len < 65536) {
		h[n++] = 126;
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	} else {
		h[n++] = 127;
		for (i = 0; i < 8; i++)
			h[n++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
	if (mask != NULL) {
		h[1] |= 0x80;
		memcpy(h + n, mask, 4);
		n += 4;
	}
	strbuf_add(out, h, n);
	for (i = 0; i < len; i++) {
		unsigned char c = p[i] ^ (mask ? mask[i & 3] : 0);
		strbuf_add(out, &c, 1);
	}
}

/*
 * Compresses one message as RFC 7692 says: a sync flush, then the final
 * 00 00 ff ff removed.  With takeover 0 the compressor is reset after.
 */
static void
deflate_message(
    z_stream *zs, const char *text, int takeover, struct strbuf *out)
{
	unsigned char buf[1 << 16];

	zs->next_in = (unsigned char *)(uintptr_t)text;
	zs->avail_in = (uInt)strlen(text);
	zs->next_out = buf;
	zs->avail_out = sizeof(buf);
	CHECK_INT(deflate(zs, Z_SYNC_FLUSH), Z_OK);
	CHECK(zs->avail_in == 0);
	size_t n = sizeof(buf) - zs->avail_out;
	CHECK(n >= 4 && memcmp(buf + n - 4, "\x00\x00\xff\xff", 4) == 0);
	strbuf_reset(out);
	strbuf_add(out, buf, n - 4);
	if (!takeover)
		deflateReset(zs);
}

static const char *const server_events[] = {
    "{\"type\":\"response.created\",\"sequence_number\":0,\"response\":"
    "{\"id\":\"resp_hm01\",\"status\":\"in_progress\",\"usage\":null}}",
    "{\"type\":\"response.output_text.delta\",\"sequence_number\":1,"
    "\"delta\":\"Hello\"}",
    "{\"type\":\"response.output_text.delta\",\"sequence_number\":2,"
    "\"delta\":\" Hello Hello Hello again\"}",
    "{\"type\":\"response.completed\",\"sequence_number\":3,\"response\":"
    "{\"id\":\"resp_hm01\",\"model\":\"gpt-5-codex\",\"status\":"
    "\"completed\",\"usage\":{\"input_tokens\":7112,"
    "\"input_tokens_details\":{\"cached_tokens\":3072},\"output_tokens\":"
    "463,\"output_tokens_details\":{\"reasoning_tokens\":64},"
    "\"total_tokens\":7575}}}",
};

/*
 * The server side of a session: compressed with context takeover; the
 * second message in three fragments with a ping between the second and
 * third; one uncompressed text message; a close frame.  want/opcodes get
 * the messages the decoder must deliver, in order.
 */
static void
build_server(struct strbuf *out, const char **want, int *opcodes, size_t *nwant)
{
	struct strbuf c;
	z_stream zs;
	size_t n = 0, a, b;

	memset(&zs, 0, sizeof(zs));
	deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	strbuf_init(&c);
	deflate_message(&zs, server_events[0], 1, &c);
	put_frame(out, 1, 1, WS_OP_TEXT, NULL, c.data, c.len);
	want[n] = server_events[0];
	opcodes[n++] = WS_OP_TEXT;

	deflate_message(&zs, server_events[1], 1, &c);
	a = c.len / 3;
	b = 2 * c.len / 3;
	put_frame(out, 0, 1, WS_OP_TEXT, NULL, c.data, a);
	put_frame(out, 0, 0, WS_OP_CONTINUATION, NULL, c.data + a, b - a);
	put_frame(out, 1, 0, WS_OP_PING, NULL, "hb", 2);
	put_frame(out, 1, 0, WS_OP_CONTINUATION, NULL, c.data + b, c.len - b);
	want[n] = "hb";
	opcodes[n++] = WS_OP_PING;
	want[n] = server_events[1];
	opcodes[n++] = WS_OP_TEXT;

	/* This one refers back into the previous messages' window. */
	deflate_message(&zs, server_events[2], 1, &c);
	put_frame(out, 1, 1, WS_OP_TEXT, NULL, c.data, c.len);
	want[n] = server_events[2];
	opcodes[n++] = WS_OP_TEXT;

	/* A message may go uncompressed even when deflate was agreed. */
	put_frame(out, 1, 0, WS_OP_TEXT, NULL, server_events[3],
	    strlen(server_events[3]));
	want[n] = server_events[3];
	opcodes[n++] = WS_OP_TEXT;

	put_frame(out, 1, 0, WS_OP_CLOSE, NULL, "\x03\xe8", 2);
	want[n] = "\x03\xe8";
	opcodes[n++] = WS_OP_CLOSE;
	*nwant = n;
	strbuf_free(&c);
	deflateEnd(&zs);
}

static int
feed_exact(struct ws *w, const char *p, size_t n)
{
	char *copy = malloc(n ? n : 1);
	int rc;

	memcpy(copy, p, n);
	rc = ws_feed(w, copy, n);
	free(copy);
	return rc;
}

static int
run(int from_client, const struct ws_extensions *ext, size_t max,
    const char *data, size_t len, size_t split, int bytewise, struct msgs *m,
    const char **err)
{
	struct ws *w = ws_new(from_client, ext, max, collect_cb, m);
	size_t i;
	int rc = 0;

	if (bytewise) {
		for (i = 0; i < len && rc == 0; i++)
			rc = feed_exact(w, data + i, 1);
	} else if (split > 0) {
		rc = feed_exact(w, data, split);
		if (rc == 0)
			rc = feed_exact(w, data + split, len - split);
	} else
		rc = feed_exact(w, data, len);
	if (rc == 0)
		rc = ws_finish(w);
	if (ws_messages(w) != m->n)
		harness_fail(__FILE__, __LINE__, "message count mismatch");
	*err = ws_error(w);
	ws_free(w);
	return rc;
}

static void
check_all_splits(int from_client, const struct ws_extensions *ext,
    const struct strbuf *in, const char **want, const int *opcodes,
    size_t nwant)
{
	struct msgs m = {0};
	const char *err;
	size_t split, i;
	int bytewise, rc, bad;

	for (bytewise = 0; bytewise < 2; bytewise++) {
		for (split = 0; split < (bytewise ? 1 : in->len); split++) {
			rc = run(from_client, ext, 0, in->data, in->len, split,
			    bytewise, &m, &err);
			bad = rc != 0 || m.n != nwant;
			for (i = 0; !bad && i < nwant; i++)
				bad = m.opcode[i] != opcodes[i] ||
				    m.len[i] != strlen(want[i]) ||
				    memcmp(m.data[i], want[i], m.len[i]) != 0;
			if (bad) {
				harness_fail(__FILE__, __LINE__,
				    "split %zu bytewise %d: rc %d (%s), %zu "
				    "messages",
				    split, bytewise, rc, err ? err : "-", m.n);
				msgs_free(&m);
				return;
			}
			msgs_free(&m);
		}
	}
}

static void
test_ws_server_session(void)
{
	struct ws_extensions ext;
	struct strbuf in;
	const char *want[16];
	int opcodes[16];
	size_t n;

	CHECK_INT(ws_parse_extensions("permessage-deflate", &ext), 0);
	strbuf_init(&in);
	build_server(&in, want, opcodes, &n);
	CHECK_INT(n, 6);
	check_all_splits(0, &ext, &in, want, opcodes, n);
	strbuf_free(&in);
}

/* Context takeover matters: resetting the window per message (as if the
 * server had said server_no_context_takeover) must not give the same. */
static void
test_ws_takeover_respected(void)
{
	struct ws_extensions ext;
	struct strbuf in;
	struct msgs m = {0};
	const char *want[16], *err;
	int opcodes[16], rc;
	size_t n;

	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "server_no_context_takeover",
	              &ext),
	    0);
	strbuf_init(&in);
	build_server(&in, want, opcodes, &n);
	rc = run(0, &ext, 0, in.data, in.len, 0, 0, &m, &err);
	CHECK(rc == -1 || m.n < 4 || strcmp(m.data[3], want[3]) != 0);
	msgs_free(&m);
	strbuf_free(&in);
}

/* The client side: masked frames, client_no_context_takeover. */
static void
test_ws_client_session(void)
{
	static const char *const client_msgs[] = {
	    "{\"type\":\"response.create\",\"model\":\"gpt-5-codex\","
	    "\"input\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	    "{\"type\":\"response.create\",\"model\":\"gpt-5-codex\","
	    "\"input\":[{\"role\":\"user\",\"content\":\"hi again\"}]}",
	};
	static const unsigned char masks[2][4] = {
	    {0x37, 0xfa, 0x21, 0x3d}, {0xde, 0xad, 0xbe, 0xef}};
	struct ws_extensions ext;
	struct strbuf in, c;
	const char *want[4];
	int opcodes[4];
	z_stream zs;
	size_t i;

	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "client_no_context_takeover",
	              &ext),
	    0);
	CHECK_INT(ext.client_no_context_takeover, 1);
	memset(&zs, 0, sizeof(zs));
	deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	strbuf_init(&in);
	strbuf_init(&c);
	for (i = 0; i < 2; i++) {
		deflate_message(&zs, client_msgs[i], 0, &c);
		put_frame(&in, 1, 1, WS_OP_TEXT, masks[i], c.data, c.len);
		want[i] = client_msgs[i];
		opcodes[i] = WS_OP_TEXT;
	}
	put_frame(&in, 1, 0, WS_OP_PONG, masks[0], "", 0);
	want[2] = "";
	opcodes[2] = WS_OP_PONG;
	check_all_splits(1, &ext, &in, want, opcodes, 3);
	strbuf_free(&in);
	strbuf_free(&c);
	deflateEnd(&zs);
}

/* A sender may end a message with a final deflate block; the next
 * message then starts a new stream. */
static void
test_ws_final_block(void)
{
	static const char *texts[] = {
	    "first message, final block", "second message, new stream"};
	struct ws_extensions ext;
	struct strbuf in;
	unsigned char buf[256];
	const char *want[2];
	int opcodes[2] = {WS_OP_TEXT, WS_OP_TEXT};
	z_stream zs;
	size_t i, n;

	CHECK_INT(ws_parse_extensions("permessage-deflate", &ext), 0);
	strbuf_init(&in);
	for (i = 0; i < 2; i++) {
		memset(&zs, 0, sizeof(zs));
		deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
		zs.next_in = (unsigned char *)(uintptr_t)texts[i];
		zs.avail_in = (uInt)strlen(texts[i]);
		zs.next_out = buf;
		zs.avail_out = sizeof(buf);
		CHECK_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
		n = sizeof(buf) - zs.avail_out;
		put_frame(&in, 1, 1, WS_OP_TEXT, NULL, buf, n);
		deflateEnd(&zs);
		want[i] = texts[i];
	}
	check_all_splits(0, &ext, &in, want, opcodes, 2);
	strbuf_free(&in);
}

/* 16-bit and 64-bit payload lengths, binary messages, no extension. */
static void
test_ws_long_frames(void)
{
	struct strbuf in;
	struct msgs m = {0};
	const char *err;
	char *big = malloc(70001);
	size_t i;

	for (i = 0; i < 70000; i++)
		big[i] = (char)('a' + i % 26);
	big[70000] = '\0';
	strbuf_init(&in);
	put_frame(&in, 1, 0, WS_OP_TEXT, NULL, big, 300);
	put_frame(&in, 1, 0, WS_OP_BINARY, (const unsigned char *)"\1\2\3\4",
	    big, 70000);
	CHECK_INT((unsigned char)in.data[1], 126);
	CHECK_INT((unsigned char)in.data[2 + 2 + 300 + 1], 127 | 0x80);
	CHECK_INT(run(0, NULL, 0, in.data, in.len, 0, 0, &m, &err), 0);
	CHECK_INT(m.n, 2);
	if (m.n == 2) {
		CHECK_INT(m.len[0], 300);
		CHECK_MEM(m.data[0], big, 300);
		CHECK_INT(m.opcode[1], WS_OP_BINARY);
		CHECK_INT(m.len[1], 70000);
		CHECK_MEM(m.data[1], big, 70000);
	}
	msgs_free(&m);
	/* Over the limit: skipped, and the decoder goes on. */
	{
		struct ws *w = ws_new(0, NULL, 1000, collect_cb, &m);
		CHECK_INT(ws_feed(w, in.data, in.len), 0);
		CHECK_INT(ws_finish(w), 0);
		CHECK_INT(ws_skipped(w), 1);
		CHECK_INT(ws_messages(w), 1);
		CHECK_INT(m.n, 1);
		CHECK_INT(m.len[0], 300);
		ws_free(w);
		msgs_free(&m);
	}
	strbuf_free(&in);
	free(big);
}

/* A compressed message that inflates past the limit is skipped, yet the
 * next message, which refers into its window, still decodes. */
static void
test_ws_inflate_limit(void)
{
	struct ws_extensions ext;
	struct strbuf in, c;
	struct msgs m = {0};
	const char *err;
	char *big = malloc(5001), *second = malloc(5001 + 20);
	z_stream zs;
	struct ws *w;

	memset(big, 'x', 5000);
	big[5000] = '\0';
	memcpy(big, "{\"pad\":\"", 8);
	snprintf(second, 5021, "%.40s tail", big);
	CHECK_INT(ws_parse_extensions("permessage-deflate", &ext), 0);
	memset(&zs, 0, sizeof(zs));
	deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	strbuf_init(&in);
	strbuf_init(&c);
	deflate_message(&zs, big, 1, &c);
	CHECK(c.len < 200);
	put_frame(&in, 1, 1, WS_OP_TEXT, NULL, c.data, c.len);
	deflate_message(&zs, second, 1, &c);
	put_frame(&in, 1, 1, WS_OP_TEXT, NULL, c.data, c.len);
	w = ws_new(0, &ext, 1000, collect_cb, &m);
	CHECK_INT(ws_feed(w, in.data, in.len), 0);
	CHECK_INT(ws_finish(w), 0);
	CHECK_INT(ws_skipped(w), 1);
	CHECK_INT(m.n, 1);
	if (m.n == 1)
		CHECK_STR(m.data[0], second);
	ws_free(w);
	msgs_free(&m);
	/* With room for it, both come out. */
	CHECK_INT(run(0, &ext, 0, in.data, in.len, 0, 0, &m, &err), 0);
	CHECK_INT(m.n, 2);
	if (m.n == 2)
		CHECK_STR(m.data[0], big);
	msgs_free(&m);
	strbuf_free(&in);
	strbuf_free(&c);
	deflateEnd(&zs);
	free(big);
	free(second);
}

static void
test_ws_errors(void)
{
	static const struct {
		const char *in;
		size_t len;
		int deflate;
		const char *err;
	} v[] = {
	    {"\xc1\x01x", 3, 0, "compressed frame not negotiated"},
	    {"\x80\x01x", 3, 0, "continuation without a message"},
	    {"\x83\x00", 2, 0, "reserved opcode"},
	    {"\x8b\x00", 2, 0, "reserved opcode"},
	    {"\xa1\x00", 2, 1, "reserved bits set"},
	    {"\x91\x00", 2, 1, "reserved bits set"},
	    {"\x09\x00", 2, 0, "bad control frame"},
	    {"\x89\x7e\x00\x7e", 4, 0, "bad control frame"},
	    {"\xc9\x00", 2, 1, "bad control frame"},
	    {"\x01\x01x\x81\x01y", 6, 0,
	        "data frame inside a fragmented message"},
	    {"\x41\x01x\xc0\x01y", 6, 1, "RSV1 on a continuation frame"},
	    {"\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, 0,
	        "bad frame length"},
	    {"\xc1\x02\xff\xff", 4, 1, "invalid deflate data"},
	    {"\x81\x05"
	     "abc",
	        5, 0, "truncated frame"},
	    {"\x81", 1, 0, "truncated frame"},
	    {"\x01\x01x", 3, 0, "truncated message"},
	    {"\x01\x01x\x89\x00", 5, 0, "truncated message"},
	};
	struct ws_extensions ext;
	struct msgs m = {0};
	const char *err;
	size_t i;

	CHECK_INT(ws_parse_extensions("permessage-deflate", &ext), 0);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK_INT(run(0, v[i].deflate ? &ext : NULL, 0, v[i].in,
		              v[i].len, 0, 0, &m, &err),
		    -1);
		if (err == NULL || strcmp(err, v[i].err) != 0)
			harness_fail(__FILE__, __LINE__,
			    "vector %zu: \"%s\", expected \"%s\"", i,
			    err ? err : "(null)", v[i].err);
		msgs_free(&m);
	}
}

static void
test_ws_parse_extensions(void)
{
	struct ws_extensions e;

	CHECK_INT(ws_parse_extensions(NULL, &e), 0);
	CHECK_INT(e.permessage_deflate, 0);
	CHECK_INT(e.server_max_window_bits, 15);
	CHECK_INT(ws_parse_extensions("", &e), 0);
	CHECK_INT(e.permessage_deflate, 0);
	CHECK_INT(ws_parse_extensions("x-webkit-deflate-frame", &e), 0);
	CHECK_INT(e.permessage_deflate, 0);
	CHECK_INT(ws_parse_extensions("Permessage-Deflate", &e), 0);
	CHECK_INT(e.permessage_deflate, 1);
	CHECK_INT(e.client_no_context_takeover, 0);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "server_no_context_takeover;"
	                              "client_no_context_takeover ; "
	                              "server_max_window_bits=10; "
	                              "client_max_window_bits=\"12\"",
	              &e),
	    0);
	CHECK_INT(e.permessage_deflate, 1);
	CHECK_INT(e.server_no_context_takeover, 1);
	CHECK_INT(e.client_no_context_takeover, 1);
	CHECK_INT(e.server_max_window_bits, 10);
	CHECK_INT(e.client_max_window_bits, 12);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "client_max_window_bits",
	              &e),
	    0);
	CHECK_INT(e.client_max_window_bits, 15);
	/* Another extension's parameters are not ours to judge. */
	CHECK_INT(ws_parse_extensions("foo; bar=1, permessage-deflate; "
	                              "server_no_context_takeover",
	              &e),
	    0);
	CHECK_INT(e.permessage_deflate, 1);
	CHECK_INT(e.server_no_context_takeover, 1);
	CHECK_INT(ws_parse_extensions("permessage-deflate; foo", &e), -1);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "server_max_window_bits=16",
	              &e),
	    -1);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "server_max_window_bits",
	              &e),
	    -1);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "server_no_context_takeover; "
	                              "server_no_context_takeover",
	              &e),
	    -1);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "client_no_context_takeover=1",
	              &e),
	    -1);
	CHECK_INT(ws_parse_extensions("permessage-deflate; "
	                              "server_max_window_bits=\"9",
	              &e),
	    -1);
	CHECK_INT(ws_parse_extensions("permessage-deflate x", &e), -1);
}

static int
stop_cb(void *arg, int opcode, const char *data, size_t len)
{
	return -1;
}

static void
test_ws_consumer_stop(void)
{
	struct ws *w = ws_new(0, NULL, 0, stop_cb, NULL);

	CHECK_INT(ws_feed(w, "\x81\x01x\x81\x01y", 6), -1);
	CHECK_STR(ws_error(w), "stopped by consumer");
	CHECK_INT(ws_messages(w), 1);
	CHECK_INT(ws_finish(w), -1);
	ws_free(w);
}

static const struct test tests[] = {
    TEST(test_ws_server_session),
    TEST(test_ws_takeover_respected),
    TEST(test_ws_client_session),
    TEST(test_ws_final_block),
    TEST(test_ws_long_frames),
    TEST(test_ws_inflate_limit),
    TEST(test_ws_errors),
    TEST(test_ws_parse_extensions),
    TEST(test_ws_consumer_stop),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
