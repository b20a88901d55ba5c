"""Shared pytest fixtures: the built binary and an isolated environment.

Every test runs the real halton-meter binary with a temporary HOME, so
nothing outside the test's temp directory is read or written.

Fixtures:
  home, env, hm          temp HOME, clean environment, run the CLI
  pki                    the test upstream PKI (pki.py), once per session
  upstream               the fake upstream (fakeupstream.py), once per session
  plain_upstream         the same without TLS (plain HTTP)
  fault_upstream(kind)   a fake upstream serving one fault ("expired",
                         "wronghost", "selfsigned", "unknownca", "tls10")
  start_daemon(...)      starts `halton-meter daemon --foreground` (a
                         Daemon); teardown SIGTERMs it and asserts exit 0
  daemon                 start_daemon() with the default --connect-to map
"""
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("HALTON_METER_BIN", str(ROOT / "halton-meter"))
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fakeupstream import FakeUpstream, tls10_supported  # noqa: E402
from pki import HOSTS, PKI  # noqa: E402

SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"
ROOTS_REL = "etc/ssl/certs/ca-certificates.crt"
# Variables that would leak the developer's proxy or trust settings into
# a client or the daemon.
_DROP = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
         "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS",
         "GIT_SSL_CAINFO", "AWS_CA_BUNDLE", "CURL_HOME")


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def env(home, tmp_path):
    """A clean environment: temp HOME and SYSROOT, no proxy variables.

    HALTON_METER_SYSTEM_ROOTS names a copy of the Debian roots inside the
    sysroot (the same file is also at the sysroot's default path)."""
    e = {k: v for k, v in os.environ.items()
         if not k.upper().endswith("_PROXY") and not k.startswith("HALTON_")
         and k not in _DROP}
    e["HOME"] = str(home)
    sysroot = tmp_path / "sysroot"
    sysroot.mkdir()
    e["HALTON_METER_SYSROOT"] = str(sysroot)
    roots = sysroot / ROOTS_REL
    roots.parent.mkdir(parents=True)
    shutil.copyfile(SYSTEM_ROOTS, roots)
    e["HALTON_METER_SYSTEM_ROOTS"] = str(roots)
    e["NO_COLOR"] = "1"
    return e


@pytest.fixture
def hm(env):
    """Runs halton-meter with the test environment; returns the result."""
    def run(*args, input=None, extra_env=None, timeout=30):
        e = dict(env)
        if extra_env:
            e.update(extra_env)
        return subprocess.run([BIN, *args], env=e, input=input,
                              capture_output=True, text=True,
                              timeout=timeout)
    return run


# ------------------------------------------------------------ upstreams

@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def upstream(pki):
    up = FakeUpstream(pki).start()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def plain_upstream(pki):
    """The fake upstream without TLS (for absolute-form http:// tests)."""
    up = FakeUpstream(pki, tls=False).start()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def fault_upstream(pki):
    made = {}

    def get(kind):
        if kind not in made:
            if kind == "tls10":
                if not tls10_supported():
                    pytest.fail("this OpenSSL cannot serve TLS 1.0; the "
                                "TLS 1.0 fault cannot be tested here")
                made[kind] = FakeUpstream(pki, tls10=True).start()
            else:
                made[kind] = FakeUpstream(pki, fault=kind).start()
        return made[kind]
    yield get
    for up in made.values():
        up.stop()


def free_port():
    """A loopback port nobody listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------- daemon

class DaemonFailed(Exception):
    pass


class Daemon:
    """A running `halton-meter daemon --foreground`."""

    def __init__(self, proc, port, home, env, stderr_path):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.home = pathlib.Path(home)
        self.env = env
        self.stderr_path = stderr_path
        self.state_dir = self.home / ".halton-meter"
        self.ca_pem = str(self.state_dir / "ca.pem")
        self.bundle_pem = str(self.state_dir / "bundle.pem")
        self.mitm_ca = self.home / ".mitmproxy" / "mitmproxy-ca.pem"
        self.proxy_url = "http://127.0.0.1:%d" % port
        self.exit_code = None

    def stderr(self):
        try:
            return pathlib.Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""

    def get(self, path, timeout=5):
        """An origin-form request to the daemon itself: (status, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def healthz(self):
        status, body = self.get("/healthz")
        assert status == 200, (status, body)
        return json.loads(body)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        self.exit_code = self.proc.wait(timeout)
        return self.exit_code

    def stop(self, timeout=15):
        """SIGTERM, wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise DaemonFailed("daemon did not exit %ds after SIGTERM\n%s"
                               % (timeout, self.stderr()))
        return self.exit_code


def default_connect_to(up_port):
    """Every PKI host (but localhost) on 443 → the fake upstream."""
    return ["%s:443:127.0.0.1:%d" % (h, up_port) for h in HOSTS
            if h != "localhost"]


def launch(env, args, stderr_path, port=None):
    """Starts the daemon process (no waiting).  Returns (proc, port)."""
    port = port or free_port()
    argv = [BIN, "daemon", "--foreground", "--listen",
            "127.0.0.1:%d" % port] + list(args)
    errf = open(stderr_path, "ab")
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=errf, stderr=errf,
                                start_new_session=True)
    finally:
        errf.close()
    return proc, port


def wait_ready(d, timeout=10):
    """Waits until /healthz answers 200; raises with stderr if not."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if d.proc.poll() is not None:
            raise DaemonFailed("daemon exited %d before it was ready:\n%s"
                               % (d.proc.returncode, d.stderr()))
        try:
            status, _ = d.get("/healthz", timeout=1)
            if status == 200:
                return
            last = "status %d" % status
        except (OSError, http.client.HTTPException) as e:
            last = repr(e)
        time.sleep(0.05)
    raise DaemonFailed("daemon not ready after %ds (%s):\n%s"
                       % (timeout, last, d.stderr()))


@pytest.fixture
def start_daemon(env, home, tmp_path, upstream, pki):
    """Factory: start_daemon(connect_to=None, upstream_ca=None, args=(),
    extra_env=None, wait=True) -> Daemon.  connect_to None = every test
    host to the session's fake upstream; upstream_ca None = the test CA.
    Teardown stops every daemon still running and asserts it exited 0."""
    started = []

    def start(connect_to=None, upstream_ca=None, args=(), extra_env=None,
              wait=True):
        if connect_to is None:
            connect_to = default_connect_to(upstream.port)
        if upstream_ca is None:
            upstream_ca = [pki.ca_pem]
        a = []
        for c in connect_to:
            a += ["--connect-to", c]
        for f in upstream_ca:
            a += ["--upstream-ca", f]
        a += list(args)
        e = dict(env)
        if extra_env:
            e.update(extra_env)
        errpath = tmp_path / ("daemon-%d.stderr" % len(started))
        proc, port = launch(e, a, errpath)
        d = Daemon(proc, port, home, e, errpath)
        started.append(d)
        if wait:
            wait_ready(d)
        return d

    yield start
    errors = []
    for d in started:
        if d.exit_code is not None or d.proc.poll() is not None:
            rc = d.proc.returncode
            stopped_by_test = d.exit_code is not None
        else:
            rc = d.stop()
            stopped_by_test = False
        if not stopped_by_test and rc != 0:
            errors.append("daemon pid %d exited %r (expected 0 after "
                          "SIGTERM):\n%s" % (d.pid, rc, d.stderr()))
    assert not errors, "\n".join(errors)


@pytest.fixture
def daemon(start_daemon):
    return start_daemon()
