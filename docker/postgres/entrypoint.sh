#!/bin/sh
# Debian-package PostgreSQL with the official postgres image's start-up contract: on an empty
# $PGDATA, initdb with POSTGRES_USER/POSTGRES_PASSWORD (scram-sha-256, password required for
# every TCP client), create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql; then run the
# server in the foreground (PID 1 after exec: SIGTERM is a smart shutdown).
set -eu
: "${PGDATA:?PGDATA is not set}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}"
INITDB_DIR="${INITDB_DIR:-/docker-entrypoint-initdb.d}"
PG_PORT="${PG_PORT:-5432}"
PG_LISTEN="${PG_LISTEN:-*}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$PG_BIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  # Bootstrap on a private socket only (no TCP), as the official image does.
  sock="$(mktemp -d)"
  "$PG_BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k $sock" -w start >/dev/null
  export PGPASSWORD="$POSTGRES_PASSWORD"
  psql() { "$PG_BIN/psql" -h "$sock" -U "$POSTGRES_USER" -v ON_ERROR_STOP=1 -q "$@"; }
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for script in "$INITDB_DIR"/*.sql; do
    [ -e "$script" ] || continue
    psql -d "$POSTGRES_DB" -f "$script"
  done
  unset PGPASSWORD
  "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  rmdir "$sock"
fi

exec "$PG_BIN/postgres" -D "$PGDATA" -c "listen_addresses=$PG_LISTEN" -p "$PG_PORT" \
  -k /tmp "$@"
