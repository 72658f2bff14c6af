-- Indexes the refresh needs on the source: per-merchant ranges of created_at (the pushed-down
-- aggregates), updated_at (the change scan) and the join keys of items and returns. A real
-- deployment's DBA creates the equivalent (CONCURRENTLY) before the first refresh.
CREATE INDEX IF NOT EXISTS orders_merchant_created_idx ON orders (merchant_id, created_at);
CREATE INDEX IF NOT EXISTS orders_updated_idx ON orders (updated_at);
CREATE INDEX IF NOT EXISTS order_items_order_idx ON order_items (order_id);
CREATE INDEX IF NOT EXISTS returns_order_idx ON returns (order_id);
