-- Source (marketplace OLTP) schema of docs/metrics.md (The source data). merchantagg only creates it for demos, tests and
-- benchmarks; a real deployment points at its own database and adapts sql/code/source_contract.sql.
CREATE TABLE IF NOT EXISTS merchants (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS categories (
    id        bigint PRIMARY KEY,
    parent_id bigint REFERENCES categories (id),
    name      text NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    id          bigint PRIMARY KEY,
    merchant_id bigint NOT NULL REFERENCES merchants (id),
    category_id bigint NOT NULL REFERENCES categories (id),
    sku         text NOT NULL,
    name        text NOT NULL,
    price       numeric(12,2) NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS cities (
    id     bigint PRIMARY KEY,
    name   text NOT NULL,
    region text NOT NULL,
    lat    double precision NOT NULL,
    lon    double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS customers (
    id         bigint PRIMARY KEY,
    city_id    bigint NOT NULL REFERENCES cities (id),
    created_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    id             bigint PRIMARY KEY,
    merchant_id    bigint NOT NULL,
    customer_id    bigint NOT NULL,
    city_id        bigint NOT NULL,
    delivery_type  text NOT NULL,
    payment_method text NOT NULL,
    status         text NOT NULL,
    total_amount   numeric(14,2) NOT NULL,
    created_at     timestamptz NOT NULL,
    accepted_at    timestamptz,
    delivered_at   timestamptz,
    cancelled_at   timestamptz,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS order_items (
    id         bigint PRIMARY KEY,
    order_id   bigint NOT NULL,
    product_id bigint NOT NULL,
    quantity   int NOT NULL,
    unit_price numeric(12,2) NOT NULL
);

CREATE TABLE IF NOT EXISTS returns (
    id            bigint PRIMARY KEY,
    order_id      bigint NOT NULL,
    order_item_id bigint NOT NULL,
    quantity      int NOT NULL,
    amount        numeric(14,2) NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
