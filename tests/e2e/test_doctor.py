"""halton-meter doctor: every layer checked, the broken one named.

Each test starts from a healthy install (init --apps with the recording
fakes on PATH, a real daemon on a loopback port, temp HOME and SYSROOT),
breaks exactly one layer, and asserts exit 1, the named layer and its fix.
"""
import datetime
import http.server
import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import free_port
from osfixtures import BIN, CERTIFI_TEXT, osenv  # noqa: F401

OK, WARN, FAIL = "\u2713", "!", "\u2717"
LAYERS = ("install", "CA", "bundle", "certifi", "env", "trust",
          "system proxy", "daemon", "round-trip", "clients", "captures")


def parse(stdout):
    """[(symbol, layer, detail, fix or None)] and the 'wrong layer' line."""
    out, wrong = [], None
    for line in stdout.splitlines():
        if line.startswith("the layer that is wrong: "):
            wrong = line[len("the layer that is wrong: "):]
            continue
        if line[:1] in (OK, WARN, FAIL) and len(line) > 2:
            rest = line[2:]
            layer = next((l for l in sorted(LAYERS, key=len, reverse=True)
                          if rest.startswith(l + " ")), None)
            assert layer is not None, line
            out.append([line[0], layer, rest[len(layer):].strip(), None])
        elif line.strip().startswith("fix: "):
            assert out, line
            out[-1][3] = line.strip()[5:]
    return out, wrong


def export_vars(osenv, platform):
    """The variables a new shell gets from the rc block (`env`)."""
    r = osenv.hm("env", platform=platform)
    assert r.returncode == 0, r.stderr
    v = {}
    for line in r.stdout.splitlines():
        name, _, val = line[len("export "):].partition("=")
        v[name] = val.strip("'")
    assert "HTTPS_PROXY" in v and "SSL_CERT_FILE" in v
    return v


class Install:
    """A healthy install: daemon running, init done, shell variables."""

    def __init__(self, osenv, daemon, platform, mode):
        self.osenv = osenv
        self.daemon = daemon
        self.platform = platform
        self.home = osenv.home
        self.vars = export_vars(osenv, platform)
        self.mode = mode

    def doctor(self, *args, extra=None, drop=()):
        e = dict(self.vars)
        if extra:
            e.update(extra)
        env = dict(self.osenv.env)
        env.update(e)
        for k in drop:
            env.pop(k, None)
        env["HALTON_METER_PLATFORM"] = self.platform
        t0 = time.monotonic()
        r = subprocess.run([BIN, "doctor", *args], env=env,
                           capture_output=True, text=True, timeout=60)
        r.elapsed = time.monotonic() - t0
        return r


def make_install(osenv, start_daemon, platform="linux", mode="--apps",
                 clients=("curl",)):
    for c in clients:
        real = shutil.which(c, path="/usr/local/bin:/usr/bin:/bin")
        assert real, "%s is needed for the clients check" % c
        os.symlink(real, osenv.shells / c)
    osenv.add_shells("bash")
    d = start_daemon()
    osenv.env["HALTON_METER_LISTEN"] = "127.0.0.1:%d" % d.port
    args = ["init"] + ([mode] if mode else [])
    r = osenv.hm(*args, platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    return Install(osenv, d, platform, mode)


@pytest.fixture
def apps(osenv, start_daemon):  # noqa: F811
    return make_install(osenv, start_daemon)


def line_of(results, symbol, layer):
    hits = [r for r in results if r[0] == symbol and r[1] == layer]
    assert hits, "no %s %s line in %r" % (symbol, layer, results)
    return hits[0]


def assert_broken(r, layer, fix_part, detail_part=None):
    assert r.returncode == 1, r.stdout + r.stderr
    res, wrong = parse(r.stdout)
    assert wrong is not None and wrong.startswith(layer + ": "), r.stdout
    bad = line_of(res, FAIL, layer)
    assert bad[3] is not None and fix_part in bad[3], r.stdout
    if detail_part:
        assert detail_part in bad[2], r.stdout
    return res


# ------------------------------------------------------------- healthy

def test_healthy_apps_every_line_ok(apps):
    r = apps.doctor()
    assert r.returncode == 0, r.stdout + r.stderr
    res, wrong = parse(r.stdout)
    assert wrong is None
    assert all(x[0] == OK for x in res), r.stdout
    layers = [x[1] for x in res]
    for layer in ("install", "CA", "bundle", "certifi", "env", "daemon",
                  "round-trip", "clients", "captures"):
        assert layer in layers, r.stdout
    # in the table's order
    order = [LAYERS.index(x) for x in layers]
    assert order == sorted(order), layers
    assert "mode apps" in line_of(res, OK, "install")[2]
    assert "version 0.1.0" in r.stdout or "version " in r.stdout
    clients = [x[2] for x in res if x[1] == "clients"]
    assert any(c.startswith("python3:") for c in clients), clients
    assert any(c.startswith("curl:") for c in clients), clients
    assert r.elapsed < 3.0, r.elapsed
    assert "no layer is wrong" in r.stdout


def test_json_matches_text(apps):
    t = apps.doctor()
    j = apps.doctor("--json")
    assert t.returncode == j.returncode == 0
    doc = json.loads(j.stdout)
    res, _ = parse(t.stdout)
    assert doc["exit"] == 0 and doc["ok"] is True
    assert doc["wrong_layer"] is None
    assert doc["mode"] == "apps" and doc["platform"] == "linux"
    assert [(c["symbol"], c["layer"]) for c in doc["checks"]] == \
        [(x[0], x[1]) for x in res]
    # details match except for the daemon's uptime/exchange counters
    for c, x in zip(doc["checks"], res):
        if c["layer"] != "daemon":
            assert c["detail"] == x[2]


def test_json_failure_matches_text(apps):
    (apps.home / ".mitmproxy" / "mitmproxy-ca.pem").unlink()
    t = apps.doctor()
    j = apps.doctor("--json")
    assert t.returncode == j.returncode == 1
    doc = json.loads(j.stdout)
    res, wrong = parse(t.stdout)
    assert doc["exit"] == 1 and doc["ok"] is False
    assert doc["wrong_layer"]["layer"] == "CA"
    assert wrong == "CA: " + doc["wrong_layer"]["detail"]
    fails = [c for c in doc["checks"] if c["status"] == "failure"]
    assert [(c["layer"], c["fix"]) for c in fails] == \
        [(x[1], x[3]) for x in res if x[0] == FAIL]


# ------------------------------------------------------------------ CA

def test_ca_deleted(apps):
    (apps.home / ".mitmproxy" / "mitmproxy-ca.pem").unlink()
    r = apps.doctor()
    assert_broken(r, "CA", "halton-meter init --apps", "is missing")


def write_expired_ca(home):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         "halton-meter"),
                      x509.NameAttribute(NameOID.COMMON_NAME,
                                         "halton-meter expired test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now - datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .sign(key, hashes.SHA256()))
    kpem = key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    cpem = cert.public_bytes(serialization.Encoding.PEM)
    d = home / ".mitmproxy"
    (d / "mitmproxy-ca.pem").write_bytes(kpem + cpem)
    os.chmod(d / "mitmproxy-ca.pem", 0o600)
    (d / "mitmproxy-ca-cert.pem").write_bytes(cpem)
    (home / ".halton-meter" / "ca.pem").write_bytes(cpem)


def test_ca_expired(apps):
    write_expired_ca(apps.home)
    r = apps.doctor()
    res = assert_broken(r, "CA", "mv ~/.mitmproxy ~/.mitmproxy.old && "
                        "halton-meter init --apps", "expired on")
    # the first failure is the CA, even though later layers fail too
    assert [x[1] for x in res if x[0] == FAIL][0] == "CA"


# -------------------------------------------------------------- bundle

def bundle_without_ca(apps):
    b = apps.home / ".halton-meter" / "bundle.pem"
    roots = pathlib.Path(apps.osenv.env["HALTON_METER_SYSTEM_ROOTS"])
    b.write_bytes(roots.read_bytes())
    return b


def test_bundle_without_ca(apps):
    bundle_without_ca(apps)
    r = apps.doctor()
    assert_broken(r, "bundle", "halton-meter doctor --fix",
                  "does not contain the current CA")


def test_fix_rebuilds_bundle(apps):
    b = bundle_without_ca(apps)
    ca = (apps.home / ".halton-meter" / "ca.pem").read_text()
    assert ca not in b.read_text()
    r = apps.doctor("--fix")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "+ rebuilt ~/.halton-meter/bundle.pem" in r.stdout
    assert ca.strip() in b.read_text()
    res, wrong = parse(r.stdout)
    assert wrong is None and all(x[0] == OK for x in res), r.stdout
    # and a plain run afterwards is healthy too
    assert apps.doctor().returncode == 0


# ------------------------------------------------------------- certifi

def test_certifi_marker_removed(apps):
    assert "# halton-meter CA begin" in apps.osenv.certifi.read_text()
    apps.osenv.certifi.write_text(CERTIFI_TEXT)  # pip upgraded certifi
    r = apps.doctor()
    assert_broken(r, "certifi", "halton-meter doctor --fix",
                  "replaced by an upgrade")


def test_fix_repatches_certifi(apps):
    apps.osenv.certifi.write_text(CERTIFI_TEXT)
    r = apps.doctor("--fix")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "+ re-patched certifi:" in r.stdout
    text = apps.osenv.certifi.read_text()
    assert text.startswith(CERTIFI_TEXT)
    ca = (apps.home / ".halton-meter" / "ca.pem").read_text()
    assert text.count("# halton-meter CA begin") == 1 and ca in text
    res, _ = parse(r.stdout)
    assert line_of(res, OK, "certifi")


def test_certifi_never_patched_is_a_warning(osenv, start_daemon):  # noqa: F811
    inst = make_install(osenv, start_daemon, mode="--apps")
    # a second interpreter that init never patched
    other = osenv.tmp / "py2" / "lib" / "python3.12" / "site-packages" / \
        "certifi" / "cacert.pem"
    other.parent.mkdir(parents=True)
    other.write_text(CERTIFI_TEXT)
    st = osenv.state()
    st["python"]["certifi"]["python3"] = str(other)
    osenv.seed(st)
    r = inst.doctor()
    res, _ = parse(r.stdout)
    w = line_of(res, WARN, "certifi")
    assert "is not patched" in w[2] and w[3] == "halton-meter init --apps"


# ----------------------------------------------------------------- env

def test_https_proxy_elsewhere(apps):
    other = "http://127.0.0.1:%d" % free_port()
    r = apps.doctor(extra={"HTTPS_PROXY": other, "https_proxy": other})
    res = assert_broken(r, "env", "export HTTPS_PROXY='http://127.0.0.1:%d'"
                        % apps.daemon.port, "points elsewhere")
    # the clients that read HTTPS_PROXY fail and name it
    py = [x for x in res if x[1] == "clients" and x[2].startswith("python3")]
    assert py and py[0][0] == FAIL and "HTTPS_PROXY=%s" % other in py[0][2]
    assert py[0][3].startswith("export HTTPS_PROXY='http://127.0.0.1:%d'"
                               % apps.daemon.port)


def test_ssl_cert_file_without_ca_names_it(apps):
    roots = apps.osenv.env["HALTON_METER_SYSTEM_ROOTS"]
    r = apps.doctor(extra={"SSL_CERT_FILE": roots})
    res = assert_broken(r, "env", "export SSL_CERT_FILE=",
                        "SSL_CERT_FILE=%s does not contain the CA" % roots)
    py = [x for x in res if x[1] == "clients" and x[2].startswith("python3")]
    assert py[0][0] == FAIL, r.stdout
    assert "SSL_CERT_FILE=%s does not contain the CA" % roots in py[0][2]
    assert "CERTIFICATE_VERIFY_FAILED" in py[0][2]
    # curl reads CURL_CA_BUNDLE, which is still right
    assert line_of(res, OK, "clients")[2].startswith("curl:")


def test_node_extra_ca_certs_missing(apps):
    missing = str(apps.osenv.tmp / "nope" / "ca.pem")
    r = apps.doctor(extra={"NODE_EXTRA_CA_CERTS": missing})
    assert_broken(r, "env", "export NODE_EXTRA_CA_CERTS=",
                  "NODE_EXTRA_CA_CERTS=%s: no such file" % missing)


def test_variables_not_in_shell_apps_is_failure(apps):
    r = apps.doctor(drop=list(apps.vars))
    assert_broken(r, "env", "open a new terminal", "not in this shell")


def test_rc_block_removed(apps):
    rc = apps.home / ".bashrc"
    assert "# >>> halton-meter >>>" in rc.read_text()
    rc.write_text("# user content\n")
    r = apps.doctor()
    assert_broken(r, "env", "halton-meter init --apps", ".bashrc")


def test_env_only_mode(osenv, start_daemon):  # noqa: F811
    inst = make_install(osenv, start_daemon, mode=None)
    r = inst.doctor(drop=list(inst.vars))
    # not in this shell is only a warning in env-only mode, and the
    # clients get the environment `halton-meter run` would give them
    assert r.returncode == 0, r.stdout + r.stderr
    res, wrong = parse(r.stdout)
    assert wrong is None
    w = line_of(res, WARN, "env")
    assert "not in this shell" in w[2] and "halton-meter run" in w[3]
    assert line_of(res, OK, "clients")[2].startswith("python3:")
    assert "mode env" in line_of(res, OK, "install")[2]


# ------------------------------------------------------------- darwin

def test_launchctl_missing_variable(osenv, start_daemon):  # noqa: F811
    inst = make_install(osenv, start_daemon, platform="darwin")
    r = inst.doctor()
    assert r.returncode == 0, r.stdout
    st = osenv.state()
    want = st["launchctl"]["env"].pop("SSL_CERT_FILE")
    osenv.seed(st)
    r = inst.doctor()
    assert_broken(r, "env", "launchctl setenv SSL_CERT_FILE %s" % want,
                  "launchctl getenv SSL_CERT_FILE is empty")


@pytest.fixture
def darwin_full(osenv, start_daemon):  # noqa: F811
    inst = make_install(osenv, start_daemon, platform="darwin",
                        mode="--full")
    return inst


def test_healthy_darwin_full(darwin_full):
    r = darwin_full.doctor()
    assert r.returncode == 0, r.stdout + r.stderr
    res, _ = parse(r.stdout)
    assert all(x[0] == OK for x in res), r.stdout
    assert "System keychain trusts the CA" in line_of(res, OK, "trust")[2]
    assert "127.0.0.1:%d is on" % darwin_full.daemon.port in \
        line_of(res, OK, "system proxy")[2]
    calls = darwin_full.osenv.calls()
    assert ["security", "verify-cert", "-l", "-L", "-R", "offline", "-p",
            "ssl", "-c", str(darwin_full.home / ".halton-meter" /
                             "ca.pem")] in calls
    assert ["scutil", "--proxy"] in calls
    assert r.elapsed < 3.0, r.elapsed


def test_keychain_trust_missing(darwin_full):
    st = darwin_full.osenv.state()
    st["security"]["trusted"] = []
    darwin_full.osenv.seed(st)
    r = darwin_full.doctor()
    assert_broken(r, "trust", "sudo security add-trusted-cert -d -r "
                  "trustRoot -k /Library/Keychains/System.keychain",
                  "does not trust the CA")


def test_scutil_proxy_off(darwin_full):
    st = darwin_full.osenv.state()
    for svc in st["networksetup"]["services"]:
        svc["enabled"] = "No"
    darwin_full.osenv.seed(st)
    r = darwin_full.doctor()
    assert_broken(r, "system proxy", "networksetup -setsecurewebproxy",
                  "the system HTTPS proxy is off")


def test_system_proxy_on_daemon_down_is_danger_at_top(darwin_full):
    assert darwin_full.daemon.stop() == 0
    r = darwin_full.doctor()
    res = assert_broken(r, "system proxy",
                        "launchctl kickstart -k gui/%d/"
                        "com.halton-meter.daemon" % os.getuid(), "DANGER")
    assert res[0][0] == FAIL and res[0][1] == "system proxy", r.stdout
    assert "every app that uses the system proxy is broken" in res[0][2]
    # the daemon layer fails too, but the danger is what is named
    assert line_of(res, FAIL, "daemon")


# -------------------------------------------------------------- daemon

def test_daemon_stopped(apps):
    assert apps.daemon.stop() == 0
    r = apps.doctor()
    res = assert_broken(r, "daemon", "systemctl --user restart "
                        "halton-meter.service", "no daemon answers at "
                        "127.0.0.1:%d" % apps.daemon.port)
    assert "not run" in line_of(res, FAIL, "round-trip")[2]
    assert "not run" in line_of(res, FAIL, "clients")[2]


class OtherVersion(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "ok", "version": "0.0.9",
                           "pid": 4242, "uptime_s": 5, "connections": 1,
                           "exchanges": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_daemon_of_another_version(apps):
    # an old daemon holds the configured address
    assert apps.daemon.stop() == 0
    srv = http.server.HTTPServer(("127.0.0.1", apps.daemon.port),
                                 OtherVersion)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        r = apps.doctor()
    finally:
        srv.shutdown()
        srv.server_close()
    assert_broken(r, "daemon", "systemctl --user restart "
                  "halton-meter.service",
                  "another version answers at 127.0.0.1:%d: 0.0.9 (pid "
                  "4242), this is 0.1.0" % apps.daemon.port)


# ------------------------------------------------------------- clients

def test_old_node_warns_and_round_trips(osenv, start_daemon):  # noqa: F811
    node = shutil.which("node", path="/usr/local/bin:/usr/bin:/bin")
    if node is None:
        pytest.fail("node is needed for this test")
    ver = subprocess.run([node, "--version"], capture_output=True,
                         text=True).stdout.strip()
    major, minor = (int(x) for x in ver.lstrip("v").split(".")[:2])
    inst = make_install(osenv, start_daemon, clients=("curl", "node"))
    r = inst.doctor()
    res, _ = parse(r.stdout)
    nodes = [x for x in res if x[1] == "clients" and x[2].startswith("node")]
    assert nodes[0][0] == OK and "round-trip" in nodes[0][2], r.stdout
    old = major < 22 or (major == 22 and minor < 21) or major == 23 or \
        (major == 24 and minor < 5)
    warned = [x for x in nodes if x[0] == WARN]
    if old:
        assert warned and "older than 22.21" in warned[0][2]
        assert "ProxyAgent" in warned[0][3]
    else:
        assert not warned
    assert r.returncode == 0


def test_node_client_names_its_variable(osenv, start_daemon):  # noqa: F811
    node = shutil.which("node", path="/usr/local/bin:/usr/bin:/bin")
    if node is None:
        pytest.fail("node is needed for this test")
    inst = make_install(osenv, start_daemon, clients=("node",))
    # NODE_EXTRA_CA_CERTS at a file that does not exist
    r = inst.doctor(extra={"NODE_EXTRA_CA_CERTS": str(osenv.tmp / "x.pem")})
    res, _ = parse(r.stdout)
    n = [x for x in res if x[1] == "clients" and x[2].startswith("node")]
    assert n[0][0] == FAIL, r.stdout
    assert "NODE_EXTRA_CA_CERTS=%s: no such file" % (osenv.tmp / "x.pem") \
        in n[0][2]



def test_fix_starts_the_daemon_env_only(osenv, start_daemon):  # noqa: F811
    inst = make_install(osenv, start_daemon, mode=None)
    assert inst.daemon.stop() == 0
    r = inst.doctor()
    assert_broken(r, "daemon", "halton-meter daemon", "no daemon answers")
    r = inst.doctor("--fix")
    pidfile = osenv.home / ".halton-meter" / "daemon.pid"
    pid = int(pidfile.read_text().strip()) if pidfile.exists() else 0
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "+ restarted the daemon (halton-meter daemon); it answers" \
            in r.stdout
        res, _ = parse(r.stdout)
        d = line_of(res, OK, "daemon")
        assert d[2].startswith("pid %d answers at 127.0.0.1:%d"
                               % (pid, inst.daemon.port))
        assert line_of(res, OK, "round-trip")
    finally:
        if pid > 0 and pid != inst.daemon.pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


def test_linux_full_trust(osenv, start_daemon):  # noqa: F811
    (osenv.sysroot / "usr/local/share/ca-certificates").mkdir(parents=True)
    roots = osenv.sysroot / "etc/ssl/certs/ca-certificates.crt"
    saved_roots = roots.read_text() if roots.exists() else ""
    inst = make_install(osenv, start_daemon, mode="--full")
    r = inst.doctor()
    assert r.returncode == 0, r.stdout + r.stderr
    res, _ = parse(r.stdout)
    assert all(x[0] == OK for x in res), r.stdout
    anchor = osenv.sysroot / "usr/local/share/ca-certificates" / \
        "halton-meter.crt"
    sysbundle = osenv.sysroot / "etc/ssl/certs/ca-certificates.crt"
    # The system roots the sysroot carries plus the CA.
    nroots = saved_roots.count("-----BEGIN CERTIFICATE-----")
    assert "the CA is in the system bundle (%s, %d certificates)" % (
        sysbundle, nroots + 1) in line_of(res, OK, "trust")[2]
    # The anchor is there, but the trust store was never rebuilt.
    saved = sysbundle.read_text()
    sysbundle.write_text("")
    r = inst.doctor()
    assert_broken(r, "trust", "sudo update-ca-certificates",
                  "does not hold the CA (the trust store was not rebuilt)")
    sysbundle.write_text(saved)
    anchor.write_text(CERTIFI_TEXT)
    r = inst.doctor()
    assert_broken(r, "trust", "sudo install -m 0644 ~/.halton-meter/ca.pem "
                  "%s && sudo update-ca-certificates" % anchor,
                  "is not the current CA")


def test_linux_gnome_proxy_on_daemon_down(osenv, start_daemon):  # noqa: F811
    (osenv.sysroot / "usr/local/share/ca-certificates").mkdir(parents=True)
    inst = make_install(osenv, start_daemon, mode="--full")
    assert inst.daemon.stop() == 0
    r = inst.doctor()
    res = assert_broken(r, "system proxy", "systemctl --user restart "
                        "halton-meter.service", "DANGER")
    assert res[0][:2] == [FAIL, "system proxy"], r.stdout
