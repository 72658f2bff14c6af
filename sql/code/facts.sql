-- Netting: the daily facts an order contributes to agg.key_months, per dimension key and
-- slot, added to key_deltas (the old side negated). Whole days and changed orders go through
-- the same SQL, so both count an order the same way.
--
-- An order gives every key it touches one fact in slot 0 (every status) and, unless it is
-- delivered, one in its status's slot (1 created, 2 accepted, 3 cancelled, 4 returned). The
-- figures (migration 013): orders × 2^32 + accepted, delivered × 2^32 + returned, items, gmv,
-- delivered gmv, returned amount, delivery time. Order keys (t, y, d, m) take the order's
-- own figures; a product (p) its lines' (returned: a return of its lines), a category (c) the
-- lines of its products (the catalog copy's category, agg.products: history follows the
-- current catalog) counted once per order.

-- The slot of a pipeline.orders status besides slot 0; NULL for delivered.
CREATE FUNCTION refresh.status_slot(p_status smallint) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 3 THEN 3 WHEN 4 THEN 4 END
$$;

-- Adds the facts of new_orders ('new') or, negated, of old_orders ('old') to key_deltas,
-- netted by key, slot and day. The category of a line is the catalog copy's at the time of
-- the call: the old side is added before the copy takes the source's changes, the new side
-- after (refresh.apply_catalog).
CREATE PROCEDURE refresh.add_facts(p_side text)
LANGUAGE plpgsql
SET enable_nestloop = off
SET enable_sort = off -- temp tables have no statistics: group by hashing
SET work_mem = '256MB'
AS $$
BEGIN
    IF p_side NOT IN ('new', 'old') THEN
        RAISE EXCEPTION 'add_facts: side % is neither new nor old', p_side USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH o AS (
        SELECT CASE p_side WHEN 'new' THEN 1 ELSE -1 END AS sign, o.*
        FROM pg_temp.new_orders o WHERE p_side = 'new'
        UNION ALL
        SELECT -1, o.* FROM pg_temp.old_orders o WHERE p_side = 'old'
    ), s AS (
        SELECT o.*, sl.slot
        FROM o CROSS JOIN LATERAL (VALUES (0), (refresh.status_slot(o.status))) AS sl (slot)
        WHERE sl.slot IS NOT NULL
    ), lines AS (
        SELECT s.merchant_id, s.day, s.slot, s.sign, s.order_id, s.accepted, s.delivered,
               s.lines[i][1] AS product_id, s.lines[i][2] AS items, s.lines[i][3] AS gmv, s.lines[i][4] AS ret
        FROM s CROSS JOIN LATERAL generate_subscripts(s.lines, 1) AS i
    ), facts AS (
        SELECT s.merchant_id, k.dim, k.key, s.slot, s.day,
               s.sign * (4294967296 + s.accepted::int) AS w1,
               s.sign * (s.delivered::int * 4294967296 + s.returned::int) AS w2,
               s.sign * s.items AS w3, s.sign * s.gmv_cents AS w4,
               s.sign * CASE WHEN s.delivered THEN s.gmv_cents ELSE 0 END AS w5,
               s.sign * s.returned_cents AS w6, s.sign * s.delivery_us AS w7
        FROM s CROSS JOIN LATERAL (VALUES ('t'::"char", 0::bigint), ('y', s.city_id), ('d', s.delivery::bigint),
                                          ('m', s.payment::bigint)) AS k (dim, key)
        WHERE k.key IS NOT NULL
        UNION ALL
        SELECT merchant_id, 'p', product_id, slot, day,
               sign * (4294967296 + accepted::int), sign * (delivered::int * 4294967296 + (ret >= 0)::int),
               sign * items, sign * gmv, sign * CASE WHEN delivered THEN gmv ELSE 0 END, sign * greatest(ret, 0), 0
        FROM lines
        UNION ALL
        SELECT l.merchant_id, 'c', p.category_id, l.slot, l.day,
               l.sign * (4294967296 + l.accepted::int), l.sign * (l.delivered::int * 4294967296 + bool_or(l.ret >= 0)::int),
               l.sign * agg.isum(l.items), l.sign * agg.isum(l.gmv), l.sign * CASE WHEN l.delivered THEN agg.isum(l.gmv) ELSE 0 END,
               l.sign * agg.isum(greatest(l.ret, 0)), 0
        FROM lines l JOIN agg.products p ON p.id = l.product_id
        WHERE p.category_id IS NOT NULL
        GROUP BY l.merchant_id, l.order_id, p.category_id, l.slot, l.day, l.sign, l.accepted, l.delivered
    )
    INSERT INTO pg_temp.key_deltas
    SELECT merchant_id, dim, key, slot, day, agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4), agg.isum(w5),
           agg.isum(w6), agg.isum(w7)
    FROM facts
    GROUP BY merchant_id, dim, key, slot, day;
END $$;
