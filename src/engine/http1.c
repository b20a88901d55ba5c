/*
 * http1: HTTP/1.1 head parsing, message framing and chunked decoding
 * (RFC 9110, RFC 9112).  Nothing here allocates or logs.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "halton/http1.h"

/* tchar (RFC 9110 5.6.2): the bytes allowed in a method and a field name. */
static const unsigned char tchar_map[256] = {
    ['!'] = 1,
    ['#'] = 1,
    ['$'] = 1,
    ['%'] = 1,
    ['&'] = 1,
    ['\''] = 1,
    ['*'] = 1,
    ['+'] = 1,
    ['-'] = 1,
    ['.'] = 1,
    ['^'] = 1,
    ['_'] = 1,
    ['`'] = 1,
    ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1,
    ['1'] = 1,
    ['2'] = 1,
    ['3'] = 1,
    ['4'] = 1,
    ['5'] = 1,
    ['6'] = 1,
    ['7'] = 1,
    ['8'] = 1,
    ['9'] = 1,
    ['A'] = 1,
    ['B'] = 1,
    ['C'] = 1,
    ['D'] = 1,
    ['E'] = 1,
    ['F'] = 1,
    ['G'] = 1,
    ['H'] = 1,
    ['I'] = 1,
    ['J'] = 1,
    ['K'] = 1,
    ['L'] = 1,
    ['M'] = 1,
    ['N'] = 1,
    ['O'] = 1,
    ['P'] = 1,
    ['Q'] = 1,
    ['R'] = 1,
    ['S'] = 1,
    ['T'] = 1,
    ['U'] = 1,
    ['V'] = 1,
    ['W'] = 1,
    ['X'] = 1,
    ['Y'] = 1,
    ['Z'] = 1,
    ['a'] = 1,
    ['b'] = 1,
    ['c'] = 1,
    ['d'] = 1,
    ['e'] = 1,
    ['f'] = 1,
    ['g'] = 1,
    ['h'] = 1,
    ['i'] = 1,
    ['j'] = 1,
    ['k'] = 1,
    ['l'] = 1,
    ['m'] = 1,
    ['n'] = 1,
    ['o'] = 1,
    ['p'] = 1,
    ['q'] = 1,
    ['r'] = 1,
    ['s'] = 1,
    ['t'] = 1,
    ['u'] = 1,
    ['v'] = 1,
    ['w'] = 1,
    ['x'] = 1,
    ['y'] = 1,
    ['z'] = 1,
};

#define IS_TCHAR(c) (tchar_map[(unsigned char)(c)] != 0)
/* Field-value bytes: HTAB, SP, VCHAR, obs-text. */
#define IS_VALUE(c)                                                            \
	((unsigned char)(c) == '\t' ||                                         \
	    ((unsigned char)(c) >= 0x20 && (unsigned char)(c) != 0x7f))
/* Request-target bytes: visible ASCII. */
#define IS_TARGET(c) ((unsigned char)(c) > 0x20 && (unsigned char)(c) < 0x7f)

struct cursor {
	const char *p;
	const char *end;
};

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
ncaseeq(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen; i++)
		if (b[i] == '\0' ||
		    lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return b[alen] == '\0';
}

/* Consumes an end of line (CRLF or a bare LF). */
static int
parse_eol(struct cursor *c)
{
	if (c->p == c->end)
		return HTTP1_NEED_MORE;
	if (*c->p == '\n') {
		c->p++;
		return 0;
	}
	if (*c->p != '\r')
		return HTTP1_ERROR;
	if (c->p + 1 == c->end)
		return HTTP1_NEED_MORE;
	if (c->p[1] != '\n')
		return HTTP1_ERROR;
	c->p += 2;
	return 0;
}

/* Consumes "HTTP/1.x" and stores x. */
static int
parse_version(struct cursor *c, int *minor)
{
	static const char prefix[] = "HTTP/1.";
	size_t i;

	for (i = 0; i < sizeof(prefix) - 1; i++) {
		if (c->p == c->end)
			return HTTP1_NEED_MORE;
		if (*c->p++ != prefix[i])
			return HTTP1_ERROR;
	}
	if (c->p == c->end)
		return HTTP1_NEED_MORE;
	if (*c->p < '0' || *c->p > '9')
		return HTTP1_ERROR;
	*minor = *c->p++ - '0';
	return 0;
}

/* Parses header fields up to and including the empty line. */
static int
parse_headers(struct cursor *c, struct http1_header *h, size_t *nh)
{
	const char *name, *value, *vend;
	int rc;

	*nh = 0;
	for (;;) {
		if (c->p == c->end)
			return HTTP1_NEED_MORE;
		if (*c->p == '\r' || *c->p == '\n')
			return parse_eol(c);
		if (*nh == HTTP1_MAX_HEADERS)
			return HTTP1_TOO_LARGE;
		/* A field name; a line starting with white space (obsolete
		 * line folding) is refused here. */
		name = c->p;
		while (c->p < c->end && IS_TCHAR(*c->p))
			c->p++;
		if (c->p == c->end)
			return HTTP1_NEED_MORE;
		if (c->p == name || *c->p != ':')
			return HTTP1_ERROR;
		h[*nh].name = name;
		h[*nh].name_len = (size_t)(c->p - name);
		c->p++;
		while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
			c->p++;
		value = c->p;
		while (c->p < c->end && IS_VALUE(*c->p))
			c->p++;
		vend = c->p;
		if ((rc = parse_eol(c)) != 0)
			return rc;
		while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		h[*nh].value = value;
		h[*nh].value_len = (size_t)(vend - value);
		(*nh)++;
	}
}

/* Runs parse on at most HTTP1_MAX_HEAD bytes and maps an incomplete head
 * at the limit to HTTP1_TOO_LARGE. */
static int
limit_result(int rc, const struct cursor *c, const char *buf, size_t len)
{
	if (rc == 0)
		return (int)(c->p - buf);
	if (rc == HTTP1_NEED_MORE && len >= HTTP1_MAX_HEAD)
		return HTTP1_TOO_LARGE;
	return rc;
}

static int
request_head(struct cursor *c, struct http1_request *req)
{
	const char *s;
	int rc;

	/* RFC 9112 2.2: empty lines before the request line are ignored. */
	while (c->p < c->end && (*c->p == '\r' || *c->p == '\n'))
		if ((rc = parse_eol(c)) != 0)
			return rc;
	s = c->p;
	while (c->p < c->end && IS_TCHAR(*c->p))
		c->p++;
	if (c->p == c->end)
		return HTTP1_NEED_MORE;
	if (c->p == s || *c->p != ' ')
		return HTTP1_ERROR;
	req->method = s;
	req->method_len = (size_t)(c->p - s);
	c->p++;
	s = c->p;
	while (c->p < c->end && IS_TARGET(*c->p))
		c->p++;
	if (c->p == c->end)
		return HTTP1_NEED_MORE;
	if (c->p == s || *c->p != ' ')
		return HTTP1_ERROR;
	req->target = s;
	req->target_len = (size_t)(c->p - s);
	c->p++;
	if ((rc = parse_version(c, &req->minor_version)) != 0)
		return rc;
	if ((rc = parse_eol(c)) != 0)
		return rc;
	return parse_headers(c, req->headers, &req->nheaders);
}

int
http1_parse_request(const char *buf, size_t len, struct http1_request *req)
{
	struct cursor c;
	size_t n = len < HTTP1_MAX_HEAD ? len : HTTP1_MAX_HEAD;

	c.p = buf;
	c.end = buf + n;
	return limit_result(request_head(&c, req), &c, buf, len);
}

static int
response_head(struct cursor *c, struct http1_response *res)
{
	const char *s;
	int i, rc;

	if ((rc = parse_version(c, &res->minor_version)) != 0)
		return rc;
	if (c->p == c->end)
		return HTTP1_NEED_MORE;
	if (*c->p++ != ' ')
		return HTTP1_ERROR;
	res->status = 0;
	for (i = 0; i < 3; i++) {
		if (c->p == c->end)
			return HTTP1_NEED_MORE;
		if (*c->p < '0' || *c->p > '9')
			return HTTP1_ERROR;
		res->status = res->status * 10 + (*c->p++ - '0');
	}
	if (res->status < 100)
		return HTTP1_ERROR;
	if (c->p == c->end)
		return HTTP1_NEED_MORE;
	if (*c->p == ' ')
		c->p++;
	else if (*c->p != '\r' && *c->p != '\n')
		return HTTP1_ERROR;
	s = c->p;
	while (c->p < c->end && IS_VALUE(*c->p))
		c->p++;
	res->reason = s;
	res->reason_len = (size_t)(c->p - s);
	if ((rc = parse_eol(c)) != 0)
		return rc;
	return parse_headers(c, res->headers, &res->nheaders);
}

int
http1_parse_response(const char *buf, size_t len, struct http1_response *res)
{
	struct cursor c;
	size_t n = len < HTTP1_MAX_HEAD ? len : HTTP1_MAX_HEAD;

	c.p = buf;
	c.end = buf + n;
	return limit_result(response_head(&c, res), &c, buf, len);
}

const struct http1_header *
http1_find_header(const struct http1_header *h, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ncaseeq(h[i].name, h[i].name_len, name))
			return &h[i];
	return NULL;
}

/* Calls fn for each non-empty element of a comma-separated list, trimmed;
 * stops and returns fn's non-zero result. */
static int
list_each(const char *v, size_t len, int (*fn)(const char *, size_t, void *),
    void *arg)
{
	const char *p = v, *end = v + len, *s, *e;
	int rc;

	while (p < end) {
		s = p;
		while (p < end && *p != ',')
			p++;
		e = p;
		if (p < end)
			p++;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s && (rc = fn(s, (size_t)(e - s), arg)) != 0)
			return rc;
	}
	return 0;
}

static int
token_eq_cb(const char *s, size_t n, void *arg)
{
	return ncaseeq(s, n, arg) ? 1 : 0;
}

int
http1_value_has_token(const char *v, size_t len, const char *token)
{
	return list_each(v, len, token_eq_cb, (void *)(uintptr_t)token) == 1;
}

struct length_state {
	int seen;
	uint64_t value;
};

/* Accumulates one Content-Length element; every element must be the same
 * decimal number. */
static int
length_cb(const char *s, size_t n, void *arg)
{
	struct length_state *ls = arg;
	uint64_t v = 0;
	size_t i;

	if (n > 18)
		return HTTP1_ERROR;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return HTTP1_ERROR;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (ls->seen && ls->value != v)
		return HTTP1_ERROR;
	ls->seen = 1;
	ls->value = v;
	return 0;
}

struct te_state {
	int count;   /* codings seen */
	int chunked; /* times "chunked" was seen */
	int last_chunked;
};

static int
te_cb(const char *s, size_t n, void *arg)
{
	struct te_state *ts = arg;
	size_t i;

	/* A coding may carry parameters ("gzip;q=1" is not valid here, but
	 * be exact about the name). */
	for (i = 0; i < n && s[i] != ';' && s[i] != ' ' && s[i] != '\t'; i++)
		;
	ts->count++;
	ts->last_chunked = ncaseeq(s, i, "chunked");
	if (ts->last_chunked)
		ts->chunked++;
	return 0;
}

/* The framing facts common to requests and responses. */
static int
common_framing(const struct http1_header *h, size_t nh, int minor,
    struct http1_framing *f, struct te_state *te, struct length_state *ls)
{
	size_t i;
	int has_close = 0, has_keep = 0, has_upgrade = 0, upgrade_hdr = 0;

	memset(f, 0, sizeof(*f));
	memset(te, 0, sizeof(*te));
	memset(ls, 0, sizeof(*ls));
	for (i = 0; i < nh; i++) {
		const char *n = h[i].name, *v = h[i].value;
		size_t nl = h[i].name_len, vl = h[i].value_len;

		if (ncaseeq(n, nl, "content-length")) {
			/* An empty Content-Length is no number. */
			if (vl == 0 || list_each(v, vl, length_cb, ls) != 0 ||
			    !ls->seen)
				return HTTP1_ERROR;
		} else if (ncaseeq(n, nl, "transfer-encoding")) {
			list_each(v, vl, te_cb, te);
			if (vl == 0)
				te->count++;
		} else if (ncaseeq(n, nl, "connection")) {
			has_close |= http1_value_has_token(v, vl, "close");
			has_keep |= http1_value_has_token(v, vl, "keep-alive");
			has_upgrade |= http1_value_has_token(v, vl, "upgrade");
		} else if (ncaseeq(n, nl, "upgrade")) {
			upgrade_hdr = 1;
		} else if (ncaseeq(n, nl, "expect")) {
			f->expect_continue = ncaseeq(v, vl, "100-continue");
		}
	}
	if (te->count > 0 && ls->seen)
		return HTTP1_ERROR;
	f->keep_alive = minor >= 1 ? !has_close : has_keep && !has_close;
	f->upgrade = has_upgrade && upgrade_hdr;
	return 0;
}

int
http1_request_framing(const struct http1_request *req, struct http1_framing *f)
{
	struct te_state te;
	struct length_state ls;

	if (common_framing(req->headers, req->nheaders, req->minor_version, f,
	        &te, &ls) != 0)
		return HTTP1_ERROR;
	if (te.count > 0) {
		/* RFC 9112 6.3: chunked must be the final coding of a
		 * request, and applied once; HTTP/1.0 has no chunking. */
		if (!te.last_chunked || te.chunked != 1 ||
		    req->minor_version == 0)
			return HTTP1_ERROR;
		f->body = HTTP1_BODY_CHUNKED;
	} else if (ls.seen && ls.value > 0) {
		f->body = HTTP1_BODY_LENGTH;
		f->length = ls.value;
	} else
		f->body = HTTP1_BODY_NONE;
	return 0;
}

int
http1_response_framing(const struct http1_response *res, const char *method,
    size_t method_len, struct http1_framing *f)
{
	struct te_state te;
	struct length_state ls;

	if (common_framing(res->headers, res->nheaders, res->minor_version, f,
	        &te, &ls) != 0)
		return HTTP1_ERROR;
	f->expect_continue = 0;
	if (res->status != 101)
		f->upgrade = 0;
	if ((res->status >= 100 && res->status < 200) || res->status == 204 ||
	    res->status == 304 ||
	    (method != NULL && ncaseeq(method, method_len, "HEAD")) ||
	    (method != NULL && ncaseeq(method, method_len, "CONNECT") &&
	        res->status / 100 == 2)) {
		f->body = HTTP1_BODY_NONE;
		return 0;
	}
	if (te.count > 0) {
		if (te.last_chunked && te.chunked == 1 &&
		    res->minor_version >= 1)
			f->body = HTTP1_BODY_CHUNKED;
		else {
			if (te.chunked > 0)
				return HTTP1_ERROR;
			f->body = HTTP1_BODY_CLOSE;
			f->keep_alive = 0;
		}
	} else if (ls.seen) {
		f->body = ls.value > 0 ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
		f->length = ls.value;
	} else {
		f->body = HTTP1_BODY_CLOSE;
		f->keep_alive = 0;
	}
	return 0;
}

enum chunked_state {
	CH_SIZE_FIRST, /* the first hex digit of a chunk size */
	CH_SIZE,       /* more hex digits */
	CH_EXT,        /* chunk extensions, up to CR */
	CH_SIZE_LF,    /* the LF after the size line */
	CH_DATA,       /* payload */
	CH_DATA_CR,    /* the CRLF after the payload */
	CH_DATA_LF,
	CH_TRAILER_START, /* the start of a trailer line or the final CRLF */
	CH_TRAILER,       /* inside a trailer field line */
	CH_TRAILER_LF,
	CH_END_LF, /* the LF of the final empty line */
	CH_DONE,
};

void
http1_chunked_init(struct http1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE_FIRST;
}

int
http1_chunked_done(const struct http1_chunked *c)
{
	return c->state == CH_DONE;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

long
http1_chunked_feed(struct http1_chunked *c, const char *buf, size_t len,
    size_t *data_off, size_t *data_len)
{
	size_t i = 0, n;
	unsigned char ch;
	int v;

	*data_off = 0;
	*data_len = 0;
	while (i < len && c->state != CH_DONE) {
		if (c->state == CH_DATA) {
			n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			*data_off = i;
			*data_len = n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			return (long)(i + n);
		}
		ch = (unsigned char)buf[i++];
		switch (c->state) {
		case CH_SIZE_FIRST:
			if ((v = hexval(ch)) < 0)
				return HTTP1_ERROR;
			c->remaining = (uint64_t)v;
			c->line_len = 1;
			c->state = CH_SIZE;
			break;
		case CH_SIZE:
			if (++c->line_len > HTTP1_MAX_CHUNK_LINE)
				return HTTP1_ERROR;
			if ((v = hexval(ch)) >= 0) {
				if (c->remaining > (UINT64_MAX >> 4))
					return HTTP1_ERROR;
				c->remaining = c->remaining << 4 | (uint64_t)v;
			} else if (ch == ';' || ch == ' ' || ch == '\t')
				c->state = CH_EXT;
			else if (ch == '\r')
				c->state = CH_SIZE_LF;
			else
				return HTTP1_ERROR;
			break;
		case CH_EXT:
			if (++c->line_len > HTTP1_MAX_CHUNK_LINE)
				return HTTP1_ERROR;
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
				return HTTP1_ERROR;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return HTTP1_ERROR;
			c->state =
			    c->remaining == 0 ? CH_TRAILER_START : CH_DATA;
			break;
		case CH_DATA_CR:
			if (ch != '\r')
				return HTTP1_ERROR;
			c->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				return HTTP1_ERROR;
			c->state = CH_SIZE_FIRST;
			break;
		case CH_TRAILER_START:
			if (ch == '\r')
				c->state = CH_END_LF;
			else if (IS_TCHAR(ch)) {
				c->state = CH_TRAILER;
				c->line_len = 1;
				c->trailer_len++;
			} else
				return HTTP1_ERROR;
			break;
		case CH_TRAILER:
			if (++c->trailer_len > HTTP1_MAX_HEAD)
				return HTTP1_ERROR;
			if (ch == '\r')
				c->state = CH_TRAILER_LF;
			else if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
				return HTTP1_ERROR;
			break;
		case CH_TRAILER_LF:
			if (ch != '\n')
				return HTTP1_ERROR;
			c->state = CH_TRAILER_START;
			break;
		case CH_END_LF:
			if (ch != '\n')
				return HTTP1_ERROR;
			c->state = CH_DONE;
			break;
		default:
			return HTTP1_ERROR;
		}
	}
	return (long)i;
}
