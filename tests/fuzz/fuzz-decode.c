/*
 * libFuzzer target for the Content-Encoding decoders.  Byte 0 picks the
 * encoding (each single coding and some stacks), bytes 1-2 a split point;
 * the rest is decoded whole and in two pieces with a 1 MiB output cap.
 * Invariant: both runs give the same result and, when they succeed, the
 * same output (by hash and length); the output never exceeds the cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/decode.h"

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CAP ((size_t)1 << 20)

static const char *const encodings[] = {"identity", "gzip", "deflate", "br",
    "zstd", "gzip, br", "zstd, gzip", "deflate, deflate"};

static int
out_cb(void *arg, const void *data, size_t len)
{
	struct fuzz_run *r = arg;

	fuzz_run_add(r, data, len);
	r->count += len;
	if (r->count > CAP)
		abort();
	return 0;
}

static int
feed_cb(void *parser, const void *p, size_t len)
{
	return decode_feed(parser, p, len);
}

static int
run_decoder(const char *enc, const uint8_t *p, size_t len, size_t split,
    struct fuzz_run *r)
{
	const char *cause;
	struct decoder *d;
	int rc;

	fuzz_run_init(r);
	if ((d = decode_new(enc, CAP, out_cb, r, &cause)) == NULL)
		abort();
	rc = fuzz_feed_split(feed_cb, d, p, len, split);
	if (rc == 0)
		rc = decode_finish(d);
	if ((rc == -1) != (decode_error(d) != NULL))
		abort();
	if (decode_total_out(d) != r->count)
		abort();
	decode_free(d);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *enc;
	struct fuzz_run whole, parts;
	size_t split;
	int a, b;

	if (size < 3)
		return 0;
	enc = encodings[data[0] % (sizeof(encodings) / sizeof(encodings[0]))];
	split = fuzz_split(data + 1, size - 3);
	data += 3;
	size -= 3;
	a = run_decoder(enc, data, size, 0, &whole);
	b = run_decoder(enc, data, size, split, &parts);
	/* How much a decoder emits before it detects corrupt input depends
	 * on where the input was cut (brotli, for one, holds output back),
	 * so outputs are compared only when both runs succeed. */
	if (a != b || (a == 0 && !fuzz_run_equal(&whole, &parts)))
		abort();
	return 0;
}
