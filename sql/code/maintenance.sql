-- Maintenance: the refresh vacuums and analyzes what it writes even where autovacuum is off
-- or behind, and rebuilds the indexes a backfill leaves half empty. The caller
-- (internal/refresh, tidy) runs the commands: neither VACUUM nor REINDEX CONCURRENTLY can run
-- inside a function.

-- The tables the refresh maintains itself: the aggregate tables, the order snapshot, and the
-- queues (queue = true): the change queues and the pending changes, whose rows each come and
-- go within a few refreshes.
CREATE FUNCTION refresh.maintained_tables()
RETURNS TABLE (relid oid, queue boolean)
LANGUAGE sql STABLE AS $$
    SELECT c.oid, n.nspname = 'pipeline' AND c.relname IN ('dirty_days', 'dirty_orders')
                  OR n.nspname = 'agg' AND c.relname = 'key_pending'
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND (n.nspname = 'agg' OR n.nspname = 'pipeline' AND c.relname IN ('orders', 'dirty_days', 'dirty_orders'))
$$;

-- The refresh's tables due for a VACUUM or an ANALYZE, by autovacuum's rules applied at once:
--   * Aggregate tables and the order snapshot: analyzed once their rows changed by p_fraction
--     of the rows they had at their last analysis, vacuumed once rows inserted, updated or
--     deleted since their last vacuum reach 2 × p_fraction of the rest (autovacuum: 0.1 and
--     0.2). After each merchant or set of a refresh p_fraction is 1, at the end of a run 0.1,
--     NULL after a change scan (the queues only). Without the vacuum, the API's first read of
--     every page a backfill wrote sets its hint bits and writes it out again.
--   * The queues (dirty days, changed orders, pending changes): vacuumed once they hold more
--     than 1000 dead rows, never analyzed (their reads go by merchant through the primary key
--     whatever their size), their indexes never rebuilt. Every refresh deletes what it took
--     from the change queues, and the API's freshness reads them by merchant on every
--     request. Not relative to their live rows: a vacuum skips the pages the visibility map
--     calls all-visible and extrapolates the rest, so an empty queue after a backfill can be
--     counted at tens of thousands of live rows.
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
-- a refresh run): those of a table that holds 10k rows or more and has more than doubled
-- since the index was last built (pipeline.index_builds; never, for an index built by a
-- migration on an empty table). An index filled by inserting in the middle of its key space is
-- about half empty after a backfill. Also listed, as invalid: what a rebuild that failed left
-- behind (a REINDEX CONCURRENTLY cancelled midway leaves a "_ccnew" or "_ccold" index that
-- every insert still writes to), to be dropped.
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
    LEFT JOIN pipeline.index_builds AS b ON b.index_name = format('%I.%I', n.nspname, ic.relname)
    WHERE NOT m.queue
      AND CASE WHEN i.indisvalid THEN tc.reltuples >= 10000 AND tc.reltuples > 2 * coalesce(b.table_rows, 0)
               ELSE ic.relname ~ '_cc(new|old)[0-9]*$' END
    ORDER BY 1
$$;

-- Records that the caller rebuilt p_index while its table held p_table_rows rows.
CREATE PROCEDURE refresh.index_built(p_index text, p_table_rows bigint)
LANGUAGE sql AS $$
    INSERT INTO pipeline.index_builds (index_name, table_rows) VALUES (p_index, p_table_rows)
    ON CONFLICT (index_name) DO UPDATE SET table_rows = excluded.table_rows, built_at = excluded.built_at
$$;
