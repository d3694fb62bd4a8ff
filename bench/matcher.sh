#!/usr/bin/env bash
# Benchmark: the matcher draining a pre-filled orders stream through a real
# Redis (read, fence, apply, one MULTI/EXEC per batch with the reports and
# the XACK), side by side with the in-process engine on the same input
# (decode + apply + encode, no Redis): the ratio is the cost of Redis. Then
# recovery time with 100k and 1M resting orders: snapshot load + replay of
# 100k inputs after it.
#
#   bench/matcher.sh <build-dir>     (make bench BENCH=matcher)
#
# Environment: BENCH_MATCHER_ORDERS (default 500000), BENCH_MATCHER_BATCH
# (MATCHER_BATCH, default 2000), BENCH_MATCHER_RESTING (book sizes of the
# recovery runs, default "100000 1000000"; empty skips them),
# BENCH_MATCHER_CHECK (1: run the checker on the output, default),
# OP_REDIS_FSYNC (default always, as the stack).
set -euo pipefail
OP_BUILD="$(cd "${1:-build/rel}" && pwd)"
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OP_BUILD OP_ROOT
. "$OP_ROOT/ops/lib.sh"

N="${BENCH_MATCHER_ORDERS:-500000}"
BATCH="${BENCH_MATCHER_BATCH:-2000}"
export ORDER_SHARDS=4
dir="$(mktemp -d /tmp/orderpipe-bench-matcher.XXXXXX)"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	"$OP_ROOT/ops/redis.sh" stop "$dir/redis" "$port" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
port="$(op_free_port)"
"$OP_ROOT/ops/redis.sh" start "$dir/redis" "$port" >/dev/null
export REDIS_URL="redis://127.0.0.1:$port"
export SYMBOLS_FILE="$dir/symbols.conf"
for s in AAPL MSFT GOOG AMZN TSLA NVDA META; do printf '%s 0.01 1 1000000\n' "$s"; done >"$SYMBOLS_FILE"
R() { redis-cli -p "$port" "$@"; }

reset() {
	local s
	R FLUSHALL >/dev/null
	"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1 || op_die "orderpipe-setup failed"
}

# caught_up: every shard's last fills entry covers its last orders entry
# (a fills entry carries a batch; its `in` is "<first>..<last>" or one id).
caught_up() {
	local s o f
	for ((s = 0; s < ORDER_SHARDS; s++)); do
		o="$(R --raw XREVRANGE "orders:{$s}" + - COUNT 1 | sed -n 1p)"
		[[ -z "$o" ]] && continue
		f="$(R --raw XREVRANGE "fills:{$s}" + - COUNT 1 | awk 'p == 1 { print; p = 2 } $0 == "in" && !p { p = 1 }')"
		[[ "${f##*..}" == "$o" ]] || return 1
	done
	return 0
}

now_ms() { date +%s%3N; }

printf 'conditions: %s, %s cores, redis %s (appendfsync %s, loopback), build %s\n' \
	"$(uname -m)" "$(nproc)" "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')" \
	"${OP_REDIS_FSYNC:-always}" "$OP_BUILD"
printf 'input: %s orders, seed 1, 7 symbols over %s shards (70%% new: limit GTC/IOC/FOK, post-only, market; 20%% cancels, 10%% amends)\n' \
	"$N" "$ORDER_SHARDS"
printf 'matcher: one worker, MATCHER_BATCH=%s\n' "$BATCH"

# --- throughput ---------------------------------------------------------------------
reset
"$OP_BUILD/bin/orderpipe-ordergen" --seed 1 --count "$N" >/dev/null
mport="$(op_free_port "$port")"
t0="$(now_ms)"
MATCHER_METRICS_PORT="$mport" MATCHER_BATCH="$BATCH" LOG_LEVEL=warn "$OP_BUILD/bin/orderpipe-matcher" \
	>>"$dir/matcher.log" 2>&1 &
pids+=($!)
mpid=$!
while ! caught_up; do
	sleep 0.05
	op_pid_alive "$mpid" || op_die "matcher died: $(tail -5 "$dir/matcher.log")"
done
t1="$(now_ms)"
reports="$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1 == "matcher_reports_total" {print $2}')"
batches="$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1 == "matcher_batches_total" {print $2}')"
kill -TERM "$mpid"
wait "$mpid" || op_die "matcher exit status $? on SIGTERM"
pids=()
ms=$((t1 - t0))
rate="$(awk -v n="$N" -v ms="$ms" 'BEGIN {printf "%.0f", n * 1000 / ms}')"
rrate="$(awk -v n="$reports" -v ms="$ms" 'BEGIN {printf "%.0f", n * 1000 / ms}')"
printf '%-44s %10s orders/s in, %10s reports/s out (%s orders in %s ms, %s batches incl. start-up)\n' \
	"matcher + redis (fenced MULTI/EXEC)" "$rate" "$rrate" "$N" "$ms" "$batches"
if [[ "${BENCH_MATCHER_CHECK:-1}" == 1 ]]; then
	"$OP_BUILD/tests/integration/test_matcher_check" check --seed 1 --count "$N" | sed 's/^/  /'
fi
eng="$("$OP_BUILD/tests/integration/test_matcher_check" engine --seed 1 --count "$N")"
base="$(sed 's/.* s: \([0-9]*\) inputs\/s.*/\1/' <<<"$eng")"
brep="$(sed 's/.* inputs\/s, \([0-9]*\) reports\/s.*/\1/' <<<"$eng")"
printf '%-44s %10s orders/s in, %10s reports/s out\n' "in-process engine (decode+apply+encode)" "$base" "$brep"

# --- recovery ----------------------------------------------------------------------------
# R resting orders processed and snapshotted (SIGTERM hands the shards back
# with a snapshot), then 100k inputs of the normal flow processed by a
# matcher that takes no snapshot and is killed (-9): a new matcher loads the
# snapshots (R orders) and replays the 100k acknowledged inputs.
run_until() { # run_until LOG ENV... : a matcher until it caught up with the orders; pid in $mp
	local log="$1"
	shift
	env MATCHER_METRICS_PORT=0 "$@" "$OP_BUILD/bin/orderpipe-matcher" >"$log" 2>&1 &
	mp=$!
	pids+=("$mp")
	while ! caught_up; do
		sleep 0.1
		op_pid_alive "$mp" || op_die "matcher died: $(tail -5 "$log")"
	done
}
for rest in ${BENCH_MATCHER_RESTING-100000 1000000}; do
	reset
	"$OP_BUILD/bin/orderpipe-ordergen" --seed 3 --count "$rest" --resting >/dev/null
	run_until "$dir/rec1.log"
	kill -TERM "$mp"
	wait "$mp" || op_die "matcher exit status $? on SIGTERM"
	"$OP_BUILD/bin/orderpipe-ordergen" --seed 4 --from "$rest" --count 100000 >/dev/null
	run_until "$dir/rec2.log" MATCHER_SNAPSHOT_EVERY=1000000000 MATCHER_SNAPSHOT_MS=86400000
	kill -KILL "$mp"
	wait "$mp" 2>/dev/null || true
	pids=()
	R DEL "lease:{0}" "lease:{1}" "lease:{2}" "lease:{3}" matchers:alive >/dev/null # as if expired
	snapbytes=0
	for ((s = 0; s < ORDER_SHARDS; s++)); do snapbytes=$((snapbytes + $(R HSTRLEN "snap:{$s}" eng))); done
	t0="$(now_ms)"
	MATCHER_METRICS_PORT=0 "$OP_BUILD/bin/orderpipe-matcher" >"$dir/rec3.log" 2>&1 &
	pids+=($!)
	p3=$!
	while (($(grep -c 'event=shard_live' "$dir/rec3.log" || true) < ORDER_SHARDS)); do
		sleep 0.02
		op_pid_alive "$p3" || op_die "matcher died: $(tail -5 "$dir/rec3.log")"
	done
	t1="$(now_ms)"
	replayed="$(grep -o 'event=recovered.* replayed=[0-9]*' "$dir/rec3.log" | sed 's/.*replayed=//' | awk '{s += $1} END {print s + 0}')"
	loadms="$(grep -o 'event=snapshot_loaded.* ms=[0-9]*' "$dir/rec3.log" | sed 's/.*ms=//' | awk '{s += $1} END {print s + 0}')"
	recms="$(grep -o 'event=recovered.* ms=[0-9]*' "$dir/rec3.log" | sed 's/.*ms=//' | awk '{s += $1} END {print s + 0}')"
	open="$(grep -o 'open_orders=[0-9]*' "$dir/rec3.log" | sed 's/.*=//' | awk '{s += $1} END {print s + 0}')"
	kill -TERM "$p3"
	wait "$p3" || true
	pids=()
	printf 'recovery, %7s resting orders: %5s ms from start to every shard live; snapshots %s MB holding %s open orders, loaded in %s ms; %s inputs replayed; recoveries %s ms in all\n' \
		"$rest" "$((t1 - t0))" "$((snapbytes / 1000000))" "$open" "$loadms" "$replayed" "$recms"
done

ratio="$(awk -v a="$rate" -v b="$base" 'BEGIN {printf "%.3f", a / b}')"
printf 'bench matcher: %s orders/s (baseline %s orders/s, ratio %s)\n' "$rate" "$base" "$ratio"
