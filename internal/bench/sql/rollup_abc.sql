-- ABC (gmv) of merchant $1 over [$2, $3] from the afternoon rollup, as its engineer writes it.
WITH v AS (
    SELECT product_id, sum(gmv) AS value FROM bench_rollup
    WHERE merchant_id = $1 AND day BETWEEN $2::date AND $3::date GROUP BY 1
), r AS (
    SELECT product_id, value, sum(value) OVER (ORDER BY value DESC, product_id) AS cum, sum(value) OVER () AS total FROM v
)
SELECT product_id, value, CASE WHEN cum - value < 0.8 * total THEN 'A' WHEN cum - value < 0.95 * total THEN 'B' ELSE 'C' END
FROM r ORDER BY value DESC, product_id LIMIT 50
