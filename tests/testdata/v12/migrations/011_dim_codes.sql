-- Analytics database, version 11: agg.dim_stats's dimension, grain and status as one-byte
-- "char" codes instead of text.
--
-- agg.dim_stats is most of the analytics database (at 10M orders ~18 of 26 GB, on machines
-- with 24 GB of RAM beside the source), and these three columns were a fifth of each row and
-- half of each key entry. The same 1M rows, each built afresh: 1511 MB of table and 740 MB
-- of key as text, 1265 and 470 MB as codes. The API and the refresh still speak the names;
-- the functions below turn them into codes where agg.dim_stats is read or written (inlined by
-- the planner: a query's parameter becomes a constant of the index search). An unknown name
-- has no code (NULL), so a row with one fails the NOT NULL column loudly, as the text CHECKs
-- did; a comparison with one finds nothing.

CREATE FUNCTION agg.dimension_code(p_dimension text) RETURNS "char"
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_dimension WHEN 'product' THEN 'p'::"char" WHEN 'category' THEN 'c'::"char"
                            WHEN 'city' THEN 't'::"char" WHEN 'region' THEN 'r'::"char"
                            WHEN 'delivery_type' THEN 'd'::"char" WHEN 'payment_method' THEN 'm'::"char" END
$$;

CREATE FUNCTION agg.grain_code(p_grain text) RETURNS "char"
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_grain WHEN 'day' THEN 'd'::"char" WHEN 'week' THEN 'w'::"char"
                        WHEN 'month' THEN 'm'::"char" WHEN 'quarter' THEN 'q'::"char" END
$$;

-- '*' is the sum over every status (migration 005's 'all').
CREATE FUNCTION agg.status_code(p_status text) RETURNS "char"
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status WHEN 'all' THEN '*'::"char" WHEN 'created' THEN 'c'::"char"
                         WHEN 'accepted' THEN 'a'::"char" WHEN 'delivered' THEN 'd'::"char"
                         WHEN 'cancelled' THEN 'x'::"char" WHEN 'returned' THEN 'r'::"char" END
$$;

-- One rewrite of the table and its key (at 10M orders: minutes, with the table locked).
ALTER TABLE agg.dim_stats
    DROP CONSTRAINT dim_stats_dimension_check,
    DROP CONSTRAINT dim_stats_grain_check,
    DROP CONSTRAINT dim_stats_status_check,
    ALTER COLUMN dimension TYPE "char" USING agg.dimension_code(dimension),
    ALTER COLUMN grain TYPE "char" USING agg.grain_code(grain),
    ALTER COLUMN status TYPE "char" USING agg.status_code(status),
    ADD CONSTRAINT dim_stats_dimension_check CHECK (dimension IN ('p', 'c', 't', 'r', 'd', 'm')),
    ADD CONSTRAINT dim_stats_grain_check CHECK (grain IN ('d', 'w', 'm', 'q')),
    ADD CONSTRAINT dim_stats_status_check CHECK (status IN ('*', 'c', 'a', 'd', 'x', 'r'));
