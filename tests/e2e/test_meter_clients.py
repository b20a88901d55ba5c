"""Metering end to end: real clients through the daemon to the fake
upstream's real-format LLM answers (fakeupstream.METER_ROUTES), and the
records `halton-meter log --json` then shows.

Every record must carry the exact token counts the fake upstream sent
(normalised as docs/metering.md says), the provider, kind and models, the
client from the User-Agent table (src/meter/attribution.c), the tag of the
proxy URL, the key fingerprint, and the project of the client's working
directory (a temp git repository; the client runs in a subdirectory, so
the project is the repository's name, not the directory's).
"""
import json
import uuid

import pytest

# Fixtures (pytest finds them by name in this module's namespace).
from meterfixtures import (  # noqa: F401
    meter_daemon, meter_upstream, project_dir)
from meterfixtures import (by_request_id, check_record, curl_version,
                           key_fp, run_curl, run_py, run_sdk, sdk_version,
                           wait_records)

ANTHROPIC = "https://api.anthropic.com"
OPENAI = "https://api.openai.com"
GEMINI = "https://generativelanguage.googleapis.com"
BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com"

# Normalised expectations for fakeupstream.METER_USAGE.
ANTHROPIC_JSON = dict(input_tokens=1234, output_tokens=56,
                      cache_creation_input_tokens=300,
                      cache_creation_5m_tokens=200,
                      cache_creation_1h_tokens=100,
                      cache_read_input_tokens=4000)
# message_start + one cumulative message_delta (last wins, never summed).
ANTHROPIC_SSE = dict(input_tokens=2100, output_tokens=89,
                     cache_creation_input_tokens=0,
                     cache_read_input_tokens=512)
# prompt 1500 - cached 1024; completion 250 includes reasoning 64.
OPENAI_CHAT_JSON = dict(input_tokens=476, output_tokens=250,
                        cache_read_input_tokens=1024, reasoning_tokens=64)
# prompt 900 - cached 128.
OPENAI_CHAT_SSE = dict(input_tokens=772, output_tokens=77,
                       cache_read_input_tokens=128, reasoning_tokens=0)
# input 3000 - cached 2048.
OPENAI_RESPONSES = dict(input_tokens=952, output_tokens=400,
                        cache_read_input_tokens=2048, reasoning_tokens=128)
# Last usageMetadata: prompt 820 - cached 300; candidates 45 + thoughts 60.
GEMINI_STREAM = dict(input_tokens=520, output_tokens=105,
                     cache_read_input_tokens=300, reasoning_tokens=60)
# prompt 150 - cached 0; candidates 30 + thoughts 12.
GEMINI_JSON = dict(input_tokens=150, output_tokens=42,
                   cache_read_input_tokens=0, reasoning_tokens=12)
NO_TOKENS = dict(input_tokens=None, output_tokens=None,
                 cache_read_input_tokens=None, reasoning_tokens=None)


def tid():
    return "req_e2e_" + uuid.uuid4().hex


def key(name):
    return "sk-%s-test-%s" % (name, uuid.uuid4().hex[:16])


def anthropic_body(stream=False, model="claude-sonnet-4-5"):
    return {"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": "Say hello."}]}


def sent(up, rid):
    """The request the fake upstream received with X-Test-Id rid."""
    with up.lock:
        got = [r for r in up.requests if r.header("X-Test-Id") == rid]
    assert len(got) == 1, (rid, got)
    return got[0]


def one(recs, rid):
    got = by_request_id(recs).get(rid, [])
    assert len(got) == 1, ("request %s: %d records\n%s"
                           % (rid, len(got), json.dumps(recs, indent=1)))
    return got[0]


# ------------------------------------------------------------------ curl

def test_curl_anthropic_json_and_gzip_stream(meter_daemon, project_dir,
                                             meter_upstream):
    """curl: Anthropic non-streaming, then SSE with gzip flushed per event
    (--compressed), through a tagged proxy URL."""
    d = meter_daemon
    cwd = project_dir("proj-alpha")
    k = key("ant")
    ids = [tid(), tid()]
    st, out = run_curl(d, ANTHROPIC + "/v1/messages", cwd,
                       body=anthropic_body(),
                       headers={"x-api-key": k, "X-Test-Id": ids[0],
                                "anthropic-version": "2023-06-01"},
                       tag="mytag")
    assert st == 200, out
    assert json.loads(out)["usage"]["cache_read_input_tokens"] == 4000
    st, out = run_curl(d, ANTHROPIC + "/v1/messages?beta=true", cwd,
                       body=anthropic_body(stream=True),
                       headers={"x-api-key": k, "X-Test-Id": ids[1]},
                       tag="mytag", extra=["--compressed"])
    assert st == 200, out
    # curl decoded the gzip stream: every event arrived intact.
    assert out.count(b"\nevent: ") + out.startswith(b"event: ") == 8, out
    assert b'"output_tokens": 89' in out
    # The stream really went gzip'd (one member, flushed per event).
    assert "gzip" in sent(meter_upstream, ids[1]).header("Accept-Encoding")

    recs = wait_records(d, 2)
    common = dict(provider="anthropic", kind="messages", status=200,
                  request_model="claude-sonnet-4-5",
                  model="claude-sonnet-4-5-20250929", client="curl",
                  client_version=curl_version(), tag="mytag",
                  project="proj-alpha", key_fp=key_fp(k), error=None,
                  host="api.anthropic.com", method="POST")
    check_record(one(recs, ids[0]), stream=False, stop_reason="end_turn",
                 **ANTHROPIC_JSON, **common)
    r = one(recs, ids[1])
    check_record(r, stream=True, stop_reason="end_turn", **ANTHROPIC_SSE,
                 **common)
    assert r["path"].startswith("/v1/messages"), r["path"]
    assert r["cwd"].endswith("/proj-alpha/src/module"), r["cwd"]
    assert r["process"] == "curl", r["process"]
    assert isinstance(r["pid"], int) and r["pid"] > 0, r["pid"]


def test_curl_errors_and_other_kinds(meter_daemon, project_dir):
    """429 and 529 are recorded with the provider's error type; a
    count_tokens call is kind count_tokens; the record has no tokens it
    was not sent."""
    d = meter_daemon
    cwd = project_dir("proj-errors")
    k = key("ant")
    ids = {"429": tid(), "529": tid(), "oa429": tid(), "count": tid()}
    st, _ = run_curl(d, ANTHROPIC + "/v1/messages", cwd,
                     body=anthropic_body(),
                     headers={"x-api-key": k, "X-Test-Id": ids["429"],
                              "X-Fake-Status": "429"})
    assert st == 429
    st, _ = run_curl(d, ANTHROPIC + "/v1/messages", cwd,
                     body=anthropic_body(stream=True),
                     headers={"x-api-key": k, "X-Test-Id": ids["529"],
                              "X-Fake-Status": "529"})
    assert st == 529
    st, _ = run_curl(d, OPENAI + "/v1/chat/completions", cwd,
                     body={"model": "gpt-5", "messages": []},
                     headers={"Authorization": "Bearer " + k,
                              "X-Test-Id": ids["oa429"],
                              "X-Fake-Status": "429"})
    assert st == 429
    st, out = run_curl(d, ANTHROPIC + "/v1/messages/count_tokens", cwd,
                       body=anthropic_body(),
                       headers={"x-api-key": k, "X-Test-Id": ids["count"]})
    assert st == 200 and json.loads(out) == {"input_tokens": 321}

    recs = wait_records(d, 4)
    base = dict(client="curl", project="proj-errors", key_fp=key_fp(k),
                tag=None)
    check_record(one(recs, ids["429"]), provider="anthropic", status=429,
                 error="rate_limit_error", kind="messages", **NO_TOKENS,
                 **base)
    check_record(one(recs, ids["529"]), provider="anthropic", status=529,
                 error="overloaded_error", **NO_TOKENS, **base)
    check_record(one(recs, ids["oa429"]), provider="openai", status=429,
                 error="insufficient_quota", kind="chat", **NO_TOKENS,
                 **base)
    check_record(one(recs, ids["count"]), provider="anthropic",
                 kind="count_tokens", status=200, **base)


def test_curl_bedrock_event_stream(meter_daemon, project_dir):
    """Bedrock InvokeModelWithResponseStream (AWS event-stream frames with
    base64 Anthropic events) and InvokeModel; the model is the URL's
    model id."""
    d = meter_daemon
    cwd = project_dir("proj-bedrock")
    rid = tid()
    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    st, out = run_curl(
        d, BEDROCK + "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        "/invoke-with-response-stream", cwd,
        body={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
              "messages": [{"role": "user", "content": "Say hello."}]},
        headers={"X-Test-Id": rid, "Authorization":
                 "AWS4-HMAC-SHA256 Credential=AKIAFAKEKEY0001/20260101/"
                 "us-east-1/bedrock/aws4_request, SignedHeaders=host, "
                 "Signature=00"})
    assert st == 200
    assert out.count(b":event-type") == 6, out
    rid2 = tid()
    st, out = run_curl(
        d, BEDROCK + "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        "/invoke", cwd,
        body={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
              "messages": [{"role": "user", "content": "Say hello."}]},
        headers={"X-Test-Id": rid2, "Authorization":
                 "AWS4-HMAC-SHA256 Credential=AKIAFAKEKEY0001/20260101/"
                 "us-east-1/bedrock/aws4_request, SignedHeaders=host, "
                 "Signature=00"})
    assert st == 200 and json.loads(out)["usage"]["output_tokens"] == 66
    recs = wait_records(d, 2)
    common = dict(provider="bedrock", kind="invoke", request_model=model,
                  model=model, input_tokens=700, output_tokens=66,
                  status=200, error=None, client="curl",
                  project="proj-bedrock", key_fp=key_fp("AKIAFAKEKEY0001"))
    check_record(one(recs, rid), stream=True, **common)
    check_record(one(recs, rid2), stream=False, **common)


# ------------------------------------------------------- requests, httpx

def test_python_requests(meter_daemon, project_dir):
    """python-requests: OpenAI chat (JSON), Responses (SSE) and Gemini
    :streamGenerateContent?alt=sse (CRLF framing)."""
    d = meter_daemon
    cwd = project_dir("proj-beta")
    k = key("proj")
    gk = "AIzaFake" + uuid.uuid4().hex
    ids = [tid(), tid(), tid()]
    auth = {"Authorization": "Bearer " + k}
    r1 = run_py(d, "requests", OPENAI + "/v1/chat/completions", cwd,
                body={"model": "gpt-5", "messages": [
                    {"role": "user", "content": "Say hello."}]},
                headers=dict(auth, **{"X-Test-Id": ids[0]}), tag="reqtag")
    assert r1["status"] == 200
    assert json.loads(r1["body"])["usage"]["prompt_tokens"] == 1500
    r2 = run_py(d, "requests", OPENAI + "/v1/responses", cwd,
                body={"model": "gpt-5-codex", "input": "Say hello.",
                      "stream": True},
                headers=dict(auth, **{"X-Test-Id": ids[1]}), tag="reqtag")
    assert r2["status"] == 200 and "response.completed" in r2["body"]
    r3 = run_py(d, "requests", GEMINI + "/v1beta/models/gemini-2.5-flash"
                ":streamGenerateContent?alt=sse", cwd,
                body={"contents": [{"parts": [{"text": "Say hello."}]}]},
                headers={"x-goog-api-key": gk, "X-Test-Id": ids[2]},
                tag="reqtag")
    assert r3["status"] == 200 and r3["body"].count("\r\n\r\n") == 3

    recs = wait_records(d, 3)
    common = dict(client="python-requests", client_version=r1["version"],
                  tag="reqtag", project="proj-beta", status=200, error=None)
    check_record(one(recs, ids[0]), provider="openai", kind="chat",
                 request_model="gpt-5", model="gpt-5-2025-08-07",
                 stream=False, key_fp=key_fp(k), **OPENAI_CHAT_JSON,
                 **common)
    check_record(one(recs, ids[1]), provider="openai", kind="responses",
                 request_model="gpt-5-codex",
                 model="gpt-5-codex-2025-08-07", stream=True,
                 key_fp=key_fp(k), **OPENAI_RESPONSES, **common)
    check_record(one(recs, ids[2]), provider="gemini",
                 kind="generate_content", request_model="gemini-2.5-flash",
                 model="gemini-2.5-flash-001", stream=True,
                 key_fp=key_fp(gk), **GEMINI_STREAM, **common)


def test_httpx(meter_daemon, project_dir):
    """httpx: Gemini JSON-array stream (no alt=sse), Gemini JSON, and an
    OpenAI chat stream without include_usage (usage_missing, no numbers
    invented)."""
    d = meter_daemon
    cwd = project_dir("proj-delta")
    gk = "AIzaFake" + uuid.uuid4().hex
    k = key("proj")
    ids = [tid(), tid(), tid()]
    r1 = run_py(d, "httpx", GEMINI + "/v1beta/models/gemini-2.5-pro"
                ":streamGenerateContent", cwd,
                body={"contents": [{"parts": [{"text": "Say hello."}]}]},
                headers={"x-goog-api-key": gk, "X-Test-Id": ids[0]},
                tag="hx")
    assert r1["status"] == 200
    assert len(json.loads(r1["body"])) == 3
    r2 = run_py(d, "httpx", GEMINI + "/v1beta/models/gemini-2.5-pro"
                ":generateContent", cwd,
                body={"contents": [{"parts": [{"text": "Say hello."}]}]},
                headers={"x-goog-api-key": gk, "X-Test-Id": ids[1]},
                tag="hx")
    assert r2["status"] == 200
    r3 = run_py(d, "httpx", OPENAI + "/v1/chat/completions", cwd,
                body={"model": "gpt-4o", "stream": True, "messages": [
                    {"role": "user", "content": "Say hello."}]},
                headers={"Authorization": "Bearer " + k,
                         "X-Test-Id": ids[2]}, tag="hx")
    assert r3["status"] == 200 and r3["body"].endswith("data: [DONE]\n\n")

    recs = wait_records(d, 3)
    common = dict(client="httpx", client_version=r1["version"], tag="hx",
                  project="proj-delta", status=200)
    gem = dict(provider="gemini", kind="generate_content",
               request_model="gemini-2.5-pro", model="gemini-2.5-pro-001",
               key_fp=key_fp(gk), error=None, **common)
    check_record(one(recs, ids[0]), stream=True, **GEMINI_STREAM, **gem)
    check_record(one(recs, ids[1]), stream=False, **GEMINI_JSON, **gem)
    check_record(one(recs, ids[2]), provider="openai", kind="chat",
                 request_model="gpt-4o", model="gpt-4o-2025-08-07",
                 stream=True, error="usage_missing", key_fp=key_fp(k),
                 **NO_TOKENS, **common)


# ------------------------------------------------------ official Node SDKs

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_node_anthropic_sdk(meter_daemon, project_dir, meter_upstream,
                            stream):
    """@anthropic-ai/sdk messages.create, non-streaming and streaming (the
    SDK's fetch asks for gzip)."""
    d = meter_daemon
    cwd = project_dir("proj-gamma")
    k = "sk-ant-api03-" + uuid.uuid4().hex
    rid = tid()
    res = run_sdk(d, {"sdk": "anthropic", "stream": stream, "apiKey": k,
                      "model": "claude-sonnet-4-5", "tag": "sdktag",
                      "headers": {"X-Test-Id": rid}}, cwd)
    want = ANTHROPIC_SSE if stream else ANTHROPIC_JSON
    # The SDK parsed the same numbers through the proxy.
    assert res["usage"]["input_tokens"] == want["input_tokens"], res
    assert res["usage"]["output_tokens"] == want["output_tokens"], res
    assert res["model"] == "claude-sonnet-4-5-20250929"
    # undici's fetch asks for gzip: the meter decoded the gzip'd answer.
    assert "gzip" in sent(meter_upstream, rid).header("Accept-Encoding", "")
    r = one(wait_records(d, 1), rid)
    check_record(r, provider="anthropic", kind="messages",
                 request_model="claude-sonnet-4-5",
                 model="claude-sonnet-4-5-20250929", stream=stream,
                 client="anthropic-sdk-ts",
                 client_version=sdk_version("@anthropic-ai/sdk"),
                 tag="sdktag", project="proj-gamma", key_fp=key_fp(k),
                 status=200, error=None, **want)
    assert r["process"] == "node", r["process"]


def test_node_openai_sdk(meter_daemon, project_dir):
    """openai: chat.completions stream with stream_options.include_usage,
    and responses (stream and not)."""
    d = meter_daemon
    cwd = project_dir("proj-omega")
    k = "sk-proj-" + uuid.uuid4().hex
    ids = [tid(), tid(), tid()]
    res = run_sdk(d, {"sdk": "openai-chat", "stream": True, "apiKey": k,
                      "model": "gpt-5", "tag": "oa",
                      "headers": {"X-Test-Id": ids[0]}}, cwd)
    assert res["usage"]["prompt_tokens"] == 900, res
    res = run_sdk(d, {"sdk": "openai-responses", "stream": True,
                      "apiKey": k, "model": "gpt-5", "tag": "oa",
                      "headers": {"X-Test-Id": ids[1]}}, cwd)
    assert res["usage"]["input_tokens"] == 3000, res
    res = run_sdk(d, {"sdk": "openai-responses", "stream": False,
                      "apiKey": k, "model": "gpt-5", "tag": "oa",
                      "headers": {"X-Test-Id": ids[2]}}, cwd)
    assert res["usage"]["output_tokens"] == 400, res

    recs = wait_records(d, 3)
    common = dict(provider="openai", request_model="gpt-5",
                  model="gpt-5-2025-08-07", client="openai-sdk-ts",
                  client_version=sdk_version("openai"), tag="oa",
                  project="proj-omega", key_fp=key_fp(k), status=200,
                  error=None)
    check_record(one(recs, ids[0]), kind="chat", stream=True,
                 **OPENAI_CHAT_SSE, **common)
    check_record(one(recs, ids[1]), kind="responses", stream=True,
                 **OPENAI_RESPONSES, **common)
    check_record(one(recs, ids[2]), kind="responses", stream=False,
                 **OPENAI_RESPONSES, **common)


def test_node_genai_sdk(meter_daemon, project_dir):
    """@google/genai generateContent and generateContentStream (SSE)."""
    d = meter_daemon
    cwd = project_dir("proj-gemini")
    gk = "AIzaFake" + uuid.uuid4().hex
    ids = [tid(), tid()]
    res = run_sdk(d, {"sdk": "genai", "stream": False, "apiKey": gk,
                      "model": "gemini-2.5-flash",
                      "headers": {"X-Test-Id": ids[0]}}, cwd)
    assert res["usage"]["thoughtsTokenCount"] == 12, res
    res = run_sdk(d, {"sdk": "genai", "stream": True, "apiKey": gk,
                      "model": "gemini-2.5-flash", "tag": "gg",
                      "headers": {"X-Test-Id": ids[1]}}, cwd)
    assert res["usage"]["candidatesTokenCount"] == 45, res

    recs = wait_records(d, 2)
    common = dict(provider="gemini", kind="generate_content",
                  request_model="gemini-2.5-flash",
                  model="gemini-2.5-flash-001", client="google-genai-sdk",
                  client_version=sdk_version("@google/genai"),
                  project="proj-gemini", key_fp=key_fp(gk), status=200,
                  error=None)
    check_record(one(recs, ids[0]), stream=False, tag=None, **GEMINI_JSON,
                 **common)
    check_record(one(recs, ids[1]), stream=True, tag="gg", **GEMINI_STREAM,
                 **common)
