/*
 * Unit tests of the JSON-array stream splitter (Gemini
 * :streamGenerateContent without alt=sse): the fixture is fed whole, split
 * in two at every offset and byte by byte; elements come out exactly, with
 * strings, escapes and nesting respected; malformed and truncated arrays
 * fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "harness.h"
#include "halton/jsonarray.h"

#define FIXTURES  "tests/fixtures/wire/"
#define MAX_ELEMS 32

struct elems {
	size_t n;
	char *data[MAX_ELEMS];
	size_t len[MAX_ELEMS];
};

static int
collect_cb(void *arg, const char *data, size_t len)
{
	struct elems *e = arg;

	if (data[len] != '\0')
		harness_fail(__FILE__, __LINE__, "element not NUL-terminated");
	if (e->n < MAX_ELEMS) {
		e->data[e->n] = strndup(data, len);
		e->len[e->n] = len;
	}
	e->n++;
	return 0;
}

static void
elems_free(struct elems *e)
{
	size_t i;

	for (i = 0; i < e->n && i < MAX_ELEMS; i++)
		free(e->data[i]);
	memset(e, 0, sizeof(*e));
}

static int
feed_exact(struct jsonarray *ja, const char *p, size_t n)
{
	char *copy = malloc(n ? n : 1);
	int rc;

	memcpy(copy, p, n);
	rc = jsonarray_feed(ja, copy, n);
	free(copy);
	return rc;
}

/* Splits data whole / in two at split / byte by byte. */
static int
run(const char *data, size_t len, size_t split, int bytewise, size_t max,
    struct elems *e, const char **err)
{
	struct jsonarray *ja = jsonarray_new(max, collect_cb, e);
	size_t i;
	int rc = 0;

	if (bytewise) {
		for (i = 0; i < len && rc == 0; i++)
			rc = feed_exact(ja, data + i, 1);
	} else if (split > 0) {
		rc = feed_exact(ja, data, split);
		if (rc == 0)
			rc = feed_exact(ja, data + split, len - split);
	} else
		rc = feed_exact(ja, data, len);
	if (rc == 0)
		rc = jsonarray_finish(ja);
	if (jsonarray_elements(ja) != e->n)
		harness_fail(__FILE__, __LINE__, "element count mismatch");
	*err = jsonarray_error(ja);
	jsonarray_free(ja);
	return rc;
}

/* Every feeding of data gives exactly want[0..n). */
static void
check_all_splits(const char *data, const char *const *want, size_t n)
{
	size_t len = strlen(data), split, i;
	struct elems e = {0};
	const char *err;
	int rc, bytewise;

	for (bytewise = 0; bytewise < 2; bytewise++) {
		for (split = 0; split < (bytewise ? 1 : len); split++) {
			rc = run(data, len, split, bytewise, 0, &e, &err);
			int bad = rc != 0 || e.n != n;
			for (i = 0; !bad && i < n; i++)
				bad = strcmp(e.data[i], want[i]) != 0;
			if (bad) {
				harness_fail(__FILE__, __LINE__,
				    "split %zu bytewise %d: rc %d (%s), %zu "
				    "elements",
				    split, bytewise, rc, err ? err : "-", e.n);
				elems_free(&e);
				return;
			}
			elems_free(&e);
		}
	}
}

static void
test_jsonarray_gemini_fixture(void)
{
	size_t len;
	char *data =
	    harness_read_file(FIXTURES "gemini_stream_array.json", &len);
	const char *sep, *end;
	char *want[2];
	struct elems e = {0};
	const char *err;
	cJSON *j, *usage;
	size_t i;

	if (data == NULL) {
		harness_fail(__FILE__, __LINE__, "no fixture");
		return;
	}
	/* The elements, found by where the fixture's separators are. */
	sep = strstr(data, "}\r\n,\r\n{");
	end = strstr(data, "}\n]");
	CHECK(sep != NULL && end != NULL);
	if (sep == NULL || end == NULL)
		return;
	want[0] = strndup(data + 1, (size_t)(sep + 1 - (data + 1)));
	want[1] = strndup(sep + 6, (size_t)(end + 1 - (sep + 6)));
	check_all_splits(data, (const char *const *)want, 2);

	/* Each element is JSON a provider can parse, brackets in strings
	 * and escapes intact. */
	CHECK_INT(run(data, len, 0, 0, 0, &e, &err), 0);
	CHECK_INT(e.n, 2);
	for (i = 0; i < e.n && i < 2; i++) {
		j = cJSON_ParseWithLength(e.data[i], e.len[i]);
		CHECK(j != NULL);
		usage = cJSON_GetObjectItem(j, "usageMetadata");
		CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(
		              usage, "candidatesTokenCount")),
		    i == 0 ? 9 : 15);
		if (i == 0)
			CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(
			              cJSON_GetArrayItem(
			                  cJSON_GetObjectItem(
			                      cJSON_GetObjectItem(
			                          cJSON_GetArrayItem(
			                              cJSON_GetObjectItem(
			                                  j, "candidates"),
			                              0),
			                          "content"),
			                      "parts"),
			                  0),
			              "text")),
			    "Brackets ] } [ { and a quote \" and a "
			    "backslash \\");
		cJSON_Delete(j);
	}
	elems_free(&e);
	free(want[0]);
	free(want[1]);
	free(data);
}

static void
test_jsonarray_scalars(void)
{
	static const char *want[] = {"1", "\"a,]\\\"\"", "true", "null",
	    "{\"x\":[1,{}]}", "[ ]", "-2.5e3"};

	check_all_splits("[1, \"a,]\\\"\" ,true\n,null,{\"x\":[1,{}]}, [ ] ,"
	                 "-2.5e3]",
	    want, 7);
}

static void
test_jsonarray_empty_and_lone_object(void)
{
	static const char *obj[] = {
	    "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\"}}"};

	check_all_splits("[]", NULL, 0);
	check_all_splits(" \r\n[ \n ] \n", NULL, 0);
	check_all_splits(
	    "\xef\xbb\xbf[\"x\"]", (const char *const[]){"\"x\""}, 1);
	/* An error reply instead of the array: one element. */
	check_all_splits("\n{\"error\":{\"code\":429,\"status\":"
	                 "\"RESOURCE_EXHAUSTED\"}}\n",
	    obj, 1);
}

static void
test_jsonarray_errors(void)
{
	static const struct {
		const char *in, *err;
		size_t elements;
	} v[] = {
	    {"[1 2]", "expected ',' or ']'", 1},
	    {"[{]", "mismatched brackets", 0},
	    {"[{\"a\":[}]", "mismatched brackets", 0},
	    {"x", "not a JSON array", 0},
	    {"\"str\"", "not a JSON array", 0},
	    {"[1,]", "unexpected character", 1},
	    {"[,1]", "unexpected character", 0},
	    {"[{}] {}", "data after end of array", 1},
	    {"[{}", "truncated array", 1},
	    {"[{\"a\":\"}", "truncated array", 0},
	    {"[{}, {\"a\"", "truncated array", 1},
	    {"", "truncated array", 0},
	    {"{\"a\":1} {}", "data after end of array", 1},
	    {"[tru\"e]", "unexpected character", 0},
	    {"[nu\x01ll]", "unexpected character", 0},
	    {"[\x02]", "unexpected character", 0},
	    {"[1,\x7f]", "unexpected character", 1},
	};
	struct elems e = {0};
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK_INT(run(v[i].in, strlen(v[i].in), 0, 0, 0, &e, &err), -1);
		CHECK_STR(err, v[i].err);
		CHECK_INT(e.n, v[i].elements);
		elems_free(&e);
	}
}

static void
test_jsonarray_limits(void)
{
	struct elems e = {0};
	const char *err;
	char deep[1200];
	size_t i;

	/* 16 bytes fit, 17 do not. */
	CHECK_INT(run("[\"0123456789abcd\"]", 18, 0, 0, 16, &e, &err), 0);
	CHECK_INT(e.n, 1);
	elems_free(&e);
	CHECK_INT(run("[\"0123456789abcde\"]", 19, 0, 0, 16, &e, &err), -1);
	CHECK_STR(err, "element too large");
	CHECK_INT(e.n, 0);
	/* Nesting: JSONARRAY_MAX_DEPTH levels inside the element are fine,
	 * one more is not. */
	deep[0] = '[';
	for (i = 1; i <= JSONARRAY_MAX_DEPTH; i++)
		deep[i] = '[';
	for (; i <= 2 * JSONARRAY_MAX_DEPTH; i++)
		deep[i] = ']';
	deep[i++] = ']';
	CHECK_INT(run(deep, i, 0, 0, 0, &e, &err), 0);
	CHECK_INT(e.n, 1);
	elems_free(&e);
	memset(deep, '[', JSONARRAY_MAX_DEPTH + 2);
	CHECK_INT(run(deep, JSONARRAY_MAX_DEPTH + 2, 0, 0, 0, &e, &err), -1);
	CHECK_STR(err, "nesting too deep");
}

static int
stop_cb(void *arg, const char *data, size_t len)
{
	return -1;
}

static void
test_jsonarray_consumer_stop(void)
{
	struct jsonarray *ja = jsonarray_new(0, stop_cb, NULL);

	CHECK_INT(jsonarray_feed(ja, "[1,2]", 5), -1);
	CHECK_STR(jsonarray_error(ja), "stopped by consumer");
	CHECK_INT(jsonarray_elements(ja), 1);
	CHECK_INT(jsonarray_finish(ja), -1);
	jsonarray_free(ja);
}

static const struct test tests[] = {
    TEST(test_jsonarray_gemini_fixture),
    TEST(test_jsonarray_scalars),
    TEST(test_jsonarray_empty_and_lone_object),
    TEST(test_jsonarray_errors),
    TEST(test_jsonarray_limits),
    TEST(test_jsonarray_consumer_stop),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
