-- Analytics database, version 1: the fdw server, pipeline state, aggregate tables, the API role
-- and row-level security. Procedures live in sql/code (reinstalled on every migrate).

CREATE EXTENSION IF NOT EXISTS postgres_fdw;

-- Host, port, dbname and the user mapping are set by refresh.configure_source() on every
-- migrate from SOURCE_DATABASE_URL. use_remote_estimate stays off on purpose: the source
-- estimates one group per distinct created_at for GROUP BY date_bin(created_at), which makes
-- the pushed-down aggregate look no cheaper than pulling every row; local default estimates
-- push every refresh aggregate and join down (tests/refresh_test.go checks the plans).
-- A high fdw_tuple_cost says that shipping rows is what costs.
CREATE SERVER merchantagg_source FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (use_remote_estimate 'false', fdw_tuple_cost '0.2', fetch_size '10000');

-- src (the source contract) is created by sql/code/source_contract.sql.
-- refresh: pipeline state, never readable by the API role.
-- agg: what merchants read, every table keyed on merchant_id and guarded by RLS.

CREATE SCHEMA refresh;
CREATE SCHEMA agg;

CREATE TABLE refresh.settings (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    timezone         text NOT NULL DEFAULT 'Europe/Moscow',
    lookback         interval NOT NULL DEFAULT '5 minutes',
    -- Highest orders.updated_at the change scan has seen; NULL = nothing refreshed yet.
    source_watermark timestamptz,
    last_scan_at     timestamptz
);
INSERT INTO refresh.settings DEFAULT VALUES;

-- Business days whose aggregates must be recomputed. The change scan adds rows, a merchant's
-- refresh job deletes them in the same transaction that rewrites the days.
CREATE TABLE refresh.dirty_days (
    merchant_id bigint NOT NULL,
    day         date NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, day)
);

-- Order figures per merchant × period × current status. grain 'day' rows come from the source;
-- week/month/quarter rows are rollups of the day rows, so any range can be tiled with few rows.
-- Only additive figures are stored: rates and averages are derived at read time.
CREATE TABLE agg.order_stats (
    merchant_id      bigint NOT NULL,
    grain            text NOT NULL CHECK (grain IN ('day', 'week', 'month', 'quarter')),
    period_start     date NOT NULL,
    status           text NOT NULL,
    orders           bigint NOT NULL,
    accepted         bigint NOT NULL,
    delivered        bigint NOT NULL,
    returned         bigint NOT NULL,
    items            bigint NOT NULL,
    gmv              numeric(16,2) NOT NULL,
    delivered_gmv    numeric(16,2) NOT NULL,
    returned_amount  numeric(16,2) NOT NULL,
    delivery_seconds numeric NOT NULL,
    PRIMARY KEY (merchant_id, grain, period_start, status)
);

CREATE TABLE agg.freshness (
    merchant_id      bigint PRIMARY KEY,
    refreshed_at     timestamptz NOT NULL,
    source_watermark timestamptz
);

-- The API's connections SET ROLE to merchantagg_api: not an owner, not a superuser, no
-- BYPASSRLS, so the policies below always apply. Roles are cluster-wide, hence the guard
-- against another database's migrate creating it at the same moment.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'merchantagg_api') THEN
        CREATE ROLE merchantagg_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;
GRANT merchantagg_api TO CURRENT_USER;

GRANT USAGE ON SCHEMA agg TO merchantagg_api;
GRANT SELECT ON ALL TABLES IN SCHEMA agg TO merchantagg_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA agg GRANT SELECT ON TABLES TO merchantagg_api;

-- Every agg table: a row is visible only when app.merchant_id (set per request with
-- set_config(..., true)) names its merchant. NULLIF: a pooled session that once set it has ''.
ALTER TABLE agg.order_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.order_stats
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);

ALTER TABLE agg.freshness ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.freshness
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
