-- The analytics database's tables (with their indexes and TOAST) in bytes, largest first, and
-- the whole database's size.
SELECT format('%I.%I', n.nspname, c.relname), pg_total_relation_size(c.oid), pg_database_size(current_database())
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname IN ('agg', 'pipeline', 'ref')
ORDER BY 2 DESC, 1
