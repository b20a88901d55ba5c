#!/bin/sh
# Installs what halton-meter needs to build and test, if it is missing:
# apt-get on Debian/Ubuntu, dnf on Fedora, brew on macOS.  Idempotent and
# quiet when everything is present; says what it installs.
set -eu

DEB_PKGS="build-essential pkg-config clang libclang-rt-14-dev libssl-dev
libevent-dev libsqlite3-dev libcjson-dev zlib1g-dev libbrotli-dev
libzstd-dev python3 python3-pytest python3-requests python3-httpx
python3-cryptography curl openssl nodejs npm sqlite3 git chromium"
RPM_PKGS="gcc make pkgconf-pkg-config clang compiler-rt openssl-devel
libevent-devel sqlite-devel cjson-devel zlib-devel brotli-devel libzstd-devel
python3 python3-pytest python3-requests python3-httpx python3-cryptography
curl openssl nodejs npm sqlite git"
BREW_PKGS="pkg-config openssl@3 libevent sqlite cjson brotli zstd python
node"

missing=""
if [ "$(uname -s)" = Darwin ]; then
	command -v brew >/dev/null 2>&1 || {
		echo "deps: Homebrew is needed on macOS (https://brew.sh)" >&2
		exit 1
	}
	for p in $BREW_PKGS; do
		brew list --versions "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "deps: installing with brew:$missing"
		brew install $missing
	fi
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if command -v dpkg-query >/dev/null 2>&1; then
	for p in $DEB_PKGS; do
		# nodejs may come from elsewhere (nvm, NodeSource): accept a node.
		case $p in
		nodejs) command -v node >/dev/null 2>&1 && continue ;;
		npm) command -v npm >/dev/null 2>&1 && continue ;;
		esac
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		[ "$st" = "install ok installed" ] || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "deps: installing with apt-get:$missing"
		export DEBIAN_FRONTEND=noninteractive
		$SUDO apt-get update -qq >/dev/null
		$SUDO apt-get install -y -qq --no-install-recommends $missing \
		    >/dev/null
	fi
elif command -v dnf >/dev/null 2>&1; then
	for p in $RPM_PKGS; do
		rpm -q "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "deps: installing with dnf:$missing"
		$SUDO dnf install -y -q $missing
	fi
else
	echo "deps: unknown system; install by hand: $DEB_PKGS" >&2
	exit 1
fi
