DROP PROCEDURE IF EXISTS refresh.customer_day_sets(bigint[], date, date);
DROP PROCEDURE IF EXISTS refresh.rebuild_customer_sets();
-- Rebuilds the customer sets (migration 007) of the days and statuses listed in the session's
-- set_days from agg.customer_days, patches those of set_patches, then rebuilds the week, month
-- and quarter sets of the periods containing those days, and empties both tables.
-- refresh.apply_customer_days lists the days and statuses whose customers changed (a status
-- change of a few orders touches a few day sets, not every day the refresh reloaded). Every
-- customer listed must have its number.
-- Status 'first' sets follow agg.customer_first instead (refresh.first_sets).
CREATE PROCEDURE refresh.rebuild_customer_sets()
LANGUAGE plpgsql AS $$
DECLARE
    v_merchants bigint[];
    v_days      date[];
    v_statuses  text[];
BEGIN
    -- The sets to delete go by arrays, whose length the planner knows (set_days has no
    -- statistics, and a hash join read every day set of the table: 130 ms for 700 sets).
    SELECT array_agg(merchant_id), array_agg(day), array_agg(status) INTO v_merchants, v_days, v_statuses
    FROM (SELECT DISTINCT merchant_id, day, status FROM pg_temp.set_days) AS d;
    DELETE FROM agg.customer_sets AS s USING unnest(v_merchants, v_days, v_statuses) AS t (merchant_id, day, status)
    WHERE s.merchant_id = t.merchant_id AND s.grain = 'day' AND s.status = t.status AND s.period_start = t.day;
    INSERT INTO agg.customer_sets (merchant_id, grain, status, period_start, once, twice)
    SELECT cd.merchant_id, 'day', cd.status, cd.day, public.sort(array_agg(n.n)),
           public.sort(coalesce(array_agg(n.n) FILTER (WHERE cd.orders >= 2), '{}'))
    FROM (SELECT DISTINCT merchant_id, day, status FROM pg_temp.set_days) AS t
    JOIN agg.customer_days AS cd ON cd.merchant_id = t.merchant_id AND cd.day = t.day AND cd.status = t.status
    JOIN agg.customer_numbers AS n ON n.merchant_id = cd.merchant_id AND n.customer_id = cd.customer_id
    GROUP BY cd.merchant_id, cd.status, cd.day
    ORDER BY 1, 3, 4;
    DELETE FROM pg_temp.set_days;

    -- The day sets of changed orders' customers are patched: who came in, who left (a day
    -- rebuilt above already holds them). Rebuilding read every customer of the day: 0.4 s of
    -- 1.75 for 1k changed orders at 10M.
    WITH p AS (
        SELECT p.merchant_id, p.day, p.status,
               coalesce(array_agg(n.n) FILTER (WHERE p.old_orders < 1 AND p.new_orders >= 1), '{}') AS once_in,
               coalesce(array_agg(n.n) FILTER (WHERE p.old_orders >= 1 AND p.new_orders < 1), '{}') AS once_out,
               coalesce(array_agg(n.n) FILTER (WHERE p.old_orders < 2 AND p.new_orders >= 2), '{}') AS twice_in,
               coalesce(array_agg(n.n) FILTER (WHERE p.old_orders >= 2 AND p.new_orders < 2), '{}') AS twice_out
        FROM pg_temp.set_patches AS p
        JOIN agg.customer_numbers AS n ON n.merchant_id = p.merchant_id AND n.customer_id = p.customer_id
        WHERE NOT EXISTS (SELECT FROM unnest(v_merchants, v_days, v_statuses) AS r (merchant_id, day, status)
                          WHERE r.merchant_id = p.merchant_id AND r.day = p.day AND r.status = p.status)
        GROUP BY p.merchant_id, p.day, p.status
    ), cur AS (
        SELECT p.merchant_id, p.day, p.status, s.merchant_id IS NOT NULL AS stored,
               public._int_union(public.intset_subtract(coalesce(s.once, '{}'), p.once_out), p.once_in) AS once,
               public._int_union(public.intset_subtract(coalesce(s.twice, '{}'), p.twice_out), p.twice_in) AS twice
        FROM p
        LEFT JOIN agg.customer_sets AS s
          ON s.merchant_id = p.merchant_id AND s.grain = 'day' AND s.status = p.status AND s.period_start = p.day
    ), gone AS (
        DELETE FROM agg.customer_sets AS s USING cur AS c
        WHERE c.stored AND cardinality(c.once) = 0
          AND s.merchant_id = c.merchant_id AND s.grain = 'day' AND s.status = c.status AND s.period_start = c.day
    ), changed AS (
        UPDATE agg.customer_sets AS s SET once = c.once, twice = c.twice
        FROM cur AS c
        WHERE c.stored AND cardinality(c.once) > 0
          AND s.merchant_id = c.merchant_id AND s.grain = 'day' AND s.status = c.status AND s.period_start = c.day
    ), patched AS (
        INSERT INTO agg.customer_sets (merchant_id, grain, status, period_start, once, twice)
        SELECT merchant_id, 'day', status, day, once, twice FROM cur WHERE NOT stored AND cardinality(once) > 0
        ORDER BY 1, 3, 4
    )
    SELECT coalesce(v_merchants, '{}') || array_agg(merchant_id), coalesce(v_days, '{}') || array_agg(day),
           coalesce(v_statuses, '{}') || array_agg(status)
    INTO v_merchants, v_days, v_statuses FROM cur;
    DELETE FROM pg_temp.set_patches;

    CALL refresh.roll_customer_sets(coalesce(v_merchants, '{}'), coalesce(v_days, '{}'), coalesce(v_statuses, '{}'));
END $$;

DROP PROCEDURE IF EXISTS refresh.first_sets(bigint[], date[]);
-- Rebuilds the status 'first' sets of the (merchant, day) pairs given, from agg.customer_first,
-- and the week, month and quarter sets containing them. refresh.finish passes the old and new
-- first days of the customers whose days changed.
CREATE PROCEDURE refresh.first_sets(p_merchants bigint[], p_days date[])
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM agg.customer_sets AS s
    USING (SELECT DISTINCT m, d FROM unnest(p_merchants, p_days) AS x (m, d)) AS t
    WHERE s.merchant_id = t.m AND s.grain = 'day' AND s.status = 'first' AND s.period_start = t.d;
    INSERT INTO agg.customer_sets (merchant_id, grain, status, period_start, once, twice)
    SELECT f.merchant_id, 'day', 'first', f.first_day, public.sort(array_agg(n.n)), '{}'
    FROM (SELECT DISTINCT m, d FROM unnest(p_merchants, p_days) AS x (m, d)) AS t
    JOIN agg.customer_first AS f ON f.merchant_id = t.m AND f.first_day = t.d
    JOIN agg.customer_numbers AS n USING (merchant_id, customer_id)
    GROUP BY f.merchant_id, f.first_day
    ORDER BY 1, 4;
    CALL refresh.roll_customer_sets(p_merchants, p_days, array_fill('first'::text, ARRAY[cardinality(p_days)]));
END $$;

DROP FUNCTION IF EXISTS refresh.set_statuses(boolean);
DROP PROCEDURE IF EXISTS refresh.roll_customer_sets(bigint[], date[], boolean);
DROP PROCEDURE IF EXISTS refresh.roll_customer_sets(bigint[], date[], text[]);
-- Rebuilds the week, month and quarter customer sets of the periods containing the (merchant,
-- day, status) triples given, for those statuses only ('first', or order statuses): weeks and
-- months as unions of their day sets, quarters of their month sets.
CREATE PROCEDURE refresh.roll_customer_sets(p_merchants bigint[], p_days date[], p_statuses text[])
LANGUAGE plpgsql AS $$
DECLARE
    w           record;
    v_merchants bigint[];
    v_periods   date[];
    v_statuses  text[];
BEGIN
    FOR w IN SELECT * FROM refresh.rollup_grains() LOOP
        SELECT array_agg(m), array_agg(p), array_agg(st) INTO v_merchants, v_periods, v_statuses
        FROM (SELECT DISTINCT m, date_trunc(w.grain, d::timestamp)::date AS p, st
              FROM unnest(p_merchants, p_days, p_statuses) AS x (m, d, st)) AS x;
        DELETE FROM agg.customer_sets AS s
        USING unnest(v_merchants, v_periods, v_statuses) AS t (merchant_id, period_start, status)
        WHERE s.merchant_id = t.merchant_id AND s.grain = w.grain AND s.status = t.status
          AND s.period_start = t.period_start;
        INSERT INTO agg.customer_sets (merchant_id, grain, status, period_start, once, twice)
        SELECT t.merchant_id, w.grain, t.status, t.period_start, (u.acc).once, (u.acc).twice
        FROM unnest(v_merchants, v_periods, v_statuses) AS t (merchant_id, period_start, status)
        CROSS JOIN LATERAL (
            SELECT agg.customer_union(s.once, s.twice) AS acc
            FROM agg.customer_sets AS s
            WHERE s.merchant_id = t.merchant_id AND s.grain = w.from_grain AND s.status = t.status
              AND s.period_start >= t.period_start AND s.period_start < t.period_start + refresh.grain_step(w.grain)
            GROUP BY s.status -- no row when the period has no sets left
        ) AS u
        ORDER BY 1, 3, 4;
    END LOOP;
END $$;

DROP PROCEDURE IF EXISTS refresh.complete_customer_sets();
-- Builds the customer sets of merchants that have customer days but no sets (aggregates built
-- before version 7), from the stored rows: `merchantagg migrate` calls it after installing this
-- code, so an upgrade needs no full refresh. Does nothing when every merchant has its sets.
CREATE PROCEDURE refresh.complete_customer_sets()
LANGUAGE plpgsql AS $$
DECLARE
    v_merchant bigint;
    v_days     date[];
BEGIN
    CALL refresh.scratch();
    FOR v_merchant IN
        SELECT f.merchant_id FROM agg.freshness AS f
        WHERE NOT EXISTS (SELECT FROM agg.customer_sets AS s WHERE s.merchant_id = f.merchant_id)
          AND EXISTS (SELECT FROM agg.customer_days AS cd WHERE cd.merchant_id = f.merchant_id)
        ORDER BY 1
    LOOP
        INSERT INTO agg.customer_numbers (merchant_id, customer_id)
        SELECT DISTINCT cd.merchant_id, cd.customer_id FROM agg.customer_days AS cd
        WHERE cd.merchant_id = v_merchant
          AND NOT EXISTS (SELECT FROM agg.customer_numbers AS n
                          WHERE n.merchant_id = cd.merchant_id AND n.customer_id = cd.customer_id)
        ORDER BY 1, 2;
        INSERT INTO pg_temp.set_days
        SELECT DISTINCT merchant_id, day, status FROM agg.customer_days WHERE merchant_id = v_merchant;
        CALL refresh.rebuild_customer_sets();
        v_days := ARRAY(SELECT DISTINCT first_day FROM agg.customer_first WHERE merchant_id = v_merchant ORDER BY 1);
        CALL refresh.first_sets(array_fill(v_merchant, ARRAY[cardinality(v_days)]), v_days);
    END LOOP;
END $$;
