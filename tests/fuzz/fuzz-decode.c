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

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CAP ((size_t)1 << 20)

static const char *const encodings[] = {"identity", "gzip", "deflate", "br",
    "zstd", "gzip, br", "zstd, gzip", "deflate, deflate"};

struct run {
	uint64_t hash;
	size_t len;
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
out_cb(void *arg, const void *data, size_t len)
{
	struct run *r = arg;

	r->hash = fnv(r->hash, data, len);
	r->len += len;
	if (r->len > CAP)
		abort();
	return 0;
}

static int
run_decoder(
    const char *enc, const uint8_t *p, size_t len, size_t split, struct run *r)
{
	const char *cause;
	struct decoder *d;
	int rc;

	r->hash = 0xcbf29ce484222325ULL;
	r->len = 0;
	if ((d = decode_new(enc, CAP, out_cb, r, &cause)) == NULL)
		abort();
	if (split > 0 && split < len) {
		rc = decode_feed(d, p, split);
		if (rc == 0)
			rc = decode_feed(d, p + split, len - split);
	} else
		rc = decode_feed(d, p, len);
	if (rc == 0)
		rc = decode_finish(d);
	if ((rc == -1) != (decode_error(d) != NULL))
		abort();
	if (decode_total_out(d) != r->len)
		abort();
	decode_free(d);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *enc;
	struct run whole, parts;
	size_t split;
	int a, b;

	if (size < 3)
		return 0;
	enc = encodings[data[0] % (sizeof(encodings) / sizeof(encodings[0]))];
	split = (size_t)data[1] << 8 | data[2];
	data += 3;
	size -= 3;
	a = run_decoder(enc, data, size, 0, &whole);
	b = run_decoder(enc, data, size, split % (size + 1), &parts);
	/* How much a decoder emits before it detects corrupt input depends
	 * on where the input was cut (brotli, for one, holds output back),
	 * so outputs are compared only when both runs succeed. */
	if (a != b ||
	    (a == 0 && (whole.len != parts.len || whole.hash != parts.hash)))
		abort();
	return 0;
}
