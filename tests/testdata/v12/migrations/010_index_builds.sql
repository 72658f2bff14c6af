-- Analytics database, version 10: when the refresh last rebuilt each of its large indexes.
--
-- A B-tree that the refresh filled by inserting is about half empty: a backfill inserts each
-- merchant's rows in key order into the middle of the key space, and a leaf page that fills
-- there splits into two half-full pages (only the rightmost page splits 90/10). On the 1M
-- benchmark right after its backfill the breakdown rows' key took 1253 MB at 54% leaf
-- density, and 740 MB built afresh; the customer days' and steps' keys were 54–57% full.
-- The end of a refresh run rebuilds an index whose table has more than doubled since the
-- index was last built (refresh.indexes_to_rebuild in sql/code/refresh.sql); this table
-- remembers the row count of that build.
CREATE TABLE refresh.index_builds (
    index_name text PRIMARY KEY, -- schema-qualified, as format('%I.%I')
    table_rows bigint NOT NULL,  -- its table's live rows when it was built
    built_at   timestamptz NOT NULL DEFAULT now()
);
