#!/bin/bash
# Group commit on a simulated slow disk (DESIGN §7 "What the tests must
# prove": at 16 sessions at most one fsync per 8 messages; at 1 session
# p99 end-of-data -> 250 within 2x the measured fdatasync latency).
# The last column compares the end-of-data p99 with twice the simulated
# disk's fdatasync p99 (like with like: a message that arrives while a
# commit is in flight waits for that fsync and then its own, and either may
# be in the disk's tail) and, stricter, with twice its median.
# Method and numbers: docs/performance.md, "Session 3".  Run as root
# (`make bench-groupcommit`); todoku only, no Postfix.
#
# The disk is simulated: tests/shim/fsync_shim.c (LD_PRELOAD) adds DELAY
# microseconds before every fsync/fdatasync of the spool's WAL
# (queue.db-wal) and logs each call; the real fdatasync still runs after
# the delay.  "fdatasync latency" is measured with the same shim on a
# probe file, so it is the simulated disk's latency (delay + real call).
#
# Environment knobs:
#   DELAYS="0 2000 8000"   added µs per WAL fsync, one todoku run each
#   N16=3000               messages per 16-session receive pass
#   NLAT=400               messages for the 1-session latency passes
#   MSGLEN=4096            message payload size
#   KEEP=1                 keep the bench directory afterwards
#   TODOKU_BIN=...         binary (default build/todoku); the shim is taken
#                          from next to it (tests/shim/libfsync_shim.so)
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TODOKU_BIN:-$REPO/build/todoku}
SHIM_SRC=$(dirname "$BIN")/tests/shim/libfsync_shim.so
HELPER="/usr/bin/python3 $REPO/bench/helper.py"
DELAYS=${DELAYS:-0 2000 8000}
N16=${N16:-3000}
NLAT=${NLAT:-400}
MSGLEN=${MSGLEN:-4096}
T_ADDR=127.0.0.79 T_PORT=2525
RESULTS=$REPO/bench/results
OUT=$RESULTS/groupcommit.txt

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (roles drop to user todoku)"
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
[ -f "$SHIM_SRC" ] || die "$SHIM_SRC not found: run 'make build' first"
command -v smtp-source >/dev/null || die "smtp-source not found (apt-get install -y postfix)"
id todoku >/dev/null 2>&1 || die "user todoku does not exist"

BASE=$(mktemp -d /var/tmp/todoku-gcbench-XXXXXX) || die "mktemp failed"
chmod 0755 "$BASE"
# private copies: others may rebuild during the run
cp "$BIN" "$BASE/todoku-bin" && cp "$SHIM_SRC" "$BASE/fsync_shim.so" &&
	chmod 0755 "$BASE/todoku-bin" && chmod 0644 "$BASE/fsync_shim.so" || die "copy failed"
BIN_SRC=$BIN BIN=$BASE/todoku-bin SHIM=$BASE/fsync_shim.so
TPID='' LSTOPPED=''

stop_todoku() {
	[ -n "$LSTOPPED" ] && kill -CONT "$LSTOPPED" 2>/dev/null
	LSTOPPED=
	bench_stop "$TPID"
	TPID=
}
cleanup() {
	stop_todoku
	if [ "${KEEP:-0}" = 1 ]; then note "kept $BASE"; else rm -rf "$BASE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

per() { awk -v n="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.1f", n / c; else print "inf" }'; }

FSTYPE=$(df -T "$BASE" | awk 'NR == 2 { print $2 }')
FSDEV=$(df -T "$BASE" | awk 'NR == 2 { print $1 }')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# shim_env DELAY LOG: the environment that preloads the shim
shim_env() {
	echo "LD_PRELOAD=$SHIM TODOKU_SHIM_MATCH=queue.db-wal TODOKU_SHIM_DELAY_US=$1 TODOKU_SHIM_LOG=$2"
}

# wal_fsyncs LOG: WAL fsync-family calls logged so far
wal_fsyncs() { grep -c 'queue.db-wal' "$1" 2>/dev/null || echo 0; }

# source_pass LABEL COUNT [smtp-source options]: 16 sessions, sets ACCEPT
source_pass() {
	local label=$1 m=$2 t0 t1 rc
	shift 2
	t0=$(now)
	smtp-source "$@" -s 16 -m "$m" -l "$MSGLEN" -f a@bench.test -t sink@bench.test \
		"$T_ADDR:$T_PORT" 2>"$BASE/smtp-source-$label.err"
	rc=$?
	t1=$(now)
	ACCEPT=$(rate "$m" "$t0" "$t1")
	if [ $rc != 0 ] || [ -s "$BASE/smtp-source-$label.err" ]; then
		head -20 "$BASE/smtp-source-$label.err" >&2
		return 1
	fi
}

REPORT=$BASE/report.txt
: >"$REPORT"
for DELAY in $DELAYS; do
	TD=$BASE/todoku-$DELAY
	SD=$TD/shim
	mkdir -m 0755 -p "$TD" "$TD/spool" "$TD/mail/bench.test"
	mkdir -m 0777 -p "$SD"
	chmod 0777 "$SD"
	chown todoku: "$TD/spool" "$TD/mail/bench.test"
	LOG=$SD/fsync.log
	bench_todoku_conf "$TD/todoku.conf" "$TD" "$T_ADDR" "$T_PORT"
	cat >>"$TD/todoku.conf" <<EOF

[domain "bench.test"]
mailboxes = $TD/mail/bench.test
users = sink
EOF
	NEWDIR=$TD/mail/bench.test/sink/new

	# the simulated disk's fdatasync latency: the probe under the same shim
	# shellcheck disable=SC2046
	read -r FS_MED FS_P99 FS_MAX <<EOF
$(env $(shim_env "$DELAY" /dev/null | sed 's/queue.db-wal/fdatasync-probe/') $HELPER fsync-latency "$BASE" 200)
EOF
	note "delay $DELAY µs: fdatasync of a 4 KiB append under the shim: median $FS_MED ms, p99 $FS_P99 ms"

	# shellcheck disable=SC2046
	setsid env $(shim_env "$DELAY" "$LOG") "$BIN" serve -f -c "$TD/todoku.conf" \
		</dev/null >>"$TD/todoku.log" 2>&1 &
	TPID=$!
	$HELPER wait-port $T_ADDR $T_PORT 30 || { tail -20 "$TD/todoku.log" >&2; die "todoku did not start"; }
	source_pass warmup 400 || die "warm-up failed"
	$HELPER wait-count "$NEWDIR" 400 120 >/dev/null || die "warm-up: messages not delivered"
	DELIVERED=400
	LPID=$(pgrep -P "$TPID" -f 'todoku --role local') || die "cannot find the local role"

	# 16-session receive passes, local role stopped: the WAL fsyncs are
	# the commits of received messages (and any checkpoint they cause)
	for mode in reuse conn; do
		opt=; [ $mode = reuse ] && opt=-d
		sleep 3   # idle checkpoint of the previous pass done
		kill -STOP "$LPID"; LSTOPPED=$LPID
		c0=$(wal_fsyncs "$LOG")
		# shellcheck disable=SC2086
		source_pass "rx-$mode" "$N16" $opt || die "16-session pass ($mode) failed"
		c1=$(wal_fsyncs "$LOG")
		kill -CONT "$LPID"; LSTOPPED=
		$HELPER wait-count "$NEWDIR" $(( DELIVERED + N16 )) 300 >/dev/null || die "pass $mode: not delivered"
		DELIVERED=$(( DELIVERED + N16 ))
		eval "F_$mode=\$(( c1 - c0 )) A_$mode=\$ACCEPT"
		note "delay $DELAY µs, 16 sessions ($mode): $N16 msgs, $(( c1 - c0 )) WAL fsyncs = one per $(per "$N16" $(( c1 - c0 ))) msgs, $ACCEPT msg/s"
	done

	# 1 session, end of data -> 250: with local delivery running, then
	# with the local role stopped (the commit path alone)
	for mode in deliver rx; do
		sleep 3
		[ $mode = rx ] && { kill -STOP "$LPID"; LSTOPPED=$LPID; }
		read -r L_MED L_P99 L_MAX <<EOF
$($HELPER smtp-latency $T_ADDR $T_PORT "$NLAT" "$MSGLEN" "$BASE/lat-$DELAY-$mode.txt" 2>"$BASE/lat.err")
EOF
		[ -n "$L_MAX" ] || { cat "$BASE/lat.err" >&2; die "latency pass failed"; }
		[ $mode = rx ] && { kill -CONT "$LPID"; LSTOPPED=; }
		$HELPER wait-count "$NEWDIR" $(( DELIVERED + NLAT )) 300 >/dev/null || die "latency pass: not delivered"
		DELIVERED=$(( DELIVERED + NLAT ))
		eval "LMED_$mode=\$L_MED LP99_$mode=\$L_P99"
		note "delay $DELAY µs, 1 session ($mode): end of data -> 250 median $L_MED ms, p99 $L_P99 ms, max $L_MAX ms"
	done
	stop_todoku
	{
		printf '%-8s %8s %8s | %7s %9s | %7s %9s | %8s %8s | %8s %8s | %s\n' \
			"$DELAY" "$FS_MED" "$FS_P99" \
			"$(per "$N16" "$F_reuse")" "$A_reuse" "$(per "$N16" "$F_conn")" "$A_conn" \
			"$LMED_deliver" "$LP99_deliver" "$LMED_rx" "$LP99_rx" \
			"$(awk -v a="$LP99_deliver" -v b="$LP99_rx" -v m="$FS_P99" -v md="$FS_MED" 'BEGIN { printf "%s/%s  %s/%s", (a <= 2 * m ? "met" : "NOT met"), (b <= 2 * m ? "met" : "NOT met"), (a <= 2 * md ? "met" : "NOT met"), (b <= 2 * md ? "met" : "NOT met") }')"
	} >>"$REPORT"
done

mkdir -p "$RESULTS"
{
	echo "todoku group commit on a simulated slow disk  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "todoku binary   $BIN_SRC, sha256 $(sha256sum "$BIN" | cut -c1-12)"
	echo "todoku commit   $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
	echo "machine         $(nproc) CPUs, load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
	echo "filesystem      $FSTYPE on $FSDEV"
	echo "shim            +DELAY µs before each fsync/fdatasync of queue.db-wal (the real call follows)"
	echo "passes          16 sessions x $N16 msgs (smtp-source, -d = persistent connections, or a connection per message),"
	echo "                local role stopped; 1 session x $NLAT msgs end of data -> 250 (local delivering / stopped)"
	echo
	echo "delay µs  fdatasync ms   | 16 s. persistent  | 16 s. conn/msg    | 1 s. EOD->250 ms  | 1 s. rx-only ms   | EOD p99 <= 2x fdatasync"
	echo "          median    p99  | msg/fsync  msg/s  | msg/fsync  msg/s  | median     p99    | median     p99    | p99 (deliver/rx)  median (deliver/rx)"
	cat "$REPORT"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
