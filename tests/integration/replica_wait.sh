#!/usr/bin/env bash
# Replica-acknowledged writes (issue 17, part 2) on one primary and one
# replica (a second redis-server started here with --replicaof):
#  1. INGEST_MIN_REPLICAS=1 with the replica attached: 202, and the matcher
#     with MATCHER_MIN_REPLICAS=1 publishes without a replication timeout;
#  2. the replica stopped: ingest answers 503 replication_timeout with
#     Retry-After, and the order IS in the primary's stream (the documented
#     departure from "503: nothing was queued"); an ingest with
#     INGEST_MIN_REPLICAS=0 answers 202 in the same situation; the matcher
#     counts its short WAITs;
#  3. a replica attached again: resending the 503 order with its
#     client_order_id answers 200 with one order id, not a second order;
#  4. failover: orders flow through ingest (INGEST_MIN_REPLICAS=1), matcher
#     and recorder; the primary is killed (-9) mid-flow, the replica
#     promoted (REPLICAOF NO ONE), a fresh ingest, matcher and recorder
#     pointed at it: every order that got 202 is in PostgreSQL exactly once,
#     and resending one answers 200 with its original id.
# The harness's Redis is restarted (from its AOF) at the end.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
t_skip_unless_built replica_wait

t_clean_slate

H=("Authorization: Bearer dev-key-alice" "Content-Type: application/json")
rdir="$OP_STACK_DIR/replica"
rport=""
rpid=""

# replica_start: a fresh replica of the harness's Redis (no persistence: a
# full sync from the primary), waits until its link is up.
replica_start() {
	rm -rf "$rdir"
	mkdir -p "$rdir"
	rport="$(op_free_port "$OP_REDIS_PORT")"
	redis-server --port "$rport" --bind 127.0.0.1 --dir "$rdir" --save "" --appendonly no \
		--replicaof 127.0.0.1 "$OP_REDIS_PORT" >"$rdir/redis.log" 2>&1 &
	rpid=$!
	op_wait_until 30 "replica on $rport in sync" \
		bash -c "redis-cli -p $rport INFO replication | grep -q 'master_link_status:up'" ||
		t_fail "the replica did not sync: $(tail -n 5 "$rdir/redis.log")"
	# In sync as the replica sees it is not yet counted by the primary's
	# WAIT (its first ACK may still be on the way): wait until it is.
	op_wait_until 30 "the primary's WAIT to count the replica" \
		bash -c "(( \$(redis-cli -p $OP_REDIS_PORT WAIT 1 1000) >= 1 ))" ||
		t_fail "the primary never counted the replica in WAIT"
}

# replica_stop: kills the replica and waits for it.
replica_stop() {
	kill -9 "$rpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
	rpid=""
}

# order PORT CLIENT_ORDER_ID PRICE [SYMBOL]: a limit buy, POST /v1/orders
# (T_STATUS, T_BODY).
order() {
	t_http POST "http://127.0.0.1:$1/v1/orders" \
		"{\"symbol\":\"${4:-AAPL}\",\"side\":\"buy\",\"type\":\"limit\",\"price\":\"$3\",\"qty\":1,\"client_order_id\":\"$2\"}" \
		"${H[@]}"
}
order_id() { sed -n 's/.*"order_id":"\([0-9]*\)".*/\1/p' <<<"$T_BODY"; }

metric() { # metric PORT NAME: a sample's value from /metrics
	curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# --- 1. replica attached ---------------------------------------------------------
replica_start
p1="$(op_free_port)"
p0="$(op_free_port "$p1")"
mport="$(op_free_port "$p1" "$p0")"
# 1 s for the replica's acknowledgement (not the 100 ms default): on a
# loaded test machine a live replica can take longer than 100 ms, and this
# test is about what is answered, not how fast.
t_start rw-ingest1 orderpipe-ingest INGEST_PORT="$p1" INGEST_MIN_REPLICAS=1 INGEST_REPLICA_TIMEOUT_MS=1000
ingest1="$T_PID"
t_start rw-ingest0 orderpipe-ingest INGEST_PORT="$p0" INGEST_MIN_REPLICAS=0
ingest0="$T_PID"
t_start rw-matcher orderpipe-matcher MATCHER_METRICS_PORT="$mport" MATCHER_MIN_REPLICAS=1 MATCHER_TICK_MS=0
matcher="$T_PID"
op_wait_until 30 "ingest on $p1" curl -sf "http://127.0.0.1:$p1/healthz" >/dev/null || t_fail "ingest 1"
op_wait_until 30 "ingest on $p0" curl -sf "http://127.0.0.1:$p0/healthz" >/dev/null || t_fail "ingest 0"

order "$p1" a-1 10.00
t_eq "MIN_REPLICAS=1, replica up: status" "$T_STATUS" 202
t_batch_body 5 '{"symbol":"MSFT","side":"sell","type":"limit","price":"20.00","qty":1}' >"$OP_STACK_DIR/rw-batch"
t_http POST "http://127.0.0.1:$p1/v1/orders/batch" "@$OP_STACK_DIR/rw-batch" "${H[@]}"
t_eq "MIN_REPLICAS=1, replica up: batch" "$T_STATUS" 202
# the matcher has processed both (its odone keys reach the inputs' count)
op_wait_until 30 "the matcher to publish" bash -c \
	"[[ \$(curl -s http://127.0.0.1:$mport/metrics | awk '\$1 == \"matcher_inputs_total\" {print \$2}') -ge 6 ]]" ||
	t_fail "the matcher did not process the inputs"
t_eq "matcher: no replication timeout with the replica up" "$(metric "$mport" matcher_replication_timeouts_total)" 0
t_match "ingest: WAIT latency observed" "$(metric "$p1" ingest_replication_wait_seconds_count)" '^[1-9][0-9]*$'
t_eq "ingest: no replication timeout yet" "$(metric "$p1" ingest_replication_timeouts_total)" 0

# --- 2. replica gone ---------------------------------------------------------------
replica_stop
before="$(t_orders_len)"
order "$p1" lost-1 11.00
t_eq "replica down, MIN_REPLICAS=1: status" "$T_STATUS" 503
t_match "replica down: code" "$T_BODY" '"code":"replication_timeout"'
t_match "replica down: message says resending is safe" "$T_BODY" 'resending with the same client_order_id is safe'
t_match "replica down: Retry-After" "$T_HEADERS" 'Retry-After: 1'
t_eq "replica down: the 503 order is in the primary's stream (not 'nothing queued')" \
	"$(t_orders_len)" $((before + 1))
t_http POST "http://127.0.0.1:$p1/v1/orders/batch" "@$OP_STACK_DIR/rw-batch" "${H[@]}"
t_eq "replica down: batch" "$T_STATUS" 503
t_match "replica down: batch code" "$T_BODY" '"code":"replication_timeout"'
t_eq "ingest: replication timeouts counted" "$(metric "$p1" ingest_replication_timeouts_total)" 6
order "$p0" zero-1 12.00
t_eq "replica down, MIN_REPLICAS=0: status" "$T_STATUS" 202
op_wait_until 30 "the matcher to count a short WAIT" bash -c \
	"[[ \$(curl -s http://127.0.0.1:$mport/metrics | awk '\$1 == \"matcher_replication_timeouts_total\" {print \$2}') -ge 1 ]]" ||
	t_fail "the matcher counted no replication timeout with the replica down"

# --- 3. replica back: the resend is a duplicate ----------------------------------
replica_start
before="$(t_orders_len)"
order "$p1" lost-1 11.00
t_eq "resend after 503 replication_timeout: status" "$T_STATUS" 200
t_match "resend: a duplicate" "$T_BODY" '"duplicate":true'
first="$(order_id)"
order "$p1" lost-1 11.00
t_eq "resend again: same order id" "$(order_id)" "$first"
t_eq "the resends queued nothing" "$(t_orders_len)" "$before"

# --- 4. failover -------------------------------------------------------------------
t_start rw-recorder orderpipe-recorder RECORDER_METRICS_PORT=0
recorder="$T_PID"
acc="$OP_STACK_DIR/rw-accepted"
: >"$acc"
# the flow: crossing buys and sells, each with a client_order_id; the 202s'
# order ids are kept (one request at a time: each waits for its WAIT)
flow() {
	local i side
	for ((i = 0; i < 400; i++)); do
		side=$([[ $((i % 2)) == 0 ]] && echo buy || echo sell)
		code="$(curl -s -o "$OP_STACK_DIR/rw-f.b" -w '%{http_code}' --max-time 5 -X POST \
			"http://127.0.0.1:$p1/v1/orders" -H "${H[0]}" -H "${H[1]}" \
			-d "{\"symbol\":\"TSLA\",\"side\":\"$side\",\"type\":\"limit\",\"price\":\"5.00\",\"qty\":1,\"client_order_id\":\"f-$i\"}" 2>/dev/null)"
		[[ "$code" == 202 ]] &&
			printf 'f-%s %s\n' "$i" "$(sed -n 's/.*"order_id":"\([0-9]*\)".*/\1/p' "$OP_STACK_DIR/rw-f.b")" >>"$acc"
	done
}
flow &
flowpid=$!
op_wait_until 60 "some accepted orders" bash -c "[[ \$(wc -l <'$acc') -ge 50 ]]" || t_fail "the flow did not start"
kill -9 "$(cat "$OP_REDIS_DIR/redis.pid")"
wait "$flowpid"
t_match "orders got 202 before the kill" "$(wc -l <"$acc")" '^[1-9][0-9]*$'
redis-cli -p "$rport" REPLICAOF NO ONE >/dev/null
t_eq "the replica is promoted" "$(redis-cli -p "$rport" --raw ROLE | head -n 1)" master

# The services on the dead primary stop; fresh ones on the promoted replica.
for p in "$ingest1" "$ingest0" "$matcher" "$recorder"; do kill -TERM "$p" 2>/dev/null; done
for p in "$ingest1" "$ingest0" "$matcher" "$recorder"; do
	rc=0
	wait "$p" || rc=$?
	t_eq "service $p stops cleanly after the primary died" "$rc" 0
done
T_PIDS=()
newurl="redis://127.0.0.1:$rport"
pn="$(op_free_port "$rport")"
t_start rw-ingest-new orderpipe-ingest REDIS_URL="$newurl" INGEST_PORT="$pn"
t_start rw-matcher-new orderpipe-matcher REDIS_URL="$newurl" MATCHER_METRICS_PORT=0
t_start rw-recorder-new orderpipe-recorder REDIS_URL="$newurl" RECORDER_METRICS_PORT=0
op_wait_until 30 "ingest on $pn" curl -sf "http://127.0.0.1:$pn/healthz" >/dev/null || t_fail "new ingest"

want="$(wc -l <"$acc")"
ids="$(awk '{print $2}' "$acc" | paste -sd, -)"
q="SELECT count(*) FROM orders WHERE order_id IN ($ids)"
op_wait_until 60 "every 202 order recorded" bash -c \
	"[[ \$(psql -qAtX '$DATABASE_URL' -c '$q') == $want ]]" || true
t_eq "every order answered 202 is in PostgreSQL" "$(psql -qAtX "$DATABASE_URL" -c "$q")" "$want"
t_eq "no client_order_id of the flow recorded twice" \
	"$(psql -qAtX "$DATABASE_URL" -c "SELECT count(*) FROM (SELECT client_order_id FROM orders WHERE client_order_id LIKE 'f-%' GROUP BY client_order_id HAVING count(*) > 1) d")" 0
read -r cid oid < <(tail -n 1 "$acc")
order "$pn" "$cid" 5.00 TSLA
t_eq "after failover: a resent 202 order is a duplicate" "$T_STATUS" 200
t_eq "after failover: with its original id" "$(order_id)" "$oid"
t_stop_all

# --- clean up: the harness's Redis back (its AOF), the promoted replica gone --------
replica_stop
"$OP_ROOT/ops/redis.sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1 || t_fail "restarting the harness redis"
redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1
t_done
