#!/bin/sh
# bench.sh: halton-meter side by side with a direct connection and (when
# installed) mitmproxy's mitmdump and Squid with ssl_bump.  See
# docs/PERFORMANCE.md for the method and the figures (a)-(h).
#
#   scripts/bench.sh [--smoke] [--peers] [--runs N] [--out FILE]
#
# --smoke   one short run of every figure (< 30 s); exit 1 if any request
#           fails (CI: make bench-smoke)
# --peers   apt-get install mitmproxy and squid-openssl first
# Binaries: $HALTON_METER_BIN (default ./halton-meter) and
# $HALTON_METER_TOOLS (default ./build/tools: loadgen, upstream); make bench
# builds them.  Nothing is written outside a temp dir except the results
# file (bench/results/DATE.md, or --out; the smoke run only prints).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Under make, BIN and BUILD given on its command line reach us too.
MKBIN=
[ -n "${MAKELEVEL:-}" ] && MKBIN=${BIN:-}
BIN=${HALTON_METER_BIN:-${MKBIN:-$ROOT/halton-meter}}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
TOOLS=${HALTON_METER_TOOLS:-$ROOT/${BUILD:-build}/tools}
LG=$TOOLS/loadgen
UP=$TOOLS/upstream
PY=/usr/bin/python3
[ -x $PY ] || PY=python3

SMOKE=0 PEERS=0 RUNS=5 OUT=
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) SMOKE=1 ;;
	--peers) PEERS=1 ;;
	--runs) RUNS=$2; shift ;;
	--out) OUT=$2; shift ;;
	*) echo "usage: $0 [--smoke] [--peers] [--runs N] [--out FILE]" >&2
	   exit 2 ;;
	esac
	shift
done
for f in "$BIN" "$LG" "$UP"; do
	[ -x "$f" ] || { echo "bench: $f missing (run make bench)" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "bench: openssl CLI missing" >&2; exit 2; }

if [ $PEERS = 1 ]; then
	echo "bench: installing the peers (mitmproxy, squid-openssl)" >&2
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
	    --no-install-recommends mitmproxy squid-openssl >&2 ||
	    echo "bench: peer install failed; measuring without them" >&2
fi

# Sizes: full run, or the smoke run.
if [ $SMOKE = 1 ]; then
	RUNS=1 NSMALL=200 NFRESH=20 NBIG=3 NDRIB=1 NHOLD=50 NMINT=100
	HOLDMAX=20
else
	NSMALL=2000 NFRESH=200 NBIG=20 NDRIB=2 NHOLD=1000 NMINT=1000
	HOLDMAX=240
fi
ulimit -n 65536 2>/dev/null || ulimit -n 20000 2>/dev/null || true

T=$(mktemp -d /tmp/halton-bench.XXXXXX)
chmod 755 "$T"
PIDS=
cleanup() {
	local p i
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for i in $(seq 1 40); do
		alive=
		for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Certificates: a test CA and one EC P-256 leaf for every name we serve.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/testca.key" -out "$T/testca.pem" -days 7 \
    -subj "/CN=halton-meter bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/leaf.key" -out "$T/leaf.csr" -subj "/CN=api.anthropic.com" \
    2>/dev/null &&
printf '%s\n' \
    "subjectAltName=DNS:api.anthropic.com,DNS:bench.tunnel.test,DNS:*.bench.test,IP:127.0.0.1" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" >"$T/leaf.ext" &&
openssl x509 -req -in "$T/leaf.csr" -CA "$T/testca.pem" \
    -CAkey "$T/testca.key" -CAcreateserial -out "$T/leaf.pem" -days 7 \
    -extfile "$T/leaf.ext" 2>/dev/null || { echo "bench: openssl failed" >&2; exit 2; }

wait_port() { # port [seconds]
	local i
	for i in $(seq 1 $((${2:-10} * 20))); do
		(exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# A process and its descendants.
tree() {
	local c
	echo "$1"
	for c in $(pgrep -P "$1" 2>/dev/null); do tree "$c"; done
}
# CPU time (ns) of a process tree: scheduler run time of every thread
# (/proc/PID/task/TID/schedstat, ns resolution) plus the reaped children's
# utime+stime of the root (/proc/PID/stat fields 16-17, in ticks).
cpu_ns() {
	local total=0 p t v rest tck
	tck=$(getconf CLK_TCK)
	for p in $(tree "$1"); do
		for t in /proc/$p/task/*/schedstat; do
			read -r v rest <"$t" 2>/dev/null && total=$((total + v))
		done
	done
	rest=$(cat /proc/$1/stat 2>/dev/null) || { echo $total; return; }
	set -- ${rest##*) }
	echo $((total + (${14} + ${15}) * 1000000000 / tck))
}
# VmRSS (KiB) of a process tree (or another /proc/PID/status field, $2).
rss_kib() {
	local total=0 p v
	for p in $(tree "$1"); do
		v=$(awk -v f="^${2:-VmRSS}:" '$0 ~ f {print $2}' \
		    /proc/$p/status 2>/dev/null)
		total=$((total + ${v:-0}))
	done
	echo $total
}

# The upstream.
"$UP" --cert "$T/leaf.pem" --key "$T/leaf.key" --port-file "$T/up.port" \
    >"$T/upstream.log" 2>&1 &
PIDS="$PIDS $!"
for i in $(seq 1 100); do [ -s "$T/up.port" ] && break; sleep 0.05; done
UPORT=$(cat "$T/up.port" 2>/dev/null) || { echo "bench: upstream did not start" >&2; exit 2; }

# Proxy instances.  Each start_* function starts one instance named $1 in
# $T/$1 and sets NPID, NPORT and NCA (the CA file its clients trust), or
# returns 1.  The main instances serve figures (a)-(e) and (g); every hold
# run of (f) gets a fresh instance, so that memory an earlier run freed
# (but the allocator kept) does not hide the cost of new connections.

# halton-meter with a temp HOME; *.bench.test is intercepted (leaf minting)
# and every name is sent to the upstream (--connect-to with an empty host).
start_hm() {
	mkdir -p "$T/$1/.halton-meter"
	printf 'intercept = *.bench.test\nlog_level = warn\n' \
	    >"$T/$1/.halton-meter/config"
	NPORT=$(free_port)
	HOME=$T/$1 "$BIN" daemon --foreground --listen 127.0.0.1:$NPORT \
	    --connect-to "::127.0.0.1:$UPORT" --upstream-ca "$T/testca.pem" \
	    >"$T/$1.log" 2>&1 &
	NPID=$!
	PIDS="$PIDS $NPID"
	NCA=$T/$1/.halton-meter/ca.pem
	if ! wait_port $NPORT 10; then
		echo "bench: daemon did not start" >&2
		cat "$T/$1.log" >&2
		return 1
	fi
	sleep 0.3
}

# mitmdump: CONNECT to the upstream's address, SNI api.anthropic.com.
start_mitm() {
	NPORT=$(free_port)
	mitmdump -q --listen-host 127.0.0.1 --listen-port $NPORT \
	    --set confdir="$T/$1" --set stream_large_bodies=1 \
	    --set ssl_verify_upstream_trusted_ca="$T/testca.pem" \
	    --set connection_strategy=lazy >"$T/$1.log" 2>&1 &
	NPID=$!
	PIDS="$PIDS $NPID"
	NCA=$T/$1/mitmproxy-ca-cert.pem
	if ! wait_port $NPORT 30 || ! [ -s "$NCA" ]; then
		echo "bench: mitmdump did not start" >&2
		tail -n 5 "$T/$1.log" >&2
		return 1
	fi
	sleep 0.5
}

# Squid with ssl_bump (peek at the SNI, then bump), persistent upstream
# connections, no cache, no access log.  Squid pins a bumped connection to
# the CONNECT host name, so it is given names, resolved by a hosts file.
SQUID=$(command -v squid || ls /usr/sbin/squid 2>/dev/null)
CERTGEN=/usr/lib/squid/security_file_certgen
start_squid() {
	local d=$T/$1 i
	mkdir -p "$d"
	if ! [ -s "$T/squid-ca.pem" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$T/squid-ca.key" -out "$T/squid-ca.pem" \
		    -days 7 -subj "/CN=squid bench CA" \
		    -addext "basicConstraints=critical,CA:TRUE" \
		    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		chmod 644 "$T/squid-ca.key"
	fi
	$CERTGEN -c -s "$d/ssl_db" -M 16MB >/dev/null 2>&1
	{
		echo "127.0.0.1 api.anthropic.com bench.tunnel.test"
		for i in $(seq 0 $((RUNS * NFRESH + 10))); do
			echo "127.0.0.1 c$i.bench.test"
		done
	} >"$d/hosts"
	NPORT=$(free_port)
	{
		echo "http_port 127.0.0.1:$NPORT ssl-bump" \
		    "generate-host-certificates=on" \
		    "dynamic_cert_mem_cache_size=16MB" \
		    "tls-cert=$T/squid-ca.pem tls-key=$T/squid-ca.key"
		echo "sslcrtd_program $CERTGEN -s $d/ssl_db -M 16MB"
		echo "sslcrtd_children 4 startup=1 idle=1"
		echo "acl step1 at_step SslBump1"
		echo "ssl_bump peek step1"
		echo "ssl_bump bump all"
		echo "tls_outgoing_options cafile=$T/testca.pem"
		echo "http_access allow all"
		echo "cache deny all"
		echo "cache_mem 8 MB"
		echo "access_log none"
		echo "cache_store_log none"
		echo "cache_log $d/cache.log"
		echo "pid_filename $d/squid.pid"
		echo "coredump_dir $d"
		echo "server_persistent_connections on"
		echo "client_persistent_connections on"
		echo "shutdown_lifetime 1 seconds"
		echo "max_filedescriptors 8192"
		echo "workers 1"
		echo "hosts_file $d/hosts"
	} >"$d/squid.conf"
	chown -R proxy:proxy "$d" 2>/dev/null
	"$SQUID" -N -f "$d/squid.conf" >"$d/out.log" 2>&1 &
	NPID=$!
	PIDS="$PIDS $NPID"
	NCA=$T/squid-ca.pem
	if ! wait_port $NPORT 20; then
		echo "bench: squid did not start" >&2
		tail -n 5 "$d/cache.log" "$d/out.log" >&2
		return 1
	fi
	sleep 1
}

# Stops an instance started by start_*.
stop_instance() {
	local i
	kill "$1" 2>/dev/null
	for i in $(seq 1 50); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# Targets: proxy address, CONNECT target, SNI, CA, proxy pid, and the
# CONNECT target and SNI for new host names; KIND: the start_* function.
TARGETS="direct"
declare -A TPROXY TTGT TSNI TCA TPID TCOLD TCOLDSNI KIND
TPROXY[direct]= TTGT[direct]=127.0.0.1:$UPORT TSNI[direct]=api.anthropic.com
TCA[direct]=$T/testca.pem TPID[direct]=
TCOLD[direct]=127.0.0.1:$UPORT TCOLDSNI[direct]=c%d.bench.test

start_hm hm || exit 2
TARGETS="$TARGETS hm-int hm-tun"
TPROXY[hm-int]=127.0.0.1:$NPORT TTGT[hm-int]=api.anthropic.com:443
TSNI[hm-int]=api.anthropic.com TCA[hm-int]=$NCA TPID[hm-int]=$NPID
TCOLD[hm-int]=c%d.bench.test:443 TCOLDSNI[hm-int]=c%d.bench.test
TPROXY[hm-tun]=127.0.0.1:$NPORT TTGT[hm-tun]=bench.tunnel.test:443
TSNI[hm-tun]=bench.tunnel.test TCA[hm-tun]=$T/testca.pem TPID[hm-tun]=$NPID
TCOLD[hm-tun]=bench.tunnel.test:443 TCOLDSNI[hm-tun]=bench.tunnel.test
KIND[hm-int]=start_hm KIND[hm-tun]=start_hm

# The smoke run checks our own code only (CI has no peers, and < 30 s).
USE_PEERS=1
[ $SMOKE = 1 ] && [ -z "${BENCH_SMOKE_PEERS:-}" ] && USE_PEERS=0
if [ $USE_PEERS = 1 ] && command -v mitmdump >/dev/null &&
    start_mitm mitm; then
	TARGETS="$TARGETS mitm"
	TPROXY[mitm]=127.0.0.1:$NPORT TTGT[mitm]=127.0.0.1:$UPORT
	TSNI[mitm]=api.anthropic.com TCA[mitm]=$NCA TPID[mitm]=$NPID
	TCOLD[mitm]=127.0.0.1:$UPORT TCOLDSNI[mitm]=c%d.bench.test
	KIND[mitm]=start_mitm
fi
if [ $USE_PEERS = 1 ] && [ -n "$SQUID" ] && [ -x $CERTGEN ] &&
    start_squid squid; then
	TARGETS="$TARGETS squid"
	TPROXY[squid]=127.0.0.1:$NPORT TTGT[squid]=api.anthropic.com:$UPORT
	TSNI[squid]=api.anthropic.com TCA[squid]=$NCA TPID[squid]=$NPID
	TCOLD[squid]=c%d.bench.test:$UPORT TCOLDSNI[squid]=c%d.bench.test
	KIND[squid]=start_squid
fi

# BENCH_TARGETS="direct hm-int ..." restricts the targets measured.
if [ -n "${BENCH_TARGETS:-}" ]; then
	keep=
	for tg in $TARGETS; do
		case " $BENCH_TARGETS " in *" $tg "*) keep="$keep $tg" ;; esac
	done
	TARGETS=${keep# }
fi

JSONL=$T/results.jsonl
FAIL=0
IDX=0

# One loadgen run against a target; appends a JSON line with the proxy's
# CPU (ns) over the run.  Usage: run FIG TARGET RUN loadgen-args...
run() {
	local fig=$1 tg=$2 r=$3 pid=${TPID[$2]} c0=0 c1=0 out rc
	shift 3
	[ -n "$pid" ] && c0=$(cpu_ns $pid)
	out=$("$LG" ${TPROXY[$tg]:+--proxy ${TPROXY[$tg]}} --ca "${TCA[$tg]}" \
	    --timeout 120 "$@" 2>>"$T/loadgen.err")
	rc=$?
	[ -n "$pid" ] && c1=$(cpu_ns $pid)
	if [ $rc != 0 ] || [ -z "$out" ]; then
		FAIL=1
		echo "bench: $fig $tg run $r: loadgen failed: ${out:-no output}" >&2
		[ -n "$out" ] || return
	fi
	echo "{\"fig\":\"$fig\",\"target\":\"$tg\",\"run\":$r,\"cpu_ns\":$((c1 - c0)),\"lg\":$out}" >>"$JSONL"
}

# (f): a fresh instance of the target's proxy: RSS at start (idle), after
# one request, and while K connections are held (one request done on each).
hold() {
	local tg=$1 r=$2 idle anon warm during lgpid out i tgt
	${KIND[$tg]} "hold-$tg-$r" || { FAIL=1; return; }
	tgt=${TTGT[$tg]}
	case $tg in hm-tun) NCA=$T/testca.pem ;; esac
	idle=$(rss_kib $NPID)
	anon=$(rss_kib $NPID RssAnon)
	"$LG" --proxy 127.0.0.1:$NPORT --ca "$NCA" --target $tgt \
	    --sni ${TSNI[$tg]} -n 1 >/dev/null 2>>"$T/loadgen.err" || FAIL=1
	sleep 0.2
	warm=$(rss_kib $NPID)
	"$LG" --proxy 127.0.0.1:$NPORT --ca "$NCA" --target $tgt \
	    --sni ${TSNI[$tg]} --hold $NHOLD --hold-secs 30 \
	    --timeout $HOLDMAX --label hold >"$T/hold.out" 2>>"$T/loadgen.err" &
	lgpid=$!
	for i in $(seq 1 $((HOLDMAX * 10 + 50))); do
		[ -s "$T/hold.out" ] && break
		kill -0 $lgpid 2>/dev/null || break
		sleep 0.1
	done
	sleep 0.5
	during=$(rss_kib $NPID)
	kill $lgpid 2>/dev/null
	wait $lgpid 2>/dev/null
	stop_instance $NPID
	out=$(head -n 1 "$T/hold.out")
	if [ -z "$out" ] || ! grep -q '"errors":0' "$T/hold.out"; then
		FAIL=1
		echo "bench: hold $tg run $r failed: ${out:-no output}" >&2
		[ -n "$out" ] || return
	fi
	echo "{\"fig\":\"f-hold\",\"target\":\"$tg\",\"run\":$r,\"rss_idle\":$idle,\"rss_idle_anon\":${anon:-0},\"rss_before\":$warm,\"rss_during\":$during,\"held\":$NHOLD,\"lg\":$out}" >>"$JSONL"
}

echo "bench: targets: $TARGETS; $RUNS run(s)" >&2
for r in $(seq 1 $RUNS); do
	echo "bench: run $r/$RUNS" >&2
	for tg in $TARGETS; do
		run a1 $tg $r --target ${TTGT[$tg]} --sni ${TSNI[$tg]} \
		    -n $NSMALL -c 1 --path sse
		run a32 $tg $r --target ${TTGT[$tg]} --sni ${TSNI[$tg]} \
		    -n $NSMALL -c 32 --path sse
		# The same with 3x the requests: the difference is the CPU
		# of 2x NSMALL requests without the 32 new connections.
		run a32x $tg $r --target ${TTGT[$tg]} --sni ${TSNI[$tg]} \
		    -n $((3 * NSMALL)) -c 32 --path sse
		run c-warm $tg $r --target ${TTGT[$tg]} --sni ${TSNI[$tg]} \
		    -n $NFRESH -c 1 --new-conn --path sse
		run c-cold $tg $r --target ${TCOLD[$tg]} \
		    --sni ${TCOLDSNI[$tg]} --first-index $IDX \
		    -n $NFRESH -c 1 --new-conn --path sse
		# The same names again: leaves cached, everything else as
		# in the cold run (a new upstream connection per name; the
		# pool keeps only the last few): (g) is the difference.
		run c-rewarm $tg $r --target ${TCOLD[$tg]} \
		    --sni ${TCOLDSNI[$tg]} --first-index $IDX \
		    -n $NFRESH -c 1 --new-conn --path sse
		run d $tg $r --target ${TTGT[$tg]} --sni ${TSNI[$tg]} \
		    -n $NBIG -c 1 --path 1mib
		run e $tg $r --target ${TTGT[$tg]} --sni ${TSNI[$tg]} \
		    -n $NDRIB -c 1 --path dribble
	done
	IDX=$((IDX + NFRESH))
	for tg in $TARGETS; do
		[ $tg = direct ] || hold $tg $r
	done
	out=$("$LG" --mint $NMINT --ca "$T/testca.pem" 2>/dev/null) ||
	    { FAIL=1; echo "bench: mint failed" >&2; }
	[ -n "$out" ] && echo "{\"fig\":\"g-mint\",\"target\":\"hm-int\",\"run\":$r,\"lg\":$out}" >>"$JSONL"
done
for tg in $TARGETS; do
	[ $tg = direct ] && continue
	echo "{\"fig\":\"f-end\",\"target\":\"$tg\",\"rss_end\":$(rss_kib ${TPID[$tg]})}" >>"$JSONL"
done

# The table.
DATE=$(date -u +%Y-%m-%dT%H%M%SZ)
if [ -z "$OUT" ] && [ $SMOKE = 1 ]; then
	OUT=$T/smoke.md # printed only: a smoke run is no result
elif [ -z "$OUT" ]; then
	mkdir -p "$ROOT/bench/results"
	OUT=$ROOT/bench/results/$DATE.md
fi
MACHINE="$(nproc) CPU ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(uname -sr)"
VERS="halton-meter $("$BIN" version 2>/dev/null | head -n 1)"
command -v mitmdump >/dev/null && VERS="$VERS; mitmdump $(mitmdump --version 2>/dev/null | awk '/Mitmproxy/ {print $2}')"
[ -n "$SQUID" ] && VERS="$VERS; squid $("$SQUID" -v 2>/dev/null | awk '/Version/ {print $NF; exit}')"
$PY - "$JSONL" "$DATE" "$MACHINE" "$VERS" "$SMOKE" "$RUNS" >"$OUT.tmp" <<'PYEOF' ||
import json, statistics, sys

path, date, machine, vers, smoke, runs = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
ORDER = ["direct", "hm-int", "hm-tun", "mitm", "squid"]
TG = [t for t in ORDER if any(r["target"] == t for r in rows)]
NAMES = {"direct": "direct", "hm-int": "halton-meter intercept+meter",
         "hm-tun": "halton-meter tunnel", "mitm": "mitmdump",
         "squid": "Squid ssl_bump"}
# per (metric, target) -> {run: value}
M = {}

def put(metric, tg, run, v):
    M.setdefault(metric, {}).setdefault(tg, {})[run] = v

def get(fig, tg, run):
    for r in rows:
        if r["fig"] == fig and r["target"] == tg and r.get("run") == run:
            return r
    return None

for r in rows:
    f, tg, run, lg = r["fig"], r["target"], r.get("run"), r.get("lg", {})
    if f not in ("f-idle", "g-mint") and lg.get("errors", 0) > 0:
        continue  # failed runs are reported on stderr, not averaged
    ok = lg.get("ok", 0)
    cpu = r.get("cpu_ns", 0) / 1e6 / ok if ok and tg != "direct" else None
    if f == "a32x":
        base = get("a32", tg, run)
        if (cpu is not None and base is not None and
                base["lg"].get("errors", 0) == 0 and
                ok > base["lg"].get("ok", 0)):
            put("a32m_cpu", tg, run, (r["cpu_ns"] - base["cpu_ns"]) / 1e6 /
                (ok - base["lg"]["ok"]))
    elif f in ("a1", "a32"):
        put(f + "_rps", tg, run, lg["rps"])
        if cpu is not None:
            put(f + "_cpu", tg, run, cpu)
        if f == "a1":
            put("b_p50", tg, run, lg["lat_us"]["p50"] / 1000)
            put("b_p99", tg, run, lg["lat_us"]["p99"] / 1000)
    elif f in ("c-warm", "c-cold", "c-rewarm"):
        k = f.replace("-", "_")
        put(k + "_p50", tg, run, lg["lat_us"]["p50"] / 1000)
        if cpu is not None:
            put(k + "_cpu", tg, run, cpu)
    elif f == "d":
        put("d_mibps", tg, run, lg["mibps"])
    elif f == "e":
        put("e_p50", tg, run, lg["ev_delay_us"]["p50"] / 1000)
        put("e_p99", tg, run, lg["ev_delay_us"]["p99"] / 1000)
    elif f == "f-hold":
        put("f_conn", tg, run, (r["rss_during"] - r["rss_before"]) / r["held"])
        put("f_idle", tg, run, r["rss_idle"] / 1024)
        put("f_anon", tg, run, r.get("rss_idle_anon", 0) / 1024)
    elif f == "f-end":
        put("f_end", tg, 0, r["rss_end"] / 1024)
    elif f == "g-mint":
        put("g_mint", tg, run, lg["per_leaf_us"]["mean"] / 1000)
# Derived, paired by run: extra event delay vs direct, minting, metering.
for tg in TG:
    for run in M.get("e_p50", {}).get(tg, {}):
        for q in ("p50", "p99"):
            d = M["e_" + q].get("direct", {}).get(run)
            if d is not None:
                put("e_x" + q, tg, run, M["e_" + q][tg][run] - d)
    for run, cold in M.get("c_cold_cpu", {}).get(tg, {}).items():
        warm = M.get("c_rewarm_cpu", {}).get(tg, {}).get(run)
        if warm is not None:
            put("g_cpu", tg, run, cold - warm)
    for run, cold in M.get("c_cold_p50", {}).get(tg, {}).items():
        warm = M.get("c_rewarm_p50", {}).get(tg, {}).get(run)
        if warm is not None:
            put("g_wall", tg, run, cold - warm)
for run, a in M.get("a1_cpu", {}).get("hm-int", {}).items():
    t = M.get("a1_cpu", {}).get("hm-tun", {}).get(run)
    if t:
        put("h_pct", "hm-int", run, 100 * (a / t - 1))
for run, a in M.get("a32_cpu", {}).get("hm-int", {}).items():
    t = M.get("a32_cpu", {}).get("hm-tun", {}).get(run)
    if t:
        put("h32_pct", "hm-int", run, 100 * (a / t - 1))
for run, a in M.get("a32m_cpu", {}).get("hm-int", {}).items():
    t = M.get("a32m_cpu", {}).get("hm-tun", {}).get(run)
    if t:
        put("h32m_pct", "hm-int", run, 100 * (a / t - 1))

def med(metric, tg):
    v = list(M.get(metric, {}).get(tg, {}).values())
    return statistics.median(v) if v else None

def fmt(x, nd):
    if x is None:
        return "–"
    return f"{x:.{nd}f}"

def cell(metric, tg, nd):
    v = list(M.get(metric, {}).get(tg, {}).values())
    if not v:
        return "–"
    m = statistics.median(v)
    if len(v) == 1:
        return fmt(m, nd)
    return f"{fmt(m, nd)} ({fmt(min(v), nd)}–{fmt(max(v), nd)})"

def ratio(metric, a, b):
    x, y = med(metric, a), med(metric, b)
    if x is None or y is None or y == 0:
        return "–"
    return f"{x / y:.2f}×"

# metric, label, decimals, target (text), check(value of hm-int) or None
FIGS = [
    ("a1_rps", "(a) req/s, C=1, keep-alive", 0, "≥ 0.6× direct",
     lambda: ratio_ok("a1_rps", 0.6)),
    ("a1_cpu", "(a) proxy CPU ms/req, C=1", 3, "≤ 0.05",
     lambda: le("a1_cpu", 0.05)),
    ("a32_rps", "(a) req/s, C=32, keep-alive", 0, "≥ 0.6× direct",
     lambda: ratio_ok("a32_rps", 0.6)),
    ("a32_cpu", "(a) proxy CPU ms/req, C=32", 3, "≤ 0.05",
     lambda: le("a32_cpu", 0.05)),
    ("a32m_cpu", "(a) proxy CPU ms/req, C=32, without connection set-up "
     "(3N − N requests)", 3, "", None),
    ("b_p50", "(b) request p50 ms, C=1", 3, "", None),
    ("b_p99", "(b) request p99 ms, C=1", 3, "", None),
    ("c_warm_p50", "(c) fresh conn+req p50 ms, leaf cached", 2,
     "≤ 1.3× direct", lambda: ratio_le("c_warm_p50", 1.3)),
    ("c_cold_p50", "(c) fresh conn+req p50 ms, new host", 2, "", None),
    ("c_warm_cpu", "(c) proxy CPU ms/conn, leaf cached", 3, "", None),
    ("c_cold_cpu", "(c) proxy CPU ms/conn, new host", 3, "", None),
    ("c_rewarm_cpu", "(c) proxy CPU ms/conn, the same new hosts again", 3,
     "", None),
    ("d_mibps", "(d) 1 MiB sequential MiB/s", 0, "≥ 0.7× direct",
     lambda: ratio_ok("d_mibps", 0.7)),
    ("e_p50", "(e) dribble event delay p50 ms", 3, "", None),
    ("e_p99", "(e) dribble event delay p99 ms", 3, "", None),
    ("e_xp50", "(e) extra delay vs direct p50 ms", 3, "", None),
    ("e_xp99", "(e) extra delay vs direct p99 ms", 3, "≤ 0.3",
     lambda: le("e_xp99", 0.3)),
    ("f_idle", "(f) RSS idle at start MiB", 1, "≤ 8", lambda: le("f_idle", 8)),
    ("f_anon", "(f) of which private (RssAnon) MiB", 1, "", None),
    ("f_end", "(f) RSS of the main instance after all runs MiB", 1, "",
     None),
    ("f_conn", "(f) RSS KiB per held intercepted conn", 1, "≤ 40",
     lambda: le("f_conn", 40)),
    ("g_cpu", "(g) proxy CPU ms per new host (new − same again)", 3, "≤ 1",
     lambda: le("g_cpu", 1)),
    ("g_wall", "(g) fresh-conn p50 ms, new host − same again", 3, "", None),
    ("g_mint", "(g) ca_leaf() ms per new host (in-process loop)", 3, "≤ 1",
     lambda: le("g_mint", 1)),
    ("h_pct", "(h) metering CPU over tunnelling %, C=1", 1, "≤ 20",
     lambda: le("h_pct", 20)),
    ("h32_pct", "(h) metering CPU over tunnelling %, C=32", 1, "≤ 20",
     lambda: le("h32_pct", 20)),
    ("h32m_pct", "(h) the same without connection set-up (3N − N "
     "requests)", 1, "", None),
]

def le(metric, lim):
    v = med(metric, "hm-int")
    return None if v is None else v <= lim

def ratio_ok(metric, lim):
    x, y = med(metric, "hm-int"), med(metric, "direct")
    return None if x is None or not y else x / y >= lim

def ratio_le(metric, lim):
    x, y = med(metric, "hm-int"), med(metric, "direct")
    return None if x is None or not y else x / y <= lim

peers = [t for t in ("mitm", "squid") if t in TG]
hdr = ["Figure"] + [NAMES.get(t, t) for t in TG] + ["int/direct"] + \
    [f"int/{NAMES[p]}" for p in peers] + ["target", "met"]
print(f"## Benchmark {date}{' (smoke)' if smoke == '1' else ''}\n")
print(f"- machine: {machine}")
print(f"- versions: {vers}")
print(f"- each cell: median of {runs} run(s) (min–max); proxy CPU from "
      "/proc/PID/task/*/schedstat; RSS from /proc/PID/status")
print(f"- int = halton-meter intercepting+metering; ratios are of the "
      "medians\n")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for metric, label, nd, tgt, chk in FIGS:
    if metric not in M:
        continue
    line = [label] + [cell(metric, t, nd) for t in TG]
    line.append(ratio(metric, "hm-int", "direct"))
    line += [ratio(metric, "hm-int", p) for p in peers]
    ok = chk() if chk else None
    line += [tgt, "" if ok is None else ("yes" if ok else "**no**")]
    print("| " + " | ".join(line) + " |")
PYEOF
    { FAIL=1; echo "bench: table failed" >&2; }
mv "$OUT.tmp" "$OUT"
cat "$OUT"
[ -n "${BENCH_JSONL:-}" ] && cp "$JSONL" "$BENCH_JSONL"
echo "bench: wrote $OUT" >&2
if [ $FAIL != 0 ]; then
	echo "bench: FAILED (see the errors above)" >&2
	tail -n 5 "$T/loadgen.err" >&2
	exit 1
fi
exit 0
