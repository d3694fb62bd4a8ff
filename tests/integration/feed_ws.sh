#!/usr/bin/env bash
# The feed's WebSocket protocol (docs/feed.md) through the whole pipeline,
# with a real client library: tests/js/feed_ws.mjs (Node.js, the `ws`
# package of tests/js) speaks to two orderpipe-feed instances while orders go
# in over REST (curl) to ingest, two matchers and a recorder:
#   auth (1008 for a wrong key, auth_required), every kind of orders report
#   (both legs of a trade, each account its own), public trades, the book
#   (snapshot, updates seq +1, the depth of GET /v1/book), errors, resume
#   from a position (orders and trades; same feed, another feed, a feed
#   whose reader is behind the position, after a feed restart, after a
#   matcher failover: exactly what a never-disconnected client on the other
#   feed received), gap after a trim, bad_position, a slow consumer closed
#   4001 beside a client that keeps everything, 500 clients on one symbol.
# This script starts and stops the services; the client asks it (a line
# "@ctl <command>" on its stdout, the answer on its stdin) to kill and start
# feed A, stop and resume feed A's live reader, kill -9 a matcher or trim a
# stream. Feed B is never restarted: its clients are the references.
# /healthz and /metrics of the feeds are checked here.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"

if [[ ! -x "$OP_BUILD/bin/orderpipe-feed" ]]; then
	printf 'feed_ws.sh: SKIPPED: orderpipe-feed is not built yet\n'
	exit 0
fi
t_skip_unless_built feed_ws
if ! command -v node >/dev/null 2>&1 || [[ ! -d "$OP_ROOT/tests/js/node_modules/ws" ]]; then
	t_fail "node or tests/js/node_modules/ws is missing: run ops/install-deps.sh"
	t_done
	exit 1
fi

t_clean_slate

tmp="$OP_STACK_DIR/feed_ws"
rm -rf "$tmp"
mkdir -p "$tmp"
keys="$tmp/api-keys.conf"
printf '%s\n' "dev-key-alice alice" "dev-key-bob bob" "dev-key-carol carol" "dev-key-dave dave" >"$keys"
export API_KEYS_FILE="$keys"
shards="${ORDER_SHARDS:-4}"

port_a="$(op_free_port "$INGEST_PORT")"
port_b="$(op_free_port "$INGEST_PORT" "$port_a")"
declare -A PID PORT
PORT[feed-a]="$port_a"
PORT[feed-b]="$port_b"

# forget PID: a process killed with -9 is not checked at t_done.
forget() {
	local p keep=()
	wait "$1" 2>/dev/null
	for p in "${T_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
	T_PIDS=("${keep[@]}")
}

# Matchers: lease 2 s so that a takeover takes about 2 s (as in
# matcher_failover.sh); MATCHER_BATCH 50 keeps each fills entry, so each
# orders message, well below feed A's queue bound (a message larger than the
# bound would close even a client that reads).
start_matcher() {
	t_start "$1" orderpipe-matcher MATCHER_NAME="$1" MATCHER_LEASE_MS=2000 REDIS_TIMEOUT_MS=1000 \
		MATCHER_METRICS_PORT=0 MATCHER_BATCH=50
	PID[$1]="$T_PID"
}

# Feed A: a small queue bound (512 KiB) for the slow consumer, and its own
# Redis user, so that the test can stop its live reader (XREAD refused)
# while its replays (XRANGE) still work. Feed B: the defaults.
t_redis ACL SETUSER feeda on '>feeda-pw' '~*' '&*' '+@all' >/dev/null
start_feed() {
	local name="$1" extra=()
	[[ "$name" == feed-a ]] && extra=(FEED_CLIENT_QUEUE_KB=512 "REDIS_URL=redis://feeda:feeda-pw@127.0.0.1:$OP_REDIS_PORT")
	t_start "$name" orderpipe-feed FEED_PORT="${PORT[$name]}" FEED_NAME="$name" "${extra[@]}"
	PID[$name]="$T_PID"
	op_wait_until 60 "$name on port ${PORT[$name]}" curl -sf "http://127.0.0.1:${PORT[$name]}/healthz"
}

# The recorder keeps fills for an hour: the test trims them itself.
t_start fw-ingest orderpipe-ingest INGEST_PORT="$INGEST_PORT"
t_start fw-recorder orderpipe-recorder RECORDER_METRICS_PORT=0 RECORDER_FILLS_RETAIN_MS=3600000
start_matcher fw-m1
start_matcher fw-m2
ok=1
op_wait_until 60 "ingest on $INGEST_PORT" curl -sf "$INGEST_URL/healthz" || ok=0
start_feed feed-a || ok=0
start_feed feed-b || ok=0
if ((!ok)); then
	t_fail "the services did not start"
	tail -n 20 "$OP_STACK_DIR"/fw-*.log "$OP_STACK_DIR"/feed-*.log >&2
	t_done
	exit 1
fi

# owned_by NAME: how many leases NAME holds.
owned_by() {
	local s n=0
	for ((s = 0; s < shards; s++)); do [[ "$(t_redis GET "lease:{$s}")" == "$1" ]] && n=$((n + 1)); done
	printf '%s\n' "$n"
}
both_own() { (($(owned_by fw-m1) > 0 && $(owned_by fw-m2) > 0 && $(owned_by fw-m1) + $(owned_by fw-m2) == shards)); }
op_wait_until 60 "the two matchers to share the shards" both_own ||
	t_fail "the matchers did not share the shards: m1 $(owned_by fw-m1), m2 $(owned_by fw-m2)"

# --- /healthz and /metrics of the feeds ------------------------------------------------
for name in feed-a feed-b; do
	t_http GET "http://127.0.0.1:${PORT[$name]}/healthz"
	t_eq "$name GET /healthz" "$T_STATUS" 200
	t_match "$name /healthz says ok" "$T_BODY" '"status":"ok"'
	t_http GET "http://127.0.0.1:${PORT[$name]}/metrics"
	t_eq "$name GET /metrics" "$T_STATUS" 200
	t_match "$name /metrics is Prometheus text" "$T_BODY" '# TYPE feed_clients gauge'
done

# --- what the client may ask -------------------------------------------------------------
survivor=""
survivor_owns_all() { (($(owned_by "$survivor") == shards)); }

# recorded_below SHARD ID: 0 when the recorders have committed every entry of
# fills:{SHARD} below ID (delivered past it, none of those pending), so that
# trimming them takes nothing from the recorder.
recorded_below() {
	local last pend
	last="$(redis-cli -p "$OP_REDIS_PORT" --raw XINFO GROUPS "fills:{$1}" | awk 'p { print; exit } $0 == "last-delivered-id" { p = 1 }')"
	[[ -n "$last" ]] || return 1
	[[ "$(printf '%s\n%s\n' "$last" "$2" | sort -t- -k1,1n -k2,2n | head -n 1)" == "$2" ]] || return 1
	pend="$(redis-cli -p "$OP_REDIS_PORT" --raw XPENDING "fills:{$1}" recorders - "($2" 1 | head -n 1)"
	[[ -z "$pend" ]]
}

# feed_metric NAME METRIC: the value of an unlabelled metric of a feed.
feed_metric() {
	curl -s --max-time 20 "http://127.0.0.1:${PORT[$1]}/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
feed_a_errors_above() { (($(feed_metric feed-a feed_redis_errors_total) > $1)); }

# ctl COMMAND ARGS...: does it and sets CTL_ANSWER, the line the client gets
# (in this shell, not a subshell: the services it starts must be ours).
ctl() {
	local owner other
	case "$1" in
	kill_feed) # NAME: SIGKILL
		kill -KILL "${PID[$2]}" 2>/dev/null
		forget "${PID[$2]}"
		CTL_ANSWER="ok killed $2"
		;;
	start_feed) # NAME: on its port again
		if start_feed "$2"; then
			CTL_ANSWER=ok
		else
			CTL_ANSWER="err $2 did not answer /healthz"
		fi
		;;
	kill_owner) # SHARD: SIGKILL to the matcher holding its lease
		owner="$(t_redis GET "lease:{$2}")"
		if [[ -z "$owner" || -z "${PID[$owner]:-}" ]]; then
			CTL_ANSWER="err shard $2 is owned by '$owner', not one of ours"
			return
		fi
		kill -KILL "${PID[$owner]}" 2>/dev/null
		forget "${PID[$owner]}"
		for other in fw-m1 fw-m2; do [[ "$other" == "$owner" ]] || survivor="$other"; done
		CTL_ANSWER="ok $owner"
		;;
	wait_takeover) # the survivor holds every lease
		if op_wait_until 60 "$survivor to take every shard" survivor_owns_all; then
			CTL_ANSWER=ok
		else
			CTL_ANSWER="err $survivor holds $(owned_by "$survivor") leases of $shards"
		fi
		;;
	trim) # SHARD ID: XTRIM fills:{SHARD} MINID ID, once the recorders have what goes
		if op_wait_until 60 "the recorders to commit fills:{$2} below $3" recorded_below "$2" "$3"; then
			CTL_ANSWER="ok $(t_redis XTRIM "fills:{$2}" MINID "$3")"
		else
			CTL_ANSWER="err the recorders did not commit fills:{$2} below $3"
		fi
		;;
	prev_id) # SHARD ID: the id of the entry of fills:{SHARD} before ID
		CTL_ANSWER="ok $(redis-cli -p "$OP_REDIS_PORT" --raw XREVRANGE "fills:{$2}" "($3" - COUNT 1 | head -n 1)"
		;;
	deny_xread) # feed A's user may no longer XREAD: its live reader stops where it is
		local e0
		e0="$(feed_metric feed-a feed_redis_errors_total)"
		t_redis ACL SETUSER feeda -xread >/dev/null
		if op_wait_until 60 "feed-a's reader to be refused" feed_a_errors_above "${e0:-0}"; then
			CTL_ANSWER=ok
		else
			CTL_ANSWER="err feed-a's feed_redis_errors_total stayed at $e0"
		fi
		;;
	allow_xread)
		t_redis ACL SETUSER feeda +xread >/dev/null
		CTL_ANSWER=ok
		;;
	*)
		CTL_ANSWER="err unknown command '$1'"
		;;
	esac
}

# --- the client ------------------------------------------------------------------------------
ctl_fifo="$tmp/ctl"
mkfifo "$ctl_fifo"
exec {ctl_fd}<>"$ctl_fifo" # held open both ways: the client's stdin never sees EOF early
js_status=""
while IFS= read -r line; do
	case "$line" in
	"@ctl "*)
		read -r -a cmd <<<"${line#@ctl }"
		printf '%s\n' "$line"
		CTL_ANSWER="err no answer"
		ctl "${cmd[@]}" 2>>"$tmp/ctl.log"
		printf '  -> %s\n' "$CTL_ANSWER"
		printf '%s\n' "$CTL_ANSWER" >&"$ctl_fd"
		;;
	"@exit "*) js_status="${line#@exit }" ;;
	FAIL:*)
		printf '%s\n' "$line" >&2
		T_CHECKS=$((T_CHECKS + 1))
		T_FAILS=$((T_FAILS + 1))
		;;
	ok:*)
		printf '%s\n' "$line"
		T_CHECKS=$((T_CHECKS + 1))
		;;
	*) printf '%s\n' "$line" ;;
	esac
done < <(
	cd "$OP_ROOT/tests/js" &&
		FEED_A_URL="http://127.0.0.1:$port_a" FEED_B_URL="http://127.0.0.1:$port_b" \
			INGEST_URL="$INGEST_URL" ORDER_SHARDS="$shards" node feed_ws.mjs <"$ctl_fifo" 2>&1
	printf '@exit %s\n' "$?"
)
exec {ctl_fd}>&-
t_eq "feed_ws.mjs exit status" "$js_status" 0
[[ "$js_status" == 0 ]] || tail -n 20 "$OP_STACK_DIR"/feed-*.log >&2

t_done
