-- ABC analysis (SPEC §3) of a merchant's products over the tiles of a range, from the product
-- rows of agg.dim_stats. Classes are decided on exact integers (cents or items): class A when
-- the cumulative value before the product is < a × total (no rounded share is compared).
-- The ORDER marker in page is a fixed fragment from the whitelist in internal/stats. Names
-- and shares are worked out for the page only (a large merchant has 5000 products).
--
-- $1 merchant id; $2..$4 tiles: grain, first and last period start; $12 each tile's sign (1
-- added, -1 subtracted: period.CoverSums); $5 status keys read ('all' for every status);
-- $6 metric ('gmv' or 'items'); $7 a; $8 b; $9 class filter (NULL = all); $10 limit; $11 offset.
-- Every row carries the totals; a page past the end is one row with NULL product.
WITH tile AS (
    SELECT * FROM unnest($2::text[], $3::date[], $4::date[], $12::int[]) AS t (grain, first_start, last_start, sign)
), v AS (
    -- One index range per tile and status (the key's order; names turned into codes, migration
    -- 011); gmv is stored in cents. Values, running sums and totals are bigint (agg.isum,
    -- migration 009), not numeric. A product sold only in a subtracted part nets to 0 and is
    -- left out below with the others of no value.
    SELECT d.key AS product_id,
           agg.isum(t.sign * CASE WHEN $6 = 'items' THEN d.items ELSE d.gmv_cents END) AS value
    FROM tile AS t
    CROSS JOIN unnest($5::text[]) AS st (status)
    CROSS JOIN LATERAL (
        SELECT d.key, d.items, d.gmv_cents FROM agg.dim_stats AS d
        WHERE d.merchant_id = $1 AND d.dimension = agg.dimension_code('product') AND d.grain = agg.grain_code(t.grain)
          AND d.status = agg.status_code(st.status)
          AND d.period_start BETWEEN t.first_start AND t.last_start
    ) AS d
    GROUP BY d.key
), total AS (
    -- Class bounds as integers: for an integer c, c < a × total exactly when c < ceil(a × total).
    SELECT t.total, ceil($7::numeric * t.total)::bigint AS a_below, ceil($8::numeric * t.total)::bigint AS b_below
    FROM (SELECT agg.isum(value) AS total FROM v WHERE value > 0) AS t
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
          WHERE value > 0
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
