/*
 * Unit tests of jsonparse: json_parse() gives the values an event needs
 * (integers exact, escapes decoded) and accepts and builds exactly what
 * cJSON_ParseWithLength() does, quirks included.  The fuzz target
 * fuzz-jsonparse compares the two on random inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/jsonparse.h"

static cJSON *
parse(const char *s)
{
	return json_parse(s, strlen(s), malloc);
}

/* Same acceptance and the same printed tree as cJSON. */
static void
check_like_cjson(const char *s, size_t len)
{
	cJSON *a = cJSON_ParseWithLength(s, len);
	cJSON *b = json_parse(s, len, malloc);
	char *pa, *pb;

	if (a == NULL || b == NULL) {
		if ((a == NULL) != (b == NULL))
			harness_fail(__FILE__, __LINE__,
			    "%.*s: cJSON %s, ours %s", (int)len, s,
			    a ? "accepts" : "refuses",
			    b ? "accepts" : "refuses");
		cJSON_Delete(a);
		cJSON_Delete(b);
		return;
	}
	pa = cJSON_PrintUnformatted(a);
	pb = cJSON_PrintUnformatted(b);
	if (strcmp(pa, pb) != 0)
		harness_fail(__FILE__, __LINE__, "%.*s: cJSON %s, ours %s",
		    (int)len, s, pa, pb);
	if (a->type != b->type || a->valueint != b->valueint)
		harness_fail(__FILE__, __LINE__, "%.*s: type/valueint differ",
		    (int)len, s);
	cJSON_free(pa);
	cJSON_free(pb);
	cJSON_Delete(a);
	cJSON_Delete(b);
}

static void
test_event(void)
{
	const char doc[] =
	    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\","
	    "\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":"
	    "null,\"usage\":{\"input_tokens\":1234,\"cache_read_input_tokens\":"
	    "512,\"output_tokens\":1,\"big\":999999999999999}}}";
	cJSON *j = parse(doc), *m, *u, *c;

	CHECK(j != NULL && cJSON_IsObject(j));
	m = cJSON_GetObjectItemCaseSensitive(j, "message");
	u = cJSON_GetObjectItemCaseSensitive(m, "usage");
	CHECK_STR(cJSON_GetObjectItemCaseSensitive(m, "model")->valuestring,
	    "claude-sonnet-4-5");
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "stop_reason")));
	c = cJSON_GetObjectItemCaseSensitive(m, "content");
	CHECK(cJSON_IsArray(c) && c->child == NULL);
	CHECK(
	    cJSON_GetObjectItemCaseSensitive(u, "input_tokens")->valuedouble ==
	    1234.0);
	CHECK_INT(cJSON_GetObjectItemCaseSensitive(u, "input_tokens")->valueint,
	    1234);
	/* 15 digits: exact; valueint saturates like cJSON's. */
	CHECK(cJSON_GetObjectItemCaseSensitive(u, "big")->valuedouble ==
	    999999999999999.0);
	CHECK_INT(
	    cJSON_GetObjectItemCaseSensitive(u, "big")->valueint, 2147483647);
	/* The first child's prev is the last (cJSON appends through it). */
	CHECK(u->child->prev != NULL && u->child->prev->next == NULL);
	CHECK_STR(u->child->prev->string, "big");
	cJSON_AddNumberToObject(u, "added", 5);
	CHECK_STR(u->child->prev->string, "added");
	check_like_cjson(doc, strlen(doc));
	cJSON_Delete(j);
}

static void
test_strings(void)
{
	const char doc[] = "{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t"
	                   "\\u00e9\\u20ac\\ud83d\\ude00\"}";
	cJSON *j = parse(doc);

	CHECK(j != NULL);
	CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "s")->valuestring,
	    "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	cJSON_Delete(j);
	/* Refused by cJSON, so refused here. */
	CHECK(parse("\"\\x\"") == NULL);      /* unknown escape */
	CHECK(parse("\"\\udc00\"") == NULL);  /* lone low surrogate */
	CHECK(parse("\"\\ud83dx\"") == NULL); /* high without its low */
	CHECK(parse("\"abc") == NULL);        /* unterminated */
	CHECK(json_parse("\"a\\", 3, malloc) == NULL); /* backslash last */
	check_like_cjson(doc, strlen(doc));
	check_like_cjson("\"\\u12zz\"", 8); /* bad hex: U+0000, as cJSON */
	check_like_cjson("\"\\u00\"", 6);
}

static void
test_numbers(void)
{
	static const char *const nums[] = {"0", "-0", "007", "-12", "1.5",
	    "1e3", "1E+3", "-2.5e-3", "123456789012345", "1234567890123456",
	    "12345678901234567890123", "2147483647", "2147483648",
	    "-2147483648", "-2147483649", "1e400", "-1e400", "1.", "1-2", "-",
	    "--1", "0x1F", "1ee", ".5", "5.5.5"};
	size_t i;
	cJSON *j;
	char arr[64];

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		check_like_cjson(nums[i], strlen(nums[i]));
		snprintf(arr, sizeof(arr), "[%s]", nums[i]);
		check_like_cjson(arr, strlen(arr));
	}
	j = parse("-0");
	CHECK(j != NULL && j->valuedouble == 0 && signbit(j->valuedouble));
	cJSON_Delete(j);
	/* A number longer than 63 bytes is read whole (patched cJSON). */
	memset(arr, '5', 63);
	arr[63] = '\0';
	check_like_cjson(arr, 63);
	j = json_parse(
	    "55555555555555555555555555555555555555555555555555555555"
	    "5555555555555555555555555",
	    81, malloc);
	CHECK(j != NULL && j->valuedouble > 5e80);
	cJSON_Delete(j);
}

static void
test_grammar_quirks(void)
{
	static const char *const docs[] = {"", " ", "null", "nul", "true",
	    "false", "tru", "[]", "[ ]", "[", "]", "{}", "{ }", "{", "[1,]",
	    "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}", "[1 2]",
	    "{\"a\":1} trailing", "[1] ]", "  \t\r\n[1]", "\x01[1]", "[1\x01]",
	    "\xEF\xBB\xBF[1]", "\xEF\xBB\xBF[]", "\xEF\xBB\xBF", "{\"a\":1 ",
	    "[\"a\" ,\"b\"]", "{\"a\" : [ {}, [] , \"x\" ] }", "[nulll]",
	    "{\"dup\":1,\"dup\":2}", "[true,false,null]", "'a'", "+1"};
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		check_like_cjson(docs[i], strlen(docs[i]));
	check_like_cjson("[1]\0junk", 8);
	check_like_cjson("\"a\0b\"", 5);
}

static void
test_nesting_limit(void)
{
	char *s = malloc(2 * 1001 + 1);
	int depth;
	cJSON *j;

	/* 1000 levels are accepted, 1001 refused: cJSON's limit. */
	for (depth = 1000; depth <= 1001; depth++) {
		memset(s, '[', (size_t)depth);
		memset(s + depth, ']', (size_t)depth);
		s[2 * depth] = '\0';
		j = parse(s);
		CHECK((j != NULL) == (depth == 1000));
		check_like_cjson(s, strlen(s));
		cJSON_Delete(j);
	}
	free(s);
}

static const struct test tests[] = {
    TEST(test_event),
    TEST(test_strings),
    TEST(test_numbers),
    TEST(test_grammar_quirks),
    TEST(test_nesting_limit),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
