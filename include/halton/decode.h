/*
 * decode: streaming Content-Encoding decoders for the meter's copy of a
 * response body (identity, gzip, x-gzip, deflate, br, zstd, and stacks such
 * as "gzip, br").
 *
 * One decoder lives for the whole response and is fed the body in whatever
 * chunks the network delivers.  Decoded bytes leave through a callback as
 * soon as they exist, so an SSE stream that is flushed per event (the
 * Anthropic API gzips text/event-stream per event for Claude Code) yields
 * each event when its compressed bytes arrive.  Concatenated gzip members
 * and multiple zstd frames are decoded one after another; bytes after a
 * gzip member that cannot start another one (no 1f magic) are ignored, as
 * gzip(1) and browsers ignore them.  The total output is capped: past
 * max_output the decoder fails (a decompression bomb never grows memory),
 * and a zstd frame asking for a window over 8 MiB (RFC 9659's limit for
 * HTTP) is refused.  Memory per decoder: the codecs' own state plus 16 KiB
 * of scratch per layer.  The decoder works on a copy; its errors never
 * reach the relay.  On corrupt input, how much output came out before the
 * error depends on how the input was chunked.
 *
 * Convention: functions return 0 (all input consumed, more may follow) or
 * -1 (error; decode_error() names it).  An error is sticky.
 */
#ifndef HALTON_DECODE_H
#define HALTON_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* Default cap on the decoded size of one body when max_output is 0. */
#define DECODE_MAX_OUTPUT_DEFAULT ((size_t)256 << 20)
/* Most codings one Content-Encoding header may stack. */
#define DECODE_MAX_LAYERS 4

enum decode_coding {
	DECODE_IDENTITY,
	DECODE_GZIP,    /* gzip and x-gzip; concatenated members allowed */
	DECODE_DEFLATE, /* zlib-wrapped, or raw deflate as servers often send */
	DECODE_BR,
	DECODE_ZSTD, /* one or more frames */
};

/*
 * Receives decoded bytes.  Returns 0 to go on, or -1 to stop: the feed that
 * called it then fails with "stopped by consumer".
 */
typedef int (*decode_output_cb)(void *arg, const void *data, size_t len);

struct decoder;

/*
 * Parses a Content-Encoding header value into its codings, in the order they
 * must be undone (the last one listed first).  NULL, "" and "identity" give
 * *n = 0.  Returns 0, or -1 for an unknown coding or too many.
 */
int decode_parse_encoding(
    const char *content_encoding, enum decode_coding *codings, size_t *n);

/*
 * Creates a decoder for a Content-Encoding header value (NULL or "" means
 * identity) that passes at most max_output decoded bytes (0: the default) to
 * cb.  Returns NULL for an unknown or unsupported coding, with *cause set to
 * a static string.
 */
struct decoder *decode_new(const char *content_encoding, size_t max_output,
    decode_output_cb cb, void *arg, const char **cause);
/* Decodes len bytes and emits whatever output they complete. */
int decode_feed(struct decoder *, const void *data, size_t len);
/*
 * Marks the end of the body.  Returns 0 when every layer ended on a
 * complete stream (or member, or frame), -1 ("truncated ...") when the body
 * stopped in the middle of one; output already emitted stays valid.
 */
int decode_finish(struct decoder *);
/* Why the decoder failed (static string), or NULL. */
const char *decode_error(const struct decoder *);
/* Decoded bytes emitted so far. */
uint64_t decode_total_out(const struct decoder *);
void decode_free(struct decoder *);

#endif
