#!/bin/bash
# A region of N geocache serve processes joined by gossip against one node,
# same run, interleaved: for each round, each setup in turn starts fresh,
# and redis-benchmark runs SET and GET at -P 1 and -P 16 against it (with
# --cluster against the region, so each key goes to its slot's primary, as
# a cluster-aware client sends it). Then the capacity: each setup, fresh,
# with the same --max-memory per node, takes KEYS keys of 64-byte values
# (written with redis-benchmark, through --cluster for the region), and the
# distinct keys the setup holds are counted (the union over its nodes).
# The region's nodes run with --cluster-redirect, so each keeps only its
# own slots (REDIRECT=0: without it, every node keeps every key); a
# redirecting node's SCAN lists the keys of the slots it is the primary
# of, so the union counts the keys their primaries hold (a key that only
# its other owner kept is not counted: the figure is a floor).
# Prints per run:
#   round setup P SET-rps GET-rps
#   capacity setup distinct-keys
# Usage:
#   go build -o /tmp/geocache ./cmd/geocache
#   bench/region-vs-node.sh /tmp/geocache [rounds] [nodes]
# Environment: KEYS (default 400000), CAP_MEMORY (default 16MB),
# REDIRECT (default 1), COPIES (default 2). ROUNDS 0 measures capacity only.
set -u
BIN=$1 ROUNDS=${2:-3} NODES=${3:-3}
KEYS=${KEYS:-400000} CAP_MEMORY=${CAP_MEMORY:-16MB}
BASE=${BASE:-16400} REDIRECT=${REDIRECT:-1} COPIES=${COPIES:-2}
PIDS=()
REGION_FLAGS=(--copies "$COPIES")
[ "$REDIRECT" = 1 ] && REGION_FLAGS+=(--cluster-redirect)

. "$(dirname "$0")/region-lib.sh"

start() { # setup memory
	if [ "$1" = node ]; then
		PIDS=()
		"$BIN" serve --addr 127.0.0.1:$BASE --peer-addr 127.0.0.1:0 --max-memory "$2" --log-level warn >/dev/null 2>&1 &
		PIDS+=($!)
		for _ in $(seq 100); do redis-cli -p $BASE ping >/dev/null 2>&1 && break; sleep 0.1; done
	else
		start_region "$BIN" "$NODES" "$BASE" "$2" "${REGION_FLAGS[@]}"
	fi
}

stop() { stop_region; }

target() { # setup: redis-benchmark's target flags
	if [ "$1" = node ]; then echo "-p $BASE"; else echo "--cluster -p $((BASE + 1))"; fi
}

for round in $(seq "$ROUNDS"); do
	for setup in node region; do
		start $setup 256MB
		for P in 1 16; do
			# shellcheck disable=SC2046
			rps=$(redis-benchmark $(target $setup) -c 50 -d 64 -r 100000 -n 300000 -P $P -t set,get --csv 2>/dev/null |
				awk -F'","' '/^"(SET|GET)"/ {gsub(/"/, "", $2); printf "%s ", $2}')
			echo "$round $setup P$P $rps"
		done
		stop
	done
done

for setup in node region; do
	start $setup "$CAP_MEMORY"
	# shellcheck disable=SC2046
	redis-benchmark $(target $setup) -c 50 -d 64 -r "$KEYS" -n $((KEYS * 2)) -P 16 -t set -q >/dev/null 2>&1
	sleep 2 # the replication of the last writes
	if [ "$setup" = node ]; then
		ports=$BASE
	else
		ports=$(seq $((BASE + 1)) $((BASE + NODES)))
	fi
	held=$(for p in $ports; do redis-cli -p "$p" --scan; done | sort -u | wc -l)
	echo "capacity $setup $held"
	stop
done
