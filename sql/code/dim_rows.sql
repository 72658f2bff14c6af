-- The stored rows of one dimension of a merchant over runs of periods (agg.dim_stats): one
-- index range per run and status key, in the table's key order. sql/queries/breakdown.sql reads
-- the runs it adds and the runs it subtracts (period.CoverSums) through it, summing each set
-- of runs apart: subtracting the few sums of the second set from the first costs less than
-- signing every row of both (a year of the largest 10M merchant's products: 60k rows).
--
-- A plain SQL function (one SELECT, STABLE, not SECURITY DEFINER) is inlined into the query
-- that calls it, so the caller's parameters become constants of the index search and RLS on
-- agg.dim_stats applies to the caller's role as in the query itself.
DROP FUNCTION IF EXISTS agg.dim_rows(bigint, text, text[], date[], date[], text[]);
CREATE FUNCTION agg.dim_rows(p_merchant_id bigint, p_dimension text, p_grains text[], p_firsts date[],
                             p_lasts date[], p_statuses text[])
RETURNS SETOF agg.dim_stats
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d.*
    FROM unnest(p_grains, p_firsts, p_lasts) AS t (grain, first_start, last_start)
    CROSS JOIN unnest(p_statuses) AS st (status)
    CROSS JOIN LATERAL (
        SELECT * FROM agg.dim_stats AS d
        WHERE d.merchant_id = p_merchant_id AND d.dimension = agg.dimension_code(p_dimension)
          AND d.grain = agg.grain_code(t.grain) AND d.status = agg.status_code(st.status)
          AND d.period_start BETWEEN t.first_start AND t.last_start
    ) AS d
$$;
