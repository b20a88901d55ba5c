"""status: daemon health, install mode, today, last request, rate limits.

The daemon side is a tiny loopback HTTP server answering GET /healthz the
way the daemon does ({status, version, pid, uptime_s, connections,
exchanges}); records and rate-limit snapshots go in through store-seed.
"""
import http.server
import json
import threading
import time

import pytest

from conftest import free_port
from test_report import seed, state

UNIFIED = {
    "anthropic-ratelimit-unified-status": "allowed",
    "anthropic-ratelimit-unified-5h-status": "allowed",
    "anthropic-ratelimit-unified-5h-utilization": "0.42",
    "anthropic-ratelimit-unified-5h-reset": None,  # set per test
    "anthropic-ratelimit-unified-7d-utilization": "0.18",
    "anthropic-ratelimit-unified-7d-reset": None,
}
OPENAI = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "199000",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "300ms",
}


def _clear_of_midnight(margin_s=150):
    """'today' (UTC) must hold the records of one and two minutes ago: in
    the first minutes after midnight they are yesterday's, so wait until
    they are not (at most margin_s, and only then)."""
    s = time.time() % 86400
    if s < margin_s:
        time.sleep(margin_s - s + 0.5)


@pytest.fixture
def seeded_now(home):
    """Two records of a minute ago, and one snapshot per provider."""
    _clear_of_midnight()
    now = int(time.time() * 1000)
    hdr = dict(UNIFIED)
    hdr["anthropic-ratelimit-unified-5h-reset"] = str(now // 1000 + 5430)
    hdr["anthropic-ratelimit-unified-7d-reset"] = str(
        now // 1000 + 3 * 86400 + 9000)
    seed(home, [
        {"started_at": now - 120000, "ended_at": now - 119000,
         "provider": "openai", "kind": "chat", "model": "gpt-4.1-mini",
         "input_tokens": 1000, "output_tokens": 100,
         "cache_read_input_tokens": 4000, "client": "openai-python"},
        {"started_at": now - 60000, "ended_at": now - 59000,
         "provider": "anthropic", "kind": "messages",
         "request_model": "claude-sonnet-4-5",
         "model": "claude-sonnet-4-5-20250929", "input_tokens": 1000,
         "output_tokens": 500, "cache_read_input_tokens": 2000,
         "cache_creation_input_tokens": 7000,
         "cache_creation_5m_tokens": 3000, "cache_creation_1h_tokens": 4000,
         "client": "claude-code"},
        {"ratelimit": {"provider": "anthropic", "key_fp": "1a2b3c4d",
                       "observed_at": now - 60000, "headers": hdr}},
        {"ratelimit": {"provider": "openai", "key_fp": "9f8e7d6c",
                       "observed_at": now - 120000, "headers": OPENAI}},
    ])
    return now


COST_OPENAI = 1000 * 4e-7 + 100 * 1.6e-6 + 4000 * 1e-7
COST_CLAUDE = (1000 * 3e-6 + 500 * 15e-6 + 2000 * 0.3e-6 + 3000 * 3.75e-6
               + 4000 * 6e-6)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/healthz":
            self.send_error(404)
            return
        body = json.dumps({"status": "ok", "version": "0.1.0",
                           "pid": 4242, "uptime_s": 7980,
                           "connections": 3, "exchanges": 17}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def healthz():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Health)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def status(hm, *args, listen=None):
    listen = listen or "127.0.0.1:%d" % free_port()
    return hm("status", *args, extra_env={"HALTON_METER_LISTEN": listen,
                                           "TZ": "UTC"})


def test_json_parses_with_everything(hm, home, seeded_now, healthz):
    (state(home) / "installed.json").write_text(
        json.dumps({"mode": "apps", "changes": []}))
    r = status(hm, "--json", listen=healthz)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    d = doc["daemon"]
    assert d["running"] is True and d["pid"] == 4242
    assert d["uptime_s"] == 7980 and d["address"] == healthz
    assert d["version"] == "0.1.0" and d["connections"] == 3
    assert doc["installed"]["initialised"] is True
    assert doc["installed"]["mode"] == "apps"
    t = doc["today"]
    assert t["requests"] == 2
    assert t["total_tokens"] == 1100 + 4000 + 1500 + 2000 + 7000
    assert t["cost_usd"] == pytest.approx(COST_OPENAI + COST_CLAUDE)
    last = doc["last_request"]
    assert last["client"] == "claude-code"
    assert last["model"] == "claude-sonnet-4-5-20250929"
    assert last["tokens"] == 10500
    assert last["cost_usd"] == pytest.approx(COST_CLAUDE)
    assert 55 <= last["age_s"] <= 600
    rl = {s["provider"]: s for s in doc["ratelimits"]}
    a = rl["anthropic"]
    assert a["key_fp"] == "1a2b3c4d"
    assert a["unified_5h"]["utilization"] == pytest.approx(0.42)
    assert a["unified_5h"]["reset"] == seeded_now // 1000 + 5430
    assert a["unified_5h"]["status"] == "allowed"
    assert a["unified_7d"]["utilization"] == pytest.approx(0.18)
    assert a["unified_status"] == "allowed"
    o = rl["openai"]["limits"]
    assert o == {"requests_limit": 10000, "requests_remaining": 9999,
                 "tokens_limit": 200000, "tokens_remaining": 199000,
                 "requests_reset": "6ms", "tokens_reset": "300ms"}
    assert rl["openai"]["headers"] == OPENAI


def test_screen_renders_snapshots(hm, home, seeded_now, healthz):
    r = status(hm, listen=healthz)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "daemon     running, pid 4242, up 2h 13m, %s\n" % healthz in out
    assert "install    not initialised" in out
    assert "today      2 requests, 15,600 tokens, $0.05\n" in out
    assert "last       1m ago: claude-code, claude-sonnet-4-5-20250929, " \
        "10,500 tokens, $0.05\n" in out
    assert "  anthropic key 1a2b3c4d (seen 1m ago)\n" in out
    assert " 42% used, resets " in out and "(in 1h 30m) [allowed]" in out
    assert " 18% used, resets " in out and "(in 3d 2h)" in out
    assert "    requests 9,999 of 10,000 left (reset in 6ms)\n" in out
    assert "    tokens   199,000 of 200,000 left (reset in 300ms)\n" in out
    for line in out.splitlines():
        assert len(line) <= 80, line


def test_nothing_yet(hm, home):
    listen = "127.0.0.1:%d" % free_port()
    r = status(hm, listen=listen)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("daemon     not running (%s: " % listen)
    assert "today      0 requests, 0 tokens, $0.00\n" in r.stdout
    assert "last       no request recorded yet\n" in r.stdout
    assert "limits     no rate-limit headers seen yet\n" in r.stdout
    doc = json.loads(status(hm, "--json", listen=listen).stdout)
    assert doc["daemon"]["running"] is False
    assert doc["installed"] == {"initialised": False}
    assert doc["last_request"] is None and doc["ratelimits"] == []


def test_silent_daemon_times_out_in_about_a_second(hm, home):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)  # accepts, never answers
    try:
        t0 = time.monotonic()
        r = status(hm, "--json", listen="127.0.0.1:%d" % s.getsockname()[1])
        took = time.monotonic() - t0
    finally:
        s.close()
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["daemon"]["running"] is False
    assert took < 5


def test_unknown_option(hm):
    r = hm("status", "--frob")
    assert r.returncode == 2
    assert "unknown option '--frob'" in r.stderr


def test_real_daemon_is_seen_running(hm, start_daemon):
    d = start_daemon()
    r = status(hm, "--json", listen="127.0.0.1:%d" % d.port)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)["daemon"]
    assert doc["running"] is True
    assert doc["pid"] == d.pid
    assert doc["uptime_s"] >= 0
    r = status(hm, listen="127.0.0.1:%d" % d.port)
    assert r.stdout.startswith("daemon     running, pid %d, up " % d.pid)
