-- Change capture: a watermark on orders.updated_at that only advances to the
-- source's horizon. Every change to an order, its items or its returns must bump
-- orders.updated_at with the writing transaction's clock (now(), or anything later: docs/metrics.md, The source data).
--
-- Why a horizon: updated_at = now() is the writing transaction's start, and it becomes
-- visible only at commit. A scan that advanced the watermark to the highest updated_at it saw
-- would skip forever a transaction that started earlier and commits later. So each scan first
-- reads, in its own transaction, the start of the oldest transaction open on the source (the
-- horizon), then, in a later transaction (a later snapshot), marks every change with
-- updated_at >= the previous watermark and sets the watermark to the horizon. A change with
-- updated_at < horizon came from a transaction that started before the horizon and was not
-- open when it was read, so it had committed and this scan saw it. Changes between the horizon
-- and the scan are seen again by the next scan: harmless, refreshes rewrite whole days.
--
-- Limits (README): a transaction open longer than settings.max_txn_age stops holding the
-- horizon back (reconciliation repairs what it changed); settings.lookback adds a margin for
-- writers that stamp updated_at with their own clock.

-- The merchant days waiting for a refresh: dirty days, and the days of changed orders.
CREATE VIEW refresh.pending AS
    SELECT merchant_id, day FROM pipeline.dirty_days
    UNION
    SELECT merchant_id, day FROM pipeline.dirty_orders;

-- The merchants waiting for a refresh: pending days, or a product list to read again.
CREATE VIEW refresh.pending_merchants AS
    SELECT merchant_id FROM refresh.pending
    UNION
    SELECT merchant_id FROM pipeline.dirty_catalogs;

-- Copies the shared reference data (cities with their names and regions, categories with
-- their names) and the merchants' names. The API reads names and regions from the reference
-- data, so a change there moves every merchant's data version (rare: a catalog edit); a
-- merchant's name is not a figure and moves none. Refreshes run it before loading days.
CREATE PROCEDURE refresh.load_reference()
LANGUAGE sql AS $$
    WITH cities AS (
        INSERT INTO ref.cities (id, name, region, lat, lon)
        SELECT id, name, region, lat, lon FROM src.cities
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, region = EXCLUDED.region, lat = EXCLUDED.lat, lon = EXCLUDED.lon
        WHERE (ref.cities.name, ref.cities.region, ref.cities.lat, ref.cities.lon)
              IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.region, EXCLUDED.lat, EXCLUDED.lon)
        RETURNING 1
    ), categories AS (
        -- A category's parent is kept as the facts were built with it: a move re-attributes
        -- the subtree's history (refresh.move_categories, by the reconciliation job). A new
        -- category under one without subcategories comes in at the top level: its parent would
        -- start to have subtree facts of its own products, which that move builds.
        INSERT INTO ref.categories (id, parent_id, name)
        SELECT s.id,
               CASE WHEN NOT EXISTS (SELECT FROM ref.categories r WHERE r.id = s.parent_id)
                         OR EXISTS (SELECT FROM ref.categories r WHERE r.parent_id = s.parent_id) THEN s.parent_id END,
               s.name
        FROM src.categories s
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
        WHERE ref.categories.name IS DISTINCT FROM EXCLUDED.name
        RETURNING 1
    )
    UPDATE agg.freshness SET data_version = data_version + 1
    WHERE EXISTS (SELECT FROM cities) OR EXISTS (SELECT FROM categories);
    INSERT INTO agg.merchants (merchant_id, name)
    SELECT id, name FROM src.merchants
    ON CONFLICT (merchant_id) DO UPDATE SET name = EXCLUDED.name WHERE agg.merchants.name IS DISTINCT FROM EXCLUDED.name;
    -- Keys of the delivery and payment breakdowns: the methods docs/metrics.md lists. Added
    -- here, in a short transaction of their own, so that parallel refreshes do not wait on
    -- each other's first insert of a label (they add any other value they meet themselves).
    INSERT INTO ref.labels (dimension, label)
    SELECT x.dimension, x.label
    FROM (SELECT 'delivery_type' AS dimension, unnest(ARRAY['courier', 'pickup_point', 'post', 'express']) AS label
          UNION ALL
          SELECT 'payment_method', unnest(ARRAY['card', 'sbp', 'cash_on_delivery', 'installments', 'wallet'])) AS x
    WHERE NOT EXISTS (SELECT FROM ref.labels AS l WHERE l.dimension = x.dimension AND l.label = x.label)
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
$$;

-- The start of the oldest client transaction open on the source database, bounded below by
-- now() - max_txn_age. Call it in its own transaction, before refresh.scan_changes().
CREATE FUNCTION refresh.source_horizon() RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    v_db     name;
    v_oldest timestamptz;
    v_hidden bigint;
    v_age    interval;
BEGIN
    SELECT o.option_value INTO v_db
    FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o
    WHERE s.srvname = 'merchantagg_source' AND o.option_name = 'dbname';
    SELECT max_txn_age INTO v_age FROM pipeline.settings;
    -- This query's own remote transaction is open too, so the minimum is never NULL.
    SELECT min(a.xact_start), count(*) FILTER (WHERE a.query = '<insufficient privilege>')
    INTO v_oldest, v_hidden
    FROM src.activity a
    WHERE a.datname = v_db AND a.backend_type = 'client backend';
    IF v_hidden > 0 THEN
        RAISE WARNING 'source user cannot see % sessions (grant it pg_read_all_stats): change scan looks back %', v_hidden, v_age;
        RETURN now() - v_age;
    END IF;
    RETURN greatest(coalesce(v_oldest, now()), now() - v_age);
END $$;

-- Marks what changed since the watermark (the first time every merchant day, then the changed
-- orders) and moves the watermark to p_horizon, which refresh.source_horizon() returned in an
-- earlier transaction. Returns how many days and orders it marked.
CREATE FUNCTION refresh.scan_changes(p_horizon timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_set    pipeline.settings;
    v_since  timestamptz;
    v_origin timestamptz;
    v_marked bigint;
BEGIN
    IF p_horizon IS NULL THEN
        RAISE EXCEPTION 'scan_changes needs the horizon from refresh.source_horizon()' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Row lock: concurrent scans run one after another.
    SELECT * INTO v_set FROM pipeline.settings FOR UPDATE;
    CALL refresh.load_reference();
    v_since := coalesce(v_set.source_watermark - v_set.lookback, '-infinity');
    v_origin := '2000-01-01'::timestamp AT TIME ZONE v_set.timezone;

    IF v_set.source_watermark IS NULL THEN
        -- First scan (nothing refreshed yet): every merchant day with orders, whole.
        -- A bucket is 24 h from a local midnight; around a DST change it may straddle two local
        -- days, so both ends' days are marked.
        WITH c AS MATERIALIZED (
            SELECT * FROM refresh.source_changes(v_since, v_origin)
        ), d AS (
            SELECT c.merchant_id, (c.bucket AT TIME ZONE v_set.timezone)::date AS day FROM c
            UNION
            SELECT c.merchant_id, ((c.bucket + interval '1 day' - interval '1 microsecond') AT TIME ZONE v_set.timezone)::date FROM c
        ), ins AS (
            INSERT INTO pipeline.dirty_days (merchant_id, day)
            SELECT merchant_id, day FROM d
            ORDER BY 1, 2 -- key order, like reconciliation, so the two never deadlock
            ON CONFLICT DO NOTHING
            RETURNING merchant_id
        ), lists AS (
            -- Their product lists are compared (read whole) by their first refresh.
            INSERT INTO pipeline.dirty_catalogs (merchant_id)
            SELECT DISTINCT merchant_id FROM ins ORDER BY 1
            ON CONFLICT DO NOTHING
        )
        SELECT count(*) INTO v_marked FROM ins;
    ELSE
        -- Later scans mark the changed orders: each is read again by id and netted against
        -- its snapshot, so the cost follows the changed orders, not their days.
        WITH orders AS (
            INSERT INTO pipeline.dirty_orders AS d (merchant_id, order_id, day)
            SELECT c.merchant_id, c.order_id, (c.created_at AT TIME ZONE v_set.timezone)::date
            FROM refresh.source_changed_orders(v_since) AS c
            ORDER BY 1, 2
            ON CONFLICT (merchant_id, order_id) DO UPDATE SET day = EXCLUDED.day
            RETURNING 1
        )
        SELECT count(*) INTO v_marked FROM orders;
        v_marked := v_marked + refresh.mark_stale_catalogs();
    END IF;

    UPDATE pipeline.settings SET source_watermark = p_horizon, last_scan_at = now();
    RETURN v_marked;
END $$;

-- Merchants whose latest refresh job is discarded (see refresh.merchants_to_enqueue).
CREATE FUNCTION refresh.parked_merchants() RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT m FROM (
        SELECT DISTINCT ON ((args->>'merchant_id')::bigint) (args->>'merchant_id')::bigint AS m, state
        FROM river_job
        WHERE kind = 'refresh_merchant'
        ORDER BY (args->>'merchant_id')::bigint, id DESC
    ) latest
    WHERE state = 'discarded'
$$;

-- The dirty merchants the periodic jobs should enqueue: all but the parked ones, whose latest
-- refresh job was discarded (it failed every attempt). Enqueueing those again would fail the
-- same way in a loop; they wait for an operator (River UI retry, POST /v1/admin/refresh) or
-- for River's cleaner to remove the discarded job (7 days). River's tables must exist: migrate
-- creates them before this package.
CREATE FUNCTION refresh.merchants_to_enqueue() RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT d.merchant_id
    FROM refresh.pending_merchants d
    WHERE NOT EXISTS (SELECT FROM refresh.parked_merchants() p WHERE p = d.merchant_id)
    ORDER BY 1
$$;

-- The business days spanned by one merchant's orders in the source; NULLs when it has none.
CREATE FUNCTION refresh.merchant_days(p_merchant bigint, OUT first_day date, OUT last_day date)
LANGUAGE sql STABLE AS $$
    SELECT (s.first_at AT TIME ZONE t.timezone)::date, (s.last_at AT TIME ZONE t.timezone)::date
    FROM refresh.source_merchant_span(p_merchant) AS s, pipeline.settings AS t
$$;

CREATE FUNCTION refresh.source_merchants() RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT id FROM src.merchants ORDER BY id
$$;

-- The dirty merchants grouped for `merchantagg refresh`: merchants whose dirty days lie within
-- a month of each other are dealt into p_sets sets, each refreshed in one transaction with
-- shared remote queries (refresh.refresh_dirty_set); a merchant with a longer span (a
-- backfill) is a set of its own, so its long rollups do not widen the others'. The sets run
-- at once, so the refresh takes as long as the heaviest: each merchant, heaviest first, goes
-- to the set with the least work so far. A merchant's work is its changed orders and dirty
-- days, plus 3 for what every merchant costs (its own rows of every dimension and customer
-- tiles): a largest merchant with a fifth of the changes was a quarter of the time, and a
-- small merchant's change about twice a large one's.
CREATE FUNCTION refresh.dirty_sets(p_sets int) RETURNS TABLE (merchants bigint[])
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE m AS (
        -- One pass over the queues, not a join of them: their row counts are often stale (an
        -- emptied queue's pages make tens of thousands of rows), and a join sized by them cost
        -- more than the refresh of a few changes.
        SELECT merchant_id, coalesce(max(day) - min(day) <= 31, true) AS narrow, 3 + count(day) + sum(changed) AS work
        FROM (SELECT merchant_id, day, 0 AS changed FROM refresh.pending
              UNION ALL
              SELECT merchant_id, NULL, 1 FROM pipeline.dirty_orders
              UNION ALL
              SELECT merchant_id, NULL, 0 FROM pipeline.dirty_catalogs) AS x
        GROUP BY merchant_id
    ), q AS (
        SELECT array_agg(merchant_id ORDER BY work DESC, merchant_id) AS ids, array_agg(work ORDER BY work DESC, merchant_id) AS work
        FROM m WHERE narrow
    ), deal (n, set_no, loads) AS (
        -- The n-th heaviest merchant to the least loaded set (the first of equals).
        SELECT 0, NULL::int, array_fill(0::bigint, ARRAY[greatest(p_sets, 1)])
        UNION ALL
        SELECT d.n + 1, s.i, d.loads[:s.i - 1] || (d.loads[s.i] + q.work[d.n + 1]) || d.loads[s.i + 1:]
        FROM deal d CROSS JOIN q
        CROSS JOIN LATERAL (SELECT i FROM generate_subscripts(d.loads, 1) AS i ORDER BY d.loads[i], i LIMIT 1) AS s
        WHERE d.n < cardinality(q.ids)
    ), s AS (
        SELECT q.ids[d.n] AS merchant_id, true AS narrow, d.set_no::bigint AS set_no, q.work[d.n] AS work
        FROM deal d CROSS JOIN q WHERE d.n > 0
        UNION ALL
        SELECT merchant_id, false, merchant_id, work FROM m WHERE NOT narrow
    )
    SELECT array_agg(merchant_id ORDER BY merchant_id) FROM s
    GROUP BY narrow, set_no
    ORDER BY narrow, sum(work) DESC
$$;
