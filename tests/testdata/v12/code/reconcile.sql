-- Reconciliation, version 1: compares cheap checksums of the source with the aggregates and
-- marks what drifted dirty. It catches what the change scan cannot see: hard deletes, fixes
-- made without bumping updated_at, transactions open longer than max_txn_age, and bugs.

DROP FUNCTION IF EXISTS refresh.reconcile();
-- Compares orders, accepted, delivered, items, gmv, returned and returned_amount per merchant ×
-- business month × status (months from 2000-01 to a year ahead) and marks every day of each
-- merchant month that differs dirty. Returns how many merchant months drifted. Run it right
-- after a change scan: a change made since the scan also differs, and is refreshed twice.
CREATE FUNCTION refresh.reconcile() RETURNS bigint
LANGUAGE plpgsql
SET enable_nestloop = off -- remote results are joined by hash (see refresh.load_days)
AS $$
DECLARE
    v_tz     text;
    v_first  constant date := '2000-01-01';
    v_bounds timestamptz[];
    v_end    date;
    v_drift  bigint;
BEGIN
    SELECT timezone INTO v_tz FROM refresh.settings;
    SELECT array_agg(m AT TIME ZONE v_tz ORDER BY m), max(m)::date INTO v_bounds, v_end
    FROM generate_series(v_first::timestamp, date_trunc('month', now() AT TIME ZONE v_tz) + interval '1 year', interval '1 month') AS m;

    WITH o AS MATERIALIZED (SELECT * FROM refresh.source_month_checks(v_bounds)),
         i AS MATERIALIZED (SELECT * FROM refresh.source_month_item_checks(v_bounds)),
         r AS MATERIALIZED (SELECT * FROM refresh.source_month_return_checks(v_bounds)),
    s AS (
        -- Bucket k covers [v_bounds[k], v_bounds[k+1]); 0 and the last are outside the months.
        SELECT o.merchant_id, (v_first + make_interval(months => o.bucket - 1))::date AS month, o.status,
               o.orders, o.accepted, o.delivered, coalesce(i.items, 0) AS items, o.gmv,
               coalesce(r.returned, 0) AS returned, coalesce(r.returned_amount, 0) AS returned_amount
        FROM o
        LEFT JOIN i USING (merchant_id, bucket, status)
        LEFT JOIN r USING (merchant_id, bucket, status)
        WHERE o.bucket BETWEEN 1 AND cardinality(v_bounds) - 1
    ), a AS (
        SELECT merchant_id, period_start AS month, status, orders, accepted, delivered, items, gmv,
               returned, returned_amount
        FROM agg.order_stats
        WHERE grain = 'month' AND period_start >= v_first AND period_start < v_end
          AND status <> 'all' -- the sum of the others (migration 005)
    ), drift AS MATERIALIZED (
        SELECT DISTINCT coalesce(s.merchant_id, a.merchant_id) AS merchant_id, coalesce(s.month, a.month) AS month
        FROM s FULL JOIN a ON a.merchant_id = s.merchant_id AND a.month = s.month AND a.status = s.status
        WHERE (s.orders, s.accepted, s.delivered, s.items, s.gmv, s.returned, s.returned_amount)
              IS DISTINCT FROM (a.orders, a.accepted, a.delivered, a.items, a.gmv, a.returned, a.returned_amount)
    ), fresh_drift AS MATERIALIZED (
        -- A month with days already waiting for a refresh differs for a known reason: that
        -- refresh repairs it, and a drift report would be a false alarm.
        SELECT d.* FROM drift d
        WHERE NOT EXISTS (SELECT FROM refresh.pending x
                          WHERE x.merchant_id = d.merchant_id AND x.day >= d.month AND x.day < d.month + interval '1 month')
    ), logged AS (
        INSERT INTO refresh.drift_log (merchant_id, month) SELECT merchant_id, month FROM fresh_drift
    ), marked AS (
        -- In key order, like the change scan, so the two never deadlock on dirty_days.
        INSERT INTO refresh.dirty_days (merchant_id, day)
        SELECT d.merchant_id, g::date
        FROM fresh_drift d, generate_series(d.month, d.month + interval '1 month' - interval '1 day', interval '1 day') AS g
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) INTO v_drift FROM fresh_drift;

    UPDATE refresh.settings SET last_reconcile_at = now(), last_reconcile_drift = v_drift;
    RETURN v_drift;
END $$;
