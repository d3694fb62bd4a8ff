# Shared set-up of the ingest benchmarks (sourced by bench/ingest*.sh).
# shellcheck shell=bash
. "$OP_ROOT/ops/lib.sh"

BENCH_DURATION="${BENCH_DURATION:-10}"   # seconds per wrk run
BENCH_CONNS="${BENCH_CONNS:-64}"         # keep-alive connections
BENCH_WRK_THREADS="${BENCH_WRK_THREADS:-2}"
export ORDER_SHARDS="${ORDER_SHARDS:-4}"
bench_dir="$(mktemp -d /tmp/orderpipe-bench.XXXXXX)"
bench_pids=()

bench_cleanup() {
	local p
	for p in "${bench_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$OP_ROOT/ops/redis.sh" stop "$bench_dir/redis" "$redis_port" >/dev/null 2>&1 || true
	rm -rf "$bench_dir"
}
trap bench_cleanup EXIT

# bench_redis: a private Redis with the stack's durability (OP_REDIS_FSYNC,
# default always), streams and groups created by orderpipe-setup.
bench_redis() {
	redis_port="$(op_free_port)"
	"$OP_ROOT/ops/redis.sh" start "$bench_dir/redis" "$redis_port" >/dev/null
	export REDIS_URL="redis://127.0.0.1:$redis_port"
	"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1 || op_die "orderpipe-setup failed"
}

# bench_reset_streams: empties the orders streams between runs (same state for each).
bench_reset_streams() {
	local s
	for ((s = 0; s < ORDER_SHARDS; s++)); do redis-cli -p "$redis_port" DEL "orders:{$s}" >/dev/null; done
	redis-cli -p "$redis_port" DEL bench:xadd >/dev/null
	"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1
}

# bench_orders_len: the inputs held by the orders streams (oseq:{S}, which
# ingest raises by each entry's n; an entry holds a writer round's inputs of
# its shard), as written since bench_reset_streams.
bench_orders_len() {
	local s total=0 v
	for ((s = 0; s < ORDER_SHARDS; s++)); do
		v="$(redis-cli -p "$redis_port" GET "oseq:{$s}")"
		total=$((total + ${v:-0}))
	done
	printf '%s\n' "$total"
}

# bench_start_ingest: ingest on a free port with backpressure off (nothing
# consumes in these benchmarks); sets ingest_url.
bench_start_ingest() {
	local port
	port="$(op_free_port)"
	INGEST_PORT="$port" INGEST_MAX_LAG=1000000000000 LOG_LEVEL=warn "$OP_BUILD/bin/orderpipe-ingest" \
		>>"$bench_dir/ingest.log" 2>&1 &
	bench_pids+=($!)
	ingest_url="http://127.0.0.1:$port"
	op_wait_until 20 ingest curl -sf "$ingest_url/healthz" || op_die "ingest did not start: $(tail -5 "$bench_dir/ingest.log")"
}

bench_start_trivial() {
	local port
	port="$(op_free_port)"
	"$OP_BUILD/bench/tools/trivial_http" "$port" >>"$bench_dir/trivial.log" 2>&1 &
	bench_pids+=($!)
	trivial_url="http://127.0.0.1:$port"
	op_wait_until 20 trivial_http curl -s -o /dev/null "$trivial_url/"
}

# bench_wrk URL SCRIPT: runs wrk; sets wrk_rps, wrk_p50, wrk_p99, wrk_non2xx, wrk_errors.
bench_wrk() {
	local out
	out="$(wrk -t"$BENCH_WRK_THREADS" -c"$BENCH_CONNS" -d"${BENCH_DURATION}s" --latency -s "$2" "$1" 2>&1)"
	printf '%s\n' "$out" >>"$bench_dir/wrk.log"
	wrk_rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
	wrk_p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
	wrk_p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
	wrk_non2xx="$(awk -F: '/Non-2xx/ {gsub(/ /, "", $2); print $2}' <<<"$out")"
	wrk_errors="$(awk '/Socket errors/ {print}' <<<"$out")"
	wrk_requests="$(awk '/requests in/ {print $1}' <<<"$out")"
	[[ -n "$wrk_rps" ]] || op_die "wrk printed no result: $out"
}

bench_conditions() {
	printf 'machine: %s, %s cores, %s\n' "$(uname -m)" "$(nproc)" \
		"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
	printf 'redis: %s, appendonly yes, appendfsync %s, loopback; ORDER_SHARDS=%s\n' \
		"$(redis-server --version | awk '{print $3}')" "${OP_REDIS_FSYNC:-always}" "$ORDER_SHARDS"
	printf 'load: wrk -t%s -c%s -d%ss (keep-alive), on the same %s cores as the servers\n' \
		"$BENCH_WRK_THREADS" "$BENCH_CONNS" "$BENCH_DURATION" "$(nproc)"
}
