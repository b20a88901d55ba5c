"""A tiny Chrome DevTools Protocol client on the standard library.

Starts Debian's headless Chromium with --remote-debugging-port=0, reads the
port Chromium chose from DevToolsActivePort in its fresh user data
directory, finds the page target with GET /json/list and talks to it over
a WebSocket (RFC 6455, written here by hand: client frames masked, server
frames plain, text and continuation frames, ping answered, close honoured).

    with Browser.launch(tmpdir, env) as b:
        page = b.page()
        page.call("Page.enable")
        page.call("Page.navigate", {"url": url})
        page.wait_event(lambda e: e["method"] == "Page.loadEventFired", 10)
        page.evaluate("document.title")

Every event received is kept in page.events (in order), so a test can look
at console messages and exceptions after the fact.
"""
import base64
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--no-default-browser-check", "--disable-dev-shm-usage",
    "--no-proxy-server", "--lang=en-US", "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CDPError(Exception):
    pass


def chromium_path():
    """The Chromium binary: $HALTON_METER_CHROMIUM, else chromium or
    chromium-browser on PATH; None when there is none."""
    p = os.environ.get("HALTON_METER_CHROMIUM")
    if p:
        return p if os.access(p, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class WebSocket:
    """A blocking client WebSocket over a plain TCP socket (ws:// only)."""

    def __init__(self, url, timeout=10):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise CDPError("only ws:// URLs: %s" % url)
        self.sock = socket.create_connection((u.hostname, u.port or 80),
                                             timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n"
               % (path, u.hostname, u.port or 80, key))
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill(timeout)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1:2] != ["101"]:
            raise CDPError("WebSocket handshake refused: %s" % lines[0])
        want = base64.b64encode(hashlib.sha1(
            (key + WS_GUID).encode()).digest()).decode()
        accept = [ln.split(":", 1)[1].strip() for ln in lines[1:]
                  if ln.lower().startswith("sec-websocket-accept:")]
        if accept != [want]:
            raise CDPError("bad Sec-WebSocket-Accept: %r" % accept)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 16)
        if not data:
            raise CDPError("WebSocket closed by the browser")
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("WebSocket read timed out")
            self._fill(left)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode())

    def recv_text(self, timeout):
        """The next whole text message; raises socket.timeout when none
        comes within timeout seconds."""
        deadline = time.time() + timeout
        parts = []
        while True:
            b0, b1 = self._take(2, deadline)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8, deadline))[0]
            mask = self._take(4, deadline) if b1 & 0x80 else None
            payload = self._take(n, deadline)
            if mask:
                payload = bytes(b ^ mask[i & 3] for i, b in
                                enumerate(payload))
            if opcode == 0x9:          # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:          # pong
                continue
            if opcode == 0x8:
                raise CDPError("WebSocket closed by the browser")
            if opcode not in (0x0, 0x1):
                raise CDPError("unexpected WebSocket opcode %d" % opcode)
            parts.append(payload)
            if fin:
                return b"".join(parts).decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Target:
    """One DevTools session (a page): call() and events."""

    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []
        self.pending = []   # events not yet looked at by wait_event

    def _dispatch(self, msg):
        if "id" in msg:
            return msg
        self.events.append(msg)
        self.pending.append(msg)
        return None

    def call(self, method, params=None, timeout=15):
        """Sends a command; returns its result (raises CDPError on an
        error answer).  Events arriving meanwhile are kept."""
        self.next_id += 1
        mid = self.next_id
        self.ws.send_text(json.dumps({"id": mid, "method": method,
                                      "params": params or {}}))
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise CDPError("%s: no answer in %ss" % (method, timeout))
            msg = self._dispatch(json.loads(self.ws.recv_text(left)))
            if msg is None or msg["id"] != mid:
                continue
            if "error" in msg:
                raise CDPError("%s: %s" % (method, msg["error"]))
            return msg.get("result", {})

    def pump(self, seconds):
        """Receives events for the given time."""
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return
            try:
                self._dispatch(json.loads(self.ws.recv_text(left)))
            except socket.timeout:
                return

    def wait_event(self, pred, timeout):
        """The first event (kept since the last wait) matching pred."""
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.pending):
                if pred(e):
                    del self.pending[:i + 1]
                    return e
            self.pending.clear()
            left = deadline - time.time()
            if left <= 0:
                raise CDPError("no matching event in %ss" % timeout)
            self.pump(min(left, 0.2))

    def evaluate(self, expr, timeout=15):
        """The value of a JavaScript expression (returnByValue)."""
        r = self.call("Runtime.evaluate", {
            "expression": expr, "returnByValue": True,
            "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            raise CDPError("evaluate %r: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def poll(self, expr, timeout, interval=0.1):
        """Evaluates expr until it is truthy; returns that value or raises
        CDPError after timeout seconds (with the last value)."""
        deadline = time.time() + timeout
        v = None
        while time.time() < deadline:
            v = self.evaluate(expr)
            if v:
                return v
            self.pump(interval)
        raise CDPError("%s still %r after %ss" % (expr, v, timeout))

    def close(self):
        self.ws.close()


class Browser:
    """A headless Chromium process with a fresh profile."""

    def __init__(self, proc, port, profile, log_path):
        self.proc = proc
        self.port = port
        self.profile = profile
        self.log_path = log_path
        self.targets = []

    @classmethod
    def launch(cls, workdir, env=None, width=1280, height=1400,
               timeout=30):
        """Starts Chromium (as root this needs --no-sandbox, passed
        always); its output goes to workdir/chromium.log."""
        exe = chromium_path()
        if exe is None:
            raise CDPError("no Chromium: install Debian's chromium package "
                           "(apt-get install chromium) or set "
                           "HALTON_METER_CHROMIUM")
        workdir = pathlib.Path(workdir)
        profile = workdir / "chromium-profile"
        profile.mkdir(parents=True)
        log_path = workdir / "chromium.log"
        argv = [exe] + CHROMIUM_FLAGS + [
            "--user-data-dir=%s" % profile,
            "--window-size=%d,%d" % (width, height), "about:blank"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, env=env,
                                    start_new_session=True)
        b = cls(proc, None, profile, log_path)
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise CDPError("chromium exited %d:\n%s"
                               % (proc.returncode, b.log()))
            try:
                first = port_file.read_text().split("\n")[0]
                if first.strip():
                    b.port = int(first)
                    break
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                b.close()
                raise CDPError("chromium did not open its DevTools port "
                               "in %ds:\n%s" % (timeout, b.log()))
            time.sleep(0.05)
        return b

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def http_json(self, path):
        with urllib.request.build_opener(
                urllib.request.ProxyHandler({})).open(
                "http://127.0.0.1:%d%s" % (self.port, path),
                timeout=10) as r:
            return json.loads(r.read())

    def page(self):
        """A session on the first page target."""
        deadline = time.time() + 10
        while True:
            pages = [t for t in self.http_json("/json/list")
                     if t.get("type") == "page"]
            if pages:
                break
            if time.time() > deadline:
                raise CDPError("chromium has no page target")
            time.sleep(0.1)
        t = Target(pages[0]["webSocketDebuggerUrl"])
        self.targets.append(t)
        return t

    def close(self):
        for t in self.targets:
            try:
                t.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def problems(events):
    """Console errors and warnings, uncaught exceptions and log entries of
    level error or warning among CDP events, as readable strings."""
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in (
                "error", "warning", "assert"):
            args = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            out.append("console.%s: %s" % (p["type"], args))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = d.get("exception", {}).get("description") or d.get("text")
            out.append("exception: %s (line %s)" % (desc, d.get("lineNumber")))
        elif m == "Log.entryAdded":
            en = p.get("entry", {})
            if en.get("level") in ("error", "warning"):
                out.append("log %s/%s: %s %s" % (
                    en.get("source"), en.get("level"), en.get("text"),
                    en.get("url", "")))
    return out
