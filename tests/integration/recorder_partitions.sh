#!/usr/bin/env bash
# The daily partitions of fills (migration 007) and their retention, with the
# recorder and ingest running:
#   1. roll-over at a UTC midnight: the recorder writes fills on both sides of
#      it (fillgen's exact expectations), each lands in its day's partition,
#      and so do two rows at 23:59:59.999999 and 00:00:00.000000; GET
#      /v1/fills lists them across the boundary in fill_id order, as SQL does;
#   2. a day beyond the created partitions goes to the default partition, and
#      the recorder's next session moves it out (orderpipe_fills_ensure_partitions):
#      nothing lost, nothing twice, the reads answer the same; the function is
#      idempotent and two concurrent calls create each partition once;
#   3. retention with ops/partitions.sh: archive the days before a date (each
#      dump holds exactly its partition's rows, the partitions are gone, the
#      other days answer the same), a dump that cannot be written drops
#      nothing, restore brings every answer back byte for byte; drop needs --yes.
#
# Runs in a database of its own (orderpipe_parts, created with the cluster's
# superuser as recorder_migrations.sh does), migrated by orderpipe-setup.
set -uo pipefail
. "$OP_ROOT/tests/integration/recorder_lib.sh"

rec_own_db orderpipe_parts
"$OP_BUILD/bin/orderpipe-setup" --no-redis >/dev/null 2>&1 || t_fail "setup"

parts() { "$OP_ROOT/ops/partitions.sh" "$@"; }
# day N: the UTC date N days from today; ns D: its midnight in ns since the epoch.
day() { rec_psql -c "SELECT (now() AT TIME ZONE 'UTC')::date + $1"; }
ns() { rec_psql -c "SELECT (extract(epoch FROM '$1'::timestamp AT TIME ZONE 'UTC') * 1000000000)::bigint"; }
part_of() { rec_psql -c "SELECT tableoid::regclass FROM fills WHERE fill_id = $1"; }
nparts() { rec_psql -c "SELECT count(*) FROM orderpipe_fills_partitions()"; }
all_rows() { rec_psql -c "SELECT count(*), md5(string_agg(f::text, ',' ORDER BY fill_id)) FROM fills f"; }
today="$(day 0)"
d1="$(day 2)" d2="$(day 3)"
t_eq "setup created today's and a week's partitions" "$(rec_psql -c "SELECT count(*) FROM orderpipe_fills_partitions() WHERE lo >= '$(day 1)'")" 7

port="$(op_free_port)"
url="http://127.0.0.1:$port"
t_start ingest-parts orderpipe-ingest INGEST_PORT="$port"
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || { t_fail "ingest did not start"; t_done; exit 1; }
rec_reset
mport="$(op_free_port)"
rec_start recparts RECORDER_METRICS_PORT="$mport" RECORDER_TRIM_INTERVAL_MS=0
rec_pid="$T_PID"

# answers DIR: the read side for alice and bob, one file per request.
answers() {
	local dir="$1" who
	rm -rf "$dir"
	mkdir -p "$dir"
	for who in alice bob; do
		rec_fills_answers "$url" "$who" "$dir" 4 DESC
	done
}
# same_answers WHAT DIR1 DIR2
same_answers() {
	T_CHECKS=$((T_CHECKS + 1))
	if ! diff -r "$2" "$3" >"$REC_TMP/answers.diff"; then
		t_fail "$1: the read endpoints answer differently"
		head -n 20 "$REC_TMP/answers.diff" >&2
	fi
}
# expect OUT DIR...: rec_merge_expect, plus the rows inserted by hand
# ($REC_TMP/extra.tsv), in fill_id order as rec_dump_fills has them.
expect() {
	local out="$1"
	rec_merge_expect "$@"
	sort -s -n -k1,1 "$out/fills.tsv" "$REC_TMP/extra.tsv" >"$out/fills.sorted" && mv "$out/fills.sorted" "$out/fills.tsv"
	sort -s -n -k1,1 "$out/orders.tsv" "$REC_TMP/extra-orders.tsv" >"$out/orders.sorted" &&
		mv "$out/orders.sorted" "$out/orders.tsv"
}
: >"$REC_TMP/extra.tsv"
: >"$REC_TMP/extra-orders.tsv"
# alice_ids: alice's fill ids as GET /v1/fills?limit=1000 must list them (a
# self-trade twice: one leg per role).
alice_ids() {
	rec_psql -c "SELECT fill_id FROM (SELECT fill_id FROM fills WHERE taker_account = 'alice' UNION ALL
	  SELECT fill_id FROM fills WHERE maker_account = 'alice') f ORDER BY fill_id DESC LIMIT 1000"
}
# fill_ids FILE: the fill ids of an answer, in its order.
fill_ids() { grep -o '"fill_id":"\{0,1\}[0-9]*' "$1" | grep -o '[0-9]*$'; }

# --- 1. roll-over at a UTC midnight --------------------------------------------------
mid="$(ns "$d2")"
exp1="$REC_TMP/midnight"
mkdir -p "$exp1"
# ~6000 inputs of 1-101 µs each around ${d2} 00:00 UTC: fills on both sides.
rec_gen --inputs 6000 --seed 71 --ts-base "$((mid - 150000000))" --expect "$exp1" || t_fail "fillgen (midnight)"
rec_wait_drained 60 || t_fail "midnight: streams not drained in 60 s"
rec_check_tables "fills across a midnight" "$exp1"
t_eq "fills before midnight are in fills_p${d1//-/}" \
	"$(rec_psql -c "SELECT count(*) FILTER (WHERE tableoid <> 'fills_p${d1//-/}'::regclass), count(*) > 100 FROM fills WHERE matched_at < '$d2 00:00:00+00'")" "0|t"
t_eq "fills from midnight on are in fills_p${d2//-/}" \
	"$(rec_psql -c "SELECT count(*) FILTER (WHERE tableoid <> 'fills_p${d2//-/}'::regclass), count(*) > 100 FROM fills WHERE matched_at >= '$d2 00:00:00+00'")" "0|t"
# The last microsecond of one day and the first of the next, taken by alice
# from bob, ids above fillgen's and in match order.
top="$(rec_psql -c "SELECT max(fill_id) FROM fills")"
rec_psql -c "INSERT INTO fills (fill_id, symbol, price, qty, maker_order_id, taker_order_id, maker_account, taker_account, taker_side, matched_at) VALUES
	($((top + 1)), 'AAPL', 187.25, 5, 9000001, 9000002, 'bob', 'alice', 'buy', '$d1 23:59:59.999999+00'),
	($((top + 2)), 'AAPL', 187.26, 7, 9000001, 9000003, 'bob', 'alice', 'buy', '$d2 00:00:00+00')" || t_fail "insert the boundary rows"
# and their orders' rows, as the recorder writes them with the fills (a
# lookup by order reads the partitions of created_at..updated_at only)
rec_psql -c "INSERT INTO orders (order_id, account, symbol, side, type, tif, post_only, price, qty, filled_qty, status, created_at, updated_at, version) VALUES
	(9000001, 'bob', 'AAPL', 'sell', 'limit', 'GTC', false, 187.25, 12, 12, 'FILLED', '$d1 23:00:00+00', '$d2 00:00:00+00', $((top + 2))),
	(9000002, 'alice', 'AAPL', 'buy', 'limit', 'IOC', false, 187.25, 5, 5, 'FILLED', '$d1 23:59:59.999999+00', '$d1 23:59:59.999999+00', $((top + 1))),
	(9000003, 'alice', 'AAPL', 'buy', 'limit', 'IOC', false, 187.26, 7, 7, 'FILLED', '$d2 00:00:00+00', '$d2 00:00:00+00', $((top + 2)))" ||
	t_fail "insert the boundary rows' orders"
rec_psql -c "COPY (SELECT fill_id, symbol, price, qty, maker_order_id, taker_order_id, maker_account, taker_account,
	taker_side, (extract(epoch FROM matched_at) * 1000000)::bigint FROM fills WHERE fill_id > $top ORDER BY fill_id) TO STDOUT" >"$REC_TMP/extra.tsv"
rec_psql -c "COPY (SELECT order_id, client_order_id, account, symbol, side, type, tif, post_only, price, qty,
	filled_qty, status, reject_reason, (extract(epoch FROM created_at) * 1000000)::bigint,
	(extract(epoch FROM updated_at) * 1000000)::bigint, version FROM orders WHERE order_id IN (9000001, 9000002, 9000003)
	ORDER BY order_id) TO STDOUT" >"$REC_TMP/extra-orders.tsv"
t_eq "the boundary rows" "$(wc -l <"$REC_TMP/extra.tsv")" 2
t_eq "23:59:59.999999 is in its day's partition" "$(part_of $((top + 1)))" "fills_p${d1//-/}"
t_eq "00:00:00.000000 is in the next day's" "$(part_of $((top + 2)))" "fills_p${d2//-/}"
answers "$REC_TMP/a1"
t_eq "GET /v1/fills lists the two across the boundary, newest first" \
	"$(fill_ids "$REC_TMP/a1/alice-fills" | head -n 2 | tr '\n' ' ')" "$((top + 2)) $((top + 1)) "
t_eq "bob's maker order: both fills, in fill_id order" \
	"$(fill_ids "$REC_TMP/a1/bob-fills-order-9000001" | tr '\n' ' ')" "$((top + 2)) $((top + 1)) "
# The lookup by order reads the partitions of the order's life; an order row
# archived away (its fills kept) leaves the lookup unbounded, not empty.
rec_psql -c "CREATE TABLE orders_aside AS SELECT * FROM orders WHERE order_id = 9000001;
	DELETE FROM orders WHERE order_id = 9000001" || t_fail "set the order row aside"
t_http GET "$url/v1/fills?order_id=9000001" "" "Authorization: Bearer dev-key-bob"
printf '%s\n%s\n' "$T_STATUS" "$T_BODY" >"$REC_TMP/no-order-row"
t_eq "… and without its orders row: both fills still" "$(fill_ids "$REC_TMP/no-order-row" | tr '\n' ' ')" \
	"$((top + 2)) $((top + 1)) "
rec_psql -c "INSERT INTO orders SELECT * FROM orders_aside; DROP TABLE orders_aside" || t_fail "put the order row back"
want="$(alice_ids)"
t_eq "alice's fills across both partitions: the same ids in the same order as SQL gives" \
	"$(fill_ids "$REC_TMP/a1/alice-fills" | md5sum)" "$(printf '%s\n' "$want" | md5sum)"
t_match "… and there are fills of both days in it" "$(printf '%s\n' "$want" | wc -l)" '^[1-9][0-9][0-9]+$'

# --- 2. a day without a partition: the default partition, then moved ------------------
far="$(day 40)"
exp2="$REC_TMP/far"
mkdir -p "$exp2"
rec_gen --inputs 800 --seed 72 --ts-base "$(($(ns "$far") + 3600000000000))" --id-base 100000000 --seq-base 1000000 --expect "$exp2" || t_fail "fillgen (far)"
rec_wait_drained 60 || t_fail "far: streams not drained in 60 s"
expect "$REC_TMP/both" "$exp1" "$exp2"
nfar="$(wc -l <"$exp2/fills.tsv")"
t_eq "fills of a day without a partition are recorded in fills_default" \
	"$(rec_psql -c "SELECT count(*) FROM fills_default")" "$nfar"
before_rows="$(all_rows)"
answers "$REC_TMP/a2"
# A new session of the recorder calls the function (kill + restart: its
# pending list is empty, everything is acknowledged).
kill -TERM "$rec_pid"
wait "$rec_pid"
t_eq "recorder stopped cleanly" "$?" 0
left=()
for p in "${T_PIDS[@]}"; do [[ "$p" == "$rec_pid" ]] || left+=("$p"); done
T_PIDS=("${left[@]}")
rec_start recparts2 RECORDER_METRICS_PORT="$mport" RECORDER_TRIM_INTERVAL_MS=0
op_wait_until 30 "the default partition drained" bash -c "[[ \$(psql '$DATABASE_URL' -X -A -t -c 'SELECT count(*) FROM fills_default') == 0 ]]" ||
	t_fail "the recorder's new session did not drain fills_default"
op_wait_until 10 "metrics" curl -sf "http://127.0.0.1:$mport/metrics" >/dev/null
t_eq "recorder_partitions_created_total" "$(rec_metric "$mport" recorder_partitions_created_total)" 1
t_eq "recorder_partition_failures_total" "$(rec_metric "$mport" recorder_partition_failures_total)" 0
t_eq "the far day has its partition" "$(rec_psql -c "SELECT DISTINCT tableoid::regclass FROM fills WHERE matched_at >= '$far'")" "fills_p${far//-/}"
t_eq "nothing lost, nothing twice (count and md5 of every row)" "$(all_rows)" "$before_rows"
rec_check_tables "after the move out of the default partition" "$REC_TMP/both"
answers "$REC_TMP/a2b"
same_answers "after the move out of the default partition" "$REC_TMP/a2" "$REC_TMP/a2b"
n="$(nparts)"
t_eq "ensure again: nothing to do" "$(rec_psql -c "SELECT orderpipe_fills_ensure_partitions()")" 0
t_eq "… and the partitions are the same" "$(nparts)" "$n"
# Two concurrent calls, 30 days ahead: each missing day created once.
missing="$(rec_psql -c "SELECT count(*) FROM generate_series(0, 30) k, LATERAL (SELECT ((now() AT TIME ZONE 'UTC')::date + k)::timestamp AT TIME ZONE 'UTC' AS lo) d
	WHERE NOT EXISTS (SELECT 1 FROM orderpipe_fills_partitions() p WHERE NOT p.is_default
	  AND (p.lo IS NULL OR p.lo < d.lo + interval '1 day') AND p.hi > d.lo)")"
rec_psql -c "SELECT orderpipe_fills_ensure_partitions(30)" >"$REC_TMP/ens1" 2>&1 &
p1=$!
rec_psql -c "SELECT orderpipe_fills_ensure_partitions(30)" >"$REC_TMP/ens2" 2>&1 &
p2=$!
wait "$p1"
r1=$?
wait "$p2"
r2=$?
t_eq "two concurrent ensure calls both succeed" "$r1 $r2" "0 0"
t_eq "… and create the $missing missing days once between them" "$(($(cat "$REC_TMP/ens1") + $(cat "$REC_TMP/ens2")))" "$missing"
t_eq "partitions now" "$(nparts)" "$((n + missing))"
rec_check_tables "after the concurrent calls" "$REC_TMP/both"

# --- 3. retention: archive, a failed dump, restore, drop ------------------------------
answers "$REC_TMP/a3"
full_rows="$(all_rows)"
old=(fills_legacy "fills_p$(day 1 | tr -d -)" "fills_p${d1//-/}")
for p in "${old[@]}"; do
	rec_psql -c "COPY (SELECT * FROM $p ORDER BY fill_id, matched_at) TO STDOUT" >"$REC_TMP/$p.want" || t_fail "dump of $p"
done
kept_order="$(rec_psql -c "SELECT taker_order_id FROM fills WHERE taker_account = 'alice' GROUP BY 1 HAVING min(matched_at) >= '$d2' ORDER BY 1 LIMIT 1")"
t_http GET "$url/v1/fills?order_id=$kept_order" "" "Authorization: Bearer dev-key-alice"
kept_before="$T_STATUS $T_BODY"

# A dump that cannot be written: nothing is dropped, the partition is back.
arch="$REC_TMP/archive"
mkdir -p "$arch/fills_legacy.copy.tmp"
parts archive --before "$d2" --dir "$arch" >"$REC_TMP/arch-fail.out" 2>&1
t_eq "archive with an unwritable dump fails" "$?" 1
t_eq "… and fills_legacy is still a partition of fills" \
	"$(rec_psql -c "SELECT count(*) FROM orderpipe_fills_partitions() WHERE part = 'fills_legacy'::regclass")" 1
t_eq "… nothing else was archived" "$(ls "$arch" | tr '\n' ' ')" "fills_legacy.copy.tmp "
t_eq "… every row is still there" "$(all_rows)" "$full_rows"
rmdir "$arch/fills_legacy.copy.tmp"

parts archive --before "$d2" --dir "$arch" >"$REC_TMP/arch.out" 2>&1 || { t_fail "archive --before $d2"; cat "$REC_TMP/arch.out" >&2; }
t_eq "archive: every partition before $d2" "$(grep -c '^archived ' "$REC_TMP/arch.out")" "${#old[@]}"
for p in "${old[@]}"; do
	t_eq "$p is gone" "$(rec_psql -c "SELECT to_regclass('$p') IS NULL")" t
	T_CHECKS=$((T_CHECKS + 1))
	cmp -s "$arch/$p.copy" "$REC_TMP/$p.want" || t_fail "the dump of $p is not exactly its rows"
	t_eq "$p's manifest: its row count" "$(sed -n 's/^rows=//p' "$arch/$p.manifest")" "$(wc -l <"$REC_TMP/$p.want")"
done
t_eq "no fill before $d2 is left" "$(rec_psql -c "SELECT count(*) FROM fills WHERE matched_at < '$d2'")" 0
t_eq "the rows of $d2 on are all there" "$(rec_psql -c "SELECT count(*) FROM fills")" \
	"$(($(echo "$full_rows" | cut -d'|' -f1) - $(cat "$REC_TMP"/*.want | wc -l)))"
t_http GET "$url/v1/fills?order_id=$kept_order" "" "Authorization: Bearer dev-key-alice"
t_eq "an order of a kept day answers the same" "$T_STATUS $T_BODY" "$kept_before"
want="$(alice_ids)"
t_http GET "$url/v1/fills?limit=1000" "" "Authorization: Bearer dev-key-alice"
printf '%s\n' "$T_BODY" >"$REC_TMP/alice-after-archive"
t_eq "alice's fills after the archive: the kept days', in order" \
	"$(fill_ids "$REC_TMP/alice-after-archive" | md5sum)" "$(printf '%s\n' "$want" | md5sum)"

for p in "${old[@]}"; do
	parts restore --file "$arch/$p.copy" >>"$REC_TMP/restore.out" 2>&1 || { t_fail "restore $p"; tail -n 5 "$REC_TMP/restore.out" >&2; }
done
t_eq "restored: every row, byte for byte" "$(all_rows)" "$full_rows"
t_eq "… each in a partition again" "$(rec_psql -c "SELECT count(*) FROM orderpipe_fills_partitions() WHERE part::text IN ('${old[0]}', '${old[1]}', '${old[2]}')")" 3
answers "$REC_TMP/a3b"
same_answers "after archive and restore" "$REC_TMP/a3" "$REC_TMP/a3b"
rec_check_tables "after archive and restore" "$REC_TMP/both"

parts drop --before "$(day 1)" >/dev/null 2>&1
t_eq "drop without --yes refuses" "$?" 1
t_eq "… and drops nothing" "$(rec_psql -c "SELECT to_regclass('fills_legacy') IS NOT NULL")" t
parts drop --before "$(day 1)" --yes >/dev/null 2>&1 || t_fail "drop --yes"
t_eq "drop --yes: fills_legacy (empty here) is gone" "$(rec_psql -c "SELECT to_regclass('fills_legacy') IS NULL")" t
t_eq "… and nothing else" "$(all_rows)" "$full_rows"

# --- 4. the recorder still records exactly, on what is left --------------------------
exp3="$REC_TMP/last"
mkdir -p "$exp3"
rec_gen --inputs 2000 --seed 73 --ts-base "$(($(ns "$today") + 7200000000000))" --id-base 200000000 --seq-base 2000000 --expect "$exp3" || t_fail "fillgen (last)"
rec_wait_drained 60 || t_fail "last: streams not drained in 60 s"
expect "$REC_TMP/all" "$exp1" "$exp2" "$exp3"
t_eq "today's fills, fills_legacy gone: in the default partition" \
	"$(rec_psql -c "SELECT count(*) FROM fills_default")" "$(wc -l <"$exp3/fills.tsv")"
t_eq "ensure gives today a partition" "$(rec_psql -c "SELECT orderpipe_fills_ensure_partitions()")" 1
t_eq "… and drains the default partition" "$(rec_psql -c "SELECT count(*) FROM fills_default")" 0
rec_check_tables "recorded after the retention steps" "$REC_TMP/all"
t_eq "no dead letters" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" 0
t_stop_all
t_done
