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
-- The SUMS marker is replaced by the sums per key (internal/stats): breakdown_sums.sql over a
-- plain tiling, or breakdown_sums_signed.sql, which also subtracts (product keys).
--
-- $1 merchant id; $2 dimension; $3..$5 the runs of periods added (grain, first and last
-- period start); $6 the status keys read ('all' for every status); $7 limit; $8 offset; for
-- breakdown_sums_signed.sql, $9..$11 the runs subtracted. The first column is the total
-- number of keys; a page past the end is one row with the total and NULL key.
WITH /*SUMS*/), rows AS (
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
