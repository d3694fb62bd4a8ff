#!/usr/bin/env bash
# Helpers of the recorder's integration tests (sourced by recorder_*.sh; run
# on its own by the harness, it only says so and exits 0).
#
# rec_reset             empty fills:{S} (recreated with their group) and the tables
# rec_gen ARGS...       orderpipe-fillgen with ARGS (writes entries, maybe expectations)
# rec_dump_orders/fills the tables as COPY text, ordered by id, times in µs
# rec_check_tables DIR  the tables equal DIR/orders.tsv and DIR/fills.tsv
# rec_wait_drained SECS every fills:{S} fully delivered and acknowledged
# rec_start NAME [ENV=VAL ...]   a recorder with its log in $OP_STACK_DIR/NAME.log
# rec_metric PORT NAME  one sample of the recorder's /metrics
# shellcheck shell=bash
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	printf 'recorder_lib.sh: helpers for the recorder tests, nothing to run on its own\n'
	exit 0
fi
. "$OP_ROOT/tests/lib/testlib.sh"

REC_SHARDS="${ORDER_SHARDS:-4}"
REC_TMP="$OP_STACK_DIR/recorder-$(basename "$0" .sh)"
rm -rf "$REC_TMP"
mkdir -p "$REC_TMP"

rec_psql() {
	psql "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 "$@"
}

rec_reset() {
	local s
	for ((s = 0; s < REC_SHARDS; s++)); do t_redis DEL "fills:{$s}" >/dev/null; done
	"$OP_BUILD/bin/orderpipe-setup" --no-db >/dev/null 2>&1 || t_fail "orderpipe-setup --no-db"
	rec_psql -c "TRUNCATE orders, fills, dead_letters" || t_fail "truncate"
}

rec_gen() {
	"$OP_BUILD/bin/orderpipe-fillgen" "$@"
}

rec_dump_orders() {
	rec_psql -c "COPY (SELECT order_id, client_order_id, account, symbol, side, type, tif,
	  post_only, price, qty, filled_qty, status, reject_reason,
	  (extract(epoch FROM created_at) * 1000000)::bigint,
	  (extract(epoch FROM updated_at) * 1000000)::bigint, version
	  FROM orders ORDER BY order_id) TO STDOUT"
}

rec_dump_fills() {
	rec_psql -c "COPY (SELECT fill_id, symbol, price, qty, maker_order_id, taker_order_id,
	  maker_account, taker_account, taker_side, (extract(epoch FROM matched_at) * 1000000)::bigint
	  FROM fills ORDER BY fill_id) TO STDOUT"
}

# rec_merge_expect OUT DIR...: OUT holds the expectations of several fillgen
# runs whose ids (--id-base, --seq-base) increase from one DIR to the next.
rec_merge_expect() {
	local out="$1" d t
	shift
	mkdir -p "$out"
	for t in orders fills; do
		for d in "$@"; do cat "$d/$t.tsv"; done >"$out/$t.tsv"
	done
}

# rec_check_tables WHAT DIR: both tables equal the expectation in DIR.
rec_check_tables() {
	local what="$1" dir="$2" t
	for t in orders fills; do
		"rec_dump_$t" >"$dir/got_$t.tsv"
		T_CHECKS=$((T_CHECKS + 1))
		if ! cmp -s "$dir/$t.tsv" "$dir/got_$t.tsv"; then
			t_fail "$what: table $t differs from the expectation ($(wc -l <"$dir/got_$t.tsv") rows, want $(wc -l <"$dir/$t.tsv"))"
			diff "$dir/$t.tsv" "$dir/got_$t.tsv" | head -n 10 >&2
		fi
	done
}

# Shards whose group has not delivered and acknowledged everything: 0 = drained.
REC_UNDRAINED_LUA='
local left = 0
for _, k in ipairs(KEYS) do
  local st = redis.call("XINFO", "STREAM", k)
  local last
  for i = 1, #st, 2 do if st[i] == "last-generated-id" then last = st[i + 1] end end
  local groups = redis.call("XINFO", "GROUPS", k)
  for _, g in ipairs(groups) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f["name"] == "recorders" and ((ARGV[1] ~= "delivered" and f["pending"] ~= 0)
        or f["last-delivered-id"] ~= last) then
      left = left + 1
    end
  end
end
return left'

# rec_undrained [delivered]: shards not drained (with "delivered": not all
# delivered to the group, whatever is still pending).
rec_undrained() {
	local keys=() s
	for ((s = 0; s < REC_SHARDS; s++)); do keys+=("fills:{$s}"); done
	t_redis EVAL "$REC_UNDRAINED_LUA" "$REC_SHARDS" "${keys[@]}" "${1:-all}"
}

rec_wait_drained() {
	local secs="$1" i
	for ((i = 0; i < secs * 10; i++)); do
		[[ "$(rec_undrained)" == 0 ]] && return 0
		sleep 0.1
	done
	return 1
}

# rec_start NAME [ENV=VAL ...]: starts a recorder (t_start: stopped by t_stop_all).
rec_start() {
	local name="$1"
	shift
	t_start "$name" orderpipe-recorder RECORDER_NAME="$name" "$@"
}

# rec_metric PORT NAME: the value of the first sample of NAME (or "").
rec_metric() {
	curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { print $2; exit }'
}

rec_pending_total() {
	local s n total=0
	for ((s = 0; s < REC_SHARDS; s++)); do
		n="$(redis-cli -p "$OP_REDIS_PORT" --raw XPENDING "fills:{$s}" recorders 2>/dev/null | head -n 1)"
		total=$((total + ${n:-0}))
	done
	printf '%s\n' "$total"
}

rec_xlen_total() {
	local s n total=0
	for ((s = 0; s < REC_SHARDS; s++)); do
		n="$(t_redis XLEN "fills:{$s}")"
		total=$((total + ${n:-0}))
	done
	printf '%s\n' "$total"
}

# rec_fills_answers URL WHO DIR N MAKER_ORDER: WHO's answers of GET /v1/fills
# into DIR, one file per request (status line, then body): every fill, those
# of AAPL and of MSFT, and those of each of WHO's first N taker orders and N
# maker orders (their ids sorted MAKER_ORDER: ASC or DESC).
rec_fills_answers() {
	local url="$1" who="$2" dir="$3" n="$4" mord="$5" key sym id
	key="Authorization: Bearer dev-key-$who"
	t_http GET "$url/v1/fills?limit=1000" "" "$key"
	printf '%s\n%s\n' "$T_STATUS" "$T_BODY" >"$dir/$who-fills"
	for sym in AAPL MSFT; do
		t_http GET "$url/v1/fills?symbol=$sym&limit=50" "" "$key"
		printf '%s\n%s\n' "$T_STATUS" "$T_BODY" >"$dir/$who-fills-$sym"
	done
	for id in $(rec_psql -c "SELECT DISTINCT taker_order_id FROM fills WHERE taker_account = '$who' ORDER BY 1 LIMIT $n") \
		$(rec_psql -c "SELECT DISTINCT maker_order_id FROM fills WHERE maker_account = '$who' ORDER BY 1 $mord LIMIT $n"); do
		t_http GET "$url/v1/fills?order_id=$id" "" "$key"
		printf '%s\n%s\n' "$T_STATUS" "$T_BODY" >"$dir/$who-fills-order-$id"
	done
}

# rec_own_db NAME: a database NAME of the test's own on the stack's server
# (created afresh, owned by orderpipe, dropped at exit); DATABASE_URL points
# at it from then on (rec_psql and the services read it). Ends the test when
# it cannot be created.
rec_own_db() {
	rec_db="$1"
	local base_url="${DATABASE_URL%/*}"
	rec_admin_url="${base_url/orderpipe@/postgres@}/postgres"
	psql "$rec_admin_url" -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $rec_db" -c "CREATE DATABASE $rec_db OWNER orderpipe" >/dev/null ||
		{ t_fail "cannot create database $rec_db"; t_done; exit 1; }
	export DATABASE_URL="$base_url/$rec_db"
	trap 'psql "$rec_admin_url" -X -q -c "DROP DATABASE IF EXISTS $rec_db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
}
