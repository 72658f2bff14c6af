-- The server's version and the settings that decide how much of the aggregates a run reads
-- from memory (the bench's source and analytics databases share the server). Shown beside
-- every run's tables: a run is not comparable without them.
SELECT format('PostgreSQL %s, shared_buffers %s, effective_cache_size %s, autovacuum %s',
              current_setting('server_version'), current_setting('shared_buffers'),
              current_setting('effective_cache_size'), current_setting('autovacuum'))
