#!/usr/bin/env bash
# Ingest over HTTP against a real Redis: every bad-input class gets its status
# and error code and changes nothing; good orders, batches, idempotent retries,
# cancels, amends and owner-only reads work. Issue 14: stp (explicit and the
# account's default from API_KEYS_FILE), replace (amend by price and/or qty),
# cancel-all (one symbol, every shard, a shard failing) and the per-key rate
# limit, each checked by what reached orders:{S}. Issue 15: GTD (expire_at),
# stop_market/stop_limit (stop_price) and the dead-man switch
# (POST /v1/cancel-all-after), the same way.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
syms="$OP_STACK_DIR/symbols-ingest.conf"
printf 'AAPL 0.01 1 1000000\nMSFT 0.01 1 1000000\nNICK 0.05 10 1000\n' >"$syms"
t_start ingest orderpipe-ingest INGEST_PORT="$port" SYMBOLS_FILE="$syms" INGEST_MAX_BODY=262144
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || { t_fail "ingest did not start"; cat "$OP_STACK_DIR/ingest.log"; t_done; exit 1; }

A=("Authorization: Bearer dev-key-alice" "Content-Type: application/json")
B=("Authorization: Bearer dev-key-bob" "Content-Type: application/json")

# bad NAME STATUS CODE METHOD PATH BODY [HEADERS...]: the request must fail
# with STATUS and error code CODE, and queue nothing.
bad() {
	local name="$1" status="$2" code="$3" method="$4" path="$5" body="$6"
	shift 6
	local before after
	before="$(t_orders_len)"
	t_http "$method" "$url$path" "$body" "$@"
	after="$(t_orders_len)"
	t_eq "$name: status" "$T_STATUS" "$status"
	t_match "$name: code" "$T_BODY" "\"code\":\"$code\""
	t_eq "$name: nothing queued" "$after" "$before"
}

order() { # order JSON-FIELDS: a limit buy of AAPL with the fields replaced/added
	printf '{"symbol":"AAPL","side":"buy","type":"limit","price":"187.25","qty":100%s}' "$1"
}

# --- malformed bodies ----------------------------------------------------------
bad "truncated json" 400 invalid_json POST /v1/orders '{"symbol":"AAPL"' "${A[@]}"
bad "missing comma" 400 invalid_json POST /v1/orders '{"symbol":"AAPL" "side":"buy"}' "${A[@]}"
bad "trailing garbage" 400 invalid_json POST /v1/orders "$(order '')x" "${A[@]}"
bad "two values" 400 invalid_json POST /v1/orders "$(order '') {}" "${A[@]}"
bad "array body" 400 invalid_body POST /v1/orders '[1,2]' "${A[@]}"
bad "string body" 400 invalid_body POST /v1/orders '"x"' "${A[@]}"
bad "empty body" 400 invalid_json POST /v1/orders '' "${A[@]}"
bad "bad escape" 400 invalid_json POST /v1/orders '{"symbol":"AA\qPL"}' "${A[@]}"
bad "bad number" 400 invalid_json POST /v1/orders '{"qty":01}' "${A[@]}"
bad "unknown field" 400 unknown_field POST /v1/orders "$(order ',"stop":"1"')" "${A[@]}"
bad "duplicate key" 400 duplicate_field POST /v1/orders "$(order ',"qty":5')" "${A[@]}"
# --- missing and wrongly typed fields -------------------------------------------
bad "missing side" 400 missing_field POST /v1/orders '{"symbol":"AAPL","type":"limit","price":"1","qty":1}' "${A[@]}"
bad "missing symbol" 400 missing_field POST /v1/orders '{"side":"buy","type":"limit","price":"1","qty":1}' "${A[@]}"
bad "missing qty" 400 missing_field POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"limit","price":"1"}' "${A[@]}"
bad "side as number" 400 invalid_field POST /v1/orders '{"symbol":"AAPL","side":1,"type":"limit","price":"1","qty":1}' "${A[@]}"
bad "bad side" 400 invalid_field POST /v1/orders '{"symbol":"AAPL","side":"hold","type":"limit","price":"1","qty":1}' "${A[@]}"
bad "side case" 400 invalid_field POST /v1/orders '{"symbol":"AAPL","side":"BUY","type":"limit","price":"1","qty":1}' "${A[@]}"
bad "bad type" 400 invalid_field POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"stop","price":"1","qty":1}' "${A[@]}"
bad "bad tif" 400 invalid_field POST /v1/orders "$(order ',"tif":"DAY"')" "${A[@]}"
bad "post_only string" 400 invalid_field POST /v1/orders "$(order ',"post_only":"yes"')" "${A[@]}"
bad "post_only with IOC" 400 invalid_field POST /v1/orders "$(order ',"tif":"IOC","post_only":true')" "${A[@]}"
bad "symbol as number" 400 unknown_symbol POST /v1/orders '{"symbol":5,"side":"buy","type":"limit","price":"1","qty":1}' "${A[@]}"
bad "unknown symbol" 400 unknown_symbol POST /v1/orders '{"symbol":"ZZZZ","side":"buy","type":"limit","price":"1","qty":1}' "${A[@]}"
bad "lowercase symbol" 400 unknown_symbol POST /v1/orders '{"symbol":"aapl","side":"buy","type":"limit","price":"1","qty":1}' "${A[@]}"
# --- prices ------------------------------------------------------------------------
bad "too many decimals" 400 invalid_price POST /v1/orders "$(order '' | sed 's/187.25/187.251/')" "${A[@]}"
bad "not a tick multiple" 400 invalid_price POST /v1/orders '{"symbol":"NICK","side":"buy","type":"limit","price":"1.12","qty":10}' "${A[@]}"
bad "negative price" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/"-1.00"/')" "${A[@]}"
bad "negative number price" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/-1/')" "${A[@]}"
bad "zero price" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/"0"/')" "${A[@]}"
bad "huge price" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/"99999999999999999999"/')" "${A[@]}"
bad "exponent price" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/"1.8725e2"/')" "${A[@]}"
bad "exponent number price" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/1.8725e2/')" "${A[@]}"
bad "price as bool" 400 invalid_price POST /v1/orders "$(order '' | sed 's/"187.25"/true/')" "${A[@]}"
bad "market with price" 400 invalid_price POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"market","price":"1","qty":1}' "${A[@]}"
bad "market GTC" 400 invalid_field POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"market","tif":"GTC","qty":1}' "${A[@]}"
bad "limit without price" 400 missing_field POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"limit","qty":1}' "${A[@]}"
# --- quantities --------------------------------------------------------------------
bad "qty zero" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":0/')" "${A[@]}"
bad "qty negative" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":-5/')" "${A[@]}"
bad "qty over max" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":1000001/')" "${A[@]}"
bad "qty fraction" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":1.5/')" "${A[@]}"
bad "qty exponent" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":1e3/')" "${A[@]}"
bad "qty string" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":"100"/')" "${A[@]}"
bad "qty huge" 400 invalid_qty POST /v1/orders "$(order '' | sed 's/"qty":100/"qty":99999999999999999999999/')" "${A[@]}"
bad "qty not lot multiple" 400 invalid_qty POST /v1/orders '{"symbol":"NICK","side":"buy","type":"limit","price":"1.10","qty":15}' "${A[@]}"
# --- client_order_id -------------------------------------------------------------
bad "coid too long" 400 invalid_field POST /v1/orders "$(order ',"client_order_id":"aaaaaaaaaabbbbbbbbbbccccccccccddddddd"')" "${A[@]}"
bad "coid bad chars" 400 invalid_field POST /v1/orders "$(order ',"client_order_id":"a b"')" "${A[@]}"
bad "coid empty" 400 invalid_field POST /v1/orders "$(order ',"client_order_id":""')" "${A[@]}"
bad "coid non-ascii" 400 invalid_field POST /v1/orders "$(order ',"client_order_id":"caf\u00e9"')" "${A[@]}"
# --- batches -------------------------------------------------------------------------
bad "empty batch" 400 invalid_field POST /v1/orders/batch '{"orders":[]}' "${A[@]}"
bad "batch not array" 400 invalid_field POST /v1/orders/batch '{"orders":{}}' "${A[@]}"
bad "batch missing orders" 400 missing_field POST /v1/orders/batch '{}' "${A[@]}"
big="$(t_batch_body 1001 '{"symbol":"AAPL","side":"buy","type":"limit","price":"1","qty":1}')"
bad "batch of 1001" 400 invalid_field POST /v1/orders/batch "$big" "${A[@]}"
# --- transport ---------------------------------------------------------------------
bad "wrong content type" 415 unsupported_media_type POST /v1/orders "$(order '')" "Authorization: Bearer dev-key-alice" "Content-Type: text/plain"
bad "no content type" 415 unsupported_media_type POST /v1/orders "$(order '')" "Authorization: Bearer dev-key-alice"
{ order ''; head -c 300000 /dev/zero | tr '\0' ' '; } >"$OP_STACK_DIR/huge.json" # too big for an argv string
bad "oversized body" 413 payload_too_large POST /v1/orders "@$OP_STACK_DIR/huge.json" "${A[@]}"
bad "no auth" 401 unauthorized POST /v1/orders "$(order '')" "Content-Type: application/json"
bad "bad key" 401 unauthorized POST /v1/orders "$(order '')" "Authorization: Bearer dev-key-mallory" "Content-Type: application/json"
bad "basic auth" 401 unauthorized POST /v1/orders "$(order '')" "Authorization: Basic YWxpY2U6eA==" "Content-Type: application/json"
bad "put" 405 method_not_allowed PUT /v1/orders "$(order '')" "${A[@]}"
bad "unknown path" 404 not_found GET /v2/orders "" "${A[@]}"
bad "cancel bad id" 400 invalid_order_id DELETE "/v1/orders/abc?symbol=AAPL" "" "${A[@]}"
bad "cancel id zero" 400 invalid_order_id DELETE "/v1/orders/0?symbol=AAPL" "" "${A[@]}"
bad "cancel id too big" 400 invalid_order_id DELETE "/v1/orders/9223372036854775808?symbol=AAPL" "" "${A[@]}"
bad "cancel no symbol" 400 missing_field DELETE "/v1/orders/12" "" "${A[@]}"
bad "cancel unknown symbol" 400 unknown_symbol DELETE "/v1/orders/12?symbol=ZZZ" "" "${A[@]}"
bad "amend no qty" 400 missing_field PATCH "/v1/orders/12?symbol=AAPL" '{}' "${A[@]}"
bad "amend qty zero" 400 invalid_qty PATCH "/v1/orders/12?symbol=AAPL" '{"qty":0}' "${A[@]}"
bad "amend extra field" 400 unknown_field PATCH "/v1/orders/12?symbol=AAPL" '{"qty":5,"side":"buy"}' "${A[@]}"
t_http PUT "$url/v1/orders/12" "" "${A[@]}"
t_match "405 Allow header" "$T_HEADERS" "Allow: GET, PATCH, DELETE"
t_http PUT "$url/v1/orders" "" "${A[@]}"
t_match "405 Allow header of /v1/orders" "$T_HEADERS" "Allow: POST, DELETE"
# --- stp -----------------------------------------------------------------------------
bad "stp unknown" 400 invalid_field POST /v1/orders "$(order ',"stp":"cancel"')" "${A[@]}"
t_match "stp unknown: names the field" "$T_BODY" '"field":"stp"'
t_match "stp unknown: lists the modes" "$T_BODY" '"message":"stp must be one of [^,]*none[^,]*, [^,]*cancel_taker[^,]*, [^,]*cancel_maker[^,]*, [^,]*cancel_both[^,]*, [^,]*decrement'
bad "stp case" 400 invalid_field POST /v1/orders "$(order ',"stp":"DECREMENT"')" "${A[@]}"
bad "stp number" 400 invalid_field POST /v1/orders "$(order ',"stp":4')" "${A[@]}"
bad "stp null" 400 invalid_field POST /v1/orders "$(order ',"stp":null')" "${A[@]}"
bad "batch of bad stp only" 400 invalid_field POST /v1/orders/batch "{\"orders\":[$(order ',"stp":"both"')]}" "${A[@]}"
t_match "batch item names stp" "$T_BODY" '^\{"results":\[\{"status":"REJECTED","error":\{"code":"invalid_field","message":"stp must be[^}]*"field":"stp"\}\}\]\}$'
# --- replace (amend by price and/or qty) ------------------------------------------------
bad "amend neither" 400 missing_field PATCH "/v1/orders/12?symbol=AAPL" '{}' "${A[@]}"
t_match "amend neither: says what is needed" "$T_BODY" 'an amend needs qty, price or both'
bad "amend price not a tick multiple" 400 invalid_price PATCH "/v1/orders/12?symbol=NICK" '{"price":"1.12"}' "${A[@]}"
bad "amend price zero" 400 invalid_price PATCH "/v1/orders/12?symbol=AAPL" '{"price":"0"}' "${A[@]}"
bad "amend price negative" 400 invalid_price PATCH "/v1/orders/12?symbol=AAPL" '{"price":-1}' "${A[@]}"
bad "amend price exponent" 400 invalid_price PATCH "/v1/orders/12?symbol=AAPL" '{"price":"1e2"}' "${A[@]}"
bad "amend price null" 400 invalid_price PATCH "/v1/orders/12?symbol=AAPL" '{"price":null,"qty":5}' "${A[@]}"
bad "amend good qty, bad price" 400 invalid_price PATCH "/v1/orders/12?symbol=AAPL" '{"qty":5,"price":"1.001"}' "${A[@]}"
bad "amend qty over max" 400 invalid_qty PATCH "/v1/orders/12?symbol=NICK" '{"qty":1010}' "${A[@]}"
bad "amend qty not lot multiple" 400 invalid_qty PATCH "/v1/orders/12?symbol=NICK" '{"qty":15}' "${A[@]}"
bad "amend qty string" 400 invalid_qty PATCH "/v1/orders/12?symbol=AAPL" '{"qty":"5"}' "${A[@]}"
bad "amend duplicate price" 400 duplicate_field PATCH "/v1/orders/12?symbol=AAPL" '{"price":"1","price":"2"}' "${A[@]}"
bad "amend without content type" 415 unsupported_media_type PATCH "/v1/orders/12?symbol=AAPL" '{"price":"1"}' "Authorization: Bearer dev-key-alice"
# --- cancel-all ------------------------------------------------------------------------
bad "cancel-all unknown symbol" 400 unknown_symbol DELETE "/v1/orders?symbol=ZZZ" "" "${A[@]}"
bad "cancel-all lowercase symbol" 400 unknown_symbol DELETE "/v1/orders?symbol=aapl" "" "${A[@]}"
bad "cancel-all empty symbol" 400 unknown_symbol DELETE "/v1/orders?symbol=" "" "${A[@]}"
bad "cancel-all symbol without value" 400 unknown_symbol DELETE "/v1/orders?symbol" "" "${A[@]}"
bad "cancel-all no auth" 401 unauthorized DELETE "/v1/orders" ""
bad "cancel-all bad key" 401 unauthorized DELETE "/v1/orders" "" "Authorization: Bearer dev-key-mallory"
# --- GTD (issue 15) ----------------------------------------------------------------------
# iso SECONDS-FROM-NOW: an RFC 3339 UTC time that far from now
iso() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; }
gtd() { order ",\"tif\":\"GTD\",\"expire_at\":$1"; } # gtd EXPIRE-AT-JSON
bad "GTD without expire_at" 400 missing_field POST /v1/orders "$(order ',"tif":"GTD"')" "${A[@]}"
t_match "GTD without expire_at: names it" "$T_BODY" '"field":"expire_at"'
bad "GTD in the past" 400 invalid_field POST /v1/orders "$(gtd "\"$(iso -60)\"")" "${A[@]}"
t_match "GTD in the past: says so" "$T_BODY" '"message":"expire_at is not in the future: it must be after the time ingest received the order \([0-9T:.-]+Z\)","field":"expire_at"'
bad "GTD in the past, epoch ms" 400 invalid_field POST /v1/orders "$(gtd "$(($(date +%s%3N) - 1000))")" "${A[@]}"
t_match "GTD in the past, epoch ms: names expire_at" "$T_BODY" '"field":"expire_at"'
bad "GTD beyond 90 days" 400 invalid_field POST /v1/orders "$(gtd "\"$(iso $((91 * 86400)))\"")" "${A[@]}"
t_match "GTD beyond the horizon: says the limit" "$T_BODY" '"message":"expire_at is too far ahead: at most 90 days \(INGEST_MAX_EXPIRY_MS\) after the time ingest received the order [^"]*","field":"expire_at"'
bad "GTD not RFC 3339" 400 invalid_field POST /v1/orders "$(gtd '"2026-12-06 18:00:00"')" "${A[@]}"
t_match "GTD not RFC 3339: shows the form" "$T_BODY" 'expire_at must be an RFC 3339 time such as'
bad "GTD expire_at as a float" 400 invalid_field POST /v1/orders "$(gtd '1.5e12')" "${A[@]}"
bad "expire_at without GTD" 400 invalid_field POST /v1/orders "$(order ",\"expire_at\":\"$(iso 3600)\"")" "${A[@]}"
t_match "expire_at without GTD: says GTD only" "$T_BODY" '"message":"expire_at applies to tif GTD only","field":"expire_at"'
bad "market GTD" 400 invalid_field POST /v1/orders "{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"market\",\"qty\":1,\"tif\":\"GTD\",\"expire_at\":\"$(iso 3600)\"}" "${A[@]}"
t_match "market GTD: names tif" "$T_BODY" '"field":"tif"'
# --- stops (issue 15) --------------------------------------------------------------------
stopm() { printf '{"symbol":"AAPL","side":"buy","type":"stop_market","stop_price":"190.00","qty":5%s}' "$1"; }
bad "stop_market with a price" 400 invalid_price POST /v1/orders "$(stopm ',"price":"190"')" "${A[@]}"
bad "stop_market GTC" 400 invalid_field POST /v1/orders "$(stopm ',"tif":"GTC"')" "${A[@]}"
t_match "stop_market GTC: says why" "$T_BODY" '"message":"stop_market orders cannot rest: tif must be IOC or FOK","field":"tif"'
bad "stop_market GTD" 400 invalid_field POST /v1/orders "$(stopm ",\"tif\":\"GTD\",\"expire_at\":\"$(iso 3600)\"")" "${A[@]}"
bad "stop_market post_only" 400 invalid_field POST /v1/orders "$(stopm ',"post_only":true')" "${A[@]}"
t_match "stop_market post_only: names it" "$T_BODY" '"field":"post_only"'
bad "stop_market without stop_price" 400 missing_field POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"stop_market","qty":5}' "${A[@]}"
t_match "stop without stop_price: names it" "$T_BODY" '"field":"stop_price"'
bad "stop_limit without price" 400 missing_field POST /v1/orders '{"symbol":"AAPL","side":"buy","type":"stop_limit","stop_price":"1","qty":5}' "${A[@]}"
t_match "stop_limit without price: names it" "$T_BODY" '"field":"price"'
bad "stop_price not a tick multiple" 400 invalid_price POST /v1/orders '{"symbol":"NICK","side":"buy","type":"stop_limit","price":"1.10","stop_price":"1.12","qty":10}' "${A[@]}"
t_match "bad stop_price: names it" "$T_BODY" '"message":"stop_price is not a multiple of the symbol.s tick size","field":"stop_price"'
bad "stop_price zero" 400 invalid_price POST /v1/orders "$(stopm '' | sed 's/"190.00"/"0"/')" "${A[@]}"
bad "stop_price on a limit order" 400 invalid_price POST /v1/orders "$(order ',"stop_price":"190"')" "${A[@]}"
t_match "stop_price on a limit: says where it applies" "$T_BODY" '"message":"stop_price applies to stop_market and stop_limit orders only","field":"stop_price"'
# --- the dead-man switch (issue 15) --------------------------------------------------------
bad "cancel-all-after below 1 s" 400 invalid_field POST /v1/cancel-all-after '{"timeout_ms":999}' "${A[@]}"
t_match "cancel-all-after out of range: says the range" "$T_BODY" '"message":"timeout_ms must be a whole number of milliseconds: 0 \(disarm\) or 1000 to 600000","field":"timeout_ms"'
bad "cancel-all-after above 10 min" 400 invalid_field POST /v1/cancel-all-after '{"timeout_ms":600001}' "${A[@]}"
bad "cancel-all-after negative" 400 invalid_field POST /v1/cancel-all-after '{"timeout_ms":-1}' "${A[@]}"
bad "cancel-all-after string" 400 invalid_field POST /v1/cancel-all-after '{"timeout_ms":"5000"}' "${A[@]}"
bad "cancel-all-after missing" 400 missing_field POST /v1/cancel-all-after '{}' "${A[@]}"
bad "cancel-all-after unknown field" 400 unknown_field POST /v1/cancel-all-after '{"timeout_ms":5000,"symbol":"AAPL"}' "${A[@]}"
bad "cancel-all-after duplicate" 400 duplicate_field POST /v1/cancel-all-after '{"timeout_ms":5000,"timeout_ms":0}' "${A[@]}"
bad "cancel-all-after bad json" 400 invalid_json POST /v1/cancel-all-after '{"timeout_ms":5000' "${A[@]}"
bad "cancel-all-after array" 400 invalid_body POST /v1/cancel-all-after '[5000]' "${A[@]}"
bad "cancel-all-after no body" 400 invalid_json POST /v1/cancel-all-after '' "${A[@]}"
bad "cancel-all-after no content type" 415 unsupported_media_type POST /v1/cancel-all-after '{"timeout_ms":5000}' "Authorization: Bearer dev-key-alice"
bad "cancel-all-after no auth" 401 unauthorized POST /v1/cancel-all-after '{"timeout_ms":5000}' "Content-Type: application/json"
bad "cancel-all-after GET" 405 method_not_allowed GET /v1/cancel-all-after "" "${A[@]}"
t_match "cancel-all-after 405: Allow" "$T_HEADERS" "Allow: POST"

# --- good orders -------------------------------------------------------------------
before="$(t_orders_len)"
t_http POST "$url/v1/orders" "$(order ',"tif":"GTC","post_only":false,"client_order_id":"it-1"')" "${A[@]}"
t_eq "new order status" "$T_STATUS" 202
t_match "new order body" "$T_BODY" '^\{"status":"QUEUED","order_id":"[0-9]+","client_order_id":"it-1"\}$'
oid="$(sed -E 's/.*"order_id":"([0-9]+)".*/\1/' <<<"$T_BODY")"
t_eq "queued once" "$(t_orders_len)" $((before + 1))
shard_line="$(for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do redis-cli -p "$OP_REDIS_PORT" --raw XREVRANGE "orders:{$s}" + - COUNT 1 | sed -n 2,13p | tr '\n' ' '; echo; done | grep -a -m1 'sym AAPL')"
t_match "stream entry readable in redis-cli" "$shard_line" "^type new sym AAPL n 1 ids $oid seq [0-9]+ m "

tail_out="$(for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do "$OP_BUILD/bin/orderpipe-tail" "orders:{$s}"; done)"
t_match "orderpipe-tail decodes the order" "$tail_out" "\"m\":\\[\\{\"k\":\"new\",\"id\":\"$oid\",.*\"px_text\":\"187.25\",\"coid\":\"it-1\",\"qty\":100\\}\\]"

t_http POST "$url/v1/orders" "$(order ',"tif":"GTC","post_only":false,"client_order_id":"it-1"')" "${A[@]}"
t_eq "retry status" "$T_STATUS" 200
t_match "retry answers the original id" "$T_BODY" "\"order_id\":\"$oid\""
t_eq "retry not queued" "$(t_orders_len)" $((before + 1))
t_http POST "$url/v1/orders" "$(order ',"client_order_id":"it-1"')" "${B[@]}"
t_eq "same coid, other account" "$T_STATUS" 202
t_eq "other account queued" "$(t_orders_len)" $((before + 2))

t_http POST "$url/v1/orders" '{"symbol":"MSFT","side":"sell","type":"market","qty":5}' "${A[@]}"
t_eq "market order" "$T_STATUS" 202
t_http POST "$url/v1/orders" '{"symbol":"NICK","side":"sell","type":"limit","price":1.10,"qty":20,"tif":"FOK"}' "${A[@]}"
t_eq "JSON number price, FOK" "$T_STATUS" 202

before="$(t_orders_len)"
t_http POST "$url/v1/orders/batch" '{"orders":[{"symbol":"AAPL","side":"buy","type":"limit","price":"1.00","qty":1},{"symbol":"ZZZ","side":"buy","type":"limit","price":"1","qty":1},{"symbol":"MSFT","side":"sell","type":"limit","price":"2.5","qty":3,"client_order_id":"b-1"},{"qty":0},{"symbol":"AAPL","side":"sell","type":"market","qty":2}]}' "${A[@]}"
t_eq "batch status" "$T_STATUS" 202
t_match "batch results in order" "$T_BODY" '^\{"results":\[\{"status":"QUEUED".*\},\{"status":"REJECTED","error":\{"code":"unknown_symbol".*\},\{"status":"QUEUED".*"client_order_id":"b-1"\},\{"status":"REJECTED","error":\{"code":"[a-z_]+".*\},\{"status":"QUEUED".*\}\]\}$'
t_eq "batch queued the valid ones" "$(t_orders_len)" $((before + 3))

t_http DELETE "$url/v1/orders/$oid?symbol=AAPL" "" "${A[@]}"
t_eq "cancel" "$T_STATUS" 202
t_match "cancel body" "$T_BODY" '"status":"CANCEL_QUEUED"'
t_http PATCH "$url/v1/orders/$oid?symbol=AAPL" '{"qty":50}' "${A[@]}"
t_eq "amend" "$T_STATUS" 202
t_match "amend body" "$T_BODY" '"status":"AMEND_QUEUED"'
t_eq "cancel and amend queued" "$(t_orders_len)" $((before + 5))

# shard_of SYMBOL: fnv1a32(SYMBOL) % ORDER_SHARDS, as ingest routes it
shard_of() {
	local h=2166136261 i c
	for ((i = 0; i < ${#1}; i++)); do
		printf -v c '%d' "'${1:i:1}"
		h=$(((h ^ c) * 16777619 & 0xffffffff))
	done
	printf '%s\n' $((h % ${ORDER_SHARDS:-4}))
}

# last_inputs S N: the last N inputs of orders:{S}, decoded by orderpipe-tail,
# one JSON object per line (the inputs are flat maps: no nested braces).
last_inputs() {
	SYMBOLS_FILE="$syms" "$OP_BUILD/bin/orderpipe-tail" "orders:{$1}" | grep -a -o '{"k":"[^}]*}' | tail -n "$2"
}

# last_fields S: the readable fields of the last entry of orders:{S}, on one line
last_fields() {
	redis-cli -p "$OP_REDIS_PORT" --raw XREVRANGE "orders:{$1}" + - COUNT 1 | sed -n 2,11p | tr '\n' ' '
}

aapl="$(shard_of AAPL)"
t_match "AAPL's shard holds its orders" "$(last_inputs "$aapl" 50)" '"sym":"AAPL"'

# --- stp: explicit, in the stream --------------------------------------------------------
before="$(t_orders_len)"
t_http POST "$url/v1/orders" "$(order ',"stp":"decrement"')" "${A[@]}"
t_eq "stp decrement" "$T_STATUS" 202
t_match "stp decrement reached orders:{S}" "$(last_inputs "$aapl" 1)" '^\{"k":"new",.*"acct":"alice",.*"stp":"decrement","qty":100\}$'
t_http POST "$url/v1/orders" "$(order ',"stp":"none"')" "${A[@]}"
t_eq "stp none" "$T_STATUS" 202
t_match "stp none: no stp field (0)" "$(last_inputs "$aapl" 1)" '^\{"k":"new",[^}]*"acct":"alice",[^}]*"po":false,"px":18725,"px_text":"187.25","qty":100\}$'
t_http POST "$url/v1/orders/batch" "{\"orders\":[$(order ',"stp":"cancel_taker"'),$(order ',"stp":"bogus"'),$(order ',"stp":"cancel_maker"'),$(order ''),$(order ',"stp":"cancel_both"')]}" "${A[@]}"
t_eq "batch with stp" "$T_STATUS" 202
t_match "batch: the bad stp item rejected, naming stp" "$T_BODY" '^\{"results":\[\{"status":"QUEUED"[^}]*\},\{"status":"REJECTED","error":\{"code":"invalid_field",[^}]*"field":"stp"\}\},\{"status":"QUEUED"'
stps="$(last_inputs "$aapl" 4 | sed -E 's/.*"stp":"([a-z_]+)".*/\1/; t; s/.*/-/' | tr '\n' ' ')"
t_eq "batch items' stp in order (- for none)" "$stps" 'cancel_taker cancel_maker - cancel_both '
t_eq "stp: inputs queued" "$(t_orders_len)" $((before + 6))

# --- replace: what reaches orders:{S} ------------------------------------------------------
before="$(t_orders_len)"
t_http PATCH "$url/v1/orders/$oid?symbol=AAPL" '{"price":"187.30"}' "${A[@]}"
t_eq "replace by price" "$T_STATUS" 202
t_eq "replace by price: answer" "$T_BODY" "{\"status\":\"AMEND_QUEUED\",\"order_id\":\"$oid\",\"qty\":null,\"price\":\"187.30\"}"
t_match "replace by price: an amend with px only" "$(last_inputs "$aapl" 1)" "^\\{\"k\":\"amend\",\"id\":\"$oid\",\"ts\":[0-9]+,\"sym\":\"AAPL\",\"acct\":\"alice\",\"px\":18730,\"px_text\":\"187.30\"\\}$"
t_http PATCH "$url/v1/orders/$oid?symbol=AAPL" '{"qty":250,"price":187.5}' "${A[@]}"
t_eq "replace by price and qty" "$T_STATUS" 202
t_eq "replace by both: answer" "$T_BODY" "{\"status\":\"AMEND_QUEUED\",\"order_id\":\"$oid\",\"qty\":250,\"price\":\"187.50\"}"
t_match "replace by both: px and qty" "$(last_inputs "$aapl" 1)" "^\\{\"k\":\"amend\",\"id\":\"$oid\",.*\"px\":18750,\"px_text\":\"187.50\",\"qty\":250\\}$"
t_http PATCH "$url/v1/orders/$oid?symbol=AAPL" '{"qty":40}' "${A[@]}"
t_eq "replace by qty" "$T_STATUS" 202
t_eq "replace by qty: answer" "$T_BODY" "{\"status\":\"AMEND_QUEUED\",\"order_id\":\"$oid\",\"qty\":40,\"price\":null}"
t_match "replace by qty: qty only" "$(last_inputs "$aapl" 1)" "^\\{\"k\":\"amend\",\"id\":\"$oid\",[^}]*\"acct\":\"alice\",\"qty\":40\\}$"
t_http PATCH "$url/v1/orders/12?symbol=NICK" '{"price":"1.15","qty":20}' "${A[@]}"
t_eq "replace with NICK's tick and lot" "$T_STATUS" 202
t_match "NICK: px in its ticks" "$(last_inputs "$(shard_of NICK)" 1)" '"k":"amend","id":"12",.*"sym":"NICK".*"px":23,"px_text":"1.15","qty":20\}$'
t_eq "replaces queued" "$(t_orders_len)" $((before + 4))

# --- cancel-all --------------------------------------------------------------------------
before="$(t_orders_len)"
t_http DELETE "$url/v1/orders?symbol=AAPL" "" "${A[@]}"
t_eq "cancel-all AAPL" "$T_STATUS" 202
t_eq "cancel-all AAPL: answer" "$T_BODY" '{"status":"CANCEL_ALL_QUEUED","symbol":"AAPL"}'
t_eq "cancel-all AAPL: one input" "$(t_orders_len)" $((before + 1))
t_match "cancel-all AAPL: in AAPL's shard" "$(last_inputs "$aapl" 1)" '^\{"k":"cancel_all","id":"0","ts":[0-9]+,"sym":"AAPL","acct":"alice"\}$'
t_match "cancel-all AAPL: readable fields" "$(last_fields "$aapl")" '^type cancel_all sym AAPL n 1 ids - seq [0-9]+ $'

before="$(t_orders_len)"
t_http DELETE "$url/v1/orders" "" "${B[@]}"
t_eq "cancel-all every symbol" "$T_STATUS" 202
t_eq "cancel-all every symbol: answer" "$T_BODY" '{"status":"CANCEL_ALL_QUEUED","symbol":null}'
t_eq "cancel-all every symbol: one input per shard" "$(t_orders_len)" $((before + ${ORDER_SHARDS:-4}))
ts_seen=""
for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do
	in="$(last_inputs "$s" 1)"
	t_match "cancel-all every symbol: shard $s" "$in" '^\{"k":"cancel_all","id":"0","ts":[0-9]+,"sym":"","acct":"bob"\}$'
	t_match "cancel-all every symbol: shard $s readable fields" "$(last_fields "$s")" '^type cancel_all sym  n 1 ids - seq [0-9]+ $'
	ts_seen+="$(grep -o '"ts":[0-9]*' <<<"$in") "
done
t_eq "cancel-all every symbol: one receipt time" "$(tr ' ' '\n' <<<"$ts_seen" | sort -u | grep -c ts)" 1

# --- GTD and stops: what reaches orders:{S} (issue 15) --------------------------------------
# ns_of RFC3339: its epoch ns (whole seconds)
ns_of() { printf '%s000000000\n' "$(date -u -d "$1" +%s)"; }
before="$(t_orders_len)"
exp1="$(iso 3600)"
t_http POST "$url/v1/orders" "$(gtd "\"$exp1\"")" "${A[@]}"
t_eq "GTD, RFC 3339" "$T_STATUS" 202
t_match "GTD, RFC 3339: tif and exp in ns" "$(last_inputs "$aapl" 1)" "^\\{\"k\":\"new\",.*\"tif\":\"GTD\",.*\"exp\":$(ns_of "$exp1"),\"qty\":100\\}$"
# the same instant with an offset and a fraction: converted to UTC
off="$(date -u -d "$exp1 + 2 hours" +%Y-%m-%dT%H:%M:%S).250+02:00"
t_http POST "$url/v1/orders" "$(gtd "\"$off\"")" "${A[@]}"
t_eq "GTD, offset and fraction" "$T_STATUS" 202
t_match "GTD, offset and fraction: converted" "$(last_inputs "$aapl" 1)" "\"exp\":$(($(ns_of "$exp1") + 250000000)),\"qty\":100\\}$"
ms=$(($(date +%s%3N) + 60000))
t_http POST "$url/v1/orders" "$(gtd "$ms")" "${A[@]}"
t_eq "GTD, epoch ms" "$T_STATUS" 202
t_match "GTD, epoch ms: exp in ns" "$(last_inputs "$aapl" 1)" "\"tif\":\"GTD\",.*\"exp\":${ms}000000,\"qty\":100\\}$"
t_http POST "$url/v1/orders" "$(stopm '')" "${A[@]}"
t_eq "stop_market" "$T_STATUS" 202
t_match "stop_market: type, IOC, no px, spx" "$(last_inputs "$aapl" 1)" '^\{"k":"new",[^}]*"side":"buy","type":"stop_market","tif":"IOC","po":false,"px":0,"spx":19000,"spx_text":"190.00","qty":5\}$'
t_http POST "$url/v1/orders" "{\"symbol\":\"AAPL\",\"side\":\"sell\",\"type\":\"stop_limit\",\"price\":\"185.50\",\"stop_price\":186,\"qty\":7,\"tif\":\"GTD\",\"expire_at\":\"$exp1\",\"post_only\":true}" "${A[@]}"
t_eq "stop_limit GTD post_only" "$T_STATUS" 202
t_match "stop_limit: px, spx, exp" "$(last_inputs "$aapl" 1)" "^\\{\"k\":\"new\",[^}]*\"type\":\"stop_limit\",\"tif\":\"GTD\",\"po\":true,\"px\":18550,\"px_text\":\"185.50\",\"spx\":18600,\"spx_text\":\"186.00\",\"exp\":$(ns_of "$exp1"),\"qty\":7\\}$"
t_http POST "$url/v1/orders/batch" "{\"orders\":[$(gtd "\"$exp1\""),$(gtd "\"$(iso -5)\""),$(stopm ',"tif":"FOK"'),$(stopm ',"tif":"GTC"')]}" "${A[@]}"
t_eq "batch with GTD and stops" "$T_STATUS" 202
t_match "batch: the past GTD and the resting stop_market rejected" "$T_BODY" '^\{"results":\[\{"status":"QUEUED"[^}]*\},\{"status":"REJECTED","error":\{"code":"invalid_field","message":"expire_at is not in the future[^}]*"field":"expire_at"\}\},\{"status":"QUEUED"[^}]*\},\{"status":"REJECTED","error":\{"code":"invalid_field",[^}]*"field":"tif"\}\}\]\}$'
t_match "batch: GTD then stop_market FOK in orders:{S}" "$(last_inputs "$aapl" 2 | tr '\n' ' ')" "\"tif\":\"GTD\",.*\"exp\":$(ns_of "$exp1"),\"qty\":100\\} \\{\"k\":\"new\",.*\"type\":\"stop_market\",\"tif\":\"FOK\",.*\"spx\":19000,"
t_match "plain orders carry neither spx nor exp" "$(last_inputs "$aapl" 20 | grep '"type":"limit","tif":"GTC"' | tail -n 1)" '^[^}]*"px_text":"187.25"(,"stp":"[a-z_]+")?,"qty":100\}$'
t_eq "GTD and stops: queued" "$(t_orders_len)" $((before + 7))

# --- the dead-man switch: one input per shard (issue 15) ------------------------------------
before="$(t_orders_len)"
t_http POST "$url/v1/cancel-all-after" '{"timeout_ms":5000}' "${A[@]}"
t_eq "cancel-all-after" "$T_STATUS" 202
t_eq "cancel-all-after: answer" "$T_BODY" '{"status":"CANCEL_ALL_AFTER_QUEUED","timeout_ms":5000}'
t_eq "cancel-all-after: one input per shard" "$(t_orders_len)" $((before + ${ORDER_SHARDS:-4}))
ts_seen=""
for ((s = 0; s < ${ORDER_SHARDS:-4}; s++)); do
	in="$(last_inputs "$s" 1)"
	t_match "cancel-all-after: shard $s" "$in" '^\{"k":"cancel_all_after","id":"0","ts":[0-9]+,"sym":"","acct":"alice","to":5000\}$'
	t_match "cancel-all-after: shard $s readable fields" "$(last_fields "$s")" '^type cancel_all_after sym  n 1 ids - seq [0-9]+ $'
	ts_seen+="$(grep -o '"ts":[0-9]*' <<<"$in") "
done
t_eq "cancel-all-after: one receipt time" "$(tr ' ' '\n' <<<"$ts_seen" | sort -u | grep -c ts)" 1
t_http POST "$url/v1/cancel-all-after" '{"timeout_ms":0}' "${B[@]}"
t_eq "cancel-all-after 0 (disarm)" "$T_STATUS" 202
t_eq "disarm: answer" "$T_BODY" '{"status":"CANCEL_ALL_AFTER_QUEUED","timeout_ms":0}'
t_match "disarm: to 0, bob's" "$(last_inputs "$aapl" 1)" '^\{"k":"cancel_all_after","id":"0","ts":[0-9]+,"sym":"","acct":"bob","to":0\}$'
t_http POST "$url/v1/cancel-all-after" '{"timeout_ms":600000}' "${A[@]}"
t_eq "cancel-all-after, the maximum" "$T_STATUS" 202
t_eq "cancel-all-after: queued" "$(t_orders_len)" $((before + 3 * ${ORDER_SHARDS:-4}))

# A cancel-all passes under backpressure, as a cancel does.
oseq="$(t_redis GET "oseq:{$aapl}")"
t_redis SET "oseq:{$aapl}" 999999999999 >/dev/null
t_http_until 429 40 0.1 POST "$url/v1/orders" "$(order '')" "${A[@]}"
t_eq "backpressure on AAPL's shard" "$T_STATUS" 429
t_http DELETE "$url/v1/orders?symbol=AAPL" "" "${A[@]}"
t_eq "cancel-all under backpressure" "$T_STATUS" 202
t_http POST "$url/v1/cancel-all-after" '{"timeout_ms":1000}' "${A[@]}"
t_eq "cancel-all-after under backpressure" "$T_STATUS" 202
t_http POST "$url/v1/orders" "$(stopm '')" "${A[@]}"
t_eq "a stop under backpressure: refused like any new order" "$T_STATUS" 429
t_redis INCRBY "oseq:{$aapl}" $((oseq - 999999999999)) >/dev/null # back, + what came since
t_http_until 202 40 0.1 POST "$url/v1/orders" "$(order '')" "${A[@]}"
t_eq "backpressure gone" "$T_STATUS" 202

# A shard whose stream is gone (setup not run for it) refuses its input:
# with its symbol, 503 and nothing queued; for every symbol, the other
# shards take theirs (separate writes: docs/ingest.md, "Cancel-all") and the
# 503 says so; sent again once the stream is back, it is queued everywhere.
other=$(((aapl + 1) % ${ORDER_SHARDS:-4}))
t_redis RENAME "orders:{$other}" "aside:{$other}" >/dev/null
before="$(t_orders_len)"
t_http DELETE "$url/v1/orders" "" "${A[@]}"
t_eq "cancel-all, a shard missing: status" "$T_STATUS" 503
t_match "cancel-all, a shard missing: says how far it got" "$T_BODY" "\"code\":\"redis_unavailable\",\"message\":\"redis failed while the cancel-all was queued on $((${ORDER_SHARDS:-4} - 1)) of its ${ORDER_SHARDS:-4} shards: send it again \\(a cancel-all is safe to repeat\\)\""
t_match "cancel-all, a shard missing: Retry-After" "$T_HEADERS" 'Retry-After: 1'
t_eq "cancel-all, a shard missing: the others took it" "$(t_orders_len)" $((before + ${ORDER_SHARDS:-4} - 1))
before="$(t_orders_len)"
t_http POST "$url/v1/cancel-all-after" '{"timeout_ms":2000}' "${A[@]}"
t_eq "cancel-all-after, a shard missing: status" "$T_STATUS" 503
t_match "cancel-all-after, a shard missing: says how far it got" "$T_BODY" "\"code\":\"redis_unavailable\",\"message\":\"redis failed while the cancel-all-after was queued on $((${ORDER_SHARDS:-4} - 1)) of its ${ORDER_SHARDS:-4} shards: send it again \\(a cancel-all-after is safe to repeat\\)\""
t_eq "cancel-all-after, a shard missing: the others took it" "$(t_orders_len)" $((before + ${ORDER_SHARDS:-4} - 1))
t_redis RENAME "aside:{$other}" "orders:{$other}" >/dev/null
before="$(t_orders_len)"
t_http DELETE "$url/v1/orders" "" "${A[@]}"
t_eq "cancel-all sent again" "$T_STATUS" 202
t_eq "cancel-all sent again: every shard" "$(t_orders_len)" $((before + ${ORDER_SHARDS:-4}))

# --- reads: owner only -----------------------------------------------------------
psql -q "$DATABASE_URL" -c "INSERT INTO orders (order_id, account, symbol, side, type, tif, price, qty, filled_qty, status, created_at, updated_at, version) VALUES (777001, 'bob', 'AAPL', 'sell', 'limit', 'GTC', 187.25, 10, 4, 'PARTIALLY_FILLED', now(), now(), 1) ON CONFLICT DO NOTHING" >/dev/null
t_http GET "$url/v1/orders/777001" "" "${B[@]}"
t_eq "owner reads order" "$T_STATUS" 200
t_match "order fields" "$T_BODY" '"order_id":"777001".*"price":"187.25","qty":10,"filled_qty":4,"status":"PARTIALLY_FILLED"'
t_http GET "$url/v1/orders/777001" "" "${A[@]}"
t_eq "other account cannot read" "$T_STATUS" 404
t_http GET "$url/v1/orders/777002" "" "${B[@]}"
t_eq "unknown order" "$T_STATUS" 404
t_http GET "$url/v1/fills?limit=0" "" "${B[@]}"
t_eq "fills bad limit" "$T_STATUS" 400
t_http GET "$url/v1/fills?symbol=AAPL&limit=5" "" "${B[@]}"
t_eq "fills" "$T_STATUS" 200
t_match "fills body" "$T_BODY" '^\{"fills":\['
t_http GET "$url/v1/book/AAPL?depth=5" "" "${A[@]}"
t_eq "book" "$T_STATUS" 200
t_http GET "$url/v1/book/ZZZ" "" "${A[@]}"
t_eq "book unknown symbol" "$T_STATUS" 404
t_http GET "$url/metrics" ""
t_match "metrics" "$T_BODY" 'ingest_requests_total\{route="new_order",code="202"\} [0-9]+'
t_match "metrics: cancel_all route" "$T_BODY" 'ingest_requests_total\{route="cancel_all",code="202"\} [0-9]+'
t_match "metrics: cancel_all_after route" "$T_BODY" 'ingest_requests_total\{route="cancel_all_after",code="202"\} [0-9]+'
t_match "metrics: no limit, none refused" "$T_BODY" 'ingest_rate_limited_total 0'

# --- the account's stp default: the third column of API_KEYS_FILE ----------------------------
keys="$OP_STACK_DIR/api-keys-14.conf"
printf '# issue 14\ndev-key-alice alice\ndev-key-carol carol cancel_both\ndev-key-carol-2 carol\n' >"$keys"
printf 'rl-key-one rl\nrl-key-two rl\nrl-key-three rl3\n' >>"$keys"
printf 'dev-key-alice alice\ndev-key-carol carol cancel\n' >"$OP_STACK_DIR/api-keys-bad.conf"
rc=0
env API_KEYS_FILE="$OP_STACK_DIR/api-keys-bad.conf" INGEST_PORT="$(op_free_port)" "$OP_BUILD/bin/orderpipe-ingest" >"$OP_STACK_DIR/bad-keys.log" 2>&1 || rc=$?
t_eq "a bad stp column: ingest refuses to start" "$rc" 2
t_match "a bad stp column: names the file, line and value" "$(cat "$OP_STACK_DIR/bad-keys.log")" "api keys file '$OP_STACK_DIR/api-keys-bad.conf' line 2: bad stp 'cancel': want none, cancel_taker, cancel_maker, cancel_both or decrement"

# The same ingest limits each key to 1 order/s, burst 5: every request below
# is sent at once after the previous one, well within a second of the burst
# being spent (no timing threshold: 6 immediate requests exhaust a burst of 5).
port2="$(op_free_port)"
url2="http://127.0.0.1:$port2"
t_start ingest2 orderpipe-ingest INGEST_PORT="$port2" SYMBOLS_FILE="$syms" API_KEYS_FILE="$keys" INGEST_RATE_LIMIT=1 INGEST_RATE_BURST=5
op_wait_until 20 "ingest on $port2" curl -sf "$url2/healthz" || t_fail "ingest with the issue 14 keys did not start: $(cat "$OP_STACK_DIR/ingest2.log")"
C=("Authorization: Bearer dev-key-carol" "Content-Type: application/json")
before="$(t_orders_len)"
t_http POST "$url2/v1/orders" "$(order '')" "${C[@]}"
t_eq "carol's default stp: status" "$T_STATUS" 202
t_match "carol's default stp reached orders:{S}" "$(last_inputs "$aapl" 1)" '"acct":"carol",.*"stp":"cancel_both","qty":100\}$'
t_http POST "$url2/v1/orders" "$(order ',"stp":"none"')" "Authorization: Bearer dev-key-carol-2" "Content-Type: application/json"
t_eq "carol's explicit none: status" "$T_STATUS" 202
t_match "carol's explicit none wins (no stp field)" "$(last_inputs "$aapl" 1)" '"acct":"carol",[^}]*"px_text":"187.25","qty":100\}$'
t_http POST "$url2/v1/orders" "$(order ',"stp":"decrement"')" "Authorization: Bearer dev-key-carol-2" "Content-Type: application/json"
t_match "carol's second key (no column) takes the account's default, an explicit stp wins" "$(last_inputs "$aapl" 1)" '"acct":"carol",.*"stp":"decrement","qty":100\}$'
t_http POST "$url2/v1/orders" "$(order '')" "Authorization: Bearer dev-key-carol-2" "Content-Type: application/json"
t_match "carol's second key: the account's default" "$(last_inputs "$aapl" 1)" '"acct":"carol",.*"stp":"cancel_both","qty":100\}$'
t_http POST "$url2/v1/orders" "$(order '')" "Authorization: Bearer dev-key-alice" "Content-Type: application/json"
t_match "alice (no column): none" "$(last_inputs "$aapl" 1)" '"acct":"alice",[^}]*"px_text":"187.25","qty":100\}$'
t_eq "stp defaults: queued" "$(t_orders_len)" $((before + 5))

# --- the per-key rate limit ------------------------------------------------------------------
K1=("Authorization: Bearer rl-key-one" "Content-Type: application/json")
K2=("Authorization: Bearer rl-key-two" "Content-Type: application/json")
before="$(t_orders_len)"
st=""
t0="$(date +%s%N)"
for i in 1 2 3 4 5 6; do
	t_http POST "$url2/v1/orders" "$(order '')" "${K1[@]}"
	st+="$T_STATUS "
	h6="$T_HEADERS" b6="$T_BODY"
done
t_http DELETE "$url2/v1/orders/12?symbol=AAPL" "" "${K1[@]}"
st+="cancel:$T_STATUS "
t_http PATCH "$url2/v1/orders/12?symbol=AAPL" '{"qty":5}' "${K1[@]}"
st+="amend:$T_STATUS "
t_http DELETE "$url2/v1/orders" "" "${K1[@]}"
st+="cancel-all:$T_STATUS "
t_http POST "$url2/v1/orders/batch" "{\"orders\":[$(order ''),$(order '')]}" "${K1[@]}"
st+="batch:$T_STATUS"
after="$(t_orders_len)"
ms=$((($(date +%s%N) - t0) / 1000000))
if ((ms < 1000)); then
	t_eq "burst of 5, then refused" "$st" "202 202 202 202 202 429 cancel:429 amend:429 cancel-all:429 batch:429"
	t_match "429 code" "$b6" '^\{"error":\{"code":"rate_limited","message":"this api key sends orders faster than INGEST_RATE_LIMIT allows: nothing was queued, retry after the delay","field":""\}\}$'
	t_match "429 Retry-After in whole seconds" "$h6" $'Retry-After: [1-9][0-9]*\r'
	t_eq "only the 5 within the burst reached redis" "$after" $((before + 5))
else
	# A slow (loaded) machine: the bucket refilled a token per second of
	# the sequence. What must still hold: the burst passed, and no more
	# inputs were taken than the burst plus one per second that went by.
	printf 'note: the rate-limit sequence took %d ms (>= 1 s): checking the bound, not the exact sequence\n' "$ms"
	t_match "burst of 5 passed" "$st" '^202 202 202 202 202 '
	t_match "refusals happened" "$st" '429'
	((after - before <= 5 + 2 * (ms / 1000 + 1))) || t_fail "rate limit: $((after - before)) inputs taken in $ms ms with a burst of 5 at 1/s"
fi

# A batch is all or nothing against the bucket; invalid items do not count.
before="$(t_orders_len)"
t_http POST "$url2/v1/orders/batch" "{\"orders\":[$(order ''),$(order ''),$(order '')]}" "${K2[@]}"
s1="$T_STATUS"
t_http POST "$url2/v1/orders/batch" "{\"orders\":[$(order ''),{\"qty\":0},$(order ''),$(order '')]}" "${K2[@]}"
s2="$T_STATUS" b2="$T_BODY" h2="$T_HEADERS"
t_http POST "$url2/v1/orders/batch" "{\"orders\":[$(order ''),{\"qty\":0},$(order ',"stp":"x"'),$(order '')]}" "${K2[@]}"
s3="$T_STATUS" b3="$T_BODY"
t_http POST "$url2/v1/orders/batch" "$(t_batch_body 6 "$(order '')")" "Authorization: Bearer rl-key-two" "Content-Type: application/json"
s4="$T_STATUS" b4="$T_BODY"
after="$(t_orders_len)"
t_eq "batch of 3 (2 tokens left), of 3 valid + 1 invalid refused, of 2 valid + 2 invalid taken" "$s1 $s2 $s3" "202 429 202"
t_match "refused batch: rate_limited" "$b2" '^\{"error":\{"code":"rate_limited"'
t_match "refused batch: Retry-After" "$h2" 'Retry-After: [1-9]'
t_match "taken batch: invalid items rejected, valid queued" "$b3" '^\{"results":\[\{"status":"QUEUED".*\},\{"status":"REJECTED".*\},\{"status":"REJECTED".*"field":"stp".*\},\{"status":"QUEUED".*\}\]\}$'
t_eq "batch above the burst: refused" "$s4" 429
t_match "batch above the burst: says why" "$b4" '"code":"rate_limited","message":"this request holds 6 orders, more than this key.s burst of 5 \(INGEST_RATE_BURST\): send at most that many per request"'
t_eq "the refused batches queued nothing" "$after" $((before + 5))

# A cancel-all-after counts one, however many shards it is written to: a
# fresh key's burst of 5 takes 5 of them (counted per shard, the second would
# be refused), and sent on at once it is refused like any input (the refill
# of 1/s cannot keep up with 10 requests sent back to back).
K3=("Authorization: Bearer rl-key-three" "Content-Type: application/json")
before="$(t_orders_len)"
st=""
for i in 1 2 3 4 5; do
	t_http POST "$url2/v1/cancel-all-after" '{"timeout_ms":5000}' "${K3[@]}"
	st+="$T_STATUS "
done
t_eq "cancel-all-after counts 1 against the burst" "$st" "202 202 202 202 202 "
t_eq "cancel-all-after: 5 × every shard queued" "$(t_orders_len)" $((before + 5 * ${ORDER_SHARDS:-4}))
for i in 1 2 3 4 5 6 7 8 9 10; do
	t_http POST "$url2/v1/cancel-all-after" '{"timeout_ms":5000}' "${K3[@]}"
	[[ "$T_STATUS" == 429 ]] && break
done
t_eq "cancel-all-after beyond the burst: rate_limited" "$T_STATUS" 429
t_match "cancel-all-after beyond the burst: code" "$T_BODY" '"code":"rate_limited"'

t_http POST "$url2/v1/orders" "$(order '')" "${C[@]}"
t_eq "another account's key is not limited by rl's" "$T_STATUS" 202
t_http GET "$url2/v1/orders/777001" "" "${K1[@]}"
t_eq "reads are not rate limited" "$T_STATUS" 404
t_http GET "$url2/metrics" ""
t_match "metrics: rate-limited requests counted" "$T_BODY" 'ingest_rate_limited_total ([6-9]|[1-9][0-9]+)'
t_match "metrics: 429 per route" "$T_BODY" 'ingest_requests_total\{route="cancel_all",code="429"\} 1'

t_done
