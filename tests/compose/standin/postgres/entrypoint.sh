#!/bin/bash
# The stand-in postgres image's entry point. `postgres ARGS...` on an empty
# $PGDATA first creates the cluster as the official image does: superuser
# $POSTGRES_USER (default postgres) with $POSTGRES_PASSWORD (required),
# database $POSTGRES_DB (default: the user's name), listening on every
# address, password (scram-sha-256) logins from other hosts, trust on the
# local socket. Then, or with a cluster already there, it runs the server.
# Anything else is run as is.
set -euo pipefail

if [[ "${1:-}" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
	if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
		printf 'docker-entrypoint.sh: error: POSTGRES_PASSWORD is not set: the cluster needs a password for logins from other containers\n' >&2
		exit 1
	fi
	user="${POSTGRES_USER:-postgres}"
	db="${POSTGRES_DB:-$user}"
	initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
	printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	if [[ "$db" != postgres ]]; then
		pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
		psql -v ON_ERROR_STOP=1 -X -q --username="$user" --dbname=postgres \
			-c "CREATE DATABASE \"$db\""
		pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	fi
	printf 'docker-entrypoint.sh: created the cluster (user %s, database %s)\n' "$user" "$db" >&2
fi
exec "$@"
