"""Helpers for the OS-integration tests (init, run, env, uninstall).

The `osenv` fixture builds on conftest's `env` (temp HOME and SYSROOT):
  - PATH = the recording fakes (tests/e2e/fakes) + a `shells` dir where a
    test puts stub zsh/bash/fish (rc blocks are written only for shells
    found in PATH) + nothing else, so no real system tool is reached;
  - FAKE_STATE = a temp dir holding the fakes' calls.jsonl and state.json;
  - a fake certifi bundle (a temp site-packages/certifi/cacert.pem) that
    the fake python3 reports.
"""
import json
import os
import pathlib
import shutil
import stat
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
FAKES = HERE / "fakes"
BIN = os.environ.get("HALTON_METER_BIN",
                     str(HERE.parents[1] / "halton-meter"))

CERTIFI_TEXT = ("\n# Issuer: CN=Example Root\n"
                "-----BEGIN CERTIFICATE-----\n"
                "MIIBexampleexampleexampleexampleexample==\n"
                "-----END CERTIFICATE-----\n")

# (tool, first argument) pairs that change state; every other call of a
# fake is a query.
MUTATING = {
    ("launchctl", "setenv"), ("launchctl", "unsetenv"),
    ("launchctl", "bootstrap"), ("launchctl", "bootout"),
    ("launchctl", "kickstart"), ("launchctl", "enable"),
    ("launchctl", "disable"),
    ("security", "add-trusted-cert"), ("security", "remove-trusted-cert"),
    ("security", "delete-certificate"),
    ("networksetup", "-setsecurewebproxy"),
    ("networksetup", "-setsecurewebproxystate"),
    ("systemctl", "--user"),  # refined below: queries are is-*
    ("update-ca-certificates", None), ("update-ca-trust", None),
    ("trust", "anchor"), ("certutil", "-A"), ("certutil", "-D"),
    ("keytool", "-importcert"), ("keytool", "-delete"),
    ("gsettings", "set"),
}

SYSTEMCTL_QUERIES = {"is-enabled", "is-active", "show-environment",
                     "status"}


def is_mutating(call):
    tool, args = call[0], call[1:]
    first = args[0] if args else None
    if tool == "systemctl":
        verb = [a for a in args if a != "--user"][:1]
        return bool(verb) and verb[0] not in SYSTEMCTL_QUERIES
    if tool in ("update-ca-certificates", "update-ca-trust"):
        return True
    if tool == "certutil":
        return "-A" in args or "-D" in args
    if tool == "keytool":
        return "-importcert" in args or "-delete" in args
    return (tool, first) in MUTATING


class OsEnv:
    def __init__(self, env, tmp_path):
        self.tmp = tmp_path
        self.home = pathlib.Path(env["HOME"])
        self.sysroot = pathlib.Path(env["HALTON_METER_SYSROOT"])
        self.state_dir = tmp_path / "fakestate"
        self.state_dir.mkdir()
        self.shells = tmp_path / "shells"
        self.shells.mkdir()
        self.certifi = (tmp_path / "py" / "lib" / "python3.11" /
                        "site-packages" / "certifi" / "cacert.pem")
        self.certifi.parent.mkdir(parents=True)
        self.certifi.write_text(CERTIFI_TEXT)
        self.env = dict(env)
        self.env["PATH"] = "%s:%s" % (FAKES, self.shells)
        self.env["FAKE_STATE"] = str(self.state_dir)
        self.env.pop("JAVA_HOME", None)
        self.env.pop("XDG_CONFIG_HOME", None)
        self.env.pop("ZDOTDIR", None)
        self.env.pop("PIPX_HOME", None)
        self.seed({
            "python": {"certifi": {"python3": str(self.certifi)}},
            "launchctl": {"env": {}, "loaded": []},
            "security": {"trusted": [], "keychain": []},
            "networksetup": {"services": [
                {"name": "Wi-Fi", "enabled": "No", "server": "",
                 "port": "0"},
                {"name": "Thunderbolt Bridge", "enabled": "Yes",
                 "server": "corp.example", "port": "3128"},
                {"name": "Bluetooth PAN", "disabled": True,
                 "enabled": "No", "server": "", "port": "0"}]},
            "systemctl": {"enabled": [], "active": []},
            "update-ca-certificates": {"anchors": []},
            "certutil": {},
            "keytool": {},
            "gsettings": {
                "org.gnome.system.proxy mode": "'none'",
                "org.gnome.system.proxy.https host": "''",
                "org.gnome.system.proxy.https port": "0"},
        })

    # ---------------------------------------------------------- fakes
    def seed(self, state):
        (self.state_dir / "state.json").write_text(
            json.dumps(state, indent=1, sort_keys=True))

    def state(self):
        return json.loads((self.state_dir / "state.json").read_text())

    def calls(self):
        p = self.state_dir / "calls.jsonl"
        if not p.exists():
            return []
        return [json.loads(l) for l in p.read_text().splitlines() if l]

    def clear_calls(self):
        p = self.state_dir / "calls.jsonl"
        if p.exists():
            p.unlink()

    def mutating_calls(self):
        return [c for c in self.calls() if is_mutating(c)]

    def add_shells(self, *names):
        for n in names:
            p = self.shells / n
            p.write_text("#!/bin/sh\nexit 0\n")
            p.chmod(0o755)

    # ---------------------------------------------------------- files
    def snapshot(self, include_state=False):
        """{path: (bytes, mode)} of every file under HOME, SYSROOT and the
        fake certifi tree (not the fakes' own state)."""
        snap = {}
        for root in (self.home, self.sysroot, self.tmp / "py"):
            for dirpath, dirnames, filenames in os.walk(root):
                rel_dir = pathlib.Path(dirpath)
                if not include_state and (
                        ".halton-meter" in rel_dir.parts or
                        ".mitmproxy" in rel_dir.parts):
                    continue
                for fn in filenames:
                    p = rel_dir / fn
                    st = p.lstat()
                    data = os.readlink(p) if stat.S_ISLNK(st.st_mode) \
                        else p.read_bytes()
                    snap[str(p)] = (data, stat.S_IMODE(st.st_mode))
        return snap

    def ca_pem(self):
        return self.home / ".halton-meter" / "ca.pem"

    def manifest(self):
        return json.loads((self.home / ".halton-meter" /
                           "installed.json").read_text())

    # ------------------------------------------------------------ run
    def hm(self, *args, platform=None, extra_env=None, timeout=60):
        e = dict(self.env)
        if platform:
            e["HALTON_METER_PLATFORM"] = platform
        if extra_env:
            e.update(extra_env)
        return subprocess.run([BIN, *args], env=e, capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture
def osenv(env, tmp_path):
    return OsEnv(env, tmp_path)


def copy_fake(name, dest):
    """Installs a fake under another path (a JDK's bin/keytool, a pipx
    venv's bin/python) as a symlink to the fake."""
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(FAKES / name, dest)
    return dest


def shutil_which_real(name):
    return shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
