#!/usr/bin/env bash
# Every fuzz target for a while, one after the other: scripts/fuzz.sh [FUZZTIME [TARGET...]]
# FUZZTIME defaults to 10m (a Go -fuzztime: 10m, 30s, 1000000x). TARGET is
# package:Name, e.g. ./internal/wire:FuzzReadFrame; default: all of them.
# New inputs that crash are written under the package's testdata/fuzz (commit
# them with the fix). Exit status 1 if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10m}
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(
		./internal/wire:FuzzReadFrame
		./internal/wire:FuzzSplitReads
		./internal/resp:FuzzReader
		./internal/glob:FuzzMatchRedis
		./internal/glob:FuzzMatchPath
		./internal/glob:FuzzMatchCase
		./internal/cluster:FuzzKeySlot
		./internal/resp:FuzzParseInt
		./cmd/geocache:FuzzServeConfig
		./cmd/geocache:FuzzParseSize
		./internal/store:FuzzApply
		./lru:FuzzModel
	)
fi
status=0
for t in "${targets[@]}"; do
	pkg=${t%%:*}
	name=${t#*:}
	echo "== $name in $pkg for $fuzztime, $(date -u +%FT%TZ)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s -parallel 1 "$pkg"; then
		status=1
	fi
done
exit $status
