-- Aggregates computed on the source (postgres_fdw pushes each GROUP BY down; see the test
-- that reads their Remote SQL). Each returns, for a set of merchants and [p_lo, p_hi), one row
-- per merchant × day bucket × status × its keys: one remote query serves every merchant a
-- refresh transaction rewrites.
--
-- Why date_bin: the business day is created_at in AGG_TIMEZONE, but AT TIME ZONE '<zone>' and
-- date_trunc() are not shippable. date_bin(interval, timestamptz, origin) is immutable and
-- ships, and with origin = the local midnight that starts the range it yields local days, as
-- long as the UTC offset is constant over the range: refresh.day_segments() cuts ranges there.
-- These are inlinable SQL functions, so parameters reach the remote query as parameters.

-- Replaced in version 2 by the *_facts functions.
DROP FUNCTION IF EXISTS refresh.source_order_days(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_item_days(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_return_days(bigint, timestamptz, timestamptz);

-- Order facts: grouped by every order-level key at once, so one set of remote queries feeds
-- agg.order_stats and the city, region, delivery and payment breakdowns.
DROP FUNCTION IF EXISTS refresh.source_order_facts(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_order_facts(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_order_facts(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, city_id bigint, delivery_type text, payment_method text,
               orders bigint, accepted bigint, delivered bigint, gmv numeric, delivered_gmv numeric,
               delivery_time interval)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, o.city_id, o.delivery_type, o.payment_method,
           count(*),
           count(*) FILTER (WHERE o.accepted_at IS NOT NULL),
           count(*) FILTER (WHERE o.delivered_at IS NOT NULL),
           sum(o.total_amount),
           coalesce(sum(o.total_amount) FILTER (WHERE o.delivered_at IS NOT NULL), 0),
           coalesce(sum(o.delivered_at - o.created_at) FILTER (WHERE o.delivered_at IS NOT NULL), interval '0')
    FROM src.orders o
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4, 5, 6
$$;

DROP FUNCTION IF EXISTS refresh.source_item_facts(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_item_facts(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_item_facts(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, city_id bigint, delivery_type text, payment_method text, items bigint)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, o.city_id, o.delivery_type, o.payment_method, sum(i.quantity)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4, 5, 6
$$;

DROP FUNCTION IF EXISTS refresh.source_return_facts(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_return_facts(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_return_facts(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, city_id bigint, delivery_type text, payment_method text,
               returned bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, o.city_id, o.delivery_type, o.payment_method,
           count(DISTINCT r.order_id), sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4, 5, 6
$$;

-- Line facts per product or category (p_by_category): orders are distinct orders containing
-- the key, items and gmv those of its lines.
DROP FUNCTION IF EXISTS refresh.source_product_facts(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_product_facts(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_product_facts(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, product_id bigint, orders bigint, accepted bigint,
               delivered bigint, items bigint, gmv numeric, delivered_gmv numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, i.product_id,
           count(DISTINCT o.id),
           count(DISTINCT o.id) FILTER (WHERE o.accepted_at IS NOT NULL),
           count(DISTINCT o.id) FILTER (WHERE o.delivered_at IS NOT NULL),
           sum(i.quantity), sum(i.quantity * i.unit_price),
           coalesce(sum(i.quantity * i.unit_price) FILTER (WHERE o.delivered_at IS NOT NULL), 0)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4
$$;

DROP FUNCTION IF EXISTS refresh.source_category_facts(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_category_facts(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_category_facts(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, category_id bigint, orders bigint, accepted bigint,
               delivered bigint, items bigint, gmv numeric, delivered_gmv numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, p.category_id,
           count(DISTINCT o.id),
           count(DISTINCT o.id) FILTER (WHERE o.accepted_at IS NOT NULL),
           count(DISTINCT o.id) FILTER (WHERE o.delivered_at IS NOT NULL),
           sum(i.quantity), sum(i.quantity * i.unit_price),
           coalesce(sum(i.quantity * i.unit_price) FILTER (WHERE o.delivered_at IS NOT NULL), 0)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    LEFT JOIN src.products p ON p.id = i.product_id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4
$$;

-- Returns of a product's (category's) lines: orders with such a return, and their amount.
DROP FUNCTION IF EXISTS refresh.source_product_returns(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_product_returns(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_product_returns(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, product_id bigint, returned bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, i.product_id, count(DISTINCT o.id), sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    JOIN src.order_items i ON i.id = r.order_item_id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4
$$;

DROP FUNCTION IF EXISTS refresh.source_category_returns(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_category_returns(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_category_returns(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, category_id bigint, returned bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, p.category_id, count(DISTINCT o.id), sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    JOIN src.order_items i ON i.id = r.order_item_id
    JOIN src.products p ON p.id = i.product_id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4
$$;

-- Orders and gmv per customer × day × status (customer figures must stay exact distinct counts).
DROP FUNCTION IF EXISTS refresh.source_customer_facts(bigint, timestamptz, timestamptz); -- version 2
DROP FUNCTION IF EXISTS refresh.source_customer_facts(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_customer_facts(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, status text, customer_id bigint, orders bigint, gmv numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_lo), o.status, o.customer_id, count(*), sum(o.total_amount)
    FROM src.orders o
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3, 4
$$;

-- Per-order rows for refresh.order_snapshot (migration 008), for the days a refresh
-- recomputes whole: p_merchants' orders created in [p_lo, p_hi), their returns per order, and
-- their lines and returns per order × product (grouped on the source, like the aggregates).
-- A line's category is NULL when its product is unknown (source_category_facts leaves such
-- lines out; source_product_facts counts them).
DROP FUNCTION IF EXISTS refresh.source_orders(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_orders(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (order_id bigint, merchant_id bigint, created_at timestamptz, status text, customer_id bigint,
               city_id bigint, delivery_type text, payment_method text, accepted boolean, delivered boolean,
               gmv numeric, delivery_time interval)
LANGUAGE sql STABLE AS $$
    SELECT o.id, o.merchant_id, o.created_at, o.status, o.customer_id, o.city_id, o.delivery_type, o.payment_method,
           o.accepted_at IS NOT NULL, o.delivered_at IS NOT NULL, o.total_amount, o.delivered_at - o.created_at
    FROM src.orders o
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
$$;

DROP FUNCTION IF EXISTS refresh.source_order_returns(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_order_returns(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (order_id bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.id, sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1
$$;

DROP FUNCTION IF EXISTS refresh.source_lines(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_lines(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (order_id bigint, product_id bigint, category_id bigint, items bigint, gmv numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.id, i.product_id, p.category_id, sum(i.quantity), sum(i.quantity * i.unit_price)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    LEFT JOIN src.products p ON p.id = i.product_id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2, 3
$$;

DROP FUNCTION IF EXISTS refresh.source_line_returns(bigint[], timestamptz, timestamptz);
CREATE FUNCTION refresh.source_line_returns(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (order_id bigint, product_id bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.id, i.product_id, sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    JOIN src.order_items i ON i.id = r.order_item_id
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2
$$;

-- The same rows for a few changed orders, by id: each table read through its own index
-- (orders by id, items and returns by order id, products by id) and grouped locally. Joins of
-- foreign tables are planned without row counts (use_remote_estimate is off), and with a
-- list of ids the planner pulled whole tables across to join them here.
DROP FUNCTION IF EXISTS refresh.source_orders_by_id(bigint[]);
CREATE FUNCTION refresh.source_orders_by_id(p_ids bigint[])
RETURNS TABLE (order_id bigint, merchant_id bigint, created_at timestamptz, status text, customer_id bigint,
               city_id bigint, delivery_type text, payment_method text, accepted boolean, delivered boolean,
               gmv numeric, delivery_time interval)
LANGUAGE sql STABLE AS $$
    SELECT o.id, o.merchant_id, o.created_at, o.status, o.customer_id, o.city_id, o.delivery_type, o.payment_method,
           o.accepted_at IS NOT NULL, o.delivered_at IS NOT NULL, o.total_amount, o.delivered_at - o.created_at
    FROM src.orders o
    WHERE o.id = ANY (p_ids)
$$;

DROP FUNCTION IF EXISTS refresh.source_items_by_order(bigint[]);
CREATE FUNCTION refresh.source_items_by_order(p_ids bigint[])
RETURNS TABLE (id bigint, order_id bigint, product_id bigint, quantity int, unit_price numeric)
LANGUAGE sql STABLE AS $$
    SELECT i.id, i.order_id, i.product_id, i.quantity, i.unit_price FROM src.order_items i WHERE i.order_id = ANY (p_ids)
$$;

DROP FUNCTION IF EXISTS refresh.source_returns_by_order(bigint[]);
CREATE FUNCTION refresh.source_returns_by_order(p_ids bigint[])
RETURNS TABLE (order_id bigint, order_item_id bigint, amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT r.order_id, r.order_item_id, r.amount FROM src.returns r WHERE r.order_id = ANY (p_ids)
$$;

DROP FUNCTION IF EXISTS refresh.source_product_categories(bigint[]);
CREATE FUNCTION refresh.source_product_categories(p_ids bigint[])
RETURNS TABLE (id bigint, category_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.id, p.category_id FROM src.products p WHERE p.id = ANY (p_ids)
$$;

-- Change scan, by order: the orders updated at or after p_since.
DROP FUNCTION IF EXISTS refresh.source_changed_orders(timestamptz);
CREATE FUNCTION refresh.source_changed_orders(p_since timestamptz)
RETURNS TABLE (merchant_id bigint, order_id bigint, created_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, o.id, o.created_at FROM src.orders o WHERE o.updated_at >= p_since
$$;

-- Change scan: merchants × day buckets with orders updated at or after p_since.
DROP FUNCTION IF EXISTS refresh.source_changes(timestamptz, timestamptz);
CREATE FUNCTION refresh.source_changes(p_since timestamptz, p_origin timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_origin)
    FROM src.orders o
    WHERE o.updated_at >= p_since
    GROUP BY 1, 2
$$;

-- Business days spanned by one merchant's orders (for a full refresh of that merchant).
DROP FUNCTION IF EXISTS refresh.source_merchant_span(bigint);
CREATE FUNCTION refresh.source_merchant_span(p_merchant bigint)
RETURNS TABLE (first_at timestamptz, last_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT min(o.created_at), max(o.created_at) FROM src.orders o WHERE o.merchant_id = p_merchant
$$;

-- Reconciliation checksums (sql/code/reconcile.sql): per merchant × month × status over the
-- orders created in [p_bounds[1], p_bounds[last]). Months are the business months whose
-- local-midnight starts p_bounds lists: width_bucket() is immutable and ships, so the GROUP BY
-- runs on the source. The range filter is what makes the planner ship the joins too.
DROP FUNCTION IF EXISTS refresh.source_month_checks(timestamptz[]);
CREATE FUNCTION refresh.source_month_checks(p_bounds timestamptz[])
RETURNS TABLE (merchant_id bigint, bucket int, status text, orders bigint, accepted bigint, delivered bigint, gmv numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, width_bucket(o.created_at, p_bounds), o.status,
           count(*), count(o.accepted_at), count(o.delivered_at), sum(o.total_amount)
    FROM src.orders o
    WHERE o.created_at >= p_bounds[1] AND o.created_at < p_bounds[cardinality(p_bounds)]
    GROUP BY 1, 2, 3
$$;

DROP FUNCTION IF EXISTS refresh.source_month_item_checks(timestamptz[]);
CREATE FUNCTION refresh.source_month_item_checks(p_bounds timestamptz[])
RETURNS TABLE (merchant_id bigint, bucket int, status text, items bigint)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, width_bucket(o.created_at, p_bounds), o.status, sum(i.quantity)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    WHERE o.created_at >= p_bounds[1] AND o.created_at < p_bounds[cardinality(p_bounds)]
    GROUP BY 1, 2, 3
$$;

DROP FUNCTION IF EXISTS refresh.source_month_return_checks(timestamptz[]);
CREATE FUNCTION refresh.source_month_return_checks(p_bounds timestamptz[])
RETURNS TABLE (merchant_id bigint, bucket int, status text, returned bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, width_bucket(o.created_at, p_bounds), o.status, count(DISTINCT r.order_id), sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    WHERE o.created_at >= p_bounds[1] AND o.created_at < p_bounds[cardinality(p_bounds)]
    GROUP BY 1, 2, 3
$$;
