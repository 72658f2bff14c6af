-- The baseline of the reconciliation: month totals by status only (orders and gmv per
-- merchant × business month × status) on the source, what a reconciliation that sees no
-- dimension reads. $1 time zone.
SELECT count(*) FROM (
    SELECT merchant_id, date_trunc('month', created_at AT TIME ZONE $1), status, count(*), sum(total_amount)
    FROM orders GROUP BY 1, 2, 3
) AS t
