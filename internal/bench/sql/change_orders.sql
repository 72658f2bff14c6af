-- Moves $1 orders of the last 14 days of data one step on, as a marketplace does all day:
-- created → accepted, accepted → delivered, delivered → returned, and returned → delivered (a
-- return refused), so that every change moves a figure and repeated runs never run out of
-- orders to change. A deterministic sample for the salt $2. Returns the business days and
-- merchants touched. $3 time zone.
WITH recent AS (
    SELECT id FROM orders
    WHERE created_at >= (SELECT max(created_at) FROM orders) - interval '14 days'
      AND status IN ('created', 'accepted', 'delivered', 'returned')
    ORDER BY md5(id::text || $2)
    LIMIT $1
), changed AS (
    UPDATE orders o
    SET status = CASE o.status WHEN 'created' THEN 'accepted' WHEN 'accepted' THEN 'delivered'
                  WHEN 'delivered' THEN 'returned' ELSE 'delivered' END,
        accepted_at = coalesce(o.accepted_at, o.created_at + interval '1 hour'),
        delivered_at = coalesce(o.delivered_at, o.created_at + interval '2 days'),
        updated_at = now()
    FROM recent
    WHERE o.id = recent.id
    RETURNING o.merchant_id, (o.created_at AT TIME ZONE $3)::date AS day
)
SELECT count(*), count(DISTINCT merchant_id), count(DISTINCT (merchant_id, day)) FROM changed
