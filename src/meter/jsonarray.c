/*
 * jsonarray: incremental splitter for a streamed top-level JSON array (see
 * jsonarray.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/jsonarray.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

enum ja_state {
	JA_START,       /* before the opening '[' (or a lone '{') */
	JA_BEFORE_ELEM, /* after '[' or ',': an element must come */
	JA_FIRST_ELEM,  /* after '[': an element or ']' */
	JA_IN_ELEM,     /* inside an element */
	JA_AFTER_ELEM,  /* after an element: ',' or ']' */
	JA_DONE,        /* after the closing ']': white space only */
};

struct jsonarray {
	enum ja_state state;
	struct strbuf elem; /* the element being gathered */
	size_t max_element;
	size_t nelements;
	size_t depth; /* open brackets inside the element */
	int scalar;   /* the element is a bare number or literal */
	int in_string;
	int escape;
	int lone_object; /* the body is one object, not an array */
	size_t bom_pos;
	const char *error;
	jsonarray_element_cb cb;
	void *arg;
	/* One bit per open bracket: 1 for '{', 0 for '['. */
	unsigned char stack[JSONARRAY_MAX_DEPTH / 8];
};

static const unsigned char ja_bom[3] = {0xef, 0xbb, 0xbf};

struct jsonarray *
jsonarray_new(size_t max_element, jsonarray_element_cb cb, void *arg)
{
	struct jsonarray *ja;

	ja = xcalloc(1, sizeof(*ja));
	strbuf_init(&ja->elem);
	ja->max_element = max_element ? max_element : JSONARRAY_MAX_ELEMENT;
	ja->cb = cb;
	ja->arg = arg;
	return ja;
}

void
jsonarray_free(struct jsonarray *ja)
{
	if (ja == NULL)
		return;
	strbuf_free(&ja->elem);
	free(ja);
}

const char *
jsonarray_error(const struct jsonarray *ja)
{
	return ja->error;
}

size_t
jsonarray_elements(const struct jsonarray *ja)
{
	return ja->nelements;
}

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes a bare number or literal (true, false, null) is made of. */
static int
scalar_byte(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
}

static int
ja_fail(struct jsonarray *ja, const char *why)
{
	ja->error = why;
	return -1;
}

static int
ja_emit(struct jsonarray *ja)
{
	int rc;

	ja->nelements++;
	rc = ja->cb(ja->arg, ja->elem.data, ja->elem.len);
	strbuf_reset(&ja->elem);
	ja->state = ja->lone_object ? JA_DONE : JA_AFTER_ELEM;
	if (rc != 0)
		return ja_fail(ja, "stopped by consumer");
	return 0;
}

static int
ja_push(struct jsonarray *ja, int c)
{
	size_t bit = ja->depth;

	if (ja->depth == JSONARRAY_MAX_DEPTH)
		return ja_fail(ja, "nesting too deep");
	if (c == '{')
		ja->stack[bit / 8] |= (unsigned char)(1u << (bit % 8));
	else
		ja->stack[bit / 8] &= (unsigned char)~(1u << (bit % 8));
	ja->depth++;
	return 0;
}

static int
ja_pop(struct jsonarray *ja, int c)
{
	size_t bit;
	int brace;

	if (ja->depth == 0)
		return ja_fail(ja, "unbalanced brackets");
	bit = ja->depth - 1;
	brace = (ja->stack[bit / 8] >> (bit % 8)) & 1;
	if (brace != (c == '}'))
		return ja_fail(ja, "mismatched brackets");
	ja->depth--;
	return 0;
}

/* Starts an element at byte c. */
static int
ja_begin(struct jsonarray *ja, int c)
{
	ja->state = JA_IN_ELEM;
	ja->depth = 0;
	ja->in_string = 0;
	ja->escape = 0;
	ja->scalar = 0;
	if (c == '{' || c == '[') {
		if (ja_push(ja, c) == -1)
			return -1;
	} else if (c == '"')
		ja->in_string = 1;
	else if (scalar_byte(c))
		ja->scalar = 1;
	else
		return ja_fail(ja, "unexpected character");
	strbuf_addc(&ja->elem, (char)c);
	return 0;
}

/*
 * Takes one byte inside an element.  Returns 1 when the byte ends a bare
 * scalar and belongs to what follows, else 0, or -1.
 */
static int
ja_elem_byte(struct jsonarray *ja, int c)
{
	if (ja->scalar) {
		if (is_space(c) || c == ',' || c == ']') {
			if (ja_emit(ja) == -1)
				return -1;
			return 1;
		}
		if (!scalar_byte(c))
			return ja_fail(ja, "unexpected character");
	} else if (ja->in_string) {
		if (ja->escape)
			ja->escape = 0;
		else if (c == '\\')
			ja->escape = 1;
		else if (c == '"')
			ja->in_string = 0;
	} else if (c == '"')
		ja->in_string = 1;
	else if (c == '{' || c == '[') {
		if (ja_push(ja, c) == -1)
			return -1;
	} else if (c == '}' || c == ']') {
		if (ja_pop(ja, c) == -1)
			return -1;
	}
	if (ja->elem.len >= ja->max_element)
		return ja_fail(ja, "element too large");
	strbuf_addc(&ja->elem, (char)c);
	if (!ja->scalar && !ja->in_string && ja->depth == 0)
		return ja_emit(ja);
	return 0;
}

static int
ja_byte(struct jsonarray *ja, int c)
{
	int rc;

	switch (ja->state) {
	case JA_START:
		if (ja->bom_pos < sizeof(ja_bom) && c == ja_bom[ja->bom_pos]) {
			ja->bom_pos++;
			return 0;
		}
		if (ja->bom_pos > 0 && ja->bom_pos < sizeof(ja_bom))
			return ja_fail(ja, "not a JSON array");
		ja->bom_pos = sizeof(ja_bom);
		if (is_space(c))
			return 0;
		if (c == '[') {
			ja->state = JA_FIRST_ELEM;
			return 0;
		}
		if (c == '{') {
			ja->lone_object = 1;
			return ja_begin(ja, c);
		}
		return ja_fail(ja, "not a JSON array");
	case JA_FIRST_ELEM:
		if (c == ']') {
			ja->state = JA_DONE;
			return 0;
		}
		/* FALLTHROUGH */
	case JA_BEFORE_ELEM:
		if (is_space(c))
			return 0;
		return ja_begin(ja, c);
	case JA_IN_ELEM:
		if ((rc = ja_elem_byte(ja, c)) != 1)
			return rc;
		/* A bare scalar ended: the byte is a separator. */
		return ja_byte(ja, c);
	case JA_AFTER_ELEM:
		if (is_space(c))
			return 0;
		if (c == ',') {
			ja->state = JA_BEFORE_ELEM;
			return 0;
		}
		if (c == ']') {
			ja->state = JA_DONE;
			return 0;
		}
		return ja_fail(ja, "expected ',' or ']'");
	case JA_DONE:
		if (is_space(c))
			return 0;
		return ja_fail(ja, "data after end of array");
	}
	return 0;
}

int
jsonarray_feed(struct jsonarray *ja, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	if (ja->error != NULL)
		return -1;
	for (i = 0; i < len; i++)
		if (ja_byte(ja, p[i]) == -1)
			return -1;
	return 0;
}

int
jsonarray_finish(struct jsonarray *ja)
{
	if (ja->error != NULL)
		return -1;
	if (ja->state != JA_DONE)
		return ja_fail(ja, "truncated array");
	return 0;
}
