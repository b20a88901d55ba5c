/*
 * eventstream: an incremental parser for AWS event-stream frames
 * (application/vnd.amazon.eventstream, Bedrock *WithResponseStream and
 * ConverseStream).
 *
 * Frame: total length u32, headers length u32, prelude CRC32 (of bytes
 * 0..7), headers, payload, message CRC32 (of everything before it); all
 * big-endian, CRC32 as in zlib.  Both CRCs are checked: a bad one is an
 * error.  Headers of every value type are walked; the string headers
 * ":message-type", ":event-type", ":exception-type" and ":content-type" are
 * handed to the callback with the payload.
 *
 * Convention: functions return 0 (all input consumed, more may follow) or
 * -1 (error; eventstream_error() names it).  An error is sticky.  Memory:
 * one frame buffer that grows to the largest frame seen.
 */
#ifndef HALTON_EVENTSTREAM_H
#define HALTON_EVENTSTREAM_H

#include <stddef.h>

#include "halton/util.h"

/* Limits from botocore: headers 128 KiB, payload 16 MiB. */
#define EVENTSTREAM_MAX_HEADERS ((size_t)128 << 10)
#define EVENTSTREAM_MAX_PAYLOAD ((size_t)16 << 20)
/* Longest string value kept for the four named headers. */
#define EVENTSTREAM_MAX_HEADER_VALUE 255

struct eventstream_message {
	const char *message_type;   /* "event", "exception", "error" or NULL */
	const char *event_type;     /* "chunk", "metadata", ... or NULL */
	const char *exception_type; /* "throttlingException", ... or NULL */
	const char *content_type;   /* "application/json" or NULL */
	const unsigned char *payload;
	size_t payload_len;
};

/*
 * Receives one verified frame; everything it points to is valid during the
 * call only.  Returns 0 to go on, -1 to stop (the feed then fails with
 * "stopped by consumer").
 */
typedef int (*eventstream_message_cb)(
    void *arg, const struct eventstream_message *);

struct eventstream;

struct eventstream *eventstream_new(eventstream_message_cb cb, void *arg);
int eventstream_feed(struct eventstream *, const void *data, size_t len);
/* Ends the stream: -1 ("truncated frame") when a partial frame is pending. */
int eventstream_finish(struct eventstream *);
/* Why the parser failed (static string), or NULL. */
const char *eventstream_error(const struct eventstream *);
/* Frames delivered so far. */
size_t eventstream_messages(const struct eventstream *);
void eventstream_free(struct eventstream *);

/*
 * Decodes an InvokeModelWithResponseStream "chunk" payload,
 * {"bytes":"<base64>","p":"..."}, appending the model's JSON text to out
 * (NUL-terminated by the strbuf).  Returns 0, or -1 when the payload is not
 * such an object or the base64 is invalid.
 */
int eventstream_chunk_bytes(
    const void *payload, size_t len, struct strbuf *out);

/*
 * Decodes standard base64 (RFC 4648, '=' padding optional, no white space)
 * into out, which must hold 3 * ((len + 3) / 4) bytes.  Returns the decoded
 * length, or -1 for invalid input.
 */
long eventstream_base64_decode(const char *in, size_t len, unsigned char *out);

#endif
