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

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define LIMIT 4096

static int
message_cb(void *arg, int opcode, const char *data, size_t len)
{
	struct fuzz_run *r = arg;
	unsigned char op = (unsigned char)opcode;

	if (data[len] != '\0' || len > LIMIT)
		abort();
	if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY &&
	    opcode != WS_OP_CLOSE && opcode != WS_OP_PING &&
	    opcode != WS_OP_PONG)
		abort();
	if ((opcode & 8) && len > 125)
		abort();
	fuzz_run_add(r, &op, 1);
	fuzz_run_add(r, data, len);
	r->count++;
	return 0;
}

static int
feed_cb(void *parser, const void *p, size_t len)
{
	return ws_feed(parser, p, len);
}

static int
decode_ws(int from_client, const struct ws_extensions *ext, const uint8_t *p,
    size_t len, size_t split, struct fuzz_run *r, size_t *skipped)
{
	struct ws *w = ws_new(from_client, ext, LIMIT, message_cb, r);
	int rc;

	fuzz_run_init(r);
	rc = fuzz_feed_split(feed_cb, w, p, len, split);
	if (rc == 0)
		rc = ws_finish(w);
	if ((rc == -1) != (ws_error(w) != NULL))
		abort();
	if (ws_messages(w) != r->count)
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
	struct fuzz_run whole, parts;
	size_t split, skip_a, skip_b;
	int a, b, from_client;

	if (size < 3)
		return 0;
	from_client = data[0] & 1;
	if (ws_parse_extensions(headers[(data[0] >> 1) & 3], &ext) == -1)
		abort();
	split = fuzz_split(data + 1, size - 3);
	data += 3;
	size -= 3;
	/* Also run the header parser on the input as text, when it is. */
	if (memchr(data, '\0', size) != NULL) {
		struct ws_extensions scratch;
		(void)ws_parse_extensions((const char *)data, &scratch);
	}
	a = decode_ws(from_client, &ext, data, size, 0, &whole, &skip_a);
	b = decode_ws(from_client, &ext, data, size, split, &parts, &skip_b);
	if (skip_a != skip_b)
		abort();
	fuzz_check_same(a, b, &whole, &parts);
	return 0;
}
