DROP FUNCTION IF EXISTS refresh.customer_grains();
-- The periods agg.customer_steps keeps (every grain a range or a series point is tiled with).
CREATE FUNCTION refresh.customer_grains() RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$ VALUES ('day'), ('week'), ('month'), ('quarter') $$;

DROP FUNCTION IF EXISTS refresh.customer_periods(bigint[], date[]);
-- The customer_steps periods that contain any of the (merchant, day) pairs given.
CREATE FUNCTION refresh.customer_periods(p_merchants bigint[], p_days date[])
RETURNS TABLE (merchant_id bigint, grain text, period_start date)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT m, g, date_trunc(g, d::timestamp)::date
    FROM unnest(p_merchants, p_days) AS x (m, d) CROSS JOIN refresh.customer_grains() AS g
$$;

DROP PROCEDURE IF EXISTS refresh.customer_chains(bigint[]);
-- Brings agg.customer_chain, agg.customer_steps and agg.cohort_cells (migration 004) in step
-- with agg.customer_days for the customers whose days changed (the session's changed_customers of
-- the merchants p_merchants). Their chains are recomputed
-- whole and compared with the stored ones; only the rows that differ move the step counts and
-- cohort cells (old rows retracted, new ones added), so the cost follows the changed customers.
CREATE PROCEDURE refresh.customer_chains(p_merchants bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_merchants bigint[];
    v_days      date[];
    -- Nothing stored yet for these merchants (a backfill): the new steps are every step of
    -- their periods, so their running totals are computed as they are inserted, instead of
    -- inserted and then updated (a second version of every row: 12M dead rows at 10M).
    v_fresh     boolean := NOT EXISTS (SELECT FROM agg.customer_steps WHERE merchant_id = ANY (p_merchants));
BEGIN
    WITH c AS (
        SELECT merchant_id, customer_id FROM pg_temp.changed_customers WHERE merchant_id = ANY (p_merchants)
    ), days AS (
        SELECT cd.merchant_id, cd.customer_id, cd.day, sum(cd.orders)::int AS orders
        FROM agg.customer_days AS cd JOIN c USING (merchant_id, customer_id)
        GROUP BY cd.merchant_id, cd.customer_id, cd.day
    ), new AS (
        SELECT merchant_id, customer_id, day, orders, lag(day) OVER w AS prev1,
               CASE WHEN lag(orders) OVER w >= 2 THEN lag(day) OVER w ELSE lag(day, 2) OVER w END AS prev2
        FROM days
        WINDOW w AS (PARTITION BY merchant_id, customer_id ORDER BY day)
    ), old AS (
        SELECT ch.merchant_id, ch.customer_id, ch.day, ch.orders, ch.prev1, ch.prev2
        FROM agg.customer_chain AS ch JOIN c USING (merchant_id, customer_id)
    ), gone AS (
        SELECT * FROM old EXCEPT ALL SELECT * FROM new
    ), came AS (
        SELECT * FROM new EXCEPT ALL SELECT * FROM old
    ), del AS (
        DELETE FROM agg.customer_chain AS ch
        USING gone AS g
        WHERE ch.merchant_id = g.merchant_id AND ch.customer_id = g.customer_id AND ch.day = g.day
          AND NOT EXISTS (SELECT FROM came AS n
                          WHERE n.merchant_id = g.merchant_id AND n.customer_id = g.customer_id AND n.day = g.day)
    ), ins AS (
        INSERT INTO agg.customer_chain AS ch (merchant_id, customer_id, day, orders, prev1, prev2)
        SELECT merchant_id, customer_id, day, orders, prev1, prev2 FROM came
        ON CONFLICT (merchant_id, customer_id, day) DO UPDATE
            SET orders = EXCLUDED.orders, prev1 = EXCLUDED.prev1, prev2 = EXCLUDED.prev2
    ), changed AS (
        SELECT 1 AS sign, * FROM came UNION ALL SELECT -1, * FROM gone
    ), events AS (
        -- A day's first order: prev = prev1, prev2 = prev2; its second: prev2 = prev1. Later
        -- orders of the day have prev = prev2 = the day itself and never fall below a lo.
        SELECT merchant_id, day, coalesce(prev1, '-infinity') AS prev_day, sign AS n1, 0 AS n2 FROM changed
        UNION ALL
        SELECT merchant_id, day, coalesce(prev2, '-infinity'), 0, sign FROM changed
        UNION ALL
        SELECT merchant_id, day, coalesce(prev1, '-infinity'), 0, sign FROM changed WHERE orders >= 2
    ), tiled AS (
        SELECT e.merchant_id, g.grain, date_trunc(g.grain, e.day::timestamp)::date AS period_start, e.prev_day,
               sum(e.n1)::int AS n1, sum(e.n2)::int AS n2
        FROM events AS e
        CROSS JOIN refresh.customer_grains() AS g (grain)
        WHERE e.prev_day < date_trunc(g.grain, e.day::timestamp)::date
        GROUP BY 1, 2, 3, 4
        HAVING sum(e.n1) <> 0 OR sum(e.n2) <> 0
    ), steps AS (
        INSERT INTO agg.customer_steps AS s (merchant_id, grain, period_start, prev_day, n1, n2, cum1, cum2, firsts)
        SELECT merchant_id, grain, period_start, prev_day, n1, n2,
               CASE WHEN v_fresh THEN sum(n1) OVER w ELSE 0 END,
               CASE WHEN v_fresh THEN sum(n2) OVER w ELSE 0 END,
               CASE WHEN v_fresh THEN coalesce(sum(n1) FILTER (WHERE prev_day = '-infinity') OVER p, 0) ELSE 0 END
        FROM tiled
        WINDOW p AS (PARTITION BY merchant_id, grain, period_start), w AS (p ORDER BY prev_day)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (merchant_id, grain, period_start, prev_day) DO UPDATE
            SET n1 = s.n1 + EXCLUDED.n1, n2 = s.n2 + EXCLUDED.n2
    ), cohort_old AS (
        SELECT merchant_id, customer_id, date_trunc('month', min(day)::timestamp)::date AS cohort,
               array_agg(DISTINCT date_trunc('month', day::timestamp)::date) AS months
        FROM old GROUP BY merchant_id, customer_id
    ), cohort_new AS (
        SELECT merchant_id, customer_id, date_trunc('month', min(day)::timestamp)::date AS cohort,
               array_agg(DISTINCT date_trunc('month', day::timestamp)::date) AS months
        FROM new GROUP BY merchant_id, customer_id
    ), cells AS (
        SELECT merchant_id, cohort, month, sum(sign)::int AS customers
        FROM (SELECT -1 AS sign, o.merchant_id, o.cohort, m.month
              FROM cohort_old AS o LEFT JOIN cohort_new AS n USING (merchant_id, customer_id), unnest(o.months) AS m (month)
              WHERE n IS DISTINCT FROM o
              UNION ALL
              SELECT 1, n.merchant_id, n.cohort, m.month
              FROM cohort_new AS n LEFT JOIN cohort_old AS o USING (merchant_id, customer_id), unnest(n.months) AS m (month)
              WHERE o IS DISTINCT FROM n) AS x
        GROUP BY merchant_id, cohort, month
        HAVING sum(sign) <> 0
    ), cohorts AS (
        INSERT INTO agg.cohort_cells AS cc (merchant_id, cohort, month, customers)
        SELECT merchant_id, cohort, month, customers FROM cells
        ORDER BY 1, 2, 3
        ON CONFLICT (merchant_id, cohort, month) DO UPDATE SET customers = cc.customers + EXCLUDED.customers
    )
    SELECT array_agg(merchant_id), array_agg(day) INTO v_merchants, v_days
    FROM (SELECT DISTINCT merchant_id, day FROM changed) AS d;

    IF v_days IS NULL THEN
        RETURN;
    END IF;
    DELETE FROM agg.cohort_cells WHERE merchant_id = ANY (v_merchants) AND customers = 0;
    IF v_fresh THEN
        RETURN;
    END IF;

    -- Running totals of every period the changed days fall in; values whose events cancelled
    -- out are dropped first.
    DELETE FROM agg.customer_steps AS s USING refresh.customer_periods(v_merchants, v_days) AS t
    WHERE s.merchant_id = t.merchant_id AND s.grain = t.grain AND s.period_start = t.period_start
      AND s.n1 = 0 AND s.n2 = 0;
    WITH run AS (
        SELECT s.merchant_id, s.grain, s.period_start, s.prev_day,
               sum(s.n1) OVER w AS cum1, sum(s.n2) OVER w AS cum2,
               sum(s.n1) FILTER (WHERE s.prev_day = '-infinity') OVER (PARTITION BY s.merchant_id, s.grain, s.period_start) AS firsts
        FROM agg.customer_steps AS s JOIN refresh.customer_periods(v_merchants, v_days) USING (merchant_id, grain, period_start)
        WINDOW w AS (PARTITION BY s.merchant_id, s.grain, s.period_start ORDER BY s.prev_day)
    )
    UPDATE agg.customer_steps AS s
    SET cum1 = run.cum1, cum2 = run.cum2, firsts = coalesce(run.firsts, 0)
    FROM run
    WHERE s.merchant_id = run.merchant_id AND s.grain = run.grain AND s.period_start = run.period_start
      AND s.prev_day = run.prev_day
      AND (s.cum1, s.cum2, s.firsts) IS DISTINCT FROM (run.cum1, run.cum2, coalesce(run.firsts, 0));
END $$;
