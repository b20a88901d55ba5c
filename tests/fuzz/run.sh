#!/bin/sh
# Runs each libFuzzer target for the given number of seconds, on its seed
# corpus (tests/fuzz/corpus/NAME) copied to a scratch directory.
set -eu
secs=$1
shift
for bin in "$@"; do
	name=$(basename "$bin")
	work=$(mktemp -d)
	if [ -d "tests/fuzz/corpus/$name" ]; then
		cp -r "tests/fuzz/corpus/$name/." "$work/"
	fi
	echo "fuzz: $name for ${secs}s"
	"$bin" -max_total_time="$secs" -print_final_stats=1 "$work" \
	    >"$work.log" 2>&1 || { tail -n 60 "$work.log"; exit 1; }
	grep -E 'stat::number_of_executed_units|Done' "$work.log" | tail -n 2
	rm -rf "$work" "$work.log"
done
