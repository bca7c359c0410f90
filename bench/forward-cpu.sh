#!/bin/bash
# What forwarding costs: a region of NODES geocache serve processes with
# --cluster-forward (each keeps only its own slots), driven by
# redis-benchmark two ways, same run, interleaved per round:
#   direct   redis-benchmark --cluster: each key sent to its slot's primary,
#            as a cluster-aware client does (nothing is forwarded);
#   forward  plain redis-benchmark on node 1: the commands on slots node 1
#            does not own are forwarded to their owners (with COPIES=2 and
#            3 nodes, a third of them; with COPIES=1, two thirds).
# For each, the requests per second and the CPU time of all the region's
# processes (utime + stime from /proc, clock ticks) per request, in
# microseconds: CPU per request is robust to other load on the machine,
# requests per second is not.
# Prints: round mode P command rps cpu-us-per-request forwarded
# Usage:
#   go build -o /tmp/geocache ./cmd/geocache
#   bench/forward-cpu.sh /tmp/geocache [rounds]
# Environment: NODES (3), COPIES (2), REQUESTS (300000), CLIENTS (50).
set -u
BIN=$1 ROUNDS=${2:-3}
NODES=${NODES:-3} COPIES=${COPIES:-2} REQUESTS=${REQUESTS:-300000} CLIENTS=${CLIENTS:-50}
BASE=${BASE:-16600}
TICK=$(getconf CLK_TCK)
PIDS=()

. "$(dirname "$0")/region-lib.sh"

ticks() { # the CPU ticks of the region's processes so far
	local t=0
	for p in "${PIDS[@]}"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo $t
}

forwarded() {
	redis-cli -p $((BASE + 1)) info stats | awk -F: '/^geocache_forwarded_commands:/ {print $2+0}'
}

start_region "$BIN" "$NODES" "$BASE" 256MB --copies "$COPIES" --cluster-forward
trap stop_region EXIT
for round in $(seq "$ROUNDS"); do
	for mode in direct forward; do
		target="--cluster -p $((BASE + 1))"
		[ $mode = forward ] && target="-p $((BASE + 1))"
		for P in 1 16; do
			for t in set get; do
				t0=$(ticks) f0=$(forwarded)
				# shellcheck disable=SC2086
				rps=$(redis-benchmark $target -c "$CLIENTS" -d 64 -r 100000 -n "$REQUESTS" -P $P -t $t --csv 2>/dev/null |
					awk -F'","' '/^"(SET|GET)"/ {gsub(/"/, "", $2); print $2}')
				t1=$(ticks) f1=$(forwarded)
				cpu=$(awk -v d=$((t1 - t0)) -v tick="$TICK" -v n="$REQUESTS" 'BEGIN {printf "%.2f", d / tick * 1e6 / n}')
				echo "$round $mode P$P $t $rps $cpu $((f1 - f0))"
			done
		done
	done
done
