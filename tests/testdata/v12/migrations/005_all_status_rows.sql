-- Analytics database, version 5: rows of status 'all' (the sum of every status) beside the
-- per-status rows of agg.order_stats and agg.dim_stats. The default filter (every status)
-- then reads one row per period and key instead of five: a year of a 5000-product merchant's
-- product breakdown went from ~56k rows to ~11k. The cancelled count moves into a column so
-- that an 'all' row still carries it (a per-status row has cancelled = orders when its status
-- is cancelled, else 0).
ALTER TABLE agg.order_stats ADD COLUMN cancelled bigint NOT NULL DEFAULT 0;
ALTER TABLE agg.dim_stats ADD COLUMN cancelled bigint NOT NULL DEFAULT 0;
UPDATE agg.order_stats SET cancelled = orders WHERE status = 'cancelled';
UPDATE agg.dim_stats SET cancelled = orders WHERE status = 'cancelled';

-- Existing aggregates get their 'all' rows here, from local rows (no source access).
INSERT INTO agg.order_stats (merchant_id, grain, period_start, status, orders, accepted, delivered,
    returned, items, gmv, delivered_gmv, returned_amount, delivery_seconds, cancelled)
SELECT merchant_id, grain, period_start, 'all', sum(orders), sum(accepted), sum(delivered), sum(returned),
       sum(items), sum(gmv), sum(delivered_gmv), sum(returned_amount), sum(delivery_seconds), sum(cancelled)
FROM agg.order_stats GROUP BY merchant_id, grain, period_start;
INSERT INTO agg.dim_stats (merchant_id, dimension, grain, period_start, status, key, orders, accepted,
    delivered, returned, items, gmv, delivered_gmv, returned_amount, delivery_seconds, cancelled)
SELECT merchant_id, dimension, grain, period_start, 'all', key, sum(orders), sum(accepted), sum(delivered),
       sum(returned), sum(items), sum(gmv), sum(delivered_gmv), sum(returned_amount), sum(delivery_seconds),
       sum(cancelled)
FROM agg.dim_stats GROUP BY merchant_id, dimension, grain, period_start, key;
