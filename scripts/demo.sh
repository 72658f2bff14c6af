#!/usr/bin/env bash
# make demo: a running merchantagg on a seeded demo dataset. Idempotent: a second run reuses
# the databases, data and secret it finds and only refreshes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/ensure-postgres.sh)"

MERCHANTS=${MERCHANTS:-30}
ORDERS=${ORDERS:-200000}
SRC_DB=${SRC_DB:-merchantagg_demo_source}
AGG_DB=${AGG_DB:-merchantagg_demo}
base="postgres://$PGUSER@$PGHOST:$PGPORT"

for db in "$SRC_DB" "$AGG_DB"; do
    if [ -z "$(psql "$base/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
        psql "$base/postgres" -qc "CREATE DATABASE \"$db\""
    fi
done

mkdir -p .demo
[ -s .demo/jwt_secret ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .demo/jwt_secret
export SOURCE_DATABASE_URL="$base/$SRC_DB" ANALYTICS_DATABASE_URL="$base/$AGG_DB"
export JWT_SECRET="$(cat .demo/jwt_secret)" HTTP_ADDR="${HTTP_ADDR:-:8080}"

bin/merchantagg source init
if [ "$(psql "$SOURCE_DATABASE_URL" -tAc 'SELECT count(*) FROM orders')" = 0 ]; then
    # Two years up to yesterday, so that the dashboard's presets show data (today's orders
    # would have timestamps in the future).
    bin/merchantagg seed --merchants "$MERCHANTS" --orders "$ORDERS" --seed 1 \
        --from "$(date -u -d '2 years ago' +%F)" --to "$(date -u -d yesterday +%F)"
fi
bin/merchantagg migrate
bin/merchantagg refresh

token=$(bin/merchantagg token --merchant 1 --ttl 720h)
port=${HTTP_ADDR##*:}
cat <<EOT

merchantagg demo: $(psql "$SOURCE_DATABASE_URL" -tAc 'SELECT count(*) FROM orders') orders of $(psql "$SOURCE_DATABASE_URL" -tAc 'SELECT count(*) FROM merchants') merchants, serving on port $port.
  Dashboard of merchant 1 (the link logs in; the token is valid 30 days):
    http://localhost:$port/dashboard/#token=$token
  Swagger UI: http://localhost:$port/docs/
  In another shell, paste the token, then try the API:

export TOKEN=$token
curl -s -H "Authorization: Bearer \$TOKEN" 'http://localhost:$port/v1/summary?from=2026-01-01&to=2026-03-31'
curl -s -H "Authorization: Bearer \$TOKEN" 'http://localhost:$port/v1/breakdown/category?from=2026-01-01&to=2026-03-31&parent_id=0'

  Other merchants: JWT_SECRET=\$(cat .demo/jwt_secret) bin/merchantagg token --merchant 7
  Stop with Ctrl-C; make demo-clean drops the demo's databases and .demo/.

EOT
exec bin/merchantagg serve --with-worker
