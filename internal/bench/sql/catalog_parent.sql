-- Moves the subcategory with the most products under the next top-level category. Returns
-- the category and the products in it.
WITH c AS (
    SELECT category_id, count(*) AS products FROM products
    WHERE category_id IN (SELECT id FROM categories WHERE parent_id IS NOT NULL)
    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1
), moved AS (
    UPDATE categories SET parent_id = (SELECT coalesce(min(t.id), (SELECT min(id) FROM categories WHERE parent_id IS NULL))
                                       FROM categories t WHERE t.parent_id IS NULL AND t.id > categories.parent_id)
    FROM c WHERE categories.id = c.category_id
    RETURNING categories.id
)
SELECT c.category_id, c.products FROM c JOIN moved ON moved.id = c.category_id
