-- The catalog copy (agg.products: names and skus for the API, and each product's category for
-- the category facts). Figures follow the current catalog: when a product's category changes,
-- the orders holding it are netted again with the old category out and the new one in, so its
-- whole history moves.

-- Fills catalog_changes with the products of p_merchants that differ from the copy (found by
-- sums of hashes computed on the source: only the lists that differ are read) and with the
-- products of new_orders's lines missing from the copy (new, or another merchant's).
CREATE PROCEDURE refresh.read_catalog(p_merchants bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_stale   bigint[];
    v_missing bigint[];
BEGIN
    v_stale := ARRAY(
        SELECT merchant_id
        FROM refresh.source_product_sums(p_merchants) AS s
        FULL JOIN (SELECT a.merchant_id, count(*) AS products, count(a.category_id) AS categorized,
                          sum(hashtextextended(a.sku, a.id)) AS skus, sum(hashtextextended(a.name, a.id)) AS names,
                          sum(hashint8extended(a.category_id, a.id)) AS categories
                   FROM agg.products AS a WHERE a.merchant_id = ANY (p_merchants) GROUP BY 1) AS a USING (merchant_id)
        WHERE (s.products, s.categorized, s.skus, s.names, s.categories)
              IS DISTINCT FROM (a.products, a.categorized, a.skus, a.names, a.categories));
    IF cardinality(v_stale) > 0 THEN
        WITH p AS MATERIALIZED (SELECT * FROM refresh.source_products(v_stale))
        INSERT INTO pg_temp.catalog_changes
        SELECT p.merchant_id, p.id, p.sku, p.name, p.category_id, false FROM p
        WHERE NOT EXISTS (SELECT FROM agg.products a
                          WHERE a.id = p.id AND (a.merchant_id, a.sku, a.name, a.category_id)
                                                IS NOT DISTINCT FROM (p.merchant_id, p.sku, p.name, p.category_id))
        UNION ALL
        SELECT a.merchant_id, a.id, a.sku, a.name, a.category_id, true FROM agg.products a
        WHERE a.merchant_id = ANY (v_stale) AND NOT EXISTS (SELECT FROM p WHERE p.id = a.id)
        ON CONFLICT DO NOTHING;
    END IF;
    v_missing := ARRAY(
        SELECT p FROM (SELECT DISTINCT o.lines[i][1] AS p FROM pg_temp.new_orders o
                       CROSS JOIN LATERAL generate_subscripts(o.lines, 1) AS i) AS x
        WHERE NOT EXISTS (SELECT FROM agg.products a WHERE a.id = x.p)
          AND NOT EXISTS (SELECT FROM pg_temp.catalog_changes c WHERE c.id = x.p));
    IF cardinality(v_missing) > 0 THEN
        INSERT INTO pg_temp.catalog_changes
        SELECT merchant_id, id, sku, name, category_id, false FROM refresh.source_products_by_id(v_missing)
        ON CONFLICT DO NOTHING;
    END IF;
END $$;

-- Adds to both old_orders and new_orders, as the snapshot has them, the orders holding a
-- product whose category changes (refresh.add_facts then moves their category facts).
CREATE PROCEDURE refresh.add_catalog_orders()
LANGUAGE plpgsql AS $$
DECLARE
    v_moved     bigint[];
    v_merchants bigint[];
BEGIN
    SELECT array_agg(c.id), array_agg(DISTINCT coalesce(a.merchant_id, c.merchant_id)) INTO v_moved, v_merchants
    FROM pg_temp.catalog_changes c LEFT JOIN agg.products a ON a.id = c.id
    WHERE (CASE WHEN c.gone THEN NULL ELSE c.category_id END) IS DISTINCT FROM a.category_id;
    IF v_moved IS NULL THEN
        RETURN;
    END IF;
    -- The merchants' orders (a scan of their snapshot rows; && first, for speed: it also
    -- matches a product id among a line's other numbers, which the exact test drops).
    WITH o AS MATERIALIZED (
        SELECT o.* FROM pipeline.orders o
        WHERE o.merchant_id = ANY (v_merchants) AND o.lines && v_moved
          AND EXISTS (SELECT FROM generate_subscripts(o.lines, 1) AS i WHERE o.lines[i][1] = ANY (v_moved))
          AND NOT EXISTS (SELECT FROM pg_temp.old_orders x WHERE x.order_id = o.order_id)
          AND NOT EXISTS (SELECT FROM pg_temp.new_orders x WHERE x.order_id = o.order_id)
    ), old AS (
        INSERT INTO pg_temp.old_orders SELECT * FROM o
    )
    INSERT INTO pg_temp.new_orders SELECT * FROM o;
END $$;

-- Applies catalog_changes to the copy.
CREATE PROCEDURE refresh.apply_catalog()
LANGUAGE plpgsql AS $$
BEGIN
    -- Gone, or moved to another merchant (re-inserted below).
    DELETE FROM agg.products a USING pg_temp.catalog_changes c
    WHERE a.id = c.id AND (c.gone OR a.merchant_id <> c.merchant_id);
    INSERT INTO agg.products AS a (merchant_id, id, sku, name, category_id)
    SELECT merchant_id, id, sku, name, category_id FROM pg_temp.catalog_changes WHERE NOT gone
    ORDER BY merchant_id, id
    ON CONFLICT (merchant_id, id) DO UPDATE SET sku = EXCLUDED.sku, name = EXCLUDED.name, category_id = EXCLUDED.category_id;
END $$;
