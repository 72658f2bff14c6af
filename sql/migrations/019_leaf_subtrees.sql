-- Analytics database, version 19: a category without subcategories keeps no subtree rows (g):
-- its subtree is its own products, whose rows (c) hold the same figures, and reads take those.
-- Most categories are leaves, so this drops most g rows. One DELETE that holds the rows it
-- deletes locked (a refresh writing them waits; reads of leaves already read c rows).
DELETE FROM agg.key_months k
WHERE k.dim = 'g' AND NOT EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = k.key);
