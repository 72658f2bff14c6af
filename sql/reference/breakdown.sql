-- The breakdown of docs/metrics.md straight from the source, unsorted (the test sorts and pages it itself).
-- Order-level dimensions: each kept order has one key. Product and category: from the kept
-- orders' lines; orders = distinct orders containing the key; returned = orders with a return
-- of its lines, returned_amount the amount of those returns.
-- A level of the category tree ($7: 0 the top, N the children of N; NULL none) keys each line
-- by the listed category whose subtree holds its product's category, or by N itself for N's
-- own products.
-- $1 merchant, $2 from, $3 to, $4 statuses, $5 time zone, $6 dimension, $7 tree level.
WITH RECURSIVE level AS (
    SELECT id AS key, id AS category_id FROM categories
    WHERE $7::bigint IS NOT NULL AND parent_id IS NOT DISTINCT FROM nullif($7::bigint, 0)
    UNION ALL
    SELECT l.key, c.id FROM level l JOIN categories c ON c.parent_id = l.category_id
), tree_map AS (
    SELECT key, category_id FROM level
    UNION ALL
    SELECT $7::bigint, $7::bigint WHERE $7::bigint > 0
), kept AS (
    SELECT o.* FROM orders o
    WHERE o.merchant_id = $1 AND o.status = ANY ($4::text[])
      AND (o.created_at AT TIME ZONE $5)::date BETWEEN $2::date AND $3::date
), by_order AS (
    SELECT CASE $6::text WHEN 'city' THEN o.city_id::text WHEN 'region' THEN c.region
                         WHEN 'delivery_type' THEN o.delivery_type ELSE o.payment_method END AS key,
           count(*) AS orders,
           count(*) FILTER (WHERE o.accepted_at IS NOT NULL) AS accepted,
           count(*) FILTER (WHERE o.delivered_at IS NOT NULL) AS delivered,
           count(*) FILTER (WHERE o.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE EXISTS (SELECT FROM returns r WHERE r.order_id = o.id)) AS returned,
           sum((SELECT sum(i.quantity) FROM order_items i WHERE i.order_id = o.id)) AS items,
           sum(o.total_amount) AS gmv,
           coalesce(sum(o.total_amount) FILTER (WHERE o.delivered_at IS NOT NULL), 0) AS delivered_gmv,
           coalesce(sum((SELECT sum(r.amount) FROM returns r WHERE r.order_id = o.id)), 0) AS returned_amount,
           round(avg(extract(epoch FROM o.delivered_at - o.created_at)) FILTER (WHERE o.delivered_at IS NOT NULL) / 3600, 2) AS avg_delivery_hours
    FROM kept o JOIN cities c ON c.id = o.city_id
    WHERE $6::text IN ('city', 'region', 'delivery_type', 'payment_method')
    GROUP BY 1
), lines AS (
    SELECT CASE WHEN $7::bigint IS NOT NULL THEN tm.key WHEN $6::text = 'product' THEN i.product_id ELSE p.category_id END::text
               AS key, o.*, i.id AS item_id, i.quantity, i.unit_price
    FROM kept o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
    LEFT JOIN tree_map tm ON $7::bigint IS NOT NULL AND tm.category_id = p.category_id
    WHERE $6::text IN ('product', 'category') AND ($7::bigint IS NULL OR tm.key IS NOT NULL)
), line_returns AS (
    SELECT l.key, count(DISTINCT l.id) AS returned, sum(r.amount) AS returned_amount
    FROM lines l JOIN returns r ON r.order_item_id = l.item_id
    GROUP BY 1
), by_line AS (
    SELECT l.key,
           count(DISTINCT l.id) AS orders,
           count(DISTINCT l.id) FILTER (WHERE l.accepted_at IS NOT NULL) AS accepted,
           count(DISTINCT l.id) FILTER (WHERE l.delivered_at IS NOT NULL) AS delivered,
           count(DISTINCT l.id) FILTER (WHERE l.status = 'cancelled') AS cancelled,
           coalesce(max(lr.returned), 0) AS returned,
           sum(l.quantity) AS items,
           sum(l.quantity * l.unit_price) AS gmv,
           coalesce(sum(l.quantity * l.unit_price) FILTER (WHERE l.delivered_at IS NOT NULL), 0) AS delivered_gmv,
           coalesce(max(lr.returned_amount), 0) AS returned_amount,
           NULL::numeric AS avg_delivery_hours
    FROM lines l LEFT JOIN line_returns lr USING (key)
    GROUP BY l.key
), rows AS (
    SELECT * FROM by_order UNION ALL SELECT * FROM by_line
)
SELECT r.key,
       coalesce(CASE $6::text WHEN 'product' THEN (SELECT name FROM products WHERE id::text = r.key)
                              WHEN 'category' THEN (SELECT name FROM categories WHERE id::text = r.key)
                              WHEN 'city' THEN (SELECT name FROM cities WHERE id::text = r.key) END, r.key) AS name,
       round(r.gmv / nullif(sum(r.gmv) OVER (), 0), 6)::float8 AS share,
       r.orders, r.accepted, r.delivered, r.cancelled, r.returned, r.items,
       r.gmv::numeric(16,2)::text, r.returned_amount::numeric(16,2)::text,
       (r.delivered_gmv - r.returned_amount)::numeric(16,2)::text AS revenue,
       round(r.gmv / r.orders, 2)::text AS aov,
       round(r.cancelled::numeric / r.orders, 4)::float8,
       round(r.returned::numeric / r.orders, 4)::float8,
       r.avg_delivery_hours::float8,
       CASE WHEN $6::text = 'category' THEN (SELECT parent_id FROM categories WHERE id::text = r.key) END,
       CASE WHEN $6::text = 'category' THEN EXISTS (SELECT FROM categories WHERE parent_id::text = r.key) END
FROM rows r
