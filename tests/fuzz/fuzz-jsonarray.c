/*
 * libFuzzer target for the JSON-array splitter.  The first two bytes pick
 * a split point; the rest is split whole and in two pieces, with a small
 * element limit.  Invariant: both runs give the same elements (by hash)
 * and the same result; each element is NUL-terminated, non-empty and
 * starts with no white space.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/jsonarray.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct run {
	uint64_t hash;
	size_t elements;
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
element_cb(void *arg, const char *data, size_t len)
{
	struct run *r = arg;

	if (len == 0 || len > 1024 || data[len] != '\0')
		abort();
	if (memchr(" \t\r\n", data[0], 4) != NULL)
		abort();
	r->hash = fnv(r->hash, data, len);
	r->hash = fnv(r->hash, "\0", 1);
	r->elements++;
	return 0;
}

static int
split_array(const uint8_t *p, size_t len, size_t split, struct run *r)
{
	struct jsonarray *ja = jsonarray_new(1024, element_cb, r);
	int rc;

	r->hash = 0xcbf29ce484222325ULL;
	r->elements = 0;
	if (split > 0 && split < len) {
		rc = jsonarray_feed(ja, p, split);
		if (rc == 0)
			rc = jsonarray_feed(ja, p + split, len - split);
	} else
		rc = jsonarray_feed(ja, p, len);
	if (rc == 0)
		rc = jsonarray_finish(ja);
	if ((rc == -1) != (jsonarray_error(ja) != NULL))
		abort();
	if (jsonarray_elements(ja) != r->elements)
		abort();
	jsonarray_free(ja);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, parts;
	size_t split;
	int a, b;

	if (size < 2)
		return 0;
	split = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	a = split_array(data, size, 0, &whole);
	b = split_array(data, size, split % (size + 1), &parts);
	if (a != b || whole.elements != parts.elements ||
	    whole.hash != parts.hash)
		abort();
	return 0;
}
