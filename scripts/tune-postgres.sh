#!/usr/bin/env bash
# Sizes the memory settings of the PostgreSQL server that scripts/ensure-postgres.sh finds for a
# machine that runs it for merchantagg (the benchmark's machines: source, analytics database,
# API and refresh on one host), as a DBA would at install time, and restarts it so they apply:
#   shared_buffers        a quarter of RAM: the breakdown rows a refresh updates and the API
#                         reads stay in PostgreSQL's own memory (with the 128 MB default, a 10M
#                         refresh wrote out and read back thousands of pages per set);
#   effective_cache_size  three quarters of RAM;
#   maintenance_work_mem  RAM/16, at most 1 GB: a backfill ends by rebuilding its indexes;
#   max_wal_size          4 GB: fewer forced checkpoints (and whole-page WAL) under a backfill.
# Idempotent. The server keeps them in postgresql.auto.conf; `ALTER SYSTEM RESET ...` undoes
# them. Needs a superuser (the benchmark's trust auth as postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/ensure-postgres.sh)"

ram_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
shared=$((ram_mb / 4))
cache=$((ram_mb * 3 / 4))
maint=$((ram_mb / 16 < 1024 ? ram_mb / 16 : 1024))

psql -qX -o /dev/null -v ON_ERROR_STOP=1 -d postgres <<SQL
ALTER SYSTEM SET shared_buffers = '${shared}MB';
ALTER SYSTEM SET effective_cache_size = '${cache}MB';
ALTER SYSTEM SET maintenance_work_mem = '${maint}MB';
ALTER SYSTEM SET max_wal_size = '4GB';
SELECT pg_reload_conf(); -- all but shared_buffers apply on reload
SQL

if [ "$(psql -qXAt -d postgres -c "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")" = "$shared" ]; then
    echo "tune-postgres: already in effect (shared_buffers ${shared}MB)" >&2
    exit 0
fi
# shared_buffers takes a restart: the Debian cluster's, or the private one's.
if [ "$PGPORT" = 5432 ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql/15/main ] && [ "$(id -u)" = 0 ]; then
    pg_ctlcluster --skip-systemctl-redirect 15 main restart
elif [ -f .pgdata/PG_VERSION ] && [ "$PGPORT" = "${PRIVATE_PGPORT:-55432}" ]; then
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    as_pg "$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pg_ctl)")/pg_ctl" -D "$PWD/.pgdata" -w restart >&2
else
    echo "tune-postgres: settings written; restart the server at $PGHOST:$PGPORT for shared_buffers to apply" >&2
    exit 1
fi
echo "tune-postgres: shared_buffers ${shared}MB, effective_cache_size ${cache}MB, maintenance_work_mem ${maint}MB, max_wal_size 4GB" >&2
