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
