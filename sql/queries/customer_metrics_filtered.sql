-- SPEC §3 customer figures under a status filter, for groups of date ranges (a range and its
-- previous one, or the points of a series), from agg.customer_sets (migration 007): per group,
-- one row per stored period tiling its range and status kept, united in C.
--
-- $1 merchant id; $2..$5 one element per tile as in order_metrics.sql; $6 statuses kept.
-- One row per group that has customers; groups without are zero.
WITH period AS (
    -- pi numbers a group's periods in order, for the tree of unions below.
    SELECT t.grp, t.grain, p::date AS period_start, row_number() OVER (PARTITION BY t.grp ORDER BY p) - 1 AS pi
    FROM unnest($2::int[], $3::text[], $4::date[], $5::date[]) AS t (grp, grain, first_start, last_start),
         generate_series(t.first_start, t.last_start,
                         CASE t.grain WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                                      WHEN 'month' THEN interval '1 month' ELSE interval '3 months' END) AS p
), kept1 AS (
    -- customers = in some once; repeaters (two orders or more) = in the union's twice. Each
    -- union step copies the state, a set of up to every customer of the range: folded over the
    -- rows one by one, a year of four statuses copied it ~60 times (p99 575 ms at 10M). A tree
    -- (the statuses of a period, then fours of those, …) copies it a few times.
    SELECT p.grp, p.pi, agg.customer_union(s.once, s.twice) AS acc
    FROM period AS p
    CROSS JOIN LATERAL (
        SELECT s.once, s.twice FROM agg.customer_sets AS s
        WHERE s.merchant_id = $1 AND s.grain = p.grain AND s.status = ANY ($6::text[])
          AND s.period_start = p.period_start
        OFFSET 0 -- an index probe per period, not a join with every stored period
    ) AS s
    GROUP BY p.grp, p.pi
), kept4 AS (
    SELECT grp, pi / 4 AS pi, agg.customer_union((acc).once, (acc).twice) AS acc FROM kept1 GROUP BY 1, 2
), kept16 AS (
    SELECT grp, pi / 4 AS pi, agg.customer_union((acc).once, (acc).twice) AS acc FROM kept4 GROUP BY 1, 2
), kept AS (
    SELECT grp, agg.customer_union((acc).once, (acc).twice) AS acc FROM kept16 GROUP BY 1
), firsts4 AS (
    -- Customers whose first order ever (any status) lies in the range, united by fours too.
    SELECT p.grp, p.pi / 4 AS pi, agg.set_union(s.once) AS once
    FROM period AS p
    CROSS JOIN LATERAL (
        SELECT s.once FROM agg.customer_sets AS s
        WHERE s.merchant_id = $1 AND s.grain = p.grain AND s.status = 'first' AND s.period_start = p.period_start
        OFFSET 0
    ) AS s
    GROUP BY 1, 2
), firsts AS (
    SELECT grp, agg.set_union(once) AS once FROM firsts4 GROUP BY 1
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
