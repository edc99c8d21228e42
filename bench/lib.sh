# Shared pieces of the bench scripts (sourced, never run): messages,
# time arithmetic, and the todoku configuration every bench starts from.
# shellcheck shell=bash

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

now() { date +%s.%N; }
# rate N START END: N per second between two `now` readings
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { d = b - a; if (d <= 0) print "n/a"; else printf "%.0f", n / d }'; }
# secs START END: seconds between two `now` readings
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# bench_stop PID: SIGTERM to a todoku master, 10 s to stop, then SIGKILL
# to its process group (nothing when PID is empty or gone)
bench_stop() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL -- "-$1" 2>/dev/null
	return 0
}

# bench_todoku_conf FILE DIR ADDR PORT: the [server], [smtp] and [listen]
# sections of a bench todoku (spool under DIR, clients on 127/8 trusted,
# 1M messages, listening on ADDR:PORT); callers append their own sections.
bench_todoku_conf() {
	cat >"$1" <<CONF
[server]
hostname = bench-todoku.test
spool = $2/spool
user = todoku
log-level = info
trusted-networks = 127.0.0.0/8

[smtp]
max-message-size = 1M

[listen "smtp"]
address = $3:$4
CONF
	chmod 0644 "$1"
}
