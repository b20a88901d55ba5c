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

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
element_cb(void *arg, const char *data, size_t len)
{
	struct fuzz_run *r = arg;

	if (len == 0 || len > 1024 || data[len] != '\0')
		abort();
	if (memchr(" \t\r\n", data[0], 4) != NULL)
		abort();
	fuzz_run_add(r, data, len);
	fuzz_run_add(r, "\0", 1);
	r->count++;
	return 0;
}

static int
feed_cb(void *parser, const void *p, size_t len)
{
	return jsonarray_feed(parser, p, len);
}

static int
split_array(const uint8_t *p, size_t len, size_t split, struct fuzz_run *r)
{
	struct jsonarray *ja = jsonarray_new(1024, element_cb, r);
	int rc;

	fuzz_run_init(r);
	rc = fuzz_feed_split(feed_cb, ja, p, len, split);
	if (rc == 0)
		rc = jsonarray_finish(ja);
	if ((rc == -1) != (jsonarray_error(ja) != NULL))
		abort();
	if (jsonarray_elements(ja) != r->count)
		abort();
	jsonarray_free(ja);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, parts;
	size_t split;
	int a, b;

	if (size < 2)
		return 0;
	split = fuzz_split(data, size - 2);
	data += 2;
	size -= 2;
	a = split_array(data, size, 0, &whole);
	b = split_array(data, size, split, &parts);
	fuzz_check_same(a, b, &whole, &parts);
	return 0;
}
