/*
 * Unit tests of the exchange record the engine hands to observers: heads
 * are copied (the parse buffer may be reused at once), lookups are
 * case-insensitive, and per-connection data is freed exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/http1.h"
#include "../../src/engine/exchange-priv.h"

static int freed;

static void
count_free(void *p)
{
	freed++;
	free(p);
}

static void
test_exchange_request_copy(void)
{
	struct exchange_conn xc;
	struct http1_request req;
	struct exchange *ex;
	const char *n, *v;
	char *buf = strdup("POST /v1/messages?beta=true HTTP/1.1\r\n"
	                   "Host: api.anthropic.com\r\n"
	                   "Content-Type: application/json\r\n"
	                   "X-Empty:\r\n\r\n");
	int len = http1_parse_request(buf, strlen(buf), &req);

	CHECK(len > 0);
	memset(&xc, 0, sizeof(xc));
	xc.id = 7;
	strcpy(xc.client_addr, "127.0.0.1");
	xc.client_port = 50000;
	ex = exchange_new(
	    &xc, "API.Anthropic.COM", 443, &req, req.target, req.target_len);
	/* The parse buffer is gone; the exchange keeps its own copy. */
	memset(buf, 'Z', strlen(buf));
	free(buf);
	CHECK_STR(exchange_host(ex), "api.anthropic.com");
	CHECK_INT(exchange_port(ex), 443);
	CHECK_STR(exchange_method(ex), "POST");
	CHECK_STR(exchange_path(ex), "/v1/messages?beta=true");
	CHECK_STR(
	    exchange_request_header(ex, "content-type"), "application/json");
	CHECK_STR(exchange_request_header(ex, "x-empty"), "");
	CHECK(exchange_request_header(ex, "authorization") == NULL);
	CHECK_INT(exchange_request_header_at(ex, 0, &n, &v), 0);
	CHECK_STR(n, "Host");
	CHECK_STR(v, "api.anthropic.com");
	CHECK_INT(exchange_request_header_at(ex, 3, &n, &v), -1);
	CHECK_INT(exchange_status(ex), 0);
	CHECK(exchange_response_header(ex, "content-type") == NULL);
	CHECK_INT(exchange_response_header_at(ex, 0, &n, &v), -1);
	CHECK_INT(exchange_conn_id(ex), 7);
	{
		char a[64], l[64];
		int cp = 0, lp = 0;

		CHECK_INT(exchange_client_endpoint(
		              ex, a, sizeof(a), &cp, l, sizeof(l), &lp),
		    0);
		CHECK_STR(a, "127.0.0.1");
		CHECK_INT(cp, 50000);
		CHECK_STR(l, "");
	}
	exchange_free(ex);
}

static void
test_exchange_response_and_data(void)
{
	struct exchange_conn xc;
	struct http1_request req;
	struct http1_response res;
	struct exchange *ex;
	const char *r = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	char *rs = strdup("HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\n"
	                  "Content-Type: text/plain\r\n\r\n");
	int dummy;

	memset(&xc, 0, sizeof(xc));
	CHECK(http1_parse_request(r, strlen(r), &req) > 0);
	CHECK(http1_parse_response(rs, strlen(rs), &res) > 0);
	ex = exchange_new(&xc, "a", 80, &req, req.target, req.target_len);
	exchange_set_response(ex, &res);
	free(rs);
	CHECK_INT(exchange_status(ex), 429);
	CHECK_STR(exchange_response_header(ex, "retry-after"), "3");
	CHECK_STR(exchange_response_header(ex, "CONTENT-TYPE"), "text/plain");
	exchange_set_data(ex, &dummy);
	CHECK(exchange_data(ex) == &dummy);
	freed = 0;
	exchange_set_conn_data(ex, malloc(8), count_free);
	CHECK(exchange_conn_data(ex) != NULL);
	/* Replacing frees the old one. */
	exchange_set_conn_data(ex, malloc(8), count_free);
	CHECK_INT(freed, 1);
	exchange_free(ex);
	/* The connection data outlives the exchange, until the engine
	 * clears the connection. */
	CHECK_INT(freed, 1);
	exchange_conn_clear(&xc);
	CHECK_INT(freed, 2);
	CHECK(xc.data == NULL);
}

static void
test_exchange_connect_header(void)
{
	struct exchange_conn xc;
	struct http1_request req, creq;
	struct exchange *ex;
	const char *r = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	char *c = strdup("CONNECT api.openai.com:443 HTTP/1.1\r\n"
	                 "Host: api.openai.com:443\r\n"
	                 "Proxy-Authorization: Basic dGFnOng=\r\n\r\n");

	memset(&xc, 0, sizeof(xc));
	CHECK(http1_parse_request(r, strlen(r), &req) > 0);
	ex = exchange_new(&xc, "a", 443, &req, req.target, req.target_len);
	/* No CONNECT (absolute-form): NULL. */
	CHECK(exchange_connect_header(ex, "proxy-authorization") == NULL);
	CHECK(http1_parse_request(c, strlen(c), &creq) > 0);
	exchange_conn_set_connect(&xc, &creq);
	free(c);
	CHECK_STR(exchange_connect_header(ex, "PROXY-AUTHORIZATION"),
	    "Basic dGFnOng=");
	CHECK_STR(exchange_connect_header(ex, "host"), "api.openai.com:443");
	CHECK(exchange_connect_header(ex, "user-agent") == NULL);
	/* The request's own headers are separate. */
	CHECK(exchange_request_header(ex, "proxy-authorization") == NULL);
	exchange_free(ex);
	exchange_conn_free(&xc);
	CHECK(xc.connect_mem == NULL);
}

static const struct test tests[] = {
    TEST(test_exchange_connect_header),
    TEST(test_exchange_request_copy),
    TEST(test_exchange_response_and_data),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
