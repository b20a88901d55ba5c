/*
 * stream: one socket of the relay, plain or TLS, with an input and an
 * output evbuffer (engine-private).
 *
 * It replaces libevent's bufferevent_socket/bufferevent_openssl on the
 * relay's hot path, with the same shape (input, output, enable/disable,
 * read high-water and write low-water marks, read/write timeouts, one
 * event callback taking BEV_EVENT_* flags) but fewer system calls:
 *
 *   - Reads: one read(2) per readiness into a shared buffer; a short read
 *     means the socket is drained, so nothing reads again until epoll says
 *     so (no EAGAIN round trip, no FIONREAD).  TLS records are taken from
 *     those bytes by a BIO that reads the socket itself, so a record costs
 *     no extra read(2) for its 5-byte header.
 *   - Writes: output is written by a flush that runs once per turn of the
 *     loop, after the callbacks that produced it, straight to the socket;
 *     the write event is only watched while the kernel refuses bytes (no
 *     epoll_ctl per response).  Everything queued in one turn leaves in one
 *     write(2); for TLS, in as few records as it fits in (16 KiB each).
 *
 * Callbacks run from the stream's own event handlers, never from inside a
 * call the user made, and stream_free() may be called from any callback
 * (the memory goes when the last handler on the stack returns).
 */
#ifndef HALTON_ENGINE_STREAM_H
#define HALTON_ENGINE_STREAM_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h> /* BEV_EVENT_* */
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

struct stream;
struct stream_set;

typedef void (*stream_data_cb)(struct stream *, void *);
typedef void (*stream_event_cb)(struct stream *, short, void *);

/* The streams of one event loop: they share its flush turn. */
struct stream_set *stream_set_new(struct event_base *);
void stream_set_free(struct stream_set *);

/* A stream on a connected socket (owned: closed on free), or with fd -1
 * one that stream_connect_hostname() will connect. */
struct stream *stream_new(struct stream_set *, evutil_socket_t);
void stream_free(struct stream *);
void stream_setcb(
    struct stream *, stream_data_cb, stream_data_cb, stream_event_cb, void *);

struct evbuffer *stream_input(struct stream *);
struct evbuffer *stream_output(struct stream *);
/* Bytes queued for the socket that have not left the process. */
size_t stream_pending(struct stream *);
evutil_socket_t stream_fd(struct stream *);

/* EV_READ and/or EV_WRITE, as bufferevent_enable/disable. */
void stream_enable(struct stream *, short);
void stream_disable(struct stream *, short);
/* EV_READ: reading pauses while the input holds high bytes or more (0:
 * no limit).  EV_WRITE: the write callback runs when a write brought the
 * output down to low bytes or fewer. */
void stream_setwatermark(struct stream *, short, size_t, size_t);
/* Seconds without progress before BEV_EVENT_TIMEOUT (0: none); the timed
 * out direction is disabled, as with bufferevents.  During a TLS
 * handshake the read timeout counts from the handshake's start (or from
 * this call), not from the last byte read. */
void stream_set_timeouts(struct stream *, int, int);

/* Resolves host with dns (never blocking the loop) and connects;
 * BEV_EVENT_CONNECTED or BEV_EVENT_ERROR follow (errno holds the connect
 * error in the event callback; stream_dns_error() a resolver error).
 * Returns 0, or -1 if it could not start. */
int stream_connect_hostname(
    struct stream *, struct evdns_base *, int, const char *, int);
int stream_dns_error(struct stream *);

/* Starts TLS on a connected stream, server (accepting) or client side;
 * takes ownership of ssl.  Bytes already in the input are the first TLS
 * bytes; bytes already in the output leave before the first TLS byte, in
 * the clear.  BEV_EVENT_CONNECTED follows the handshake. */
int stream_start_tls(struct stream *, SSL *, int);
SSL *stream_ssl(struct stream *);
/* Whether an open stream holds nothing either way and has seen no EOF or
 * error: it may carry another exchange. */
int stream_is_clean(struct stream *);
/* Writes what the stream has queued now rather than in this loop turn's
 * flush, without calling back from inside: a write or event callback that
 * is due comes from the flush turn.  0, or -1 if the stream failed. */
int stream_flush_now(struct stream *);
/* The first OpenSSL error of the failure that ended the stream, or 0. */
unsigned long stream_ssl_error(struct stream *);

#endif
