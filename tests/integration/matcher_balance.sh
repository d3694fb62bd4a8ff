#!/usr/bin/env bash
# Matcher balancing, poison, market data and the ops endpoints:
#   1. two workers split the 4 shards 2/2, a third makes it 2/1/1; the third
#      leaves (SIGTERM: snapshot, lease released, exit 0) and its shard moves;
#      a flow running meanwhile is reported exactly (checker)
#   2. poisoned entries (garbage msgpack in m) are reported REJECTED
#      MALFORMED and acknowledged; the shard goes on (checker exact)
#   3. book:{S}:<SYMBOL> holds the aggregated book JSON; /healthz, /metrics
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

# --- 1. balance --------------------------------------------------------------------
m_reset
m_start w1
m_start w2
m_wait_owned 20 w1=2 w2=2
m_gen --count 30000 --rate 10000 >"$M_TMP/gen1.log" 2>&1 &
gen=$!
m_start w3
p3="$T_PID"
# ranks by name: w1 gets ceil, w2 and w3 one each
m_wait_owned 20 w1=2 w2=1 w3=1
kill -TERM "$p3"
rc=0
wait "$p3" || rc=$?
t_eq "a leaving worker exits 0" "$rc" 0
m_forget "$p3"
t_match "the leaving worker handed its shard back" "$(cat "$OP_STACK_DIR/w3.log")" 'event=lease_released shard=[0-9]+ why=shutdown'
m_wait_owned 20 w1=2 w2=2
wait "$gen" || t_fail "ordergen failed: $(cat "$M_TMP/gen1.log")"
m_wait_fills 30000 120 && m_check 30000
t_stop_all

# --- 2. poison ---------------------------------------------------------------------------
m_reset
m_start p1
m_gen --count 10000 --poison-every 97 >/dev/null || t_fail "ordergen (poison) failed"
m_wait_fills 10000 60 && m_check 10000 --poison-every 97
rejected=0
for ((s = 0; s < M_SHARDS; s++)); do
	n="$(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "fills:{$s}" - + | grep -a -o 'rejected=[0-9]*' | awk -F= '{ t += $2 } END { print t + 0 }')"
	rejected=$((rejected + n))
done
t_match "poisoned entries are reported as rejected ($rejected)" "$rejected" '^[1-9][0-9]*$'
pend=0
for ((s = 0; s < M_SHARDS; s++)); do
	n="$(redis-cli -p "$OP_REDIS_PORT" --raw XPENDING "orders:{$s}" matchers | head -1)"
	pend=$((pend + ${n:-0}))
done
t_eq "every input, poisoned or not, is acknowledged" "$pend" 0
t_match "malformed entries are logged" "$(cat "$OP_STACK_DIR/p1.log")" 'event=malformed_entry'

# --- 3. market data and the ops endpoints -------------------------------------------------
book="$(redis-cli -p "$OP_REDIS_PORT" --raw GET 'book:{3}:AAPL')"
t_match "book JSON" "$book" '^\{"symbol":"AAPL","ts":"2026-11-21T10:00:[0-9]{2}\.[0-9]{6}Z","bids":\[(\["[0-9]+\.[0-9]{2}",[0-9]+,[0-9]+\],?)*\],"asks":\[(\["[0-9]+\.[0-9]{2}",[0-9]+,[0-9]+\],?)*\]\}$'
t_match "book has levels" "$book" '"bids":\[\["'
port="$(op_free_port)"
m_start q1 MATCHER_METRICS_PORT="$port"
op_wait_until 20 "matcher metrics on $port" curl -sf "http://127.0.0.1:$port/healthz"
t_http GET "http://127.0.0.1:$port/healthz" ""
t_eq "healthz" "$T_STATUS" 200
t_match "healthz body" "$T_BODY" '"status":"ok"'
t_http GET "http://127.0.0.1:$port/metrics" ""
t_eq "metrics" "$T_STATUS" 200
for m in matcher_inputs_total matcher_trades_total matcher_batch_size_bucket matcher_batch_seconds_count \
	'matcher_shard_lag\{shard="0"\}' 'matcher_shard_pending\{shard="3"\}' matcher_lease_changes_total \
	matcher_snapshot_seconds_count matcher_recovery_seconds_count; do
	t_match "metrics has $m" "$T_BODY" "$m"
done
t_stop_all
held=0
for ((s = 0; s < M_SHARDS; s++)); do held=$((held + $(t_redis EXISTS "lease:{$s}"))); done
t_eq "p1 and q1 released every lease on SIGTERM" "$held" 0

# --- trimming keeps up with more than 10,000 entries between two snapshots ----------------
# (XTRIM MINID ~ removes at most 10,000 entries per call unless LIMIT 0: the
# orders streams grew without bound under ops/soak.sh)
m_reset
m_start tr1 MATCHER_SNAPSHOT_EVERY=15000 MATCHER_SNAPSHOT_MS=600000
m_gen --count 80000 >/dev/null || t_fail "ordergen (trim) failed"
m_wait_fills 80000 180 && m_check 80000 >/dev/null
snapped=0
for ((s = 0; s < M_SHARDS; s++)); do
	snap="$(redis-cli -p "$OP_REDIS_PORT" --raw HGET "snap:{$s}" id)"
	[[ -n "$snap" ]] || continue
	snapped=$((snapped + 1))
	below="$(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "orders:{$s}" - "$snap" COUNT 1000 | grep -c -E '^[0-9]+-[0-9]+$')"
	# "~" keeps the radix-tree node holding the snapshot's id: at most 100 entries
	t_match "orders:{$s} trimmed up to its snapshot ($below entries left at or below it)" "$below" '^([0-9]|[1-9][0-9]|100)$'
done
t_match "some shard took a snapshot after more than 10,000 entries ($snapped shards)" "$snapped" '^[1-9]$'
t_stop_all

# --- configuration errors name the variable ------------------------------------------------
out="$(MATCHER_LEASE_MS=abc "$OP_BUILD/bin/orderpipe-matcher" 2>&1)"
t_eq "bad MATCHER_LEASE_MS: exit status" "$?" 2
t_match "bad MATCHER_LEASE_MS: message" "$out" "invalid MATCHER_LEASE_MS='abc'"
out="$(MATCHER_LEASE_MS=500 REDIS_TIMEOUT_MS=1000 "$OP_BUILD/bin/orderpipe-matcher" 2>&1)"
t_match "lease below the redis timeout is refused" "$out" "invalid MATCHER_LEASE_MS=500"
t_done
