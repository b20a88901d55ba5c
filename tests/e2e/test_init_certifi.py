"""init's certifi patching: which bundles are patched, which are skipped
and why, idempotence, replacing an old block, and exact removal."""
import os
import time

from osfixtures import CERTIFI_TEXT, copy_fake, osenv  # noqa: F401

BEGIN = "# halton-meter CA begin\n"
END = "# halton-meter CA end\n"


def set_certifi(o, mapping):
    st = o.state()
    st["python"]["certifi"] = mapping
    o.seed(st)


def site_bundle(o, name, text=CERTIFI_TEXT):
    p = (o.tmp / name / "lib" / "python3.12" / "site-packages" / "certifi" /
         "cacert.pem")
    p.parent.mkdir(parents=True)
    p.write_text(text)
    return p


def test_patched_once_and_removed_exactly(osenv):  # noqa: F811
    o = osenv
    o.certifi.chmod(0o640)
    r = o.hm("init")
    assert r.returncode == 0, r.stdout + r.stderr
    ca = o.ca_pem().read_text()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert o.certifi.read_text() == CERTIFI_TEXT + BEGIN + ca + END
    assert oct(o.certifi.stat().st_mode & 0o777) == oct(0o640)
    once = o.certifi.read_bytes()
    r = o.hm("init")
    assert r.returncode == 0
    assert o.certifi.read_bytes() == once
    assert "holds the CA" in r.stdout
    r = o.hm("uninstall")
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.certifi.read_text() == CERTIFI_TEXT
    assert oct(o.certifi.stat().st_mode & 0o777) == oct(0o640)


def test_bundle_without_final_newline_restored(osenv):  # noqa: F811
    o = osenv
    o.certifi.write_text("-----END CERTIFICATE-----")
    assert o.hm("init").returncode == 0
    text = o.certifi.read_text()
    assert text.startswith("-----END CERTIFICATE-----\n" + BEGIN)
    assert o.hm("uninstall").returncode == 0
    assert o.certifi.read_bytes() == b"-----END CERTIFICATE-----"


def test_old_block_replaced(osenv):  # noqa: F811
    o = osenv
    old = ("-----BEGIN CERTIFICATE-----\nOLDCA\n"
           "-----END CERTIFICATE-----\n")
    o.certifi.write_text(CERTIFI_TEXT + BEGIN + old + END + "# after\n")
    r = o.hm("init")
    assert r.returncode == 0, r.stdout + r.stderr
    ca = o.ca_pem().read_text()
    text = o.certifi.read_text()
    assert "OLDCA" not in text
    assert text == CERTIFI_TEXT + BEGIN + ca + END + "# after\n"
    assert text.count(BEGIN) == 1


def test_symlink_and_distro_bundles_skipped(osenv):  # noqa: F811
    o = osenv
    shared = o.tmp / "brew" / "cert.pem"
    shared.parent.mkdir()
    shared.write_text(CERTIFI_TEXT)
    link = site_bundle(o, "brewpy")
    link.unlink()
    link.symlink_to(shared)
    distro = o.sysroot / "etc/ssl/certs/ca-certificates.crt"
    distro_before = distro.read_bytes()
    py_link = copy_fake("python3", o.tmp / "bin1" / "python3.12")
    py_distro = copy_fake("python3", o.tmp / "bin2" / "python3")
    set_certifi(o, {str(py_link): str(link), str(py_distro): str(distro)})
    r = o.hm("init", "--python", str(py_link), "--python", str(py_distro))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "it is a symlink to a shared bundle" in r.stdout
    assert "%s: skipped" % link in r.stdout
    assert "it is the distro's system bundle" in r.stdout
    assert "%s: skipped" % distro in r.stdout
    assert shared.read_text() == CERTIFI_TEXT
    assert os.path.islink(link)
    assert distro.read_bytes() == distro_before
    kinds = [e for e in o.manifest()["entries"] if e["kind"] == "certifi"]
    assert kinds == []


def test_python_option_and_pipx_venvs(osenv):  # noqa: F811
    o = osenv
    other = site_bundle(o, "py312")
    venv = site_bundle(o, "pipxvenv")
    py = copy_fake("python3", o.tmp / "bin" / "python3.12")
    vpy = copy_fake("python3", o.home / ".local/share/pipx/venvs/llm/bin/"
                    "python")
    set_certifi(o, {"python3": str(o.certifi), str(py): str(other),
                    str(vpy): str(venv)})
    r = o.hm("init", "--python", str(py), platform="linux")
    assert r.returncode == 0, r.stdout + r.stderr
    ca = o.ca_pem().read_text()
    for p in (o.certifi, other, venv):
        assert p.read_text() == CERTIFI_TEXT + BEGIN + ca + END, p
    pys = [c for c in o.calls() if c[0] == "python3"]
    assert len(pys) == 3
    assert o.hm("uninstall").returncode == 0
    for p in (o.certifi, other, venv):
        assert p.read_text() == CERTIFI_TEXT, p


def test_same_bundle_from_two_interpreters_listed_once(osenv):  # noqa: F811
    o = osenv
    py = copy_fake("python3", o.tmp / "bin" / "python3.11")
    set_certifi(o, {"python3": str(o.certifi), str(py): str(o.certifi)})
    r = o.hm("init", "--python", str(py))
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.certifi.read_text().count(BEGIN) == 1
    assert r.stdout.count("certifi: appended") == 1


def test_no_certifi(osenv):  # noqa: F811
    o = osenv
    r = o.hm("init", "--no-certifi")
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.certifi.read_text() == CERTIFI_TEXT
    assert [c for c in o.calls() if c[0] == "python3"] == []
    assert "skipped (--no-certifi)" in r.stdout


def test_missing_certifi_module_and_hang(osenv):  # noqa: F811
    o = osenv
    set_certifi(o, {})
    r = o.hm("init")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "certifi is not installed there" in r.stdout
    t0 = time.monotonic()
    r = o.hm("init", extra_env={"FAKE_PYTHON_HANG": "1"}, timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "timed out" in r.stdout
    assert took < 20
