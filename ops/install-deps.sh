#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages orderpipe needs to build, run, test and
# benchmark: compilers and tools, the C libraries, redis-server, PostgreSQL 15,
# Prometheus (for promtool).
#
#   ops/install-deps.sh [--if-missing]
#
# Idempotent: it asks dpkg what is installed first and only runs apt-get
# (update, then install) when something is missing, printing what it installs.
# With --if-missing (what make calls before every run, test and bench) it is
# silent and quick when nothing is missing, and on a system without apt it only
# warns. Uses sudo when not run as root.
#
# The packages of redis-server, PostgreSQL and Prometheus would start their
# own servers (redis on 6379, a 'main' cluster on 5432, prometheus on 9090).
# orderpipe never uses those: it runs its own on other ports (ops/redis.sh,
# ops/postgres.sh), and only Prometheus' promtool. So while
# installing, a policy-rc.d that denies service starts is put in place (unless
# the system already has one), and removed afterwards.
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if_missing=0
case "${1:-}" in
"") ;;
--if-missing) if_missing=1 ;;
*) printf 'usage: %s [--if-missing]\n' "$0" >&2; exit 2 ;;
esac

# What the project needs. "a|b" means: a, or b where a does not exist (an
# Ubuntu without PostgreSQL 15 gets its own version; ops/lib.sh finds it).
packages=(
	# build
	build-essential pkg-config git ca-certificates
	# libraries the services and tests link
	libhiredis-dev libmicrohttpd-dev libmsgpack-dev libpq-dev libjsmn-dev libcmocka-dev
	libwebsockets-dev
	# the feed's client tests (Node.js: ws, playwright-core) and the console's browser test
	nodejs chromium
	# the servers, and their clients used by ops/ and tests/
	redis-server redis-tools "postgresql-15|postgresql" "postgresql-client-15|postgresql-client"
	# what the ops/ and tests/ scripts use: ps, ss, flock/runuser, curl, python3 (end-to-end test)
	procps iproute2 util-linux curl python3 python3-yaml
	# promtool, for the tests of the alert rules (ops/prometheus); its server is not started
	prometheus
	# lint, format, memory checks
	clang clang-tidy clang-format cppcheck valgrind
	# benchmarks and their plots
	wrk hyperfine gnuplot-nox
)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	if ((if_missing)); then
		op_warn "no dpkg/apt-get here: skipping the package check; install the equivalents of these yourself: ${packages[*]}"
		exit 0
	fi
	op_die "this script needs a debian or ubuntu system (dpkg-query and apt-get): install the equivalents of these packages yourself: ${packages[*]}"
fi

# installed_set: print the names of the installed packages among ours.
installed_set() {
	local -a names=()
	local p
	for p in "${packages[@]}"; do
		IFS='|' read -ra alts <<<"$p"
		names+=("${alts[@]}")
	done
	dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${names[@]}" 2>/dev/null |
		awk '$2 == "ii" { print $1 }' || true
}

# missing_list: print, one a line, each requirement that is not installed.
missing_list() {
	local installed p a ok
	installed=" $(installed_set | tr '\n' ' ') "
	for p in "${packages[@]}"; do
		ok=0
		IFS='|' read -ra alts <<<"$p"
		for a in "${alts[@]}"; do
			[[ "$installed" == *" $a "* ]] && ok=1
		done
		((ok)) || printf '%s\n' "$p"
	done
}

# js_deps: npm, when the nodejs package came without it (Debian's own
# nodejs has it apart; NodeSource's bundles it), then the test clients'
# npm packages (tests/js: ws, playwright-core) at the versions of its
# package-lock.json, installed only when node_modules does not match it.
js_deps() {
	local dir
	local -a su=()
	((EUID == 0)) || su=(sudo)
	dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/js"
	if ! command -v npm >/dev/null 2>&1; then
		op_log "installing npm"
		"${su[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends npm >/dev/null ||
			op_die "apt-get install npm failed: install Node.js 18+ with npm yourself"
	fi
	if [[ -f "$dir/package-lock.json" ]] &&
		! cmp -s "$dir/package-lock.json" "$dir/node_modules/.orderpipe-lock" 2>/dev/null; then
		op_log "installing the test clients' npm packages (tests/js)"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
			op_die "npm ci in '$dir' failed: check that the npm registry is reachable"
		cp "$dir/package-lock.json" "$dir/node_modules/.orderpipe-lock"
	fi
}

mapfile -t missing < <(missing_list)
if ((${#missing[@]} == 0)); then
	((if_missing)) || op_log "all ${#packages[@]} required packages are installed"
	js_deps
	exit 0
fi

sudo=()
if ((EUID != 0)); then
	command -v sudo >/dev/null 2>&1 ||
		op_die "need root to install ${missing[*]}: run this script as root, or install sudo"
	sudo=(sudo)
fi

# Keep the packages' own redis and postgresql from starting while installing.
policy=/usr/sbin/policy-rc.d
policy_added=0
remove_policy() {
	if ((policy_added)); then
		"${sudo[@]}" rm -f "$policy" || op_warn "cannot remove $policy: remove it by hand, or services will not start on package installs"
	fi
}
trap remove_policy EXIT
if [[ ! -e "$policy" ]]; then
	printf '#!/bin/sh\n# Written by orderpipe ops/install-deps.sh for the length of an install.\nexit 101\n' |
		"${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod 755 "$policy"
	policy_added=1
fi

export DEBIAN_FRONTEND=noninteractive
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

op_log "missing packages: ${missing[*]}"
op_log "running apt-get update"
"${apt[@]}" update >/dev/null || op_die "apt-get update failed: check the network and /etc/apt/sources.list, then run ops/install-deps.sh again"

# Resolve each "a|b" to the first alternative apt knows.
to_install=()
for p in "${missing[@]}"; do
	IFS='|' read -ra alts <<<"$p"
	pick=""
	for a in "${alts[@]}"; do
		if apt-cache show "$a" >/dev/null 2>&1; then
			pick="$a"
			break
		fi
	done
	[[ -n "$pick" ]] || op_die "no package '${alts[0]}' in the apt sources (tried: ${alts[*]}): enable the distribution's main repository, or install it by hand"
	to_install+=("$pick")
done

op_log "installing: ${to_install[*]}"
"${apt[@]}" install --no-install-recommends "${to_install[@]}" ||
	op_die "apt-get install failed for: ${to_install[*]} (see apt's messages above)"

mapfile -t still < <(missing_list)
((${#still[@]} == 0)) || op_die "still missing after apt-get install: ${still[*]}"
op_log "installed: ${to_install[*]}"
js_deps
