-- Loading, from the source: every read of the source's rows goes through these functions, so
-- postgres_fdw runs their filters, joins and GROUP BYs on the source (tests/refresh_test.go
-- reads their Remote SQL). They are inlinable SQL functions: parameters reach the remote query
-- as parameters. Business days are worked out here from created_at (any time zone, DST
-- included), never on the source.

-- One row per source order in the snapshot's terms (filters on it reach the source).
CREATE VIEW refresh.source_order_rows AS
    SELECT o.id AS order_id, o.merchant_id, o.created_at, o.status, o.customer_id, o.city_id, o.delivery_type,
           o.payment_method, o.accepted_at IS NOT NULL AS accepted, o.delivered_at IS NOT NULL AS delivered,
           o.total_amount AS gmv, o.delivered_at - o.created_at AS delivery_time
    FROM src.orders o;

-- Whole days: p_merchants' orders created in [p_lo, p_hi).
CREATE FUNCTION refresh.source_orders(p_merchants bigint[], p_lo timestamptz, p_hi timestamptz)
RETURNS SETOF refresh.source_order_rows
LANGUAGE sql STABLE AS $$
    SELECT * FROM refresh.source_order_rows o
    WHERE o.merchant_id = ANY (p_merchants) AND o.created_at >= p_lo AND o.created_at < p_hi
$$;

-- Rows by id: each table read through its own index (orders by id, items and returns by
-- order id) and grouped locally, for changed orders and for the lines and returns of whole
-- days. Joins of foreign tables are planned without row counts (use_remote_estimate is off):
-- with a list of ids the planner pulled whole tables across to join them here, and joined on
-- the source, one merchant's lines were a scan of every merchant's items.
CREATE FUNCTION refresh.source_orders_by_id(p_ids bigint[])
RETURNS SETOF refresh.source_order_rows
LANGUAGE sql STABLE AS $$
    SELECT * FROM refresh.source_order_rows o WHERE o.order_id = ANY (p_ids)
$$;

CREATE FUNCTION refresh.source_items_by_order(p_ids bigint[])
RETURNS TABLE (id bigint, order_id bigint, product_id bigint, quantity int, unit_price numeric)
LANGUAGE sql STABLE AS $$
    SELECT i.id, i.order_id, i.product_id, i.quantity, i.unit_price FROM src.order_items i WHERE i.order_id = ANY (p_ids)
$$;

CREATE FUNCTION refresh.source_returns_by_order(p_ids bigint[])
RETURNS TABLE (order_id bigint, order_item_id bigint, amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT r.order_id, r.order_item_id, r.amount FROM src.returns r WHERE r.order_id = ANY (p_ids)
$$;

-- Products by id (the catalog copy's missing entries: a line of a product not yet copied).
CREATE FUNCTION refresh.source_products_by_id(p_ids bigint[])
RETURNS TABLE (merchant_id bigint, id bigint, sku text, name text, category_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.merchant_id, p.id, p.sku, p.name, p.category_id FROM src.products p WHERE p.id = ANY (p_ids)
$$;

-- A merchant set's products (catalog.sql reads the lists whose sums differ).
CREATE FUNCTION refresh.source_products(p_merchants bigint[])
RETURNS TABLE (merchant_id bigint, id bigint, sku text, name text, category_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.merchant_id, p.id, p.sku, p.name, p.category_id FROM src.products p WHERE p.merchant_id = ANY (p_merchants)
$$;

-- Per merchant, sums of hashes of its products' skus, names and categories (each seeded by
-- the product id), computed on the source: compared with the same sums of the catalog copy,
-- so only the lists that differ are read (a rename bumps no updated_at).
CREATE FUNCTION refresh.source_product_sums(p_merchants bigint[])
RETURNS TABLE (merchant_id bigint, products bigint, categorized bigint, skus numeric, names numeric, categories numeric)
LANGUAGE sql STABLE AS $$
    SELECT p.merchant_id, count(*), count(p.category_id), sum(hashtextextended(p.sku, p.id)),
           sum(hashtextextended(p.name, p.id)), sum(hashint8extended(p.category_id, p.id))
    FROM src.products p WHERE p.merchant_id = ANY (p_merchants) GROUP BY 1
$$;

-- Change scan, by order: the orders updated at or after p_since.
CREATE FUNCTION refresh.source_changed_orders(p_since timestamptz)
RETURNS TABLE (merchant_id bigint, order_id bigint, created_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, o.id, o.created_at FROM src.orders o WHERE o.updated_at >= p_since
$$;

-- Change scan: merchants × day buckets with orders updated at or after p_since.
CREATE FUNCTION refresh.source_changes(p_since timestamptz, p_origin timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_origin)
    FROM src.orders o
    WHERE o.updated_at >= p_since
    GROUP BY 1, 2
$$;

-- Business days spanned by one merchant's orders (for a full refresh of that merchant).
CREATE FUNCTION refresh.source_merchant_span(p_merchant bigint)
RETURNS TABLE (first_at timestamptz, last_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT min(o.created_at), max(o.created_at) FROM src.orders o WHERE o.merchant_id = p_merchant
$$;

-- Reconciliation checksums (reconcile.sql): per merchant × month over the orders created in
-- [p_bounds[1], p_bounds[last]), months being the business months whose local-midnight
-- starts p_bounds lists (width_bucket() is immutable and ships, so the GROUP BY runs on the
-- source; so do the hash functions below, where casts to text would not). They sum hashes of what the snapshot keeps of each order (refresh.snapshot_checks
-- computes the same from pipeline.orders): its own columns; its lines, each product's hash
-- weighted by the line's quantity and amount (a sum over items equals the sum over the
-- snapshot's lines per product); and its returns. So a change that keeps every total but moves
-- an order to another customer, city, method or product differs.
CREATE FUNCTION refresh.source_month_checks(p_bounds timestamptz[])
RETURNS TABLE (merchant_id bigint, bucket int, orders bigint, hashes numeric, cities numeric, deliveries numeric,
               payments numeric, times numeric)
LANGUAGE sql STABLE AS $$
    -- Nullable columns have sums of their own (coalesce does not ship; sum skips NULLs).
    SELECT o.merchant_id, width_bucket(o.created_at, p_bounds), count(*),
           sum(hashint8extended(o.customer_id, o.id)::numeric + hashtextextended(o.status, o.id + 1)
               + hashint8extended((o.total_amount * 100)::bigint, o.id + 2) + hashint4extended((o.accepted_at IS NOT NULL)::int, o.id + 3)),
           sum(hashint8extended(o.city_id, o.id + 4)), sum(hashtextextended(o.delivery_type, o.id + 5)),
           sum(hashtextextended(o.payment_method, o.id + 6)),
           sum(interval_hash_extended(o.delivered_at - o.created_at, o.id + 7))
    FROM src.orders o
    WHERE o.created_at >= p_bounds[1] AND o.created_at < p_bounds[cardinality(p_bounds)]
    GROUP BY 1, 2
$$;

CREATE FUNCTION refresh.source_month_item_checks(p_bounds timestamptz[])
RETURNS TABLE (merchant_id bigint, bucket int, items numeric, gmv numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, width_bucket(o.created_at, p_bounds),
           sum(hashint8extended(i.product_id, o.id)::numeric * i.quantity),
           sum(hashint8extended(i.product_id, o.id)::numeric * i.quantity * i.unit_price)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    WHERE o.created_at >= p_bounds[1] AND o.created_at < p_bounds[cardinality(p_bounds)]
    GROUP BY 1, 2
$$;

CREATE FUNCTION refresh.source_month_return_checks(p_bounds timestamptz[])
RETURNS TABLE (merchant_id bigint, bucket int, returned bigint, amounts numeric)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, width_bucket(o.created_at, p_bounds), count(DISTINCT r.order_id),
           sum(hashint8extended(i.product_id, o.id)::numeric * r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    JOIN src.order_items i ON i.id = r.order_item_id
    WHERE o.created_at >= p_bounds[1] AND o.created_at < p_bounds[cardinality(p_bounds)]
    GROUP BY 1, 2
$$;
