/*
 * libFuzzer target for the WebSocket decoder.  Byte 0 picks the direction
 * and the negotiated permessage-deflate options, bytes 1-2 a split point;
 * the rest is decoded whole and in two pieces with a 4 KiB message limit.
 * Invariant: both runs deliver the same messages (opcode and data, by
 * hash), skip the same number and agree on the result.  Byte 0 also picks
 * a Sec-WebSocket-Extensions value for ws_parse_extensions to chew on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "halton/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define LIMIT 4096

struct run {
	uint64_t hash;
	size_t messages;
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
message_cb(void *arg, int opcode, const char *data, size_t len)
{
	struct run *r = arg;
	unsigned char op = (unsigned char)opcode;

	if (data[len] != '\0' || len > LIMIT)
		abort();
	if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY &&
	    opcode != WS_OP_CLOSE && opcode != WS_OP_PING &&
	    opcode != WS_OP_PONG)
		abort();
	if ((opcode & 8) && len > 125)
		abort();
	r->hash = fnv(r->hash, &op, 1);
	r->hash = fnv(r->hash, data, len);
	r->messages++;
	return 0;
}

static int
decode_ws(int from_client, const struct ws_extensions *ext, const uint8_t *p,
    size_t len, size_t split, struct run *r, size_t *skipped)
{
	struct ws *w = ws_new(from_client, ext, LIMIT, message_cb, r);
	int rc;

	r->hash = 0xcbf29ce484222325ULL;
	r->messages = 0;
	if (split > 0 && split < len) {
		rc = ws_feed(w, p, split);
		if (rc == 0)
			rc = ws_feed(w, p + split, len - split);
	} else
		rc = ws_feed(w, p, len);
	if (rc == 0)
		rc = ws_finish(w);
	if ((rc == -1) != (ws_error(w) != NULL))
		abort();
	if (ws_messages(w) != r->messages)
		abort();
	*skipped = ws_skipped(w);
	ws_free(w);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const headers[] = {NULL, "permessage-deflate",
	    "permessage-deflate; server_no_context_takeover; "
	    "client_no_context_takeover",
	    "permessage-deflate; client_max_window_bits"};
	struct ws_extensions ext;
	struct run whole, parts;
	size_t split, skip_a, skip_b;
	int a, b, from_client;

	if (size < 3)
		return 0;
	from_client = data[0] & 1;
	if (ws_parse_extensions(headers[(data[0] >> 1) & 3], &ext) == -1)
		abort();
	split = (size_t)data[1] << 8 | data[2];
	data += 3;
	size -= 3;
	/* Also run the header parser on the input as text, when it is. */
	if (memchr(data, '\0', size) != NULL) {
		struct ws_extensions scratch;
		(void)ws_parse_extensions((const char *)data, &scratch);
	}
	a = decode_ws(from_client, &ext, data, size, 0, &whole, &skip_a);
	b = decode_ws(
	    from_client, &ext, data, size, split % (size + 1), &parts, &skip_b);
	if (a != b || whole.messages != parts.messages ||
	    whole.hash != parts.hash || skip_a != skip_b)
		abort();
	return 0;
}
