"""A keep-alive HTTPS client through the daemon (CONNECT, then TLS with the
daemon's CA), for tests that need real exchanges to become records.

    c = ProxyClient(daemon, "api.anthropic.com")
    status, headers, body = c.post_json("/v1/messages", {...}, {...})
    c.close()

One ProxyClient is one tunnel (one TCP connection) reused for every
request, the way an SDK keeps its connection alive.
"""
import http.client
import json
import ssl


class ProxyClient:
    def __init__(self, daemon, host, port=443, timeout=30):
        self.daemon = daemon
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=daemon.ca_pem)
        self.conn = None

    def _connect(self):
        c = http.client.HTTPSConnection("127.0.0.1", self.daemon.port,
                                        timeout=self.timeout,
                                        context=self.ctx)
        c.set_tunnel(self.host, self.port)
        return c

    def post_json(self, path, body, headers=None):
        """POSTs body as JSON; returns (status, headers dict lower-cased,
        body bytes).  No retry: a dropped connection is an error."""
        data = json.dumps(body).encode()
        h = {"Content-Type": "application/json",
             "Accept-Encoding": "identity"}
        h.update(headers or {})
        if self.conn is None:
            self.conn = self._connect()
        self.conn.request("POST", path, body=data, headers=h)
        r = self.conn.getresponse()
        out = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if r.will_close:
            self.close()
        return r.status, hdrs, out

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
