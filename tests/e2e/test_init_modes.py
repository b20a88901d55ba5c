"""init and uninstall for darwin and linux x env-only, --apps, --full:
the files written, the exact argv sequence sent to the (fake) OS tools,
idempotence, exact reversal and --dry-run."""
import os

import pytest

from osfixtures import copy_fake, osenv  # noqa: F401

UID = os.getuid()
LABEL = "com.halton-meter.daemon"
PY_CALL = ["python3", "-c", "import certifi; print(certifi.where())"]
VAR_NAMES = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
             "GIT_SSL_CAINFO", "AWS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
             "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy",
             "NODE_USE_ENV_PROXY"]


def variables(o, port=8081):
    sd = o.home / ".halton-meter"
    bundle = str(sd / "bundle.pem")
    proxy = "http://127.0.0.1:%d" % port
    noproxy = "localhost,127.0.0.1,::1"
    return [("SSL_CERT_FILE", bundle), ("REQUESTS_CA_BUNDLE", bundle),
            ("CURL_CA_BUNDLE", bundle), ("GIT_SSL_CAINFO", bundle),
            ("AWS_CA_BUNDLE", bundle),
            ("NODE_EXTRA_CA_CERTS", str(sd / "ca.pem")),
            ("HTTPS_PROXY", proxy), ("https_proxy", proxy),
            ("NO_PROXY", noproxy), ("no_proxy", noproxy),
            ("NODE_USE_ENV_PROXY", "1")]


def prepare_full(o):
    """What --full looks for on Linux: a Debian anchor dir, an NSS DB, a
    JDK."""
    (o.sysroot / "usr/local/share/ca-certificates").mkdir(parents=True)
    nss = o.home / ".pki" / "nssdb"
    nss.mkdir(parents=True)
    (nss / "cert9.db").write_bytes(b"fake nss db")
    jdk = o.tmp / "jdk"
    copy_fake("keytool", jdk / "bin" / "keytool")
    (jdk / "lib" / "security").mkdir(parents=True)
    (jdk / "lib" / "security" / "cacerts").write_bytes(b"fake cacerts")
    o.env["JAVA_HOME"] = str(jdk)


def expected_init(o, platform, mode):
    ca = str(o.ca_pem())
    seq = [PY_CALL]
    if mode == "env":
        return seq
    if platform == "darwin":
        for k, v in variables(o):
            seq += [["launchctl", "getenv", k], ["launchctl", "setenv", k, v]]
        plist = str(o.home / "Library/LaunchAgents" / (LABEL + ".plist"))
        seq += [["launchctl", "print", "gui/%d/%s" % (UID, LABEL)],
                ["launchctl", "bootstrap", "gui/%d" % UID, plist]]
        if mode == "full":
            kc = str(o.sysroot) + "/Library/Keychains/System.keychain"
            seq += [["security", "verify-cert", "-l", "-L", "-R", "offline",
                     "-p", "ssl", "-c", ca],
                    ["security", "add-trusted-cert", "-d", "-r", "trustRoot",
                     "-k", kc, ca],
                    ["networksetup", "-listallnetworkservices"]]
            for svc in ("Wi-Fi", "Thunderbolt Bridge"):
                seq += [["networksetup", "-getsecurewebproxy", svc],
                        ["networksetup", "-setsecurewebproxy", svc,
                         "127.0.0.1", "8081"],
                        ["networksetup", "-setsecurewebproxystate", svc,
                         "on"]]
        return seq
    unit = "halton-meter.service"
    seq += [["systemctl", "--user", "is-enabled", unit],
            ["systemctl", "--user", "is-active", unit],
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", unit]]
    if mode == "full":
        db = "sql:%s" % (o.home / ".pki" / "nssdb")
        cacerts = o.env["JAVA_HOME"] + "/lib/security/cacerts"
        seq += [["update-ca-certificates"],
                ["certutil", "-V", "-d", db, "-u", "L", "-n",
                 "halton-meter CA"],
                ["certutil", "-A", "-d", db, "-t", "C,,", "-n",
                 "halton-meter CA", "-i", ca],
                ["keytool", "-list", "-keystore", cacerts, "-storepass",
                 "changeit", "-alias", "halton-meter"],
                ["keytool", "-importcert", "-noprompt", "-keystore",
                 cacerts, "-storepass", "changeit", "-alias",
                 "halton-meter", "-file", ca],
                ["gsettings", "get", "org.gnome.system.proxy", "mode"],
                ["gsettings", "get", "org.gnome.system.proxy.https", "host"],
                ["gsettings", "get", "org.gnome.system.proxy.https", "port"],
                ["gsettings", "set", "org.gnome.system.proxy.https", "host",
                 "127.0.0.1"],
                ["gsettings", "set", "org.gnome.system.proxy.https", "port",
                 "8081"],
                ["gsettings", "set", "org.gnome.system.proxy", "mode",
                 "manual"]]
    return seq


def expected_uninstall(o, platform, mode, sha1=None):
    ca = str(o.ca_pem())
    seq = []
    if mode == "env":
        return seq
    if platform == "darwin":
        if mode == "full":
            kc = str(o.sysroot) + "/Library/Keychains/System.keychain"
            seq += [["networksetup", "-setsecurewebproxy",
                     "Thunderbolt Bridge", "corp.example", "3128"],
                    ["networksetup", "-setsecurewebproxystate",
                     "Thunderbolt Bridge", "on"],
                    ["networksetup", "-setsecurewebproxystate", "Wi-Fi",
                     "off"],
                    ["security", "remove-trusted-cert", "-d", ca],
                    ["security", "delete-certificate", "-Z", sha1, kc]]
        target = "gui/%d/%s" % (UID, LABEL)
        seq += [["launchctl", "print", target],
                ["launchctl", "bootout", target]]
        for k, _ in reversed(variables(o)):
            seq.append(["launchctl", "unsetenv", k])
        return seq
    unit = "halton-meter.service"
    if mode == "full":
        db = "sql:%s" % (o.home / ".pki" / "nssdb")
        cacerts = o.env["JAVA_HOME"] + "/lib/security/cacerts"
        seq += [["gsettings", "set", "org.gnome.system.proxy.https", "host",
                 "''"],
                ["gsettings", "set", "org.gnome.system.proxy.https", "port",
                 "0"],
                ["gsettings", "set", "org.gnome.system.proxy", "mode",
                 "'none'"],
                ["keytool", "-delete", "-alias", "halton-meter",
                 "-keystore", cacerts, "-storepass", "changeit"],
                ["certutil", "-D", "-d", db, "-n", "halton-meter CA"],
                ["update-ca-certificates", "--fresh"]]
    seq += [["systemctl", "--user", "disable", "--now", unit],
            ["systemctl", "--user", "daemon-reload"]]
    return seq


def expected_files(o, platform, mode):
    """Files init must have written (beyond the state dir)."""
    files = []
    if mode in ("apps", "full"):
        files += [o.home / ".zshenv", o.home / ".config/fish/conf.d/"
                  "halton-meter.fish"]
        if platform == "darwin":
            files += [o.home / ".bash_profile",
                      o.home / "Library/LaunchAgents" / (LABEL + ".plist")]
        else:
            files += [o.home / ".bashrc",
                      o.home / ".config/environment.d/60-halton-meter.conf",
                      o.home / ".config/systemd/user/halton-meter.service"]
    if mode == "full" and platform == "linux":
        files.append(o.sysroot /
                     "usr/local/share/ca-certificates/halton-meter.crt")
    return files


MODES = {"env": [], "apps": ["--apps"], "full": ["--full"]}


@pytest.mark.parametrize("platform", ["darwin", "linux"])
@pytest.mark.parametrize("mode", ["env", "apps", "full"])
def test_init_mode_matrix(osenv, platform, mode):  # noqa: F811
    o = osenv
    o.add_shells("zsh", "bash", "fish")
    if platform == "linux" and mode == "full":
        prepare_full(o)
    (o.home / ".zshenv").write_text("# my zsh setup\nexport EDITOR=vi\n")
    before = o.snapshot()
    state0 = o.state()

    r = o.hm("init", *MODES[mode], platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.calls() == expected_init(o, platform, mode)

    # The state and the files.
    sd = o.home / ".halton-meter"
    for f in ("ca.pem", "bundle.pem", "config", "installed.json"):
        assert (sd / f).is_file(), f
    ca = o.ca_pem().read_text()
    assert o.certifi.read_text().endswith(
        "# halton-meter CA begin\n" + ca + "# halton-meter CA end\n")
    for f in expected_files(o, platform, mode):
        assert f.is_file(), f
    m = o.manifest()
    assert m["mode"] == mode and m["platform"] == platform
    if mode != "env":
        block = (o.home / ".zshenv").read_text()
        assert block.startswith("# my zsh setup\nexport EDITOR=vi\n"
                                "# >>> halton-meter >>>\n")
        for k, v in variables(o):
            assert "export %s='%s'\n" % (k, v) in block
    else:
        assert not (o.home / ".bashrc").exists()
        assert not (o.home / ".bash_profile").exists()
    st = o.state()
    if platform == "darwin" and mode != "env":
        assert st["launchctl"]["env"] == dict(variables(o))
        assert st["launchctl"]["loaded"] == [LABEL]
        plist = (o.home / "Library/LaunchAgents" /
                 (LABEL + ".plist")).read_text()
        assert "<string>daemon</string>" in plist
        assert "<string>--foreground</string>" in plist
        assert "<key>KeepAlive</key>\n\t<true/>" in plist
        assert str(sd) + "/daemon.stderr.log" in plist
    if platform == "darwin" and mode == "full":
        assert len(st["security"]["trusted"]) == 1
        svcs = {s["name"]: s for s in st["networksetup"]["services"]}
        assert svcs["Wi-Fi"]["enabled"] == "Yes"
        assert svcs["Wi-Fi"]["server"] == "127.0.0.1"
        assert svcs["Thunderbolt Bridge"]["port"] == "8081"
        assert svcs["Bluetooth PAN"]["server"] == ""
    if platform == "linux" and mode != "env":
        envd = (o.home / ".config/environment.d/"
                "60-halton-meter.conf").read_text()
        for k, v in variables(o):
            assert "\n%s=%s\n" % (k, v) in envd
        unit = (o.home / ".config/systemd/user/"
                "halton-meter.service").read_text()
        assert "Restart=always\n" in unit
        assert " daemon --foreground\n" in unit
        assert st["systemctl"] == {"enabled": ["halton-meter.service"],
                                   "active": ["halton-meter.service"]}
    if platform == "linux" and mode == "full":
        assert (o.sysroot / "usr/local/share/ca-certificates/"
                "halton-meter.crt").read_text() == ca
        assert st["update-ca-certificates"]["anchors"] == [
            "halton-meter.crt"]
        assert list(st["certutil"].values()) == [["halton-meter CA"]]
        assert list(st["keytool"].values()) == [["halton-meter"]]
        assert st["gsettings"]["org.gnome.system.proxy mode"] == "'manual'"
        assert st["gsettings"][
            "org.gnome.system.proxy.https port"] == "8081"

    # Twice: nothing changes, no mutating command runs.
    after1 = o.snapshot(include_state=True)
    o.clear_calls()
    r = o.hm("init", *MODES[mode], platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.mutating_calls() == []
    assert o.snapshot(include_state=True) == after1
    assert o.state() == st

    # Uninstall: the exact reverse, every file as before, fakes as before.
    sha1 = None
    if platform == "darwin" and mode == "full":
        sha1 = st["security"]["trusted"][0]
    o.clear_calls()
    r = o.hm("uninstall", platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.calls() == expected_uninstall(o, platform, mode, sha1)
    assert o.snapshot() == before
    end = o.state()
    if platform == "darwin" and mode == "full":
        # networksetup keeps a server that was set when the proxy is
        # switched off (as the real tool does); what counts is "off".
        wifi = [s for s in end["networksetup"]["services"]
                if s["name"] == "Wi-Fi"][0]
        assert wifi["enabled"] == "No"
        wifi.update(server="", port="0")
    assert end == state0
    assert not (o.home / ".halton-meter" / "installed.json").exists()


@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_dry_run_changes_nothing(osenv, platform):  # noqa: F811
    o = osenv
    o.add_shells("bash", "zsh")
    if platform == "linux":
        prepare_full(o)
    before = o.snapshot(include_state=True)
    state0 = o.state()
    r = o.hm("init", "--full", "--dry-run", platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dry run: nothing changed" in r.stdout
    assert "would" in r.stdout
    assert o.mutating_calls() == []
    assert o.snapshot(include_state=True) == before
    assert not (o.home / ".halton-meter").exists()
    assert o.state() == state0

    # After a real install, uninstall --dry-run changes nothing either.
    r = o.hm("init", "--full", platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    mid = o.snapshot(include_state=True)
    state1 = o.state()
    o.clear_calls()
    r = o.hm("uninstall", "--dry-run", "--purge", platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "would run:" in r.stdout
    assert o.mutating_calls() == []
    assert o.snapshot(include_state=True) == mid
    assert o.state() == state1


def test_linux_full_to_apps_removes_trust_and_proxy(osenv):  # noqa: F811
    o = osenv
    o.add_shells("bash")
    prepare_full(o)
    assert o.hm("init", "--full", platform="linux").returncode == 0
    anchor = o.sysroot / "usr/local/share/ca-certificates/halton-meter.crt"
    assert anchor.exists()
    o.clear_calls()
    r = o.hm("init", "--apps", platform="linux")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not anchor.exists()
    st = o.state()
    assert st["update-ca-certificates"]["anchors"] == []
    assert st["certutil"] == {} and st["keytool"] == {}
    assert st["gsettings"]["org.gnome.system.proxy mode"] == "'none'"
    # --apps stays: the service and the rc block.
    assert st["systemctl"]["enabled"] == ["halton-meter.service"]
    assert "# >>> halton-meter >>>" in (o.home / ".bashrc").read_text()
    kinds = [e["kind"] for e in o.manifest()["entries"]]
    assert "anchor" not in kinds and "nss" not in kinds
    assert "systemd_unit" in kinds
    assert o.manifest()["mode"] == "apps"
    # And down to env-only: the apps part goes too.
    r = o.hm("init", platform="linux")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (o.home / ".bashrc").exists()
    assert o.state()["systemctl"]["enabled"] == []
    assert not (o.home / ".config/systemd/user/halton-meter.service").exists()


def test_darwin_full_to_apps_restores_proxies(osenv):  # noqa: F811
    o = osenv
    assert o.hm("init", "--full", platform="darwin").returncode == 0
    r = o.hm("init", "--apps", platform="darwin")
    assert r.returncode == 0, r.stdout + r.stderr
    st = o.state()
    assert st["security"] == {"trusted": [], "keychain": []}
    svcs = {s["name"]: s for s in st["networksetup"]["services"]}
    assert svcs["Thunderbolt Bridge"]["server"] == "corp.example"
    assert svcs["Thunderbolt Bridge"]["port"] == "3128"
    assert svcs["Thunderbolt Bridge"]["enabled"] == "Yes"
    assert svcs["Wi-Fi"]["enabled"] == "No"
    assert st["launchctl"]["loaded"] == [LABEL]


def test_darwin_trust_failure_prints_manual_command(osenv):  # noqa: F811
    o = osenv
    r = o.hm("init", "--full", platform="darwin",
             extra_env={"FAKE_SECURITY_FAIL": "1"})
    assert r.returncode == 1
    assert "administrator password" in r.stdout
    assert "errSecInternalComponent" in r.stdout
    assert "run it by hand: sudo security add-trusted-cert -d -r " \
        "trustRoot -k" in r.stdout
    assert "keychain_trust" not in [e["kind"] for e in
                                    o.manifest()["entries"]]
    # The proxy part still ran.
    assert o.state()["networksetup"]["services"][0]["enabled"] == "Yes"


def test_darwin_proxy_denied_is_reported(osenv):  # noqa: F811
    o = osenv
    r = o.hm("init", "--full", platform="darwin",
             extra_env={"FAKE_NETWORKSETUP_DENY": "1"})
    assert r.returncode == 1
    assert "exited 14: ** Error: Command requires admin privileges." \
        in r.stdout
    assert "sudo networksetup -setsecurewebproxy Wi-Fi 127.0.0.1 8081" \
        in r.stdout


def test_linux_without_user_manager_goes_on(osenv):  # noqa: F811
    o = osenv
    o.add_shells("bash")
    r = o.hm("init", "--apps", platform="linux",
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no systemd user manager answers" in r.stdout
    assert (o.home / ".config/environment.d/60-halton-meter.conf").exists()
    assert "# >>> halton-meter >>>" in (o.home / ".bashrc").read_text()
    kinds = [e["kind"] for e in o.manifest()["entries"]]
    assert "systemd_unit" not in kinds


def test_upstream_proxy_recorded(osenv):  # noqa: F811
    o = osenv
    r = o.hm("init", extra_env={"HTTPS_PROXY": "http://corp.example:3128/"})
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = (o.home / ".halton-meter" / "config").read_text()
    assert cfg.endswith("upstream_proxy = http://corp.example:3128\n")
    r = o.hm("config")
    assert "upstream_proxy = http://corp.example:3128\n" in r.stdout
    # Our own address is not an upstream.
    r = o.hm("init", extra_env={"HTTPS_PROXY": "http://127.0.0.1:8081"})
    assert r.returncode == 0
    assert (o.home / ".halton-meter" / "config").read_text() == cfg


def test_purge_keeps_a_ca_it_found(osenv):  # noqa: F811
    o = osenv
    assert o.hm("init").returncode == 0
    mitm = o.home / ".mitmproxy"
    found = {p.name: p.read_bytes() for p in mitm.iterdir()}
    assert "mitmproxy-ca.pem" in found
    # A fresh machine that already has this CA.
    r = o.hm("uninstall", "--purge")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (o.home / ".halton-meter").exists()
    assert not mitm.exists() or list(mitm.iterdir()) == []
    mitm.mkdir(exist_ok=True)
    for n, data in found.items():
        (mitm / n).write_bytes(data)
    assert o.hm("init").returncode == 0
    r = o.hm("uninstall", "--purge")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (o.home / ".halton-meter").exists()
    assert {p.name: p.read_bytes() for p in mitm.iterdir()} == found


def test_darwin_previous_launchctl_value_restored(osenv):  # noqa: F811
    o = osenv
    st = o.state()
    st["launchctl"]["env"] = {"HTTPS_PROXY": "http://corp.example:3128",
                              "UNRELATED": "x"}
    o.seed(st)
    assert o.hm("init", "--apps", platform="darwin").returncode == 0
    assert o.state()["launchctl"]["env"]["HTTPS_PROXY"] == \
        "http://127.0.0.1:8081"
    o.clear_calls()
    r = o.hm("uninstall", platform="darwin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ["launchctl", "setenv", "HTTPS_PROXY",
            "http://corp.example:3128"] in o.calls()
    assert o.state()["launchctl"]["env"] == {
        "HTTPS_PROXY": "http://corp.example:3128", "UNRELATED": "x"}


def test_darwin_changed_agent_is_reloaded(osenv):  # noqa: F811
    o = osenv
    assert o.hm("init", "--apps", platform="darwin").returncode == 0
    o.clear_calls()
    r = o.hm("init", "--apps", platform="darwin",
             extra_env={"HALTON_METER_SELF": "/opt/hm/bin/halton-meter"})
    assert r.returncode == 0, r.stdout + r.stderr
    target = "gui/%d/%s" % (UID, LABEL)
    plist = str(o.home / "Library/LaunchAgents" / (LABEL + ".plist"))
    assert o.mutating_calls() == [
        ["launchctl", "bootout", target],
        ["launchctl", "bootstrap", "gui/%d" % UID, plist]]
    assert "<string>/opt/hm/bin/halton-meter</string>" in \
        open(plist).read()
    assert o.state()["launchctl"]["loaded"] == [LABEL]
    # Uninstall removes the agent and its file even so.
    assert o.hm("uninstall", platform="darwin").returncode == 0
    assert not os.path.exists(plist)
    assert o.state()["launchctl"]["loaded"] == []


@pytest.mark.parametrize("distro", ["fedora", "arch", "suse"])
def test_linux_other_distro_anchors(osenv, distro):  # noqa: F811
    o = osenv
    dirs = {"fedora": "etc/pki/ca-trust/source/anchors",
            "arch": "etc/ca-certificates/trust-source/anchors",
            "suse": "etc/pki/trust/anchors"}
    (o.sysroot / dirs[distro]).mkdir(parents=True)
    st = o.state()
    st["trust"] = {"anchors": []}
    o.seed(st)
    state0 = o.state()
    before = o.snapshot()
    r = o.hm("init", "--full", platform="linux",
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    ca = str(o.ca_pem())
    trust_calls = [c for c in o.calls()
                   if c[0] in ("update-ca-trust", "update-ca-certificates",
                               "trust")]
    if distro == "fedora":
        assert trust_calls == [["update-ca-trust", "extract"]]
        f = o.sysroot / dirs[distro] / "halton-meter.pem"
        assert f.read_text() == o.ca_pem().read_text()
        assert o.state()["update-ca-trust"]["anchors"] == ["halton-meter.pem"]
    elif distro == "arch":
        assert trust_calls == [["trust", "anchor", "--store", ca]]
        assert len(o.state()["trust"]["anchors"]) == 1
    else:
        assert trust_calls == [["update-ca-certificates"]]
        f = o.sysroot / dirs[distro] / "halton-meter.pem"
        assert f.read_text() == o.ca_pem().read_text()
    # Twice: nothing.
    o.clear_calls()
    r = o.hm("init", "--full", platform="linux",
             extra_env={"FAKE_NO_USER_BUS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert [c for c in o.mutating_calls() if c[0] != "systemctl"] == []
    o.clear_calls()
    r = o.hm("uninstall", platform="linux")
    assert r.returncode == 0, r.stdout + r.stderr
    trust_calls = [c for c in o.calls()
                   if c[0] in ("update-ca-trust", "update-ca-certificates",
                               "trust")]
    expect = {"fedora": [["update-ca-trust", "extract"]],
              "arch": [["trust", "anchor", "--remove", ca]],
              "suse": [["update-ca-certificates"]]}[distro]
    assert trust_calls == expect
    assert o.snapshot() == before
    end = o.state()
    if distro == "fedora":
        assert end.pop("update-ca-trust") == {"anchors": []}
    assert end == state0


def test_uninstall_on_the_wrong_backend_keeps_the_record(osenv):  # noqa: F811
    o = osenv
    assert o.hm("init", "--apps", platform="darwin").returncode == 0
    r = o.hm("uninstall", platform="linux")
    assert r.returncode == 1
    assert "cannot undo 'launchctl_env' HTTPS_PROXY here (linux backend)" \
        in r.stdout
    kinds = [e["kind"] for e in o.manifest()["entries"]]
    assert "launch_agent" in kinds and "launchctl_env" in kinds
    # The right backend finishes the job.
    r = o.hm("uninstall", platform="darwin")
    assert r.returncode == 0, r.stdout + r.stderr
    assert o.state()["launchctl"] == {"env": {}, "loaded": []}
