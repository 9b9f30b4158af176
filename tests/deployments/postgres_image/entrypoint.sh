#!/bin/sh
# The official postgres image's start, in short: the first time, a data folder owned by the superuser named in
# POSTGRES_USER with POSTGRES_PASSWORD (scram over TCP, from anywhere) and the database POSTGRES_DB; then the server,
# as the postgres user.
set -eu
bin=/usr/lib/postgresql/15/bin
if [ "${1:-}" = postgres ]; then
  shift
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password"
    chown postgres "$password"
    runuser -u postgres -- "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$password" \
      --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$password"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "CREATE DATABASE \"$POSTGRES_DB\";" | runuser -u postgres -- "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
  exec runuser -u postgres -- "$bin/postgres" -D "$PGDATA" "$@"
fi
exec "$@"
