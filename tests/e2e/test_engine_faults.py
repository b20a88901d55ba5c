"""Engine: upstream faults (502 naming the reason, request never sent) and
bad input from clients (431/400, disconnects, resets)."""
import re
import socket
import time
import uuid

import pytest

import hmclients as C

HOST = "api.anthropic.com"

FAULT_REASONS = {
    "expired": r"certificate has expired",
    "wronghost": r"hostname mismatch|wrong host|does not match",
    "selfsigned": r"self[- ]signed",
    "unknownca": r"unable to get local issuer certificate|unknown ca"
                 r"|unknown certificate authority",
    "tls10": r"protocol version|too old|unsupported protocol",
}


def tok():
    return uuid.uuid4().hex


# ------------------------------------------------------- upstream faults

@pytest.mark.parametrize("kind", sorted(FAULT_REASONS))
def test_upstream_fault_is_502_and_request_never_sent(start_daemon,
                                                      fault_upstream, kind):
    up = fault_upstream(kind)
    d = start_daemon(connect_to=["%s:443:127.0.0.1:%d" % (HOST, up.port)])
    n0 = len(up.connections)
    t = tok()
    r = C.curl(d, "https://%s/v1/messages?tok=%s" % (HOST, t),
               "-w", "\n%{http_code}", "-H", "content-type: application/json",
               "--data-binary", '{"model":"m","max_tokens":1}')
    # The client's side of TLS (halton leaf) works; the answer is 502.
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.decode().rpartition("\n")
    assert code == "502", r.stdout
    assert HOST in body, body
    assert re.search(FAULT_REASONS[kind], body, re.I), body
    # The daemon did try the upstream, and nothing reached it.
    new = up.connections[n0:]
    assert len(new) >= 1, "the daemon never connected to the upstream"
    assert up.requests_for(t) == []
    assert all(c.nrequests == 0 for c in new), new
    if kind == "wronghost":
        # The upstream's handshake completed: the daemon sent SNI and then
        # refused the certificate itself.
        assert new[0].sni == HOST
    # The daemon still serves.
    assert d.healthz()["status"] == "ok"
    # The exchange is recorded with the 502 the client saw and its cause.
    from meterfixtures import wait_records
    rec = wait_records(d, 1, pred=lambda x: x["path"] == "/v1/messages")[0]
    assert rec["status"] == 502
    assert rec["error"].startswith("upstream: "), rec["error"]
    assert re.search(FAULT_REASONS[kind], rec["error"], re.I), rec["error"]
    assert rec["input_tokens"] is None and rec["output_tokens"] is None


# -------------------------------------------------------------- bad input

def _expect_status_and_close(sock, status):
    """Reads one response (status line must be `status`), then EOF."""
    data = C.read_all(sock, timeout=5)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    return data


def test_oversized_head_is_431(daemon, upstream):
    t = tok()
    s = C.tls_through(daemon, HOST)
    big = "x" * (70 * 1024)
    try:
        s.sendall(("GET /status?tok=%s HTTP/1.1\r\nHost: %s\r\n"
                   "X-Big: %s\r\n\r\n" % (t, HOST, big)).encode())
    except OSError:
        pass  # the daemon may close before it read everything
    _expect_status_and_close(s, 431)
    s.close()
    assert upstream.requests_for(t) == []


def test_oversized_head_on_proxy_request_is_431(daemon):
    """The same limit for the proxy's own request head (CONNECT)."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    try:
        s.sendall(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: x\r\n" +
                  b"X-Big: " + b"y" * (70 * 1024) + b"\r\n\r\n")
    except OSError:
        pass
    _expect_status_and_close(s, 431)
    s.close()


def test_head_just_under_limit_is_accepted(daemon, upstream):
    """60 KiB of headers is fine: the limit is 64 KiB, not less."""
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/status?tok=%s" % t, HOST,
              headers=[("X-Big", "z" * (60 * 1024))])
    status, _, _ = h.response()
    h.close()
    assert status == 200
    assert len(upstream.requests_for(t)) == 1


def test_content_length_plus_transfer_encoding_is_400(daemon, upstream):
    t = tok()
    s = C.tls_through(daemon, HOST)
    s.sendall(("POST /upload?tok=%s HTTP/1.1\r\nHost: %s\r\n"
               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               "0\r\n\r\n" % (t, HOST)).encode())
    _expect_status_and_close(s, 400)
    s.close()
    assert upstream.requests_for(t) == []


def test_two_different_content_lengths_is_400(daemon, upstream):
    t = tok()
    s = C.tls_through(daemon, HOST)
    s.sendall(("POST /upload?tok=%s HTTP/1.1\r\nHost: %s\r\n"
               "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
               % (t, HOST)).encode())
    _expect_status_and_close(s, 400)
    s.close()
    assert upstream.requests_for(t) == []


@pytest.mark.parametrize("where", ["intercepted", "listener"])
def test_garbage_is_400(daemon, upstream, where):
    if where == "intercepted":
        s = C.tls_through(daemon, HOST)
    else:
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    s.sendall(b"\x16\x00GARBAGE \x01\x02 nonsense\r\n\r\n")
    _expect_status_and_close(s, 400)
    s.close()
    assert daemon.healthz()["status"] == "ok"


def test_bad_chunk_size_is_400(daemon, upstream):
    t = tok()
    s = C.tls_through(daemon, HOST)
    s.sendall(("POST /upload?tok=%s HTTP/1.1\r\nHost: %s\r\n"
               "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
               % (t, HOST)).encode())
    data = C.read_all(s, timeout=5)
    s.close()
    # The head may already have gone upstream (bodies are streamed), but
    # the client must see a 400 and the exchange must not complete.
    assert b"HTTP/1.1 400 " in data, data[:300]
    assert upstream.requests_for(t) == []


def test_client_disconnect_mid_stream_closes_upstream(daemon, upstream):
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/sse?n=400&interval=0.05&tok=%s" % t, HOST)
    status, headers = h.read_head()
    assert status == 200
    got = 0
    for data, _ in h.iter_body(headers):
        got += data.count(b"\n\n")
        if got >= 3:
            break
    reqs = upstream.requests_for(t)
    assert len(reqs) == 1
    cid = reqs[0].conn_id
    assert upstream.connection(cid).closed is None
    # Abort: RST, no TLS close_notify.
    raw = h.sock
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    t_close = time.time()
    raw.close()
    c = upstream.wait_closed(cid, 5)
    assert c is not None, "upstream connection still open 5 s later"
    assert c.closed - t_close < 2.0
    # The stream did not run to its end (400 events = 20 s).
    assert c.close_reason.startswith("write-failed") or \
        c.close_reason in ("eof", "reset"), c.close_reason


def test_upstream_reset_mid_stream_is_an_error_raw(daemon, upstream):
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/reset?events=3&tok=%s" % t, HOST)
    status, headers = h.read_head()
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    got = b""
    with pytest.raises((EOFError, OSError, ValueError)):
        for data, _ in h.iter_body(headers):
            got += data
    h.close()
    assert got.count(b"\n\n") == 3


def test_upstream_reset_mid_stream_is_an_error_curl(daemon, upstream):
    r = C.curl(daemon, "https://%s/reset?events=3&tok=%s" % (HOST, tok()),
               "-N")
    assert r.returncode != 0, "curl saw a clean end after an upstream reset"
    assert r.returncode in (18, 56, 92, 35), (r.returncode, r.stderr)
    assert r.stdout.count(b"\n\n") == 3


def test_upstream_unreachable_is_502(start_daemon):
    from conftest import free_port
    port = free_port()    # nothing listens there
    d = start_daemon(connect_to=["%s:443:127.0.0.1:%d" % (HOST, port)])
    r = C.curl(d, "https://%s/v1/messages" % HOST, "-w", "\n%{http_code}")
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.decode().rpartition("\n")
    assert code == "502", r.stdout
    assert HOST in body
    assert re.search(r"refused|connect", body, re.I), body
