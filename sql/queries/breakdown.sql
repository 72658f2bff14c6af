-- One row per key of a dimension over a range, with its name, the metrics of
-- docs/metrics.md (api.metrics) and its share of gmv; sorted and paged. The ORDER marker is
-- replaced by a column of api.metrics named in the whitelist of internal/stats, never by
-- request text. Regions sum their cities' rows, by the region each city has now.
--
-- Two passes: every key's orders, gmv and the figures the sort needs ($10, api.key_sums's
-- p_need), then every figure and the name of the page's keys only.
--
-- A level of the category tree ($11: 0 the top, N the children of N) lists the categories of
-- that level with the figures of their subtrees (dimension g, or c for one without children)
-- and N itself with its own products' (c).
--
-- $1 merchant id; $2 dimension (API name); $3 first and $4 last day; $5 slots, $6 their
-- coefficients, $7 their coefficients in the cancelled count (the status filter); $8 limit;
-- $9 offset; $10 the figures the sort needs; $11 the tree level (NULL: none). The first column
-- is the total number of keys; a page past the end is one row with the total and NULL key.
WITH level AS (
    SELECT c.id, CASE WHEN EXISTS (SELECT FROM ref.categories x WHERE x.parent_id = c.id) THEN 'g' ELSE 'c' END::"char" AS dim
    FROM ref.categories c
    WHERE $11::bigint IS NOT NULL AND c.parent_id IS NOT DISTINCT FROM nullif($11::bigint, 0)
    UNION ALL
    SELECT $11::bigint, 'c' WHERE $11::bigint > 0
), k AS (
    SELECT k.*, CASE WHEN $11::bigint IS NULL THEN api.dim_code($2) ELSE 'c' END AS dim
    FROM api.key_sums($1, CASE WHEN $11::bigint IS NULL THEN api.dim_code($2) ELSE 'c' END, '{0}', ARRAY[$3::date],
                      ARRAY[$4::date], $5::int[], $6::int[], $7::int[], $10::boolean[],
                      CASE WHEN $11::bigint IS NOT NULL THEN ARRAY(SELECT id FROM level WHERE dim = 'c') END) AS k
    UNION ALL
    SELECT k.*, 'g' FROM api.key_sums($1, 'g', '{0}', ARRAY[$3::date], ARRAY[$4::date], $5::int[], $6::int[], $7::int[],
                                     $10::boolean[], ARRAY(SELECT id FROM level WHERE dim = 'g')) AS k
), sums AS MATERIALIZED (
    SELECT CASE WHEN $2 = 'region' THEN NULL ELSE k.key END AS key, min(k.dim) AS dim,
           CASE WHEN $2 = 'region' THEN c.region ELSE l.label END AS label,
           agg.isum(k.w1) AS w1, agg.isum(k.w2) AS w2, agg.isum(k.w3) AS w3, agg.isum(k.w4) AS w4, agg.isum(k.w5) AS w5,
           agg.isum(k.w6) AS w6, agg.isum(k.w7) AS w7, agg.isum(k.cancelled) AS w8
    FROM k
    LEFT JOIN ref.labels l ON $2 IN ('delivery_type', 'payment_method') AND l.id = k.key
    LEFT JOIN ref.cities c ON $2 = 'region' AND c.id = k.key
    WHERE k.w1 >= 4294967296 -- an order or more in the range
      AND ($2 <> 'region' OR c.id IS NOT NULL)
    GROUP BY 1, 3
), total AS (
    SELECT count(*) AS keys, agg.isum(w4) * 0.01 AS gmv FROM sums
), page AS (
    -- Ties are broken by key: numerically for ids (label NULL), as text for labels.
    SELECT key, dim, label, row_number() OVER () AS pos -- numbered in the order of the bounded sort below
    FROM (SELECT s.key, s.dim, s.label FROM sums s
          CROSS JOIN LATERAL api.metrics(s.w1, s.w2, s.w3, s.w4, s.w5, s.w6, s.w7, s.w8) AS m
          ORDER BY /*ORDER*/, s.label, s.key LIMIT $8 OFFSET $9) AS sorted
), figures AS (
    -- Every figure of the page's keys (of their cities, for regions).
    SELECT CASE WHEN $2 = 'region' THEN NULL ELSE k.key END AS key,
           CASE WHEN $2 = 'region' THEN c.region END AS region,
           agg.isum(k.w1) AS w1, agg.isum(k.w2) AS w2, agg.isum(k.w3) AS w3, agg.isum(k.w4) AS w4, agg.isum(k.w5) AS w5,
           agg.isum(k.w6) AS w6, agg.isum(k.w7) AS w7, agg.isum(k.cancelled) AS w8
    FROM (SELECT * FROM api.key_sums($1, CASE WHEN $11::bigint IS NULL THEN api.dim_code($2) ELSE 'c' END, '{0}',
                                     ARRAY[$3::date], ARRAY[$4::date], $5::int[], $6::int[], $7::int[], '{t,t,t,t,t,t,t,t}',
                                     CASE WHEN $2 = 'region'
                                          THEN ARRAY(SELECT c.id FROM ref.cities c WHERE c.region IN (SELECT label FROM page))
                                          ELSE ARRAY(SELECT key FROM page WHERE dim <> 'g') END)
          UNION ALL
          SELECT * FROM api.key_sums($1, 'g', '{0}', ARRAY[$3::date], ARRAY[$4::date], $5::int[], $6::int[], $7::int[],
                                     '{t,t,t,t,t,t,t,t}', ARRAY(SELECT key FROM page WHERE dim = 'g'))) AS k
    LEFT JOIN ref.cities c ON $2 = 'region' AND c.id = k.key
    GROUP BY 1, 2
), fig AS (
    SELECT page.pos, coalesce(page.label, page.key::text) AS key_text,
           coalesce(p.name, c.name, ci.name, page.label, page.key::text) AS name,
           c.parent_id, CASE WHEN $2 = 'category' THEN EXISTS (SELECT FROM ref.categories x WHERE x.parent_id = page.key) END
               AS has_children, m.*
    FROM page
    JOIN figures f ON f.key IS NOT DISTINCT FROM page.key AND ($2 <> 'region' OR f.region = page.label)
    CROSS JOIN LATERAL api.metrics(f.w1, f.w2, f.w3, f.w4, f.w5, f.w6, f.w7, f.w8) AS m
    LEFT JOIN agg.products AS p ON $2 = 'product' AND p.merchant_id = $1 AND p.id = page.key
    LEFT JOIN ref.categories AS c ON $2 = 'category' AND c.id = page.key
    LEFT JOIN ref.cities AS ci ON $2 = 'city' AND ci.id = page.key
)
SELECT total.keys,
       fig.key_text, fig.name, round(fig.gmv / nullif(total.gmv, 0), 6)::float8,
       fig.orders, fig.accepted, fig.delivered, fig.cancelled, fig.returned, fig.items,
       fig.gmv::text, fig.returned_amount::text, fig.revenue::text, fig.aov::text,
       fig.cancel_rate, fig.return_rate, fig.avg_delivery_hours, fig.parent_id, fig.has_children
FROM total
LEFT JOIN fig ON true
ORDER BY fig.pos
