#!/usr/bin/env bash
# CORS at ingest (issue 16, part 2): a browser page served by another origin
# (the feed's console) may POST orders to ingest only if INGEST_CORS_ORIGINS
# lists that origin. Checked with curl, header by header:
#  1. the default list, the feed's own origins on FEED_PORT: a preflight is
#     answered 204 with the exact origin, the path's methods, the allowed
#     headers and Max-Age; another origin's preflight is 403
#     origin_not_allowed without CORS headers; a real POST (202, and a 400)
#     carries Access-Control-Allow-Origin + Vary: Origin; a request without
#     Origin carries neither; an OPTIONS that is not a preflight stays 405;
#  2. an explicit list is matched as browsers send origins (lower case, no
#     default port), and replaces the default;
#  3. `none` turns CORS off; a malformed list stops ingest naming it.
# (The browser side — Chromium honouring these headers — is in
# feed_console.sh.)
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
unset INGEST_CORS_ORIGINS FEED_PORT

ORDER='{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}'
AUTH='Authorization: Bearer dev-key-alice'
CT='Content-Type: application/json'

# hdr NAME: the value of header NAME in the last answer (T_HEADERS), empty
# if absent; "a, b" if it came more than once.
hdr() {
	tr -d '\r' <<<"$T_HEADERS" | awk -v n="$1" -F': ' 'tolower($1) == tolower(n) { sub(/^[^:]*: /, ""); v = v (v == "" ? "" : ", ") $0 } END { print v }'
}

# preflight URL ORIGIN [METHOD]: a browser's preflight for METHOD (POST)
# with an Authorization header and a JSON body.
preflight() {
	t_http OPTIONS "$1" "" "Origin: $2" "Access-Control-Request-Method: ${3:-POST}" \
		"Access-Control-Request-Headers: authorization,content-type"
}

# start_ingest NAME [ENV=VAL ...]: an ingest on a free port; sets url.
start_ingest() {
	local name="$1" port
	shift
	port="$(op_free_port)"
	url="http://127.0.0.1:$port"
	t_start "$name" orderpipe-ingest INGEST_PORT="$port" "$@"
	op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || {
		t_fail "$name did not start"
		t_done
		exit 1
	}
}

# --- 1. the default: the feed's origins on FEED_PORT ------------------------------
feed_port="$(op_free_port)"
feed="http://127.0.0.1:$feed_port"
start_ingest cors-default FEED_PORT="$feed_port"

preflight "$url/v1/orders" "$feed"
t_eq "preflight from the feed's origin: status" "$T_STATUS" 204
t_eq "preflight: Access-Control-Allow-Origin is the exact origin" "$(hdr Access-Control-Allow-Origin)" "$feed"
t_eq "preflight: Vary" "$(hdr Vary)" Origin
t_eq "preflight: the path's methods" "$(hdr Access-Control-Allow-Methods)" "POST, DELETE"
t_eq "preflight: the allowed headers" "$(hdr Access-Control-Allow-Headers)" "Authorization, Content-Type"
t_eq "preflight: Max-Age" "$(hdr Access-Control-Max-Age)" 600
t_eq "preflight: no body" "$T_BODY" ""

preflight "$url/v1/orders/42?symbol=AAPL" "http://localhost:$feed_port" PATCH
t_eq "preflight of an order's URL from localhost: status" "$T_STATUS" 204
t_eq "preflight from localhost: its origin" "$(hdr Access-Control-Allow-Origin)" "http://localhost:$feed_port"
t_eq "preflight of an order's URL: its methods" "$(hdr Access-Control-Allow-Methods)" "GET, PATCH, DELETE"

before="$(t_orders_len)"
preflight "$url/v1/orders" "http://evil.example"
t_eq "preflight from another origin: status" "$T_STATUS" 403
t_match "preflight from another origin: code" "$T_BODY" '"code":"origin_not_allowed"'
t_match "preflight from another origin: says what to do" "$T_BODY" "origin 'http://evil.example' is not allowed.*INGEST_CORS_ORIGINS"
t_eq "preflight from another origin: no Allow-Origin" "$(hdr Access-Control-Allow-Origin)" ""
t_eq "preflight from another origin: no Allow-Methods" "$(hdr Access-Control-Allow-Methods)" ""
preflight "$url/v1/orders" "http://127.0.0.1:$((feed_port + 1))"
t_eq "preflight from the feed's host on another port: status" "$T_STATUS" 403
preflight "$url/v1/orders" "http://127.0.0.1:8081"
t_eq "preflight from the default feed port when FEED_PORT is set elsewhere: status" "$T_STATUS" 403
preflight "$url/v1/nothing" "$feed"
t_eq "preflight of an unknown path: status" "$T_STATUS" 404
t_eq "preflights queue nothing" "$(t_orders_len)" "$before"

t_http POST "$url/v1/orders" "$ORDER" "$AUTH" "$CT" "Origin: $feed"
t_eq "POST from the feed's origin: status" "$T_STATUS" 202
t_eq "POST from the feed's origin: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "$feed"
t_eq "POST from the feed's origin: Vary" "$(hdr Vary)" Origin
t_eq "POST from the feed's origin: Retry-After readable by the page" "$(hdr Access-Control-Expose-Headers)" Retry-After
t_eq "POST from the feed's origin: queued" "$(t_orders_len)" $((before + 1))

t_http POST "$url/v1/orders" '{"symbol":"AAPL","side":"buy","type":"limit","price":"10.001","qty":1}' "$AUTH" "$CT" "Origin: $feed"
t_eq "a 400 from the feed's origin: status" "$T_STATUS" 400
t_eq "a 400 from the feed's origin: Allow-Origin, so the page can show the error" "$(hdr Access-Control-Allow-Origin)" "$feed"
t_http POST "$url/v1/orders" "$ORDER" "$CT" "Origin: $feed"
t_eq "a 401 from the feed's origin: status" "$T_STATUS" 401
t_eq "a 401 from the feed's origin: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "$feed"

t_http POST "$url/v1/orders" "$ORDER" "$AUTH" "$CT" "Origin: http://evil.example"
t_eq "POST from another origin: served (CORS is no access control: the key is)" "$T_STATUS" 202
t_eq "POST from another origin: no Allow-Origin (its page cannot read it)" "$(hdr Access-Control-Allow-Origin)" ""
t_eq "POST from another origin: Vary" "$(hdr Vary)" Origin

t_http POST "$url/v1/orders" "$ORDER" "$AUTH" "$CT"
t_eq "POST without Origin: status" "$T_STATUS" 202
t_eq "POST without Origin: no Allow-Origin" "$(hdr Access-Control-Allow-Origin)" ""
t_eq "POST without Origin: no Vary" "$(hdr Vary)" ""
t_http GET "$url/healthz" "" "Origin: $feed"
t_eq "GET /healthz from the feed's origin: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "$feed"

t_http OPTIONS "$url/v1/orders" "" "Origin: $feed"
t_eq "OPTIONS without Access-Control-Request-Method (not a preflight): status" "$T_STATUS" 405
t_http OPTIONS "$url/v1/orders" "" "Access-Control-Request-Method: POST"
t_eq "OPTIONS without Origin (not a preflight): status" "$T_STATUS" 405

t_http GET "$url/metrics"
t_match "metrics count the preflights" "$T_BODY" 'ingest_requests_total\{route="preflight",code="204"\} 2'
t_match "metrics count the refused preflights" "$T_BODY" 'ingest_requests_total\{route="preflight",code="403"\} 3'

# --- 2. an explicit list ---------------------------------------------------------
start_ingest cors-list INGEST_CORS_ORIGINS=" https://Console.Example.COM:443 , http://LocalHost:9000"
preflight "$url/v1/orders/batch" "https://console.example.com"
t_eq "listed origin (as the browser sends it): status" "$T_STATUS" 204
t_eq "listed origin: Allow-Origin" "$(hdr Access-Control-Allow-Origin)" "https://console.example.com"
t_eq "listed origin: the batch path's methods" "$(hdr Access-Control-Allow-Methods)" POST
preflight "$url/v1/orders" "http://localhost:9000" DELETE
t_eq "second listed origin: status" "$T_STATUS" 204
preflight "$url/v1/orders" "$feed"
t_eq "an explicit list replaces the default: status" "$T_STATUS" 403

# --- 3. none, and a bad list ----------------------------------------------------------
start_ingest cors-none INGEST_CORS_ORIGINS=none
preflight "$url/v1/orders" "http://127.0.0.1:8081"
t_eq "INGEST_CORS_ORIGINS=none: the default origin's preflight" "$T_STATUS" 403
t_http POST "$url/v1/orders" "$ORDER" "$AUTH" "$CT" "Origin: http://127.0.0.1:8081"
t_eq "INGEST_CORS_ORIGINS=none: POST still served" "$T_STATUS" 202
t_eq "INGEST_CORS_ORIGINS=none: no Allow-Origin" "$(hdr Access-Control-Allow-Origin)" ""

rc=0
out="$(INGEST_PORT="$(op_free_port)" INGEST_CORS_ORIGINS="http://127.0.0.1:8081/console" \
	timeout 20 "$OP_BUILD/bin/orderpipe-ingest" 2>&1)" || rc=$?
t_eq "a malformed INGEST_CORS_ORIGINS: exit status" "$rc" 2
t_match "a malformed INGEST_CORS_ORIGINS: the message names it" "$out" \
	"invalid INGEST_CORS_ORIGINS=.*'http://127.0.0.1:8081/console' is not an origin"

t_done
