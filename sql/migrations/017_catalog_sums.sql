-- Analytics database, version 17: the catalog copy's sums per merchant, which the change scan
-- compares with the source's at every scan (sql/code/catalog.sql), kept by the refresh as the
-- copy changes instead of summed over every product of the copy at every scan. Filled here
-- from agg.products in one statement (a second or so per million products; nothing is locked
-- but the new table).
CREATE TABLE pipeline.catalog_sums (
    merchant_id bigint PRIMARY KEY,
    products    bigint NOT NULL,
    categorized bigint NOT NULL,
    skus        numeric,
    names       numeric,
    categories  numeric
);

INSERT INTO pipeline.catalog_sums
SELECT merchant_id, count(*), count(category_id), sum(hashtextextended(sku, id)), sum(hashtextextended(name, id)),
       sum(hashint8extended(category_id, id))
FROM agg.products GROUP BY merchant_id;
