"""dashboard: the command prints the address and opens it with xdg-open
when a graphical session exists (a recording fake on PATH here)."""
import os
import stat
import time

from conftest import free_port


def fake_opener(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    log = tmp_path / "opened"
    p = d / "xdg-open"
    p.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s\n' % log)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return d, log


def test_print_only(hm, tmp_path):
    port = free_port()
    d, log = fake_opener(tmp_path)
    r = hm("dashboard", "--print", extra_env={
        "HALTON_METER_LISTEN": "127.0.0.1:%d" % port, "DISPLAY": ":0",
        "PATH": "%s:%s" % (d, os.environ["PATH"])})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "http://127.0.0.1:%d/\n" % port
    assert not log.exists()


def test_opens_with_xdg_open(hm, tmp_path):
    port = free_port()
    d, log = fake_opener(tmp_path)
    r = hm("dashboard", extra_env={
        "HALTON_METER_LISTEN": "127.0.0.1:%d" % port, "DISPLAY": ":0",
        "PATH": "%s:%s" % (d, os.environ["PATH"])})
    assert r.returncode == 0, r.stderr
    url = "http://127.0.0.1:%d/" % port
    assert r.stdout == url + "\n"
    for _ in range(50):  # started in the background
        if log.exists() and log.read_text():
            break
        time.sleep(0.1)
    assert log.read_text() == url + "\n"


def test_no_display_only_prints(hm, tmp_path):
    d, log = fake_opener(tmp_path)
    r = hm("dashboard", extra_env={
        "DISPLAY": "", "WAYLAND_DISPLAY": "",
        "PATH": "%s:%s" % (d, os.environ["PATH"])})
    assert r.returncode == 0
    assert r.stdout == "http://127.0.0.1:8081/\n"
    time.sleep(0.3)
    assert not log.exists()


def test_summary_built_off_the_daemon_loop(start_daemon, home):
    """The first /api/summary over a database of 30 busy days answers 202
    {"building": true} at once (the daemon reads the records on a thread
    of its own, not on the loop that moves every proxied byte); asked
    again, it gives the totals of all the records."""
    import json
    import subprocess

    from test_dashboard_browser import SEED
    d0 = home / ".halton-meter"
    d0.mkdir(mode=0o700, exist_ok=True)
    now = int(time.time() * 1000)
    n = 20000
    lines = "".join(json.dumps({
        "started_at": now - (i % 20) * 86400000 - i,
        "ended_at": now - (i % 20) * 86400000 - i + 100,
        "provider": "anthropic", "kind": "messages", "status": 200,
        "model": "claude-sonnet-4-5", "input_tokens": 10,
        "output_tokens": 2, "client": "claude-code",
        "project": "p%d" % (i % 3)}) + "\n" for i in range(n))
    r = subprocess.run([str(SEED), str(d0 / "meter.db"),
                        str(d0 / "journal")], input=lines,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    d = start_daemon()
    status, body = d.get("/api/summary")
    assert (status, json.loads(body)) == (202, {"building": True})
    for _ in range(500):
        status, body = d.get("/api/summary")
        if status != 202:
            break
        time.sleep(0.02)
    assert status == 200, (status, body[:200])
    s = json.loads(body)
    assert sum(day["requests"] for day in s["days"]) == n
    assert sum(p["requests"] for p in s["by_project"]) == n
    assert {p["name"] for p in s["by_project"]} == {"p0", "p1", "p2"}
    # Built: the next summary answers at once.
    assert d.get("/api/summary")[0] == 200
