package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestPendingChangesStayExact: with a small bound on pending changes (agg.key_pending), rounds
// of changes leave some merchants' changes pending and write others' into their rows together
// with those pending before; every kind of request stays exact throughout, a product sold for
// the first time is listed from its pending changes alone, and writing every pending change
// gives the rows a backfill builds.
func TestPendingChangesStayExact(t *testing.T) {
	t.Parallel()
	p, src, an, a, r := setUp(t)
	ctx := context.Background()
	const bound = 40
	_, err := an.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET merchantagg.key_pending_rows = %d", pgx.Identifier{p.Analytics}.Sanitize(), bound))
	require.NoError(t, err)
	an.Reset() // every session from now on has the setting
	merchants := testMerchants(t, p)
	changed := merchants[:4]

	// A product of the largest merchant's that nothing stored has sold yet.
	_, err = src.Exec(ctx, `
		WITH p AS (
			INSERT INTO products (id, merchant_id, category_id, sku, name, price, created_at)
			SELECT max(id) + 1, $1, min(category_id), 'SKU-PENDING', 'Only pending', 10, now() FROM products
			RETURNING id),
		o AS (
			INSERT INTO orders (id, merchant_id, customer_id, city_id, delivery_type, payment_method, status,
			                    total_amount, created_at, accepted_at, delivered_at, updated_at)
			VALUES ((SELECT max(id) + 1 FROM orders), $1, 2, 1, 'pickup', 'cash', 'delivered', 5000,
			        '2025-05-20 12:00+03', '2025-05-20 13:00+03', '2025-05-21 12:00+03', now())
			RETURNING id)
		INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)
		SELECT (SELECT max(id) + 1 FROM order_items), o.id, p.id, 500, 10 FROM o, p`, merchants[0])
	require.NoError(t, err)

	productCases := func(name string) {
		t.Helper()
		for i, kind := range []int{4, 2, 3} { // abc, breakdown (drawCase's kinds)
			c := drawCase(uint64(len(name)*10+i), kind, merchants)
			c.merchant, c.dim, c.parent, c.page, c.pageSize = merchants[0], "product", nil, 1, 500
			c.from, c.to = time.Date(2025, 5, 20-i, 0, 0, 0, 0, time.UTC), time.Date(2025, 5, 20+i, 0, 0, 0, 0, time.UTC)
			t.Run(fmt.Sprintf("%s/%s", name, c), func(t *testing.T) { c.check(t, a, src) })
		}
	}
	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	var fresh int
	require.NoError(t, an.QueryRow(ctx, `
		SELECT count(*) FROM agg.key_pending k
		WHERE k.dim = 'p' AND k.key = (SELECT id FROM agg.products WHERE sku = 'SKU-PENDING')
		  AND NOT EXISTS (SELECT FROM agg.key_months b WHERE b.merchant_id = k.merchant_id AND b.dim = 'p' AND b.key = k.key)`).Scan(&fresh))
	require.Positive(t, fresh, "the new product has pending changes and no row")
	productCases("new product")

	pending := func() (merchants, rows, over int) {
		t.Helper()
		require.NoError(t, an.QueryRow(ctx, `
			SELECT count(*), coalesce(sum(n), 0), count(*) FILTER (WHERE n > $1)
			FROM (SELECT merchant_id, count(*) AS n FROM agg.key_pending GROUP BY 1) AS m`, bound).Scan(&merchants, &rows, &over))
		return
	}
	var deferred, written bool
	for round := range 4 {
		for i, m := range changed {
			if i%2 == round%2 || round == 3 {
				changeOrders(t, src, m)
			}
			changeSource(t, src, m)
		}
		_, err := r.RefreshChanged(ctx, nil)
		require.NoError(t, err)
		n, rows, over := pending()
		require.Zero(t, over, "no merchant keeps more pending changes than the bound")
		deferred = deferred || n > 0
		written = written || n < len(changed)
		t.Logf("round %d: %d pending changes of %d merchants", round, rows, n)

		for i := range 12 {
			c := drawCase(uint64(round*100+i), i, changed)
			if i%2 == 0 { // around the changed days
				c.from, c.to = time.Date(2025, 3, 1+i, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 30-i, 0, 0, 0, 0, time.UTC)
				if c.compare == "custom" {
					c.compare = "previous_year"
				}
			}
			t.Run(fmt.Sprintf("round=%d/%s", round, c), func(t *testing.T) { c.check(t, a, src) })
		}
		productCases(fmt.Sprintf("round=%d/product", round))
		for i := range 3 { // day series over the changed days
			c := drawCase(uint64(round*100+50+i), 1, changed)
			c.grain, c.from, c.to = "day", time.Date(2025, 3, 1+i, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 28+i, 0, 0, 0, 0, time.UTC)
			if c.compare == "custom" {
				c.compare = "previous_period"
			}
			t.Run(fmt.Sprintf("round=%d/%s", round, c), func(t *testing.T) { c.check(t, a, src) })
		}
	}
	require.True(t, deferred, "some changes were left pending")
	require.True(t, written, "some merchants' pending changes were written into their rows")
	var queue bool
	require.NoError(t, an.QueryRow(ctx, `SELECT queue FROM refresh.maintained_tables() WHERE relid = 'agg.key_pending'::regclass`).Scan(&queue))
	require.True(t, queue, "tidy keeps pending changes as a queue: vacuumed, never analyzed or reindexed")

	after := snapshot(t, an)
	rebuild(t, an, changed)
	require.Equal(t, after, snapshot(t, an), "pending changes written = a backfill")
}
