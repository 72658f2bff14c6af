-- Cohort retention straight from the source: cohorts by the month of each customer's first
-- order (any status) within the months of $2..$3; share of each cohort with a kept order in
-- every month from the cohort's to $3's.
-- $1 merchant, $2 first month, $3 last month (first days), $4 statuses, $5 time zone.
WITH first AS (
    SELECT customer_id, date_trunc('month', min((created_at AT TIME ZONE $5)::date))::date AS cohort
    FROM orders WHERE merchant_id = $1 GROUP BY customer_id
), members AS (
    SELECT * FROM first WHERE cohort BETWEEN $2::date AND $3::date
), months AS (
    SELECT m.cohort, g::date AS month
    FROM (SELECT DISTINCT cohort FROM members) m, generate_series(m.cohort, $3::date, interval '1 month') g
)
SELECT ms.cohort, (SELECT count(*) FROM members WHERE cohort = ms.cohort) AS size,
       round((SELECT count(*) FROM members mm WHERE mm.cohort = ms.cohort AND EXISTS (
                SELECT FROM orders o WHERE o.merchant_id = $1 AND o.customer_id = mm.customer_id
                  AND o.status = ANY ($4::text[])
                  AND date_trunc('month', (o.created_at AT TIME ZONE $5)::date)::date = ms.month))::numeric
             / (SELECT count(*) FROM members WHERE cohort = ms.cohort), 4)::float8 AS share
FROM months ms
ORDER BY ms.cohort, ms.month
