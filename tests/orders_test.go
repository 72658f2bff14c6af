package tests

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// orderSnapshot fingerprints the refresh's order snapshot (pipeline.orders).
func orderSnapshot(t *testing.T, an *pgxpool.Pool) string {
	t.Helper()
	var orders string
	require.NoError(t, an.QueryRow(context.Background(),
		`SELECT md5(string_agg(s::text, ',' ORDER BY s.order_id)) FROM pipeline.orders s`).Scan(&orders))
	return orders
}

// rebuild drops everything stored of the merchants (aggregates and snapshot) and refreshes
// them from scratch, as a backfill does: what netting changes leaves behind must equal it.
func rebuild(t *testing.T, an *pgxpool.Pool, merchants []int64) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{"agg.key_months", "agg.key_pending", "agg.customer_tiles", "agg.cohort_counts", "pipeline.orders"} {
		_, err := an.Exec(ctx, "DELETE FROM "+table+" WHERE merchant_id = ANY ($1)", merchants)
		require.NoError(t, err)
	}
	require.NoError(t, refresh.New(an).RefreshMerchants(ctx, merchants, time.Time{}, time.Time{}, nil))
}

// changeOrders makes, for merchant m, every kind of change an order can go through besides
// changeSource's (each bumps updated_at, as docs/metrics.md requires): more items on a line, a move to another day
// and month, another customer (new to the merchant), city, delivery type and payment method,
// a second order on a customer's day.
// It returns an order whose change the caller deletes after the scan has seen it.
func changeOrders(t *testing.T, src *pgxpool.Pool, m int64) (doomed int64) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`WITH o AS (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'accepted' ORDER BY id LIMIT 1),
		      i AS (UPDATE order_items SET quantity = quantity + 2 WHERE id = (SELECT min(id) FROM order_items WHERE order_id IN (SELECT id FROM o)))
		 UPDATE orders SET total_amount = total_amount + 2 * (SELECT unit_price FROM order_items WHERE id = (SELECT min(id) FROM order_items WHERE order_id IN (SELECT id FROM o))),
		        updated_at = now()
		 WHERE id IN (SELECT id FROM o)`,
		`UPDATE orders SET created_at = created_at - interval '40 days', accepted_at = accepted_at - interval '40 days',
		        delivered_at = delivered_at - interval '40 days', updated_at = now()
		 WHERE id = (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'delivered' ORDER BY id LIMIT 1 OFFSET 3)`,
		`UPDATE orders SET customer_id = (SELECT max(id) FROM customers), updated_at = now()
		 WHERE id = (SELECT id FROM orders WHERE merchant_id = $1 ORDER BY id LIMIT 1 OFFSET 7)`,
		`UPDATE orders SET city_id = (SELECT max(id) FROM cities), delivery_type = 'express', payment_method = 'wallet', updated_at = now()
		 WHERE id = (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'delivered' ORDER BY id LIMIT 1 OFFSET 9)`,
		// A second order of a customer's day: the customer enters the day's "two or more" set.
		`WITH b AS (SELECT customer_id, created_at FROM orders WHERE merchant_id = $1 AND status = 'delivered'
		             AND extract(hour FROM created_at AT TIME ZONE 'Europe/Moscow') < 20 ORDER BY id LIMIT 1 OFFSET 11)
		 UPDATE orders SET customer_id = b.customer_id, created_at = b.created_at + interval '1 minute',
		        accepted_at = b.created_at + interval '1 hour', delivered_at = b.created_at + interval '1 day', updated_at = now()
		 FROM b WHERE orders.id = (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'delivered' ORDER BY id LIMIT 1 OFFSET 13)`,
	} {
		tag, err := src.Exec(ctx, q, m)
		require.NoError(t, err)
		require.Equal(t, int64(1), tag.RowsAffected(), q)
	}
	require.NoError(t, src.QueryRow(ctx, `
		UPDATE orders SET updated_at = now()
		WHERE id = (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'returned' ORDER BY id LIMIT 1 OFFSET 2)
		RETURNING id`, m).Scan(&doomed))
	return doomed
}

func deleteOrder(t *testing.T, src *pgxpool.Pool, id int64) {
	t.Helper()
	_, err := src.Exec(context.Background(), `
		WITH r AS (DELETE FROM returns WHERE order_id = $1), i AS (DELETE FROM order_items WHERE order_id = $1)
		DELETE FROM orders WHERE id = $1`, id)
	require.NoError(t, err)
}

// TestChangedOrdersEqualWholeDays: a few changes a day are refreshed by order (each read again
// by id and netted against the snapshot), and leave every aggregate table and the snapshot
// exactly as recomputing the merchants' whole history from the source does. Reading the
// orders again changes nothing, and neither does a failed attempt.
func TestChangedOrdersEqualWholeDays(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	merchants := []int64{2, 5, 7}
	var doomed []int64
	for _, m := range merchants {
		changeSource(t, src, m)
		doomed = append(doomed, changeOrders(t, src, m))
	}
	_, err := r.Scan(ctx)
	require.NoError(t, err)
	var orders, days int
	require.NoError(t, an.QueryRow(ctx, `SELECT (SELECT count(*) FROM pipeline.dirty_orders), (SELECT count(*) FROM pipeline.dirty_days)`).
		Scan(&orders, &days))
	require.GreaterOrEqual(t, orders, 3*6)
	require.Zero(t, days, "a few changes a day are refreshed by order")
	for _, id := range doomed { // gone from the source between the scan and the refresh
		deleteOrder(t, src, id)
	}

	before := snapshot(t, an)
	_, err = src.Exec(ctx, `ALTER TABLE returns RENAME TO returns_gone`)
	require.NoError(t, err)
	_, err = r.RefreshAllDirty(ctx, nil)
	require.Error(t, err)
	require.Equal(t, before, snapshot(t, an), "a failed refresh leaves the aggregates as they were")
	_, err = src.Exec(ctx, `ALTER TABLE returns_gone RENAME TO returns`)
	require.NoError(t, err)

	_, err = r.RefreshAllDirty(ctx, nil)
	require.NoError(t, err)
	for _, m := range merchants {
		requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
		requireExact(t, a, src, m, "2025-04-01", "2025-05-31")
	}
	after, snap := snapshot(t, an), orderSnapshot(t, an)
	require.NotEqual(t, before, after)
	var off int
	require.NoError(t, an.QueryRow(ctx, tileHeadsOff).Scan(&off))
	require.Zero(t, off, "customer tiles whose own counts differ from their events after the changes")

	// The same orders read again (a scan's overlap): nothing moves.
	_, err = an.Exec(ctx, `
		INSERT INTO pipeline.dirty_orders (merchant_id, order_id, day)
		SELECT merchant_id, order_id, day FROM pipeline.orders
		WHERE merchant_id = ANY ($1) AND day BETWEEN '2025-04-01' AND '2025-05-31'`, merchants)
	require.NoError(t, err)
	_, err = r.RefreshAllDirty(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, after, snapshot(t, an))
	require.Equal(t, snap, orderSnapshot(t, an))

	// Recomputing every day of the merchants from the source gives the same rows: netting
	// them again against what is stored, and building them from nothing.
	require.NoError(t, r.RefreshMerchants(ctx, merchants, time.Time{}, time.Time{}, nil))
	require.Equal(t, after, snapshot(t, an), "netted changed orders = whole days recomputed")
	require.Equal(t, snap, orderSnapshot(t, an))
	rebuild(t, an, merchants)
	require.Equal(t, after, snapshot(t, an), "netted changed orders = a backfill")
	require.Equal(t, snap, orderSnapshot(t, an))
}

// TestBusyDayIsRefreshedExactly: every order of a busy merchant day changed, and an order moved
// into that day from another: the scan marks the orders, and the refresh is exact on both days.
func TestBusyDayIsRefreshedExactly(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	const m = 1
	var busy time.Time
	require.NoError(t, src.QueryRow(ctx, `
		SELECT (created_at AT TIME ZONE 'Europe/Moscow')::date FROM orders WHERE merchant_id = $1
		GROUP BY 1 HAVING count(*) >= 20 ORDER BY count(*) DESC, 1 LIMIT 1`, m).Scan(&busy))
	_, err := src.Exec(ctx, `
		UPDATE orders SET status = 'cancelled', cancelled_at = created_at, accepted_at = NULL, delivered_at = NULL, updated_at = now()
		WHERE merchant_id = $1 AND (created_at AT TIME ZONE 'Europe/Moscow')::date = $2`, m, busy)
	require.NoError(t, err)
	// An order moved into the busy day from a day of its own: that day must lose it too.
	var left time.Time
	require.NoError(t, src.QueryRow(ctx, `
		UPDATE orders SET created_at = ($2::date + time '12:00') AT TIME ZONE 'Europe/Moscow', updated_at = now()
		WHERE id = (SELECT min(id) FROM orders WHERE merchant_id = $1 AND (created_at AT TIME ZONE 'Europe/Moscow')::date < $2::date - 40)
		RETURNING (SELECT (created_at AT TIME ZONE 'Europe/Moscow')::date FROM orders o2 WHERE o2.id = orders.id)`, m, busy).Scan(&left))
	changeSource(t, src, m+1) // and a quiet merchant day beside it

	_, err = r.Scan(ctx)
	require.NoError(t, err)
	var orders int
	require.NoError(t, an.QueryRow(ctx, `SELECT count(*) FROM pipeline.dirty_orders WHERE merchant_id = $1`, m).Scan(&orders))
	require.GreaterOrEqual(t, orders, 20)
	_, err = r.RefreshAllDirty(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, dirtyDays(t, an, m))
	for _, d := range []string{busy.Format(time.DateOnly), left.Format(time.DateOnly)} {
		requireExact(t, a, src, m, d, d)
	}
	requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
	requireExact(t, a, src, m+1, "2025-05-01", "2025-05-31")
}

// TestProductListsFollowTheSource: a refreshed merchant's stored product list (names for
// breakdowns and ABC) is read again when it differs from the source's, which a rename, a new
// category, a new or a deleted product make it do without bumping any updated_at.
func TestProductListsFollowTheSource(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
	r := refresh.New(an)
	ctx := context.Background()
	const m, quiet = 3, 6
	list := func(pool *pgxpool.Pool, table string) string {
		var sum string
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT md5(string_agg(concat_ws('/', merchant_id, id, sku, name, category_id), ',' ORDER BY id))
			FROM `+table+` WHERE merchant_id = ANY ($1)`, []int64{m, quiet}).Scan(&sum))
		return sum
	}
	refreshAll := func() {
		t.Helper()
		changeSource(t, src, m)
		changeSource(t, src, quiet)
		_, err := r.Scan(ctx)
		require.NoError(t, err)
		_, err = r.RefreshAllDirty(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, list(src, "products"), list(an, "agg.products"))
	}
	require.Equal(t, list(src, "products"), list(an, "agg.products"))

	for _, q := range []string{ // each alone, then refreshed
		`UPDATE products SET name = name || ' (new)' WHERE id = (SELECT min(id) FROM products WHERE merchant_id = $1)`,
		`UPDATE products SET sku = sku || '-2' WHERE id = (SELECT max(id) FROM products WHERE merchant_id = $1)`,
		`UPDATE products SET category_id = (SELECT max(id) FROM categories) WHERE id = (SELECT min(id) FROM products WHERE merchant_id = $1)`,
		`INSERT INTO products (id, merchant_id, category_id, sku, name, price, created_at)
		 SELECT max(id) + 1, $1, min(category_id), 'SKU-NEW', 'Brand new', 10, now() FROM products`,
		`DELETE FROM products WHERE sku = 'SKU-NEW' AND merchant_id = $1`,
	} {
		_, err := src.Exec(ctx, q, m)
		require.NoError(t, err)
		refreshAll()
	}
}
