-- Upgrading from version 12 (migration 013): the snapshot of version 12 becomes
-- pipeline.orders, and every aggregate is built from it, with no source read.

-- Converts what migration 013 kept of version 12, if anything, one merchant per transaction
-- (it commits: call it outside a transaction block), then drops it. Each merchant's figures
-- appear when its transaction commits. Returns nothing; notices tell the progress.
CREATE PROCEDURE refresh.convert_v12()
LANGUAGE plpgsql AS $$ -- no SET clause: it commits
DECLARE
    v_merchant bigint;
    v_done     int := 0;
    v_total    int;
BEGIN
    IF to_regclass('pipeline.v12_order_snapshot') IS NULL THEN
        RETURN;
    END IF;
    SELECT count(DISTINCT merchant_id) INTO v_total FROM pipeline.v12_order_snapshot;
    FOR v_merchant IN SELECT DISTINCT merchant_id FROM pipeline.v12_order_snapshot ORDER BY 1 LOOP
        CALL refresh.lock_merchant(v_merchant);
        CALL refresh.scratch();
        INSERT INTO ref.labels (dimension, label)
        SELECT DISTINCT x.dimension, x.label
        FROM pipeline.v12_order_snapshot o
        CROSS JOIN LATERAL (VALUES ('delivery_type', o.delivery_type), ('payment_method', o.payment_method)) AS x (dimension, label)
        WHERE o.merchant_id = v_merchant AND x.label IS NOT NULL
        ON CONFLICT DO NOTHING;
        INSERT INTO pg_temp.new_orders
        SELECT o.order_id, o.merchant_id, o.customer_id, o.city_id, (o.gmv * 100)::bigint, (o.returned_amount * 100)::bigint,
               CASE WHEN o.delivered THEN (extract(epoch FROM o.delivery_time) * 1000000)::bigint ELSE 0 END,
               o.day, o.items, d.id, p.id, refresh.status_index(o.status), o.accepted, o.delivered, o.returned,
               coalesce(l.lines, '{}')
        FROM pipeline.v12_order_snapshot o
        LEFT JOIN (SELECT l.order_id,
                          array_agg(ARRAY[l.product_id, l.items, (l.gmv * 100)::bigint,
                                          CASE WHEN l.returned THEN (l.returned_amount * 100)::bigint ELSE -1 END]
                                    ORDER BY l.product_id) AS lines
                   FROM pipeline.v12_line_snapshot l
                   WHERE l.order_id IN (SELECT order_id FROM pipeline.v12_order_snapshot WHERE merchant_id = v_merchant)
                   GROUP BY 1) AS l USING (order_id)
        LEFT JOIN ref.labels d ON d.dimension = 'delivery_type' AND d.label = o.delivery_type
        LEFT JOIN ref.labels p ON p.dimension = 'payment_method' AND p.label = o.payment_method
        WHERE o.merchant_id = v_merchant;
        INSERT INTO pg_temp.changed_customers
        SELECT DISTINCT ON (merchant_id, customer_id) merchant_id, customer_id, day, order_id FROM pg_temp.new_orders
        ORDER BY merchant_id, customer_id, day, order_id;
        CALL refresh.add_facts('new');
        CALL refresh.replace_snapshot();
        CALL refresh.add_customer_events(1);
        CALL refresh.apply_key_deltas();
        CALL refresh.apply_customer_deltas();
        COMMIT;
        v_done := v_done + 1;
        RAISE NOTICE 'converted merchant % (% of %)', v_merchant, v_done, v_total;
    END LOOP;
    DROP TABLE pipeline.v12_line_snapshot, pipeline.v12_order_snapshot;
END $$;
