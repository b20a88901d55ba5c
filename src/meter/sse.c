/*
 * sse: incremental text/event-stream parser (see sse.h).
 *
 * Complete lines inside one fed chunk are parsed in place.  One buffer holds
 * the data of the event being built and, after it, a line cut by a chunk
 * boundary; a "data:" value completed there is moved down onto the data.
 */
#include <stdlib.h>
#include <string.h>

#include "halton/sse.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

/* Longest "id:" value kept; longer ones are ignored. */
#define SSE_MAX_ID 255

static const unsigned char sse_bom[3] = {0xef, 0xbb, 0xbf};

struct sse {
	/* [0, data_len): "data:" values, each followed by LF;
	 * [data_len, buf.len): a line cut by a chunk boundary. */
	struct strbuf buf;
	size_t data_len;
	char type[SSE_MAX_TYPE + 1];
	size_t type_len;
	char id[SSE_MAX_ID + 1];
	size_t max_event;
	size_t nevents;
	size_t bom_pos; /* bytes of a leading BOM matched so far */
	int bom_done;   /* the start of the stream is behind us */
	int after_cr;   /* the last byte was a CR: skip one LF */
	int finished;
	const char *error;
	sse_event_cb cb;
	void *arg;
};

struct sse *
sse_new(size_t max_event, sse_event_cb cb, void *arg)
{
	struct sse *s;

	s = xcalloc(1, sizeof(*s));
	strbuf_init(&s->buf);
	s->max_event = max_event ? max_event : SSE_MAX_EVENT;
	s->cb = cb;
	s->arg = arg;
	return s;
}

void
sse_free(struct sse *s)
{
	if (s == NULL)
		return;
	strbuf_free(&s->buf);
	free(s);
}

const char *
sse_error(const struct sse *s)
{
	return s->error;
}

const char *
sse_last_id(const struct sse *s)
{
	return s->id;
}

size_t
sse_events(const struct sse *s)
{
	return s->nevents;
}

/* Dispatches the event being built (a blank line, or the end of stream). */
static int
sse_dispatch(struct sse *s)
{
	const char *type;
	size_t len;
	int rc;

	if (s->data_len == 0) {
		s->type_len = 0;
		return 0;
	}
	/* Drop the LF that followed the last data line. */
	len = s->data_len - 1;
	s->buf.data[len] = '\0';
	s->type[s->type_len] = '\0';
	type = s->type_len > 0 ? s->type : NULL;
	s->nevents++;
	rc = s->cb(s->arg, type, s->buf.data, len);
	strbuf_reset(&s->buf);
	s->data_len = 0;
	s->type_len = 0;
	if (rc != 0) {
		s->error = "stopped by consumer";
		return -1;
	}
	return 0;
}

#define FIELD_IS(name, len, lit)                                               \
	((len) == sizeof(lit) - 1 &&                                           \
	    memcmp((name), (lit), sizeof(lit) - 1) == 0)

/*
 * Interprets one line, without its line end; in_buf says it is the cut line
 * held in the buffer after the data (the caller then drops what is left of
 * it from the buffer).
 */
static int
sse_line(struct sse *s, const char *line, size_t len, int in_buf)
{
	const char *colon, *value;
	size_t name_len, value_len;

	if (len == 0)
		return sse_dispatch(s); /* never a cut line: those have bytes */
	if (line[0] == ':')
		return 0;
	if ((colon = memchr(line, ':', len)) != NULL) {
		name_len = (size_t)(colon - line);
		value = colon + 1;
		value_len = len - name_len - 1;
		if (value_len > 0 && *value == ' ') {
			value++;
			value_len--;
		}
	} else {
		name_len = len;
		value = line + len;
		value_len = 0;
	}
	if (FIELD_IS(line, name_len, "data")) {
		if (value_len + 1 > s->max_event - s->data_len) {
			s->error = "event too large";
			return -1;
		}
		if (in_buf) {
			/* The value lies in the buffer, after the data. */
			memmove(s->buf.data + s->data_len, value, value_len);
			s->buf.len = s->data_len + value_len;
		} else
			strbuf_add(&s->buf, value, value_len);
		strbuf_addc(&s->buf, '\n');
		s->data_len = s->buf.len;
	} else if (FIELD_IS(line, name_len, "event")) {
		if (value_len > SSE_MAX_TYPE) {
			s->error = "event type too long";
			return -1;
		}
		memcpy(s->type, value, value_len);
		s->type_len = value_len;
	} else if (FIELD_IS(line, name_len, "id")) {
		/* WHATWG: an id containing NUL is ignored. */
		if (value_len <= SSE_MAX_ID &&
		    memchr(value, '\0', value_len) == NULL) {
			memcpy(s->id, value, value_len);
			s->id[value_len] = '\0';
		}
	}
	/* "retry" and unknown fields are ignored. */
	return 0;
}

/* Interprets the cut line, now complete, and drops it from the buffer. */
static int
sse_line_cut(struct sse *s)
{
	int rc;

	rc =
	    sse_line(s, s->buf.data + s->data_len, s->buf.len - s->data_len, 1);
	s->buf.len = s->data_len;
	if (s->buf.data != NULL)
		s->buf.data[s->buf.len] = '\0';
	return rc;
}

/* Parses bytes that are known not to start with a partial BOM. */
static int
sse_scan(struct sse *s, const char *p, size_t len)
{
	const char *end = p + len, *eol, *cr;
	size_t cut;
	int rc, has_cr;

	/* Lines end in LF almost always: look for CRs once per chunk. */
	has_cr = memchr(p, '\r', len) != NULL;
	while (p < end) {
		if (s->after_cr) {
			s->after_cr = 0;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		/* memchr, not a byte loop: lines are long, CRs are rare. */
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		if (has_cr && (cr = memchr(p, '\r', (size_t)(eol - p))) != NULL)
			eol = cr;
		cut = s->buf.len - s->data_len;
		if ((size_t)(eol - p) > s->max_event - cut) {
			s->error = "line too long";
			return -1;
		}
		if (eol == end) {
			strbuf_add(&s->buf, p, (size_t)(end - p));
			return 0;
		}
		if (cut > 0) {
			strbuf_add(&s->buf, p, (size_t)(eol - p));
			rc = sse_line_cut(s);
		} else
			rc = sse_line(s, p, (size_t)(eol - p), 0);
		if (rc == -1)
			return -1;
		s->after_cr = *eol == '\r';
		p = eol + 1;
	}
	return 0;
}

int
sse_feed(struct sse *s, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (s->error != NULL)
		return -1;
	if (s->finished) {
		s->error = "data after end of stream";
		return -1;
	}
	/* A UTF-8 BOM may start the stream, possibly split across feeds. */
	while (!s->bom_done && len > 0) {
		if (*p != sse_bom[s->bom_pos]) {
			s->bom_done = 1;
			if (sse_scan(s, (const char *)sse_bom, s->bom_pos) ==
			    -1)
				return -1;
			break;
		}
		p++;
		len--;
		if (++s->bom_pos == sizeof(sse_bom))
			s->bom_done = 1;
	}
	return sse_scan(s, (const char *)p, len);
}

int
sse_finish(struct sse *s)
{
	if (s->error != NULL)
		return -1;
	if (s->finished)
		return 0;
	s->finished = 1;
	if (!s->bom_done) {
		s->bom_done = 1;
		if (sse_scan(s, (const char *)sse_bom, s->bom_pos) == -1)
			return -1;
	}
	if (s->buf.len > s->data_len && sse_line_cut(s) == -1)
		return -1;
	return sse_dispatch(s);
}

static int
sniff_name_ok(const char *name, size_t len)
{
	return FIELD_IS(name, len, "data") || FIELD_IS(name, len, "event") ||
	    FIELD_IS(name, len, "id") || FIELD_IS(name, len, "retry");
}

/* Whether name[0..len) can still grow into a known field name. */
static int
sniff_name_prefix(const char *name, size_t len)
{
	static const char *names[] = {"data", "event", "id", "retry"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (len <= strlen(names[i]) && memcmp(name, names[i], len) == 0)
			return 1;
	return 0;
}

int
sse_sniff(const void *data, size_t len)
{
	const char *p = data, *end = p + len, *name;

	if (len >= 3 && memcmp(p, sse_bom, 3) == 0)
		p += 3;
	else if (len < 3 && memcmp(p, sse_bom, len) == 0)
		return -1;
	while (p < end && (*p == '\n' || *p == '\r'))
		p++;
	if (p == end)
		return -1;
	if (*p == ':')
		return 1;
	name = p;
	while (p < end && *p != ':' && *p != '\n' && *p != '\r')
		p++;
	if (p == end)
		return sniff_name_prefix(name, (size_t)(p - name)) ? -1 : 0;
	return sniff_name_ok(name, (size_t)(p - name));
}
