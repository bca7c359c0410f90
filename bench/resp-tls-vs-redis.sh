#!/bin/bash
# Interleaved plaintext/TLS runs of redis-benchmark against geocache serve and
# redis-server (both from this machine), printing per run:
#   test P port rps server-cpu-us-per-request
# ports: 16380/16390 geocache plain/TLS, 16480/16490 redis-server plain/TLS.
# Usage: go build -o /tmp/geocache ./cmd/geocache && BIN=/tmp/geocache bench/resp-tls-vs-redis.sh
# The client is redis-benchmark (OpenSSL), or with CLIENT=go bench/respload
# (crypto/tls; same workload and flags):
#   (cd bench && go build -o /tmp/respload ./respload) && CLIENT=go BIN=/tmp/geocache bench/resp-tls-vs-redis.sh
set -u
BIN=${BIN:-/tmp/geocache}
CLIENT=${CLIENT:-redis-benchmark}
RESPLOAD=${RESPLOAD:-/tmp/respload}
DIR=$(mktemp -d)
cd "$DIR"
"$BIN" cert ca --dir pki >/dev/null && "$BIN" cert node --dir pki --name srv --host 127.0.0.1 >/dev/null || exit 1
"$BIN" serve --addr 127.0.0.1:16380 --tls-addr 127.0.0.1:16390 --tls-cert pki/srv.pem --tls-key pki/srv-key.pem --tls-ca pki/ca.pem --max-memory 256MB --log-level warn 2>/dev/null &
GPID=$!
redis-server --port 16480 --tls-port 16490 --tls-cert-file pki/srv.pem --tls-key-file pki/srv-key.pem --tls-ca-cert-file pki/ca.pem --tls-auth-clients no --save '' --appendonly no --maxmemory 256mb --maxmemory-policy allkeys-lru --daemonize no --logfile /dev/null &
RPID=$!
sleep 1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
bench() { # pid port tlsflag test P N
  local pid=$1 port=$2 tls=$3 t=$4 P=$5 N=$6
  local c0=$(cpu $pid)
  local out
  if [ "$CLIENT" = go ]; then
    [ -n "$tls" ] && tls="-cacert pki/ca.pem"
    out=$("$RESPLOAD" -addr 127.0.0.1:$port $tls -c 50 -d 64 -r 100000 -t $t -n $N -P $P | tail -1)
  else
    out=$(redis-benchmark -h 127.0.0.1 -p $port $tls -c 50 -d 64 -r 100000 -t $t -n $N -P $P --csv 2>/dev/null | tail -1)
  fi
  local c1=$(cpu $pid)
  local rps=$(echo "$out" | cut -d, -f2 | tr -d '"')
  # clock ticks (100/s) -> µs per request
  local us=$(echo "scale=2; ($c1-$c0)*10000/$N" | bc)
  echo "$t P$P $port $rps $us"
}
# warm-up
redis-benchmark -h 127.0.0.1 -p 16380 -c 50 -n 50000 -t set -q >/dev/null 2>&1
redis-benchmark -h 127.0.0.1 -p 16480 -c 50 -n 50000 -t set -q >/dev/null 2>&1
for run in 1 2 3; do
 for tp in "set 1 100000" "get 1 100000" "set 16 500000" "get 16 500000"; do
  set -- $tp
  bench $GPID 16380 "" $1 $2 $3
  bench $GPID 16390 "--tls --cacert pki/ca.pem" $1 $2 $3
  bench $RPID 16480 "" $1 $2 $3
  bench $RPID 16490 "--tls --cacert pki/ca.pem" $1 $2 $3
 done
done
kill $GPID $RPID; wait
rm -rf "$DIR"
