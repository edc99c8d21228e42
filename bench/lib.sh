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
