/*
 * http1: an allocation-free HTTP/1.1 head parser and chunked-body decoder
 * (picohttpparser style).
 *
 * The head parsers take the bytes received so far and return the number of
 * bytes the head occupies (request line/status line, headers and the empty
 * line), HTTP1_NEED_MORE when the head is not complete yet, HTTP1_ERROR when
 * what was received can never become a valid head, or HTTP1_TOO_LARGE when
 * the head exceeds HTTP1_MAX_HEAD bytes or HTTP1_MAX_HEADERS fields (the
 * caller answers 431).  Every returned pointer points into the caller's
 * buffer; nothing is copied and nothing is allocated.  Errors are detected
 * as early as possible: a malformed prefix is rejected before the head is
 * complete.
 *
 * The chunked decoder is a state machine that accepts any split of the
 * body; it reports where the payload bytes are so that the caller can both
 * forward the framed bytes unchanged and observe the de-chunked payload.
 */
#ifndef HALTON_HTTP1_H
#define HALTON_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEAD    (64 * 1024)
#define HTTP1_MAX_HEADERS 128
/* A chunk-size line (size + extensions) and each trailer line. */
#define HTTP1_MAX_CHUNK_LINE 4096

#define HTTP1_ERROR     -1
#define HTTP1_NEED_MORE -2
#define HTTP1_TOO_LARGE -3

struct http1_header {
	const char *name;
	size_t name_len;
	const char *value; /* without leading/trailing white space */
	size_t value_len;
};

struct http1_request {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int minor_version; /* HTTP/1.x */
	struct http1_header headers[HTTP1_MAX_HEADERS];
	size_t nheaders;
};

struct http1_response {
	int minor_version;
	int status;
	const char *reason;
	size_t reason_len;
	struct http1_header headers[HTTP1_MAX_HEADERS];
	size_t nheaders;
};

/* Parses a request head from buf[0..len).  Returns the head length (> 0),
 * HTTP1_NEED_MORE, HTTP1_ERROR or HTTP1_TOO_LARGE; req is filled only on
 * success. */
int http1_parse_request(const char *, size_t, struct http1_request *);
/* The same for a response head. */
int http1_parse_response(const char *, size_t, struct http1_response *);

/* How a message body is delimited. */
enum http1_body {
	HTTP1_BODY_NONE,    /* no body */
	HTTP1_BODY_LENGTH,  /* Content-Length bytes */
	HTTP1_BODY_CHUNKED, /* Transfer-Encoding: chunked */
	HTTP1_BODY_CLOSE,   /* until the connection closes (responses) */
};

struct http1_framing {
	enum http1_body body;
	uint64_t length;     /* HTTP1_BODY_LENGTH */
	int keep_alive;      /* the connection may carry another message */
	int upgrade;         /* Connection: upgrade + Upgrade: present */
	int expect_continue; /* Expect: 100-continue (requests) */
};

/* Decides how a request body is framed.  Returns 0, or HTTP1_ERROR when the
 * request must be refused with 400: both Content-Length and
 * Transfer-Encoding, Content-Length values that differ or are not numbers,
 * a Transfer-Encoding whose last coding is not chunked. */
int http1_request_framing(const struct http1_request *, struct http1_framing *);
/* Decides how a response body is framed, given the request method (HEAD
 * and CONNECT responses, 1xx, 204 and 304 have no body).  Returns 0, or
 * HTTP1_ERROR for an ambiguous or malformed framing (the caller answers
 * 502). */
int http1_response_framing(const struct http1_response *, const char *, size_t,
    struct http1_framing *);

/* Finds a header (case-insensitive name); the first one, or NULL. */
const struct http1_header *http1_find_header(
    const struct http1_header *, size_t, const char *);
/* Whether a comma-separated header value list contains token
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
int http1_value_has_token(const char *, size_t, const char *);

/* The chunked decoder.  Zero it with http1_chunked_init. */
struct http1_chunked {
	int state;
	uint64_t remaining; /* payload bytes left in the chunk */
	size_t line_len;    /* bytes of the current size/trailer line */
	size_t trailer_len; /* bytes of trailers so far */
	int ndigits;
};

void http1_chunked_init(struct http1_chunked *);
/* Feeds buf[0..len).  Returns the number of bytes consumed (0 only when
 * len is 0 or the body already ended) or HTTP1_ERROR.  When the consumed
 * bytes include payload, *data_off and *data_len locate it in buf (one
 * span per call; call again with the rest); otherwise *data_len is 0.
 * Decoding stops right after the last byte of the body (the empty line
 * after the trailers), so bytes of a following message are not
 * consumed. */
long http1_chunked_feed(
    struct http1_chunked *, const char *, size_t, size_t *, size_t *);
/* Whether the terminating chunk and trailers have been consumed. */
int http1_chunked_done(const struct http1_chunked *);

#endif
