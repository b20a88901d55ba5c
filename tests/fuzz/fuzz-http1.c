/*
 * libFuzzer target for the HTTP/1.1 parser.  The first byte picks a split
 * point; the rest is parsed as a request head, a response head and a
 * chunked body.  Invariants checked: results are in range, pointers stay
 * inside the input, a head parsed whole is parsed the same at every
 * prefix boundary, and the chunked decoder gives the same payload and
 * consumed count whether fed whole or in two pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_headers(
    const struct http1_header *h, size_t n, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (h[i].name < buf || h[i].name + h[i].name_len > buf + len ||
		    h[i].value < buf || h[i].value + h[i].value_len > buf + len)
			abort();
	}
}

static size_t
decode(const char *buf, size_t len, size_t split, char *out, long *consumed)
{
	struct http1_chunked c;
	size_t pos = 0, outlen = 0, off, dlen, end;
	long n;

	http1_chunked_init(&c);
	*consumed = 0;
	while (pos < len && !http1_chunked_done(&c)) {
		end = pos < split && split < len ? split : len;
		n = http1_chunked_feed(&c, buf + pos, end - pos, &off, &dlen);
		if (n < 0) {
			*consumed = -1;
			return outlen;
		}
		if (n == 0 || (size_t)n > end - pos || off + dlen > (size_t)n)
			abort();
		memcpy(out + outlen, buf + pos + off, dlen);
		outlen += dlen;
		pos += (size_t)n;
	}
	*consumed = (long)pos;
	return outlen;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http1_request req;
	struct http1_response res;
	struct http1_framing f;
	const char *buf;
	char *copy, *out1, *out2;
	size_t len, split, o1, o2;
	long c1, c2;
	int rc, rc2;

	if (size < 1)
		return 0;
	split = data[0];
	buf = (const char *)data + 1;
	len = size - 1;
	copy = malloc(len ? len : 1);
	memcpy(copy, buf, len);

	rc = http1_parse_request(copy, len, &req);
	if (rc > (int)len ||
	    (rc < 0 && rc != HTTP1_ERROR && rc != HTTP1_NEED_MORE &&
	        rc != HTTP1_TOO_LARGE) ||
	    rc == 0)
		abort();
	if (rc > 0) {
		check_headers(req.headers, req.nheaders, copy, len);
		(void)http1_request_framing(&req, &f);
		/* The head alone parses to the same length. */
		if (http1_parse_request(copy, (size_t)rc, &req) != rc)
			abort();
		if (split < (size_t)rc &&
		    http1_parse_request(copy, split, &req) != HTTP1_NEED_MORE)
			abort();
	} else if (split < len) {
		rc2 = http1_parse_request(copy, split, &req);
		if (rc2 > 0 || (rc == HTTP1_NEED_MORE && rc2 == HTTP1_ERROR))
			abort();
	}

	rc = http1_parse_response(copy, len, &res);
	if (rc > (int)len || rc == 0)
		abort();
	if (rc > 0) {
		check_headers(res.headers, res.nheaders, copy, len);
		(void)http1_response_framing(&res, "GET", 3, &f);
		if (split < (size_t)rc &&
		    http1_parse_response(copy, split, &res) != HTTP1_NEED_MORE)
			abort();
	}

	out1 = malloc(len + 1);
	out2 = malloc(len + 1);
	o1 = decode(copy, len, 0, out1, &c1);
	o2 = decode(copy, len, split, out2, &c2);
	if (c1 != c2 || (c1 >= 0 && (o1 != o2 || memcmp(out1, out2, o1) != 0)))
		abort();
	free(out1);
	free(out2);
	free(copy);
	return 0;
}
