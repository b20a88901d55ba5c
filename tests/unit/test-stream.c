/*
 * The relay's plain streams over a socketpair: bytes in and out, several
 * pieces queued in one turn leaving in one write, the read high-water mark,
 * EOF after the last bytes, a write the peer is slow to take, freeing a
 * stream from its own callback, the read timeout, and a TLS handshake's
 * read timeout.  TLS streams are exercised end to end through the daemon
 * (tests/e2e).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "../../src/engine/stream.h"

struct fixture {
	struct event_base *base;
	struct stream_set *set;
	struct stream *st;
	int peer;
	size_t reads;  /* read callbacks */
	size_t writes; /* write callbacks */
	short events;  /* event callback flags, or-ed */
	int free_on_read;
};

static void
read_cb(struct stream *st, void *arg)
{
	struct fixture *f = arg;

	f->reads++;
	if (f->free_on_read) {
		stream_free(st);
		f->st = NULL;
	}
}

static void
write_cb(struct stream *st, void *arg)
{
	struct fixture *f = arg;

	f->writes++;
}

static void
event_cb(struct stream *st, short what, void *arg)
{
	struct fixture *f = arg;

	f->events |= what;
}

static int
setup(struct fixture *f)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -1;
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	f->peer = sv[1];
	f->base = event_base_new();
	f->set = stream_set_new(f->base);
	f->st = stream_new(f->set, sv[0]);
	if (f->base == NULL || f->set == NULL || f->st == NULL)
		return -1;
	stream_setcb(f->st, read_cb, write_cb, event_cb, f);
	stream_enable(f->st, EV_READ | EV_WRITE);
	return 0;
}

static void
teardown(struct fixture *f)
{
	if (f->st != NULL)
		stream_free(f->st);
	stream_set_free(f->set);
	event_base_free(f->base);
	close(f->peer);
}

/* Runs a few non-blocking turns of the loop. */
static void
turns(struct fixture *f, int n)
{
	while (n-- > 0)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void
test_bytes_in_and_out(void)
{
	struct fixture f;
	char buf[64];
	ssize_t n;

	CHECK_INT(setup(&f), 0);
	CHECK_INT((int)write(f.peer, "hello", 5), 5);
	turns(&f, 3);
	CHECK_INT((int)f.reads, 1);
	CHECK_INT((int)evbuffer_get_length(stream_input(f.st)), 5);
	CHECK(memcmp(evbuffer_pullup(stream_input(f.st), -1), "hello", 5) == 0);
	/* Three pieces queued in one turn leave in that turn's flush. */
	evbuffer_add(stream_output(f.st), "abc", 3);
	evbuffer_add(stream_output(f.st), "def", 3);
	evbuffer_add_printf(stream_output(f.st), "%d", 42);
	CHECK_INT((int)stream_pending(f.st), 8);
	turns(&f, 3);
	CHECK_INT((int)stream_pending(f.st), 0);
	n = read(f.peer, buf, sizeof(buf));
	CHECK_INT((int)n, 8);
	CHECK(memcmp(buf, "abcdef42", 8) == 0);
	CHECK_INT((int)f.writes, 1);
	CHECK_INT(f.events, 0);
	teardown(&f);
}

static void
test_high_water_pauses_reading(void)
{
	struct fixture f;
	char buf[5000];

	memset(buf, 'x', sizeof(buf));
	CHECK_INT(setup(&f), 0);
	stream_setwatermark(f.st, EV_READ, 0, 4096);
	CHECK_INT((int)write(f.peer, buf, 5000), 5000);
	turns(&f, 3);
	CHECK_INT((int)evbuffer_get_length(stream_input(f.st)), 5000);
	/* At the mark: what comes next stays in the socket. */
	CHECK_INT((int)write(f.peer, buf, 3000), 3000);
	turns(&f, 5);
	CHECK_INT((int)evbuffer_get_length(stream_input(f.st)), 5000);
	CHECK_INT((int)f.reads, 1);
	/* Draining below the mark resumes reading. */
	evbuffer_drain(stream_input(f.st), 5000);
	turns(&f, 3);
	CHECK_INT((int)evbuffer_get_length(stream_input(f.st)), 3000);
	CHECK_INT((int)f.reads, 2);
	teardown(&f);
}

static void
test_eof_after_the_last_bytes(void)
{
	struct fixture f;

	CHECK_INT(setup(&f), 0);
	CHECK_INT((int)write(f.peer, "tail", 4), 4);
	shutdown(f.peer, SHUT_WR);
	turns(&f, 3);
	CHECK_INT((int)f.reads, 1);
	CHECK_INT((int)evbuffer_get_length(stream_input(f.st)), 4);
	CHECK_INT(f.events, BEV_EVENT_EOF | BEV_EVENT_READING);
	teardown(&f);
}

/* stream_flush_now writes at once, with no callback from inside it: the
 * write callback it makes due comes from the next turn's flush. */
static void
test_flush_now(void)
{
	struct fixture f;
	char buf[64];
	ssize_t n;

	CHECK_INT(setup(&f), 0);
	evbuffer_add(stream_output(f.st), "early", 5);
	CHECK_INT(stream_flush_now(f.st), 0);
	n = read(f.peer, buf, sizeof(buf)); /* before any turn of the loop */
	CHECK_INT((int)n, 5);
	CHECK(n == 5 && memcmp(buf, "early", 5) == 0);
	CHECK_INT((int)stream_pending(f.st), 0);
	CHECK_INT((int)f.writes, 0); /* owed, not made from inside */
	turns(&f, 2);
	CHECK_INT((int)f.writes, 1);
	/* Nothing queued: nothing to do, no callback owed. */
	CHECK_INT(stream_flush_now(f.st), 0);
	turns(&f, 2);
	CHECK_INT((int)f.writes, 1);
	CHECK_INT(f.events, 0);
	teardown(&f);
}

/* A write that fails inside stream_flush_now: -1, and the event callback
 * comes from the next turn, not from inside. */
static void
test_flush_now_failure(void)
{
	struct fixture f;

	CHECK_INT(setup(&f), 0);
	signal(SIGPIPE, SIG_IGN); /* as the daemon does */
	close(f.peer);
	f.peer = open("/dev/null", O_RDONLY); /* for teardown's close */
	evbuffer_add(stream_output(f.st), "lost", 4);
	CHECK_INT(stream_flush_now(f.st), -1);
	CHECK_INT(f.events, 0);
	turns(&f, 2);
	CHECK(f.events & BEV_EVENT_ERROR);
	CHECK(f.events & BEV_EVENT_WRITING);
	CHECK_INT((int)f.writes, 0);
	teardown(&f);
}

static void
test_slow_peer_then_write_callback(void)
{
	struct fixture f;
	size_t total = 4 * 1024 * 1024, got = 0;
	char *big = malloc(total), buf[65536];
	ssize_t n;
	int spins = 0;

	CHECK(big != NULL);
	memset(big, 'y', total);
	CHECK_INT(setup(&f), 0);
	evbuffer_add(stream_output(f.st), big, total);
	turns(&f, 3);
	/* The socket buffer took what it could; the rest waits. */
	CHECK(stream_pending(f.st) > 0);
	CHECK_INT((int)f.writes, 0);
	while (got < total && spins++ < 100000) {
		n = read(f.peer, buf, sizeof(buf));
		if (n > 0)
			got += (size_t)n;
		turns(&f, 1);
	}
	CHECK_INT((int)(got == total), 1);
	CHECK_INT((int)stream_pending(f.st), 0);
	/* Once, when the last byte left (low-water mark 0). */
	CHECK_INT((int)f.writes, 1);
	CHECK_INT(f.events, 0);
	free(big);
	teardown(&f);
}

static void
test_free_from_its_own_callback(void)
{
	struct fixture f;
	char c;

	CHECK_INT(setup(&f), 0);
	f.free_on_read = 1;
	CHECK_INT((int)write(f.peer, "bye", 3), 3);
	turns(&f, 3);
	CHECK_INT((int)f.reads, 1);
	CHECK(f.st == NULL);
	/* The socket was closed with the stream. */
	CHECK_INT((int)read(f.peer, &c, 1), 0);
	teardown(&f);
}

static void
test_read_timeout(void)
{
	struct fixture f;

	CHECK_INT(setup(&f), 0);
	stream_set_timeouts(f.st, 1, 0);
	event_base_dispatch(f.base); /* returns when nothing is pending */
	CHECK_INT(f.events, BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
	/* Reading was disabled, as with bufferevents; enabling it again
	 * arms the timeout again. */
	f.events = 0;
	stream_enable(f.st, EV_READ);
	CHECK_INT((int)write(f.peer, "late", 4), 4);
	turns(&f, 3);
	CHECK_INT((int)f.reads, 1);
	CHECK_INT(f.events, 0);
	teardown(&f);
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* A TLS handshake's read timeout counts from its start: a peer sending a
 * ClientHello one byte every 300 ms does not keep a 1 s timeout from
 * firing (a plain stream's would be pushed back by every byte). */
static void
test_handshake_timeout_from_its_start(void)
{
	static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01";
	struct timeval step = {0, 300000};
	struct fixture f;
	struct event *stop;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	size_t i;

	CHECK(ssl != NULL);
	CHECK_INT(setup(&f), 0);
	if (ssl == NULL || f.st == NULL) {
		SSL_CTX_free(ctx);
		return;
	}
	CHECK_INT(stream_start_tls(f.st, ssl, 1), 0);
	stream_set_timeouts(f.st, 1, 0);
	stop = evtimer_new(f.base, stop_cb, f.base);
	for (i = 0; i < sizeof(hello) - 1 && f.events == 0; i++) {
		CHECK_INT((int)write(f.peer, hello + i, 1), 1);
		evtimer_add(stop, &step);
		event_base_dispatch(f.base);
	}
	/* Cut after ~1 s: at the 4th or 5th byte of 8. */
	CHECK_INT(f.events, BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
	CHECK(i >= 3 && i <= 6);
	event_free(stop);
	teardown(&f); /* frees the SSL with the stream */
	SSL_CTX_free(ctx);
}

static const struct test tests[] = {
    TEST(test_bytes_in_and_out),
    TEST(test_flush_now),
    TEST(test_flush_now_failure),
    TEST(test_high_water_pauses_reading),
    TEST(test_eof_after_the_last_bytes),
    TEST(test_slow_peer_then_write_callback),
    TEST(test_free_from_its_own_callback),
    TEST(test_read_timeout),
    TEST(test_handshake_timeout_from_its_start),
    {0},
};

int
main(int argc, char **argv)
{
	return harness_main(argc, argv, tests);
}
