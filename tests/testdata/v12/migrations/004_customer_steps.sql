-- Analytics database, version 4: customer figures and cohorts in O(periods) per request.
--
-- Counting distinct customers from agg.customer_days reads one row per customer and day of the
-- range (about a second of CPU for a large merchant's year). Instead, number each customer's
-- orders in time (all statuses) and note, for each order, the day of the order before it
-- (prev) and of the one before that (prev2). For a range [lo, hi] and the orders inside it:
--   customers   = orders whose prev  < lo   (each customer's first order in the range)
--   repeat      = orders whose prev2 < lo   minus the above (only a customer's second order
--                 in the range has prev2 < lo <= prev)
--   new         = orders with no prev at all (first order ever with the merchant)
-- A missing prev counts as -infinity. Each count is a sum over the stored periods that tile the
-- range of "events of the period with a value below lo": agg.customer_steps keeps, per period,
-- the running totals of those events by value, so each period costs one index probe.

-- One row per customer and order day (all statuses) with the previous order days the events
-- come from: prev1 = previous order day, prev2 = day of the order before the day's first order's
-- previous one (prev1 again when that day had two orders or more).
CREATE TABLE agg.customer_chain (
    merchant_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    day         date NOT NULL,
    orders      int NOT NULL,
    prev1       date,
    prev2       date,
    PRIMARY KEY (merchant_id, customer_id, day)
);

-- Per merchant × period (day, week, month, quarter) × value: n1/n2 = prev/prev2 events of the
-- period's orders at that value (only values before the period start can fall below a range's
-- lo); cum1/cum2 = their running totals up to and including the value; firsts = the period's
-- orders with no previous order. A range's lo reads, per period, the row with the greatest
-- prev_day < lo.
CREATE TABLE agg.customer_steps (
    merchant_id  bigint NOT NULL,
    grain        text NOT NULL CHECK (grain IN ('day', 'week', 'month', 'quarter')),
    period_start date NOT NULL,
    prev_day     date NOT NULL, -- '-infinity': no previous order
    n1           int NOT NULL,
    n2           int NOT NULL,
    cum1         int NOT NULL DEFAULT 0,
    cum2         int NOT NULL DEFAULT 0,
    firsts       int NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, grain, period_start, prev_day)
);

-- Cohort retention of all statuses: customers whose first order fell in cohort month and who
-- ordered in month (cohort size = the cell month = cohort).
CREATE TABLE agg.cohort_cells (
    merchant_id bigint NOT NULL,
    cohort      date NOT NULL,
    month       date NOT NULL,
    customers   int NOT NULL,
    PRIMARY KEY (merchant_id, cohort, month)
);

-- Same rule as every agg table (001).
ALTER TABLE agg.customer_chain ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_chain
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.customer_steps ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.customer_steps
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);
ALTER TABLE agg.cohort_cells ENABLE ROW LEVEL SECURITY;
CREATE POLICY merchant_isolation ON agg.cohort_cells
    USING (merchant_id = NULLIF(current_setting('app.merchant_id', true), '')::bigint);

-- The new tables are built from agg.customer_days by the refresh; clearing the watermark makes
-- the next refresh rebuild every merchant (as version 2 did).
UPDATE refresh.settings SET source_watermark = NULL;

-- Scratch tables of a refresh transaction, empty between transactions. refresh.load_days notes
-- the customer days it deletes (orders < 0) and inserts (orders > 0); refresh.finish nets them
-- into the customers whose order days really changed (a status change moves no order to
-- another day, so it changes no customer's chain) and consumes both.
CREATE TABLE refresh.customer_day_changes (
    merchant_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    day         date NOT NULL,
    orders      int NOT NULL
);
CREATE TABLE refresh.changed_customers (
    merchant_id bigint NOT NULL,
    customer_id bigint NOT NULL,
    PRIMARY KEY (merchant_id, customer_id)
);
