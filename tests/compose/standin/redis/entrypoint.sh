#!/bin/sh
# The stand-in redis image's entry point: `redis-server [CONFIG] ARGS...`
# runs with protected mode off, as the official image's build does (without
# it, Redis refuses clients from other containers when no password is set);
# a later --protected-mode among ARGS still wins. Anything else is run as is.
set -e
if [ "${1:-}" = redis-server ]; then
	shift
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
		conf="$1"
		shift
		exec redis-server "$conf" --protected-mode no "$@"
	fi
	exec redis-server --protected-mode no "$@"
fi
exec "$@"
