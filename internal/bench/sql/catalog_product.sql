-- Moves the product of merchant $1 with the most lines (the longest history) to the next
-- subcategory. Returns the product and its lines.
WITH p AS (
    SELECT i.product_id, count(*) AS lines
    FROM order_items i JOIN orders o ON o.id = i.order_id
    WHERE o.merchant_id = $1
    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1
), moved AS (
    UPDATE products pr SET category_id = (SELECT coalesce(min(c.id), (SELECT min(id) FROM categories WHERE parent_id IS NOT NULL))
                                          FROM categories c WHERE c.parent_id IS NOT NULL AND c.id > pr.category_id)
    FROM p WHERE pr.id = p.product_id
    RETURNING pr.id
)
SELECT p.product_id, p.lines FROM p JOIN moved ON moved.id = p.product_id
