"""Nothing secret at rest: after real clients sent a known API key and a
known prompt sentence (and got a known completion back), no file under
the state directory (DB, WAL, journal, daemon.log, config, ...) and not
the daemon's log output contains any of them, in any form a byte grep
finds.  The journal is also checked while it holds uncommitted records.
The key fingerprint is the first 8 hex digits of SHA-256 of the key.
"""
import json
import sqlite3
import time
import uuid

# Fixtures (pytest finds them by name in this module's namespace).
from meterfixtures import (  # noqa: F401
    meter_daemon, meter_upstream, project_dir)
from meterfixtures import (db_path, key_fp, log_records, run_curl, run_py,
                           run_sdk, state_files, wait_records)

ANTHROPIC = "https://api.anthropic.com"
OPENAI = "https://api.openai.com"
def needles(key, prompt, answer):
    out = {"key": key.encode(), "prompt": prompt.encode(),
           "answer": answer.encode()}
    # The secret part of the key on its own, the prompt as JSON escapes
    # it, and each half of the answer (streams send it in two deltas).
    out["key-tail"] = key.split("SECRET-")[1].encode()
    out["prompt-json"] = json.dumps(prompt).encode()[1:-1]
    for i, w in enumerate(answer.split()):
        if len(w) >= 12:
            out["answer-word-%d" % i] = w.encode()
    return out


def grep(paths, found_in, ns):
    hits = []
    for p in paths:
        data = p.read_bytes()
        for name, n in ns.items():
            if n in data:
                hits.append("%s in %s" % (name, p.name))
        found_in.append(p.name)
    return hits


def test_no_key_prompt_or_completion_at_rest(meter_daemon, project_dir):
    d = meter_daemon
    cwd = project_dir("proj-secret")
    key = "sk-ant-test-SECRET-" + uuid.uuid4().hex
    prompt = ("The violet heron counts %s lanterns beneath the bridge."
              % uuid.uuid4().hex[:10])
    answer = "Answer %s because %s." % (uuid.uuid4().hex,
                                        uuid.uuid4().hex)
    ns = needles(key, prompt, answer)
    assert len(ns) == 7
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": prompt}]}
    ids = ["sec-%d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(6)]

    st, out = run_curl(d, ANTHROPIC + "/v1/messages", cwd, body=body,
                       headers={"x-api-key": key, "X-Test-Id": ids[0],
                                "X-Fake-Text": answer})
    assert st == 200 and answer.encode() in out
    st, out = run_curl(d, ANTHROPIC + "/v1/messages", cwd,
                       body=dict(body, stream=True),
                       headers={"x-api-key": key, "X-Test-Id": ids[1],
                                "X-Fake-Text": answer},
                       extra=["--compressed"])
    assert st == 200 and answer.split()[1].encode() in out
    st, out = run_curl(d, ANTHROPIC + "/v1/messages", cwd, body=body,
                       headers={"x-api-key": key, "X-Test-Id": ids[2],
                                "X-Fake-Status": "429"})
    assert st == 429
    r = run_py(d, "requests", OPENAI + "/v1/chat/completions", cwd,
               body={"model": "gpt-5", "messages": [
                   {"role": "user", "content": prompt}]},
               headers={"Authorization": "Bearer " + key,
                        "X-Test-Id": ids[3], "X-Fake-Text": answer})
    assert r["status"] == 200 and answer in r["body"]
    res = run_sdk(d, {"sdk": "anthropic", "stream": True, "apiKey": key,
                      "model": "claude-sonnet-4-5", "prompt": prompt,
                      "headers": {"X-Test-Id": ids[4],
                                  "X-Fake-Text": answer}}, cwd)
    assert res["text"] == answer, res

    # While the database is locked the records wait in the journal: it
    # must hold them (ids), and no secret.
    locker = sqlite3.connect(str(db_path(d)), timeout=10,
                             isolation_level=None)
    try:
        wait_records(d, 5)
        locker.execute("BEGIN EXCLUSIVE")
        res = run_sdk(d, {"sdk": "openai-chat", "stream": True,
                          "apiKey": key, "model": "gpt-5", "prompt": prompt,
                          "headers": {"X-Test-Id": ids[5],
                                      "X-Fake-Text": answer}}, cwd)
        assert res["usage"]["prompt_tokens"] == 900
        assert res["text"] == answer, res
        journal = [p for p in state_files(d) if "journal" in p.name]
        assert journal, [p.name for p in state_files(d)]
        deadline = time.time() + 5
        while time.time() < deadline and not any(
                ids[5].encode() in p.read_bytes() for p in journal):
            time.sleep(0.05)
        assert any(ids[5].encode() in p.read_bytes() for p in journal), (
            "the pending record is not in the journal")
        seen = []
        hits = grep(journal, seen, ns)
        assert not hits, hits
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()

    recs = wait_records(d, 6)
    assert sorted(r["request_id"] for r in recs) == sorted(ids)
    for r in recs:
        assert r["key_fp"] == key_fp(key), r
        assert r["project"] == "proj-secret", r
    assert d.stop() == 0
    assert {r["request_id"] for r in log_records(d)} == set(ids)

    files = state_files(d)
    seen = []
    hits = grep(files, seen, ns)
    assert not hits, "secrets at rest: %s" % hits
    names = set(seen)
    assert "meter.db" in names, names
    assert any("journal" in n for n in names), names
    # The daemon's own log output (outside the state dir in this test).
    log = d.stderr().encode()
    assert not [n for n, v in ns.items() if v in log], "secret in the log"
