-- Freshness: what the API tells a merchant about the age of its data, and what
-- /metrics tells operators about the pipeline.

-- The freshness of the merchant named by app.merchant_id (the API's request setting), so the
-- API role learns nothing about other merchants. SECURITY DEFINER: it reads the pipeline's
-- state (schema pipeline), which the API role cannot. covered_watermark is the source instant
-- up to which every change is in the merchant's aggregates: the global watermark when none of
-- its days (refresh.pending) nor its product list waits for a refresh, else what its last
-- complete refresh covered.
-- PL/pgSQL, not SQL: every API request calls it, and a SQL function that cannot be inlined
-- (SECURITY DEFINER) has its body parsed and planned again at every call. PL/pgSQL keeps the
-- plan for the session (the query has no parameters, so the plan cache reuses one plan).
CREATE FUNCTION api.merchant_freshness()
RETURNS TABLE (refreshed_at timestamptz, covered_watermark timestamptz, last_scan_at timestamptz, pending_days bigint,
               data_version bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH m AS (SELECT NULLIF(current_setting('app.merchant_id', true), '')::bigint AS id),
    -- The merchant as an expression, not a join with m: the filter then reaches both tables of
    -- refresh.pending and their indexes (joined, every request read all of dirty_days, which a
    -- backfill leaves hundreds of thousands of dead rows long).
    p AS (SELECT count(*) AS n,
                 EXISTS (SELECT FROM pipeline.dirty_catalogs c
                         WHERE c.merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint) AS list
          FROM refresh.pending d
          WHERE d.merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint)
    SELECT f.refreshed_at,
           CASE WHEN f.merchant_id IS NULL THEN NULL
                WHEN p.n = 0 AND NOT p.list THEN greatest(s.source_watermark, f.source_watermark)
                ELSE f.source_watermark END,
           s.last_scan_at, p.n, coalesce(f.data_version, 0)
    FROM m CROSS JOIN p CROSS JOIN pipeline.settings s
    LEFT JOIN agg.freshness f ON f.merchant_id = m.id
    WHERE m.id IS NOT NULL;
END $$;
REVOKE ALL ON FUNCTION api.merchant_freshness() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.merchant_freshness() TO merchantagg_api;

-- One row for the /metrics gauges: how far the change scan's watermark is behind, how much
-- work waits, how many merchants wait for an operator, the stalest merchant, and the last
-- reconciliation.
CREATE FUNCTION refresh.pipeline_status()
RETURNS TABLE (watermark_lag_seconds double precision, dirty_days bigint, dirty_merchants bigint,
               parked_merchants bigint, oldest_refresh_seconds double precision, last_reconcile_drift bigint)
LANGUAGE sql STABLE AS $$
    SELECT extract(epoch FROM now() - s.source_watermark)::float8,
           (SELECT count(*) FROM refresh.pending),
           (SELECT count(DISTINCT merchant_id) FROM refresh.pending),
           (SELECT count(*) FROM refresh.parked_merchants()),
           (SELECT extract(epoch FROM now() - min(refreshed_at))::float8 FROM agg.freshness),
           s.last_reconcile_drift
    FROM pipeline.settings s
$$;

-- A page of every merchant (id and name), for an admin's dashboard: the API role sees one
-- merchant's row of agg.merchants only, and the handler lets admins alone call this.
CREATE FUNCTION api.merchant_list(p_limit bigint, p_offset bigint)
RETURNS TABLE (total bigint, id bigint, name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (SELECT count(*) FROM agg.merchants), m.merchant_id, m.name
    FROM agg.merchants m ORDER BY m.merchant_id LIMIT p_limit OFFSET p_offset
$$;
REVOKE ALL ON FUNCTION api.merchant_list(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.merchant_list(bigint, bigint) TO merchantagg_api;
