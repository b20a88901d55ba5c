#!/bin/sh
# instr.sh: instructions the daemon executes per intercepted request,
# counted by valgrind's callgrind.  Unlike CPU time this does not move with
# what else the machine is doing, so two builds compare exactly (it does not
# see cache misses or the kernel: the bench measures those).
#
#   scripts/instr.sh [-n N] [-c C] [--top K] [BIN]
#
# Starts tools/upstream and BIN (default ./halton-meter) under callgrind in
# a temp dir, sends 200 warm-up requests on one connection, zeroes the
# counters, sends N (default 2000) SSE POSTs at concurrency C (default 1),
# and prints instructions per request and the K (default 25) functions of
# halton-meter with the most inclusive instructions.  With C > 1 the count
# includes the C new connections' TLS handshakes (both sides).
# INSTR_LG_ARGS adds loadgen options to the measured run: --new-conn
# counts a fresh connection (CONNECT, TLS handshake) per request.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=2000 C=1 TOP=25 BIN=$ROOT/halton-meter
while [ $# -gt 0 ]; do
	case $1 in
	-n) N=$2; shift ;;
	-c) C=$2; shift ;;
	--top) TOP=$2; shift ;;
	-*) echo "usage: $0 [-n N] [-c C] [--top K] [BIN]" >&2; exit 2 ;;
	*) BIN=$1 ;;
	esac
	shift
done
TOOLS=${HALTON_METER_TOOLS:-$ROOT/build/tools}
for f in "$BIN" "$TOOLS/loadgen" "$TOOLS/upstream"; do
	[ -x "$f" ] || { echo "instr: $f missing (make all tools)" >&2; exit 2; }
done
for c in valgrind callgrind_control callgrind_annotate openssl; do
	command -v $c >/dev/null || { echo "instr: $c missing" >&2; exit 2; }
done

T=$(mktemp -d /tmp/halton-instr.XXXXXX)
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/ca.key" -out "$T/ca.pem" -days 2 -subj "/CN=instr CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/leaf.key" -out "$T/leaf.csr" -subj "/CN=api.anthropic.com" \
    2>/dev/null &&
printf '%s\n' "subjectAltName=DNS:api.anthropic.com" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >"$T/leaf.ext" &&
openssl x509 -req -in "$T/leaf.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
    -CAcreateserial -out "$T/leaf.pem" -days 2 -extfile "$T/leaf.ext" \
    2>/dev/null || { echo "instr: openssl failed" >&2; exit 2; }

"$TOOLS/upstream" --cert "$T/leaf.pem" --key "$T/leaf.key" \
    --port-file "$T/up.port" >"$T/up.log" 2>&1 &
PIDS="$PIDS $!"
for i in $(seq 1 100); do [ -s "$T/up.port" ] && break; sleep 0.05; done
UPORT=$(cat "$T/up.port")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/home/.halton-meter"
printf 'log_level = warn\n' >"$T/home/.halton-meter/config"
HOME=$T/home valgrind --tool=callgrind --callgrind-out-file="$T/cg.out" \
    "$BIN" daemon --foreground --listen "127.0.0.1:$PORT" \
    --connect-to "::127.0.0.1:$UPORT" --upstream-ca "$T/ca.pem" \
    >"$T/daemon.log" 2>&1 &
VG=$!
PIDS="$PIDS $VG"
for i in $(seq 1 200); do
	[ -s "$T/home/.halton-meter/ca.pem" ] &&
	    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
	sleep 0.1
done
LG() {
	"$TOOLS/loadgen" --proxy "127.0.0.1:$PORT" \
	    --ca "$T/home/.halton-meter/ca.pem" --target api.anthropic.com:443 \
	    --sni api.anthropic.com --path sse --timeout 600 "$@" >/dev/null
}
LG -n 200 -c 1 || { echo "instr: warm-up failed" >&2; cat "$T/daemon.log" >&2; exit 1; }
sleep 1
callgrind_control -z $VG >/dev/null 2>&1
LG -n "$N" -c "$C" ${INSTR_LG_ARGS:-} || { echo "instr: run failed" >&2; exit 1; }
sleep 1
callgrind_control -d $VG >/dev/null 2>&1
for i in $(seq 1 100); do [ -s "$T/cg.out.1" ] && break; sleep 0.1; done
TOT=$(callgrind_annotate "$T/cg.out.1" 2>/dev/null |
    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "instr: $($BIN --version 2>/dev/null | head -1): $N requests at C=$C"
echo "instructions per request: $((TOT / N))"
echo "top functions (inclusive instructions per request):"
callgrind_annotate --inclusive=yes "$T/cg.out.1" 2>/dev/null |
    awk -v n="$N" '/\[.*halton-meter\]$/ && $1 ~ /^[0-9,]+$/ {
	    v = $1; gsub(",", "", v); f = $0
	    sub(/^[^)]*\) +/, "", f); sub(/ \[.*$/, "", f); sub(/^.*:/, "", f)
	    if (f == "main" || f == "daemon_exec" || f ~ /below main/) next
	    printf "  %9d  %s\n", v / n, f }' | head -"$TOP"
