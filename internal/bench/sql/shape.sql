-- What the load mix draws from: the merchants by size, largest first, and the business days
-- the data spans; the orders in all and of the largest merchant. $1 time zone.
SELECT array_agg(merchant_id ORDER BY n DESC, merchant_id),
       (SELECT (min(created_at) AT TIME ZONE $1)::date FROM orders),
       (SELECT (max(created_at) AT TIME ZONE $1)::date FROM orders),
       sum(n),
       max(n)
FROM (SELECT merchant_id, count(*) AS n FROM orders GROUP BY 1) m
