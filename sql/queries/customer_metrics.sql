-- SPEC §3 customer figures of every status, for groups of date ranges (a range and its
-- previous one, or the points of a series), from agg.customer_steps (migration 004): one index
-- probe per stored period tiling the range. A status filter uses customer_metrics_filtered.sql.
--
-- $1 merchant id; $2..$5 one element per tile as in order_metrics.sql; $6, $7 one element per
-- group: group and first day. One row per group that has customers; groups without are zero.
WITH tile AS (
    SELECT t.grp, t.grain, t.first_start, t.last_start, g.lo
    FROM unnest($2::int[], $3::text[], $4::date[], $5::date[]) AS t (grp, grain, first_start, last_start)
    JOIN unnest($6::int[], $7::date[]) AS g (grp, lo) USING (grp)
), period AS MATERIALIZED (
    -- Materialized: inlined, the generic plan joins the probes below with every stored period
    -- (a daily series of a year at 10M went from 20 ms to past the 5 s statement timeout).
    SELECT t.grp, t.grain, p::date AS period_start, t.lo
    FROM tile AS t,
         generate_series(t.first_start, t.last_start,
                         CASE t.grain WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                                      WHEN 'month' THEN interval '1 month' ELSE interval '3 months' END) AS p
), counts AS (
    -- Per period: cum1 = its customers' first orders in the range, cum2 - cum1 = second
    -- orders, firsts = first orders ever (see migration 004).
    SELECT p.grp, sum(s.cum1) AS customers, sum(s.cum2 - s.cum1) AS repeaters, sum(s.firsts) AS new_customers
    FROM period AS p
    CROSS JOIN LATERAL (
        SELECT st.cum1, st.cum2, st.firsts FROM agg.customer_steps AS st
        WHERE st.merchant_id = $1 AND st.grain = p.grain AND st.period_start = p.period_start
          AND st.prev_day < p.lo
        ORDER BY st.prev_day DESC
        LIMIT 1
    ) AS s
    GROUP BY p.grp
)
SELECT c.grp,
       c.customers,
       c.new_customers,
       round(c.repeaters::numeric / c.customers, 4)::float8 AS repeat_rate
FROM counts AS c
WHERE c.customers > 0
