"""report while the daemon writes: 1000 real exchanges through the daemon
(four keep-alive clients, 250 requests each, to a fake Anthropic upstream
whose usage differs per request) while `halton-meter report --json` runs in
a loop.

Checked: every report run exits 0 with JSON; the totals of successive runs
never go down; at the end the report counts exactly 1000 requests and the
token totals equal the sums of the usage the upstream sent (the cost too,
from the claude-sonnet-4-5 prices: 3 / 15 / 0.3 / 3.75 USD per 1M tokens
for input / output / cache read / 5m cache write); every one of the 1000
request ids is in the database once; the daemon never logged a failed or
blocked write.
"""
import json
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from conftest import BIN, default_connect_to
from fakeupstream import FakeUpstream

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "browser"))
from proxyclient import ProxyClient  # noqa: E402

CLIENTS = 4
PER_CLIENT = 250
TOTAL = CLIENTS * PER_CLIENT
PRICE = {"input": 3e-6, "output": 15e-6, "cache_read": 0.3e-6,
         "cache_write": 3.75e-6}
# What the daemon's log must never say during the run.
BAD_LOG = ("cannot journal", "journal write", "will retry",
           "kept in the journal", "left in the journal")


def usage_for(n):
    """The usage the upstream sends for request number n (0..999): every
    field varies, each request stays far below the 200k price tier."""
    cw = (n % 4) * 50
    return {"input_tokens": 100 + (n * 37) % 900,
            "output_tokens": 1 + (n * 13) % 400,
            "cache_read_input_tokens": (n * 101) % 5000,
            "cache_creation_input_tokens": cw,
            "cache_creation": {"ephemeral_5m_input_tokens": cw,
                               "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard"}


class LiveUpstream:
    """An Anthropic /v1/messages that answers X-Live-Seq: n with
    usage_for(n) and remembers what it sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}

    def handle(self, ctx):
        n = int(ctx.req.header("X-Live-Seq"))
        u = usage_for(n)
        with self.lock:
            assert n not in self.sent, n
            self.sent[n] = u
        body = json.dumps({
            "id": "msg_live%04d" % n, "type": "message",
            "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": u}).encode()
        ctx.respond(200, body, [("request-id", "req_live_%04d" % n)],
                    content_type="application/json")


@pytest.fixture
def live_upstream(pki):
    lu = LiveUpstream()
    up = FakeUpstream(pki, routes={"/v1/messages": lu.handle}).start()
    yield up, lu
    up.stop()


def report_totals(env):
    r = subprocess.run([BIN, "report", "--json"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, ("report exited %d: %s"
                               % (r.returncode, r.stderr))
    return json.loads(r.stdout)["totals"]


KEYS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens",
        "cache_write_tokens", "total_tokens")


def test_report_while_daemon_writes(start_daemon, live_upstream):
    up, lu = live_upstream
    d = start_daemon(connect_to=default_connect_to(up.port))
    errors = []
    runs = []
    done = threading.Event()

    def reporter():
        try:
            while not done.is_set():
                t = report_totals(d.env)
                runs.append({k: t.get(k, 0) for k in KEYS} |
                            {"cost_usd": t.get("cost_usd") or 0.0})
        except BaseException as e:  # noqa: B902 (reported below)
            errors.append("report: %r" % e)

    def client(k):
        c = ProxyClient(d, "api.anthropic.com")
        try:
            for i in range(PER_CLIENT):
                n = k * PER_CLIENT + i
                st, _, body = c.post_json("/v1/messages", {
                    "model": "claude-sonnet-4-5", "max_tokens": 16,
                    "messages": [{"role": "user", "content": "hi"}]},
                    {"x-api-key": "sk-ant-test-live-%d" % k,
                     "anthropic-version": "2023-06-01",
                     "X-Live-Seq": str(n)})
                if st != 200 or json.loads(body)["usage"] != usage_for(n):
                    errors.append("request %d: %d %r" % (n, st, body[:200]))
                    return
        except BaseException as e:  # noqa: B902
            errors.append("client %d: %r" % (k, e))
        finally:
            c.close()

    t0 = time.time()
    rep = threading.Thread(target=reporter)
    rep.start()
    writers = [threading.Thread(target=client, args=(k,))
               for k in range(CLIENTS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    sent_s = time.time() - t0
    # The last records reach SQLite within a flush interval or two.
    deadline = time.time() + 10
    while not errors and time.time() < deadline:
        if runs and runs[-1]["requests"] >= TOTAL:
            break
        time.sleep(0.05)
    done.set()
    rep.join(60)
    assert not errors, errors[:5]
    assert len(lu.sent) == TOTAL

    # Reports ran all along (several saw a part of the records) and their
    # totals only ever grew.
    mid = [r for r in runs if 0 < r["requests"] < TOTAL]
    assert len(mid) >= 3, (len(runs), len(mid), sent_s)
    for a, b in zip(runs, runs[1:]):
        for k in KEYS:
            assert b[k] >= a[k], (k, a, b)
        assert b["cost_usd"] >= a["cost_usd"] - 1e-9, (a, b)

    final = report_totals(d.env)
    want = {
        "requests": TOTAL,
        "input_tokens": sum(u["input_tokens"] for u in lu.sent.values()),
        "output_tokens": sum(u["output_tokens"] for u in lu.sent.values()),
        "cache_read_tokens": sum(u["cache_read_input_tokens"]
                                 for u in lu.sent.values()),
        "cache_write_tokens": sum(u["cache_creation_input_tokens"]
                                  for u in lu.sent.values()),
    }
    want["total_tokens"] = (want["input_tokens"] + want["output_tokens"]
                            + want["cache_read_tokens"]
                            + want["cache_write_tokens"])
    assert {k: final[k] for k in KEYS} == want
    cost = (want["input_tokens"] * PRICE["input"]
            + want["output_tokens"] * PRICE["output"]
            + want["cache_read_tokens"] * PRICE["cache_read"]
            + want["cache_write_tokens"] * PRICE["cache_write"])
    assert final["cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert final.get("unpriced_requests", 0) == 0

    # Every exchange is in the database exactly once.
    r = subprocess.run([BIN, "log", "--json", "--limit", "0"], env=d.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ids = sorted(rec["request_id"] for rec in json.loads(r.stdout))
    assert ids == ["req_live_%04d" % n for n in range(TOTAL)]

    log = d.stderr()
    bad = [ln for ln in log.splitlines()
           if any(b in ln for b in BAD_LOG)]
    assert not bad, "\n".join(bad[:20])
    assert time.time() - t0 < 90, time.time() - t0
