#!/usr/bin/env bash
# docker-compose.yml on a real Docker engine (issue 18): `make test-compose`.
#
#   tests/compose/run.sh
#
#  1. an engine: when no Docker engine answers, installs what is missing of
#     docker.io, docker-compose, iptables and debootstrap (apt) and starts
#     `dockerd --storage-driver=overlay2` in the background; it is stopped at
#     the end, and only when this run started it;
#  2. images: tests/compose/images.sh — the official redis, postgres and
#     prom/prometheus images when the engine has them or can pull them, else
#     stand-ins built from Debian's packages on a debootstrap base (kept in
#     the engine: the next run reuses them);
#  3. the stack, as project orderpipe-ct<pid> (Compose v1's docker-compose
#     when installed, else `docker compose`): `build`, `up -d`, every
#     container healthy (setup: exited 0); ingest, the feed and Prometheus
#     published on free loopback ports;
#  4. Prometheus: every target up (feed:8081 tolerated only while the compose
#     file has no feed service), every alert rule loaded and healthy;
#  5. orders through ingest's published port (dev-key-alice buys,
#     dev-key-bob sells, all at one price): every order answered 202 is in
#     PostgreSQL's orders table, no other, and each symbol has min(buys,
#     sells) fills, with FILLED and NEW statuses to match;
#  6. SIGKILL to the matcher that owns AAPL's shard while orders flow: the
#     other matcher holds every lease, Prometheus sees the dead one
#     (OrderpipeTargetDown pending), and every accepted order is recorded,
#     filled as in 5; the dead matcher is started again;
#  7. SIGKILL to the Redis container while orders flow (AOF, appendfsync
#     always, on a volume), started again once ingest refused an order:
#     ingest accepts orders again without a restart, and every order
#     answered 202 before, during and after is recorded, filled as in 5;
#     every Prometheus target is up again;
#  8. `down -v`, then no container, network or volume of the project left.
# Prints how long each step and the whole took, then "compose: 1 passed,
# 0 failed" (or 0 passed, 1 failed) after its checks; exits 1 on any failure.
# On failure the services' last log lines are printed before the stack goes.
#
# Environment: OP_COMPOSE (the compose command, e.g. "docker compose"),
# OP_COMPOSE_WAIT (seconds any one wait may take, default 180), KEEP_STACK=1
# (leave the stack, and an engine this run started, up at the end, printing
# how to remove them), and those of tests/compose/images.sh.
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../ops/lib.sh"

(($# == 0)) || { printf 'usage: %s\n' "$0" >&2; exit 2; }
wait_s="${OP_COMPOSE_WAIT:-180}"
[[ "$wait_s" =~ ^[1-9][0-9]*$ ]] || op_die "invalid OP_COMPOSE_WAIT='$wait_s': expected whole seconds"
here="$OP_ROOT/tests/compose"
compose_file="$OP_ROOT/docker-compose.yml"
proj="orderpipe-ct$$"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/orderpipe-compose.XXXXXX")"
started_at=$SECONDS
step_at=$SECONDS
timings=()

# --- checks and steps -------------------------------------------------------------
checks=0
fails=0
check_fail() {
	fails=$((fails + 1))
	printf 'FAIL: %s\n' "$*" >&2
}
# check_eq WHAT GOT WANT
check_eq() {
	checks=$((checks + 1))
	if [[ "$2" == "$3" ]]; then
		printf 'ok: %s\n' "$1"
	else
		check_fail "$1: got '$2', want '$3'"
	fi
}
# check_run WHAT CMD...: CMD succeeds (its output is shown).
check_run() {
	local what="$1"
	shift
	checks=$((checks + 1))
	if "$@"; then
		printf 'ok: %s\n' "$what"
	else
		check_fail "$what"
	fi
}
# step NAME: ends the step before (its time is kept) and names the next.
step_name=""
step() {
	if [[ -n "$step_name" ]]; then
		timings+=("$step_name $((SECONDS - step_at))s")
	fi
	step_name="$1"
	step_at=$SECONDS
	printf '\n==== compose: %s\n' "$1"
}
# fatal MESSAGE: a failure after which the test cannot go on.
fatal() {
	check_fail "$*"
	exit 1
}
# wait_for WHAT CMD...: CMD until it succeeds, at most $wait_s seconds, 1 s
# apart; returns 1 (and says so) when it never did.
wait_for() {
	local what="$1" deadline=$((SECONDS + wait_s))
	shift
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			op_log "timed out after ${wait_s}s waiting for $what"
			return 1
		fi
		sleep 1
	done
}

# --- clean-up -------------------------------------------------------------------
engine_pid=""
stack_up=0
bg_pids=()
finish() {
	local status=$? p
	trap '' INT TERM
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[[ -z "$step_name" ]] || timings+=("$step_name $((SECONDS - step_at))s")
	if ((stack_up)); then
		if ((status != 0 || fails != 0)); then
			op_log "the stack's state and the services' last log lines:"
			compose ps >&2 || true
			compose logs --no-color --tail=25 >&2 || true
		fi
		if [[ "${KEEP_STACK:-0}" == 1 ]]; then
			op_log "KEEP_STACK=1: the stack is up: remove it with: ${compose_cmd[*]} -p $proj -f $compose_file down -v"
		else
			compose down -v --remove-orphans >/dev/null 2>&1 || op_warn "compose down -v failed for project $proj"
		fi
	fi
	if [[ -n "$engine_pid" ]]; then
		if [[ "${KEEP_STACK:-0}" == 1 ]]; then
			op_log "KEEP_STACK=1: the engine this run started is still running (pid $engine_pid, log $tmp/dockerd.log)"
		else
			stop_engine
		fi
	fi
	[[ "${KEEP_STACK:-0}" == 1 ]] || rm -rf "$tmp"
	((status != 0)) || ((fails == 0)) || status=1
	((status == 0 || fails > 0)) || check_fail "exit status $status"
	printf '\ncompose: steps: %s\n' "${timings[*]}"
	printf 'compose: the test took %ds\n' "$((SECONDS - started_at))"
	printf 'compose test: %d checks, %d failed\n' "$checks" "$fails"
	if ((fails == 0)); then
		printf 'compose: 1 passed, 0 failed\n'
	else
		printf 'compose: 0 passed, 1 failed\n'
	fi
	exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. the engine ----------------------------------------------------------------
# install_packages PKG...: apt-get install those of PKG not installed, with
# services kept from starting (as ops/install-deps.sh does).
install_packages() {
	local -a missing=() su=()
	local p policy=/usr/sbin/policy-rc.d policy_added=0 rc=0
	for p in "$@"; do
		[[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == ii* ]] || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null 2>&1 ||
		op_die "missing ${missing[*]} and no apt-get here: install a Docker engine and docker-compose yourself"
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 || op_die "need root to install ${missing[*]}: run as root, or install sudo"
		su=(sudo)
	fi
	op_log "installing ${missing[*]}"
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\n# Written by orderpipe tests/compose/run.sh for the length of an install.\nexit 101\n' |
			"${su[@]}" tee "$policy" >/dev/null
		"${su[@]}" chmod 755 "$policy"
		policy_added=1
	fi
	"${su[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null &&
		"${su[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			install "${missing[@]}" >"$tmp/apt.log" 2>&1 || rc=$?
	((policy_added)) && "${su[@]}" rm -f "$policy"
	if ((rc != 0)); then
		op_log_tail "$tmp/apt.log" 20
		op_die "apt-get install ${missing[*]} failed (see above)"
	fi
}

stop_engine() {
	op_log "stopping the dockerd this run started (pid $engine_pid)"
	kill -TERM "$engine_pid" 2>/dev/null || true
	if ! op_wait_pid_exit "$engine_pid" 60; then
		op_warn "dockerd did not stop within 60 s: killing it"
		kill -KILL "$engine_pid" 2>/dev/null || true
	fi
	wait "$engine_pid" 2>/dev/null || true
	engine_pid=""
}

step "engine"
if docker info >/dev/null 2>&1; then
	op_log "a docker engine answers: using it ($(docker info -f '{{.ServerVersion}}' 2>/dev/null))"
else
	((EUID == 0)) ||
		op_die "no docker engine answers ('docker info' fails): start dockerd, or run this as root, which installs and starts one"
	install_packages docker.io docker-compose iptables debootstrap
	op_log "no docker engine answers: starting dockerd --storage-driver=overlay2 (log: $tmp/dockerd.log)"
	setsid dockerd --storage-driver=overlay2 </dev/null >"$tmp/dockerd.log" 2>&1 &
	engine_pid=$!
	if ! op_wait_until 60 "dockerd to answer" docker info || ! op_pid_alive "$engine_pid"; then
		op_log_tail "$tmp/dockerd.log" 30
		fatal "dockerd did not start (see its log above)"
	fi
	op_log "dockerd $(docker info -f '{{.ServerVersion}}') is up (pid $engine_pid)"
fi
if [[ -n "${OP_COMPOSE:-}" ]]; then
	read -ra compose_cmd <<<"$OP_COMPOSE"
elif command -v docker-compose >/dev/null 2>&1; then
	compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
	compose_cmd=(docker compose)
else
	install_packages docker-compose
	compose_cmd=(docker-compose)
fi
compose() {
	"${compose_cmd[@]}" -p "$proj" -f "$compose_file" "$@"
}
op_log "compose: ${compose_cmd[*]} ($("${compose_cmd[@]}" version 2>/dev/null | head -n 1)), project $proj"

# --- 2. images ------------------------------------------------------------------------
step "images"
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1 && ! command -v debootstrap >/dev/null 2>&1; then
	install_packages debootstrap
fi
"$here/images.sh" "$tmp/images.env" >/dev/null || fatal "tests/compose/images.sh failed (see above)"
set -a
# shellcheck source=/dev/null
. "$tmp/images.env"
set +a
ingest_port="$(op_free_port)"
prom_port="$(op_free_port "$ingest_port")"
feed_port="$(op_free_port "$ingest_port" "$prom_port")"
export OP_INGEST_PUBLISH="127.0.0.1:$ingest_port" OP_PROMETHEUS_PUBLISH="127.0.0.1:$prom_port" \
	OP_FEED_PUBLISH="127.0.0.1:$feed_port"
ingest_url="http://127.0.0.1:$ingest_port"
prom_url="http://127.0.0.1:$prom_port"

# --- 3. build, up, healthy ------------------------------------------------------------
step "build"
if ! compose build >"$tmp/build.log" 2>&1; then
	op_log_tail "$tmp/build.log" 40
	fatal "compose build failed (see above)"
fi
op_log "built: $(docker image inspect -f '{{.Id}}' orderpipe:latest | cut -c1-19)"

step "up"
mapfile -t services < <(compose config --services | LC_ALL=C sort)
op_log "services: ${services[*]}"
stack_up=1
if ! compose up -d >"$tmp/up.log" 2>&1; then
	op_log_tail "$tmp/up.log" 40
	fatal "compose up -d failed (see above)"
fi

# cid SERVICE: the id of SERVICE's container in this project.
cid() {
	docker ps -aq --filter "label=com.docker.compose.project=$proj" \
		--filter "label=com.docker.compose.service=$1" | head -n 1
}
# stack_state: one line per container: "SERVICE STATE", STATE being the
# health when it has a health check, else "exited:CODE" or the status.
stack_state() {
	local c
	for c in $(docker ps -aq --filter "label=com.docker.compose.project=$proj"); do
		docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}{{else if eq .State.Status "exited"}}exited:{{.State.ExitCode}}{{else}}{{.State.Status}}{{end}}' "$c"
	done | LC_ALL=C sort
}
# want_state: stack_state as it should be once the stack is up: a one-shot
# service (one that others depend on with service_completed_successfully:
# setup) exited 0, a service with a health check healthy, any other running.
compose config >"$tmp/config.yml" 2>"$tmp/config.err" || {
	cat "$tmp/config.err" >&2
	fatal "compose config failed (see above)"
}
want="$(python3 - "$tmp/config.yml" <<'PY'
import sys
import yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
one_shot = {dep for s in services.values() if isinstance(s.get("depends_on"), dict)
            for dep, how in s["depends_on"].items()
            if (how or {}).get("condition") == "service_completed_successfully"}
for name in sorted(services):
    if name in one_shot:
        print(name, "exited:0")
    elif services[name].get("healthcheck"):
        print(name, "healthy")
    else:
        print(name, "running")
PY
)" || fatal "cannot read the services from compose config"
want_state() {
	printf '%s\n' "$want" | LC_ALL=C sort
}
all_healthy() {
	[[ "$(stack_state)" == "$(want_state)" ]]
}
wait_for "every service healthy" all_healthy || true
check_eq "every service healthy, setup exited 0" "$(stack_state)" "$(want_state)"
all_healthy || fatal "the stack did not come up healthy"

# docker exec helpers: psql and redis-cli inside their containers.
pg() {
	docker exec "$(cid postgres)" psql -U orderpipe -d orderpipe -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}
rcli() {
	docker exec "$(cid redis)" redis-cli --raw "$@"
}

# --- 4. Prometheus -----------------------------------------------------------------
step "prometheus"
tolerate=()
if printf '%s\n' "${services[@]}" | grep -qx feed; then
	op_log "the compose file has a feed service: its target must be up too"
else
	tolerate=(--tolerate feed:8081)
	op_log "no feed service in docker-compose.yml yet: its target feed:8081 may be down"
fi
targets_up() {
	python3 "$here/prom.py" targets "$prom_url" "${tolerate[@]}"
}
wait_for "every Prometheus target up" targets_up || true
check_run "Prometheus: every target up (/api/v1/targets)" targets_up
n_alerts="$(python3 -c 'import sys, yaml; print(sum(1 for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r))' "$OP_ROOT/ops/prometheus/alerts.yml")"
check_run "Prometheus: the $n_alerts alert rules of alerts.yml loaded and healthy (/api/v1/rules)" \
	python3 "$here/prom.py" rules "$prom_url" "$n_alerts"

# --- 5. orders, fills -------------------------------------------------------------------
# The answers of every submit.py run go to $tmp/answers: one line per request.
answers="$tmp/answers"
: >"$answers"
submitted=0
# submit COUNT [PACE_MS]: COUNT orders, the next ones of the sequence.
submit() {
	python3 "$here/submit.py" "$ingest_url" "$answers" "$1" --start "$submitted" --pace-ms "${2:-0}"
	submitted=$((submitted + $1))
}
# expected_state / recorded_state: per symbol, side and status the number of
# orders, then per symbol the number of fills — as the answers say it must
# be once every accepted order is matched and recorded, and as PostgreSQL has it.
# An order answered 503 counts when PostgreSQL has it (its client_order_id):
# a 503 for a request Redis took just before it was killed is ambiguous by
# nature (docs/ingest.md, "Durability and failures").
expected_state() {
	pg "SELECT client_order_id FROM orders WHERE client_order_id IS NOT NULL" >"$tmp/rec.coids"
	awk 'NR == FNR { rec[$1] = 1; next }
	$1 == 202 || ($1 == 503 && ($5 in rec)) { n[$3 " " $4]++; syms[$3] = 1 }
	END {
		for (s in syms) {
			b = n[s " buy"] + 0; q = n[s " sell"] + 0; f = (b < q ? b : q)
			if (f) { print s, "buy", "FILLED", f; print s, "sell", "FILLED", f; print "fills", s, f }
			if (b - f) print s, "buy", "NEW", b - f
			if (q - f) print s, "sell", "NEW", q - f
		}
	}' "$tmp/rec.coids" "$answers" | LC_ALL=C sort
}
recorded_state() {
	{
		pg "SELECT symbol || ' ' || side || ' ' || status || ' ' || count(*) FROM orders GROUP BY symbol, side, status"
		pg "SELECT 'fills ' || symbol || ' ' || count(*) FROM fills GROUP BY symbol"
	} | LC_ALL=C sort
}
state_matches() {
	[[ "$(recorded_state)" == "$(expected_state)" ]]
}
# check_recorded WHAT: waits until PostgreSQL holds what the answers say,
# then checks it, and that the accepted order ids are exactly the recorded ones.
check_recorded() {
	wait_for "$1: every accepted order recorded and matched" state_matches || true
	check_eq "$1: orders by symbol, side and status, and fills by symbol" "$(recorded_state)" "$(expected_state)"
	pg "SELECT order_id FROM orders" | LC_ALL=C sort >"$tmp/recorded.ids"
	awk '$1 == 202 { print $2 }' "$answers" | LC_ALL=C sort >"$tmp/accepted.ids"
	check_eq "$1: orders answered 202 and not in PostgreSQL (first 5)" \
		"$(LC_ALL=C comm -23 "$tmp/accepted.ids" "$tmp/recorded.ids" | head -n 5 | tr '\n' ' ')" ""
	# Recorded without a 202: only orders answered 503 (ambiguous), never
	# one answered anything else or never sent.
	pg "SELECT client_order_id FROM orders" | LC_ALL=C sort >"$tmp/recorded.coids"
	awk '$1 == 202 || $1 == 503 { print $5 }' "$answers" | LC_ALL=C sort >"$tmp/possible.coids"
	check_eq "$1: orders in PostgreSQL answered neither 202 nor 503 (first 5)" \
		"$(LC_ALL=C comm -13 "$tmp/possible.coids" "$tmp/recorded.coids" | head -n 5 | tr '\n' ' ')" ""
	local amb
	amb="$(awk '$1 == 503 { print $5 }' "$answers" | LC_ALL=C sort | LC_ALL=C comm -12 - "$tmp/recorded.coids" | wc -l)"
	op_log "$1: $amb order(s) answered 503 were queued all the same (the request reached Redis just before it went away)"
	check_eq "$1: every request got an HTTP answer" "$(grep -c '^ERR' "$answers" || true)" 0
}

step "orders"
submit 200
check_eq "200 orders: all answered 202" "$(grep -c '^202 ' "$answers" || true)" 200
check_recorded "200 orders"
op_log "recorded: $(pg "SELECT count(*) FROM orders") orders, $(pg "SELECT count(*) FROM fills") fills"

# --- 6. a matcher killed ----------------------------------------------------------------
step "matcher-takeover"
shards="$(docker exec "$(cid ingest)" printenv ORDER_SHARDS)"
aapl_shard="$(python3 -c '
import sys
h = 2166136261
for c in b"AAPL":
    h = ((h ^ c) * 16777619) & 0xFFFFFFFF
print(h % int(sys.argv[1]))' "$shards")"
mapfile -t matchers < <(printf '%s\n' "${services[@]}" | grep '^matcher')
((${#matchers[@]} >= 2)) || fatal "the compose file runs ${#matchers[@]} matcher(s): the takeover needs two"
# matcher_name SERVICE: its MATCHER_NAME, from its /healthz.
matcher_name() {
	docker exec "$(cid "$1")" curl -fsS http://127.0.0.1:9101/healthz |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])'
}
# owners: the lease holder of every shard, one a line.
owners() {
	local s
	for ((s = 0; s < shards; s++)); do rcli GET "lease:{$s}"; done
}
declare -A name_of=()
for m in "${matchers[@]}"; do name_of[$m]="$(matcher_name "$m")"; done
# balanced: every matcher holds a lease.
balanced() {
	local m o
	o="$(owners)"
	for m in "${matchers[@]}"; do grep -qxF "${name_of[$m]}" <<<"$o" || return 1; done
}
wait_for "the matchers to share the shards" balanced || true
check_run "every matcher holds a lease before the kill" balanced
victim=""
aapl_owner="$(rcli GET "lease:{$aapl_shard}")"
for m in "${matchers[@]}"; do [[ "${name_of[$m]}" == "$aapl_owner" ]] && victim="$m"; done
[[ -n "$victim" ]] || fatal "AAPL's shard $aapl_shard is held by '$aapl_owner', none of the matchers"
survivor=""
for m in "${matchers[@]}"; do [[ "$m" != "$victim" ]] && survivor="$m" && break; done
op_log "AAPL is on shard $aapl_shard, owned by $victim (${name_of[$victim]}); killing it while orders flow"
victim_shards="$(owners | grep -nxF "${name_of[$victim]}" | cut -d: -f1 | awk '{ printf "%s%d", (NR > 1 ? " " : ""), $1 - 1 }')"
op_log "$victim owns shards $victim_shards"

lines() { wc -l <"$answers"; }
base="$(lines)"
python3 "$here/submit.py" "$ingest_url" "$answers" 300 --start "$submitted" --pace-ms 10 &
bg_pids+=($!)
submitter=$!
submitted=$((submitted + 300))
has_lines() { (($(lines) >= $1)); }
wait_for "the first orders of the flow" has_lines $((base + 60)) || true
docker kill "$(cid "$victim")" >/dev/null
op_log "killed $victim (SIGKILL) after $(($(lines) - base)) of 300 orders"
wait "$submitter" || check_fail "submit.py during the matcher kill exited non-zero"
bg_pids=()
all_to_survivor() {
	[[ "$(owners | sort -u)" == "${name_of[$survivor]}" ]]
}
wait_for "$survivor to hold every lease" all_to_survivor || true
check_eq "after the kill: every lease is held by $survivor" "$(owners | sort -u | tr '\n' ' ')" "${name_of[$survivor]} "
check_eq "$victim stays down (docker kill: no restart)" "$(docker inspect -f '{{.State.Status}}' "$(cid "$victim")")" exited
check_eq "orders during the kill: all answered 202" "$(tail -n 300 "$answers" | grep -c '^202 ' || true)" 300
check_recorded "after the matcher kill"
victim_down() {
	python3 "$here/prom.py" alert "$prom_url" OrderpipeTargetDown "$victim:9101"
}
wait_for "Prometheus to see $victim down" victim_down || true
check_run "Prometheus: OrderpipeTargetDown pending or firing for $victim:9101" victim_down
docker start "$(cid "$victim")" >/dev/null
wait_for "every service healthy again" all_healthy || true
check_eq "$victim started again: every service healthy" "$(stack_state)" "$(want_state)"

# --- 7. Redis killed ---------------------------------------------------------------
step "redis-restart"
check_eq "redis appendonly" "$(rcli CONFIG GET appendonly | tail -n 1)" yes
check_eq "redis appendfsync" "$(rcli CONFIG GET appendfsync | tail -n 1)" always
base="$(lines)"
python3 "$here/submit.py" "$ingest_url" "$answers" 600 --start "$submitted" --pace-ms 10 &
bg_pids+=($!)
submitter=$!
submitted=$((submitted + 600))
wait_for "the first orders of the flow" has_lines $((base + 100)) || true
docker kill "$(cid redis)" >/dev/null
op_log "killed redis (SIGKILL) after $(($(lines) - base)) of 600 orders"
refused() { tail -n +"$((base + 1))" "$answers" | grep -qv '^202 '; }
wait_for "ingest to refuse an order while redis is down" refused || true
check_run "ingest refused orders while redis was down" refused
docker start "$(cid redis)" >/dev/null
op_log "redis started again after $(($(lines) - base)) of 600 orders"
wait "$submitter" || check_fail "submit.py during the redis kill exited non-zero"
bg_pids=()
flow="$(tail -n +"$((base + 1))" "$answers")"
op_log "answers during the redis kill: $(awk '{ n[$1]++ } END { for (s in n) printf "%s×%d ", s, n[s] }' <<<"$flow")"
check_eq "answers during the redis kill: only 202 and 503" "$(awk '$1 != 202 && $1 != 503' <<<"$flow" | head -n 3)" ""
check_run "ingest accepted orders again after the restart (a 202 after the last refusal)" \
	awk '$1 != 202 { last = NR } $1 == 202 { ok = NR } END { exit !(last && ok > last) }' <<<"$flow"
wait_for "every service healthy again" all_healthy || true
check_eq "after the redis restart: every service healthy" "$(stack_state)" "$(want_state)"
check_recorded "after the redis restart"
wait_for "every Prometheus target up" targets_up || true
check_run "Prometheus: every target up again" targets_up
op_log "recorded: $(pg "SELECT count(*) FROM orders") orders of $(wc -l <"$answers") submitted, $(pg "SELECT count(*) FROM fills") fills"

# --- 8. down -v, nothing left ----------------------------------------------------------
step "down"
if compose down -v --remove-orphans >"$tmp/down.log" 2>&1; then
	stack_up=0
else
	op_log_tail "$tmp/down.log" 20
	check_fail "compose down -v failed (see above)"
fi
check_eq "no container of $proj left" "$(docker ps -aq --filter "label=com.docker.compose.project=$proj" | wc -l)" 0
check_eq "no network of $proj left" "$(docker network ls -q --filter "label=com.docker.compose.project=$proj" | wc -l)" 0
check_eq "no volume of $proj left" "$(docker volume ls -q --filter "label=com.docker.compose.project=$proj" | wc -l)" 0
