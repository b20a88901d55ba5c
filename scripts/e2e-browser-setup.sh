#!/bin/sh
# Installs what tests/e2e/test_dashboard_browser.py needs: Debian's
# Chromium (/usr/bin/chromium), driven headless over the DevTools protocol
# by tests/e2e/browser/cdp.py (Python standard library only).  Run as root
# (or with sudo available); does nothing when chromium is already there.
set -eu

if command -v chromium >/dev/null 2>&1; then
	chromium --version
	exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y \
    --no-install-recommends chromium
chromium --version
