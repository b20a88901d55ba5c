"""Engine: byte-identical relay, streaming, keep-alive, tunnelling and
/healthz, with real clients through the daemon to the fake upstream."""
import hashlib
import json
import pathlib
import socket
import ssl
import time
import uuid

import pytest

import hmclients as C
from conftest import ROOT

MIB10 = 10 * 1024 * 1024
HOST = "api.anthropic.com"


@pytest.fixture(scope="session")
def payload(tmp_path_factory):
    """A 10 MiB random file and its sha256."""
    p = tmp_path_factory.mktemp("payload") / "up.bin"
    return str(p), C.write_random(str(p), MIB10)


def tok():
    return uuid.uuid4().hex


def _check_upstream_got(upstream, token, sha, chunked):
    reqs = upstream.requests_for(token)
    assert len(reqs) == 1, reqs
    r = reqs[0]
    assert r.method == "POST"
    assert r.sni == HOST
    assert r.body_len == MIB10
    assert r.body_sha256 == sha
    assert r.chunked is chunked
    return r


# ------------------------------------------------------ byte-identical

@pytest.mark.parametrize("te", ["length", "chunked"])
def test_relay_10mib_both_ways_curl(daemon, upstream, payload, tmp_path, te):
    path, sha = payload
    t = tok()
    out = tmp_path / "down.bin"
    hdrs = tmp_path / "headers.txt"
    args = ["--data-binary", "@" + path, "-o", str(out), "-D", str(hdrs),
            "-w", "%{http_code}"]
    if te == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    r = C.curl(daemon, "https://%s/echo?te=%s&tok=%s" % (HOST, te, t), *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"200"
    head = hdrs.read_text().lower()
    # curl sends Expect: 100-continue for a body this large: the 100
    # must come through before the final 200.
    assert "http/1.1 100 continue" in head
    if te == "chunked":
        assert "transfer-encoding: chunked" in head
    else:
        assert "content-length: %d" % MIB10 in head
    assert ("x-request-sha256: %s" % sha) in head
    assert C.sha256_file(out) == sha
    assert out.stat().st_size == MIB10
    _check_upstream_got(upstream, t, sha, te == "chunked")


@pytest.mark.parametrize("te", ["length", "chunked"])
def test_relay_10mib_both_ways_requests(daemon, upstream, payload, te):
    """requests 2.28 cannot send a chunked request body through an HTTPS
    proxy (its chunked path skips the CONNECT), so the request body is
    always Content-Length here; the response is chunked or not."""
    path, sha = payload
    t = tok()
    s = C.requests_session(daemon)
    with open(path, "rb") as f:
        r = s.post("https://%s/echo?te=%s&tok=%s" % (HOST, te, t), data=f,
                   timeout=60)
    assert r.status_code == 200
    if te == "chunked":
        assert r.headers["Transfer-Encoding"] == "chunked"
    else:
        assert r.headers["Content-Length"] == str(MIB10)
    assert r.headers["X-Request-Sha256"] == sha
    assert len(r.content) == MIB10
    assert hashlib.sha256(r.content).hexdigest() == sha
    _check_upstream_got(upstream, t, sha, False)


@pytest.mark.parametrize("te", ["length", "chunked"])
def test_relay_10mib_both_ways_httpx(daemon, upstream, payload, te):
    path, sha = payload
    t = tok()

    def chunks():
        with open(path, "rb") as f:
            for b in iter(lambda: f.read(65536), b""):
                yield b
    with C.httpx_client(daemon) as c:
        url = "https://%s/echo?te=%s&tok=%s" % (HOST, te, t)
        if te == "chunked":
            r = c.post(url, content=chunks())
        else:
            r = c.post(url, content=pathlib.Path(path).read_bytes())
    assert r.status_code == 200
    if te == "chunked":
        assert r.headers["transfer-encoding"] == "chunked"
    else:
        assert r.headers["content-length"] == str(MIB10)
    assert r.headers["x-request-sha256"] == sha
    assert hashlib.sha256(r.content).hexdigest() == sha
    _check_upstream_got(upstream, t, sha, te == "chunked")


@pytest.mark.parametrize("te", ["length", "chunked"])
def test_relay_10mib_both_ways_node(daemon, upstream, payload, tmp_path, te):
    path, sha = payload
    t = tok()
    out = str(tmp_path / "down.bin")
    r = C.node(daemon, "https://%s/echo?te=%s&tok=%s" % (HOST, te, t),
               method="POST", upload=path, chunked=(te == "chunked"),
               out=out)
    assert r["error"] is None, r
    assert r["status"] == 200
    assert r["alpn"] == "http/1.1"
    # NODE_EXTRA_CA_CERTS=ca.pem: the leaf comes from the halton CA.
    assert "halton-meter" in json.dumps(r["peerIssuer"])
    if te == "chunked":
        assert r["headers"]["transfer-encoding"] == "chunked"
    else:
        assert r["headers"]["content-length"] == str(MIB10)
    assert r["headers"]["x-request-sha256"] == sha
    assert r["bytes"] == MIB10
    assert r["sha256"] == sha
    assert C.sha256_file(out) == sha
    _check_upstream_got(upstream, t, sha, te == "chunked")


def test_relay_close_delimited_download(daemon, upstream, tmp_path):
    """A response without length or chunking ends when the upstream
    closes; every byte still arrives."""
    out = tmp_path / "down.bin"
    hdrs = tmp_path / "h.txt"
    r = C.curl(daemon, "https://%s/download?bytes=3000000&te=close&tok=%s"
               % (HOST, tok()), "-o", str(out), "-D", str(hdrs))
    assert r.returncode == 0, r.stderr
    head = hdrs.read_text().lower()
    sha = [l.split(":")[1].strip() for l in head.splitlines()
           if l.startswith("x-body-sha256:")][0]
    assert out.stat().st_size == 3000000
    assert C.sha256_file(out) == sha


# ------------------------------------------------------------ streaming

def _sse_delays(sock, host, n, interval):
    """Sends GET /sse and returns [(seq, arrival - server send time)]."""
    h = C.HTTPConn(sock)
    h.request("GET", "/sse?n=%d&interval=%s&tok=%s" % (n, interval, tok()),
              host)
    status, headers = h.read_head()
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    out = []
    pending = b""
    for data, t in h.iter_body(headers):
        pending += data
        while b"\n\n" in pending:
            ev, pending = pending.split(b"\n\n", 1)
            line = [l for l in ev.split(b"\n") if l.startswith(b"data: ")][0]
            d = json.loads(line[6:])
            out.append((d["seq"], t - d["t"]))
    h.close()
    return out


def test_sse_events_are_not_buffered(daemon, upstream, pki):
    """An SSE event every 50 ms: each one reaches the client through the
    daemon within 25 ms of a direct client's delay (no buffering, no
    Nagle delay)."""
    n, interval = 20, 0.05
    # Direct client: straight to the fake upstream, same TLS stack.
    raw = socket.create_connection(("127.0.0.1", upstream.port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ctx = ssl.create_default_context(cafile=pki.ca_pem)
    direct = _sse_delays(ctx.wrap_socket(raw, server_hostname=HOST), HOST,
                         n, interval)
    proxied = _sse_delays(C.tls_through(daemon, HOST), HOST, n, interval)
    assert [s for s, _ in direct] == list(range(n))
    assert [s for s, _ in proxied] == list(range(n))
    worst_direct = max(dl for _, dl in direct)
    late = [(s, round(dl * 1000, 1)) for s, dl in proxied
            if dl > worst_direct + 0.025]
    assert late == [], ("events later than direct worst %.1f ms + 25 ms: %r"
                        % (worst_direct * 1000, late))


# ----------------------------------------------------------- keep-alive

def test_keepalive_100_requests_one_upstream_connection(daemon, upstream):
    t = tok()
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    conns = set()
    for i in range(100):
        h.request("GET", "/status?tok=%s&i=%d" % (t, i), HOST)
        status, headers, body = h.response()
        assert status == 200
        conns.add(json.loads(body)["conn"])
    h.close()
    reqs = upstream.requests_for(t)
    assert len(reqs) == 100
    assert len(conns) == 1
    assert len({r.conn_id for r in reqs}) == 1
    assert [r.seq for r in reqs] == list(range(1, 101))
    assert [r.query["i"] for r in reqs] == [str(i) for i in range(100)]


def test_keepalive_requests_session(daemon, upstream):
    """The same with a real client's connection pool (requests)."""
    t = tok()
    s = C.requests_session(daemon)
    for i in range(100):
        r = s.get("https://%s/status?tok=%s&i=%d" % (HOST, t, i), timeout=10)
        assert r.status_code == 200
    s.close()
    reqs = upstream.requests_for(t)
    assert len(reqs) == 100
    assert len({r.conn_id for r in reqs}) == 1


# ------------------------------------------------------------ tunnelling

def test_unlisted_host_is_tunnelled(daemon, upstream, pki):
    """tunnel.example.test is not an LLM host: the client sees the
    upstream's own certificate (test CA), not a halton leaf."""
    host = "tunnel.example.test"
    t = tok()
    s = C.tls_through(daemon, host, cafile=pki.ca_pem)
    der = s.getpeercert(binary_form=True)
    want = ssl.PEM_cert_to_DER_cert(
        pathlib.Path(pki.cert(host)[0]).read_text())
    assert der == want
    issuer = dict(x[0] for x in s.getpeercert()["issuer"])
    assert issuer["commonName"] == "halton-test-upstream-ca"
    h = C.HTTPConn(s)
    h.request("GET", "/status?tok=%s" % t, host)
    status, _, _ = h.response()
    h.close()
    assert status == 200
    reqs = upstream.requests_for(t)
    assert len(reqs) == 1 and reqs[0].sni == host
    # The halton CA cannot verify the tunnelled host.
    with pytest.raises(ssl.SSLCertVerificationError):
        C.tls_through(daemon, host).close()


def test_tunnelled_host_with_curl(daemon, upstream, pki):
    t = tok()
    r = C.curl(daemon, "https://tunnel.example.test/status?tok=%s" % t,
               "-w", "\n%{http_code}", cacert=pki.ca_pem)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\n200")
    assert len(upstream.requests_for(t)) == 1


def test_intercepted_hosts_get_halton_leaves(daemon, upstream):
    """Each LLM host of the test PKI is intercepted (halton CA verifies)
    and relayed to the upstream with the right SNI."""
    for host in ("api.openai.com", "generativelanguage.googleapis.com",
                 "bedrock-runtime.us-east-1.amazonaws.com", "openrouter.ai"):
        t = tok()
        r = C.curl(daemon, "https://%s/status?tok=%s" % (host, t),
                   "-w", "\n%{http_code}")
        assert r.returncode == 0, (host, r.stderr)
        assert r.stdout.endswith(b"\n200")
        reqs = upstream.requests_for(t)
        assert len(reqs) == 1 and reqs[0].sni == host


# ---------------------------------------------------------------- healthz

def test_healthz_fields(daemon, upstream):
    h0 = daemon.healthz()
    assert set(h0) >= {"status", "version", "pid", "uptime_s",
                       "connections", "exchanges"}
    assert h0["status"] == "ok"
    assert h0["version"] == (ROOT / "VERSION").read_text().strip()
    assert h0["pid"] == daemon.pid
    assert isinstance(h0["uptime_s"], int) and 0 <= h0["uptime_s"] < 60
    assert isinstance(h0["connections"], int)
    assert isinstance(h0["exchanges"], int)
    # Three intercepted exchanges are counted.
    s = C.requests_session(daemon)
    for _ in range(3):
        assert s.get("https://%s/status" % HOST, timeout=10).status_code \
            == 200
    s.close()
    # Hold two client connections open: they are counted.
    held = [C.tls_through(daemon, HOST) for _ in range(2)]
    h1 = daemon.healthz()
    for s2 in held:
        s2.close()
    assert h1["exchanges"] == h0["exchanges"] + 3
    assert h1["connections"] == h0["connections"] + 2
    time.sleep(1.1)
    assert daemon.healthz()["uptime_s"] >= h0["uptime_s"] + 1


def test_websocket_relayed_after_101(daemon, upstream):
    """After a 101 both directions are relayed as opaque bytes."""
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/ws?tok=%s" % tok(), HOST, headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13")])
    status, headers = h.read_head()
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    for msg in (b"\x81\x85abcd" + bytes(x ^ y for x, y in
                                         zip(b"hello", b"abcdabcd")),
                bytes(range(256)) * 40):
        h.send(msg)
        got = bytes(h.buf)
        h.buf.clear()
        while len(got) < len(msg):
            got += h.sock.recv(65536)
        assert got == msg
    h.close()


# ------------------------------------------------------------- framing

def test_head_204_304_have_no_body(daemon, upstream):
    """Responses without a body end at their head; the connection then
    carries the next request (the daemon did not wait for a body)."""
    t = tok()
    s = C.tls_through(daemon, HOST)
    s.settimeout(5)
    h = C.HTTPConn(s)
    h.request("HEAD", "/status?tok=%s" % t, HOST)
    status, headers, body = h.response("HEAD")
    assert status == 200 and body == b""
    head_length = int(headers["content-length"])
    for code in (204, 304):
        h.request("GET", "/nobody?code=%d&tok=%s" % (code, t), HOST)
        status, headers, body = h.response()
        assert status == code and body == b""
    h.request("GET", "/status?tok=%s" % t, HOST)
    status, _, body = h.response()
    h.close()
    assert status == 200
    assert json.loads(body)["seq"] == 4
    # HEAD announced the length the same GET has (same connection, so the
    # same digits in "conn").
    assert head_length == len(body)
    assert [r.method for r in upstream.requests_for(t)] == \
        ["HEAD", "GET", "GET", "GET"]


def test_chunked_trailers_are_relayed(daemon, upstream):
    h = C.HTTPConn(C.tls_through(daemon, HOST))
    h.request("GET", "/trailers?tok=%s" % tok(), HOST)
    status, headers, body = h.response()
    h.close()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"hello world"
    assert h.trailers == [("x-checksum", "d0d0cafe")]


def test_slow_reader_backpressure(daemon, upstream):
    """A client that stops reading while the upstream pushes 64 MiB: the
    daemon's memory stays bounded (watermarks), then every byte
    arrives."""
    mib = 64
    rss0 = daemon.rss_kib()
    s = C.tls_through(daemon, HOST, timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    h = C.HTTPConn(s)
    h.request("GET", "/big?mib=%d&tok=%s" % (mib, tok()), HOST)
    status, headers = h.read_head()
    assert status == 200
    time.sleep(2.0)
    grown = daemon.rss_kib() - rss0
    assert grown < 16 * 1024, "daemon RSS grew %d KiB while the client " \
        "did not read" % grown
    sha = hashlib.sha256()
    total = 0
    for data, _ in h.iter_body(headers):
        sha.update(data)
        total += len(data)
    h.close()
    assert total == mib << 20 == int(headers["x-total-bytes"])
    # Every 1 MiB block is the same one: fetch it alone, check it against
    # the upstream's digest, and the whole body against it repeated.
    h2 = C.HTTPConn(C.tls_through(daemon, HOST, timeout=30))
    h2.request("GET", "/big?mib=1&tok=%s" % tok(), HOST)
    st2, _, block = h2.response()
    h2.close()
    assert st2 == 200
    assert hashlib.sha256(block).hexdigest() == headers["x-block-sha256"]
    assert sha.hexdigest() == hashlib.sha256(block * mib).hexdigest()


# ------------------------------------------------- absolute-form http://

def test_absolute_form_http_is_forwarded(start_daemon, upstream,
                                         plain_upstream):
    from conftest import default_connect_to
    d = start_daemon(connect_to=default_connect_to(upstream.port) + [
        "%s:80:127.0.0.1:%d" % (HOST, plain_upstream.port),
        "example.test:80:127.0.0.1:%d" % plain_upstream.port])
    for host in (HOST, "example.test"):
        t = tok()
        r = C.curl(d, "http://%s/echo?tok=%s" % (host, t), "-w",
                   "\n%{http_code}", "--data-binary", "plain body")
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"plain body\n200"
        reqs = plain_upstream.requests_for(t)
        assert len(reqs) == 1
        assert reqs[0].path == "/echo"
        assert reqs[0].header("Host") == host
        assert reqs[0].body_sha256 == hashlib.sha256(b"plain body").hexdigest()
    # requests as an HTTP_PROXY client, keep-alive across requests.
    t = tok()
    s = C.requests_session(d)
    for i in range(5):
        r = s.get("http://%s/status?tok=%s" % (HOST, t), timeout=10)
        assert r.status_code == 200
    s.close()
    assert len(plain_upstream.requests_for(t)) == 5


def test_sse_events_are_not_buffered_httpx(daemon, upstream, pki):
    """The same with a real streaming client (httpx through the proxy)
    against httpx straight to the upstream."""
    n, interval = 20, 0.05

    def run(client, url):
        out = []
        with client.stream("GET", url) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: "):
                    d = json.loads(line[6:])
                    out.append((d["seq"], time.time() - d["t"]))
        return out
    import httpx
    path = "/sse?n=%d&interval=%s&tok=%s" % (n, interval, tok())
    with httpx.Client(verify=pki.ca_pem, trust_env=False) as c:
        # Direct: the test CA, through no proxy (a transport that
        # connects to the fake upstream's port for HOST).
        direct_url = "https://localhost:%d%s" % (upstream.port, path)
        direct = run(c, direct_url)
    with C.httpx_client(daemon) as c:
        proxied = run(c, "https://%s%s" % (HOST, path))
    assert [s for s, _ in direct] == list(range(n))
    assert [s for s, _ in proxied] == list(range(n))
    worst_direct = max(dl for _, dl in direct)
    late = [(s, round(dl * 1000, 1)) for s, dl in proxied
            if dl > worst_direct + 0.025]
    assert late == [], ("events later than direct worst %.1f ms + 25 ms: %r"
                        % (worst_direct * 1000, late))
