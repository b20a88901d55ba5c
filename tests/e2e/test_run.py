"""`halton-meter run` and `halton-meter env`: the child's exact
environment, exit status passthrough, signals, 127 for a missing command,
daemon auto-start, --tag, and real clients through the meter."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from conftest import free_port
from osfixtures import BIN, FAKES, osenv  # noqa: F401

VAR_NAMES = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
             "GIT_SSL_CAINFO", "AWS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
             "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy",
             "NODE_USE_ENV_PROXY"]


@pytest.fixture
def renv(osenv):  # noqa: F811
    """osenv with the system tools in PATH and a private listen port."""
    o = osenv
    o.port = free_port()
    o.env["PATH"] = "%s:/usr/bin:/bin" % FAKES
    o.env["HALTON_METER_LISTEN"] = "127.0.0.1:%d" % o.port
    yield o
    stop_daemon(o)


def stop_daemon(o):
    pidfile = o.home / ".halton-meter" / "daemon.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def env_of(stdout):
    out = {}
    for line in stdout.splitlines():
        k, _, v = line.partition("=")
        out.setdefault(k, []).append(v)
    return out


def expected(o, tag=None):
    sd = o.home / ".halton-meter"
    b = str(sd / "bundle.pem")
    user = urllib.parse.quote(tag, safe="") + ":tag@" if tag else ""
    proxy = "http://%s127.0.0.1:%d" % (user, o.port)
    return {"SSL_CERT_FILE": b, "REQUESTS_CA_BUNDLE": b,
            "CURL_CA_BUNDLE": b, "GIT_SSL_CAINFO": b, "AWS_CA_BUNDLE": b,
            "NODE_EXTRA_CA_CERTS": str(sd / "ca.pem"),
            "HTTPS_PROXY": proxy, "https_proxy": proxy,
            "NO_PROXY": "localhost,127.0.0.1,::1",
            "no_proxy": "localhost,127.0.0.1,::1",
            "NODE_USE_ENV_PROXY": "1"}


def test_run_exact_environment(renv):
    o = renv
    r = o.hm("run", "--no-start", "--", "/usr/bin/env",
             extra_env={"HTTPS_PROXY": "http://other.example:1",
                        "no_proxy": "x", "KEEP_ME": "yes"})
    assert r.returncode == 0, r.stderr
    got = env_of(r.stdout)
    for k, v in expected(o).items():
        assert got.get(k) == [v], k
    assert got["KEEP_ME"] == ["yes"]
    assert got["HOME"] == [str(o.home)]
    # The CA was created first (env-only init), and the files exist.
    assert (o.home / ".halton-meter" / "ca.pem").is_file()
    assert (o.home / ".halton-meter" / "bundle.pem").is_file()
    assert o.manifest()["mode"] == "env"
    # The parent's environment is untouched: only the child got them.
    assert "HTTPS_PROXY" not in os.environ or \
        os.environ["HTTPS_PROXY"] != expected(o)["HTTPS_PROXY"]


def test_run_without_double_dash_and_tag(renv):
    o = renv
    tag = "team a/b@c"
    r = o.hm("run", "--no-start", "--tag", tag, "env")
    assert r.returncode == 0, r.stderr
    got = env_of(r.stdout)
    assert got["HTTPS_PROXY"] == [
        "http://team%%20a%%2Fb%%40c:tag@127.0.0.1:%d" % o.port]
    assert got["https_proxy"] == got["HTTPS_PROXY"]
    for k, v in expected(o, tag).items():
        assert got.get(k) == [v], k


@pytest.mark.parametrize("code", [0, 3, 255])
def test_run_exit_status(renv, code):
    r = renv.hm("run", "--no-start", "--", "sh", "-c", "exit %d" % code)
    assert r.returncode == code


def test_run_child_killed_by_signal(renv):
    r = renv.hm("run", "--no-start", "--", "sh", "-c", "kill -INT $$")
    assert r.returncode == 130
    r = renv.hm("run", "--no-start", "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 143


def test_run_child_gets_default_sigpipe(renv):
    """halton-meter ignores SIGPIPE; its child must not inherit that."""
    r = renv.hm("run", "--no-start", "--", "sh", "-c",
                "yes | head -n 1; trap")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("y\n")
    assert "Broken pipe" not in r.stderr


def test_run_terminal_sigint_reaches_child(renv):
    """^C goes to the whole foreground group: the child dies of it,
    halton-meter survives and reports 130."""
    o = renv
    e = dict(o.env)
    ready = o.tmp / "ready"
    p = subprocess.Popen([BIN, "run", "--no-start", "--", "sh", "-c",
                          "trap - INT; touch %s; exec sleep 30" % ready],
                         env=e, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if ready.exists():
            break
        time.sleep(0.05)
    assert ready.exists()
    time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)
    assert p.wait(10) == 130


def test_run_forwards_sigterm(renv):
    o = renv
    ready = o.tmp / "ready"
    p = subprocess.Popen([BIN, "run", "--no-start", "--", "sh", "-c",
                          "touch %s; exec sleep 30" % ready],
                         env=dict(o.env), start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if ready.exists():
            break
        time.sleep(0.05)
    assert ready.exists()
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)     # to halton-meter only
    assert p.wait(10) == 143


def test_run_missing_command(renv):
    r = renv.hm("run", "--no-start", "--", "no-such-command-xyz", "a")
    assert r.returncode == 127
    assert "halton-meter: run: no-such-command-xyz: command not found" \
        in r.stderr


def test_run_usage(renv):
    r = renv.hm("run", "--no-start")
    assert r.returncode == 2
    assert "no command given" in r.stderr


def test_run_starts_the_daemon(renv):
    o = renv
    r = o.hm("run", "--", sys.executable, "-c",
             "import http.client,os,sys\n"
             "c=http.client.HTTPConnection('127.0.0.1',%d,timeout=5)\n"
             "c.request('GET','/healthz')\n"
             "r=c.getresponse()\n"
             "print(r.status)\n"
             "print(r.read().decode())\n" % o.port, timeout=30)
    assert r.returncode == 0, r.stderr
    status, body = r.stdout.split("\n", 1)
    assert status == "200"
    doc = json.loads(body)
    pid = int((o.home / ".halton-meter" / "daemon.pid").read_text()
              .split()[0])
    assert doc["pid"] == pid
    os.kill(pid, 0)     # still running after run exited
    # A second run finds it and does not start another.
    r = o.hm("run", "--", "true")
    assert r.returncode == 0
    assert int((o.home / ".halton-meter" / "daemon.pid").read_text()
               .split()[0]) == pid


def test_run_no_start(renv):
    o = renv
    r = o.hm("run", "--no-start", "--", "true")
    assert r.returncode == 0
    assert not (o.home / ".halton-meter" / "daemon.pid").exists()


def test_env_command(renv):
    o = renv
    r = o.hm("env", "--shell", "sh")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [l.split("=", 1)[0] for l in lines] == \
        ["export " + k for k in VAR_NAMES]
    out = subprocess.run(["/bin/sh", "-c", 'eval "$1"; env', "sh",
                          r.stdout], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})
    got = env_of(out.stdout)
    for k, v in expected(o).items():
        assert got.get(k) == [v], k
    r = o.hm("env", "--shell", "fish", "--tag", "ci")
    assert r.returncode == 0
    assert "set -gx HTTPS_PROXY 'http://ci:tag@127.0.0.1:%d'\n" % o.port \
        in r.stdout
    r = o.hm("env", extra_env={"SHELL": "/usr/bin/fish"})
    assert r.stdout.startswith("set -gx SSL_CERT_FILE ")
    assert o.hm("env", "--shell", "csh").returncode == 2


def test_real_clients_through_run(daemon, env, tmp_path):
    """curl and Python requests, configured only by `run`'s variables,
    reach the fake upstream through the meter."""
    e = dict(env)
    e["HALTON_METER_LISTEN"] = "127.0.0.1:%d" % daemon.port
    body = json.dumps({"model": "claude-test-1", "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]})
    r = subprocess.run([BIN, "run", "--no-start", "--tag", "e2e-run", "--",
                        "curl", "-sS", "-H", "content-type: application/json",
                        "-d", body, "https://api.anthropic.com/v1/messages"],
                       env=e, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["id"] == "msg_test"
    assert doc["usage"]["input_tokens"] == 12
    code = ("import requests\n"
            "r = requests.post('https://api.openai.com/v1/chat/completions',"
            " json={'model': 'gpt-test-1', 'messages': []}, timeout=30)\n"
            "print(r.status_code)\n"
            "print(r.json()['usage']['prompt_tokens'])\n")
    r = subprocess.run([BIN, "run", "--no-start", "--", "/usr/bin/python3",
                        "-c", code], env=e, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "200"
    assert int(r.stdout.split()[1]) > 0
    # The meter records both, the first one under the tag.
    deadline = time.time() + 5
    recs = []
    while time.time() < deadline:
        lr = subprocess.run([BIN, "log", "--json"], env=e,
                            capture_output=True, text=True, timeout=30)
        if lr.returncode == 0 and lr.stdout.strip():
            recs = json.loads(lr.stdout)
            if len(recs) >= 2:
                break
        time.sleep(0.2)
    assert len(recs) == 2, recs
    tags = sorted((r.get("tag") or "") for r in recs)
    assert tags == ["", "e2e-run"]
