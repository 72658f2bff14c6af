-- Loading: the orders a unit of work recomputes, as the source has them now (new_orders) and
-- as the snapshot has them (old_orders). Netting then takes the old figures out and puts the
-- new ones in, so reading an order twice changes nothing, an order gone from the source is
-- taken out, and an order moved to another day leaves the day it left.

-- The status codes of pipeline.orders.status, in the API's order.
CREATE FUNCTION refresh.status_index(p_status text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status WHEN 'created' THEN 0 WHEN 'accepted' THEN 1 WHEN 'delivered' THEN 2
                         WHEN 'cancelled' THEN 3 WHEN 'returned' THEN 4 END::smallint
$$;

-- Reads p_merchants' orders created on their business days [p_from, p_to] into read_orders
-- and read_lines: the orders by merchant and range, their returns, lines and line returns by
-- order id (read_lines), each table through the source's own index. Joined on the source, the
-- lines of one merchant's days were a scan of every merchant's items.
CREATE PROCEDURE refresh.read_days(p_merchants bigint[], p_from date, p_to date)
LANGUAGE plpgsql
SET enable_nestloop = off -- remote results are joined by hash: a nested loop reran the inner remote query per row
AS $$
DECLARE
    v_tz  text := (SELECT timezone FROM pipeline.settings);
    v_lo  timestamptz := p_from::timestamp AT TIME ZONE v_tz;
    v_hi  timestamptz := (p_to + 1)::timestamp AT TIME ZONE v_tz;
    v_ids bigint[];
BEGIN
    -- The returns are read by the ids just read, in the same remote snapshot (the call with a
    -- subquery argument is planned on its own, the ids as its parameter).
    WITH o AS MATERIALIZED (SELECT * FROM refresh.source_orders(p_merchants, v_lo, v_hi)),
         r AS MATERIALIZED (SELECT order_id, sum(amount) AS amount
                            FROM refresh.source_returns_by_order(ARRAY(SELECT order_id FROM o)) GROUP BY 1),
         kept AS (
             INSERT INTO pg_temp.read_orders
             SELECT o.*, r.amount
             FROM o LEFT JOIN r USING (order_id)
             ON CONFLICT DO NOTHING
             RETURNING order_id)
    SELECT coalesce(array_agg(order_id), '{}') INTO v_ids FROM kept;
    CALL refresh.read_lines(v_ids);
    -- The snapshot's orders of those days (the old side; read_orders reads by id those the days'
    -- read did not find).
    INSERT INTO pg_temp.old_orders
    SELECT * FROM pipeline.orders WHERE merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to
    ON CONFLICT DO NOTHING;
END $$;

-- Reads by id the orders p_ids, and the snapshot's orders of the days read so far that the
-- days' read did not find (moved to another day, or gone): into read_orders and read_lines
-- those the source still has, table by table through the source's indexes, grouped here; into
-- old_orders their snapshot rows.
CREATE PROCEDURE refresh.read_orders(p_ids bigint[])
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
BEGIN
    p_ids := ARRAY(SELECT unnest(p_ids) UNION SELECT order_id FROM pg_temp.old_orders
                   EXCEPT SELECT order_id FROM pg_temp.read_orders);
    IF cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO pg_temp.old_orders SELECT * FROM pipeline.orders WHERE order_id = ANY (p_ids) ON CONFLICT DO NOTHING;
    CALL refresh.read_lines(p_ids);
    WITH o AS MATERIALIZED (SELECT * FROM refresh.source_orders_by_id(p_ids)),
         r AS MATERIALIZED (SELECT order_id, sum(amount) AS amount FROM refresh.source_returns_by_order(p_ids) GROUP BY 1)
    INSERT INTO pg_temp.read_orders
    SELECT o.*, r.amount
    FROM o LEFT JOIN r USING (order_id)
    ON CONFLICT DO NOTHING;
END $$;

-- Reads the lines of the orders p_ids into read_lines: per order × product, its items,
-- amount and returned amount, from the items and returns read by order id (the returns name
-- their items), grouped here.
CREATE PROCEDURE refresh.read_lines(p_ids bigint[])
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
BEGIN
    IF cardinality(p_ids) = 0 THEN
        RETURN;
    END IF;
    WITH i AS MATERIALIZED (SELECT * FROM refresh.source_items_by_order(p_ids)),
         r AS MATERIALIZED (SELECT * FROM refresh.source_returns_by_order(p_ids)),
         lr AS (SELECT i.order_id, i.product_id, sum(r.amount) AS amount FROM r JOIN i ON i.id = r.order_item_id GROUP BY 1, 2)
    INSERT INTO pg_temp.read_lines
    SELECT i.order_id, i.product_id, sum(i.quantity), sum(i.quantity * i.unit_price), lr.amount
    FROM i LEFT JOIN lr USING (order_id, product_id)
    GROUP BY i.order_id, i.product_id, lr.amount
    ON CONFLICT DO NOTHING;
END $$;

-- Shapes what read_days and read_orders read into new_orders (pipeline.orders's terms:
-- business day, status code, labels, cents, lines as an n × 4 array), adds the snapshot rows
-- of every order read to old_orders (an order moved in from elsewhere), and lists the
-- customers whose order sequence changed. Any merchant met beyond p_merchants (an order moved between merchants)
-- is locked too.
CREATE PROCEDURE refresh.stage_orders(p_merchants bigint[])
LANGUAGE plpgsql
SET enable_nestloop = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_tz    text := (SELECT timezone FROM pipeline.settings);
    v_extra bigint;
BEGIN
    INSERT INTO pg_temp.old_orders
    SELECT s.* FROM pipeline.orders s WHERE s.order_id = ANY (ARRAY(SELECT order_id FROM pg_temp.read_orders))
    ON CONFLICT DO NOTHING;

    INSERT INTO ref.labels (dimension, label)
    SELECT DISTINCT x.dimension, x.label
    FROM pg_temp.read_orders o
    CROSS JOIN LATERAL (VALUES ('delivery_type', o.delivery_type), ('payment_method', o.payment_method)) AS x (dimension, label)
    WHERE x.label IS NOT NULL
      AND NOT EXISTS (SELECT FROM ref.labels l WHERE l.dimension = x.dimension AND l.label = x.label)
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;

    INSERT INTO pg_temp.new_orders
    SELECT o.order_id, o.merchant_id, o.customer_id, o.city_id, (o.gmv * 100)::bigint,
           coalesce(o.returned_amount * 100, 0)::bigint,
           CASE WHEN o.delivered THEN (extract(epoch FROM o.delivery_time) * 1000000)::bigint ELSE 0 END,
           (o.created_at AT TIME ZONE v_tz)::date, coalesce(l.items, 0), d.id, p.id, refresh.status_index(o.status),
           o.accepted, o.delivered, o.returned_amount IS NOT NULL, coalesce(l.lines, '{}')
    FROM pg_temp.read_orders o
    LEFT JOIN (SELECT order_id, sum(items)::int AS items,
                      array_agg(ARRAY[product_id, items, (gmv * 100)::bigint, coalesce((returned_amount * 100)::bigint, -1)]
                                ORDER BY product_id) AS lines
               FROM pg_temp.read_lines GROUP BY 1) AS l USING (order_id)
    LEFT JOIN ref.labels d ON d.dimension = 'delivery_type' AND d.label = o.delivery_type
    LEFT JOIN ref.labels p ON p.dimension = 'payment_method' AND p.label = o.payment_method;

    FOR v_extra IN
        SELECT merchant_id FROM pg_temp.new_orders UNION SELECT merchant_id FROM pg_temp.old_orders
        EXCEPT SELECT unnest(p_merchants) ORDER BY 1
    LOOP
        CALL refresh.lock_merchant(v_extra);
    END LOOP;

    -- A customer's events follow its order sequence: day, order and status of each order. The
    -- first order (by day, then id) that differs is where its events start to change.
    INSERT INTO pg_temp.changed_customers AS c
    SELECT DISTINCT ON (merchant_id, customer_id) merchant_id, customer_id, day, order_id
    FROM ((SELECT merchant_id, customer_id, order_id, day, status FROM pg_temp.new_orders
           EXCEPT SELECT merchant_id, customer_id, order_id, day, status FROM pg_temp.old_orders)
          UNION ALL
          (SELECT merchant_id, customer_id, order_id, day, status FROM pg_temp.old_orders
           EXCEPT SELECT merchant_id, customer_id, order_id, day, status FROM pg_temp.new_orders)) AS x
    ORDER BY merchant_id, customer_id, day, order_id
    ON CONFLICT (merchant_id, customer_id) DO UPDATE SET cut_day = EXCLUDED.cut_day, cut_order = EXCLUDED.cut_order
    WHERE (EXCLUDED.cut_day, EXCLUDED.cut_order) < (c.cut_day, c.cut_order);
END $$;

-- Replaces the snapshot rows of the orders staged with new_orders (an order in old_orders and
-- not in new_orders is gone from the source); rows that did not change are left alone.
CREATE PROCEDURE refresh.replace_snapshot()
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pipeline.orders
    WHERE order_id = ANY (ARRAY(SELECT order_id FROM (SELECT * FROM pg_temp.old_orders EXCEPT SELECT * FROM pg_temp.new_orders) AS x));
    INSERT INTO pipeline.orders
    SELECT * FROM (SELECT * FROM pg_temp.new_orders EXCEPT SELECT * FROM pg_temp.old_orders) AS x
    ORDER BY merchant_id, customer_id;
END $$;
