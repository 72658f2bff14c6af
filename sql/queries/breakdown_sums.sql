-- The sums per key of sql/queries/breakdown.sql over the runs of periods of a plain tiling
-- (period.CoverRange; $3..$5): one index range per run and status (the key's order; names
-- turned into agg.dim_stats's codes, migration 011); money in bigint (agg.isum, migration
-- 009), not numeric. Written out rather than through agg.dim_rows: inlining the function
-- costs ~0.2 ms of planning, a tenth of a breakdown of five keys.
tile AS (
    SELECT * FROM unnest($3::text[], $4::date[], $5::date[]) AS t (grain, first_start, last_start)
), sums AS (
    SELECT d.key,
           sum(d.orders) AS orders,
           sum(d.accepted) AS accepted,
           sum(d.delivered) AS delivered,
           sum(d.cancelled) AS cancelled,
           sum(d.returned) AS returned,
           sum(d.items) AS items,
           agg.isum(d.gmv_cents) AS gmv_cents,
           agg.isum(d.delivered_gmv_cents) AS delivered_gmv_cents,
           agg.isum(d.returned_cents) AS returned_cents,
           -- numeric: 53M deliveries of 2 days pass 2^63 µs; products and categories have no
           -- delivery time of their own, and the numeric sum is a fifth of their sums' cost.
           CASE WHEN $2 IN ('product', 'category') THEN NULL ELSE sum(d.delivery_us) END AS delivery_us
    FROM tile AS t
    CROSS JOIN unnest($6::text[]) AS st (status)
    CROSS JOIN LATERAL (
        SELECT * FROM agg.dim_stats AS d
        WHERE d.merchant_id = $1 AND d.dimension = agg.dimension_code($2) AND d.grain = agg.grain_code(t.grain)
          AND d.status = agg.status_code(st.status)
          AND d.period_start BETWEEN t.first_start AND t.last_start
    ) AS d
    GROUP BY d.key
