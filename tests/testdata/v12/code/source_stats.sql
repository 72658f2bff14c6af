-- What the refresh reads from the source (postgres_fdw runs each filter, join and GROUP BY on
-- the source; tests/refresh_test.go reads their Remote SQL). These are inlinable SQL
-- functions, so parameters reach the remote query as parameters.
--
-- Since version 8 the refresh reads orders one by one (the order snapshot needs each order's
-- figures), with their lines and returns grouped per order × product on the source, and sums
-- days locally. Business days are computed locally from created_at, so any time zone, DST
-- included, is exact. Reconciliation's month checksums and the change scan's day buckets
-- below still group on the source.

-- Replaced in version 2 by the *_facts functions, and those in version 8 by per-order reads.
DROP FUNCTION IF EXISTS refresh.source_order_days(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_item_days(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_return_days(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_order_facts(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_order_facts(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_item_facts(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_item_facts(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_return_facts(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_return_facts(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_product_facts(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_product_facts(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_category_facts(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_category_facts(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_product_returns(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_product_returns(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_category_returns(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_category_returns(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_customer_facts(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_customer_facts(bigint[], timestamptz, timestamptz);

-- The orders of whole days: p_merchants' orders created in [p_lo, p_hi), their returns per
-- order, and their lines and returns per order × product. A line's category is NULL when its
-- product is unknown: it counts for its product, not for a category.
DROP FUNCTION IF EXISTS refresh.source_orders(bigint[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS refresh.source_orders_by_id(bigint[]);
DROP VIEW IF EXISTS refresh.source_order_rows;
-- One row per source order in refresh.order_snapshot's terms (filters on it reach the source).
CREATE VIEW refresh.source_order_rows AS
    SELECT o.id AS order_id, o.merchant_id, o.created_at, o.status, o.customer_id, o.city_id, o.delivery_type,
           o.payment_method, o.accepted_at IS NOT NULL AS accepted, o.delivered_at IS NOT NULL AS delivered,
           o.total_amount AS gmv, o.delivered_at - o.created_at AS delivery_time
    FROM src.orders o;

CREATE FUNCTION refresh.source_orders(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS SETOF refresh.source_order_rows
LANGUAGE sql STABLE AS $$
    SELECT * FROM refresh.source_order_rows o
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
CREATE FUNCTION refresh.source_orders_by_id(p_ids bigint[])
RETURNS SETOF refresh.source_order_rows
LANGUAGE sql STABLE AS $$
    SELECT * FROM refresh.source_order_rows o WHERE o.order_id = ANY (p_ids)
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

-- Per merchant, sums of hashes of its products' skus, names and categories (each seeded by
-- the product id), computed on the source: refresh.finish compares them with the same sums of
-- the stored products and reads only the lists that differ (a rename bumps no updated_at).
DROP FUNCTION IF EXISTS refresh.source_product_sums(bigint[]);
CREATE FUNCTION refresh.source_product_sums(p_merchants bigint[])
RETURNS TABLE (merchant_id bigint, products bigint, categorized bigint, skus numeric, names numeric, categories numeric)
LANGUAGE sql STABLE AS $$
    SELECT p.merchant_id, count(*), count(p.category_id), sum(hashtextextended(p.sku, p.id)),
           sum(hashtextextended(p.name, p.id)), sum(hashint8extended(p.category_id, p.id))
    FROM src.products p WHERE p.merchant_id = ANY (p_merchants) GROUP BY 1
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
