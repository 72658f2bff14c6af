-- The source contract: the only SQL that names source tables and columns. To run against a
-- source whose schema differs from docs/metrics.md (The source data), edit schema_name/table_name/column_name here
-- (or point table_name at a view on the source) and run `merchantagg migrate`.
DROP SCHEMA IF EXISTS src CASCADE;
CREATE SCHEMA src;

CREATE FOREIGN TABLE src.merchants (
    id         bigint,
    name       text,
    created_at timestamptz
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'merchants');

CREATE FOREIGN TABLE src.categories (
    id        bigint,
    parent_id bigint,
    name      text
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'categories');

CREATE FOREIGN TABLE src.products (
    id          bigint,
    merchant_id bigint,
    category_id bigint,
    sku         text,
    name        text,
    price       numeric(12,2),
    created_at  timestamptz
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'products');

CREATE FOREIGN TABLE src.cities (
    id     bigint,
    name   text,
    region text,
    lat    double precision,
    lon    double precision
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'cities');

CREATE FOREIGN TABLE src.customers (
    id         bigint,
    city_id    bigint,
    created_at timestamptz
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'customers');

CREATE FOREIGN TABLE src.orders (
    id             bigint,
    merchant_id    bigint,
    customer_id    bigint,
    city_id        bigint,
    delivery_type  text,
    payment_method text,
    status         text,
    total_amount   numeric(14,2),
    created_at     timestamptz,
    accepted_at    timestamptz,
    delivered_at   timestamptz,
    cancelled_at   timestamptz,
    updated_at     timestamptz
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'orders');

CREATE FOREIGN TABLE src.order_items (
    id         bigint,
    order_id   bigint,
    product_id bigint,
    quantity   int,
    unit_price numeric(12,2)
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'order_items');

CREATE FOREIGN TABLE src.returns (
    id            bigint,
    order_id      bigint,
    order_item_id bigint,
    quantity      int,
    amount        numeric(14,2),
    created_at    timestamptz,
    updated_at    timestamptz
) SERVER merchantagg_source OPTIONS (schema_name 'public', table_name 'returns');

-- The source's open transactions, for the change scan's horizon (sql/code/scan.sql). The
-- source user needs pg_read_all_stats to see other roles' transactions; without it the scan
-- falls back to looking back max_txn_age on every run.
CREATE FOREIGN TABLE src.activity (
    datname      name,
    backend_type text,
    xact_start   timestamptz,
    query        text
) SERVER merchantagg_source OPTIONS (schema_name 'pg_catalog', table_name 'pg_stat_activity');
