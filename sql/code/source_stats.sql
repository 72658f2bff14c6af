-- Aggregates computed on the source (postgres_fdw pushes each GROUP BY down; see the test
-- that reads their Remote SQL). Each returns one row per day bucket × status for one merchant.
--
-- Why date_bin: the business day is created_at in AGG_TIMEZONE, but AT TIME ZONE '<zone>' and
-- date_trunc() are not shippable. date_bin(interval, timestamptz, origin) is immutable and
-- ships, and with origin = the local midnight that starts the range it yields local days, as
-- long as the UTC offset is constant over the range: refresh.day_segments() cuts ranges there.
-- These are inlinable SQL functions, so parameters reach the remote query as parameters.

DROP FUNCTION IF EXISTS refresh.source_order_days(bigint, timestamptz, timestamptz);
CREATE FUNCTION refresh.source_order_days(p_merchant bigint, p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (bucket timestamptz, status text, orders bigint, accepted bigint, delivered bigint,
               gmv numeric, delivered_gmv numeric, delivery_time interval)
LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 day', o.created_at, p_lo), o.status,
           count(*),
           count(*) FILTER (WHERE o.accepted_at IS NOT NULL),
           count(*) FILTER (WHERE o.delivered_at IS NOT NULL),
           sum(o.total_amount),
           coalesce(sum(o.total_amount) FILTER (WHERE o.delivered_at IS NOT NULL), 0),
           coalesce(sum(o.delivered_at - o.created_at) FILTER (WHERE o.delivered_at IS NOT NULL), interval '0')
    FROM src.orders o
    WHERE o.merchant_id = p_merchant AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2
$$;

DROP FUNCTION IF EXISTS refresh.source_item_days(bigint, timestamptz, timestamptz);
CREATE FUNCTION refresh.source_item_days(p_merchant bigint, p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (bucket timestamptz, status text, items bigint)
LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 day', o.created_at, p_lo), o.status, sum(i.quantity)
    FROM src.orders o
    JOIN src.order_items i ON i.order_id = o.id
    WHERE o.merchant_id = p_merchant AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2
$$;

-- Returns are a few percent of orders, so whether this one is pushed down is left to the
-- planner's cost estimate: either way only return rows cross the wire.
DROP FUNCTION IF EXISTS refresh.source_return_days(bigint, timestamptz, timestamptz);
CREATE FUNCTION refresh.source_return_days(p_merchant bigint, p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (bucket timestamptz, status text, returned bigint, returned_amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 day', o.created_at, p_lo), o.status, count(DISTINCT r.order_id), sum(r.amount)
    FROM src.orders o
    JOIN src.returns r ON r.order_id = o.id
    WHERE o.merchant_id = p_merchant AND o.created_at >= p_lo AND o.created_at < p_hi
    GROUP BY 1, 2
$$;

-- Change scan: merchants × day buckets with orders updated after p_since.
DROP FUNCTION IF EXISTS refresh.source_changes(timestamptz, timestamptz);
CREATE FUNCTION refresh.source_changes(p_since timestamptz, p_origin timestamptz)
RETURNS TABLE (merchant_id bigint, bucket timestamptz, max_updated_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT o.merchant_id, date_bin('1 day', o.created_at, p_origin), max(o.updated_at)
    FROM src.orders o
    WHERE o.updated_at > p_since
    GROUP BY 1, 2
$$;

-- Business days spanned by one merchant's orders (for a full refresh of that merchant).
DROP FUNCTION IF EXISTS refresh.source_merchant_span(bigint);
CREATE FUNCTION refresh.source_merchant_span(p_merchant bigint)
RETURNS TABLE (first_at timestamptz, last_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT min(o.created_at), max(o.created_at) FROM src.orders o WHERE o.merchant_id = p_merchant
$$;
