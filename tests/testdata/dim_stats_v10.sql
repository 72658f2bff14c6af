-- Turns a migrated analytics database's agg.dim_stats back into version 10's shape (names as
-- text, in the "C" collation), for TestDimCodesMigration. The names are written out here, not
-- taken from the code functions, so that the migration's mapping is checked against them.
ALTER TABLE agg.dim_stats
    DROP CONSTRAINT dim_stats_dimension_check,
    DROP CONSTRAINT dim_stats_grain_check,
    DROP CONSTRAINT dim_stats_status_check,
    ALTER COLUMN dimension TYPE text COLLATE "C" USING CASE dimension
        WHEN 'p' THEN 'product' WHEN 'c' THEN 'category' WHEN 't' THEN 'city' WHEN 'r' THEN 'region'
        WHEN 'd' THEN 'delivery_type' WHEN 'm' THEN 'payment_method' END,
    ALTER COLUMN grain TYPE text COLLATE "C" USING CASE grain
        WHEN 'd' THEN 'day' WHEN 'w' THEN 'week' WHEN 'm' THEN 'month' WHEN 'q' THEN 'quarter' END,
    ALTER COLUMN status TYPE text COLLATE "C" USING CASE status
        WHEN '*' THEN 'all' WHEN 'c' THEN 'created' WHEN 'a' THEN 'accepted' WHEN 'd' THEN 'delivered'
        WHEN 'x' THEN 'cancelled' WHEN 'r' THEN 'returned' END,
    ADD CONSTRAINT dim_stats_dimension_check
        CHECK (dimension IN ('product', 'category', 'city', 'region', 'delivery_type', 'payment_method')),
    ADD CONSTRAINT dim_stats_grain_check CHECK (grain IN ('day', 'week', 'month', 'quarter')),
    ADD CONSTRAINT dim_stats_status_check
        CHECK (status IN ('all', 'created', 'accepted', 'delivered', 'cancelled', 'returned'));
DROP FUNCTION agg.dimension_code(text), agg.grain_code(text), agg.status_code(text);
UPDATE public.merchantagg_schema_version SET version = 10;
