#!/bin/bash
# Same-run A/B of two geocache binaries: for each round, each binary in turn
# serves a fresh node (--max-memory 256MB) and redis-benchmark runs SET and
# GET at -P 1 and -P 16 against it. Prints per run:
#   round binary P SET-rps GET-rps
# Usage:
#   git worktree add /tmp/before OLD && (cd /tmp/before && go build -o /tmp/gc_before ./cmd/geocache)
#   go build -o /tmp/gc_after ./cmd/geocache
#   bench/ab-serve.sh /tmp/gc_before /tmp/gc_after [rounds]
set -u
A=$1 B=$2 ROUNDS=${3:-3} PORT=${PORT:-16395}
for round in $(seq "$ROUNDS"); do
	for bin in "$A" "$B"; do
		"$bin" serve --addr 127.0.0.1:$PORT --peer-addr 127.0.0.1:0 --max-memory 256MB --log-level warn >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
		for P in 1 16; do
			rps=$(redis-benchmark -p $PORT -c 50 -d 64 -r 100000 -n 300000 -P $P -t set,get --csv 2>/dev/null |
				awk -F'","' '/^"(SET|GET)"/ {gsub(/"/, "", $2); printf "%s ", $2}')
			echo "$round $bin P$P $rps"
		done
		kill $pid
		wait $pid 2>/dev/null
	done
done
