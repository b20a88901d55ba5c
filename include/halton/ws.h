/*
 * ws: a decoder for one direction of a WebSocket connection (RFC 6455),
 * with permessage-deflate (RFC 7692), for the meter's copy of the bytes
 * relayed after a 101 Switching Protocols.
 *
 * Frames may be masked (client to server) or not (server to client); both
 * are accepted in either direction.  Fragmented messages are reassembled,
 * control frames may arrive between fragments, and compressed messages
 * (RSV1 on the first frame) are inflated with one raw-deflate context per
 * direction, reset per message when the negotiated *_no_context_takeover
 * says the sender resets.
 *
 * Convention: functions return 0 (all input consumed, more may follow) or
 * -1 (error; ws_error() names it).  An error is sticky.  Memory: one message
 * buffer of at most max_message bytes.  A data message that would inflate
 * past max_message is skipped (ws_skipped() counts it) while the decoder
 * keeps its deflate context in step, so the messages after it still decode.
 */
#ifndef HALTON_WS_H
#define HALTON_WS_H

#include <stddef.h>

#define WS_MAX_MESSAGE ((size_t)16 << 20)

#define WS_OP_CONTINUATION 0x0
#define WS_OP_TEXT         0x1
#define WS_OP_BINARY       0x2
#define WS_OP_CLOSE        0x8
#define WS_OP_PING         0x9
#define WS_OP_PONG         0xa

/* What the Sec-WebSocket-Extensions response header negotiated. */
struct ws_extensions {
	int permessage_deflate;
	int server_no_context_takeover;
	int client_no_context_takeover;
	int server_max_window_bits; /* 8..15; 15 when not given */
	int client_max_window_bits; /* 8..15; 15 when not given */
};

/*
 * Parses the Sec-WebSocket-Extensions header of the 101 response (NULL
 * means none).  Only permessage-deflate is understood; other extensions are
 * ignored, except that an unknown extension using RSV1 cannot be told apart,
 * so the meter should treat RSV1 frames as undecodable then.  Returns 0, or
 * -1 for a malformed permessage-deflate offer.
 */
int ws_parse_extensions(const char *header, struct ws_extensions *ext);

/*
 * Receives one complete message: a data message (WS_OP_TEXT or
 * WS_OP_BINARY) reassembled and inflated, or a control frame (WS_OP_CLOSE,
 * WS_OP_PING, WS_OP_PONG) as it came.  data is NUL-terminated at data[len]
 * and valid during the call only.  Returns 0 to go on, -1 to stop (the feed
 * then fails with "stopped by consumer").
 */
typedef int (*ws_message_cb)(
    void *arg, int opcode, const char *data, size_t len);

struct ws;

/*
 * Creates the decoder of one direction: from_client 1 for client-to-server
 * bytes, 0 for server-to-client (it selects which *_no_context_takeover
 * applies).  ext NULL means no extension.  max_message 0 means
 * WS_MAX_MESSAGE.
 */
struct ws *ws_new(int from_client, const struct ws_extensions *ext,
    size_t max_message, ws_message_cb cb, void *arg);
int ws_feed(struct ws *, const void *data, size_t len);
/* Ends the stream: -1 ("truncated frame" / "truncated message") when the
 * bytes stopped inside a frame or a fragmented message. */
int ws_finish(struct ws *);
/* Why the decoder failed (static string), or NULL. */
const char *ws_error(const struct ws *);
/* Messages delivered, and data messages skipped for size. */
size_t ws_messages(const struct ws *);
size_t ws_skipped(const struct ws *);
void ws_free(struct ws *);

#endif
