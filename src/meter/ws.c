/*
 * ws: one direction of a WebSocket connection, decoded (see ws.h).
 *
 * Frame payload is unmasked in small pieces into a stack buffer and goes
 * straight into the message buffer, through the direction's inflate
 * context when the message is compressed, so a message is held once, in
 * its decoded form.  Control frames (at most 125 bytes) have their own
 * small buffer, since they may arrive between the fragments of a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "halton/util.h"
#include "halton/ws.h"
#include "halton/xmalloc.h"

#define WS_MAX_HEADER  14  /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL 125 /* RFC 6455 5.5 */
#define WS_PIECE       4096
#define WS_INFLATE_OUT 16384

#define WS_FIN  0x80
#define WS_RSV1 0x40
#define WS_RSV2 0x20
#define WS_RSV3 0x10

/* RFC 7692 7.2.2: the tail the sender removed from each message. */
static const unsigned char ws_deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

struct ws {
	int from_client;
	struct ws_extensions ext;
	size_t max_message;
	ws_message_cb cb;
	void *arg;
	const char *error;
	size_t nmessages;
	size_t nskipped;

	/* The frame header being read. */
	unsigned char hdr[WS_MAX_HEADER];
	size_t hdr_len;
	/* The frame whose payload is being read. */
	int in_payload;
	int fin;
	int opcode;
	int masked;
	unsigned char mask[4];
	uint64_t payload_len;
	uint64_t payload_pos;

	/* The data message being assembled; msg_opcode 0 when none. */
	int msg_opcode;
	int msg_compressed;
	int msg_skip;       /* too large: decoded but not kept */
	int msg_stream_end; /* the sender ended its deflate stream */
	struct strbuf msg;

	unsigned char ctl[WS_MAX_CONTROL + 1];
	size_t ctl_len;

	z_stream zs;
	int zs_live;
};

struct ws *
ws_new(int from_client, const struct ws_extensions *ext, size_t max_message,
    ws_message_cb cb, void *arg)
{
	struct ws *w;

	w = xcalloc(1, sizeof(*w));
	w->from_client = from_client;
	if (ext != NULL)
		w->ext = *ext;
	w->max_message = max_message ? max_message : WS_MAX_MESSAGE;
	w->cb = cb;
	w->arg = arg;
	strbuf_init(&w->msg);
	if (w->ext.permessage_deflate) {
		/* Raw deflate; a 2^15 window reads any smaller one too. */
		if (inflateInit2(&w->zs, -15) != Z_OK)
			w->error = "cannot create decompressor";
		else
			w->zs_live = 1;
	}
	return w;
}

void
ws_free(struct ws *w)
{
	if (w == NULL)
		return;
	if (w->zs_live)
		inflateEnd(&w->zs);
	strbuf_free(&w->msg);
	free(w);
}

const char *
ws_error(const struct ws *w)
{
	return w->error;
}

size_t
ws_messages(const struct ws *w)
{
	return w->nmessages;
}

size_t
ws_skipped(const struct ws *w)
{
	return w->nskipped;
}

static int
ws_fail(struct ws *w, const char *why)
{
	w->error = why;
	return -1;
}

/* Keeps decoded message bytes, or marks the message skipped past the cap. */
static void
ws_keep(struct ws *w, const unsigned char *p, size_t len)
{
	if (w->msg_skip || len == 0)
		return;
	if (len > w->max_message - w->msg.len) {
		w->msg_skip = 1;
		strbuf_reset(&w->msg);
		return;
	}
	strbuf_add(&w->msg, p, len);
}

/* Inflates compressed message bytes into the message buffer. */
static int
ws_inflate(struct ws *w, const unsigned char *p, size_t len)
{
	unsigned char out[WS_INFLATE_OUT];
	int rc;

	if (w->msg_stream_end)
		return 0; /* bytes after a final block: nothing to add */
	w->zs.next_in = (Bytef *)(uintptr_t)p;
	w->zs.avail_in = (uInt)len;
	do {
		w->zs.next_out = out;
		w->zs.avail_out = sizeof(out);
		rc = inflate(&w->zs, Z_SYNC_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			return ws_fail(w, "invalid deflate data");
		ws_keep(w, out, sizeof(out) - w->zs.avail_out);
		if (rc == Z_STREAM_END) {
			w->msg_stream_end = 1;
			break;
		}
		if (rc == Z_BUF_ERROR)
			break;
	} while (w->zs.avail_in > 0 || w->zs.avail_out == 0);
	return 0;
}

/* Delivers a finished data message and readies the next one. */
static int
ws_message_end(struct ws *w)
{
	int takeover, rc = 0;

	if (w->msg_compressed) {
		if (ws_inflate(w, ws_deflate_tail, sizeof(ws_deflate_tail)) ==
		    -1)
			return -1;
		takeover = w->from_client ? !w->ext.client_no_context_takeover
		                          : !w->ext.server_no_context_takeover;
		if ((w->msg_stream_end || !takeover) &&
		    inflateReset(&w->zs) != Z_OK)
			return ws_fail(w, "inflate reset failed");
	}
	if (w->msg_skip)
		w->nskipped++;
	else {
		w->nmessages++;
		if (w->msg.len == 0)
			strbuf_add(&w->msg, "", 0);
		rc = w->cb(w->arg, w->msg_opcode, w->msg.data, w->msg.len);
	}
	strbuf_reset(&w->msg);
	w->msg_opcode = 0;
	w->msg_compressed = 0;
	w->msg_skip = 0;
	w->msg_stream_end = 0;
	if (rc != 0)
		return ws_fail(w, "stopped by consumer");
	return 0;
}

/* Called when the current frame's payload is complete. */
static int
ws_frame_end(struct ws *w)
{
	int rc;

	w->in_payload = 0;
	w->hdr_len = 0;
	if (w->opcode & 0x8) {
		w->ctl[w->ctl_len] = '\0';
		w->nmessages++;
		rc = w->cb(w->arg, w->opcode, (const char *)w->ctl, w->ctl_len);
		w->ctl_len = 0;
		if (rc != 0)
			return ws_fail(w, "stopped by consumer");
		return 0;
	}
	if (w->fin)
		return ws_message_end(w);
	return 0;
}

/* Checks a complete frame header and starts reading its payload. */
static int
ws_header(struct ws *w)
{
	const unsigned char *h = w->hdr;
	size_t i, len7 = h[1] & 0x7f, off = 2;
	uint64_t len = len7;
	int rsv1 = (h[0] & WS_RSV1) != 0;

	w->fin = (h[0] & WS_FIN) != 0;
	w->opcode = h[0] & 0x0f;
	w->masked = (h[1] & 0x80) != 0;
	if (h[0] & (WS_RSV2 | WS_RSV3))
		return ws_fail(w, "reserved bits set");
	if (len7 == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		off = 4;
	} else if (len7 == 127) {
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
		if (len >> 63)
			return ws_fail(w, "bad frame length");
		off = 10;
	}
	if (w->masked)
		memcpy(w->mask, h + off, 4);
	w->payload_len = len;
	w->payload_pos = 0;
	switch (w->opcode) {
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!w->fin || len > WS_MAX_CONTROL || rsv1)
			return ws_fail(w, "bad control frame");
		w->ctl_len = 0;
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (w->msg_opcode != 0)
			return ws_fail(w,
			    "data frame inside a fragmented "
			    "message");
		if (rsv1 && !w->ext.permessage_deflate)
			return ws_fail(w, "compressed frame not negotiated");
		w->msg_opcode = w->opcode;
		w->msg_compressed = rsv1;
		break;
	case WS_OP_CONTINUATION:
		if (w->msg_opcode == 0)
			return ws_fail(w, "continuation without a message");
		if (rsv1)
			return ws_fail(w, "RSV1 on a continuation frame");
		break;
	default:
		return ws_fail(w, "reserved opcode");
	}
	w->in_payload = 1;
	if (len == 0)
		return ws_frame_end(w);
	return 0;
}

/* How many header bytes the frame needs, judging from what is in. */
static size_t
ws_header_need(const struct ws *w)
{
	size_t need = 2;

	if (w->hdr_len < 2)
		return need;
	if ((w->hdr[1] & 0x7f) == 126)
		need += 2;
	else if ((w->hdr[1] & 0x7f) == 127)
		need += 8;
	if (w->hdr[1] & 0x80)
		need += 4;
	return need;
}

/* Takes payload bytes of the current frame. */
static int
ws_payload(struct ws *w, const unsigned char *p, size_t len)
{
	unsigned char piece[WS_PIECE];
	size_t n, i;

	while (len > 0) {
		n = len < sizeof(piece) ? len : sizeof(piece);
		for (i = 0; i < n; i++)
			piece[i] = w->masked
			    ? p[i] ^ w->mask[(w->payload_pos + i) & 3]
			    : p[i];
		w->payload_pos += n;
		p += n;
		len -= n;
		if (w->opcode & 0x8) {
			memcpy(w->ctl + w->ctl_len, piece, n);
			w->ctl_len += n;
		} else if (w->msg_compressed) {
			if (ws_inflate(w, piece, n) == -1)
				return -1;
		} else
			ws_keep(w, piece, n);
	}
	return 0;
}

int
ws_feed(struct ws *w, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t need, take;
	uint64_t left;

	if (w->error != NULL)
		return -1;
	while (len > 0) {
		if (!w->in_payload) {
			/* Two passes: the first two bytes say how many more. */
			need = ws_header_need(w);
			take = need - w->hdr_len;
			if (take > len)
				take = len;
			memcpy(w->hdr + w->hdr_len, p, take);
			w->hdr_len += take;
			p += take;
			len -= take;
			if (w->hdr_len < ws_header_need(w))
				continue;
			if (ws_header(w) == -1)
				return -1;
			continue;
		}
		left = w->payload_len - w->payload_pos;
		take = left < len ? (size_t)left : len;
		if (ws_payload(w, p, take) == -1)
			return -1;
		p += take;
		len -= take;
		if (w->payload_pos == w->payload_len && ws_frame_end(w) == -1)
			return -1;
	}
	return 0;
}

int
ws_finish(struct ws *w)
{
	if (w->error != NULL)
		return -1;
	if (w->in_payload || w->hdr_len > 0)
		return ws_fail(w, "truncated frame");
	if (w->msg_opcode != 0)
		return ws_fail(w, "truncated message");
	return 0;
}

/* Skips optional white space. */
static const char *
ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads a token (or quoted string) into buf; returns the end, or NULL. */
static const char *
ext_word(const char *p, char *buf, size_t size)
{
	size_t n = 0;
	int quoted = *p == '"';

	if (quoted)
		p++;
	while (*p != '\0') {
		if (quoted ? *p == '"'
		           : (*p == ',' || *p == ';' || *p == '=' ||
		                 *p == ' ' || *p == '\t'))
			break;
		if (n + 1 == size)
			return NULL;
		buf[n++] = *p++;
	}
	if (quoted) {
		if (*p != '"')
			return NULL;
		p++;
	}
	buf[n] = '\0';
	return p;
}

static int
ext_bits(const char *value, int *bits)
{
	long long v;

	if (str_to_ll(value, 8, 15, &v) == -1)
		return -1;
	*bits = (int)v;
	return 0;
}

int
ws_parse_extensions(const char *header, struct ws_extensions *ext)
{
	char name[64], param[64], value[64];
	const char *p = header;
	int deflate, seen, has_value;
	unsigned int flags;

	memset(ext, 0, sizeof(*ext));
	ext->server_max_window_bits = 15;
	ext->client_max_window_bits = 15;
	if (header == NULL)
		return 0;
	seen = 0;
	for (;;) {
		p = ows(p);
		while (*p == ',')
			p = ows(p + 1);
		if (*p == '\0')
			return 0;
		if ((p = ext_word(p, name, sizeof(name))) == NULL ||
		    name[0] == '\0')
			return -1;
		deflate = !seen && str_casecmp(name, "permessage-deflate") == 0;
		if (deflate) {
			seen = 1;
			ext->permessage_deflate = 1;
		}
		flags = 0;
		for (p = ows(p); *p == ';'; p = ows(p)) {
			p = ows(p + 1);
			if ((p = ext_word(p, param, sizeof(param))) == NULL)
				return -1;
			p = ows(p);
			has_value = *p == '=';
			value[0] = '\0';
			if (has_value) {
				p = ows(p + 1);
				if ((p = ext_word(p, value, sizeof(value))) ==
				    NULL)
					return -1;
			}
			if (!deflate)
				continue;
			if (str_casecmp(param, "server_no_context_takeover") ==
			    0) {
				if (has_value || flags & 1)
					return -1;
				flags |= 1;
				ext->server_no_context_takeover = 1;
			} else if (str_casecmp(param,
			               "client_no_context_takeover") == 0) {
				if (has_value || flags & 2)
					return -1;
				flags |= 2;
				ext->client_no_context_takeover = 1;
			} else if (str_casecmp(
			               param, "server_max_window_bits") == 0) {
				if (flags & 4 ||
				    ext_bits(value,
				        &ext->server_max_window_bits) == -1)
					return -1;
				flags |= 4;
			} else if (str_casecmp(
			               param, "client_max_window_bits") == 0) {
				if (flags & 8)
					return -1;
				flags |= 8;
				/* A value is optional in an offer. */
				if (has_value &&
				    ext_bits(value,
				        &ext->client_max_window_bits) == -1)
					return -1;
			} else
				return -1;
		}
		if (*p != ',' && *p != '\0')
			return -1;
	}
}
