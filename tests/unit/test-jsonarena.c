/*
 * Unit tests of jsonarena: parses land in the arena and give it back on
 * release, everything else cJSON allocates is malloc memory that outlives
 * the arena, and a parse too big for the arena still completes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "halton/jsonarena.h"

static void
test_parse_and_release(void)
{
	size_t m0 = jsonarena_mark(), m1;
	const char doc[] = "{\"usage\":{\"input_tokens\":25,\"output_tokens\":"
	                   "7},\"model\":\"claude-sonnet-4-5\"}";
	cJSON *j, *u;

	j = jsonarena_parse(doc, strlen(doc));
	CHECK(j != NULL);
	m1 = jsonarena_mark();
	CHECK(m1 > m0); /* the nodes are in the arena */
	u = cJSON_GetObjectItemCaseSensitive(j, "usage");
	CHECK_INT(
	    cJSON_GetObjectItemCaseSensitive(u, "input_tokens")->valuedouble,
	    25);
	CHECK_INT(
	    cJSON_GetObjectItemCaseSensitive(u, "output_tokens")->valuedouble,
	    7);
	CHECK_STR(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring,
	    "claude-sonnet-4-5");
	cJSON_Delete(j);
	CHECK_INT(jsonarena_mark(), m1); /* delete alone gives nothing back */
	jsonarena_release(m0);
	CHECK_INT(jsonarena_mark(), m0);

	/* Invalid JSON: NULL, and release restores the mark. */
	j = jsonarena_parse("{\"a\":[1,2", 9);
	CHECK(j == NULL);
	jsonarena_release(m0);
	CHECK_INT(jsonarena_mark(), m0);
}

static void
test_copies_outlive_the_arena(void)
{
	size_t m0 = jsonarena_mark(), m1;
	const char a[] = "{\"input_tokens\":1800,\"tier\":\"standard\"}";
	const char b[] = "{\"xxxxxxxxxxxx\":99999,\"yyyy\":\"overwritten\"}";
	cJSON *j, *dup, *obj, *k;
	char *printed;

	j = jsonarena_parse(a, strlen(a));
	CHECK(j != NULL);
	m1 = jsonarena_mark();
	dup = cJSON_Duplicate(j, 1); /* malloc, though arena nodes live */
	obj = cJSON_CreateObject();
	cJSON_AddNumberToObject(obj, "n", 3);
	CHECK_INT(jsonarena_mark(), m1);
	cJSON_Delete(j);
	jsonarena_release(m0);

	/* The next parse reuses the same arena bytes. */
	k = jsonarena_parse(b, strlen(b));
	CHECK(k != NULL);
	printed = cJSON_PrintUnformatted(dup);
	CHECK_STR(printed, "{\"input_tokens\":1800,\"tier\":\"standard\"}");
	free(printed);
	printed = cJSON_PrintUnformatted(obj);
	CHECK_STR(printed, "{\"n\":3}");
	free(printed);
	cJSON_Delete(k);
	jsonarena_release(m0);
	cJSON_Delete(dup);
	cJSON_Delete(obj);
}

static void
test_nested_marks(void)
{
	size_t m0 = jsonarena_mark(), m1;
	cJSON *a, *b, *c;

	/* request_members: several parses alive at once, released together;
	 * an inner release keeps the outer nodes. */
	a = jsonarena_parse("\"claude-opus-4-1\"", 17);
	m1 = jsonarena_mark();
	b = jsonarena_parse("true", 4);
	CHECK(a != NULL && b != NULL);
	cJSON_Delete(b);
	jsonarena_release(m1);
	c = jsonarena_parse("\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"", 34);
	CHECK(c != NULL);
	CHECK_STR(a->valuestring, "claude-opus-4-1");
	cJSON_Delete(c);
	cJSON_Delete(a);
	jsonarena_release(m0);
	CHECK_INT(jsonarena_mark(), m0);
}

static void
test_bigger_than_the_arena(void)
{
	size_t m0 = jsonarena_mark(), i, n = 3000, len = 0;
	char *doc = malloc(n * 8 + 8);
	cJSON *j, *e;
	double sum = 0;

	/* 3000 numbers: ~190 KB of nodes, far more than the arena holds. */
	doc[len++] = '[';
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(doc + len, "%s%zu", i ? "," : "", i);
	doc[len++] = ']';
	j = jsonarena_parse(doc, len);
	CHECK(j != NULL);
	CHECK_INT(cJSON_GetArraySize(j), n);
	cJSON_ArrayForEach(e, j) sum += e->valuedouble;
	CHECK_INT((long long)sum, (long long)(n * (n - 1) / 2));
	CHECK(jsonarena_mark() - m0 <= 16384);
	cJSON_Delete(j); /* frees the malloc'd rest (ASan: no leak) */
	jsonarena_release(m0);
	free(doc);
}

static const struct test tests[] = {
    TEST(test_parse_and_release),
    TEST(test_copies_outlive_the_arena),
    TEST(test_nested_marks),
    TEST(test_bigger_than_the_arena),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
