"""dashboard in a real browser: Debian's headless Chromium, driven over the
DevTools protocol (browser/cdp.py), loads http://127.0.0.1:PORT/ from the
daemon with a seeded database.

Checked: no console error or warning, no uncaught exception, no failed
load; the DOM shows the seeded numbers exactly as the page formats them
(today's totals, tokens and cost by client and by project, the cost per
model of the 30-day legend, one bar per day and model, the quota gauges,
the newest 100 requests); a real request through the daemon to the fake
upstream shows up in the live table within 5 s; a screenshot is written
to the test's tmp dir (and to $HALTON_METER_SCREENSHOT when set).

The seeded records use token counts that are whole multiples of a "unit"
whose price is a whole number of cents (prices of share/prices.json), so
every expected dollar figure is exact, with no rounding question.
Chromium missing is a failure, not a skip: install Debian's chromium.
"""
import base64
import decimal
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, default_connect_to
from meterfixtures import meter_upstream  # noqa: F401

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "browser"))
from cdp import Browser, CDPError, chromium_path, problems  # noqa: E402
from proxyclient import ProxyClient  # noqa: E402

TOOLS = pathlib.Path(os.environ.get("HALTON_METER_TOOLS",
                                    str(ROOT / "build" / "tools")))
SEED = TOOLS / "store-seed"
DAY = 86400000

# model -> provider, then (tokens per unit, cents per unit) for input,
# output, cache read, cache write (5m); from share/prices.json:
# sonnet 3/15/0.3/3.75, opus 15/75/1.5/18.75, haiku 1/5/0.1/1.25,
# gpt-5 1.25/10/0.125, gemini-2.5-pro 1.25/10/0.125 USD per 1M tokens.
MODELS = {
    "claude-sonnet-4-5": ("anthropic", (10000, 3), (2000, 3), (100000, 3),
                          (8000, 3)),
    "claude-opus-4-1": ("anthropic", (2000, 3), (400, 3), (20000, 3),
                        (1600, 3)),
    "claude-haiku-4-5": ("anthropic", (10000, 1), (2000, 1), (100000, 1),
                         (8000, 1)),
    "gpt-5": ("openai", (8000, 1), (1000, 1), (80000, 1), None),
    "gemini-2.5-pro": ("gemini", (8000, 1), (1000, 1), (80000, 1), None),
}
CLIENT = {"claude-sonnet-4-5": "claude-code", "claude-opus-4-1":
          "claude-code", "claude-haiku-4-5": "claude-code", "gpt-5": "codex",
          "gemini-2.5-pro": "gemini-cli"}
# Most units per request of (input, output, cache read, cache write):
# sonnet and gemini-2.5-pro stay under their 200k-token price tier.
MAX_UNITS = {"claude-sonnet-4-5": (4, 10, 1, 4),
             "claude-opus-4-1": (10, 10, 8, 4),
             "claude-haiku-4-5": (15, 10, 5, 6),
             "gpt-5": (12, 10, 2, 0), "gemini-2.5-pro": (8, 10, 1, 0)}
PROJECTS = ["halton-meter", "webshop", "infra-terraform", "notes"]
UNPRICED = "vendor/unknown-x"

# What the live request gets back (fakeupstream METER_USAGE["anthropic"]).
LIVE = {"model": "claude-sonnet-4-5-20250929", "input": 1234, "output": 56,
        "cache_read": 4000, "cache_write": 300, "write_5m": 200,
        "write_1h": 100}
LIVE_COST = (1234 * 3e-6 + 56 * 15e-6 + 4000 * 0.3e-6 + 200 * 3.75e-6
             + 100 * 6e-6)


def utc_midnight(ms):
    return ms - ms % DAY


def make_records(now):
    """Deterministic records over the last 28 days (plus one 40 days old,
    outside the 30-day window), oldest first.  Each carries the test-only
    keys _cents and _tokens (removed before seeding)."""
    rnd = random.Random(7)
    today = utc_midnight(now)
    recs = []

    def add(at, model, project, units, client=None):
        prov, *unit = MODELS[model] if model in MODELS else (
            "openrouter", None, None, None, None)
        r = {"started_at": at, "ended_at": at + 1500, "provider": prov,
             "kind": "messages" if prov == "anthropic" else "chat",
             "model": model, "client": client or CLIENT.get(model),
             "project": project, "status": 200, "duration_ms": 1500,
             "key_fp": "1a2b3c4d" if prov == "anthropic" else "5e6f7a8b"}
        cents = 0
        names = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens")
        for i, name in enumerate(names):
            if model in MODELS:
                if unit[i] is None:
                    continue
                u = min(units[i], MAX_UNITS[model][i])
                r[name] = u * unit[i][0]
                cents += u * unit[i][1]
            else:
                r[name] = units[i]
        if r.get("cache_creation_input_tokens"):
            r["cache_creation_5m_tokens"] = r["cache_creation_input_tokens"]
            r["cache_creation_1h_tokens"] = 0
        r["_cents"] = cents if model in MODELS else None
        r["_tokens"] = sum(r.get(n, 0) for n in names)
        recs.append(r)

    add(today - 40 * DAY + 10 * 3600000, "claude-opus-4-1", "ancient",
        (9, 9, 9, 9))
    for back in range(27, 0, -1):
        if back % 7 in (2, 3):
            continue                    # a quiet weekend
        n = rnd.randint(3, 8)
        for i in range(n):
            model = rnd.choice(list(MODELS) + ["claude-sonnet-4-5"] * 3)
            at = today - back * DAY + (8 + i) * 3600000 + rnd.randint(
                0, 3599) * 1000
            add(at, model, rnd.choice(PROJECTS),
                (rnd.randint(1, 20), rnd.randint(1, 10), rnd.randint(0, 30),
                 rnd.randint(0, 6)))
    # Today: 12 records ending a minute ago (never before midnight).
    models_today = ["claude-sonnet-4-5", "claude-opus-4-1", "gpt-5",
                    "claude-sonnet-4-5", "gemini-2.5-pro", "claude-haiku-4-5",
                    "claude-sonnet-4-5", "gpt-5", "claude-sonnet-4-5",
                    "claude-opus-4-1", "claude-sonnet-4-5"]
    n = len(models_today) + 1
    for i in range(n):
        at = max(today + (i + 1) * 1000, now - (n - i) * 97000)
        if i == 5:
            add(at, UNPRICED, "notes", (1500, 300, 0, 0), client="aider")
            continue
        m = models_today[i - (i > 5)]
        add(at, m, PROJECTS[i % 3],
            (rnd.randint(1, 12), rnd.randint(1, 8), rnd.randint(0, 25),
             rnd.randint(0, 4)))
    return recs


def ratelimit_lines(now):
    return [
        {"ratelimit": {"provider": "openai", "key_fp": "5e6f7a8b",
                       "observed_at": now - 300000, "headers": {
                           "x-ratelimit-limit-requests": "5000",
                           "x-ratelimit-remaining-requests": "4870",
                           "x-ratelimit-limit-tokens": "2000000",
                           "x-ratelimit-remaining-tokens": "1650000"}}},
        {"ratelimit": {"provider": "anthropic", "key_fp": "1a2b3c4d",
                       "observed_at": now - 60000, "headers": {
                           "anthropic-ratelimit-unified-status": "allowed",
                           "anthropic-ratelimit-unified-5h-utilization":
                               "0.42",
                           "anthropic-ratelimit-unified-5h-reset":
                               str(now // 1000 + 7200),
                           "anthropic-ratelimit-unified-7d-utilization":
                               "0.73",
                           "anthropic-ratelimit-unified-7d-reset":
                               str(now // 1000 + 3 * 86400)}}},
    ]


def seed(home, recs, extra):
    assert SEED.exists(), "%s missing: run `make tools`" % SEED
    d = home / ".halton-meter"
    d.mkdir(mode=0o700, exist_ok=True)
    lines = [{k: v for k, v in r.items() if not k.startswith("_")}
             for r in recs] + extra
    r = subprocess.run([str(SEED), str(d / "meter.db"), str(d / "journal")],
                       input="".join(json.dumps(x) + "\n" for x in lines),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------- the page's formatting

def js_fixed1(x):
    """Number.prototype.toFixed(1) (ties away from zero, exact value)."""
    return str(decimal.Decimal(x).quantize(decimal.Decimal("0.1"),
                                           decimal.ROUND_HALF_UP))


def num(n):
    return "{:,}".format(n)


def compact(n):
    if n >= 1e9:
        return js_fixed1(n / 1e9) + "B"
    if n >= 1e6:
        return js_fixed1(n / 1e6) + "M"
    if n >= 1e4:
        return js_fixed1(n / 1e3) + "k"
    return num(n)


def usd_cents(c):
    return "${:,.2f}".format(c / 100)


def expected(recs, now):
    """What the page must show, computed from the records."""
    today = utc_midnight(now)
    window = today - 29 * DAY
    cur = [r for r in recs if r["started_at"] >= window]
    tday = [r for r in cur if r["started_at"] >= today]
    exp = {"today": [num(len(tday)), num(sum(r["_tokens"] for r in tday)),
                     usd_cents(sum(r["_cents"] or 0 for r in tday))]}
    unpriced = sum(1 for r in tday if r["_cents"] is None)
    if unpriced:
        exp["today"].append(num(unpriced))
    for key, field in (("clients", "client"), ("projects", "project")):
        agg = {}
        for r in cur:
            t, c = agg.get(r[field], (0, 0))
            agg[r[field]] = (t + r["_tokens"], c + (r["_cents"] or 0))
        exp[key] = {k: "%s · %s" % (compact(t), usd_cents(c))
                    for k, (t, c) in agg.items()}
    models, bars = {}, set()
    for r in cur:
        if r["_cents"]:
            models[r["model"]] = models.get(r["model"], 0) + r["_cents"]
            bars.add((r["started_at"] // DAY, r["model"]))
    exp["legend"] = sorted("%s %s" % (m, usd_cents(c))
                           for m, c in models.items())
    exp["bars"] = len(bars)
    exp["newest"] = max(cur, key=lambda r: r["started_at"])
    return exp


# JavaScript that reads what the page shows.
READ_DOM = r"""(() => {
  const txt = (sel) => Array.from(document.querySelectorAll(sel),
    (e) => e.textContent);
  const bars = (id) => Object.fromEntries(Array.from(
    document.querySelectorAll("#" + id + " .bar"),
    (b) => [b.querySelector(".name").textContent,
            b.querySelector(".val").textContent]));
  const rows = Array.from(document.querySelectorAll("#requests tr"),
    (tr) => ({rowid: Number(tr.getAttribute("data-rowid")),
              cls: tr.className,
              cells: Array.from(tr.children, (td) => td.textContent)}));
  return {today: txt("#today div b"), todayLabels: txt("#today div span"),
          clients: bars("clients"), projects: bars("projects"),
          legend: txt("#legend span"),
          rects: document.querySelectorAll("#days svg rect").length,
          axis: txt("#days svg text"),
          gauges: Array.from(document.querySelectorAll("#quotas .gauge"),
            (g) => [g.querySelector(".name").textContent,
                    g.querySelector(".val").textContent]),
          notes: txt("#quotas p.note"),
          updated: document.getElementById("updated").textContent,
          rows: rows};
})()"""


def screenshot(page, path):
    """A PNG of the page's top (1280 px wide, up to 1500 px high)."""
    m = page.call("Page.getLayoutMetrics")
    h = min(1500, int(m["cssContentSize"]["height"]))
    shot = page.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1280, "height": h, "scale": 1}})
    data = base64.b64decode(shot["data"])
    path.write_bytes(data)
    return data


def need_chromium():
    assert chromium_path() is not None, (
        "Chromium is required for this test: run scripts/e2e-browser-setup.sh"
        " (apt-get install chromium, Debian's package) or set "
        "HALTON_METER_CHROMIUM to a Chromium binary")


def open_dashboard(b, url, ready):
    """Opens url in a new session of b, with the Page, Runtime, Log and
    Network events on; waits for the load and for the page's first summary
    ("updated ...") and the JavaScript condition ready."""
    page = b.page()
    for dom in ("Page", "Runtime", "Log", "Network"):
        page.call(dom + ".enable")
    page.call("Page.navigate", {"url": url})
    page.wait_event(lambda e: e["method"] == "Page.loadEventFired", 15)
    assert page.evaluate("document.title") == "halton-meter"
    page.poll("document.getElementById('updated').textContent"
              ".startsWith('updated') && (%s)" % ready, 10)
    return page


def foreign_requests(page, url):
    """What the page loaded from anywhere but the daemon (it must be
    self-contained: no CDN, font or script from elsewhere)."""
    urls = [e["params"]["request"]["url"] for e in page.events
            if e["method"] == "Network.requestWillBeSent"]
    assert any(u == url for u in urls), urls
    return [u for u in urls if not u.startswith(url)
            and not u.startswith("data:")]


def test_dashboard_empty_database(start_daemon, tmp_path, env):
    """A daemon that has recorded nothing yet: the page says so, shows
    zeros, and throws no error."""
    need_chromium()
    d = start_daemon(extra_env={"TZ": "UTC"})
    url = "http://127.0.0.1:%d/" % d.port
    with Browser.launch(tmp_path / "browser", env=env) as b:
        page = open_dashboard(b, url, "true")
        page.pump(0.5)
        dom = page.evaluate(READ_DOM)
        assert dom["today"] == ["0", "0", "$0.00"], dom["today"]
        assert dom["clients"] == {} and dom["projects"] == {}
        assert page.evaluate(
            "Array.from(document.querySelectorAll('#clients p, #projects p,"
            " #quotas p'), (p) => p.textContent)") == [
            "Nothing recorded yet.", "Nothing recorded yet.",
            "No rate-limit headers seen yet."]
        assert dom["legend"] == [] and dom["rects"] == 0
        assert dom["rows"] == [] and dom["gauges"] == []
        assert problems(page.events) == []
        assert foreign_requests(page, url) == []


def test_dashboard_in_chromium(start_daemon, meter_upstream, home,  # noqa
                               tmp_path, env):
    need_chromium()
    now = int(time.time() * 1000)
    recs = make_records(now)
    seed(home, recs, ratelimit_lines(now))
    exp = expected(recs, now)

    d = start_daemon(connect_to=default_connect_to(meter_upstream.port),
                     extra_env={"TZ": "UTC"})
    url = "http://127.0.0.1:%d/" % d.port
    benv = dict(env)
    benv["TZ"] = "UTC"
    with Browser.launch(tmp_path / "browser", env=benv) as b:
        page = open_dashboard(b, url, "document.querySelectorAll("
                              "'#requests tr').length > 0")
        dom = page.evaluate(READ_DOM)

        assert dom["today"] == exp["today"], dom["today"]
        assert dom["todayLabels"] == ["requests", "tokens", "cost",
                                      "unpriced requests"]
        assert dom["clients"] == exp["clients"]
        assert dom["projects"] == exp["projects"]
        assert "ancient" not in dom["projects"]
        assert sorted(dom["legend"]) == exp["legend"], dom["legend"]
        assert dom["rects"] == exp["bars"]
        # 5 dollar ticks, then every 5th day from 30 days back, and today.
        assert len(dom["axis"]) == 5 + 7, dom["axis"]
        assert dom["axis"][-1] == time.strftime(
            "%m-%d", time.gmtime(now / 1000)), dom["axis"]
        g = dict(dom["gauges"])
        assert g["Anthropic 5h"].startswith("42% used, resets "), g
        assert g["Anthropic 7d"].startswith("73% used, resets "), g
        assert g["requests used"] == "4,870 of 5,000 left", g
        assert g["tokens used"] == "1,650,000 of 2,000,000 left", g
        assert len(dom["gauges"]) == 4, dom["gauges"]
        # The newest 100 requests, newest first.
        rows = dom["rows"]
        assert len(rows) == 100, len(rows)
        top = exp["newest"]
        assert rows[0]["cells"][1:6] == [
            top["client"], top["provider"], top["model"], top["project"],
            num(top["input_tokens"])], rows[0]
        assert rows[0]["cells"][9] == usd_cents(top["_cents"]), rows[0]
        assert rows[0]["cells"][10] == "200"
        assert [r["rowid"] for r in rows] == sorted(
            (r["rowid"] for r in rows), reverse=True)
        top_rowid = rows[0]["rowid"]
        assert problems(page.events) == []
        assert foreign_requests(page, url) == []

        # A real request through the daemon: the row must come within 5 s.
        c = ProxyClient(d, "api.anthropic.com")
        st, _, body = c.post_json("/v1/messages", {
            "model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello."}]},
            {"x-api-key": "sk-ant-test-dashboard0000",
             "anthropic-version": "2023-06-01",
             "User-Agent": "claude-cli/2.0.14 (external, cli)"})
        c.close()
        sent_at = time.time()
        assert st == 200, body
        assert json.loads(body)["usage"]["input_tokens"] == LIVE["input"]
        try:
            page.poll("(() => { const tr = document.querySelector("
                      "'#requests tr'); return tr && Number(tr.getAttribute("
                      "'data-rowid')) > %d; })()" % top_rowid, 5.0)
        except CDPError as e:
            pytest.fail("the new record did not appear in the live table "
                        "within 5 s: %s\n/api/requests?since=%d: %r\n"
                        "daemon:\n%s"
                        % (e, top_rowid,
                           d.get("/api/requests?since=%d" % top_rowid),
                           d.stderr()[-3000:]))
        waited = time.time() - sent_at
        assert waited <= 5.0, waited
        # The summary refreshes after new rows: today's totals follow.
        today_n = len([r for r in recs if r["started_at"] >= utc_midnight(
            now)])
        page.poll("document.querySelector('#today div b').textContent == "
                  "'%s'" % num(today_n + 1), 5)
        dom2 = page.evaluate(READ_DOM)
        new = dom2["rows"][0]
        assert new["cells"][1:] == [
            "claude-code", "anthropic", LIVE["model"], new["cells"][4],
            num(LIVE["input"]), num(LIVE["output"]), num(LIVE["cache_read"]),
            num(LIVE["cache_write"]), "<$0.01", "200"], new
        assert new["cls"] == "new", new
        assert len(dom2["rows"]) == 100
        tokens_today = sum(r["_tokens"] for r in recs
                           if r["started_at"] >= utc_midnight(now))
        live_tokens = (LIVE["input"] + LIVE["output"] + LIVE["cache_read"]
                       + LIVE["cache_write"])
        cents_today = sum(r["_cents"] or 0 for r in recs
                          if r["started_at"] >= utc_midnight(now))
        assert dom2["today"][:3] == [
            num(today_n + 1), num(tokens_today + live_tokens),
            "${:,.2f}".format(round(cents_today / 100 + LIVE_COST, 2))]

        page.pump(1.6)  # the new row's highlight fades
        shot = screenshot(page, tmp_path / "dashboard.png")
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000
        dest = os.environ.get("HALTON_METER_SCREENSHOT")
        if dest:
            shutil.copyfile(tmp_path / "dashboard.png", dest)
        assert problems(page.events) == []
        assert foreign_requests(page, url) == []


def test_dashboard_summary_error_shown(start_daemon, home, tmp_path, env):
    """A summary the daemon cannot build (a broken prices.json override)
    answers 500 {"error": ...}: the page says so, with the daemon's words,
    instead of calling the daemon unreachable."""
    need_chromium()
    d0 = home / ".halton-meter"
    d0.mkdir(mode=0o700, exist_ok=True)
    (d0 / "prices.json").write_text("{not json\n")
    d = start_daemon(extra_env={"TZ": "UTC"})
    url = "http://127.0.0.1:%d/" % d.port
    with Browser.launch(tmp_path / "browser", env=env) as b:
        page = b.page()
        for dom in ("Page", "Runtime"):
            page.call(dom + ".enable")
        page.call("Page.navigate", {"url": url})
        page.wait_event(lambda e: e["method"] == "Page.loadEventFired", 15)
        text = page.poll("(function () { var t = document.getElementById("
                         "'updated').textContent; return t.startsWith("
                         "'summary failed: ') ? t : ''; })()", 10)
        assert "prices.json" in text, text
