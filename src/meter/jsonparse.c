/*
 * jsonparse: cJSON-compatible trees, parsed faster (see jsonparse.h).
 *
 * The grammar and its quirks follow cJSON 1.7's parser step by step (its
 * white space, its end-of-buffer handling, its number and escape rules);
 * only the work per byte differs: integers are read directly, strings
 * without a backslash are copied in one piece.
 */
#include <limits.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/jsonparse.h"

#define NESTING_LIMIT 1000 /* cJSON's CJSON_NESTING_LIMIT */
#define FAST_DIGITS   15   /* an integer this long is exact in a double */

struct jp {
	const unsigned char *s;
	size_t len, off;
	int depth;
	void *(*alloc)(size_t);
};

static int parse_value(struct jp *, cJSON *);

static cJSON *
new_item(struct jp *p)
{
	cJSON *c = p->alloc(sizeof(*c));

	if (c != NULL)
		memset(c, 0, sizeof(*c));
	return c;
}

/* cJSON's buffer_skip_whitespace: every byte <= 32 is white space, and
 * running into the end steps back onto the last byte. */
static void
skip_ws(struct jp *p)
{
	if (p->off >= p->len)
		return;
	while (p->off < p->len && p->s[p->off] <= 32)
		p->off++;
	if (p->off == p->len)
		p->off--;
}

static unsigned
hex4(const unsigned char *h)
{
	unsigned v = 0, d;
	int i;

	for (i = 0; i < 4; i++) {
		if (h[i] >= '0' && h[i] <= '9')
			d = (unsigned)(h[i] - '0');
		else if (h[i] >= 'A' && h[i] <= 'F')
			d = 10u + (unsigned)(h[i] - 'A');
		else if (h[i] >= 'a' && h[i] <= 'f')
			d = 10u + (unsigned)(h[i] - 'a');
		else
			return 0; /* as cJSON: an invalid digit reads as U+0000
			           */
		v = v << 4 | d;
	}
	return v;
}

/* A \u escape at in (before end, the closing quote) as UTF-8 at *out.
 * Returns the escape's length (6 or 12), 0 if invalid. */
static size_t
utf16_escape(
    const unsigned char *in, const unsigned char *end, unsigned char **out)
{
	unsigned long cp;
	unsigned first, second, mark = 0;
	size_t seq, n, i;

	if (end - in < 6)
		return 0;
	first = hex4(in + 2);
	if (first >= 0xDC00 && first <= 0xDFFF)
		return 0;
	if (first >= 0xD800 && first <= 0xDBFF) {
		if (end - (in + 6) < 6 || in[6] != '\\' || in[7] != 'u')
			return 0;
		second = hex4(in + 8);
		if (second < 0xDC00 || second > 0xDFFF)
			return 0;
		cp = 0x10000 +
		    (((unsigned long)(first & 0x3FF) << 10) | (second & 0x3FF));
		seq = 12;
	} else {
		cp = first;
		seq = 6;
	}
	if (cp < 0x80)
		n = 1;
	else if (cp < 0x800) {
		n = 2;
		mark = 0xC0;
	} else if (cp < 0x10000) {
		n = 3;
		mark = 0xE0;
	} else {
		n = 4; /* at most 0x10FFFF from a surrogate pair */
		mark = 0xF0;
	}
	for (i = n - 1; i > 0; i--) {
		(*out)[i] = (unsigned char)((cp | 0x80) & 0xBF);
		cp >>= 6;
	}
	(*out)[0] = (unsigned char)(n > 1 ? (cp | mark) & 0xFF : cp & 0x7F);
	*out += n;
	return seq;
}

/* One escape sequence at in (a backslash; end is the closing quote),
 * decoded at *out.  Returns its length, 0 if it is invalid. */
static size_t
escape(const unsigned char *in, const unsigned char *end, unsigned char **out)
{
	static const char from[] = "bfnrt\"\\/", to[] = "\b\f\n\r\t\"\\/";
	const char *c;

	if (in[1] == 'u')
		return utf16_escape(in, end, out);
	if (in[1] == '\0' || (c = strchr(from, in[1])) == NULL)
		return 0;
	*(*out)++ = (unsigned char)to[c - from];
	return 2;
}

static int
parse_string(struct jp *p, cJSON *item)
{
	const unsigned char *s = p->s;
	size_t start = p->off + 1, e = start, skipped = 0, i, k;
	unsigned char *out, *o;

	if (p->off >= p->len || s[p->off] != '"')
		return 0;
	/* The closing quote: memchr to the next quote or backslash. */
	for (;;) {
		while (e < p->len && s[e] != '"' && s[e] != '\\')
			e++;
		if (e >= p->len || s[e] == '"')
			break;
		if (e + 1 >= p->len)
			return 0; /* a backslash last */
		skipped++;
		e += 2;
	}
	if (e >= p->len)
		return 0;
	if ((out = p->alloc(e - start - skipped + 1)) == NULL)
		return 0;
	if (skipped == 0) {
		memcpy(out, s + start, e - start);
		out[e - start] = '\0';
	} else {
		o = out;
		for (i = start; i < e;) {
			if (s[i] != '\\') {
				*o++ = s[i++];
				continue;
			}
			if ((k = escape(s + i, s + e, &o)) == 0) {
				cJSON_free(out);
				return 0;
			}
			i += k;
		}
		*o = '\0';
	}
	item->type = cJSON_String;
	item->valuestring = (char *)out;
	p->off = e + 1;
	return 1;
}

static int
number_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' ||
	    c == 'E' || c == '.';
}

static void
set_number(cJSON *item, double v)
{
	item->valuedouble = v;
	if (v >= INT_MAX)
		item->valueint = INT_MAX;
	else if (v <= (double)INT_MIN)
		item->valueint = INT_MIN;
	else
		item->valueint = (int)v;
	item->type = cJSON_Number;
}

static int
parse_number(struct jp *p, cJSON *item)
{
	const unsigned char *s = p->s + p->off;
	size_t left = p->len - p->off, i = 0, nd, n;
	char buf[64], *copy, *end;
	uint64_t u = 0;
	double v;
	int neg = 0;

	/* An integer of up to 15 digits that no other number byte follows:
	 * what strtod() would return, without it. */
	if (i < left && s[i] == '-') {
		neg = 1;
		i++;
	}
	for (nd = 0;
	     i < left && s[i] >= '0' && s[i] <= '9' && nd <= FAST_DIGITS;
	     i++, nd++)
		u = u * 10 + (uint64_t)(s[i] - '0');
	if (nd >= 1 && nd <= FAST_DIGITS && (i == left || !number_char(s[i]))) {
		v = (double)u;
		set_number(item, neg ? -v : v);
		p->off += i;
		return 1;
	}
	/* cJSON's way: strtod() on a copy of all the number bytes, '.' as
	 * the locale's decimal point. */
	for (n = 0; n < left && number_char(s[n]); n++)
		;
	if ((copy = n < sizeof(buf) ? buf : malloc(n + 1)) == NULL)
		return 0;
	for (i = 0; i < n; i++)
		copy[i] =
		    s[i] == '.' ? localeconv()->decimal_point[0] : (char)s[i];
	copy[n] = '\0';
	v = strtod(copy, &end);
	i = (size_t)(end - copy);
	if (copy != buf)
		free(copy);
	if (i == 0)
		return 0;
	set_number(item, v);
	p->off += i;
	return 1;
}

/* Arrays and objects: the same loop, with a key before each object
 * member. */
static int
parse_list(struct jp *p, cJSON *item, int object)
{
	cJSON *head = NULL, *cur = NULL, *n;
	unsigned char close = object ? '}' : ']';

	if (p->depth >= NESTING_LIMIT)
		return 0;
	p->depth++;
	p->off++; /* the caller saw '[' or '{' */
	skip_ws(p);
	if (p->off < p->len && p->s[p->off] == close)
		goto done;
	if (p->off >= p->len)
		return 0;
	p->off--;
	do {
		if ((n = new_item(p)) == NULL)
			goto fail;
		if (head == NULL)
			head = cur = n;
		else {
			cur->next = n;
			n->prev = cur;
			cur = n;
		}
		if (object) {
			if (p->off + 1 >= p->len)
				goto fail; /* nothing after the comma */
			p->off++;
			skip_ws(p);
			if (!parse_string(p, cur))
				goto fail;
			skip_ws(p);
			cur->string = cur->valuestring;
			cur->valuestring = NULL;
			if (p->off >= p->len || p->s[p->off] != ':')
				goto fail;
		}
		p->off++;
		skip_ws(p);
		if (!parse_value(p, cur))
			goto fail;
		skip_ws(p);
	} while (p->off < p->len && p->s[p->off] == ',');
	if (p->off >= p->len || p->s[p->off] != close)
		goto fail;
done:
	p->depth--;
	if (head != NULL)
		head->prev = cur;
	item->type = object ? cJSON_Object : cJSON_Array;
	item->child = head;
	p->off++;
	return 1;
fail:
	cJSON_Delete(head);
	return 0;
}

static int
parse_value(struct jp *p, cJSON *item)
{
	const unsigned char *s = p->s + p->off;
	size_t left = p->len - p->off;

	if (left >= 4 && memcmp(s, "null", 4) == 0) {
		item->type = cJSON_NULL;
		p->off += 4;
		return 1;
	}
	if (left >= 5 && memcmp(s, "false", 5) == 0) {
		item->type = cJSON_False;
		p->off += 5;
		return 1;
	}
	if (left >= 4 && memcmp(s, "true", 4) == 0) {
		item->type = cJSON_True;
		item->valueint = 1;
		p->off += 4;
		return 1;
	}
	if (left == 0)
		return 0;
	if (s[0] == '"')
		return parse_string(p, item);
	if (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
		return parse_number(p, item);
	if (s[0] == '[' || s[0] == '{')
		return parse_list(p, item, s[0] == '{');
	return 0;
}

cJSON *
json_parse(const char *data, size_t len, void *(*alloc)(size_t))
{
	struct jp p;
	cJSON *item;

	if (data == NULL || len == 0)
		return NULL;
	p.s = (const unsigned char *)data;
	p.len = len;
	p.off = 0;
	p.depth = 0;
	p.alloc = alloc;
	if (len > 4 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		p.off = 3;
	if ((item = new_item(&p)) == NULL)
		return NULL;
	skip_ws(&p);
	if (!parse_value(&p, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}
