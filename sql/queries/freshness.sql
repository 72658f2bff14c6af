-- The freshness of the merchant set in app.merchant_id (sql/code/freshness.sql).
SELECT refreshed_at, covered_watermark, last_scan_at, pending_days,
       extract(epoch FROM clock_timestamp() - covered_watermark)::float8 AS lag_seconds
FROM api.merchant_freshness()
