/*
 * Unit tests of the SSE parser: every fixture is fed whole, split in two at
 * every offset and byte by byte (each piece in a buffer of exactly its size,
 * so ASan sees an over-read), and the dispatched events are compared with
 * what the WHATWG rules say they must be.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feed.h"
#include "harness.h"
#include "halton/sse.h"

#define FIXTURES   "tests/fixtures/wire/"
#define MAX_EVENTS 64

struct events {
	size_t n;
	char *type[MAX_EVENTS]; /* NULL when the event had no type */
	char *data[MAX_EVENTS];
	size_t len[MAX_EVENTS];
	int stop_after; /* return -1 after this many, 0: never */
};

static int
collect_cb(void *arg, const char *type, const char *data, size_t len)
{
	struct events *ev = arg;

	if (data[len] != '\0')
		harness_fail(__FILE__, __LINE__, "data not NUL-terminated");
	if (ev->n < MAX_EVENTS) {
		ev->type[ev->n] = type ? strdup(type) : NULL;
		ev->data[ev->n] = malloc(len + 1);
		memcpy(ev->data[ev->n], data, len + 1);
		ev->len[ev->n] = len;
	}
	ev->n++;
	if (ev->stop_after && ev->n == (size_t)ev->stop_after)
		return -1;
	return 0;
}

static void
events_free(struct events *ev)
{
	size_t i;

	for (i = 0; i < ev->n && i < MAX_EVENTS; i++) {
		free(ev->type[i]);
		free(ev->data[i]);
	}
	memset(ev, 0, sizeof(*ev));
}

static int
feed_cb(void *s, const void *p, size_t n)
{
	return sse_feed(s, p, n);
}

/*
 * Parses data into ev: split at `split` (0: whole) or, with step 1, byte
 * by byte.  Returns what sse_finish returned, or -1 when a feed failed.
 */
static int
parse(const char *data, size_t len, size_t split, int bytewise,
    struct events *ev, char *last_id, size_t idsize)
{
	struct sse *s = sse_new(0, collect_cb, ev);
	int rc;

	rc = feed_pieces(feed_cb, s, data, len, split, bytewise);
	if (rc == 0)
		rc = sse_finish(s);
	if (last_id != NULL)
		snprintf(last_id, idsize, "%s", sse_last_id(s));
	if (rc == 0 && sse_events(s) != ev->n)
		harness_fail(__FILE__, __LINE__, "sse_events %zu != %zu",
		    sse_events(s), ev->n);
	sse_free(s);
	return rc;
}

struct expect {
	const char *type;
	const char *data;
};

/* Checks one parse against the expected events; returns 0 if all match. */
static int
check_events(const struct events *ev, const struct expect *want, size_t n,
    const char *how, size_t at)
{
	size_t i;

	if (ev->n != n) {
		harness_fail(__FILE__, __LINE__, "%s %zu: %zu events, want %zu",
		    how, at, ev->n, n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		int type_ok = want[i].type == NULL ? ev->type[i] == NULL
		                                   : ev->type[i] != NULL &&
		        strcmp(ev->type[i], want[i].type) == 0;
		if (!type_ok || ev->len[i] != strlen(want[i].data) ||
		    memcmp(ev->data[i], want[i].data, ev->len[i]) != 0) {
			harness_fail(__FILE__, __LINE__,
			    "%s %zu: event %zu is (%s, \"%s\"), want (%s, "
			    "\"%s\")",
			    how, at, i, ev->type[i] ? ev->type[i] : "NULL",
			    ev->data[i], want[i].type ? want[i].type : "NULL",
			    want[i].data);
			return -1;
		}
	}
	return 0;
}

/* Every way of feeding data must give exactly the expected events. */
static void
check_all_splits(const char *data, size_t len, const struct expect *want,
    size_t n, const char *want_id)
{
	struct events ev = {0};
	char id[300];
	size_t split;

	CHECK_INT(parse(data, len, 0, 0, &ev, id, sizeof(id)), 0);
	check_events(&ev, want, n, "whole", 0);
	if (want_id != NULL)
		CHECK_STR(id, want_id);
	events_free(&ev);
	for (split = 1; split < len; split++) {
		int rc = parse(data, len, split, 0, &ev, id, sizeof(id));
		if (rc != 0 || check_events(&ev, want, n, "split", split)) {
			harness_fail(__FILE__, __LINE__, "split at %zu (rc %d)",
			    split, rc);
			events_free(&ev);
			return;
		}
		events_free(&ev);
	}
	CHECK_INT(parse(data, len, 0, 1, &ev, id, sizeof(id)), 0);
	check_events(&ev, want, n, "bytewise", 0);
	if (want_id != NULL)
		CHECK_STR(id, want_id);
	events_free(&ev);
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

static void
test_sse_edge_cases(void)
{
	static const struct expect want[] = {
	    {"first", "one"},
	    {NULL, "no-space\n two spaces"},
	    {NULL, ""},
	    {NULL, "after lonely"},
	    {"cr", "a\nb"},
	    {NULL, "last without blank line"},
	};
	size_t len;
	char *data = fixture("sse_edge_cases.sse", &len);

	if (data == NULL)
		return;
	CHECK_INT(len, 212);
	check_all_splits(data, len, want, 6, "42");
	free(data);
}

/* The i-th "data: " value of an LF-framed file, found by plain search. */
static char *
nth_data_line(const char *file, size_t i)
{
	const char *p = file, *end;

	for (;;) {
		if ((p = strstr(p, "data: ")) == NULL)
			return NULL;
		if (p == file || p[-1] == '\n') {
			if (i == 0)
				break;
			i--;
		}
		p++;
	}
	p += 6;
	end = strchr(p, '\n');
	return end ? strndup(p, (size_t)(end - p)) : strdup(p);
}

static void
test_sse_anthropic_stream(void)
{
	static const char *types[] = {"message_start", "content_block_start",
	    "ping", "content_block_delta", "content_block_delta",
	    "content_block_delta", "content_block_stop", "message_delta",
	    "message_stop"};
	struct expect want[9];
	char *lines[9];
	size_t len, i;
	char *data = fixture("anthropic_stream_basic.sse", &len);

	if (data == NULL)
		return;
	for (i = 0; i < 9; i++) {
		lines[i] = nth_data_line(data, i);
		want[i].type = types[i];
		want[i].data = lines[i] ? lines[i] : "";
	}
	CHECK(nth_data_line(data, 9) == NULL);
	CHECK_STR(lines[2], "{\"type\": \"ping\"}");
	CHECK_STR(lines[8], "{\"type\":\"message_stop\"}");
	/* The stream ends without a blank line: the last event comes from
	 * sse_finish. */
	CHECK(data[len - 1] == '}');
	check_all_splits(data, len, want, 9, "");
	for (i = 0; i < 9; i++)
		free(lines[i]);
	free(data);
}

/* LF, CRLF and CR framings of one stream give the same three events. */
static void
test_sse_line_endings(void)
{
	static const char *names[] = {"gemini_stream_alt_sse.sse",
	    "gemini_stream_alt_sse.crlf.sse", "gemini_stream_alt_sse.cr.sse"};
	struct expect want[3];
	char *lines[3];
	size_t len, i, f;
	char *lf = fixture(names[0], &len);

	if (lf == NULL)
		return;
	for (i = 0; i < 3; i++) {
		lines[i] = nth_data_line(lf, i);
		want[i].type = NULL;
		want[i].data = lines[i] ? lines[i] : "";
	}
	CHECK(strstr(want[2].data, "\"candidatesTokenCount\": 13") != NULL);
	for (f = 0; f < 3; f++) {
		char *data = fixture(names[f], &len);
		if (data == NULL)
			continue;
		if (f == 1)
			CHECK(strstr(data, "}\r\n\r\ndata: ") != NULL);
		if (f == 2)
			CHECK(strchr(data, '\n') == NULL);
		check_all_splits(data, len, want, 3, "");
		free(data);
	}
	for (i = 0; i < 3; i++)
		free(lines[i]);
	free(lf);
}

static void
test_sse_multiline_data(void)
{
	static const struct expect want[] = {
	    {NULL,
	        "{\"response\":{\n"
	        "\"candidates\":[{\"content\":{\"role\":\"model\","
	        "\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":"
	        "\"STOP\"}],\n"
	        "\"usageMetadata\":{\n"
	        "\"promptTokenCount\":40210,\n"
	        "\"cachedContentTokenCount\":20480,\n"
	        "\"candidatesTokenCount\":57\n"
	        "}},\"traceId\":\"hmtrace01\"}"},
	};
	size_t len;
	char *data =
	    fixture("gemini_code_assist_stream_multiline_data.sse", &len);

	if (data == NULL)
		return;
	check_all_splits(data, len, want, 1, "");
	free(data);
}

/* A CR that ends one chunk and the LF that starts the next are one line
 * end, not a line end followed by a blank line. */
static void
test_sse_cr_lf_across_chunks(void)
{
	struct events ev = {0};
	struct sse *s = sse_new(0, collect_cb, &ev);

	CHECK_INT(sse_feed(s, "data: a\r", 8), 0);
	CHECK_INT(sse_feed(s, "\ndata: b\r", 9), 0);
	CHECK_INT(ev.n, 0);
	CHECK_INT(sse_feed(s, "\n", 1), 0);
	CHECK_INT(ev.n, 0);
	CHECK_INT(sse_feed(s, "\r", 1), 0);
	CHECK_INT(ev.n, 1);
	CHECK_STR(ev.data[0], "a\nb");
	/* An LF after that CR is part of the same blank line. */
	CHECK_INT(sse_feed(s, "\ndata: c\n\n", 10), 0);
	CHECK_INT(ev.n, 2);
	CHECK_STR(ev.data[1], "c");
	CHECK_INT(sse_finish(s), 0);
	CHECK_INT(ev.n, 2);
	sse_free(s);
	events_free(&ev);
}

static void
test_sse_truncated(void)
{
	struct events ev = {0};
	struct sse *s = sse_new(0, collect_cb, &ev);

	/* Without sse_finish nothing pending is dispatched. */
	CHECK_INT(sse_feed(s, "event: message_delta\ndata: {\"usage\"", 35), 0);
	CHECK_INT(ev.n, 0);
	CHECK_INT(sse_finish(s), 0);
	CHECK_INT(ev.n, 1);
	CHECK_STR(ev.type[0], "message_delta");
	CHECK_STR(ev.data[0], "{\"usage\"");
	/* Feeding after the end is an error. */
	CHECK_INT(sse_feed(s, "x", 1), -1);
	CHECK_STR(sse_error(s), "data after end of stream");
	sse_free(s);
	events_free(&ev);

	/* A type with no data is never dispatched, not even at the end. */
	s = sse_new(0, collect_cb, &ev);
	CHECK_INT(sse_feed(s, "event: ping\n", 12), 0);
	CHECK_INT(sse_finish(s), 0);
	CHECK_INT(ev.n, 0);
	sse_free(s);
}

static void
test_sse_limits(void)
{
	struct events ev = {0};
	char big[300];
	struct sse *s;

	/* One line longer than the limit, split over two feeds. */
	s = sse_new(64, collect_cb, &ev);
	memset(big, 'x', sizeof(big));
	memcpy(big, "data: ", 6);
	CHECK_INT(sse_feed(s, big, 40), 0);
	CHECK_INT(sse_feed(s, big + 40, 40), -1);
	CHECK_STR(sse_error(s), "line too long");
	CHECK_INT(sse_feed(s, "\n\n", 2), -1);
	sse_free(s);

	/* One line longer than the limit within a single feed. */
	s = sse_new(64, collect_cb, &ev);
	big[80] = '\n';
	CHECK_INT(sse_feed(s, big, 81), -1);
	CHECK_STR(sse_error(s), "line too long");
	sse_free(s);

	/* Many short data lines that add up to more than the limit. */
	s = sse_new(64, collect_cb, &ev);
	CHECK_INT(sse_feed(s, "data: 0123456789abcdef0123456789\n", 33), 0);
	CHECK_INT(sse_feed(s, "data: 0123456789abcdef0123456789\n", 33), 0);
	CHECK_INT(sse_feed(s, "data: 0123456789abcdef0123456789\n", 33), -1);
	CHECK_STR(sse_error(s), "event too large");
	sse_free(s);
	CHECK_INT(ev.n, 0);

	/* An event type longer than SSE_MAX_TYPE. */
	s = sse_new(0, collect_cb, &ev);
	memset(big, 'e', sizeof(big));
	memcpy(big, "event: ", 7);
	big[7 + SSE_MAX_TYPE + 1] = '\n';
	CHECK_INT(sse_feed(s, big, 7 + SSE_MAX_TYPE + 2), -1);
	CHECK_STR(sse_error(s), "event type too long");
	sse_free(s);
	/* Exactly SSE_MAX_TYPE is accepted. */
	s = sse_new(0, collect_cb, &ev);
	big[7 + SSE_MAX_TYPE] = '\n';
	CHECK_INT(sse_feed(s, big, 7 + SSE_MAX_TYPE + 1), 0);
	CHECK_INT(sse_feed(s, "data: x\n\n", 9), 0);
	CHECK_INT(ev.n, 1);
	if (ev.n == 1 && ev.type[0] != NULL)
		CHECK_INT(strlen(ev.type[0]), SSE_MAX_TYPE);
	sse_free(s);
	events_free(&ev);
}

static void
test_sse_consumer_stop(void)
{
	static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	struct events ev = {0};
	struct sse *s;

	ev.stop_after = 2;
	s = sse_new(0, collect_cb, &ev);
	CHECK_INT(sse_feed(s, in, sizeof(in) - 1), -1);
	CHECK_STR(sse_error(s), "stopped by consumer");
	CHECK_INT(ev.n, 2);
	CHECK_INT(sse_finish(s), -1);
	CHECK_INT(ev.n, 2);
	sse_free(s);
	events_free(&ev);
}

static void
test_sse_bom(void)
{
	struct events ev = {0};
	struct sse *s;

	/* A BOM split over three feeds is skipped. */
	s = sse_new(0, collect_cb, &ev);
	CHECK_INT(sse_feed(s, "\xef", 1), 0);
	CHECK_INT(sse_feed(s, "\xbb", 1), 0);
	CHECK_INT(sse_feed(s,
	              "\xbf"
	              "data: x\n\n",
	              10),
	    0);
	CHECK_INT(ev.n, 1);
	CHECK_STR(ev.data[0], "x");
	sse_free(s);
	events_free(&ev);

	/* A partial BOM is not one: the bytes belong to the field name. */
	s = sse_new(0, collect_cb, &ev);
	CHECK_INT(sse_feed(s, "\xef", 1), 0);
	CHECK_INT(sse_feed(s, "data: x\n\n", 9), 0);
	CHECK_INT(sse_finish(s), 0);
	CHECK_INT(ev.n, 0);
	sse_free(s);

	/* A second BOM, after the start, is not skipped. */
	s = sse_new(0, collect_cb, &ev);
	CHECK_INT(sse_feed(s,
	              "\xef\xbb\xbf\xef\xbb\xbf"
	              "data: y\n\n",
	              15),
	    0);
	CHECK_INT(ev.n, 0);
	sse_free(s);
}

static void
test_sse_sniff(void)
{
	CHECK_INT(sse_sniff("data: {}", 8), 1);
	CHECK_INT(sse_sniff("event: x\n", 9), 1);
	CHECK_INT(sse_sniff(": keep-alive\n", 13), 1);
	CHECK_INT(sse_sniff("\r\n\r\nid: 3\r\n", 11), 1);
	CHECK_INT(sse_sniff("retry: 10\n", 10), 1);
	CHECK_INT(sse_sniff("data\n\n", 6), 1);
	CHECK_INT(sse_sniff("\xef\xbb\xbf"
	                    "data:x",
	              9),
	    1);
	CHECK_INT(sse_sniff("{\"id\":1}", 8), 0);
	CHECK_INT(sse_sniff("[{\"a\":1}", 8), 0);
	CHECK_INT(sse_sniff("HTTP/1.1", 8), 0);
	CHECK_INT(sse_sniff("datum: 1\n", 9), 0);
	CHECK_INT(sse_sniff("foo: bar\n", 9), 0);
	CHECK_INT(sse_sniff("", 0), -1);
	CHECK_INT(sse_sniff("\n\n", 2), -1);
	CHECK_INT(sse_sniff("da", 2), -1);
	CHECK_INT(sse_sniff("\xef\xbb", 2), -1);
	CHECK_INT(sse_sniff("dx", 2), 0);
}

static const struct test tests[] = {
    TEST(test_sse_edge_cases),
    TEST(test_sse_anthropic_stream),
    TEST(test_sse_line_endings),
    TEST(test_sse_multiline_data),
    TEST(test_sse_cr_lf_across_chunks),
    TEST(test_sse_truncated),
    TEST(test_sse_limits),
    TEST(test_sse_consumer_stop),
    TEST(test_sse_bom),
    TEST(test_sse_sniff),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
