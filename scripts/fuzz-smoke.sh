#!/bin/bash
# fuzz-smoke.sh — run every libFuzzer target of a fuzz build briefly.
#
#   scripts/fuzz-smoke.sh BUILDDIR SECONDS JOBS
#
# Each target fuzz/fuzz_* of BUILDDIR runs for SECONDS from its corpus
# (BUILDDIR/corpus/NAME, plus fuzz/corpus/NAME when the repository has
# one), JOBS targets at a time: a libFuzzer run uses one CPU, so on a
# 2-CPU machine two at once halve the wall time and every target still
# gets its full SECONDS. Output goes to BUILDDIR/NAME.log; the first
# failing target's log tail is shown and the script exits 1 once the
# running ones have finished.
set -u
build=$1 seconds=$2 jobs=$3

one() {
	local f=$1 name corpus extra=
	name=$(basename "$f")
	corpus=fuzz/corpus/$name
	[ -d "$corpus" ] && extra=$corpus
	mkdir -p "$build/corpus/$name"
	echo "fuzz: $name for ${seconds}s"
	# shellcheck disable=SC2086 # extra is empty or one path without spaces
	if ! "$f" -max_total_time="$seconds" -print_final_stats=0 \
		"$build/corpus/$name" $extra >"$build/$name.log" 2>&1; then
		echo "fuzz: $name FAILED; last lines of $build/$name.log:"
		tail -40 "$build/$name.log"
		return 1
	fi
}

failed=0 running=0
for f in "$build"/fuzz/fuzz_*; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	if [ "$running" -ge "$jobs" ]; then
		wait -n || failed=1
		running=$((running - 1))
	fi
	[ "$failed" -eq 0 ] || break
	one "$f" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	wait -n || failed=1
	running=$((running - 1))
done
exit "$failed"
