-- Analytics database, version 2: breakdowns by dimension, products for ABC analysis, customers
-- and cohorts.

-- ref: reference data shared by every merchant (city and category names). Not merchant data,
-- so readable by the API role without RLS.
CREATE SCHEMA ref;
CREATE TABLE ref.cities (
    id     bigint PRIMARY KEY,
    name   text NOT NULL,
    region text NOT NULL,
    lat    double precision,
    lon    double precision
);
CREATE TABLE ref.categories (
    id        bigint PRIMARY KEY,
    parent_id bigint,
    name      text NOT NULL
);
GRANT USAGE ON SCHEMA ref TO merchantagg_api;
GRANT SELECT ON ALL TABLES IN SCHEMA ref TO merchantagg_api;

-- A merchant's products (names for breakdowns and ABC).
CREATE TABLE agg.products (
    merchant_id bigint NOT NULL,
    id          bigint NOT NULL,
    sku         text NOT NULL,
    name        text NOT NULL,
    category_id bigint,
    PRIMARY KEY (merchant_id, id)
);

-- Order figures per merchant × dimension key × period × current status. Dimensions:
-- city, region, delivery_type, payment_method (each order has one key: figures as in
-- agg.order_stats) and product, category (from order lines: items and gmv of the key's lines,
-- orders = distinct orders containing it, returned = those with a return of its lines).
-- Grains day, month and quarter: a range is tiled with them; weeks are never needed here.
CREATE TABLE agg.dim_stats (
    merchant_id      bigint NOT NULL,
    dimension        text NOT NULL CHECK (dimension IN ('product', 'category', 'city', 'region', 'delivery_type', 'payment_method')),
    grain            text NOT NULL CHECK (grain IN ('day', 'month', 'quarter')),
    period_start     date NOT NULL,
    status           text NOT NULL,
    key              text NOT NULL,
    orders           bigint NOT NULL,
    accepted         bigint NOT NULL,
    delivered        bigint NOT NULL,
    returned         bigint NOT NULL,
    items            bigint NOT NULL,
    gmv              numeric(16,2) NOT NULL,
    delivered_gmv    numeric(16,2) NOT NULL,
    returned_amount  numeric(16,2) NOT NULL,
    delivery_seconds numeric NOT NULL,
    PRIMARY KEY (merchant_id, dimension, grain, period_start, status, key)
);

-- Orders per merchant × day × customer × status: distinct customers over any range stay exact
-- (a sum of per-day distinct counts would not be).
CREATE TABLE agg.customer_days (
    merchant_id bigint NOT NULL,
    day         date NOT NULL,
    customer_id bigint NOT NULL,
    status      text NOT NULL,
    orders      int NOT NULL,
    gmv         numeric(16,2) NOT NULL,
    PRIMARY KEY (merchant_id, day, customer_id, status)
);
CREATE INDEX customer_days_customer_idx ON agg.customer_days (merchant_id, customer_id, day);

-- Each customer's first order day with the merchant, any status (new customers, cohorts).
CREATE TABLE agg.customer_first (
    merchant_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    first_day   date NOT NULL,
    PRIMARY KEY (merchant_id, customer_id)
);
CREATE INDEX customer_first_day_idx ON agg.customer_first (merchant_id, first_day);

-- Same rule as every agg table (001): rows of the merchant named by app.merchant_id only.
ALTER TABLE agg.products ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.products
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.dim_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.dim_stats
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.customer_days ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_days
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.customer_first ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_first
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);

-- The new tables are empty for days refreshed before this migration: clearing the watermark
-- makes the next `merchantagg refresh` (or change scan) rebuild every merchant's days.
UPDATE refresh.settings SET source_watermark = NULL;
