# Helpers for the integration tests written in bash (sourced, not run).
#
# Expects the environment of tests/run-integration.sh (REDIS_URL, OP_BUILD,
# OP_REDIS_PORT, …). Provides service start/stop, HTTP requests with curl,
# Redis queries and assertions that count failures and print them.
# shellcheck shell=bash

# shellcheck source=ops/lib.sh
. "$OP_ROOT/ops/lib.sh"

T_FAILS=0
T_CHECKS=0
T_PIDS=()

t_fail() {
	T_FAILS=$((T_FAILS + 1))
	printf 'FAIL: %s\n' "$*" >&2
}

# t_eq WHAT GOT WANT
t_eq() {
	T_CHECKS=$((T_CHECKS + 1))
	[[ "$2" == "$3" ]] || t_fail "$1: got '$2', want '$3'"
}

# t_match WHAT TEXT REGEX
t_match() {
	T_CHECKS=$((T_CHECKS + 1))
	[[ "$2" =~ $3 ]] || t_fail "$1: '$2' does not match /$3/"
}

# t_done: prints the summary and exits non-zero on any failure.
t_done() {
	t_stop_all
	printf '%s: %d checks, %d failed\n' "$(basename "$0")" "$T_CHECKS" "$T_FAILS"
	((T_FAILS == 0))
}

# t_skip_unless_built NAME: exits 0 with "NAME: SKIPPED" when ingest, matcher
# or recorder is not built yet (a test of the whole pipeline needs all three).
t_skip_unless_built() {
	local b
	for b in orderpipe-ingest orderpipe-matcher orderpipe-recorder; do
		if [[ ! -x "$OP_BUILD/bin/$b" ]]; then
			printf '%s: SKIPPED: %s is not built yet\n' "$1" "$b"
			exit 0
		fi
	done
}

# t_flushall: FLUSHALL on the test Redis; on a cluster (the harness run with
# OP_REDIS_CLUSTER=1) on every primary, since FLUSHALL empties one node only.
t_flushall() {
	local addr
	if [[ "${OP_REDIS_CLUSTER:-0}" != 1 ]]; then
		redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
		return
	fi
	for addr in $(redis-cli -u "$REDIS_URL" CLUSTER NODES | awk '$3 ~ /master/ && $3 !~ /fail/ { a = $2; sub(/@.*/, "", a); print a }'); do
		redis-cli -h "${addr%:*}" -p "${addr##*:}" FLUSHALL >/dev/null
	done
}

# t_clean_slate: empties Redis (t_flushall, then orderpipe-setup recreates
# the streams and groups) and the orders and fills tables, for a test whose
# checks would see what earlier tests left (resting orders that trade with
# its own, rows it counts).
t_clean_slate() {
	t_flushall
	"$OP_BUILD/bin/orderpipe-setup" >/dev/null || t_fail "orderpipe-setup"
	psql -qAtX "$DATABASE_URL" -c "TRUNCATE orders, fills" >/dev/null
}

# redis-cli against the test Redis.
t_redis() {
	redis-cli -p "$OP_REDIS_PORT" --no-raw "$@" 2>/dev/null | sed 's/^(integer) //; s/^"//; s/"$//'
}

# The inputs held by orders:{0..ORDER_SHARDS-1}: the sum of the entries'
# `n` fields (an entry holds one writer round's inputs of its shard; one
# without `n` counts as one input).
T_INPUTS_LUA="local t = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local n, f = 1, e[2]
  for i = 1, #f, 2 do if f[i] == 'n' then n = tonumber(f[i + 1]) end end
  t = t + n
end
return t"
t_orders_len() {
	local s total=0 n
	for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do
		n="$(t_redis EVAL "$T_INPUTS_LUA" 1 "orders:{$s}")"
		total=$((total + ${n:-0}))
	done
	printf '%s\n' "$total"
}

# t_start NAME BINARY [ENV=VAL ...]: starts a service in the background with
# its log in $OP_STACK_DIR/NAME.log; its pid is in T_PID and remembered for
# t_stop_all. (Call it directly, not in $(…): the service must be our child.)
t_start() {
	local name="$1" bin="$2"
	shift 2
	env "$@" "$OP_BUILD/bin/$bin" >>"$OP_STACK_DIR/$name.log" 2>&1 &
	T_PID=$!
	T_PIDS+=("$T_PID")
}

# t_stop_all: SIGTERM to every service started; each must exit 0 (a graceful
# stop; under ASan a leak or memory error also makes it non-zero).
t_stop_all() {
	local p rc
	for p in "${T_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${T_PIDS[@]}"; do
		rc=0
		wait "$p" 2>/dev/null || rc=$?
		t_eq "exit status of pid $p after SIGTERM" "$rc" 0
		((rc == 0)) || tail -n 30 "$OP_STACK_DIR"/*.log >&2
	done
	T_PIDS=()
}

# t_batch_body N ORDER: the body of POST /v1/orders/batch holding N copies
# of the order object ORDER.
t_batch_body() {
	local i
	printf '{"orders":['
	for ((i = 0; i < $1; i++)); do printf '%s%s' "$([[ $i -gt 0 ]] && echo ,)" "$2"; done
	printf ']}'
}

# t_http_until STATUS TRIES PAUSE METHOD URL [BODY] [HEADER ...]: t_http
# until it answers STATUS, at most TRIES times, PAUSE seconds apart. Returns
# 0 when it did (T_* hold that answer), 1 otherwise (T_* hold the last one).
t_http_until() {
	local want="$1" tries="$2" pause="$3" i
	shift 3
	for ((i = 0; i < tries; i++)); do
		t_http "$@"
		[[ "$T_STATUS" == "$want" ]] && return 0
		sleep "$pause"
	done
	return 1
}

# t_http METHOD URL [BODY] [HEADER ...]: sets T_STATUS, T_BODY, T_HEADERS.
# A BODY of @FILE sends the file (argv strings are limited to 128 KiB).
t_http() {
	local method="$1" url="$2" body="${3:-}"
	shift 3 || shift $#
	local args=(-s -S -X "$method" -D "$OP_STACK_DIR/.h" -o "$OP_STACK_DIR/.b" -w '%{http_code}' --max-time 20)
	local h
	for h in "$@"; do args+=(-H "$h"); done
	[[ -n "$body" ]] && args+=(--data-binary "$body")
	rm -f "$OP_STACK_DIR/.b" "$OP_STACK_DIR/.h"
	T_STATUS="$(curl "${args[@]}" "$url" 2>/dev/null || true)"
	T_BODY="$(cat "$OP_STACK_DIR/.b" 2>/dev/null || true)"
	T_HEADERS="$(cat "$OP_STACK_DIR/.h" 2>/dev/null || true)"
}
