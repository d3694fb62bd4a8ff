#!/usr/bin/env bash
# The trading controls of issue 14 through the whole pipeline (REST → ingest
# → matcher → recorder → GET /v1/orders), one deterministic case each:
#  1. self-trade prevention: cancel_taker, cancel_maker, decrement, and the
#     account default from the API key file's third column; no fill is
#     recorded for a prevented self-trade;
#  2. replace: more quantity, a new price that trades on arrival;
#  3. cancel-all of one symbol, then of every symbol (GOOG is on shard 1,
#     the other symbols on shard 3 of the default 4), never another
#     account's orders;
#  4. the open-order limit (MAX_OPEN_ORDERS=3 on the matcher);
#  5. bad input: an unknown stp, a PATCH without price or qty → 400, nothing
#     queued.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
t_skip_unless_built trading_controls

t_clean_slate

keys="$OP_STACK_DIR/trading-keys.conf"
printf '%s\n' "dev-key-alice alice" "dev-key-bob bob" "dev-key-carol carol cancel_both" >"$keys"
port="$INGEST_PORT"
url="http://127.0.0.1:$port"
t_start tc-ingest orderpipe-ingest INGEST_PORT="$port" API_KEYS_FILE="$keys"
t_start tc-matcher orderpipe-matcher MATCHER_METRICS_PORT=0 MAX_OPEN_ORDERS=3
t_start tc-recorder orderpipe-recorder RECORDER_METRICS_PORT=0
op_wait_until 30 "ingest on $port" curl -sf "$url/healthz" >/dev/null || {
	t_fail "ingest did not start"
	t_done
	exit 1
}

# send KEY METHOD PATH [BODY]: an authenticated request (T_STATUS, T_BODY).
send() {
	t_http "$2" "$url$3" "${4:-}" "Authorization: Bearer $1" "Content-Type: application/json"
}

# order KEY BODY: POST /v1/orders; prints the order id (empty on failure).
order() {
	send "$1" POST /v1/orders "$2"
	[[ "$T_STATUS" == 202 ]] || t_fail "POST $2: $T_STATUS $T_BODY"
	sed -n 's/.*"order_id":"\([0-9]*\)".*/\1/p' <<<"$T_BODY"
}

# state KEY ID: "status qty filled_qty price reject_reason" of the recorded order.
state() {
	send "$1" GET "/v1/orders/$2"
	[[ "$T_STATUS" == 200 ]] || return 1
	python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(o["status"], o["qty"], o["filled_qty"], o["price"], o["reject_reason"] or "-")' "$T_BODY"
}

# expect WHAT KEY ID WANT: waits (at most 20 s) until the order's state is WANT.
expect() {
	local got="" i
	for ((i = 0; i < 200; i++)); do
		got="$(state "$2" "$3" 2>/dev/null)" || got="(not recorded: $T_STATUS)"
		[[ "$got" == "$4" ]] && break
		sleep 0.1
	done
	t_eq "$1" "$got" "$4"
}

lim() { # lim SYMBOL SIDE PRICE QTY [EXTRA]: a GTC limit order body
	printf '{"symbol":"%s","side":"%s","type":"limit","price":"%s","qty":%s%s}' "$1" "$2" "$3" "$4" "${5:-}"
}

A=dev-key-alice B=dev-key-bob C=dev-key-carol

# --- 1. self-trade prevention ---------------------------------------------------
m1="$(order $A "$(lim AAPL sell 100.00 5)")"
t1="$(order $A "$(lim AAPL buy 100.00 5 ',"stp":"cancel_taker"')")"
expect "cancel_taker: the taker is cancelled" $A "$t1" "CANCELLED 5 0 100.00 SELF_TRADE"
expect "cancel_taker: the maker stays" $A "$m1" "NEW 5 0 100.00 -"
t2="$(order $A "$(lim AAPL buy 100.00 3 ',"stp":"decrement"')")"
expect "decrement: the taker, smaller, is cancelled" $A "$t2" "CANCELLED 3 0 100.00 SELF_TRADE"
expect "decrement: the maker is reduced, keeps resting" $A "$m1" "NEW 2 0 100.00 -"
m2="$(order $B "$(lim AAPL sell 100.00 4)")"
t3="$(order $A "$(lim AAPL buy 100.00 4 ',"stp":"cancel_maker"')")"
expect "cancel_maker: the own maker is cancelled" $A "$m1" "CANCELLED 2 0 100.00 SELF_TRADE"
expect "cancel_maker: the taker trades with bob" $A "$t3" "FILLED 4 4 100.00 -"
expect "cancel_maker: bob's order filled" $B "$m2" "FILLED 4 4 100.00 -"
# carol's key defaults to cancel_both
m3="$(order $C "$(lim AAPL sell 101.00 2)")"
t4="$(order $C "$(lim AAPL buy 101.00 2)")"
expect "account default cancel_both: the maker" $C "$m3" "CANCELLED 2 0 101.00 SELF_TRADE"
expect "account default cancel_both: the taker" $C "$t4" "CANCELLED 2 0 101.00 SELF_TRADE"
t_eq "no fill recorded for a prevented self-trade" \
	"$(psql -qAtX "$DATABASE_URL" -c "SELECT count(*) FROM fills WHERE maker_account = taker_account")" 0

# --- 2. replace -------------------------------------------------------------------
r1="$(order $A "$(lim MSFT sell 200.00 5)")"
r2="$(order $B "$(lim MSFT buy 199.00 3)")"
expect "resting before the replace" $A "$r1" "NEW 5 0 200.00 -"
send $A PATCH "/v1/orders/$r1?symbol=MSFT" '{"qty":8}'
t_eq "PATCH qty up" "$T_STATUS" 202
expect "replace: more quantity" $A "$r1" "NEW 8 0 200.00 -"
send $A PATCH "/v1/orders/$r1?symbol=MSFT" '{"price":"199.00"}'
t_eq "PATCH price" "$T_STATUS" 202
expect "replace: a crossing price trades on arrival" $A "$r1" "PARTIALLY_FILLED 8 3 199.00 -"
expect "replace: bob's bid filled" $B "$r2" "FILLED 3 3 199.00 -"
send $A PATCH "/v1/orders/$r1?symbol=MSFT" '{"qty":6,"price":"199.50"}'
expect "replace: price and qty together" $A "$r1" "PARTIALLY_FILLED 6 3 199.50 -"

# --- 3. cancel-all ------------------------------------------------------------------
c1="$(order $A "$(lim GOOG buy 50.00 1)")"
c2="$(order $A "$(lim GOOG sell 60.00 1)")"
c3="$(order $A "$(lim TSLA buy 70.00 1)")"
c4="$(order $B "$(lim GOOG buy 50.00 1)")"
expect "before cancel-all" $A "$c3" "NEW 1 0 70.00 -"
send $A DELETE "/v1/orders?symbol=GOOG"
t_eq "DELETE /v1/orders?symbol=GOOG" "$T_STATUS" 202
t_match "cancel-all answer" "$T_BODY" '"status":"CANCEL_ALL_QUEUED"'
expect "cancel-all GOOG: alice's bid" $A "$c1" "CANCELLED 1 0 50.00 USER_CANCEL"
expect "cancel-all GOOG: alice's ask" $A "$c2" "CANCELLED 1 0 60.00 USER_CANCEL"
expect "cancel-all GOOG: alice's TSLA order stays" $A "$c3" "NEW 1 0 70.00 -"
expect "cancel-all GOOG: bob's order stays" $B "$c4" "NEW 1 0 50.00 -"
c5="$(order $A "$(lim GOOG buy 51.00 1)")"
expect "an order after the cancel-all stays" $A "$c5" "NEW 1 0 51.00 -"
send $A DELETE "/v1/orders"
t_eq "DELETE /v1/orders (every symbol)" "$T_STATUS" 202
expect "cancel-all: TSLA (shard 3)" $A "$c3" "CANCELLED 1 0 70.00 USER_CANCEL"
expect "cancel-all: MSFT (shard 3)" $A "$r1" "CANCELLED 6 3 199.50 USER_CANCEL"
expect "cancel-all: GOOG (shard 1)" $A "$c5" "CANCELLED 1 0 51.00 USER_CANCEL"
expect "cancel-all: bob's order still stays" $B "$c4" "NEW 1 0 50.00 -"

# --- 4. open-order limit (3 per account and symbol) -----------------------------------
for p in 10.00 10.01 10.02; do order $A "$(lim AMZN buy $p 1)" >/dev/null; done
l4="$(order $A "$(lim AMZN buy 10.03 1)")"
expect "the 4th open order is rejected" $A "$l4" "REJECTED 1 0 10.03 TOO_MANY_OPEN_ORDERS"
l5="$(order $B "$(lim AMZN buy 10.03 1)")"
expect "another account is not limited by alice's orders" $B "$l5" "NEW 1 0 10.03 -"

# --- 5. bad input changes nothing ---------------------------------------------------
before="$(t_orders_len)"
send $A POST /v1/orders "$(lim AAPL buy 1.00 1 ',"stp":"sometimes"')"
t_eq "unknown stp" "$T_STATUS" 400
t_match "unknown stp names the field" "$T_BODY" '"field":"stp"'
send $A PATCH "/v1/orders/$l5?symbol=AMZN" '{}'
t_eq "PATCH without price or qty" "$T_STATUS" 400
t_eq "nothing queued by bad requests" "$(t_orders_len)" "$before"

t_done
