-- Reconciliation: compares cheap checksums of the source with the snapshot the aggregates are
-- built from, and marks what drifted dirty. It catches what the change scan cannot see: hard
-- deletes, fixes made without bumping updated_at, transactions open longer than max_txn_age.

-- The snapshot's side of refresh.source_month_*_checks, per merchant × business month.
CREATE FUNCTION refresh.snapshot_checks()
RETURNS TABLE (merchant_id bigint, month date, orders bigint, hashes numeric, cities numeric, deliveries numeric,
               payments numeric, times numeric, items numeric, gmv numeric, returned bigint, amounts numeric)
LANGUAGE sql STABLE AS $$
    WITH o AS (
        SELECT o.merchant_id, date_trunc('month', o.day)::date AS month, count(*) AS orders,
               sum(hashint8extended(o.customer_id, o.order_id)::numeric
                   + hashtextextended((ARRAY['created', 'accepted', 'delivered', 'cancelled', 'returned'])[o.status + 1], o.order_id + 1)
                   + hashint8extended(o.gmv_cents, o.order_id + 2) + hashint4extended(o.accepted::int, o.order_id + 3)) AS hashes,
               sum(hashint8extended(o.city_id, o.order_id + 4)) AS cities, sum(hashtextextended(d.label, o.order_id + 5)) AS deliveries,
               sum(hashtextextended(p.label, o.order_id + 6)) AS payments,
               sum(interval_hash_extended(CASE WHEN o.delivered THEN o.delivery_us * interval '1 microsecond' END, o.order_id + 7)) AS times
        FROM pipeline.orders o
        LEFT JOIN ref.labels d ON d.id = o.delivery
        LEFT JOIN ref.labels p ON p.id = o.payment
        GROUP BY 1, 2
    ), l AS (
        SELECT o.merchant_id, date_trunc('month', o.day)::date AS month,
               sum(hashint8extended(o.lines[i][1], o.order_id)::numeric * o.lines[i][2]) AS items,
               sum(hashint8extended(o.lines[i][1], o.order_id)::numeric * o.lines[i][3] * 0.01) AS gmv,
               count(DISTINCT o.order_id) FILTER (WHERE o.lines[i][4] >= 0) AS returned,
               sum(hashint8extended(o.lines[i][1], o.order_id)::numeric * o.lines[i][4] * 0.01)
                   FILTER (WHERE o.lines[i][4] >= 0) AS amounts
        FROM pipeline.orders o CROSS JOIN LATERAL generate_subscripts(o.lines, 1) AS i
        GROUP BY 1, 2
    )
    SELECT o.merchant_id, o.month, o.orders, o.hashes, o.cities, o.deliveries, o.payments, o.times, l.items, l.gmv,
           nullif(l.returned, 0), l.amounts
    FROM o LEFT JOIN l USING (merchant_id, month)
$$;

-- Compares the checksums per merchant × business month (months from 2000-01 to a year ahead)
-- and marks every day of each merchant month that differs dirty. Returns how many merchant
-- months drifted. Run it right after a change scan: a change made since the scan also
-- differs, and is refreshed twice.
CREATE FUNCTION refresh.reconcile() RETURNS bigint
LANGUAGE plpgsql
SET enable_nestloop = off -- remote results are joined by hash
SET work_mem = '256MB'
AS $$
DECLARE
    v_tz     text;
    v_first  constant date := '2000-01-01';
    v_bounds timestamptz[];
    v_drift  bigint;
BEGIN
    SELECT timezone INTO v_tz FROM pipeline.settings;
    SELECT array_agg(m AT TIME ZONE v_tz ORDER BY m) INTO v_bounds
    FROM generate_series(v_first::timestamp, date_trunc('month', now() AT TIME ZONE v_tz) + interval '1 year', interval '1 month') AS m;

    WITH o AS MATERIALIZED (SELECT * FROM refresh.source_month_checks(v_bounds)),
         i AS MATERIALIZED (SELECT * FROM refresh.source_month_item_checks(v_bounds)),
         r AS MATERIALIZED (SELECT * FROM refresh.source_month_return_checks(v_bounds)),
    s AS (
        -- Bucket k covers [v_bounds[k], v_bounds[k+1]); 0 and the last are outside the months.
        SELECT o.merchant_id, (v_first + make_interval(months => o.bucket - 1))::date AS month, o.orders, o.hashes,
               o.cities, o.deliveries, o.payments, o.times, i.items, i.gmv, r.returned, r.amounts
        FROM o
        LEFT JOIN i USING (merchant_id, bucket)
        LEFT JOIN r USING (merchant_id, bucket)
        WHERE o.bucket BETWEEN 1 AND cardinality(v_bounds) - 1
    ), a AS MATERIALIZED (
        SELECT * FROM refresh.snapshot_checks()
    ), drift AS MATERIALIZED (
        SELECT coalesce(s.merchant_id, a.merchant_id) AS merchant_id, coalesce(s.month, a.month) AS month
        FROM s FULL JOIN a ON a.merchant_id = s.merchant_id AND a.month = s.month
        WHERE (s.orders, s.hashes, s.cities, s.deliveries, s.payments, s.times, s.items, s.gmv, s.returned, s.amounts)
              IS DISTINCT FROM (a.orders, a.hashes, a.cities, a.deliveries, a.payments, a.times, a.items, a.gmv, a.returned, a.amounts)
    ), fresh_drift AS MATERIALIZED (
        -- A month with days already waiting for a refresh differs for a known reason: that
        -- refresh repairs it, and a drift report would be a false alarm.
        SELECT d.* FROM drift d
        WHERE NOT EXISTS (SELECT FROM refresh.pending x
                          WHERE x.merchant_id = d.merchant_id AND x.day >= d.month AND x.day < d.month + interval '1 month')
    ), logged AS (
        INSERT INTO pipeline.drift_log (merchant_id, month) SELECT merchant_id, month FROM fresh_drift
    ), marked AS (
        -- In key order, like the change scan, so the two never deadlock on dirty_days.
        INSERT INTO pipeline.dirty_days (merchant_id, day)
        SELECT d.merchant_id, g::date
        FROM fresh_drift d, generate_series(d.month, d.month + interval '1 month' - interval '1 day', interval '1 day') AS g
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) INTO v_drift FROM fresh_drift;

    UPDATE pipeline.settings SET last_reconcile_at = now(), last_reconcile_drift = v_drift;
    RETURN v_drift;
END $$;
