-- One change for the freshness probe: a new order (one line of 100.00) for merchant $1 on the
-- last day of its data, committed now. Returns its business day. $2 time zone.
WITH last AS (SELECT max(created_at) AS at FROM orders WHERE merchant_id = $1),
o AS (
    INSERT INTO orders (id, merchant_id, customer_id, city_id, delivery_type, payment_method, status,
                        total_amount, created_at, updated_at)
    SELECT (SELECT max(id) + 1 FROM orders), $1, (SELECT min(id) FROM customers), (SELECT min(id) FROM cities),
           'courier', 'card', 'created', 100.00, last.at, now()
    FROM last
    RETURNING id, created_at
), i AS (
    INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)
    SELECT (SELECT max(id) + 1 FROM order_items), o.id, (SELECT min(id) FROM products WHERE merchant_id = $1), 1, 100.00
    FROM o
)
SELECT (created_at AT TIME ZONE $2)::date FROM o
