-- Indexes the refresh needs on the source: per-merchant ranges of created_at (the pushed-down
-- aggregates), updated_at (the change scan), the join keys of items and returns, and each
-- merchant's products (every refresh compares its merchants' product lists by sums of
-- hashes). A real deployment's DBA creates the equivalent (CONCURRENTLY) before the first
-- refresh.
CREATE INDEX IF NOT EXISTS orders_merchant_created_idx ON orders (merchant_id, created_at);
CREATE INDEX IF NOT EXISTS orders_updated_idx ON orders (updated_at);
CREATE INDEX IF NOT EXISTS order_items_order_idx ON order_items (order_id);
CREATE INDEX IF NOT EXISTS returns_order_idx ON returns (order_id);
CREATE INDEX IF NOT EXISTS products_merchant_idx ON products (merchant_id);
