-- Analytics database, version 16: each customer tile also holds its counts as a range of its
-- own (the period from its first day), per segment: a point of a series, and the first tile of
-- any range, is then read from two short arrays, without the binary searches in ck and cum
-- (megabytes for a large merchant's quarter) that the other tiles of a range still need.
--
-- below[i] and events[i] go with segs[i]: of the events of that segment (ck and dck together),
-- how many, and how many with a value below the period's first day. A refresh adds its changes
-- to both, and from this version segs lists the segments that have events (one whose events
-- all went is dropped). The tiles stored by version 15 get them here from their arrays, in one UPDATE that
-- holds agg.customer_tiles locked (customer figures wait for it; `migrate` says how long).
ALTER TABLE agg.customer_tiles ADD COLUMN below int[], ADD COLUMN events int[];

UPDATE agg.customer_tiles AS c
SET below = h.below, events = h.events
FROM (
    SELECT t.merchant_id, t.grain, t.period,
           array_agg(coalesce(t.cum[width_bucket(s.s + t.lo - 1, t.ck)], 0) - coalesce(t.cum[width_bucket(s.s - 1, t.ck)], 0)
                     + coalesce(t.dcum[width_bucket(s.s + t.lo - 1, t.dck)], 0) - coalesce(t.dcum[width_bucket(s.s - 1, t.dck)], 0)
                     ORDER BY s.i) AS below,
           array_agg(coalesce(t.cum[width_bucket(s.s + 1048575, t.ck)], 0) - coalesce(t.cum[width_bucket(s.s - 1, t.ck)], 0)
                     + coalesce(t.dcum[width_bucket(s.s + 1048575, t.dck)], 0) - coalesce(t.dcum[width_bucket(s.s - 1, t.dck)], 0)
                     ORDER BY s.i) AS events
    -- Each tile's arrays copied out of storage once (|| '{}'), not at every binary search.
    FROM (SELECT merchant_id, grain, period, segs, ck || '{}'::bigint[] AS ck, cum || '{}'::int[] AS cum, dck, dcum,
                 (period - date '1899-12-31')::bigint AS lo
          FROM agg.customer_tiles) AS t
    CROSS JOIN LATERAL unnest(t.segs) WITH ORDINALITY AS s (s, i)
    GROUP BY t.merchant_id, t.grain, t.period
) AS h
WHERE (c.merchant_id, c.grain, c.period) = (h.merchant_id, h.grain, h.period);

UPDATE agg.customer_tiles SET below = '{}', events = '{}' WHERE below IS NULL; -- no segment
ALTER TABLE agg.customer_tiles ALTER COLUMN below SET NOT NULL, ALTER COLUMN events SET NOT NULL;
