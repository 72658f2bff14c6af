#!/usr/bin/env bash
# make demo-clean: drops what make demo created (its two databases and .demo/). A running demo
# server holds connections: stop it first.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/ensure-postgres.sh)"
SRC_DB=${SRC_DB:-merchantagg_demo_source}
AGG_DB=${AGG_DB:-merchantagg_demo}
base="postgres://$PGUSER@$PGHOST:$PGPORT"
for db in "$AGG_DB" "$SRC_DB"; do
    psql "$base/postgres" -qc "DROP DATABASE IF EXISTS \"$db\""
done
rm -rf .demo
echo "dropped $SRC_DB, $AGG_DB and .demo/"
