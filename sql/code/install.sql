-- tern code package: reinstalled as a whole, in one transaction, on every `merchantagg migrate`.
-- It owns two schemas: refresh (the pipeline: loading, netting, rollups, customers, scans,
-- maintenance and entry points) and api (what the API's queries call). Both are dropped and
-- created afresh, so no file carries a DROP for what an older version defined. State lives in
-- agg, pipeline and ref (migrations), and no object there depends on these two schemas.
DROP SCHEMA IF EXISTS refresh CASCADE;
CREATE SCHEMA refresh;
DROP SCHEMA IF EXISTS api CASCADE;
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO merchantagg_api;
{{ template "source_contract.sql" . }}
{{ template "configure.sql" . }}
{{ template "source_reads.sql" . }}
{{ template "scratch.sql" . }}
{{ template "loading.sql" . }}
{{ template "facts.sql" . }}
{{ template "key_months.sql" . }}
{{ template "key_pending.sql" . }}
{{ template "customers.sql" . }}
{{ template "catalog.sql" . }}
{{ template "scan.sql" . }}
{{ template "reconcile.sql" . }}
{{ template "maintenance.sql" . }}
{{ template "entry.sql" . }}
{{ template "convert.sql" . }}
{{ template "freshness.sql" . }}
{{ template "reads.sql" . }}
