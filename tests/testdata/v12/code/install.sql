-- tern code package: reinstalled as a whole, in one transaction, on every `merchantagg migrate`.
-- Each file drops and recreates what it defines, so a DBA can read and tune one file alone.
{{ template "source_contract.sql" . }}
{{ template "configure.sql" . }}
{{ template "source_stats.sql" . }}
{{ template "refresh.sql" . }}
{{ template "orders.sql" . }}
{{ template "customers.sql" . }}
{{ template "customer_sets.sql" . }}
{{ template "scan.sql" . }}
{{ template "reconcile.sql" . }}
{{ template "freshness.sql" . }}
