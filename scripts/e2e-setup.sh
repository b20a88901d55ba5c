#!/bin/sh
# Installs what the end-to-end tests need beyond Debian packages: the
# official Node SDKs the metering tests drive (tests/e2e/clients/sdk,
# pinned by its package-lock.json, from the npm registry).  Idempotent and
# quiet: does nothing when node_modules is already there.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
sdk="$here/tests/e2e/clients/sdk"

if [ -d "$sdk/node_modules/@anthropic-ai/sdk" ] &&
    [ -d "$sdk/node_modules/openai" ] &&
    [ -d "$sdk/node_modules/@google/genai" ] &&
    [ -d "$sdk/node_modules/undici" ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "e2e-setup: npm is required (Debian: apt-get install npm)" >&2
	exit 1
fi
cd "$sdk"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
