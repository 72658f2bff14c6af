-- Monthly cohort retention (SPEC §3) of every status, from agg.cohort_cells (migration 004):
-- the cell of the cohort's own month is its size. A status filter uses cohorts_filtered.sql.
--
-- $1 merchant id; $2 first cohort month; $3 last cohort month (both first days).
-- One row per cohort × k with active customers, with the cohort's size.
SELECT c.cohort, s.customers,
       ((extract(year FROM c.month) - extract(year FROM c.cohort)) * 12
        + extract(month FROM c.month) - extract(month FROM c.cohort))::int AS k,
       round(c.customers::numeric / s.customers, 4)::float8 AS share
FROM agg.cohort_cells AS c
JOIN agg.cohort_cells AS s ON s.merchant_id = c.merchant_id AND s.cohort = c.cohort AND s.month = c.cohort
WHERE c.merchant_id = $1 AND c.cohort BETWEEN $2::date AND $3::date AND c.month <= $3::date
ORDER BY 1, 3
