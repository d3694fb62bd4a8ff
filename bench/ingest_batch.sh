#!/usr/bin/env bash
# Benchmark: the batch endpoint (BENCH_BATCH orders per request) into ingest +
# real Redis, side by side with redis-benchmark's pipelined XADD of same-size
# entries against the same Redis (the Redis ceiling with this durability).
set -euo pipefail
OP_BUILD="$(cd "${1:-build/rel}" && pwd)"
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OP_BUILD OP_ROOT
. "$OP_ROOT/bench/wrk/common.sh"
export BENCH_BATCH="${BENCH_BATCH:-100}"

bench_conditions
printf 'request: POST /v1/orders/batch with %s orders; baseline: redis-benchmark -c 50 -P 100 XADD of a %s-byte entry\n' \
	"$BENCH_BATCH" 120
bench_redis

# The baseline: pipelined XADD straight into Redis, entries the size of ours.
payload="$(head -c 90 /dev/zero | tr '\0' 'x')"
n=$((BENCH_DURATION * 100000))
rb="$(redis-benchmark -p "$redis_port" -c 50 -P 100 -n "$n" -q XADD bench:xadd '*' type new sym AAPL m "$payload" 2>&1 | tr '\r' '\n' | grep -E 'requests per second' | tail -1)"
r_ops="$(sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' <<<"$rb")"
printf '%-34s %12s XADD/s   (%s)\n' "redis-benchmark pipelined (baseline)" "$r_ops" "$rb"

bench_start_ingest
bench_reset_streams
bench_wrk "$ingest_url" "$OP_ROOT/bench/wrk/batch.lua"
queued="$(bench_orders_len)"
orders="$(awk -v a="$wrk_rps" -v b="$BENCH_BATCH" 'BEGIN {printf "%.0f", a * b}')"
printf '%-34s %12s orders/s (%s req/s, p50 %s, p99 %s, non-2xx %s) %s\n' "ingest batch + redis" "$orders" \
	"$wrk_rps" "$wrk_p50" "$wrk_p99" "${wrk_non2xx:-0}" "$wrk_errors"
printf 'orders in redis after the run: %s\n' "$queued"
ratio="$(awk -v a="$orders" -v b="$r_ops" 'BEGIN {printf "%.2f", a / b}')"
printf 'bench ingest_batch: %s orders/s (baseline %.0f XADD/s, ratio %s)\n' "$orders" "$r_ops" "$ratio"
