package seed_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/seed"
	"github.com/merchantagg/merchantagg/internal/source"
)

// load seeds a fresh source database and returns a fingerprint of every table.
func load(t *testing.T, opts seed.Options) (fingerprint string, facts map[string]float64) {
	t.Helper()
	ctx := context.Background()
	name := dbtest.UniqueName("seed")
	require.NoError(t, dbtest.CreateDatabase(ctx, name, ""))
	t.Cleanup(func() { _ = dbtest.DropDatabase(context.Background(), name) })
	pool := dbtest.Pool(t, dbtest.URL(name))
	require.NoError(t, source.Init(ctx, pool))
	require.NoError(t, seed.Run(ctx, pool, opts))
	require.ErrorIs(t, seed.Run(ctx, pool, opts), seed.ErrNotEmpty)

	require.NoError(t, pool.QueryRow(ctx, `SELECT md5(
		(SELECT string_agg(x::text, ',' ORDER BY id) FROM merchants x) ||
		(SELECT string_agg(x::text, ',' ORDER BY id) FROM products x) ||
		(SELECT string_agg(x::text, ',' ORDER BY id) FROM customers x) ||
		(SELECT string_agg(x::text, ',' ORDER BY id) FROM orders x) ||
		(SELECT string_agg(x::text, ',' ORDER BY id) FROM order_items x) ||
		(SELECT string_agg(x::text, ',' ORDER BY id) FROM returns x))`).Scan(&fingerprint))

	facts = map[string]float64{}
	for k, q := range map[string]string{
		"orders":                 "SELECT count(*) FROM orders",
		"cities used":            "SELECT count(DISTINCT city_id) FROM orders",
		"cities":                 "SELECT count(*) FROM cities",
		"delivery types":         "SELECT count(DISTINCT delivery_type) FROM orders",
		"payment methods":        "SELECT count(DISTINCT payment_method) FROM orders",
		"statuses":               "SELECT count(DISTINCT status) FROM orders",
		"largest merchant share": "SELECT max(n)::float8 / sum(n) FROM (SELECT count(*) n FROM orders GROUP BY merchant_id) x",
		"top 10% products share": `SELECT sum(g) FILTER (WHERE r <= 0.1) / sum(g) FROM (
			SELECT sum(quantity * unit_price) g, percent_rank() OVER (ORDER BY sum(quantity * unit_price) DESC) r
			FROM order_items GROUP BY product_id) x`,
		"cancel rate":           "SELECT avg((status = 'cancelled')::int) FROM orders",
		"return rate":           "SELECT avg((status = 'returned')::int) FROM orders WHERE delivered_at IS NOT NULL",
		"repeat customer share": "SELECT avg((n >= 2)::int) FROM (SELECT count(*) n FROM orders GROUP BY merchant_id, customer_id) x",
		"total mismatches": `SELECT count(*) FROM orders o WHERE total_amount <>
			(SELECT sum(quantity * unit_price) FROM order_items i WHERE i.order_id = o.id)`,
		"returned without return": `SELECT count(*) FROM orders o WHERE (status = 'returned') <>
			EXISTS (SELECT FROM returns r WHERE r.order_id = o.id)`,
		"stale updated_at": `SELECT count(*) FROM orders o WHERE updated_at < greatest(created_at, accepted_at,
			delivered_at, cancelled_at, (SELECT max(created_at) FROM returns r WHERE r.order_id = o.id))`,
		"december vs june": `SELECT (count(*) FILTER (WHERE extract(month FROM created_at) = 12))::float8 /
			(count(*) FILTER (WHERE extract(month FROM created_at) = 6)) FROM orders`,
	} {
		var v float64
		require.NoError(t, pool.QueryRow(ctx, q).Scan(&v), k)
		facts[k] = v
	}
	return fingerprint, facts
}

func TestSeed(t *testing.T) {
	t.Parallel()
	loc, _ := time.LoadLocation("Europe/Moscow")
	opts := seed.Options{Merchants: 20, Orders: 20_000, Seed: 42, Location: loc,
		From: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)}
	a, facts := load(t, opts)
	b, _ := load(t, opts)
	require.Equal(t, a, b, "the same seed loads the same rows")
	opts.Seed = 43
	c, _ := load(t, opts)
	require.NotEqual(t, a, c, "another seed loads other rows")

	require.EqualValues(t, 20_000, facts["orders"])
	require.Equal(t, facts["cities"], facts["cities used"], "every city has orders")
	require.EqualValues(t, 4, facts["delivery types"])
	require.EqualValues(t, 5, facts["payment methods"])
	require.EqualValues(t, 5, facts["statuses"], "every status present")
	require.Greater(t, facts["largest merchant share"], 0.2, "a few very large merchants")
	require.Greater(t, facts["top 10% products share"], 0.4, "Pareto product popularity")
	require.InDelta(t, 0.07, facts["cancel rate"], 0.02)
	require.InDelta(t, 0.06, facts["return rate"], 0.02)
	require.Greater(t, facts["repeat customer share"], 0.15, "repeat customers")
	require.Greater(t, facts["december vs june"], 1.2, "seasonality")
	require.Zero(t, facts["total mismatches"], "total_amount = Σ quantity × unit_price")
	require.Zero(t, facts["returned without return"])
	require.Zero(t, facts["stale updated_at"], "updated_at covers every event")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	loc := time.UTC
	d := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		opts seed.Options
		want string
	}{
		{"no merchants", seed.Options{Merchants: 0, Orders: 1, Location: loc, From: d, To: d}, "--merchants"},
		{"negative orders", seed.Options{Merchants: 1, Orders: -1, Location: loc, From: d, To: d}, "--orders"},
		{"reversed span", seed.Options{Merchants: 1, Orders: 1, Location: loc, From: d, To: d.AddDate(0, 0, -1)}, "--to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, tc.opts.Validate(), tc.want)
		})
	}
}
