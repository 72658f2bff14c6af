-- Analytics database, version 13: the compact store (docs/architecture.md, "Storage").
--
-- Until version 12 every breakdown key had a row per day, week, month and quarter and status
-- (agg.dim_stats), and customer figures were kept as per-customer rows and sets: the analytics
-- database was 5–8× the source it summarizes. Version 13 keeps each additive fact once, at
-- the day, in running sums per key and month; customer figures as counts of per-order events
-- per period; and an order snapshot of one narrow row per order.
--
-- Pipeline state moves from schema refresh to schema pipeline, so that the code package owns
-- schemas refresh and api whole (each migrate drops and recreates them).

CREATE SCHEMA pipeline;
ALTER TABLE refresh.settings SET SCHEMA pipeline;
ALTER TABLE refresh.dirty_days SET SCHEMA pipeline;
ALTER TABLE refresh.dirty_orders SET SCHEMA pipeline;
ALTER TABLE refresh.drift_log SET SCHEMA pipeline;
ALTER TABLE refresh.index_builds SET SCHEMA pipeline;
-- The version-12 snapshot is kept until the code package has converted it
-- (refresh.convert_v12, called by migrate), then dropped.
ALTER TABLE refresh.order_snapshot SET SCHEMA pipeline;
ALTER TABLE refresh.line_snapshot SET SCHEMA pipeline;
ALTER TABLE pipeline.order_snapshot RENAME TO v12_order_snapshot;
ALTER TABLE pipeline.line_snapshot RENAME TO v12_line_snapshot;
UPDATE pipeline.index_builds SET index_name = replace(index_name, 'refresh.', 'pipeline.');

-- The layout of version 12, rebuilt below from the snapshot (no source reads).
DROP TABLE agg.order_stats, agg.dim_stats, agg.customer_days, agg.customer_first, agg.customer_numbers,
    agg.customer_sets, agg.customer_chain, agg.customer_steps, agg.cohort_cells;
DROP FUNCTION IF EXISTS agg.merchant_freshness();
DROP AGGREGATE agg.set_union(int[]);
DROP AGGREGATE agg.customer_union(int[], int[]);
DROP FUNCTION agg.customer_union_step(agg.customer_union_state, int[], int[]);
DROP TYPE agg.customer_union_state;
DROP FUNCTION agg.dimension_code(text), agg.grain_code(text), agg.status_code(text);
DELETE FROM pipeline.index_builds WHERE index_name LIKE 'agg.%';

-- One row per order: what the aggregates took from it when it was last read, so a changed
-- order is netted (old figures out, new in) without reading its day again. Money in cents,
-- delivery time in microseconds (0 unless delivered). status: 0 created, 1 accepted,
-- 2 delivered, 3 cancelled, 4 returned. delivery and payment: ids of ref.labels. lines: four
-- numbers per product of the order: product id, items, gmv in cents, returned cents (-1: no
-- return of its lines). Not readable by the API role.
CREATE TABLE pipeline.orders (
    order_id       bigint PRIMARY KEY,
    merchant_id    bigint NOT NULL,
    customer_id    bigint NOT NULL,
    city_id        bigint,
    gmv_cents      bigint NOT NULL,
    returned_cents bigint NOT NULL,
    delivery_us    bigint NOT NULL,
    day            date NOT NULL,
    items          int NOT NULL,
    delivery       int,
    payment        int,
    status         smallint NOT NULL CHECK (status BETWEEN 0 AND 4),
    accepted       boolean NOT NULL,
    delivered      boolean NOT NULL,
    returned       boolean NOT NULL,
    lines          bigint[] NOT NULL
);
-- A changed customer's whole order sequence (customer figures), and a merchant's orders.
CREATE INDEX orders_customer_idx ON pipeline.orders (merchant_id, customer_id);

-- Merchants whose product list differs from the catalog copy (found by the change scan for
-- every merchant, with or without changed orders): their next refresh reads it again and
-- moves the history of every product whose category changed.
CREATE TABLE pipeline.dirty_catalogs (
    merchant_id bigint PRIMARY KEY,
    marked_at   timestamptz NOT NULL DEFAULT now()
);

-- The catalog copy is looked up by product id (a line's category, whatever merchant sells it).
CREATE UNIQUE INDEX products_id_idx ON agg.products (id);

-- Additive figures per merchant × dimension × key × month, as running sums since the key's
-- first order. dim: t total (key 0), p product, c category (its own products), g category
-- subtree (its own products and its descendants'), y city, d delivery type, m payment method (keys: ids of
-- ref.labels). A key has a row for every month from its first order's to the merchant's last
-- (so a range's edges find every key in two index ranges). ek lists the row's entries, sorted:
-- slot × 32 + day of month, where day 0 is the total before the month and slot 0 sums every
-- status, 1 created, 2 accepted, 3 cancelled, 4 returned (delivered = 0 minus the others).
-- v holds per entry the running sums since the key's first order, F numbers each (F = 6 for
-- p, c and g, 7 for the others): orders × 2^32 + accepted, delivered × 2^32 + returned, items,
-- gmv, delivered gmv and returned amount in cents, delivery time in microseconds. A row stays
-- within one page: the toaster leaves rows below 8160 bytes alone.
CREATE TABLE agg.key_months (
    merchant_id bigint NOT NULL,
    key         bigint NOT NULL,
    month       date NOT NULL,
    dim         "char" NOT NULL CHECK (dim IN ('t', 'p', 'c', 'g', 'y', 'd', 'm')),
    ek          smallint[] NOT NULL,
    v           bigint[] NOT NULL,
    PRIMARY KEY (merchant_id, dim, month, key)
) WITH (fillfactor = 90, toast_tuple_target = 8160);
ALTER TABLE agg.key_months ALTER COLUMN ek SET STORAGE MAIN, ALTER COLUMN v SET STORAGE MAIN;

-- Customer figures under any status filter, per merchant × period (grain d day, w ISO week,
-- m month, q quarter): counts of per-order events (docs/architecture.md, "Customers"). ck is
-- sorted: kind × 2^52 + filters × 2^20 + value, where kind 1 is "the latest earlier order of
-- the filter's statuses was on day value", 2 the same for the second latest, 3 "no earlier
-- order of the filter's statuses, the customer's first order was on day value"; filters is
-- the bit set of the status filters (1..31, bit f - 1) an event belongs to; value counts days
-- from 1900-01-01 (1), 0 meaning none. cum is the running count over ck, segs the distinct
-- kind × 2^52 + filters × 2^20 of ck and dck. dck and dcum are the same for the changes since
-- ck and cum were last written (counts may be negative): a refresh rewrites them alone, small,
-- until they grow to an eighth of the tile and are folded in.
CREATE TABLE agg.customer_tiles (
    merchant_id bigint NOT NULL,
    period      date NOT NULL,
    grain       "char" NOT NULL CHECK (grain IN ('d', 'w', 'm', 'q')),
    segs        bigint[] NOT NULL,
    ck          bigint[] NOT NULL,
    cum         int[] NOT NULL,
    dck         bigint[] NOT NULL DEFAULT '{}',
    dcum        int[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (merchant_id, grain, period)
) WITH (fillfactor = 90);

-- Cohorts: customers whose first order (any status) fell in month cohort, by the set of
-- statuses (bits 0 created .. 4 returned) of their orders in month.
CREATE TABLE agg.cohort_counts (
    merchant_id bigint NOT NULL,
    cohort      date NOT NULL,
    month       date NOT NULL,
    statuses    smallint NOT NULL CHECK (statuses BETWEEN 1 AND 31),
    customers   int NOT NULL CHECK (customers > 0),
    PRIMARY KEY (merchant_id, cohort, month, statuses)
);

GRANT SELECT ON agg.key_months, agg.customer_tiles, agg.cohort_counts TO merchantagg_api;
ALTER TABLE agg.key_months ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.key_months
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.customer_tiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_tiles
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.cohort_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.cohort_counts
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);

-- Aggregates built before version 8 have no snapshot to convert: rebuild from the source.
UPDATE pipeline.settings SET source_watermark = NULL
WHERE NOT EXISTS (SELECT FROM pipeline.v12_order_snapshot) AND EXISTS (SELECT FROM agg.freshness);
