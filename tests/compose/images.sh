#!/usr/bin/env bash
# Makes sure the Docker engine has every image docker-compose.yml needs that
# is not built from this repository, pulling the official ones, or building
# stand-ins where no registry can be reached.
#
#   tests/compose/images.sh [ENV-FILE]
#
# For each of the compose file's third-party images — redis, postgres,
# prom/prometheus — and the debian:bookworm-slim base the Dockerfile builds
# on:
#   1. the image named by the compose file (its default, or the one the
#      caller names in OP_REDIS_IMAGE, OP_POSTGRES_IMAGE, OP_PROMETHEUS_IMAGE)
#      is used when the engine has it or can pull it;
#   2. otherwise (offline: the first failed pull stops further tries) a
#      stand-in is built and used instead: the base with `debootstrap
#      --variant=minbase bookworm` and `docker import`, tagged
#      debian:bookworm-slim (the name the Dockerfile builds FROM); redis,
#      postgres and prometheus from Debian's redis-server, postgresql-15 and
#      prometheus packages on that base (tests/compose/standin/*, tagged
#      orderpipe-standin/NAME). An image named in OP_*_IMAGE is never
#      replaced by a stand-in: it must exist or be pullable.
# Stand-ins stay in the engine: the next run finds the base, and `docker
# build` rebuilds a stand-in from its layer cache in seconds.
#
# Prints (and writes to ENV-FILE when given) the OP_*_IMAGE assignments to
# run the compose file with, e.g. OP_REDIS_IMAGE=orderpipe-standin/redis:7.0.
# Progress goes to stderr. Needs a Docker engine that answers, and
# debootstrap when the base has to be built (tests/compose/run.sh installs
# both).
#
# Environment: OP_REDIS_IMAGE, OP_POSTGRES_IMAGE, OP_PROMETHEUS_IMAGE (as
# above), OP_DEBIAN_MIRROR (the mirror debootstrap and the base's apt use,
# default http://deb.debian.org/debian), OP_DEBIAN_SECURITY_MIRROR (default
# http://deb.debian.org/debian-security), OP_PULL_TIMEOUT (seconds per pull,
# default 300).
set -euo pipefail
# shellcheck source=ops/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../ops/lib.sh"

(($# <= 1)) || { printf 'usage: %s [ENV-FILE]\n' "$0" >&2; exit 2; }
env_file="${1:-}"
here="$OP_ROOT/tests/compose"
compose_file="$OP_ROOT/docker-compose.yml"
mirror="${OP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${OP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
pull_timeout="${OP_PULL_TIMEOUT:-300}"
[[ "$pull_timeout" =~ ^[1-9][0-9]*$ ]] || op_die "invalid OP_PULL_TIMEOUT='$pull_timeout': expected whole seconds"

op_need_cmd docker docker.io
docker info >/dev/null 2>&1 ||
	op_die "no docker engine answers ('docker info' fails): start dockerd, or run tests/compose/run.sh, which starts one"

# compose_default VAR: the default the compose file gives ${VAR:-default}.
compose_default() {
	local v
	v="$(sed -n "s/.*\${$1:-\([^}]*\)}.*/\1/p" "$compose_file" | head -n 1)"
	[[ -n "$v" ]] || op_die "docker-compose.yml has no \${$1:-<image>}: the image must stay overridable for the stand-ins"
	printf '%s\n' "$v"
}

# have IMAGE: the engine has IMAGE.
have() {
	docker image inspect "$1" >/dev/null 2>&1
}

# have_or_pull IMAGE: succeed if the engine has IMAGE or could pull it. After
# one failed pull the registry counts as unreachable and no other is tried.
registry=unknown
have_or_pull() {
	local err
	have "$1" && return 0
	[[ "$registry" == unreachable ]] && return 1
	op_log "pulling $1"
	if err="$(timeout "$pull_timeout" docker pull -q "$1" 2>&1 >/dev/null)"; then
		registry=reachable
		return 0
	fi
	op_log "cannot pull $1: ${err:-timed out after ${pull_timeout}s}"
	[[ "$registry" == reachable ]] || registry=unreachable
	return 1
}

# build_base: debian:bookworm-slim from debootstrap (minbase), with the
# official image's apt sources (bookworm, -updates, -security) and its
# policy-rc.d (no service starts on package installs), without apt's caches.
build_base() {
	local rootfs
	op_need_cmd debootstrap
	rootfs="$(mktemp -d /var/tmp/orderpipe-rootfs.XXXXXX)"
	# shellcheck disable=SC2064 # expand now: the trap must remove this one
	trap "rm -rf '$rootfs'" EXIT
	op_log "building the debian:bookworm-slim stand-in: debootstrap --variant=minbase bookworm from $mirror"
	debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
		op_log_tail "$rootfs.log" 20
		rm -f "$rootfs.log"
		op_die "debootstrap of bookworm from '$mirror' failed (see above): check that the mirror is reachable, or set OP_DEBIAN_MIRROR"
	}
	rm -f "$rootfs.log"
	rm -f "$rootfs/etc/apt/sources.list"
	cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $mirror
		Suites: bookworm bookworm-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: $security_mirror
		Suites: bookworm-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	printf '#!/bin/sh\n# As in the official image: no service starts during image builds.\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
	chmod 755 "$rootfs/usr/sbin/policy-rc.d"
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
	tar -C "$rootfs" --numeric-owner -c . |
		docker import --change 'CMD ["bash"]' \
			--change 'LABEL org.orderpipe.standin="debootstrap --variant=minbase bookworm"' \
			--message "orderpipe stand-in for debian:bookworm-slim (tests/compose/images.sh)" \
			- debian:bookworm-slim >/dev/null ||
		op_die "docker import of the debootstrap tree failed"
	rm -rf "$rootfs"
	trap - EXIT
}

# build_standin NAME TAG: builds tests/compose/standin/NAME as TAG.
build_standin() {
	local log
	log="$(mktemp)"
	op_log "building the stand-in $2 (tests/compose/standin/$1: Debian's package on debian:bookworm-slim)"
	if ! DOCKER_BUILDKIT=0 docker build -t "$2" --label org.orderpipe.standin="$1" "$here/standin/$1" >"$log" 2>&1; then
		op_log_tail "$log" 30
		rm -f "$log"
		op_die "building the stand-in $2 failed (see above)"
	fi
	rm -f "$log"
}

# --- the base ---------------------------------------------------------------
if have_or_pull debian:bookworm-slim; then
	if [[ -n "$(docker image inspect -f '{{index .Config.Labels "org.orderpipe.standin"}}' debian:bookworm-slim 2>/dev/null)" ]]; then
		op_log "debian:bookworm-slim: the stand-in built earlier"
	else
		op_log "debian:bookworm-slim: the official image"
	fi
else
	build_base
fi

# --- redis, postgres, prometheus ----------------------------------------------
out=()
for spec in REDIS:redis:7.0 POSTGRES:postgres:15 PROMETHEUS:prometheus:2.42; do
	IFS=: read -r key name version <<<"$spec"
	var="OP_${key}_IMAGE"
	if [[ -n "${!var:-}" ]]; then
		have_or_pull "${!var}" ||
			op_die "$var='${!var}': the engine does not have that image and cannot pull it: unset $var to use the official image or a stand-in"
		op_log "$name: ${!var} (from $var)"
		out+=("$var=${!var}")
		continue
	fi
	official="$(compose_default "$var")"
	if have_or_pull "$official"; then
		op_log "$name: $official (official)"
		out+=("$var=$official")
	else
		build_standin "$name" "orderpipe-standin/$name:$version"
		out+=("$var=orderpipe-standin/$name:$version")
	fi
done

printf '%s\n' "${out[@]}"
if [[ -n "$env_file" ]]; then
	printf '%s\n' "${out[@]}" >"$env_file"
fi
