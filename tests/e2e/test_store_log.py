"""`halton-meter log` against databases written through the store API.

Records are seeded with build/tools/store-seed (the store's own writer:
journal, queue, one transaction), so these tests read exactly what the
daemon would have written.
"""
import json
import os
import pathlib
import queue
import signal
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import BIN, ROOT

TOOLS = pathlib.Path(os.environ.get("HALTON_METER_TOOLS",
                                    str(ROOT / "build" / "tools")))
SEED = TOOLS / "store-seed"

COLUMNS = [
    "uuid", "started_at", "ended_at", "ttfb_ms", "duration_ms", "provider",
    "kind", "host", "method", "path", "status", "stream", "request_model",
    "model", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_5m_tokens", "cache_creation_1h_tokens",
    "cache_read_input_tokens", "reasoning_tokens", "web_search_requests",
    "stop_reason", "request_id", "error", "service_tier", "client",
    "client_version", "user_agent", "tag", "pid", "process", "cwd",
    "project", "key_fp", "session_id", "bytes_up", "bytes_down",
    "provider_cost_usd", "usage_json",
]


def now_ms():
    return int(time.time() * 1000)


def uuid(i):
    return "00000000-0000-4000-8000-%012d" % i


def full(i, started_at):
    return {
        "uuid": uuid(i), "started_at": started_at,
        "ended_at": started_at + 1500, "ttfb_ms": 210, "duration_ms": 1500,
        "provider": "anthropic", "kind": "messages",
        "host": "api.anthropic.com", "method": "POST",
        "path": "/v1/messages", "status": 200, "stream": True,
        "request_model": "claude-sonnet-4-5",
        "model": "claude-sonnet-4-5-20250929",
        "input_tokens": 100 + i, "output_tokens": 200 + i,
        "cache_creation_input_tokens": 30, "cache_creation_5m_tokens": 20,
        "cache_creation_1h_tokens": 10, "cache_read_input_tokens": 4000,
        "reasoning_tokens": 7, "web_search_requests": 1,
        "stop_reason": "end_turn", "request_id": "req_%d" % i,
        "error": None, "service_tier": "standard",
        "client": "claude-code", "client_version": "2.0.14",
        "user_agent": "claude-cli/2.0.14 (external, cli)", "tag": "work",
        "pid": 4321, "process": "node", "cwd": "/home/u/proj",
        "project": "proj", "key_fp": "a1b2c3d4", "session_id": "sess-1",
        "bytes_up": 1234, "bytes_down": 5678,
        "provider_cost_usd": 0.0125,
        "usage_json": {"input_tokens": 100 + i, "output_tokens": 200 + i},
    }


def minimal(i, started_at, **kw):
    r = {"uuid": uuid(i), "started_at": started_at,
         "ended_at": started_at + 10}
    r.update(kw)
    return r


@pytest.fixture
def db(home):
    state = home / ".halton-meter"
    state.mkdir(mode=0o700, exist_ok=True)
    return state / "meter.db"


@pytest.fixture
def seed(db, tmp_path):
    """Writes records (dicts) into the DB through the store API."""
    assert SEED.exists(), "build the tools first (make tools)"

    def run(records):
        lines = "".join(json.dumps(r) + "\n" for r in records)
        r = subprocess.run([str(SEED), str(db), str(tmp_path / "seed.j")],
                           input=lines, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
    return run


def log_json(hm, *args, **kw):
    r = hm("log", "--json", *args, **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_log_without_database(hm, home):
    r = hm("log", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    r = hm("log")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # Reading never creates the database.
    assert not (home / ".halton-meter" / "meter.db").exists()


def test_log_empty_database(hm, seed, db):
    seed([])
    assert db.exists()
    r = hm("log", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert json.loads(r.stdout) == []


def test_log_json_fields_and_values(hm, seed, db):
    t = now_ms() - 60000
    rec = full(1, t)
    bare = minimal(2, t + 1000)
    seed([bare, rec])  # committed out of time order
    out = log_json(hm)
    assert len(out) == 2
    assert [o["uuid"] for o in out] == [uuid(1), uuid(2)]  # oldest first
    for o in out:
        assert list(o.keys()) == COLUMNS + ["cost_usd"]
    # The provider-reported cost wins over the price table; a record
    # without a model is unpriced: null, never 0.
    assert out[0] == dict(rec, cost_usd=0.0125)
    assert out[1]["cost_usd"] is None
    # Unreported counts are null, never 0; byte counts default to 0.
    b = out[1]
    for k in ("ttfb_ms", "duration_ms", "status", "stream", "input_tokens",
              "output_tokens", "cache_read_input_tokens", "pid", "model",
              "provider", "provider_cost_usd", "usage_json"):
        assert b[k] is None, k
    assert (b["bytes_up"], b["bytes_down"]) == (0, 0)
    assert (b["started_at"], b["ended_at"]) == (t + 1000, t + 1010)
    # The database holds NULLs and epoch-ms integers, as the log says.
    con = sqlite3.connect(str(db))
    row = con.execute("SELECT input_tokens, started_at, stream, "
                      "typeof(started_at) FROM requests WHERE uuid = ?",
                      (uuid(2),)).fetchone()
    assert row == (None, t + 1000, None, "integer")
    row = con.execute("SELECT input_tokens, stream, usage_json FROM "
                      "requests WHERE uuid = ?", (uuid(1),)).fetchone()
    assert row[:2] == (101, 1)
    assert json.loads(row[2]) == {"input_tokens": 101, "output_tokens": 201}
    con.close()


def test_log_limit(hm, seed):
    t = now_ms() - 3600000
    seed([minimal(i, t + i * 1000, input_tokens=i) for i in range(60)])
    out = log_json(hm, "--limit", "3")
    assert [o["input_tokens"] for o in out] == [57, 58, 59]
    out = log_json(hm)  # default: the newest 50
    assert [o["input_tokens"] for o in out] == list(range(10, 60))
    out = log_json(hm, "--limit", "0")
    assert [o["input_tokens"] for o in out] == list(range(60))
    r = hm("log", "--limit", "x")
    assert r.returncode == 2 and "--limit" in r.stderr


def test_log_since(hm, seed):
    utc = {"TZ": "UTC"}
    n = now_ms()
    day = 86400000
    midnight = n - n % day
    times = {1: n - 3 * day - 5000, 2: midnight - 1000,
             3: midnight + 1, 4: n - 20 * 60000}
    seed([minimal(k, t, input_tokens=k) for k, t in times.items()])

    def toks(*args):
        return [o["input_tokens"]
                for o in log_json(hm, "--since", *args, extra_env=utc)]

    def expected(since):
        return [k for t, k in sorted((t, k) for k, t in times.items())
                if t >= since]

    # Oldest first.  Record 4 (20 minutes ago) sorts before 2 and 3 in the
    # first 20 minutes after midnight, so the expectations are computed
    # from the times, and pinned where the time of day cannot matter.
    assert sorted(toks("7d")) == [1, 2, 3, 4]
    assert toks("7d") == expected(n - 7 * day)
    assert 4 in toks("30m") and 1 not in toks("30m")
    assert toks("30m") == expected(n - 30 * 60000)
    assert toks("60h") == expected(n - 60 * 3600000)
    assert sorted(toks("60h")) == [2, 3, 4]
    assert toks("today") == expected(midnight)
    assert toks("yesterday") == expected(midnight - day)
    day_str = time.strftime("%Y-%m-%d", time.gmtime(midnight / 1000))
    assert toks(day_str) == expected(midnight)
    m = (times[1] + 60000) // 60000 * 60000
    minute = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(m / 1000))
    assert toks(minute) == expected(m)
    assert sorted(expected(m)) == [2, 3, 4]
    for bad in ("soon", "7x", "2026-13-01", ""):
        r = hm("log", "--since", bad)
        assert r.returncode == 2, bad
        assert "--since" in r.stderr


def test_log_table(hm, seed):
    seed([full(1, now_ms() - 1000)])
    r = hm("log")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:4] == ["TIME", "PROVIDER", "MODEL", "CLIENT"]
    f = lines[1].split()
    assert f[2:6] == ["anthropic", "claude-sonnet-4-5-20250929",
                      "claude-code", "200"]
    assert f[6:11] == ["101", "201", "4000", "30", "1500ms"]


def test_log_reads_while_daemon_writes(hm, seed, db):
    """A writer holding the write lock (as the daemon does mid-commit)
    neither blocks log nor shows uncommitted rows."""
    seed([minimal(1, now_ms() - 5000, input_tokens=1)])
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO requests (uuid, started_at, ended_at, "
                "input_tokens) VALUES ('x', ?, ?, 2)",
                (now_ms(), now_ms()))
    try:
        t0 = time.monotonic()
        out = log_json(hm, timeout=10)
        assert time.monotonic() - t0 < 10
        assert [o["input_tokens"] for o in out] == [1]
    finally:
        con.execute("COMMIT")
        con.close()
    assert [o["input_tokens"] for o in log_json(hm)] == [1, 2]


def reader_thread(stream, q):
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put(None)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_log_follow(env, seed, sig):
    seed([minimal(1, now_ms() - 5000, input_tokens=1)])
    p = subprocess.Popen([BIN, "log", "--follow", "--json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    q = queue.Queue()
    threading.Thread(target=reader_thread, args=(p.stdout, q),
                     daemon=True).start()
    try:
        first = json.loads(q.get(timeout=10))
        assert (first["uuid"], first["input_tokens"]) == (uuid(1), 1)
        # Inserted while log runs; started earlier than the first one, so
        # only the rowid cursor can find it.
        seed([minimal(2, now_ms() - 60000, input_tokens=2)])
        second = json.loads(q.get(timeout=10))
        assert (second["uuid"], second["input_tokens"]) == (uuid(2), 2)
        seed([minimal(3, now_ms(), input_tokens=3),
              minimal(4, now_ms(), input_tokens=4)])
        got = [json.loads(q.get(timeout=10))["input_tokens"]
               for _ in range(2)]
        assert got == [3, 4]
        assert q.empty()
        p.send_signal(sig)
        assert p.wait(timeout=10) == 0
        assert p.stderr.read() == ""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_log_follow_waits_for_database(env, seed, db):
    p = subprocess.Popen([BIN, "log", "-f", "--json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    q = queue.Queue()
    threading.Thread(target=reader_thread, args=(p.stdout, q),
                     daemon=True).start()
    try:
        time.sleep(0.7)
        assert p.poll() is None and q.empty()
        seed([minimal(9, now_ms(), input_tokens=9)])
        assert json.loads(q.get(timeout=10))["input_tokens"] == 9
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_log_help(hm):
    r = hm("help", "log")
    assert r.returncode == 0
    assert r.stdout.startswith(
        "usage: halton-meter log [--json] [--limit N] [--since TIME] "
        "[--follow]")
    for opt in ("--json", "--limit N", "--since TIME", "--follow"):
        assert opt in r.stdout
    r = hm("log", "--bogus")
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_log_uses_config_db(hm, home, tmp_path):
    other = tmp_path / "elsewhere.db"
    state = home / ".halton-meter"
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "config").write_text("db = %s\n" % other)
    r = subprocess.run([str(SEED), str(other), str(tmp_path / "j")],
                       input=json.dumps(minimal(5, now_ms(),
                                                input_tokens=55)) + "\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert oct(other.stat().st_mode & 0o777) == "0o600"
    out = log_json(hm)
    assert [(o["uuid"], o["input_tokens"]) for o in out] == [(uuid(5), 55)]
    assert not (state / "meter.db").exists()


def test_log_cost_from_price_table(hm, seed):
    """cost_usd per record, from the shipped prices (claude-sonnet-4-5:
    $3 in, $15 out, $0.30 cache read, $3.75 5m write, $6 1h write per
    million tokens)."""
    t = now_ms() - 60000
    rec = minimal(3, t, provider="anthropic",
                  model="claude-sonnet-4-5-20250929", input_tokens=1000,
                  output_tokens=2000, cache_read_input_tokens=10000,
                  cache_creation_input_tokens=150,
                  cache_creation_5m_tokens=100, cache_creation_1h_tokens=50)
    unpriced = minimal(4, t + 1, provider="openai",
                       model="no-such-model-x", input_tokens=10,
                       output_tokens=10)
    seed([rec, unpriced])
    out = log_json(hm)
    want = (1000 * 3 + 2000 * 15 + 10000 * 0.3 + 100 * 3.75 + 50 * 6) / 1e6
    assert out[0]["cost_usd"] == pytest.approx(want, abs=1e-12)
    assert out[1]["cost_usd"] is None
    table = hm("log").stdout
    assert "$0.0367" in table  # 0.036675 rounded to 4 places
    line = [l for l in table.splitlines() if "no-such-model-x" in l][0]
    assert " - " in line
