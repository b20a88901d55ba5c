"""The benchmark tools (tools/loadgen, tools/upstream) work, directly and
through the daemon (intercepted, tunnelled, new host names, held
connections), with exact request, byte and event counts."""
import json
import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = pathlib.Path(os.environ.get("HALTON_METER_TOOLS",
                                    str(ROOT / "build" / "tools")))
LOADGEN = TOOLS / "loadgen"
UPSTREAM = TOOLS / "upstream"
MIB = 1024 * 1024


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def bench_pki(tmp_path):
    """A test CA and one P-256 leaf for the names the bench serves."""
    d = tmp_path / "benchpki"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"),
             "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=bench CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", *ec, "-keyout", str(d / "leaf.key"),
             "-out", str(d / "leaf.csr"), "-subj", "/CN=api.anthropic.com")
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:api.anthropic.com,DNS:bench.tunnel.test,"
        "DNS:*.bench.test\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(d / "leaf.csr"),
             "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-out", str(d / "leaf.pem"), "-days", "2",
             "-extfile", str(d / "leaf.ext"))
    return d


@pytest.fixture
def bench_upstream(bench_pki, tmp_path):
    assert UPSTREAM.is_file(), "%s missing (make tools)" % UPSTREAM
    portfile = tmp_path / "up.port"
    proc = subprocess.Popen(
        [str(UPSTREAM), "--cert", str(bench_pki / "leaf.pem"),
         "--key", str(bench_pki / "leaf.key"), "--port-file", str(portfile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        if portfile.exists() and portfile.read_text().strip():
            break
        time.sleep(0.05)
    port = int(portfile.read_text())
    yield port
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def loadgen(*args, expect_rc=0):
    assert LOADGEN.is_file(), "%s missing (make tools)" % LOADGEN
    r = subprocess.run([str(LOADGEN), "--timeout", "60"] + list(args),
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == expect_rc, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def test_loadgen_direct(bench_pki, bench_upstream):
    ca = str(bench_pki / "ca.pem")
    tgt = "127.0.0.1:%d" % bench_upstream
    r = loadgen("--target", tgt, "--sni", "api.anthropic.com", "--ca", ca,
                "-n", "50", "-c", "4")
    assert (r["ok"], r["errors"]) == (50, 0)
    # Every SSE response has the same size, about 4 KB.
    assert r["bytes"] % 50 == 0 and 3500 <= r["bytes"] // 50 <= 4600
    assert r["lat_us"]["p50"] <= r["lat_us"]["p99"] <= r["lat_us"]["max"]
    assert sum(r["hist_log2_us"]) == 50
    r = loadgen("--target", tgt, "--sni", "api.anthropic.com", "--ca", ca,
                "-n", "2", "--path", "1mib")
    assert (r["ok"], r["errors"], r["bytes"]) == (2, 0, 2 * MIB)
    r = loadgen("--target", tgt, "--sni", "api.anthropic.com", "--ca", ca,
                "-n", "1", "--path", "dribble")
    assert (r["ok"], r["events"]) == (1, 50)
    # 50 events 20 ms apart.
    assert r["lat_us"]["max"] >= 49 * 20000
    r = loadgen("--target", tgt, "--sni", "h%d.bench.test", "--ca", ca,
                "-n", "5", "--new-conn")
    assert (r["ok"], r["errors"]) == (5, 0)


def test_loadgen_rejects_wrong_ca(bench_pki, bench_upstream, tmp_path):
    # The loadgen verifies: a CA that did not sign the leaf fails every
    # request.
    other = tmp_path / "other.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(tmp_path / "other.key"), "-out", str(other),
             "-days", "2", "-subj", "/CN=other")
    r = loadgen("--target", "127.0.0.1:%d" % bench_upstream,
                "--sni", "api.anthropic.com", "--ca", str(other), "-n", "3",
                expect_rc=1)
    assert (r["ok"], r["errors"]) == (0, 3)


def test_loadgen_through_daemon(bench_pki, bench_upstream, home,
                                start_daemon):
    (home / ".halton-meter").mkdir(exist_ok=True)
    (home / ".halton-meter" / "config").write_text(
        "intercept = *.bench.test\n")
    d = start_daemon(connect_to=["::127.0.0.1:%d" % bench_upstream],
                     upstream_ca=[str(bench_pki / "ca.pem")])
    proxy = "127.0.0.1:%d" % d.port
    hca = str(home / ".halton-meter" / "ca.pem")
    # Intercepted: the client trusts only the daemon's CA.
    r = loadgen("--proxy", proxy, "--target", "api.anthropic.com:443",
                "--sni", "api.anthropic.com", "--ca", hca, "-n", "40",
                "-c", "4")
    assert (r["ok"], r["errors"]) == (40, 0)
    r = loadgen("--proxy", proxy, "--target", "api.anthropic.com:443",
                "--sni", "api.anthropic.com", "--ca", hca, "-n", "2",
                "--path", "1mib")
    assert (r["ok"], r["bytes"]) == (2, 2 * MIB)
    r = loadgen("--proxy", proxy, "--target", "api.anthropic.com:443",
                "--sni", "api.anthropic.com", "--ca", hca, "-n", "1",
                "--path", "dribble")
    assert (r["ok"], r["events"]) == (1, 50)
    # New host names under the intercepted wildcard: one leaf each.
    r = loadgen("--proxy", proxy, "--target", "n%d.bench.test:443",
                "--sni", "n%d.bench.test", "--ca", hca, "-n", "6",
                "--new-conn")
    assert (r["ok"], r["errors"]) == (6, 0)
    # Tunnelled: the client sees the upstream's own certificate.
    r = loadgen("--proxy", proxy, "--target", "bench.tunnel.test:443",
                "--sni", "bench.tunnel.test", "--ca",
                str(bench_pki / "ca.pem"), "-n", "20", "-c", "2")
    assert (r["ok"], r["errors"]) == (20, 0)
    # Held connections: all answered, then held open.
    r = loadgen("--proxy", proxy, "--target", "api.anthropic.com:443",
                "--sni", "api.anthropic.com", "--ca", hca, "--hold", "10",
                "--hold-secs", "0")
    assert (r["ok"], r["errors"]) == (10, 0)
