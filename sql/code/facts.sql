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
-- current catalog) counted once per order, and a category's subtree (g) the lines of every
-- product in it (ref.categories; the category's own products too), counted once per order.
-- Only categories with subcategories have subtree facts: a leaf's subtree is its own products,
-- the same facts as its c key, and reads take those (most categories are leaves).

-- Each category and the categories whose subtree facts (g) it counts in: itself, if it has
-- subcategories (its subtree holds the products sitting directly on it), and its ancestors in
-- ref.categories, the tree the g facts are kept by.
CREATE FUNCTION refresh.category_ancestors()
RETURNS TABLE (category_id bigint, ancestor_id bigint)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up (category_id, ancestor_id, depth) AS (
        SELECT c.id, c.id, 0 FROM ref.categories c
        UNION ALL
        SELECT up.category_id, c.parent_id, up.depth + 1
        FROM up JOIN ref.categories c ON c.id = up.ancestor_id
        WHERE c.parent_id IS NOT NULL AND up.depth < 64 -- a cycle in the source stops here
    )
    SELECT DISTINCT category_id, ancestor_id FROM up
    WHERE depth > 0 OR EXISTS (SELECT FROM ref.categories x WHERE x.parent_id = up.ancestor_id)
$$;

-- The slot of a pipeline.orders status besides slot 0; NULL for delivered.
CREATE FUNCTION refresh.status_slot(p_status smallint) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 3 THEN 3 WHEN 4 THEN 4 END
$$;

-- Fills fact_orders (each order once per slot it counts in: 0 and its status's) and fact_lines
-- (its lines) from the scratch table p_orders (new_orders, old_orders or catalog_orders),
-- signed p_sign. They are set apart and analyzed first: planned on guesses (a thousand lines an
-- order), the joins below hashed every product of the catalog and sized their hash tables for
-- millions of rows.
CREATE PROCEDURE refresh.collect_facts(p_orders text, p_sign int)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_orders NOT IN ('new_orders', 'old_orders', 'catalog_orders') OR p_sign NOT IN (-1, 1) THEN
        RAISE EXCEPTION 'collect_facts: % signed %', p_orders, p_sign USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS fact_orders (LIKE pipeline.orders, sign int, slot int) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS fact_lines (
        merchant_id bigint, day date, slot int, sign int, order_id bigint, accepted boolean, delivered boolean,
        product_id bigint, items bigint, gmv bigint, ret bigint
    ) ON COMMIT DELETE ROWS;
    DELETE FROM pg_temp.fact_orders;
    DELETE FROM pg_temp.fact_lines;
    EXECUTE format($q$
        INSERT INTO pg_temp.fact_orders
        SELECT o.*, %s, sl.slot
        FROM pg_temp.%I AS o
        CROSS JOIN LATERAL (VALUES (0), (refresh.status_slot(o.status))) AS sl (slot)
        WHERE sl.slot IS NOT NULL$q$, p_sign, p_orders);
    INSERT INTO pg_temp.fact_lines
    SELECT s.merchant_id, s.day, s.slot, s.sign, s.order_id, s.accepted, s.delivered,
           s.lines[i][1], s.lines[i][2], s.lines[i][3], s.lines[i][4]
    FROM pg_temp.fact_orders s CROSS JOIN LATERAL generate_subscripts(s.lines, 1) AS i;
    ANALYZE pg_temp.fact_orders;
    ANALYZE pg_temp.fact_lines;
END $$;

-- Adds to key_deltas the facts of the collected orders by their own keys (t, y, d, m) and by
-- product (p).
CREATE PROCEDURE refresh.add_order_and_product_facts()
LANGUAGE plpgsql
SET enable_sort = off -- group by hashing
SET work_mem = '256MB'
AS $$
BEGIN
    WITH facts AS (
        SELECT s.merchant_id, k.dim, k.key, s.slot, s.day,
               s.sign * (4294967296 + s.accepted::int) AS w1,
               s.sign * (s.delivered::int * 4294967296 + s.returned::int) AS w2,
               s.sign * s.items AS w3, s.sign * s.gmv_cents AS w4,
               s.sign * CASE WHEN s.delivered THEN s.gmv_cents ELSE 0 END AS w5,
               s.sign * s.returned_cents AS w6, s.sign * s.delivery_us AS w7
        FROM pg_temp.fact_orders s
        CROSS JOIN LATERAL (VALUES ('t'::"char", 0::bigint), ('y', s.city_id), ('d', s.delivery::bigint),
                                   ('m', s.payment::bigint)) AS k (dim, key)
        WHERE k.key IS NOT NULL
        UNION ALL
        SELECT merchant_id, 'p', product_id, slot, day,
               sign * (4294967296 + accepted::int), sign * (delivered::int * 4294967296 + (ret >= 0)::int),
               sign * items, sign * gmv, sign * CASE WHEN delivered THEN gmv ELSE 0 END, sign * greatest(ret, 0), 0
        FROM pg_temp.fact_lines
    )
    INSERT INTO pg_temp.key_deltas
    SELECT merchant_id, dim, key, slot, day, agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4), agg.isum(w5),
           agg.isum(w6), agg.isum(w7)
    FROM facts
    GROUP BY merchant_id, dim, key, slot, day;
END $$;

-- Adds to key_deltas the facts of the collected orders' lines by category (c: the category of
-- each line's product in the catalog copy, agg.products) and by category subtree (g: that
-- category and its ancestors in ref.categories), each counted once per order.
CREATE PROCEDURE refresh.add_category_facts()
LANGUAGE plpgsql
SET enable_sort = off
SET work_mem = '256MB'
AS $$
BEGIN
    WITH lp AS MATERIALIZED (
        -- The lines' products, found by id: the catalog copy holds every merchant's products,
        -- and hashing it whole cost a small refresh more than its own lines.
        SELECT p.id, p.category_id FROM agg.products p
        WHERE p.id = ANY (ARRAY(SELECT DISTINCT product_id FROM pg_temp.fact_lines)) AND p.category_id IS NOT NULL
    ), facts AS (
        SELECT l.merchant_id, 'c'::"char" AS dim, p.category_id AS key, l.slot, l.day,
               l.sign * (4294967296 + l.accepted::int) AS w1,
               l.sign * (l.delivered::int * 4294967296 + bool_or(l.ret >= 0)::int) AS w2,
               l.sign * agg.isum(l.items) AS w3, l.sign * agg.isum(l.gmv) AS w4,
               l.sign * CASE WHEN l.delivered THEN agg.isum(l.gmv) ELSE 0 END AS w5,
               l.sign * agg.isum(greatest(l.ret, 0)) AS w6, 0 AS w7
        FROM pg_temp.fact_lines l JOIN lp p ON p.id = l.product_id
        GROUP BY l.merchant_id, l.order_id, p.category_id, l.slot, l.day, l.sign, l.accepted, l.delivered
        UNION ALL
        SELECT l.merchant_id, 'g', a.ancestor_id, l.slot, l.day,
               l.sign * (4294967296 + l.accepted::int), l.sign * (l.delivered::int * 4294967296 + bool_or(l.ret >= 0)::int),
               l.sign * agg.isum(l.items), l.sign * agg.isum(l.gmv), l.sign * CASE WHEN l.delivered THEN agg.isum(l.gmv) ELSE 0 END,
               l.sign * agg.isum(greatest(l.ret, 0)), 0
        FROM pg_temp.fact_lines l JOIN lp p ON p.id = l.product_id
        JOIN refresh.category_ancestors() a ON a.category_id = p.category_id
        GROUP BY l.merchant_id, l.order_id, a.ancestor_id, l.slot, l.day, l.sign, l.accepted, l.delivered
    )
    INSERT INTO pg_temp.key_deltas
    SELECT merchant_id, dim, key, slot, day, agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4), agg.isum(w5),
           agg.isum(w6), agg.isum(w7)
    FROM facts
    GROUP BY merchant_id, dim, key, slot, day;
END $$;

-- Adds every fact of new_orders ('new') or, negated, of old_orders ('old') to key_deltas. The
-- category of a line, and its ancestors, are the catalog copy's at the time of the call: the
-- old side is added before the copy takes the source's changes, the new side after
-- (refresh.apply_catalog).
CREATE PROCEDURE refresh.add_facts(p_side text)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_side NOT IN ('new', 'old') THEN
        RAISE EXCEPTION 'add_facts: side % is neither new nor old', p_side USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CALL refresh.collect_facts(p_side || '_orders', CASE p_side WHEN 'new' THEN 1 ELSE -1 END);
    CALL refresh.add_order_and_product_facts();
    CALL refresh.add_category_facts();
END $$;

-- Adds the category facts (c, g) of catalog_orders, the orders whose lines move category
-- with nothing else changed, signed p_sign (-1 by the old catalog, before it changes; 1 by the
-- new one): their other facts, their customers and their snapshot rows stay as they are.
CREATE PROCEDURE refresh.add_catalog_facts(p_sign int)
LANGUAGE plpgsql AS $$
BEGIN
    CALL refresh.collect_facts('catalog_orders', p_sign);
    CALL refresh.add_category_facts();
END $$;
