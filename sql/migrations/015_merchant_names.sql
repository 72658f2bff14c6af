-- Analytics database, version 15: the merchants' names, copied from the source by every change
-- scan like the reference data. The dashboard shows who is looking (GET /v1/me) and lets an
-- admin pick a merchant (GET /v1/admin/merchants, through a SECURITY DEFINER function of the
-- code package).
CREATE TABLE agg.merchants (
    merchant_id bigint PRIMARY KEY,
    name        text NOT NULL
);
GRANT SELECT ON agg.merchants TO merchantagg_api;
ALTER TABLE agg.merchants ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.merchants
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
