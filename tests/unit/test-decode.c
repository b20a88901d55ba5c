/*
 * Unit tests of the Content-Encoding decoders: every encoded fixture of the
 * Anthropic stream (gzip flushed per event, one gzip member per event,
 * zlib and raw deflate, zstd flushed per event and one frame per event,
 * brotli flushed per event) is fed whole, split in two at every offset and
 * byte by byte, and must decode to exactly the plain fixture; truncated and
 * corrupt inputs fail; the output cap stops a decompression bomb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "feed.h"
#include "harness.h"
#include "halton/decode.h"
#include "halton/sse.h"
#include "halton/util.h"

#define FIXTURES "tests/fixtures/wire/"

struct sink {
	struct strbuf out;
	size_t calls;
};

static int
sink_cb(void *arg, const void *data, size_t len)
{
	struct sink *s = arg;

	strbuf_add(&s->out, data, len);
	s->calls++;
	return 0;
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
decode_feed_cb(void *d, const void *p, size_t n)
{
	return decode_feed(d, p, n);
}

/* Feeds a piece to d from a buffer of exactly its size. */
static int
feed_exact(struct decoder *d, const void *p, size_t n)
{
	return feed_copy(decode_feed_cb, d, p, n);
}

/*
 * Decodes in with the given Content-Encoding: whole (split 0), split in
 * two, or byte by byte.  Returns the rc of the first failing call or of
 * decode_finish.
 */
static int
run(const char *encoding, const void *in, size_t len, size_t split,
    int bytewise, size_t max, struct sink *s, const char **error)
{
	const char *cause;
	struct decoder *d = decode_new(encoding, max, sink_cb, s, &cause);
	int rc;

	*error = NULL;
	if (d == NULL) {
		*error = cause;
		return -2;
	}
	rc = feed_pieces(decode_feed_cb, d, in, len, split, bytewise);
	if (rc == 0)
		rc = decode_finish(d);
	if (rc == 0 && decode_total_out(d) != s->out.len)
		harness_fail(__FILE__, __LINE__, "total_out mismatch");
	*error = decode_error(d);
	decode_free(d);
	return rc;
}

static void
check_variant(const char *name, const char *encoding)
{
	size_t plain_len, len, split;
	char *plain = fixture("anthropic_stream_basic.sse", &plain_len);
	char *enc = fixture(name, &len);
	struct sink s;
	const char *err;
	int rc;

	if (plain == NULL || enc == NULL)
		goto out;
	CHECK_INT(plain_len, 1299);
	for (split = 0; split < len; split++) {
		strbuf_init(&s.out);
		rc = run(encoding, enc, len, split, 0, 0, &s, &err);
		if (rc != 0 || s.out.len != plain_len ||
		    memcmp(s.out.data, plain, plain_len) != 0) {
			harness_fail(__FILE__, __LINE__,
			    "%s split %zu: rc %d (%s), %zu bytes", name, split,
			    rc, err ? err : "-", s.out.len);
			strbuf_free(&s.out);
			break;
		}
		strbuf_free(&s.out);
	}
	strbuf_init(&s.out);
	CHECK_INT(run(encoding, enc, len, 0, 1, 0, &s, &err), 0);
	CHECK_INT(s.out.len, plain_len);
	if (s.out.len == plain_len)
		CHECK_MEM(s.out.data, plain, plain_len);
	strbuf_free(&s.out);

	/* Every truncation decodes a prefix and then reports truncation. */
	for (split = 1; split < len; split++) {
		strbuf_init(&s.out);
		rc = run(encoding, enc, split, 0, 0, 0, &s, &err);
		/* A cut between two gzip members or zstd frames looks
		 * like a complete body; it must then fall on an event end. */
		int boundary = rc == 0 && s.out.len >= 2 &&
		    memcmp(s.out.data + s.out.len - 2, "\n\n", 2) == 0;
		if ((!boundary &&
		        (rc != -1 || err == NULL ||
		            strncmp(err, "truncated", 9) != 0)) ||
		    s.out.len > plain_len ||
		    (s.out.len > 0 &&
		        memcmp(s.out.data, plain, s.out.len) != 0)) {
			harness_fail(__FILE__, __LINE__,
			    "%s cut at %zu: rc %d (%s), %zu bytes", name, split,
			    rc, err ? err : "-", s.out.len);
			strbuf_free(&s.out);
			break;
		}
		strbuf_free(&s.out);
	}
out:
	free(plain);
	free(enc);
}

static void
test_decode_gzip_sync_flush(void)
{
	check_variant("anthropic_stream_basic.sse.gz", "gzip");
}

static void
test_decode_gzip_members(void)
{
	check_variant("anthropic_stream_basic.sse.members.gz", "x-gzip");
}

static void
test_decode_deflate_zlib(void)
{
	check_variant("anthropic_stream_basic.sse.zlib", "deflate");
}

static void
test_decode_deflate_raw(void)
{
	check_variant("anthropic_stream_basic.sse.rawdeflate", "Deflate");
}

static void
test_decode_zstd_flush(void)
{
	check_variant("anthropic_stream_basic.sse.zst", "zstd");
}

static void
test_decode_zstd_frames(void)
{
	check_variant("anthropic_stream_basic.sse.frames.zst", "zstd");
}

static void
test_decode_brotli_flush(void)
{
	check_variant("anthropic_stream_basic.sse.br", "br");
}

struct sse_sink {
	struct sse *sse;
	size_t events;
};

static int
to_sse_cb(void *arg, const void *data, size_t len)
{
	struct sse_sink *s = arg;

	return sse_feed(s->sse, data, len);
}

static int
count_cb(void *arg, const char *type, const char *data, size_t len)
{
	struct sse_sink *s = arg;

	s->events++;
	return 0;
}

/*
 * Fed in the chunks the server flushed, one persistent decoder yields each
 * SSE event as soon as its chunk arrives: after chunk k exactly k events
 * are complete.  Checked for every per-event-flushed variant.
 */
static void
check_per_event(const char *name, const char *encoding)
{
	static const size_t flush[] = {251, 301, 322, 357, 375, 393, 413, 456};
	size_t len, i, start = 0, nflush = sizeof(flush) / sizeof(flush[0]);
	char *enc = fixture(name, &len);
	struct sse_sink s = {0};
	struct decoder *d;
	const char *cause;

	if (enc == NULL)
		return;
	s.sse = sse_new(0, count_cb, &s);
	d = decode_new(encoding, 0, to_sse_cb, &s, &cause);
	for (i = 0; i < nflush; i++) {
		CHECK_INT(feed_exact(d, enc + start, flush[i] - start), 0);
		CHECK_INT(s.events, i + 1);
		start = flush[i];
	}
	CHECK_INT(feed_exact(d, enc + start, len - start), 0);
	CHECK_INT(decode_finish(d), 0);
	CHECK_INT(sse_finish(s.sse), 0);
	CHECK_INT(s.events, 9);
	CHECK_INT(decode_total_out(d), 1299);
	decode_free(d);
	sse_free(s.sse);
	free(enc);
}

static void
test_decode_gzip_flush_offsets(void)
{
	size_t len;
	char *offsets =
	    fixture("anthropic_stream_basic.sse.gz.flush_offsets.txt", &len);

	/* The offsets check_per_event uses are the ones the fixture lists. */
	if (offsets != NULL)
		CHECK_STR(offsets, "251\n301\n322\n357\n375\n393\n413\n456\n");
	free(offsets);
	check_per_event("anthropic_stream_basic.sse.gz", "gzip");
}

/* Members, zstd frames, brotli flushes: events appear as chunks arrive. */
static void
test_decode_per_event_chunks(void)
{
	static const struct {
		const char *name, *encoding;
	} v[] = {
	    {"anthropic_stream_basic.sse.members.gz", "gzip"},
	    {"anthropic_stream_basic.sse.zst", "zstd"},
	    {"anthropic_stream_basic.sse.frames.zst", "zstd"},
	    {"anthropic_stream_basic.sse.br", "br"},
	    {"anthropic_stream_basic.sse.zlib", "deflate"},
	};
	size_t i, len, pos, events_before;
	struct sse_sink s;
	struct decoder *d;
	const char *cause;
	char *enc;

	/* Without the flush offsets of these variants, feed byte by byte and
	 * check that the events count only ever grows by one and reaches 8
	 * before the last encoded byte (the last event is unterminated). */
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if ((enc = fixture(v[i].name, &len)) == NULL)
			continue;
		memset(&s, 0, sizeof(s));
		s.sse = sse_new(0, count_cb, &s);
		d = decode_new(v[i].encoding, 0, to_sse_cb, &s, &cause);
		for (pos = 0; pos < len; pos++) {
			events_before = s.events;
			CHECK_INT(feed_exact(d, enc + pos, 1), 0);
			if (s.events > events_before + 1)
				harness_fail(__FILE__, __LINE__,
				    "%s: %zu events from one byte", v[i].name,
				    s.events - events_before);
		}
		CHECK_INT(s.events, 8);
		CHECK_INT(decode_finish(d), 0);
		CHECK_INT(sse_finish(s.sse), 0);
		CHECK_INT(s.events, 9);
		decode_free(d);
		sse_free(s.sse);
		free(enc);
	}
}

static void
test_decode_parse_encoding(void)
{
	enum decode_coding c[DECODE_MAX_LAYERS];
	size_t n = 99;

	CHECK_INT(decode_parse_encoding(NULL, c, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(decode_parse_encoding("", c, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(decode_parse_encoding("identity", c, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(decode_parse_encoding("GZip", c, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(c[0], DECODE_GZIP);
	/* Codings are undone in reverse order of listing. */
	CHECK_INT(decode_parse_encoding(" gzip ,br ", c, &n), 0);
	CHECK_INT(n, 2);
	CHECK_INT(c[0], DECODE_BR);
	CHECK_INT(c[1], DECODE_GZIP);
	CHECK_INT(
	    decode_parse_encoding("deflate, identity, zstd, x-gzip", c, &n), 0);
	CHECK_INT(n, 3);
	CHECK_INT(c[0], DECODE_GZIP);
	CHECK_INT(c[1], DECODE_ZSTD);
	CHECK_INT(c[2], DECODE_DEFLATE);
	CHECK_INT(decode_parse_encoding("compress", c, &n), -1);
	CHECK_INT(decode_parse_encoding("gzip, gzipx", c, &n), -1);
	CHECK_INT(decode_parse_encoding("gzip,gzip,gzip,gzip,gzip", c, &n), -1);
	CHECK_INT(decode_parse_encoding("gzip,gzip,gzip,gzip", c, &n), 0);
	CHECK_INT(n, 4);
}

static void
test_decode_unknown(void)
{
	const char *cause = NULL;
	struct sink s;

	strbuf_init(&s.out);
	CHECK(decode_new("compress", 0, sink_cb, &s, &cause) == NULL);
	CHECK_STR(cause, "unsupported content encoding");
	CHECK(decode_new("gzip, lzma", 0, sink_cb, &s, &cause) == NULL);
}

/* Compresses with zlib (gzip wrapper when gzip) in one go. */
static unsigned char *
zlib_compress(const void *in, size_t len, int bits, size_t *out_len)
{
	z_stream zs;
	size_t cap = len + len / 2 + 1024;
	unsigned char *out = malloc(cap);

	memset(&zs, 0, sizeof(zs));
	deflateInit2(&zs, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY);
	zs.next_in = (unsigned char *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	CHECK_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*out_len = cap - zs.avail_out;
	deflateEnd(&zs);
	return out;
}

/* "gzip, zstd": gzip applied first, zstd second; undone zstd first. */
static void
test_decode_stacked(void)
{
	static const char text[] =
	    "data: {\"usage\":{\"output_tokens\":9}}\n\n";
	size_t gz_len, z_len, split;
	unsigned char *gz = zlib_compress(text, sizeof(text) - 1, 31, &gz_len);
	size_t cap = ZSTD_compressBound(gz_len);
	unsigned char *z = malloc(cap);
	struct sink s;
	const char *err;

	z_len = ZSTD_compress(z, cap, gz, gz_len, 3);
	CHECK(!ZSTD_isError(z_len));
	for (split = 0; split < z_len; split++) {
		strbuf_init(&s.out);
		CHECK_INT(
		    run("gzip, zstd", z, z_len, split, 0, 0, &s, &err), 0);
		CHECK_INT(s.out.len, sizeof(text) - 1);
		if (s.out.len == sizeof(text) - 1)
			CHECK_MEM(s.out.data, text, s.out.len);
		strbuf_free(&s.out);
	}
	/* The other order does not decode. */
	strbuf_init(&s.out);
	CHECK_INT(run("zstd, gzip", z, z_len, 0, 0, 0, &s, &err), -1);
	CHECK_STR(err, "invalid gzip data");
	strbuf_free(&s.out);
	free(gz);
	free(z);
}

static void
test_decode_identity_cap(void)
{
	struct sink s;
	const char *err;

	strbuf_init(&s.out);
	CHECK_INT(run(NULL, "0123456789", 10, 4, 0, 10, &s, &err), 0);
	CHECK_INT(s.out.len, 10);
	strbuf_free(&s.out);
	strbuf_init(&s.out);
	CHECK_INT(run("identity", "0123456789", 10, 4, 0, 9, &s, &err), -1);
	CHECK_STR(err, "decoded body exceeds limit");
	CHECK_INT(s.out.len, 4);
	strbuf_free(&s.out);
}

/* 16 MiB of zeros compress to ~16 KiB; a 1 MiB cap stops the decoder. */
static void
test_decode_bomb(void)
{
	static const struct {
		const char *encoding;
		int bits;
	} v[] = {{"gzip", 31}, {"deflate", 15}, {"deflate", -15}};
	size_t big = (size_t)16 << 20, len, i;
	unsigned char *zeros = calloc(1, big), *enc, *zenc;
	ZSTD_CCtx *cc;
	struct sink s;
	const char *err;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		enc = zlib_compress(zeros, big, v[i].bits, &len);
		CHECK(len < 100000);
		strbuf_init(&s.out);
		CHECK_INT(run(v[i].encoding, enc, len, 0, 0, (size_t)1 << 20,
		              &s, &err),
		    -1);
		CHECK_STR(err, "decoded body exceeds limit");
		CHECK(s.out.len <= (size_t)1 << 20);
		strbuf_free(&s.out);
		free(enc);
	}
	zenc = malloc(ZSTD_compressBound(big));
	len = ZSTD_compress(zenc, ZSTD_compressBound(big), zeros, big, 1);
	strbuf_init(&s.out);
	CHECK_INT(run("zstd", zenc, len, 0, 0, (size_t)1 << 20, &s, &err), -1);
	CHECK_STR(err, "decoded body exceeds limit");
	CHECK(s.out.len <= (size_t)1 << 20);
	strbuf_free(&s.out);
	/* Without the cap (default 256 MiB) the same body decodes. */
	strbuf_init(&s.out);
	CHECK_INT(run("zstd", zenc, len, 0, 0, 0, &s, &err), 0);
	CHECK_INT(s.out.len, big);
	strbuf_free(&s.out);
	/* A frame that names a 16 MiB window, past the 8 MiB RFC 9659
	 * allows for HTTP, is refused before anything is allocated. */
	cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 24);
	len = ZSTD_compress2(cc, zenc, ZSTD_compressBound(big), zeros, big);
	ZSTD_freeCCtx(cc);
	CHECK(!ZSTD_isError(len));
	strbuf_init(&s.out);
	CHECK_INT(run("zstd", zenc, len, 0, 0, 0, &s, &err), -1);
	CHECK_STR(err, "zstd window too large");
	CHECK_INT(s.out.len, 0);
	strbuf_free(&s.out);
	/* Without the cap (default 256 MiB) the gzip bomb decodes. */
	enc = zlib_compress(zeros, big, 31, &len);
	strbuf_init(&s.out);
	CHECK_INT(run("gzip", enc, len, 0, 0, 0, &s, &err), 0);
	CHECK_INT(s.out.len, big);
	strbuf_free(&s.out);
	free(enc);
	free(zenc);
	free(zeros);
}

static void
test_decode_corrupt(void)
{
	static const char *names[] = {"anthropic_stream_basic.sse.gz",
	    "anthropic_stream_basic.sse.zst", "anthropic_stream_basic.sse.br"};
	static const char *encs[] = {"gzip", "zstd", "br"};
	size_t i, len;
	struct sink s;
	const char *err;
	char *enc;

	for (i = 0; i < 3; i++) {
		if ((enc = fixture(names[i], &len)) == NULL)
			continue;
		/* Overwrite the first bytes: no valid header any more. */
		memcpy(enc, "\xff\xff\xff\xff", 4);
		strbuf_init(&s.out);
		CHECK_INT(run(encs[i], enc, len, 0, 0, 0, &s, &err), -1);
		CHECK(err != NULL && strncmp(err, "invalid", 7) == 0);
		CHECK_INT(s.out.len, 0);
		strbuf_free(&s.out);
		free(enc);
	}
	/* A flipped byte in gzip's CRC32 trailer is caught at the end. */
	if ((enc = fixture(names[0], &len)) != NULL) {
		enc[len - 6] ^= 0x55;
		strbuf_init(&s.out);
		CHECK_INT(run("gzip", enc, len, 0, 0, 0, &s, &err), -1);
		CHECK_STR(err, "invalid gzip data");
		CHECK_INT(s.out.len, 1299);
		strbuf_free(&s.out);
		free(enc);
	}
	/* Bytes after the last gzip member that cannot start another are
	 * ignored; bytes that can must be a valid member. */
	if ((enc = fixture(names[0], &len)) != NULL) {
		char *more = malloc(len + 8);
		memcpy(more, enc, len);
		memcpy(more + len, "\0\0\r\n\x1f\x8b", 6);
		strbuf_init(&s.out);
		CHECK_INT(
		    run("gzip", more, len + 6, len + 1, 0, 0, &s, &err), 0);
		CHECK_INT(s.out.len, 1299);
		strbuf_free(&s.out);
		more[len] = '\x1f';
		more[len + 1] = '\x00';
		strbuf_init(&s.out);
		CHECK_INT(run("gzip", more, len + 2, 0, 0, 0, &s, &err), -1);
		CHECK_STR(err, "invalid gzip data");
		CHECK_INT(s.out.len, 1299);
		strbuf_free(&s.out);
		free(more);
		free(enc);
	}
	/* Bytes after the end of a brotli stream are an error. */
	if ((enc = fixture(names[2], &len)) != NULL) {
		char *more = malloc(len + 1);
		memcpy(more, enc, len);
		more[len] = 'x';
		strbuf_init(&s.out);
		CHECK_INT(run("br", more, len + 1, 0, 0, 0, &s, &err), -1);
		CHECK_STR(err, "data after end of brotli stream");
		strbuf_free(&s.out);
		free(more);
		free(enc);
	}
}

/* An empty body (a 204, a HEAD answer) is complete in every coding. */
static void
test_decode_empty_body(void)
{
	static const char *encs[] = {
	    "identity", "gzip", "deflate", "br", "zstd", "gzip, br"};
	struct sink s;
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(encs) / sizeof(encs[0]); i++) {
		strbuf_init(&s.out);
		CHECK_INT(run(encs[i], "", 0, 0, 0, 0, &s, &err), 0);
		CHECK_INT(s.out.len, 0);
		strbuf_free(&s.out);
	}
	/* One byte of deflate is not a body. */
	strbuf_init(&s.out);
	CHECK_INT(run("deflate", "\x78", 1, 0, 0, 0, &s, &err), -1);
	CHECK_STR(err, "truncated deflate stream");
	strbuf_free(&s.out);
}

static int
stop_cb(void *arg, const void *data, size_t len)
{
	return -1;
}

static void
test_decode_consumer_stop(void)
{
	const char *cause;
	struct decoder *d = decode_new("identity", 0, stop_cb, NULL, &cause);

	CHECK_INT(decode_feed(d, "abc", 3), -1);
	CHECK_STR(decode_error(d), "stopped by consumer");
	CHECK_INT(decode_feed(d, "abc", 3), -1);
	CHECK_INT(decode_finish(d), -1);
	decode_free(d);
}

static const struct test tests[] = {
    TEST(test_decode_gzip_sync_flush),
    TEST(test_decode_gzip_members),
    TEST(test_decode_deflate_zlib),
    TEST(test_decode_deflate_raw),
    TEST(test_decode_zstd_flush),
    TEST(test_decode_zstd_frames),
    TEST(test_decode_brotli_flush),
    TEST(test_decode_gzip_flush_offsets),
    TEST(test_decode_per_event_chunks),
    TEST(test_decode_parse_encoding),
    TEST(test_decode_unknown),
    TEST(test_decode_stacked),
    TEST(test_decode_identity_cap),
    TEST(test_decode_bomb),
    TEST(test_decode_corrupt),
    TEST(test_decode_empty_body),
    TEST(test_decode_consumer_stop),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
