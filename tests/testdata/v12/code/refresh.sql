-- Refresh procedures, version 2 (adds breakdowns, products and customers). Callers run each
-- in one transaction per merchant: a failure
-- anywhere rolls back to the previous aggregates, and rerunning one rewrites the same rows.

DROP FUNCTION IF EXISTS refresh.day_segments(date, date, text); -- until version 8

DROP PROCEDURE IF EXISTS refresh.compress_wal();
-- The refresh's transaction compresses the whole pages it logs (wal_compression = lz4) unless
-- the server already does, or its role may not set it (superuser, or GRANT SET ON PARAMETER
-- wal_compression), or the server was built without lz4. A refresh updates rows on thousands
-- of pages, and the first change of a page after a checkpoint logs the whole page: 1k changed
-- orders at 10M wrote 148 MB of WAL after a checkpoint, 69 MB compressed.
-- Called for every merchant of a set: the subtransaction of the exception block is entered
-- only while the setting is still off.
CREATE PROCEDURE refresh.compress_wal()
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('wal_compression') = 'off' THEN
        BEGIN
            PERFORM set_config('wal_compression', 'lz4', true);
        EXCEPTION WHEN insufficient_privilege OR invalid_parameter_value THEN
            NULL; -- left as the server has it
        END;
    END IF;
END $$;

DROP PROCEDURE IF EXISTS refresh.lock_merchant(bigint);
-- One refresh of a merchant at a time, whichever worker or CLI runs it; held to commit. Every
-- unit of work starts here, so it also sets up the transaction (refresh.compress_wal).
CREATE PROCEDURE refresh.lock_merchant(p_merchant bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('merchantagg.refresh', p_merchant));
    CALL refresh.compress_wal();
END $$;

DROP PROCEDURE IF EXISTS refresh.load_days(bigint, date, date); -- version 1
DROP PROCEDURE IF EXISTS refresh.load_days(bigint, date, date, bigint[]); -- version 2
DROP PROCEDURE IF EXISTS refresh.load_days(bigint[], date, date); -- version 3
DROP PROCEDURE IF EXISTS refresh.load_days(bigint[], date, date, boolean);
-- Version 5: rewrites the day rows of a set of merchants for [p_from, p_to] from the source:
-- order totals, breakdowns and customer days, and the order snapshot of those days. Every
-- order of the days is read (refresh.read_orders: its lines and returns grouped per order ×
-- product on the source) and its figures summed here by refresh.net_orders, the same code that
-- nets changed orders; the snapshot the refresh keeps needs these rows anyway, and reading the
-- source once more for day aggregates cost half again as much (version 4 did, 1M orders:
-- 132 s backfill before the snapshot, 201 s with it read apart). The old customer days
-- (negated) and the new ones are netted in the session's customer_day_deltas
-- (refresh.scratch) and left there for refresh.finish (changed customers, customer sets). One
-- set of remote queries serves the whole set of merchants.
--
-- Breakdown rows are not deleted and inserted again: the new day rows and the old ones
-- (negated) are netted in the session's dim_changes table, and only the keys whose figures
-- changed are written (refresh.apply_dim_changes). The same net changes are added to the
-- week, month and quarter rows, so a change to a few orders writes a few rows at each grain
-- instead of re-summing whole months. With p_rebuild, or for a run longer than two months (a
-- backfill: rebuilding is then cheaper than adding up millions of changes), the week, month
-- and quarter rows the run overlaps are rebuilt from the day rows instead, which also repairs
-- any that drifted.
--
-- work_mem: a large merchant's day rows are hashed in memory rather than in batches on disk
-- (two refreshes run at a time).
CREATE PROCEDURE refresh.load_days(p_merchants bigint[], p_from date, p_to date, p_rebuild boolean)
LANGUAGE plpgsql
SET enable_nestloop = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_tz      text;
    v_rebuild boolean := p_rebuild OR p_to - p_from > 62;
    v_old     bigint;
    v_old_cd  bigint;
    v_lo      timestamptz;
    v_hi      timestamptz;
BEGIN
    SELECT timezone INTO v_tz FROM refresh.settings;
    v_lo := p_from::timestamp AT TIME ZONE v_tz;
    v_hi := (p_to + 1)::timestamp AT TIME ZONE v_tz;
    CALL refresh.scratch();
    DELETE FROM pg_temp.new_orders;
    DELETE FROM pg_temp.new_lines;
    DELETE FROM agg.order_stats
    WHERE merchant_id = ANY (p_merchants) AND grain = 'day' AND period_start BETWEEN p_from AND p_to;
    -- Every order of the days, and its figures (refresh.net_orders): the new day rows.
    CALL refresh.read_orders(NULL, p_merchants, v_lo, v_hi, v_tz);
    CALL refresh.net_orders(NULL);

    -- The old customer days, negated: netted with the new ones by refresh.apply_customer_days.
    INSERT INTO pg_temp.customer_day_deltas
    SELECT merchant_id, customer_id, day, status, -orders, -gmv FROM agg.customer_days
    WHERE merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to;
    GET DIAGNOSTICS v_old_cd = ROW_COUNT;
    WITH d AS (DELETE FROM pg_temp.order_customer_deltas RETURNING *)
    INSERT INTO pg_temp.customer_day_deltas SELECT * FROM d;
    -- The old breakdown rows, negated. Every dimension and status named, so the primary key
    -- is searched by range instead of scanned across the merchant's other grains.
    INSERT INTO pg_temp.dim_changes
    SELECT merchant_id, dimension, status, period_start, key, -orders, -accepted, -delivered, -cancelled,
           -returned, -items, -gmv_cents, -delivered_gmv_cents, -returned_cents, -delivery_us
    FROM agg.dim_stats
    WHERE merchant_id = ANY (p_merchants) AND dimension = ANY (refresh.dimensions())
      AND grain = agg.grain_code('day') AND status = ANY (refresh.status_keys()) AND period_start BETWEEN p_from AND p_to;
    GET DIAGNOSTICS v_old = ROW_COUNT;

    CALL refresh.store_day_snapshot(p_merchants, p_from, p_to);
    CALL refresh.apply_customer_days(p_merchants, p_from, p_to, v_old_cd = 0, false);
    CALL refresh.apply_dim_changes(NOT v_rebuild, v_old = 0, false);
    IF v_rebuild THEN
        CALL refresh.rollup_dims(p_merchants, p_from, p_to);
    END IF;
    CALL refresh.rollup_orders(p_merchants, p_from, p_to);
END $$;

DROP PROCEDURE IF EXISTS refresh.all_status_dims(boolean);
DROP PROCEDURE IF EXISTS refresh.all_status_dims();
-- Adds the status 'all' rows (migration 005) of the breakdown changes in dim_changes: the
-- sums over the statuses.
CREATE PROCEDURE refresh.all_status_dims()
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pg_temp.dim_changes
    SELECT merchant_id, dimension, agg.status_code('all'), day, key, sum(orders), sum(accepted), sum(delivered), sum(cancelled),
           sum(returned), sum(items), sum(gmv_cents), sum(delivered_gmv_cents), sum(returned_cents), sum(delivery_us)
    FROM pg_temp.dim_changes
    WHERE status <> agg.status_code('all')
    GROUP BY merchant_id, dimension, day, key;
END $$;

DROP PROCEDURE IF EXISTS refresh.order_fact_dims();
-- Fans the session's order_facts (refresh.net_orders) out into the city, region, delivery and
-- payment rows of dim_changes (regions are sums of their cities).
CREATE PROCEDURE refresh.order_fact_dims()
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ref.labels (dimension, label)
    SELECT x.dimension, x.label
    FROM (SELECT 'delivery_type' AS dimension, delivery_type AS label FROM pg_temp.order_facts
          UNION
          SELECT 'payment_method', payment_method FROM pg_temp.order_facts
          UNION
          SELECT 'region', c.region FROM ref.cities AS c
          WHERE c.id IN (SELECT city_id FROM pg_temp.order_facts)) AS x
    WHERE NOT EXISTS (SELECT FROM ref.labels AS l WHERE l.dimension = x.dimension AND l.label = x.label)
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;

    WITH keyed AS (
        SELECT agg.dimension_code('city') AS dimension, f.city_id AS key, f.* FROM pg_temp.order_facts AS f
        UNION ALL
        SELECT agg.dimension_code('region'), l.id, f.* FROM pg_temp.order_facts AS f
        JOIN ref.cities AS c ON c.id = f.city_id
        JOIN ref.labels AS l ON l.dimension = 'region' AND l.label = c.region
        UNION ALL
        SELECT agg.dimension_code('delivery_type'), l.id, f.* FROM pg_temp.order_facts AS f
        JOIN ref.labels AS l ON l.dimension = 'delivery_type' AND l.label = f.delivery_type
        UNION ALL
        SELECT agg.dimension_code('payment_method'), l.id, f.* FROM pg_temp.order_facts AS f
        JOIN ref.labels AS l ON l.dimension = 'payment_method' AND l.label = f.payment_method
    )
    INSERT INTO pg_temp.dim_changes
    SELECT merchant_id, dimension, agg.status_code(status), day, key, sum(orders), sum(accepted), sum(delivered),
           CASE WHEN status = 'cancelled' THEN sum(orders) ELSE 0 END, sum(returned), sum(items),
           sum(gmv * 100), sum(delivered_gmv * 100), sum(returned_amount * 100),
           extract(epoch FROM sum(delivery_time)) * 1000000
    FROM keyed GROUP BY merchant_id, dimension, day, status, key;
END $$;

DROP PROCEDURE IF EXISTS refresh.scratch();
-- The session's scratch tables of a refresh transaction, created on first use and emptied on
-- commit. Temporary: no WAL, and no dead rows left behind. They were tables of the refresh
-- schema until version 6: a backfill left millions of dead rows in them, and every later
-- refresh scanned those (0.6 s of a small merchant's 2.6 s at 10M orders).
CREATE PROCEDURE refresh.scratch()
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.customer_day_deltas') IS NULL THEN
        -- load_days's old (orders < 0) and new (orders > 0) customer days; refresh.finish nets
        -- them into the customers whose order days really changed, and the days and statuses
        -- whose customer sets changed.
        CREATE TEMP TABLE customer_day_deltas (
            merchant_id bigint, customer_id bigint, day date, status text, orders int, gmv numeric
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE changed_customers (
            merchant_id bigint, customer_id bigint, PRIMARY KEY (merchant_id, customer_id)
        ) ON COMMIT DELETE ROWS;
    END IF;
    IF to_regclass('pg_temp.dim_changes') IS NULL THEN
        -- Changes to breakdown day rows: new rows as they are, old rows negated; dimension and
        -- status in agg.dim_stats's codes (migration 011).
        CREATE TEMP TABLE dim_changes (
            merchant_id bigint, dimension "char", status "char", day date, key bigint,
            orders int, accepted int, delivered int, cancelled int, returned int, items int,
            gmv_cents bigint, delivered_gmv_cents bigint, returned_cents bigint, delivery_us bigint
        ) ON COMMIT DELETE ROWS;
        -- Order facts of the orders being netted (refresh.net_orders).
        CREATE TEMP TABLE order_facts (
            merchant_id bigint, day date, status text, city_id bigint, delivery_type text, payment_method text,
            orders bigint, accepted bigint, delivered bigint, returned bigint, items bigint,
            gmv numeric, delivered_gmv numeric, returned_amount numeric, delivery_time interval
        ) ON COMMIT DELETE ROWS;
    END IF;
    IF to_regclass('pg_temp.new_orders') IS NULL THEN
        -- Orders and order × product lines as read from the source, in refresh.order_snapshot's
        -- shape (migration 008): the days a refresh recomputes, or the changed orders.
        CREATE TEMP TABLE new_orders (LIKE refresh.order_snapshot) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE new_lines (LIKE refresh.line_snapshot) ON COMMIT DELETE ROWS;
        -- Changed orders' customer days (refresh.load_orders), kept apart from the whole days'
        -- deltas of the same transaction until they are written.
        CREATE TEMP TABLE order_customer_deltas (LIKE pg_temp.customer_day_deltas) ON COMMIT DELETE ROWS;
    END IF;
    IF to_regclass('pg_temp.set_days') IS NULL THEN
        -- Customer sets to rebuild (refresh.rebuild_customer_sets).
        CREATE TEMP TABLE set_days (merchant_id bigint, day date, status text) ON COMMIT DELETE ROWS;
    END IF;
    IF to_regclass('pg_temp.set_patches') IS NULL THEN
        -- Changed orders' customers entering or leaving day sets (refresh.apply_customer_days).
        CREATE TEMP TABLE set_patches (
            merchant_id bigint, day date, status text, customer_id bigint, old_orders int, new_orders int
        ) ON COMMIT DELETE ROWS;
    END IF;
    DELETE FROM pg_temp.dim_changes;
END $$;

DROP PROCEDURE IF EXISTS refresh.apply_customer_days(bigint[], date, date);
DROP PROCEDURE IF EXISTS refresh.apply_customer_days(bigint[], date, date, boolean);
DROP PROCEDURE IF EXISTS refresh.apply_customer_days(bigint[], date, date, boolean, boolean);
-- Writes the net changes of the session's customer_day_deltas of p_merchants over the days
-- [p_from, p_to] (old rows negated, new rows as they are; the deltas of other runs of the
-- transaction are already written) to agg.customer_days: a row is deleted when it is gone,
-- updated when its figures changed, inserted when it is new; the rest are not touched. A
-- status change of 1000 orders at 10M rewrote ~150k customer days when they were deleted
-- and inserted again. Rows are looked up by primary key (nested loops), as in
-- refresh.apply_dim_changes. p_fresh says no customer day was stored (a backfill): the new
-- rows are inserted as they are (netting a large merchant's two million rows spilled to disk).
-- The days and statuses whose customers changed are noted in the session's set_days for
-- refresh.rebuild_customer_sets. p_delta: the deltas are changed orders' (old negated, new as
-- they are, in order_customer_deltas) over any days; each key's stored row is looked up.
CREATE PROCEDURE refresh.apply_customer_days(p_merchants bigint[], p_from date, p_to date, p_fresh boolean, p_delta boolean)
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET work_mem = '256MB'
AS $$
BEGIN
    IF p_delta THEN
        WITH net AS (
            SELECT merchant_id, customer_id, day, status, sum(orders) AS orders, sum(gmv) AS gmv
            FROM pg_temp.order_customer_deltas
            WHERE merchant_id = ANY (p_merchants)
            GROUP BY merchant_id, customer_id, day, status
            HAVING sum(orders) <> 0 OR sum(gmv) <> 0
        ), cur AS (
            SELECT n.merchant_id, n.customer_id, n.day, n.status, t.merchant_id IS NOT NULL AS stored,
                   coalesce(t.orders, 0) AS old_orders, coalesce(t.orders, 0) + n.orders AS orders,
                   coalesce(t.gmv, 0) + n.gmv AS gmv
            FROM net AS n
            LEFT JOIN agg.customer_days AS t
              ON t.merchant_id = n.merchant_id AND t.day = n.day AND t.customer_id = n.customer_id AND t.status = n.status
        ), gone AS (
            DELETE FROM agg.customer_days AS t USING cur AS c
            WHERE c.stored AND c.orders = 0
              AND t.merchant_id = c.merchant_id AND t.day = c.day AND t.customer_id = c.customer_id AND t.status = c.status
        ), changed AS (
            UPDATE agg.customer_days AS t SET orders = c.orders, gmv = c.gmv
            FROM cur AS c
            WHERE c.stored AND c.orders <> 0
              AND t.merchant_id = c.merchant_id AND t.day = c.day AND t.customer_id = c.customer_id AND t.status = c.status
        ), sets AS (
            -- Customers in or out of a day's sets (one order or more, two or more): the day sets
            -- are patched by them (refresh.rebuild_customer_sets), not rebuilt.
            INSERT INTO pg_temp.set_patches
            SELECT merchant_id, day, status, customer_id, old_orders, orders FROM cur
            WHERE (old_orders >= 1) <> (orders >= 1) OR (old_orders >= 2) <> (orders >= 2)
        )
        INSERT INTO agg.customer_days (merchant_id, day, customer_id, status, orders, gmv)
        SELECT merchant_id, day, customer_id, status, orders, gmv FROM cur WHERE NOT stored
        ORDER BY merchant_id, day, customer_id, status;
        RETURN;
    END IF;
    IF p_fresh THEN
        INSERT INTO agg.customer_days (merchant_id, day, customer_id, status, orders, gmv)
        SELECT merchant_id, day, customer_id, status, orders, gmv FROM pg_temp.customer_day_deltas
        WHERE merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to
        ORDER BY merchant_id, day, customer_id, status;
        INSERT INTO pg_temp.set_days
        SELECT DISTINCT merchant_id, day, status FROM pg_temp.customer_day_deltas
        WHERE merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to;
        RETURN;
    END IF;
    WITH net AS (
        SELECT merchant_id, customer_id, day, status, bool_or(orders < 0) AS stored, sum(orders) <> 0 AS moved,
               sum(orders) FILTER (WHERE orders > 0) AS orders, sum(gmv) FILTER (WHERE orders > 0) AS gmv
        FROM pg_temp.customer_day_deltas
        WHERE merchant_id = ANY (p_merchants) AND day BETWEEN p_from AND p_to
        GROUP BY merchant_id, customer_id, day, status
        HAVING sum(orders) <> 0 OR sum(gmv) <> 0
    ), gone AS (
        DELETE FROM agg.customer_days AS t USING net AS n
        WHERE n.stored AND n.orders IS NULL
          AND t.merchant_id = n.merchant_id AND t.day = n.day AND t.customer_id = n.customer_id AND t.status = n.status
    ), changed AS (
        UPDATE agg.customer_days AS t SET orders = n.orders, gmv = n.gmv
        FROM net AS n
        WHERE n.stored AND n.orders IS NOT NULL
          AND t.merchant_id = n.merchant_id AND t.day = n.day AND t.customer_id = n.customer_id AND t.status = n.status
    ), sets AS (
        -- A gmv change alone moves no customer in or out of a set.
        INSERT INTO pg_temp.set_days SELECT DISTINCT merchant_id, day, status FROM net WHERE moved
    )
    INSERT INTO agg.customer_days (merchant_id, day, customer_id, status, orders, gmv)
    SELECT merchant_id, day, customer_id, status, orders, gmv FROM net WHERE NOT stored
    ORDER BY merchant_id, day, customer_id, status;
END $$;

DROP PROCEDURE IF EXISTS refresh.apply_dim_changes(boolean);
DROP PROCEDURE IF EXISTS refresh.apply_dim_changes(boolean, boolean);
DROP PROCEDURE IF EXISTS refresh.apply_dim_changes(boolean, boolean, boolean);
-- Writes the net changes in dim_changes to agg.dim_stats: day rows, and with p_rollups the
-- week, month and quarter rows they sum into. A key's row is updated by its change, inserted
-- when it is new, deleted when it has no orders left; keys whose figures did not change are not
-- touched. Whether a day row is stored is known from dim_changes (old rows have negative
-- orders), so new day rows need no lookup; rollup rows are merged, one primary key lookup each
-- (nested loops: a hash join would read every row of the table; looking a row up, then again
-- to update or delete it, took twice as long). The netting is hashed in memory (a backfill's
-- merchant has a million day rows; in 8 MB batches it took three times as long). p_fresh says
-- no day row was stored: a backfill's rows are then inserted as they are, with no netting (2.5 s
-- of 38 for the largest merchant of the 1M benchmark). p_delta says dim_changes holds changed
-- orders' deltas (refresh.load_orders): day rows are then merged like the rollups.
CREATE PROCEDURE refresh.apply_dim_changes(p_rollups boolean, p_fresh boolean, p_delta boolean)
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_sort = off -- group by hashing (dim_changes has no statistics); key order is still sorted
SET work_mem = '256MB'
AS $$
BEGIN
    IF p_fresh AND NOT p_rollups THEN
        INSERT INTO agg.dim_stats (merchant_id, dimension, grain, status, period_start, key, orders, accepted,
            delivered, cancelled, returned, items, gmv_cents, delivered_gmv_cents, returned_cents, delivery_us)
        SELECT merchant_id, dimension, agg.grain_code('day'), status, day, key, orders, accepted, delivered, cancelled, returned,
               items, gmv_cents, delivered_gmv_cents, returned_cents, delivery_us
        FROM pg_temp.dim_changes
        ORDER BY merchant_id, dimension, status, day, key;
        RETURN;
    END IF;
    -- The changes netted by key (a whole day's old and new rows mostly cancel, and so do most
    -- changed orders': an order touched, not changed), the day rows written by them, and
    -- dim_changes replaced by them for the rollups.
    WITH net AS (
        SELECT merchant_id, dimension, status, day, key, bool_or(orders < 0) AS stored,
               sum(orders) FILTER (WHERE orders < 0) AS old_orders,
               sum(orders) AS orders, sum(accepted) AS accepted, sum(delivered) AS delivered,
               sum(cancelled) AS cancelled, sum(returned) AS returned, sum(items) AS items,
               sum(gmv_cents) AS gmv_cents, sum(delivered_gmv_cents) AS delivered_gmv_cents,
               sum(returned_cents) AS returned_cents, sum(delivery_us) AS delivery_us
        FROM pg_temp.dim_changes
        GROUP BY merchant_id, dimension, status, day, key
        HAVING (sum(orders), sum(accepted), sum(delivered), sum(cancelled), sum(returned), sum(items), sum(gmv_cents),
                sum(delivered_gmv_cents), sum(returned_cents), sum(delivery_us)) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ), day_gone AS (
        DELETE FROM agg.dim_stats AS t USING net AS n
        WHERE NOT p_delta AND n.stored AND n.orders - n.old_orders = 0
          AND t.merchant_id = n.merchant_id AND t.dimension = n.dimension AND t.grain = agg.grain_code('day')
          AND t.status = n.status AND t.period_start = n.day AND t.key = n.key
    ), day_changed AS (
        UPDATE agg.dim_stats AS t
        SET orders = t.orders + n.orders, accepted = t.accepted + n.accepted, delivered = t.delivered + n.delivered,
            cancelled = t.cancelled + n.cancelled, returned = t.returned + n.returned, items = t.items + n.items,
            gmv_cents = t.gmv_cents + n.gmv_cents, delivered_gmv_cents = t.delivered_gmv_cents + n.delivered_gmv_cents,
            returned_cents = t.returned_cents + n.returned_cents, delivery_us = t.delivery_us + n.delivery_us
        FROM net AS n
        WHERE NOT p_delta AND n.stored AND n.orders - n.old_orders <> 0
          AND t.merchant_id = n.merchant_id AND t.dimension = n.dimension AND t.grain = agg.grain_code('day')
          AND t.status = n.status AND t.period_start = n.day AND t.key = n.key
    ), day_new AS (
        INSERT INTO agg.dim_stats (merchant_id, dimension, grain, status, period_start, key, orders, accepted,
            delivered, cancelled, returned, items, gmv_cents, delivered_gmv_cents, returned_cents, delivery_us)
        SELECT merchant_id, dimension, agg.grain_code('day'), status, day, key, orders, accepted, delivered, cancelled, returned,
               items, gmv_cents, delivered_gmv_cents, returned_cents, delivery_us
        FROM net WHERE NOT p_delta AND NOT stored
        -- Stored in key order, so a tile's rows share pages (one-byte codes sort as fast as
        -- integers; the key's text columns made sorting a backfill's million rows take 3.8 s).
        ORDER BY merchant_id, dimension, status, day, key
    ), emptied AS (
        DELETE FROM pg_temp.dim_changes
    )
    INSERT INTO pg_temp.dim_changes
    SELECT merchant_id, dimension, status, day, key, orders, accepted, delivered, cancelled, returned, items, gmv_cents,
           delivered_gmv_cents, returned_cents, delivery_us
    FROM net WHERE p_rollups OR p_delta;
    IF NOT (p_rollups OR p_delta) THEN
        RETURN;
    END IF;
    MERGE INTO agg.dim_stats AS t
    USING (
        SELECT c.merchant_id, c.dimension, agg.grain_code(g.grain) AS grain, c.status,
               date_trunc(g.grain, c.day::timestamp)::date AS period_start,
               c.key, sum(c.orders) AS orders, sum(c.accepted) AS accepted, sum(c.delivered) AS delivered,
               sum(c.cancelled) AS cancelled, sum(c.returned) AS returned, sum(c.items) AS items,
               sum(c.gmv_cents) AS gmv_cents, sum(c.delivered_gmv_cents) AS delivered_gmv_cents,
               sum(c.returned_cents) AS returned_cents, sum(c.delivery_us) AS delivery_us
        FROM pg_temp.dim_changes AS c
        CROSS JOIN unnest(CASE WHEN p_delta THEN ARRAY['day', 'week', 'month', 'quarter']
                               ELSE ARRAY['week', 'month', 'quarter'] END) AS g (grain)
        GROUP BY 1, 2, 3, 4, 5, 6
        -- Keys whose figures did not change are not touched (an order moved within a week).
        HAVING (sum(c.orders), sum(c.accepted), sum(c.delivered), sum(c.cancelled), sum(c.returned), sum(c.items),
                sum(c.gmv_cents), sum(c.delivered_gmv_cents), sum(c.returned_cents), sum(c.delivery_us))
               <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        ORDER BY 1, 2, 3, 4, 5, 6
    ) AS g
    ON t.merchant_id = g.merchant_id AND t.dimension = g.dimension AND t.grain = g.grain AND t.status = g.status
       AND t.period_start = g.period_start AND t.key = g.key
    WHEN MATCHED AND t.orders + g.orders = 0 THEN
        DELETE
    WHEN MATCHED THEN
        UPDATE SET orders = t.orders + g.orders, accepted = t.accepted + g.accepted, delivered = t.delivered + g.delivered,
            cancelled = t.cancelled + g.cancelled, returned = t.returned + g.returned, items = t.items + g.items,
            gmv_cents = t.gmv_cents + g.gmv_cents, delivered_gmv_cents = t.delivered_gmv_cents + g.delivered_gmv_cents,
            returned_cents = t.returned_cents + g.returned_cents, delivery_us = t.delivery_us + g.delivery_us
    WHEN NOT MATCHED THEN
        INSERT (merchant_id, dimension, grain, status, period_start, key, orders, accepted, delivered, cancelled,
            returned, items, gmv_cents, delivered_gmv_cents, returned_cents, delivery_us)
        VALUES (g.merchant_id, g.dimension, g.grain, g.status, g.period_start, g.key, g.orders, g.accepted, g.delivered,
            g.cancelled, g.returned, g.items, g.gmv_cents, g.delivered_gmv_cents, g.returned_cents, g.delivery_us);
END $$;

DROP FUNCTION IF EXISTS refresh.dim_part(text, text); -- until version 11 of the tables

DROP FUNCTION IF EXISTS refresh.dimensions();
-- The dimension codes of agg.dim_stats (its CHECK constraint, migration 011).
CREATE FUNCTION refresh.dimensions() RETURNS "char"[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT agg.dimension_code(d)
                 FROM unnest(ARRAY['product', 'category', 'city', 'region', 'delivery_type', 'payment_method']) AS d)
$$;

DROP FUNCTION IF EXISTS refresh.status_keys();
-- The status codes of agg.dim_stats (its CHECK constraint, migration 011): 'all' and SPEC §2's
-- statuses.
CREATE FUNCTION refresh.status_keys() RETURNS "char"[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT agg.status_code(s)
                 FROM unnest(ARRAY['all', 'created', 'accepted', 'delivered', 'cancelled', 'returned']) AS s)
$$;

DROP FUNCTION IF EXISTS refresh.grain_step(text);
CREATE FUNCTION refresh.grain_step(p_grain text) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_grain WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                        WHEN 'month' THEN interval '1 month' WHEN 'quarter' THEN interval '3 months' END
$$;

DROP FUNCTION IF EXISTS refresh.rollup_windows(date, date);
DROP FUNCTION IF EXISTS refresh.rollup_grains();
-- The rollup grains in the order they are built (quarters from months) and the grain each sums.
CREATE FUNCTION refresh.rollup_grains() RETURNS TABLE (grain text, from_grain text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT g, CASE g WHEN 'quarter' THEN 'month' ELSE 'day' END
    FROM unnest(ARRAY['week', 'month', 'quarter']) WITH ORDINALITY AS x (g, n)
    ORDER BY n
$$;

-- The rollup grains as above, with the bounds [lo, hi) of the starts of their periods that
-- overlap [p_from, p_to].
CREATE FUNCTION refresh.rollup_windows(p_from date, p_to date)
RETURNS TABLE (grain text, from_grain text, lo date, hi date)
LANGUAGE sql IMMUTABLE AS $$
    SELECT g.grain, g.from_grain, date_trunc(g.grain, p_from::timestamp)::date,
           (date_trunc(g.grain, p_to::timestamp) + refresh.grain_step(g.grain))::date
    FROM refresh.rollup_grains() AS g
$$;

DROP PROCEDURE IF EXISTS refresh.rollup(bigint, date, date); -- version 2
DROP PROCEDURE IF EXISTS refresh.rollup(bigint[], date, date); -- version 3
DROP PROCEDURE IF EXISTS refresh.rollup(bigint[], date, date, boolean);
DROP PROCEDURE IF EXISTS refresh.rollup_orders(bigint[], date, date);
-- Recomputes the week, month and quarter rows of agg.order_stats of every period that
-- overlaps [p_from, p_to], for a set of merchants: weeks and months from the day rows,
-- quarters from the month rows. A few rows per merchant and period: rebuilding is cheap.
CREATE PROCEDURE refresh.rollup_orders(p_merchants bigint[], p_from date, p_to date)
LANGUAGE plpgsql AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT * FROM refresh.rollup_windows(p_from, p_to) LOOP
        DELETE FROM agg.order_stats
        WHERE merchant_id = ANY (p_merchants) AND grain = w.grain AND period_start >= w.lo AND period_start < w.hi;
        INSERT INTO agg.order_stats (merchant_id, grain, period_start, status, orders, accepted,
            delivered, returned, items, gmv, delivered_gmv, returned_amount, delivery_seconds, cancelled)
        SELECT d.merchant_id, w.grain, date_trunc(w.grain, d.period_start::timestamp)::date, d.status,
               sum(d.orders), sum(d.accepted), sum(d.delivered), sum(d.returned), sum(d.items),
               sum(d.gmv), sum(d.delivered_gmv), sum(d.returned_amount), sum(d.delivery_seconds), sum(d.cancelled)
        FROM agg.order_stats d
        WHERE d.merchant_id = ANY (p_merchants) AND d.grain = w.from_grain AND d.period_start >= w.lo AND d.period_start < w.hi
        GROUP BY 1, 3, 4;
    END LOOP;
END $$;

DROP PROCEDURE IF EXISTS refresh.rollup_dims(bigint[], date, date);
-- Rebuilds the week, month and quarter rows of agg.dim_stats of every period that overlaps
-- [p_from, p_to] from the day rows (weeks, months) and month rows (quarters: three rows per
-- key instead of ninety). Refreshes of dirty days keep these rows by their net changes instead
-- (refresh.apply_dim_changes); rebuilding is for long runs and explicit range refreshes.
CREATE PROCEDURE refresh.rollup_dims(p_merchants bigint[], p_from date, p_to date)
LANGUAGE plpgsql AS $$
DECLARE
    w record;
BEGIN
    FOR w IN SELECT * FROM refresh.rollup_windows(p_from, p_to) LOOP
        DELETE FROM agg.dim_stats
        WHERE merchant_id = ANY (p_merchants) AND dimension = ANY (refresh.dimensions())
          AND grain = agg.grain_code(w.grain) AND status = ANY (refresh.status_keys())
          AND period_start >= w.lo AND period_start < w.hi;
        INSERT INTO agg.dim_stats (merchant_id, dimension, grain, status, period_start, key, orders, accepted,
            delivered, cancelled, returned, items, gmv_cents, delivered_gmv_cents, returned_cents, delivery_us)
        SELECT d.merchant_id, d.dimension, agg.grain_code(w.grain), d.status, date_trunc(w.grain, d.period_start::timestamp)::date, d.key,
               sum(d.orders), sum(d.accepted), sum(d.delivered), sum(d.cancelled), sum(d.returned), sum(d.items),
               sum(d.gmv_cents), sum(d.delivered_gmv_cents), sum(d.returned_cents), sum(d.delivery_us)
        FROM agg.dim_stats d
        WHERE d.merchant_id = ANY (p_merchants) AND d.dimension = ANY (refresh.dimensions())
          AND d.grain = agg.grain_code(w.from_grain) AND d.status = ANY (refresh.status_keys())
          AND d.period_start >= w.lo AND d.period_start < w.hi
        GROUP BY d.merchant_id, d.dimension, d.status, 5, d.key
        ORDER BY 1, 2, 4, 5, 6;
    END LOOP;
END $$;

DROP PROCEDURE IF EXISTS refresh.mark_fresh(bigint); -- version 2
DROP PROCEDURE IF EXISTS refresh.mark_fresh(bigint[]);
DROP VIEW IF EXISTS refresh.pending;
-- The merchant days waiting for a refresh: dirty days, and the days of changed orders.
CREATE VIEW refresh.pending AS
    SELECT merchant_id, day FROM refresh.dirty_days
    UNION
    SELECT merchant_id, day FROM refresh.dirty_orders;

-- Records a successful refresh of a set of merchants. A merchant's data covers the global
-- watermark only when no dirty day or changed order of it is left (a chunked refresh leaves some for the next
-- transaction, and a concurrent scan may have marked more): otherwise the watermark it
-- covered is kept. One statement, so the watermark and the dirty days are read from the same
-- snapshot.
CREATE PROCEDURE refresh.mark_fresh(p_merchants bigint[])
LANGUAGE sql AS $$
    INSERT INTO agg.freshness (merchant_id, refreshed_at, source_watermark)
    SELECT m.id, now(),
           CASE WHEN EXISTS (SELECT FROM refresh.pending AS d WHERE d.merchant_id = m.id)
                THEN (SELECT f.source_watermark FROM agg.freshness f WHERE f.merchant_id = m.id)
                ELSE s.source_watermark END
    FROM refresh.settings s, (SELECT DISTINCT id FROM unnest(p_merchants) AS id ORDER BY 1) AS m
    ON CONFLICT (merchant_id) DO UPDATE
        SET refreshed_at = EXCLUDED.refreshed_at, source_watermark = EXCLUDED.source_watermark;
$$;

DROP PROCEDURE IF EXISTS refresh.mark_days(bigint, date, date);
-- Marks a merchant's business days [p_from, p_to] dirty, for an operator's backfill through the
-- API (POST /v1/admin/refresh): the River job then refreshes them like any change.
CREATE PROCEDURE refresh.mark_days(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_from > p_to THEN
        RAISE EXCEPTION 'refresh range % .. % is empty', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO refresh.dirty_days (merchant_id, day)
    SELECT p_merchant, g::date FROM generate_series(p_from, p_to, interval '1 day') AS g
    ORDER BY 2 -- key order, like the change scan, so the two never deadlock
    ON CONFLICT DO NOTHING;
END $$;

DROP PROCEDURE IF EXISTS refresh.finish(bigint, date, date, bigint[]); -- version 2
DROP PROCEDURE IF EXISTS refresh.finish(bigint[], date, date, boolean);
DROP PROCEDURE IF EXISTS refresh.finish(bigint[], date, date);
DROP PROCEDURE IF EXISTS refresh.finish(bigint[]);
-- Everything that follows rewritten days and orders of a set of merchants (load_days and
-- load_orders keep the rollups): the first order and order chains of the customers whose
-- days changed, the product lists, and freshness.
--
-- work_mem: a backfill's merchant has millions of customer days to net in memory.
CREATE PROCEDURE refresh.finish(p_merchants bigint[])
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    v_merchants bigint[];
    v_days      date[];
    v_stale     bigint[];
BEGIN
    -- Customers whose orders per day changed: only they have a new first day or chain.
    WITH d AS (
        DELETE FROM pg_temp.customer_day_deltas WHERE merchant_id = ANY (p_merchants) RETURNING *
    )
    INSERT INTO pg_temp.changed_customers (merchant_id, customer_id)
    SELECT DISTINCT merchant_id, customer_id FROM d
    GROUP BY merchant_id, customer_id, day HAVING sum(orders) <> 0
    ON CONFLICT DO NOTHING;
    -- Numbers for the sets (of the days apply_customer_days noted): a customer new to the
    -- merchant is among them.
    INSERT INTO agg.customer_numbers (merchant_id, customer_id)
    SELECT c.merchant_id, c.customer_id FROM pg_temp.changed_customers AS c
    WHERE c.merchant_id = ANY (p_merchants)
      AND NOT EXISTS (SELECT FROM agg.customer_numbers AS n
                      WHERE n.merchant_id = c.merchant_id AND n.customer_id = c.customer_id)
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    CALL refresh.rebuild_customer_sets();
    -- Their old and new first days: the 'first' customer sets of those days change.
    WITH d AS (
        DELETE FROM agg.customer_first AS f USING pg_temp.changed_customers AS c
        WHERE c.merchant_id = ANY (p_merchants) AND f.merchant_id = c.merchant_id AND f.customer_id = c.customer_id
        RETURNING f.merchant_id, f.first_day
    )
    SELECT coalesce(array_agg(merchant_id), '{}'), coalesce(array_agg(first_day), '{}') INTO v_merchants, v_days FROM d;
    WITH i AS (
        INSERT INTO agg.customer_first (merchant_id, customer_id, first_day)
        SELECT cd.merchant_id, cd.customer_id, min(cd.day)
        FROM pg_temp.changed_customers AS c
        JOIN agg.customer_days AS cd USING (merchant_id, customer_id)
        WHERE c.merchant_id = ANY (p_merchants)
        GROUP BY 1, 2
        RETURNING merchant_id, first_day
    )
    SELECT v_merchants || coalesce(array_agg(merchant_id), '{}'), v_days || coalesce(array_agg(first_day), '{}')
    INTO v_merchants, v_days FROM i;
    CALL refresh.first_sets(v_merchants, v_days);
    CALL refresh.customer_chains(p_merchants);
    DELETE FROM pg_temp.changed_customers WHERE merchant_id = ANY (p_merchants);

    -- Product names for breakdowns and ABC, of the merchants whose lists differ from the stored
    -- ones by their sums (reading every product of 1k changed orders' merchants at 10M took
    -- a third of the refresh); one remote read, only what differs is written.
    v_stale := ARRAY(
        SELECT merchant_id
        FROM refresh.source_product_sums(p_merchants) AS s
        FULL JOIN (SELECT a.merchant_id, count(*) AS products, count(a.category_id) AS categorized,
                          sum(hashtextextended(a.sku, a.id)) AS skus, sum(hashtextextended(a.name, a.id)) AS names,
                          sum(hashint8extended(a.category_id, a.id)) AS categories
                   FROM agg.products AS a WHERE a.merchant_id = ANY (p_merchants) GROUP BY 1) AS a USING (merchant_id)
        WHERE (s.products, s.categorized, s.skus, s.names, s.categories)
              IS DISTINCT FROM (a.products, a.categorized, a.skus, a.names, a.categories));
    IF cardinality(v_stale) > 0 THEN
        WITH p AS MATERIALIZED (
            SELECT p.merchant_id, p.id, p.sku, p.name, p.category_id FROM src.products AS p
            WHERE p.merchant_id = ANY (v_stale)
        ), gone AS (
            DELETE FROM agg.products AS a
            WHERE a.merchant_id = ANY (v_stale)
              AND NOT EXISTS (SELECT FROM p WHERE p.merchant_id = a.merchant_id AND p.id = a.id)
        )
        INSERT INTO agg.products AS a (merchant_id, id, sku, name, category_id)
        SELECT * FROM p
        ON CONFLICT (merchant_id, id) DO UPDATE
            SET sku = EXCLUDED.sku, name = EXCLUDED.name, category_id = EXCLUDED.category_id
            WHERE (a.sku, a.name, a.category_id) IS DISTINCT FROM (EXCLUDED.sku, EXCLUDED.name, EXCLUDED.category_id);
    END IF;

    CALL refresh.mark_fresh(p_merchants);
END $$;

DROP PROCEDURE IF EXISTS refresh.refresh_days(bigint, date, date);
-- Refreshes one merchant over an explicit range of business days (CLI backfills). Days left
-- dirty inside the range are done by this too. The breakdown rollups of the range's months
-- and quarters are rebuilt from the day rows, not adjusted: an operator's refresh repairs.
CREATE PROCEDURE refresh.refresh_days(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_from > p_to THEN
        RAISE EXCEPTION 'refresh range % .. % is empty', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL refresh.lock_merchant(p_merchant);
    CALL refresh.load_days(ARRAY[p_merchant], p_from, p_to, true);
    DELETE FROM refresh.dirty_days WHERE merchant_id = p_merchant AND day BETWEEN p_from AND p_to;
    CALL refresh.finish(ARRAY[p_merchant]);
END $$;

DROP PROCEDURE IF EXISTS refresh.refresh_dirty(bigint, int); -- version 1
DROP PROCEDURE IF EXISTS refresh.refresh_dirty(bigint, int, int, int);
-- Refreshes the dirty days and changed orders of one merchant (the River job's unit of
-- work): all of them, or, when p_max_days is set, the days in the first p_max_days calendar
-- days from the oldest dirty one (and every changed order), so a merchant too big for one
-- statement timeout is done in smaller transactions. Returns how many days it refreshed (the
-- changed orders' days among them) and how many dirty days are left. Days marked dirty while
-- this runs wait on the deleted rows' locks and are inserted again after commit, so they are
-- picked up by the next run rather than lost.
CREATE PROCEDURE refresh.refresh_dirty(p_merchant bigint, p_max_days int, INOUT p_days int DEFAULT 0, INOUT p_left int DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_days  date[];
    v_odays date[];
    v_range record;
BEGIN
    IF p_max_days < 1 THEN
        RAISE EXCEPTION 'p_max_days must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL refresh.lock_merchant(p_merchant);
    WITH d AS (
        DELETE FROM refresh.dirty_days
        WHERE merchant_id = p_merchant
          AND (p_max_days IS NULL OR day < (SELECT min(day) FROM refresh.dirty_days WHERE merchant_id = p_merchant) + p_max_days)
        RETURNING day
    )
    SELECT array_agg(day ORDER BY day) INTO v_days FROM d;
    SELECT count(*) INTO p_left FROM refresh.dirty_days WHERE merchant_id = p_merchant;
    FOR v_range IN SELECT * FROM refresh.day_runs(v_days) LOOP
        CALL refresh.load_days(ARRAY[p_merchant], v_range.first_day, v_range.last_day, false);
    END LOOP;
    CALL refresh.load_orders(ARRAY[p_merchant], v_odays);
    p_days := cardinality(ARRAY(SELECT unnest(v_days) UNION SELECT unnest(v_odays)));
    IF p_days > 0 THEN
        CALL refresh.finish(ARRAY[p_merchant]);
    END IF;
END $$;

DROP PROCEDURE IF EXISTS refresh.refresh_dirty_set(bigint[], int);
-- Refreshes every dirty day and changed order of a set of merchants in one transaction
-- (`merchantagg refresh` after a change scan: many merchants with a few recent changes each).
-- Each run of days is loaded for all the merchants dirty in it with one set of remote
-- queries, and the changed orders of all of them with another. Merchants are locked in id
-- order, so two sets (or a set and a River job) never deadlock.
CREATE PROCEDURE refresh.refresh_dirty_set(p_merchants bigint[], INOUT p_days int DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_merchant bigint;
    v_ids      bigint[];
    v_days     date[];
    v_odays    date[];
    v_range    record;
    v_run      bigint[];
BEGIN
    FOR v_merchant IN SELECT DISTINCT id FROM unnest(p_merchants) AS id ORDER BY 1 LOOP
        CALL refresh.lock_merchant(v_merchant);
    END LOOP;
    WITH d AS (
        DELETE FROM refresh.dirty_days WHERE merchant_id = ANY (p_merchants) RETURNING merchant_id, day
    )
    SELECT array_agg(merchant_id ORDER BY day), array_agg(day ORDER BY day) INTO v_ids, v_days FROM d;
    FOR v_range IN SELECT * FROM refresh.day_runs(v_days) LOOP
        v_run := ARRAY(SELECT DISTINCT id FROM unnest(v_ids, v_days) AS x (id, day)
                       WHERE day BETWEEN v_range.first_day AND v_range.last_day);
        CALL refresh.load_days(v_run, v_range.first_day, v_range.last_day, false);
    END LOOP;
    CALL refresh.load_orders(p_merchants, v_odays);
    p_days := coalesce(cardinality(v_days), 0) + cardinality(v_odays);
    IF p_days > 0 THEN
        CALL refresh.finish(p_merchants);
    END IF;
END $$;

DROP FUNCTION IF EXISTS refresh.day_runs(date[]);
-- Runs of days, each loaded with one set of remote queries. Days less than a month apart
-- share a run: rewriting the clean days between them is harmless, and far cheaper than
-- another round of remote queries (a small merchant's orders fall on scattered days).
CREATE FUNCTION refresh.day_runs(p_days date[]) RETURNS TABLE (first_day date, last_day date)
LANGUAGE sql IMMUTABLE AS $$
    SELECT min(day), max(day)
    FROM (SELECT day, count(*) FILTER (WHERE gap > 31) OVER (ORDER BY day) AS grp
          FROM (SELECT day, day - lag(day) OVER (ORDER BY day) AS gap FROM unnest(p_days) AS day) AS g) AS x
    GROUP BY grp
    ORDER BY 1
$$;

DROP FUNCTION IF EXISTS refresh.queues_to_vacuum();
DROP PROCEDURE IF EXISTS refresh.analyze_stale();
DROP PROCEDURE IF EXISTS refresh.analyze_stale(real);
DROP FUNCTION IF EXISTS refresh.tables_to_tidy(real);
DROP FUNCTION IF EXISTS refresh.indexes_to_rebuild();
DROP FUNCTION IF EXISTS refresh.maintained_tables();
-- The tables the refresh maintains itself (refresh.tables_to_tidy, refresh.indexes_to_rebuild):
-- the aggregate tables, the order snapshot, and the change queues (queue = true).
CREATE FUNCTION refresh.maintained_tables()
RETURNS TABLE (relid oid, queue boolean)
LANGUAGE sql STABLE AS $$
    SELECT c.oid, n.nspname = 'refresh' AND c.relname IN ('dirty_days', 'dirty_orders')
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND (n.nspname = 'agg'
           OR n.nspname = 'refresh' AND c.relname IN ('order_snapshot', 'line_snapshot', 'dirty_days', 'dirty_orders'))
$$;

-- The refresh's tables due for a VACUUM or an ANALYZE, by autovacuum's rules applied at once:
-- these machines run with autovacuum off, and a busy one runs behind a backfill. The caller
-- runs them (neither is possible inside a function); both are cheap when nothing is due.
--   * Aggregate tables and the order snapshot: analyzed once their rows changed by p_fraction
--     of the rows they had at their last analysis, vacuumed once rows inserted, updated or
--     deleted since their last vacuum reach 2 × p_fraction of the rest (autovacuum: 0.1 and
--     0.2). After each merchant or set of a refresh p_fraction is 1 (analyzed when doubled:
--     statistics that far off change plans; vacuumed when tripled, so a backfill's new pages
--     are vacuumed while most are still in the cache); at the end of a run 0.1; NULL after a
--     change scan (the queues only). Without the vacuum, the API's first read of every page a
--     backfill wrote sets its hint bits and writes it out again.
--   * The change queues (dirty days, changed orders): vacuumed once they hold more than 1000
--     dead rows. Every refresh deletes what it took from them, and the API's freshness reads
--     them by merchant on every request. Not relative to their live rows: a vacuum skips the
--     pages the visibility map calls all-visible and extrapolates the rest, so after a 10M
--     backfill an empty dirty_days was counted at 86,774 live rows and its 2262 empty pages
--     were read by every refresh.
CREATE FUNCTION refresh.tables_to_tidy(p_fraction real)
RETURNS TABLE (table_name text, vacuum_due boolean, analyze_due boolean)
LANGUAGE sql STABLE AS $$
    SELECT * FROM (
        SELECT format('%I.%I', s.schemaname, s.relname),
               CASE WHEN q.queue THEN s.n_dead_tup > 1000
                    ELSE s.n_ins_since_vacuum + s.n_dead_tup
                         > 2 * p_fraction * greatest(s.n_live_tup - s.n_ins_since_vacuum, 1000) END,
               NOT q.queue AND s.n_mod_since_analyze > p_fraction * greatest(s.n_live_tup - s.n_mod_since_analyze, 1000)
        FROM refresh.maintained_tables() AS q
        JOIN pg_stat_user_tables AS s USING (relid)
    ) AS t (table_name, vacuum_due, analyze_due)
    WHERE vacuum_due OR analyze_due
    ORDER BY table_name
$$;

-- The refresh's indexes due for a rebuild (REINDEX CONCURRENTLY, by the caller at the end of
-- a refresh run): those of a table that holds 100k rows or more and has more than doubled
-- since the index was last built (refresh.index_builds; never, for an index built by a
-- migration on an empty table). A backfill leaves its indexes half empty (migration 010), and
-- at 10M orders the breakdown rows' key alone is ~10 GB of a database larger than the RAM.
-- Also listed, as invalid: what a rebuild that failed left behind (a REINDEX CONCURRENTLY
-- cancelled midway leaves a "_ccnew" or "_ccold" index that every insert still writes to),
-- to be dropped.
CREATE FUNCTION refresh.indexes_to_rebuild()
RETURNS TABLE (index_name text, table_rows bigint, invalid boolean)
LANGUAGE sql STABLE AS $$
    -- Row counts from pg_class (kept by VACUUM and ANALYZE, which tidy runs first), not from
    -- the statistics collector, which a crash or a copied database starts from zero.
    SELECT format('%I.%I', n.nspname, ic.relname), greatest(tc.reltuples, 0)::bigint, NOT i.indisvalid
    FROM refresh.maintained_tables() AS m
    JOIN pg_index AS i ON i.indrelid = m.relid
    JOIN pg_class AS ic ON ic.oid = i.indexrelid
    JOIN pg_class AS tc ON tc.oid = i.indrelid
    JOIN pg_namespace AS n ON n.oid = ic.relnamespace
    LEFT JOIN refresh.index_builds AS b ON b.index_name = format('%I.%I', n.nspname, ic.relname)
    WHERE NOT m.queue
      AND CASE WHEN i.indisvalid THEN tc.reltuples >= 100000 AND tc.reltuples > 2 * coalesce(b.table_rows, 0)
               ELSE ic.relname ~ '_cc(new|old)[0-9]*$' END
    ORDER BY 1
$$;

DROP PROCEDURE IF EXISTS refresh.index_built(text, bigint);
-- Records that the caller rebuilt p_index while its table held p_table_rows rows.
CREATE PROCEDURE refresh.index_built(p_index text, p_table_rows bigint)
LANGUAGE sql AS $$
    INSERT INTO refresh.index_builds (index_name, table_rows) VALUES (p_index, p_table_rows)
    ON CONFLICT (index_name) DO UPDATE SET table_rows = excluded.table_rows, built_at = excluded.built_at
$$;
