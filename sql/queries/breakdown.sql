-- One row per key of a dimension (agg.dim_stats), summed over the tiles of a range, with its
-- name, the SPEC §3 figures and its share of gmv; sorted and paged. /*ORDER*/ is replaced by
-- a fixed fragment from the whitelist in internal/stats (never by request text).
--
-- $1 merchant id; $2 dimension; $3..$5 tiles: grain, first and last period start; $6 the
-- status keys read ('all' for every status); $7 limit; $8 offset. The first column is the total number of keys; a page
-- past the end is one row with the total and NULL key.
WITH tile AS (
    SELECT * FROM unnest($3::text[], $4::date[], $5::date[]) AS t (grain, first_start, last_start)
), sums AS (
    SELECT d.key,
           sum(d.orders) AS orders,
           sum(d.accepted) AS accepted,
           sum(d.delivered) AS delivered,
           sum(d.cancelled) AS cancelled,
           sum(d.returned) AS returned,
           sum(d.items) AS items,
           sum(d.gmv) AS gmv,
           sum(d.delivered_gmv) AS delivered_gmv,
           sum(d.returned_amount) AS returned_amount,
           sum(d.delivery_seconds) AS delivery_seconds
    FROM tile AS t
    JOIN agg.dim_stats AS d
      ON d.merchant_id = $1 AND d.dimension = $2 AND d.grain = t.grain
     AND d.period_start BETWEEN t.first_start AND t.last_start
     AND d.status = ANY ($6::text[])
    GROUP BY d.key
), rows AS (
    SELECT s.key,
           coalesce(p.name, c.name, ci.name, s.key) AS name,
           s.orders, s.accepted, s.delivered, s.cancelled, s.returned, s.items, s.gmv, s.returned_amount,
           s.delivered_gmv - s.returned_amount AS revenue,
           round(s.gmv / nullif(s.orders, 0), 2) AS aov,
           round(s.cancelled::numeric / nullif(s.orders, 0), 4) AS cancel_rate,
           round(s.returned::numeric / nullif(s.orders, 0), 4) AS return_rate,
           CASE WHEN $2 IN ('product', 'category') THEN NULL
                ELSE round(s.delivery_seconds / nullif(s.delivered, 0) / 3600, 2) END AS avg_delivery_hours,
           round(s.gmv / nullif(sum(s.gmv) OVER (), 0), 6) AS share,
           -- Ties are broken by key: numerically for ids, as text otherwise.
           CASE WHEN $2 IN ('product', 'category', 'city') THEN lpad(s.key, 20, '0') ELSE s.key END AS key_order
    FROM sums AS s
    LEFT JOIN agg.products AS p ON $2 = 'product' AND p.merchant_id = $1 AND p.id::text = s.key
    LEFT JOIN ref.categories AS c ON $2 = 'category' AND c.id::text = s.key
    LEFT JOIN ref.cities AS ci ON $2 = 'city' AND ci.id::text = s.key
), page AS (
    SELECT *, row_number() OVER (ORDER BY /*ORDER*/, key_order) AS pos
    FROM rows ORDER BY /*ORDER*/, key_order LIMIT $7 OFFSET $8
)
SELECT (SELECT count(*) FROM rows) AS total,
       page.key, page.name, page.share::float8, page.orders, page.accepted, page.delivered, page.cancelled,
       page.returned, page.items, page.gmv::text, page.returned_amount::text, page.revenue::text,
       page.aov::text, page.cancel_rate::float8, page.return_rate::float8, page.avg_delivery_hours::float8
FROM (SELECT) AS one
LEFT JOIN page ON true
ORDER BY page.pos
