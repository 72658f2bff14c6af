-- SPEC §3 customer figures for groups of date ranges (a range and its previous one, or the
-- points of a series), from agg.customer_days: distinct customers stay exact over any range.
--
-- $1 merchant id; $2..$4 one element per group: group, first and last day; $5 statuses kept.
-- One row per group that has customers; groups without are zero.
WITH g AS (
    SELECT * FROM unnest($2::int[], $3::date[], $4::date[]) AS g (grp, lo, hi)
), c AS (
    SELECT g.grp, cd.customer_id, sum(cd.orders) AS orders, sum(cd.gmv) AS gmv
    FROM g
    JOIN agg.customer_days AS cd
      ON cd.merchant_id = $1 AND cd.day BETWEEN g.lo AND g.hi AND cd.status = ANY ($5::text[])
    GROUP BY g.grp, cd.customer_id
)
SELECT c.grp,
       count(*) AS customers,
       count(*) FILTER (WHERE f.first_day BETWEEN g.lo AND g.hi) AS new_customers,
       round(count(*) FILTER (WHERE c.orders >= 2)::numeric / count(*), 4)::float8 AS repeat_rate,
       round(sum(c.orders)::numeric / count(*), 2)::float8 AS orders_per_customer,
       round(sum(c.gmv) / count(*), 2)::text AS gmv_per_customer
FROM c
JOIN g USING (grp)
LEFT JOIN agg.customer_first AS f ON f.merchant_id = $1 AND f.customer_id = c.customer_id
GROUP BY c.grp, g.lo, g.hi
