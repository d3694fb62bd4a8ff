#!/usr/bin/env bash
# The migrations since the previous release, taken by a running system with
# data in it: a database migrated up to the previous release's schema
# (schemas/ up to OP_PREV_RELEASE_MIGRATION, 005; or, when nothing newer
# exists, every file but the last) is filled by the recorder, read through
# ingest's GET endpoints, then migrated with orderpipe-setup while ingest and
# the recorder keep running; the endpoints must answer byte for byte the
# same, the tables hold the same rows (counts and fillgen's expectations),
# and the recorder must go on recording exactly on the migrated schema.
#
# Runs in a database of its own (orderpipe_upgrade, created with the cluster's
# superuser, which the test stack trusts over loopback), beside the shared one.
# Whatever the new migrations are — today 006 (when it lands) and
# 007_fills_partitions.sql — this is the test that they transform a database
# with rows in it.
set -uo pipefail
. "$OP_ROOT/tests/integration/recorder_lib.sh"

shopt -s nullglob
migrations=("$OP_ROOT"/schemas/[0-9]*.sql)
shopt -u nullglob
((${#migrations[@]} >= 2)) || { printf 'recorder_migrations.sh: SKIPPED: fewer than two migrations\n'; exit 0; }
prev_release="${OP_PREV_RELEASE_MIGRATION:-005}"
prev_dir="$REC_TMP/schemas-before"
mkdir -p "$prev_dir"
new=()
for f in "${migrations[@]}"; do
	# up to NNN_* of the previous release ('~' sorts after what names use)
	if [[ "$(basename "$f")" < "${prev_release}_~" ]]; then
		cp "$f" "$prev_dir/"
	else
		new+=("$(basename "$f")")
	fi
done
if ((${#new[@]} == 0)); then
	rm -f "$prev_dir/$(basename "${migrations[-1]}")"
	new=("$(basename "${migrations[-1]}")")
fi
nprev=$((${#migrations[@]} - ${#new[@]}))
newest="${new[*]}"
printf 'upgrade: %d migrations, then %s\n' "$nprev" "$newest"

# A database of its own; DATABASE_URL points at it for the rest of the test
# (rec_psql and the services read it).
rec_own_db orderpipe_upgrade

SCHEMAS_DIR="$prev_dir" "$OP_BUILD/bin/orderpipe-setup" --no-redis >/dev/null 2>&1 || t_fail "setup with the migrations before $newest"
t_eq "migrated up to the one before $newest" "$(rec_psql -c "SELECT count(*) FROM schema_migrations")" "$nprev"

# --- 1. rows written by the recorder under the previous schema ----------------------
rec_reset
exp1="$REC_TMP/before"
mkdir -p "$exp1"
rec_gen --inputs 3000 --seed 61 --expect "$exp1" || t_fail "fillgen (before)"
rec_start recup RECORDER_METRICS_PORT=0 RECORDER_TRIM_INTERVAL_MS=0
rec_wait_drained 60 || t_fail "before: streams not drained in 60 s"
rec_check_tables "recorded under the previous schema" "$exp1"

port="$(op_free_port)"
url="http://127.0.0.1:$port"
t_start ingest-up orderpipe-ingest INGEST_PORT="$port"
op_wait_until 20 "ingest on $port" curl -sf "$url/healthz" || { t_fail "ingest did not start"; t_done; exit 1; }

# answers DIR: every GET of the read side for alice and bob into DIR, one file
# per request (status line + body): some orders of each (rows of every
# status), the fills of each, by symbol, by order, and an unknown order.
answers() {
	local dir="$1" who key id sym n=0
	mkdir -p "$dir"
	for who in alice bob; do
		key="Authorization: Bearer dev-key-$who"
		for id in $(rec_psql -c "SELECT order_id FROM (SELECT order_id, row_number() OVER (PARTITION BY status ORDER BY order_id) AS k FROM orders WHERE account = '$who') o WHERE k <= 8 ORDER BY order_id"); do
			t_http GET "$url/v1/orders/$id" "" "$key"
			printf '%s\n%s\n' "$T_STATUS" "$T_BODY" >"$dir/$who-order-$id"
			n=$((n + 1))
		done
		t_http GET "$url/v1/orders/999999999999" "" "$key"
		printf '%s\n%s\n' "$T_STATUS" "$T_BODY" >"$dir/$who-order-unknown"
		rec_fills_answers "$url" "$who" "$dir" 5 ASC
	done
	printf '%s\n' "$n"
}
norders="$(answers "$REC_TMP/answers-before")"
counts="$(rec_psql -c "SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM fills)")"
t_match "orders read before the migration" "$norders" '^[1-9][0-9]+$'
t_eq "fills answered before the migration" "$(grep -l '"fill_id"' "$REC_TMP"/answers-before/*-fills | wc -l)" 2

# --- 2. the newest migration, with ingest and the recorder running ------------------
SCHEMAS_DIR="$OP_ROOT/schemas" "$OP_BUILD/bin/orderpipe-setup" --no-redis >/dev/null 2>"$REC_TMP/setup.err" ||
	{ t_fail "setup of $newest on a database with rows"; cat "$REC_TMP/setup.err" >&2; }
for m in "${new[@]}"; do
	t_eq "$m applied" "$(rec_psql -c "SELECT count(*) FROM schema_migrations WHERE version = '$m'")" 1
done
t_eq "row counts after $newest" "$(rec_psql -c "SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM fills)")" "$counts"
if [[ " $newest " == *" 007_fills_partitions.sql "* ]]; then
	t_eq "fills is partitioned, its rows in fills_legacy" \
		"$(rec_psql -c "SELECT c.relkind, (SELECT count(*) FROM fills_legacy) FROM pg_class c WHERE c.oid = 'fills'::regclass")" "p|$(echo "$counts" | cut -d' ' -f2)"
fi
answers "$REC_TMP/answers-after" >/dev/null
T_CHECKS=$((T_CHECKS + 1))
if ! diff -r "$REC_TMP/answers-before" "$REC_TMP/answers-after" >"$REC_TMP/answers.diff"; then
	t_fail "the read endpoints answer differently after $newest (diff: $REC_TMP/answers.diff)"
	head -n 20 "$REC_TMP/answers.diff" >&2
fi
t_eq "same number of answers" "$(find "$REC_TMP/answers-after" -type f | wc -l)" "$(find "$REC_TMP/answers-before" -type f | wc -l)"
rec_check_tables "rows after $newest" "$exp1"

# --- 3. the same recorder goes on, on the migrated schema ---------------------------
exp2="$REC_TMP/after"
mkdir -p "$exp2"
rec_gen --inputs 3000 --seed 62 --id-base 100000000 --seq-base 1000000 --expect "$exp2" || t_fail "fillgen (after)"
rec_wait_drained 60 || t_fail "after: streams not drained in 60 s"
rec_merge_expect "$REC_TMP/both" "$exp1" "$exp2"
rec_check_tables "recorded before and after $newest" "$REC_TMP/both"
t_eq "no dead letters" "$(rec_psql -c "SELECT count(*) FROM dead_letters")" 0
t_done
