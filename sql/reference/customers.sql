-- The customer figures of docs/metrics.md straight from the source. A customer is new when its first order
-- ever with the merchant, of any status, lies in the range.
-- $1 merchant, $2 from, $3 to, $4 statuses, $5 time zone.
WITH kept AS (
    SELECT o.customer_id, count(*) AS orders, sum(o.total_amount) AS gmv
    FROM orders o
    WHERE o.merchant_id = $1 AND o.status = ANY ($4::text[])
      AND (o.created_at AT TIME ZONE $5)::date BETWEEN $2::date AND $3::date
    GROUP BY o.customer_id
), first AS (
    SELECT customer_id, min((created_at AT TIME ZONE $5)::date) AS first_day
    FROM orders WHERE merchant_id = $1 GROUP BY customer_id
)
SELECT count(*),
       count(*) FILTER (WHERE f.first_day BETWEEN $2::date AND $3::date),
       round(count(*) FILTER (WHERE k.orders >= 2)::numeric / nullif(count(*), 0), 4)::float8,
       round(sum(k.orders)::numeric / nullif(count(*), 0), 2)::float8,
       round(sum(k.gmv) / nullif(count(*), 0), 2)::text
FROM kept k JOIN first f USING (customer_id)
