#!/usr/bin/env python3
"""Builds halton-meter's price table and its compiled-in copy.

  gen-prices.py import LITELLM.json > share/prices.json
      Selects the models halton-meter ships a price for from LiteLLM's
      model_prices_and_context_window.json (or a subset of it with the same
      keys) and keeps only the cost fields halton-meter reads.

  gen-prices.py embed NAME FILE > OUT.c
      The same for any file under the symbol NAME (NAME_len holds the
      size): src/store/dashboard-page.c embeds src/store/dashboard.html as
      dashboard_page_html.

  gen-prices.py c share/prices.json > src/store/prices-data.c
      Writes the compiled-in fallback copy: the file's bytes as a C array.
      tests/unit/test-prices.c checks that the two are identical, so run
      this after every edit of share/prices.json.

Only the Python standard library is used; the build never runs this script.
"""
import json
import sys

# LiteLLM key -> key in share/prices.json (None: same key).  Dated Claude ids
# whose undated alias LiteLLM lacks get one; others are found through date
# stripping (docs/prices.md).
SELECT = {
    "claude-opus-4-1": None,
    "claude-opus-4-20250514": "claude-opus-4",
    "claude-opus-4-5": None,
    "claude-opus-4-6": None,
    "claude-opus-4-7": None,
    "claude-opus-4-8": None,
    "claude-opus-5": None,
    "claude-sonnet-4-20250514": "claude-sonnet-4",
    "claude-sonnet-4-5": None,
    "claude-sonnet-4-6": None,
    "claude-sonnet-5": None,
    "claude-haiku-4-5": None,
    "claude-3-7-sonnet-20250219": "claude-3-7-sonnet",
    "gpt-4o": None,
    "gpt-4o-mini": None,
    "gpt-4.1": None,
    "gpt-4.1-mini": None,
    "gpt-4.1-nano": None,
    "gpt-5": None,
    "gpt-5-mini": None,
    "gpt-5-nano": None,
    "gpt-5-codex": None,
    "gpt-5.1": None,
    "gpt-5.1-codex": None,
    "gpt-5.1-codex-max": None,
    "gpt-5.2": None,
    "gpt-5.3-codex": None,
    "gpt-5.4": None,
    "gpt-5.5": None,
    "o1": None,
    "o3": None,
    "o3-mini": None,
    "o4-mini": None,
    "gemini/gemini-2.5-pro": "gemini-2.5-pro",
    "gemini/gemini-2.5-flash": "gemini-2.5-flash",
    "gemini/gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
    "gemini/gemini-3-pro-preview": "gemini-3-pro-preview",
    "gemini/gemini-3-flash-preview": "gemini-3-flash-preview",
    "deepseek/deepseek-chat": "deepseek-chat",
    "deepseek/deepseek-reasoner": "deepseek-reasoner",
    "xai/grok-4": "grok-4",
    "mistral/mistral-small-latest": "mistral-small-latest",
    "groq/llama-3.3-70b-versatile": None,
    "openrouter/anthropic/claude-sonnet-4.5": None,
    "anthropic.claude-sonnet-4-5-20250929-v1:0": None,
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": None,
}

# Dated ids that must price exactly like their undated key (checked).
SAME_AS = {
    "claude-opus-4-1-20250805": "claude-opus-4-1",
    "claude-opus-4-5-20251101": "claude-opus-4-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
    "claude-haiku-4-5-20251001": "claude-haiku-4-5",
}

# Input/output prices (USD per 1M tokens) of hosted models that are not in
# the LiteLLM subset above, as LiteLLM lists them (taken from a public
# digest of LiteLLM's table dated 2026-04-21).  No cache prices are known.
EXTRA_PER_MTOK = {
    "xai/grok-code-fast-1": ("xai", 0.2, 1.5),
    "xai/grok-4-fast-reasoning": ("xai", 0.2, 0.5),
    "xai/grok-4-fast-non-reasoning": ("xai", 0.2, 0.5),
    "xai/grok-3": ("xai", 3.0, 15.0),
    "xai/grok-3-mini": ("xai", 0.3, 0.5),
    "fireworks_ai/accounts/fireworks/models/llama-v3p3-70b-instruct":
        ("fireworks_ai", 0.9, 0.9),
    "fireworks_ai/accounts/fireworks/models/deepseek-v3p1":
        ("fireworks_ai", 0.56, 1.68),
    "fireworks_ai/accounts/fireworks/models/kimi-k2-instruct":
        ("fireworks_ai", 0.6, 2.5),
    "fireworks_ai/accounts/fireworks/models/kimi-k2-instruct-0905":
        ("fireworks_ai", 0.6, 2.5),
    "fireworks_ai/accounts/fireworks/models/gpt-oss-120b":
        ("fireworks_ai", 0.15, 0.6),
    "fireworks_ai/accounts/fireworks/models/gpt-oss-20b":
        ("fireworks_ai", 0.05, 0.2),
    "fireworks_ai/accounts/fireworks/models/glm-4p6":
        ("fireworks_ai", 0.55, 2.19),
    "fireworks_ai/accounts/fireworks/models/qwen2p5-coder-32b-instruct":
        ("fireworks_ai", 0.9, 0.9),
    "together_ai/openai/gpt-oss-20b": ("together_ai", 0.05, 0.2),
    "together_ai/zai-org/glm-4.6": ("together_ai", 0.6, 2.2),
    "together_ai/zai-org/glm-4.7": ("together_ai", 0.45, 2.0),
    "together_ai/zai-org/glm-4.5-air-fp8": ("together_ai", 0.2, 1.1),
}

BASES = ("input_cost_per_token", "output_cost_per_token",
         "cache_read_input_token_cost", "cache_creation_input_token_cost",
         "cache_creation_input_token_cost_above_1hr")


def wanted(field):
    if field == "litellm_provider":
        return True
    for b in BASES:
        if field == b or field == b + "_batches":
            return True
        if field.startswith(b + "_above_") and field.endswith("k_tokens"):
            mid = field[len(b) + 7:-8]
            if mid.isdigit():
                return True
    return False


def do_import(path):
    src = json.load(open(path))
    out = {
        "_comment": "halton-meter price table: USD per token, LiteLLM "
                    "field names. Overrides go in ~/.halton-meter/"
                    "prices.json (same format). See docs/prices.md.",
        "_source": "LiteLLM model_prices_and_context_window.json, mirror "
                   "commit %s (%s); extra hosted models: LiteLLM input/"
                   "output prices of 2026-04-21" % (
                       src.get("_provenance", {}).get("commit", "?"),
                       src.get("_provenance", {}).get("last_updated", "?")),
    }
    for dated, undated in SAME_AS.items():
        a = {k: v for k, v in src[dated].items() if wanted(k)}
        b = {k: v for k, v in src[undated].items() if wanted(k)}
        if a != b:
            sys.exit("%s differs from %s" % (dated, undated))
    for key, name in SELECT.items():
        e = src[key]
        out[name or key] = {k: e[k] for k in sorted(e) if wanted(k)}
    for key, (prov, i, o) in EXTRA_PER_MTOK.items():
        out[key] = {"input_cost_per_token": round(i * 1e-6, 12),
                    "litellm_provider": prov,
                    "output_cost_per_token": round(o * 1e-6, 12)}
    sys.stdout.write(json.dumps(out, indent=1) + "\n")


def do_c(path):
    data = open(path, "rb").read()
    w = sys.stdout.write
    w("/* Generated by tools/gen-prices.py from share/prices.json: do not "
      "edit. */\n")
    w("#include <stddef.h>\n\n#include \"prices-data.h\"\n\n")
    w("const unsigned char prices_builtin_json[] = {\n")
    for i in range(0, len(data), 12):
        w("\t" + " ".join("0x%02x," % c for c in data[i:i + 12]) + "\n")
    w("};\nconst size_t prices_builtin_json_len = %d;\n" % len(data))


def do_embed(name, path):
    data = open(path, "rb").read()
    w = sys.stdout.write
    w("/* Generated by tools/gen-prices.py embed from %s: do not edit. */\n"
      % path)
    w("#include <stddef.h>\n\n")
    w("extern const unsigned char %s[];\nextern const size_t %s_len;\n\n"
      % (name, name))
    w("const unsigned char %s[] = {\n" % name)
    for i in range(0, len(data), 12):
        w("\t" + " ".join("0x%02x," % c for c in data[i:i + 12]) + "\n")
    w("};\nconst size_t %s_len = %d;\n" % (name, len(data)))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "embed":
        do_embed(sys.argv[2], sys.argv[3])
    elif len(sys.argv) != 3 or sys.argv[1] not in ("import", "c"):
        sys.exit(__doc__)
    else:
        (do_import if sys.argv[1] == "import" else do_c)(sys.argv[2])
