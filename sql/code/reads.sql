-- What the API's queries (sql/queries) call: schema api, readable by the API role. Every read
-- runs as that role, under row-level security, in a transaction scoped to one merchant.
--
-- A range's figures per key are the running sums at its last day less those at the day before
-- its first (agg.key_months, migration 013): two entries per key, found by a binary search
-- (width_bucket) in the key's row of each edge's month. A status filter adds and subtracts
-- slots: slot 0 counts every status, so "delivered and returned" is slot 0 less the created,
-- accepted and cancelled slots.

-- The agg.key_months code of an API dimension (region reads the city rows).
CREATE FUNCTION api.dim_code(p_dimension text) RETURNS "char"
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_dimension WHEN 'total' THEN 't' WHEN 'product' THEN 'p' WHEN 'category' THEN 'c'
                            WHEN 'city' THEN 'y' WHEN 'region' THEN 'y'
                            WHEN 'delivery_type' THEN 'd' WHEN 'payment_method' THEN 'm' END::"char"
$$;

-- The agg.key_months code of a category's subtree: g for a category with subcategories, c for
-- one without, whose subtree is its own products (refresh.category_ancestors keeps g facts for
-- the former only).
CREATE FUNCTION api.subtree_code(p_category bigint) RETURNS "char"
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN EXISTS (SELECT FROM ref.categories x WHERE x.parent_id = p_category) THEN 'g' ELSE 'c' END::"char"
$$;

-- The entries to read for groups of ranges [p_from, p_to] (group p_grp): the running sums at
-- each range's last day (sign 1) and at the day before its first (sign -1), as a month row
-- and a day of it. Days after the merchant's last month read the end of that month (every key
-- has a row up to it); a day before a key's first month finds no row, which counts as zero.
CREATE FUNCTION api.edges(p_merchant bigint, p_grp int[], p_from date[], p_to date[])
RETURNS TABLE (grp int, sign int, month date, dom int)
LANGUAGE sql STABLE AS $$
    SELECT g.grp, x.sign, least(date_trunc('month', x.day)::date, l.m),
           CASE WHEN date_trunc('month', x.day)::date > l.m THEN 31 ELSE extract(day FROM x.day)::int END
    FROM (SELECT max(b.month) AS m FROM agg.key_months b WHERE b.merchant_id = p_merchant AND b.dim = 't') AS l,
         unnest(p_grp, p_from, p_to) AS g (grp, lo, hi),
         LATERAL (VALUES (1, g.hi), (-1, g.lo - 1)) AS x (sign, day)
    WHERE l.m IS NOT NULL
$$;

-- The rows of dimension p_dim of one month: every key's, or with p_keys only those keys'
-- (one branch runs: the other's condition on p_keys is a one-time filter). Called with the
-- month as a plain value, an index range (OFFSET 0 at the call: the rows are read where they
-- are, never copied aside to be joined, nor hashed against every month).
CREATE FUNCTION api.month_rows(p_merchant bigint, p_dim "char", p_month date, p_keys bigint[])
RETURNS TABLE (key bigint, ek smallint[], v bigint[])
LANGUAGE sql STABLE AS $$
    SELECT b.key, b.ek, b.v FROM agg.key_months b
    WHERE p_keys IS NULL AND b.merchant_id = p_merchant AND b.dim = p_dim AND b.month = p_month
    UNION ALL
    SELECT b.key, b.ek, b.v FROM agg.key_months b
    WHERE p_keys IS NOT NULL AND b.merchant_id = p_merchant AND b.dim = p_dim AND b.month = p_month
      AND b.key = ANY (p_keys)
$$;

-- The search key of slot .i (1-based) at day of month .dom in a row's entries, for
-- width_bucket: NULL, so that nothing is searched, for a slot that adds nothing
-- (coefficient 0 and no cancelled count asked for).
{{ define "slot_key" -}}
(CASE WHEN p_coef[{{ .i }}] <> 0 OR p_need[8] AND p_ccoef[{{ .i }}] <> 0 THEN p_slot[{{ .i }}] END * 32 + {{ .dom }})::smallint
{{- end }}
-- The entry .b that width_bucket found in entries .ek, if it is in slot .i (else the search
-- landed in an earlier slot: the slot has no entry at or before the day).
{{ define "slot_entry" -}}
CASE WHEN {{ .ek }}[{{ .b }}] >= p_slot[{{ .i }}] * 32 THEN {{ .b }} END
{{- end }}

-- The pending changes (agg.key_pending) of dimension p_dim that a read adds to the rows:
-- their figures, each slot's counted with its coefficients as in the rows (u: p_slot, p_coef
-- and p_ccoef). A change's orders are w1 rounded to units of 2^32: its accepted count may be
-- negative.
{{ define "pending_figures" -}}
{{- range $k := list 1 2 3 4 5 6 7 }}
               CASE WHEN p_need[{{ $k }}]{{ if eq $k 7 }} AND p_dim NOT IN ('p', 'c', 'g'){{ end }} THEN u.coef * p.w{{ $k }} END AS x{{ $k }},
{{- end }}
               CASE WHEN p_need[8] THEN u.ccoef * ((p.w1 + 2147483648) >> 32) END AS x8
{{- end }}

-- Per group and key of dimension p_dim, the figures of the ranges (packed as in
-- agg.key_months: unpack with api.metrics) under the slots p_slot, each counted with p_coef
-- (1 added, -1 subtracted, 0 not at all) and with p_ccoef in the cancelled count. Only the
-- figures p_need asks for are summed (1..7: w1..w7, 8: cancelled; the others come out NULL;
-- w7 is NULL for p, c and g, whose rows carry no delivery time), and only for the keys p_keys
-- (NULL: every key). Keys with no order in a range come out with orders 0.
--
-- A row and an edge give one row with every slot's entry: the slots are unrolled (a row per
-- slot multiplied the rows to sum by as many as five, for "delivered"). A slot that adds
-- nothing (coefficient 0 and no cancelled count asked for) is not searched; with the arguments
-- as constants (a custom plan) it is folded away. api.series_sums unrolls every slot and
-- reads each month's rows once, joined with the month's edges: summaries and series (a day
-- series has 62 edges in a month), in plans kept per connection. Lists read one range with
-- api.range_sums below.
{{ define "series_sums" -}}
CREATE FUNCTION api.series_sums(p_merchant bigint, p_dim "char", p_grp int[], p_from date[], p_to date[],
                             p_slot int[], p_coef int[], p_ccoef int[], p_need boolean[], p_keys bigint[] DEFAULT NULL)
RETURNS TABLE (grp int, key bigint, w1 bigint, w2 bigint, w3 bigint, w4 bigint, w5 bigint, w6 bigint, w7 bigint,
               cancelled bigint)
LANGUAGE sql STABLE AS $$
    WITH series_edges AS MATERIALIZED (SELECT * FROM api.edges(p_merchant, p_grp, p_from, p_to))
    SELECT grp, key, agg.isum(x1), agg.isum(x2), agg.isum(x3), agg.isum(x4), agg.isum(x5), agg.isum(x6), agg.isum(x7),
           agg.isum(x8)
    FROM (
        -- The figures picked out of the entries (OFFSET 0) before they are summed, so that
        -- hashing or sorting them carries a few numbers per row, not the rows' arrays.
        (SELECT grp, key,
{{- range $k := list 1 2 3 4 5 6 7 }}
               CASE WHEN p_need[{{ $k }}]{{ if eq $k 7 }} AND p_dim NOT IN ('p', 'c', 'g'){{ end }}
                    THEN sign * ({{ range $i := until $.slots }}{{ if $i }} + {{ end }}coalesce(p_coef[{{ add1 $i }}] * v[p{{ add1 $i }}][{{ $k }}], 0){{ end }}) END AS x{{ $k }},
{{- end }}
               CASE WHEN p_need[8]
                    THEN sign * ({{ range $i := until .slots }}{{ if $i }} + {{ end }}coalesce(p_ccoef[{{ add1 $i }}] * (v[p{{ add1 $i }}][1] >> 32), 0){{ end }}) END AS x8
        FROM (
            -- Each slot's entry: the last at or before the edge's day, if it is in the slot.
            SELECT grp, key, sign, v
{{- range $i := until .slots }},
                   {{ template "slot_entry" (dict "i" (add1 $i) "ek" "ek" "b" (printf "b%d" (add1 $i))) }} AS p{{ add1 $i }}
{{- end }}
            FROM (
                -- Each slot searched once here (OFFSET 0), not again for every figure.
                SELECT j.grp, j.sign, j.key, j.ek, j.v
{{- range $i := until .slots }},
                       width_bucket({{ template "slot_key" (dict "i" (add1 $i) "dom" "j.dom") }}, j.ek) AS b{{ add1 $i }}
{{- end }}
                FROM (
                    -- The months' rows read first (OFFSET 0) and joined with the edges once:
                    -- a join per month scanned every edge again for each month.
                    SELECT e.grp, e.sign, e.dom, b.key, b.ek, b.v
                    FROM series_edges AS e
                    JOIN (SELECT b.*, m.month
                          FROM (SELECT DISTINCT month FROM series_edges) AS m
                          CROSS JOIN LATERAL (SELECT b.* FROM api.month_rows(p_merchant, p_dim, m.month, p_keys) AS b
                                              OFFSET 0) AS b
                          OFFSET 0) AS b ON b.month = e.month
                ) AS j
                OFFSET 0
            ) AS z
            OFFSET 0
        ) AS x
        OFFSET 0)
        UNION ALL
        -- The pending changes of each range's days.
        (SELECT g.grp, p.key,{{ template "pending_figures" }}
        FROM (SELECT g.grp, d::date AS day
              FROM unnest(p_grp, p_from, p_to) AS g (grp, lo, hi), generate_series(g.lo, g.hi, interval '1 day') AS d) AS g
        JOIN agg.key_pending p ON p.day = g.day
        JOIN unnest(p_slot, p_coef, p_ccoef) AS u (slot, coef, ccoef) ON u.slot = p.slot
        WHERE p.merchant_id = p_merchant AND p.dim = p_dim AND (p_keys IS NULL OR p.key = ANY (p_keys)))
    ) AS y
    GROUP BY grp, key
$$;
{{- end }}
{{ template "series_sums" (dict "slots" 5) }}

-- Per key of dimension p_dim, the figures of one range [p_from, p_to], as api.series_sums
-- gives them for one group (the same arguments but the range, and no group column): the
-- lists (a breakdown, ABC). The keys' rows at the two edges are read in key order, each an
-- index range, and merged into one row per key, with nothing sorted or grouped. Every key
-- with a row at the first edge has one at the last (a key has a row in every month from its
-- first order's to the merchant's last), so the last edge's rows are the keys. The template
-- writes api.range_sums for two slots and api.range_sums_5 for five (internal/stats picks by
-- the filter): a body unrolling five takes longer to plan. Lists pass the slots, their
-- coefficients and p_need as constants (internal/stats), folded into a plan kept per
-- connection.
{{ define "range_sums" -}}
CREATE FUNCTION api.{{ .name }}(p_merchant bigint, p_dim "char", p_from date, p_to date, p_slot int[], p_coef int[],
                             p_ccoef int[], p_need boolean[], p_keys bigint[] DEFAULT NULL)
RETURNS TABLE (key bigint, w1 bigint, w2 bigint, w3 bigint, w4 bigint, w5 bigint, w6 bigint, w7 bigint, cancelled bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(s.key, d.key),
{{- range $k := list 1 2 3 4 5 6 7 }}
           CASE WHEN p_need[{{ $k }}]{{ if eq $k 7 }} AND p_dim NOT IN ('p', 'c', 'g'){{ end }} THEN coalesce(s.x{{ $k }}, 0) + coalesce(d.x{{ $k }}, 0) END,
{{- end }}
           CASE WHEN p_need[8] THEN coalesce(s.x8, 0) + coalesce(d.x8, 0) END
    FROM (
    SELECT key,
{{- range $k := list 1 2 3 4 5 6 7 }}
           CASE WHEN p_need[{{ $k }}]{{ if eq $k 7 }} AND p_dim NOT IN ('p', 'c', 'g'){{ end }}
                THEN {{ range $i := until $.slots }}{{ if $i }} + {{ end }}coalesce(p_coef[{{ add1 $i }}] * (coalesce(hv[h{{ add1 $i }}][{{ $k }}], 0) - coalesce(lv[l{{ add1 $i }}][{{ $k }}], 0)), 0){{ end }} END AS x{{ $k }},
{{- end }}
           CASE WHEN p_need[8]
                THEN {{ range $i := until .slots }}{{ if $i }} + {{ end }}coalesce(p_ccoef[{{ add1 $i }}] * (coalesce(hv[h{{ add1 $i }}][1] >> 32, 0) - coalesce(lv[l{{ add1 $i }}][1] >> 32, 0)), 0){{ end }} END AS x8
    FROM (
        -- Each slot's entry at either edge: the last at or before the edge's day, if it is in
        -- the slot.
        SELECT key, hv, lv
{{- range $i := until .slots }},
               {{ template "slot_entry" (dict "i" (add1 $i) "ek" "hek" "b" (printf "hb%d" (add1 $i))) }} AS h{{ add1 $i }},
               {{ template "slot_entry" (dict "i" (add1 $i) "ek" "lek" "b" (printf "lb%d" (add1 $i))) }} AS l{{ add1 $i }}
{{- end }}
        FROM (
            -- Each slot searched once here (OFFSET 0), not again for every figure; a slot
            -- that adds nothing is not searched.
            SELECT j.key, j.hek, j.hv, j.lek, j.lv
{{- range $i := until .slots }},
                   width_bucket({{ template "slot_key" (dict "i" (add1 $i) "dom" "e.hdom") }}, j.hek) AS hb{{ add1 $i }},
                   width_bucket({{ template "slot_key" (dict "i" (add1 $i) "dom" "e.ldom") }}, j.lek) AS lb{{ add1 $i }}
{{- end }}
            FROM (
                -- The edges computed apart (OFFSET 0): their months are then plain values,
                -- which row-level security lets reach the index.
                SELECT max(month) FILTER (WHERE sign = 1) AS hmonth, max(dom) FILTER (WHERE sign = 1) AS hdom,
                       max(month) FILTER (WHERE sign = -1) AS lmonth, max(dom) FILTER (WHERE sign = -1) AS ldom
                FROM api.edges(p_merchant, '{0}', ARRAY[p_from], ARRAY[p_to])
                OFFSET 0
            ) AS e
            CROSS JOIN LATERAL (
                -- Every key's rows, or with p_keys those keys' (one branch runs, as in
                -- api.month_rows; a union of the reads themselves would lose their order).
{{- range $n, $keys := list "p_keys IS NULL" "p_keys IS NOT NULL AND b.key = ANY (p_keys)" }}
{{- if $n }}
                UNION ALL
{{- end }}
                SELECT h.key, h.ek AS hek, h.v AS hv, l.ek AS lek, l.v AS lv
                FROM (SELECT b.key, b.ek, b.v FROM agg.key_months b
                      WHERE {{ $keys }} AND b.merchant_id = p_merchant AND b.dim = p_dim AND b.month = e.hmonth
                      ORDER BY b.key) AS h
                LEFT JOIN (SELECT b.key, b.ek, b.v FROM agg.key_months b
                           WHERE {{ $keys }} AND b.merchant_id = p_merchant AND b.dim = p_dim AND b.month = e.lmonth
                           ORDER BY b.key) AS l ON l.key = h.key
{{- end }}
            ) AS j
            OFFSET 0
        ) AS z
        OFFSET 0
    ) AS x
    ) AS s
    -- The pending changes of the range's days, per key: most keys have none, some have none
    -- stored (a new product).
    FULL JOIN (SELECT key, agg.isum(x1) AS x1, agg.isum(x2) AS x2, agg.isum(x3) AS x3, agg.isum(x4) AS x4,
                      agg.isum(x5) AS x5, agg.isum(x6) AS x6, agg.isum(x7) AS x7, agg.isum(x8) AS x8
               FROM (SELECT p.key,{{ template "pending_figures" }}
                     FROM agg.key_pending p
                     JOIN unnest(p_slot, p_coef, p_ccoef) AS u (slot, coef, ccoef) ON u.slot = p.slot
                     WHERE p.merchant_id = p_merchant AND p.dim = p_dim AND p.day BETWEEN p_from AND p_to
                       AND (p_keys IS NULL OR p.key = ANY (p_keys))) AS p
               GROUP BY key) AS d ON d.key = s.key
$$;
{{- end }}
{{ template "range_sums" (dict "name" "range_sums" "slots" 2) }}
{{ template "range_sums" (dict "name" "range_sums_5" "slots" 5) }}

-- The metrics of docs/metrics.md from a key's or a range's packed sums: the one definition of
-- every derived figure (rates, averages, revenue), used by every query and by the sort keys.
-- Money and delivery time are exact (cents and microseconds); rates and averages are rounded
-- as the API shows them. avg_delivery_hours is NULL for product and category rows, which
-- carry no delivery time.
CREATE FUNCTION api.metrics(p_w1 bigint, p_w2 bigint, p_w3 bigint, p_w4 bigint, p_w5 bigint, p_w6 bigint,
                            p_w7 bigint, p_cancelled bigint)
RETURNS TABLE (orders bigint, accepted bigint, delivered bigint, cancelled bigint, returned bigint, items bigint,
               gmv numeric, returned_amount numeric, revenue numeric, aov numeric, cancel_rate float8,
               return_rate float8, avg_delivery_hours float8)
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_w1 >> 32, p_w1 & 4294967295, p_w2 >> 32, coalesce(p_cancelled, 0), p_w2 & 4294967295, coalesce(p_w3, 0),
           coalesce(p_w4, 0) * 0.01, coalesce(p_w6, 0) * 0.01, (coalesce(p_w5, 0) - coalesce(p_w6, 0)) * 0.01,
           round(coalesce(p_w4, 0) * 0.01 / nullif(p_w1 >> 32, 0), 2),
           round(coalesce(p_cancelled, 0)::numeric / nullif(p_w1 >> 32, 0), 4)::float8,
           round((p_w2 & 4294967295)::numeric / nullif(p_w1 >> 32, 0), 4)::float8,
           round(p_w7 * 0.000001 / nullif(p_w2 >> 32, 0) / 3600, 2)::float8
$$;

-- Customer figures (customers.sql) for groups of ranges, each tiled with stored periods
-- (p_grp, p_grain d/w/m/q, first and last period start: every period of the grain in
-- between), under the status filter p_filter (bits 0 created .. 4 returned). p_lo_grp and
-- p_lo give each group's first day. One row per group that has events.
CREATE FUNCTION api.customer_counts(p_merchant bigint, p_grp int[], p_grain "char"[], p_first date[], p_last date[],
                                    p_lo_grp int[], p_lo date[], p_filter int)
RETURNS TABLE (grp int, customers bigint, new_customers bigint, repeaters bigint)
LANGUAGE sql STABLE AS $$
    WITH period AS MATERIALIZED (
        SELECT t.grp, t.grain, p::date AS period, (g.lo - date '1899-12-31')::bigint AS lo, p::date = g.lo AS head
        FROM unnest(p_grp, p_grain, p_first, p_last) AS t (grp, grain, first, last)
        JOIN unnest(p_lo_grp, p_lo) AS g (grp, lo) USING (grp),
             generate_series(t.first, t.last,
                             CASE t.grain WHEN 'd' THEN interval '1 day' WHEN 'w' THEN interval '7 days'
                                          WHEN 'm' THEN interval '1 month' ELSE interval '3 months' END) AS p
    ), tile AS (
        -- A group's first period (head) is counted from its own counts (below, events; under
        -- no status filter, head_all), with no binary search; the others' arrays are copied
        -- out of storage once here (|| '{}'), not again at every binary search below (a large
        -- tile is stored compressed), and a head's are not read at all.
        SELECT p.grp, p.lo, p.head, c.segs, c.below, c.events, c.head_all, c.ck, c.cum, c.dck, c.dcum
        FROM period p
        CROSS JOIN LATERAL (SELECT c.segs, c.below, c.events, c.head_all,
                                   CASE WHEN NOT p.head THEN c.ck || '{}'::bigint[] END AS ck,
                                   CASE WHEN NOT p.head THEN c.cum || '{}'::int[] END AS cum,
                                   CASE WHEN NOT p.head THEN c.dck END AS dck, CASE WHEN NOT p.head THEN c.dcum END AS dcum
                            FROM agg.customer_tiles c
                            WHERE c.merchant_id = p_merchant AND c.grain = p.grain AND c.period = p.period
                            OFFSET 0) AS c
    ), seg AS (
        -- Each segment's events below the group's first day and in all (a tile's delta, the
        -- changes not yet folded in, counted too). The arrays are unnested in the select list
        -- (in step, as one multi-argument unnest), which streams the elements; unnest in FROM
        -- puts each tile's into a tuplestore first.
        SELECT u.grp, u.s >> 52 AS kind,
               CASE WHEN u.head THEN u.b
                    ELSE coalesce(u.cum[width_bucket(u.s + u.lo - 1, u.ck)], 0) - coalesce(u.cum[width_bucket(u.s - 1, u.ck)], 0)
                         + coalesce(u.dcum[width_bucket(u.s + u.lo - 1, u.dck)], 0)
                         - coalesce(u.dcum[width_bucket(u.s - 1, u.dck)], 0) END AS below,
               CASE WHEN u.head THEN u.e
                    ELSE coalesce(u.cum[width_bucket(u.s + 1048575, u.ck)], 0) - coalesce(u.cum[width_bucket(u.s - 1, u.ck)], 0)
                         + coalesce(u.dcum[width_bucket(u.s + 1048575, u.dck)], 0)
                         - coalesce(u.dcum[width_bucket(u.s - 1, u.dck)], 0) END AS total
        FROM (SELECT t.grp, t.lo, t.head, t.ck, t.cum, t.dck, t.dcum,
                     unnest(t.segs) AS s, unnest(t.below) AS b, unnest(t.events) AS e
              FROM tile t
              WHERE NOT (t.head AND p_filter = 31)) AS u
        WHERE (u.s >> 20) & (1::bigint << (p_filter - 1)) <> 0
    )
    SELECT grp, c1 + c3, c3 - b3, c2 - c1 - c3
    FROM (SELECT grp, agg.isum(c1) AS c1, agg.isum(c2) AS c2, agg.isum(c3) AS c3, agg.isum(b3) AS b3
          FROM (SELECT grp, coalesce(sum(below) FILTER (WHERE kind = 1), 0) AS c1,
                       coalesce(sum(below) FILTER (WHERE kind = 2), 0) AS c2,
                       coalesce(sum(total) FILTER (WHERE kind = 3), 0) AS c3,
                       coalesce(sum(below) FILTER (WHERE kind = 3), 0) AS b3
                FROM seg GROUP BY grp
                UNION ALL
                SELECT grp, head_all[1], head_all[2], head_all[3], head_all[4] FROM tile WHERE head AND p_filter = 31) AS u
          GROUP BY grp) AS c
$$;
