-- SPEC §3 customer figures under a status filter, for groups of date ranges (a range and its
-- previous one, or the points of a series), from agg.customer_sets (migration 007): per group,
-- one row per stored period tiling its range and status kept, united in C.
--
-- $1 merchant id; $2..$5 one element per tile as in order_metrics.sql; $6 statuses kept.
-- One row per group that has customers; groups without are zero.
WITH period AS (
    SELECT t.grp, t.grain, p::date AS period_start
    FROM unnest($2::int[], $3::text[], $4::date[], $5::date[]) AS t (grp, grain, first_start, last_start),
         generate_series(t.first_start, t.last_start,
                         CASE t.grain WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                                      WHEN 'month' THEN interval '1 month' ELSE interval '3 months' END) AS p
), kept AS (
    -- customers = in some once; repeaters (two orders or more) = in the union's twice.
    -- Each union step copies and merges the state, a set of up to every customer of the range:
    -- smallest sets first keep it small until the quarters (the largest merchant's random year
    -- of four statuses: 294 → 107 ms of backend CPU; a tree of unions made it 185).
    SELECT p.grp, agg.customer_union(s.once, s.twice ORDER BY cardinality(s.once)) AS acc
    FROM period AS p
    CROSS JOIN LATERAL (
        SELECT s.once, s.twice FROM agg.customer_sets AS s
        WHERE s.merchant_id = $1 AND s.grain = p.grain AND s.status = ANY ($6::text[])
          AND s.period_start = p.period_start
        OFFSET 0 -- an index probe per period, not a join with every stored period
    ) AS s
    GROUP BY p.grp
), firsts AS (
    -- Customers whose first order ever (any status) lies in the range; smallest first too.
    SELECT p.grp, agg.set_union(s.once ORDER BY cardinality(s.once)) AS once
    FROM period AS p
    CROSS JOIN LATERAL (
        SELECT s.once FROM agg.customer_sets AS s
        WHERE s.merchant_id = $1 AND s.grain = p.grain AND s.status = 'first' AND s.period_start = p.period_start
        OFFSET 0
    ) AS s
    GROUP BY p.grp
), counts AS (
    SELECT k.grp, public.icount((k.acc).once) AS customers, public.icount((k.acc).twice) AS repeaters,
           public.icount(public._int_inter((k.acc).once, coalesce(f.once, '{}'))) AS new_customers
    FROM kept AS k
    LEFT JOIN firsts AS f USING (grp)
)
SELECT c.grp,
       c.customers,
       c.new_customers,
       round(c.repeaters::numeric / c.customers, 4)::float8 AS repeat_rate
FROM counts AS c
WHERE c.customers > 0
