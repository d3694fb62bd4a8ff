#!/usr/bin/env bash
# Availability under connection abuse (issue 10, part 4): a flood of
# slowloris and idle connections, well above INGEST_MAX_CONNECTIONS and from
# other loopback addresses, must not lock a normal client out: it keeps
# getting 202s, none of its connections refused. The request deadline
# (INGEST_REQUEST_TIMEOUT_MS) closes a slowloris that libmicrohttpd's idle
# timeout never would, and one address cannot hold more than
# INGEST_MAX_CONNECTIONS_PER_IP connections. tests/lib/flood.py does the
# socket work; small limits keep the run short.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
# The idle timeout is far above the run so that only the request deadline can
# close the probes.
t_start ingest orderpipe-ingest INGEST_PORT="$port" INGEST_MAX_CONNECTIONS=200 \
	INGEST_MAX_CONNECTIONS_PER_IP=100 INGEST_REQUEST_TIMEOUT_MS=2000 INGEST_IDLE_TIMEOUT_S=600
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || { t_fail "ingest did not start"; t_done; exit 1; }

kv() { sed -n "s/^$1=//p" <<<"$2"; }

# --- one address is capped (no flood yet: the table has room) ---------------------
out="$(python3 "$OP_ROOT/tests/lib/flood.py" perip "$port" 127.0.0.8 130)"
t_match "per-address cap: at most 100 of 130 kept" "$(kv perip_open "$out")" '^([0-9]|[1-9][0-9]|100)$'
t_match "per-address cap: the rest closed" "$(kv perip_closed "$out")" '^([3-9][0-9]|1[0-2][0-9]|130)$'

# --- the request deadline closes what the idle timeout (600 s) would not -----------
out="$(python3 "$OP_ROOT/tests/lib/flood.py" slow "$port" 127.0.0.10 30)"
t_eq "slowloris closed at the request deadline" "$(kv slow_closed "$out")" 1
t_eq "idle connection closed at the request deadline" "$(kv idle_closed "$out")" 1
t_http GET "$url/metrics" ""
t_match "metric: connections closed at their deadline" "$T_BODY" 'ingest_connections_closed_total\{reason="request_timeout"\} [1-9]'

# --- 4 x 120 slow and idle connections against a table of 200 -----------------------
before="$(t_orders_len)"
out="$(python3 "$OP_ROOT/tests/lib/flood.py" flood "$port" 15 120 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5)"
printf '%s\n' "$out"
n="$(kv normal_requests "$out")"
ok="$(kv normal_202 "$out")"
t_match "normal client made requests" "$n" '^[1-9][0-9]*$'
t_eq "normal client: no connection refused or reset" "$(kv normal_errors "$out")" 0
t_eq "normal client: at least 90% answered 202 ($ok of $n)" "$((${ok:-0} * 10 >= ${n:-1} * 9))" 1
t_eq "normal client: every 202 is queued" "$(($(t_orders_len) >= before + ${ok:-0}))" 1
opened="$(kv flood_opened "$out")"
t_eq "the flood opened more than the table holds ($opened)" "$((${opened:-0} > 480))" 1
t_eq "a slowloris amid the flood is closed" "$(kv probe_slow_closed "$out")" 1
t_eq "an idle connection amid the flood is closed" "$(kv probe_idle_closed "$out")" 1

t_http GET "$url/metrics" ""
t_match "metric: idle connections evicted for new ones" "$T_BODY" 'ingest_connections_closed_total\{reason="evicted"\} [1-9]'
t_match "metric: open connections" "$T_BODY" 'ingest_connections_open [0-9]'
t_http POST "$url/v1/orders" '{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}' \
	"Authorization: Bearer dev-key-alice" "Content-Type: application/json"
t_eq "after the flood: 202" "$T_STATUS" 202
t_stop_all

# The flood's thousands of unconsumed orders would count as backlog for the
# next tests (INGEST_MAX_LAG): leave the streams empty, as they were.
for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do t_redis DEL "orders:{$s}" >/dev/null; done
"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1 || t_fail "orderpipe-setup could not recreate the streams"
t_eq "streams recreated empty" "$(t_orders_len)" 0

t_done
