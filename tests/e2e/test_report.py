"""report and prices: a seeded database, hand-computed costs.

Records go in through tools/store-seed (the store API, as the daemon writes
them).  Costs are computed here by hand from the LiteLLM prices of
share/prices.json:

  R1 11-27 10:00Z claude-sonnet-4-5-20250929, 150k in + 60k cache read
     (210k > 200k: tier 6 / 22.5 / 0.6 per 1M), 1k out
  R2 11-27 23:30Z claude-sonnet-4-5, 1k in, 500 out, 2k read,
     3k 5m writes (3.75), 4k 1h writes (6)
  R3 11-28 01:00Z gpt-4o batch: LiteLLM batch prices 1.25 / 5
  R4 11-28 02:00Z an OpenRouter model without a price: unpriced
  R5 11-28 03:00Z OpenRouter, provider-reported cost 0.5
  R6 11-28 04:00Z count_tokens: a request, never billed
  R7 12-01 12:00Z my-model: priced by the user override only (1 / 2)
"""
import csv
import io
import json
import os
import pathlib
import re
import subprocess
import threading
import time

import pytest

from conftest import ROOT

TOOLS = pathlib.Path(os.environ.get("HALTON_METER_TOOLS",
                                    str(ROOT / "build" / "tools")))
SEED = TOOLS / "store-seed"

DAY27 = 1795737600000  # 2026-11-27T00:00:00Z
HOUR = 3600000

COST_R1 = 150000 * 6e-6 + 60000 * 0.6e-6 + 1000 * 22.5e-6
COST_R2 = (1000 * 3e-6 + 500 * 15e-6 + 2000 * 0.3e-6 + 3000 * 3.75e-6
           + 4000 * 6e-6)
COST_R3 = 1.25 + 5.0
COST_R5 = 0.5
COST_R7 = 1000 * 1e-6 + 1000 * 2e-6


def rec(at, provider, kind, model, **kw):
    r = {"started_at": at, "ended_at": at + 1000, "provider": provider,
         "kind": kind, "model": model}
    r.update(kw)
    return r


RECORDS = [
    rec(DAY27 + 10 * HOUR, "anthropic", "messages",
        "claude-sonnet-4-5-20250929", input_tokens=150000,
        output_tokens=1000, cache_read_input_tokens=60000,
        cache_creation_input_tokens=0, client="claude-code",
        project="alpha", tag="work", key_fp="aaaa1111", session_id="s1"),
    rec(DAY27 + 23 * HOUR + HOUR // 2, "anthropic", "messages",
        "claude-sonnet-4-5", input_tokens=1000, output_tokens=500,
        cache_read_input_tokens=2000, cache_creation_input_tokens=7000,
        cache_creation_5m_tokens=3000, cache_creation_1h_tokens=4000,
        client="claude-code", project="alpha", key_fp="aaaa1111",
        session_id="s1"),
    rec(DAY27 + 25 * HOUR, "openai", "chat", "gpt-4o",
        input_tokens=1000000, output_tokens=1000000, service_tier="batch",
        client="openai-python", project="beta", key_fp="bbbb2222"),
    rec(DAY27 + 26 * HOUR, "openrouter", "chat", "vendor/unknown-x",
        input_tokens=10, output_tokens=20, client="curl", project="beta"),
    rec(DAY27 + 27 * HOUR, "openrouter", "chat",
        "anthropic/claude-sonnet-4.5", input_tokens=100, output_tokens=100,
        provider_cost_usd=0.5, client="curl", project="beta"),
    rec(DAY27 + 28 * HOUR, "anthropic", "count_tokens", "claude-sonnet-4-5",
        input_tokens=5000, client="claude-code", project="alpha",
        key_fp="aaaa1111", session_id="s2"),
    rec(DAY27 + 4 * 24 * HOUR + 12 * HOUR, "openai", "chat", "my-model",
        input_tokens=1000, output_tokens=1000, client="codex",
        project="gamma", tag="work", key_fp="bbbb2222"),
]

OVERRIDE = {"my-model": {"input_cost_per_token": 1e-06,
                         "output_cost_per_token": 2e-06}}


def state(home):
    d = home / ".halton-meter"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def seed(home, records):
    d = state(home)
    lines = "".join(json.dumps(r) + "\n" for r in records)
    r = subprocess.run([str(SEED), str(d / "meter.db"), str(d / "journal")],
                       input=lines, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def seeded(home):
    seed(home, RECORDS)
    (state(home) / "prices.json").write_text(json.dumps(OVERRIDE))
    return home


def report_json(hm, *args, tz="UTC"):
    r = hm("report", "--json", *args, extra_env={"TZ": tz})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def groups(doc):
    return {row["group"]: row for row in doc["rows"]}


def test_by_day_json_hand_computed(hm, seeded):
    doc = report_json(hm, "--by", "day")
    assert doc["by"] == "day"
    g = groups(doc)
    assert list(g) == ["2026-11-27", "2026-11-28", "2026-12-01"]
    d27 = g["2026-11-27"]
    assert d27["requests"] == 2
    assert d27["input_tokens"] == 151000
    assert d27["output_tokens"] == 1500
    assert d27["cache_read_tokens"] == 62000
    assert d27["cache_write_tokens"] == 7000
    assert d27["total_tokens"] == 221500
    assert d27["cost_usd"] == pytest.approx(COST_R1 + COST_R2, abs=1e-9)
    d28 = g["2026-11-28"]
    assert d28["requests"] == 4
    assert d28["input_tokens"] == 1000110  # count_tokens adds none
    assert d28["cost_usd"] == pytest.approx(COST_R3 + COST_R5, abs=1e-9)
    assert d28["unpriced_requests"] == 1
    assert d28["unpriced_tokens"] == 30
    assert g["2026-12-01"]["cost_usd"] == pytest.approx(COST_R7, abs=1e-9)
    t = doc["totals"]
    assert t["requests"] == 7
    assert t["cost_usd"] == pytest.approx(
        COST_R1 + COST_R2 + COST_R3 + COST_R5 + COST_R7, abs=1e-9)
    assert doc["unpriced_models"] == [
        {"model": "vendor/unknown-x", "requests": 1, "tokens": 30}]


@pytest.mark.parametrize("by,expect", [
    ("provider", {"openai": (2, COST_R3 + COST_R7),
                  "anthropic": (3, COST_R1 + COST_R2),
                  "openrouter": (2, COST_R5)}),
    ("model", {"claude-sonnet-4-5-20250929": (1, COST_R1),
               "claude-sonnet-4-5": (2, COST_R2),
               "gpt-4o": (1, COST_R3),
               "vendor/unknown-x": (1, 0.0),
               "anthropic/claude-sonnet-4.5": (1, COST_R5),
               "my-model": (1, COST_R7)}),
    ("client", {"claude-code": (3, COST_R1 + COST_R2),
                "openai-python": (1, COST_R3),
                "curl": (2, COST_R5), "codex": (1, COST_R7)}),
    ("project", {"alpha": (3, COST_R1 + COST_R2),
                 "beta": (3, COST_R3 + COST_R5),
                 "gamma": (1, COST_R7)}),
    ("tag", {"work": (2, COST_R1 + COST_R7),
             "(none)": (5, COST_R2 + COST_R3 + COST_R5)}),
    ("key", {"aaaa1111": (3, COST_R1 + COST_R2),
             "bbbb2222": (2, COST_R3 + COST_R7),
             "(none)": (2, COST_R5)}),
    ("session", {"s1": (2, COST_R1 + COST_R2), "s2": (1, 0.0),
                 "(none)": (4, COST_R3 + COST_R5 + COST_R7)}),
    ("week", {"2026-W48": (6, COST_R1 + COST_R2 + COST_R3 + COST_R5),
              "2026-W49": (1, COST_R7)}),
    ("month", {"2026-11": (6, COST_R1 + COST_R2 + COST_R3 + COST_R5),
               "2026-12": (1, COST_R7)}),
    ("hour", {"2026-11-27 10:00": (1, COST_R1),
              "2026-11-27 23:00": (1, COST_R2),
              "2026-11-28 01:00": (1, COST_R3),
              "2026-11-28 02:00": (1, 0.0),
              "2026-11-28 03:00": (1, COST_R5),
              "2026-11-28 04:00": (1, 0.0),
              "2026-12-01 12:00": (1, COST_R7)}),
])
def test_every_by_json_and_csv_agree(hm, seeded, by, expect):
    doc = report_json(hm, "--by", by)
    got = {k: (v["requests"], v["cost_usd"]) for k, v in groups(doc).items()}
    assert set(got) == set(expect)
    for k, (n, cost) in expect.items():
        assert got[k][0] == n, k
        assert got[k][1] == pytest.approx(cost, abs=1e-9), k
    r = hm("report", "--csv", "--by", by, extra_env={"TZ": "UTC"})
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows[-1]["group"] == "TOTAL"
    body = {row["group"]: row for row in rows[:-1]}
    assert set(body) == set(expect)
    for k, (n, cost) in expect.items():
        assert int(body[k]["requests"]) == n
        assert float(body[k]["cost_usd"]) == pytest.approx(cost, abs=1e-6)
        assert int(body[k]["total_tokens"]) == \
            groups(doc)[k]["total_tokens"]
    assert int(rows[-1]["requests"]) == 7
    assert float(rows[-1]["cost_usd"]) == pytest.approx(
        doc["totals"]["cost_usd"], abs=1e-6)


def test_time_groups_in_order(hm, seeded):
    doc = report_json(hm, "--by", "hour")
    names = [row["group"] for row in doc["rows"]]
    assert names == sorted(names)


def test_breakdown(hm, seeded):
    doc = report_json(hm, "--by", "day", "--breakdown")
    d28 = groups(doc)["2026-11-28"]
    models = {m["model"]: m for m in d28["models"]}
    assert set(models) == {"gpt-4o", "vendor/unknown-x",
                           "anthropic/claude-sonnet-4.5",
                           "claude-sonnet-4-5"}
    assert models["gpt-4o"]["cost_usd"] == pytest.approx(COST_R3)
    assert models["vendor/unknown-x"]["unpriced_requests"] == 1
    assert sum(m["requests"] for m in d28["models"]) == d28["requests"]
    r = hm("report", "--breakdown", "--csv", extra_env={"TZ": "UTC"})
    lines = r.stdout.splitlines()
    assert "2026-11-28,gpt-4o,1,1000000,1000000,0,0,2000000,6.250000,0" \
        in lines


def test_table_fits_80_columns(hm, seeded):
    for by in ("day", "model", "client", "session"):
        r = hm("report", "--by", by, "--breakdown",
               extra_env={"TZ": "UTC"})
        assert r.returncode == 0, r.stderr
        assert "\033" not in r.stdout  # NO_COLOR is set, and no TTY
        table = r.stdout.split("\n\n")[0]
        for line in table.splitlines():
            assert len(line) <= 80, line
    r = hm("report", extra_env={"TZ": "UTC"})
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "Day"
    row = next(l for l in lines if l.startswith("2026-11-27"))
    assert "151,000" in row and "221,500" in row and "$1.00" in row
    total = next(l for l in lines if l.startswith("Total"))
    assert total.endswith("$7.76*")
    assert "* 1 request unpriced" in r.stdout
    assert "vendor/unknown-x (1)" in r.stdout


def test_timezones(hm, seeded):
    la = groups(report_json(hm, "--timezone", "America/Los_Angeles"))
    assert {k: v["requests"] for k, v in la.items()} == {
        "2026-11-27": 6, "2026-12-01": 1}
    tokyo = groups(report_json(hm, "--timezone", "Asia/Tokyo"))
    assert {k: v["requests"] for k, v in tokyo.items()} == {
        "2026-11-27": 1, "2026-11-28": 5, "2026-12-01": 1}
    assert tokyo["2026-11-27"]["cost_usd"] == pytest.approx(COST_R1)
    doc = report_json(hm, "--timezone", "Asia/Tokyo")
    assert doc["timezone"] == "Asia/Tokyo"
    r = hm("report", "--timezone", "Mars/Olympus")
    assert r.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in r.stderr


def test_windows(hm, seeded):
    doc = report_json(hm, "--since", "2026-11-28", "--until", "2026-11-28")
    assert doc["totals"]["requests"] == 4
    assert doc["totals"]["cost_usd"] == pytest.approx(COST_R3 + COST_R5)
    assert doc["since"] == "2026-11-28T00:00:00.000Z"
    assert doc["until"] == "2026-11-29T00:00:00.000Z"
    # A date window read in Tokyo time: the 28th there is
    # 11-27T15:00Z .. 11-28T15:00Z, so R2..R6.
    doc = report_json(hm, "--since", "2026-11-28", "--until", "2026-11-28",
                      "--timezone", "Asia/Tokyo")
    assert doc["totals"]["requests"] == 5
    doc = report_json(hm, "--until", "2026-11-27")
    assert doc["totals"]["requests"] == 2
    # Relative windows are relative to now: none of the seeded records is
    # 3000 to 3650 days old; the last 36500 days cover them all.
    assert report_json(hm, "--since", "3650d", "--until",
                       "3000d")["totals"]["requests"] == 0
    assert report_json(hm, "--since", "36500d")["totals"]["requests"] == 7
    for bad in ("--since=soon", "--until=2026-13-01", "--by=year"):
        r = hm("report", bad)
        assert r.returncode == 2, bad
        assert "usage: halton-meter report" in r.stderr


def test_no_database_is_an_empty_report(hm, home):
    r = hm("report")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "No requests recorded in this period.\n"
    assert not (home / ".halton-meter" / "meter.db").exists()
    doc = report_json(hm)
    assert doc["rows"] == [] and doc["totals"]["requests"] == 0
    r = hm("report", "--csv")
    assert r.stdout.splitlines()[-1] == "TOTAL,,0,0,0,0,0,0,0.000000,0"


def test_without_override_my_model_is_unpriced(hm, home):
    seed(home, RECORDS)
    doc = report_json(hm, "--by", "model")
    mine = groups(doc)["my-model"]
    assert mine["unpriced_requests"] == 1 and mine["cost_usd"] == 0
    assert doc["totals"]["unpriced_requests"] == 2
    r = hm("report", "--by", "model", extra_env={"TZ": "UTC"})
    row = next(l for l in r.stdout.splitlines() if l.startswith("my-model"))
    assert row.endswith("unpriced*")
    assert "$0.00" not in row


def test_bad_override_names_the_file(hm, seeded):
    p = state(seeded) / "prices.json"
    p.write_text('{"gpt-4o": {"input_cost_per_token": -3}}')
    r = hm("report")
    assert r.returncode == 1
    assert r.stderr == ("halton-meter: report: %s: gpt-4o: "
                        "input_cost_per_token must be a number >= 0\n" % p)
    p.write_text("{not json")
    r = hm("prices")
    assert r.returncode == 1
    assert str(p) in r.stderr and "JSON syntax error" in r.stderr


def test_report_reads_while_writes_land(hm, home):
    """1000 records committed in 10 batches while report runs in a loop:
    no report fails, no batch is refused, the last report counts 1000."""
    seed(home, RECORDS[:1])
    errors, done = [], threading.Event()

    def writer():
        try:
            for b in range(10):
                recs = [rec(DAY27 + i * 1000, "openai", "chat", "gpt-4o",
                            input_tokens=1, output_tokens=1, client="w")
                        for i in range(b * 100, b * 100 + 100)]
                seed(home, recs)
        except AssertionError as e:
            errors.append(str(e))
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    runs, last = 0, -1
    while not done.is_set() or runs == 0:
        r = hm("report", "--json", "--by", "client")
        assert r.returncode == 0, r.stderr
        n = json.loads(r.stdout)["totals"]["requests"]
        assert n >= last  # committed records only ever grow
        last = n
        runs += 1
    t.join(60)
    assert errors == []
    assert runs >= 2
    doc = report_json(hm, "--by", "client")
    assert groups(doc)["w"]["requests"] == 1000
    assert groups(doc)["w"]["cost_usd"] == pytest.approx(
        1000 * (2.5e-6 + 10e-6))


# ------------------------------------------------------------------ prices

def prices_json(hm, *args):
    r = hm("prices", "--json", *args)
    return r, json.loads(r.stdout)


def test_prices_one_model_and_where_from(hm, seeded):
    r, doc = prices_json(hm, "claude-sonnet-4-5-20250929")
    assert r.returncode == 0
    assert doc["key"] == "claude-sonnet-4-5"
    assert doc["matched_by"] == "date suffix"
    assert doc["source"] == "built-in"
    p = doc["prices"]
    assert p["input_cost_per_token"] == 3e-06
    assert p["cache_creation_input_token_cost_above_1hr"] == 6e-06
    assert p["input_cost_per_token_above_200k_tokens"] == 6e-06
    r, doc = prices_json(hm, "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert doc["key"] == "claude-haiku-4-5"
    assert doc["matched_by"] == "Bedrock id, date suffix"
    r, doc = prices_json(hm, "my-model")
    assert doc["source"] == "override"
    assert doc["file"] == str(state(seeded) / "prices.json")
    r, doc = prices_json(hm, "--provider", "groq", "llama-3.3-70b-versatile")
    assert doc["key"] == "groq/llama-3.3-70b-versatile"
    r, doc = prices_json(hm, "nobody-sells-this")
    assert r.returncode == 1
    assert doc == {"model": "nobody-sells-this", "priced": False}
    r = hm("prices", "gpt-4o")
    assert r.returncode == 0
    assert "priced as:  gpt-4o (matched: exact)" in r.stdout
    assert re.search(r"input\s+2\.5\n", r.stdout)
    assert "batch:" in r.stdout


def test_prices_table(hm, seeded):
    r, doc = prices_json(hm)
    assert r.returncode == 0
    assert doc["shipped"] == "built-in"
    assert doc["override"] == str(state(seeded) / "prices.json")
    models = doc["models"]
    assert len(models) >= 60
    shipped = json.loads((ROOT / "share" / "prices.json").read_text())
    for key, entry in shipped.items():
        if key.startswith("_"):
            continue
        for field, value in entry.items():
            if field.endswith("_token") or field.endswith("_cost") \
                    or field.endswith("_1hr") or "_above_" in field \
                    or field.endswith("_batches"):
                assert models[key][field] == value, (key, field)
    assert models["my-model"]["input_cost_per_token"] == 1e-06
    r = hm("prices")
    assert r.returncode == 0
    assert "my-model" in r.stdout
    for line in r.stdout.splitlines()[3:]:  # after the two file names
        assert len(line) <= 80, line


def test_prices_shipped_file_from_datadir(hm, home):
    r, doc = prices_json(hm, "gpt-4o")
    assert doc["source"] == "built-in"
    r = hm("prices", "--json", "gpt-4o",
           extra_env={"HALTON_METER_DATADIR": str(ROOT / "share")})
    doc = json.loads(r.stdout)
    assert doc["source"] == "shipped"
    assert doc["file"] == str(ROOT / "share" / "prices.json")


def run_on_tty(env, *args):
    """Runs halton-meter with stdout on a pseudo-terminal; returns what it
    wrote there."""
    import pty
    from conftest import BIN
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, *args], stdout=slave, stderr=subprocess.PIPE,
                         env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(30)
    os.close(master)
    assert p.returncode == 0, p.stderr.read()
    return out.decode()


def test_colour_on_a_tty_unless_no_color(env, seeded):
    e = dict(env, TZ="UTC")
    e.pop("NO_COLOR", None)
    out = run_on_tty(e, "report")
    assert "\033[1mDay" in out  # bold header
    assert "\033[1mTotal" in out
    e["NO_COLOR"] = "1"
    out = run_on_tty(e, "report")
    assert "\033" not in out
    assert "Total" in out
