"""Real clients through the daemon: curl, Python requests, Python httpx,
Node's https (by hand over a CONNECT tunnel) and a raw socket client.

All of them reach https://HOST/... through the proxy at 127.0.0.1:PORT
and trust the halton CA the way users do: curl --cacert ca.pem, node
NODE_EXTRA_CA_CERTS=ca.pem, Python bundle.pem (system roots + CA).
"""

import hashlib
import json
import os
import pathlib
import socket
import ssl
import subprocess
import time

HERE = pathlib.Path(__file__).resolve().parent
NODE_CLIENT = str(HERE / "clients" / "node_client.js")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def client_env(d, extra=None):
    """The daemon's clean environment (temp HOME, no proxy variables)."""
    e = dict(d.env)
    if extra:
        e.update(extra)
    return e


# ------------------------------------------------------------------ curl

def curl(d, url, *args, cacert=None, timeout=60):
    """curl through the proxy.  Returns CompletedProcess (bytes); the
    last stdout line is the HTTP status when -w is not overridden."""
    argv = ["curl", "-sS", "--proxy", d.proxy_url, "--cacert",
            cacert or d.ca_pem] + list(args) + [url]
    return subprocess.run(argv, env=client_env(d), capture_output=True,
                          timeout=timeout)


# -------------------------------------------------------- requests/httpx

def requests_session(d, verify=None):
    import requests
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": d.proxy_url, "https": d.proxy_url}
    s.verify = verify or d.bundle_pem
    return s


def httpx_client(d, verify=None, timeout=60):
    import httpx
    return httpx.Client(proxies=d.proxy_url, verify=verify or d.bundle_pem,
                        trust_env=False, timeout=timeout)


# ------------------------------------------------------------------ node

def node(d, url, method="GET", upload=None, chunked=False, out=None,
         headers=None, ca=None, timeout=60):
    """Runs clients/node_client.js; returns its JSON result (dict)."""
    spec = {"proxy": "127.0.0.1:%d" % d.port, "url": url, "method": method,
            "upload": upload, "chunked": chunked, "out": out,
            "headers": headers or {}, "ca": ca}
    e = client_env(d, {"NODE_EXTRA_CA_CERTS": d.ca_pem})
    r = subprocess.run(["node", NODE_CLIENT, json.dumps(spec)], env=e,
                       capture_output=True, timeout=timeout)
    try:
        res = json.loads(r.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("node client failed rc=%d\nstdout=%r\n"
                             "stderr=%r" % (r.returncode, r.stdout,
                                            r.stderr))
    res["rc"] = r.returncode
    return res


# ------------------------------------------------------------------- raw

def connect_tunnel(d, host, port=443, timeout=10):
    """A plain socket to the proxy after a successful CONNECT host:port."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" %
               (host, port, host, port)).encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        if not b:
            s.close()
            raise ConnectionError("proxy closed during CONNECT: %r" % head)
        head += b
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        s.close()
        raise ConnectionError("CONNECT answered %r" % head)
    return s


def tls_through(d, host, port=443, cafile=None, timeout=10, sni=True):
    """An SSLSocket to host through the proxy, verified with cafile (the
    halton ca.pem by default)."""
    raw = connect_tunnel(d, host, port, timeout)
    ctx = ssl.create_default_context(cafile=cafile or d.ca_pem)
    ctx.set_alpn_protocols(["http/1.1"])
    if not sni:
        ctx.check_hostname = False
    return ctx.wrap_socket(raw, server_hostname=host if sni else None)


class HTTPConn:
    """A minimal HTTP/1.1 client over one socket, for tests that need to
    see exactly what happens on the wire (keep-alive, bad input, timing)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.trailers = []      # of the last chunked body read

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, host, body=None, headers=()):
        h = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host]
        h += ["%s: %s" % kv for kv in headers]
        if body is not None:
            h.append("Content-Length: %d" % len(body))
        self.send(("\r\n".join(h) + "\r\n\r\n").encode() + (body or b""))

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise EOFError("connection closed")
        self.buf += data
        return len(data)

    def read_head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i]).decode("latin-1")
                del self.buf[:i + 4]
                lines = head.split("\r\n")
                status = int(lines[0].split(" ")[1])
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                return status, headers
            self._fill()

    def _read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def _read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def iter_body(self, headers, method="GET", status=200):
        """Yields (bytes, arrival time) pieces of the body as they
        arrive.  Raises EOFError/OSError if the body is cut short."""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    self.trailers = []
                    while True:
                        line = self._read_line()
                        if not line:
                            break
                        k, _, v = line.decode("latin-1").partition(":")
                        self.trailers.append((k.strip().lower(), v.strip()))
                    return
                while len(self.buf) < size + 2:
                    self._fill()
                t = time.time()
                data = bytes(self.buf[:size])
                del self.buf[:size + 2]
                yield data, t
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left > 0:
                if not self.buf:
                    self._fill()
                t = time.time()
                data = bytes(self.buf[:left])
                del self.buf[:len(data)]
                left -= len(data)
                yield data, t
        else:
            while True:
                if self.buf:
                    data = bytes(self.buf)
                    self.buf.clear()
                    yield data, time.time()
                try:
                    self._fill()
                except EOFError:
                    return

    def response(self, method="GET"):
        """(status, headers, body) of the next response; 1xx skipped."""
        while True:
            status, headers = self.read_head()
            if 100 <= status < 200 and status != 101:
                continue
            break
        body = b"".join(p for p, _ in self.iter_body(headers, method,
                                                     status))
        return status, headers, body


def read_all(sock, timeout=5):
    """Everything sock sends until EOF (or timeout)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError, ssl.SSLError):
        pass
    return out


def write_random(path, nbytes):
    with open(path, "wb") as f:
        left = nbytes
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return sha256_file(path)
