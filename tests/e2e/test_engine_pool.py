"""Engine: the upstream connection pool.  An intercepted client connection
that ends cleanly leaves its upstream TLS connection parked, and the next
client connection to the same host:port gets it (one handshake instead of
two); a parked connection that the upstream closes, or that answered
"Connection: close", is never handed out."""
import json
import socket
import threading
import time
import uuid

import hmclients as C

HOST = "api.anthropic.com"


def tok():
    return uuid.uuid4().hex


def _status(h, t, i):
    h.request("GET", "/status?tok=%s&i=%d" % (t, i), HOST)
    status, _, body = h.response()
    assert status == 200, (status, body)
    return json.loads(body)


def _wait_idle(daemon, n, timeout=5.0):
    deadline = time.time() + timeout
    hz = daemon.healthz()
    while hz["upstream_idle"] != n and time.time() < deadline:
        time.sleep(0.05)
        hz = daemon.healthz()
    return hz


def test_next_client_connection_reuses_the_upstream(daemon, upstream):
    t = tok()
    for i in range(5):
        h = C.HTTPConn(C.tls_through(daemon, HOST))
        _status(h, t, i)
        h.close()
        # The daemon parks the upstream once it has seen the close.
        assert _wait_idle(daemon, 1)["upstream_idle"] == 1
    reqs = upstream.requests_for(t)
    assert len(reqs) == 5
    # One upstream connection carried all five, in order.
    assert len({r.conn_id for r in reqs}) == 1
    assert [r.seq for r in reqs] == [1, 2, 3, 4, 5]
    assert daemon.healthz()["upstream_reused"] == 4


def test_concurrent_clients_get_their_own_upstreams(daemon, upstream):
    t = tok()
    hs = [C.HTTPConn(C.tls_through(daemon, HOST)) for _ in range(6)]
    for i, h in enumerate(hs):
        _status(h, t, i)
    for h in hs:
        h.close()
    reqs = upstream.requests_for(t)
    assert len({r.conn_id for r in reqs}) == 6
    # At most 4 per host stay parked; the rest are closed.
    hz = _wait_idle(daemon, 4)
    assert hz["upstream_idle"] == 4
    assert len(upstream.connections_for(t)) == 6
    closed = [c for c in upstream.connections_for(t)
              if upstream.wait_closed(c.id, 0.1) is not None]
    assert len(closed) == 2


def test_connection_close_answer_is_not_parked(daemon, upstream):
    def close_handler(ctx):
        ctx.keep_alive = False
        ctx.respond(200, "bye\n", content_type="text/plain")

    upstream.route("/closing", close_handler)
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/closing?tok=%s" % t, HOST)
    status, _, body = h.response()
    assert (status, body) == (200, b"bye\n")
    h.close()
    time.sleep(0.3)
    assert daemon.healthz()["upstream_idle"] == 0
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    _status(h, t, 1)
    h.close()
    reqs = upstream.requests_for(t)
    assert len(reqs) == 2
    assert reqs[0].conn_id != reqs[1].conn_id
    assert daemon.healthz()["upstream_reused"] == 0


def test_parked_connection_closed_by_upstream_is_dropped(daemon, upstream):
    socks = []

    def remember_handler(ctx):
        socks.append(ctx.sock)
        ctx.respond(200, "ok\n", content_type="text/plain")

    upstream.route("/remember", remember_handler)
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/remember?tok=%s" % t, HOST)
    status, _, body = h.response()
    assert (status, body) == (200, b"ok\n")
    h.close()
    assert _wait_idle(daemon, 1)["upstream_idle"] == 1
    # The upstream ends the idle connection (as servers do after their
    # keep-alive timeout): the daemon drops it instead of reusing it.
    threading.Thread(target=lambda: socks[0].shutdown(socket.SHUT_RDWR)
                     ).start()
    assert _wait_idle(daemon, 0)["upstream_idle"] == 0
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    _status(h, t, 2)
    h.close()
    reqs = upstream.requests_for(t)
    assert len(reqs) == 2
    assert reqs[0].conn_id != reqs[1].conn_id
    assert daemon.healthz()["upstream_reused"] == 0


POOL_HOSTS = ("api.anthropic.com", "api.openai.com",
              "generativelanguage.googleapis.com",
              "bedrock-runtime.us-east-1.amazonaws.com", "openrouter.ai")


def test_at_most_16_parked_in_all_oldest_first(daemon, upstream):
    """5 hosts x 4 connections = 20 clean upstreams: 16 stay parked, and
    the 4 that go are the oldest (the first host's)."""
    t = tok()
    by_host = {}
    for host in POOL_HOSTS:
        hs = [C.HTTPConn(C.tls_through(daemon, host)) for _ in range(4)]
        for i, h in enumerate(hs):
            h.request("GET", "/status?tok=%s&host=%s&i=%d" % (t, host, i),
                      host)
            status, _, _ = h.response()
            assert status == 200
        for h in hs:
            h.close()
        _wait_idle(daemon, min(16, 4 * (len(by_host) + 1)))
        by_host[host] = {r.conn_id for r in upstream.requests_for(t)
                         if r.query.get("host") == host}
        assert len(by_host[host]) == 4
    assert _wait_idle(daemon, 16)["upstream_idle"] == 16
    closed = {c.id for c in upstream.connections_for(t)
              if upstream.wait_closed(c.id, 0.2) is not None}
    assert closed == by_host[POOL_HOSTS[0]]


def test_parked_connection_expires_after_30s(daemon, upstream):
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    _status(h, t, 1)
    h.close()
    assert _wait_idle(daemon, 1)["upstream_idle"] == 1
    cid = upstream.requests_for(t)[0].conn_id
    time.sleep(25)
    assert daemon.healthz()["upstream_idle"] == 1
    assert upstream.wait_closed(cid, 10) is not None
    assert daemon.healthz()["upstream_idle"] == 0
