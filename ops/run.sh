#!/usr/bin/env bash
# What `make run` runs after building: the whole pipeline in the foreground.
#
#   ops/run.sh            (OP_BUILD selects the build, default build/rel)
#
# Starts the data stack under var/ (ops/stack.sh: Redis, PostgreSQL,
# migrations, streams; or the servers named by REDIS_URL / DATABASE_URL), then
# every service binary built in $OP_BUILD/bin (orderpipe-ingest,
# orderpipe-matcher, orderpipe-recorder) with REDIS_URL, DATABASE_URL,
# INGEST_PORT, SYMBOLS_FILE and API_KEYS_FILE exported, logging to
# var/log/<service>.log. Prints the URL, the demo keys and a curl example, then
# follows the logs. Ctrl-C (INT) or TERM stops the services (TERM, then KILL
# after OP_STOP_TIMEOUT seconds, default 10) and then the servers of the stack
# if this run started them.
#
# Only one run at a time: var/run.lock is held while it is up, and a second
# `make run` says so and exits. A run that was killed outright (kill -9) leaves
# var/run.services behind; the next run stops those leftover services first.
#
# Environment: OP_BUILD, INGEST_PORT (8080), SYMBOLS_FILE
# (config/symbols.conf), API_KEYS_FILE (config/api-keys.conf), ORDER_SHARDS,
# REDIS_URL, DATABASE_URL, OP_STOP_TIMEOUT, and those of ops/stack.sh
# (OP_REDIS_CLUSTER=1: a local six-node Redis Cluster instead of one Redis).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$OP_ROOT"
build="${OP_BUILD:-build/rel}"
[[ "$build" == /* ]] || build="$OP_ROOT/$build"
var="$OP_ROOT/var"
logdir="$var/log"
services=(ingest matcher recorder feed)
stop_timeout="${OP_STOP_TIMEOUT:-10}"
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || op_die "invalid OP_STOP_TIMEOUT='$stop_timeout': expected whole seconds"

mkdir -p "$logdir"

# --- one run at a time ------------------------------------------------------
# fd 9 holds var/run.lock for as long as this script lives. Every child gets
# 9>&- so that a daemon or a service never keeps the lock after we are gone.
exec 9>"$var/run.lock"
if ! flock -n 9; then
	other="$(cat "$var/run.pid" 2>/dev/null || true)"
	op_die "orderpipe is already running from this checkout (make run, pid ${other:-unknown}): use that one (its settings are in var/stack.env), or stop it with Ctrl-C in its terminal${other:+ or with: kill $other}"
fi
printf '%s\n' "$$" >"$var/run.pid"

declare -A pids=()   # service name -> pid
stack_owned=0        # 1 when this run started the stack and must stop it
stack_touched=0      # 1 once this run called ops/stack.sh start
tail_pid=""
stopping=0

# stop_leftovers: stop the services a killed earlier run left running (their
# pids are in var/run.services, checked against their command line so that a
# pid reused by another program is left alone).
stop_leftovers() {
	local name pid exe
	[[ -f "$var/run.services" ]] || return 0
	while read -r name pid exe; do
		[[ -n "${pid:-}" ]] || continue
		op_pid_alive "$pid" || continue
		[[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"$exe"* ]] || continue
		op_log "stopping orderpipe-$name (pid $pid) left running by an earlier run that did not exit cleanly"
		kill -TERM "$pid" 2>/dev/null || true
		op_wait_pid_exit "$pid" "$stop_timeout" || kill -KILL "$pid" 2>/dev/null || true
	done <"$var/run.services"
	rm -f "$var/run.services"
}

# save_services: record the running services for stop_leftovers.
save_services() {
	local name
	for name in "${!pids[@]}"; do
		printf '%s %s %s\n' "$name" "${pids[$name]}" "$build/bin/orderpipe-$name"
	done | op_write_atomic "$var/run.services"
}

# stop_services: TERM every service, wait up to stop_timeout, then KILL.
stop_services() {
	local name pid deadline
	for name in "${!pids[@]}"; do
		kill -TERM "${pids[$name]}" 2>/dev/null || true
	done
	deadline=$((SECONDS + stop_timeout))
	for name in "${!pids[@]}"; do
		pid="${pids[$name]}"
		while op_pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		if op_pid_alive "$pid"; then
			op_warn "orderpipe-$name (pid $pid) still running ${stop_timeout}s after TERM: killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
		op_log "orderpipe-$name stopped"
	done
	pids=()
	rm -f "$var/run.services"
}

# cleanup [STATUS]: stop everything this run started, then exit with STATUS.
cleanup() {
	local status="${1:-0}"
	((stopping)) && return 0
	stopping=1
	trap '' INT TERM
	if ((stack_touched)); then
		printf '\n' >&2
		op_log "stopping"
	fi
	stop_services
	if [[ -n "$tail_pid" ]]; then
		kill "$tail_pid" 2>/dev/null || true
		wait "$tail_pid" 2>/dev/null || true
	fi
	if ((stack_touched && stack_owned)); then
		"$OP_ROOT/ops/stack.sh" stop --dir "$var" 9>&- || status=1
		rm -f "$var/run.owns-stack"
	elif ((stack_touched)); then
		op_log "leaving the stack in var/ running: it was started before this run (ops/stack.sh stop stops it)"
	fi
	rm -f "$var/run.pid"
	exit "$status"
}

trap 'cleanup 0' INT TERM
trap 'cleanup $?' EXIT

stop_leftovers

# Fail before starting anything if the ingest's port is taken.
ingest_port="${INGEST_PORT:-8080}"
op_check_port "$ingest_port" || op_die "invalid INGEST_PORT='$ingest_port': expected a number in 1-65535"
if [[ -x "$build/bin/orderpipe-ingest" ]] && op_port_listening "$ingest_port"; then
	op_die "tcp port $ingest_port (INGEST_PORT) is already in use by another process: stop it, or run with INGEST_PORT=<free port> make run"
fi
feed_port="${FEED_PORT:-8081}"
op_check_port "$feed_port" || op_die "invalid FEED_PORT='$feed_port': expected a number in 1-65535"
if [[ -x "$build/bin/orderpipe-feed" ]] && op_port_listening "$feed_port"; then
	op_die "tcp port $feed_port (FEED_PORT) is already in use by another process: stop it, or run with FEED_PORT=<free port> make run"
fi

# --- the data stack -----------------------------------------------------------
# The stack is ours to stop if it was not up before this run, or if a killed
# earlier run had started it (var/run.owns-stack is still there).
if [[ ! -f "$var/started" || -f "$var/run.owns-stack" ]]; then
	stack_owned=1
	: >"$var/run.owns-stack"
fi
stack_touched=1
OP_BUILD="$build" "$OP_ROOT/ops/stack.sh" start --dir "$var" 9>&-

set -a
# shellcheck source=/dev/null
. "$var/stack.env"
set +a
export INGEST_PORT="$ingest_port"
export FEED_PORT="$feed_port"
export FEED_CONSOLE_DIR="${FEED_CONSOLE_DIR:-$OP_ROOT/feed/console}"
export FEED_INGEST_URL="${FEED_INGEST_URL:-$INGEST_URL}"
export SYMBOLS_FILE="${SYMBOLS_FILE:-$OP_ROOT/config/symbols.conf}"
export API_KEYS_FILE="${API_KEYS_FILE:-$OP_ROOT/config/api-keys.conf}"
for f in "$SYMBOLS_FILE" "$API_KEYS_FILE"; do
	[[ -r "$f" ]] || op_warn "cannot read '$f': the services will refuse to start without it"
done

# --- the services -------------------------------------------------------------
missing=()
for name in "${services[@]}"; do
	bin="$build/bin/orderpipe-$name"
	if [[ ! -x "$bin" ]]; then
		missing+=("orderpipe-$name")
		continue
	fi
	printf '\n==== %s: starting %s\n' "$(date '+%F %T')" "$bin" >>"$logdir/$name.log"
	"$bin" >>"$logdir/$name.log" 2>&1 9>&- </dev/null &
	pids[$name]=$!
	op_log "started orderpipe-$name (pid ${pids[$name]}, log var/log/$name.log)"
done
save_services

# reap_dead: if a started service is no longer running, reap it, show the
# tail of its log, forget it, set dead_name and dead_st, and return 0;
# return 1 while every service runs.
reap_dead() {
	local name
	for name in "${!pids[@]}"; do
		if ! op_pid_alive "${pids[$name]}"; then
			dead_name="$name"
			dead_st=0
			wait "${pids[$name]}" || dead_st=$?
			unset "pids[$name]"
			op_log_tail "$logdir/$name.log" 20
			return 0
		fi
	done
	return 1
}

# A service that cannot start (bad config, port taken) exits at once: give
# them a moment and report any that did, rather than printing a ready banner.
if ((${#pids[@]})); then
	sleep 1
	if reap_dead; then
		op_die "orderpipe-$dead_name exited at start-up (status $dead_st): see var/log/$dead_name.log"
	fi
fi

cat <<EOF

  orderpipe is up                       (Ctrl-C stops it)

  ingest URL   $INGEST_URL
  console      http://127.0.0.1:$FEED_PORT/   (WebSocket feed: ws://127.0.0.1:$FEED_PORT/ws)
  REDIS_URL    $REDIS_URL
  DATABASE_URL $DATABASE_URL
  demo keys    dev-key-alice -> account alice
               dev-key-bob   -> account bob
  try it       curl -X POST "$INGEST_URL/v1/orders" -H 'Authorization: Bearer dev-key-alice' -H 'Content-Type: application/json' -d '{"symbol":"AAPL","side":"buy","type":"limit","price":"187.25","qty":100}'
  env in shell set -a; . var/stack.env; set +a
  logs         var/log/<service>.log

EOF
if ((${#missing[@]})); then
	op_warn "not built yet, so not running: ${missing[*]} (looked in $build/bin); redis and postgresql stay up until Ctrl-C"
fi

# Follow the logs of the running services.
if ((${#pids[@]})); then
	logs=()
	for name in "${!pids[@]}"; do logs+=("$logdir/$name.log"); done
	tail -n 20 -F --pid="$$" "${logs[@]}" 9>&- &
	tail_pid=$!
fi

# Wait for Ctrl-C; a service that dies meanwhile stops the whole run.
while :; do
	if reap_dead; then
		# Status 0: the service was asked to stop. Ctrl-C signals the whole
		# foreground process group, so the services (which stop within
		# milliseconds) can be seen gone before this shell's own INT trap
		# runs; that is a clean stop, not a failure (make would otherwise
		# end a clean Ctrl-C with "Error 1").
		if ((dead_st == 0)); then
			op_log "orderpipe-$dead_name stopped (Ctrl-C, or a stop signal sent to it): stopping everything"
			cleanup 0
		fi
		op_warn "orderpipe-$dead_name exited unexpectedly (status $dead_st): stopping everything; see var/log/$dead_name.log"
		cleanup 1
	fi
	sleep 1 9>&- &
	wait $! || true
done
