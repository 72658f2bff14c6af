-- The catalog copy (agg.products: names and skus for the API, and each product's category for
-- the category facts). Figures follow the current catalog: when a product's category changes,
-- the orders holding it are netted again with the old category out and the new one in, so its
-- whole history moves.

-- The merchants among p_merchants whose product list differs from the copy's, by sums of
-- hashes of their products' ids, skus, names and categories computed on the source (a rename
-- or a move bumps no updated_at), against the copy's in pipeline.catalog_sums.
CREATE FUNCTION refresh.stale_catalogs(p_merchants bigint[]) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT merchant_id
    FROM refresh.source_product_sums(p_merchants) AS s
    FULL JOIN (SELECT * FROM pipeline.catalog_sums a WHERE a.merchant_id = ANY (p_merchants)) AS a USING (merchant_id)
    WHERE (s.products, s.categorized, s.skus, s.names, s.categories)
          IS DISTINCT FROM (a.products, a.categorized, a.skus, a.names, a.categories)
$$;

-- Marks dirty the merchants whose product list differs from the copy, for the change scan:
-- every merchant the aggregates know, with or without changed orders. Returns how many.
CREATE FUNCTION refresh.mark_stale_catalogs() RETURNS bigint
LANGUAGE sql AS $$
    WITH m AS (
        INSERT INTO pipeline.dirty_catalogs (merchant_id)
        SELECT * FROM refresh.stale_catalogs(ARRAY(SELECT merchant_id FROM agg.freshness
                                                   UNION SELECT merchant_id FROM pipeline.catalog_sums))
        ORDER BY 1
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM m
$$;

-- Fills catalog_changes with the products of p_merchants that differ from the copy (only the
-- lists whose sums differ are read) and with the products of new_orders's lines missing from
-- the copy (new, or another merchant's).
CREATE PROCEDURE refresh.read_catalog(p_merchants bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_stale   bigint[];
    v_missing bigint[];
BEGIN
    v_stale := ARRAY(SELECT * FROM refresh.stale_catalogs(p_merchants));
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
    -- The lines' products as an array first: looked up one by one in the copy (the planner,
    -- expecting a thousand lines an order, hashed the whole copy instead).
    v_missing := ARRAY(
        SELECT x.p FROM unnest(ARRAY(SELECT DISTINCT o.lines[i][1] FROM pg_temp.new_orders o
                                     CROSS JOIN LATERAL generate_subscripts(o.lines, 1) AS i)) AS x (p)
        WHERE NOT EXISTS (SELECT FROM agg.products a WHERE a.id = x.p)
          AND NOT EXISTS (SELECT FROM pg_temp.catalog_changes c WHERE c.id = x.p));
    IF cardinality(v_missing) > 0 THEN
        INSERT INTO pg_temp.catalog_changes
        SELECT merchant_id, id, sku, name, category_id, false FROM refresh.source_products_by_id(v_missing)
        ON CONFLICT DO NOTHING;
    END IF;
END $$;

-- Fills catalog_orders with the orders, as the snapshot has them, that hold a product whose
-- category changes and are not staged already (refresh.add_catalog_facts then moves their
-- category facts, and nothing else of them).
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
    CALL refresh.find_catalog_orders(v_merchants, v_moved);
END $$;

-- Fills catalog_orders with the snapshot's orders of p_merchants (NULL: every merchant) that
-- hold a line of a product among p_products and are not staged already: a scan of those
-- merchants' snapshot rows. The arrays are written into the statement as constants, so that
-- = ANY tests each line against a hash of them (with a parameter it compares each line with
-- every product: hours for a category of thousands of products at 10M orders).
CREATE PROCEDURE refresh.find_catalog_orders(p_merchants bigint[], p_products bigint[])
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$
        INSERT INTO pg_temp.catalog_orders
        SELECT o.* FROM pipeline.orders o
        WHERE (%1$L::bigint[] IS NULL OR o.merchant_id = ANY (%1$L::bigint[]))
          AND EXISTS (SELECT FROM generate_subscripts(o.lines, 1) AS i WHERE o.lines[i][1] = ANY (%2$L::bigint[]))
          AND NOT EXISTS (SELECT FROM pg_temp.old_orders x WHERE x.order_id = o.order_id)
          AND NOT EXISTS (SELECT FROM pg_temp.new_orders x WHERE x.order_id = o.order_id)$q$,
        p_merchants, p_products);
END $$;

-- Applies catalog_changes to the copy, and sums again the lists it changes.
CREATE PROCEDURE refresh.apply_catalog()
LANGUAGE plpgsql AS $$
DECLARE
    v_merchants bigint[];
BEGIN
    v_merchants := ARRAY(SELECT c.merchant_id FROM pg_temp.catalog_changes c
                         UNION
                         SELECT a.merchant_id FROM pg_temp.catalog_changes c JOIN agg.products a ON a.id = c.id);
    IF cardinality(v_merchants) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO pg_temp.changed_merchants SELECT unnest(v_merchants) ON CONFLICT DO NOTHING;
    -- Gone, or moved to another merchant (re-inserted below).
    DELETE FROM agg.products a USING pg_temp.catalog_changes c
    WHERE a.id = c.id AND (c.gone OR a.merchant_id <> c.merchant_id);
    INSERT INTO agg.products AS a (merchant_id, id, sku, name, category_id)
    SELECT merchant_id, id, sku, name, category_id FROM pg_temp.catalog_changes WHERE NOT gone
    ORDER BY merchant_id, id
    ON CONFLICT (merchant_id, id) DO UPDATE SET sku = EXCLUDED.sku, name = EXCLUDED.name, category_id = EXCLUDED.category_id;
    DELETE FROM pipeline.catalog_sums WHERE merchant_id = ANY (v_merchants);
    INSERT INTO pipeline.catalog_sums
    SELECT merchant_id, count(*), count(category_id), sum(hashtextextended(sku, id)), sum(hashtextextended(name, id)),
           sum(hashint8extended(category_id, id))
    FROM agg.products WHERE merchant_id = ANY (v_merchants) GROUP BY merchant_id;
END $$;

-- Moves the history of every category whose parent changed in the source (the change scan
-- copies names only; refresh.load_reference places a new category under one that had no
-- subcategories here too): every order holding a product of a category whose ancestors change
-- is netted again, its category-subtree facts (g) taken out by the old tree and put in by the
-- new one, for all merchants in one transaction (each locked, in id order). A parent that gains
-- its first subcategory or loses its last one has its own products netted again as well: it
-- starts or stops having subtree facts (refresh.category_ancestors), and the rows of one that
-- stops are deleted. The reconciliation job runs it. Returns how many categories moved.
CREATE PROCEDURE refresh.move_categories(INOUT p_moved int DEFAULT 0)
LANGUAGE plpgsql
SET work_mem = '256MB'
AS $$
DECLARE
    v_moved     bigint[];
    v_affected  bigint[];
    v_parents   bigint[];
    v_products  bigint[];
    v_merchant  bigint;
BEGIN
    SELECT array_agg(s.id) INTO v_moved
    FROM src.categories s JOIN ref.categories c ON c.id = s.id
    WHERE s.parent_id IS DISTINCT FROM c.parent_id;
    p_moved := coalesce(cardinality(v_moved), 0);
    IF p_moved = 0 THEN
        RETURN;
    END IF;
    -- The moved categories and everything below them, in the old tree and in the new one.
    WITH RECURSIVE below (id) AS (
        SELECT unnest(v_moved)
        UNION
        SELECT c.id FROM below b
        JOIN (SELECT id, parent_id FROM ref.categories UNION SELECT id, parent_id FROM src.categories) AS c ON c.parent_id = b.id
    )
    SELECT array_agg(id) INTO v_affected FROM below;
    -- The old and new parents whose subcategories change from none or to none.
    v_parents := ARRAY(
        SELECT p.id FROM (SELECT parent_id FROM ref.categories WHERE id = ANY (v_moved)
                          UNION SELECT parent_id FROM src.categories WHERE id = ANY (v_moved)) AS p (id)
        WHERE p.id IS NOT NULL
          AND EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = p.id)
              IS DISTINCT FROM EXISTS (SELECT FROM ref.categories c
                                       WHERE c.parent_id = p.id AND NOT c.id = ANY (v_moved)
                                       UNION ALL
                                       SELECT FROM src.categories s WHERE s.parent_id = p.id AND s.id = ANY (v_moved)));
    v_products := ARRAY(SELECT id FROM agg.products WHERE category_id = ANY (v_affected || v_parents));
    CALL refresh.scratch();
    FOR v_merchant IN SELECT DISTINCT merchant_id FROM agg.products WHERE id = ANY (v_products) ORDER BY 1 LOOP
        CALL refresh.lock_merchant(v_merchant);
    END LOOP;
    CALL refresh.find_catalog_orders(NULL, v_products);
    CALL refresh.add_catalog_facts(-1);
    UPDATE ref.categories c SET parent_id = s.parent_id FROM src.categories s
    WHERE s.id = c.id AND s.id = ANY (v_moved);
    CALL refresh.add_catalog_facts(1);
    CALL refresh.apply_key_deltas();
    -- Netted to zero: the subtree rows of the parents left without subcategories (and their
    -- pending changes, of merchants that sold nothing of the moved products).
    DELETE FROM agg.key_months k
    WHERE k.dim = 'g' AND k.key = ANY (v_parents) AND NOT EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = k.key);
    DELETE FROM agg.key_pending k
    WHERE k.dim = 'g' AND k.key = ANY (v_parents) AND NOT EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = k.key);
    UPDATE agg.freshness f SET data_version = f.data_version + 1
    FROM pg_temp.changed_merchants c WHERE f.merchant_id = c.merchant_id;
END $$;
