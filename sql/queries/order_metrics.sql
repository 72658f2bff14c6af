-- Order metrics (docs/metrics.md) of groups of ranges: a range and its compared one, or the
-- points of a series (and their compared windows), from agg.key_months: the merchant's total
-- row (dimension t, key 0), or with a dimension filter the rows of its key (several, summed:
-- a region's cities).
--
-- Parameters: @merchant_id; @dim and @keys (the rows read); @grp, @from_day and @to_day, one
-- element per group; @slots, @coefs and @cancelled_coefs (internal/stats, the status filter).
-- @dim and the filter's arrays come as literals (internal/stats, bind): a plan per shape.
-- One row per group that has orders; groups without are zero.
WITH k AS (
    SELECT * FROM api.series_sums(@merchant_id, @dim::"char", @grp::int[], @from_day::date[], @to_day::date[], @slots::int[],
                                  @coefs::int[], @cancelled_coefs::int[], '{t,t,t,t,t,t,t,t}', @keys::bigint[])
), s AS (
    SELECT grp, agg.isum(w1) AS w1, agg.isum(w2) AS w2, agg.isum(w3) AS w3, agg.isum(w4) AS w4, agg.isum(w5) AS w5,
           agg.isum(w6) AS w6, agg.isum(w7) AS w7, agg.isum(cancelled) AS w8
    FROM k GROUP BY grp
)
SELECT s.grp, m.orders, m.accepted, m.delivered, m.cancelled, m.returned, m.items, m.gmv::text, m.returned_amount::text,
       m.revenue::text, m.aov::text, m.cancel_rate, m.return_rate, m.avg_delivery_hours
FROM s CROSS JOIN LATERAL api.metrics(s.w1, s.w2, s.w3, s.w4, s.w5, s.w6, s.w7, s.w8) AS m
WHERE m.orders > 0
