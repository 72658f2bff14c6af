-- The afternoon rollup a competent engineer builds: merchant × day × status × product (orders,
-- items, gmv) with a btree on (merchant_id, day). The comparison for merchantagg's breakdown
-- and ABC rows. Run after set_config('merchantagg.bench_tz', <time zone>, false).
DROP TABLE IF EXISTS bench_rollup;
CREATE TABLE bench_rollup AS
SELECT o.merchant_id, (o.created_at AT TIME ZONE current_setting('merchantagg.bench_tz'))::date AS day, o.status, i.product_id,
       count(DISTINCT o.id) AS orders, sum(i.quantity) AS items, sum(i.quantity * i.unit_price) AS gmv
FROM orders o JOIN order_items i ON i.order_id = o.id
GROUP BY 1, 2, 3, 4;
CREATE INDEX ON bench_rollup (merchant_id, day);
