#!/usr/bin/env bash
# Benchmark of the recorder: rows/s recorded from a pre-filled fills stream
# into PostgreSQL, against the database's own ceiling measured in the same run:
# `psql \copy` of the very same rows into tables of the same shape (same
# columns, constraints and indexes).
#
#   bench/recorder.sh <build-dir>     (make bench BENCH=recorder runs it)
#
# Starts its own Redis and PostgreSQL on free loopback ports (ops/redis.sh,
# ops/postgres.sh) in a temporary directory and removes them at the end.
#  1. orderpipe-fillgen writes BENCH_RECORDER_TRADES trades (default 1,000,000)
#     with the accepts, cancels, amends and rejections around them, across the
#     shards (prefilled with appendfsync everysec for speed; Redis is then
#     restarted with OP_REDIS_FSYNC, default always, for the measured part).
#  2. One orderpipe-recorder drains the streams: time from its start until
#     every entry is delivered and acknowledged.
#  3. Baselines: the resulting fills and orders tables are dumped and loaded
#     back with `psql \copy` into fresh tables (LIKE … INCLUDING ALL: the
#     contract's constraints and indexes), and into tables with the same
#     columns and only a primary key (the floor: the cost of storing the data
#     at all). The summary line compares the recorder with the floor.
# Rows = fills rows + orders rows in the final tables, the same count for both.
# Also printed: the CPU (user+system) of PostgreSQL (postmaster and every
# child) and of the recorder over the drain, per row.
# The recorder does more work than the baseline for those rows (an order row
# is inserted once and then updated by later reports; every statement is
# idempotent), which is what the ratio measures.
#
# Environment: BENCH_RECORDER_TRADES, RECORDER_BATCH_ROWS, RECORDER_FLUSH_MS
# (passed to the recorder), OP_REDIS_FSYNC, OP_PG_SHARED_BUFFERS,
# BENCH_RECORDER_DROP_INDEXES (comma-separated index names dropped after the
# migrations, to measure what each costs the write path; the baselines copy
# the tables as they then are), BENCH_RECORDER_SQL (SQL run after that, to
# measure a variant of the schema: another index, a setting; printed).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../ops/lib.sh"

(($# == 1)) || { printf 'usage: %s <build-dir>\n' "$0" >&2; exit 2; }
build="$(op_abspath "$1")"
bin="$build/bin"
for b in orderpipe-recorder orderpipe-setup orderpipe-fillgen; do
	[[ -x "$bin/$b" ]] || op_die "'$bin/$b' is missing: build first (make BUILD=${1} all)"
done
op_need_cmd psql postgresql-client
op_need_cmd redis-cli redis-tools
trades="${BENCH_RECORDER_TRADES:-1000000}"
fsync="${OP_REDIS_FSYNC:-always}"
shards="${ORDER_SHARDS:-4}"

dir="$(mktemp -d /tmp/orderpipe-bench-recorder.XXXXXX)"
chmod 755 "$dir"
rport="$(op_free_port)"
pport="$(op_free_port "$rport")"
mport="$(op_free_port "$rport" "$pport")"
rec_pid=""
cleanup() {
	trap '' INT TERM
	[[ -n "$rec_pid" ]] && kill -TERM "$rec_pid" 2>/dev/null && wait "$rec_pid" 2>/dev/null
	"$OP_ROOT/ops/redis.sh" stop "$dir/redis" "$rport" >/dev/null 2>&1 || true
	"$OP_ROOT/ops/postgres.sh" stop "$dir/postgres" "$pport" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

OP_REDIS_FSYNC=everysec "$OP_ROOT/ops/redis.sh" start "$dir/redis" "$rport" >/dev/null 2>&1 ||
	op_die "cannot start redis on port $rport (see $dir/redis/redis.log)"
"$OP_ROOT/ops/postgres.sh" start "$dir/postgres" "$pport" >/dev/null 2>&1 ||
	op_die "cannot start postgresql on port $pport"
export REDIS_URL="redis://127.0.0.1:$rport"
export DATABASE_URL="postgresql://orderpipe@127.0.0.1:$pport/orderpipe"
export ORDER_SHARDS="$shards" SCHEMAS_DIR="$OP_ROOT/schemas"
export SYMBOLS_FILE="${SYMBOLS_FILE:-$OP_ROOT/config/symbols.conf}"
export LOG_LEVEL=warn
"$bin/orderpipe-setup" >/dev/null || op_die "orderpipe-setup failed"
# A measurement knob: indexes to drop before the run, to price each one.
drop_indexes="${BENCH_RECORDER_DROP_INDEXES:-}"
for idx in ${drop_indexes//,/ }; do
	[[ "$idx" =~ ^[a-z_]+$ ]] || op_die "BENCH_RECORDER_DROP_INDEXES: '$idx' is not an index name"
	psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "DROP INDEX $idx" || op_die "cannot drop index '$idx'"
done
variant_sql="${BENCH_RECORDER_SQL:-}"
if [[ -n "$variant_sql" ]]; then
	psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "$variant_sql" || op_die "BENCH_RECORDER_SQL failed"
fi

psqlq() { psql "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }

# --- 1. prefill ------------------------------------------------------------------
t0="$(now)"
gen="$("$bin/orderpipe-fillgen" --trades "$trades" --seed 7 --round 5000 --group "${BENCH_RECORDER_GROUP:-2000}")"
t1="$(now)"
entries=0
for ((s = 0; s < shards; s++)); do
	entries=$((entries + $(redis-cli -p "$rport" XLEN "fills:{$s}")))
done
OP_REDIS_FSYNC="$fsync" "$OP_ROOT/ops/redis.sh" stop "$dir/redis" "$rport" >/dev/null 2>&1
OP_REDIS_FSYNC="$fsync" "$OP_ROOT/ops/redis.sh" start "$dir/redis" "$rport" >/dev/null 2>&1 ||
	op_die "cannot restart redis with appendfsync $fsync"

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
printf 'machine: %s, %s cores (%s), %s MB RAM, load average %s\n' "$(uname -m)" "$(nproc)" \
	"${cpu:-unknown cpu}" "$(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'postgresql %s: fsync on, synchronous_commit on, shared_buffers %s, max_wal_size %s; redis %s: appendfsync %s\n' \
	"$(psqlq -c 'SHOW server_version' | cut -d' ' -f1)" "$(psqlq -c 'SHOW shared_buffers')" \
	"$(psqlq -c 'SHOW max_wal_size')" \
	"$(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/')" "$fsync"
if [[ -n "$drop_indexes" ]]; then printf 'indexes dropped for this run: %s\n' "$drop_indexes"; fi
if [[ -n "$variant_sql" ]]; then printf 'schema variant for this run: %s\n' "$variant_sql"; fi
printf 'prefill: %s (%s entries in %d shards, %.1f s)\n' "$gen" "$entries" "$shards" "$(echo "$t1 - $t0" | bc)"

# --- 2. the recorder ---------------------------------------------------------------
undrained_lua='
local left = 0
for _, k in ipairs(KEYS) do
  local st = redis.call("XINFO", "STREAM", k)
  local last
  for i = 1, #st, 2 do if st[i] == "last-generated-id" then last = st[i + 1] end end
  for _, g in ipairs(redis.call("XINFO", "GROUPS", k)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f["pending"] ~= 0 or f["last-delivered-id"] ~= last then left = left + 1 end
  end
end
return left'
keys=()
for ((s = 0; s < shards; s++)); do keys+=("fills:{$s}"); done
pg0="$(op_pg_cpu_ticks "$dir/postgres/data" all)"
RECORDER_METRICS_PORT="$mport" "$bin/orderpipe-recorder" 2>"$dir/recorder.log" &
rec_pid=$!
t0="$(now)"
while [[ "$(redis-cli -p "$rport" EVAL "$undrained_lua" "$shards" "${keys[@]}")" != 0 ]]; do
	kill -0 "$rec_pid" 2>/dev/null || { cat "$dir/recorder.log" >&2; op_die "the recorder died"; }
	sleep 0.05
done
t1="$(now)"
pg1="$(op_pg_cpu_ticks "$dir/postgres/data" all)"
rec_ticks="$(op_cpu_ticks "$rec_pid" all)"
metrics="$(curl -s "http://127.0.0.1:$mport/metrics")"
kill -TERM "$rec_pid"
rc=0
wait "$rec_pid" || rc=$?
rec_pid=""
((rc == 0)) || op_die "the recorder exited with status $rc"
rec_secs="$(echo "$t1 - $t0" | bc)"
fills="$(psqlq -c 'SELECT count(*) FROM fills')"
orders="$(psqlq -c 'SELECT count(*) FROM orders')"
rows=$((fills + orders))
metric() { awk -v n="$1" '$1 == n { print $2; exit }' <<<"$metrics"; }
batches="$(metric recorder_batches_total)"
printf 'recorder: batch %s rows, flush %s ms; %s fills + %s orders rows (%s order-row writes) in %s batches, %.2f s\n' \
	"${RECORDER_BATCH_ROWS:-default}" "${RECORDER_FLUSH_MS:-default}" "$fills" "$orders" \
	"$(metric recorder_order_updates_total)" "$batches" "$rec_secs"
hz="$(getconf CLK_TCK)"
printf 'cpu per row (us, the drain): postgres %.2f recorder %.2f (per order row + fill row written)\n' \
	"$(echo "($pg1 - $pg0) * 1000000 / $hz / $rows" | bc -l)" "$(echo "$rec_ticks * 1000000 / $hz / $rows" | bc -l)"
printf 'recorder: mean commit %.1f ms, mean batch %.1f ms\n' \
	"$(echo "$(metric recorder_commit_seconds_sum) * 1000 / $batches" | bc -l)" \
	"$(echo "$(metric recorder_batch_seconds_sum) * 1000 / $batches" | bc -l)"

# --- 3. baseline: psql \copy of the same rows into the same table shapes ------------
psqlq -c "\\copy (SELECT * FROM fills) TO '$dir/fills.copy'"
psqlq -c "\\copy orders TO '$dir/orders.copy'"
# copy_into PREFIX: \copy the dumped rows into PREFIX_fills and PREFIX_orders
# (created by the caller); prints the seconds it took, checks the counts.
copy_into() {
	local t0 t1
	t0="$(now)"
	psqlq -c "\\copy $1_fills FROM '$dir/fills.copy'"
	psqlq -c "\\copy $1_orders FROM '$dir/orders.copy'"
	t1="$(now)"
	[[ "$(psqlq -c "SELECT count(*) FROM $1_fills")" == "$fills" &&
		"$(psqlq -c "SELECT count(*) FROM $1_orders")" == "$orders" ]] || op_die "$1: row counts differ"
	echo "$t1 - $t0" | bc
}
psqlq -c "CREATE TABLE bench_fills (LIKE fills INCLUDING ALL)"
psqlq -c "CREATE TABLE bench_orders (LIKE orders INCLUDING ALL)"
base_secs="$(copy_into bench)"
printf 'baseline: psql \\copy of the same %s rows into LIKE … INCLUDING ALL copies: %.2f s\n' "$rows" "$base_secs"
# the floor: the same columns (LIKE without INCLUDING keeps only NOT NULL) and a primary key
psqlq -c "CREATE TABLE floor_fills (LIKE fills); ALTER TABLE floor_fills ADD PRIMARY KEY (fill_id)"
psqlq -c "CREATE TABLE floor_orders (LIKE orders); ALTER TABLE floor_orders ADD PRIMARY KEY (order_id)"
floor_secs="$(copy_into floor)"
printf 'floor: psql \\copy of the same %s rows into tables with the same columns and only a primary key: %.2f s\n' \
	"$rows" "$floor_secs"

rec_rate="$(echo "$rows / $rec_secs" | bc)"
base_rate="$(echo "$rows / $base_secs" | bc)"
floor_rate="$(echo "$rows / $floor_secs" | bc)"
printf 'fills only: recorder %s fills/s\n' "$(echo "$fills / $rec_secs" | bc)"
printf 'contract tables: psql \\copy %s rows/s (recorder/that: %.2f); floor %s rows/s (contract tables/floor: %.2f)\n' \
	"$base_rate" "$(echo "$rec_rate / $base_rate" | bc -l)" "$floor_rate" "$(echo "$base_rate / $floor_rate" | bc -l)"
printf 'bench recorder: %s rows/s (baseline %s rows/s, ratio %.2f)\n' "$rec_rate" "$floor_rate" \
	"$(echo "$rec_rate / $floor_rate" | bc -l)"
