-- Monthly cohort retention (SPEC §3) under a status filter, from agg.customer_sets (migration
-- 007): a cohort is the month's 'first' set (customers whose first order with the merchant,
-- any status, fell in it); cell (cohort, k) = its members in the union of month cohort + k's
-- sets of the statuses kept, observed up to the last month.
--
-- $1 merchant id; $2 first cohort month; $3 last cohort month (both first days); $4 statuses.
-- One row per cohort × k with active customers (k NULL for a cohort with none), with its size.
WITH members AS (
    SELECT period_start AS cohort, once
    FROM agg.customer_sets
    WHERE merchant_id = $1 AND grain = 'month' AND status = 'first' AND period_start BETWEEN $2::date AND $3::date
), active AS MATERIALIZED ( -- united once, not again for every cohort (a generic plan would)
    SELECT period_start AS month, agg.set_union(once) AS once
    FROM agg.customer_sets
    WHERE merchant_id = $1 AND grain = 'month' AND status = ANY ($4::text[]) AND period_start BETWEEN $2::date AND $3::date
    GROUP BY period_start
)
SELECT m.cohort, public.icount(m.once) AS customers, c.k,
       round(c.n::numeric / public.icount(m.once), 4)::float8 AS share
FROM members AS m
LEFT JOIN LATERAL (
    SELECT ((extract(year FROM a.month) - extract(year FROM m.cohort)) * 12
            + extract(month FROM a.month) - extract(month FROM m.cohort))::int AS k,
           public.icount(public._int_inter(m.once, a.once)) AS n
    FROM active AS a
    WHERE a.month >= m.cohort
) AS c ON c.n > 0
ORDER BY 1, 3
