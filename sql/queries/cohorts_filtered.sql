-- Monthly cohort retention (SPEC §3): customers grouped by the month of their first order with
-- the merchant (any status); cell (cohort, k) counts those with an order kept by the status
-- filter in month cohort + k, observed up to the last month.
--
-- $1 merchant id; $2 first cohort month; $3 last cohort month (both first days); $4 statuses.
-- One row per cohort × k with active customers (k NULL for a cohort with none), with its size.
WITH members AS (
    SELECT customer_id, date_trunc('month', first_day::timestamp)::date AS cohort
    FROM agg.customer_first
    WHERE merchant_id = $1 AND first_day >= $2::date AND first_day < ($3::date + interval '1 month')
), active AS (
    SELECT DISTINCT m.cohort, m.customer_id, date_trunc('month', cd.day::timestamp)::date AS month
    FROM members AS m
    JOIN agg.customer_days AS cd
      ON cd.merchant_id = $1 AND cd.customer_id = m.customer_id AND cd.status = ANY ($4::text[])
     AND cd.day >= m.cohort AND cd.day < ($3::date + interval '1 month')
), sizes AS (
    SELECT cohort, count(*) AS customers FROM members GROUP BY cohort
), cells AS (
    SELECT cohort,
           ((extract(year FROM month) - extract(year FROM cohort)) * 12
            + extract(month FROM month) - extract(month FROM cohort))::int AS k,
           count(*) AS n
    FROM active GROUP BY cohort, month
)
SELECT s.cohort, s.customers, c.k, round(c.n::numeric / s.customers, 4)::float8 AS share
FROM sizes AS s
LEFT JOIN cells AS c USING (cohort)
ORDER BY 1, 3
