-- ABC analysis (docs/metrics.md) of a merchant's products over a range, from the product rows
-- of agg.key_months (api.range_sums, one figure: two entries per product). Classes are decided
-- on exact integers (cents or items): class A when the cumulative value before the product is
-- < a × total (no rounded share is compared). The ORDER marker in page is a fixed fragment
-- from the whitelist in internal/stats, the SUMS marker api.range_sums or api.range_sums_5
-- (by the filter's slots). Names and shares are worked out for the page only.
--
-- Parameters: @merchant_id; @from_day and @to_day; @slots and @coefs (the status filter);
-- @metric ('gmv' or 'items'); @a and @b (the class bounds); @class (NULL: all);
-- @page_limit and @page_offset. Every row carries the totals; a page past the end is one row
-- with a NULL product.
WITH v AS (
    SELECT product_id, value
    FROM (SELECT key AS product_id, CASE WHEN @metric = 'items' THEN w3 ELSE w4 END AS value
          FROM /*SUMS*/(@merchant_id, 'p', @from_day::date, @to_day::date, @slots::int[], @coefs::int[], @coefs::int[],
                            CASE WHEN @metric = 'items' THEN '{f,f,t,f,f,f,f,f}'::boolean[] ELSE '{f,f,f,t,f,f,f,f}' END)) AS k
    WHERE value > 0
), total AS (
    -- Class bounds as integers: for an integer c, c < a × total exactly when c < ceil(a × total).
    SELECT t.total, ceil(@a::numeric * t.total)::bigint AS a_below, ceil(@b::numeric * t.total)::bigint AS b_below
    FROM (SELECT agg.isum(value) AS total FROM v) AS t
), classed AS (
    -- Rank and running total share one window, so the products are sorted once (the order is
    -- unique: a ROWS frame is the running total up to and including the product).
    SELECT r.*, t.total,
           CASE WHEN r.cumulative - r.value < t.a_below THEN 'A'
                WHEN r.cumulative - r.value < t.b_below THEN 'B'
                ELSE 'C' END AS class
    FROM (SELECT product_id, value,
                 row_number() OVER w AS rank,
                 agg.isum(value) OVER w AS cumulative
          FROM v
          WINDOW w AS (ORDER BY value DESC, product_id ROWS UNBOUNDED PRECEDING)) AS r
    CROSS JOIN total AS t
), page AS (
    -- A bounded sort for the page, not a ranking of every product; numbered in its order.
    SELECT *, row_number() OVER () AS pos
    FROM (SELECT * FROM classed WHERE @class::text IS NULL OR class = @class::text
          ORDER BY /*ORDER*/, rank LIMIT @page_limit OFFSET @page_offset) AS sorted
), per_class AS (
    SELECT class, count(*) AS n, sum(value) * CASE WHEN @metric = 'items' THEN 1 ELSE 0.01 END AS value,
           max(total) * CASE WHEN @metric = 'items' THEN 1 ELSE 0.01 END AS total
    FROM classed GROUP BY class
), classes AS (
    -- The class filter's product count is its classes' (no second pass over the products).
    SELECT coalesce(jsonb_agg(jsonb_build_object('class', class, 'products', n, 'value', value::text,
                                                 'share', round(value / total, 6)) ORDER BY class), '[]') AS j,
           coalesce(sum(n) FILTER (WHERE @class::text IS NULL OR class = @class::text), 0) AS kept
    FROM per_class
)
SELECT (SELECT kept FROM classes)::bigint AS total,
       coalesce((SELECT total FROM total) * CASE WHEN @metric = 'items' THEN 1 ELSE 0.01 END, 0)::text AS total_value,
       (SELECT j FROM classes) AS classes,
       page.product_id, coalesce(p.sku, '') AS sku, coalesce(p.name, page.product_id::text) AS name,
       (page.value * CASE WHEN @metric = 'items' THEN 1 ELSE 0.01 END)::text AS value,
       round(page.value::numeric / page.total, 6)::float8 AS share,
       round(page.cumulative::numeric / page.total, 6)::float8 AS cumulative_share, page.class, page.rank
FROM (SELECT) AS one
LEFT JOIN page ON true
LEFT JOIN agg.products AS p ON p.merchant_id = @merchant_id AND p.id = page.product_id
ORDER BY page.pos
