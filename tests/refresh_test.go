package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// TestAggregationIsPushedDown reads the plans of the grouped source queries (the catalog's
// sums, the change scan's and reconciliation's buckets): each must be one
// Foreign Scan whose Remote SQL groups on the source, with no local aggregate above it.
func TestAggregationIsPushedDown(t *testing.T) {
	t.Parallel()
	an := dbtest.Pool(t, shared.AnalyticsURL())
	for _, q := range []string{
		`SELECT * FROM refresh.source_changes('2025-06-01 00:00+03', '2000-01-01 00:00+03')`,
		`SELECT * FROM refresh.source_product_sums('{1,2}')`,
		`SELECT * FROM refresh.source_month_checks('{2025-01-01 00:00+03,2025-02-01 00:00+03,2025-03-01 00:00+03}')`,
		`SELECT * FROM refresh.source_month_item_checks('{2025-01-01 00:00+03,2025-02-01 00:00+03,2025-03-01 00:00+03}')`,
		`SELECT * FROM refresh.source_month_return_checks('{2025-01-01 00:00+03,2025-02-01 00:00+03,2025-03-01 00:00+03}')`,
	} {
		t.Run(q, func(t *testing.T) {
			rows, err := an.Query(context.Background(), "EXPLAIN (VERBOSE, COSTS OFF) "+q)
			require.NoError(t, err)
			var plan []string
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan = append(plan, line)
			}
			require.NoError(t, rows.Err())
			require.Regexp(t, `^Foreign Scan`, plan[0], "the top node is the remote scan: %v", plan)
			require.Contains(t, joined(plan), "Relations: Aggregate on")
			require.Regexp(t, `Remote SQL: SELECT .* GROUP BY`, joined(plan))
			require.NotContains(t, joined(plan), "HashAggregate")
			require.NotContains(t, joined(plan), "GroupAggregate")
			if strings.Contains(q, "'{1,2}'") {
				require.Contains(t, joined(plan), "merchant_id = ANY (", "the merchant set is filtered on the source")
			}
		})
	}
}

// TestRowReadsAreFilteredOnTheSource: the reads of single orders' rows (the order snapshot of
// migration 008, the change scan by order) are one Foreign Scan each, filtered on the source
// by merchant and range or by id, so they use its indexes and pull only what they need.
func TestRowReadsAreFilteredOnTheSource(t *testing.T) {
	t.Parallel()
	an := dbtest.Pool(t, shared.AnalyticsURL())
	for q, filter := range map[string]string{
		`SELECT * FROM refresh.source_orders('{1,2}', '2025-01-01 00:00+03', '2025-12-31 00:00+03')`: `merchant_id = ANY (`,
		`SELECT * FROM refresh.source_orders_by_id('{1,2,3}')`:                                       `WHERE ((id = ANY (`,
		`SELECT * FROM refresh.source_items_by_order('{1,2,3}')`:                                     `WHERE ((order_id = ANY (`,
		`SELECT * FROM refresh.source_returns_by_order('{1,2,3}')`:                                   `WHERE ((order_id = ANY (`,
		`SELECT * FROM refresh.source_products_by_id('{1,2,3}')`:                                     `WHERE ((id = ANY (`,
		`SELECT * FROM refresh.source_changed_orders('2025-06-01 00:00+03')`:                         `WHERE ((updated_at >= `,
	} {
		t.Run(q, func(t *testing.T) {
			rows, err := an.Query(context.Background(), "EXPLAIN (VERBOSE, COSTS OFF) "+q)
			require.NoError(t, err)
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Regexp(t, `^Foreign Scan on src\.`, plan[0], "one remote scan: %v", plan)
			require.Len(t, plan, 3, "no local node above it: %v", plan)
			require.Contains(t, joined(plan), filter)
		})
	}
}

func joined(lines []string) string {
	s := ""
	for _, l := range lines {
		s += l + "\n"
	}
	return s
}

// snapshot fingerprints the figures the API can read: every table of schema agg but freshness
// (its refreshed_at moves with every refresh).
//
// The rows are fingerprinted with the pending changes written into them (in a transaction
// rolled back): refreshes leave changes pending that a backfill writes at once.
func snapshot(t *testing.T, an *pgxpool.Pool) string {
	t.Helper()
	ctx := context.Background()
	tx, err := an.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `CALL refresh.write_key_pending(NULL)`)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'agg' AND tablename <> 'freshness' ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "key_months")
	s := ""
	for _, name := range tables {
		q := fmt.Sprintf(`SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM agg.%s x`, pgx.Identifier{name}.Sanitize())
		if name == "customer_tiles" {
			q = tileCounts
		}
		var sum *string
		require.NoError(t, tx.QueryRow(ctx, q).Scan(&sum))
		if sum != nil {
			s += name + ":" + *sum + " "
		}
	}
	return s
}

// tileCounts fingerprints the customer tiles by what they count, each key's events with its
// delta's added: refreshes leave changes in the delta arrays that a backfill writes folded.
const tileCounts = `
	WITH entries AS (
		SELECT c.merchant_id, c.grain, c.period, x.ck, x.cum - coalesce(lag(x.cum) OVER w, 0) AS n
		FROM agg.customer_tiles c CROSS JOIN LATERAL unnest(c.ck, c.cum) WITH ORDINALITY AS x (ck, cum, i)
		WINDOW w AS (PARTITION BY c.merchant_id, c.grain, c.period ORDER BY x.i)
		UNION ALL
		SELECT c.merchant_id, c.grain, c.period, x.ck, x.cum - coalesce(lag(x.cum) OVER w, 0)
		FROM agg.customer_tiles c CROSS JOIN LATERAL unnest(c.dck, c.dcum) WITH ORDINALITY AS x (ck, cum, i)
		WINDOW w AS (PARTITION BY c.merchant_id, c.grain, c.period ORDER BY x.i)
	), counts AS (
		SELECT merchant_id, grain, period, ck, sum(n) AS n FROM entries GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
	)
	SELECT md5(string_agg(concat_ws('/', merchant_id, grain, period, ck, n), ',' ORDER BY merchant_id, grain, period, ck))
	       || (SELECT md5(string_agg(concat_ws('/', merchant_id, grain, period, x.s, x.b, x.e), ','
	                                 ORDER BY merchant_id, grain, period, x.s))
	           FROM agg.customer_tiles c CROSS JOIN LATERAL unnest(c.segs, c.below, c.events) AS x (s, b, e)
	           WHERE x.e <> 0)
	FROM counts`

// tileHeadsOff counts the customer tiles whose own counts (below, events: migration 016)
// differ from what their event arrays say, or whose unfiltered sums of them (head_all:
// migration 018) differ from their segments' of filter 31.
const tileHeadsOff = `
	SELECT count(*) FROM agg.customer_tiles c
	CROSS JOIN LATERAL (
		SELECT coalesce(array_agg(coalesce(c.cum[width_bucket(s + lo - 1, c.ck)], 0) - coalesce(c.cum[width_bucket(s - 1, c.ck)], 0)
		                          + coalesce(c.dcum[width_bucket(s + lo - 1, c.dck)], 0) - coalesce(c.dcum[width_bucket(s - 1, c.dck)], 0)
		                          ORDER BY i), '{}') AS below,
		       coalesce(array_agg(coalesce(c.cum[width_bucket(s + 1048575, c.ck)], 0) - coalesce(c.cum[width_bucket(s - 1, c.ck)], 0)
		                          + coalesce(c.dcum[width_bucket(s + 1048575, c.dck)], 0) - coalesce(c.dcum[width_bucket(s - 1, c.dck)], 0)
		                          ORDER BY i), '{}') AS events
		FROM unnest(c.segs) WITH ORDINALITY AS x (s, i), LATERAL (SELECT (c.period - date '1899-12-31')::bigint AS lo) AS l
	) AS x
	WHERE (c.below, c.events) IS DISTINCT FROM (x.below, x.events)
	   OR c.head_all IS DISTINCT FROM (
		SELECT ARRAY[coalesce(sum(b) FILTER (WHERE s >> 52 = 1), 0), coalesce(sum(b) FILTER (WHERE s >> 52 = 2), 0),
		             coalesce(sum(e) FILTER (WHERE s >> 52 = 3), 0), coalesce(sum(b) FILTER (WHERE s >> 52 = 3), 0)]::int[]
		FROM unnest(c.segs, c.below, c.events) AS y (s, b, e)
		WHERE (s >> 20) & (1::bigint << 30) <> 0)`

// summaryOf asks the API for one merchant's summary over a range.
func summaryOf(t *testing.T, a *api, m int64, from, to string) gen.Metrics {
	t.Helper()
	res, err := a.client.GetSummaryWithResponse(context.Background(), &gen.GetSummaryParams{
		From: day(from), To: day(to)}, bearer(token(t, m, auth.RoleMerchant)))
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode(), string(res.Body))
	return asSummary(t, res.JSON200).Metrics
}

// requireExact checks the API against the source for a merchant over a range.
func requireExact(t *testing.T, a *api, src *pgxpool.Pool, m int64, from, to string) {
	t.Helper()
	f, e := day(from).Time, day(to).Time
	require.Equal(t, orZero(reference(t, src, m, f, e, allIfNil(nil), ""), f), summaryOf(t, a, m, from, to))
}

// changeSource makes the three kinds of change docs/metrics.md names for merchant m on 2025-05-14
// (Moscow): a new order with items, a status change, and a return. Each bumps updated_at.
func changeSource(t *testing.T, src *pgxpool.Pool, m int64) {
	t.Helper()
	ctx := context.Background()
	_, err := src.Exec(ctx, `
		WITH o AS (
			INSERT INTO orders (id, merchant_id, customer_id, city_id, delivery_type, payment_method, status,
			                    total_amount, created_at, accepted_at, delivered_at, updated_at)
			VALUES ((SELECT max(id) + 1 FROM orders), $1, 1, 1, 'courier', 'card', 'delivered', 1234.56,
			        '2025-05-14 23:30+03', '2025-05-14 23:40+03', '2025-05-16 12:00+03', now())
			RETURNING id)
		INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)
		SELECT (SELECT max(id) + 1 FROM order_items), o.id, 1, 2, 617.28 FROM o`, m)
	require.NoError(t, err)
	_, err = src.Exec(ctx, `
		UPDATE orders SET status = 'cancelled', cancelled_at = created_at + interval '1 hour', delivered_at = NULL, updated_at = now()
		WHERE id = (SELECT min(id) FROM orders WHERE merchant_id = $1 AND status = 'delivered'
		            AND (created_at AT TIME ZONE 'Europe/Moscow')::date = '2025-05-14')`, m)
	require.NoError(t, err)
	_, err = src.Exec(ctx, `
		WITH o AS (SELECT o.id, i.id AS item_id, i.unit_price FROM orders o JOIN order_items i ON i.order_id = o.id
		           WHERE o.merchant_id = $1 AND o.status = 'delivered' ORDER BY o.id DESC LIMIT 1),
		     r AS (INSERT INTO returns (id, order_id, order_item_id, quantity, amount, created_at, updated_at)
		           SELECT (SELECT coalesce(max(id), 0) + 1 FROM returns), id, item_id, 1, unit_price, now(), now() FROM o
		           RETURNING order_id)
		UPDATE orders SET status = 'returned', updated_at = now() WHERE id IN (SELECT order_id FROM r)`, m)
	require.NoError(t, err)
}

func TestChangeThenRefreshShowsIt(t *testing.T) {
	t.Parallel()
	_, src, an, a, _ := setUp(t)
	const m = 3
	before := summaryOf(t, a, m, "2023-11-01", "2026-10-31")
	changeSource(t, src, m)

	// Not refreshed yet: the API still shows the old figures.
	require.Equal(t, before, summaryOf(t, a, m, "2023-11-01", "2026-10-31"))

	_, err := refresh.New(an).RefreshChanged(context.Background(), nil)
	require.NoError(t, err)
	after := summaryOf(t, a, m, "2023-11-01", "2026-10-31")
	require.Equal(t, before.Orders+1, after.Orders)
	require.Equal(t, before.Returned+1, after.Returned)
	for _, r := range [][2]string{{"2023-11-01", "2026-10-31"}, {"2025-05-14", "2025-05-14"}, {"2025-05-01", "2025-05-31"}} {
		requireExact(t, a, src, m, r[0], r[1])
	}
	requireExact(t, a, src, m+1, "2023-11-01", "2026-10-31") // a neighbour is untouched and exact
}

func TestRefreshIsIdempotent(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	r := refresh.New(an)
	ctx := context.Background()
	before := snapshot(t, an)

	// Nothing changed: a scan may look again at changes since the last horizon, but changes nothing.
	_, err := r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, before, snapshot(t, an))

	// Full refreshes of every merchant, twice, rewrite the same rows.
	ids, err := r.ListSourceMerchants(ctx)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, r.RefreshMerchants(ctx, ids, time.Time{}, time.Time{}, nil))
		require.Equal(t, before, snapshot(t, an))
	}
	// And a range refresh cutting through weeks, months and quarters.
	require.NoError(t, r.RefreshRange(ctx, 1, day("2025-02-12").Time, day("2025-08-03").Time))
	require.Equal(t, before, snapshot(t, an))
}

// TestFailedRefreshKeepsOldData breaks the source in two ways mid-refresh: a table the
// procedure reads after it has already deleted and rewritten rows, and the server itself.
func TestFailedRefreshKeepsOldData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		breaks, mends string
		onSource      bool
	}{
		{"a source table disappears", "ALTER TABLE returns RENAME TO returns_gone", "ALTER TABLE returns_gone RENAME TO returns", true},
		{"the source refuses connections", "ALTER SERVER merchantagg_source OPTIONS (SET port '1')", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := dbtest.Clone(t, template)
			src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
			a := newAPI(t, p)
			ctx := context.Background()
			const m = 2
			before := snapshot(t, an)
			oldSummary := summaryOf(t, a, m, "2025-05-01", "2025-05-31")
			changeSource(t, src, m)

			r := refresh.New(an)
			_, err := r.Scan(ctx)
			require.NoError(t, err)

			breaker := an
			if tc.onSource {
				breaker = src
			}
			_, err = breaker.Exec(ctx, tc.breaks)
			require.NoError(t, err)
			_, err = r.RefreshDirty(ctx, m, 0)
			require.Error(t, err)

			require.Equal(t, before, snapshot(t, an), "a failed refresh leaves the aggregates as they were")
			require.Equal(t, oldSummary, summaryOf(t, a, m, "2025-05-01", "2025-05-31"))
			var dirty int
			require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM refresh.pending WHERE merchant_id = $1", m).Scan(&dirty))
			require.Positive(t, dirty, "the changed days are still waiting")

			if tc.mends != "" {
				_, err = breaker.Exec(ctx, tc.mends)
				require.NoError(t, err)
			} else {
				require.NoError(t, dbtest.Migrate(ctx, p)) // migrate repoints the server
			}
			_, err = r.RefreshDirty(ctx, m, 0)
			require.NoError(t, err)
			requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
			requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
		})
	}
}

// TestBackfillLeavesTablesTidy: a backfill into an empty analytics database leaves what it
// wrote vacuumed and analyzed (these machines run with autovacuum off; unvacuumed, the API's
// first read of each page would write it out again), room for updates on the pages of the
// rows refreshes update, and writes each row once (inserted with its running sums, never
// updated afterwards).
func TestBackfillLeavesTablesTidy(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	ctx := context.Background()
	require.NoError(t, dbtest.DropDatabase(ctx, p.Analytics))
	require.NoError(t, dbtest.CreateDatabase(ctx, p.Analytics, ""))
	require.NoError(t, dbtest.Migrate(ctx, p))
	an := dbtest.Pool(t, p.AnalyticsURL())
	n, err := refresh.New(an).RefreshChanged(ctx, nil)
	require.NoError(t, err)
	require.Positive(t, n)
	for _, table := range []string{"agg.key_months", "agg.customer_tiles", "agg.cohort_counts", "pipeline.orders"} {
		var vacuumed, analyzed bool
		var updated int64
		require.NoError(t, an.QueryRow(ctx, `
			SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL, n_tup_upd FROM pg_stat_user_tables
			WHERE format('%I.%I', schemaname, relname) = $1`, table).Scan(&vacuumed, &analyzed, &updated))
		require.True(t, vacuumed, "%s vacuumed", table)
		require.True(t, analyzed, "%s analyzed", table)
		require.Zero(t, updated, "%s: running sums computed as the rows are inserted", table)
	}
	// The rows that refreshes update keep room on their pages for the new versions (migration
	// 013): a tenth of each page, against a copy packed full.
	for _, table := range []string{"agg.key_months"} {
		var size, packed int64
		_, err = an.Exec(ctx, "CREATE TABLE packed AS SELECT * FROM "+table)
		require.NoError(t, err)
		require.NoError(t, an.QueryRow(ctx, "SELECT pg_relation_size($1), pg_relation_size('packed')", table).Scan(&size, &packed))
		require.Greater(t, float64(size), 1.08*float64(packed), "%s: %d bytes, packed full %d", table, size, packed)
		_, err = an.Exec(ctx, "DROP TABLE packed")
		require.NoError(t, err)
	}
	// The running sums' key is as compact as one built afresh (the backfill's inserts leave it
	// half empty), and its build is recorded.
	var rebuilt, fresh int64
	var rows *int64
	_, err = an.Exec(ctx, "CREATE INDEX fresh ON agg.key_months (merchant_id, dim, month, key)")
	require.NoError(t, err)
	require.NoError(t, an.QueryRow(ctx, `
		SELECT pg_relation_size('agg.key_months_pkey'), pg_relation_size('agg.fresh'),
		       (SELECT table_rows FROM pipeline.index_builds WHERE index_name = 'agg.key_months_pkey')`).Scan(&rebuilt, &fresh, &rows))
	require.LessOrEqual(t, float64(rebuilt), 1.1*float64(fresh), "the key %d bytes, built afresh %d", rebuilt, fresh)
	require.NotNil(t, rows, "the rebuild is recorded")
	require.Greater(t, *rows, int64(10_000))
	_, err = an.Exec(ctx, "DROP INDEX agg.fresh")
	require.NoError(t, err)

	// A rebuild that failed midway leaves an invalid index that every insert still writes to:
	// the next run drops it, and rebuilds nothing that has not doubled.
	_, err = an.Exec(ctx, "CREATE UNIQUE INDEX CONCURRENTLY key_months_pkey_ccnew ON agg.key_months (merchant_id)")
	require.Error(t, err, "duplicate merchant ids: the build fails and leaves the index invalid")
	_, err = refresh.New(an).RefreshChanged(ctx, nil)
	require.NoError(t, err)
	var left int
	require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = 'key_months_pkey_ccnew'").Scan(&left))
	require.Zero(t, left, "the failed rebuild is dropped")
	var after int64
	require.NoError(t, an.QueryRow(ctx, "SELECT pg_relation_size('agg.key_months_pkey')").Scan(&after))
	require.Equal(t, rebuilt, after, "not rebuilt again")
}

// TestRefreshVacuumsItsQueues: a refresh that emptied a long queue of dirty days vacuums it
// (the API reads it on every request; autovacuum may be off or behind).
func TestRefreshVacuumsItsQueues(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	r := refresh.New(an)
	ctx := context.Background()
	for _, m := range []int64{1, 2} {
		require.NoError(t, r.MarkDays(ctx, m, day("2023-11-01").Time, day("2026-10-31").Time))
	}
	_, err := r.RefreshAllDirty(ctx, nil)
	require.NoError(t, err)
	var vacuumed bool
	require.NoError(t, an.QueryRow(ctx,
		`SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = 'pipeline' AND relname = 'dirty_days'`).
		Scan(&vacuumed))
	require.True(t, vacuumed, "2000 deleted dirty days are vacuumed")
}

// TestRefreshCompressesWAL: a refresh's transaction logs whole pages compressed where the
// server leaves them uncompressed and the refresh's role may say otherwise, and runs all the
// same, with the server's setting, where it may not (refresh.compress_wal).
func TestRefreshCompressesWAL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	an := dbtest.Pool(t, shared.AnalyticsURL())
	var server string
	var lz4 bool
	require.NoError(t, an.QueryRow(ctx, `SELECT setting, 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'wal_compression'`).Scan(&server, &lz4))
	inUnitOfWork := func(t *testing.T, role string) string {
		tx, err := an.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }() // the grant below goes with it
		if role != "" {
			_, err = tx.Exec(ctx, "GRANT USAGE ON SCHEMA refresh TO "+role+"; SET LOCAL ROLE "+role)
			require.NoError(t, err)
		}
		_, err = tx.Exec(ctx, "CALL refresh.lock_merchant(1)")
		require.NoError(t, err, "a unit of work starts whatever the role may set")
		var got string
		require.NoError(t, tx.QueryRow(ctx, "SHOW wal_compression").Scan(&got))
		return got
	}
	t.Run("superuser", func(t *testing.T) {
		want := server
		if server == "off" && lz4 {
			want = "lz4"
		}
		require.Equal(t, want, inUnitOfWork(t, ""))
		var after string
		require.NoError(t, an.QueryRow(ctx, "SHOW wal_compression").Scan(&after))
		require.Equal(t, server, after, "the setting ends with the transaction")
	})
	t.Run("role without the privilege", func(t *testing.T) {
		require.Equal(t, server, inUnitOfWork(t, "merchantagg_api"))
	})
}
