/*
 * stream: one socket of the relay, plain or TLS (see stream.h).
 *
 * TLS runs over a BIO of our own whose read side is the socket through a
 * small queue (wire_in: bytes read but not yet consumed by OpenSSL) and
 * whose write side is a queue (wire_out) that the flush writes with one
 * writev(2).  One socket read per readiness serves every record it
 * carried; every record produced in one turn of the loop leaves in one
 * write.  Both queues are empty, and hold no memory, between exchanges.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "halton/util.h"
#include "halton/xmalloc.h"
#include "stream.h"

#define READ_CHUNK (64 * 1024)  /* one read(2) */
#define READ_MAX   (128 * 1024) /* read per readiness, then let others run */
#define RECORD_MAX (16 * 1024)  /* plaintext of one TLS record */
#define WIRE_MAX   (256 * 1024) /* TLS bytes queued before SSL_write waits */

enum stream_state {
	S_NEW,        /* no socket yet */
	S_RESOLVING,  /* stream_connect_hostname: waiting for DNS */
	S_CONNECTING, /* non-blocking connect(2) in progress */
	S_HANDSHAKE,  /* TLS handshake */
	S_OPEN,
	S_FAILED, /* error reported; no more I/O */
};

struct stream_set {
	struct event_base *base;
	struct event *flush_ev;
	int flush_pending;
	struct stream *dirty; /* streams with output to flush */
};

/* A resolution in flight; outlives its stream if that is freed first. */
struct stream_dns {
	struct stream *st;
	struct evdns_getaddrinfo_request *req;
};

struct stream {
	struct stream_set *set;
	evutil_socket_t fd;
	enum stream_state state;
	struct event *rev, *wev, *timer, *kick;
	int rev_on, wev_on;
	struct evbuffer *in, *out;
	struct evbuffer *wire_in, *wire_out; /* TLS only */
	SSL *ssl;
	unsigned long ssl_err;
	int dns_err;
	int sys_err;
	struct stream_dns *dns;

	stream_data_cb rcb, wcb;
	stream_event_cb ecb;
	void *arg;

	int user_read, user_write;
	int wm_paused; /* input at the high-water mark */
	int rd_eof;    /* no more reading: EOF or error seen */
	int need_write;
	int drained; /* the socket had nothing more since the last readiness */
	size_t rhigh, wlow;
	int rto, wto;
	uint64_t last_read, last_write;
	uint64_t timer_at;
	short kick_what;
	int kick_read; /* read without a readiness event (bytes are buffered) */

	int busy;
	int freed;
	int dirty;
	struct stream *dnext, *dprev;
	/* stream_flush_now: no callbacks from inside it; the ones it would
	 * have made are owed and made by the flush turn. */
	int quiet;
	int owed_write;  /* the write callback */
	short owed_fail; /* the event callback's what, 0 = none */
	int owed_err;
};

/* Shared by all streams of the (single-threaded) loop. */
static unsigned char read_buf[READ_CHUNK];
static unsigned char wire_buf[READ_CHUNK];
static BIO_METHOD *stream_bio_method;

static void update_events(struct stream *);
static void mark_dirty(struct stream *);
static void release_buffers(struct stream *);

/* OpenSSL's error queue must be empty before an SSL call for
 * SSL_get_error() to be right.  It almost always is: looking costs less
 * than clearing all of its slots every time. */
static inline void
err_clear(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

static void
real_free(struct stream *st)
{
	if (st->rev != NULL)
		event_free(st->rev);
	if (st->wev != NULL)
		event_free(st->wev);
	event_free(st->timer);
	event_free(st->kick);
	evbuffer_free(st->in);
	evbuffer_free(st->out);
	if (st->wire_in != NULL)
		evbuffer_free(st->wire_in);
	if (st->wire_out != NULL)
		evbuffer_free(st->wire_out);
	if (st->ssl != NULL)
		SSL_free(st->ssl);
	free(st);
}

/* Every handler entered from libevent brackets its work with enter/leave:
 * leave frees a stream that was freed meanwhile. */
static void
enter(struct stream *st)
{
	st->busy++;
}

static void
leave(struct stream *st)
{
	if (--st->busy == 0 && st->freed)
		real_free(st);
}

static int
reading_active(const struct stream *st)
{
	return st->state == S_HANDSHAKE ||
	    (st->state == S_OPEN && st->user_read && !st->wm_paused &&
	        !st->rd_eof);
}

static int
writing_active(const struct stream *st)
{
	return st->state == S_RESOLVING || st->state == S_CONNECTING ||
	    (st->user_write && st->state != S_FAILED &&
	        stream_pending((struct stream *)st) > 0);
}

/* Arms the timer for the earliest deadline; a timer that fires early
 * re-arms itself, so progress costs no event_add. */
static void
update_timer(struct stream *st)
{
	uint64_t d = 0, w;
	struct timeval tv;
	uint64_t now;

	if (st->rto > 0 && reading_active(st))
		d = st->last_read + (uint64_t)st->rto * 1000;
	if (st->wto > 0 && writing_active(st)) {
		w = st->last_write + (uint64_t)st->wto * 1000;
		if (d == 0 || w < d)
			d = w;
	}
	if (d == 0) {
		if (st->timer_at != 0) {
			event_del(st->timer);
			st->timer_at = 0;
		}
		return;
	}
	if (st->timer_at != 0 && st->timer_at <= d)
		return;
	now = time_mono_ms();
	w = d > now ? d - now : 0;
	tv.tv_sec = (time_t)(w / 1000);
	tv.tv_usec = (suseconds_t)(w % 1000) * 1000;
	event_add(st->timer, &tv);
	st->timer_at = d;
}

static void
update_events(struct stream *st)
{
	int r, w;

	if (st->freed)
		return;
	r = st->fd >= 0 && reading_active(st);
	w = st->fd >= 0 &&
	    (st->state == S_CONNECTING ||
	        (st->need_write && st->state != S_FAILED));
	if (st->rev != NULL && r != st->rev_on) {
		if (r)
			event_add(st->rev, NULL);
		else
			event_del(st->rev);
		st->rev_on = r;
	}
	if (st->wev != NULL && w != st->wev_on) {
		if (w)
			event_add(st->wev, NULL);
		else
			event_del(st->wev);
		st->wev_on = w;
	}
	update_timer(st);
}

/* Delivers events from a later turn of the loop (never from inside a call
 * the user made). */
static void
defer_event(struct stream *st, short what)
{
	st->kick_what |= what;
	event_active(st->kick, EV_TIMEOUT, 1);
}

/* Reports a fatal error: no more I/O in either direction. */
static void
fail(struct stream *st, short what, int err)
{
	st->state = S_FAILED;
	st->rd_eof = 1;
	st->need_write = 0;
	update_events(st);
	if (st->quiet) {
		st->owed_fail = what;
		st->owed_err = err;
		return;
	}
	if (st->ecb != NULL) {
		errno = err;
		st->ecb(st, what, st->arg);
	}
}

/* Keeps the failure's first OpenSSL error for stream_ssl_error() and
 * leaves the queue as it is for the event callback, which runs next (every
 * OpenSSL call of a stream clears the queue first). */
static void
record_ssl_error(struct stream *st)
{
	if (st->ssl_err == 0)
		st->ssl_err = ERR_peek_error();
}

/*
 * The BIO under OpenSSL.
 */

static int
bio_write_cb(BIO *b, const char *buf, int len)
{
	struct stream *st = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (evbuffer_get_length(st->wire_out) >= WIRE_MAX) {
		BIO_set_retry_write(b);
		return -1;
	}
	if (evbuffer_add(st->wire_out, buf, (size_t)len) != 0)
		return -1;
	return len;
}

static int
bio_read_cb(BIO *b, char *buf, int len)
{
	struct stream *st = BIO_get_data(b);
	ssize_t n;
	size_t k;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (evbuffer_get_length(st->wire_in) > 0)
		return evbuffer_remove(st->wire_in, buf, (size_t)len);
	if (st->drained || st->fd < 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	n = read(st->fd, wire_buf, sizeof(wire_buf));
	if (n > 0) {
		/* During the handshake the read timeout runs from its start:
		 * a peer sending a byte now and then must not keep a
		 * handshake (and what it holds) open for ever. */
		if (st->state != S_HANDSHAKE)
			st->last_read = time_mono_ms();
		if ((size_t)n < sizeof(wire_buf))
			st->drained = 1;
		k = (size_t)n < (size_t)len ? (size_t)n : (size_t)len;
		memcpy(buf, wire_buf, k);
		if ((size_t)n > k)
			evbuffer_add(st->wire_in, wire_buf + k, (size_t)n - k);
		return (int)k;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		st->drained = 1;
		BIO_set_retry_read(b);
		return -1;
	}
	st->sys_err = errno;
	return -1;
}

static long
bio_ctrl_cb(BIO *b, int cmd, long num, void *ptr)
{
	struct stream *st = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
	case BIO_CTRL_DUP:
		return 1;
	case BIO_CTRL_PENDING:
		return st != NULL ? (long)evbuffer_get_length(st->wire_in) : 0;
	case BIO_CTRL_WPENDING:
		return st != NULL ? (long)evbuffer_get_length(st->wire_out) : 0;
	default:
		return 0;
	}
}

static int
bio_create_cb(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *
bio_method(void)
{
	BIO_METHOD *m;

	if (stream_bio_method != NULL)
		return stream_bio_method;
	m = BIO_meth_new(
	    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "halton-stream");
	if (m == NULL)
		return NULL;
	BIO_meth_set_write(m, bio_write_cb);
	BIO_meth_set_read(m, bio_read_cb);
	BIO_meth_set_ctrl(m, bio_ctrl_cb);
	BIO_meth_set_create(m, bio_create_cb);
	stream_bio_method = m;
	return m;
}

/*
 * Writing.
 */

/* Moves output into TLS records and everything queued onto the socket,
 * until the kernel refuses bytes; then watches the write event.  Runs in
 * the flush turn or on write readiness. */
static void
do_flush(struct stream *st)
{
	struct evbuffer *buf;
	size_t len, n;
	int r, blocked = 0, wrote = 0;
	unsigned char *p;

	if (st->fd < 0 || (st->state != S_OPEN && st->state != S_HANDSHAKE))
		return;
	for (;;) {
		if (st->ssl != NULL && st->state == S_OPEN && st->user_write) {
			while ((len = evbuffer_get_length(st->out)) > 0 &&
			    evbuffer_get_length(st->wire_out) < WIRE_MAX) {
				n = len < RECORD_MAX ? len : RECORD_MAX;
				p = evbuffer_pullup(st->out, (ev_ssize_t)n);
				err_clear();
				r = SSL_write(st->ssl, p, (int)n);
				if (r > 0) {
					evbuffer_drain(st->out, (size_t)r);
					continue;
				}
				r = SSL_get_error(st->ssl, r);
				if (r == SSL_ERROR_WANT_WRITE ||
				    r == SSL_ERROR_WANT_READ)
					break;
				record_ssl_error(st);
				fail(st, BEV_EVENT_ERROR | BEV_EVENT_WRITING,
				    st->sys_err);
				return;
			}
		}
		buf = st->ssl != NULL ? st->wire_out
		                      : (st->user_write ? st->out : NULL);
		if (buf == NULL || (len = evbuffer_get_length(buf)) == 0)
			break;
		r = evbuffer_write(buf, st->fd);
		if (r < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR) {
				fail(st, BEV_EVENT_ERROR | BEV_EVENT_WRITING,
				    errno);
				return;
			}
			blocked = 1;
			break;
		}
		wrote = 1;
		st->last_write = time_mono_ms();
		if ((size_t)r < len) {
			blocked = 1; /* the kernel took what it could */
			break;
		}
		if (st->ssl == NULL || st->state != S_OPEN ||
		    evbuffer_get_length(st->out) == 0)
			break;
	}
	st->need_write = blocked;
	update_events(st);
	if (!blocked)
		release_buffers(st);
	if ((wrote || st->owed_write) && st->wcb != NULL &&
	    st->state == S_OPEN && stream_pending(st) <= st->wlow) {
		if (st->quiet) {
			st->owed_write = 1;
			return;
		}
		st->owed_write = 0;
		st->wcb(st, st->arg);
	}
}

/* An idle TLS stream (nothing buffered either way) gives OpenSSL's record
 * buffers back: SSL_MODE_RELEASE_BUFFERS misses the read buffer that a
 * read finding nothing allocates, 16 KiB per idle connection. */
static void
release_buffers(struct stream *st)
{
	if (st->ssl != NULL && st->state == S_OPEN &&
	    evbuffer_get_length(st->wire_in) == 0 &&
	    evbuffer_get_length(st->wire_out) == 0 && !SSL_has_pending(st->ssl))
		(void)SSL_free_buffers(st->ssl);
}

static void
mark_dirty(struct stream *st)
{
	struct stream_set *set = st->set;

	if (st->dirty || st->freed)
		return;
	st->dirty = 1;
	st->dprev = NULL;
	st->dnext = set->dirty;
	if (set->dirty != NULL)
		set->dirty->dprev = st;
	set->dirty = st;
	if (!set->flush_pending) {
		set->flush_pending = 1;
		event_active(set->flush_ev, EV_TIMEOUT, 1);
	}
}

static void
unlink_dirty(struct stream *st)
{
	if (!st->dirty)
		return;
	if (st->dprev != NULL)
		st->dprev->dnext = st->dnext;
	else
		st->set->dirty = st->dnext;
	if (st->dnext != NULL)
		st->dnext->dprev = st->dprev;
	st->dirty = 0;
	st->dnext = st->dprev = NULL;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream_set *set = arg;
	struct stream *st;

	(void)fd;
	(void)what;
	set->flush_pending = 0;
	while ((st = set->dirty) != NULL) {
		unlink_dirty(st);
		enter(st);
		if (st->owed_fail != 0) {
			short w = st->owed_fail;

			st->owed_fail = 0;
			if (st->ecb != NULL) {
				errno = st->owed_err;
				st->ecb(st, w, st->arg);
			}
		} else
			do_flush(st);
		leave(st);
	}
}

int
stream_flush_now(struct stream *st)
{
	if (!st->dirty || st->freed || st->state != S_OPEN)
		return 0;
	unlink_dirty(st);
	st->quiet++;
	do_flush(st); /* quiet: no callback, so st cannot be freed inside */
	st->quiet--;
	if (st->owed_write || st->owed_fail != 0)
		mark_dirty(st); /* the callbacks, from the flush turn */
	return st->state == S_OPEN ? 0 : -1;
}

static void
out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct stream *st = arg;

	(void)b;
	if (info->n_added == 0)
		return;
	if (info->orig_size == 0 &&
	    (st->wire_out == NULL || evbuffer_get_length(st->wire_out) == 0))
		st->last_write = time_mono_ms();
	mark_dirty(st);
}

/*
 * Reading.
 */

/* Reads in a later turn although the socket may have nothing: bytes wait
 * inside the process.  Not event_active() on the read event: libevent
 * 2.1's event_add() of an event that is active but not pending does not
 * register it with the backend, and the socket would never be read
 * again. */
static void
kick_read(struct stream *st)
{
	st->kick_read = 1;
	event_active(st->kick, EV_TIMEOUT, 1);
}

/* Whether TLS bytes wait inside the process (no readiness will come for
 * them): queued, or inside the SSL (decrypted or not yet). */
static int
tls_buffered(struct stream *st)
{
	return st->ssl != NULL &&
	    (evbuffer_get_length(st->wire_in) > 0 || SSL_has_pending(st->ssl));
}

static void
in_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct stream *st = arg;

	if (info->n_deleted == 0 || !st->wm_paused || st->freed)
		return;
	if (st->rhigh != 0 && evbuffer_get_length(b) >= st->rhigh)
		return;
	st->wm_paused = 0;
	update_events(st);
	if (reading_active(st) && tls_buffered(st))
		kick_read(st);
}

/* One TLS handshake step.  Returns 1 when the stream is open (and still
 * alive), 0 to wait, -1 when it failed or was freed. */
static int
handshake_step(struct stream *st)
{
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(st->ssl);
	if (evbuffer_get_length(st->wire_out) > 0)
		mark_dirty(st);
	if (r == 1) {
		st->state = S_OPEN;
		st->last_read = st->last_write = time_mono_ms();
		update_events(st);
		if (st->ecb != NULL)
			st->ecb(st, BEV_EVENT_CONNECTED, st->arg);
		return st->freed || st->state != S_OPEN ? -1 : 1;
	}
	r = SSL_get_error(st->ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
		update_events(st);
		return 0;
	}
	record_ssl_error(st);
	fail(st, BEV_EVENT_ERROR | BEV_EVENT_READING, st->sys_err);
	return -1;
}

static void
do_read(struct stream *st)
{
	size_t got = 0;
	short ev = 0;
	int err = 0, r;
	ssize_t n;

	if (st->state == S_HANDSHAKE && handshake_step(st) <= 0)
		return;
	if (st->state != S_OPEN || !reading_active(st))
		return;
	for (;;) {
		if (st->rhigh != 0 &&
		    evbuffer_get_length(st->in) >= st->rhigh) {
			st->wm_paused = 1;
			break;
		}
		if (got >= READ_MAX) {
			if (tls_buffered(st))
				kick_read(st);
			break;
		}
		if (st->ssl != NULL) {
			/* Nothing in the socket, the queue or the SSL: an
			 * SSL_read() would only allocate a 16 KiB record
			 * buffer and keep it for an idle connection. */
			if (st->drained &&
			    evbuffer_get_length(st->wire_in) == 0 &&
			    !SSL_has_pending(st->ssl))
				break;
			err_clear();
			r = SSL_read(st->ssl, read_buf, sizeof(read_buf));
			if (r > 0) {
				evbuffer_add(st->in, read_buf, (size_t)r);
				got += (size_t)r;
				continue;
			}
			r = SSL_get_error(st->ssl, r);
			if (r == SSL_ERROR_WANT_READ ||
			    r == SSL_ERROR_WANT_WRITE)
				break;
			if (r == SSL_ERROR_ZERO_RETURN)
				ev = BEV_EVENT_EOF;
			else {
				record_ssl_error(st);
				ev = BEV_EVENT_ERROR;
				err = st->sys_err;
			}
			break;
		}
		if (st->drained)
			break;
		n = read(st->fd, read_buf, sizeof(read_buf));
		if (n > 0) {
			evbuffer_add(st->in, read_buf, (size_t)n);
			got += (size_t)n;
			if ((size_t)n < sizeof(read_buf))
				st->drained = 1;
			continue;
		}
		if (n == 0)
			ev = BEV_EVENT_EOF;
		else if (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR)
			st->drained = 1;
		else {
			ev = BEV_EVENT_ERROR;
			err = errno;
		}
		break;
	}
	if (got > 0)
		st->last_read = time_mono_ms();
	if (st->ssl != NULL && evbuffer_get_length(st->wire_out) > 0)
		mark_dirty(st);
	if (ev != 0)
		st->rd_eof = 1;
	else if (st->drained)
		release_buffers(st);
	update_events(st);
	if (got > 0 && st->rcb != NULL) {
		st->rcb(st, st->arg);
		if (st->freed)
			return;
	}
	if (ev == BEV_EVENT_ERROR) {
		fail(st, ev | BEV_EVENT_READING, err);
		return;
	}
	if (ev != 0 && st->ecb != NULL)
		st->ecb(st, ev | BEV_EVENT_READING, st->arg);
}

/*
 * Handlers.
 */

static void
read_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;

	(void)fd;
	(void)what;
	enter(st);
	st->drained = 0;
	do_read(st);
	leave(st);
}

static void
write_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	(void)what;
	enter(st);
	if (st->state == S_CONNECTING) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err == EINPROGRESS)
			goto out;
		if (err != 0) {
			st->sys_err = err;
			fail(st, BEV_EVENT_ERROR, err);
			goto out;
		}
		st->state = S_OPEN;
		st->last_read = st->last_write = time_mono_ms();
		update_events(st);
		if (st->ecb != NULL)
			st->ecb(st, BEV_EVENT_CONNECTED, st->arg);
		if (!st->freed && evbuffer_get_length(st->out) > 0)
			mark_dirty(st);
		goto out;
	}
	st->need_write = 0;
	do_flush(st);
out:
	leave(st);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	uint64_t now = time_mono_ms();
	short ev = 0;

	(void)fd;
	(void)what;
	enter(st);
	st->timer_at = 0;
	if (st->rto > 0 && reading_active(st) &&
	    now >= st->last_read + (uint64_t)st->rto * 1000) {
		ev |= BEV_EVENT_READING;
		st->user_read = 0;
	}
	if (st->wto > 0 && writing_active(st) &&
	    now >= st->last_write + (uint64_t)st->wto * 1000) {
		ev |= BEV_EVENT_WRITING;
		st->user_write = 0;
	}
	update_events(st);
	if (ev != 0 && st->ecb != NULL)
		st->ecb(st, BEV_EVENT_TIMEOUT | ev, st->arg);
	leave(st);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	short ev = st->kick_what;

	(void)fd;
	(void)what;
	enter(st);
	st->kick_what = 0;
	if (st->kick_read) {
		st->kick_read = 0;
		st->drained = 0;
		do_read(st);
		if (st->freed)
			goto out;
	}
	if (ev & BEV_EVENT_ERROR)
		fail(st, ev, st->sys_err);
	else if (ev != 0) {
		if (ev & BEV_EVENT_CONNECTED) {
			st->last_read = st->last_write = time_mono_ms();
			update_events(st);
		}
		if (st->ecb != NULL)
			st->ecb(st, ev, st->arg);
		if (!st->freed && evbuffer_get_length(st->out) > 0)
			mark_dirty(st);
	}
out:
	leave(st);
}

/*
 * API.
 */

struct stream_set *
stream_set_new(struct event_base *base)
{
	struct stream_set *set = xcalloc(1, sizeof(*set));

	set->base = base;
	set->flush_ev = event_new(base, -1, 0, flush_cb, set);
	if (set->flush_ev == NULL) {
		free(set);
		return NULL;
	}
	return set;
}

void
stream_set_free(struct stream_set *set)
{
	if (set == NULL)
		return;
	event_free(set->flush_ev);
	free(set);
}

static int
attach_fd(struct stream *st, evutil_socket_t fd)
{
	struct event_base *base = st->set->base;

	st->fd = fd;
	st->rev = event_new(base, fd, EV_READ | EV_PERSIST, read_ready_cb, st);
	st->wev =
	    event_new(base, fd, EV_WRITE | EV_PERSIST, write_ready_cb, st);
	return st->rev != NULL && st->wev != NULL ? 0 : -1;
}

struct stream *
stream_new(struct stream_set *set, evutil_socket_t fd)
{
	struct stream *st = xcalloc(1, sizeof(*st));

	st->set = set;
	st->fd = -1;
	st->in = evbuffer_new();
	st->out = evbuffer_new();
	st->timer = evtimer_new(set->base, timer_cb, st);
	st->kick = event_new(set->base, -1, 0, kick_cb, st);
	st->user_write = 1;
	st->last_read = st->last_write = time_mono_ms();
	if (st->in == NULL || st->out == NULL || st->timer == NULL ||
	    st->kick == NULL)
		goto fail;
	evbuffer_add_cb(st->out, out_cb, st);
	evbuffer_add_cb(st->in, in_cb, st);
	if (fd >= 0) {
		if (attach_fd(st, fd) != 0)
			goto fail;
		st->state = S_OPEN;
	}
	return st;
fail:
	st->fd = -1;
	real_free(st);
	return NULL;
}

void
stream_free(struct stream *st)
{
	if (st == NULL || st->freed)
		return;
	if (st->dns != NULL) {
		struct stream_dns *d = st->dns;

		st->dns = NULL;
		d->st = NULL;
		if (d->req != NULL)
			evdns_getaddrinfo_cancel(d->req);
	}
	unlink_dirty(st);
	if (st->rev != NULL)
		event_del(st->rev);
	if (st->wev != NULL)
		event_del(st->wev);
	event_del(st->timer);
	event_del(st->kick);
	if (st->ssl != NULL && st->state == S_OPEN && st->fd >= 0) {
		/* close_notify, best effort (the socket is non-blocking). */
		ERR_clear_error();
		(void)SSL_shutdown(st->ssl);
		ERR_clear_error();
		if (evbuffer_get_length(st->wire_out) > 0)
			(void)evbuffer_write(st->wire_out, st->fd);
	}
	if (st->fd >= 0)
		evutil_closesocket(st->fd);
	st->fd = -1;
	st->freed = 1;
	if (st->busy == 0)
		real_free(st);
}

void
stream_setcb(struct stream *st, stream_data_cb rcb, stream_data_cb wcb,
    stream_event_cb ecb, void *arg)
{
	st->rcb = rcb;
	st->wcb = wcb;
	st->ecb = ecb;
	st->arg = arg;
}

struct evbuffer *
stream_input(struct stream *st)
{
	return st->in;
}

struct evbuffer *
stream_output(struct stream *st)
{
	return st->out;
}

size_t
stream_pending(struct stream *st)
{
	return evbuffer_get_length(st->out) +
	    (st->wire_out != NULL ? evbuffer_get_length(st->wire_out) : 0);
}

evutil_socket_t
stream_fd(struct stream *st)
{
	return st->fd;
}

void
stream_enable(struct stream *st, short what)
{
	uint64_t now = time_mono_ms();

	if ((what & EV_READ) && !st->user_read) {
		st->user_read = 1;
		st->last_read = now;
		if (st->state == S_OPEN && tls_buffered(st) &&
		    reading_active(st))
			kick_read(st);
	}
	if ((what & EV_WRITE) && !st->user_write) {
		st->user_write = 1;
		st->last_write = now;
		if (stream_pending(st) > 0)
			mark_dirty(st);
	}
	update_events(st);
}

void
stream_disable(struct stream *st, short what)
{
	if (what & EV_READ)
		st->user_read = 0;
	if (what & EV_WRITE)
		st->user_write = 0;
	update_events(st);
}

void
stream_setwatermark(struct stream *st, short what, size_t low, size_t high)
{
	if (what & EV_READ) {
		st->rhigh = high;
		if (st->wm_paused &&
		    (high == 0 || evbuffer_get_length(st->in) < high)) {
			st->wm_paused = 0;
			update_events(st);
			if (reading_active(st) && tls_buffered(st))
				kick_read(st);
		}
	}
	if (what & EV_WRITE)
		st->wlow = low;
}

void
stream_set_timeouts(struct stream *st, int read_s, int write_s)
{
	st->rto = read_s > 0 ? read_s : 0;
	st->wto = write_s > 0 ? write_s : 0;
	st->last_read = st->last_write = time_mono_ms();
	update_timer(st);
}

/* A resolution or connect that failed before any I/O: reported from the
 * next turn of the loop. */
static void
connect_failed(struct stream *st, int err)
{
	st->sys_err = err;
	st->state = S_FAILED;
	defer_event(st, BEV_EVENT_ERROR);
}

static void
start_connect(struct stream *st, const struct evutil_addrinfo *ai)
{
	evutil_socket_t fd;

	if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) < 0) {
		connect_failed(st, errno);
		return;
	}
	if (evutil_make_socket_nonblocking(fd) != 0 ||
	    evutil_make_socket_closeonexec(fd) != 0 || attach_fd(st, fd) != 0) {
		if (st->fd < 0)
			evutil_closesocket(fd);
		connect_failed(st, errno);
		return;
	}
	if (connect(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0) {
		st->state = S_OPEN;
		defer_event(st, BEV_EVENT_CONNECTED);
		return;
	}
	if (errno != EINPROGRESS && errno != EINTR) {
		connect_failed(st, errno);
		return;
	}
	st->state = S_CONNECTING;
	st->last_write = time_mono_ms();
	update_events(st);
}

static void
dns_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct stream_dns *d = arg;
	struct stream *st = d->st;

	if (st == NULL) { /* the stream was freed; this is the cancel */
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		free(d);
		return;
	}
	st->dns = NULL;
	free(d);
	if (err != 0 || ai == NULL) {
		st->dns_err = err != 0 ? err : EVUTIL_EAI_FAIL;
		connect_failed(st, 0);
	} else
		start_connect(st, ai);
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
}

int
stream_connect_hostname(struct stream *st, struct evdns_base *dns, int family,
    const char *host, int port)
{
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;
	struct stream_dns *d;
	char portstr[16];

	if (st->state != S_NEW || dns == NULL)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(portstr, sizeof(portstr), "%d", port);
	st->state = S_RESOLVING;
	st->last_write = time_mono_ms();
	update_timer(st);
	d = xcalloc(1, sizeof(*d));
	d->st = st;
	st->dns = d;
	req = evdns_getaddrinfo(dns, host, portstr, &hints, dns_cb, d);
	/* NULL when the answer came at once (dns_cb already ran). */
	if (st->dns == d)
		d->req = req;
	return 0;
}

int
stream_dns_error(struct stream *st)
{
	return st->dns_err;
}

int
stream_start_tls(struct stream *st, SSL *ssl, int server)
{
	BIO_METHOD *m;
	BIO *b;

	if (st->fd < 0 || st->state != S_OPEN || st->ssl != NULL ||
	    (m = bio_method()) == NULL || (b = BIO_new(m)) == NULL)
		return -1;
	st->wire_in = evbuffer_new();
	st->wire_out = evbuffer_new();
	if (st->wire_in == NULL || st->wire_out == NULL) {
		BIO_free(b);
		return -1;
	}
	BIO_set_data(b, st);
	SSL_set_bio(ssl, b, b);
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	st->ssl = ssl;
	/* What was read in the clear is the peer's first TLS bytes; what
	 * was queued in the clear leaves first. */
	evbuffer_add_buffer(st->wire_in, st->in);
	evbuffer_add_buffer(st->wire_out, st->out);
	st->state = S_HANDSHAKE;
	st->last_read = st->last_write = time_mono_ms();
	if (evbuffer_get_length(st->wire_out) > 0)
		mark_dirty(st);
	update_events(st);
	if (!server || evbuffer_get_length(st->wire_in) > 0)
		kick_read(st);
	return 0;
}

int
stream_is_clean(struct stream *st)
{
	return !st->freed && st->state == S_OPEN && !st->rd_eof &&
	    !st->need_write && stream_pending(st) == 0 &&
	    evbuffer_get_length(st->in) == 0 && !tls_buffered(st);
}

SSL *
stream_ssl(struct stream *st)
{
	return st->ssl;
}

unsigned long
stream_ssl_error(struct stream *st)
{
	return st->ssl_err;
}
