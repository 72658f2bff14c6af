-- The refresh's scratch tables: session temporary tables (no WAL, no dead rows left behind),
-- created on first use in a session and emptied at every commit. One unit of work (a merchant
-- or a set of merchants, in one transaction) passes its data between procedures through them.
--
--   table            written by                          read by
--   read_orders,     refresh.read_days, read_orders,     refresh.stage_orders
--   read_lines       read_lines                          (the source's rows, before shaping)
--   new_orders       refresh.stage_orders                refresh.add_facts('new'), customers,
--                                                        refresh.replace_snapshot
--   old_orders       refresh.read_days, read_orders,     refresh.add_facts('old'), customers
--                    stage_orders                              (the snapshot's rows of the same orders)
--   catalog_orders   refresh.add_catalog_orders,         refresh.add_catalog_facts
--                    move_categories                           (snapshot rows whose categories move)
--   key_deltas       refresh.add_facts                   refresh.apply_key_deltas
--   changed_customers refresh.stage_orders               refresh.add_customer_events
--   tile_deltas,     refresh.add_customer_events         refresh.apply_customer_deltas
--   cohort_deltas
--   catalog_changes  refresh.read_catalog                refresh.add_catalog_orders,
--                                                        refresh.apply_catalog
--   changed_merchants refresh.apply_key_deltas,          refresh.mark_fresh, move_categories
--                    apply_customer_deltas, apply_catalog      (the merchants whose data changed)
--
-- read_orders has refresh.source_order_rows's columns and the returned amount; new_orders,
-- old_orders and catalog_orders have pipeline.orders's columns. key_deltas: net changes of the
-- daily facts of agg.key_months (slot and figures as there, figures as plain numbers, not
-- running sums). tile_deltas: changes of the event counts of agg.customer_tiles, by ck.
-- cohort_deltas: changes of agg.cohort_counts. changed_customers: the customers whose order
-- sequence changed, and their first changed order (cut_day, cut_order).
CREATE PROCEDURE refresh.scratch()
LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.changed_merchants') IS NULL THEN -- created last: a session of an older release lacks it
        CREATE TEMP TABLE IF NOT EXISTS read_orders (
            order_id bigint PRIMARY KEY, merchant_id bigint, created_at timestamptz, status text, customer_id bigint,
            city_id bigint, delivery_type text, payment_method text, accepted boolean, delivered boolean,
            gmv numeric, delivery_time interval, returned_amount numeric
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS read_lines (
            order_id bigint, product_id bigint, items bigint, gmv numeric, returned_amount numeric,
            PRIMARY KEY (order_id, product_id)
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS new_orders (LIKE pipeline.orders, PRIMARY KEY (order_id)) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS old_orders (LIKE pipeline.orders, PRIMARY KEY (order_id)) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS catalog_orders (LIKE pipeline.orders, PRIMARY KEY (order_id)) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS key_deltas (
            merchant_id bigint, dim "char", key bigint, slot int, day date,
            w1 bigint, w2 bigint, w3 bigint, w4 bigint, w5 bigint, w6 bigint, w7 bigint
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS changed_customers (
            merchant_id bigint, customer_id bigint, cut_day date, cut_order bigint, PRIMARY KEY (merchant_id, customer_id)
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS tile_deltas (
            merchant_id bigint, grain "char", period date, ck bigint, n int
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS cohort_deltas (
            merchant_id bigint, cohort date, month date, statuses smallint, n int
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS catalog_changes (
            merchant_id bigint, id bigint PRIMARY KEY, sku text, name text, category_id bigint, gone boolean
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE IF NOT EXISTS changed_merchants (merchant_id bigint PRIMARY KEY) ON COMMIT DELETE ROWS;
    END IF;
END $$;
