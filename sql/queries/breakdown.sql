-- One row per key of a dimension over a range, with its name, the metrics of
-- docs/metrics.md (api.metrics) and its share of gmv; sorted and paged. The ORDER marker in
-- page is replaced by a fixed expression over the metrics' columns from the whitelist in
-- internal/stats, never by request text. Regions sum their cities' rows, by the region each
-- city has now. Names are looked up for the page only (a sort by name looks its names up
-- itself: internal/stats).
--
-- $1 merchant id; $2 dimension (API name); $3 first and $4 last day; $5 slots, $6 their
-- coefficients, $7 their coefficients in the cancelled count (the status filter); $8 limit;
-- $9 offset. The first column is the total number of keys; a page past the end is one row
-- with the total and NULL key.
WITH k AS (
    SELECT * FROM api.key_sums($1, api.dim_code($2), '{0}', ARRAY[$3::date], ARRAY[$4::date], $5::int[], $6::int[], $7::int[])
    WHERE w1 >= 4294967296 -- an order or more in the range
), sums AS (
    -- Ties are broken by key: numerically for ids (label NULL), as text for labels.
    SELECT k.key, l.label, k.w1, k.w2, k.w3, k.w4, k.w5, k.w6, k.w7, k.cancelled
    FROM k LEFT JOIN ref.labels l ON $2 IN ('delivery_type', 'payment_method') AND l.id = k.key
    WHERE $2 <> 'region'
    UNION ALL
    SELECT NULL, c.region, agg.isum(k.w1), agg.isum(k.w2), agg.isum(k.w3), agg.isum(k.w4), agg.isum(k.w5),
           agg.isum(k.w6), agg.isum(k.w7), agg.isum(k.cancelled)
    FROM k JOIN ref.cities c ON c.id = k.key
    WHERE $2 = 'region'
    GROUP BY c.region
), rows AS (
    SELECT s.key, s.label, m.* FROM sums s
    CROSS JOIN LATERAL api.metrics(s.w1, s.w2, s.w3, s.w4, s.w5, s.w6, s.w7, s.cancelled) AS m
), page AS (
    SELECT *, row_number() OVER () AS pos -- numbered in the order of the bounded sort below
    FROM (SELECT * FROM rows ORDER BY /*ORDER*/, label, key LIMIT $8 OFFSET $9) AS sorted
), fig AS (
    SELECT page.*, coalesce(page.label, page.key::text) AS key_text,
           coalesce(p.name, c.name, ci.name, page.label, page.key::text) AS name
    FROM page
    LEFT JOIN agg.products AS p ON $2 = 'product' AND p.merchant_id = $1 AND p.id = page.key
    LEFT JOIN ref.categories AS c ON $2 = 'category' AND c.id = page.key
    LEFT JOIN ref.cities AS ci ON $2 = 'city' AND ci.id = page.key
), total AS (
    SELECT count(*) AS keys, sum(gmv) AS gmv FROM rows
)
SELECT total.keys,
       fig.key_text, fig.name, round(fig.gmv / nullif(total.gmv, 0), 6)::float8,
       fig.orders, fig.accepted, fig.delivered, fig.cancelled, fig.returned, fig.items,
       fig.gmv::text, fig.returned_amount::text, fig.revenue::text, fig.aov::text,
       fig.cancel_rate, fig.return_rate, fig.avg_delivery_hours
FROM total
LEFT JOIN fig ON true
ORDER BY fig.pos
