#!/usr/bin/env bash
# Group commit: an orders:{S} entry holds one writer round's inputs of its
# shard (schemas/messages.md).
#   1. entries of up to 700 inputs mixing new/cancel/amend of several
#      accounts and symbols, with poisoned elements among good ones: the
#      fills are exactly the reference engine's (each poisoned element one
#      MALFORMED report, its neighbours applied)
#   2. kill -9 of the matcher while it works through entries of 4096
#      inputs, and a restart: snapshot + replay give identical reports
#   3. through ingest: client_order_id retries landing in the same entry and
#      in different ones (never written twice, answered with the first id);
#      SCRIPT FLUSH between rounds (the entry script is loaded again, no 503);
#      a Redis restart between rounds (every 202 kept, oseq:{S} still counts
#      every input); the backlog of a shard counts orders, not entries
set -uo pipefail
. "$OP_ROOT/tests/integration/matcher_lib.sh"

# inputs_of S: the inputs held by orders:{S} (the sum of the entries' n)
inputs_of() {
	t_redis EVAL "$T_INPUTS_LUA" 1 "orders:{$1}"
}

# --- 1. mixed entries with poisoned elements -----------------------------------------
m_reset
m_start g1
m_gen --count 20000 --group 700 --poison-every 53 >"$M_TMP/gen1.log" 2>&1 || t_fail "ordergen --group failed: $(cat "$M_TMP/gen1.log")"
m_wait_fills 20000 120 && m_check 20000 --poison-every 53
mixed=0 multi_sym=0 entries=0
for ((s = 0; s < M_SHARDS; s++)); do
	while read -r typ sym n; do
		entries=$((entries + 1))
		[[ "$typ" == *,* && "$n" -gt 1 ]] && mixed=$((mixed + 1))
		[[ "$sym" == *,* ]] && multi_sym=$((multi_sym + 1))
	done < <(redis-cli -p "$OP_REDIS_PORT" --raw XRANGE "orders:{$s}" - + |
		awk '$0 == "type" { getline t } $0 == "sym" { getline y } $0 == "n" { getline n; print t, y, n }')
done
printf 'group: %s entries, %s with several kinds, %s with several symbols\n' "$entries" "$mixed" "$multi_sym"
t_match "entries mix new/cancel/amend ($mixed of $entries)" "$mixed" '^[1-9][0-9]*$'
t_match "entries mix symbols ($multi_sym of $entries)" "$multi_sym" '^[1-9][0-9]*$'
bad="$(grep -a -c 'event=malformed_entry' "$OP_STACK_DIR/g1.log" || true)"
t_eq "every poisoned element is one malformed input" "$bad" $((20000 / 53))
t_stop_all

# --- 2. kill -9 among long entries, restart ------------------------------------------
m_reset
m_start k1
pid="$T_PID"
m_gen --count 80000 --group 4096 --batch 4096 --rate 20000 >"$M_TMP/gen2.log" 2>&1 &
gen=$!
sleep 2
kill -KILL "$pid"
m_forget "$pid"
sleep 0.3
m_start k2
wait "$gen" || t_fail "ordergen (kill -9 case) failed: $(cat "$M_TMP/gen2.log")"
m_wait_fills 80000 120 && m_check 80000
t_match "the restarted matcher recovered (snapshot + replay)" "$(cat "$OP_STACK_DIR/k2.log")" 'event=recovered'
t_stop_all

# --- 3. through ingest ---------------------------------------------------------------
m_reset
port="$(op_free_port)"
url="http://127.0.0.1:$port"
A=("Authorization: Bearer dev-key-alice" "Content-Type: application/json")
B=("Authorization: Bearer dev-key-bob" "Content-Type: application/json")
t_start ingest orderpipe-ingest INGEST_PORT="$port" REDIS_TIMEOUT_MS=1000
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || {
	t_fail "ingest did not start"
	t_done
	exit 1
}
o() { printf '{"symbol":"%s","side":"buy","type":"limit","price":"%s","qty":1%s}' "$1" "$2" "${3:+,\"client_order_id\":\"$3\"}"; }

# the same client_order_id twice in one request: one entry, written once
before="$(t_orders_len)"
t_http POST "$url/v1/orders/batch" "{\"orders\":[$(o AAPL 1.00 g-1),$(o MSFT 2.00),$(o AAPL 1.50 g-1)]}" "${A[@]}"
t_eq "same entry: status" "$T_STATUS" 202
first="$(sed -E 's/^\{"results":\[\{"status":"QUEUED","order_id":"([0-9]+)".*/\1/' <<<"$T_BODY")"
t_match "same entry: the repeat is answered with the first id" "$T_BODY" "^\\{\"results\":\\[\\{\"status\":\"QUEUED\",\"order_id\":\"$first\",\"client_order_id\":\"g-1\"\\},\\{\"status\":\"QUEUED\",[^}]*\\},\\{\"status\":\"QUEUED\",\"order_id\":\"$first\",\"client_order_id\":\"g-1\",\"duplicate\":true\\}\\]\\}$"
t_eq "same entry: two inputs written" "$(t_orders_len)" $((before + 2))

# again in a later round: a different entry, still answered with the first id
t_http POST "$url/v1/orders" "$(o AAPL 1.00 g-1)" "${A[@]}"
t_eq "different entry: status" "$T_STATUS" 200
t_match "different entry: the first id" "$T_BODY" "\"order_id\":\"$first\".*\"duplicate\":true"
t_eq "different entry: nothing written" "$(t_orders_len)" $((before + 2))

# a known id beside new ones: the entry is written without it, the others once
t_http POST "$url/v1/orders/batch" "{\"orders\":[$(o AAPL 1.00 g-1),$(o AAPL 1.00 g-2),$(o AAPL 1.10 g-2),$(o AAPL 1.20 g-3)]}" "${A[@]}"
t_eq "known beside new: status" "$T_STATUS" 202
t_match "known beside new: answers" "$T_BODY" "^\\{\"results\":\\[\\{\"status\":\"QUEUED\",\"order_id\":\"$first\",\"client_order_id\":\"g-1\",\"duplicate\":true\\},\\{\"status\":\"QUEUED\",\"order_id\":\"([0-9]+)\",\"client_order_id\":\"g-2\"\\},\\{\"status\":\"QUEUED\",\"order_id\":\"[0-9]+\",\"client_order_id\":\"g-2\",\"duplicate\":true\\},\\{\"status\":\"QUEUED\",\"order_id\":\"[0-9]+\",\"client_order_id\":\"g-3\"\\}\\]\\}$"
t_eq "known beside new: g-2 and g-3 written once each" "$(t_orders_len)" $((before + 4))
last="$(for ((s = 0; s < M_SHARDS; s++)); do "$OP_BUILD/bin/orderpipe-tail" "orders:{$s}"; done | grep -a '"coid":"g-3"')"
t_match "known beside new: the entry holds g-2 and g-3 only" "$last" '"n":"2".*"m":\[\{[^]]*"coid":"g-2"[^]]*\},\{[^]]*"coid":"g-3"[^]]*\}\]'
t_http POST "$url/v1/orders" "$(o AAPL 1.00 g-1)" "${B[@]}"
t_eq "another account's g-1 is another order" "$T_STATUS" 202

# SCRIPT FLUSH between rounds: loaded again, no 503
t_redis SCRIPT FLUSH >/dev/null
before="$(t_orders_len)"
t_http POST "$url/v1/orders" "$(o AAPL 1.00 g-4)" "${A[@]}"
t_eq "after SCRIPT FLUSH: 202" "$T_STATUS" 202
t_eq "after SCRIPT FLUSH: written once" "$(t_orders_len)" $((before + 1))

# a Redis restart between rounds: every 202 kept, the counter too
body="$(t_batch_body 50 "$(o AAPL 1.00)")"
t_http POST "$url/v1/orders/batch" "$body" "${A[@]}"
t_eq "before the restart: 202" "$T_STATUS" 202
before="$(t_orders_len)"
"$OP_ROOT/ops/redis.sh" stop "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
"$OP_ROOT/ops/redis.sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1
t_eq "after the restart: every input kept" "$(t_orders_len)" "$before"
ok=no # reconnect backoff is at most 2 s
t_http_until 202 50 0.2 POST "$url/v1/orders/batch" "$body" "${A[@]}" && ok=1
t_eq "after the restart: 202 again" "$ok" 1
t_eq "after the restart: the batch written once" "$(t_orders_len)" $((before + 50))
counted=0
for ((s = 0; s < M_SHARDS; s++)); do
	v="$(t_redis GET "oseq:{$s}")"
	counted=$((counted + ${v//[^0-9]/0}))
done
t_eq "oseq:{S} counts every input written since the reset" "$counted" "$(t_orders_len)"

# the backlog counts orders: nobody consumes, so a shard's backlog is all it holds
want="" got=""
for ((i = 0; i < 30; i++)); do # polled every 200 ms
	metrics="$(curl -s "$url/metrics")"
	got="" want=""
	for ((s = 0; s < M_SHARDS; s++)); do
		got+="$(sed -n "s/^ingest_shard_backlog{shard=\"$s\"} //p" <<<"$metrics") "
		want+="$(inputs_of "$s") "
	done
	[[ "$got" == "$want" ]] && break
	sleep 0.2
done
t_eq "ingest_shard_backlog counts orders per shard" "$got" "$want"
# a matcher works it off: odone:{S} reaches oseq:{S}, the backlog 0
m_start w1
for ((i = 0; i < 100; i++)); do
	ok=1
	for ((s = 0; s < M_SHARDS; s++)); do
		o="$(t_redis GET "oseq:{$s}")"
		[[ "$o" =~ ^[0-9]+$ && "$(t_redis GET "odone:{$s}")" != "$o" ]] && ok=0
	done
	((ok)) && break
	sleep 0.2
done
t_eq "odone:{S} reaches oseq:{S} once the matcher processed everything" "$ok" 1
for ((i = 0; i < 30; i++)); do
	got="$(curl -s "$url/metrics" | sed -n 's/^ingest_shard_backlog{shard="[0-9]*"} //p' | sort -u | tr '\n' ' ')"
	[[ "$got" == "0 " ]] && break
	sleep 0.2
done
t_eq "the backlog of every shard is 0 again" "$got" "0 "
t_stop_all

t_done
