-- Analytics database, version 7: customer figures and cohorts under a status filter in
-- O(periods) per request.
--
-- The customer steps of version 4 count every status; a filter (any set of statuses) counted
-- distinct customers from agg.customer_days, one row per customer and day of the range: 0.4 to
-- 0.9 s for the largest merchant's year at 1M orders, past the 5 s statement timeout at 10M.
-- Instead each merchant's customers get small numbers, and every period × status keeps the
-- sorted set of its customers (once: at least one order of that status in the period; twice:
-- at least two). A range under a filter reads one row per tile and status kept; the union of
-- their `once` sets is the range's customers, and a customer has two orders or more in the
-- range when it is in some `twice`, or in the `once` of two different rows. Set operations run
-- in C on sorted int arrays (the intarray extension, shipped with PostgreSQL, trusted).

CREATE EXTENSION IF NOT EXISTS intarray WITH SCHEMA public;

-- A merchant's customers numbered for the sets: int arrays hold int4, source ids are bigint.
-- Rows are never deleted, so a number always means the same customer.
CREATE TABLE agg.customer_numbers (
    merchant_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    n           int NOT NULL GENERATED ALWAYS AS IDENTITY UNIQUE,
    PRIMARY KEY (merchant_id, customer_id)
);

-- Per merchant × grain × period × status: the numbers of the customers with one order or
-- more (once) and two or more (twice) of that current status in the period, sorted. Status
-- 'first': customers whose first order ever with the merchant (any status) is in the period
-- (new customers, cohort members; twice is empty). A row exists only when once is not empty.
CREATE TABLE agg.customer_sets (
    merchant_id  bigint NOT NULL,
    grain        text COLLATE "C" NOT NULL CHECK (grain IN ('day', 'week', 'month', 'quarter')),
    status       text COLLATE "C" NOT NULL
                 CHECK (status IN ('created', 'accepted', 'delivered', 'cancelled', 'returned', 'first')),
    period_start date NOT NULL,
    once         int[] NOT NULL CHECK (cardinality(once) > 0),
    twice        int[] NOT NULL,
    PRIMARY KEY (merchant_id, grain, status, period_start)
);
-- Sorted numbers barely compress: stored out of line without trying.
ALTER TABLE agg.customer_sets ALTER COLUMN once SET STORAGE EXTERNAL, ALTER COLUMN twice SET STORAGE EXTERNAL;

GRANT SELECT ON agg.customer_numbers, agg.customer_sets TO merchantagg_api;

-- Same rule as every agg table (001).
ALTER TABLE agg.customer_numbers ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_numbers
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.customer_sets ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_sets
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);

-- Unions of customer sets, used by the refresh (rollups) and the API (ranges).
-- agg.set_union(once): the union of sets.
CREATE AGGREGATE agg.set_union(int[]) (sfunc = public._int_union, stype = int[], initcond = '{}');

-- agg.customer_union(once, twice): the union of (once, twice) pairs, as a pair: once = in any
-- once; twice = in any twice, or in the once sets of two different rows.
CREATE TYPE agg.customer_union_state AS (once int[], twice int[]);
CREATE FUNCTION agg.customer_union_step(s agg.customer_union_state, p_once int[], p_twice int[])
RETURNS agg.customer_union_state
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ROW(public._int_union(s.once, p_once),
               public._int_union(public._int_union(s.twice, p_twice), public._int_inter(s.once, p_once)))::agg.customer_union_state
$$;
CREATE AGGREGATE agg.customer_union(int[], int[]) (
    sfunc = agg.customer_union_step, stype = agg.customer_union_state, initcond = '("{}","{}")'
);

-- Existing aggregates get their sets from agg.customer_days when `merchantagg migrate` has
-- installed the refresh code (refresh.complete_customer_sets), without a full refresh.
