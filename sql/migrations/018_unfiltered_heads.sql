-- Analytics database, version 18: each customer tile also holds its counts as a range of its
-- own under no status filter, summed over its segments: head_all = {kind-1 events below the
-- period's first day, kind-2 below, kind-3 events, kind-3 below} of the events of filter 31
-- (every status). A point of an unfiltered series (the dashboard's default) then reads four
-- numbers, not every segment of its tile. A refresh keeps it with below and events. The tiles
-- stored by version 17 get it here from below and events, in one UPDATE that holds
-- agg.customer_tiles locked (customer figures wait for it; `migrate` says how long).
ALTER TABLE agg.customer_tiles ADD COLUMN head_all int[];

UPDATE agg.customer_tiles AS c
SET head_all = ARRAY[coalesce(h.c1, 0), coalesce(h.c2, 0), coalesce(h.c3, 0), coalesce(h.b3, 0)]
FROM (
    SELECT t.merchant_id, t.grain, t.period,
           sum(x.b) FILTER (WHERE x.s >> 52 = 1) AS c1, sum(x.b) FILTER (WHERE x.s >> 52 = 2) AS c2,
           sum(x.e) FILTER (WHERE x.s >> 52 = 3) AS c3, sum(x.b) FILTER (WHERE x.s >> 52 = 3) AS b3
    FROM agg.customer_tiles t CROSS JOIN LATERAL unnest(t.segs, t.below, t.events) AS x (s, b, e)
    WHERE (x.s >> 50) & 1 = 1 -- filter 31's bit
    GROUP BY 1, 2, 3
) AS h
WHERE (c.merchant_id, c.grain, c.period) = (h.merchant_id, h.grain, h.period);

UPDATE agg.customer_tiles SET head_all = '{0,0,0,0}' WHERE head_all IS NULL; -- no event of filter 31
ALTER TABLE agg.customer_tiles ALTER COLUMN head_all SET NOT NULL;
