-- Change capture, version 1: a watermark on orders.updated_at. Every change to an order, its
-- items or its returns must bump orders.updated_at (SPEC §2). The scan looks back
-- refresh.settings.lookback behind the watermark, so an order whose transaction committed up
-- to that long after its updated_at is still seen; refreshes rewrite whole days, so seeing a
-- change twice is harmless.

DROP PROCEDURE IF EXISTS refresh.load_reference();
-- Copies the shared reference data (cities with their regions, categories). Region
-- breakdowns are computed from it, so refreshes run it before loading days.
CREATE PROCEDURE refresh.load_reference()
LANGUAGE sql AS $$
    INSERT INTO ref.cities (id, name, region, lat, lon)
    SELECT id, name, region, lat, lon FROM src.cities
    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, region = EXCLUDED.region, lat = EXCLUDED.lat, lon = EXCLUDED.lon
    WHERE (ref.cities.name, ref.cities.region, ref.cities.lat, ref.cities.lon)
          IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.region, EXCLUDED.lat, EXCLUDED.lon);
    INSERT INTO ref.categories (id, parent_id, name)
    SELECT id, parent_id, name FROM src.categories
    ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, name = EXCLUDED.name
    WHERE (ref.categories.parent_id, ref.categories.name) IS DISTINCT FROM (EXCLUDED.parent_id, EXCLUDED.name);
$$;

DROP FUNCTION IF EXISTS refresh.scan_changes();
-- Marks the (merchant, business day) pairs with changed orders dirty and advances the
-- watermark. Returns how many pairs it newly marked.
CREATE FUNCTION refresh.scan_changes() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_set    refresh.settings;
    v_since  timestamptz;
    v_origin timestamptz;
    v_max    timestamptz;
    v_marked bigint;
BEGIN
    -- Row lock: concurrent scans run one after another.
    SELECT * INTO v_set FROM refresh.settings FOR UPDATE;
    CALL refresh.load_reference();
    v_since := coalesce(v_set.source_watermark - v_set.lookback, '-infinity');
    v_origin := '2000-01-01'::timestamp AT TIME ZONE v_set.timezone;

    -- A bucket is 24 h from a local midnight; around a DST change it may straddle two local
    -- days, so both ends' days are marked.
    WITH c AS MATERIALIZED (
        SELECT * FROM refresh.source_changes(v_since, v_origin)
    ), d AS (
        SELECT c.merchant_id, (c.bucket AT TIME ZONE v_set.timezone)::date AS day FROM c
        UNION
        SELECT c.merchant_id, ((c.bucket + interval '1 day' - interval '1 microsecond') AT TIME ZONE v_set.timezone)::date FROM c
    ), ins AS (
        INSERT INTO refresh.dirty_days (merchant_id, day)
        SELECT merchant_id, day FROM d
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins), (SELECT max(max_updated_at) FROM c) INTO v_marked, v_max;

    -- Never past this server's clock: a source row stamped in the future (clock skew, bad
    -- data) would otherwise push the watermark beyond every change still to come.
    UPDATE refresh.settings
    SET source_watermark = greatest(source_watermark, least(v_max, now())), last_scan_at = now();
    RETURN v_marked;
END $$;

DROP FUNCTION IF EXISTS refresh.dirty_merchants();
CREATE FUNCTION refresh.dirty_merchants() RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT merchant_id FROM refresh.dirty_days ORDER BY 1
$$;

DROP FUNCTION IF EXISTS refresh.merchant_days(bigint);
-- The business days spanned by one merchant's orders in the source; NULLs when it has none.
CREATE FUNCTION refresh.merchant_days(p_merchant bigint, OUT first_day date, OUT last_day date)
LANGUAGE sql STABLE AS $$
    SELECT (s.first_at AT TIME ZONE t.timezone)::date, (s.last_at AT TIME ZONE t.timezone)::date
    FROM refresh.source_merchant_span(p_merchant) AS s, refresh.settings AS t
$$;

DROP FUNCTION IF EXISTS refresh.source_merchants();
CREATE FUNCTION refresh.source_merchants() RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT id FROM src.merchants ORDER BY id
$$;
