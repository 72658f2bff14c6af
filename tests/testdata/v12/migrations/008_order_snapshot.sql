-- Analytics database, version 8: incremental refresh by changed order.
--
-- Until version 7 a changed order made its whole (merchant, day) dirty, and the refresh
-- recomputed every order of that day from the source: 1k changed orders at 10M orders dirtied
-- ~500 merchant days holding ~150k orders, 14–20 s. Now the refresh keeps what each order
-- contributed to the aggregates when it last read it (the snapshot below). A changed order is
-- read again from the source by id, and the aggregates move by its new figures minus the
-- snapshot's: the order is the bucket that is recomputed whole. Reading an order twice is
-- harmless (the second read finds its snapshot equal to the source), so the change scan's
-- overlap stays safe; days are still recomputed whole by a backfill, a range refresh and
-- reconciliation, which rewrite the snapshot of those days with them.

-- One row per order: its business day and every figure and key the aggregates take from it.
-- delivery_time is NULL unless delivered. Not readable by the API role (no grant).
CREATE TABLE refresh.order_snapshot (
    order_id        bigint PRIMARY KEY,
    merchant_id     bigint NOT NULL,
    day             date NOT NULL,
    status          text NOT NULL,
    customer_id     bigint NOT NULL,
    city_id         bigint,
    delivery_type   text,
    payment_method  text,
    accepted        boolean NOT NULL,
    delivered       boolean NOT NULL,
    returned        boolean NOT NULL,
    items           int NOT NULL,
    gmv             numeric(14,2) NOT NULL,
    returned_amount numeric(14,2) NOT NULL,
    delivery_time   interval
);
CREATE INDEX order_snapshot_day_idx ON refresh.order_snapshot (merchant_id, day);

-- One row per order × product: the product's lines in that order, the category the product
-- had when read, and the returns of those lines.
CREATE TABLE refresh.line_snapshot (
    order_id        bigint NOT NULL,
    product_id      bigint NOT NULL,
    category_id     bigint,
    items           int NOT NULL,
    gmv             numeric(14,2) NOT NULL,
    returned        boolean NOT NULL,
    returned_amount numeric(14,2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Orders the change scan saw changed since their last read, with the business day the
-- source gave them then (reconciliation leaves their months alone until they are read).
CREATE TABLE refresh.dirty_orders (
    merchant_id bigint NOT NULL,
    order_id    bigint NOT NULL,
    day         date NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, order_id)
);
