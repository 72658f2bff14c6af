-- SPEC §3 customer figures for groups of date ranges (a range and its previous one, or the
-- points of a series), from agg.customer_days: distinct customers stay exact over any range.
--
-- $1 merchant id; $2..$4 one element per group: group, first and last day; $5 statuses kept.
-- One row per group that has customers; groups without are zero.
WITH g AS (
    SELECT * FROM unnest($2::int[], $3::date[], $4::date[]) AS g (grp, lo, hi)
), d AS (
    -- Each day of each group: customer days are matched by equality (a hash join), not by
    -- comparing every row with every group's bounds.
    SELECT g.grp, x::date AS day FROM g, generate_series(g.lo, g.hi, interval '1 day') AS x
), c AS (
    SELECT d.grp, cd.customer_id, sum(cd.orders) AS orders, sum(cd.gmv) AS gmv
    FROM agg.customer_days AS cd
    JOIN d ON d.day = cd.day
    WHERE cd.merchant_id = $1 AND cd.status = ANY ($5::text[])
      AND cd.day BETWEEN (SELECT min(lo) FROM g) AND (SELECT max(hi) FROM g)
    GROUP BY d.grp, cd.customer_id
), f AS MATERIALIZED (
    -- One pass over the merchant's first-order days, joined by hash (not one probe per customer).
    SELECT customer_id, first_day FROM agg.customer_first WHERE merchant_id = $1
)
SELECT c.grp,
       count(*) AS customers,
       count(*) FILTER (WHERE f.first_day BETWEEN g.lo AND g.hi) AS new_customers,
       round(count(*) FILTER (WHERE c.orders >= 2)::numeric / count(*), 4)::float8 AS repeat_rate,
       round(sum(c.orders)::numeric / count(*), 2)::float8 AS orders_per_customer,
       round(sum(c.gmv) / count(*), 2)::text AS gmv_per_customer
FROM c
JOIN g USING (grp)
LEFT JOIN f ON f.customer_id = c.customer_id
GROUP BY c.grp, g.lo, g.hi
