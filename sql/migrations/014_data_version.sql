-- Analytics database, version 14: a data version per merchant, for the API's ETags
-- (docs/architecture.md, "HTTP caching"). Every refresh that changes a merchant's aggregates
-- moves it, and so does a change of the shared reference data the figures are read with.
ALTER TABLE agg.freshness ADD COLUMN data_version bigint NOT NULL DEFAULT 0;
