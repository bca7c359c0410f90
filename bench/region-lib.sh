# Sourced by the region benchmarks: start_region and stop_region.
#
# start_region BIN NODES BASE MEMORY [serve flags...] starts a region of
# NODES geocache serve processes on loopback (RESP on BASE+i, replication
# on BASE+100+i, gossip on BASE+200+i, each joining node 1), waits until
# node 1's CLUSTER NODES lists every node with slots, and sets PIDS.
start_region() {
	local bin=$1 nodes=$2 base=$3 memory=$4
	shift 4
	PIDS=()
	for i in $(seq "$nodes"); do
		local join=()
		[ "$i" -gt 1 ] && join=(--join 127.0.0.1:$((base + 200 + 1)))
		"$bin" serve --region eu --node "$i" --addr 127.0.0.1:$((base + i)) --peer-addr 127.0.0.1:$((base + 100 + i)) \
			--gossip-addr 127.0.0.1:$((base + 200 + i)) "${join[@]}" "$@" --max-memory "$memory" --log-level warn >/dev/null 2>&1 &
		PIDS+=($!)
		for _ in $(seq 100); do redis-cli -p $((base + i)) ping >/dev/null 2>&1 && break; sleep 0.1; done
	done
	for _ in $(seq 100); do
		[ "$(redis-cli -p $((base + 1)) cluster nodes | awk 'NF > 8' | wc -l)" -eq "$nodes" ] && break
		sleep 0.1
	done
}

# stop_region stops the processes of PIDS and waits for them.
stop_region() {
	kill "${PIDS[@]}" 2>/dev/null
	wait "${PIDS[@]}" 2>/dev/null
}
