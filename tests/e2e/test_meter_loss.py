"""No record lost, none stored twice: the store under a locked database,
a read-only database, and a SIGKILL of the daemon.

Every request carries a unique X-Test-Id, which the fake upstream returns
as the Anthropic request-id header, so the records are counted by the ids
the test sent (not just by number).
"""
import concurrent.futures
import http.client
import json
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from conftest import default_connect_to
from hmclients import tls_through
# Fixtures (pytest finds them by name in this module's namespace).
from meterfixtures import (  # noqa: F401
    meter_daemon, meter_upstream)
from meterfixtures import by_request_id, db_path, log_records, wait_records

HOST = "api.anthropic.com"
BODY = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 8,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
STREAM_BODY = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 8,
                          "stream": True, "messages": [
                              {"role": "user", "content": "hi"}]}).encode()


class Client:
    """One keep-alive HTTPS connection to api.anthropic.com through the
    daemon (http.client over the CONNECT tunnel)."""

    def __init__(self, d):
        self.d = d
        self.conn = None

    def request(self, rid, stream=False, delay=None):
        """POST /v1/messages; returns the full body, raises on failure."""
        if self.conn is None:
            sock = tls_through(self.d, HOST, timeout=20)
            self.conn = http.client.HTTPConnection(HOST, 443, timeout=20)
            self.conn.sock = sock
            self.conn.auto_open = 0     # never dial the real host
        h = {"Content-Type": "application/json", "x-api-key": "sk-ant-loss",
             "X-Test-Id": rid, "anthropic-version": "2023-06-01"}
        if delay:
            h["X-Fake-Delay"] = str(delay)
        try:
            self.conn.request("POST", "/v1/messages",
                              STREAM_BODY if stream else BODY, h)
            r = self.conn.getresponse()
            body = r.read()
        except Exception:
            self.close()
            raise
        if r.status != 200:
            raise AssertionError("status %d: %r" % (r.status, body))
        if r.getheader("request-id") != rid:
            raise AssertionError("request-id %r for %r"
                                 % (r.getheader("request-id"), rid))
        return body

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def load(d, ids, workers=8, pace=0.0):
    """Sends one request per id over `workers` keep-alive connections,
    the k-th not before k * pace seconds; returns {id: completion time}.
    Raises if any request fails."""
    done = {}
    lock = threading.Lock()
    t0 = time.time()

    def run(w):
        c = Client(d)
        try:
            for k in range(w, len(ids), workers):
                delay = t0 + k * pace - time.time()
                if delay > 0:
                    time.sleep(delay)
                c.request(ids[k])
                with lock:
                    done[ids[k]] = time.time()
        finally:
            c.close()

    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for f in [ex.submit(run, w) for w in range(workers)]:
            f.result()
    return done


def assert_exactly_once(recs, ids):
    by = by_request_id(recs)
    missing = [i for i in ids if i not in by]
    dup = {i: len(v) for i, v in by.items() if len(v) > 1}
    assert not missing, "%d of %d ids have no record, e.g. %s" % (
        len(missing), len(ids), missing[:5])
    assert not dup, "ids stored more than once: %s" % list(dup.items())[:5]


def warm_up(d):
    """One request whose record is committed: the DB and schema exist."""
    rid = "warm-" + uuid.uuid4().hex
    Client(d).request(rid)
    wait_records(d, 1)
    assert db_path(d).exists()
    return rid


def test_db_locked_5s_during_500_requests(meter_daemon):
    """500 requests paced over ~7 s; another connection holds BEGIN
    EXCLUSIVE from 1 s to 6 s.  Nothing is committed meanwhile, the relay
    goes on, and afterwards all 500 records are there, once each."""
    d = meter_daemon
    warm = warm_up(d)
    ids = ["lock-%03d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(500)]
    result = {}
    th = threading.Thread(target=lambda: result.update(
        done=load(d, ids, pace=0.014)))
    th.start()
    time.sleep(1.0)
    locker = sqlite3.connect(str(db_path(d)), timeout=10,
                             isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        t_lock = time.time()
        before = len(log_records(d))
        time.sleep(5)
        # Readers still work, but nothing new was committed: the lock
        # really held the writer off (else this test would prove nothing).
        during = len(log_records(d))
        t_unlock = time.time()
        locker.execute("COMMIT")
    finally:
        locker.close()
    th.join(120)
    assert not th.is_alive() and "done" in result, "load did not finish"
    done = result["done"]
    assert len(done) == 500
    assert during == before, (before, during)
    served_locked = sum(1 for t in done.values() if t_lock < t < t_unlock)
    assert served_locked >= 100, (
        "only %d requests completed during the 5 s lock: the relay "
        "blocked on the database" % served_locked)

    recs = wait_records(d, 501, timeout=30)
    assert len(recs) == 501
    assert_exactly_once(recs, ids + [warm])
    for r in recs:
        assert (r["input_tokens"], r["output_tokens"]) == (1234, 56), r


def _chattr(flag, paths):
    r = subprocess.run(["chattr", flag] + [str(p) for p in paths],
                       capture_output=True, text=True)
    return r.returncode, r.stderr


def test_db_read_only_for_a_while(meter_daemon):
    """chattr +i on meter.db and its WAL (chmod does nothing as root):
    every write fails while it lasts; all records arrive afterwards.  The
    -shm file stays writable (it is mmap'd; an immutable one would only
    test SIGBUS)."""
    d = meter_daemon
    warm = warm_up(d)
    files = [db_path(d)]
    wal = d.state_dir / "meter.db-wal"
    if wal.exists():
        files.append(wal)
    rc, err = _chattr("+i", files)
    if rc != 0:
        pytest.fail("chattr +i is needed to make the database read-only "
                    "(root on ext4/xfs/btrfs/tmpfs): %s" % err.strip())
    ids = ["ro-%03d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(100)]
    try:
        # Sanity: the flag really refuses writes.
        with pytest.raises(sqlite3.OperationalError):
            c = sqlite3.connect(str(db_path(d)), timeout=0.2)
            try:
                c.execute("CREATE TABLE t_probe(x)")
                c.commit()
            finally:
                c.close()
        done = load(d, ids, workers=4)
        assert len(done) == 100
        time.sleep(1.0)         # several flush ticks fail meanwhile
        during = log_records(d)
        assert [r["request_id"] for r in during] == [warm], (
            "records committed to an immutable database?")
        assert d.alive(), d.stderr()
    finally:
        rc, err = _chattr("-i", files)
        assert rc == 0, err
    recs = wait_records(d, 101, timeout=30)
    assert len(recs) == 101
    assert_exactly_once(recs, ids + [warm])


def test_sigkill_then_restart(start_daemon, meter_upstream):
    """SIGKILL while requests are in flight (some mid-stream); after a
    restart the database is intact and every exchange whose response had
    completed before the kill is there exactly once."""
    connect_to = default_connect_to(meter_upstream.port)
    d = start_daemon(connect_to=connect_to)
    warm = warm_up(d)
    done = {}
    started = []
    streamed = set()
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n, stream):
        c = Client(d)
        i = 0
        while not stop.is_set():
            rid = "kill-%d-%d-%s" % (n, i, uuid.uuid4().hex[:8])
            i += 1
            with lock:
                started.append(rid)
                if stream:
                    streamed.add(rid)
            try:
                c.request(rid, stream=stream,
                          delay=0.2 if stream else None)
            except Exception:
                c.close()
                if stop.is_set():
                    return
                time.sleep(0.05)
                continue
            with lock:
                done[rid] = time.time()
        c.close()

    threads = [threading.Thread(target=worker, args=(n, n % 2 == 1))
               for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    t_kill = time.time()
    d.proc.kill()
    d.wait(5)
    stop.set()
    for t in threads:
        t.join(30)
    with lock:
        completed = [rid for rid, t in done.items() if t < t_kill]
        cut = [rid for rid in started if rid not in done]
    assert len(completed) >= 20, "only %d completed" % len(completed)
    assert cut, "no request was in flight at the kill"

    d2 = start_daemon(connect_to=connect_to)
    want = set(completed) | {warm}
    recs = wait_records(d2, len(completed) + 1, timeout=30,
                        pred=lambda r: r["request_id"] in want)
    recs = log_records(d2)
    assert_exactly_once(recs, completed + [warm])
    by = by_request_id(recs)
    for rid in completed:
        r = by[rid][0]
        assert r["error"] is None and r["status"] == 200, r
        if rid in streamed:
            assert (r["input_tokens"], r["output_tokens"]) == (2100, 89), r
        else:
            assert (r["input_tokens"], r["output_tokens"]) == (1234, 56), r
    # A cut exchange is stored at most once (and not as a success).
    for rid in cut:
        assert len(by.get(rid, [])) <= 1, rid
    c = sqlite3.connect(str(db_path(d2)), timeout=10)
    try:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        n, distinct = c.execute(
            "SELECT count(*), count(DISTINCT uuid) FROM requests").fetchone()
        assert n == distinct == len(recs)
    finally:
        c.close()
