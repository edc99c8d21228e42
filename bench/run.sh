#!/bin/bash
# todoku accept-rate benchmark against Postfix on the same machine.
# Method and numbers: docs/performance.md.  Run as root (`make bench`).
#
# Environment knobs:
#   N1=2000 N16=5000      messages for the 1-session and 16-session runs
#   NSTRACE=2000          messages for each fsync-counting pass (16 sessions)
#   NLAT=500              messages for the 1-session latency run (one
#                         connection, end-of-data -> 250 per message)
#   MSGLEN=4096           message payload size (smtp-source -l)
#   SKIP_POSTFIX=1        todoku only
#   PF_MAILDIR=1          Postfix delivers to a Maildir with virtual(8)
#                         instead of discard(8) (symmetric end-to-end rates)
#   KEEP=1                keep the bench directory (logs, spools) afterwards
#   TODOKU_BIN=...        binary to measure (default build/todoku)
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TODOKU_BIN:-$REPO/build/todoku}
HELPER="/usr/bin/python3 $REPO/bench/helper.py"
N1=${N1:-2000}
N16=${N16:-5000}
NSTRACE=${NSTRACE:-2000}
NLAT=${NLAT:-500}
MSGLEN=${MSGLEN:-4096}
T_ADDR=127.0.0.77 T_PORT=2525
P_ADDR=127.0.0.78 P_PORT=2525
RESULTS=$REPO/bench/results
OUT=$RESULTS/latest.txt

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (roles drop to user todoku, Postfix needs root)"
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
for t in smtp-source postconf postfix strace; do
	command -v $t >/dev/null || die "$t not found (apt-get install -y postfix strace)"
done
id todoku >/dev/null 2>&1 || die "user todoku does not exist"

BASE=$(mktemp -d /var/tmp/todoku-bench-XXXXXX) || die "mktemp failed"
chmod 0755 "$BASE"
# Measure a private copy: others may rebuild build/todoku during the run,
# and the roles re-execute the master's binary.
BIN_SRC=$BIN
BIN=$BASE/todoku-bin
cp "$BIN_SRC" "$BIN" && chmod 0755 "$BIN" || die "cannot copy $BIN_SRC"
TPID= STRACE_PIDS= PF_DIR= FAILED=1 LSTOPPED=

cleanup() {
	local p
	for p in $STRACE_PIDS; do kill -INT "$p" 2>/dev/null; done
	[ -n "$LSTOPPED" ] && kill -CONT "$LSTOPPED" 2>/dev/null
	bench_stop "$TPID"
	if [ -n "$PF_DIR" ] && [ -f "$PF_DIR/queue/pid/master.pid" ]; then
		postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1 || postfix -c "$PF_DIR/etc" abort >/dev/null 2>&1
		sleep 1
	fi
	if [ "$FAILED" = 1 ]; then
		mkdir -p "$RESULTS/logs"
		cp "$BASE"/todoku/todoku.log "$RESULTS/logs/" 2>/dev/null
		cp "$BASE"/postfix/maillog "$RESULTS/logs/postfix-maillog" 2>/dev/null
		cp "$BASE"/*.err "$RESULTS/logs/" 2>/dev/null
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


# --- machine and filesystem ------------------------------------------------
FSTYPE=$(df -T "$BASE" | awk 'NR == 2 { print $2 }')
FSDEV=$(df -T "$BASE" | awk 'NR == 2 { print $1 }')
FSMAGIC=$(stat -f -c %T "$BASE")
MOUNTOPTS=$(findmnt -n -o OPTIONS -T "$BASE" 2>/dev/null)
read -r FS_MED FS_P99 FS_MAX <<EOF
$($HELPER fsync-latency "$BASE" 200)
EOF
note "filesystem $FSTYPE ($FSMAGIC) on $FSDEV; fdatasync of a 4 KiB append: median $FS_MED ms, p99 $FS_P99 ms"

# --- smtp-source runs --------------------------------------------------------
# run_source LABEL SESSIONS COUNT ADDR PORT [smtp-source options]: sets T0 T1 ACCEPT
run_source() {
	local label=$1 s=$2 m=$3 addr=$4 port=$5 rc
	shift 5
	T0=$(now)
	smtp-source "$@" -s "$s" -m "$m" -l "$MSGLEN" -f a@bench.test -t sink@bench.test \
		"$addr:$port" 2>"$BASE/smtp-source-$label.err"
	rc=$?
	T1=$(now)
	ACCEPT=$(rate "$m" "$T0" "$T1")
	if [ $rc != 0 ] || [ -s "$BASE/smtp-source-$label.err" ]; then
		note "smtp-source ($label) exit $rc:"
		head -20 "$BASE/smtp-source-$label.err" >&2
		return 1
	fi
	return 0
}

# --- todoku ------------------------------------------------------------------
TD=$BASE/todoku
mkdir -m 0755 -p "$TD" "$TD/spool" "$TD/mail/bench.test"
chown todoku: "$TD/spool" "$TD/mail/bench.test"
bench_todoku_conf "$TD/todoku.conf" "$TD" "$T_ADDR" "$T_PORT"
cat >>"$TD/todoku.conf" <<EOF

[domain "bench.test"]
mailboxes = $TD/mail/bench.test
users = sink
EOF
NEWDIR=$TD/mail/bench.test/sink/new

start_todoku() {
	# setsid: own process group, so cleanup can kill every role at once
	setsid "$@" "$BIN" serve -f -c "$TD/todoku.conf" </dev/null >>"$TD/todoku.log" 2>&1 &
	TPID=$!
	$HELPER wait-port $T_ADDR $T_PORT 15 || { tail -20 "$TD/todoku.log" >&2; die "todoku did not start"; }
}

# todoku_run LABEL SESSIONS COUNT: sets ACC_* E2E_* BACKLOG_*
DELIVERED=0
todoku_run() {
	local label=$1 s=$2 m=$3 t2 left
	run_source "todoku-$label" "$s" "$m" $T_ADDR $T_PORT || return 1
	left=$(( DELIVERED + m - $($HELPER count "$NEWDIR") ))
	t2=$($HELPER wait-count "$NEWDIR" $(( DELIVERED + m )) 120) || {
		note "todoku ($label): only $t2 of $(( DELIVERED + m )) messages in $NEWDIR after 120 s"
		return 1
	}
	DELIVERED=$(( DELIVERED + m ))
	eval "ACC_$label=\$ACCEPT E2E_$label=\$(rate $m $T0 $t2) BACKLOG_$label=\$left"
	eval "DUR_$label=\$(secs $T0 $T1) DURE_$label=\$(secs $T0 $t2)"
	note "todoku $label: $m msgs accepted in $(secs "$T0" "$T1") s = $ACCEPT msg/s;" \
		"all delivered after $(secs "$T0" "$t2") s = $(rate "$m" "$T0" "$t2") msg/s; $left still queued when the client finished"
}

start_todoku
# warm-up (16 sessions, so Postfix has its processes running): page cache, SQLite file growth, Maildir creation
run_source todoku-warmup 16 400 $T_ADDR $T_PORT || die "todoku warm-up failed"
$HELPER wait-count "$NEWDIR" 400 60 >/dev/null || die "todoku warm-up: messages not delivered"
DELIVERED=400
todoku_run s1 1 "$N1" || die "todoku 1-session run failed"
todoku_run s16 16 "$N16" || die "todoku 16-session run failed"

# 1-session latency (DESIGN §7): NLAT messages over one connection, time from
# writing the final "\r\n.\r\n" to the 250.  The queue is empty here; local
# delivery runs concurrently, as it would in service.  fdatasync is measured
# again right before, so the comparison uses the disk as it is now.
read -r FSL_MED FSL_P99 FSL_MAX <<EOF
$($HELPER fsync-latency "$BASE" 200)
EOF
read -r LAT_MED LAT_P99 LAT_MAX <<EOF
$($HELPER smtp-latency $T_ADDR $T_PORT "$NLAT" "$MSGLEN" "$BASE/latency-ms.txt" 2>"$BASE/latency.err")
EOF
[ -n "$LAT_MAX" ] || { cat "$BASE/latency.err" >&2; die "todoku latency run failed"; }
$HELPER wait-count "$NEWDIR" $(( DELIVERED + NLAT )) 120 >/dev/null || die "todoku latency run: messages not delivered"
DELIVERED=$(( DELIVERED + NLAT ))
note "todoku 1-session end-of-data -> 250 ($NLAT msgs, one connection): median $LAT_MED ms, p99 $LAT_P99 ms, max $LAT_MAX ms;" \
	"fdatasync just before: median $FSL_MED ms, p99 $FSL_P99 ms"

# The same with the local role stopped: the queue commits received
# messages only, so the tail shows the commit path without Maildir
# fsyncs of the previous messages sharing the file system journal.
QPID=$(pgrep -P "$TPID" -f 'todoku --role queue')
LPID=$(pgrep -P "$TPID" -f 'todoku --role local') || die "cannot find the local role"
kill -STOP "$LPID" || die "cannot stop the local role"
LSTOPPED=$LPID
read -r FSR_MED FSR_P99 FSR_MAX <<EOF
$($HELPER fsync-latency "$BASE" 200)
EOF
read -r LATR_MED LATR_P99 LATR_MAX <<EOF
$($HELPER smtp-latency $T_ADDR $T_PORT "$NLAT" "$MSGLEN" "$BASE/latency-rx-ms.txt" 2>"$BASE/latency-rx.err")
EOF
kill -CONT "$LPID"; LSTOPPED=
[ -n "$LATR_MAX" ] || { cat "$BASE/latency-rx.err" >&2; die "todoku receive-only latency run failed"; }
$HELPER wait-count "$NEWDIR" $(( DELIVERED + NLAT )) 120 >/dev/null || die "todoku receive-only latency run: messages not delivered"
DELIVERED=$(( DELIVERED + NLAT ))
note "todoku 1-session end-of-data -> 250, local role stopped: median $LATR_MED ms, p99 $LATR_P99 ms, max $LATR_MAX ms;" \
	"fdatasync just before: median $FSR_MED ms, p99 $FSR_P99 ms"

# fsync-counting pass: strace attached to the running roles (slows them; the
# rate of this pass is not reported).
ROLE_PIDS=$(pgrep -P "$TPID" -f 'todoku --role') || die "cannot find todoku roles under pid $TPID"
QPID=$(pgrep -P "$TPID" -f 'todoku --role queue')
LPID=$(pgrep -P "$TPID" -f 'todoku --role local')
SPIDS=$(pgrep -P "$TPID" -f 'todoku --role smtp-in' | sed 's/^/-p /' | tr '\n' ' ')
strace -f -c -e trace=fsync,fdatasync,sync_file_range -o "$BASE/strace-queue.txt" -p "$QPID" 2>"$BASE/strace-queue.err" &
STRACE_PIDS="$!"
strace -f -c -e trace=fsync,fdatasync,sync_file_range -o "$BASE/strace-local.txt" -p "$LPID" 2>"$BASE/strace-local.err" &
STRACE_PIDS="$STRACE_PIDS $!"
# shellcheck disable=SC2086
strace -f -c -e trace=fsync,fdatasync,sync_file_range -o "$BASE/strace-smtpin.txt" $SPIDS 2>"$BASE/strace-smtpin.err" &
STRACE_PIDS="$STRACE_PIDS $!"
sleep 1
run_source todoku-strace 16 "$NSTRACE" $T_ADDR $T_PORT || die "todoku strace pass failed"
$HELPER wait-count "$NEWDIR" $(( DELIVERED + NSTRACE )) 120 >/dev/null || die "todoku strace pass: messages not delivered"
DELIVERED=$(( DELIVERED + NSTRACE ))
sleep 1.5   # let the last delivery results commit
for p in $STRACE_PIDS; do kill -INT "$p"; done
for p in $STRACE_PIDS; do wait "$p" 2>/dev/null; done
STRACE_PIDS=
calls() { awk '$NF == "fsync" || $NF == "fdatasync" || $NF == "sync_file_range" { n += $4 } END { print n + 0 }' "$1"; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
FS_Q=$(calls "$BASE/strace-queue.txt") FS_L=$(calls "$BASE/strace-local.txt") FS_S=$(calls "$BASE/strace-smtpin.txt")
note "todoku fsync-family calls for $NSTRACE messages: queue $FS_Q ($(per "$FS_Q" "$NSTRACE")/msg), local $FS_L, smtp-in $FS_S"

# Receive-only pass: the same 16-session run with the local role stopped
# (SIGSTOP), so the queue role commits received messages only: no delivery
# results, no removals.  The queue keeps at most QUEUE_MAX_INFLIGHT (64)
# deliveries outstanding and otherwise just queues; strace stops before
# SIGCONT, so the delivery bookkeeping of this pass is not counted.
LPID=$(pgrep -P "$TPID" -f 'todoku --role local') || die "cannot find the local role"
strace -f -c -e trace=fsync,fdatasync,sync_file_range -o "$BASE/strace-queue-rx.txt" -p "$QPID" 2>"$BASE/strace-queue-rx.err" &
STRACE_PIDS="$!"
sleep 1
kill -STOP "$LPID" || die "cannot stop the local role"
LSTOPPED=$LPID
run_source todoku-strace-rx 16 "$NSTRACE" $T_ADDR $T_PORT || die "todoku receive-only strace pass failed"
sleep 1.5   # nothing should be left to commit; a late checkpoint would be counted
kill -INT $STRACE_PIDS; wait $STRACE_PIDS 2>/dev/null; STRACE_PIDS=
RX_LEFT=$(( DELIVERED + NSTRACE - $($HELPER count "$NEWDIR") ))
kill -CONT "$LPID"; LSTOPPED=
$HELPER wait-count "$NEWDIR" $(( DELIVERED + NSTRACE )) 120 >/dev/null || die "todoku receive-only pass: messages not delivered after SIGCONT"
DELIVERED=$(( DELIVERED + NSTRACE ))
sleep 1.5
FS_QRX=$(calls "$BASE/strace-queue-rx.txt")
note "todoku receive-only pass (local role stopped): queue role $FS_QRX fsync-family calls for $NSTRACE messages" \
	"($(per "$FS_QRX" "$NSTRACE")/msg); $RX_LEFT of them undelivered when strace stopped"

# Receive-only passes counted with perf tracepoints instead of strace:
# perf counts syscall entries in the kernel without stopping the process
# at each call, so the queue role runs at its normal speed and the groups
# are the groups it forms in service.  One pass with a connection per
# message (as above), one with smtp-source -d (16 persistent connections,
# MAIL/RCPT/DATA per message: how MTAs that reuse connections send).
# rx_perf_pass LABEL [smtp-source options]: sets RXP_CALLS RXP_ACCEPT
rx_perf_pass() {
	local label=$1 ppid
	shift
	LPID=$(pgrep -P "$TPID" -f 'todoku --role local') || die "cannot find the local role"
	perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_sync_file_range \
		-o "$BASE/perf-$label.txt" -p "$QPID" 2>"$BASE/perf-$label.err" &
	ppid=$!
	STRACE_PIDS="$ppid"
	sleep 1
	kill -STOP "$LPID" || die "cannot stop the local role"
	LSTOPPED=$LPID
	run_source "todoku-$label" 16 "$NSTRACE" $T_ADDR $T_PORT "$@" || die "todoku $label pass failed"
	RXP_ACCEPT=$ACCEPT
	sleep 1.5
	kill -INT "$ppid"; wait "$ppid" 2>/dev/null; STRACE_PIDS=
	kill -CONT "$LPID"; LSTOPPED=
	$HELPER wait-count "$NEWDIR" $(( DELIVERED + NSTRACE )) 120 >/dev/null || die "todoku $label pass: messages not delivered after SIGCONT"
	DELIVERED=$(( DELIVERED + NSTRACE ))
	sleep 1.5
	RXP_CALLS=$(awk -F, '$3 ~ /sys_enter_(fsync|fdatasync|sync_file_range)/ { n += $1 } END { print n + 0 }' "$BASE/perf-$label.txt")
	note "todoku $label (local role stopped, perf): queue role $RXP_CALLS fsync-family calls for $NSTRACE messages" \
		"($(per "$RXP_CALLS" "$NSTRACE")/msg, one per $(per "$NSTRACE" "$RXP_CALLS")); accepted at $RXP_ACCEPT msg/s"
}
FS_PRX= FS_PRXD= ACC_PRX= ACC_PRXD=
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_fdatasync true >/dev/null 2>&1; then
	rx_perf_pass rx-perf
	FS_PRX=$RXP_CALLS ACC_PRX=$RXP_ACCEPT
	rx_perf_pass rx-perf-reuse -d
	FS_PRXD=$RXP_CALLS ACC_PRXD=$RXP_ACCEPT
else
	note "perf with syscall tracepoints not available: perf passes skipped"
fi

# misbehaviour check before stopping
TODOKU_WARN=$(grep -ciE '\]: (error|warning|fatal|panic)|Sanitizer|runtime error|status=(deferred|bounced)' "$TD/todoku.log")
kill -TERM "$TPID"
for _ in $(seq 100); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
wait "$TPID"; TRC=$?
TPID=
[ "$TRC" = 0 ] || note "todoku exited $TRC after SIGTERM"
[ "$TODOKU_WARN" = 0 ] || { note "todoku log has $TODOKU_WARN warning/error lines:"; grep -iE '\]: (error|warning|fatal|panic)|Sanitizer|runtime error|status=(deferred|bounced)' "$TD/todoku.log" | head -10 >&2; }

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
		"mydestination = bench.test" \
		"inet_interfaces = 127.0.0.1" \
		"inet_protocols = ipv4" \
		"mynetworks = 127.0.0.0/8" \
		"local_transport = discard" \
		"local_recipient_maps =" \
		"virtual_mailbox_domains =" \
		"alias_maps =" "alias_database =" \
		"relayhost =" \
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
	# accepts addresses configured on an interface, and 127.0.0.78 is not.
	if [ "${PF_MAILDIR:-0}" = 1 ]; then
		# Postfix delivers to a Maildir too (virtual(8)), like todoku
		mkdir -m 0755 -p "$PF_DIR/mail"
		chown todoku: "$PF_DIR/mail"
		$PC -e "mydestination =" "virtual_mailbox_domains = bench.test" \
			"virtual_mailbox_base = $PF_DIR/mail" "virtual_mailbox_maps = static:sink/" \
			"virtual_uid_maps = static:$(id -u todoku)" "virtual_gid_maps = static:$(id -g todoku)" \
			"virtual_minimum_uid = 100" || die "postconf (virtual) failed"
		PF_DELIVERY="virtual(8) to Maildir $PF_DIR/mail/sink/"
	else
		PF_DELIVERY="discard(8)"
	fi
	$PC -F -e '*/*/chroot = n' || die "postconf -F failed"
	$PC -MX smtp/inet || die "postconf -MX failed"
	$PC -M -e "$P_ADDR:$P_PORT/inet = $P_ADDR:$P_PORT inet n - n - - smtpd" || die "postconf -M failed"
	postfix -c "$PF_DIR/etc" check 2>"$BASE/postfix-check.err" || { cat "$BASE/postfix-check.err" >&2; die "postfix check failed"; }
	postfix -c "$PF_DIR/etc" start 2>"$BASE/postfix-start.err" || { cat "$BASE/postfix-start.err" >&2; die "postfix start failed"; }
	$HELPER wait-port $P_ADDR $P_PORT 15 || die "Postfix did not listen on $P_ADDR:$P_PORT"
	PFQ="$PF_DIR/queue/maildrop $PF_DIR/queue/incoming $PF_DIR/queue/active $PF_DIR/queue/deferred"

	# postfix_run LABEL SESSIONS COUNT
	postfix_run() {
		local label=$1 s=$2 m=$3 t2 left
		run_source "postfix-$label" "$s" "$m" $P_ADDR $P_PORT || return 1
		# shellcheck disable=SC2086
		left=$($HELPER wait-empty 0 $PFQ | tail -1)
		case $left in *.*) left=0 ;; esac
		# shellcheck disable=SC2086
		t2=$($HELPER wait-empty 120 $PFQ) || { note "Postfix ($label): $t2 queue files left after 120 s"; return 1; }
		eval "PACC_$label=\$ACCEPT PE2E_$label=\$(rate $m $T0 $t2) PBACKLOG_$label=\$left"
		eval "PDUR_$label=\$(secs $T0 $T1) PDURE_$label=\$(secs $T0 $t2)"
		note "postfix $label: $m msgs accepted in $(secs "$T0" "$T1") s = $ACCEPT msg/s;" \
			"queue empty after $(secs "$T0" "$t2") s = $(rate "$m" "$T0" "$t2") msg/s; $left queue files when the client finished"
	}
	run_source postfix-warmup 16 400 $P_ADDR $P_PORT || die "Postfix warm-up failed"
	# shellcheck disable=SC2086
	$HELPER wait-empty 60 $PFQ >/dev/null || die "Postfix warm-up: queue not empty"
	postfix_run s1 1 "$N1" || die "Postfix 1-session run failed"
	postfix_run s16 16 "$N16" || die "Postfix 16-session run failed"

	# fsync count for the whole instance (every process in master's session)
	PMASTER=$(tr -d ' \n' <"$PF_DIR/queue/pid/master.pid")
	PSID=$(ps -o sid= -p "$PMASTER" | tr -d ' ')
	PPIDS=$(pgrep -s "$PSID" | sed 's/^/-p /' | tr '\n' ' ')
	# shellcheck disable=SC2086
	strace -f -c -e trace=fsync,fdatasync,sync_file_range -o "$BASE/strace-postfix.txt" $PPIDS 2>"$BASE/strace-postfix.err" &
	STRACE_PIDS=$!
	sleep 1
	run_source postfix-strace 16 "$NSTRACE" $P_ADDR $P_PORT || die "Postfix strace pass failed"
	# shellcheck disable=SC2086
	$HELPER wait-empty 120 $PFQ >/dev/null || die "Postfix strace pass: queue not empty"
	sleep 1
	kill -INT $STRACE_PIDS; wait $STRACE_PIDS 2>/dev/null; STRACE_PIDS=
	FS_P=$(calls "$BASE/strace-postfix.txt")
	note "Postfix fsync-family calls for $NSTRACE messages: $FS_P ($(per "$FS_P" "$NSTRACE")/msg)"

	P_SENT=$(grep -c 'status=sent' "$PF_DIR/maillog" 2>/dev/null)
	P_WANT=$(( 400 + N1 + N16 + NSTRACE ))
	P_WARN=$(grep -cE 'warning:|fatal:|panic:|reject:' "$PF_DIR/maillog" 2>/dev/null)
	postfix -c "$PF_DIR/etc" stop >/dev/null 2>&1
	for _ in $(seq 50); do [ -f "$PF_DIR/queue/pid/master.pid" ] && kill -0 "$PMASTER" 2>/dev/null || break; sleep 0.1; done
	PF_DIR_DONE=$PF_DIR
	PF_DIR=
fi

# --- report ------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
mkdir -p "$RESULTS"
{
	echo "todoku benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "todoku binary     $BIN_SRC, built $(date -u -r "$BIN_SRC" '+%Y-%m-%d %H:%M:%S UTC'), sha256 $(sha256sum "$BIN" | cut -c1-12)"
	echo "todoku commit     $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
	echo "postfix           $(postconf -d -h mail_version 2>/dev/null)"
	echo "machine           $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel            $(uname -sr)"
	echo "filesystem        $FSTYPE ($FSMAGIC) on $FSDEV, options $MOUNTOPTS"
	echo "fdatasync 4 KiB   median $FS_MED ms, p99 $FS_P99 ms, max $FS_MAX ms (200 appends)"
	echo "delivery          todoku: Maildir (local role); Postfix: ${PF_DELIVERY:-not run}"
	echo "message           $MSGLEN bytes payload (smtp-source -l), 1 recipient, one connection per message"
	echo
	printf '%-34s %12s %12s\n' "" "todoku" "Postfix"
	printf '%-34s %12s %12s\n' "accepted msg/s, 1 session (N=$N1)" "$ACC_s1" "${PACC_s1:--}"
	printf '%-34s %12s %12s\n' "accepted msg/s, 16 sessions (N=$N16)" "$ACC_s16" "${PACC_s16:--}"
	printf '%-34s %12s %12s\n' "end-to-end msg/s, 1 session" "$E2E_s1" "${PE2E_s1:--}"
	printf '%-34s %12s %12s\n' "end-to-end msg/s, 16 sessions" "$E2E_s16" "${PE2E_s16:--}"
	printf '%-34s %12s %12s\n' "still queued at client end, 1 s." "$BACKLOG_s1" "${PBACKLOG_s1:--}"
	printf '%-34s %12s %12s\n' "still queued at client end, 16 s." "$BACKLOG_s16" "${PBACKLOG_s16:--}"
	printf '%-34s %12s %12s\n' "fsync calls/msg, 16 s. (N=$NSTRACE)" "$(per "$((FS_Q + FS_L + FS_S))" "$NSTRACE")" "${FS_P:+$(per "$FS_P" "$NSTRACE")}"
	echo
	echo "todoku fsync+fdatasync calls for $NSTRACE messages: queue $FS_Q ($(per "$FS_Q" "$NSTRACE")/msg), local $FS_L ($(per "$FS_L" "$NSTRACE")/msg), smtp-in $FS_S"
	echo "todoku queue role, receive only (local role SIGSTOPped, 16 s., N=$NSTRACE): $FS_QRX calls = $(per "$FS_QRX" "$NSTRACE")/msg" \
		"= one per $(awk -v a="$FS_QRX" -v b="$NSTRACE" 'BEGIN { if (a > 0) printf "%.1f", b / a; else print "inf" }') messages" \
		"(target <= 0.125/msg, one per 8: $(awk -v a="$FS_QRX" -v b="$NSTRACE" 'BEGIN { print (a / b <= 0.125 ? "met" : "NOT met") }'))"
	rx_line() { # LABEL CALLS RATE
		[ -n "$2" ] || return 0
		echo "todoku queue role, receive only, perf-counted, $1: $2 calls = $(per "$2" "$NSTRACE")/msg" \
			"= one per $(awk -v a="$2" -v b="$NSTRACE" 'BEGIN { if (a > 0) printf "%.1f", b / a; else print "inf" }') messages at $3 msg/s" \
			"(target one per 8: $(awk -v a="$2" -v b="$NSTRACE" 'BEGIN { print (a / b <= 0.125 ? "met" : "NOT met") }'))"
	}
	rx_line "connection per message" "$FS_PRX" "$ACC_PRX"
	rx_line "16 persistent connections (smtp-source -d)" "$FS_PRXD" "$ACC_PRXD"
	echo "todoku 1-session end-of-data -> 250, one connection, N=$NLAT: median $LAT_MED ms, p99 $LAT_P99 ms, max $LAT_MAX ms"
	echo "  fdatasync measured just before it: median $FSL_MED ms, p99 $FSL_P99 ms, max $FSL_MAX ms"
	echo "  target p99 <= 2 x fdatasync median (the \"measured fdatasync latency\") = $(awk -v m="$FSL_MED" 'BEGIN { printf "%.3f", 2 * m }') ms:" \
		"$(awk -v l="$LAT_P99" -v m="$FSL_MED" 'BEGIN { print (l <= 2 * m ? "met" : "NOT met") }');" \
		"against 2 x fdatasync p99 = $(awk -v m="$FSL_P99" 'BEGIN { printf "%.3f", 2 * m }') ms:" \
		"$(awk -v l="$LAT_P99" -v m="$FSL_P99" 'BEGIN { print (l <= 2 * m ? "within" : "not within") }')"
	echo "todoku 1-session end-of-data -> 250, local role stopped (receive only), N=$NLAT: median $LATR_MED ms, p99 $LATR_P99 ms, max $LATR_MAX ms"
	echo "  fdatasync measured just before it: median $FSR_MED ms, p99 $FSR_P99 ms, max $FSR_MAX ms;" \
		"target p99 <= 2 x median = $(awk -v m="$FSR_MED" 'BEGIN { printf "%.3f", 2 * m }') ms:" \
		"$(awk -v l="$LATR_P99" -v m="$FSR_MED" 'BEGIN { print (l <= 2 * m ? "met" : "NOT met") }')"
	[ -n "${FS_P:-}" ] && echo "Postfix fsync+fdatasync calls for $NSTRACE messages: $FS_P (whole instance)"
	echo "todoku 16/1-session accept ratio: $(ratio "$ACC_s16" "$ACC_s1")"
	if [ -n "${PACC_s16:-}" ]; then
		R=$(ratio "$ACC_s16" "$PACC_s16")
		echo "todoku/Postfix accept rate at 16 sessions: $R (target >= 2.00: $(awk -v r="$R" 'BEGIN { print (r >= 2 ? "met" : "NOT met") }'))"
		echo "todoku/Postfix accept rate at 1 session:  $(ratio "$ACC_s1" "$PACC_s1")"
		echo "Postfix delivered (status=sent): $P_SENT of $P_WANT; warnings/rejects in maillog: $P_WARN"
	fi
	echo "todoku delivered to Maildir: $($HELPER count "$NEWDIR") of $DELIVERED; warning/error lines in log: $TODOKU_WARN; exit on SIGTERM: $TRC"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
FAILED=0
