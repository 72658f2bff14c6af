-- The backfill's baseline: one plain GROUP BY over the whole source computing the merchant ×
-- business day × status order figures, as a DBA would write it. $1 time zone.
SELECT count(*)
FROM (
    SELECT merchant_id, (created_at AT TIME ZONE $1)::date AS day, status,
           count(*), count(accepted_at), count(delivered_at), sum(total_amount)
    FROM orders
    GROUP BY 1, 2, 3
) g
