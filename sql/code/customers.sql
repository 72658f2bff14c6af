-- Customers: exact distinct, new and repeat customers under every status filter, and cohorts,
-- from counts of per-order events (migration 013, agg.customer_tiles and agg.cohort_counts).
--
-- Number a customer's orders in time (day, then id). For a status filter S and a range
-- [lo, hi], count over the orders i of S in the range:
--   customers = orders whose latest earlier S-order is before lo (its first S-order in the
--               range), or that have no earlier S-order;
--   repeaters = orders whose second-latest earlier S-order is before lo (or missing), less
--               the customers: exactly the second S-order of a customer in the range;
--   new       = orders with no earlier S-order whose customer's first order (any status) is
--               not before lo.
-- Each count is a sum over stored periods tiling the range of "events of the period with a
-- value below lo", so a period costs a few binary searches, whatever the number of customers.
-- An order's events do not depend on S directly: its event of kind 1 with value x belongs to
-- every filter whose latest earlier order is on day x, so one order has one event per distinct
-- day among the latest earlier orders of each status, and each event carries the bit set of
-- the filters it belongs to (refresh.filter_masks). Every filter that keeps the order's status
-- falls in exactly one kind-1-or-3 event and one kind-2 event of it.

-- The bit sets of filters (bit f - 1 for filter f, f = 1..31 a set of status bits 0..4) that
-- an event of kind 1, 2, 3 or 4 (4: kind 2 with no second-latest S-order) belongs to, for an
-- order of status sigma whose earlier orders are described by t (the status of the earlier
-- order, kinds 1 and 2), a and b (kind 1: statuses seen among more recent earlier orders;
-- kind 2: statuses seen once, and twice, among them; kind 3: statuses of all earlier orders;
-- kind 4: statuses seen once, and twice or more, among all of them).
CREATE FUNCTION refresh.filter_mask(p_kind int, p_sigma int, p_t int, p_a int, p_b int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(bit_or(1 << (f - 1)), 0)
    FROM generate_series(1, 31) AS f
    WHERE f & (1 << p_sigma) <> 0
      AND CASE p_kind
          WHEN 1 THEN f & (1 << p_t) <> 0 AND f & p_a = 0
          WHEN 2 THEN f & (1 << p_t) <> 0 AND f & p_b = 0 AND bit_count((f & p_a)::bit(5)) = 1
          WHEN 3 THEN f & p_a = 0
          WHEN 4 THEN f & p_b = 0 AND bit_count((f & p_a)::bit(5)) <= 1
          END
$$;

-- filter_mask tabulated for every argument that occurs, looked up by hash join.
CREATE TABLE refresh.filter_masks AS
SELECT k AS kind, s AS sigma, t, a, b, refresh.filter_mask(k, s, t, a, b) AS mask
FROM generate_series(1, 4) AS k, generate_series(0, 4) AS s, generate_series(0, 4) AS t,
     generate_series(0, 31) AS a, generate_series(0, 31) AS b
WHERE (k = 1 AND b = 0) OR (k = 2 AND a & b = 0) OR (k = 3 AND t = 0 AND b = 0) OR (k = 4 AND t = 0 AND a & b = 0);
ALTER TABLE refresh.filter_masks ADD PRIMARY KEY (kind, sigma, t, a, b);
ANALYZE refresh.filter_masks;

-- A day as an event value: days since 1899-12-31 (0 is "none").
CREATE FUNCTION refresh.day_value(p_day date) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (p_day - date '1899-12-31')::bigint $$;

-- Adds the events and cohort memberships of the customers in changed_customers, as the
-- snapshot has their orders now, to tile_deltas and cohort_deltas, with p_sign (-1 before the
-- snapshot takes the new orders, +1 after). Only from each customer's first changed order on
-- (changed_customers, the same in both calls): an earlier order has the same earlier orders,
-- and so the same events, on both sides, and a month before it the same cohort membership.
CREATE PROCEDURE refresh.add_customer_events(p_sign int)
LANGUAGE plpgsql
SET enable_sort = off
SET work_mem = '256MB'
AS $$
BEGIN
    -- q: the orders in sequence, with how many earlier orders of each status they have; moved:
    -- at or after the customer's first changed order, on day cut_day.
    CREATE TEMP TABLE IF NOT EXISTS customer_seq (
        merchant_id bigint, customer_id bigint, order_id bigint, day date, st int, n bigint, nt bigint,
        first_day date, c0 bigint, c1 bigint, c2 bigint, c3 bigint, c4 bigint, moved boolean, cut_day date
    ) ON COMMIT DELETE ROWS;
    DELETE FROM pg_temp.customer_seq;
    INSERT INTO pg_temp.customer_seq
    SELECT o.merchant_id, o.customer_id, o.order_id, o.day, o.status,
           row_number() OVER w, row_number() OVER (PARTITION BY o.merchant_id, o.customer_id, o.status ORDER BY o.day, o.order_id),
           min(o.day) OVER (PARTITION BY o.merchant_id, o.customer_id),
           count(*) FILTER (WHERE o.status = 0) OVER e, count(*) FILTER (WHERE o.status = 1) OVER e,
           count(*) FILTER (WHERE o.status = 2) OVER e, count(*) FILTER (WHERE o.status = 3) OVER e,
           count(*) FILTER (WHERE o.status = 4) OVER e,
           (o.day, o.order_id) >= (c.cut_day, c.cut_order), c.cut_day
    FROM pg_temp.changed_customers c
    -- A lookup per customer (OFFSET 0: not a join that scans every order).
    CROSS JOIN LATERAL (SELECT * FROM pipeline.orders o
                        WHERE o.merchant_id = c.merchant_id AND o.customer_id = c.customer_id OFFSET 0) AS o
    WINDOW w AS (PARTITION BY o.merchant_id, o.customer_id ORDER BY o.day, o.order_id),
           e AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING);
    ANALYZE pg_temp.customer_seq;

    WITH pair AS (
        -- Each order with the earlier orders that are among the last two of their status.
        -- (OFFSET 0: joined on all four columns, not on the customer with the rest a filter,
        -- which pairs every two orders of a customer first.)
        SELECT i.merchant_id, i.order_id, i.day, i.st, j.st AS t, j.day AS jday, j.n AS jn
        FROM (SELECT i.merchant_id, i.customer_id, i.order_id, i.day, i.st, c.t, c.nt
              FROM pg_temp.customer_seq i
              CROSS JOIN LATERAL (VALUES (0, i.c0), (0, i.c0 - 1), (1, i.c1), (1, i.c1 - 1), (2, i.c2), (2, i.c2 - 1),
                                         (3, i.c3), (3, i.c3 - 1), (4, i.c4), (4, i.c4 - 1)) AS c (t, nt)
              WHERE i.moved AND c.nt > 0
              OFFSET 0) AS i
        JOIN pg_temp.customer_seq j
          ON j.merchant_id = i.merchant_id AND j.customer_id = i.customer_id AND j.st = i.t AND j.nt = i.nt
    ), seen AS (
        -- For each of them, most recent first, the statuses seen once and twice before it.
        SELECT p.*, (CASE WHEN s0 = 1 THEN 1 ELSE 0 END | CASE WHEN s1 = 1 THEN 2 ELSE 0 END | CASE WHEN s2 = 1 THEN 4 ELSE 0 END
                     | CASE WHEN s3 = 1 THEN 8 ELSE 0 END | CASE WHEN s4 = 1 THEN 16 ELSE 0 END) AS once,
                    (CASE WHEN s0 = 2 THEN 1 ELSE 0 END | CASE WHEN s1 = 2 THEN 2 ELSE 0 END | CASE WHEN s2 = 2 THEN 4 ELSE 0 END
                     | CASE WHEN s3 = 2 THEN 8 ELSE 0 END | CASE WHEN s4 = 2 THEN 16 ELSE 0 END) AS twice
        FROM (SELECT p.*,
                     count(*) FILTER (WHERE p.t = 0) OVER w AS s0, count(*) FILTER (WHERE p.t = 1) OVER w AS s1,
                     count(*) FILTER (WHERE p.t = 2) OVER w AS s2, count(*) FILTER (WHERE p.t = 3) OVER w AS s3,
                     count(*) FILTER (WHERE p.t = 4) OVER w AS s4
              FROM pair p
              WINDOW w AS (PARTITION BY p.order_id ORDER BY p.jn DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) AS p
    ), ev AS (
        SELECT s.merchant_id, s.order_id, s.day, 1 AS kind, refresh.day_value(s.jday) AS value, m.mask
        FROM seen s JOIN refresh.filter_masks m ON m.kind = 1 AND m.sigma = s.st AND m.t = s.t AND m.a = (s.once | s.twice) AND m.b = 0
        WHERE (s.once | s.twice) & (1 << s.t) = 0
        UNION ALL
        SELECT s.merchant_id, s.order_id, s.day, 2, refresh.day_value(s.jday), m.mask
        FROM seen s JOIN refresh.filter_masks m ON m.kind = 2 AND m.sigma = s.st AND m.t = s.t AND m.a = s.once AND m.b = s.twice
        UNION ALL
        -- No earlier order of the filter's statuses: kind 3, valued by the first order's day.
        SELECT i.merchant_id, i.order_id, i.day, 3, refresh.day_value(i.first_day), m.mask
        FROM pg_temp.customer_seq i
        JOIN refresh.filter_masks m
          ON m.kind = 3 AND m.sigma = i.st AND m.t = 0 AND m.b = 0
         AND m.a = ((i.c0 > 0)::int | ((i.c1 > 0)::int << 1) | ((i.c2 > 0)::int << 2) | ((i.c3 > 0)::int << 3) | ((i.c4 > 0)::int << 4))
        WHERE i.moved
        UNION ALL
        -- Fewer than two earlier orders of the filter's statuses: kind 2 with no value.
        SELECT i.merchant_id, i.order_id, i.day, 2, 0, m.mask
        FROM pg_temp.customer_seq i
        JOIN refresh.filter_masks m
          ON m.kind = 4 AND m.sigma = i.st AND m.t = 0
         AND m.a = ((i.c0 = 1)::int | ((i.c1 = 1)::int << 1) | ((i.c2 = 1)::int << 2) | ((i.c3 = 1)::int << 3) | ((i.c4 = 1)::int << 4))
         AND m.b = ((i.c0 > 1)::int | ((i.c1 > 1)::int << 1) | ((i.c2 > 1)::int << 2) | ((i.c3 > 1)::int << 3) | ((i.c4 > 1)::int << 4))
        WHERE i.moved
    ), merged AS (
        -- One event per order, kind and value (their filter sets are disjoint).
        SELECT merchant_id, day, (kind::bigint << 52) | (bit_or(mask)::bigint << 20) | value AS ck
        FROM ev WHERE mask <> 0
        GROUP BY merchant_id, order_id, day, kind, value
    )
    INSERT INTO pg_temp.tile_deltas
    SELECT merchant_id, g.grain, g.period, ck, p_sign * count(*)
    FROM merged
    CROSS JOIN LATERAL (VALUES ('d'::"char", day), ('w', date_trunc('week', day)::date), ('m', date_trunc('month', day)::date),
                               ('q', date_trunc('quarter', day)::date)) AS g (grain, period)
    GROUP BY merchant_id, g.grain, g.period, ck;

    INSERT INTO pg_temp.cohort_deltas
    SELECT merchant_id, date_trunc('month', first_day)::date, date_trunc('month', day)::date, statuses, p_sign * count(*)
    FROM (SELECT merchant_id, customer_id, first_day, date_trunc('month', day) AS day, bit_or(1 << st)::smallint AS statuses
          FROM pg_temp.customer_seq WHERE date_trunc('month', day) >= date_trunc('month', cut_day)
          GROUP BY 1, 2, 3, 4) AS m
    GROUP BY 1, 2, 3, 4;
END $$;

-- Applies tile_deltas and cohort_deltas. A period's changes go to its delta arrays (dck, dcum:
-- read back, the changes added, written again), so a refresh rewrites a few entries per
-- period, not the period's whole tile; once the delta outgrows an eighth of the tile (at least
-- 64 entries; the tile's size is its stored size, read without detoasting it, which for a large
-- merchant's quarter is megabytes) both are folded into ck and cum. A period whose events all went is deleted when
-- folded. Merchants with no tile yet (a backfill) get their tiles whole.
CREATE PROCEDURE refresh.apply_customer_deltas()
LANGUAGE plpgsql
SET enable_sort = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_fresh boolean := NOT EXISTS (SELECT FROM (SELECT DISTINCT merchant_id FROM pg_temp.tile_deltas) AS m
                                   WHERE EXISTS (SELECT FROM agg.customer_tiles c
                                                 WHERE c.merchant_id = m.merchant_id AND c.grain = 'q'));
BEGIN
    -- tile_rows: the periods to write, private to this procedure. fold: ck and cum are new
    -- (dck and dcum empty); else only segs, dck and dcum are.
    CREATE TEMP TABLE IF NOT EXISTS tile_rows (
        merchant_id bigint, grain "char", period date, fold boolean, segs bigint[], ck bigint[], cum int[],
        dck bigint[], dcum int[], below int[], events int[], head_all int[]
    ) ON COMMIT DELETE ROWS;
    DELETE FROM pg_temp.tile_rows;
    WITH d AS (
        SELECT merchant_id, grain, period, ck, sum(n)::int AS n FROM pg_temp.tile_deltas
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
    ), t AS MATERIALIZED (
        -- The periods touched, with their stored tiles (one primary key lookup each; || '{}'
        -- copies a delta out of storage once, not at every subscript below).
        SELECT t.merchant_id, t.grain, t.period, c.segs, c.dck, c.dcum, coalesce(c.main, 0) AS main, c.below, c.events
        FROM (SELECT DISTINCT merchant_id, grain, period FROM d) AS t
        LEFT JOIN LATERAL (SELECT c.segs, pg_column_size(c.ck) / 8 AS main, c.dck || '{}'::bigint[] AS dck,
                                  c.dcum || '{}'::int[] AS dcum, c.below, c.events
                           FROM agg.customer_tiles c
                           WHERE NOT v_fresh AND c.merchant_id = t.merchant_id AND c.grain = t.grain
                             AND c.period = t.period OFFSET 0) AS c ON true
    ), delta AS (
        -- Each period's changes so far (each delta entry less the one before it), and the new ones.
        SELECT merchant_id, grain, period, ck, sum(n) AS n
        FROM (SELECT t.merchant_id, t.grain, t.period, t.dck[i] AS ck, t.dcum[i] - coalesce(t.dcum[i - 1], 0) AS n
              FROM t CROSS JOIN LATERAL generate_subscripts(t.dck, 1) AS i
              UNION ALL
              SELECT * FROM d) AS x
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
    ), nd AS (
        -- The new delta of each period, as running sums.
        SELECT merchant_id, grain, period, count(*) AS entries, array_agg(ck ORDER BY ck) AS dck,
               array_agg(cum ORDER BY ck) AS dcum
        FROM (SELECT merchant_id, grain, period, ck,
                     (sum(n) OVER (PARTITION BY merchant_id, grain, period ORDER BY ck))::int AS cum
              FROM delta) AS x
        GROUP BY 1, 2, 3
    ), sized AS (
        SELECT t.merchant_id, t.grain, t.period, t.main, n.dck, n.dcum,
               t.main = 0 OR coalesce(n.entries, 0) > greatest(64, t.main / 8) AS fold
        FROM t LEFT JOIN nd n USING (merchant_id, grain, period)
    ), h AS (
        -- Each period's segments with events, and its counts as a range of its own per segment
        -- (migration 016): the stored ones plus the changes' (an event is below when its value
        -- is before the period's first day). A segment left with no event is dropped.
        SELECT merchant_id, grain, period, array_agg(s ORDER BY s) AS segs, array_agg(b::int ORDER BY s) AS below,
               array_agg(e::int ORDER BY s) AS events,
               -- the same under no status filter (filter 31's bit), summed (migration 018)
               ARRAY[coalesce(sum(b) FILTER (WHERE s >> 52 = 1 AND (s >> 50) & 1 = 1), 0),
                     coalesce(sum(b) FILTER (WHERE s >> 52 = 2 AND (s >> 50) & 1 = 1), 0),
                     coalesce(sum(e) FILTER (WHERE s >> 52 = 3 AND (s >> 50) & 1 = 1), 0),
                     coalesce(sum(b) FILTER (WHERE s >> 52 = 3 AND (s >> 50) & 1 = 1), 0)]::int[] AS head_all
        FROM (SELECT merchant_id, grain, period, s, sum(b) AS b, sum(e) AS e
              FROM (SELECT t.merchant_id, t.grain, t.period, x.s, x.b, x.e
                    FROM t CROSS JOIN LATERAL unnest(t.segs, t.below, t.events) AS x (s, b, e)
                    UNION ALL
                    SELECT merchant_id, grain, period, (ck >> 20) << 20,
                           CASE WHEN ck & 1048575 < refresh.day_value(period) THEN n ELSE 0 END, n
                    FROM d) AS x
              GROUP BY 1, 2, 3, 4 HAVING sum(e) <> 0) AS x
        GROUP BY 1, 2, 3
    )
    INSERT INTO pg_temp.tile_rows
    -- Folded: the stored counts and the delta merged, each key's running count the stored one
    -- plus the delta's at or before it, kept where its own count is not zero. A stored key is
    -- taken at its position and searched for in the delta, a delta key not stored is searched
    -- for in the tile: no pass hashes or searches the whole tile per key. A period left with no
    -- event gets NULL arrays, and is deleted.
    SELECT s.merchant_id, s.grain, s.period, true, h.segs, f.ck, f.cum, '{}', '{}', h.below, h.events, h.head_all
    FROM sized s
    LEFT JOIN LATERAL (SELECT c.ck || '{}'::bigint[] AS ck, c.cum || '{}'::int[] AS cum FROM agg.customer_tiles c
                       WHERE s.main > 0 AND c.merchant_id = s.merchant_id AND c.grain = s.grain AND c.period = s.period
                       OFFSET 0) AS c ON true
    CROSS JOIN LATERAL (
        SELECT array_agg(x.k ORDER BY x.k) AS ck, array_agg(x.cum ORDER BY x.k) AS cum
        FROM (SELECT y.k, coalesce(c.cum[y.p], 0) + coalesce(s.dcum[y.q], 0) AS cum,
                     CASE WHEN c.ck[y.p] = y.k THEN c.cum[y.p] - coalesce(c.cum[y.p - 1], 0) ELSE 0 END
                     + CASE WHEN s.dck[y.q] = y.k THEN s.dcum[y.q] - coalesce(s.dcum[y.q - 1], 0) ELSE 0 END AS own
              FROM (SELECT c.ck[i] AS k, i AS p, width_bucket(c.ck[i], s.dck) AS q
                    FROM generate_subscripts(c.ck, 1) AS i
                    UNION ALL
                    SELECT s.dck[j], width_bucket(s.dck[j], c.ck), j
                    FROM generate_subscripts(s.dck, 1) AS j
                    WHERE c.ck[width_bucket(s.dck[j], c.ck)] IS DISTINCT FROM s.dck[j]
                    OFFSET 0) AS y
              OFFSET 0) AS x
        WHERE x.own <> 0
    ) AS f
    LEFT JOIN h USING (merchant_id, grain, period)
    WHERE s.fold
    UNION ALL
    SELECT s.merchant_id, s.grain, s.period, false, coalesce(h.segs, '{}'), NULL, NULL, coalesce(s.dck, '{}'),
           coalesce(s.dcum, '{}'), coalesce(h.below, '{}'), coalesce(h.events, '{}'), coalesce(h.head_all, '{0,0,0,0}')
    FROM sized s
    LEFT JOIN h USING (merchant_id, grain, period)
    WHERE NOT s.fold;

    INSERT INTO pg_temp.changed_merchants
    SELECT merchant_id FROM pg_temp.tile_rows
    UNION
    SELECT merchant_id FROM pg_temp.cohort_deltas GROUP BY merchant_id, cohort, month, statuses HAVING sum(n) <> 0
    ON CONFLICT DO NOTHING;
    IF v_fresh THEN
        CALL refresh.insert_customer_tiles();
    ELSE
        CALL refresh.merge_customer_tiles();
    END IF;
    CALL refresh.merge_cohort_counts();
END $$;

-- Writes tile_rows of merchants that had no tile yet (a backfill).
CREATE PROCEDURE refresh.insert_customer_tiles()
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agg.customer_tiles (merchant_id, period, grain, segs, ck, cum, below, events, head_all)
    SELECT merchant_id, period, grain, segs, ck, cum, below, events, head_all FROM pg_temp.tile_rows WHERE ck IS NOT NULL
    ORDER BY merchant_id, grain, period;
END $$;

-- Writes tile_rows over the stored tiles, each found by its primary key (nested loops: a hash
-- join would read every stored row): a folded period's tile whole (none: deleted), another's
-- segments and delta.
CREATE PROCEDURE refresh.merge_customer_tiles()
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
BEGIN
    MERGE INTO agg.customer_tiles c
    USING pg_temp.tile_rows r
    ON c.merchant_id = r.merchant_id AND c.grain = r.grain AND c.period = r.period
    WHEN MATCHED AND r.fold AND r.ck IS NULL THEN DELETE
    WHEN MATCHED AND r.fold THEN
        UPDATE SET segs = r.segs, ck = r.ck, cum = r.cum, dck = '{}', dcum = '{}', below = r.below, events = r.events,
                   head_all = r.head_all
    WHEN MATCHED THEN
        UPDATE SET segs = r.segs, dck = r.dck, dcum = r.dcum, below = r.below, events = r.events, head_all = r.head_all
    WHEN NOT MATCHED AND r.ck IS NOT NULL THEN
        INSERT (merchant_id, period, grain, segs, ck, cum, below, events, head_all)
        VALUES (r.merchant_id, r.period, r.grain, r.segs, r.ck, r.cum, r.below, r.events, r.head_all);
END $$;

-- Adds the netted cohort_deltas to agg.cohort_counts (by primary key, as above).
CREATE PROCEDURE refresh.merge_cohort_counts()
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
BEGIN
    MERGE INTO agg.cohort_counts c
    USING (SELECT merchant_id, cohort, month, statuses, sum(n)::int AS n FROM pg_temp.cohort_deltas
           GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0) AS d
    ON c.merchant_id = d.merchant_id AND c.cohort = d.cohort AND c.month = d.month AND c.statuses = d.statuses
    WHEN MATCHED AND c.customers + d.n = 0 THEN DELETE
    WHEN MATCHED THEN UPDATE SET customers = c.customers + d.n
    WHEN NOT MATCHED THEN INSERT (merchant_id, cohort, month, statuses, customers)
        VALUES (d.merchant_id, d.cohort, d.month, d.statuses, d.n);
END $$;
