-- ABC analysis (docs/metrics.md) of a merchant's products over a range, from the product rows
-- of agg.key_months (api.key_sums, one figure: two entries per product). Classes are decided
-- on exact integers (cents or items): class A when the cumulative value before the product is
-- < a × total (no rounded share is compared). The ORDER marker in page is a fixed fragment
-- from the whitelist in internal/stats. Names and shares are worked out for the page only.
--
-- $1 merchant id; $2 first and $3 last day; $4 slots and $5 their coefficients (the status
-- filter); $6 metric ('gmv' or 'items'); $7 a; $8 b; $9 class filter (NULL = all); $10 limit;
-- $11 offset. Every row carries the totals; a page past the end is one row with NULL product.
WITH v AS (
    SELECT product_id, value
    FROM (SELECT key AS product_id, CASE WHEN $6 = 'items' THEN w3 ELSE w4 END AS value
          FROM api.key_sums($1, 'p', '{0}', ARRAY[$2::date], ARRAY[$3::date], $4::int[], $5::int[], $5::int[],
                            CASE WHEN $6 = 'items' THEN '{f,f,t,f,f,f,f,f}'::boolean[] ELSE '{f,f,f,t,f,f,f,f}' END)) AS k
    WHERE value > 0
), total AS (
    -- Class bounds as integers: for an integer c, c < a × total exactly when c < ceil(a × total).
    SELECT t.total, ceil($7::numeric * t.total)::bigint AS a_below, ceil($8::numeric * t.total)::bigint AS b_below
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
    FROM (SELECT * FROM classed WHERE $9::text IS NULL OR class = $9::text
          ORDER BY /*ORDER*/, rank LIMIT $10 OFFSET $11) AS sorted
), per_class AS (
    SELECT class, count(*) AS n, sum(value) * CASE WHEN $6 = 'items' THEN 1 ELSE 0.01 END AS value,
           max(total) * CASE WHEN $6 = 'items' THEN 1 ELSE 0.01 END AS total
    FROM classed GROUP BY class
), classes AS (
    -- The class filter's product count is its classes' (no second pass over the products).
    SELECT coalesce(jsonb_agg(jsonb_build_object('class', class, 'products', n, 'value', value::text,
                                                 'share', round(value / total, 6)) ORDER BY class), '[]') AS j,
           coalesce(sum(n) FILTER (WHERE $9::text IS NULL OR class = $9::text), 0) AS kept
    FROM per_class
)
SELECT (SELECT kept FROM classes)::bigint AS total,
       coalesce((SELECT total FROM total) * CASE WHEN $6 = 'items' THEN 1 ELSE 0.01 END, 0)::text AS total_value,
       (SELECT j FROM classes) AS classes,
       page.product_id, coalesce(p.sku, ''), coalesce(p.name, page.product_id::text),
       (page.value * CASE WHEN $6 = 'items' THEN 1 ELSE 0.01 END)::text, round(page.value::numeric / page.total, 6)::float8,
       round(page.cumulative::numeric / page.total, 6)::float8, page.class, page.rank
FROM (SELECT) AS one
LEFT JOIN page ON true
LEFT JOIN agg.products AS p ON p.merchant_id = $1 AND p.id = page.product_id
ORDER BY page.pos
