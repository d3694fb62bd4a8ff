#!/usr/bin/env bash
# Backlog after Redis restarts (issue 10, part 5): a fully processed shard
# must read a backlog of 0 and take new orders, whatever XINFO GROUPS' `lag`
# says. Redis 7.0 restores a group's entries-read counter inexactly from the
# AOF, and a stale `lag` (48,183 on an idle shard) made ingest answer 429.
#  1. a flow is processed, Redis is restarted twice: ingest's
#     ingest_shard_backlog and the matcher's matcher_shard_lag read 0 on every
#     shard, a new order gets 202 with INGEST_MAX_LAG=5;
#  2. the stale counter is forced where the restart alone did not leave one
#     (XGROUP SETID <last id> ENTRIESREAD 1: `lag` = entries added - 1, last-
#     delivered-id still the last entry): the raw `lag` is above the mark,
#     the backlog still reads 0, a new order still gets 202 and is processed,
#     and a real backlog (nobody consuming) still gives 429.
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

iport="$(op_free_port)"
mport="$(op_free_port "$iport")"
url="http://127.0.0.1:$iport"
H=("Authorization: Bearer dev-key-alice" "Content-Type: application/json")
ORDER='{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}'
MAX_LAG=5

# raw_lags: "S:lag ..." as XINFO GROUPS reports it for group matchers.
raw_lags() {
	local s out="" l
	for ((s = 0; s < M_SHARDS; s++)); do
		l="$(redis-cli -p "$OP_REDIS_PORT" --raw XINFO GROUPS "orders:{$s}" | awk 'p { print; exit } $0 == "lag" { p = 1 }')"
		out+="$s:${l:-nil} "
	done
	printf '%s\n' "$out"
}

# backlogs URL METRIC: "S:value ..." of the metric's per-shard samples.
backlogs() {
	curl -s --max-time 5 "$1/metrics" | awk -v m="$2" 'index($1, m "{") == 1 { print $1 "=" $2 }' |
		sed 's/.*shard="\([0-9]*\)"}=/\1:/' | sort -n | tr '\n' ' '
}

# wait_zero WHAT URL METRIC: every shard's sample reads 0 (polled every 200 ms
# by ingest, every third of the lease by the matcher).
wait_zero() {
	local what="$1" u="$2" m="$3" got="" i
	for ((i = 0; i < 100; i++)); do
		got="$(backlogs "$u" "$m")"
		[[ -n "$got" && ! "$got" =~ :[1-9] ]] && break
		sleep 0.2
	done
	t_match "$what: $m of every shard" "$got" '^(0:0 )(1:0 )(2:0 )(3:0 )$'
}

post_ok() { # post_ok WHAT: a new order is queued (not refused by backpressure);
	local i # a 503 while a lane still reconnects (backoff up to 2 s) is retried
	for ((i = 0; i < 50; i++)); do
		t_http POST "$url/v1/orders" "$ORDER" "${H[@]}"
		[[ "$T_STATUS" == 503 ]] || break
		sleep 0.2
	done
	t_eq "$1: a new order" "$T_STATUS" 202
}

m_reset
m_gen --count 4000 >/dev/null || t_fail "ordergen failed"
m_start b1 MATCHER_METRICS_PORT="$mport"
t_start ingest orderpipe-ingest INGEST_PORT="$iport" INGEST_MAX_LAG="$MAX_LAG" REDIS_TIMEOUT_MS=500
op_wait_until 20 "ingest on $iport" curl -sf "$url/healthz" || t_fail "ingest did not start"
m_wait_fills 4000 120 && m_check 4000

# --- 1. two Redis restarts on a fully processed pipeline ----------------------------
for r in 1 2; do
	"$OP_ROOT/ops/redis.sh" stop "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
	"$OP_ROOT/ops/redis.sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
	op_wait_until 30 "ingest back after restart $r" curl -sf "$url/healthz" >/dev/null || t_fail "ingest did not reconnect"
	printf 'after restart %d: XINFO GROUPS lag of matchers: %s\n' "$r" "$(raw_lags)"
done
wait_zero "after two restarts" "$url" ingest_shard_backlog
wait_zero "after two restarts" "http://127.0.0.1:$mport" matcher_shard_lag
post_ok "after two restarts"
m_wait_fills 4001 60

# --- 2. a stale entries-read counter, forced ------------------------------------------
for ((s = 0; s < M_SHARDS; s++)); do
	last="$(redis-cli -p "$OP_REDIS_PORT" --raw XINFO STREAM "orders:{$s}" | awk 'p { print; exit } $0 == "last-generated-id" { p = 1 }')"
	t_eq "force shard $s" "$(t_redis XGROUP SETID "orders:{$s}" matchers "$last" ENTRIESREAD 1)" OK
done
lags="$(raw_lags)"
printf 'forced: XINFO GROUPS lag of matchers: %s\n' "$lags"
stale=0
for l in $lags; do ((${l#*:} > MAX_LAG)) && stale=$((stale + 1)); done
T_CHECKS=$((T_CHECKS + 1))
((stale == M_SHARDS)) || t_fail "forced: raw lag above $MAX_LAG on $stale of $M_SHARDS shards ($lags)"
sleep 1 # several of ingest's polls
wait_zero "stale lag" "$url" ingest_shard_backlog
wait_zero "stale lag" "http://127.0.0.1:$mport" matcher_shard_lag
post_ok "stale lag"
m_wait_fills 4002 60
post_ok "stale lag, after the order was processed"
m_wait_fills 4003 60

# --- a real backlog still sheds load ----------------------------------------------------
t_stop_all # the matcher (and ingest) stop: nobody consumes
t_start ingest2 orderpipe-ingest INGEST_PORT="$iport" INGEST_MAX_LAG="$MAX_LAG" REDIS_TIMEOUT_MS=500
op_wait_until 20 "ingest on $iport" curl -sf "$url/healthz" || t_fail "ingest did not restart"
body="$(t_batch_body 10 "$ORDER")"
t_http POST "$url/v1/orders/batch" "$body" "${H[@]}"
t_eq "real backlog: queued" "$T_STATUS" 202
got=no
t_http_until 429 50 0.1 POST "$url/v1/orders" "$ORDER" "${H[@]}" && got=1
t_eq "real backlog (stale counter): 429" "$got" 1
t_match "real backlog: AAPL's shard is counted" "$(backlogs "$url" ingest_shard_backlog)" ':1[0-9]'
t_done
