-- Cohort retention straight from the source: cohorts by the month of each customer's first
-- order (any status) within the months of $2..$3; share of each cohort with a kept order in
-- every month from the cohort's to $3's.
-- $1 merchant, $2 first month, $3 last month (first days), $4 statuses, $5 time zone.
WITH first AS (
    SELECT customer_id, date_trunc('month', min((created_at AT TIME ZONE $5)::date))::date AS cohort
    FROM orders WHERE merchant_id = $1 GROUP BY customer_id
), members AS (
    SELECT * FROM first WHERE cohort BETWEEN $2::date AND $3::date
), sizes AS (
    SELECT cohort, count(*) AS size FROM members GROUP BY cohort
), active AS (
    SELECT DISTINCT customer_id, date_trunc('month', (created_at AT TIME ZONE $5)::date)::date AS month
    FROM orders WHERE merchant_id = $1 AND status = ANY ($4::text[])
), months AS (
    SELECT s.cohort, s.size, g::date AS month
    FROM sizes s, generate_series(s.cohort, $3::date, interval '1 month') g
)
SELECT ms.cohort, ms.size,
       round(count(a.customer_id)::numeric / ms.size, 4)::float8 AS share
FROM months ms
LEFT JOIN (members m JOIN active a USING (customer_id)) ON m.cohort = ms.cohort AND a.month = ms.month
GROUP BY ms.cohort, ms.size, ms.month
ORDER BY ms.cohort, ms.month
