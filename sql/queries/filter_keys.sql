-- The agg.key_months rows a dimension filter reads (docs/metrics.md, Drill-down): dimension
-- code and keys. A product of the merchant (p), a category with its subtree (g; a category
-- without subcategories, its own products: c), a city (y), a region's cities (y), a delivery
-- type (d) or payment method (m) by its label. No row: the key is unknown.
--
-- Parameters: @merchant_id; @dimension (the API's name); @id (product, category, city) or
-- @label (region, delivery type, payment method).
SELECT 'p' AS dim, ARRAY[p.id] AS keys FROM agg.products p
WHERE @dimension = 'product' AND p.merchant_id = @merchant_id AND p.id = @id::bigint
UNION ALL
SELECT api.subtree_code(c.id)::text, ARRAY[c.id]
FROM ref.categories c WHERE @dimension = 'category' AND c.id = @id::bigint
UNION ALL
SELECT 'y', ARRAY[c.id] FROM ref.cities c WHERE @dimension = 'city' AND c.id = @id::bigint
UNION ALL
SELECT 'y', array_agg(c.id ORDER BY c.id) FROM ref.cities c WHERE @dimension = 'region' AND c.region = @label::text
HAVING count(*) > 0
UNION ALL
SELECT CASE l.dimension WHEN 'delivery_type' THEN 'd' ELSE 'm' END, ARRAY[l.id::bigint] FROM ref.labels l
WHERE @dimension IN ('delivery_type', 'payment_method') AND l.dimension = @dimension AND l.label = @label::text
