"""Engine: the local CA, its files, the bundle and the leaves it mints."""
import datetime
import ipaddress
import json
import os
import re
import stat
import subprocess
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import hmclients as C
from conftest import SYSTEM_ROOTS

HOST = "api.anthropic.com"
DOCTOR = "doctor.halton-meter.invalid"
PEM_RE = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n",
                    re.S)


def now():
    return datetime.datetime.utcnow()


def pem_blocks(data, kind=None):
    return [m.group(0) for m in PEM_RE.finditer(data)
            if kind is None or m.group(1) == kind.encode()]


def fetch_leaf_pem(d, host, sni=True):
    """The certificate the daemon presents for host, fetched with
    openssl s_client through the proxy (CONNECT)."""
    argv = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % d.port,
            "-connect", "%s:443" % host, "-showcerts"]
    argv += ["-servername", host] if sni else ["-noservername"]
    r = subprocess.run(argv, input=b"", capture_output=True, timeout=20)
    certs = pem_blocks(r.stdout, "CERTIFICATE")
    assert certs, "s_client got no certificate: rc=%d %r" % (
        r.returncode, r.stderr[-500:])
    return certs[0]


def openssl_verify(cafile, leaf_pem, tmp_path, hostname=None):
    p = tmp_path / ("leaf-%d.pem" % len(list(tmp_path.iterdir())))
    p.write_bytes(leaf_pem)
    argv = ["openssl", "verify", "-CAfile", str(cafile)]
    if hostname:
        argv += ["-verify_hostname", hostname]
    r = subprocess.run(argv + [str(p)], capture_output=True, text=True,
                       timeout=20)
    return r.returncode, r.stdout + r.stderr


def load_ca_key(d):
    data = d.mitm_ca.read_bytes()
    keys = [b for b in pem_blocks(data) if b"PRIVATE KEY" in b]
    assert len(keys) == 1
    return serialization.load_pem_private_key(keys[0], None)


def sign_leaf(d, host, ip=False):
    """A leaf the test itself signs with the daemon's CA key."""
    ca = x509.load_pem_x509_certificate(open(d.ca_pem, "rb").read())
    key = ec.generate_private_key(ec.SECP256R1())
    san = (x509.IPAddress(ipaddress.ip_address(host)) if ip
           else x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, host)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(days=1))
            .not_valid_after(now() + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([san]), False)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(load_ca_key(d), hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


# ------------------------------------------------------------------ leaf

def test_leaf_verifies_with_openssl(daemon, tmp_path):
    leaf = fetch_leaf_pem(daemon, HOST)
    rc, out = openssl_verify(daemon.ca_pem, leaf, tmp_path, HOST)
    assert rc == 0, out
    assert out.strip().endswith(": OK")


def test_leaf_fields(daemon):
    ca = x509.load_pem_x509_certificate(open(daemon.ca_pem, "rb").read())
    leaf = x509.load_pem_x509_certificate(fetch_leaf_pem(daemon, HOST))
    san = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST]
    assert san.get_values_for_type(x509.IPAddress) == []
    eku = leaf.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in list(eku)
    span = leaf.not_valid_after - leaf.not_valid_before
    assert span <= datetime.timedelta(days=397), span
    assert leaf.not_valid_after > now() + datetime.timedelta(days=30)
    # notBefore about one day back.
    back = now() - leaf.not_valid_before
    assert datetime.timedelta(hours=12) <= back <= datetime.timedelta(days=2)
    aki = leaf.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert leaf.issuer == ca.subject
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    pub = leaf.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert pub.curve.name == "secp256r1"
    assert 96 < leaf.serial_number.bit_length() <= 160
    # One leaf key per daemon run, a certificate per host.
    other = x509.load_pem_x509_certificate(
        fetch_leaf_pem(daemon, "api.openai.com"))
    assert other.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == ["api.openai.com"]
    assert other.serial_number != leaf.serial_number
    raw = serialization.Encoding.DER, \
        serialization.PublicFormat.SubjectPublicKeyInfo
    assert other.public_key().public_bytes(*raw) == pub.public_bytes(*raw)


def test_leaf_without_sni_names_the_connect_host(daemon):
    leaf = x509.load_pem_x509_certificate(
        fetch_leaf_pem(daemon, "api.openai.com", sni=False))
    assert leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == ["api.openai.com"]


# ------------------------------------------------------------------- CA

def test_new_ca_files_and_fields(daemon):
    home = daemon.home
    mitm = home / ".mitmproxy"
    state = daemon.state_dir
    key_file = mitm / "mitmproxy-ca.pem"
    assert mode(key_file) == 0o600
    kdata = key_file.read_bytes()
    assert len([b for b in pem_blocks(kdata) if b"PRIVATE KEY" in b]) == 1
    certs = pem_blocks(kdata, "CERTIFICATE")
    assert len(certs) == 1
    cert_pem = (mitm / "mitmproxy-ca-cert.pem").read_bytes()
    assert (mitm / "mitmproxy-ca-cert.cer").read_bytes() == cert_pem
    ca_pem = open(daemon.ca_pem, "rb").read()
    assert ca_pem == cert_pem
    assert pem_blocks(cert_pem) == certs
    assert mode(daemon.ca_pem) == 0o644
    assert mode(state) == 0o700
    # The key in mitmproxy-ca.pem belongs to the certificate.
    ca = x509.load_pem_x509_certificate(ca_pem)
    raw = serialization.Encoding.DER, \
        serialization.PublicFormat.SubjectPublicKeyInfo
    assert load_ca_key(daemon).public_key().public_bytes(*raw) == \
        ca.public_key().public_bytes(*raw)

    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    span = ca.not_valid_after - ca.not_valid_before
    assert datetime.timedelta(days=3640) <= span <= \
        datetime.timedelta(days=3660), span
    o = ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [a.value for a in o] == ["halton-meter"]
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "halton-meter" in cn
    assert ca.issuer == ca.subject
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_ca_name_constraints(daemon):
    ca = x509.load_pem_x509_certificate(open(daemon.ca_pem, "rb").read())
    ext = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    nc = ext.value
    permitted = [g.value.lstrip(".") for g in nc.permitted_subtrees
                 if isinstance(g, x509.DNSName)]
    assert all(isinstance(g, x509.DNSName) for g in nc.permitted_subtrees)

    def covered(host):
        return any(host == p or host.endswith("." + p) for p in permitted)
    for host in ("api.anthropic.com", "api.openai.com", "openrouter.ai",
                 "generativelanguage.googleapis.com",
                 "us-central1-aiplatform.googleapis.com",
                 "bedrock-runtime.us-east-1.amazonaws.com",
                 "myres.openai.azure.com", "api.groq.com",
                 "api.deepseek.com", "api.mistral.ai", "api.x.ai",
                 "api.together.xyz", "api.fireworks.ai", DOCTOR):
        assert covered(host), (host, permitted)
    for host in ("www.example.com", "bank.com", "google.com",
                 "github.com", "anthropic.com"):
        assert not covered(host), (host, permitted)
    excluded = {str(g.value) for g in nc.excluded_subtrees
                if isinstance(g, x509.IPAddress)}
    assert {"0.0.0.0/0", "::/0"} <= excluded, excluded


def test_name_constraints_are_enforced_by_openssl(daemon, tmp_path):
    """Leaves the test signs with the CA's own key: inside the permitted
    names they verify; outside, or for an IP, OpenSSL rejects them."""
    rc, out = openssl_verify(daemon.ca_pem, sign_leaf(daemon, HOST),
                             tmp_path)
    assert rc == 0, out
    rc, out = openssl_verify(daemon.ca_pem,
                             sign_leaf(daemon, "www.example.com"), tmp_path)
    assert rc != 0
    assert "permitted subtree violation" in out, out
    rc, out = openssl_verify(daemon.ca_pem,
                             sign_leaf(daemon, "127.0.0.1", ip=True),
                             tmp_path)
    assert rc != 0
    assert "subtree violation" in out, out


def test_bundle_is_system_roots_plus_ca(daemon):
    roots = open(daemon.env["HALTON_METER_SYSTEM_ROOTS"], "rb").read()
    bundle = open(daemon.bundle_pem, "rb").read()
    ca_pem = open(daemon.ca_pem, "rb").read()
    nroots = len(pem_blocks(roots, "CERTIFICATE"))
    assert nroots > 50
    blocks = pem_blocks(bundle, "CERTIFICATE")
    assert len(blocks) == nroots + 1
    assert pem_blocks(ca_pem)[0] in blocks
    assert set(pem_blocks(roots, "CERTIFICATE")) <= set(blocks)
    assert mode(daemon.bundle_pem) == 0o644
    assert open(SYSTEM_ROOTS, "rb").read() == roots


def _mitmproxy_like_ca(home):
    """What mitmproxy writes: RSA key (PKCS#1) + cert in mitmproxy-ca.pem
    (0600), the cert alone in -cert.pem and -cert.cer."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mitmproxy"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         "mitmproxy")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(days=2))
            .not_valid_after(now() + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           True)
            .add_extension(x509.KeyUsage(False, False, False, False, False,
                                         True, True, False, False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                key.public_key()), False)
            .sign(key, hashes.SHA256()))
    d = home / ".mitmproxy"
    d.mkdir()
    kp = key.private_bytes(serialization.Encoding.PEM,
                           serialization.PrivateFormat.TraditionalOpenSSL,
                           serialization.NoEncryption())
    cp = cert.public_bytes(serialization.Encoding.PEM)
    (d / "mitmproxy-ca.pem").write_bytes(kp + cp)
    os.chmod(d / "mitmproxy-ca.pem", 0o600)
    (d / "mitmproxy-ca-cert.pem").write_bytes(cp)
    (d / "mitmproxy-ca-cert.cer").write_bytes(cp)
    return {p: p.read_bytes() for p in d.iterdir()}, cert


def test_existing_mitmproxy_ca_is_reused_untouched(start_daemon, home,
                                                   upstream, tmp_path):
    before, cert = _mitmproxy_like_ca(home)
    mtimes = {p: os.stat(p).st_mtime_ns for p in before}
    d = start_daemon()
    leaf = fetch_leaf_pem(d, HOST)
    r = C.curl(d, "https://%s/status" % HOST, "-w", "\n%{http_code}")
    assert d.stop() == 0
    for p, data in before.items():
        assert p.read_bytes() == data, p
        assert os.stat(p).st_mtime_ns == mtimes[p], p
    assert mode(home / ".mitmproxy" / "mitmproxy-ca.pem") == 0o600
    assert sorted(p.name for p in (home / ".mitmproxy").iterdir()) == \
        sorted(p.name for p in before)
    ca = x509.load_pem_x509_certificate(open(d.ca_pem, "rb").read())
    assert ca == cert
    # Leaves chain to the reused CA.
    rc, out = openssl_verify(home / ".mitmproxy" / "mitmproxy-ca-cert.pem",
                             leaf, tmp_path, HOST)
    assert rc == 0, out
    assert x509.load_pem_x509_certificate(leaf).issuer == cert.subject
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\n200")


def test_ca_is_kept_across_restarts(start_daemon, home):
    d1 = start_daemon()
    first = {p: p.read_bytes() for p in (home / ".mitmproxy").iterdir()}
    ca1 = open(d1.ca_pem, "rb").read()
    assert d1.stop() == 0
    d2 = start_daemon()
    assert {p: p.read_bytes()
            for p in (home / ".mitmproxy").iterdir()} == first
    assert open(d2.ca_pem, "rb").read() == ca1


# --------------------------------------------------------------- doctor

def test_doctor_host_answered_by_daemon(daemon, tmp_path):
    s = C.tls_through(daemon, DOCTOR)   # verified against ca.pem
    h = C.HTTPConn(s)
    h.request("GET", "/", DOCTOR)
    status, headers, body = h.response()
    h.close()
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    j = json.loads(body)
    assert j["status"] == "ok"
    assert j["pid"] == daemon.pid
    leaf = fetch_leaf_pem(daemon, DOCTOR)
    rc, out = openssl_verify(daemon.ca_pem, leaf, tmp_path, DOCTOR)
    assert rc == 0, out


# --------------------------------------------------------------- config

def _write_config(home, text):
    d = home / ".halton-meter"
    d.mkdir(mode=0o700, exist_ok=True)
    (d / "config").write_text(text)
    os.chmod(d / "config", 0o600)


def test_config_unconstrained_ca(start_daemon, home, tmp_path):
    _write_config(home, "ca_name_constraints = no\n")
    d = start_daemon()
    ca = x509.load_pem_x509_certificate(open(d.ca_pem, "rb").read())
    with pytest.raises(x509.ExtensionNotFound):
        ca.extensions.get_extension_for_class(x509.NameConstraints)
    rc, out = openssl_verify(d.ca_pem, sign_leaf(d, "www.example.com"),
                             tmp_path)
    assert rc == 0, out


def test_config_intercept_pattern_and_upstream_ca(start_daemon, home,
                                                  upstream, pki, tmp_path):
    """`intercept = *.example.test` makes tunnel.example.test an
    intercepted host (halton leaf, allowed by the name constraints), and
    `upstream_ca` in the config is trusted like --upstream-ca."""
    _write_config(home, "intercept = *.example.test\nupstream_ca = %s\n"
                  % pki.ca_pem)
    d = start_daemon(upstream_ca=[])
    host = "tunnel.example.test"
    leaf = fetch_leaf_pem(d, host)
    rc, out = openssl_verify(d.ca_pem, leaf, tmp_path, host)
    assert rc == 0, out
    for h in (host, HOST):
        t = uuid.uuid4().hex
        r = C.curl(d, "https://%s/status?tok=%s" % (h, t), "-w",
                   "\n%{http_code}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith(b"\n200")
        reqs = upstream.requests_for(t)
        assert len(reqs) == 1 and reqs[0].sni == h
