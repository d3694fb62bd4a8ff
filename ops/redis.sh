#!/usr/bin/env bash
# Start, stop or inspect a private redis-server for orderpipe.
#
#   ops/redis.sh start|stop|status <dir> <port>
#
# The server listens on 127.0.0.1:<port> only and keeps everything in <dir>:
# redis.conf (rewritten at each start), the append-only files, redis.pid and
# redis.log. Durability is the pipeline's contract: ingest answers 202 QUEUED
# once Redis acknowledged the XADD, so the AOF is fsynced on every write
# (appendfsync always) unless OP_REDIS_FSYNC=everysec trades up to one second
# of acknowledged orders on a machine crash for about twice the throughput.
# RDB snapshots are off: the AOF is the only persistence.
#
# start on a running instance says so and does nothing; status exits 0 when the
# server answers PING, 3 when it is not running (the LSB convention).
#
# Environment: OP_REDIS_FSYNC (always|everysec|no, default always),
# OP_REDIS_START_TIMEOUT (seconds, default 30), OP_REDIS_STOP_TIMEOUT (60),
# OP_REDIS_EXTRA_CONF (more redis.conf lines, written last so they win;
# ops/redis-cluster.sh passes its cluster-* settings through it).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

op_server_args redis "$@"

pidfile="$dir/redis.pid"
logfile="$dir/redis.log"
conf="$dir/redis.conf"

# ping: succeed if our server answers PONG on the port.
ping() {
	[[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]
}

# running_pid: print the pid of the server recorded in <dir> if it is alive.
running_pid() {
	op_read_pidfile "$pidfile"
}

do_start() {
	local fsync="${OP_REDIS_FSYNC:-always}" pid timeout="${OP_REDIS_START_TIMEOUT:-30}"
	case "$fsync" in
	always | everysec | no) ;;
	*) op_die "invalid OP_REDIS_FSYNC='$fsync': expected always (the default: a 202 means on disk), everysec or no" ;;
	esac
	op_need_cmd redis-server redis-server
	op_need_cmd redis-cli redis-tools

	if pid="$(running_pid)"; then
		if ping; then
			op_log "redis already running on 127.0.0.1:$port (pid $pid, dir $dir): nothing to do"
			return 0
		fi
		op_die "redis from '$dir' is running (pid $pid) but does not answer on port $port: it was probably started with another port; stop it first with: ops/redis.sh stop '$dir' <its port>"
	fi
	if op_port_listening "$port"; then
		op_die "tcp port $port is already in use by another process: pick another port (or stop that process; 'ss -ltnp sport = :$port' shows which)"
	fi

	[[ "$dir" != *[\"\\]* ]] || op_die "redis dir '$dir' contains a quote or backslash, which redis.conf cannot hold: choose another dir"
	mkdir -p "$dir"
	[[ -w "$dir" ]] || op_die "cannot write to redis dir '$dir': fix its permissions or choose another dir"
	rm -f "$pidfile"
	# Every setting is written out so nothing depends on the distribution's
	# /etc/redis/redis.conf or the compiled-in defaults.
	op_write_atomic "$conf" <<-EOF
		# Written by ops/redis.sh at each start: edits are lost.
		bind 127.0.0.1
		port $port
		protected-mode yes
		daemonize yes
		supervised no
		dir "$dir"
		pidfile "$pidfile"
		logfile "$logfile"
		loglevel notice
		databases 16
		# Durability: the AOF is the log of record; a 202 QUEUED means fsynced
		# (with the default appendfsync always).
		appendonly yes
		appendfilename "appendonly.aof"
		appenddirname "appendonlydir"
		appendfsync $fsync
		aof-use-rdb-preamble yes
		# A rewrite serialises the whole dataset (LZF-compressed); at the
		# default 100 % it ran every ~3 s at 60 k orders/s and cost ~1 us of
		# Redis CPU per order. 400 %: a fifth as often, for an AOF up to 5x
		# the dataset on disk (docs/operations.md).
		auto-aof-rewrite-percentage ${OP_REDIS_AOF_REWRITE_PCT:-400}
		# No RDB snapshots: they would only duplicate the AOF and fork.
		save ""
		# Streams of acknowledged orders must never be evicted.
		maxmemory-policy noeviction
		# Clients of the pipeline are long-lived: keep idle ones.
		timeout 0
		tcp-keepalive 60
		${OP_REDIS_EXTRA_CONF:-}
	EOF

	op_log "starting redis on 127.0.0.1:$port (dir $dir, appendfsync $fsync)"
	if ! redis-server "$conf" >>"$logfile" 2>&1; then
		op_log_tail "$logfile"
		op_die "redis-server failed to start on port $port: see $logfile"
	fi
	if ! op_wait_until "$timeout" "redis to answer PING on 127.0.0.1:$port" ping; then
		op_log_tail "$logfile"
		if pid="$(running_pid)"; then kill "$pid" 2>/dev/null || true; fi
		op_die "redis did not come up on 127.0.0.1:$port within ${timeout}s: see $logfile"
	fi
	op_log "redis ready on 127.0.0.1:$port (pid $(running_pid || echo '?'))"
}

do_stop() {
	local pid timeout="${OP_REDIS_STOP_TIMEOUT:-60}"
	if ! pid="$(running_pid)"; then
		rm -f "$pidfile"
		op_log "redis from '$dir' is not running: nothing to stop"
		return 0
	fi
	op_log "stopping redis on 127.0.0.1:$port (pid $pid)"
	# SHUTDOWN fsyncs the AOF before exiting; TERM does the same if the
	# server does not answer (for instance when it runs on another port).
	if ! redis-cli -h 127.0.0.1 -p "$port" shutdown >/dev/null 2>&1 ||
		! op_wait_pid_exit "$pid" 2; then
		kill -TERM "$pid" 2>/dev/null || true
	fi
	if ! op_wait_pid_exit "$pid" "$timeout"; then
		op_warn "redis (pid $pid) still running ${timeout}s after SHUTDOWN: killing it (the AOF is replayed at next start)"
		kill -KILL "$pid" 2>/dev/null || true
		op_wait_pid_exit "$pid" 10 || op_die "cannot stop redis (pid $pid)"
	fi
	rm -f "$pidfile"
	op_log "redis stopped"
}

do_status() {
	local pid
	if pid="$(running_pid)"; then
		if ping; then
			printf 'redis: running on 127.0.0.1:%s (pid %s, dir %s)\n' "$port" "$pid" "$dir"
			return 0
		fi
		printf 'redis: running (pid %s, dir %s) but not answering on port %s\n' "$pid" "$dir" "$port"
		return 1
	fi
	printf 'redis: not running (dir %s, port %s)\n' "$dir" "$port"
	return 3
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) op_server_usage ;;
esac
