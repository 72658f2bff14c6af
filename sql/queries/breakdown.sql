-- One row per key of a dimension (agg.dim_stats), summed over the tiles of a range, with its
-- name, the SPEC §3 figures and its share of gmv; sorted and paged. The ORDER marker in page
-- is replaced by a fixed expression over the sums (integers: money in cents, delivery in
-- microseconds, migration 006) from the whitelist in internal/stats, never by request text.
-- Names are looked up and figures formatted for the page only (a sort by name looks its names
-- up itself: breakdownName in internal/stats): a year of a large merchant's products has 5000
-- keys, and joining their names took a tenth of the request. For the same reason every step
-- after the sums passes over the keys once: the page is a bounded sort, not a ranking of every
-- key, and the totals are one aggregate.
--
-- $1 merchant id; $2 dimension; $3..$5 tiles: grain, first and last period start; $6 the
-- status keys read ('all' for every status); $7 limit; $8 offset. The first column is the
-- total number of keys; a page past the end is one row with the total and NULL key.
WITH tile AS (
    SELECT * FROM unnest($3::text[], $4::date[], $5::date[]) AS t (grain, first_start, last_start)
), sums AS (
    -- One index range per tile and status (the key's order; names turned into agg.dim_stats's
    -- codes, migration 011), summed by key; money in bigint (agg.isum, migration 009), not numeric.
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
), rows AS (
    -- Ties are broken by key: numerically for ids (label NULL), as text for labels.
    SELECT s.*, l.label
    FROM sums AS s
    LEFT JOIN ref.labels AS l ON l.dimension = $2 AND l.id = s.key
), page AS (
    SELECT *, row_number() OVER () AS pos -- numbered in the order of the bounded sort below
    FROM (SELECT * FROM rows ORDER BY /*ORDER*/, label, key LIMIT $7 OFFSET $8) AS sorted
), fig AS (
    -- Cents and microseconds back to numeric(…,2) and seconds by exact multiplication.
    SELECT page.*, coalesce(page.label, page.key::text) AS key_text,
           coalesce(p.name, c.name, ci.name, page.label, page.key::text) AS name,
           gmv_cents * 0.01 AS gmv, delivered_gmv_cents * 0.01 AS delivered_gmv,
           returned_cents * 0.01 AS returned_amount, delivery_us * 0.000001 AS delivery_seconds
    FROM page
    LEFT JOIN agg.products AS p ON $2 = 'product' AND p.merchant_id = $1 AND p.id = page.key
    LEFT JOIN ref.categories AS c ON $2 = 'category' AND c.id = page.key
    LEFT JOIN ref.cities AS ci ON $2 = 'city' AND ci.id = page.key
), total AS (
    SELECT count(*) AS keys, agg.isum(gmv_cents) * 0.01 AS gmv FROM rows
)
SELECT total.keys,
       fig.key_text, fig.name, round(fig.gmv / nullif(total.gmv, 0), 6)::float8,
       fig.orders, fig.accepted, fig.delivered, fig.cancelled, fig.returned, fig.items,
       fig.gmv::text, fig.returned_amount::text, (fig.delivered_gmv - fig.returned_amount)::text,
       round(fig.gmv / nullif(fig.orders, 0), 2)::text,
       round(fig.cancelled::numeric / nullif(fig.orders, 0), 4)::float8,
       round(fig.returned::numeric / nullif(fig.orders, 0), 4)::float8,
       round(fig.delivery_seconds / nullif(fig.delivered, 0) / 3600, 2)::float8 -- NULL for products, categories
FROM total
LEFT JOIN fig ON true
ORDER BY fig.pos
