/*
 * sse: an incremental text/event-stream parser that follows the WHATWG
 * rules (HTML "Server-sent events", "Interpreting an event stream").
 *
 * Lines end with LF, CR or CRLF, also when a CR ends one chunk and its LF
 * starts the next.  "event:" sets the type, "data:" lines are joined with
 * "\n", "id:" is kept, "retry:" and unknown fields are ignored, lines that
 * start with ':' are comments, one space after the colon is dropped, and a
 * leading UTF-8 BOM is skipped.  A blank line dispatches the event when it
 * has data; sse_finish() also dispatches an event the stream did not end
 * with a blank line (the Anthropic SDK fixtures end that way).
 *
 * Convention: functions return 0 (all input consumed, more may follow) or
 * -1 (error; sse_error() names it).  An error is sticky.  Memory: one
 * buffer per parser, holding the event's data and a line cut by a chunk
 * boundary, each at most max_event bytes.
 */
#ifndef HALTON_SSE_H
#define HALTON_SSE_H

#include <stddef.h>

/* Largest event (its data, or any one line) the parser accepts. */
#define SSE_MAX_EVENT ((size_t)8 << 20)
/* Longest "event:" value. */
#define SSE_MAX_TYPE 255

/*
 * Receives one event: type is the "event:" value or NULL when none was
 * given, data the joined "data:" lines, NUL-terminated at data[len].
 * Both are valid during the call only.  Returns 0 to go on, -1 to stop (the
 * feed then fails with "stopped by consumer").
 */
typedef int (*sse_event_cb)(
    void *arg, const char *type, const char *data, size_t len);

struct sse;

/* Creates a parser; max_event 0 means SSE_MAX_EVENT. */
struct sse *sse_new(size_t max_event, sse_event_cb cb, void *arg);
int sse_feed(struct sse *, const void *data, size_t len);
/* Ends the stream: the last line, if unterminated, is taken as a line and a
 * pending event is dispatched. */
int sse_finish(struct sse *);
/* Why the parser failed (static string), or NULL. */
const char *sse_error(const struct sse *);
/* The last event ID ("id:" field), "" when none. */
const char *sse_last_id(const struct sse *);
/* Events dispatched so far. */
size_t sse_events(const struct sse *);
void sse_free(struct sse *);

/*
 * Guesses from the first bytes of a decoded body whether it is an event
 * stream (for a response without Content-Type): 1 yes, 0 no, -1 not enough
 * bytes to tell yet.  Yes means the first non-blank line is a comment or an
 * "event", "data", "id" or "retry" field.
 */
int sse_sniff(const void *data, size_t len);

#endif
