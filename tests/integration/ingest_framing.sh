#!/usr/bin/env bash
# Strict HTTP framing at ingest (issue 10, part 3): requests that a proxy and
# ingest could read differently (request smuggling, header confusion) are
# answered 400 invalid_header and queue nothing; the framing ones also close
# the connection. Raw sockets (tests/lib/rawhttp.py), because curl refuses to
# send most of them. Also: a batch whose items are all invalid is a 400 with
# the per-item results.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
t_start ingest orderpipe-ingest INGEST_PORT="$port"
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || { t_fail "ingest did not start"; t_done; exit 1; }

ORDER='{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}'
LEN="${#ORDER}"
AUTH='Authorization: Bearer dev-key-alice\r\n'
CT='Content-Type: application/json\r\n'
POST='POST /v1/orders HTTP/1.1\r\nHost: ingest\r\n'

# raw NAME STATUS CONN CODE FIELD REQUEST: sends REQUEST (escapes decoded) on
# a fresh connection; the answer must be STATUS with error code CODE and field
# FIELD ("-": not checked), the connection then CONN ("closed", "open" or "-"),
# and nothing may be queued unless STATUS is 202.
raw() {
	local name="$1" status="$2" conn="$3" code="$4" field="$5" req="$6" before after out line1 body
	before="$(t_orders_len)"
	out="$(python3 "$OP_ROOT/tests/lib/rawhttp.py" "$port" "$req")"
	after="$(t_orders_len)"
	line1="$(sed -n 1p <<<"$out")"
	body="$(sed -n 2p <<<"$out")"
	t_eq "$name: status" "${line1% *}" "$status"
	[[ "$conn" == - ]] || t_eq "$name: connection" "${line1#* }" "$conn"
	[[ "$code" == - ]] || t_match "$name: code" "$body" "\"code\":\"$code\""
	[[ "$field" == - ]] || t_match "$name: field" "$body" "\"field\":\"$field\""
	if [[ "$status" == 202 ]]; then
		t_eq "$name: queued" "$after" $((before + 1))
	else
		t_eq "$name: nothing queued" "$after" "$before"
	fi
}

# --- controls: a well-formed request is queued and keeps the connection ----------
raw "well-formed" 202 open - - "$POST$AUTH${CT}Content-Length: $LEN\r\n\r\n$ORDER"
raw "chunked body" 202 open - - "$POST$AUTH${CT}Transfer-Encoding: chunked\r\n\r\n$(printf '%x' "$LEN")\r\n$ORDER\r\n0\r\n\r\n"
raw "HTTP/1.0 needs no Host" 202 - - - "POST /v1/orders HTTP/1.0\r\n$AUTH${CT}Content-Length: $LEN\r\n\r\n$ORDER"

# --- request smuggling: the body's length must be unambiguous --------------------
raw "two different Content-Length" 400 closed invalid_header Content-Length \
	"$POST$AUTH${CT}Content-Length: $LEN\r\nContent-Length: 5\r\n\r\n$ORDER"
raw "two equal Content-Length" 400 closed invalid_header Content-Length \
	"$POST$AUTH${CT}Content-Length: $LEN\r\nContent-Length: $LEN\r\n\r\n$ORDER"
raw "Content-Length with Transfer-Encoding" 400 closed invalid_header Transfer-Encoding \
	"$POST$AUTH${CT}Content-Length: $LEN\r\nTransfer-Encoding: chunked\r\n\r\n$(printf '%x' "$LEN")\r\n$ORDER\r\n0\r\n\r\n"
raw "Transfer-Encoding not chunked" 400 closed invalid_header Transfer-Encoding \
	"$POST$AUTH${CT}Transfer-Encoding: gzip, chunked\r\n\r\n$(printf '%x' "$LEN")\r\n$ORDER\r\n0\r\n\r\n"
raw "two Transfer-Encoding" 400 closed invalid_header Transfer-Encoding \
	"$POST$AUTH${CT}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n$(printf '%x' "$LEN")\r\n$ORDER\r\n0\r\n\r\n"

# --- header confusion ------------------------------------------------------------
raw "NUL inside Authorization" 400 closed invalid_header Authorization \
	"${POST}Authorization: Bearer dev-key-alice\x00junk\r\n${CT}Content-Length: $LEN\r\n\r\n$ORDER"
raw "NUL inside the last header" 400 closed invalid_header Authorization \
	"$POST${CT}Content-Length: $LEN\r\nAuthorization: Bearer dev-key-alice\x00\x00\x00\x00junk\r\n\r\n$ORDER"
raw "NUL inside Content-Length" 400 closed invalid_header Content-Length \
	"$POST$AUTH${CT}Content-Length: $LEN\x00 5\r\n\r\n$ORDER"
raw "folded header line" 400 closed invalid_header - \
	"$POST${AUTH}Content-Type: application/json;\r\n charset=utf-8\r\nContent-Length: $LEN\r\n\r\n$ORDER"
raw "two Authorization" 400 - invalid_header Authorization \
	"$POST${AUTH}Authorization: Bearer dev-key-bob\r\n${CT}Content-Length: $LEN\r\n\r\n$ORDER"
raw "HTTP/1.1 without Host" 400 - invalid_header Host \
	"POST /v1/orders HTTP/1.1\r\n$AUTH${CT}Content-Length: $LEN\r\n\r\n$ORDER"
raw "two Host" 400 - invalid_header Host \
	"${POST}Host: other\r\n$AUTH${CT}Content-Length: $LEN\r\n\r\n$ORDER"
raw "GET without Host" 400 - invalid_header Host "GET /healthz HTTP/1.1\r\n\r\n"

# --- a batch with no valid item is a 400 with the per-item results ---------------
before="$(t_orders_len)"
t_http POST "$url/v1/orders/batch" '{"orders":[{"symbol":"ZZZ","side":"buy","type":"limit","price":"1","qty":1},{"qty":0}]}' \
	"Authorization: Bearer dev-key-alice" "Content-Type: application/json"
t_eq "all-invalid batch: status" "$T_STATUS" 400
t_match "all-invalid batch: per-item results" "$T_BODY" '^\{"results":\[\{"status":"REJECTED","error":\{"code":"unknown_symbol".*\},\{"status":"REJECTED","error":\{"code":"[a-z_]+".*\}\]\}$'
t_eq "all-invalid batch: nothing queued" "$(t_orders_len)" "$before"

t_done
