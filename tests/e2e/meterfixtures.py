"""Helpers and fixtures for the metering end-to-end tests (test_meter_*.py).

    meter_upstream          a fake upstream serving fakeupstream.METER_ROUTES
                            (real-format LLM answers with known usage)
    meter_daemon            the daemon with every test host mapped to it
    project_dir(name)       a temp git repository named `name` (returns a
                            subdirectory of it, where clients run)
    log_records(d)          `halton-meter log --json --limit 0`, parsed
    wait_records(d, n)      polls log until n records are there
    run_sdk(d, spec, cwd)   runs clients/sdk/sdk_client.mjs (official Node
                            SDKs through an explicit undici ProxyAgent)

Import the fixtures into a test module with
`from meterfixtures import *  # noqa: F401,F403`.
"""
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.parse

import pytest

from conftest import BIN, default_connect_to
from fakeupstream import METER_ROUTES, FakeUpstream

HERE = pathlib.Path(__file__).resolve().parent
SDK_DIR = HERE / "clients" / "sdk"
SDK_CLIENT = SDK_DIR / "sdk_client.mjs"
SETUP = HERE.parents[1] / "scripts" / "e2e-setup.sh"

__all__ = ["meter_upstream", "meter_daemon", "project_dir", "log_records",
           "wait_records", "run_sdk", "key_fp", "proxy_url", "check_record",
           "db_path", "sdk_ready", "SDK_DIR"]


@pytest.fixture(scope="session")
def meter_upstream(pki):
    up = FakeUpstream(pki, routes=METER_ROUTES).start()
    yield up
    up.stop()


@pytest.fixture
def meter_daemon(start_daemon, meter_upstream):
    return start_daemon(connect_to=default_connect_to(meter_upstream.port))


@pytest.fixture
def project_dir(tmp_path):
    """project_dir(name) -> a directory inside a fresh git repository
    whose top-level is named `name` (so project == name, not the
    subdirectory's name)."""
    def make(name):
        top = tmp_path / "work" / name
        sub = top / "src" / "module"
        sub.mkdir(parents=True)
        r = subprocess.run(["git", "init", "-q", str(top)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return sub
    return make


def sdk_ready():
    """Runs scripts/e2e-setup.sh (npm ci when node_modules is missing);
    fails the test with its output if the SDKs cannot be installed."""
    if not (SDK_DIR / "node_modules" / "@anthropic-ai" / "sdk").is_dir():
        r = subprocess.run(["sh", str(SETUP)], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, ("e2e-setup.sh failed:\n%s\n%s"
                                   % (r.stdout, r.stderr))
    assert (SDK_DIR / "node_modules" / "undici").is_dir()


def db_path(d):
    return d.state_dir / "meter.db"


def key_fp(key):
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def proxy_url(d, tag=None):
    """The daemon's proxy URL; with a tag, in exactly the form
    `halton-meter env --tag TAG` (what `run --tag` sets) gives clients,
    pointed at this daemon's port."""
    if tag is None:
        return d.proxy_url
    r = subprocess.run([BIN, "env", "--shell", "sh", "--tag", tag],
                       env=d.env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    m = re.search(r"^export HTTPS_PROXY='([^']*)'$", r.stdout, re.M)
    assert m, r.stdout
    u = urllib.parse.urlsplit(m.group(1))
    user = u.netloc.rpartition("@")[0]
    assert user, "no tag in %r" % m.group(1)
    return "%s://%s@127.0.0.1:%d" % (u.scheme, user, d.port)


def log_records(d):
    r = subprocess.run([BIN, "log", "--json", "--limit", "0"], env=d.env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, ("log --json exited %d: %s"
                               % (r.returncode, r.stderr))
    recs = json.loads(r.stdout)
    assert isinstance(recs, list), r.stdout[:500]
    return recs


def wait_records(d, n, timeout=10.0, pred=None):
    """Polls `log --json` until at least n records (matching pred, if
    given) are there; returns them (all records if pred is None).  Fails
    with the daemon's stderr when they do not come."""
    deadline = time.time() + timeout
    recs = []
    while True:
        recs = log_records(d)
        sel = [r for r in recs if pred is None or pred(r)]
        if len(sel) >= n:
            return sel
        if time.time() > deadline:
            raise AssertionError(
                "%d record(s) expected after %.0fs, %d there (%d in all):"
                "\n%s\n--- daemon stderr ---\n%s"
                % (n, timeout, len(sel), len(recs),
                   json.dumps(recs[-5:], indent=1)[:4000], d.stderr()[-4000:]))
        time.sleep(0.1)


def check_record(rec, **want):
    """Asserts every key of want has that value in rec (all at once, so a
    failure shows every mismatch)."""
    bad = {k: (rec.get(k, "<missing>"), v) for k, v in want.items()
           if rec.get(k, "<missing>") != v}
    assert not bad, ("record fields (got, want): %s\nrecord: %s"
                     % (bad, json.dumps(rec, indent=1)))


def run_sdk(d, spec, cwd, timeout=60):
    """Runs the Node SDK client with spec (a dict, see sdk_client.mjs) in
    cwd; returns its JSON result."""
    sdk_ready()
    full = dict(spec)
    full.setdefault("proxy", proxy_url(d, spec.get("tag")))
    e = dict(d.env)
    e["NODE_EXTRA_CA_CERTS"] = d.ca_pem
    r = subprocess.run(["node", str(SDK_CLIENT), json.dumps(full)],
                       cwd=str(cwd), env=e, capture_output=True, text=True,
                       timeout=timeout)
    lines = r.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1])
    except (ValueError, IndexError):
        res = None
    assert r.returncode == 0 and res is not None, (
        "sdk client %s rc=%d\nstdout=%s\nstderr=%s\ndaemon=%s"
        % (spec, r.returncode, r.stdout[-2000:], r.stderr[-3000:],
           d.stderr()[-2000:]))
    return res


def state_files(d):
    """Every regular file under the state directory."""
    out = []
    for root, _, files in os.walk(d.state_dir):
        for f in files:
            p = pathlib.Path(root) / f
            if p.is_file():
                out.append(p)
    return out


__all__ += ["state_files"]


# The Python client, run as its own process so that its working directory
# (hence the record's project) is the test's git repository.
PY_CLIENT = r'''
import json, sys
spec = json.loads(sys.argv[1])
body = spec.get("body")
data = json.dumps(body).encode() if body is not None else None
h = dict(spec.get("headers") or {})
if data is not None:
    h.setdefault("Content-Type", "application/json")
if spec["lib"] == "requests":
    import requests
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"http": spec["proxy"], "https": spec["proxy"]}
    s.verify = spec["verify"]
    r = s.request(spec.get("method", "POST"), spec["url"], data=data,
                  headers=h, stream=True, timeout=30)
    out = b"".join(r.iter_content(None))
    res = {"status": r.status_code, "version": requests.__version__}
else:
    import httpx
    with httpx.Client(proxies=spec["proxy"], verify=spec["verify"],
                      trust_env=False, timeout=30) as c:
        with c.stream(spec.get("method", "POST"), spec["url"], content=data,
                      headers=h) as r:
            out = b"".join(r.iter_bytes())
            res = {"status": r.status_code, "version": httpx.__version__}
res["body"] = out.decode("utf-8", "replace")
print(json.dumps(res))
'''


def run_py(d, lib, url, cwd, body=None, headers=None, tag=None,
           method="POST", timeout=60):
    """Python requests or httpx (lib) in a subprocess with cwd, through the
    daemon (tag in the proxy URL when given); returns {status, version,
    body} (body decoded by the library)."""
    spec = {"lib": lib, "url": url, "body": body, "headers": headers or {},
            "proxy": proxy_url(d, tag), "verify": d.bundle_pem,
            "method": method}
    r = subprocess.run([sys.executable, "-c", PY_CLIENT, json.dumps(spec)],
                       cwd=str(cwd), env=d.env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, ("%s client rc=%d\n%s\ndaemon:\n%s"
                               % (lib, r.returncode, r.stderr[-3000:],
                                  d.stderr()[-2000:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_curl(d, url, cwd, body=None, headers=None, tag=None, extra=(),
             timeout=60):
    """curl in cwd through the daemon; returns (status, body bytes)."""
    argv = ["curl", "-sS", "--proxy", proxy_url(d, tag), "--cacert",
            d.ca_pem, "-o", "-", "-w", "\n%{http_code}"]
    for k, v in (headers or {}).items():
        argv += ["-H", "%s: %s" % (k, v)]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary",
                 json.dumps(body)]
    argv += list(extra) + [url]
    r = subprocess.run(argv, cwd=str(cwd), env=d.env, capture_output=True,
                       timeout=timeout)
    assert r.returncode == 0, ("curl rc=%d %s\ndaemon:\n%s"
                               % (r.returncode, r.stderr, d.stderr()[-2000:]))
    out, _, code = r.stdout.rpartition(b"\n")
    return int(code), out


def curl_version():
    out = subprocess.run(["curl", "--version"], capture_output=True,
                         text=True).stdout
    return out.split()[1]


def sdk_version(pkg):
    with open(SDK_DIR / "node_modules" / pkg / "package.json") as f:
        return json.load(f)["version"]


def by_request_id(recs):
    out = {}
    for r in recs:
        out.setdefault(r.get("request_id"), []).append(r)
    return out


__all__ += ["run_py", "run_curl", "curl_version", "sdk_version",
            "by_request_id"]
