/*
 * Unit tests of the HTTP/1.1 parser: every vector is parsed whole, at every
 * prefix (each prefix in a buffer of exactly its size, so an over-read is
 * caught by ASan) and byte by byte; the chunked decoder is fed whole, at
 * every split point and byte by byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/http1.h"

/* A copy of s[0..n) in a buffer of exactly n bytes. */
static char *
exact_copy(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	memcpy(p, s, n);
	return p;
}

static int
parse_req_n(const char *s, size_t n, struct http1_request *req)
{
	char *p = exact_copy(s, n);
	int rc = http1_parse_request(p, n, req);

	free(p);
	return rc;
}

static int
parse_res_n(const char *s, size_t n, struct http1_response *res)
{
	char *p = exact_copy(s, n);
	int rc = http1_parse_response(p, n, res);

	free(p);
	return rc;
}

/* Every strict prefix of a complete valid request head (followed by extra
 * bytes) must ask for more; the whole must return its head length. */
static void
check_request_prefixes(const char *s, int head_len)
{
	struct http1_request req;
	size_t n, len = strlen(s);

	for (n = 0; n < (size_t)head_len; n++) {
		int rc = parse_req_n(s, n, &req);
		if (rc != HTTP1_NEED_MORE) {
			harness_fail(__FILE__, __LINE__,
			    "prefix %zu of %d: rc %d", n, head_len, rc);
			return;
		}
	}
	for (n = (size_t)head_len; n <= len; n++)
		CHECK_INT(parse_req_n(s, n, &req), head_len);
}

static void
check_response_prefixes(const char *s, int head_len)
{
	struct http1_response res;
	size_t n, len = strlen(s);

	for (n = 0; n < (size_t)head_len; n++) {
		int rc = parse_res_n(s, n, &res);
		if (rc != HTTP1_NEED_MORE) {
			harness_fail(__FILE__, __LINE__,
			    "prefix %zu of %d: rc %d", n, head_len, rc);
			return;
		}
	}
	for (n = (size_t)head_len; n <= len; n++)
		CHECK_INT(parse_res_n(s, n, &res), head_len);
}

/* A bad head: every prefix is NEED_MORE or ERROR, never success, and once
 * an error is seen every longer prefix is an error too; the whole is an
 * error. */
static void
check_request_bad(const char *s)
{
	struct http1_request req;
	size_t n, len = strlen(s);
	int seen_error = 0, rc;

	for (n = 0; n <= len; n++) {
		rc = parse_req_n(s, n, &req);
		if (rc >= 0 || (seen_error && rc != HTTP1_ERROR)) {
			harness_fail(__FILE__, __LINE__, "'%s' prefix %zu: %d",
			    s, n, rc);
			return;
		}
		if (rc == HTTP1_ERROR)
			seen_error = 1;
	}
	CHECK_INT(rc, HTTP1_ERROR);
}

static void
test_request_simple(void)
{
	static const char s[] = "GET /v1/models?x=1 HTTP/1.1\r\n"
	                        "Host: api.openai.com\r\n"
	                        "User-Agent:  curl/8.0 \r\n"
	                        "Accept: */*\r\n"
	                        "\r\nNEXT";
	struct http1_request req;
	int len = (int)strlen(s) - 4;

	CHECK_INT(http1_parse_request(s, strlen(s), &req), len);
	CHECK_INT(req.method_len, 3);
	CHECK_MEM(req.method, "GET", 3);
	CHECK_INT(req.target_len, 14);
	CHECK_MEM(req.target, "/v1/models?x=1", 14);
	CHECK_INT(req.minor_version, 1);
	CHECK_INT(req.nheaders, 3);
	CHECK_INT(req.headers[1].name_len, 10);
	CHECK_MEM(req.headers[1].name, "User-Agent", 10);
	/* Surrounding white space is not part of the value. */
	CHECK_INT(req.headers[1].value_len, 8);
	CHECK_MEM(req.headers[1].value, "curl/8.0", 8);
	CHECK(http1_find_header(req.headers, req.nheaders, "HOST") ==
	    &req.headers[0]);
	CHECK(http1_find_header(req.headers, req.nheaders, "cookie") == NULL);
	check_request_prefixes(s, len);
}

static void
test_request_lf_only_and_leading_crlf(void)
{
	static const char s[] = "\r\n\nPOST http://x.test:8080/a HTTP/1.0\n"
	                        "Content-Length: 3\n\nabc";
	struct http1_request req;
	int len = (int)strlen(s) - 3;

	CHECK_INT(http1_parse_request(s, strlen(s), &req), len);
	CHECK_INT(req.minor_version, 0);
	CHECK_INT(req.target_len, 20);
	CHECK_MEM(req.method, "POST", 4);
	CHECK_INT(req.nheaders, 1);
	check_request_prefixes(s, len);
}

static void
test_request_empty_value_and_no_headers(void)
{
	static const char s1[] = "GET / HTTP/1.1\r\nX-Empty:\r\nY: \t\r\n\r\n";
	static const char s2[] = "OPTIONS * HTTP/1.1\r\n\r\n";
	struct http1_request req;

	CHECK_INT(http1_parse_request(s1, strlen(s1), &req), strlen(s1));
	CHECK_INT(req.nheaders, 2);
	CHECK_INT(req.headers[0].value_len, 0);
	CHECK_INT(req.headers[1].value_len, 0);
	check_request_prefixes(s1, (int)strlen(s1));
	CHECK_INT(http1_parse_request(s2, strlen(s2), &req), strlen(s2));
	CHECK_INT(req.nheaders, 0);
	check_request_prefixes(s2, (int)strlen(s2));
}

static void
test_request_garbage(void)
{
	static const char *const bad[] = {
	    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* TLS */
	    "GET\r\n\r\n",
	    " GET / HTTP/1.1\r\n\r\n",
	    "GET  / HTTP/1.1\r\n\r\n",
	    "GET / HTTP/2.0\r\n\r\n",
	    "GET / HTTP/1.x\r\n\r\n",
	    "GET / HTTP/1.1 \r\n\r\n",
	    "GET / HTTP/1.1\rX\n\r\n",
	    "G(T / HTTP/1.1\r\n\r\n",
	    "GET /a\x01 HTTP/1.1\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
	    "GET / HTTP/1.1\r\n: x\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a\001b\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: x\r\n\r\r",
	    "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	    "GET / HTTP/1.1\r\nX: y\x7f\r\n\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_request_bad(bad[i]);
}

static void
test_request_too_large(void)
{
	struct http1_request req;
	size_t n = HTTP1_MAX_HEAD + 100, i;
	char *big = malloc(n);
	int pos;

	/* One enormous header: incomplete at the limit → too large. */
	pos = snprintf(big, n, "GET / HTTP/1.1\r\nX-Big: ");
	memset(big + pos, 'a', n - (size_t)pos);
	CHECK_INT(http1_parse_request(big, HTTP1_MAX_HEAD - 1, &req),
	    HTTP1_NEED_MORE);
	CHECK_INT(
	    http1_parse_request(big, HTTP1_MAX_HEAD, &req), HTTP1_TOO_LARGE);
	CHECK_INT(http1_parse_request(big, n, &req), HTTP1_TOO_LARGE);
	free(big);

	/* Too many header fields. */
	big = malloc(n);
	pos = snprintf(big, n, "GET / HTTP/1.1\r\n");
	for (i = 0; i <= HTTP1_MAX_HEADERS; i++)
		pos += snprintf(big + pos, n - (size_t)pos, "X: %zu\r\n", i);
	pos += snprintf(big + pos, n - (size_t)pos, "\r\n");
	CHECK_INT(http1_parse_request(big, (size_t)pos, &req), HTTP1_TOO_LARGE);
	free(big);
}

static void
test_response_simple(void)
{
	static const char s[] = "HTTP/1.1 200 OK\r\n"
	                        "Content-Type: text/event-stream\r\n"
	                        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello";
	static const char s2[] = "HTTP/1.1 204\r\n\r\n";
	static const char s3[] = "HTTP/1.0 404 Not  Found here\n\n";
	struct http1_response res;
	int len = (int)(strstr(s, "\r\n\r\n") - s) + 4;

	CHECK_INT(http1_parse_response(s, strlen(s), &res), len);
	CHECK_INT(res.status, 200);
	CHECK_INT(res.minor_version, 1);
	CHECK_INT(res.reason_len, 2);
	CHECK_INT(res.nheaders, 2);
	check_response_prefixes(s, len);
	CHECK_INT(http1_parse_response(s2, strlen(s2), &res), strlen(s2));
	CHECK_INT(res.status, 204);
	CHECK_INT(res.reason_len, 0);
	check_response_prefixes(s2, (int)strlen(s2));
	CHECK_INT(http1_parse_response(s3, strlen(s3), &res), strlen(s3));
	CHECK_INT(res.status, 404);
	CHECK_INT(res.reason_len, 15);
	check_response_prefixes(s3, (int)strlen(s3));
}

static void
test_response_garbage(void)
{
	static const char *const bad[] = {
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "HTTP/1.1 099 X\r\n\r\n",
	    "HTTP/1.1  200 OK\r\n\r\n",
	    "HTTP/1.1 200 O\x01K\r\n\r\n",
	    "ICY 200 OK\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nA B: c\r\n\r\n",
	};
	struct http1_response res;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(http1_parse_response(bad[i], strlen(bad[i]), &res),
		    HTTP1_ERROR);
}

static int
req_framing(const char *s, struct http1_framing *f)
{
	struct http1_request req;
	int rc = http1_parse_request(s, strlen(s), &req);

	if (rc < 0) {
		harness_fail(__FILE__, __LINE__, "parse '%s': %d", s, rc);
		return -99;
	}
	return http1_request_framing(&req, f);
}

static int
res_framing(const char *s, const char *method, struct http1_framing *f)
{
	struct http1_response res;
	int rc = http1_parse_response(s, strlen(s), &res);

	if (rc < 0) {
		harness_fail(__FILE__, __LINE__, "parse '%s': %d", s, rc);
		return -99;
	}
	return http1_response_framing(&res, method, strlen(method), f);
}

static void
test_request_framing(void)
{
	struct http1_framing f;

	CHECK_INT(req_framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &f), 0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(f.keep_alive, 1);
	CHECK_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 1234\r\n"
	                      "Connection: close\r\n\r\n",
	              &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_LENGTH);
	CHECK_INT(f.length, 1234);
	CHECK_INT(f.keep_alive, 0);
	/* Repeated identical lengths are one length. */
	CHECK_INT(req_framing("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n"
	                      "Content-Length: 7\r\n\r\n",
	              &f),
	    0);
	CHECK_INT(f.length, 7);
	CHECK_INT(req_framing("POST / HTTP/1.1\r\nTransfer-Encoding: "
	                      "gzip, Chunked\r\nExpect: 100-continue\r\n\r\n",
	              &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_CHUNKED);
	CHECK_INT(f.expect_continue, 1);
	CHECK_INT(req_framing("GET /ws HTTP/1.1\r\nConnection: keep-alive, "
	                      "Upgrade\r\nUpgrade: websocket\r\n\r\n",
	              &f),
	    0);
	CHECK_INT(f.upgrade, 1);
	CHECK_INT(req_framing("GET / HTTP/1.0\r\n\r\n", &f), 0);
	CHECK_INT(f.keep_alive, 0);
	CHECK_INT(req_framing("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n"
	                      "\r\n",
	              &f),
	    0);
	CHECK_INT(f.keep_alive, 1);
}

static void
test_request_smuggling(void)
{
	static const char *const bad[] = {
	    "POST / HTTP/1.1\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 5\r\n"
	    "Content-Length: 6\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
	    "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n"
	    "\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
	    "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	struct http1_framing f;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (req_framing(bad[i], &f) != HTTP1_ERROR)
			harness_fail(
			    __FILE__, __LINE__, "accepted: %s", bad[i]);
}

static void
test_response_framing(void)
{
	struct http1_framing f;

	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
	              "GET", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_LENGTH);
	CHECK_INT(f.length, 10);
	CHECK_INT(f.keep_alive, 1);
	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
	              "HEAD", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(res_framing("HTTP/1.1 304 Not Modified\r\nContent-Length: "
	                      "10\r\n\r\n",
	              "GET", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(res_framing("HTTP/1.1 204 No Content\r\n\r\n", "GET", &f), 0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(f.keep_alive, 1);
	CHECK_INT(res_framing("HTTP/1.1 100 Continue\r\n\r\n", "POST", &f), 0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(res_framing("HTTP/1.1 101 Switching Protocols\r\nConnection:"
	                      " Upgrade\r\nUpgrade: websocket\r\n\r\n",
	              "GET", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(f.upgrade, 1);
	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
	                      "\r\n\r\n",
	              "POST", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_CHUNKED);
	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\n\r\n", "GET", &f), 0);
	CHECK_INT(f.body, HTTP1_BODY_CLOSE);
	CHECK_INT(f.keep_alive, 0);
	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
	                      "\r\n",
	              "GET", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_CLOSE);
	CHECK_INT(res_framing("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	              "GET", &f),
	    0);
	CHECK_INT(f.body, HTTP1_BODY_NONE);
	CHECK_INT(f.keep_alive, 0);
	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	                      "Transfer-Encoding: chunked\r\n\r\n",
	              "GET", &f),
	    HTTP1_ERROR);
	CHECK_INT(res_framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	                      "Content-Length: 4\r\n\r\n",
	              "GET", &f),
	    HTTP1_ERROR);
}

static void
test_value_has_token(void)
{
	CHECK(http1_value_has_token("keep-alive, Upgrade", 19, "upgrade"));
	CHECK(http1_value_has_token(" close ", 7, "close"));
	CHECK(!http1_value_has_token("closed", 6, "close"));
	CHECK(!http1_value_has_token("", 0, "close"));
	CHECK(!http1_value_has_token(",,", 2, "close"));
}

/* Decodes body with the given split pattern: step 0 = whole, k > 0 =
 * pieces of k bytes, or at a single split point when split > 0.  Returns
 * the total consumed (or -1) and the decoded payload in out. */
static long
decode(const char *body, size_t len, size_t step, size_t split, char *out,
    size_t *outlen, int *done)
{
	struct http1_chunked c;
	size_t pos = 0, off, dlen, piece;
	long n, total = 0;
	char *p;

	http1_chunked_init(&c);
	*outlen = 0;
	while (pos < len && !http1_chunked_done(&c)) {
		if (step > 0)
			piece = len - pos < step ? len - pos : step;
		else if (split > 0 && pos < split)
			piece = split - pos;
		else
			piece = len - pos;
		p = exact_copy(body + pos, piece);
		/* Feed the piece until it is used up or the body ends. */
		size_t used = 0;
		while (used < piece && !http1_chunked_done(&c)) {
			n = http1_chunked_feed(
			    &c, p + used, piece - used, &off, &dlen);
			if (n < 0) {
				free(p);
				return -1;
			}
			if (n == 0)
				break;
			memcpy(out + *outlen, p + used + off, dlen);
			*outlen += dlen;
			used += (size_t)n;
		}
		free(p);
		pos += used;
		total += (long)used;
		if (used < piece)
			break;
	}
	*done = http1_chunked_done(&c);
	return total;
}

static void
check_chunked(const char *body, size_t body_len, long expect_consumed,
    const char *payload)
{
	char out[512];
	size_t outlen, split, step;
	int done;
	long n;

	n = decode(body, body_len, 0, 0, out, &outlen, &done);
	CHECK_INT(n, expect_consumed);
	CHECK_INT(done, 1);
	CHECK_INT(outlen, strlen(payload));
	CHECK_MEM(out, payload, strlen(payload));
	for (step = 1; step <= 3; step++) {
		n = decode(body, body_len, step, 0, out, &outlen, &done);
		CHECK_INT(n, expect_consumed);
		CHECK_INT(done, 1);
		CHECK_INT(outlen, strlen(payload));
		CHECK_MEM(out, payload, strlen(payload));
	}
	for (split = 1; split < body_len; split++) {
		n = decode(body, body_len, 0, split, out, &outlen, &done);
		CHECK_INT(n, expect_consumed);
		CHECK_INT(done, 1);
		CHECK_INT(outlen, strlen(payload));
		CHECK_MEM(out, payload, strlen(payload));
	}
}

static void
test_chunked_basic(void)
{
	static const char b[] = "5\r\nhello\r\n1A\r\n"
	                        "abcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"
	                        "GET / HTTP/1.1\r\n";
	size_t len = strlen(b);

	check_chunked(
	    b, len, (long)(len - 16), "helloabcdefghijklmnopqrstuvwxyz");
}

static void
test_chunked_extensions_and_trailers(void)
{
	static const char b[] = "004;name=\"v\"\r\nwxyz\r\n"
	                        "3 ; x\r\n123\r\n"
	                        "0;last\r\n"
	                        "X-Checksum: abc\r\n"
	                        "X-Other:\tq\r\n"
	                        "\r\n";

	check_chunked(b, strlen(b), (long)strlen(b), "wxyz123");
}

static void
test_chunked_empty(void)
{
	static const char b[] = "0\r\n\r\n";

	check_chunked(b, strlen(b), 5, "");
}

static void
test_chunked_errors(void)
{
	static const char *const bad[] = {
	    "x\r\n",
	    "\r\n",
	    "-1\r\n",
	    "5\nhello\r\n0\r\n\r\n",    /* bare LF */
	    "5\r\nhelloX\r\n0\r\n\r\n", /* no CRLF after data */
	    "5\r\nhello\r\r0\r\n\r\n",
	    "11111111111111111\r\n", /* overflow */
	    "5;\x01\r\n",
	    "0\r\n: x\r\n\r\n",
	    "0\r\nX: y\x01\r\n\r\n",
	    "0\r\n\r\r",
	};
	char out[512];
	size_t i, outlen;
	int done;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (decode(bad[i], strlen(bad[i]), 0, 0, out, &outlen, &done) !=
		    -1)
			harness_fail(__FILE__, __LINE__, "accepted %zu", i);
		if (decode(bad[i], strlen(bad[i]), 1, 0, out, &outlen, &done) !=
		    -1)
			harness_fail(__FILE__, __LINE__, "bytewise %zu", i);
	}
}

static void
test_chunked_limits(void)
{
	struct http1_chunked c;
	char line[HTTP1_MAX_CHUNK_LINE + 10];
	size_t off, len;

	/* An extension longer than the line limit is refused. */
	memset(line, 'a', sizeof(line));
	line[0] = '1';
	line[1] = ';';
	http1_chunked_init(&c);
	CHECK_INT(http1_chunked_feed(&c, line, sizeof(line), &off, &len),
	    HTTP1_ERROR);
	/* A large chunk size is fine and reports the payload in pieces. */
	http1_chunked_init(&c);
	CHECK_INT(http1_chunked_feed(&c, "ffffffff\r\nab", 12, &off, &len), 12);
	CHECK_INT(off, 10);
	CHECK_INT(len, 2);
	CHECK_INT(c.remaining, 0xffffffffULL - 2);
}

static const struct test tests[] = {
    TEST(test_request_simple),
    TEST(test_request_lf_only_and_leading_crlf),
    TEST(test_request_empty_value_and_no_headers),
    TEST(test_request_garbage),
    TEST(test_request_too_large),
    TEST(test_response_simple),
    TEST(test_response_garbage),
    TEST(test_request_framing),
    TEST(test_request_smuggling),
    TEST(test_response_framing),
    TEST(test_value_has_token),
    TEST(test_chunked_basic),
    TEST(test_chunked_extensions_and_trailers),
    TEST(test_chunked_empty),
    TEST(test_chunked_errors),
    TEST(test_chunked_limits),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
