package tests

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
)

// TestCustomerFiguresFollowChanges changes one merchant's customers in every way that moves
// the stored order chains (migration 004) — an order on a new day between a customer's
// orders, a second order on a day, a new customer, an order deleted — plus a status change
// that must move none, and a first order deleted so that its customer's first day moves past
// the refreshed day (the customer sets of migration 007), refreshes incrementally, and
// compares customer figures and cohorts, with and without a status filter, with docs/metrics.md's definitions
// computed on the source.
func TestCustomerFiguresFollowChanges(t *testing.T) {
	t.Parallel()
	_, src, _, a, r := setUp(t)
	ctx := context.Background()
	const m = 3

	// The customer with the most order days, and the middle of its second gap.
	var customer int64
	var between time.Time
	require.NoError(t, src.QueryRow(ctx, `
		WITH d AS (
			SELECT customer_id, (created_at AT TIME ZONE 'Europe/Moscow')::date AS day
			FROM orders WHERE merchant_id = $1 GROUP BY 1, 2
		), g AS (
			SELECT customer_id, day, lead(day) OVER (PARTITION BY customer_id ORDER BY day) AS next,
			       row_number() OVER (PARTITION BY customer_id ORDER BY day) AS n,
			       count(*) OVER (PARTITION BY customer_id) AS days
			FROM d
		)
		SELECT customer_id, day + (next - day) / 2 FROM g
		WHERE n = 2 AND next - day >= 2 ORDER BY days DESC, customer_id LIMIT 1`, m).Scan(&customer, &between))

	_, err := src.Exec(ctx, `INSERT INTO customers (id, city_id, created_at) VALUES ((SELECT max(id) + 1 FROM customers), 1, now())`)
	require.NoError(t, err)
	_, err = src.Exec(ctx, `
		INSERT INTO orders (id, merchant_id, customer_id, city_id, delivery_type, payment_method, status,
		                    total_amount, created_at, updated_at)
		SELECT (SELECT max(id) FROM orders) + n, $1, c, 1, 'courier', 'card', 'created', 100, at, now()
		FROM (VALUES
			-- a new day between the customer's second and third order days
			(1, $2::bigint, ($3::date + time '12:00') AT TIME ZONE 'Europe/Moscow'),
			-- a second order on a day some customer already ordered
			(2, (SELECT customer_id FROM orders WHERE merchant_id = $1 ORDER BY id LIMIT 1 OFFSET 100),
			    (SELECT created_at + interval '1 minute' FROM orders WHERE merchant_id = $1 ORDER BY id LIMIT 1 OFFSET 100)),
			-- a customer never seen before, twice on one day
			(3, (SELECT max(id) FROM customers), timestamptz '2026-06-10 10:00+03'),
			(4, (SELECT max(id) FROM customers), timestamptz '2026-06-10 18:00+03')
		) AS v (n, c, at)`, m, customer, between)
	require.NoError(t, err)
	_, err = src.Exec(ctx, `
		UPDATE orders SET status = 'cancelled', cancelled_at = created_at + interval '1 hour', updated_at = now()
		WHERE id = (SELECT id FROM orders WHERE merchant_id = $1 AND status = 'created' ORDER BY id LIMIT 1 OFFSET 7)`, m)
	require.NoError(t, err)
	// A hard delete is invisible to the change scan: its day is refreshed by range.
	var deleted time.Time
	require.NoError(t, src.QueryRow(ctx, `
		WITH o AS (
			DELETE FROM orders WHERE id = (SELECT id FROM orders WHERE merchant_id = $1 ORDER BY id LIMIT 1 OFFSET 500)
			RETURNING id, created_at
		), i AS (DELETE FROM order_items WHERE order_id IN (SELECT id FROM o)),
		   r AS (DELETE FROM returns WHERE order_id IN (SELECT id FROM o))
		SELECT (created_at AT TIME ZONE 'Europe/Moscow')::date FROM o`, m).Scan(&deleted))

	// A customer's only order on its first day, its next order day weeks later: refreshing the
	// first day alone moves the customer's first day past the refreshed range.
	var moved time.Time
	require.NoError(t, src.QueryRow(ctx, `
		WITH d AS (
			SELECT customer_id, (created_at AT TIME ZONE 'Europe/Moscow')::date AS day, count(*) AS n, min(id) AS id
			FROM orders WHERE merchant_id = $1 GROUP BY 1, 2
		), g AS (
			SELECT customer_id, day, n, id, lead(day) OVER (PARTITION BY customer_id ORDER BY day) AS next,
			       row_number() OVER (PARTITION BY customer_id ORDER BY day) AS k
			FROM d
		), pick AS (
			SELECT id FROM g WHERE k = 1 AND n = 1 AND next - day >= 40 AND day <> $2 ORDER BY customer_id LIMIT 1
		), o AS (
			DELETE FROM orders WHERE id IN (SELECT id FROM pick) RETURNING id, created_at
		), i AS (DELETE FROM order_items WHERE order_id IN (SELECT id FROM o)),
		   r AS (DELETE FROM returns WHERE order_id IN (SELECT id FROM o))
		SELECT (created_at AT TIME ZONE 'Europe/Moscow')::date FROM o`, m, deleted).Scan(&moved))

	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, r.RefreshRange(ctx, m, deleted, deleted))
	require.NoError(t, r.RefreshRange(ctx, m, moved, moved))

	requireCustomerFigures(t, a, src, m, [][2]time.Time{
		{between.AddDate(0, 0, -40), between.AddDate(0, 0, 40)},
		{between, between},
		{between.AddDate(0, 0, 1), between.AddDate(0, 3, 0)},
		{deleted.AddDate(0, -2, 0), deleted.AddDate(0, 2, 0)},
		{moved.AddDate(0, 0, 1), moved.AddDate(0, 4, 0)},
		{moved.AddDate(0, -1, 0), moved.AddDate(0, 11, 0)},
		{time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)},
	}, [][]gen.OrderStatus{nil, {gen.OrderStatusCreated, gen.OrderStatusDelivered}})
}

// requireCustomerFigures compares merchant m's customer figures, and its cohorts over ranges of
// at most 400 days, for each range and status filter (nil: none) with the source's.
func requireCustomerFigures(t *testing.T, a *api, src *pgxpool.Pool, m int64, ranges [][2]time.Time, filters [][]gen.OrderStatus) {
	t.Helper()
	ctx := context.Background()
	tok := bearer(token(t, m, auth.RoleMerchant))
	for _, rg := range ranges {
		from, to := day(rg[0].Format(time.DateOnly)), day(rg[1].Format(time.DateOnly))
		for _, kept := range filters {
			var st *[]gen.OrderStatus
			if kept != nil {
				st = &kept
			}
			res, err := a.client.GetCustomersWithResponse(ctx, &gen.GetCustomersParams{From: from, To: to, Status: st}, tok)
			require.NoError(t, err)
			require.Equal(t, 200, res.StatusCode(), string(res.Body))
			require.Equal(t, referenceCustomers(t, src, m, rg[0], rg[1], allIfNil(kept)), res.JSON200.Customers, "%v %v", rg, kept)
			if rg[1].Sub(rg[0]) <= 400*24*time.Hour {
				res, err := a.client.GetCohortsWithResponse(ctx, &gen.GetCohortsParams{From: from, To: to, Status: st}, tok)
				require.NoError(t, err)
				require.Equal(t, 200, res.StatusCode(), string(res.Body))
				require.Equal(t, referenceCohorts(t, src, m, rg[0], rg[1], allIfNil(kept)), res.JSON200.Cohorts, "%v %v", rg, kept)
			}
		}
	}
}

// TestFoldedTilesStayExact grows a quarter's customer tile delta past the size at which a
// refresh folds it into the tile's own counts (apply_customer_deltas), after a small change
// left a delta to fold with them, and compares customer figures and cohorts with the source.
func TestFoldedTilesStayExact(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	const m = 4
	var quarter time.Time
	require.NoError(t, src.QueryRow(ctx, `
		SELECT date_trunc('quarter', created_at AT TIME ZONE 'Europe/Moscow')::date FROM orders
		WHERE merchant_id = $1 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`, m).Scan(&quarter))
	end := quarter.AddDate(0, 3, -1)
	// Moves n orders of the quarter one status on (created, accepted, delivered, cancelled in turn).
	move := func(n int, salt string) {
		t.Helper()
		_, err := src.Exec(ctx, `
			UPDATE orders o
			SET status = CASE o.status WHEN 'created' THEN 'accepted' WHEN 'accepted' THEN 'delivered'
			                           WHEN 'delivered' THEN 'cancelled' ELSE 'created' END,
			    accepted_at = CASE WHEN o.status = 'created' THEN o.created_at + interval '1 hour' ELSE o.accepted_at END,
			    delivered_at = CASE WHEN o.status = 'accepted' THEN o.created_at + interval '2 days' ELSE o.delivered_at END,
			    cancelled_at = CASE WHEN o.status = 'delivered' THEN o.created_at + interval '3 days' ELSE o.cancelled_at END,
			    updated_at = now()
			WHERE o.id IN (SELECT id FROM orders WHERE merchant_id = $1 AND status <> 'returned'
			                 AND (created_at AT TIME ZONE 'Europe/Moscow')::date BETWEEN $2 AND $3
			               ORDER BY md5(id::text || $4) LIMIT $5)`, m, quarter, end, salt, n)
		require.NoError(t, err)
		_, err = r.RefreshChanged(ctx, nil)
		require.NoError(t, err)
	}
	delta := func() (n int) {
		t.Helper()
		require.NoError(t, an.QueryRow(ctx, `SELECT cardinality(dck) FROM agg.customer_tiles
			WHERE merchant_id = $1 AND grain = 'q' AND period = $2`, m, quarter).Scan(&n))
		return n
	}
	move(2, "small")
	require.Positive(t, delta(), "a small change is kept as the tile's delta")
	move(300, "large")
	require.Zero(t, delta(), "a large change folds the delta into the tile")

	var off, idle int
	require.NoError(t, an.QueryRow(ctx, tileHeadsOff).Scan(&off))
	require.Zero(t, off)
	require.NoError(t, an.QueryRow(ctx, `SELECT count(*) FROM agg.customer_tiles c, generate_subscripts(c.ck, 1) AS i
		WHERE c.merchant_id = $1 AND c.cum[i] = coalesce(c.cum[i - 1], 0)`, m).Scan(&idle))
	require.Zero(t, idle, "a folded tile keeps only keys with events")
	requireCustomerFigures(t, a, src, m, [][2]time.Time{
		{quarter, end}, {quarter.AddDate(0, 0, 17), end}, {quarter.AddDate(0, -5, 0), end.AddDate(0, 4, 0)},
		{quarter.AddDate(0, 1, 0), quarter.AddDate(0, 2, -1)},
	}, [][]gen.OrderStatus{nil, {gen.OrderStatusAccepted}, {gen.OrderStatusCreated, gen.OrderStatusCancelled}})
}
