-- Entry points: what internal/refresh calls, each in one transaction per unit of work (a
-- merchant, or a set of merchants). A failure anywhere rolls back to the previous
-- aggregates, and running a unit again rewrites the same rows.

-- The refresh's transaction compresses the whole pages it logs (wal_compression = lz4) unless
-- the server already does, or its role may not set it (superuser, or GRANT SET ON PARAMETER
-- wal_compression), or the server was built without lz4. The exception block (a
-- subtransaction) is entered only while the setting is still off.
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

-- One refresh of a merchant at a time, whichever worker or CLI runs it; held to commit. Every
-- unit of work starts here, so it also sets up the transaction.
CREATE PROCEDURE refresh.lock_merchant(p_merchant bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('merchantagg.refresh', p_merchant));
    CALL refresh.compress_wal();
END $$;

-- Records a successful refresh of a set of merchants. A merchant's data covers the global
-- watermark only when no dirty day or changed order of it is left (a chunked refresh leaves
-- some for the next transaction, and a concurrent scan may have marked more): otherwise the
-- watermark it covered is kept. One statement, so the watermark and the pending work are read
-- from the same snapshot. The data version (the API's ETags) moves for the merchants whose
-- data changed (changed_merchants): a refresh that nets to nothing keeps it.
CREATE PROCEDURE refresh.mark_fresh(p_merchants bigint[])
LANGUAGE plpgsql AS $$ -- plpgsql: it reads a scratch table, which a SQL body would need at creation
BEGIN
    INSERT INTO agg.freshness (merchant_id, refreshed_at, source_watermark, data_version)
    SELECT m.id, now(),
           CASE WHEN EXISTS (SELECT FROM refresh.pending_merchants AS d WHERE d.merchant_id = m.id)
                THEN (SELECT f.source_watermark FROM agg.freshness f WHERE f.merchant_id = m.id)
                ELSE s.source_watermark END,
           (m.id IN (SELECT merchant_id FROM pg_temp.changed_merchants))::int
    FROM pipeline.settings s, (SELECT DISTINCT id FROM unnest(p_merchants) AS id ORDER BY 1) AS m
    ON CONFLICT (merchant_id) DO UPDATE
        SET refreshed_at = EXCLUDED.refreshed_at, source_watermark = EXCLUDED.source_watermark,
            data_version = agg.freshness.data_version + EXCLUDED.data_version;
END $$;

-- Marks a merchant's business days [p_from, p_to] dirty, for an operator's backfill through the
-- API (POST /v1/admin/refresh): the River job then refreshes them like any change.
CREATE PROCEDURE refresh.mark_days(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_from > p_to THEN
        RAISE EXCEPTION 'refresh range % .. % is empty', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pipeline.dirty_days (merchant_id, day)
    SELECT p_merchant, g::date FROM generate_series(p_from, p_to, interval '1 day') AS g
    ORDER BY 2 -- key order, like the change scan, so the two never deadlock
    ON CONFLICT DO NOTHING;
END $$;

-- Runs of days, each read with one set of remote queries. Days less than a month apart share a
-- run: reading the clean days between them again is harmless (they net to nothing), and far
-- cheaper than another round of remote queries (a small merchant's orders fall on scattered
-- days).
CREATE FUNCTION refresh.day_runs(p_days date[]) RETURNS TABLE (first_day date, last_day date)
LANGUAGE sql IMMUTABLE AS $$
    SELECT min(day), max(day)
    FROM (SELECT day, count(*) FILTER (WHERE gap > 31) OVER (ORDER BY day) AS grp
          FROM (SELECT day, day - lag(day) OVER (ORDER BY day) AS gap FROM unnest(p_days) AS day) AS g) AS x
    GROUP BY grp
    ORDER BY 1
$$;

-- Recomputes what was read (read_days, then read_orders) for the
-- merchants p_merchants: the catalog copy (the product lists of p_catalogs compared with the
-- source's), the facts of every staged order netted into agg.key_months, the customer events
-- of every customer whose orders changed, the snapshot, and the merchants' freshness.
CREATE PROCEDURE refresh.net_staged(p_merchants bigint[], p_catalogs bigint[])
LANGUAGE plpgsql AS $$
BEGIN
    CALL refresh.stage_orders(p_merchants);
    CALL refresh.read_catalog(p_catalogs);
    CALL refresh.add_catalog_orders();
    CALL refresh.add_facts('old');
    CALL refresh.add_catalog_facts(-1);
    CALL refresh.add_customer_events(-1);
    CALL refresh.apply_catalog();
    CALL refresh.add_facts('new');
    CALL refresh.add_catalog_facts(1);
    CALL refresh.replace_snapshot();
    CALL refresh.add_customer_events(1);
    CALL refresh.defer_key_deltas();
    CALL refresh.apply_customer_deltas();
    CALL refresh.mark_fresh(p_merchants);
END $$;

-- Refreshes one merchant over an explicit range of business days (CLI backfills, repairs).
-- Days left dirty inside the range are done by this too.
CREATE PROCEDURE refresh.refresh_days(p_merchant bigint, p_from date, p_to date)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_from > p_to THEN
        RAISE EXCEPTION 'refresh range % .. % is empty', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL refresh.lock_merchant(p_merchant);
    CALL refresh.scratch();
    DELETE FROM pipeline.dirty_days WHERE merchant_id = p_merchant AND day BETWEEN p_from AND p_to;
    CALL refresh.read_days(ARRAY[p_merchant], p_from, p_to);
    CALL refresh.read_orders('{}');
    CALL refresh.net_staged(ARRAY[p_merchant], ARRAY[p_merchant]);
END $$;

-- Refreshes the dirty days and changed orders of one merchant (the River job's unit of
-- work): all of them, or, when p_max_days is set, the days in the first p_max_days calendar
-- days from the oldest dirty one (and every changed order), so a merchant too big for one
-- statement timeout is done in smaller transactions. Returns how many days it refreshed (the
-- changed orders' days among them) and how many dirty days are left. Days marked dirty while
-- this runs wait on the deleted rows' locks and are inserted again after commit, so they are
-- picked up by the next run rather than lost.
CREATE PROCEDURE refresh.refresh_dirty(p_merchant bigint, p_max_days int, INOUT p_days int DEFAULT 0, INOUT p_left int DEFAULT 0)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_max_days < 1 THEN
        RAISE EXCEPTION 'p_max_days must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL refresh.lock_merchant(p_merchant);
    CALL refresh.refresh_pending(ARRAY[p_merchant], p_max_days, p_days);
    SELECT count(*) INTO p_left FROM pipeline.dirty_days WHERE merchant_id = p_merchant;
END $$;

-- Refreshes every dirty day and changed order of a set of merchants in one transaction
-- (`merchantagg refresh` after a change scan: many merchants with a few recent changes each):
-- each run of days is read for all the merchants dirty in it with one set of remote queries,
-- and the changed orders of all of them with another. Merchants are locked in id order, so
-- two sets (or a set and a River job) never deadlock.
CREATE PROCEDURE refresh.refresh_dirty_set(p_merchants bigint[], INOUT p_days int DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_merchant bigint;
BEGIN
    FOR v_merchant IN SELECT DISTINCT id FROM unnest(p_merchants) AS id ORDER BY 1 LOOP
        CALL refresh.lock_merchant(v_merchant);
    END LOOP;
    CALL refresh.refresh_pending(p_merchants, NULL, p_days);
END $$;

-- The work of refresh_dirty and refresh_dirty_set, for locked merchants: takes their dirty days
-- (within p_max_days of the oldest, when set), changed orders and product lists off the queues,
-- reads them and nets them. Returns how many merchant days it refreshed.
CREATE PROCEDURE refresh.refresh_pending(p_merchants bigint[], p_max_days int, INOUT p_days int)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids   bigint[];
    v_days  date[];
    v_order bigint[];
    v_range record;
    v_run   bigint[];
    v_lists bigint[];
BEGIN
    CALL refresh.scratch();
    -- The product lists to compare: those the change scan found changed (comparing every
    -- merchant's again here would read the whole catalog on both sides once more).
    WITH d AS (DELETE FROM pipeline.dirty_catalogs WHERE merchant_id = ANY (p_merchants) RETURNING merchant_id)
    SELECT coalesce(array_agg(merchant_id), '{}') INTO v_lists FROM d;
    WITH d AS (
        DELETE FROM pipeline.dirty_days x
        WHERE x.merchant_id = ANY (p_merchants)
          AND (p_max_days IS NULL
               OR x.day < (SELECT min(y.day) FROM pipeline.dirty_days y WHERE y.merchant_id = x.merchant_id) + p_max_days)
        RETURNING x.merchant_id, x.day
    )
    SELECT array_agg(merchant_id ORDER BY day), array_agg(day ORDER BY day) INTO v_ids, v_days FROM d;
    WITH d AS (DELETE FROM pipeline.dirty_orders WHERE merchant_id = ANY (p_merchants) RETURNING merchant_id, order_id, day)
    SELECT array_agg(order_id), coalesce(cardinality(v_days), 0) + count(DISTINCT (merchant_id, day))
    INTO v_order, p_days FROM d;
    FOR v_range IN SELECT * FROM refresh.day_runs(v_days) LOOP
        v_run := ARRAY(SELECT DISTINCT id FROM unnest(v_ids, v_days) AS x (id, day)
                       WHERE day BETWEEN v_range.first_day AND v_range.last_day);
        CALL refresh.read_days(v_run, v_range.first_day, v_range.last_day);
    END LOOP;
    CALL refresh.read_orders(coalesce(v_order, '{}'));
    IF p_days > 0 OR cardinality(v_lists) > 0 THEN -- a product list alone: its moved products' orders are netted again
        CALL refresh.net_staged(p_merchants, v_lists);
    END IF;
END $$;
