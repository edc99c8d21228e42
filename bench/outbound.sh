#!/bin/bash
# todoku outbound (relay) benchmark against Postfix on the same machine:
#   smtp-source -> server -> MX found through a local knotd -> smtp-sink
# Method and numbers: docs/performance.md, section "Outbound".
# Run as root (`make bench-outbound`).
#
# Environment knobs:
#   N1=1000 N16=4000      messages per 1-session / 16-session run (each size)
#   SIZES="4096 65536"    message payload sizes (smtp-source -l)
#   REPEAT=1              how many times the whole matrix is run
#   TIMEOUT=300           seconds a run may take until the sink has everything
#   SKIP_POSTFIX=1        todoku only
#   KEEP=1                keep the bench directory (logs, spools) afterwards
#   TODOKU_BIN=...        binary to measure (default build/todoku)
#   NO_CGROUP=1           measure CPU by session (/proc) even if a cgroup works
#   SETUP_ONLY=1          start knotd, smtp-sink, todoku (and Postfix), print
#                         their addresses and pids, and wait for Ctrl-C: for
#                         profiling by hand (perf record -g -p PID)
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TODOKU_BIN:-$REPO/build/todoku}
HELPER="/usr/bin/python3 $REPO/bench/helper.py"
N1=${N1:-1000}
N16=${N16:-4000}
SIZES=${SIZES:-4096 65536}
REPEAT=${REPEAT:-1}
TIMEOUT=${TIMEOUT:-300}
T_ADDR=127.0.0.87 T_PORT=2525     # todoku's listener
P_ADDR=127.0.0.88 P_PORT=2525     # Postfix's listener
DNS_ADDR=127.0.0.89               # knotd, port 53
SINK_ADDR=127.0.0.90 SINK_PORT=25 # smtp-sink: the MX host of sink.bench.test
RCPT=sink@sink.bench.test
RESULTS=$REPO/bench/results
OUT=$RESULTS/outbound-latest.txt

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (knotd on port 53, smtp-sink on port 25, Postfix, cgroups)"
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
for t in smtp-source smtp-sink postconf postfix knotd kdig unshare findmnt; do
	command -v $t >/dev/null || die "$t not found (apt-get install -y postfix knot knot-dnsutils util-linux)"
done
id todoku >/dev/null 2>&1 || die "user todoku does not exist"

BASE=$(mktemp -d /var/tmp/todoku-obench-XXXXXX) || die "mktemp failed"
chmod 0755 "$BASE"
# Measure a private copy: others may rebuild build/todoku during the run,
# and the roles re-execute the master's binary.
BIN_SRC=$BIN
BIN=$BASE/todoku-bin
cp "$BIN_SRC" "$BIN" && chmod 0755 "$BIN" || die "cannot copy $BIN_SRC"
TPID='' PF_DIR='' KNOT_PID='' SINK_PID='' CG='' FAILED=1

# --- CPU accounting ------------------------------------------------------------
# One cgroup per party (todoku, postfix, knotd, sink, client), entered before
# the party's first exec, so every process it ever forks is counted, also the
# short-lived ones: cgroup v2 cpu.stat (user_usec, system_usec), else v1
# cpuacct (usage_user, usage_sys).  No controller is enabled: accounting only.
# Without any cgroup: the /proc sum over the server's session, including the
# children it reaped (helper.py session-cpu); the client, knotd and the sink
# are then not measured.
CG_KIND=none
if [ "${NO_CGROUP:-0}" != 1 ]; then
	for m in $(findmnt -n -t cgroup2 -o TARGET); do
		if [ -f "$m/cgroup.procs" ] && mkdir "$m/todoku-obench-$$" 2>/dev/null; then
			CG=$m/todoku-obench-$$ CG_KIND=v2
			break
		fi
	done
	if [ -z "$CG" ]; then
		m=$(findmnt -n -t cgroup -o TARGET,OPTIONS | awk '$2 ~ /(^|,)cpuacct(,|$)/ { print $1; exit }')
		if [ -n "$m" ] && [ -f "$m/cpuacct.usage_user" ] && mkdir "$m/todoku-obench-$$" 2>/dev/null; then
			CG=$m/todoku-obench-$$ CG_KIND=v1
		fi
	fi
fi
for p in todoku postfix knotd sink client; do
	[ -n "$CG" ] && { mkdir "$CG/$p" || die "cannot make cgroup $CG/$p"; }
done

# cg_exec PARTY CMD...: exec CMD inside PARTY's cgroup (pid kept)
cg_exec() {
	local dir=
	[ -n "$CG" ] && dir=$CG/$1
	shift
	exec sh -c 'if [ -n "$1" ]; then echo $$ >"$1/cgroup.procs" || exit 126; fi; shift; exec "$@"' sh "$dir" "$@"
}

# party_cpu PARTY [SID]: "user_s system_s" used so far
party_cpu() {
	case $CG_KIND in
	v2) awk '$1 == "user_usec" { u = $2 } $1 == "system_usec" { s = $2 } END { printf "%.6f %.6f\n", u / 1e6, s / 1e6 }' "$CG/$1/cpu.stat" ;;
	v1) echo "$(cat "$CG/$1/cpuacct.usage_user") $(cat "$CG/$1/cpuacct.usage_sys")" | awk '{ printf "%.6f %.6f\n", $1 / 1e9, $2 / 1e9 }' ;;
	*) if [ -n "${2:-}" ]; then $HELPER session-cpu "$2"; else echo "nan nan"; fi ;;
	esac
}

cleanup() {
	local p
	[ -n "$SINK_PID" ] && kill -TERM "$SINK_PID" 2>/dev/null
	bench_stop "$TPID"
	if [ -n "$PF_DIR" ] && [ -f "$PF_DIR/queue/pid/master.pid" ]; then
		postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1 || postfix -c "$PF_DIR/etc" abort >/dev/null 2>&1
		sleep 1
	fi
	[ -n "$KNOT_PID" ] && kill -TERM "$KNOT_PID" 2>/dev/null
	if [ -n "$CG" ]; then
		for p in todoku postfix knotd sink client; do
			for _ in $(seq 50); do
				[ -s "$CG/$p/cgroup.procs" ] || break
				sleep 0.1
			done
			rmdir "$CG/$p" 2>/dev/null
		done
		rmdir "$CG" 2>/dev/null || note "cgroup $CG left behind (processes still in it?)"
	fi
	if [ "$FAILED" = 1 ]; then
		mkdir -p "$RESULTS/logs"
		cp "$BASE"/todoku/todoku.log "$RESULTS/logs/outbound-todoku.log" 2>/dev/null
		cp "$BASE"/postfix/maillog "$RESULTS/logs/outbound-postfix-maillog" 2>/dev/null
		cp "$BASE"/knot/knotd.log "$RESULTS/logs/outbound-knotd.log" 2>/dev/null
		for p in "$BASE"/*.err; do [ -s "$p" ] && cp "$p" "$RESULTS/logs/outbound-${p##*/}"; done
		note "failed; logs copied to $RESULTS/logs/"
	fi
	if [ "${KEEP:-0}" = 1 ]; then
		note "kept $BASE"
	else
		rm -rf "$BASE"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- machine and filesystem ------------------------------------------------
LOAD_START=$(loadavg)
FSTYPE=$(df -T "$BASE" | awk 'NR == 2 { print $2 }')
FSDEV=$(df -T "$BASE" | awk 'NR == 2 { print $1 }')
MOUNTOPTS=$(findmnt -n -o OPTIONS -T "$BASE" 2>/dev/null)
read -r FS_MED FS_P99 FS_MAX <<EOF
$($HELPER fsync-latency "$BASE" 200)
EOF
note "filesystem $FSTYPE on $FSDEV; fdatasync of a 4 KiB append: median $FS_MED ms, p99 $FS_P99 ms; load $LOAD_START; CPU accounting: $CG_KIND"

# --- knotd: the authoritative server for bench.test --------------------------
K=$BASE/knot
mkdir -p "$K/run" "$K/storage" "$K/zones"
cat >"$K/knot.conf" <<EOF
server:
    rundir: "$K/run"
    listen: $DNS_ADDR@53
control:
    listen: "$K/run/knot.sock"
log:
  - target: stderr
    any: warning
database:
    storage: "$K/storage"
template:
  - id: default
    storage: "$K/zones"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: bench.test.
EOF
cat >"$K/zones/bench.test.zone" <<EOF
\$ORIGIN bench.test.
\$TTL 3600
@ SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 3600
@ NS ns
ns A $DNS_ADDR
sink MX 10 mx.sink
mx.sink A $SINK_ADDR
EOF
(cg_exec knotd knotd -c "$K/knot.conf") >"$K/knotd.log" 2>&1 &
KNOT_PID=$!
for _ in $(seq 100); do
	[ "$(kdig +short +time=1 +retry=0 @"$DNS_ADDR" sink.bench.test MX 2>/dev/null)" = "10 mx.sink.bench.test." ] && break
	sleep 0.1
done
[ "$(kdig +short +time=1 +retry=0 @"$DNS_ADDR" mx.sink.bench.test A 2>/dev/null)" = "$SINK_ADDR" ] ||
	{ cat "$K/knotd.log" >&2; die "knotd does not answer on $DNS_ADDR"; }

# --- smtp-sink: the MX host --------------------------------------------------
# -c: a running "sess=N quit=N mesg=N" line per event; mesg counts final dots.
SINKOUT=$BASE/sink.out
(cg_exec sink smtp-sink -c -u nobody -h mx.sink.bench.test "$SINK_ADDR:$SINK_PORT" 256) >"$SINKOUT" 2>"$BASE/sink.err" &
SINK_PID=$!
$HELPER wait-port $SINK_ADDR $SINK_PORT 10 || die "smtp-sink did not listen on $SINK_ADDR:$SINK_PORT"

# --- todoku ------------------------------------------------------------------
TD=$BASE/todoku
mkdir -m 0755 -p "$TD" "$TD/spool"
chown todoku: "$TD/spool"
bench_todoku_conf "$TD/todoku.conf" "$TD" "$T_ADDR" "$T_PORT"
cat >>"$TD/todoku.conf" <<EOF

[dns]
servers = $DNS_ADDR

[delivery]
port = $SINK_PORT
EOF
# setsid: own process group and session, so cleanup can kill every role at once
(cg_exec todoku setsid "$BIN" serve -f -c "$TD/todoku.conf") </dev/null >>"$TD/todoku.log" 2>&1 &
TPID=$!
$HELPER wait-port $T_ADDR $T_PORT 15 || { tail -20 "$TD/todoku.log" >&2; die "todoku did not start"; }

# todoku has drained when `queue list --json` shows no message: "[]"
todoku_drained() {
	local out
	for _ in $(seq $((TIMEOUT * 10))); do
		out=$("$BIN" queue list --json -c "$TD/todoku.conf" 2>&1) || { note "queue list: $out"; return 1; }
		[ "$out" = "[]" ] && return 0
		sleep 0.1
	done
	note "todoku queue not empty after $TIMEOUT s:"
	echo "$out" | head -5 >&2
	return 1
}

# --- Postfix -----------------------------------------------------------------
if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
	PF_DIR=$BASE/postfix
	mkdir -m 0755 -p "$PF_DIR/etc" "$PF_DIR/queue" "$PF_DIR/data"
	chown postfix: "$PF_DIR/data"
	MC=/etc/postfix/master.cf
	[ -f $MC ] || MC=/usr/share/postfix/master.cf.dist
	cp "$MC" "$PF_DIR/etc/master.cf"
	: >"$PF_DIR/etc/main.cf"
	PC="postconf -c $PF_DIR/etc"
	$PC -e \
		"compatibility_level = 3.6" \
		"queue_directory = $PF_DIR/queue" \
		"data_directory = $PF_DIR/data" \
		"meta_directory = /etc/postfix" \
		"shlib_directory = /usr/lib/postfix" \
		"mail_owner = postfix" "setgid_group = postdrop" \
		"myhostname = bench-postfix.test" \
		"mydomain = bench.test" \
		"mydestination = \$myhostname" \
		"inet_interfaces = 127.0.0.1" \
		"inet_protocols = ipv4" \
		"mynetworks = 127.0.0.0/8" \
		"local_recipient_maps =" \
		"alias_maps =" "alias_database =" \
		"relayhost =" \
		"smtp_tcp_port = $SINK_PORT" \
		"maillog_file = $PF_DIR/maillog" \
		"smtpd_client_connection_count_limit = 0" \
		"smtpd_client_connection_rate_limit = 0" \
		"smtpd_client_message_rate_limit = 0" \
		"smtpd_client_recipient_rate_limit = 0" \
		"smtpd_peername_lookup = no" \
		"in_flow_delay = 0" \
		"default_process_limit = 100" \
		"smtpd_banner = \$myhostname ESMTP" \
		"biff = no" || die "postconf failed"
	# No chroot (the private queue directory has no etc/ copies).  SMTP
	# listens on $P_ADDR:$P_PORT, set in master.cf: inet_interfaces only
	# accepts addresses configured on an interface, and 127.0.0.88 is not.
	$PC -F -e '*/*/chroot = n' || die "postconf -F failed"
	$PC -MX smtp/inet || die "postconf -MX failed"
	$PC -M -e "$P_ADDR:$P_PORT/inet = $P_ADDR:$P_PORT inet n - n - - smtpd" || die "postconf -M failed"
	postfix -c "$PF_DIR/etc" check 2>"$BASE/postfix-check.err" || { cat "$BASE/postfix-check.err" >&2; die "postfix check failed"; }
	# Postfix's smtp(8) resolves with libresolv, i.e. /etc/resolv.conf: the
	# whole instance runs in a private mount namespace where that file names
	# knotd (the namespace is inherited by every process master forks).
	echo "nameserver $DNS_ADDR" >"$PF_DIR/resolv.conf"
	(cg_exec postfix unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start' \
		sh "$PF_DIR/resolv.conf" "$PF_DIR/etc") 2>"$BASE/postfix-start.err" ||
		{ cat "$BASE/postfix-start.err" >&2; die "postfix start failed"; }
	$HELPER wait-port $P_ADDR $P_PORT 15 || die "Postfix did not listen on $P_ADDR:$P_PORT"
	PMASTER=$(head -1 "$PF_DIR/queue/pid/master.pid" | tr -d ' ')
	PSID=$(ps -o sid= -p "$PMASTER" | tr -d ' ')
	PFQ="$PF_DIR/queue/maildrop $PF_DIR/queue/incoming $PF_DIR/queue/active $PF_DIR/queue/deferred $PF_DIR/queue/hold"
fi

postfix_drained() {
	# shellcheck disable=SC2086
	$HELPER wait-empty "$TIMEOUT" $PFQ >/dev/null || { note "Postfix queue not empty after $TIMEOUT s"; return 1; }
}

# --- one run -------------------------------------------------------------------
# run SERVER LABEL SESSIONS COUNT SIZE: appends a result line to $BASE/rows
cpu_delta() { # BEFORE AFTER COUNT -> "total user sys" seconds per 1000 messages
	echo "$1 $2" | awk -v n="$3" '{ u = $3 - $1; s = $4 - $2; if ($1 == "nan") print "n/a n/a n/a"; else printf "%.3f %.3f %.3f\n", (u + s) * 1000 / n, u * 1000 / n, s * 1000 / n }'
}
SENT=0
run() {
	local srv=$1 label=$2 s=$3 m=$4 size=$5 addr port sid base t0 t1 t2 atend left rc w wout
	local c0 c1 d0 d1 k0 k1 l0 l1 cpu cpuu cpus
	if [ "$srv" = todoku ]; then addr=$T_ADDR port=$T_PORT sid=$TPID; else addr=$P_ADDR port=$P_PORT sid=$PSID; fi
	base=$($HELPER sink-count "$SINKOUT")
	[ "$base" = "$SENT" ] || note "sink count $base, expected $SENT (extra deliveries?)"
	# The watcher polls the sink's counter from before the client starts: it
	# notes the count when the client finishes (SIGUSR1) and the time the
	# last message arrived.
	wout=$BASE/watch-$srv-$label.out
	$HELPER watch-sink "$SINKOUT" $((base + m)) "$TIMEOUT" >"$wout" &
	w=$!
	for _ in $(seq 500); do grep -q '^ready' "$wout" && break; sleep 0.01; done
	c0=$(party_cpu "$srv" "$sid") d0=$(party_cpu knotd) k0=$(party_cpu sink) l0=$(party_cpu client)
	t0=$(now)
	(cg_exec client smtp-source -s "$s" -m "$m" -l "$size" -f a@bench.test -t "$RCPT" \
		"$addr:$port") 2>"$BASE/smtp-source-$srv-$label.err"
	rc=$?
	t1=$(now)
	kill -USR1 "$w" 2>/dev/null
	if [ $rc != 0 ] || [ -s "$BASE/smtp-source-$srv-$label.err" ]; then
		note "smtp-source ($srv $label) exit $rc:"
		head -20 "$BASE/smtp-source-$srv-$label.err" >&2
		kill "$w" 2>/dev/null
		return 1
	fi
	wait "$w"
	t2=$(awk '$1 == "done" { print $2 }' "$wout")
	[ -n "$t2" ] || { note "$srv $label: the sink did not count $((base + m)) messages within $TIMEOUT s: $(tail -1 "$wout")"; return 1; }
	atend=$(awk '$1 == "atend" { print $2 }' "$wout")
	[ -n "$atend" ] || atend=$((base + m)) # all there before the signal came
	"${srv}_drained" || return 1
	c1=$(party_cpu "$srv" "$sid") d1=$(party_cpu knotd) k1=$(party_cpu sink) l1=$(party_cpu client)
	SENT=$((base + m))
	left=$((m - (atend - base)))
	read -r cpu cpuu cpus <<EOF
$(cpu_delta "$c0" "$c1" "$m")
EOF
	echo "$srv $label $s $size $m $(rate "$m" "$t0" "$t1") $(rate "$m" "$t0" "$t2") $left $cpu $cpuu $cpus" \
		"$(cpu_delta "$d0" "$d1" "$m" | cut -d' ' -f1) $(cpu_delta "$k0" "$k1" "$m" | cut -d' ' -f1)" \
		"$(cpu_delta "$l0" "$l1" "$m" | cut -d' ' -f1) $(secs "$t0" "$t1") $(secs "$t0" "$t2") $(loadavg | cut -d' ' -f1)" >>"$BASE/rows"
	note "$srv $label: $m msgs of $size bytes, $s sessions: accepted in $(secs "$t0" "$t1") s = $(rate "$m" "$t0" "$t1") msg/s;" \
		"all at the sink after $(secs "$t0" "$t2") s = $(rate "$m" "$t0" "$t2") msg/s; $left not yet at the sink when the client finished;" \
		"server CPU $cpu s/1000 msgs; load $(loadavg)"
}

if [ "${SETUP_ONLY:-0}" = 1 ]; then
	note "knotd $DNS_ADDR:53 (pid $KNOT_PID); smtp-sink $SINK_ADDR:$SINK_PORT (pid $SINK_PID, counter in $SINKOUT)"
	note "todoku $T_ADDR:$T_PORT (master $TPID, log $TD/todoku.log, config $TD/todoku.conf); roles:"
	pgrep -a -P "$TPID" >&2
	[ -n "$PF_DIR" ] && note "Postfix $P_ADDR:$P_PORT (master $PMASTER, config $PF_DIR/etc, log $PF_DIR/maillog)"
	note "e.g. smtp-source -s 1 -m 200 -l 65536 -f a@bench.test -t $RCPT $T_ADDR:$T_PORT; Ctrl-C ends"
	FAILED=0
	sleep 1000000 &
	wait $!
	exit 0
fi

SERVERS=todoku
[ "${SKIP_POSTFIX:-0}" != 1 ] && SERVERS="todoku postfix"

# warm-up (16 sessions: process pools, page cache, SQLite growth, DNS caches)
for srv in $SERVERS; do
	run "$srv" warmup 16 400 4096 || die "$srv warm-up failed"
done
: >"$BASE/rows"
# The servers take turns on each configuration, so both see similar load
# from the rest of the machine.
for rep in $(seq "$REPEAT"); do
	for size in $SIZES; do
		for s in 1 16; do
			[ $s = 1 ] && m=$N1 || m=$N16
			for srv in $SERVERS; do
				run "$srv" "r$rep-s$s-$size" "$s" "$m" "$size" || die "$srv run r$rep-s$s-$size failed"
			done
		done
	done
done
LOAD_END=$(loadavg)

# --- misbehaviour checks -------------------------------------------------------
TODOKU_WARN=$(grep -ciE '\]: (error|warning|fatal|panic)|Sanitizer|runtime error|status=(deferred|bounced)' "$TD/todoku.log")
T_DELIV=$(grep -c 'status=delivered' "$TD/todoku.log")
T_RELAY=$(grep 'status=delivered' "$TD/todoku.log" | grep -c "relay=smtp mx.sink.bench.test \[$SINK_ADDR\]:$SINK_PORT")
kill -TERM "$TPID"
for _ in $(seq 100); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
wait "$TPID"
TRC=$?
TPID=
[ "$TRC" = 0 ] || note "todoku exited $TRC after SIGTERM"
[ "$TODOKU_WARN" = 0 ] || { note "todoku log has $TODOKU_WARN warning/error lines:"; grep -iE '\]: (error|warning|fatal|panic)|Sanitizer|runtime error|status=(deferred|bounced)' "$TD/todoku.log" | head -10 >&2; }
if [ -n "$PF_DIR" ]; then
	P_SENT=$(grep -c 'status=sent' "$PF_DIR/maillog")
	P_RELAY=$(grep 'status=sent' "$PF_DIR/maillog" | grep -c "relay=mx.sink.bench.test\[$SINK_ADDR\]:$SINK_PORT")
	P_WARN=$(grep -cE 'warning:|fatal:|panic:|reject:|status=(deferred|bounced)' "$PF_DIR/maillog")
	postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1
	for _ in $(seq 50); do kill -0 "$PMASTER" 2>/dev/null || break; sleep 0.1; done
	PF_DIR_DONE=$PF_DIR
	PF_DIR=
fi
kill -TERM "$SINK_PID" 2>/dev/null
SINK_PID=
SINK_TOTAL=$($HELPER sink-count "$SINKOUT")

# --- report ------------------------------------------------------------------
mkdir -p "$RESULTS"
# shellcheck disable=SC2016
{
	echo "todoku outbound benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "todoku binary     $BIN_SRC, built $(date -u -r "$BIN_SRC" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
	echo "todoku commit     $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
	echo "postfix           $(postconf -d -h mail_version 2>/dev/null); knotd $(knotd -V | awk '{ print $NF }')"
	echo "machine           $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel            $(uname -sr)"
	echo "load average      start $LOAD_START; end $LOAD_END"
	echo "filesystem        $FSTYPE on $FSDEV, options $MOUNTOPTS"
	echo "fdatasync 4 KiB   median $FS_MED ms, p99 $FS_P99 ms, max $FS_MAX ms (200 appends)"
	echo "CPU accounting    $CG_KIND$([ "$CG_KIND" = none ] && echo ' (per-session /proc sums; client, knotd and sink not measured)' || echo " cgroup per party ($CG)")"
	echo "path              smtp-source -> server -> MX of sink.bench.test via knotd $DNS_ADDR -> smtp-sink $SINK_ADDR:$SINK_PORT; one recipient, one client connection per message"
	echo
	echo "rates in msg/s; 'left' = messages not yet at the sink when the client finished; CPU in seconds per 1000 messages"
	printf '%-8s %-14s %4s %6s %5s %6s %6s %6s %8s %6s %6s %6s %6s %6s %6s %6s %5s\n' \
		server run sess size msgs accept e2e left cpu/1000 user sys dns sink client acc_s e2e_s load
	awk '{ printf "%-8s %-14s %4s %6s %5s %6s %6s %6s %8s %6s %6s %6s %6s %6s %6s %6s %5s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17 }' "$BASE/rows"
	if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
		echo
		echo "todoku/Postfix, paired runs (goal: e2e ratio >= 2.00 and CPU ratio <= 0.50):"
		awk '$1 == "todoku" { key = $2; te[key] = $7; tc[key] = $9 }
		     $1 == "postfix" { key = $2; if (key in te) printf "  %-14s e2e %5.2f (%s)   CPU/msg %5.2f (%s)\n", key,
		         te[key] / $7, (te[key] / $7 >= 2) ? "met" : "NOT met", tc[key] / $9, (tc[key] / $9 <= 0.5) ? "met" : "NOT met" }' "$BASE/rows"
		echo "Postfix status=sent: $P_SENT (via mx.sink.bench.test: $P_RELAY); warnings/rejects/deferrals in maillog: $P_WARN"
	fi
	echo "todoku status=delivered: $T_DELIV (via mx.sink.bench.test: $T_RELAY); warning/error/deferral lines in log: $TODOKU_WARN; exit on SIGTERM: $TRC"
	echo "smtp-sink counted $SINK_TOTAL messages; expected $SENT"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
FAILED=0
