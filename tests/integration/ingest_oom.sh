#!/usr/bin/env bash
# Ingest out of memory: with INGEST_FAULT=alloc:N the Nth allocation made
# for each request fails. For every N up to the last allocation of a
# request, each route (new order, batch, cancel, amend, cancel-all of every
# symbol) must answer either
# its normal 202 (the failure came after the request needed no more) or a
# clean 500 {"error":{"code":"internal",…}} — and a 500 queues nothing.
# Each request is sent on a new connection, so none reuses a connection's
# buffers and every allocation of a request is walked.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
H=("Authorization: Bearer dev-key-alice" "Content-Type: application/json")
ORDER='{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}'
BAD='{"symbol":"AAPL","side":"up","type":"limit","price":"10.00","qty":1}'
names=(new batch cancel amend cancel_all)
declare -A ooms=() oks=()

# answers: any HTTP status at all (even a 500 from the probe's own allocation)
answers() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" != 000 ]]; }

# case_request NAME: sends that route's request.
case_request() {
	case "$1" in
	new) t_http POST "$url/v1/orders" "$ORDER" "${H[@]}" ;;
	batch) t_http POST "$url/v1/orders/batch" "{\"orders\":[$ORDER,$BAD]}" "${H[@]}" ;;
	cancel) t_http DELETE "$url/v1/orders/5?symbol=AAPL" "" "${H[@]}" ;;
	amend) t_http PATCH "$url/v1/orders/5?symbol=AAPL" '{"qty":1,"price":"10.05"}' "${H[@]}" ;;
	cancel_all) t_http DELETE "$url/v1/orders" "" "${H[@]}" ;;
	esac
}

# inputs_of NAME: how many inputs that route's request queues
inputs_of() { [[ "$1" == cancel_all ]] && echo "${ORDER_SHARDS:-4}" || echo 1; }

last=""
for ((n = 1; n <= 40; n++)); do
	t_start "ingest-$n" orderpipe-ingest INGEST_PORT="$port" INGEST_FAULT="alloc:$n"
	op_wait_until 20 "ingest on $port" answers || { t_fail "ingest did not start (alloc:$n)"; break; }
	all_ok=1
	for c in "${names[@]}"; do
		before="$(t_orders_len)"
		case_request "$c"
		after="$(t_orders_len)"
		if [[ "$T_STATUS" == 500 ]]; then
			ooms[$c]=$((${ooms[$c]:-0} + 1))
			all_ok=""
			t_match "alloc:$n $c: 500 is a clean error" "$T_BODY" '^\{"error":\{"code":"internal","message":"out of memory","field":""\}\}$'
			t_eq "alloc:$n $c: 500 queued nothing" "$after" "$before"
		else
			oks[$c]=$((${oks[$c]:-0} + 1))
			t_eq "alloc:$n $c: status" "$T_STATUS" 202
			t_eq "alloc:$n $c: queued once" "$after" $((before + $(inputs_of "$c")))
		fi
	done
	t_stop_all
	if [[ -n "$all_ok" ]]; then
		last="$n"
		break
	fi
done
printf 'ingest_oom: every request passed from alloc:%s on; 500s: new %s, batch %s, cancel %s, amend %s, cancel_all %s\n' \
	"${last:-none}" "${ooms[new]:-0}" "${ooms[batch]:-0}" "${ooms[cancel]:-0}" "${ooms[amend]:-0}" "${ooms[cancel_all]:-0}"
t_match "some N lets every request through (allocations per request are bounded)" "${last:-none}" '^[0-9]+$'
for c in "${names[@]}"; do
	# alloc:1 fails the request's first allocation: at least that one is a 500
	t_match "$c: some allocation failure answered 500" "${ooms[$c]:-0}" '^[1-9][0-9]*$'
	t_match "$c: some N answered 202" "${oks[$c]:-0}" '^[1-9][0-9]*$'
done

t_done
