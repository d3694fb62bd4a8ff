#!/usr/bin/env bash
# The local data stack of orderpipe: Redis and PostgreSQL, migrated and ready.
#
#   ops/stack.sh start|stop|status|env [--dir DIR] [--redis-port P] [--pg-port P]
#
# start  starts Redis (ops/redis.sh, in DIR/redis) and PostgreSQL
#        (ops/postgres.sh, in DIR/postgres) on 127.0.0.1, on ports 6390 and
#        5440 unless given, then runs the setup tool, which applies the SQL
#        migrations of schemas/ and creates the Redis streams and consumer
#        groups. If REDIS_URL or DATABASE_URL is already set in the
#        environment, that server is used as it is: nothing is started for it,
#        its reachability is only checked. With OP_REDIS_CLUSTER=1 a local
#        six-node Redis Cluster is started instead of the single Redis
#        (ops/redis-cluster.sh, in DIR/redis-cluster, on the redis port and
#        the five after it), and REDIS_URL names its first node: the
#        services discover the others. Finally it writes DIR/stack.env
#        (REDIS_URL, DATABASE_URL, INGEST_URL; `set -a; . DIR/stack.env; set +a`
#        loads it into a shell). Starting a running stack is a no-op apart from
#        re-running the (idempotent) setup.
# stop   stops what start started in DIR (listed in DIR/started), nothing else.
# status prints the state of each server and the env file; exits 0 when every
#        server answers, 3 when the stack is not started, 1 otherwise.
# env    prints DIR/stack.env.
#
# The setup tool is ${OP_BUILD:-build/rel}/bin/orderpipe-setup (built by make;
# it reads REDIS_URL, DATABASE_URL and ORDER_SHARDS). Until it exists, the SQL
# files of schemas/ are applied with psql in lexical order instead, each once
# (recorded in schema_migrations like the tool does), and the Redis streams
# are left to the services.
#
# As root, PostgreSQL runs as the 'postgres' user, which must be able to reach
# DIR/postgres. When it cannot (a checkout in a 700 home directory), the cluster
# goes to /var/tmp/orderpipe-<hash of DIR>/postgres instead, or to $OP_PG_DIR
# when set, and start says so.
#
# Environment: REDIS_URL, DATABASE_URL (reuse those servers), INGEST_PORT (for
# INGEST_URL, default 8080), OP_BUILD, ORDER_SHARDS (passed to the setup
# tool), OP_PG_DIR, OP_REDIS_CLUSTER (0 or 1, default 0), and the variables
# of ops/redis.sh, ops/redis-cluster.sh and ops/postgres.sh.
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	printf 'usage: %s start|stop|status|env [--dir DIR] [--redis-port PORT] [--pg-port PORT]\n' "$0" >&2
	exit 2
}

(($# >= 1)) || usage
cmd="$1"
shift
dir="$OP_ROOT/var"
redis_port=6390
pg_port=5440
while (($#)); do
	case "$1" in
	--dir) (($# >= 2)) || usage; dir="$2"; shift 2 ;;
	--dir=*) dir="${1#*=}"; shift ;;
	--redis-port) (($# >= 2)) || usage; redis_port="$2"; shift 2 ;;
	--redis-port=*) redis_port="${1#*=}"; shift ;;
	--pg-port) (($# >= 2)) || usage; pg_port="$2"; shift 2 ;;
	--pg-port=*) pg_port="${1#*=}"; shift ;;
	*) op_log "unknown argument '$1'"; usage ;;
	esac
done
[[ -n "$dir" ]] || op_die "--dir needs a directory"
dir="$(op_abspath "$dir")"
op_check_port "$redis_port" || op_die "invalid --redis-port '$redis_port': expected a number in 1-65535"
op_check_port "$pg_port" || op_die "invalid --pg-port '$pg_port': expected a number in 1-65535"
redis_port=$((10#$redis_port))
pg_port=$((10#$pg_port))
redis_cluster="${OP_REDIS_CLUSTER:-0}"
case "$redis_cluster" in
0 | 1) ;;
*) op_die "invalid OP_REDIS_CLUSTER='$redis_cluster': expected 0 (one redis-server, the default) or 1 (a local six-node redis cluster)" ;;
esac

started="$dir/started"   # one line per server we started: kind<TAB>dir<TAB>port
envfile="$dir/stack.env" # what clients source
ops="$OP_ROOT/ops"

build="${OP_BUILD:-build/rel}"
[[ "$build" == /* ]] || build="$OP_ROOT/$build"
setup="$build/bin/orderpipe-setup"

# lock: serialise start/stop on DIR (fd 8 holds the lock until we exit).
# Every child started below gets 8>&- so that no daemon inherits the lock.
lock() {
	mkdir -p "$dir"
	exec 8>"$dir/stack.lock"
	if ! flock -w 120 8; then
		op_die "another ops/stack.sh is busy with '$dir' (lock $dir/stack.lock held for 120s): wait for it or stop it"
	fi
}

# record KIND DIR PORT: remember in DIR/started that we manage this server.
record() {
	local kind="$1" d="$2" p="$3" line
	line="$(printf '%s\t%s\t%s' "$kind" "$d" "$p")"
	if [[ -f "$started" ]] && grep -qxF "$line" "$started"; then
		return 0
	fi
	{
		[[ -f "$started" ]] && grep -v "^$kind	" "$started"
		printf '%s\n' "$line"
	} | op_write_atomic "$started"
}

# pg_dir_for_stack: print where the PostgreSQL cluster of this stack lives.
pg_dir_for_stack() {
	local d="$dir/postgres" blocker hash
	if [[ -n "${OP_PG_DIR:-}" ]]; then
		op_abspath "$OP_PG_DIR"
		return 0
	fi
	if ! blocker="$(op_pg_can_reach "$dir")"; then
		hash="$(printf '%s' "$dir" | md5sum | cut -c1-12)"
		d="/var/tmp/orderpipe-$hash/postgres"
		op_log "note: the 'postgres' user cannot traverse '$blocker', so the cluster goes to '$d' instead of '$dir/postgres' (set OP_PG_DIR to choose)"
		mkdir -p "$(dirname "$d")"
		chmod 755 "$(dirname "$d")"
	fi
	printf '%s\n' "$d"
}

# check_redis_url: die unless the server at $REDIS_URL answers PING.
check_redis_url() {
	local out
	op_need_cmd redis-cli redis-tools
	out="$(redis-cli -u "$REDIS_URL" ping 2>&1 8>&-)" || true
	[[ "$out" == *PONG* ]] ||
		op_die "REDIS_URL='$REDIS_URL' is set but redis does not answer PING there ($out): start that server, or unset REDIS_URL to let ops/stack.sh start a local one"
}

# check_database_url: die unless 'select 1' works at $DATABASE_URL.
check_database_url() {
	local out
	op_need_cmd psql postgresql-client-15
	if ! out="$(psql -X -q -At "$DATABASE_URL" -c 'select 1' 2>&1 8>&-)"; then
		out="${out//$'\n'/ }"
		op_die "DATABASE_URL='$DATABASE_URL' is set but postgresql does not answer there (${out//$'\t'/}): start that server, or unset DATABASE_URL to let ops/stack.sh start a local one"
	fi
}

# fnv1a32_file FILE: print the FNV-1a 32-bit hash of FILE's bytes as 8 hex
# digits: the checksum the setup tool records in schema_migrations.
fnv1a32_file() {
	local h=2166136261 b
	for b in $(od -An -v -tu1 "$1"); do
		h=$(((h ^ b) * 16777619 & 0xffffffff))
	done
	printf '%08x\n' "$h"
}

# apply_sql_fallback: apply schemas/*.sql with psql, in lexical order, each in
# one transaction with its row in schema_migrations (version = file name,
# checksum = FNV-1a 32 of the file): the same bookkeeping as the setup tool, so
# a database migrated here is carried on by the tool once it is built.
apply_sql_fallback() {
	local f name sum have n=0
	local -a files=() psql_cmd=(psql -X -q -At -v ON_ERROR_STOP=1 "$DATABASE_URL")
	op_need_cmd psql postgresql-client-15
	op_need_cmd od coreutils
	while IFS= read -r f; do files+=("$f"); done < <(find "$OP_ROOT/schemas" -maxdepth 1 -name '*.sql' -type f 2>/dev/null | LC_ALL=C sort)
	op_log "note: no setup tool at '$setup' yet: applying schemas/*.sql with psql instead (${#files[@]} file(s)); the redis streams and groups are not created"
	"${psql_cmd[@]}" -c 'CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, checksum text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())' >/dev/null 8>&- ||
		op_die "cannot create the table schema_migrations on $DATABASE_URL: see psql's message above"
	for f in "${files[@]}"; do
		name="$(basename "$f")"
		[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || op_die "migration file name '$name' has characters other than [A-Za-z0-9._-]: rename it"
		sum="$(fnv1a32_file "$f")"
		have="$("${psql_cmd[@]}" -c "SELECT checksum FROM schema_migrations WHERE version = '$name'" 8>&-)" ||
			op_die "cannot read schema_migrations on $DATABASE_URL: see psql's message above"
		if [[ -n "$have" ]]; then
			[[ "$have" == "$sum" ]] ||
				op_die "migration '$name' changed after it was applied (checksum $have, now $sum): add a new migration instead"
			continue
		fi
		op_log "applying $name"
		"${psql_cmd[@]}" -1 -f "$f" \
			-c "INSERT INTO schema_migrations (version, checksum) VALUES ('$name', '$sum')" >/dev/null 8>&- ||
			op_die "migration '$f' failed on $DATABASE_URL: fix it and run 'ops/stack.sh start' again"
		n=$((n + 1))
	done
	op_log "applied $n new migration(s)"
}

do_start() {
	local pg_dir
	lock
	if [[ -n "${REDIS_URL:-}" ]]; then
		check_redis_url
		op_log "using the redis at REDIS_URL=$REDIS_URL (not starting one)"
	elif ((redis_cluster)); then
		((redis_port + 5 + 10000 <= 65535)) || op_die "--redis-port '$redis_port' is too high for a cluster: it uses that port and the next five, and their bus ports 10000 above"
		((pg_port < redis_port || pg_port > redis_port + 5)) ||
			op_die "--pg-port $pg_port is one of the cluster's ports ($redis_port-$((redis_port + 5))): choose another"
		"$ops/redis-cluster.sh" start "$dir/redis-cluster" "$redis_port" 8>&-
		record redis-cluster "$dir/redis-cluster" "$redis_port"
		REDIS_URL="redis://127.0.0.1:$redis_port"
	else
		"$ops/redis.sh" start "$dir/redis" "$redis_port" 8>&-
		record redis "$dir/redis" "$redis_port"
		REDIS_URL="redis://127.0.0.1:$redis_port"
	fi
	if [[ -n "${DATABASE_URL:-}" ]]; then
		check_database_url
		op_log "using the postgresql at DATABASE_URL=$DATABASE_URL (not starting one)"
	else
		pg_dir="$(pg_dir_for_stack)"
		"$ops/postgres.sh" start "$pg_dir" "$pg_port" >/dev/null 8>&-
		record postgres "$pg_dir" "$pg_port"
		DATABASE_URL="postgresql://orderpipe@127.0.0.1:$pg_port/orderpipe"
	fi

	if [[ -x "$setup" ]]; then
		op_log "running $setup"
		REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" "$setup" 8>&- ||
			op_die "the setup tool '$setup' failed (status $?): see its messages above; the servers are left running (ops/stack.sh stop stops them)"
	else
		apply_sql_fallback
	fi

	{
		printf '# Written by ops/stack.sh start; load with: set -a; . %s; set +a\n' "$envfile"
		op_env_line REDIS_URL "$REDIS_URL"
		op_env_line DATABASE_URL "$DATABASE_URL"
		op_env_line INGEST_URL "http://127.0.0.1:${INGEST_PORT:-8080}"
	} | op_write_atomic "$envfile"
	op_log "stack ready: REDIS_URL=$REDIS_URL DATABASE_URL=$DATABASE_URL (env file $envfile)"
}

do_stop() {
	local kind d p i rc=0
	local -a lines=()
	lock
	if [[ ! -f "$started" ]]; then
		rm -f "$envfile"
		op_log "nothing to stop in '$dir' (no $started: the stack was not started here, or already stopped)"
		return 0
	fi
	while IFS= read -r d; do lines+=("$d"); done <"$started"
	# Stop in the reverse order of start.
	for ((i = ${#lines[@]} - 1; i >= 0; i--)); do
		IFS=$'\t' read -r kind d p <<<"${lines[i]}"
		case "$kind" in
		redis) "$ops/redis.sh" stop "$d" "$p" 8>&- || rc=1 ;;
		redis-cluster) "$ops/redis-cluster.sh" stop "$d" "$p" 8>&- || rc=1 ;;
		postgres) "$ops/postgres.sh" stop "$d" "$p" 8>&- || rc=1 ;;
		*) op_warn "ignoring unknown line in $started: ${lines[i]}" ;;
		esac
	done
	if ((rc == 0)); then
		rm -f "$started" "$envfile"
		op_log "stack in '$dir' stopped"
	else
		op_die "some servers of the stack in '$dir' did not stop: see above; run 'ops/stack.sh stop' again"
	fi
}

do_status() {
	local kind d p rc=0 any=0
	if [[ -f "$started" ]]; then
		while IFS=$'\t' read -r kind d p; do
			any=1
			case "$kind" in
			redis) "$ops/redis.sh" status "$d" "$p" || rc=1 ;;
			redis-cluster) "$ops/redis-cluster.sh" status "$d" "$p" || rc=1 ;;
			postgres) "$ops/postgres.sh" status "$d" "$p" || rc=1 ;;
			esac
		done <"$started"
	fi
	if [[ -f "$envfile" ]]; then
		any=1
		printf -- '--- %s\n' "$envfile"
		cat "$envfile"
	fi
	if ((!any)); then
		printf 'stack in %s: not started\n' "$dir"
		return 3
	fi
	return "$rc"
}

do_env() {
	[[ -f "$envfile" ]] || op_die "no '$envfile': start the stack first with 'ops/stack.sh start' (or 'make run')"
	cat "$envfile"
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
env) do_env ;;
*) usage ;;
esac
