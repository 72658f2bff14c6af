-- Customer figures (docs/metrics.md) of groups of ranges under a status filter, from
-- agg.customer_tiles (api.customer_counts): a few binary searches per stored period tiling
-- each range, whatever the number of customers.
--
-- $1 merchant id; $2 group, $3 grain (d, w, m, q), $4 first and $5 last period start, one
-- element per tile; $6 group and $7 first day, one element per group; $8 the status filter as
-- bits (0 created .. 4 returned). One row per group that has customers; groups without are zero.
SELECT c.grp, c.customers, c.new_customers, round(c.repeaters::numeric / c.customers, 4)::float8 AS repeat_rate
FROM api.customer_counts($1, $2::int[], $3::"char"[], $4::date[], $5::date[], $6::int[], $7::date[], $8) AS c
WHERE c.customers > 0
