-- Rollups: agg.key_months, the running sums per key and month (migration 013), moved by the
-- net daily facts in key_deltas. A change on a day rewrites its key's row of that month and
-- the totals before the month (entries of day 0) of the key's later months; nothing else.

-- The dimension codes of agg.key_months.
CREATE FUNCTION refresh.dims() RETURNS "char"[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT '{t,p,c,g,y,d,m}'::"char"[] $$;

-- The number of figures per entry of a dimension's rows.
CREATE FUNCTION refresh.width(p_dim "char") RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_dim IN ('p', 'c', 'g') THEN 6 ELSE 7 END
$$;

-- A row's entries as rows: slot, day of month (0: the total before the month) and figures.
CREATE FUNCTION refresh.key_entries(p_ek smallint[], p_v bigint[])
RETURNS TABLE (slot int, dom int, w1 bigint, w2 bigint, w3 bigint, w4 bigint, w5 bigint, w6 bigint, w7 bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_ek[i] / 32, p_ek[i] % 32, p_v[i][1], p_v[i][2], p_v[i][3], p_v[i][4], p_v[i][5], p_v[i][6],
           coalesce(p_v[i][7], 0)
    FROM generate_subscripts(p_ek, 1) AS i
$$;

-- Gives every key of the merchants in key_deltas a row up to the month of their latest fact
-- (a key's row of a month it sold nothing in holds its totals before the month), so that the
-- keys whose facts change below have a row in every month they touch.
CREATE PROCEDURE refresh.extend_key_months()
LANGUAGE plpgsql AS $$
BEGIN
    WITH m AS (
        SELECT d.merchant_id, date_trunc('month', max(d.day))::date AS want,
               (SELECT max(b.month) FROM agg.key_months b WHERE b.merchant_id = d.merchant_id AND b.dim = 't') AS have
        FROM pg_temp.key_deltas d GROUP BY d.merchant_id
    ), last AS (
        SELECT b.merchant_id, b.dim, b.key, m.have, m.want, b.ek, b.v
        FROM m
        -- A lookup per merchant and dimension (OFFSET 0: not a join that scans the table).
        CROSS JOIN LATERAL (SELECT * FROM agg.key_months b
                            WHERE b.merchant_id = m.merchant_id AND b.dim = ANY (refresh.dims()) AND b.month = m.have
                            OFFSET 0) AS b
        WHERE m.want > m.have
    ), carried AS (
        -- Each slot's last entry becomes its total before the following months.
        SELECT l.merchant_id, l.dim, l.key, l.have, l.want,
               array_agg((e.slot * 32)::smallint ORDER BY e.slot) AS ek,
               array_agg((ARRAY[e.w1, e.w2, e.w3, e.w4, e.w5, e.w6, e.w7])[1:refresh.width(l.dim)] ORDER BY e.slot) AS v
        FROM last l
        CROSS JOIN LATERAL (SELECT DISTINCT ON (x.slot) x.* FROM refresh.key_entries(l.ek, l.v) x
                            ORDER BY x.slot, x.dom DESC) AS e
        GROUP BY l.merchant_id, l.dim, l.key, l.have, l.want
    )
    INSERT INTO agg.key_months (merchant_id, key, month, dim, ek, v)
    SELECT c.merchant_id, c.key, g::date, c.dim, c.ek, c.v
    FROM carried c CROSS JOIN LATERAL generate_series(c.have + interval '1 month', c.want, interval '1 month') AS g
    ORDER BY 1, 4, 3, 2;
END $$;

-- Applies key_deltas to agg.key_months: for every key with a change, its daily facts from the
-- month of its first change on (read back from its rows), plus the changes, summed again into
-- running sums and written back month by month; rows that come out the same are not written.
-- A key left with no fact at all loses its rows.
CREATE PROCEDURE refresh.apply_key_deltas()
LANGUAGE plpgsql
SET enable_sort = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_fresh     boolean;
    v_cells     bigint;
    v_merchants bigint[];
    v_dims      "char"[];
    v_months    date[];
    v_keys      bigint[];
BEGIN
    CALL refresh.extend_key_months();
    -- key_net: key_deltas netted (changes that cancel out are dropped); key_rows: the rows
    -- to write. Both private to this procedure.
    CREATE TEMP TABLE IF NOT EXISTS key_net (LIKE pg_temp.key_deltas) ON COMMIT DELETE ROWS;
    -- key_rows keeps its arrays as agg.key_months does (uncompressed below 8160 bytes): a
    -- value compressed here would be written compressed there, and read back by decompressing
    -- it at every subscript.
    IF to_regclass('pg_temp.key_rows') IS NULL THEN
        CREATE TEMP TABLE key_rows (
            merchant_id bigint, key bigint, month date, dim "char", ek smallint[], v bigint[]
        ) WITH (toast_tuple_target = 8160) ON COMMIT DELETE ROWS;
        ALTER TABLE pg_temp.key_rows ALTER COLUMN ek SET STORAGE MAIN, ALTER COLUMN v SET STORAGE MAIN;
    END IF;
    DELETE FROM pg_temp.key_net;
    DELETE FROM pg_temp.key_rows;
    INSERT INTO pg_temp.key_net
    SELECT merchant_id, dim, key, slot, day, agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4), agg.isum(w5),
           agg.isum(w6), agg.isum(w7)
    FROM pg_temp.key_deltas
    GROUP BY merchant_id, dim, key, slot, day
    HAVING (agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4), agg.isum(w5), agg.isum(w6), agg.isum(w7))
           <> (0, 0, 0, 0, 0, 0, 0);
    DELETE FROM pg_temp.key_deltas;
    INSERT INTO pg_temp.changed_merchants SELECT DISTINCT merchant_id FROM pg_temp.key_net ON CONFLICT DO NOTHING;
    -- Nothing stored yet for these merchants (a backfill): no rows to read back or compare.
    v_fresh := NOT EXISTS (SELECT FROM (SELECT DISTINCT merchant_id FROM pg_temp.key_net) AS m
                           WHERE EXISTS (SELECT FROM agg.key_months b WHERE b.merchant_id = m.merchant_id AND b.dim = 't'));
    IF NOT v_fresh THEN
        -- The planner sizes the hash tables below by its estimate (every key a thousand months
        -- of a thousand entries), up to work_mem, and allocates them whole: size work_mem by the
        -- key months read back instead (~50 entries of ~150 bytes each), so that a small
        -- refresh does not spend most of its time allocating memory.
        WITH m AS (
            SELECT merchant_id, (SELECT max(b.month) FROM agg.key_months b WHERE b.merchant_id = n.merchant_id AND b.dim = 't') AS last
            FROM (SELECT DISTINCT merchant_id FROM pg_temp.key_net) AS n
        ), k AS (
            SELECT merchant_id, min(day) AS d0 FROM pg_temp.key_net GROUP BY merchant_id, dim, key
        )
        SELECT coalesce(sum(greatest(1, extract(year FROM age(m.last, date_trunc('month', k.d0)::date)) * 12
                                        + extract(month FROM age(m.last, date_trunc('month', k.d0)::date)) + 1)), 0)::bigint
        INTO v_cells
        FROM k JOIN m USING (merchant_id);
        PERFORM set_config('work_mem', least(greatest(v_cells * 16, 8192), 262144) || 'kB', true);
    END IF;
    WITH d AS (
        SELECT * FROM pg_temp.key_net
    ), m AS (
        -- Each merchant's last month: every key has a row up to it (extend_key_months).
        SELECT d.merchant_id,
               greatest((SELECT max(b.month) FROM agg.key_months b WHERE b.merchant_id = d.merchant_id AND b.dim = 't'),
                        date_trunc('month', max(d.day))::date) AS last
        FROM d GROUP BY d.merchant_id
    ), k AS (
        SELECT d.merchant_id, d.dim, d.key, date_trunc('month', min(d.day))::date AS m0, min(m.last) AS last
        FROM d JOIN m USING (merchant_id) GROUP BY d.merchant_id, d.dim, d.key
    ), stored AS (
        -- The key's rows from m0 on, as entries.
        SELECT k.merchant_id, k.dim, k.key, b.month, e.*
        FROM k
        CROSS JOIN LATERAL generate_series(k.m0, k.last, interval '1 month') AS g
        -- One primary key lookup per key and month (OFFSET 0: not a join that scans the table).
        CROSS JOIN LATERAL (SELECT b.month, b.ek, b.v FROM agg.key_months b
                            WHERE b.merchant_id = k.merchant_id AND b.dim = k.dim AND b.month = g::date AND b.key = k.key
                            OFFSET 0) AS b
        CROSS JOIN LATERAL refresh.key_entries(b.ek, b.v) AS e
        WHERE NOT v_fresh
    ), facts AS (
        -- Stored daily facts (each entry less the one before it in its slot) and the changes.
        SELECT merchant_id, dim, key, slot, (month + dom - 1) AS day,
               w1 - coalesce(lag(w1) OVER w, 0) AS w1, w2 - coalesce(lag(w2) OVER w, 0) AS w2,
               w3 - coalesce(lag(w3) OVER w, 0) AS w3, w4 - coalesce(lag(w4) OVER w, 0) AS w4,
               w5 - coalesce(lag(w5) OVER w, 0) AS w5, w6 - coalesce(lag(w6) OVER w, 0) AS w6,
               w7 - coalesce(lag(w7) OVER w, 0) AS w7, dom
        FROM stored
        WINDOW w AS (PARTITION BY merchant_id, dim, key, slot ORDER BY month, dom)
    ), base AS (
        -- Each slot's total before m0 (the m0 row's day-0 entries).
        SELECT s.merchant_id, s.dim, s.key, s.slot, s.w1, s.w2, s.w3, s.w4, s.w5, s.w6, s.w7
        FROM stored s JOIN k USING (merchant_id, dim, key) WHERE s.month = k.m0 AND s.dom = 0
    ), daily AS (
        SELECT merchant_id, dim, key, slot, day, agg.isum(w1) AS w1, agg.isum(w2) AS w2, agg.isum(w3) AS w3,
               agg.isum(w4) AS w4, agg.isum(w5) AS w5, agg.isum(w6) AS w6, agg.isum(w7) AS w7
        FROM (SELECT merchant_id, dim, key, slot, day, w1, w2, w3, w4, w5, w6, w7 FROM facts WHERE dom > 0
              UNION ALL
              SELECT merchant_id, dim, key, slot, day, w1, w2, w3, w4, w5, w6, w7 FROM d) AS x
        GROUP BY merchant_id, dim, key, slot, day
        HAVING agg.isum(w1) <> 0
    ), span AS (
        -- The months to write: from m0 when the key had facts before it, else from its first.
        SELECT k.merchant_id, k.dim, k.key, CASE WHEN b.key IS NOT NULL THEN k.m0 ELSE x.first END AS first, k.last
        FROM k
        LEFT JOIN (SELECT DISTINCT merchant_id, dim, key FROM base) AS b USING (merchant_id, dim, key)
        LEFT JOIN (SELECT merchant_id, dim, key, date_trunc('month', min(day))::date AS first FROM daily
                   GROUP BY 1, 2, 3) AS x USING (merchant_id, dim, key)
    ), seq AS (
        -- Every slot's facts, a marker at the start of every month (day 0), and the totals
        -- before m0, summed in order: at a marker, the running sum is the total before its month.
        SELECT merchant_id, dim, key, slot, date_trunc('month', day)::date AS month, extract(day FROM day)::int AS dom,
               w1, w2, w3, w4, w5, w6, w7
        FROM daily
        UNION ALL
        SELECT s.merchant_id, s.dim, s.key, sl.slot, g::date, 0, 0, 0, 0, 0, 0, 0, 0
        FROM span s CROSS JOIN generate_series(s.first, s.last, interval '1 month') AS g
        CROSS JOIN generate_series(0, 4) AS sl (slot)
        WHERE s.first IS NOT NULL
        UNION ALL
        SELECT merchant_id, dim, key, slot, NULL, -1, w1, w2, w3, w4, w5, w6, w7 FROM base
    ), run AS (
        SELECT merchant_id, dim, key, slot, month, dom,
               agg.isum(w1) OVER w AS w1, agg.isum(w2) OVER w AS w2, agg.isum(w3) OVER w AS w3, agg.isum(w4) OVER w AS w4,
               agg.isum(w5) OVER w AS w5, agg.isum(w6) OVER w AS w6, agg.isum(w7) OVER w AS w7
        FROM seq
        WINDOW w AS (PARTITION BY merchant_id, dim, key, slot ORDER BY month NULLS FIRST, dom ROWS UNBOUNDED PRECEDING)
    )
    INSERT INTO pg_temp.key_rows
    SELECT merchant_id, key, month, dim,
           array_agg((slot * 32 + dom)::smallint ORDER BY slot, dom),
           array_agg((ARRAY[w1, w2, w3, w4, w5, w6, w7])[1:refresh.width(dim)] ORDER BY slot, dom)
    FROM run
    WHERE month IS NOT NULL AND w1 <> 0
    GROUP BY merchant_id, dim, key, month;

    IF v_fresh THEN
        INSERT INTO agg.key_months (merchant_id, key, month, dim, ek, v)
        SELECT merchant_id, key, month, dim, ek, v FROM pg_temp.key_rows ORDER BY merchant_id, dim, month, key;
        RETURN;
    END IF;
    -- Rows of the changed keys from m0 on that are no longer written (a key that lost its
    -- first month, or all its facts). By arrays, whose length the planner knows: each row is
    -- found by its primary key.
    SELECT array_agg(g.merchant_id), array_agg(g.dim), array_agg(g.month), array_agg(g.key)
    INTO v_merchants, v_dims, v_months, v_keys
    FROM (SELECT k.merchant_id, k.dim, x::date AS month, k.key
          FROM (SELECT merchant_id, dim, key, date_trunc('month', min(day))::date AS m0 FROM pg_temp.key_net
                GROUP BY 1, 2, 3) AS k
          CROSS JOIN LATERAL generate_series(k.m0, (SELECT max(b.month) FROM agg.key_months b
                                                    WHERE b.merchant_id = k.merchant_id AND b.dim = 't'), interval '1 month') AS x
          EXCEPT
          SELECT merchant_id, dim, month, key FROM pg_temp.key_rows) AS g;
    DELETE FROM agg.key_months b
    USING unnest(v_merchants, v_dims, v_months, v_keys) AS g (merchant_id, dim, month, key)
    WHERE b.merchant_id = g.merchant_id AND b.dim = g.dim AND b.month = g.month AND b.key = g.key;
    INSERT INTO agg.key_months AS b (merchant_id, key, month, dim, ek, v)
    SELECT merchant_id, key, month, dim, ek, v FROM pg_temp.key_rows ORDER BY merchant_id, dim, month, key
    ON CONFLICT (merchant_id, dim, month, key) DO UPDATE SET ek = EXCLUDED.ek, v = EXCLUDED.v
    WHERE (b.ek, b.v) IS DISTINCT FROM (EXCLUDED.ek, EXCLUDED.v);
END $$;
