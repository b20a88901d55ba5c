"""Engine: the server side of intercepted TLS (src/engine/tls.c), seen by
real clients through the proxy: one TLS 1.3 session ticket per full
handshake, resumption of the sessions clients offer (TLS 1.3 and 1.2), the
leaf alone as the chain, and the leaf chosen by SNI or, without SNI, by the
CONNECT host."""
import socket
import ssl
import subprocess

import hmclients as C

HOST = "api.anthropic.com"
REQUEST = ("GET /v1/models HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
           % HOST).encode()


def exchange(d, ctx, session=None):
    """One request on a new connection through the proxy; returns
    (session after the response, whether it was resumed, response bytes).
    The response is read to the end, so a TLS 1.3 ticket sent after the
    handshake has been processed."""
    raw = C.connect_tunnel(d, HOST)
    s = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
    try:
        s.sendall(REQUEST)
        data = b""
        while True:
            try:
                b = s.recv(65536)
            except (ssl.SSLEOFError, ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            data += b
        return s.session, s.session_reused, s.version(), data
    finally:
        s.close()


def client_ctx(d, version):
    ctx = ssl.create_default_context(cafile=d.ca_pem)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def check_resumes(d, version, name):
    ctx = client_ctx(d, version)
    sess, reused, got, data = exchange(d, ctx)
    assert got == name, got
    assert not reused
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    assert sess is not None and sess.has_ticket, sess
    for _ in range(2):
        sess2, reused, got, data2 = exchange(d, ctx, session=sess)
        assert got == name, got
        assert reused, "the daemon did not resume the %s session" % name
        # The resumed connection carries the request like a full one.
        assert data2.split(b"\r\n", 1)[0] == data.split(b"\r\n", 1)[0]
        sess = sess2


def test_tls13_session_resumed(daemon):
    check_resumes(daemon, ssl.TLSVersion.TLSv1_3, "TLSv1.3")


def test_tls12_session_resumed(daemon):
    check_resumes(daemon, ssl.TLSVersion.TLSv1_2, "TLSv1.2")


def s_client(d, *args):
    argv = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % d.port,
            "-connect", "%s:443" % HOST, "-CAfile", d.ca_pem, "-msg",
            "-showcerts", "-ign_eof"] + list(args)
    r = subprocess.run(argv, input=REQUEST, capture_output=True,
                       timeout=30)
    return r.stdout.decode("latin-1")


def test_one_ticket_per_full_handshake_and_leaf_only_chain(daemon):
    out = s_client(daemon, "-servername", HOST, "-tls1_3")
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    assert "HTTP/1.1 " in out, out[-2000:]
    # -msg prints each handshake message the client receives once.
    assert out.count("NewSessionTicket") == 1, out
    assert out.count("-----BEGIN CERTIFICATE-----") == 1, out


def test_leaf_by_sni_else_connect_host(daemon):
    # SNI names another intercepted host than the CONNECT: SNI wins.
    out = subprocess.run(
        ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % daemon.port,
         "-connect", "%s:443" % HOST, "-servername", "api.openai.com",
         "-CAfile", daemon.ca_pem, "-verify_hostname", "api.openai.com"],
        input=b"", capture_output=True, timeout=30).stdout.decode()
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    # No SNI: the CONNECT host's leaf, and the connection works.
    out = s_client(daemon, "-noservername", "-verify_hostname", HOST)
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    assert "HTTP/1.1 " in out, out[-2000:]
