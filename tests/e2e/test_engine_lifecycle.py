"""Engine: load without leaks, SIGTERM draining, one daemon per state
dir."""
import json
import signal
import socket
import ssl
import threading
import time
import uuid

import hmclients as C

HOST = "api.anthropic.com"


def tok():
    return uuid.uuid4().hex


def _settle(d, baseline_fds, timeout=5.0):
    """Waits until the daemon's fd count is back to baseline_fds; returns
    the last count seen."""
    deadline = time.time() + timeout
    n = d.fd_count()
    while n != baseline_fds and time.time() < deadline:
        time.sleep(0.05)
        n = d.fd_count()
    return n


def _settle_pooled(d, baseline, timeout=5.0):
    """Waits until the daemon's fd count less its parked upstream
    connections is baseline; returns (fds, parked) last seen."""
    deadline = time.time() + timeout
    while True:
        idle = d.healthz()["upstream_idle"]
        time.sleep(0.05)  # the probe's own connection closes
        n = d.fd_count()
        if n - idle == baseline or time.time() > deadline:
            return n, idle


def _get_status(h, t, i):
    h.request("GET", "/status?tok=%s&i=%d" % (t, i), HOST)
    status, _, body = h.response()
    assert status == 200, (status, body)
    return json.loads(body)


def test_2000_sequential_and_200_concurrent_no_leak(daemon, upstream):
    # Warm up: mint the leaf, fill caches, then take the baseline.
    for _ in range(3):
        h = C.HTTPConn(C.tls_through(daemon, HOST))
        _get_status(h, "warmup", 0)
        h.close()
    time.sleep(0.3)
    hz0 = daemon.healthz()
    time.sleep(0.1)
    fds0 = daemon.fd_count()
    rss0 = daemon.rss_kib()
    ex0 = hz0["exchanges"]
    # Upstream connections parked for reuse (test_engine_pool.py) hold a
    # descriptor each; they are counted apart.
    idle0 = hz0["upstream_idle"]

    # 2000 sequential requests: 200 client connections of 10 requests
    # each, so connection set-up and teardown are exercised too.
    t = tok()
    n = 0
    for c in range(200):
        h = C.HTTPConn(C.tls_through(daemon, HOST))
        for _ in range(10):
            _get_status(h, t, n)
            n += 1
        h.close()
    assert n == 2000
    assert len(upstream.requests_for(t)) == 2000

    # 200 concurrent: all connected first, then all send at once.
    t2 = tok()
    errors = []
    barrier = threading.Barrier(200, timeout=60)

    def one(i):
        try:
            h = C.HTTPConn(C.tls_through(daemon, HOST, timeout=30))
            barrier.wait()
            _get_status(h, t2, i)
            h.close()
        except Exception as e:  # collected and asserted below
            errors.append(repr(e))
            try:
                barrier.abort()
            except Exception:
                pass
    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    assert errors == []
    assert len(upstream.requests_for(t2)) == 200
    assert len({r.conn_id for r in upstream.requests_for(t2)}) == 200

    fds, idle = _settle_pooled(daemon, fds0 - idle0)
    assert fds - idle == fds0 - idle0, \
        "daemon fds %d (%d parked), baseline %d (%d parked)" % (
            fds, idle, fds0, idle0)
    assert idle <= 4
    # The 200 sequential client connections reused one upstream.
    assert daemon.healthz()["upstream_reused"] >= 199
    # The daemon hands freed memory back within 200 ms of going idle
    # (idle_trim in proxy.c): measure after that.
    time.sleep(0.5)
    rss = daemon.rss_kib()
    assert rss - rss0 <= 8 * 1024, "RSS grew %d KiB (from %d to %d)" % (
        rss - rss0, rss0, rss)
    assert daemon.healthz()["exchanges"] == ex0 + 2200


def test_sigterm_lets_the_stream_finish_then_exits_0(daemon, upstream):
    n = 30
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/sse?n=%d&interval=0.05&tok=%s" % (n, tok()), HOST)
    status, headers = h.read_head()
    assert status == 200
    body = b""
    it = h.iter_body(headers)
    for data, _ in it:
        body += data
        if body.count(b"\n\n") >= 3:
            break
    t_term = time.time()
    daemon.signal(signal.SIGTERM)
    time.sleep(0.2)
    # No new connection is served while draining.
    refused = False
    try:
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=1)
        s.settimeout(1)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = not s.recv(100).startswith(b"HTTP/1.1 200")
        s.close()
    except OSError:
        refused = True
    assert refused, "the daemon accepted a new request after SIGTERM"
    # The active stream runs to its clean end (terminating chunk).
    for data, _ in it:
        body += data
    h.close()
    events = [json.loads(e.split(b"data: ")[1]) for e in
              body.split(b"\n\n") if b"data: " in e]
    assert [e["seq"] for e in events] == list(range(n))
    assert daemon.wait(15) == 0
    assert time.time() - t_term < 10.5


def test_second_daemon_exits_1_naming_the_first(start_daemon):
    d1 = start_daemon()
    d2 = start_daemon(wait=False)
    rc = d2.wait(10)
    assert rc == 1
    assert str(d1.pid) in d2.stderr(), d2.stderr()
    assert d1.alive()
    assert d1.healthz()["pid"] == d1.pid
    assert (d1.state_dir / "daemon.pid").read_text().strip() == str(d1.pid)


def test_non_loopback_listen_is_refused(hm, tmp_path):
    from conftest import free_port
    r = hm("daemon", "--foreground", "--listen",
           "0.0.0.0:%d" % free_port(), timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "allow_remote" in r.stderr


def _read_to_eof(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def _healthz_request(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return s


def test_max_connections_pauses_accepting(start_daemon, home):
    """Past max_connections the daemon stops accepting (the kernel queues
    the client) and resumes when a connection closes; nothing fails."""
    d0 = home / ".halton-meter"
    d0.mkdir(mode=0o700, exist_ok=True)
    (d0 / "config").write_text("max_connections = 16\n")
    d = start_daemon()
    held = [socket.create_connection(("127.0.0.1", d.port), timeout=5)
            for _ in range(16)]
    time.sleep(0.5)  # let the daemon accept all 16
    extra = _healthz_request(d.port)
    extra.settimeout(1.0)
    try:
        got = extra.recv(1)
    except socket.timeout:
        got = None
    assert got is None, "a 17th connection was served past the limit"
    held.pop().close()
    extra.settimeout(5)
    data = _read_to_eof(extra)
    assert data.startswith(b"HTTP/1.1 200 "), data[:100]
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["connections"] <= 16
    extra.close()
    for s in held:
        s.close()


def test_upstream_ca_checked_at_start_tls_contexts_made_on_use(
        start_daemon, upstream, pki, tmp_path):
    """The TLS contexts are made at the first intercepted connection, but a
    broken --upstream-ca file is refused at start.  An upstream context
    that cannot be made later (the file broken since) fails that request
    with a 502, is logged once, and is tried again at the next one."""
    junk = (b"-----BEGIN CERTIFICATE-----\nnot base64 !\n"
            b"-----END CERTIFICATE-----\n")
    ca = tmp_path / "upstream-ca.pem"
    ca.write_bytes(junk)
    d = start_daemon(upstream_ca=[str(ca)], wait=False)
    assert d.wait(10) == 1
    assert str(ca) in d.stderr(), d.stderr()

    good = open(pki.ca_pem, "rb").read()
    ca.write_bytes(good)
    d = start_daemon(upstream_ca=[str(ca)])
    ca.write_bytes(junk)
    for _ in range(2):
        t = tok()
        r = C.curl(d, "https://%s/status?tok=%s" % (HOST, t), "-w",
                   "\n%{http_code}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith(b"\n502"), r.stdout
        assert upstream.requests_for(t) == []
    assert d.stderr().count("cannot make the upstream TLS context") == 1
    ca.write_bytes(good)
    t = tok()
    r = C.curl(d, "https://%s/status?tok=%s" % (HOST, t), "-w",
               "\n%{http_code}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\n200"), r.stdout
    assert len(upstream.requests_for(t)) == 1
    assert "made the upstream TLS context" in d.stderr()


def _connect_sent(d, host):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" %
               (host, host)).encode())
    return s


def _answered(socks, wait):
    """The sockets whose CONNECT was answered (200) within wait seconds."""
    import select
    got, deadline = set(), time.monotonic() + wait
    while len(got) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s for s in socks if s not in got], [], [],
                                left)
        for s in r:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                b = s.recv(1)
                assert b, "proxy closed a waiting connection: %r" % head
                head += b
            assert head.startswith(b"HTTP/1.1 200 "), head
            got.add(s)
    return got


def _tls_request(d, raw):
    ctx = ssl.create_default_context(cafile=d.ca_pem)
    s = ctx.wrap_socket(raw, server_hostname=HOST)
    s.sendall(("GET /status HTTP/1.1\r\nHost: %s\r\n"
               "Connection: close\r\n\r\n" % HOST).encode())
    data = _read_to_eof(s)
    s.close()
    return data


def test_client_handshakes_in_flight_bounded(start_daemon, home, upstream):
    """At most 32 intercepted client handshakes run at once (their
    transient buffers would otherwise scatter the long-lived state of the
    connections over the heap): the 33rd CONNECT is answered once one of
    them ends, oldest first; a waiting client that gives up is closed at
    its turn, unanswered and without an upstream connection; every
    connection is served in the end."""
    d0 = home / ".halton-meter"
    d0.mkdir(mode=0o700, exist_ok=True)
    (d0 / "config").write_text("log_level = debug\n")
    d = start_daemon()
    socks = [_connect_sent(d, HOST) for _ in range(50)]
    first = _answered(socks, 3.0)
    assert len(first) == 32, len(first)
    waiting = [s for s in socks if s not in first]
    # Five waiting clients give up; the others keep their place.
    for s in waiting[:5]:
        s.close()
    waiting = waiting[5:]
    assert _answered(waiting, 0.5) == set()
    # Ten handshakes end (two of them by the client closing): ten more
    # CONNECTs are answered, and no more.
    first = list(first)
    for s in first[:8]:
        assert _tls_request(d, s).startswith(b"HTTP/1.1 200 ")
    for s in first[8:10]:
        s.close()
    second = _answered(waiting, 3.0)
    assert len(second) == 10, len(second)
    assert _answered([s for s in waiting if s not in second], 0.5) == set()
    # Everyone else completes.
    rest = first[10:] + list(second)
    for s in rest:
        assert _tls_request(d, s).startswith(b"HTTP/1.1 200 ")
    late = [s for s in waiting if s not in second]
    assert len(late) == 3
    assert _answered(late, 3.0) == set(late)
    for s in late:
        assert _tls_request(d, s).startswith(b"HTTP/1.1 200 ")
    assert d.stderr().count("the client left while its CONNECT waited") \
        == 5, d.stderr()[-2000:]


def test_client_handshake_place_held_at_most_15s(daemon):
    """A client handshake keeps its place among the 32 for at most 15 s in
    all, however often its client sends a byte: 32 clients that trickle a
    ClientHello one byte every 2 s (the per-silence timeout never fires)
    are cut at 15 s, and the CONNECT that waited behind them is answered
    then."""
    d = daemon
    socks = [_connect_sent(d, HOST) for _ in range(32)]
    assert len(_answered(socks, 3.0)) == 32
    late = _connect_sent(d, HOST)
    start = time.monotonic()
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    answered = None
    for i in range(len(hello)):
        for s in socks:
            try:
                s.sendall(hello[i:i + 1])
            except OSError:
                pass
        if _answered([late], 2.0):
            answered = time.monotonic() - start
            break
    assert answered is not None, "the waiting CONNECT was never answered"
    assert 13.0 <= answered <= 20.0, answered
    # The trickling clients were closed.
    for s in socks:
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
    assert _tls_request(d, late).startswith(b"HTTP/1.1 200 ")
