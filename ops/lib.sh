# shellcheck shell=bash
# Shared helpers for the ops/, tests/ and bench/ scripts: logging, dying with a
# clear message, free-port finding, waiting with a timeout, PostgreSQL binary
# lookup and running a command as the postgres system user when we are root.
#
# Source it, do not run it:   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every function is prefixed op_ so nothing clashes with the caller's names.
# It sets no shell options itself: the callers use `set -euo pipefail`.

# The repository root (the parent of ops/), absolute; used by the callers.
# shellcheck disable=SC2034
OP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The name prefixed to every message: the calling script's file name.
OP_PROG="${OP_PROG:-$(basename "$0")}"

# op_log MESSAGE...: print "prog: MESSAGE" on stderr (stdout stays for data).
op_log() {
	printf '%s: %s\n' "$OP_PROG" "$*" >&2
}

# op_warn MESSAGE...: like op_log, prefixed "warning:".
op_warn() {
	printf '%s: warning: %s\n' "$OP_PROG" "$*" >&2
}

# op_die MESSAGE...: print "prog: error: MESSAGE" on stderr and exit 1.
op_die() {
	printf '%s: error: %s\n' "$OP_PROG" "$*" >&2
	exit 1
}

# op_need_cmd CMD [PACKAGE]: die unless CMD is on PATH, saying how to get it.
op_need_cmd() {
	local cmd="$1" pkg="${2:-$1}"
	command -v "$cmd" >/dev/null 2>&1 ||
		op_die "cannot find '$cmd' on PATH: install the debian package '$pkg' (ops/install-deps.sh installs everything the project needs)"
}

# op_abspath PATH: print PATH made absolute (relative to the current directory).
# The path need not exist; '..' and symlinks are left as they are.
op_abspath() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$PWD/${1#./}" ;;
	esac
}

# op_check_port PORT: return 0 if PORT is a valid TCP port number (1..65535).
op_check_port() {
	[[ "$1" =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535))
}

# op_port_in_use PORT: return 0 if something accepts TCP connections on
# 127.0.0.1:PORT. Uses bash's /dev/tcp, so it needs neither python nor nc; a
# refused connection returns at once, the 2 s timeout only guards a firewall
# that drops packets.
op_port_in_use() {
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# op_port_listening PORT: return 0 if a socket is bound to PORT in the LISTEN
# state on any address (ss from iproute2 when present, else op_port_in_use).
# Stricter than op_port_in_use: it also sees a server bound to another address.
op_port_listening() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
	else
		op_port_in_use "$1"
	fi
}

# op_free_port [EXCLUDE...]: print a TCP port nobody listens on, not one of
# EXCLUDE. Ports are drawn at random from 20000-32767: below Linux's ephemeral
# range (32768-60999), so an outgoing connection never holds one, and far from
# the dev stack's fixed ports (6390, 5440, 8080). Another process may still take
# the port before the caller binds it: callers retry on a bind failure.
# shellcheck disable=SC2120 # the callers pass the ports to exclude, when any
op_free_port() {
	local port try ex taken
	for ((try = 0; try < 200; try++)); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
		taken=0
		for ex in "$@"; do [[ "$ex" == "$port" ]] && taken=1; done
		((taken)) && continue
		op_port_listening "$port" && continue
		printf '%s\n' "$port"
		return 0
	done
	op_die "cannot find a free tcp port in 20000-32767 after 200 tries"
}

# op_free_cluster_port: print a port P such that P … P+5 (the six nodes of
# ops/redis-cluster.sh) and their cluster bus ports P+10000 … P+10005 are
# free. P is at most 22762, so the bus ports stay below Linux's ephemeral
# range (32768 …), where the local end of an outgoing connection could
# hold one and make a node's bind fail.
op_free_cluster_port() {
	local p k try ok
	for ((try = 0; try < 1000; try++)); do
		p="$(op_free_port)"
		((p + 5 + 10000 <= 32767)) || continue
		ok=1
		for ((k = 0; k <= 5; k++)); do
			{ ((k > 0)) && op_port_listening $((p + k)); } && ok=0
			op_port_listening $((p + k + 10000)) && ok=0
		done
		((ok)) && { printf '%s\n' "$p"; return 0; }
	done
	op_die "cannot find six free tcp ports in a row (and their bus ports) in 20000-22767"
}

# op_wait_until TIMEOUT_S WHAT CMD...: run CMD every 0.1 s until it succeeds
# (return 0) or TIMEOUT_S seconds passed (log "timed out after Ns waiting for
# WHAT" and return 1). CMD's output is discarded.
op_wait_until() {
	local timeout="$1" what="$2"
	shift 2
	local deadline=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			op_log "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# op_pid_alive PID: return 0 if PID is a running (not zombie) process.
op_pid_alive() {
	[[ "$1" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$1" 2>/dev/null || return 1
	# kill -0 also succeeds on a zombie nobody reaped yet: it is not running.
	[[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

# op_cpu_ticks PID [all]: the CPU ticks (user + system, of CLK_TCK) PID has
# used so far; with "all", its exited and waited-for children's too. 0 when
# PID is gone. For the benchmarks' CPU figures.
op_cpu_ticks() {
	awk -v all="${2:-}" '{print $14 + $15 + (all == "all" ? $16 + $17 : 0)}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# op_pg_cpu_ticks DATADIR [all]: op_cpu_ticks of the PostgreSQL cluster of
# DATADIR: its postmaster (with "all", with its exited children: backends
# that have ended) plus every live child (backends, checkpointer, WAL
# writer, ...). 0 when it is not running.
op_pg_cpu_ticks() {
	local pm total p
	pm="$(head -1 "$1/postmaster.pid" 2>/dev/null)" || { echo 0; return; }
	[[ -n "$pm" ]] || { echo 0; return; }
	total="$(op_cpu_ticks "$pm" "${2:-}")"
	for p in $(ps -o pid= --ppid "$pm" 2>/dev/null); do
		total=$((total + $(op_cpu_ticks "$p")))
	done
	printf '%s\n' "$total"
}

# op_read_pidfile FILE: print the pid in FILE if it names a running process,
# else print nothing and return 1.
op_read_pidfile() {
	local pid
	[[ -r "$1" ]] || return 1
	read -r pid <"$1" || [[ -n "${pid:-}" ]] || return 1
	op_pid_alive "$pid" || return 1
	printf '%s\n' "$pid"
}

# op_wait_pid_exit PID TIMEOUT_S: wait until PID is gone; return 1 on timeout.
op_wait_pid_exit() {
	local pid="$1" deadline=$((SECONDS + $2))
	while op_pid_alive "$pid"; do
		((SECONDS >= deadline)) && return 1
		sleep 0.1
	done
	return 0
}

# op_log_tail FILE [N]: print the last N (default 30) lines of FILE on stderr,
# indented, to show why a server did not start.
op_log_tail() {
	local file="$1" n="${2:-30}"
	if [[ -r "$file" ]]; then
		printf '%s: last %s lines of %s:\n' "$OP_PROG" "$n" "$file" >&2
		tail -n "$n" "$file" | sed 's/^/    /' >&2
	else
		printf '%s: (no log at %s)\n' "$OP_PROG" "$file" >&2
	fi
}

# op_pg_bindir: print the directory holding initdb, pg_ctl and postgres.
# $OP_PG_BINDIR wins; then Debian's /usr/lib/postgresql/15/bin (the version
# the project is built for), then the newest /usr/lib/postgresql/*/bin, then
# wherever initdb is on PATH. Dies with an install hint when none is found.
op_pg_bindir() {
	local d
	if [[ -n "${OP_PG_BINDIR:-}" ]]; then
		[[ -x "$OP_PG_BINDIR/pg_ctl" ]] ||
			op_die "OP_PG_BINDIR='$OP_PG_BINDIR' has no executable pg_ctl: unset it or point it at a postgresql bin directory"
		printf '%s\n' "$OP_PG_BINDIR"
		return 0
	fi
	if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
		printf '%s\n' /usr/lib/postgresql/15/bin
		return 0
	fi
	d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
	if [[ -n "$d" && -x "$d/pg_ctl" ]]; then
		printf '%s\n' "$d"
		return 0
	fi
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return 0
	fi
	op_die "cannot find the postgresql server binaries (initdb, pg_ctl): install the debian package 'postgresql-15' (ops/install-deps.sh), or set OP_PG_BINDIR"
}

# op_pg_user: print the user the PostgreSQL server runs as: 'postgres' when we
# are root (initdb and postgres refuse to run as root), else the current user.
op_pg_user() {
	if ((EUID == 0)); then
		printf 'postgres\n'
	else
		id -un
	fi
}

# op_as_pg_user CMD...: run CMD as the op_pg_user. As root this drops to the
# postgres system user with runuser (util-linux), from directory / so that an
# unreadable current directory does not upset initdb or pg_ctl.
op_as_pg_user() {
	if ((EUID == 0)); then
		getent passwd postgres >/dev/null ||
			op_die "no 'postgres' system user to run postgresql as (we are root, and postgresql refuses to run as root): install the debian package 'postgresql-15', which creates it"
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# op_pg_can_reach PATH: return 0 if the op_pg_user can traverse every
# directory from / down to PATH (PATH itself included, if it exists). When it
# cannot, print the first directory that blocks it and return 1.
op_pg_can_reach() {
	local path p="" part
	path="$(op_abspath "$1")"
	((EUID == 0)) || return 0
	local IFS=/
	for part in $path; do
		[[ -z "$part" ]] && continue
		p="$p/$part"
		[[ -e "$p" ]] || return 0
		if ! (cd / && runuser -u postgres -- test -x "$p") 2>/dev/null; then
			printf '%s\n' "$p"
			return 1
		fi
	done
	return 0
}

# op_env_line NAME VALUE: print NAME=VALUE as a line a shell can source, with
# VALUE single-quoted unless it only holds characters that need no quoting
# (so the usual URLs stay readable and usable as a docker/systemd env file).
op_env_line() {
	local name="$1" value="$2"
	if [[ "$value" =~ ^[A-Za-z0-9_@:/.=%+,~-]*$ ]]; then
		printf '%s=%s\n' "$name" "$value"
	else
		printf "%s='%s'\n" "$name" "${value//\'/\'\\\'\'}"
	fi
}

# op_write_atomic FILE: copy stdin to FILE atomically (a temp file beside it,
# then rename), so a reader never sees a half-written FILE.
op_write_atomic() {
	local file="$1" tmp
	tmp="$(mktemp "$file.tmp.XXXXXX")"
	if ! cat >"$tmp"; then
		rm -f "$tmp"
		return 1
	fi
	chmod 644 "$tmp"
	mv -f "$tmp" "$file"
}

# Test-run bookkeeping shared by tests/run-unit.sh and tests/run-integration.sh.
# op_test_outcome SUITE NAME STATUS TIMEOUT_S: counts one test's exit status
# in op_passed / op_failed / op_failures and prints its "==== SUITE NAME: …"
# line (124/137: killed by the timeout).
op_passed=0
op_failed=0
op_failures=()
op_test_outcome() {
	local suite="$1" name="$2" st="$3" timeout="$4"
	if ((st == 0)); then
		op_passed=$((op_passed + 1))
		printf '==== %s %s: ok\n' "$suite" "$name"
	elif ((st == 124 || st == 137)); then
		op_failed=$((op_failed + 1))
		op_failures+=("$name")
		printf '==== %s %s: FAILED (timed out after %ss)\n' "$suite" "$name" "$timeout"
	else
		op_failed=$((op_failed + 1))
		op_failures+=("$name")
		printf '==== %s %s: FAILED (exit status %s)\n' "$suite" "$name" "$st"
	fi
}

# op_test_summary SUITE: prints the failed tests and "SUITE: N passed, N failed".
op_test_summary() {
	((op_failed)) && printf 'failed %s tests: %s\n' "$1" "${op_failures[*]}"
	printf '%s: %d passed, %d failed\n' "$1" "$op_passed" "$op_failed"
}

# op_server_usage: the server scripts' usage line on stderr, exit 2.
op_server_usage() {
	printf 'usage: %s start|stop|status <dir> <port>\n' "$OP_PROG" >&2
	exit 2
}

# op_server_args WHAT ARGS...: parses "start|stop|status <dir> <port>", the
# arguments of ops/redis.sh and ops/postgres.sh; sets cmd, dir (absolute)
# and port, or exits 2 with the usage / dies naming a bad port.
op_server_args() {
	local what="$1"
	shift
	(($# == 3)) || op_server_usage
	cmd="$1"
	dir="$(op_abspath "$2")"
	port="$3"
	op_check_port "$port" || op_die "invalid $what port '$port': expected a number in 1-65535"
}
