#!/usr/bin/env bash
# Benchmark and proof of the index set of fills and orders: the plans of the
# read endpoints' queries on a table of BENCH_INDEXES_FILLS fills (default
# 10,000,000) spread over BENCH_INDEXES_DAYS daily partitions (default 30;
# migration 007), with every index of the migrations and with each secondary
# index of fills dropped in turn. BENCH_INDEXES_DAYS=0: the schema before
# 007 (one unpartitioned table), to compare.
#
#   bench/indexes.sh [<build-dir>]     (make bench BENCH=indexes runs it; no binary is used)
#
# Starts its own PostgreSQL (ops/postgres.sh) in a temporary directory, applies
# schemas/*.sql, generates the rows in SQL (INSERT … SELECT generate_series;
# the secondary indexes are dropped for the load and re-created from their
# own definitions after it), VACUUM ANALYZE, then runs EXPLAIN (ANALYZE,
# BUFFERS) of the queries of ingest/reads.c — copied here verbatim, keep
# them in step — as the ingest runs them: PQexecParams, so a custom plan for
# the parameter values (plan_cache_mode = force_custom_plan). The shapes:
#   order              GET /v1/orders/{id}
#   fills              GET /v1/fills                       (account only)
#   fills+symbol       GET /v1/fills?symbol=AAPL
#   fills+taker order  GET /v1/fills?order_id=<the account's oldest taker order>
#   fills+maker order  GET /v1/fills?order_id=<the account's oldest maker order>
#   fills+both         GET /v1/fills?symbol=<its symbol>&order_id=<that taker order>
# For each it prints the scans (node, index, table) and the buffers the
# query touched; then the same with each secondary index of fills dropped
# (BEGIN; DROP INDEX; EXPLAIN …; ROLLBACK), which shows which shape needs it.
# Summary: the most buffers any read query touched with the full index set,
# against the fills table's pages (what a scan would read).
#
# Data: fill g is the g-th trade; taker order 2*(g/2)+1 (two fills per
# taker), maker order an even id up to 50,000 trades older (resting
# orders), accounts 'acct0'… 'acct<BENCH_INDEXES_ACCOUNTS - 1>' (default
# 1000) a function of the order id (id / 2 * 7919 mod accounts), symbol one
# of five by the taker order (independent of its account), matched_at
# evenly over the days from tomorrow (UTC) on (the partitions are made by
# orderpipe_fills_ensure_partitions, which creates days from today on; the
# legacy partition of 007 stays empty), one millisecond per fill with
# BENCH_INDEXES_DAYS=0. orders: BENCH_INDEXES_ORDERS rows (default
# 2,000,000), ids 1…, the same account and symbol functions.
#
# Environment: BENCH_INDEXES_FILLS, BENCH_INDEXES_ORDERS,
# BENCH_INDEXES_ACCOUNTS, BENCH_INDEXES_DAYS, OP_PG_SHARED_BUFFERS.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../ops/lib.sh"

(($# <= 1)) || { printf 'usage: %s [<build-dir>]\n' "$0" >&2; exit 2; }
op_need_cmd psql postgresql-client
nfills="${BENCH_INDEXES_FILLS:-10000000}"
norders="${BENCH_INDEXES_ORDERS:-2000000}"
naccounts="${BENCH_INDEXES_ACCOUNTS:-1000}"
ndays="${BENCH_INDEXES_DAYS:-30}"
[[ "$nfills" =~ ^[1-9][0-9]*$ && "$norders" =~ ^[1-9][0-9]*$ && "$naccounts" =~ ^[1-9][0-9]*$ ]] ||
	op_die "BENCH_INDEXES_FILLS, BENCH_INDEXES_ORDERS and BENCH_INDEXES_ACCOUNTS must be positive integers"
[[ "$ndays" =~ ^[0-9]+$ ]] && ((ndays <= 366)) || op_die "BENCH_INDEXES_DAYS must be 0 … 366"

dir="$(mktemp -d /tmp/orderpipe-bench-indexes.XXXXXX)"
chmod 755 "$dir"
pport="$(op_free_port)"
cleanup() {
	trap '' INT TERM
	"$OP_ROOT/ops/postgres.sh" stop "$dir/postgres" "$pport" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$OP_ROOT/ops/postgres.sh" start "$dir/postgres" "$pport" >/dev/null 2>&1 ||
	op_die "cannot start postgresql on port $pport"
export DATABASE_URL="postgresql://orderpipe@127.0.0.1:$pport/orderpipe"
psqlq() { psql "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
now() { date +%s.%N; }
for f in "$OP_ROOT"/schemas/[0-9]*.sql; do
	((ndays == 0)) && [[ "$(basename "$f")" > 007 ]] && break
	psqlq -1 -f "$f" >/dev/null || op_die "migration '$f' failed"
done
if ((ndays > 0)); then
	psqlq -c "SELECT orderpipe_fills_ensure_partitions($ndays)" >/dev/null || op_die "cannot create the partitions"
	matched_at="(date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' + (g - 1) * (interval '1 day' * $ndays / $nfills)"
else
	matched_at="timestamptz '2026-01-01 00:00:00+00' + g * interval '1 millisecond'"
fi
# The pages of fills: of its partitions, when it has some.
fills_pages() {
	psqlq -c "SELECT sum(relpages) FROM pg_class WHERE oid = 'fills'::regclass
	  OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fills'::regclass)"
}

# --- the rows ----------------------------------------------------------------------
t0="$(now)"
psqlq <<SQL
SET maintenance_work_mem = '512MB';
SET work_mem = '512MB';
-- (a partitioned index's definition says ON ONLY: without it, the same
-- statement builds it on every partition)
CREATE TABLE bench_index_defs AS
    SELECT indexname, replace(indexdef, ' ON ONLY ', ' ON ') AS indexdef FROM pg_indexes
    WHERE tablename = 'fills' AND indexname <> 'fills_pkey';
DO \$\$
DECLARE r record;
BEGIN
    FOR r IN SELECT indexname FROM bench_index_defs LOOP
        EXECUTE format('DROP INDEX %I', r.indexname);
    END LOOP;
END \$\$;
INSERT INTO fills (fill_id, symbol, price, qty, maker_order_id, taker_order_id, maker_account,
                   taker_account, taker_side, matched_at)
SELECT g, (ARRAY['AAPL', 'MSFT', 'GOOG', 'AMZN', 'TSLA'])[1 + t / 2000 % 5],
       100 + (g % 5000) / 100.0, 1 + g % 100, m, t, 'acct' || (m / 2 * 7919 % $naccounts),
       'acct' || (t / 2 * 7919 % $naccounts),
       CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END,
       $matched_at
FROM (SELECT g, 2 * (g / 2) + 1 AS t, 2 + 2 * (greatest(g - (g * 7919) % 50000, 0) / 3) AS m
      FROM generate_series(1, $nfills::bigint) g) s;
INSERT INTO orders (order_id, account, symbol, side, type, tif, post_only, price, qty, filled_qty,
                    status, created_at, updated_at, version)
SELECT id, 'acct' || (id / 2 * 7919 % $naccounts),
       (ARRAY['AAPL', 'MSFT', 'GOOG', 'AMZN', 'TSLA'])[1 + id / 2000 % 5],
       CASE WHEN id % 2 = 0 THEN 'sell' ELSE 'buy' END, 'limit', 'GTC', false, 187.25, 100, 100,
       'FILLED', coalesce(sp.lo, timestamptz '2026-01-01 00:00:00+00'),
       coalesce(sp.hi, timestamptz '2026-01-01 00:00:01+00'), id
FROM generate_series(1, $norders::bigint) id
-- an order's life spans its fills, as the recorder writes it (created_at
-- at or before its first fill, updated_at at or after its last): the
-- lookup by order reads only the partitions of that span
LEFT JOIN (SELECT o, min(at) AS lo, max(at) AS hi
           FROM (SELECT taker_order_id AS o, matched_at AS at FROM fills
                 UNION ALL SELECT maker_order_id, matched_at FROM fills) x
           GROUP BY o) sp ON sp.o = id;
DO \$\$
DECLARE r record;
BEGIN
    FOR r IN SELECT indexdef FROM bench_index_defs LOOP
        EXECUTE r.indexdef;
    END LOOP;
END \$\$;
DROP TABLE bench_index_defs;
VACUUM ANALYZE fills;
VACUUM ANALYZE orders;
SQL
t1="$(now)"

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
printf 'machine: %s, %s cores (%s), load average %s\n' "$(uname -m)" "$(nproc)" "${cpu:-unknown cpu}" \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'postgresql %s, shared_buffers %s; %s fills (%s pages, %s partitions holding rows), %s orders, %s accounts, generated in %.1f s\n' \
	"$(psqlq -c 'SHOW server_version' | cut -d' ' -f1)" "$(psqlq -c 'SHOW shared_buffers')" \
	"$(psqlq -c 'SELECT count(*) FROM fills')" "$(fills_pages)" "$(psqlq -c 'SELECT count(DISTINCT tableoid) FROM fills')" \
	"$(psqlq -c 'SELECT count(*) FROM orders')" "$naccounts" "$(echo "$t1 - $t0" | bc)"
printf 'indexes (a partitioned one: the sum over its partitions):\n'
psqlq -c "SELECT '  ' || tablename || ': ' || indexname || ' ' || regexp_replace(indexdef, '.* USING ', '')
                 || ' (' || pg_size_pretty(pg_relation_size(indexname::regclass)
                    + coalesce((SELECT sum(pg_relation_size(inhrelid)) FROM pg_inherits
                                WHERE inhparent = indexname::regclass), 0)) || ')'
          FROM pg_indexes WHERE tablename IN ('fills', 'orders') ORDER BY tablename, indexname"

# --- the queries (ingest/reads.c, verbatim) ---------------------------------------------
acct=acct7
taker_order="$(psqlq -c "SELECT min(taker_order_id) FROM fills WHERE taker_account = '$acct'")"
maker_order="$(psqlq -c "SELECT min(maker_order_id) FROM fills WHERE maker_account = '$acct'")"
taker_symbol="$(psqlq -c "SELECT min(symbol) FROM fills WHERE taker_order_id = $taker_order")"
order_id="$(psqlq -c "SELECT min(order_id) FROM orders WHERE account = '$acct'")"
ts() { printf "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" "$1"; }
leg() { # leg ROLE ACCOUNT_COLUMN ORDER_COLUMN SIDE_EXPRESSION
	printf "(SELECT fill_id, symbol, price, qty, %s AS order_id, %s AS side, '%s' AS liquidity, matched_at FROM fills WHERE %s = \$1 AND (\$2 = '' OR symbol = \$2) AND (\$3::bigint = 0 OR (%s = \$3::bigint AND matched_at BETWEEN coalesce((SELECT created_at FROM orders WHERE order_id = \$3::bigint), '-infinity') AND coalesce((SELECT updated_at FROM orders WHERE order_id = \$3::bigint), 'infinity'))) ORDER BY fill_id DESC LIMIT \$4::int)" \
		"$3" "$4" "$1" "$2" "$3"
}
order_sql="SELECT order_id::text, client_order_id, account, symbol, side, type, tif, price::text, qty, filled_qty, status, reject_reason, $(ts created_at), $(ts updated_at) FROM orders WHERE order_id = \$1 AND account = \$2"
fills_sql="SELECT fill_id::text, symbol, price::text, qty, order_id::text, side, liquidity, $(ts matched_at) FROM ($(leg taker taker_account taker_order_id taker_side) UNION ALL $(leg maker maker_account maker_order_id "CASE WHEN taker_side = 'buy' THEN 'sell' ELSE 'buy' END")) f ORDER BY f.fill_id DESC, f.liquidity DESC LIMIT \$4::int"
shapes=(order fills fills+symbol "fills+taker order" "fills+maker order" fills+both)
execs=("EXECUTE q_order($order_id, '$acct')"
	"EXECUTE q_fills('$acct', '', 0, 100)"
	"EXECUTE q_fills('$acct', 'AAPL', 0, 100)"
	"EXECUTE q_fills('$acct', '', $taker_order, 100)"
	"EXECUTE q_fills('$acct', '', $maker_order, 100)"
	"EXECUTE q_fills('$acct', '$taker_symbol', $taker_order, 100)")
printf 'account %s: oldest taker order %s, oldest maker order %s, order %s\n' "$acct" "$taker_order" \
	"$maker_order" "$order_id"

# explain SQL_BEFORE: EXPLAIN every shape after SQL_BEFORE (in one transaction,
# rolled back); prints one line per shape: buffers, rows, scans (the same scan
# of N partitions once, "×N", with fills_p* for the partition's name). Sets
# max_buffers and all_index (1 when every scan is an index scan).
max_buffers=0
all_index=1
empty="$(psqlq -c "SELECT coalesce(string_agg(relname, '|'), '-') FROM pg_class WHERE relpages = 0
  AND oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'fills'::regclass)")"
explain() {
	local i out buffers scans rows
	for i in "${!shapes[@]}"; do
		out="$(psqlq <<SQL
BEGIN;
$1
SET plan_cache_mode = force_custom_plan;
PREPARE q_order(bigint, text) AS $order_sql;
PREPARE q_fills(text, text, bigint, int) AS $fills_sql;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) ${execs[$i]};
ROLLBACK;
SQL
)"
		# the scans that ran (a partition skipped at run time shows "never executed")
		ran="$(grep -v 'never executed' <<<"$out")"
		buffers="$(sed -n '1,/Buffers:/s/.*Buffers: shared\(.*\)/\1/p' <<<"$out" | head -n 1 |
			grep -oE '[0-9]+' | paste -sd+ | bc)"
		rows="$(head -n 1 <<<"$out" | sed -E 's/.*actual rows=([0-9]+).*/\1/')"
		scans="$(grep -oE '(Seq Scan|Parallel Seq Scan|Index Only Scan( Backward)?|Index Scan( Backward)?|Bitmap Heap Scan|Bitmap Index Scan) (using [a-z0-9_]+ )?on [a-z0-9_]+' <<<"$ran" |
			sed -E 's/fills_p[0-9]{8}/fills_p*/g; s/ on (fills|orders)$//' | awk '
				{ if (!($0 in n)) order[++k] = $0; n[$0]++ }
				END { for (i = 1; i <= k; i++) printf "%s%s%s", (i > 1 ? ", " : ""), order[i], (n[order[i]] > 1 ? " \303\227" n[order[i]] : "") }')"
		# (a Seq Scan of an empty partition reads nothing: not counted)
		grep -E 'Seq Scan|Bitmap' <<<"$ran" | grep -qvE "Seq Scan on ($empty) " && all_index=0
		((buffers > max_buffers)) && max_buffers=$buffers
		printf '  %-18s %8s buffers %4s rows  %s\n' "${shapes[$i]}" "$buffers" "$rows" "$scans"
		[[ -n "${BENCH_INDEXES_VERBOSE:-}" ]] && printf '%s\n' "$out"
	done
	return 0
}

printf 'every index of schemas/:\n'
explain ""
best=$max_buffers
index_only=$all_index
for idx in $(psqlq -c "SELECT indexname FROM pg_indexes WHERE tablename = 'fills' AND indexname <> 'fills_pkey' ORDER BY indexname"); do
	printf 'without %s:\n' "$idx"
	explain "DROP INDEX $idx;"
done
pages="$(fills_pages)"
printf 'with every index: each read query only index scans: %s; at most %s buffers\n' \
	"$([[ $index_only == 1 ]] && echo yes || echo no)" "$best"
printf 'bench indexes: %s buffers (baseline %s buffers, ratio %.6f)\n' "$best" "$pages" \
	"$(echo "$best / $pages" | bc -l)"
