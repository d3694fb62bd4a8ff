#!/usr/bin/env bash
# Ingest under faults: Redis stopped -> 503 with Retry-After and nothing
# queued; Redis back -> 202 again without restarting ingest, and every order
# answered 202 survives the restart (AOF). Backpressure: a shard whose backlog
# passes INGEST_MAX_LAG answers 429. SIGTERM drains in-flight requests: every
# 202 is in Redis and ingest exits 0.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

# A clean slate: the harness shares one stack, and the orders earlier tests
# left unmatched in orders:{S} count in the backlog this test's small
# INGEST_MAX_LAG compares with (it answered 429 where 503 was expected).
redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
"$OP_BUILD/bin/orderpipe-setup" >/dev/null || t_fail "orderpipe-setup"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
H=("Authorization: Bearer dev-key-alice" "Content-Type: application/json")
ORDER='{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}'
t_start ingest orderpipe-ingest INGEST_PORT="$port" INGEST_MAX_LAG=50 REDIS_TIMEOUT_MS=500
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || { t_fail "ingest did not start"; t_done; exit 1; }

# --- Redis down and back -------------------------------------------------------
t_http POST "$url/v1/orders" "$ORDER" "${H[@]}"
t_eq "before: queued" "$T_STATUS" 202
before="$(t_orders_len)"
"$OP_ROOT/ops/redis.sh" stop "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
t_http POST "$url/v1/orders" "$ORDER" "${H[@]}"
t_eq "redis down: status" "$T_STATUS" 503
t_match "redis down: code" "$T_BODY" '"code":"redis_unavailable"'
t_match "redis down: Retry-After" "$T_HEADERS" 'Retry-After: 1'
t_http POST "$url/v1/orders/batch" "{\"orders\":[$ORDER,$ORDER]}" "${H[@]}"
t_eq "redis down: batch" "$T_STATUS" 503
t_http GET "$url/healthz" ""
t_eq "redis down: healthz" "$T_STATUS" 503
"$OP_ROOT/ops/redis.sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
t_eq "after restart: the 202 order survived, the 503 ones are absent" "$(t_orders_len)" "$before"
ok=no # reconnect backoff is at most 2 s
t_http_until 202 50 0.2 POST "$url/v1/orders" "$ORDER" "${H[@]}" && ok=1
t_eq "redis back: 202 without restarting ingest" "$ok" 1
t_eq "redis back: queued" "$(t_orders_len)" $((before + 1))
t_http GET "$url/healthz" ""
t_eq "redis back: healthz" "$T_STATUS" 200

# --- backpressure: nobody consumes, the backlog of AAPL's shard passes 50 --------
body="$(t_batch_body 60 "$ORDER")"
t_http POST "$url/v1/orders/batch" "$body" "${H[@]}"
t_eq "fill the backlog" "$T_STATUS" 202
got=no # the backlog is polled every 200 ms
t_http_until 429 30 0.1 POST "$url/v1/orders" "$ORDER" "${H[@]}" && got=1
t_eq "backpressure: 429" "$got" 1
t_match "backpressure: code" "$T_BODY" '"code":"backpressure"'
t_match "backpressure: Retry-After" "$T_HEADERS" 'Retry-After: 1'
n="$(t_orders_len)"
t_http POST "$url/v1/orders" "$ORDER" "${H[@]}"
t_eq "backpressure: nothing queued" "$(t_orders_len)" "$n"
t_http DELETE "$url/v1/orders/5?symbol=AAPL" "" "${H[@]}"
t_eq "backpressure: cancels still pass" "$T_STATUS" 202
t_http POST "$url/v1/orders" '{"symbol":"MSFT","side":"buy","type":"limit","price":"1.00","qty":1}' "${H[@]}"
msft_shard_busy="$([[ "$T_STATUS" == 429 ]] && echo yes || echo no)"
t_match "other shards unaffected (or share AAPL's shard)" "$T_STATUS/$msft_shard_busy" '^(202/no|429/yes)$'
t_stop_all

# --- SIGTERM drains in-flight requests ------------------------------------------
for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do t_redis DEL "orders:{$s}" >/dev/null; done
"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1
t_start ingest2 orderpipe-ingest INGEST_PORT="$port"
pid="$T_PID"
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || t_fail "ingest restart"
mkdir -p "$OP_STACK_DIR/drain"
for ((i = 0; i < 40; i++)); do
	curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X POST "$url/v1/orders" \
		-H "${H[0]}" -H "${H[1]}" -d "$ORDER" >"$OP_STACK_DIR/drain/$i" 2>/dev/null &
done
sleep 0.05
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
wait
T_PIDS=()
t_eq "SIGTERM: exit status" "$rc" 0
accepted="$(cat "$OP_STACK_DIR"/drain/* | grep -c '^202$' || true)"
answered="$(cat "$OP_STACK_DIR"/drain/* | grep -cv '^000$' || true)"
t_eq "SIGTERM: every 202 is in redis" "$(t_orders_len)" "$accepted"
printf "drain: %s of 40 requests answered 202\n" "$accepted"
# A request that arrives after the drain began is refused (503 shutting_down,
# nothing queued) or never connects (000); none may get another answer.
t_match "SIGTERM: answers are 202, 503 or no connection ($answered answered)" "$(cat "$OP_STACK_DIR"/drain/* | sort -u | tr '\n' ' ')" '^(000 )?(202 )?(503 )?$'
t_done
