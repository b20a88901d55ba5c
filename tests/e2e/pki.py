"""Test PKI for the end-to-end tests.

A throw-away upstream CA ("halton-test-upstream-ca") and the server
certificates the fake upstream presents, plus the fault certificates the
daemon must refuse: expired, wrong host, self-signed and signed by a CA the
daemon does not know.  Everything is EC P-256 so a session's PKI is made in
a few milliseconds.

    pki = PKI.create(directory)
    pki.ca_pem                    # path of the test CA certificate
    pki.cert("api.anthropic.com") # (cert_path, key_path)
    pki.fault("expired")          # (cert_path, key_path)
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "halton-test-upstream-ca"
UNKNOWN_CA_NAME = "halton-test-unknown-ca"

# Hosts the fake upstream serves with valid certificates (SNI picks one).
HOSTS = (
    "api.anthropic.com",
    "api.openai.com",
    "generativelanguage.googleapis.com",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "openrouter.ai",
    "tunnel.example.test",
    "localhost",
)

# The host a fault certificate is served as, and what each fault is.
FAULT_HOST = "api.anthropic.com"
FAULTS = ("expired", "wronghost", "selfsigned", "unknownca")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "halton-meter tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _ca(cn, key):
    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _leaf(host, key, issuer_cert, issuer_key, not_before=None,
          not_after=None):
    """A serverAuth leaf for host.  issuer_cert None = self-signed."""
    now = _now()
    nb = not_before or now - datetime.timedelta(days=1)
    na = not_after or now + datetime.timedelta(days=30)
    try:
        san = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    sans = [san]
    if host == "localhost":
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    b = (x509.CertificateBuilder()
         .subject_name(_name(host))
         .issuer_name(issuer_cert.subject if issuer_cert is not None
                      else _name(host))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(nb)
         .not_valid_after(na)
         .add_extension(x509.SubjectAlternativeName(sans), critical=False)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                        critical=True))
    if issuer_cert is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_cert.public_key()), critical=False)
    return b.sign(issuer_key if issuer_key is not None else key,
                  hashes.SHA256())


def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class PKI:
    """Paths of the generated files (all under one directory)."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.ca_pem = os.path.join(self.dir, "testca.pem")
        self.unknown_ca_pem = os.path.join(self.dir, "unknownca.pem")

    def cert(self, host):
        """(cert path, key path) of the valid certificate for host."""
        base = os.path.join(self.dir, "host-" + host)
        return base + ".crt", base + ".key"

    def fault(self, kind):
        """(cert path, key path) of a fault certificate."""
        base = os.path.join(self.dir, "fault-" + kind)
        return base + ".crt", base + ".key"

    def load_ca(self):
        with open(self.ca_pem, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    @classmethod
    def create(cls, directory, hosts=HOSTS):
        os.makedirs(str(directory), exist_ok=True)
        p = cls(directory)
        ca_key = _key()
        ca = _ca(CA_NAME, ca_key)
        _write(p.ca_pem, _pem_cert(ca))
        _write(os.path.join(p.dir, "testca.key"), _pem_key(ca_key), 0o600)
        # One key for every valid leaf: the tests do not care, and it
        # keeps generation fast.
        leaf_key = _key()
        for host in hosts:
            crt, key = p.cert(host)
            _write(crt, _pem_cert(_leaf(host, leaf_key, ca, ca_key)))
            _write(key, _pem_key(leaf_key), 0o600)

        now = _now()
        faults = {
            "expired": _leaf(FAULT_HOST, leaf_key, ca, ca_key,
                             not_before=now - datetime.timedelta(days=60),
                             not_after=now - datetime.timedelta(days=30)),
            "wronghost": _leaf("other.example.com", leaf_key, ca, ca_key),
            "selfsigned": _leaf(FAULT_HOST, leaf_key, None, None),
        }
        unknown_key = _key()
        unknown = _ca(UNKNOWN_CA_NAME, unknown_key)
        _write(p.unknown_ca_pem, _pem_cert(unknown))
        faults["unknownca"] = _leaf(FAULT_HOST, leaf_key, unknown,
                                    unknown_key)
        for kind, cert in faults.items():
            crt, key = p.fault(kind)
            _write(crt, _pem_cert(cert))
            _write(key, _pem_key(leaf_key), 0o600)
        return p


if __name__ == "__main__":
    import sys
    d = sys.argv[1] if len(sys.argv) > 1 else "pki"
    PKI.create(d)
    print(d)
