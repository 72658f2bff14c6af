-- Refresh by changed order, version 1 (migration 008): the order snapshot, and netting
-- changed orders into the aggregates. Callers run each in their transaction, like
-- sql/code/refresh.sql.

DROP PROCEDURE IF EXISTS refresh.read_day_orders(bigint[], timestamptz, timestamptz, text);
DROP PROCEDURE IF EXISTS refresh.read_orders(bigint[], bigint[], timestamptz, timestamptz, text);
-- Reads orders into the session's new_orders and new_lines, each with its business day in
-- p_tz: the orders whose ids are in p_ids (changed orders), or, when p_ids is NULL,
-- p_merchants' orders created in [p_lo, p_hi) (whole days). Days come with their lines and
-- returns grouped per order × product on the source; a few changed orders are read table by
-- table through the source's indexes and grouped here (see refresh.source_orders_by_id).
CREATE PROCEDURE refresh.read_orders(p_ids bigint[], p_merchants bigint[], p_lo timestamptz, p_hi timestamptz, p_tz text)
LANGUAGE plpgsql
SET enable_nestloop = off -- remote results are joined by hash (see refresh.load_days)
AS $$
DECLARE
    v_products bigint[];
BEGIN
    IF p_ids IS NULL THEN
        WITH l AS MATERIALIZED (SELECT * FROM refresh.source_lines(p_merchants, p_lo, p_hi)),
             r AS MATERIALIZED (SELECT * FROM refresh.source_line_returns(p_merchants, p_lo, p_hi))
        INSERT INTO pg_temp.new_lines (order_id, product_id, category_id, items, gmv, returned, returned_amount)
        SELECT l.order_id, l.product_id, l.category_id, l.items, l.gmv, r.order_id IS NOT NULL,
               coalesce(r.returned_amount, 0)
        FROM l LEFT JOIN r USING (order_id, product_id);
    ELSE
        WITH i AS MATERIALIZED (SELECT * FROM refresh.source_items_by_order(p_ids)),
             r AS MATERIALIZED (SELECT * FROM refresh.source_returns_by_order(p_ids)),
             lr AS (SELECT i.order_id, i.product_id, sum(r.amount) AS amount FROM r JOIN i ON i.id = r.order_item_id GROUP BY 1, 2)
        INSERT INTO pg_temp.new_lines (order_id, product_id, category_id, items, gmv, returned, returned_amount)
        SELECT i.order_id, i.product_id, NULL, sum(i.quantity), sum(i.quantity * i.unit_price), lr.order_id IS NOT NULL,
               coalesce(lr.amount, 0)
        FROM i LEFT JOIN lr USING (order_id, product_id)
        GROUP BY i.order_id, i.product_id, lr.order_id, lr.amount;
        SELECT array_agg(DISTINCT product_id) INTO v_products FROM pg_temp.new_lines;
        WITH p AS MATERIALIZED (SELECT * FROM refresh.source_product_categories(v_products))
        UPDATE pg_temp.new_lines AS l SET category_id = p.category_id FROM p WHERE p.id = l.product_id;
    END IF;
    -- The orders themselves, and their returns, from the same two shapes either way.
    EXECUTE format($q$
        WITH o AS MATERIALIZED (SELECT * FROM %s),
             r AS MATERIALIZED (SELECT * FROM %s)
        INSERT INTO pg_temp.new_orders
        SELECT o.order_id, o.merchant_id, (o.created_at AT TIME ZONE $5)::date, o.status, o.customer_id, o.city_id,
               o.delivery_type, o.payment_method, o.accepted, o.delivered, r.order_id IS NOT NULL,
               coalesce(i.items, 0), o.gmv, coalesce(r.returned_amount, 0), o.delivery_time
        FROM o
        LEFT JOIN r USING (order_id)
        LEFT JOIN (SELECT order_id, sum(items) AS items FROM pg_temp.new_lines GROUP BY 1) AS i USING (order_id)$q$,
        CASE WHEN p_ids IS NULL THEN 'refresh.source_orders($2, $3, $4)' ELSE 'refresh.source_orders_by_id($1)' END,
        CASE WHEN p_ids IS NULL THEN 'refresh.source_order_returns($2, $3, $4)'
             ELSE '(SELECT order_id, sum(amount) AS returned_amount FROM refresh.source_returns_by_order($1) GROUP BY 1) AS x' END)
    USING p_ids, p_merchants, p_lo, p_hi, p_tz;
END $$;

DROP PROCEDURE IF EXISTS refresh.replace_snapshot(bigint[]);
-- Replaces the snapshot rows of the orders p_ids with the session's new_orders and new_lines
-- (an order in p_ids and not in new_orders is gone from the source). Ids go through arrays
-- so that rows are found by index, whatever join the caller's settings allow.
CREATE PROCEDURE refresh.replace_snapshot(p_ids bigint[])
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM refresh.line_snapshot WHERE order_id = ANY (p_ids);
    DELETE FROM refresh.order_snapshot WHERE order_id = ANY (p_ids);
    INSERT INTO refresh.order_snapshot SELECT * FROM pg_temp.new_orders;
    INSERT INTO refresh.line_snapshot SELECT * FROM pg_temp.new_lines;
    DELETE FROM pg_temp.new_orders;
    DELETE FROM pg_temp.new_lines;
END $$;

DROP PROCEDURE IF EXISTS refresh.store_day_snapshot(bigint[], date, date);
-- Replaces the order snapshot of p_merchants' days [p_from, p_to] with the session's
-- new_orders and new_lines (the orders the days were summed from). An order that moved in
-- from another day (or merchant) is still counted there: that day is marked dirty.
CREATE PROCEDURE refresh.store_day_snapshot(p_merchants bigint[], p_from date, p_to date)
LANGUAGE plpgsql AS $$
DECLARE
    v_new bigint[] := ARRAY(SELECT order_id FROM pg_temp.new_orders);
    v_ids bigint[];
BEGIN
    INSERT INTO refresh.dirty_days (merchant_id, day)
    SELECT DISTINCT merchant_id, day FROM refresh.order_snapshot
    WHERE order_id = ANY (v_new) AND NOT (merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to)
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    SELECT array_agg(order_id) INTO v_ids FROM refresh.order_snapshot
    WHERE merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to;
    CALL refresh.replace_snapshot(coalesce(v_ids, '{}') || v_new);
END $$;

DROP FUNCTION IF EXISTS refresh.order_fact_net();
-- The net change in the session's order_facts (refresh.net_orders) per merchant, day and status
-- key (each status, and 'all'), in agg.order_stats's figures. ROWS 100: planned at the
-- default 1000 rows, net_orders looked its rows up by hashing every day row of agg.order_stats
-- (0.33 s per set of merchants at 1M for 350 rows); a few thousand (a backfill's merchant)
-- are still cheaper looked up one by one.
CREATE FUNCTION refresh.order_fact_net()
RETURNS TABLE (merchant_id bigint, day date, status text, orders bigint, accepted bigint, delivered bigint,
               returned bigint, items bigint, gmv numeric, delivered_gmv numeric, returned_amount numeric,
               delivery_seconds numeric, cancelled bigint)
LANGUAGE plpgsql STABLE ROWS 100 AS $$
BEGIN
    RETURN QUERY
    SELECT f.merchant_id, f.day, s.key, sum(f.orders)::bigint, sum(f.accepted)::bigint, sum(f.delivered)::bigint,
           sum(f.returned)::bigint, sum(f.items)::bigint, sum(f.gmv), sum(f.delivered_gmv), sum(f.returned_amount),
           extract(epoch FROM sum(f.delivery_time)), coalesce(sum(f.orders) FILTER (WHERE f.status = 'cancelled'), 0)::bigint
    FROM pg_temp.order_facts AS f CROSS JOIN LATERAL (VALUES (f.status), ('all')) AS s (key)
    GROUP BY f.merchant_id, f.day, s.key;
END $$;

DROP PROCEDURE IF EXISTS refresh.merge_order_rollups();
-- Adds the net change in order_facts to the week, month and quarter rows of agg.order_stats,
-- one primary key lookup a row: changed orders move a few periods of a few merchants, where
-- rebuilding the periods from their day rows (refresh.rollup_orders) rewrote them for every
-- merchant of the set.
CREATE PROCEDURE refresh.merge_order_rollups()
LANGUAGE plpgsql
SET enable_hashjoin = off -- a hash join would read every row of the table
SET enable_mergejoin = off
AS $$
BEGIN
    MERGE INTO agg.order_stats AS t
    USING (
        SELECT n.merchant_id, g.grain, date_trunc(g.grain, n.day::timestamp)::date AS period_start, n.status,
               sum(n.orders) AS orders, sum(n.accepted) AS accepted, sum(n.delivered) AS delivered,
               sum(n.returned) AS returned, sum(n.items) AS items, sum(n.gmv) AS gmv, sum(n.delivered_gmv) AS delivered_gmv,
               sum(n.returned_amount) AS returned_amount, sum(n.delivery_seconds) AS delivery_seconds,
               sum(n.cancelled) AS cancelled
        FROM refresh.order_fact_net() AS n CROSS JOIN unnest(ARRAY['week', 'month', 'quarter']) AS g (grain)
        GROUP BY 1, 2, 3, 4
        HAVING (sum(n.orders), sum(n.accepted), sum(n.delivered), sum(n.returned), sum(n.items), sum(n.gmv),
                sum(n.delivered_gmv), sum(n.returned_amount), sum(n.delivery_seconds), sum(n.cancelled))
               <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3, 4
    ) AS g
    ON t.merchant_id = g.merchant_id AND t.grain = g.grain AND t.period_start = g.period_start AND t.status = g.status
    WHEN MATCHED AND t.orders + g.orders = 0 THEN
        DELETE
    WHEN MATCHED THEN
        UPDATE SET orders = t.orders + g.orders, accepted = t.accepted + g.accepted, delivered = t.delivered + g.delivered,
            returned = t.returned + g.returned, items = t.items + g.items, gmv = t.gmv + g.gmv,
            delivered_gmv = t.delivered_gmv + g.delivered_gmv, returned_amount = t.returned_amount + g.returned_amount,
            delivery_seconds = t.delivery_seconds + g.delivery_seconds, cancelled = t.cancelled + g.cancelled
    WHEN NOT MATCHED THEN
        INSERT (merchant_id, grain, period_start, status, orders, accepted, delivered, returned, items, gmv,
            delivered_gmv, returned_amount, delivery_seconds, cancelled)
        VALUES (g.merchant_id, g.grain, g.period_start, g.status, g.orders, g.accepted, g.delivered, g.returned,
            g.items, g.gmv, g.delivered_gmv, g.returned_amount, g.delivery_seconds, g.cancelled);
END $$;

DROP PROCEDURE IF EXISTS refresh.net_orders(bigint[]);
-- The facts of the orders in the session's new_orders and new_lines, minus those the snapshot
-- holds for the orders p_ids (changed orders; NULL for whole days, whose stored rows the
-- caller nets itself): order_facts and the day rows of agg.order_stats (by their net change),
-- the breakdown changes in dim_changes (every status and 'all'), and the customer days in
-- order_customer_deltas. One piece of SQL for whole days and changed orders, so both count
-- an order the same way.
CREATE PROCEDURE refresh.net_orders(p_ids bigint[])
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan -- p_ids NULL folds the snapshot's side away
SET work_mem = '256MB'
SET enable_sort = off -- temp tables have no statistics: group by hashing, not sorting a million rows
AS $$
BEGIN
    DELETE FROM pg_temp.order_facts;
    -- Old figures negated, new ones as they are: the facts a whole day yields, netted.
    INSERT INTO pg_temp.order_facts
    SELECT merchant_id, day, status, city_id, delivery_type, payment_method, sum(sign), sum(sign * accepted::int),
           sum(sign * delivered::int), sum(sign * returned::int), sum(sign * items), sum(sign * gmv),
           sum(CASE WHEN delivered THEN sign * gmv ELSE 0 END), sum(sign * returned_amount),
           sum(sign * coalesce(delivery_time, interval '0'))
    FROM (SELECT 1 AS sign, n.* FROM pg_temp.new_orders AS n
          UNION ALL
          SELECT -1, s.* FROM refresh.order_snapshot AS s WHERE s.order_id = ANY (p_ids)) AS x
    GROUP BY merchant_id, day, status, city_id, delivery_type, payment_method;
    CALL refresh.order_fact_dims();

    -- Products and categories from the lines: a product's orders are the orders holding it, a
    -- category's the orders holding one of its products (lines grouped per order first).
    -- Integer keys and money in cents: a backfill's merchant groups a million lines here, and
    -- sorting on the text keys or summing numerics took twice as long.
    WITH o AS (
        SELECT 1 AS sign, order_id, merchant_id, day, status COLLATE "C" AS status, accepted, delivered
        FROM pg_temp.new_orders
        UNION ALL
        SELECT -1, order_id, merchant_id, day, status, accepted, delivered FROM refresh.order_snapshot
        WHERE order_id = ANY (p_ids)
    ), l AS NOT MATERIALIZED (
        SELECT sign, order_id, product_id, category_id, items, (gmv * 100)::bigint AS gmv_cents, returned::int AS returned,
               (returned_amount * 100)::bigint AS returned_cents
        FROM (SELECT 1 AS sign, * FROM pg_temp.new_lines
              UNION ALL
              SELECT -1, * FROM refresh.line_snapshot WHERE order_id = ANY (p_ids)) AS x
    ), k AS (
        SELECT sign, order_id, true AS product, product_id AS key, items, gmv_cents, returned, returned_cents FROM l
        UNION ALL
        SELECT sign, order_id, false, category_id, sum(items), sum(gmv_cents), max(returned), sum(returned_cents)
        FROM l WHERE category_id IS NOT NULL
        GROUP BY sign, order_id, category_id
    )
    INSERT INTO pg_temp.dim_changes
    SELECT o.merchant_id, agg.dimension_code(CASE WHEN k.product THEN 'product' ELSE 'category' END),
           agg.status_code(o.status), o.day, k.key,
           sum(o.sign), sum(o.sign * o.accepted::int), sum(o.sign * o.delivered::int),
           CASE WHEN o.status = 'cancelled' THEN sum(o.sign) ELSE 0 END, sum(o.sign * k.returned),
           sum(o.sign * k.items), sum(o.sign * k.gmv_cents), sum(CASE WHEN o.delivered THEN o.sign * k.gmv_cents ELSE 0 END),
           sum(o.sign * k.returned_cents), 0
    FROM k JOIN o USING (sign, order_id)
    GROUP BY o.merchant_id, k.product, o.status, o.day, k.key;
    CALL refresh.all_status_dims();

    -- Order totals: day rows by their net change (rollups are the caller's).
    WITH net AS (
        SELECT * FROM refresh.order_fact_net()
    ), cur AS (
        SELECT n.merchant_id, n.day, n.status, t.merchant_id IS NOT NULL AS stored,
               coalesce(t.orders, 0) + n.orders AS orders, coalesce(t.accepted, 0) + n.accepted AS accepted,
               coalesce(t.delivered, 0) + n.delivered AS delivered, coalesce(t.returned, 0) + n.returned AS returned,
               coalesce(t.items, 0) + n.items AS items, coalesce(t.gmv, 0) + n.gmv AS gmv,
               coalesce(t.delivered_gmv, 0) + n.delivered_gmv AS delivered_gmv,
               coalesce(t.returned_amount, 0) + n.returned_amount AS returned_amount,
               coalesce(t.delivery_seconds, 0) + n.delivery_seconds AS delivery_seconds,
               coalesce(t.cancelled, 0) + n.cancelled AS cancelled
        FROM net AS n
        LEFT JOIN agg.order_stats AS t
          ON t.merchant_id = n.merchant_id AND t.grain = 'day' AND t.period_start = n.day AND t.status = n.status
    ), gone AS (
        DELETE FROM agg.order_stats AS t USING cur AS c
        WHERE c.stored AND c.orders = 0
          AND t.merchant_id = c.merchant_id AND t.grain = 'day' AND t.period_start = c.day AND t.status = c.status
    ), changed AS (
        UPDATE agg.order_stats AS t
        SET orders = c.orders, accepted = c.accepted, delivered = c.delivered, returned = c.returned, items = c.items,
            gmv = c.gmv, delivered_gmv = c.delivered_gmv, returned_amount = c.returned_amount,
            delivery_seconds = c.delivery_seconds, cancelled = c.cancelled
        FROM cur AS c
        WHERE c.stored AND c.orders <> 0
          AND t.merchant_id = c.merchant_id AND t.grain = 'day' AND t.period_start = c.day AND t.status = c.status
    )
    INSERT INTO agg.order_stats (merchant_id, grain, period_start, status, orders, accepted, delivered, returned,
        items, gmv, delivered_gmv, returned_amount, delivery_seconds, cancelled)
    SELECT merchant_id, 'day', day, status, orders, accepted, delivered, returned, items, gmv, delivered_gmv,
           returned_amount, delivery_seconds, cancelled
    FROM cur WHERE NOT stored AND orders <> 0;

    INSERT INTO pg_temp.order_customer_deltas
    SELECT merchant_id, customer_id, day, status, sum(sign), sum(sign * gmv)
    FROM (SELECT 1 AS sign, n.merchant_id, n.customer_id, n.day, n.status, n.gmv FROM pg_temp.new_orders AS n
          UNION ALL
          SELECT -1, s.merchant_id, s.customer_id, s.day, s.status, s.gmv FROM refresh.order_snapshot AS s
          WHERE s.order_id = ANY (p_ids)) AS x
    GROUP BY merchant_id, customer_id, day, status;
END $$;

DROP PROCEDURE IF EXISTS refresh.load_orders(bigint[], date[]);
-- Refreshes the changed orders of a set of merchants (refresh.dirty_orders, migration 008):
-- each is read again from the source by id, and the aggregates move by its new figures minus
-- those in refresh.order_snapshot, which then takes the new ones. An order gone from the
-- source is taken out; a new one is added. The cost follows the changed orders, not the
-- orders of their days. Returns the days whose rows changed (old and new days of the orders),
-- for refresh.finish. An order that moved to or from a merchant outside the set marks the
-- old and the new merchant day dirty instead (whole-day refreshes settle it).
CREATE PROCEDURE refresh.load_orders(p_merchants bigint[], INOUT p_days date[] DEFAULT '{}')
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    v_tz       text;
    v_ids      bigint[];
    v_moved    bigint[];
BEGIN
    WITH d AS (DELETE FROM refresh.dirty_orders WHERE merchant_id = ANY (p_merchants) RETURNING order_id)
    SELECT array_agg(DISTINCT order_id) INTO v_ids FROM d;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    SELECT timezone INTO v_tz FROM refresh.settings;
    CALL refresh.scratch();
    DELETE FROM pg_temp.new_orders;
    DELETE FROM pg_temp.new_lines;

    -- The orders as they are now.
    CALL refresh.read_orders(v_ids, NULL, NULL, NULL, v_tz);

    -- Orders that changed merchant: whole days of both merchants, refreshed by their own runs.
    WITH odd AS (
        SELECT merchant_id, day, order_id FROM refresh.order_snapshot
        WHERE order_id = ANY (v_ids) AND NOT merchant_id = ANY (p_merchants)
        UNION ALL
        SELECT merchant_id, day, order_id FROM pg_temp.new_orders WHERE NOT merchant_id = ANY (p_merchants)
    ), both_sides AS (
        SELECT s.merchant_id, s.day FROM refresh.order_snapshot AS s WHERE s.order_id IN (SELECT order_id FROM odd)
        UNION
        SELECT n.merchant_id, n.day FROM pg_temp.new_orders AS n WHERE n.order_id IN (SELECT order_id FROM odd)
    ), marked AS (
        INSERT INTO refresh.dirty_days (merchant_id, day)
        SELECT merchant_id, day FROM both_sides ORDER BY 1, 2
        ON CONFLICT DO NOTHING
    )
    SELECT array_agg(order_id) INTO v_moved FROM odd;
    IF v_moved IS NOT NULL THEN
        v_ids := ARRAY(SELECT unnest(v_ids) EXCEPT SELECT unnest(v_moved));
        DELETE FROM pg_temp.new_orders WHERE order_id = ANY (v_moved);
        DELETE FROM pg_temp.new_lines WHERE order_id = ANY (v_moved);
    END IF;

    CALL refresh.net_orders(v_ids);
    CALL refresh.apply_dim_changes(true, false, true);
    CALL refresh.apply_customer_days(p_merchants, NULL, NULL, false, true);
    WITH d AS (DELETE FROM pg_temp.order_customer_deltas RETURNING *)
    INSERT INTO pg_temp.customer_day_deltas SELECT * FROM d; -- for refresh.finish
    p_days := ARRAY(SELECT DISTINCT day FROM pg_temp.order_facts ORDER BY 1);
    CALL refresh.merge_order_rollups();

    CALL refresh.replace_snapshot(v_ids); -- the snapshot takes the new figures
END $$;

DROP PROCEDURE IF EXISTS refresh.complete_order_snapshot();
-- Reads the order snapshot of every refreshed merchant that has none (aggregates built before
-- migration 008), one merchant per transaction, so `migrate` upgrades without a full
-- refresh. Orders changed since the watermark may be newer in the source than in the
-- aggregates: their days are marked dirty, to be recomputed whole (netting them against a
-- snapshot that already holds the new figures would change nothing).
CREATE PROCEDURE refresh.complete_order_snapshot()
LANGUAGE plpgsql AS $$ -- no SET clause: it commits
DECLARE
    v_merchant bigint;
    v_tz       text;
    v_since    timestamptz;
BEGIN
    FOR v_merchant IN
        SELECT f.merchant_id FROM agg.freshness AS f
        WHERE NOT EXISTS (SELECT FROM refresh.order_snapshot AS s WHERE s.merchant_id = f.merchant_id)
        ORDER BY 1
    LOOP
        CALL refresh.lock_merchant(v_merchant);
        SELECT timezone, coalesce(source_watermark - lookback, '-infinity') INTO v_tz, v_since FROM refresh.settings;
        CALL refresh.scratch();
        CALL refresh.read_orders(NULL, ARRAY[v_merchant], '-infinity', 'infinity', v_tz);
        CALL refresh.store_day_snapshot(ARRAY[v_merchant], '-infinity', 'infinity');
        INSERT INTO refresh.dirty_days (merchant_id, day)
        SELECT DISTINCT c.merchant_id, (c.created_at AT TIME ZONE v_tz)::date
        FROM refresh.source_changed_orders(v_since) AS c
        WHERE c.merchant_id = v_merchant
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
        COMMIT;
    END LOOP;
END $$;
