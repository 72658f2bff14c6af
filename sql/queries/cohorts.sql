-- Monthly cohort retention (docs/metrics.md) from agg.cohort_counts: a cohort's size is its
-- customers (any status) in its own month; its cell for a month counts those whose orders of
-- that month include a status of the filter.
--
-- $1 merchant id; $2 first and $3 last cohort month (first days); $4 the status filter as bits
-- (0 created .. 4 returned). One row per cohort × month with active customers (k NULL for a
-- cohort with none), with the cohort's size.
WITH sizes AS (
    SELECT cohort, sum(customers) AS size
    FROM agg.cohort_counts
    WHERE merchant_id = $1 AND cohort BETWEEN $2::date AND $3::date AND month = cohort
    GROUP BY cohort
), cells AS (
    SELECT cohort, month, sum(customers) AS n
    FROM agg.cohort_counts
    WHERE merchant_id = $1 AND cohort BETWEEN $2::date AND $3::date AND month <= $3::date AND statuses & $4::int <> 0
    GROUP BY cohort, month
)
SELECT s.cohort, s.size AS customers,
       ((extract(year FROM c.month) - extract(year FROM s.cohort)) * 12
        + extract(month FROM c.month) - extract(month FROM s.cohort))::int AS k,
       round(c.n::numeric / s.size, 4)::float8 AS share
FROM sizes s
LEFT JOIN cells c USING (cohort)
ORDER BY 1, 3
