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

-- Applies key_deltas to agg.key_months, with the pending changes of the same merchants
-- (agg.key_pending, which they leave): netted, then written as new rows (build_key_rows) for
-- merchants with nothing stored yet (a backfill), else as moved rows (move_key_rows). A key
-- left with no fact at all loses its rows.
CREATE PROCEDURE refresh.apply_key_deltas()
LANGUAGE plpgsql
SET work_mem = '256MB' -- scopes the set_config below to this call
AS $$
DECLARE
    v_cells     bigint;
    v_merchants bigint[];
    v_dims      "char"[];
    v_months    date[];
    v_keys      bigint[];
BEGIN
    IF NOT EXISTS (SELECT FROM pg_temp.key_deltas) THEN
        RETURN;
    END IF;
    CALL refresh.extend_key_months();
    v_merchants := ARRAY(SELECT DISTINCT merchant_id FROM pg_temp.key_deltas);
    CALL refresh.take_key_pending(v_merchants);
    -- key_net: key_deltas netted (changes that cancel out are dropped); key_rows: the rows
    -- to write (ek NULL: to delete). Both private to this procedure.
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
    IF NOT EXISTS (SELECT FROM (SELECT DISTINCT merchant_id FROM pg_temp.key_net) AS m
                   WHERE EXISTS (SELECT FROM agg.key_months b WHERE b.merchant_id = m.merchant_id AND b.dim = 't')) THEN
        CALL refresh.build_key_rows();
        INSERT INTO agg.key_months (merchant_id, key, month, dim, ek, v)
        SELECT merchant_id, key, month, dim, ek, v FROM pg_temp.key_rows ORDER BY merchant_id, dim, month, key;
        RETURN;
    END IF;
    -- The planner sizes the hash tables below by its estimate (every key a thousand months of
    -- a thousand entries), up to work_mem, and allocates them whole: size work_mem by the key
    -- months read back instead (~50 entries of ~150 bytes each), so that a small refresh does
    -- not spend most of its time allocating memory.
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
    CALL refresh.move_key_rows();
    -- By arrays, whose length the planner knows: each row is found by its primary key.
    SELECT array_agg(merchant_id), array_agg(dim), array_agg(month), array_agg(key)
    INTO v_merchants, v_dims, v_months, v_keys
    FROM pg_temp.key_rows WHERE ek IS NULL;
    DELETE FROM agg.key_months b
    USING unnest(v_merchants, v_dims, v_months, v_keys) AS g (merchant_id, dim, month, key)
    WHERE b.merchant_id = g.merchant_id AND b.dim = g.dim AND b.month = g.month AND b.key = g.key;
    INSERT INTO agg.key_months AS b (merchant_id, key, month, dim, ek, v)
    SELECT merchant_id, key, month, dim, ek, v FROM pg_temp.key_rows WHERE ek IS NOT NULL
    ORDER BY merchant_id, dim, month, key
    ON CONFLICT (merchant_id, dim, month, key) DO UPDATE SET ek = EXCLUDED.ek, v = EXCLUDED.v;
END $$;

-- key_rows from key_net alone, for merchants with nothing stored: each key's daily facts
-- summed into running sums, with the totals before every month from its first (day 0).
CREATE PROCEDURE refresh.build_key_rows()
LANGUAGE plpgsql
SET enable_sort = off
SET work_mem = '256MB'
AS $$
BEGIN
    WITH daily AS (
        SELECT * FROM pg_temp.key_net WHERE w1 <> 0
    ), m AS (
        SELECT merchant_id, date_trunc('month', max(day))::date AS last FROM pg_temp.key_net GROUP BY merchant_id
    ), span AS (
        -- Per slot, the month after its first fact's: a marker before then sums nothing, and
        -- an entry of nothing is not kept (most keys have no fact in some slots at all).
        SELECT d.merchant_id, d.dim, d.key, d.slot, (date_trunc('month', min(d.day)) + interval '1 month')::date AS first,
               min(m.last) AS last
        FROM daily d JOIN m USING (merchant_id) GROUP BY d.merchant_id, d.dim, d.key, d.slot
    ), seq AS (
        -- Every slot's facts and a marker at the start of every month (day 0), summed in
        -- order: at a marker, the running sum is the total before its month.
        SELECT merchant_id, dim, key, slot, date_trunc('month', day)::date AS month, extract(day FROM day)::int AS dom,
               w1, w2, w3, w4, w5, w6, w7
        FROM daily
        UNION ALL
        SELECT s.merchant_id, s.dim, s.key, s.slot, g::date, 0, 0, 0, 0, 0, 0, 0, 0
        FROM span s CROSS JOIN generate_series(s.first, s.last, interval '1 month') AS g
    ), run AS (
        SELECT merchant_id, dim, key, slot, month, dom,
               agg.isum(w1) OVER w AS w1, agg.isum(w2) OVER w AS w2, agg.isum(w3) OVER w AS w3, agg.isum(w4) OVER w AS w4,
               agg.isum(w5) OVER w AS w5, agg.isum(w6) OVER w AS w6, agg.isum(w7) OVER w AS w7
        FROM seq
        WINDOW w AS (PARTITION BY merchant_id, dim, key, slot ORDER BY month, dom ROWS UNBOUNDED PRECEDING)
    )
    INSERT INTO pg_temp.key_rows
    SELECT merchant_id, key, month, dim,
           array_agg((slot * 32 + dom)::smallint ORDER BY slot, dom),
           array_agg((ARRAY[w1, w2, w3, w4, w5, w6, w7])[1:refresh.width(dim)] ORDER BY slot, dom)
    FROM run
    WHERE w1 <> 0
    GROUP BY merchant_id, dim, key, month;
END $$;

-- key_rows for the stored keys that key_net changes: each of their rows from the month of the
-- key's first change on, with every entry moved by the changes up to its day and an entry
-- added for each changed day and for the total before the month of each changed slot; only
-- the rows that come out different. The stored entries are read in place (by binary search,
-- as the API reads them), not summed again from daily facts.
--
-- An entry (slot s, day d of month M) is kept when its running orders count is not zero and,
-- for d > 0, the day's own count (the entry less the one before it in its slot) is not: the
-- same rows build_key_rows gives.
CREATE PROCEDURE refresh.move_key_rows()
LANGUAGE plpgsql AS $$
BEGIN
    WITH run AS (
        -- Each change with its slot's running sum of changes (c1..c7), coded slot × 2^20 +
        -- day number so that one sorted array per key holds every slot.
        SELECT merchant_id, dim, key, day, slot * 1048576 + (day - date '1899-12-31') AS code,
               agg.isum(w1) OVER w AS c1, agg.isum(w2) OVER w AS c2, agg.isum(w3) OVER w AS c3,
               agg.isum(w4) OVER w AS c4, agg.isum(w5) OVER w AS c5, agg.isum(w6) OVER w AS c6,
               agg.isum(w7) OVER w AS c7
        FROM pg_temp.key_net
        WINDOW w AS (PARTITION BY merchant_id, dim, key, slot ORDER BY day)
    ), k AS (
        SELECT merchant_id, dim, key, date_trunc('month', min(day))::date AS m0,
               array_agg(code ORDER BY code) AS cd, array_agg(ARRAY[c1, c2, c3, c4, c5, c6, c7] ORDER BY code) AS cs
        FROM run GROUP BY merchant_id, dim, key
    ), mc AS (
        -- The entries each key's changes add to a month (slot × 32 + day of month).
        SELECT merchant_id, dim, key, date_trunc('month', day)::date AS month,
               array_agg((slot * 32 + extract(day FROM day))::smallint) AS codes
        FROM pg_temp.key_net GROUP BY merchant_id, dim, key, date_trunc('month', day)
    ), m AS (
        -- Each merchant's last month: every key has a row up to it (extend_key_months).
        SELECT n.merchant_id,
               greatest((SELECT max(b.month) FROM agg.key_months b WHERE b.merchant_id = n.merchant_id AND b.dim = 't'),
                        date_trunc('month', max(n.day))::date) AS last
        FROM pg_temp.key_net n GROUP BY n.merchant_id
    ), r AS (
        SELECT k.merchant_id, k.dim, k.key, g::date AS month, k.cd, k.cs, b.ek, b.v
        FROM k JOIN m USING (merchant_id)
        CROSS JOIN LATERAL generate_series(k.m0, m.last, interval '1 month') AS g
        -- One primary key lookup per key and month (OFFSET 0: not a join that scans the
        -- table); || '{}' copies a compressed row out of storage once, not at every subscript.
        LEFT JOIN LATERAL (SELECT b.ek || '{}'::smallint[] AS ek, b.v || '{}'::bigint[] AS v FROM agg.key_months b
                           WHERE b.merchant_id = k.merchant_id AND b.dim = k.dim AND b.month = g::date AND b.key = k.key
                           OFFSET 0) AS b ON true
    )
    INSERT INTO pg_temp.key_rows
    SELECT r.merchant_id, r.key, r.month, r.dim, n.ek, n.v
    FROM r LEFT JOIN mc USING (merchant_id, dim, key, month)
    CROSS JOIN LATERAL (
        SELECT array_agg(e.code ORDER BY e.code) AS ek, array_agg(e.w[1:refresh.width(r.dim)] ORDER BY e.code) AS v
        FROM (
            SELECT x.code,
                   ARRAY[coalesce(r.v[x.p][1], 0) + coalesce(r.cs[x.q][1], 0), coalesce(r.v[x.p][2], 0) + coalesce(r.cs[x.q][2], 0),
                         coalesce(r.v[x.p][3], 0) + coalesce(r.cs[x.q][3], 0), coalesce(r.v[x.p][4], 0) + coalesce(r.cs[x.q][4], 0),
                         coalesce(r.v[x.p][5], 0) + coalesce(r.cs[x.q][5], 0), coalesce(r.v[x.p][6], 0) + coalesce(r.cs[x.q][6], 0),
                         coalesce(r.v[x.p][7], 0) + coalesce(r.cs[x.q][7], 0)] AS w,
                   x.dom = 0
                   -- the day's own orders count: stored (an entry at the day itself) plus changed
                   OR CASE WHEN r.ek[x.p] = x.code THEN r.v[x.p][1] - coalesce(r.v[x.p0][1], 0) ELSE 0 END
                      + CASE WHEN r.cd[x.q] = x.c THEN r.cs[x.q][1] - coalesce(r.cs[x.q0][1], 0) ELSE 0 END <> 0 AS daily
            FROM (
                -- p: the stored entry at or before the code in its slot, q: the running sum of
                -- changes at or before its day in its slot (NULL: none); p0 and q0 the ones before.
                SELECT y.code, y.dom, y.c, y.p, y.q,
                       CASE WHEN r.ek[y.p - 1] >= y.s * 32 THEN y.p - 1 END AS p0,
                       CASE WHEN r.cd[y.q - 1] >= y.s * 1048576 THEN y.q - 1 END AS q0
                FROM (
                    SELECT z.code, z.s, z.dom, z.c,
                           CASE WHEN r.ek[z.pb] >= z.s * 32 THEN z.pb END AS p,
                           CASE WHEN r.cd[z.qb] >= z.s * 1048576 THEN z.qb END AS q
                    FROM (
                        SELECT u.code, u.code / 32 AS s, u.code % 32 AS dom,
                               (u.code / 32) * 1048576 + (r.month + u.code % 32 - 1 - date '1899-12-31') AS c, u.pb,
                               width_bucket((u.code / 32) * 1048576 + (r.month + u.code % 32 - 1 - date '1899-12-31'), r.cd) AS qb
                        FROM (
                            -- the stored entries, each at its own position
                            SELECT r.ek[i] AS code, i AS pb FROM generate_subscripts(r.ek, 1) AS i
                            UNION ALL
                            -- the entries the changes add
                            SELECT n.code, n.pb
                            FROM (SELECT a.code, width_bucket(a.code, r.ek) AS pb
                                  FROM (SELECT unnest(mc.codes) AS code
                                        UNION ALL
                                        -- the total before the month of each slot changed before it
                                        SELECT (s * 32)::smallint FROM generate_series(0, 4) AS s
                                        WHERE r.cd[width_bucket(s * 1048576 + (r.month - 1 - date '1899-12-31'), r.cd)] >= s * 1048576) AS a
                                  OFFSET 0) AS n
                            WHERE r.ek[n.pb] IS DISTINCT FROM n.code) AS u
                        OFFSET 0) AS z
                    OFFSET 0) AS y
                OFFSET 0) AS x
            OFFSET 0) AS e
        WHERE e.w[1] <> 0 AND e.daily
    ) AS n
    WHERE (n.ek, n.v) IS DISTINCT FROM (r.ek, r.v) AND (n.ek IS NOT NULL OR r.ek IS NOT NULL);
END $$;
