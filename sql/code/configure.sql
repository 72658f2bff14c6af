-- Settings that come from the environment, applied by `merchantagg migrate`.

-- Points the fdw server at the source database and maps the current user to its credentials.
CREATE PROCEDURE refresh.configure_source(p_host text, p_port text, p_dbname text, p_user text, p_password text)
LANGUAGE plpgsql AS $$
DECLARE
    v_opt record;
BEGIN
    FOR v_opt IN SELECT * FROM (VALUES ('host', p_host), ('port', p_port), ('dbname', p_dbname)) AS o(k, v) LOOP
        EXECUTE format('ALTER SERVER merchantagg_source OPTIONS (%s %I %L)',
            CASE WHEN EXISTS (
                SELECT FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o
                WHERE s.srvname = 'merchantagg_source' AND o.option_name = v_opt.k
            ) THEN 'SET' ELSE 'ADD' END, v_opt.k, v_opt.v);
    END LOOP;

    DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER merchantagg_source;
    IF coalesce(p_password, '') = '' THEN
        EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER merchantagg_source OPTIONS (user %L)', p_user);
    ELSE
        EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER merchantagg_source OPTIONS (user %L, password %L)',
            p_user, p_password);
    END IF;
END $$;

-- Sets the business time zone and the change scan's margins (sql/code/scan.sql). Aggregates
-- are keyed by business day, so a new time zone invalidates all of them: they are dropped and
-- the next refresh rebuilds everything.
CREATE PROCEDURE refresh.configure(p_timezone text, p_lookback interval, p_max_txn_age interval)
LANGUAGE plpgsql AS $$
DECLARE
    v_old text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = p_timezone) THEN
        RAISE EXCEPTION 'unknown time zone %', p_timezone USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT timezone INTO v_old FROM pipeline.settings FOR UPDATE;
    IF v_old IS DISTINCT FROM p_timezone THEN
        TRUNCATE agg.key_months, agg.key_pending, agg.customer_tiles, agg.cohort_counts, agg.freshness,
            pipeline.dirty_days, pipeline.dirty_orders, pipeline.orders;
        DROP TABLE IF EXISTS pipeline.v12_order_snapshot, pipeline.v12_line_snapshot;
        UPDATE pipeline.settings SET source_watermark = NULL;
        RAISE NOTICE 'time zone changed from % to %: aggregates cleared, run a full refresh', v_old, p_timezone;
    END IF;
    UPDATE pipeline.settings SET timezone = p_timezone, lookback = p_lookback, max_txn_age = p_max_txn_age;
END $$;
