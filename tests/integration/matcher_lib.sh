#!/usr/bin/env bash
# Helpers of the matcher's integration tests (sourced by matcher_*.sh; run on
# its own by the harness, it only says so and exits 0).
#
# m_reset               empty the shard keys (orders and their counter, fills, snapshots, leases,
#                       books, heartbeat) and recreate the streams and groups
# m_gen ARGS...         orderpipe-ordergen with the test's seed and ARGS
# m_start NAME [ENV=VAL ...]   a matcher (short lease for quick takeovers)
# m_wait_fills N SECS   wait until the matchers published the reports of the
#                       N inputs of the flow (every orders entry is covered)
# m_check N [ARGS]      the checker: fills equal the engine's run of inputs 0…N-1
# m_owners              "shard:owner ..." of every lease
# m_owned_by NAME       how many leases NAME holds
# m_forget PID          a process we killed with -9 is not checked at t_done
# shellcheck shell=bash
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	printf 'matcher_lib.sh: helpers for the matcher tests, nothing to run on its own\n'
	exit 0
fi
. "$OP_ROOT/tests/lib/testlib.sh"

M_SHARDS="${ORDER_SHARDS:-4}"
M_SEED="${M_SEED:-$RANDOM}"
M_TMP="$OP_STACK_DIR/matcher-$(basename "$0" .sh)"
rm -rf "$M_TMP"
mkdir -p "$M_TMP"
# The generator's symbols cover every one of 4 shards; the table gives their ticks.
export SYMBOLS_FILE="$M_TMP/symbols.conf"
for s in AAPL MSFT GOOG AMZN TSLA NVDA META; do printf '%s 0.01 1 1000000\n' "$s"; done >"$SYMBOLS_FILE"
printf 'seed %s (M_SEED=%s reproduces this run)\n' "$M_SEED" "$M_SEED"

m_reset() {
	local s k
	for ((s = 0; s < M_SHARDS; s++)); do
		t_redis DEL "orders:{$s}" "oseq:{$s}" "odone:{$s}" "fills:{$s}" "snap:{$s}" "lease:{$s}" >/dev/null
		for k in AAPL MSFT GOOG AMZN TSLA NVDA META; do t_redis DEL "book:{$s}:$k" >/dev/null; done
	done
	t_redis DEL matchers:alive >/dev/null
	"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1 || t_fail "orderpipe-setup failed"
}

m_gen() {
	"$OP_BUILD/bin/orderpipe-ordergen" --seed "$M_SEED" "$@"
}

# Lease 2 s (renewed every 0.67 s), so a takeover takes about 2 s; Redis
# timeout 1 s (it must stay below the lease); frequent snapshots so that
# recoveries load one and replay the rest.
m_start() {
	local name="$1"
	shift
	t_start "$name" orderpipe-matcher MATCHER_NAME="$name" MATCHER_LEASE_MS=2000 \
		REDIS_TIMEOUT_MS=1000 MATCHER_METRICS_PORT=0 MATCHER_SNAPSHOT_EVERY=3000 \
		MATCHER_SNAPSHOT_MS=1000 "$@"
}

# m_caught_up: 0 when, on every shard, the last fills entry covers the last
# orders entry (an entry carries a batch; its `in` is "<first>..<last>" or
# one id). The flow's generator must have finished.
m_caught_up() {
	local s o f
	for ((s = 0; s < M_SHARDS; s++)); do
		o="$(redis-cli -p "$OP_REDIS_PORT" --raw XREVRANGE "orders:{$s}" + - COUNT 1 | sed -n 1p)"
		[[ -z "$o" ]] && continue
		f="$(redis-cli -p "$OP_REDIS_PORT" --raw XREVRANGE "fills:{$s}" + - COUNT 1 | awk 'p == 1 { print; p = 2 } $0 == "in" && !p { p = 1 }')"
		[[ "${f##*..}" == "$o" ]] || return 1
	done
	return 0
}

# m_wait_fills N SECS (N: the flow's inputs, for the message)
m_wait_fills() {
	local want="$1" secs="$2" deadline=$((SECONDS + $2))
	while ! m_caught_up; do
		if ((SECONDS >= deadline)); then
			t_fail "timed out after ${secs}s waiting for the reports of $want inputs"
			return 1
		fi
		sleep 0.2
	done
}

m_check() {
	local n="$1" out
	shift
	T_CHECKS=$((T_CHECKS + 1))
	if ! out="$("$OP_BUILD/tests/integration/test_matcher_check" check --seed "$M_SEED" --count "$n" "$@" 2>&1)"; then
		t_fail "checker: $out"
		return 1
	fi
	printf '%s\n' "$out"
}

m_owners() {
	local s out=""
	for ((s = 0; s < M_SHARDS; s++)); do out+="$s:$(t_redis GET "lease:{$s}") "; done
	printf '%s\n' "$out"
}

m_owned_by() {
	local s n=0
	for ((s = 0; s < M_SHARDS; s++)); do [[ "$(t_redis GET "lease:{$s}")" == "$1" ]] && n=$((n + 1)); done
	printf '%s\n' "$n"
}

# m_wait_owned SECS NAME=COUNT ...: wait until each NAME holds COUNT leases.
m_wait_owned() {
	local secs="$1" deadline=$((SECONDS + $1)) ok pair
	shift
	while :; do
		ok=1
		for pair in "$@"; do [[ "$(m_owned_by "${pair%%=*}")" == "${pair#*=}" ]] || ok=0; done
		((ok)) && return 0
		if ((SECONDS >= deadline)); then
			t_fail "timed out after ${secs}s waiting for leases $*: $(m_owners)"
			return 1
		fi
		sleep 0.2
	done
}

m_forget() {
	local p keep=()
	wait "$1" 2>/dev/null
	for p in "${T_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
	T_PIDS=("${keep[@]}")
}
