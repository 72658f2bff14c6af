#!/usr/bin/env bash
# Makes sure a PostgreSQL 15 server with postgres_fdw answers, and prints the environment to
# reach it (eval "$(scripts/ensure-postgres.sh)"). In order of preference:
#   1. PGHOST/PGPORT if a server answers there;
#   2. 127.0.0.1:5432 if a server answers (starting the Debian cluster if it is installed but down);
#   3. a private cluster under .pgdata/ on port 55432 (initdb + pg_ctl, trust auth, user
#      postgres); MERCHANTAGG_PRIVATE_PG=1 goes straight to this one.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "$*" >&2; }
answers() { pg_isready -q -h "$1" -p "$2" -t 3 2>/dev/null; }
emit() { echo "export PGHOST=$1 PGPORT=$2 PGUSER=${PGUSER:-postgres}"; }

if ! command -v pg_isready >/dev/null; then
    say "installing PostgreSQL 15 (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15; } >&2
fi

private=${MERCHANTAGG_PRIVATE_PG:-0}
if [ "$private" != 1 ] && [ -n "${PGHOST:-}" ] && answers "$PGHOST" "${PGPORT:-5432}"; then
    emit "$PGHOST" "${PGPORT:-5432}"; exit 0
fi
if [ "$private" != 1 ] && answers 127.0.0.1 5432; then
    emit 127.0.0.1 5432; exit 0
fi
if [ "$private" != 1 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql/15/main ] && [ "$(id -u)" = 0 ]; then
    say "starting the system PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect 15 main start >&2 || true
    for _ in $(seq 1 30); do answers 127.0.0.1 5432 && { emit 127.0.0.1 5432; exit 0; }; sleep 1; done
fi

# A private cluster. initdb refuses to run as root, so root runs it as the postgres user.
bindir=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v initdb)")
data="$PWD/.pgdata"
port=${PRIVATE_PGPORT:-55432}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -f "$data/PG_VERSION" ]; then
    say "creating a private cluster in $data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >&2
fi
if ! answers 127.0.0.1 "$port"; then
    as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2
fi
answers 127.0.0.1 "$port" || { say "PostgreSQL did not start; see $data/server.log"; exit 1; }
emit 127.0.0.1 "$port"
