-- Deferred rollups: agg.key_pending (migration 020), the net daily changes a refresh has not
-- written into agg.key_months. Writing a change moves every entry of its key's row after its
-- day (a few dozen for one figure moved), so a refresh of recent changes would mostly rewrite
-- the same rows as the refresh before: a merchant's totals, its delivery and payment rows, its
-- popular products. Instead each refresh adds its changes here, where reads add them to the
-- rows (api.series_sums, api.range_sums), and a merchant's pending changes are written into its
-- rows once they are many, together: each row then rewritten once for many refreshes.

-- How many pending changes (rows of agg.key_pending) a merchant may keep: beyond, a refresh
-- writes them all into its rows. Reads go through a merchant's pending rows of a dimension
-- within the range, so the bound keeps that small beside the rows themselves. The setting
-- merchantagg.key_pending_rows overrides it (tests: 0 writes every change at once).
CREATE FUNCTION refresh.key_pending_bound() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('merchantagg.key_pending_rows', true), '')::bigint, 8192)
$$;

-- Moves the pending changes of the merchants p_merchants into key_deltas, to be written with
-- the new ones (apply_key_deltas: those of the merchants in key_deltas).
CREATE PROCEDURE refresh.take_key_pending(p_merchants bigint[])
LANGUAGE plpgsql AS $$
BEGIN
    WITH taken AS (
        DELETE FROM agg.key_pending p WHERE p.merchant_id = ANY (p_merchants)
        RETURNING p.merchant_id, p.dim, p.key, p.slot, p.day, p.w1, p.w2, p.w3, p.w4, p.w5, p.w6, p.w7
    )
    INSERT INTO pg_temp.key_deltas SELECT * FROM taken;
END $$;

-- Writes the pending changes of the merchants p_merchants (NULL: all) into their rows, as if
-- every refresh had written its own (tests compare the rows this way; an operator may, to
-- leave agg.key_months alone complete).
CREATE PROCEDURE refresh.write_key_pending(p_merchants bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_merchants bigint[] := ARRAY(SELECT DISTINCT merchant_id FROM agg.key_pending
                                  WHERE p_merchants IS NULL OR merchant_id = ANY (p_merchants) ORDER BY 1);
    v_merchant  bigint;
BEGIN
    CALL refresh.scratch();
    -- Each merchant's rows are written by one transaction at a time, as in a refresh.
    FOREACH v_merchant IN ARRAY v_merchants LOOP
        CALL refresh.lock_merchant(v_merchant);
    END LOOP;
    CALL refresh.take_key_pending(v_merchants);
    CALL refresh.apply_key_deltas();
END $$;

-- Applies key_deltas as a refresh does: the changes of merchants that have rows and whose
-- pending changes stay within the bound are added to agg.key_pending; the others' are written
-- into agg.key_months with their pending ones (apply_key_deltas).
CREATE PROCEDURE refresh.defer_key_deltas()
LANGUAGE plpgsql AS $$
DECLARE
    v_deferred bigint[];
    v_dims     "char"[];
    v_keys     bigint[];
    v_days     date[];
    v_slots    smallint[];
    v_zero     bigint[];
BEGIN
    -- Rows up to the month of every change: reads find a key's row at every edge of a range.
    CALL refresh.extend_key_months();
    WITH n AS (
        SELECT merchant_id, count(*) AS changes
        FROM (SELECT DISTINCT merchant_id, dim, key, slot, day FROM pg_temp.key_deltas) AS d
        GROUP BY merchant_id
    )
    SELECT array_agg(n.merchant_id) INTO v_deferred
    FROM n
    WHERE EXISTS (SELECT FROM agg.key_months b WHERE b.merchant_id = n.merchant_id AND b.dim = 't')
      AND n.changes + (SELECT count(*) FROM agg.key_pending p WHERE p.merchant_id = n.merchant_id)
          <= refresh.key_pending_bound();
    IF v_deferred IS NOT NULL THEN
        -- Netted per day and added; a pending change that comes out zero is dropped.
        WITH added AS (
            INSERT INTO agg.key_pending AS p (merchant_id, dim, key, day, slot, w1, w2, w3, w4, w5, w6, w7)
            SELECT merchant_id, dim, key, day, slot, agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4),
                   agg.isum(w5), agg.isum(w6), coalesce(agg.isum(w7), 0)
            FROM pg_temp.key_deltas
            WHERE merchant_id = ANY (v_deferred)
            GROUP BY merchant_id, dim, key, day, slot
            HAVING (agg.isum(w1), agg.isum(w2), agg.isum(w3), agg.isum(w4), agg.isum(w5), agg.isum(w6),
                    coalesce(agg.isum(w7), 0)) <> (0, 0, 0, 0, 0, 0, 0)
            ON CONFLICT (merchant_id, dim, key, day, slot) DO UPDATE
            SET w1 = p.w1 + excluded.w1, w2 = p.w2 + excluded.w2, w3 = p.w3 + excluded.w3, w4 = p.w4 + excluded.w4,
                w5 = p.w5 + excluded.w5, w6 = p.w6 + excluded.w6, w7 = p.w7 + excluded.w7
            RETURNING p.merchant_id, p.dim, p.key, p.day, p.slot, (p.w1, p.w2, p.w3, p.w4, p.w5, p.w6, p.w7) = (0, 0, 0, 0, 0, 0, 0) AS zero
        ), changed AS (
            INSERT INTO pg_temp.changed_merchants SELECT DISTINCT merchant_id FROM added ON CONFLICT DO NOTHING
        )
        SELECT array_agg(merchant_id) FILTER (WHERE zero), array_agg(dim) FILTER (WHERE zero),
               array_agg(key) FILTER (WHERE zero), array_agg(day) FILTER (WHERE zero), array_agg(slot) FILTER (WHERE zero)
        INTO v_zero, v_dims, v_keys, v_days, v_slots
        FROM added;
        DELETE FROM agg.key_pending p
        USING unnest(v_zero, v_dims, v_keys, v_days, v_slots) AS z (merchant_id, dim, key, day, slot)
        WHERE p.merchant_id = z.merchant_id AND p.dim = z.dim AND p.key = z.key AND p.day = z.day AND p.slot = z.slot;
        DELETE FROM pg_temp.key_deltas WHERE merchant_id = ANY (v_deferred);
    END IF;
    CALL refresh.apply_key_deltas();
END $$;
