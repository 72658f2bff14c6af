-- One row per key of a dimension over a range, with its name, the metrics of
-- docs/metrics.md (api.metrics) and its share of gmv; sorted and paged. The ORDER marker is
-- replaced by a column of api.metrics named in the whitelist of internal/stats, never by
-- request text; the SUMS marker by api.range_sums or api.range_sums_5 (by the filter's slots).
-- Regions sum their cities' rows, by the region each city has now.
--
-- Two passes: every key's orders, gmv and the figures the sort needs (@need, api.range_sums's
-- p_need), then every figure and the name of the page's keys only.
--
-- A level of the category tree (@parent_id: 0 the top, N the children of N) lists the categories of
-- that level with the figures of their subtrees (dimension g, or c for one without children)
-- and N itself with its own products' (c).
--
-- Parameters: @merchant_id; @dimension (the API's name); @from_day and @to_day; @slots,
-- @coefs and @cancelled_coefs (the status filter: slots and their coefficients in the figures
-- and in the cancelled count); @page_limit and @page_offset; @need (the figures the sort
-- needs); @parent_id (the tree level, NULL: none). Every row carries the number of keys; a
-- page past the end is one row with that number and a NULL key.
WITH level AS (
    SELECT c.id, api.subtree_code(c.id) AS dim
    FROM ref.categories c
    WHERE @parent_id::bigint IS NOT NULL AND c.parent_id IS NOT DISTINCT FROM nullif(@parent_id::bigint, 0)
    UNION ALL
    SELECT @parent_id::bigint, 'c' WHERE @parent_id::bigint > 0
), k AS MATERIALIZED ( -- planned once for both branches of sums
    SELECT k.*, CASE WHEN @parent_id::bigint IS NULL THEN api.dim_code(@dimension) ELSE 'c' END AS dim
    FROM /*SUMS*/(@merchant_id, CASE WHEN @parent_id::bigint IS NULL THEN api.dim_code(@dimension) ELSE 'c' END, @from_day::date,
                      @to_day::date, @slots::int[], @coefs::int[], @cancelled_coefs::int[], @need::boolean[],
                      CASE WHEN @parent_id::bigint IS NOT NULL THEN ARRAY(SELECT id FROM level WHERE dim = 'c') END) AS k
    UNION ALL
    SELECT k.*, 'g' FROM /*SUMS*/(@merchant_id, 'g', @from_day::date, @to_day::date, @slots::int[], @coefs::int[], @cancelled_coefs::int[],
                                     @need::boolean[], ARRAY(SELECT id FROM level WHERE dim = 'g')) AS k
    WHERE @parent_id::bigint IS NOT NULL -- planned away for a flat list, not called with no keys
), sums AS MATERIALIZED (
    -- Regions sum their cities; any other key is one row of k already (not grouped again).
    SELECT k.key, k.dim::text, l.label, k.w1, k.w2, k.w3, k.w4, k.w5, k.w6, k.w7, k.cancelled AS w8
    FROM k
    LEFT JOIN ref.labels l ON @dimension IN ('delivery_type', 'payment_method') AND l.id = k.key
    WHERE k.w1 >= 4294967296 -- an order or more in the range
      AND @dimension <> 'region'
    UNION ALL
    SELECT NULL, min(k.dim), c.region, agg.isum(k.w1), agg.isum(k.w2), agg.isum(k.w3), agg.isum(k.w4), agg.isum(k.w5),
           agg.isum(k.w6), agg.isum(k.w7), agg.isum(k.cancelled)
    FROM k
    JOIN ref.cities c ON c.id = k.key
    WHERE k.w1 >= 4294967296
      AND @dimension = 'region'
    GROUP BY c.region
), total AS (
    SELECT count(*) AS keys, agg.isum(w4) * 0.01 AS gmv FROM sums
), page AS (
    -- Ties are broken by key: numerically for ids (label NULL), as text for labels.
    SELECT key, dim, label, row_number() OVER () AS pos -- numbered in the order of the bounded sort below
    FROM (SELECT s.key, s.dim, s.label FROM sums s
          CROSS JOIN LATERAL api.metrics(s.w1, s.w2, s.w3, s.w4, s.w5, s.w6, s.w7, s.w8) AS m
          ORDER BY /*ORDER*/, s.label, s.key LIMIT @page_limit OFFSET @page_offset) AS sorted
), want AS MATERIALIZED (
    -- The rows the page's figures read: its keys (their cities, for regions), as plain values
    -- (row-level security keeps an expression of functions that are not leakproof above the
    -- index).
    SELECT page.pos, page.dim::"char" AS dim, coalesce(c.id, page.key) AS key
    FROM page LEFT JOIN ref.cities c ON @dimension = 'region' AND c.region = page.label
), figures AS (
    -- Every figure of those rows, read key by key: with the key as a plain argument
    -- the function is inlined (a subquery there would have it planned again at every call).
    SELECT w.pos, agg.isum(k.w1) AS w1, agg.isum(k.w2) AS w2, agg.isum(k.w3) AS w3, agg.isum(k.w4) AS w4,
           agg.isum(k.w5) AS w5, agg.isum(k.w6) AS w6, agg.isum(k.w7) AS w7, agg.isum(k.cancelled) AS w8
    FROM want w
    CROSS JOIN LATERAL /*SUMS*/(@merchant_id, w.dim, @from_day::date, @to_day::date, @slots::int[],
                                    @coefs::int[], @cancelled_coefs::int[], '{t,t,t,t,t,t,t,t}', ARRAY[w.key]) AS k
    GROUP BY w.pos
), fig AS (
    SELECT page.pos, coalesce(page.label, page.key::text) AS key_text,
           coalesce(p.name, c.name, ci.name, page.label, page.key::text) AS name,
           c.parent_id, CASE WHEN @dimension = 'category' THEN EXISTS (SELECT FROM ref.categories x WHERE x.parent_id = page.key) END
               AS has_children, m.*
    FROM page
    JOIN figures f USING (pos)
    CROSS JOIN LATERAL api.metrics(f.w1, f.w2, f.w3, f.w4, f.w5, f.w6, f.w7, f.w8) AS m
    LEFT JOIN agg.products AS p ON @dimension = 'product' AND p.merchant_id = @merchant_id AND p.id = page.key
    LEFT JOIN ref.categories AS c ON @dimension = 'category' AND c.id = page.key
    LEFT JOIN ref.cities AS ci ON @dimension = 'city' AND ci.id = page.key
)
SELECT total.keys AS total,
       fig.key_text AS key, fig.name, round(fig.gmv / nullif(total.gmv, 0), 6)::float8 AS share,
       fig.orders, fig.accepted, fig.delivered, fig.cancelled, fig.returned, fig.items,
       fig.gmv::text AS gmv, fig.returned_amount::text AS returned_amount, fig.revenue::text AS revenue,
       fig.aov::text AS aov, fig.cancel_rate, fig.return_rate, fig.avg_delivery_hours, fig.parent_id, fig.has_children
FROM total
LEFT JOIN fig ON true
ORDER BY fig.pos
