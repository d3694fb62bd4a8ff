#!/usr/bin/env bash
# Measures what INGEST_MIN_REPLICAS costs: one order per POST /v1/orders
# (wrk, bench/wrk/order.lua) into ingest, a Redis primary (appendfsync
# always, ops/redis.sh) and one local replica, with INGEST_MIN_REPLICAS=0
# then 1; prints req/s, p50/p99 and ingest's CPU per order (utime + stime
# from /proc over the run / orders queued). Not part of `make bench` (it is
# a comparison of two settings, not a benchmark with a baseline).
#   bench/replica_wait.sh [build-dir]   (BENCH_DURATION, BENCH_CONNS)
set -euo pipefail
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$OP_ROOT/ops/lib.sh"
build="$(cd "${1:-build/rel}" && pwd)"
dur="${BENCH_DURATION:-10}" conns="${BENCH_CONNS:-32}"
dir="$(mktemp -d /tmp/orderpipe-rw.XXXXXX)"
pport="$(op_free_port)"
rport="$(op_free_port "$pport")"
iport="$(op_free_port "$pport" "$rport")"
rpid="" ipid=""
cleanup() {
	[[ -n "$ipid" ]] && kill "$ipid" 2>/dev/null && wait "$ipid" 2>/dev/null
	[[ -n "$rpid" ]] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
	"$OP_ROOT/ops/redis.sh" stop "$dir/redis" "$pport" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
"$OP_ROOT/ops/redis.sh" start "$dir/redis" "$pport" >/dev/null
mkdir -p "$dir/replica"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir/replica" --save "" --appendonly no \
	--replicaof 127.0.0.1 "$pport" >"$dir/replica.log" 2>&1 &
rpid=$!
op_wait_until 30 "replica in sync" bash -c "redis-cli -p $rport INFO replication | grep -q 'master_link_status:up'"
export REDIS_URL="redis://127.0.0.1:$pport" SYMBOLS_FILE="$OP_ROOT/config/symbols.conf" API_KEYS_FILE="$OP_ROOT/config/api-keys.conf"
"$build/bin/orderpipe-setup" --no-db >/dev/null 2>&1
tck="$(getconf CLK_TCK)"
printf 'conditions: %s cores, wrk -t1 -c%s -d%ss, appendfsync always, 1 local replica, INGEST_MAX_LAG=1e12\n' "$(nproc)" "$conns" "$dur"
for min in 0 1 0 1; do
	redis-cli -p "$pport" FLUSHALL >/dev/null
	"$build/bin/orderpipe-setup" --no-db >/dev/null 2>&1
	INGEST_PORT="$iport" INGEST_MIN_REPLICAS="$min" INGEST_MAX_LAG=1000000000000 LOG_LEVEL=warn \
		"$build/bin/orderpipe-ingest" >>"$dir/ingest.log" 2>&1 &
	ipid=$!
	op_wait_until 20 ingest curl -sf "http://127.0.0.1:$iport/healthz" >/dev/null
	c0="$(awk '{print $14 + $15}' "/proc/$ipid/stat")"
	out="$(wrk -t1 -c"$conns" -d"${dur}s" --latency -s "$OP_ROOT/bench/wrk/order.lua" "http://127.0.0.1:$iport" 2>&1)"
	c1="$(awk '{print $14 + $15}' "/proc/$ipid/stat")"
	q="$(curl -s "http://127.0.0.1:$iport/metrics" | awk '$1 == "ingest_orders_queued_total" {print $2}')"
	t="$(curl -s "http://127.0.0.1:$iport/metrics" | awk '$1 == "ingest_replication_timeouts_total" {print $2}')"
	kill "$ipid"; wait "$ipid" || true; ipid=""
	rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
	p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
	p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
	cpu="$(awk -v a="$c0" -v b="$c1" -v t="$tck" -v q="$q" 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / q}')"
	printf 'INGEST_MIN_REPLICAS=%s: %8s req/s  p50 %-8s p99 %-8s ingest CPU %s µs/order  (queued %s, replication timeouts %s)\n' \
		"$min" "$rps" "$p50" "$p99" "$cpu" "$q" "${t:-0}"
done
