#!/usr/bin/env bash
# Runs the integration and fault tests against a private, throw-away stack.
#
#   tests/run-integration.sh <build-dir>    (make test-integration calls it)
#
# Creates a temporary stack directory, starts a real redis-server and
# PostgreSQL on free loopback ports in it (ops/stack.sh, which uses
# ops/redis.sh and ops/postgres.sh, and runs the setup tool of <build-dir>),
# then runs, from the repository root, every executable in
# <build-dir>/tests/integration/ and every tests/integration/*.sh script, each
# under a header, and ends with "integration: N passed, N failed". The stack is
# always torn down and its directory removed at exit, even on failure or
# Ctrl-C; KEEP_STACK=1 leaves both for debugging and prints how to stop them.
# It never touches the `make run` stack in var/ (other dir, other ports).
#
# Each test gets in its environment:
#   REDIS_URL, DATABASE_URL   the servers of the stack
#   OP_STACK_DIR              the stack directory (stack.env is in it)
#   OP_REDIS_DIR, OP_REDIS_PORT   so a fault test can stop or restart redis:
#                                 ops/redis.sh stop "$OP_REDIS_DIR" "$OP_REDIS_PORT"
#                                 (with OP_REDIS_CLUSTER=1: the cluster's dir and
#                                 first port, for ops/redis-cluster.sh)
#   OP_REDIS_CLUSTER          0, or 1 when the stack's Redis is a local cluster
#   OP_PG_DIR, OP_PG_PORT         likewise with ops/postgres.sh
#   OP_BUILD                  the (absolute) build directory, binaries in bin/
#   OP_ROOT                   the repository root
#   INGEST_PORT, INGEST_URL   a port that was free at start-up, for an ingest
#   SYMBOLS_FILE, API_KEYS_FILE   the dev configuration in config/
# plus the sanitizer options of tests/run-unit.sh. A test that leaves redis or
# PostgreSQL stopped gets them restarted before the next test runs.
#
# Environment: OP_REDIS_CLUSTER=1 (the stack's Redis is a six-node Redis
# Cluster, ops/redis-cluster.sh, instead of one redis-server: for trying the
# suite on a cluster; the tests written for one server, which FLUSHALL or
# query it with plain redis-cli, are not all cluster-aware, while
# tests/integration/redis_cluster.sh starts its own cluster either way),
# KEEP_STACK=1, OP_TEST_TIMEOUT (seconds per test, default 600),
# OP_TEST_ONLY (run only the tests whose file basename contains this
# substring, e.g. OP_TEST_ONLY=backlog; unset or empty runs them all),
# OP_TEST_TMP (where the stack dir goes, default $TMPDIR or /tmp; as root it
# must be traversable by the 'postgres' user).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../ops/lib.sh"

(($# == 1)) || { printf 'usage: %s <build-dir>\n' "$0" >&2; exit 2; }
build="$(op_abspath "$1")"
timeout="${OP_TEST_TIMEOUT:-600}"
ops="$OP_ROOT/ops"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# --- the tests ------------------------------------------------------------------
tests=()
if [[ -d "$build/tests/integration" ]]; then
	while IFS= read -r f; do tests+=("$f"); done < <(find "$build/tests/integration" -maxdepth 1 -type f -perm -u+x | LC_ALL=C sort)
fi
while IFS= read -r f; do tests+=("$f"); done < <(find "$OP_ROOT/tests/integration" -maxdepth 1 -type f -name '*.sh' 2>/dev/null | LC_ALL=C sort)
if [[ -n "${OP_TEST_ONLY:-}" ]]; then
	only=()
	for t in "${tests[@]}"; do [[ "$(basename "$t")" == *"$OP_TEST_ONLY"* ]] && only+=("$t"); done
	((${#only[@]} > 0)) || op_die "OP_TEST_ONLY='$OP_TEST_ONLY' matches no integration test"
	tests=("${only[@]}")
fi

# --- the stack ------------------------------------------------------------------
tmproot="${OP_TEST_TMP:-${TMPDIR:-/tmp}}"
if blocker="$(op_pg_can_reach "$tmproot")"; then :; else
	[[ -n "${OP_TEST_TMP:-}" ]] &&
		op_die "OP_TEST_TMP='$OP_TEST_TMP' is not reachable by the 'postgres' user ('$blocker' blocks it): choose a directory under /tmp or /var/tmp"
	op_log "note: '$tmproot' is not reachable by the 'postgres' user ('$blocker' blocks it): using /tmp"
	tmproot=/tmp
fi
stack="$(mktemp -d "$tmproot/orderpipe-it.XXXXXX")" ||
	op_die "cannot create a temporary directory in '$tmproot': set OP_TEST_TMP to a writable directory"
chmod 755 "$stack"

teardown() {
	local status=$?
	trap '' INT TERM
	if [[ "${KEEP_STACK:-0}" == 1 ]]; then
		op_log "KEEP_STACK=1: the stack is still running in $stack"
		op_log "  its env: $stack/stack.env; stop it with: ops/stack.sh stop --dir $stack && rm -rf $stack"
	else
		"$ops/stack.sh" stop --dir "$stack" >/dev/null 2>&1 ||
			"$ops/stack.sh" stop --dir "$stack" || status=1
		rm -rf "$stack"
		op_log "test stack stopped and removed"
	fi
	exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Always fresh servers, whatever the caller's environment points at.
unset REDIS_URL DATABASE_URL
case "${OP_REDIS_CLUSTER:-0}" in
0) cluster=0 ;;
1) cluster=1 ;;
*) op_die "invalid OP_REDIS_CLUSTER='$OP_REDIS_CLUSTER': expected 0 (one redis-server, the default) or 1 (a six-node redis cluster)" ;;
esac
export OP_REDIS_CLUSTER="$cluster"
redis_port=""
pg_port=""
# Another process can take a port between op_free_port and the server's bind:
# try three pairs before giving up.
for try in 1 2 3; do
	# a cluster takes the five ports after the first too, and their bus ports
	if ((cluster)); then redis_port="$(op_free_cluster_port)"; else redis_port="$(op_free_port)"; fi
	taken=("$redis_port")
	((cluster)) && taken+=($((redis_port + 1)) $((redis_port + 2)) $((redis_port + 3)) $((redis_port + 4)) $((redis_port + 5)))
	pg_port="$(op_free_port "${taken[@]}")"
	INGEST_PORT="$(op_free_port "${taken[@]}" "$pg_port")"
	if INGEST_PORT="$INGEST_PORT" OP_BUILD="$build" \
		"$ops/stack.sh" start --dir "$stack" --redis-port "$redis_port" --pg-port "$pg_port"; then
		break
	fi
	"$ops/stack.sh" stop --dir "$stack" || true
	((try < 3)) || op_die "cannot start the test stack in '$stack' (three tries): see the messages above"
	op_log "retrying the test stack on other ports"
done

set -a
# shellcheck source=/dev/null
. "$stack/stack.env"
set +a
export OP_STACK_DIR="$stack" OP_BUILD="$build" OP_ROOT
export OP_REDIS_DIR="$stack/redis" OP_REDIS_PORT="$redis_port"
((cluster)) && OP_REDIS_DIR="$stack/redis-cluster"
export OP_PG_DIR="$stack/postgres" OP_PG_PORT="$pg_port"
export INGEST_PORT
export SYMBOLS_FILE="${SYMBOLS_FILE:-$OP_ROOT/config/symbols.conf}"
export API_KEYS_FILE="${API_KEYS_FILE:-$OP_ROOT/config/api-keys.conf}"

# heal: restart a server that a fault test left stopped, so the next test
# starts from a running stack.
heal() {
	local redis_sh="$ops/redis.sh"
	((cluster)) && redis_sh="$ops/redis-cluster.sh"
	if ! "$redis_sh" status "$OP_REDIS_DIR" "$OP_REDIS_PORT" >/dev/null 2>&1; then
		op_log "note: redis was left stopped by the last test: restarting it"
		"$redis_sh" start "$OP_REDIS_DIR" "$OP_REDIS_PORT"
	fi
	if ! "$ops/postgres.sh" status "$OP_PG_DIR" "$OP_PG_PORT" >/dev/null 2>&1; then
		op_log "note: postgresql was left stopped by the last test: restarting it"
		"$ops/postgres.sh" start "$OP_PG_DIR" "$OP_PG_PORT" >/dev/null
	fi
}

if ((${#tests[@]} == 0)); then
	printf 'no integration tests in %s/tests/integration or tests/integration/*.sh (the stack started and stopped fine)\n' "$build"
	printf 'integration: 0 passed, 0 failed\n'
	exit 0
fi

for t in "${tests[@]}"; do
	name="${t#"$OP_ROOT"/}"
	name="${name#"$build"/}"
	printf '==== integration %s\n' "$name"
	st=0
	(cd "$OP_ROOT" && timeout -k 10 "$timeout" "$t" </dev/null 2>&1) || st=$?
	op_test_outcome integration "$name" "$st" "$timeout"
	heal
done

printf '\n'
op_test_summary integration
((op_failed == 0))
