#!/bin/bash
# Does a deferred backlog slow down fresh mail? For each backlog size N
# (BACKLOGS="0 5000 20000"), a fresh todoku fills its queue with N
# recipients at a dead destination (a route to a loopback port nothing
# listens on, [queue] retry 1h: after dead-after refused connections the
# whole backlog is deferred for an hour), then receives M fresh messages
# for a local mailbox over S sessions and delivers them. Reported per N:
# accept rate, end-to-end rate (until the last one is in the Maildir), and
# the queue role's CPU per fresh message (utime+stime of its process over
# the run). Method and numbers: docs/performance.md, "Session 4: deferred
# backlog". Run as root.
#
# Environment knobs:
#   BACKLOGS="0 5000 20000"  backlog sizes (recipients)
#   M=2000 S=4               fresh messages and sessions per run
#   RPM=100                  recipients per backlog message (<= 1000)
#   MSGLEN=2048              payload size (smtp-source -l)
#   KEEP=1                   keep the bench directory afterwards
#   TODOKU_BIN=...           binary to measure (default build/todoku)
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TODOKU_BIN:-$REPO/build/todoku}
HELPER="/usr/bin/python3 $REPO/bench/helper.py"
BACKLOGS=${BACKLOGS:-0 5000 20000}
M=${M:-2000}
S=${S:-4}
RPM=${RPM:-100}
MSGLEN=${MSGLEN:-2048}
T_ADDR=127.0.0.83 T_PORT=2525
DEAD_ADDR=127.0.0.84 DEAD_PORT=2599

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (roles drop to user todoku)"
[ -x "$BIN" ] || die "$BIN not found: run 'make build' first"
command -v smtp-source >/dev/null || die "smtp-source not found (apt-get install -y postfix)"
id todoku >/dev/null 2>&1 || die "user todoku does not exist"

BASE=$(mktemp -d /var/tmp/todoku-backlog-XXXXXX) || die "mktemp failed"
chmod 0755 "$BASE"
# a private copy: others may rebuild build/todoku during the run
cp "$BIN" "$BASE/todoku-bin" && chmod 0755 "$BASE/todoku-bin" || die "cannot copy $BIN"
BIN=$BASE/todoku-bin
TPID=

stop_todoku() {
	bench_stop "$TPID"
	TPID=
}
cleanup() {
	stop_todoku
	if [ "${KEEP:-0}" = 1 ]; then note "kept $BASE"; else rm -rf "$BASE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# queue_cpu: clock ticks (utime + stime) of the queue role so far
queue_cpu() { awk '{ print $14 + $15 }' "/proc/$QPID/stat"; }

# run_one N: a fresh daemon with N deferred recipients, then the fresh mail
run_one() {
	local n=$1 td=$BASE/n$1 msgs t0 t1 t2 c0 c1 hz deferred='' tf0 tf1=''
	mkdir -p "$td/spool" "$td/mail/bench.test"; chmod 0755 "$td" "$td/spool" "$td/mail" "$td/mail/bench.test"
	chown todoku: "$td/spool" "$td/mail/bench.test"
	bench_todoku_conf "$td/todoku.conf" "$td" "$T_ADDR" "$T_PORT"
	cat >>"$td/todoku.conf" <<EOF

[domain "bench.test"]
mailboxes = $td/mail/bench.test
users = sink

[queue]
retry = 1h

[route "backlog.test"]
via = smtp://[$DEAD_ADDR]:$DEAD_PORT
EOF
	setsid "$BIN" serve -f -c "$td/todoku.conf" </dev/null >>"$td/todoku.log" 2>&1 &
	TPID=$!
	$HELPER wait-port $T_ADDR $T_PORT 15 || { tail -20 "$td/todoku.log" >&2; die "todoku did not start"; }
	QPID=$(pgrep -P "$TPID" -f 'todoku --role queue') || die "no queue role"
	if [ "$n" -gt 0 ]; then
		msgs=$(( (n + RPM - 1) / RPM ))
		tf0=$(now)
		smtp-source -s 4 -m "$msgs" -r "$RPM" -l 512 -f a@bench.test \
			-t rcpt@backlog.test $T_ADDR:$T_PORT 2>"$td/fill.err" ||
			die "backlog fill failed: $(head -3 "$td/fill.err")"
		for _ in $(seq 600); do
			deferred=$(grep -c 'status=deferred' "$td/todoku.log")
			[ "$deferred" -ge $(( msgs * RPM )) ] && break
			sleep 1
		done
		[ "$deferred" -ge $(( msgs * RPM )) ] ||
			die "backlog: only $deferred of $(( msgs * RPM )) deferred after 600 s"
		tf1=$(now)
		sleep 2 # the last commits settle
	fi
	hz=$(getconf CLK_TCK)
	c0=$(queue_cpu)
	t0=$(now)
	smtp-source -s "$S" -m "$M" -l "$MSGLEN" -f a@bench.test -t sink@bench.test \
		$T_ADDR:$T_PORT 2>"$td/fresh.err" || die "fresh mail failed: $(head -3 "$td/fresh.err")"
	t1=$(now)
	t2=$($HELPER wait-count "$td/mail/bench.test/sink/new" "$M" 300) ||
		die "N=$n: only $t2 of $M fresh messages delivered after 300 s"
	c1=$(queue_cpu)
	printf 'N=%-6s backlog deferred=%-6s (filled in %s s) fresh %s msgs: accept %s msg/s, end-to-end %s msg/s (%s s), queue CPU %s ms/msg, load %s\n' \
		"$n" "${deferred:-0}" "$([ -n "$tf1" ] && secs "$tf0" "$tf1" || echo 0)" "$M" "$(rate "$M" "$t0" "$t1")" "$(rate "$M" "$t0" "$t2")" \
		"$(secs "$t0" "$t2")" \
		"$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v m="$M" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / m }')" \
		"$(cut -d' ' -f1-3 /proc/loadavg)"
	stop_todoku
}

note "backlogs: $BACKLOGS; fresh: $M messages over $S sessions; load $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $BACKLOGS; do
	run_one "$n"
done
