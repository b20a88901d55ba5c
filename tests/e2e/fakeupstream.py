"""A fake upstream for the end-to-end tests: a threaded TLS HTTP/1.1 server.

It listens on 127.0.0.1 (random port by default), picks its certificate by
the client's SNI from a test PKI (pki.py), keeps connections alive, and
records every connection and request so tests can assert what the
upstream really received ("never received the request", "one connection
for 100 requests").

Handlers are chosen by path prefix (longest first) and are pluggable:

    up = FakeUpstream(pki)
    up.route("/v1/messages", my_handler)   # my_handler(ctx) -> None
    up.start()

A handler gets a Context: ctx.req (the Request record), ctx.body (bytes,
de-chunked), ctx.query (dict of str), and writers: ctx.respond(),
ctx.start_chunked()/ctx.chunk()/ctx.end_chunked(), ctx.send_raw(),
ctx.reset().  Built-in routes:

    /echo?te=chunked|length       the request body back; X-Request-Sha256
    /upload                       JSON {sha256, length, chunked}
    /download?bytes=N&te=...      N random bytes (te: length|chunked|close);
                                  X-Body-Sha256 names their sha256
    /sse?n=N&interval=S           N SSE events every S seconds, each
                                  data: {"seq": i, "t": server send time}
    /reset?events=N               N SSE events, then a TCP reset
    /status                       small JSON {ok, conn, seq}
    /v1/messages                  Anthropic-style JSON (SSE if "stream")
    /v1/chat/completions          OpenAI-style JSON (SSE if "stream")
    /ws                           101 Switching Protocols, then raw echo
    /nobody?code=204|304          a response that has no body
    /trailers                     chunked "hello world" + trailer X-Checksum
    /big?mib=N                    N MiB chunked (one random 1 MiB block
                                  repeated; X-Block-Sha256 names it)

METER_ROUTES (routes=METER_ROUTES) serves real-format LLM answers with
known usage instead, for the metering tests: see "meter handlers" below.

Standalone: python3 fakeupstream.py --port 8443 --certdir /tmp/pki
(the PKI is created in certdir when missing; --fault KIND serves a fault
certificate, --tls10 serves TLS 1.0 only, --plain serves plain HTTP).
"""

import argparse
import base64
import hashlib
import json
import os
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
import warnings
import zlib

from pki import FAULTS, HOSTS, PKI

MAX_HEAD = 256 * 1024


class Connection:
    """One accepted TCP connection."""

    def __init__(self, cid, peer):
        self.id = cid
        self.peer = peer
        self.opened = time.time()
        self.closed = None          # time the server saw the end
        self.close_reason = None    # "eof", "server", "write-failed", ...
        self.handshake_ok = False
        self.handshake_error = None
        self.sni = None
        self.tls_version = None
        self.alpn = None
        self.nrequests = 0

    def __repr__(self):
        return ("Connection(id=%d sni=%r ok=%r err=%r n=%d reason=%r)" %
                (self.id, self.sni, self.handshake_ok,
                 self.handshake_error, self.nrequests, self.close_reason))


class Request:
    """One request the upstream received in full."""

    def __init__(self, conn, seq, method, target, version, headers):
        self.conn_id = conn.id
        self.seq = seq              # 1-based, per connection
        self.sni = conn.sni
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers      # list of (name, value), wire order
        u = urllib.parse.urlsplit(target)
        self.path = u.path
        self.query = dict(urllib.parse.parse_qsl(u.query))
        self.body_len = 0
        self.body_sha256 = hashlib.sha256(b"").hexdigest()
        self.chunked = False
        self.trailers = []
        self.time = time.time()

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def __repr__(self):
        return "Request(conn=%d seq=%d %s %s len=%d)" % (
            self.conn_id, self.seq, self.method, self.target, self.body_len)


class ClientGone(Exception):
    pass


class Context:
    """What a handler sees: the request and the socket writers."""

    def __init__(self, server, conn, sock, req, body):
        self.server = server
        self.conn = conn
        self.sock = sock
        self.req = req
        self.body = body
        self.query = req.query
        self.keep_alive = True      # a handler may clear it
        self.done = False

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as e:
            raise ClientGone(str(e))

    def _head(self, status, reason, headers):
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if not self.keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(self, status, body=b"", headers=(), reason="OK",
                content_type="application/octet-stream"):
        if isinstance(body, str):
            body = body.encode()
        h = [("Content-Type", content_type),
             ("Content-Length", str(len(body)))] + list(headers)
        head = self._head(status, reason, h)
        if self.req.method == "HEAD":
            body = b""
        self.send_raw(head + body)
        self.done = True

    def start_chunked(self, status=200, headers=(), reason="OK",
                      content_type="application/octet-stream"):
        h = [("Content-Type", content_type),
             ("Transfer-Encoding", "chunked")] + list(headers)
        self.send_raw(self._head(status, reason, h))

    def chunk(self, data):
        if data:
            self.send_raw(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunked(self, trailers=()):
        t = "".join("%s: %s\r\n" % kv for kv in trailers).encode()
        self.send_raw(b"0\r\n" + t + b"\r\n")
        self.done = True

    def start_close_delimited(self, status=200, headers=(), reason="OK",
                              content_type="application/octet-stream"):
        self.keep_alive = False
        h = [("Content-Type", content_type)] + list(headers)
        self.send_raw(self._head(status, reason, h))

    def reset(self):
        """Abort the connection with a TCP RST (SO_LINGER 0)."""
        raw = self.sock
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                           struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            # Close the underlying fd without a TLS close_notify.
            fd = raw.detach()
            s = socket.socket(fileno=fd)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass
        self.keep_alive = False
        self.done = True
        raise ClientGone("reset by handler")


# ---------------------------------------------------------------- handlers

def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _send_body(ctx, body, te, headers, content_type):
    if te == "chunked":
        ctx.start_chunked(200, headers, content_type=content_type)
        for i in range(0, len(body), 65536):
            ctx.chunk(body[i:i + 65536])
        ctx.end_chunked()
    elif te == "close":
        ctx.start_close_delimited(200, headers, content_type=content_type)
        for i in range(0, len(body), 65536):
            ctx.send_raw(body[i:i + 65536])
        ctx.done = True
    else:
        ctx.respond(200, body, headers, content_type=content_type)


def h_echo(ctx):
    h = [("X-Request-Sha256", ctx.req.body_sha256),
         ("X-Request-Length", str(ctx.req.body_len)),
         ("X-Request-Chunked", "1" if ctx.req.chunked else "0"),
         ("X-Body-Sha256", ctx.req.body_sha256)]
    _send_body(ctx, ctx.body, ctx.query.get("te", "length"), h,
               "application/octet-stream")


def h_upload(ctx):
    ctx.respond(200, json.dumps({
        "sha256": ctx.req.body_sha256, "length": ctx.req.body_len,
        "chunked": ctx.req.chunked}), content_type="application/json")


def h_download(ctx):
    n = int(ctx.query.get("bytes", "1024"))
    body = os.urandom(n)
    _send_body(ctx, body, ctx.query.get("te", "length"),
               [("X-Body-Sha256", _sha(body))], "application/octet-stream")


def h_sse(ctx):
    n = int(ctx.query.get("n", "20"))
    interval = float(ctx.query.get("interval", "0.05"))
    ctx.start_chunked(200, [("Cache-Control", "no-cache")],
                      content_type="text/event-stream")
    start = time.time()
    for i in range(n):
        # Send on a fixed schedule so a slow write does not shift later
        # events.
        delay = start + i * interval - time.time()
        if delay > 0:
            time.sleep(delay)
        ev = "event: tick\ndata: %s\n\n" % json.dumps(
            {"seq": i, "t": time.time()})
        ctx.chunk(ev.encode())
    ctx.end_chunked()


def h_reset(ctx):
    n = int(ctx.query.get("events", "3"))
    ctx.start_chunked(200, content_type="text/event-stream")
    for i in range(n):
        ctx.chunk(("data: {\"seq\": %d}\n\n" % i).encode())
        time.sleep(0.02)
    time.sleep(0.05)
    ctx.reset()


def h_status(ctx):
    ctx.respond(200, json.dumps({"ok": True, "conn": ctx.conn.id,
                                 "seq": ctx.req.seq}),
                content_type="application/json")


def h_nobody(ctx):
    code = int(ctx.query.get("code", "204"))
    reason = {204: "No Content", 304: "Not Modified"}.get(code, "X")
    ctx.send_raw(("HTTP/1.1 %d %s\r\nETag: \"t\"\r\n\r\n"
                  % (code, reason)).encode())
    ctx.done = True


def h_trailers(ctx):
    ctx.start_chunked(200, [("Trailer", "X-Checksum")],
                      content_type="text/plain")
    ctx.chunk(b"hello ")
    ctx.chunk(b"world")
    ctx.end_chunked([("X-Checksum", "d0d0cafe")])


_BLOCK = os.urandom(1 << 20)


def h_big(ctx):
    """mib MiB (chunked), the same 1 MiB random block repeated; the
    header names the block's sha256."""
    n = int(ctx.query.get("mib", "64"))
    ctx.start_chunked(200, [("X-Block-Sha256", _sha(_BLOCK)),
                            ("X-Total-Bytes", str(n << 20))])
    for _ in range(n):
        ctx.chunk(_BLOCK)
    ctx.end_chunked()


def _wants_stream(ctx):
    try:
        return bool(json.loads(ctx.body or b"{}").get("stream"))
    except ValueError:
        return False


def _sse_events(ctx, events, content_type="text/event-stream"):
    ctx.start_chunked(200, content_type=content_type)
    for name, data in events:
        s = ""
        if name:
            s += "event: %s\n" % name
        s += "data: %s\n\n" % (data if isinstance(data, str)
                                else json.dumps(data))
        ctx.chunk(s.encode())
    ctx.end_chunked()


def h_anthropic_messages(ctx):
    model = "claude-test-1"
    if not _wants_stream(ctx):
        ctx.respond(200, json.dumps({
            "id": "msg_test", "type": "message", "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "Hello."}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 3,
                      "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}),
            content_type="application/json")
        return
    _sse_events(ctx, [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant",
            "model": model, "content": [],
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text",
                                                   "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta",
                                           "text": "Hello."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def h_openai_chat(ctx):
    model = "gpt-test-1"
    usage = {"prompt_tokens": 11, "completion_tokens": 2,
             "total_tokens": 13}
    if not _wants_stream(ctx):
        ctx.respond(200, json.dumps({
            "id": "chatcmpl-test", "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant",
                                                 "content": "Hi."},
                         "finish_reason": "stop"}],
            "usage": usage}), content_type="application/json")
        return
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk",
            "model": model}
    _sse_events(ctx, [
        (None, dict(base, choices=[{"index": 0, "delta": {
            "role": "assistant", "content": "Hi."}}])),
        (None, dict(base, choices=[{"index": 0, "delta": {},
                                    "finish_reason": "stop"}])),
        (None, dict(base, choices=[], usage=usage)),
        (None, "[DONE]"),
    ])


def h_websocket(ctx):
    key = ctx.req.header("Sec-WebSocket-Key", "")
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    ctx.send_raw(b"HTTP/1.1 101 Switching Protocols\r\n"
                 b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    # After the 101 the bytes are opaque: echo whatever arrives.
    ctx.keep_alive = False
    ctx.done = True
    sock = ctx.sock
    while True:
        try:
            data = sock.recv(65536)
        except (OSError, ssl.SSLError):
            break
        if not data:
            break
        ctx.send_raw(data)


DEFAULT_ROUTES = {
    "/echo": h_echo,
    "/upload": h_upload,
    "/download": h_download,
    "/sse": h_sse,
    "/reset": h_reset,
    "/status": h_status,
    "/v1/messages": h_anthropic_messages,
    "/v1/chat/completions": h_openai_chat,
    "/ws": h_websocket,
    "/nobody": h_nobody,
    "/trailers": h_trailers,
    "/big": h_big,
}


# ----------------------------------------------------------- meter handlers
#
# Real-format LLM API responses with known token usage, for the metering
# tests (tests/e2e/test_meter_*.py).  They are NOT in DEFAULT_ROUTES (the
# engine tests keep the simple handlers above): a FakeUpstream made with
# routes=METER_ROUTES serves them.
#
# Every response carries a request id where the provider puts it (header
# request-id, x-request-id, x-amzn-RequestId; Gemini's body responseId):
# the value of the request's X-Test-Id header when there is one, else a
# fresh one.  X-Fake-Status: 429 or 529
# turns the answer into that provider's error body.  A request that accepts
# gzip gets a gzip body; streams are one gzip member flushed (Z_SYNC_FLUSH)
# after every event, each flush in its own HTTP chunk, the way
# api.anthropic.com sends SSE to Claude Code.  X-Fake-Delay: S sleeps S
# seconds before the last event (for tests that act mid-stream).
# X-Fake-Text: TEXT replaces the completion text (streams send it in two
# deltas, split at its middle blank).
#
# The raw usage objects each handler sends are in METER_USAGE; the tests
# state the normalised numbers they expect from them.

METER_USAGE = {
    "anthropic": {
        "input_tokens": 1234, "output_tokens": 56,
        "cache_creation_input_tokens": 300, "cache_read_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 200,
                           "ephemeral_1h_input_tokens": 100},
        "service_tier": "standard"},
    # message_start, then ONE cumulative message_delta that repeats the
    # input fields (summing would double them) and raises output to 89.
    "anthropic_stream_start": {
        "input_tokens": 2100, "output_tokens": 1,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 512,
        "service_tier": "standard"},
    "anthropic_stream_delta": {
        "input_tokens": 2100, "output_tokens": 89,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 512},
    "anthropic_count_tokens": {"input_tokens": 321},
    "openai_chat": {
        "prompt_tokens": 1500, "completion_tokens": 250, "total_tokens": 1750,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 64,
                                      "audio_tokens": 0}},
    "openai_chat_stream": {
        "prompt_tokens": 900, "completion_tokens": 77, "total_tokens": 977,
        "prompt_tokens_details": {"cached_tokens": 128},
        "completion_tokens_details": {"reasoning_tokens": 0}},
    "openai_responses": {
        "input_tokens": 3000, "input_tokens_details": {"cached_tokens": 2048},
        "output_tokens": 400,
        "output_tokens_details": {"reasoning_tokens": 128},
        "total_tokens": 3400},
    # Gemini usageMetadata is cumulative: the last chunk's wins.
    "gemini_stream": [
        {"promptTokenCount": 820, "cachedContentTokenCount": 300,
         "candidatesTokenCount": 5, "totalTokenCount": 825},
        {"promptTokenCount": 820, "cachedContentTokenCount": 300,
         "candidatesTokenCount": 20, "thoughtsTokenCount": 60,
         "totalTokenCount": 900},
        {"promptTokenCount": 820, "cachedContentTokenCount": 300,
         "candidatesTokenCount": 45, "thoughtsTokenCount": 60,
         "totalTokenCount": 925}],
    "gemini": {"promptTokenCount": 150, "cachedContentTokenCount": 0,
               "candidatesTokenCount": 30, "thoughtsTokenCount": 12,
               "totalTokenCount": 192},
    "bedrock_stream_start": {"input_tokens": 700, "output_tokens": 1},
    "bedrock_stream_delta": {"output_tokens": 66},
    "bedrock_metrics": {"inputTokenCount": 700, "outputTokenCount": 66,
                        "invocationLatency": 812, "firstByteLatency": 301},
}

_meter_seq = [0]
_meter_seq_lock = threading.Lock()


def _test_id(ctx, prefix):
    v = ctx.req.header("X-Test-Id")
    if v:
        return v
    with _meter_seq_lock:
        _meter_seq[0] += 1
        n = _meter_seq[0]
    return "%s%08d%s" % (prefix, n, os.urandom(4).hex())


def _req_json(ctx):
    try:
        v = json.loads(ctx.body or b"{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def _accepts_gzip(ctx):
    for tok in (ctx.req.header("Accept-Encoding") or "").split(","):
        name, _, params = tok.strip().partition(";")
        if name.strip().lower() == "gzip" and \
                params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def _json_reply(ctx, status, obj, headers, reason="OK"):
    body = json.dumps(obj).encode()
    h = list(headers)
    if _accepts_gzip(ctx):
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        body = c.compress(body) + c.flush()
        h.append(("Content-Encoding", "gzip"))
    ctx.respond(status, body, h, reason=reason,
                content_type="application/json")


def _stream_pieces(ctx, pieces, headers, content_type):
    """Sends pieces (bytes) as a chunked body, one chunk each, gzip'd
    with a sync flush per piece when the client accepts gzip."""
    h = list(headers)
    comp = None
    if _accepts_gzip(ctx):
        comp = zlib.compressobj(6, zlib.DEFLATED, 31)
        h.append(("Content-Encoding", "gzip"))
    delay = float(ctx.req.header("X-Fake-Delay") or "0")
    ctx.start_chunked(200, h, content_type=content_type)
    for i, p in enumerate(pieces):
        if delay and i == len(pieces) - 1:
            time.sleep(delay)
        if comp is not None:
            p = comp.compress(p) + comp.flush(zlib.Z_SYNC_FLUSH)
        ctx.chunk(p)
    if comp is not None:
        ctx.chunk(comp.flush())
    ctx.end_chunked()


def _sse(events, eol="\n"):
    """[(name or None, obj or str)] -> list of SSE event bytes."""
    out = []
    for name, data in events:
        s = ""
        if name:
            s += "event: %s%s" % (name, eol)
        s += "data: %s%s%s" % (data if isinstance(data, str)
                               else json.dumps(data), eol, eol)
        out.append(s.encode())
    return out


def _text_parts(ctx, default):
    """The completion text as (first half, second half)."""
    t = ctx.req.header("X-Fake-Text") or default
    i = t.find(" ", len(t) // 2)
    return (t[:i + 1], t[i + 1:]) if i >= 0 else (t, "")


def _fake_status(ctx):
    v = ctx.req.header("X-Fake-Status")
    return int(v) if v else 0


_REASONS = {429: "Too Many Requests", 529: "Overloaded",
            500: "Internal Server Error"}


def hm_anthropic_messages(ctx):
    rid = _test_id(ctx, "req_011Fake")
    hdrs = [("request-id", rid), ("anthropic-organization-id", "org-fake"),
            ("anthropic-ratelimit-requests-limit", "4000"),
            ("anthropic-ratelimit-requests-remaining", "3999")]
    req = _req_json(ctx)
    st = _fake_status(ctx)
    if st:
        etype = {429: "rate_limit_error", 529: "overloaded_error"}.get(
            st, "api_error")
        _json_reply(ctx, st, {"type": "error", "error": {
            "type": etype, "message": "fake %d" % st}, "request_id": rid},
            hdrs, reason=_REASONS.get(st, "Error"))
        return
    model = str(req.get("model") or "claude-sonnet-4-5") + "-20250929"
    if not req.get("stream"):
        _json_reply(ctx, 200, {
            "id": "msg_fake01", "type": "message", "role": "assistant",
            "model": model,
            "content": [{"type": "text",
                         "text": "".join(_text_parts(ctx, "Fake answer."))}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": METER_USAGE["anthropic"]}, hdrs)
        return
    start = json.dumps({"type": "message_start", "message": {
        "id": "msg_fake02", "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": None,
        "stop_sequence": None,
        "usage": METER_USAGE["anthropic_stream_start"]}})
    # The API pads JSON with blanks inside the object.
    start = start[:-1] + "              }"
    t1, t2 = _text_parts(ctx, "Fake stream.")
    events = [
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text",
                                                   "text": ""}}),
        ("ping", '{"type": "ping"}'),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta",
                                           "text": t1}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta",
                                           "text": t2}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn",
                                     "stop_sequence": None},
                           "usage": METER_USAGE["anthropic_stream_delta"]}),
        ("message_stop", {"type": "message_stop"}),
    ]
    _stream_pieces(ctx, _sse(events), hdrs,
                   "text/event-stream; charset=utf-8")


def hm_anthropic_count_tokens(ctx):
    _json_reply(ctx, 200, METER_USAGE["anthropic_count_tokens"],
                [("request-id", _test_id(ctx, "req_011Fake"))])


def hm_openai_chat(ctx):
    rid = _test_id(ctx, "req_fake")
    hdrs = [("x-request-id", rid), ("openai-processing-ms", "42"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-requests", "9999")]
    req = _req_json(ctx)
    st = _fake_status(ctx)
    if st:
        _json_reply(ctx, st, {"error": {
            "message": "You exceeded your current quota (fake).",
            "type": "insufficient_quota", "param": None,
            "code": "insufficient_quota"}}, hdrs,
            reason=_REASONS.get(st, "Error"))
        return
    model = str(req.get("model") or "gpt-5") + "-2025-08-07"
    cid = "chatcmpl-fake%s" % os.urandom(6).hex()
    t1, t2 = _text_parts(ctx, "Fake answer." if not req.get("stream")
                         else "Fake stream.")
    if not req.get("stream"):
        _json_reply(ctx, 200, {
            "id": cid, "object": "chat.completion", "created": 1760000000,
            "model": model,
            "choices": [{"index": 0, "message": {
                "role": "assistant", "content": t1 + t2,
                "refusal": None}, "logprobs": None,
                "finish_reason": "stop"}],
            "usage": METER_USAGE["openai_chat"],
            "service_tier": "default",
            "system_fingerprint": None}, hdrs)
        return
    include = bool((req.get("stream_options") or {}).get("include_usage"))
    base = {"id": cid, "object": "chat.completion.chunk",
            "created": 1760000000, "model": model,
            "service_tier": "default", "system_fingerprint": None}
    if include:
        base["usage"] = None
    chunks = [
        dict(base, choices=[{"index": 0, "delta": {
            "role": "assistant", "content": "", "refusal": None},
            "logprobs": None, "finish_reason": None}]),
        dict(base, choices=[{"index": 0, "delta": {"content": t1},
                             "logprobs": None, "finish_reason": None}]),
        dict(base, choices=[{"index": 0, "delta": {"content": t2},
                             "logprobs": None, "finish_reason": None}]),
        dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None,
                             "finish_reason": "stop"}]),
    ]
    if include:
        chunks.append(dict(base, choices=[],
                           usage=METER_USAGE["openai_chat_stream"]))
    events = [(None, c) for c in chunks] + [(None, "[DONE]")]
    _stream_pieces(ctx, _sse(events), hdrs, "text/event-stream")


def hm_openai_responses(ctx):
    rid = _test_id(ctx, "req_fake")
    hdrs = [("x-request-id", rid)]
    req = _req_json(ctx)
    model = str(req.get("model") or "gpt-5") + "-2025-08-07"
    resp_id = "resp_fake%s" % os.urandom(8).hex()
    text = "".join(_text_parts(ctx, "Fake answer."))
    msg = {"id": "msg_fake03", "type": "message", "status": "completed",
           "role": "assistant", "content": [{
               "type": "output_text", "text": text,
               "annotations": [], "logprobs": []}]}
    resp = {"id": resp_id, "object": "response", "created_at": 1760000000,
            "status": "in_progress", "model": model, "output": [],
            "usage": None, "error": None, "incomplete_details": None,
            "parallel_tool_calls": True, "tools": [], "text": {
                "format": {"type": "text"}}}
    done = dict(resp, status="completed", output=[msg],
                usage=METER_USAGE["openai_responses"])
    if not req.get("stream"):
        _json_reply(ctx, 200, done, hdrs)
        return
    evs = [
        {"type": "response.created", "sequence_number": 0,
         "response": resp},
        {"type": "response.in_progress", "sequence_number": 1,
         "response": resp},
        {"type": "response.output_item.added", "sequence_number": 2,
         "output_index": 0, "item": dict(msg, status="in_progress",
                                         content=[])},
        {"type": "response.output_text.delta", "sequence_number": 3,
         "item_id": "msg_fake03", "output_index": 0, "content_index": 0,
         "delta": text, "logprobs": []},
        {"type": "response.output_text.done", "sequence_number": 4,
         "item_id": "msg_fake03", "output_index": 0, "content_index": 0,
         "text": text, "logprobs": []},
        {"type": "response.output_item.done", "sequence_number": 5,
         "output_index": 0, "item": msg},
        {"type": "response.completed", "sequence_number": 6,
         "response": done},
    ]
    _stream_pieces(ctx, _sse([(e["type"], e) for e in evs]), hdrs,
                   "text/event-stream; charset=utf-8")


def hm_gemini(ctx):
    """/v1beta/models/{model}:{generateContent|streamGenerateContent}"""
    tail = ctx.req.path.split("/models/", 1)[-1]
    model, _, method = tail.partition(":")
    model = urllib.parse.unquote(model)
    st = _fake_status(ctx)
    rid = _test_id(ctx, "fakeResp")    # Gemini names it in the body only
    hdrs = [("Vary", "Origin, X-Origin, Referer")]
    if st:
        _json_reply(ctx, st, {"error": {
            "code": st, "message": "Resource has been exhausted (fake).",
            "status": "RESOURCE_EXHAUSTED"}}, hdrs,
            reason=_REASONS.get(st, "Error"))
        return
    version = model + "-001"

    def chunk(text, usage, finish=None):
        cand = {"content": {"parts": [{"text": text}], "role": "model"},
                "index": 0}
        if finish:
            cand["finishReason"] = finish
        return {"candidates": [cand], "usageMetadata": usage,
                "modelVersion": version, "responseId": rid}

    if method == "generateContent":
        _json_reply(ctx, 200, chunk("Fake answer.", METER_USAGE["gemini"],
                                    "STOP"), hdrs)
        return
    if method != "streamGenerateContent":
        ctx.respond(404, json.dumps({"error": {"code": 404}}), hdrs,
                    reason="Not Found", content_type="application/json")
        return
    us = METER_USAGE["gemini_stream"]
    parts = [chunk("Fake ", us[0]), chunk("stream", us[1]),
             chunk(".", us[2], "STOP")]
    if ctx.query.get("alt") == "sse":
        # Google ends SSE events with CRLF.
        _stream_pieces(ctx, _sse([(None, p) for p in parts], eol="\r\n"),
                       hdrs, "text/event-stream")
        return
    # Without alt=sse: one JSON array, pretty-printed, streamed.
    pieces = []
    for i, p in enumerate(parts):
        pieces.append((("[" if i == 0 else "\r\n,\r\n")
                       + json.dumps(p, indent=2)).encode())
    pieces.append(b"\r\n]")
    _stream_pieces(ctx, pieces, hdrs, "application/json; charset=UTF-8")


def eventstream_frame(headers, payload):
    """One AWS event-stream message: prelude + CRC, string headers,
    payload, message CRC."""
    hb = b""
    for k, v in headers:
        kb, vb = k.encode(), v.encode()
        hb += struct.pack(">B", len(kb)) + kb + b"\x07" + \
            struct.pack(">H", len(vb)) + vb
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xffffffff)
    msg = prelude + hb + payload
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xffffffff)


def hm_bedrock(ctx):
    """/model/{modelId}/invoke and /invoke-with-response-stream, with
    Anthropic payloads."""
    tail = ctx.req.path[len("/model/"):]
    model_id, _, op = tail.rpartition("/")
    model_id = urllib.parse.unquote(model_id)
    rid = _test_id(ctx, "")
    hdrs = [("x-amzn-RequestId", rid)]
    m = METER_USAGE
    inner_model = "claude-3-5-sonnet-20240620"
    if op == "invoke":
        hdrs += [("X-Amzn-Bedrock-Input-Token-Count",
                  str(m["bedrock_metrics"]["inputTokenCount"])),
                 ("X-Amzn-Bedrock-Output-Token-Count",
                  str(m["bedrock_metrics"]["outputTokenCount"]))]
        _json_reply(ctx, 200, {
            "id": "msg_bdrk_fake", "type": "message", "role": "assistant",
            "model": inner_model, "content": [{"type": "text",
                                               "text": "Fake."}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 700, "output_tokens": 66}}, hdrs)
        return
    if op != "invoke-with-response-stream":
        ctx.respond(404, "{}", hdrs, reason="Not Found",
                    content_type="application/json")
        return
    evs = [
        {"type": "message_start", "message": {
            "id": "msg_bdrk_fake", "type": "message", "role": "assistant",
            "model": inner_model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": m["bedrock_stream_start"]}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "Fake."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                            "stop_sequence": None},
         "usage": m["bedrock_stream_delta"]},
        {"type": "message_stop",
         "amazon-bedrock-invocationMetrics": m["bedrock_metrics"]},
    ]
    frames = []
    for i, e in enumerate(evs):
        payload = json.dumps({
            "bytes": base64.b64encode(json.dumps(e).encode()).decode(),
            "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[:4 + i * 3]})
        frames.append(eventstream_frame(
            [(":event-type", "chunk"), (":content-type", "application/json"),
             (":message-type", "event")], payload.encode()))
    _stream_pieces(ctx, frames, hdrs + [
        ("X-Amzn-Bedrock-Content-Type", "application/json")],
        "application/vnd.amazon.eventstream")


METER_ROUTES = {
    "/v1/messages": hm_anthropic_messages,
    "/v1/messages/count_tokens": hm_anthropic_count_tokens,
    "/v1/chat/completions": hm_openai_chat,
    "/v1/responses": hm_openai_responses,
    "/v1beta/models": hm_gemini,
    "/v1/models": hm_gemini,
    "/model": hm_bedrock,
}


# ------------------------------------------------------------------ server

class BadRequest(Exception):
    pass


def _tls10(ctx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")


def tls10_supported():
    """True if this OpenSSL can still make a TLS 1.0 server context."""
    try:
        _tls10(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        return True
    except (ValueError, ssl.SSLError):
        return False


class FakeUpstream:
    """The server.  fault = a pki.FAULTS kind served for every SNI;
    tls10 = serve TLS 1.0 only (raises if OpenSSL refuses)."""

    def __init__(self, pki, host="127.0.0.1", port=0, fault=None,
                 tls10=False, routes=None, tls=True):
        self.pki = pki
        self.tls = tls
        self.host = host
        self.fault = fault
        self.tls10 = tls10
        self.routes = dict(DEFAULT_ROUTES)
        if routes:
            self.routes.update(routes)
        self.lock = threading.Lock()
        self.connections = []
        self.requests = []
        self._socks = set()
        self._stop = threading.Event()
        self._ctxs = {}
        self._tls = threading.local()
        self._default_ctx = None
        self._build_contexts()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(512)
        self.port = self.listener.getsockname()[1]
        self._thread = None

    # -- TLS
    def _ctx(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.tls10:
            _tls10(ctx)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _build_contexts(self):
        if self.fault is not None:
            if self.fault not in FAULTS:
                raise ValueError("unknown fault %r" % self.fault)
            self._default_ctx = self._ctx(*self.pki.fault(self.fault))
        else:
            for h in HOSTS:
                self._ctxs[h] = self._ctx(*self.pki.cert(h))
            self._default_ctx = self._ctx(*self.pki.cert("localhost"))
        self._default_ctx.sni_callback = self._sni_cb

    def _sni_cb(self, sslsock, server_name, _ctx):
        conn = getattr(self._tls, "conn", None)
        if conn is not None:
            conn.sni = server_name
        if server_name in self._ctxs:
            sslsock.context = self._ctxs[server_name]
        return None

    # -- life cycle
    def route(self, prefix, handler):
        self.routes[prefix] = handler

    def start(self):
        self._thread = threading.Thread(target=self._accept_loop,
                                        name="fakeupstream-accept",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- queries for tests
    def requests_for(self, token):
        """Requests whose target contains token."""
        with self.lock:
            return [r for r in self.requests if token in r.target]

    def connections_for(self, token):
        ids = {r.conn_id for r in self.requests_for(token)}
        with self.lock:
            return [c for c in self.connections if c.id in ids]

    def connection(self, cid):
        with self.lock:
            for c in self.connections:
                if c.id == cid:
                    return c
        return None

    def wait_closed(self, cid, timeout):
        """Waits until connection cid ended; returns it or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = self.connection(cid)
            if c is not None and c.closed is not None:
                return c
            time.sleep(0.01)
        return None

    def open_connections(self):
        with self.lock:
            return [c for c in self.connections if c.closed is None]

    # -- serving
    def _accept_loop(self):
        cid = 0
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.listener], [], [], 0.2)
            except (OSError, ValueError):
                break
            if not r:
                continue
            try:
                sock, peer = self.listener.accept()
            except OSError:
                break
            cid += 1
            conn = Connection(cid, peer)
            with self.lock:
                self.connections.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, sock),
                                 name="fakeupstream-%d" % cid, daemon=True)
            t.start()

    def _serve(self, conn, raw):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(15)
        with self.lock:
            self._socks.add(raw)
        sock = None
        try:
            if not self.tls:
                sock = raw
                sock.settimeout(300)
                self._loop(conn, sock)
                return
            self._tls.conn = conn
            try:
                sock = self._default_ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                conn.handshake_error = str(e)
                conn.close_reason = "handshake-failed"
                return
            conn.handshake_ok = True
            conn.tls_version = sock.version()
            conn.alpn = sock.selected_alpn_protocol()
            with self.lock:
                self._socks.discard(raw)
                self._socks.add(sock)
            sock.settimeout(300)
            self._loop(conn, sock)
        finally:
            if conn.close_reason is None:
                conn.close_reason = "server"
            conn.closed = time.time()
            s = sock if sock is not None else raw
            with self.lock:
                self._socks.discard(s)
                self._socks.discard(raw)
            if sock is not None and conn.close_reason == "server":
                s = self._graceful_close(sock)
            try:
                s.close()
            except OSError:
                pass

    @staticmethod
    def _graceful_close(sock):
        """Ends a connection the server chose to close: TLS close_notify,
        then FIN, then drain until the peer closes (so no unread byte
        turns the close into a RST that could destroy data in flight)."""
        raw = sock
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock.settimeout(1)
                raw = sock.unwrap()
            except (OSError, ssl.SSLError, ValueError):
                raw = sock
        try:
            raw.shutdown(socket.SHUT_WR)
            raw.settimeout(2)
            deadline = time.time() + 2
            while time.time() < deadline:
                if not socket.socket.recv(raw, 65536):
                    break
        except (OSError, ValueError):
            pass
        return raw

    def _loop(self, conn, sock):
        buf = bytearray()
        while True:
            try:
                head, buf = self._read_head(sock, buf)
            except ClientGone as e:
                conn.close_reason = "eof" if not str(e) else str(e)
                return
            except BadRequest as e:
                conn.close_reason = "bad-request: %s" % e
                try:
                    sock.sendall(b"HTTP/1.1 400 Bad Request\r\n"
                                 b"Content-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                except OSError:
                    pass
                return
            conn.nrequests += 1
            req = self._parse_head(conn, head)
            try:
                body, buf = self._read_body(sock, req, buf)
            except ClientGone as e:
                conn.close_reason = "eof-in-body: %s" % e
                return
            except ValueError as e:
                conn.close_reason = "bad-body: %s" % e
                return
            req.body_len = len(body)
            req.body_sha256 = _sha(body)
            with self.lock:
                self.requests.append(req)
            ctx = Context(self, conn, sock, req, body)
            conn_hdr = (req.header("Connection") or "").lower()
            if "close" in conn_hdr or req.version == "HTTP/1.0":
                ctx.keep_alive = False
            handler = self._handler(req.path)
            try:
                if handler is None:
                    ctx.respond(404, "no handler for %s\n" % req.path,
                                content_type="text/plain", reason="Not Found")
                else:
                    handler(ctx)
                    if not ctx.done:
                        ctx.respond(500, "handler sent nothing\n",
                                    content_type="text/plain",
                                    reason="Internal Server Error")
            except ClientGone as e:
                conn.close_reason = "write-failed: %s" % e
                return
            if not ctx.keep_alive:
                conn.close_reason = "server"
                return

    def _handler(self, path):
        best = None
        for prefix in self.routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/") \
                    or path.startswith(prefix + "?"):
                if best is None or len(prefix) > len(best):
                    best = prefix
        return self.routes[best] if best is not None else None

    @staticmethod
    def _recv(sock):
        try:
            data = sock.recv(262144)
        except socket.timeout:
            raise ClientGone("timeout")
        except ConnectionResetError:
            raise ClientGone("reset")
        except (OSError, ssl.SSLError) as e:
            raise ClientGone("error: %s" % e)
        return data

    def _read_head(self, sock, buf):
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                return bytes(buf[:i]), buf[i + 4:]
            if len(buf) > MAX_HEAD:
                raise BadRequest("head too large")
            data = self._recv(sock)
            if not data:
                raise ClientGone("" if not buf else "eof-in-head")
            buf += data

    @staticmethod
    def _parse_head(conn, head):
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise BadRequest("request line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                raise BadRequest("header %r" % line)
            headers.append((k.strip(), v.strip()))
        return Request(conn, conn.nrequests, parts[0], parts[1], parts[2],
                       headers)

    def _read_exact(self, sock, buf, n):
        while len(buf) < n:
            data = self._recv(sock)
            if not data:
                raise ClientGone("eof")
            buf += data
        return bytes(buf[:n]), buf[n:]

    def _read_line(self, sock, buf):
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                return bytes(buf[:i]), buf[i + 2:]
            data = self._recv(sock)
            if not data:
                raise ClientGone("eof")
            buf += data

    def _read_body(self, sock, req, buf):
        te = (req.header("Transfer-Encoding") or "").lower()
        cl = req.header("Content-Length")
        if (req.header("Expect") or "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in te:
            req.chunked = True
            out = bytearray()
            while True:
                line, buf = self._read_line(sock, buf)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data, buf = self._read_exact(sock, buf, size + 2)
                out += data[:-2]
            while True:
                line, buf = self._read_line(sock, buf)
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                req.trailers.append((k.strip(), v.strip()))
            return bytes(out), buf
        if cl is not None:
            return self._read_exact(sock, buf, int(cl))
        return b"", buf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8443)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--certdir", required=True,
                    help="PKI directory (created when missing)")
    ap.add_argument("--fault", choices=FAULTS)
    ap.add_argument("--tls10", action="store_true")
    ap.add_argument("--plain", action="store_true",
                    help="plain HTTP instead of TLS")
    a = ap.parse_args()
    p = PKI(a.certdir)
    if not os.path.exists(p.ca_pem):
        p = PKI.create(a.certdir)
    if a.tls10 and not tls10_supported():
        raise SystemExit("this OpenSSL cannot serve TLS 1.0")
    up = FakeUpstream(p, a.host, a.port, fault=a.fault, tls10=a.tls10,
                      tls=not a.plain)
    up.start()
    print("fakeupstream on %s:%d (CA %s)" % (a.host, up.port, p.ca_pem),
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()


if __name__ == "__main__":
    main()
