-- The order metrics of docs/metrics.md computed straight from the source tables, independently of merchantagg: the business
-- day is (created_at AT TIME ZONE tz)::date, per-order items and returns by subquery.
-- $1 merchant, $2 from, $3 to, $4 statuses, $5 time zone, $6 grain (NULL = the whole range).
WITH o AS (
    SELECT o.*,
           (o.created_at AT TIME ZONE $5)::date AS day,
           (SELECT coalesce(sum(i.quantity), 0) FROM order_items i WHERE i.order_id = o.id) AS items,
           EXISTS (SELECT FROM returns r WHERE r.order_id = o.id) AS has_return,
           (SELECT coalesce(sum(r.amount), 0) FROM returns r WHERE r.order_id = o.id) AS returned_amount
    FROM orders o
    WHERE o.merchant_id = $1 AND o.status = ANY ($4::text[])
      AND (o.created_at AT TIME ZONE $5)::date BETWEEN $2::date AND $3::date
)
SELECT CASE WHEN $6::text IS NULL THEN $2::date ELSE date_trunc($6::text, day::timestamp)::date END AS period,
       count(*),
       count(*) FILTER (WHERE accepted_at IS NOT NULL),
       count(*) FILTER (WHERE delivered_at IS NOT NULL),
       count(*) FILTER (WHERE status = 'cancelled'),
       count(*) FILTER (WHERE has_return),
       sum(items),
       sum(total_amount)::numeric(16,2)::text,
       sum(returned_amount)::numeric(16,2)::text,
       (coalesce(sum(total_amount) FILTER (WHERE delivered_at IS NOT NULL), 0) - sum(returned_amount))::numeric(16,2)::text,
       round(sum(total_amount) / count(*), 2)::text,
       round(count(*) FILTER (WHERE status = 'cancelled')::numeric / count(*), 4)::float8,
       round(count(*) FILTER (WHERE has_return)::numeric / count(*), 4)::float8,
       round(avg(extract(epoch FROM delivered_at - created_at)) FILTER (WHERE delivered_at IS NOT NULL) / 3600, 2)::float8
FROM o
GROUP BY 1
ORDER BY 1
