-- Analytics database, version 12: room on each page of the rows that refreshes update.
--
-- A refresh adds each changed order's figures to the stored day, week, month and quarter rows
-- of its keys (~20 breakdown rows an order). A backfill packs every page full, so right after
-- one no update could stay on its row's page: each wrote the new row version to another page
-- and a new entry into the table's key, dirtying (and logging whole) both pages. With a tenth
-- of each page left free, an update stays on its page (a HOT update, no key entry), and the
-- page's dead versions are pruned for the next. On the 1M benchmark, the first 1k changed
-- orders refreshed after a rewrite of agg.dim_stats: 0% of its updates HOT and 67.5 MB of WAL
-- packed full, 73% and 50.2 MB with this; the table is 10% larger (1266 → 1396 MB).
--
-- Only pages written from now on get the room: an existing database keeps its full pages until
-- a backfill or a rewrite (VACUUM FULL, pg_repack) fills them again (README, Maintenance).
ALTER TABLE agg.dim_stats SET (fillfactor = 90);
ALTER TABLE agg.order_stats SET (fillfactor = 90);
