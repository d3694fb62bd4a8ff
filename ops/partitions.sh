#!/usr/bin/env bash
# The daily partitions of fills (migration 007): list them, archive or drop
# old days, restore an archived day. For the operator; docs/recorder.md
# ("Partitions and retention") says what each step locks and for how long,
# docs/operations.md has the runbook.
#
#   ops/partitions.sh list
#   ops/partitions.sh ensure [--days N]
#   ops/partitions.sh archive --before YYYY-MM-DD --dir DIR
#   ops/partitions.sh drop --before YYYY-MM-DD --yes
#   ops/partitions.sh restore --file DIR/fills_pYYYYMMDD.copy
#
# list     every partition: its range (UTC; lo empty = MINVALUE), rows
#          (estimate; exact for the default partition), size on disk.
# ensure   orderpipe_fills_ensure_partitions(N) (default: the function's, 7
#          days ahead): what the recorder does every hour.
# archive  for every partition entirely before the date (its upper bound at
#          or below YYYY-MM-DD 00:00 UTC; fills_legacy too, once all its
#          range is), one at a time: DETACH it, dump its rows with COPY into
#          DIR/<name>.copy (COPY text format, ordered by fill_id) and write
#          DIR/<name>.manifest (range, row count, sha256, columns), check that
#          the file holds as many rows as the table, then DROP it. A dump that
#          fails or does not match re-attaches the partition (nothing is
#          lost, the reads answer as before) and the command fails; a
#          partition is never dropped without a verified dump.
# drop     the same without a dump (the rows are gone): needs --yes.
# restore  the day back from its dump: the file is checked against its
#          manifest, loaded into a new table of that name, indexed, and
#          attached with its range; rows of that range that arrived since
#          (in the default partition) are moved in. When a partition now
#          covers part of the range, the rows are inserted through fills
#          instead (ON CONFLICT DO NOTHING: nothing twice).
#
# Environment: DATABASE_URL (else var/stack.env of `make run`, else the
# project's default), OP_PART_LOCK_TIMEOUT (default 2s: how long DETACH and
# ATTACH may wait for their locks, during which queries on fills queue
# behind them; a timeout is retried OP_PART_ATTEMPTS times, default 5, a
# second apart).
# Exit status: 0 done, 1 failed (the message says what is left where), 2 usage.
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	sed -n '7,11p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
	exit 2
}

if [[ -z "${DATABASE_URL:-}" && -f "$OP_ROOT/var/stack.env" ]]; then
	# shellcheck disable=SC1091
	DATABASE_URL="$(set -a && . "$OP_ROOT/var/stack.env" && printf '%s' "${DATABASE_URL:-}")"
fi
DATABASE_URL="${DATABASE_URL:-postgresql://orderpipe@127.0.0.1:5440/orderpipe}"
lock_timeout="${OP_PART_LOCK_TIMEOUT:-2s}"
attempts="${OP_PART_ATTEMPTS:-5}"
op_need_cmd psql postgresql-client
op_need_cmd sha256sum coreutils

# q SQL...: runs statements, prints unaligned tuples (fields split by tabs).
q() {
	psql "$DATABASE_URL" -X -A -t -q -F $'\t' -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" "${@/#/-c}"
}

# locked SQL...: the statements in one transaction under lock_timeout, retried
# while a lock is not granted in time (SQLSTATE 55P03); returns psql's status.
locked() {
	local i err
	for ((i = 1; i <= attempts; i++)); do
		if err="$(psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -1 -c "SET LOCAL lock_timeout = '$lock_timeout'" "${@/#/-c}" 2>&1 >/dev/null)"; then
			return 0
		fi
		[[ "$err" == *"lock timeout"* ]] || { printf '%s\n' "$err" >&2; return 1; }
		op_log "lock not granted within $lock_timeout (attempt $i of $attempts)"
		sleep 1
	done
	printf '%s\n' "$err" >&2
	return 1
}

# day_ts YYYY-MM-DD: the start of that day, UTC, as a timestamptz literal.
day_ts() {
	[[ "$1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || op_die "bad date '$1': want YYYY-MM-DD"
	printf "%s 00:00:00+00" "$1"
}

# The partitions of fills: name, lo ('-': MINVALUE), hi ('-' for the
# default), is_default (t/f), rows (estimate, -1 if never analysed), total
# size in bytes — lo and hi as ISO timestamps in UTC. ('-', not an empty
# field: read splits on runs of tabs.)
partitions() {
	q "SET TimeZone = 'UTC'" "SELECT p.part, coalesce(p.lo::text, '-'), coalesce(p.hi::text, '-'), p.is_default,
	    c.reltuples::bigint, pg_total_relation_size(p.part)
	  FROM orderpipe_fills_partitions() p JOIN pg_class c ON c.oid = p.part
	  ORDER BY p.is_default, p.lo NULLS FIRST"
}

cmd_list() {
	local name lo hi def rows bytes extra
	printf '%-18s %-24s %-24s %12s %10s\n' partition from to rows size
	while IFS=$'\t' read -r name lo hi def rows bytes; do
		extra=""
		[[ "$lo" == - ]] && lo=MINVALUE
		if [[ "$def" == t ]]; then
			rows="$(q "SELECT count(*) FROM $name")"
			extra="$(q "SET TimeZone = 'UTC'" "SELECT coalesce(' days ' || min(matched_at)::date || ' .. ' || max(matched_at)::date, '') FROM $name")"
			lo="(default)" hi=""
		fi
		((rows < 0)) && rows="?"
		printf '%-18s %-24s %-24s %12s %10s%s\n' "$name" "$lo" "$hi" "$rows" \
			"$(numfmt --to=iec "$bytes" 2>/dev/null || printf '%s' "$bytes")" "$extra"
	done < <(partitions)
}

# old_partitions DATE: name, lo ('-': MINVALUE), hi of every non-default
# partition whose upper bound is at or below DATE 00:00 UTC, oldest first.
old_partitions() {
	local cut
	cut="$(day_ts "$1")"
	partitions | awk -F'\t' -v cut="$cut" '$4 == "f" && $3 != "-" && $3 <= cut { print $1 "\t" $2 "\t" $3 }'
}

# bound LO HI: the FOR VALUES clause of a range (LO empty or '-': MINVALUE).
bound() {
	printf "FOR VALUES FROM (%s) TO ('%s')" "$([[ -n "$1" && "$1" != - ]] && printf "'%s'" "$1" || printf MINVALUE)" "$2"
}

detach() {
	op_log "detaching $1 (ACCESS EXCLUSIVE on fills and fills_default for the catalog change)"
	locked "ALTER TABLE fills DETACH PARTITION $1"
}

# reattach NAME LO HI: after a failed dump: back where it was.
reattach() {
	if locked "ALTER TABLE fills ATTACH PARTITION $1 $(bound "$2" "$3")"; then
		op_log "$1 re-attached: nothing changed"
	else
		op_warn "$1 could not be re-attached: it is a plain table now, with all its rows; attach it with: ALTER TABLE fills ATTACH PARTITION $1 $(bound "$2" "$3")"
	fi
}

cmd_archive() {
	local before="" dir="" name lo hi rows lines sum cols n=0
	while (($#)); do
		case "$1" in
		--before) before="${2:-}"; shift 2 ;;
		--dir) dir="${2:-}"; shift 2 ;;
		*) usage ;;
		esac
	done
	[[ -n "$before" && -n "$dir" ]] || usage
	mkdir -p "$dir" || op_die "cannot create '$dir'"
	cols="$(q "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'fills'::regclass AND attnum > 0 AND NOT attisdropped")"
	while IFS=$'\t' read -r name lo hi; do
		[[ "$lo" == - ]] && lo=""
		[[ -e "$dir/$name.copy" ]] && op_die "'$dir/$name.copy' exists already: move it away first (nothing detached)"
		detach "$name" || op_die "cannot detach $name: nothing changed"
		rows="$(q "SELECT count(*) FROM $name")" || { reattach "$name" "$lo" "$hi"; op_die "cannot count $name"; }
		# The dump, written aside and renamed once complete and on disk.
		if ! q "COPY (SELECT $cols FROM $name ORDER BY fill_id, matched_at) TO STDOUT" >"$dir/$name.copy.tmp" ||
			! sync "$dir/$name.copy.tmp"; then
			rm -f "$dir/$name.copy.tmp" || true
			reattach "$name" "$lo" "$hi"
			op_die "cannot dump $name into '$dir': it was not dropped"
		fi
		lines="$(wc -l <"$dir/$name.copy.tmp")"
		if [[ "$lines" != "$rows" ]]; then
			rm -f "$dir/$name.copy.tmp" || true
			reattach "$name" "$lo" "$hi"
			op_die "the dump of $name holds $lines rows, the table $rows: it was not dropped"
		fi
		sum="$(sha256sum "$dir/$name.copy.tmp" | cut -d' ' -f1)"
		{
			printf 'table=%s\nlo=%s\nhi=%s\nrows=%s\nsha256=%s\ncolumns=%s\narchived_at=%s\n' \
				"$name" "$lo" "$hi" "$rows" "$sum" "$cols" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		} >"$dir/$name.manifest.tmp"
		sync "$dir/$name.manifest.tmp"
		mv "$dir/$name.copy.tmp" "$dir/$name.copy"
		mv "$dir/$name.manifest.tmp" "$dir/$name.manifest"
		sync "$dir"
		q "DROP TABLE $name" || op_die "$name is dumped and detached but not dropped: drop it with DROP TABLE $name"
		printf 'archived %s (%s .. %s): %s rows into %s/%s.copy, sha256 %s\n' "$name" "${lo:-MINVALUE}" "$hi" "$rows" "$dir" "$name" "$sum"
		n=$((n + 1))
	done < <(old_partitions "$before")
	printf 'archive: %d partitions before %s\n' "$n" "$before"
}

cmd_drop() {
	local before="" yes=0 name lo hi n=0
	while (($#)); do
		case "$1" in
		--before) before="${2:-}"; shift 2 ;;
		--yes) yes=1; shift ;;
		*) usage ;;
		esac
	done
	[[ -n "$before" ]] || usage
	((yes)) || op_die "drop deletes the fills before $before for good: add --yes (or archive them first)"
	while IFS=$'\t' read -r name lo hi; do
		[[ "$lo" == - ]] && lo=""
		detach "$name" || op_die "cannot detach $name: nothing changed"
		q "DROP TABLE $name" || op_die "$name is detached but not dropped: drop it with DROP TABLE $name"
		printf 'dropped %s (%s .. %s)\n' "$name" "${lo:-MINVALUE}" "$hi"
		n=$((n + 1))
	done < <(old_partitions "$before")
	printf 'drop: %d partitions before %s\n' "$n" "$before"
}

cmd_restore() {
	local file="" man name lo hi rows sum cols got overlap
	while (($#)); do
		case "$1" in
		--file) file="${2:-}"; shift 2 ;;
		*) usage ;;
		esac
	done
	[[ -n "$file" ]] || usage
	man="${file%.copy}.manifest"
	[[ -f "$file" && -f "$man" ]] || op_die "want '$file' and its manifest '$man'"
	field() { sed -n "s/^$1=//p" "$man"; }
	name="$(field table)" lo="$(field lo)" hi="$(field hi)" rows="$(field rows)" sum="$(field sha256)" cols="$(field columns)"
	[[ "$name" =~ ^[a-z0-9_]+$ && -n "$hi" && -n "$rows" ]] || op_die "'$man' is not a manifest of ops/partitions.sh"
	[[ "$(sha256sum "$file" | cut -d' ' -f1)" == "$sum" ]] || op_die "'$file' does not match the sha256 of its manifest"
	[[ -z "$(q "SELECT to_regclass('$name')")" ]] || op_die "a table $name exists already"

	# 1. Loaded and indexed as a plain table, with a CHECK of its range: no
	#    lock on fills yet. The indexes are those of fills (so the attach
	#    adopts them instead of building them under its locks); the CHECK
	#    spares the attach its scan.
	q "CREATE TABLE $name (LIKE fills INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)" ||
		op_die "cannot create $name"
	got="$(psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "COPY $name ($cols) FROM STDIN" -c "SELECT count(*) FROM $name" -A -t <"$file")" || {
		q "DROP TABLE IF EXISTS $name" || true
		op_die "cannot load '$file' into $name"
	}
	if [[ "$got" != "$rows" ]]; then
		q "DROP TABLE $name"
		op_die "'$file' loaded $got rows, its manifest says $rows: nothing restored"
	fi
	local above=true
	[[ -n "$lo" ]] && above="p.hi IS NULL OR p.hi > '$lo'"
	overlap="$(q "SELECT count(*) FROM orderpipe_fills_partitions() p WHERE NOT p.is_default
	  AND (p.lo IS NULL OR p.lo < '$hi') AND ($above)")"
	if ((overlap > 0)); then
		# 2a. Some of the range has a partition again (late rows, then
		#     orderpipe_fills_ensure_partitions): through fills, row by row.
		op_log "part of $name's range has a partition now: inserting its rows through fills"
		q "INSERT INTO fills ($cols) SELECT $cols FROM $name ON CONFLICT DO NOTHING" "DROP TABLE $name" ||
			op_die "cannot insert $name's rows into fills (the table $name holds them)"
		printf 'restored %s: %s rows inserted into fills\n' "$name" "$rows"
		return 0
	fi
	q "ALTER TABLE $name ADD PRIMARY KEY (fill_id, matched_at)" \
		"DO \$\$ DECLARE d text; BEGIN
		   FOR d IN SELECT regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', '')
		            FROM pg_index i WHERE i.indrelid = 'fills'::regclass AND NOT i.indisprimary LOOP
		     EXECUTE 'CREATE INDEX ON $name USING ' || d;
		   END LOOP; END \$\$" \
		"ALTER TABLE $name ADD CONSTRAINT ${name}_range CHECK (matched_at IS NOT NULL${lo:+ AND matched_at >= '$lo'} AND matched_at < '$hi')" ||
		{ q "DROP TABLE $name" || true; op_die "cannot index $name"; }
	# 2b. The attach, with the rows of the range that reached the default
	#     partition since the archive moved in first (the ones the dump
	#     already holds skipped).
	op_log "attaching $name (ACCESS EXCLUSIVE on fills_default while rows move, SHARE UPDATE EXCLUSIVE on fills)"
	locked "LOCK TABLE fills_default IN ACCESS EXCLUSIVE MODE" \
		"WITH moved AS (DELETE FROM fills_default WHERE matched_at < '$hi'${lo:+ AND matched_at >= '$lo'} RETURNING *)
		 INSERT INTO $name SELECT * FROM moved ON CONFLICT DO NOTHING" \
		"ALTER TABLE fills ATTACH PARTITION $name $(bound "$lo" "$hi")" \
		"ALTER TABLE $name DROP CONSTRAINT ${name}_range" ||
		op_die "cannot attach $name (it holds the restored rows): attach it with ALTER TABLE fills ATTACH PARTITION $name $(bound "$lo" "$hi")"
	printf 'restored %s (%s .. %s): %s rows\n' "$name" "${lo:-MINVALUE}" "$hi" "$rows"
}

cmd_ensure() {
	local days=""
	while (($#)); do
		case "$1" in
		--days) days="${2:-}"; shift 2 ;;
		*) usage ;;
		esac
	done
	[[ -z "$days" || "$days" =~ ^[0-9]+$ ]] || usage
	printf 'created %s partitions\n' "$(q "SELECT orderpipe_fills_ensure_partitions(${days})")"
}

(($# >= 1)) || usage
cmd="$1"
shift
case "$cmd" in
list) cmd_list "$@" ;;
ensure) cmd_ensure "$@" ;;
archive) cmd_archive "$@" ;;
drop) cmd_drop "$@" ;;
restore) cmd_restore "$@" ;;
*) usage ;;
esac
