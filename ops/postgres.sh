#!/usr/bin/env bash
# Start, stop or inspect a private PostgreSQL 15 cluster for orderpipe.
#
#   ops/postgres.sh start|stop|status <dir> <port>
#
# start creates the cluster once (initdb into <dir>/data: UTF8, C locale,
# trust authentication, which is only safe because the server listens on
# 127.0.0.1 alone and is meant for development and tests), then starts it on
# 127.0.0.1:<port> with its unix socket in <dir>/run and its log in
# <dir>/postgres.log, and creates the role and database 'orderpipe'
# (idempotently). The result is reachable as
#   DATABASE_URL=postgresql://orderpipe@127.0.0.1:<port>/orderpipe
# which start prints on stdout as its last line.
#
# Durability matches the pipeline's contract: fsync and synchronous_commit stay
# on, so a committed COPY of the recorder is on disk before its XACK.
#
# As root, the server runs as the 'postgres' system user (PostgreSQL refuses to
# run as root): <dir> is chowned to it, and every directory above <dir> must be
# traversable by it (a 700 home directory is not: use a dir elsewhere).
#
# start on a running cluster says so and does nothing else; status exits 0 when
# running, 3 when not (the LSB convention).
#
# Environment: OP_PG_BINDIR (postgresql bin dir, default found by lib.sh),
# OP_PG_SHARED_BUFFERS (default 256MB), OP_PG_START_TIMEOUT (seconds, 60),
# OP_PG_STOP_TIMEOUT (seconds, 60), OP_PG_CONF (extra postgresql.conf lines).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

op_server_args postgresql "$@"

data="$dir/data"
sockdir="$dir/run"
logfile="$dir/postgres.log"
pguser="$(op_pg_user)"

# running: succeed if the cluster in <dir> has a live postmaster.
running() {
	[[ -f "$data/PG_VERSION" ]] || return 1
	op_as_pg_user "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# running_port: print the port the running postmaster listens on (line 4 of
# postmaster.pid).
running_port() {
	sed -n 4p "$data/postmaster.pid" 2>/dev/null
}

# running_pid: print the postmaster's pid (line 1 of postmaster.pid).
running_pid() {
	sed -n 1p "$data/postmaster.pid" 2>/dev/null
}

# psql_admin: psql, reading stdin, as the bootstrap superuser 'postgres' over TCP.
psql_admin() {
	"$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres
}

# ensure_role_db: create the role and the database 'orderpipe' unless they
# exist. The database is owned by the role, so migrations run as orderpipe can
# create tables in its public schema.
ensure_role_db() {
	psql_admin <<-'EOF' >/dev/null
		SELECT 'CREATE ROLE orderpipe LOGIN'
		 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orderpipe')
		\gexec
		SELECT 'CREATE DATABASE orderpipe OWNER orderpipe ENCODING ''UTF8'''
		 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'orderpipe')
		\gexec
	EOF
}

# initdb_once: create the cluster in <dir>/data unless it exists. initdb runs
# into data.init and is renamed on success, so a failed initdb never leaves a
# half-made cluster that later starts would trip on.
initdb_once() {
	local v
	if [[ -f "$data/PG_VERSION" ]]; then
		v="$(cat "$data/PG_VERSION")"
		[[ "$v" == "$pgversion" ]] ||
			op_die "the cluster in '$data' is postgresql $v but the server binaries in '$bindir' are $pgversion: remove '$dir' to start afresh, or set OP_PG_BINDIR to a postgresql $v bin dir"
		return 0
	fi
	if [[ -e "$data" ]] && [[ -n "$(ls -A "$data" 2>/dev/null)" ]]; then
		op_die "'$data' exists but holds no postgresql cluster (no PG_VERSION): remove it, or choose another dir"
	fi
	rm -rf "$data" "$data.init"
	op_log "creating a postgresql $pgversion cluster in $data"
	if ! op_as_pg_user "$bindir/initdb" -D "$data.init" -U postgres -E UTF8 --locale=C \
		--auth=trust >"$dir/initdb.log" 2>&1; then
		op_log_tail "$dir/initdb.log"
		rm -rf "$data.init"
		op_die "initdb failed for '$data': see $dir/initdb.log"
	fi
	# Our settings live in orderpipe.conf, rewritten at every start; this
	# include, last in postgresql.conf, makes them win.
	printf "\n# orderpipe's settings, written by ops/postgres.sh at each start.\ninclude 'orderpipe.conf'\n" \
		>>"$data.init/postgresql.conf"
	mv "$data.init" "$data"
}

# write_conf: (re)write <dir>/data/orderpipe.conf for <port>.
write_conf() {
	local sockets="$sockdir" shared="${OP_PG_SHARED_BUFFERS:-256MB}"
	# A unix socket path is limited to 107 bytes; a deep <dir> cannot hold
	# one, and nothing of ours needs it (every client uses TCP on 127.0.0.1).
	if ((${#sockdir} + 20 > 107)); then
		op_warn "'$sockdir' is too long for a unix socket path: postgresql listens on tcp only"
		sockets=""
	fi
	op_write_atomic "$data/orderpipe.conf" <<-EOF
		# Written by ops/postgres.sh at each start: edits are lost.
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$sockets'
		max_connections = 100
		shared_buffers = '$shared'
		# Durability is part of the contract: never turn these off.
		fsync = on
		synchronous_commit = on
		full_page_writes = on
		# WAL under a sustained write load (the recorder COPYs 100k+ rows/s).
		# A checkpoint is started every max_wal_size of WAL (default 1GB: every
		# 10-20 s under load) or checkpoint_timeout; after each, the first change
		# to every page writes the whole 8 kB page to WAL (full_page_writes), so
		# frequent checkpoints multiply the WAL written and fsynced. 4GB / 15 min
		# space them out; the cost is disk for WAL (up to ~max_wal_size) and a
		# longer crash recovery (replay of at most that much WAL).
		max_wal_size = '4GB'
		checkpoint_timeout = '15min'
		# Keep 1GB of WAL segments for reuse rather than creating (and zeroing)
		# new 16 MB files during a burst.
		min_wal_size = '1GB'
		# A batch's transaction writes megabytes of WAL before its commit; 64MB of
		# WAL buffers (default: 1/32 of shared_buffers, 8MB) lets the WAL writer
		# write them in the background instead of the backend stalling on full
		# buffers.
		wal_buffers = '64MB'
		# The log goes to the file pg_ctl -l names.
		logging_collector = off
		log_line_prefix = '%m [%p] %q%u@%d '
		log_timezone = 'UTC'
		timezone = 'UTC'
	EOF
	# OP_PG_CONF: extra settings, one 'name = value' per line, last so they
	# win (measuring a setting: bench/recorder.sh, bench/e2e.sh).
	if [[ -n "${OP_PG_CONF:-}" ]]; then
		printf '# OP_PG_CONF\n%s\n' "$OP_PG_CONF" >>"$data/orderpipe.conf"
	fi
	((EUID != 0)) || chown postgres: "$data/orderpipe.conf"
}

do_start() {
	local blocker timeout="${OP_PG_START_TIMEOUT:-60}"
	if running; then
		if [[ "$(running_port)" != "$port" ]]; then
			op_die "postgresql from '$dir' is already running on port $(running_port), not $port: stop it first with: ops/postgres.sh stop '$dir' $(running_port)"
		fi
		op_log "postgresql already running on 127.0.0.1:$port (pid $(running_pid), dir $dir): nothing to do"
		ensure_role_db || op_die "cannot create the role or database 'orderpipe' on 127.0.0.1:$port: see $logfile"
		printf 'DATABASE_URL=postgresql://orderpipe@127.0.0.1:%s/orderpipe\n' "$port"
		return 0
	fi
	if op_port_listening "$port"; then
		op_die "tcp port $port is already in use by another process: pick another port (or stop that process; 'ss -ltnp sport = :$port' shows which)"
	fi
	[[ "$dir" != *"'"* ]] || op_die "postgresql dir '$dir' contains a single quote, which postgresql.conf cannot hold: choose another dir"

	mkdir -p "$dir"
	if ((EUID == 0)); then
		if ! blocker="$(op_pg_can_reach "$dir")"; then
			op_die "the 'postgres' user cannot reach '$dir': '$blocker' is not traversable by it (mode $(stat -c %a "$blocker")); as root, postgresql runs as 'postgres', so put the cluster under a directory it can traverse (e.g. /var/tmp or /srv), or run 'chmod o+x $blocker' if that is acceptable"
		fi
		chown postgres: "$dir"
		chmod 700 "$dir"
	fi
	op_as_pg_user test -w "$dir" ||
		op_die "user '$pguser' cannot write to postgresql dir '$dir': fix its owner or permissions"
	op_as_pg_user mkdir -p "$sockdir"

	initdb_once
	write_conf

	op_log "starting postgresql $pgversion on 127.0.0.1:$port (dir $dir, log $logfile)"
	if ! op_as_pg_user "$bindir/pg_ctl" start -D "$data" -l "$logfile" -w -t "$timeout" \
		>/dev/null 2>"$dir/pg_ctl.err"; then
		cat "$dir/pg_ctl.err" >&2 || true
		op_log_tail "$logfile"
		op_die "postgresql failed to start on 127.0.0.1:$port: see $logfile"
	fi
	rm -f "$dir/pg_ctl.err"
	if ! op_wait_until "$timeout" "postgresql to accept connections on 127.0.0.1:$port" \
		"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
		op_log_tail "$logfile"
		op_die "postgresql started but does not accept connections on 127.0.0.1:$port: see $logfile"
	fi
	ensure_role_db || op_die "cannot create the role or database 'orderpipe' on 127.0.0.1:$port: see $logfile"
	op_log "postgresql ready on 127.0.0.1:$port (pid $(running_pid))"
	printf 'DATABASE_URL=postgresql://orderpipe@127.0.0.1:%s/orderpipe\n' "$port"
}

do_stop() {
	local timeout="${OP_PG_STOP_TIMEOUT:-60}"
	if ! running; then
		op_log "postgresql from '$dir' is not running: nothing to stop"
		return 0
	fi
	op_log "stopping postgresql on 127.0.0.1:$(running_port) (pid $(running_pid))"
	# -m fast: roll back open transactions and stop now; a checkpoint still
	# flushes everything committed, so nothing acknowledged is lost.
	if ! op_as_pg_user "$bindir/pg_ctl" stop -D "$data" -m fast -w -t "$timeout" >/dev/null; then
		op_warn "postgresql did not stop within ${timeout}s: sending an immediate shutdown"
		op_as_pg_user "$bindir/pg_ctl" stop -D "$data" -m immediate -w -t 30 >/dev/null ||
			op_die "cannot stop postgresql in '$data': see $logfile"
	fi
	op_log "postgresql stopped"
}

do_status() {
	if running; then
		printf 'postgresql: running on 127.0.0.1:%s (pid %s, dir %s)\n' "$(running_port)" "$(running_pid)" "$dir"
		[[ "$(running_port)" == "$port" ]] || return 1
		return 0
	fi
	printf 'postgresql: not running (dir %s, port %s)\n' "$dir" "$port"
	return 3
}

bindir="$(op_pg_bindir)"
pgversion="$("$bindir/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) op_server_usage ;;
esac
