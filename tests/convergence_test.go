package tests

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// watermark reads the change scan's watermark.
func watermark(t *testing.T, an *pgxpool.Pool) time.Time {
	t.Helper()
	var w time.Time
	require.NoError(t, an.QueryRow(context.Background(), "SELECT source_watermark FROM pipeline.settings").Scan(&w))
	return w
}

// TestLongTransactionIsNotMissed holds a source transaction open across change scans. Its
// update carries updated_at = its start, older than a change committed meanwhile by another
// transaction; a watermark that jumped to the newest updated_at seen would skip it forever.
func TestLongTransactionIsNotMissed(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	const slow, fast = 7, 8

	long, err := src.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = long.Rollback(ctx) }()
	var started time.Time
	require.NoError(t, long.QueryRow(ctx, "SELECT now()").Scan(&started))
	_, err = long.Exec(ctx, `
		UPDATE orders SET status = 'cancelled', cancelled_at = created_at + interval '1 hour',
		       accepted_at = NULL, delivered_at = NULL, updated_at = now()
		WHERE id IN (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'delivered' ORDER BY id LIMIT 3)`, slow)
	require.NoError(t, err)

	time.Sleep(50 * time.Millisecond)
	changeSource(t, src, fast) // commits, with updated_at later than the open transaction's
	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	requireExact(t, a, src, fast, "2020-12-01", "2023-11-30")
	requireExact(t, a, src, fast, "2023-12-01", "2026-10-31")
	require.False(t, watermark(t, an).After(started), "the watermark waits for the open transaction")

	require.NoError(t, long.Commit(ctx))
	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	for _, rg := range [][2]string{{"2020-12-01", "2023-11-30"}, {"2023-12-01", "2026-10-31"}} {
		requireExact(t, a, src, slow, rg[0], rg[1])
	}
	require.True(t, watermark(t, an).After(started), "and moves on once it committed")
}

// driftSource changes merchant m's orders behind the change scan's back: a hard delete and
// an edit that leaves updated_at alone.
func driftSource(t *testing.T, src *pgxpool.Pool, m int64) {
	t.Helper()
	_, err := src.Exec(context.Background(), `
		WITH victim AS (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'returned' ORDER BY id LIMIT 1),
		     r AS (DELETE FROM returns WHERE order_id IN (SELECT id FROM victim)),
		     i AS (DELETE FROM order_items WHERE order_id IN (SELECT id FROM victim))
		DELETE FROM orders WHERE id IN (SELECT id FROM victim)`, m)
	require.NoError(t, err)
	_, err = src.Exec(context.Background(), `
		WITH o AS (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'delivered' ORDER BY id DESC LIMIT 1)
		UPDATE order_items SET quantity = quantity + 1 WHERE order_id IN (SELECT id FROM o)`, m)
	require.NoError(t, err)
	_, err = src.Exec(context.Background(), `
		UPDATE orders o SET total_amount = (SELECT sum(quantity * unit_price) FROM order_items WHERE order_id = o.id)
		WHERE merchant_id = $1 AND total_amount <> (SELECT sum(quantity * unit_price) FROM order_items WHERE order_id = o.id)`, m)
	require.NoError(t, err)
}

// TestReconciliationRepairsDrift: changes the scan cannot see stay wrong after a scan; the
// periodic reconciliation job finds the drifted months and its refresh jobs make the API
// exact. On data without drift it finds nothing (no false alarms, no needless refreshes).
func TestReconciliationRepairsDrift(t *testing.T) {
	t.Parallel()
	p, src, an, a, r := setUp(t)
	ctx := context.Background()
	const m = 9

	drifted, err := r.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, drifted, "freshly refreshed aggregates match the source")
	var dirty int
	require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM pipeline.dirty_days").Scan(&dirty))
	require.Zero(t, dirty)

	before := summaryOf(t, a, m, "2023-12-01", "2026-10-31")
	driftSource(t, src, m)
	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, before, summaryOf(t, a, m, "2023-12-01", "2026-10-31"), "the change scan cannot see it")

	// The last reconciliation ran an hour ago: the one scheduled at the worker's start runs.
	_, err = an.Exec(ctx, "UPDATE pipeline.settings SET last_reconcile_at = now() - interval '1 hour'")
	require.NoError(t, err)
	c := riverClient(t, p, time.Hour)
	events, cancel := c.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, events, "reconcile", func(*river.Event) bool { return true })
	waitFor(t, events, "refresh_merchant", func(e *river.Event) bool { return true })

	for _, rg := range [][2]string{{"2020-12-01", "2023-11-30"}, {"2023-12-01", "2026-10-31"}} {
		requireExact(t, a, src, m, rg[0], rg[1])
	}
	var logged int
	require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM pipeline.drift_log WHERE merchant_id = $1", m).Scan(&logged))
	require.GreaterOrEqual(t, logged, 1)
	drifted, err = r.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, drifted, "repaired")
}

// TestChunkedRefreshEqualsWhole refreshes a merchant's whole history in pieces of a month:
// the aggregates are the same as one refresh wrote, and the dirty days are all consumed.
func TestChunkedRefreshEqualsWhole(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	r := refresh.New(an)
	ctx := context.Background()
	before := snapshot(t, an)
	const m = 1
	require.NoError(t, r.MarkDays(ctx, m, day("2020-11-20").Time, day("2026-11-05").Time))
	days, err := r.RefreshDirty(ctx, m, 31)
	require.NoError(t, err)
	require.Equal(t, 2177, days) // every day of the range, 31 at a time
	require.Equal(t, before, snapshot(t, an))
	var dirty int
	require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM pipeline.dirty_days").Scan(&dirty))
	require.Zero(t, dirty)
}

// dirtyDays counts a merchant's days waiting for a refresh.
func dirtyDays(t *testing.T, an *pgxpool.Pool, m int64) int {
	t.Helper()
	var n int
	require.NoError(t, an.QueryRow(context.Background(), "SELECT count(*) FROM refresh.pending WHERE merchant_id = $1", m).Scan(&n))
	return n
}
