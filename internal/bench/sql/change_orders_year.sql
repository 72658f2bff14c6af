-- As change_orders.sql, but the $1 orders are drawn from the whole last year of data: each
-- change then moves the running sums of its keys' later months too.
WITH recent AS (
    SELECT id FROM orders
    WHERE created_at >= (SELECT max(created_at) FROM orders) - interval '1 year'
      AND status IN ('created', 'accepted', 'delivered')
    ORDER BY md5(id::text || $2)
    LIMIT $1
), changed AS (
    UPDATE orders o
    SET status = CASE o.status WHEN 'created' THEN 'accepted' WHEN 'accepted' THEN 'delivered' ELSE 'returned' END,
        accepted_at = coalesce(o.accepted_at, o.created_at + interval '1 hour'),
        delivered_at = coalesce(o.delivered_at, o.created_at + interval '2 days'),
        updated_at = now()
    FROM recent
    WHERE o.id = recent.id
    RETURNING o.merchant_id, (o.created_at AT TIME ZONE $3)::date AS day
)
SELECT count(*), count(DISTINCT merchant_id), count(DISTINCT (merchant_id, day)) FROM changed
