-- Refresh procedures, version 1. Callers run each in one transaction per merchant: a failure
-- anywhere rolls back to the previous aggregates, and rerunning one rewrites the same rows.

DROP FUNCTION IF EXISTS refresh.day_segments(date, date, text);
-- Splits [p_from, p_to] into runs of days with a constant UTC offset: a run ends after a day
-- that is not 24 hours long (a DST change). lo/hi are the run's bounds as instants.
CREATE FUNCTION refresh.day_segments(p_from date, p_to date, p_tz text)
RETURNS TABLE (first_day date, last_day date, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
    WITH d AS (
        SELECT g::date AS day,
               ((g::date + 1)::timestamp AT TIME ZONE p_tz) - (g::date::timestamp AT TIME ZONE p_tz)
                   <> interval '24 hours' AS odd
        FROM generate_series(p_from, p_to, interval '1 day') AS g
    ), s AS (
        SELECT day, coalesce(sum(odd::int) OVER (ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS seg
        FROM d
    )
    SELECT min(day), max(day), min(day)::timestamp AT TIME ZONE p_tz, (max(day) + 1)::timestamp AT TIME ZONE p_tz
    FROM s GROUP BY seg ORDER BY 1
$$;

DROP PROCEDURE IF EXISTS refresh.lock_merchant(bigint);
-- One refresh of a merchant at a time, whichever worker or CLI runs it; held to commit.
CREATE PROCEDURE refresh.lock_merchant(p_merchant bigint)
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('merchantagg.refresh', p_merchant));
$$;

DROP PROCEDURE IF EXISTS refresh.load_days(bigint, date, date);
-- Rewrites the day rows of one merchant for [p_from, p_to] from the source.
CREATE PROCEDURE refresh.load_days(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
DECLARE
    v_tz  text;
    v_seg record;
BEGIN
    SELECT timezone INTO v_tz FROM refresh.settings;
    DELETE FROM agg.order_stats
    WHERE merchant_id = p_merchant AND grain = 'day' AND period_start BETWEEN p_from AND p_to;

    FOR v_seg IN SELECT * FROM refresh.day_segments(p_from, p_to, v_tz) LOOP
        INSERT INTO agg.order_stats (merchant_id, grain, period_start, status, orders, accepted,
            delivered, returned, items, gmv, delivered_gmv, returned_amount, delivery_seconds)
        SELECT p_merchant, 'day', (o.bucket AT TIME ZONE v_tz)::date, o.status, o.orders, o.accepted,
               o.delivered, coalesce(r.returned, 0), coalesce(i.items, 0), o.gmv, o.delivered_gmv,
               coalesce(r.returned_amount, 0), extract(epoch FROM o.delivery_time)
        FROM refresh.source_order_days(p_merchant, v_seg.lo, v_seg.hi) AS o
        LEFT JOIN refresh.source_item_days(p_merchant, v_seg.lo, v_seg.hi) AS i USING (bucket, status)
        LEFT JOIN refresh.source_return_days(p_merchant, v_seg.lo, v_seg.hi) AS r USING (bucket, status);
    END LOOP;
END $$;

DROP FUNCTION IF EXISTS refresh.grain_step(text);
CREATE FUNCTION refresh.grain_step(p_grain text) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_grain WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                        WHEN 'month' THEN interval '1 month' WHEN 'quarter' THEN interval '3 months' END
$$;

DROP PROCEDURE IF EXISTS refresh.rollup(bigint, date, date);
-- Recomputes the week, month and quarter rows of every period that overlaps [p_from, p_to]
-- from the merchant's day rows.
CREATE PROCEDURE refresh.rollup(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
DECLARE
    v_grain text;
    v_lo    date;
    v_hi    date;
BEGIN
    FOREACH v_grain IN ARRAY ARRAY['week', 'month', 'quarter'] LOOP
        v_lo := date_trunc(v_grain, p_from::timestamp)::date;
        v_hi := (date_trunc(v_grain, p_to::timestamp) + refresh.grain_step(v_grain))::date;
        DELETE FROM agg.order_stats
        WHERE merchant_id = p_merchant AND grain = v_grain AND period_start >= v_lo AND period_start < v_hi;
        INSERT INTO agg.order_stats (merchant_id, grain, period_start, status, orders, accepted,
            delivered, returned, items, gmv, delivered_gmv, returned_amount, delivery_seconds)
        SELECT p_merchant, v_grain, date_trunc(v_grain, d.period_start::timestamp)::date, d.status,
               sum(d.orders), sum(d.accepted), sum(d.delivered), sum(d.returned), sum(d.items),
               sum(d.gmv), sum(d.delivered_gmv), sum(d.returned_amount), sum(d.delivery_seconds)
        FROM agg.order_stats d
        WHERE d.merchant_id = p_merchant AND d.grain = 'day' AND d.period_start >= v_lo AND d.period_start < v_hi
        GROUP BY 3, 4;
    END LOOP;
END $$;

DROP PROCEDURE IF EXISTS refresh.mark_fresh(bigint);
CREATE PROCEDURE refresh.mark_fresh(p_merchant bigint)
LANGUAGE sql AS $$
    INSERT INTO agg.freshness (merchant_id, refreshed_at, source_watermark)
    SELECT p_merchant, now(), s.source_watermark FROM refresh.settings s
    ON CONFLICT (merchant_id) DO UPDATE
        SET refreshed_at = EXCLUDED.refreshed_at, source_watermark = EXCLUDED.source_watermark;
$$;

DROP PROCEDURE IF EXISTS refresh.refresh_days(bigint, date, date);
-- Refreshes one merchant over an explicit range of business days (CLI backfills). Days left
-- dirty inside the range are done by this too.
CREATE PROCEDURE refresh.refresh_days(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_from > p_to THEN
        RAISE EXCEPTION 'refresh range % .. % is empty', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL refresh.lock_merchant(p_merchant);
    CALL refresh.load_days(p_merchant, p_from, p_to);
    CALL refresh.rollup(p_merchant, p_from, p_to);
    DELETE FROM refresh.dirty_days WHERE merchant_id = p_merchant AND day BETWEEN p_from AND p_to;
    CALL refresh.mark_fresh(p_merchant);
END $$;

DROP PROCEDURE IF EXISTS refresh.refresh_dirty(bigint, int);
-- Refreshes every dirty day of one merchant (the River job's unit of work). Days marked dirty
-- while this runs wait on the deleted rows' locks and are inserted again after commit, so
-- they are picked up by the next job rather than lost.
CREATE PROCEDURE refresh.refresh_dirty(p_merchant bigint, INOUT p_days int DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_days  date[];
    v_range record;
BEGIN
    CALL refresh.lock_merchant(p_merchant);
    WITH d AS (DELETE FROM refresh.dirty_days WHERE merchant_id = p_merchant RETURNING day)
    SELECT array_agg(day ORDER BY day) INTO v_days FROM d;
    p_days := coalesce(cardinality(v_days), 0);
    IF p_days = 0 THEN
        RETURN;
    END IF;

    -- Contiguous runs of dirty days, each loaded with one set of remote queries.
    FOR v_range IN
        SELECT min(day) AS first_day, max(day) AS last_day
        FROM (SELECT day, day - (row_number() OVER (ORDER BY day))::int AS grp FROM unnest(v_days) AS day) AS x
        GROUP BY grp
    LOOP
        CALL refresh.load_days(p_merchant, v_range.first_day, v_range.last_day);
    END LOOP;
    CALL refresh.rollup(p_merchant, v_days[1], v_days[cardinality(v_days)]);
    CALL refresh.mark_fresh(p_merchant);
END $$;
