#!/usr/bin/env bash
# Benchmark: single orders over HTTP into ingest + real Redis, side by side
# with a trivial libmicrohttpd server answering 202 (the HTTP ceiling here).
set -euo pipefail
OP_BUILD="$(cd "${1:-build/rel}" && pwd)"
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OP_BUILD OP_ROOT
. "$OP_ROOT/bench/wrk/common.sh"

bench_conditions
printf 'request: one limit order per POST /v1/orders (5 symbols, both sides), INGEST_THREADS=%s\n' "${INGEST_THREADS:-2}"
bench_redis

bench_start_trivial
bench_wrk "$trivial_url" "$OP_ROOT/bench/wrk/order.lua"
t_rps="$wrk_rps" t_p50="$wrk_p50" t_p99="$wrk_p99"
printf '%-34s %12s req/s   p50 %-9s p99 %-9s\n' "trivial 202 server (baseline)" "$t_rps" "$t_p50" "$t_p99"

bench_start_ingest
bench_reset_streams
bench_wrk "$ingest_url" "$OP_ROOT/bench/wrk/order.lua"
queued="$(bench_orders_len)"
printf '%-34s %12s req/s   p50 %-9s p99 %-9s non-2xx %s  %s\n' "ingest + redis (XADD, AOF)" \
	"$wrk_rps" "$wrk_p50" "$wrk_p99" "${wrk_non2xx:-0}" "$wrk_errors"
printf 'orders in redis after the run: %s (wrk counted %s completed requests)\n' "$queued" "$wrk_requests"
ratio="$(awk -v a="$wrk_rps" -v b="$t_rps" 'BEGIN {printf "%.2f", a / b}')"
printf 'bench ingest: %.0f req/s (baseline %.0f req/s, ratio %s)\n' "$wrk_rps" "$t_rps" "$ratio"
