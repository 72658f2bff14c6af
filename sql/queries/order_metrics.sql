-- Order metrics (docs/metrics.md) of groups of ranges: a range and its previous one, or the
-- points of a series, from the merchant's total row (dimension t of agg.key_months).
--
-- $1 merchant id; $2 group, $3 first and $4 last day, one element per group; $5 slots, $6
-- their coefficients, $7 their coefficients in the cancelled count (internal/stats, the status
-- filter). One row per group that has orders; groups without are zero.
SELECT k.grp, m.orders, m.accepted, m.delivered, m.cancelled, m.returned, m.items, m.gmv::text, m.returned_amount::text,
       m.revenue::text, m.aov::text, m.cancel_rate, m.return_rate, m.avg_delivery_hours
FROM api.key_sums($1, 't', $2::int[], $3::date[], $4::date[], $5::int[], $6::int[], $7::int[], '{t,t,t,t,t,t,t,t}') AS k
CROSS JOIN LATERAL api.metrics(k.w1, k.w2, k.w3, k.w4, k.w5, k.w6, k.w7, k.cancelled) AS m
WHERE m.orders > 0
