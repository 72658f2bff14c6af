-- Analytics database, version 20: the changes a refresh has not yet written into
-- agg.key_months. A change rewrites its key's row from its day's month on, a few dozen entries
-- for one figure moved; most refreshes instead add their net daily changes here, and reads add
-- those in their range to what agg.key_months gives. A merchant's pending changes are written
-- into its rows (folded) once they are many (refresh.defer_key_deltas), so that a row touched
-- by many refreshes (a merchant's totals, a popular product's) is rewritten once for all.
-- Figures as in agg.key_months but plain numbers, not running sums: w1 orders × 2^32 +
-- accepted (either may be negative), w7 0 for p, c and g. Created empty: nothing to convert.
CREATE TABLE agg.key_pending (
    merchant_id bigint NOT NULL,
    dim         "char" NOT NULL CHECK (dim IN ('t', 'p', 'c', 'g', 'y', 'd', 'm')),
    key         bigint NOT NULL,
    day         date NOT NULL,
    slot        smallint NOT NULL CHECK (slot BETWEEN 0 AND 4),
    w1 bigint NOT NULL, w2 bigint NOT NULL, w3 bigint NOT NULL, w4 bigint NOT NULL,
    w5 bigint NOT NULL, w6 bigint NOT NULL, w7 bigint NOT NULL,
    PRIMARY KEY (merchant_id, dim, key, day, slot)
);

GRANT SELECT ON agg.key_pending TO merchantagg_api;
ALTER TABLE agg.key_pending ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.key_pending
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
