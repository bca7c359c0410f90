#!/usr/bin/env bash
# Long chaos runs, back to back: scripts/chaos-runs.sh [OUT [DURATION [SEEDS...]]]
# Defaults: OUT=chaos-runs (git-ignored), DURATION=5m, seeds 1001..1010.
# Each run writes OUT/seed-N/{report.json,summary.txt,history.json.gz,node-*.log};
# OUT/summary.txt collects every run's summary. Exit status 1 if any run failed.
# The runs use geocache-chaos's defaults: the last region evicts heavily
# (--small-region-memory 4KB) and restarted regions must refill.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-chaos-runs}
duration=${2:-5m}
shift $(( $# > 2 ? 2 : $# ))
seeds=("$@")
if [ ${#seeds[@]} -eq 0 ]; then seeds=($(seq 1001 1010)); fi
mkdir -p "$out"
bin="$out/geocache"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo "+changes")
go build -o "$bin" ./cmd/geocache
go build -o "$out/geocache-chaos" ./cmd/geocache-chaos
status=0
: > "$out/summary.txt"
for seed in "${seeds[@]}"; do
	echo "== seed $seed, $duration, $(date -u +%FT%TZ), binary built from $commit" | tee -a "$out/summary.txt"
	if ! "$out/geocache-chaos" --bin "$bin" --duration "$duration" --seed "$seed" --out "$out/seed-$seed" >> "$out/summary.txt" 2>&1; then
		status=1
	fi
	tail -n 25 "$out/summary.txt" | grep -E "PASS|FAIL|violations" || true
done
exit $status
