/*
 * libFuzzer target for jsonparse: json_parse() must accept exactly what
 * cJSON_ParseWithLength() accepts and build the same tree (types, keys,
 * strings, numbers bit for bit, valueint, the first child's prev).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/jsonparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
compare(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;

	if ((a == NULL) != (b == NULL))
		abort();
	if (a == NULL)
		return;
	if (a->type != b->type || a->valueint != b->valueint ||
	    memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) != 0 ||
	    !same_str(a->string, b->string) ||
	    !same_str(a->valuestring, b->valuestring))
		abort();
	for (x = a->child, y = b->child; x != NULL && y != NULL;
	     x = x->next, y = y->next) {
		compare(x, y);
		if ((x->next == NULL) != (y->next == NULL))
			abort();
	}
	if ((x == NULL) != (y == NULL))
		abort();
	if (a->child != NULL &&
	    (a->child->prev == NULL || b->child->prev == NULL ||
	        a->child->prev->next != NULL || b->child->prev->next != NULL))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* A copy of exactly len bytes: reading past it is an ASan error. */
	char *copy = malloc(len > 0 ? len : 1);
	cJSON *a, *b;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, len);
	a = cJSON_ParseWithLength(copy, len);
	b = json_parse(copy, len, malloc);
	compare(a, b);
	cJSON_Delete(a);
	cJSON_Delete(b);
	free(copy);
	return 0;
}
