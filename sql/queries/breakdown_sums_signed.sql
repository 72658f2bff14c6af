-- The sums per key of sql/queries/breakdown.sql over runs of periods added ($3..$5) and
-- subtracted ($9..$11): period.CoverSums, where a range's edge may be a whole period less its
-- days outside the range. For product keys, of which a large merchant sells most every week
-- and half every day, it reads a quarter fewer rows over a year; for the other dimensions
-- (5 to ~50 keys in every period, whatever its grain) it would save nothing and cost a
-- second plan (+0.6 ms). The two sets of runs are read apart and the second's sums taken
-- from the first's: that costs less than signing every row.
plus AS (
    -- Summed by key (names turned into agg.dim_stats's codes, migration 011, in
    -- agg.dim_rows); money in bigint (agg.isum, migration 009), not numeric.
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
    FROM agg.dim_rows($1, $2, $3, $4, $5, $6) AS d
    GROUP BY d.key
), minus AS (
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
           CASE WHEN $2 IN ('product', 'category') THEN NULL ELSE sum(d.delivery_us) END AS delivery_us
    FROM agg.dim_rows($1, $2, $9, $10, $11, $6) AS d
    GROUP BY d.key
), sums AS (
    -- A key is in the range when it has orders there (rows exist only for orders > 0): one
    -- sold only in the subtracted days nets to none.
    SELECT p.key,
           p.orders - coalesce(m.orders, 0) AS orders,
           p.accepted - coalesce(m.accepted, 0) AS accepted,
           p.delivered - coalesce(m.delivered, 0) AS delivered,
           p.cancelled - coalesce(m.cancelled, 0) AS cancelled,
           p.returned - coalesce(m.returned, 0) AS returned,
           p.items - coalesce(m.items, 0) AS items,
           p.gmv_cents - coalesce(m.gmv_cents, 0) AS gmv_cents,
           p.delivered_gmv_cents - coalesce(m.delivered_gmv_cents, 0) AS delivered_gmv_cents,
           p.returned_cents - coalesce(m.returned_cents, 0) AS returned_cents,
           p.delivery_us - coalesce(m.delivery_us, 0) AS delivery_us
    FROM plus AS p
    LEFT JOIN minus AS m USING (key)
    WHERE p.orders > coalesce(m.orders, 0)
