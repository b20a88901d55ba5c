/*
 * eventstream: incremental AWS event-stream frame parser (see
 * eventstream.h).
 *
 * A frame wholly inside one fed chunk is verified in place; otherwise its
 * bytes are gathered in the frame buffer.  The prelude (and its CRC) is
 * checked as soon as its 12 bytes are in, so a corrupt length never makes
 * the parser wait for, or buffer, megabytes of garbage.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <zlib.h>

#include "halton/eventstream.h"
#include "halton/util.h"
#include "halton/xmalloc.h"

#define ES_PRELUDE   12 /* total length, headers length, prelude CRC */
#define ES_MIN_FRAME 16

/* Header value types (botocore eventstream.py). */
enum es_type {
	ES_TRUE,
	ES_FALSE,
	ES_BYTE,
	ES_SHORT,
	ES_INTEGER,
	ES_LONG,
	ES_BYTES,
	ES_STRING,
	ES_TIMESTAMP,
	ES_UUID,
};

/* The string headers handed to the callback. */
enum es_named {
	ES_MESSAGE_TYPE,
	ES_EVENT_TYPE,
	ES_EXCEPTION_TYPE,
	ES_CONTENT_TYPE,
	ES_NAMED,
};

static const char *const es_named_headers[ES_NAMED] = {
    ":message-type",
    ":event-type",
    ":exception-type",
    ":content-type",
};

struct eventstream {
	struct strbuf frame; /* a frame cut by chunk boundaries */
	uint32_t total;      /* its total length, once the prelude is in */
	size_t nmessages;
	const char *error;
	eventstream_message_cb cb;
	void *arg;
	char named[ES_NAMED][EVENTSTREAM_MAX_HEADER_VALUE + 1];
	int have[ES_NAMED];
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

struct eventstream *
eventstream_new(eventstream_message_cb cb, void *arg)
{
	struct eventstream *es;

	es = xcalloc(1, sizeof(*es));
	strbuf_init(&es->frame);
	es->cb = cb;
	es->arg = arg;
	return es;
}

void
eventstream_free(struct eventstream *es)
{
	if (es == NULL)
		return;
	strbuf_free(&es->frame);
	free(es);
}

const char *
eventstream_error(const struct eventstream *es)
{
	return es->error;
}

size_t
eventstream_messages(const struct eventstream *es)
{
	return es->nmessages;
}

/*
 * Checks a 12-byte prelude and returns the frame's total length, or 0 with
 * es->error set.
 */
static uint32_t
es_prelude(struct eventstream *es, const unsigned char *p)
{
	uint32_t total = be32(p), hlen = be32(p + 4);

	if ((uint32_t)crc32(0L, p, 8) != be32(p + 8)) {
		es->error = "bad prelude CRC";
		return 0;
	}
	if (total < ES_MIN_FRAME) {
		es->error = "frame too short";
		return 0;
	}
	if (hlen > EVENTSTREAM_MAX_HEADERS) {
		es->error = "headers too large";
		return 0;
	}
	if (hlen > total - ES_MIN_FRAME) {
		es->error = "bad headers length";
		return 0;
	}
	if (total - ES_MIN_FRAME - hlen > EVENTSTREAM_MAX_PAYLOAD) {
		es->error = "payload too large";
		return 0;
	}
	return total;
}

/* Walks the headers and keeps the named string ones.  Returns 0 or -1. */
static int
es_headers(struct eventstream *es, const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len, *name;
	size_t name_len, value_len, i;
	unsigned int type;

	memset(es->have, 0, sizeof(es->have));
	while (p < end) {
		name_len = *p++;
		if ((size_t)(end - p) < name_len + 1)
			goto bad;
		name = p;
		p += name_len;
		type = *p++;
		switch (type) {
		case ES_TRUE:
		case ES_FALSE:
			value_len = 0;
			break;
		case ES_BYTE:
			value_len = 1;
			break;
		case ES_SHORT:
			value_len = 2;
			break;
		case ES_INTEGER:
			value_len = 4;
			break;
		case ES_LONG:
		case ES_TIMESTAMP:
			value_len = 8;
			break;
		case ES_UUID:
			value_len = 16;
			break;
		case ES_BYTES:
		case ES_STRING:
			if (end - p < 2)
				goto bad;
			value_len = (size_t)p[0] << 8 | p[1];
			p += 2;
			break;
		default:
			es->error = "bad header value type";
			return -1;
		}
		if ((size_t)(end - p) < value_len)
			goto bad;
		for (i = 0; i < ES_NAMED; i++) {
			if (strlen(es_named_headers[i]) != name_len ||
			    memcmp(es_named_headers[i], name, name_len) != 0)
				continue;
			if (es->have[i]) {
				es->error = "duplicate header";
				return -1;
			}
			if (type != ES_STRING)
				break;
			if (value_len > EVENTSTREAM_MAX_HEADER_VALUE) {
				es->error = "header value too long";
				return -1;
			}
			memcpy(es->named[i], p, value_len);
			es->named[i][value_len] = '\0';
			es->have[i] = 1;
			break;
		}
		p += value_len;
	}
	return 0;
bad:
	es->error = "truncated header";
	return -1;
}

/* Verifies and delivers one whole frame of `total` bytes. */
static int
es_frame(struct eventstream *es, const unsigned char *f, uint32_t total)
{
	struct eventstream_message m;
	uint32_t hlen = be32(f + 4);

	if ((uint32_t)crc32(0L, f, total - 4) != be32(f + total - 4)) {
		es->error = "bad message CRC";
		return -1;
	}
	if (es_headers(es, f + ES_PRELUDE, hlen) == -1)
		return -1;
	memset(&m, 0, sizeof(m));
	m.message_type =
	    es->have[ES_MESSAGE_TYPE] ? es->named[ES_MESSAGE_TYPE] : NULL;
	m.event_type =
	    es->have[ES_EVENT_TYPE] ? es->named[ES_EVENT_TYPE] : NULL;
	m.exception_type =
	    es->have[ES_EXCEPTION_TYPE] ? es->named[ES_EXCEPTION_TYPE] : NULL;
	m.content_type =
	    es->have[ES_CONTENT_TYPE] ? es->named[ES_CONTENT_TYPE] : NULL;
	m.payload = f + ES_PRELUDE + hlen;
	m.payload_len = total - ES_MIN_FRAME - hlen;
	es->nmessages++;
	if (es->cb(es->arg, &m) != 0) {
		es->error = "stopped by consumer";
		return -1;
	}
	return 0;
}

int
eventstream_feed(struct eventstream *es, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t need, take;
	uint32_t total;

	if (es->error != NULL)
		return -1;
	while (len > 0) {
		/* The whole frame is in this chunk: verify it in place. */
		if (es->frame.len == 0 && len >= ES_PRELUDE) {
			if ((total = es_prelude(es, p)) == 0)
				return -1;
			if (len >= total) {
				if (es_frame(es, p, total) == -1)
					return -1;
				p += total;
				len -= total;
				continue;
			}
			es->total = total;
		}
		need = es->frame.len < ES_PRELUDE ? ES_PRELUDE - es->frame.len
		                                  : es->total - es->frame.len;
		take = need < len ? need : len;
		strbuf_add(&es->frame, p, take);
		p += take;
		len -= take;
		if (es->frame.len == ES_PRELUDE && es->total == 0) {
			total = es_prelude(
			    es, (const unsigned char *)es->frame.data);
			if (total == 0)
				return -1;
			es->total = total;
		}
		if (es->frame.len >= ES_PRELUDE && es->frame.len == es->total) {
			if (es_frame(es, (const unsigned char *)es->frame.data,
			        es->total) == -1)
				return -1;
			strbuf_reset(&es->frame);
			es->total = 0;
		}
	}
	return 0;
}

int
eventstream_finish(struct eventstream *es)
{
	if (es->error != NULL)
		return -1;
	if (es->frame.len > 0) {
		es->error = "truncated frame";
		return -1;
	}
	return 0;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
eventstream_base64_decode(const char *in, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	size_t i, n = 0, bits = 0;
	int v;

	/* Up to two '=' of padding, and only as a whole final quantum. */
	if (len % 4 == 0 && len > 0 && in[len - 1] == '=') {
		len--;
		if (in[len - 1] == '=')
			len--;
	}
	if (len % 4 == 1)
		return -1;
	for (i = 0; i < len; i++) {
		if ((v = b64_value((unsigned char)in[i])) == -1)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (long)n;
}

int
eventstream_chunk_bytes(const void *payload, size_t len, struct strbuf *out)
{
	cJSON *root;
	const cJSON *bytes;
	unsigned char *buf = NULL;
	size_t slen;
	long n;
	int rc = -1;

	if ((root = cJSON_ParseWithLength(payload, len)) == NULL)
		return -1;
	bytes = cJSON_GetObjectItemCaseSensitive(root, "bytes");
	if (!cJSON_IsString(bytes) || bytes->valuestring == NULL)
		goto out;
	slen = strlen(bytes->valuestring);
	buf = xmalloc(3 * ((slen + 3) / 4) + 1);
	if ((n = eventstream_base64_decode(bytes->valuestring, slen, buf)) ==
	    -1)
		goto out;
	strbuf_add(out, buf, (size_t)n);
	rc = 0;
out:
	free(buf);
	cJSON_Delete(root);
	return rc;
}
