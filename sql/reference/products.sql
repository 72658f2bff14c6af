-- Product values for ABC analysis straight from the source: gmv (Σ quantity × unit_price) and
-- items of each product's lines in the kept orders, with its sku and name.
-- $1 merchant, $2 from, $3 to, $4 statuses, $5 time zone.
SELECT i.product_id, p.sku, p.name, sum(i.quantity * i.unit_price)::text AS gmv, sum(i.quantity)::text AS items
FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
WHERE o.merchant_id = $1 AND o.status = ANY ($4::text[])
  AND (o.created_at AT TIME ZONE $5)::date BETWEEN $2::date AND $3::date
GROUP BY 1, 2, 3
