-- One row per key of a dimension (agg.dim_stats), summed over the tiles of a range, with its
-- name, the SPEC §3 figures and its share of gmv; sorted and paged. /*ORDER*/ is replaced by
-- a fixed fragment from the whitelist in internal/stats (never by request text).
--
-- $1 merchant id; $2 dimension; $3..$5 tiles: grain, first and last period start; $6 the
-- status keys read ('all' for every status); $7 limit; $8 offset. The first column is the total number of keys; a page
-- past the end is one row with the total and NULL key. Money is stored in cents (migration 006).
WITH tile AS (
    SELECT * FROM unnest($3::text[], $4::date[], $5::date[]) AS t (grain, first_start, last_start)
), sums AS (
    -- One index range per tile and status (the key's order), summed by key.
    SELECT d.key,
           sum(d.orders) AS orders,
           sum(d.accepted) AS accepted,
           sum(d.delivered) AS delivered,
           sum(d.cancelled) AS cancelled,
           sum(d.returned) AS returned,
           sum(d.items) AS items,
           -- Cents and microseconds back to numeric(…,2) and seconds by exact multiplication.
           sum(d.gmv_cents) * 0.01 AS gmv,
           sum(d.delivered_gmv_cents) * 0.01 AS delivered_gmv,
           sum(d.returned_cents) * 0.01 AS returned_amount,
           sum(d.delivery_us) * 0.000001 AS delivery_seconds
    FROM tile AS t
    CROSS JOIN unnest($6::text[]) AS st (status)
    CROSS JOIN LATERAL (
        SELECT * FROM agg.dim_stats AS d
        WHERE d.merchant_id = $1 AND d.dimension = $2 AND d.grain = t.grain AND d.status = st.status
          AND d.period_start BETWEEN t.first_start AND t.last_start
    ) AS d
    GROUP BY d.key
), rows AS (
    SELECT coalesce(l.label, s.key::text) AS key,
           coalesce(p.name, c.name, ci.name, l.label, s.key::text) AS name,
           s.orders, s.accepted, s.delivered, s.cancelled, s.returned, s.items,
           s.gmv, s.returned_amount,
           s.delivered_gmv - s.returned_amount AS revenue,
           round(s.gmv / nullif(s.orders, 0), 2) AS aov,
           round(s.cancelled::numeric / nullif(s.orders, 0), 4) AS cancel_rate,
           round(s.returned::numeric / nullif(s.orders, 0), 4) AS return_rate,
           CASE WHEN $2 IN ('product', 'category') THEN NULL
                ELSE round(s.delivery_seconds / nullif(s.delivered, 0) / 3600, 2) END AS avg_delivery_hours,
           round(s.gmv / nullif(sum(s.gmv) OVER (), 0), 6) AS share,
           -- Ties are broken by key: numerically for ids, as text for labels.
           CASE WHEN l.label IS NULL THEN lpad(s.key::text, 20, '0') ELSE l.label END AS key_order
    FROM sums AS s
    LEFT JOIN agg.products AS p ON $2 = 'product' AND p.merchant_id = $1 AND p.id = s.key
    LEFT JOIN ref.categories AS c ON $2 = 'category' AND c.id = s.key
    LEFT JOIN ref.cities AS ci ON $2 = 'city' AND ci.id = s.key
    LEFT JOIN ref.labels AS l ON l.dimension = $2 AND l.id = s.key
), page AS (
    SELECT *, row_number() OVER (ORDER BY /*ORDER*/, key_order) AS pos
    FROM rows ORDER BY /*ORDER*/, key_order LIMIT $7 OFFSET $8
)
SELECT (SELECT count(*) FROM rows) AS total,
       page.key, page.name, page.share::float8, page.orders, page.accepted, page.delivered, page.cancelled,
       page.returned, page.items, page.gmv::text, page.returned_amount::text, page.revenue::text, page.aov::text, page.cancel_rate::float8, page.return_rate::float8,
       page.avg_delivery_hours::float8
FROM (SELECT) AS one
LEFT JOIN page ON true
ORDER BY page.pos
