#!/usr/bin/env bash
# The pipeline on Redis Cluster (issue 17): a six-node cluster of its own
# (ops/redis-cluster.sh, 3 primaries + 3 replicas, in $OP_STACK_DIR/cluster
# on free ports), ORDER_SHARDS=16, two ingests (INGEST_MIN_REPLICAS=1), two
# matchers and two recorders given the first node's URL only, and the
# harness's PostgreSQL:
#  a. the end-to-end comparison with the reference model (tests/e2e/e2e.py,
#     as e2e_flow.sh runs it, its requests sent to both ingests in turn);
#  b. orders submitted continuously (each with a client_order_id) while the
#     primary owning AAPL's shard slot is killed (-9): its replica takes over,
#     orders go on; every order answered 202 is in PostgreSQL exactly once,
#     with the order id it was answered, and no client_order_id of the flow
#     is recorded twice (503s and timeouts may or may not be there: counted);
#  c. orders submitted continuously while that slot is moved by hand to
#     another primary (SETSLOT IMPORTING/MIGRATING, MIGRATE in batches of a
#     few keys, SETSLOT NODE): the clients meet ASK during the move and
#     MOVED after it; the same checks, plus: the slot really moved, and
#     orders of AAPL sent after the move are matched and recorded.
# Counts are printed: orders sent, 202, 503, other, recorded.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
t_skip_unless_built redis_cluster

cdir="$OP_STACK_DIR/cluster"
cport=""
flowpid=""
export ORDER_SHARDS=16
# step MESSAGE: a progress line with the seconds since the test started.
step() { printf '[%3ss] %s\n' "$SECONDS" "$*"; }

# cleanup: on any exit, the flow and services stopped, then the cluster
# (left running with KEEP_STACK=1, for a look at its nodes' logs).
cleanup() {
	local p
	[[ -n "$flowpid" ]] && kill "$flowpid" 2>/dev/null
	for p in "${T_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[[ -n "$cport" ]] || return 0
	if [[ "${KEEP_STACK:-0}" == 1 ]]; then
		printf 'KEEP_STACK=1: the cluster is still running; stop it with: ops/redis-cluster.sh stop %s %s\n' "$cdir" "$cport"
		return 0
	fi
	"$OP_ROOT/ops/redis-cluster.sh" stop "$cdir" "$cport" >/dev/null 2>&1
	rm -rf "$cdir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- the cluster ------------------------------------------------------------------
for try in 1 2 3; do
	cport="$(op_free_cluster_port)" || { t_fail "no six free ports in a row"; t_done; exit 1; }
	rm -rf "$cdir"
	if "$OP_ROOT/ops/redis-cluster.sh" start "$cdir" "$cport"; then break; fi
	"$OP_ROOT/ops/redis-cluster.sh" stop "$cdir" "$cport" >/dev/null 2>&1
	((try < 3)) || { t_fail "cannot start the redis cluster (three tries)"; cport=""; t_done; exit 1; }
done
cports=()
for ((k = 0; k < 6; k++)); do cports+=($((cport + k))); done
export REDIS_URL="redis://127.0.0.1:$cport"
printf 'cluster on 127.0.0.1:%s-%s, ORDER_SHARDS=%s\n' "$cport" $((cport + 5)) "$ORDER_SHARDS"

# live_node: the port of a node that answers PING (the first one may be dead).
live_node() {
	local p
	for p in "${cports[@]}"; do
		[[ "$(redis-cli -p "$p" PING 2>/dev/null)" == PONG ]] && { printf '%s\n' "$p"; return 0; }
	done
	return 1
}
# rc ARGS...: redis-cli -c on a live node (follows MOVED/ASK), raw output.
rc() { redis-cli -c -p "$(live_node)" --raw "$@" 2>/dev/null; }

# slot_owner SLOT [PORT]: "id port" of the primary serving SLOT according
# to node PORT (default: a live node), from CLUSTER NODES.
slot_owner() {
	redis-cli -p "${2:-$(live_node)}" CLUSTER NODES 2>/dev/null | awk -v s="$1" '
		$3 ~ /master/ && $3 !~ /fail/ {
			for (i = 9; i <= NF; i++) {
				if ($i ~ /^\[/) continue
				n = split($i, r, "-"); lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
				if (s >= lo && s <= hi) { a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a); print $1, a }
			}
		}'
}

# cluster_ok: every live node says cluster_state:ok.
cluster_ok() {
	local p n=0
	for p in "${cports[@]}"; do
		[[ "$(redis-cli -p "$p" PING 2>/dev/null)" == PONG ]] || continue
		redis-cli -p "$p" CLUSTER INFO 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok' || return 1
		n=$((n + 1))
	done
	((n > 0))
}

# leases_held: every shard has a live matcher's lease.
leases_held() {
	local s
	for ((s = 0; s < ORDER_SHARDS; s++)); do
		[[ -n "$(rc GET "lease:{$s}")" ]] || return 1
	done
}

# --- the services --------------------------------------------------------------------
if ! "$OP_BUILD/bin/orderpipe-setup" >"$OP_STACK_DIR/rc-setup.log" 2>&1; then
	t_fail "orderpipe-setup on the cluster (ORDER_SHARDS=16) failed: $(tail -n 5 "$OP_STACK_DIR/rc-setup.log")"
	t_done
	exit 1
fi
psql -qAtX "$DATABASE_URL" -c "TRUNCATE orders, fills" >/dev/null
t_eq "orderpipe-setup created the 16 orders streams (counted over the nodes)" \
	"$(for s in $(seq 0 15); do rc EXISTS "orders:{$s}"; done | grep -c '^1$')" 16

ip1="$(op_free_port)"
ip2="$(op_free_port "$ip1")"
mp1="$(op_free_port "$ip1" "$ip2")"
mp2="$(op_free_port "$ip1" "$ip2" "$mp1")"
iports=("$ip1" "$ip2")
# 1 s for the replica's acknowledgement: on a loaded test machine a live
# replica can take longer than the 100 ms default (see replica_wait.sh).
for k in 1 2; do
	t_start "rc-ingest$k" orderpipe-ingest INGEST_PORT="${iports[k - 1]}" \
		INGEST_MIN_REPLICAS=1 INGEST_REPLICA_TIMEOUT_MS=1000
done
t_start rc-matcher1 orderpipe-matcher MATCHER_NAME=rc-m1 MATCHER_METRICS_PORT="$mp1" MAX_OPEN_ORDERS=10
t_start rc-matcher2 orderpipe-matcher MATCHER_NAME=rc-m2 MATCHER_METRICS_PORT="$mp2" MAX_OPEN_ORDERS=10
t_start rc-recorder1 orderpipe-recorder RECORDER_NAME=rc-r1 RECORDER_METRICS_PORT=0
t_start rc-recorder2 orderpipe-recorder RECORDER_NAME=rc-r2 RECORDER_METRICS_PORT=0
for p in "${iports[@]}"; do
	op_wait_until 30 "ingest on $p" curl -sf "http://127.0.0.1:$p/healthz" ||
		t_fail "ingest on $p is not healthy on the cluster: $(tail -n 5 "$OP_STACK_DIR"/rc-ingest*.log)"
done
op_wait_until 60 "the matchers to hold every shard's lease" leases_held ||
	t_fail "the matchers do not hold all 16 leases on the cluster: $(tail -n 5 "$OP_STACK_DIR"/rc-matcher*.log)"

# --- a. the end-to-end comparison ----------------------------------------------------
step '--- a. e2e.py against 2 ingests, 2 matchers, 2 recorders on the cluster'
st=0
E2E_INGEST_PORTS="$ip1,$ip2" E2E_MAX_OPEN_ORDERS=10 python3 "$OP_ROOT/tests/e2e/e2e.py" || st=$?
t_eq "e2e.py: the orders and fills tables equal the reference model on the cluster" "$st" 0

# --- the flow of parts b and c ---------------------------------------------------------
# flow PREFIX OUT STOPFILE: until STOPFILE exists, one order at a time,
# alternating the ingests: an alice buy then a bob sell of 1 at 10.00 on
# AAPL, the same on MSFT (so that most sells trade); one line per request
# in OUT: "client_order_id status order_id symbol" (order_id "-" unless
# 202/200, status 000 for no answer within 5 s).
flow() {
	local prefix="$1" out="$2" stop="$3" i=0 key side sym code oid port
	while [[ ! -e "$stop" ]] && ((i < 50000)); do
		if ((i % 2 == 0)); then key=dev-key-alice side=buy; else key=dev-key-bob side=sell; fi
		sym=AAPL
		((i % 4 >= 2)) && sym=MSFT
		port="${iports[$((i % 3 == 1))]}"
		code="$(curl -s -o "$out.body" -w '%{http_code}' --max-time 5 -X POST "http://127.0.0.1:$port/v1/orders" \
			-H "Authorization: Bearer $key" -H "Content-Type: application/json" \
			-d "{\"symbol\":\"$sym\",\"side\":\"$side\",\"type\":\"limit\",\"price\":\"10.00\",\"qty\":1,\"client_order_id\":\"$prefix-$i\"}" 2>/dev/null)"
		oid="$(sed -n 's/.*"order_id":"\([0-9]*\)".*/\1/p' "$out.body" 2>/dev/null)"
		printf '%s %s %s %s\n' "$prefix-$i" "${code:-000}" "${oid:--}" "$sym" >>"$out"
		i=$((i + 1))
	done
}

# flow_start PREFIX: the flow in the background into $OP_STACK_DIR/rc-PREFIX.
flow_start() {
	flowout="$OP_STACK_DIR/rc-$1"
	flowstop="$OP_STACK_DIR/rc-$1.stop"
	rm -f "$flowout" "$flowstop"
	: >"$flowout"
	flow "$1" "$flowout" "$flowstop" &
	flowpid=$!
}
flow_stop() {
	touch "$flowstop"
	wait "$flowpid" 2>/dev/null
	flowpid=""
}

# accepted_202 [SYMBOL] [FROM_LINE]: how many requests of the flow got 202
# (of SYMBOL, from line FROM_LINE on).
accepted_202() {
	awk -v s="${1:-}" -v f="${2:-1}" 'NR >= f && $2 == 202 && (s == "" || $4 == s)' "$flowout" | wc -l
}
# have_accepted N SYMBOL FROM_LINE: at least N 202s of SYMBOL from FROM_LINE.
have_accepted() { (($(accepted_202 "$2" "$3") >= $1)); }
# wait_accepted N SYMBOL FROM_LINE WHAT: until have_accepted (2 minutes).
wait_accepted() { op_wait_until 120 "$4" have_accepted "$1" "$2" "$3"; }

# recorded PREFIX: "client_order_id count order_id" of the flow's recorded
# orders, into $flowout.db.
recorded() {
	psql -qAtX -F ' ' "$DATABASE_URL" -c \
		"SELECT client_order_id, count(*), min(order_id) FROM orders WHERE client_order_id LIKE '$1-%' GROUP BY 1" >"$flowout.db"
}
# missing_202 PREFIX: how many 202 orders of the flow have no row yet.
missing_202() {
	recorded "$1"
	awk 'NR == FNR { db[$1] = 1; next } $2 == 202 && !($1 in db)' "$flowout.db" "$flowout" | wc -l
}

none_missing() { (($(missing_202 "$1") == 0)); }

# check_flow PREFIX WHAT: waits for every 202 order of the flow to be
# recorded, then checks it is, once, with its answered order id; prints the
# counts.
check_flow() {
	local prefix="$1" what="$2" sent a503 other acc rec dup wrong miss r503
	step "$what: waiting for every 202 order to be recorded"
	op_wait_until 180 "every 202 order of the $what flow recorded" none_missing "$prefix" || true
	sleep 2 # a moment for any late (duplicate) row
	recorded "$prefix"
	sent="$(wc -l <"$flowout")"
	acc="$(awk '$2 == 202' "$flowout" | wc -l)"
	a503="$(awk '$2 == 503' "$flowout" | wc -l)"
	other="$(awk '$2 != 202 && $2 != 503' "$flowout" | wc -l)"
	rec="$(wc -l <"$flowout.db")"
	miss="$(missing_202 "$prefix")"
	dup="$(awk '$2 != 1' "$flowout.db" | wc -l)"
	wrong="$(awk 'NR == FNR { id[$1] = $3; next } $2 == 202 && ($1 in id) && id[$1] != $3' "$flowout.db" "$flowout" | wc -l)"
	r503="$(awk 'NR == FNR { db[$1] = 1; next } $2 != 202 && ($1 in db)' "$flowout.db" "$flowout" | wc -l)"
	printf '%s: sent %s orders: %s answered 202, %s answered 503, %s other (%s); recorded %s (of the 503/other: %s recorded, %s not)\n' \
		"$what" "$sent" "$acc" "$a503" "$other" \
		"$(awk '$2 != 202 && $2 != 503 {print $2}' "$flowout" | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')" \
		"$rec" "$r503" $((a503 + other - r503))
	t_match "$what: orders answered 202" "$acc" '^[1-9][0-9]*$'
	t_eq "$what: orders answered 202 missing from PostgreSQL" "$miss" 0
	((miss == 0)) || printf '  missing: %s\n' "$(awk 'NR == FNR { db[$1] = 1; next } $2 == 202 && !($1 in db) {print $1}' "$flowout.db" "$flowout" | head -n 10 | paste -sd' ')"
	t_eq "$what: client_order_ids recorded more than once" "$dup" 0
	((dup == 0)) || awk '$2 != 1' "$flowout.db" | head -n 5
	t_eq "$what: 202 orders recorded with another order id than answered" "$wrong" 0
}

# --- b. the primary of AAPL's shard killed mid-flow ------------------------------------
step '--- b. kill -9 the primary of the AAPL shard mid-flow'
aapl_shard="$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from e2e import shard_of; print(shard_of("AAPL", 16))' "$OP_ROOT/tests/e2e")"
slot="$(rc CLUSTER KEYSLOT "orders:{$aapl_shard}")"
read -r old_id old_port < <(slot_owner "$slot")
printf 'AAPL: shard %s, slot %s, on primary %s (port %s)\n' "$aapl_shard" "$slot" "$old_id" "$old_port"
t_match "the owner of AAPL's slot is a node of the cluster" "${old_port:-}" "^($(IFS='|'; echo "${cports[*]}"))\$"
# cancel_all: every open order of alice and bob, so that a flow starts on
# an empty book (MAX_OPEN_ORDERS=10 would otherwise reject its orders).
cancel_all() {
	local key
	for key in dev-key-alice dev-key-bob; do
		t_http DELETE "http://127.0.0.1:$ip1/v1/orders" "" "Authorization: Bearer $key"
		t_eq "cancel-all of $key before the flow" "$T_STATUS" 202
	done
}
cancel_all
flow_start k
wait_accepted 40 AAPL 1 "40 AAPL orders answered 202 before the kill" ||
	t_fail "the flow got no 202 for AAPL on the cluster before the kill: $(tail -n 3 "$flowout")"
step "killing the primary of slot $slot (port $old_port)"
kill -9 "$(cat "$cdir/$old_port/redis.pid")"
kill_line=$(($(wc -l <"$flowout") + 1))
# taken_over: AAPL's slot is served by a primary other than the killed one.
taken_over() {
	local id
	read -r id _ < <(slot_owner "$slot")
	[[ -n "${id:-}" && "$id" != "$old_id" ]]
}
op_wait_until 60 "a replica to take AAPL's slot over" taken_over ||
	t_fail "no replica took over slot $slot within 60 s of killing its primary"
op_wait_until 60 "cluster_state:ok after the failover" cluster_ok || t_fail "the cluster is not ok after the failover"
read -r new_id new_port < <(slot_owner "$slot")
printf 'failover: slot %s now on %s (port %s)\n' "$slot" "${new_id:-?}" "${new_port:-?}"
t_match "AAPL's slot is served by another node after the failover" "${new_port:-none}" "^[0-9]+\$"
[[ "${new_port:-}" != "$old_port" ]] || t_fail "AAPL's slot is still on the killed node $old_port"
# The promoted replica has no replica of its own until the old primary
# rejoins (as its replica): meanwhile AAPL's 202s (INGEST_MIN_REPLICAS=1)
# become 503 replication_timeout. Bring it back, then expect 202s again.
"$OP_ROOT/ops/redis-cluster.sh" start "$cdir" "$cport" >"$OP_STACK_DIR/rc-rejoin.log" 2>&1 ||
	t_fail "the killed node did not rejoin the cluster: $(grep -v '^redis.sh:' "$OP_STACK_DIR/rc-rejoin.log" | tail -n 5) $(tail -n 3 "$cdir/$old_port/redis.log")"
back_line=$(($(wc -l <"$flowout") + 1))
wait_accepted 40 AAPL "$back_line" "40 AAPL orders answered 202 after the failover" ||
	t_fail "no 202 for AAPL after the failover: $(tail -n 3 "$flowout")"
flow_stop
printf 'failover flow: lines 1-%s before the kill, %s-%s until the old primary rejoined, after it %s AAPL 202s\n' \
	$((kill_line - 1)) "$kill_line" $((back_line - 1)) "$(accepted_202 AAPL "$back_line")"
check_flow k "failover"

# --- c. the slot moved to another primary under load -----------------------------------
step "--- c. move slot $slot (AAPL shard $aapl_shard) to another primary under load"
read -r src_id src_port < <(slot_owner "$slot")
read -r dst_id dst_port < <(redis-cli -p "$src_port" CLUSTER NODES | awk -v me="$src_id" '
	$3 ~ /master/ && $3 !~ /fail/ && $1 != me { a = $2; sub(/@.*/, "", a); sub(/.*:/, "", a); print $1, a; exit }')
printf 'moving slot %s from %s (port %s) to %s (port %s)\n' "$slot" "$src_id" "$src_port" "$dst_id" "${dst_port:-?}"
cancel_all
flow_start m
wait_accepted 40 AAPL 1 "40 AAPL orders answered 202 before the move" ||
	t_fail "no 202 for AAPL before the move: $(tail -n 3 "$flowout")"
move_line=$(($(wc -l <"$flowout") + 1))
step "migrating slot $slot"
t_eq "SETSLOT IMPORTING on the destination" "$(redis-cli -p "$dst_port" CLUSTER SETSLOT "$slot" IMPORTING "$src_id")" OK
t_eq "SETSLOT MIGRATING on the source" "$(redis-cli -p "$src_port" CLUSTER SETSLOT "$slot" MIGRATING "$dst_id")" OK
# Five keys per MIGRATE, a fifth of a second between: the flow meets the
# slot half moved (ASK for the keys already on the destination, TRYAGAIN for
# a command spanning both sides) many times, not once.
batches=0
moved=0
while :; do
	# (an empty reply is one empty line with --raw: not a key)
	mapfile -t keys < <(redis-cli -p "$src_port" --raw CLUSTER GETKEYSINSLOT "$slot" 5 | grep -v '^$')
	((${#keys[@]} > 0)) || break
	out="$(redis-cli -p "$src_port" MIGRATE 127.0.0.1 "$dst_port" "" 0 10000 KEYS "${keys[@]}" 2>&1)"
	if [[ "$out" != OK && "$out" != NOKEY ]]; then
		t_fail "MIGRATE of ${keys[*]} from $src_port to $dst_port: $out"
		break
	fi
	batches=$((batches + 1))
	moved=$((moved + ${#keys[@]}))
	((batches < 5000)) || { t_fail "the slot still has keys after 5000 MIGRATEs"; break; }
	sleep 0.2
done
t_eq "SETSLOT NODE on the destination" "$(redis-cli -p "$dst_port" CLUSTER SETSLOT "$slot" NODE "$dst_id")" OK
t_eq "SETSLOT NODE on the source" "$(redis-cli -p "$src_port" CLUSTER SETSLOT "$slot" NODE "$dst_id")" OK
after_line=$(($(wc -l <"$flowout") + 1))
step "slot $slot set to the destination"
printf 'moved %s keys in %s MIGRATE batches; flow lines %s-%s during the move: %s\n' "$moved" "$batches" "$move_line" $((after_line - 1)) \
	"$(awk -v a="$move_line" -v b="$after_line" 'NR >= a && NR < b {print $4, $2}' "$flowout" | sort | uniq -c | awk '{printf "%s%s %s x%s", (NR > 1 ? ", " : ""), $2, $3, $1}')"
t_match "keys were moved" "$moved" '^[1-9][0-9]*$'
# all_see_dst: every node's CLUSTER NODES has the slot on the destination.
all_see_dst() {
	local p id
	for p in "${cports[@]}"; do
		read -r id _ < <(slot_owner "$slot" "$p")
		[[ "${id:-}" == "$dst_id" ]] || return 1
	done
}
op_wait_until 60 "every node to see slot $slot on $dst_id" all_see_dst ||
	t_fail "not every node sees slot $slot on the destination"
t_eq "the slot's owner after the move" "$(slot_owner "$slot" "$src_port" | awk '{print $1}')" "$dst_id"
t_eq "keys left in the slot on the source" "$(redis-cli -p "$src_port" CLUSTER COUNTKEYSINSLOT "$slot")" 0
wait_accepted 40 AAPL "$after_line" "40 AAPL orders answered 202 after the move" ||
	t_fail "no 202 for AAPL after the move: $(tail -n 3 "$flowout")"
step "$(accepted_202 AAPL "$after_line") AAPL orders answered 202 after the move"
flow_stop
t_match "keys of the slot on the destination" "$(redis-cli -p "$dst_port" CLUSTER COUNTKEYSINSLOT "$slot")" '^[1-9][0-9]*$'
check_flow m "slot move"
# Matched after the move: of each pair sent after it (an alice buy, then a
# bob sell, of AAPL at 10.00) both answered 202, one at least trades as
# the taker whatever rests on the book (the buy rests and the sell takes
# it; or the book holds sells and the buy takes one; or the open-order
# limit rejects one side and the other takes), and the trade is recorded.
awk -v f="$after_line" 'NR >= f && $2 == 202 && $4 == "AAPL" { split($1, c, "-"); print c[2], $3 }' "$flowout" |
	awk '{ id[$1] = $2 } END { for (i in id) if (i % 4 == 0 && ((i + 1) in id)) print id[i], id[i + 1] }' >"$flowout.pairs"
n_pairs="$(wc -l <"$flowout.pairs")"
post_ids="$(tr ' ' '\n' <"$flowout.pairs" | paste -sd, -)"
# pairs_taking: how many pairs have a recorded trade with one of them as taker.
pairs_taking() {
	psql -qAtX "$DATABASE_URL" -c "SELECT DISTINCT taker_order_id FROM fills WHERE symbol = 'AAPL' AND taker_order_id IN ($post_ids)" >"$flowout.takers"
	awk 'NR == FNR { t[$1] = 1; next } ($1 in t) || ($2 in t)' "$flowout.takers" "$flowout.pairs" | wc -l
}
all_pairs_taking() { (($(pairs_taking) >= n_pairs)); }
t_match "AAPL buy/sell pairs answered 202 after the move" "$n_pairs" '^[1-9][0-9]*$'
if ((n_pairs > 0)); then
	op_wait_until 60 "the trades of the AAPL pairs sent after the move" all_pairs_taking || true
	taking="$(pairs_taking)"
	printf 'after the move: %s AAPL buy/sell pairs answered 202, %s with a recorded trade (%s fills of AAPL after the move)\n' \
		"$n_pairs" "$taking" "$(psql -qAtX "$DATABASE_URL" -c "SELECT count(*) FROM fills WHERE taker_order_id IN ($post_ids) OR maker_order_id IN ($post_ids)")"
	t_eq "AAPL pairs sent after the move that traded (matched and recorded)" "$taking" "$n_pairs"
fi

psql -qAtX "$DATABASE_URL" -c "TRUNCATE orders, fills" >/dev/null
t_done
