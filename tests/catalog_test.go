package tests

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// The whole seeded history (the API serves at most three years at a time), and a month.
var catalogRanges = [][2]string{{"2023-11-01", "2026-10-31"}, {"2020-12-01", "2023-10-31"}, {"2024-02-01", "2024-02-29"}}

// breakdownAll reads every row of a breakdown from the API, page by page.
func breakdownAll(t *testing.T, a *api, m int64, dim string, parent *int64, from, to string) []gen.BreakdownRow {
	t.Helper()
	tok := bearer(token(t, m, auth.RoleMerchant))
	sort := gen.GetBreakdownParamsSort("gmv")
	size := int64(500)
	rows := []gen.BreakdownRow{}
	for page := int64(1); ; page++ {
		res, err := a.client.GetBreakdownWithResponse(context.Background(), gen.GetBreakdownParamsDimension(dim), &gen.GetBreakdownParams{
			From: day(from), To: day(to), Sort: &sort, Page: &page, PageSize: &size, ParentId: parent}, tok)
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode(), string(res.Body))
		rows = append(rows, res.JSON200.Rows...)
		if int64(len(rows)) >= res.JSON200.Total {
			return rows
		}
	}
}

// requireBreakdown compares a breakdown with the definition computed on the source.
func requireBreakdown(t *testing.T, a *api, src *pgxpool.Pool, m int64, dim string, parent *int64) {
	t.Helper()
	for _, rg := range catalogRanges {
		want := referenceBreakdown(t, src, m, day(rg[0]).Time, day(rg[1]).Time, allIfNil(nil), dim, "gmv", parent)
		require.Equal(t, want, breakdownAll(t, a, m, dim, parent, rg[0], rg[1]), "%s parent %s %v", dim, fmtParent(parent), rg)
	}
}

// requireTree compares every level of the category tree that has rows, and the flat list.
func requireTree(t *testing.T, a *api, src *pgxpool.Pool, m int64) {
	t.Helper()
	requireBreakdown(t, a, src, m, "category", nil)
	requireLevel(t, a, src, m, 0)
}

// requireLevel compares a level of the category tree and every level below it that has rows.
func requireLevel(t *testing.T, a *api, src *pgxpool.Pool, m, parent int64) {
	t.Helper()
	requireBreakdown(t, a, src, m, "category", &parent)
	for _, r := range breakdownAll(t, a, m, "category", &parent, catalogRanges[0][0], catalogRanges[0][1]) {
		if id := mustID(t, r.Key); id != parent && r.HasChildren != nil && *r.HasChildren {
			requireLevel(t, a, src, m, id)
		}
	}
}

// requireCategoryFilter compares a summary filtered by a category (its subtree's line
// figures) with its row at its parent's level of the tree on the source.
func requireCategoryFilter(t *testing.T, a *api, src *pgxpool.Pool, m, id int64) {
	t.Helper()
	var parent *int64
	require.NoError(t, src.QueryRow(context.Background(), `SELECT coalesce(parent_id, 0) FROM categories WHERE id = $1`, id).Scan(&parent))
	k := drillKey{dim: "category", id: &id, parent: parent}
	for _, rg := range catalogRanges {
		res, err := a.client.GetSummaryWithResponse(context.Background(), &gen.GetSummaryParams{
			From: day(rg[0]), To: day(rg[1]), CategoryId: &id}, bearer(token(t, m, auth.RoleMerchant)))
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode(), string(res.Body))
		d, err := res.JSON200.AsDrilledSummary()
		require.NoError(t, err)
		require.Equal(t, k.reference(t, src, randomCase{merchant: m}, day(rg[0]).Time, day(rg[1]).Time, allIfNil(nil)),
			d.Metrics, "category %d %v", id, rg)
	}
}

func fmtParent(p *int64) string {
	if p == nil {
		return "none"
	}
	return strconv.FormatInt(*p, 10)
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err)
	return id
}

func mustExec(t *testing.T, pool *pgxpool.Pool, q string, args ...any) int64 {
	t.Helper()
	tag, err := pool.Exec(context.Background(), q, args...)
	require.NoError(t, err)
	return tag.RowsAffected()
}

// TestProductMoveTakesItsHistory: a merchant with no other change moves five products to
// another category (one of them onto a top-level category). The worker's change scan finds the
// catalog change and its refresh moves the products' whole history, so the flat list and
// every level of the tree equal the definition on the source; other merchants are untouched.
func TestProductMoveTakesItsHistory(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src := dbtest.Pool(t, p.SourceURL())
	a := newAPI(t, p)
	ctx := context.Background()
	const m, other = 4, 5

	requireTree(t, a, src, m)
	before := breakdownAll(t, a, m, "category", nil, catalogRanges[0][0], catalogRanges[0][1])
	otherBefore := breakdownAll(t, a, other, "category", nil, catalogRanges[0][0], catalogRanges[0][1])
	require.EqualValues(t, 5, mustExec(t, src, `
		UPDATE products p SET category_id = CASE WHEN x.n = 1 THEN 2 ELSE 37 END
		FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM products
		      WHERE merchant_id = $1 AND category_id NOT IN (2, 37) ORDER BY id LIMIT 5) AS x
		WHERE p.id = x.id`, m))
	require.Equal(t, before, breakdownAll(t, a, m, "category", nil, catalogRanges[0][0], catalogRanges[0][1]),
		"nothing moves before the change scan")

	c := riverClient(t, p, 200*time.Millisecond)
	events, cancel := c.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, events, "refresh_merchant", func(e *river.Event) bool {
		var args struct {
			MerchantID int64 `json:"merchant_id"`
		}
		return json.Unmarshal(e.Job.EncodedArgs, &args) == nil && args.MerchantID == m
	})
	require.NoError(t, c.Stop(ctx))

	requireTree(t, a, src, m)
	require.NotEqual(t, before, breakdownAll(t, a, m, "category", nil, catalogRanges[0][0], catalogRanges[0][1]))
	require.Equal(t, otherBefore, breakdownAll(t, a, other, "category", nil, catalogRanges[0][0], catalogRanges[0][1]))
	requireBreakdown(t, a, src, m, "product", nil)
	requireExact(t, a, src, m, catalogRanges[0][0], catalogRanges[0][1])
}

// TestCatalogMovesAndRenames: each change alone, then the step that must make it show — a
// city's region move and renames at the change scan (`merchantagg refresh`), a category moved
// under another parent at reconciliation — and the breakdowns equal the definition.
func TestCatalogMovesAndRenames(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	ms := []int64{1, 7, 12}
	refreshChanged := func() {
		t.Helper()
		_, err := r.RefreshChanged(ctx, nil)
		require.NoError(t, err)
	}

	t.Run("city region move", func(t *testing.T) {
		require.EqualValues(t, 1, mustExec(t, src, `UPDATE cities SET region = 'Moved Region' WHERE id = 3`))
		refreshChanged()
		for _, m := range ms {
			requireBreakdown(t, a, src, m, "region", nil)
			requireBreakdown(t, a, src, m, "city", nil)
		}
	})
	t.Run("renames", func(t *testing.T) {
		mustExec(t, src, `UPDATE cities SET name = name || ' (renamed)' WHERE id = 2`)
		mustExec(t, src, `UPDATE categories SET name = name || ' (renamed)' WHERE id IN (1, 12)`)
		mustExec(t, src, `UPDATE products SET name = name || ' (renamed)' WHERE id IN (SELECT min(id) FROM products GROUP BY merchant_id)`)
		refreshChanged()
		for _, m := range ms {
			requireBreakdown(t, a, src, m, "city", nil)
			requireBreakdown(t, a, src, m, "product", nil)
			requireTree(t, a, src, m)
		}
		var stale int
		require.NoError(t, an.QueryRow(ctx, `SELECT refresh.mark_stale_catalogs()`).Scan(&stale))
		require.Zero(t, stale, "the copy's sums follow the lists read again")
	})
	t.Run("category parent move", func(t *testing.T) {
		// A subcategory of 1 moves under 2, and 3 moves under 4 with its whole subtree.
		mustExec(t, src, `UPDATE categories SET parent_id = 2 WHERE id = 11`)
		mustExec(t, src, `UPDATE categories SET parent_id = 4 WHERE id = 3`)
		refreshChanged()
		drifted, err := r.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, drifted, "a parent move is no drift of the orders")
		for _, m := range ms {
			requireTree(t, a, src, m)
		}
		again, err := r.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, again)
	})
}

// TestLeafCategoryGainsAndLosesChildren: subtree rows are kept only for categories with
// subcategories. A leaf that gains one (a category moved under it, or a new category created
// under it and given products) and a parent that loses its only one are netted again at
// reconciliation: every level of the tree and the category filters equal the definition, and
// no category without subcategories keeps subtree rows.
func TestLeafCategoryGainsAndLosesChildren(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	ms := []int64{1, 7}
	leafRows := func() (stray, rows12, rows14 int) {
		t.Helper()
		require.NoError(t, an.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = k.key)),
			count(*) FILTER (WHERE k.key = 12), count(*) FILTER (WHERE k.key = 14)
			FROM agg.key_months k WHERE k.dim = 'g'`).Scan(&stray, &rows12, &rows14))
		return
	}
	settle := func() {
		t.Helper()
		_, err := r.RefreshChanged(ctx, nil)
		require.NoError(t, err)
		drifted, err := r.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, drifted)
		for _, m := range ms {
			requireTree(t, a, src, m)
			for _, id := range []int64{1, 12, 13, 14, 900} {
				requireCategoryFilter(t, a, src, m, id)
			}
		}
	}
	stray, rows12, rows14 := leafRows()
	require.Zero(t, stray+rows12+rows14, "no subtree rows for leaves")

	// 13 moves under the leaf 12; a new category 900 under the leaf 14 takes products of 13 and
	// of 14 from merchant 1.
	mustExec(t, src, `UPDATE categories SET parent_id = 12 WHERE id = 13`)
	mustExec(t, src, `INSERT INTO categories (id, parent_id, name) VALUES (900, 14, 'New subcategory')`)
	require.EqualValues(t, 4, mustExec(t, src, `
		UPDATE products SET category_id = 900
		WHERE id IN (SELECT id FROM products WHERE merchant_id = 1 AND category_id IN (13, 14) ORDER BY id LIMIT 4)`))
	settle()
	stray, rows12, rows14 = leafRows()
	require.Zero(t, stray)
	require.NotZero(t, rows12)
	require.NotZero(t, rows14)

	// Back: 12 and 14 lose their only subcategories.
	mustExec(t, src, `UPDATE categories SET parent_id = 1 WHERE id = 13`)
	mustExec(t, src, `UPDATE categories SET parent_id = NULL WHERE id = 900`)
	settle()
	stray, rows12, rows14 = leafRows()
	require.Zero(t, stray+rows12+rows14)
}

// TestOrderSpanningTwoChildren: an order with lines in two children of one parent counts once
// in the parent's orders and once in each child's.
func TestOrderSpanningTwoChildren(t *testing.T) {
	t.Parallel()
	_, src, an, a, _ := setUp(t)
	const m = 2
	// A new order of two lines, one product of category 11 and one of 12 (both under 1).
	mustExec(t, src, `UPDATE products SET category_id = 11 WHERE id = (SELECT min(id) FROM products WHERE merchant_id = $1)`, m)
	mustExec(t, src, `UPDATE products SET category_id = 12 WHERE id = (SELECT max(id) FROM products WHERE merchant_id = $1)`, m)
	mustExec(t, src, `
		WITH o AS (
			INSERT INTO orders (id, merchant_id, customer_id, city_id, delivery_type, payment_method, status,
			                    total_amount, created_at, updated_at)
			VALUES ((SELECT max(id) + 1 FROM orders), $1, 1, 1, 'courier', 'card', 'created', 30.00,
			        '2026-10-30 12:00+03', now())
			RETURNING id)
		INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)
		SELECT (SELECT max(id) FROM order_items) + k, o.id,
		       CASE k WHEN 1 THEN (SELECT min(id) FROM products WHERE merchant_id = $1)
		              ELSE (SELECT max(id) FROM products WHERE merchant_id = $1) END, 1, 10.00 * k
		FROM o, generate_series(1, 2) AS k`, m)
	_, err := refresh.New(an).RefreshChanged(context.Background(), nil)
	require.NoError(t, err)
	requireTree(t, a, src, m)

	top, one := int64(0), int64(1)
	for _, rg := range [][2]string{{"2026-10-30", "2026-10-30"}, catalogRanges[0]} {
		parents := breakdownAll(t, a, m, "category", &top, rg[0], rg[1])
		children := breakdownAll(t, a, m, "category", &one, rg[0], rg[1])
		var parent gen.BreakdownRow
		for _, r := range parents {
			if r.Key == "1" {
				parent = r
			}
		}
		var sum int64
		for _, r := range children {
			sum += r.Metrics.Orders
		}
		require.Less(t, parent.Metrics.Orders, sum, "the spanning order counts once in the parent %v", rg)
	}
	day := breakdownAll(t, a, m, "category", &one, "2026-10-30", "2026-10-30")
	keys := map[string]int64{}
	for _, r := range day {
		keys[r.Key] = r.Metrics.Orders
	}
	require.GreaterOrEqual(t, keys["11"], int64(1))
	require.GreaterOrEqual(t, keys["12"], int64(1))
}

// TestSilentCityChangeIsReconciled: an order moved to another city without bumping updated_at
// keeps every month total; the change scan cannot see it, the reconciliation's per-order key
// checksums can, and its refresh makes the city and region breakdowns exact.
func TestSilentCityChangeIsReconciled(t *testing.T) {
	t.Parallel()
	_, src, _, a, r := setUp(t)
	ctx := context.Background()
	const m = 6
	require.EqualValues(t, 1, mustExec(t, src, `
		UPDATE orders SET city_id = (SELECT max(id) FROM cities WHERE id <> city_id)
		WHERE id = (SELECT max(id) FROM orders WHERE merchant_id = $1)`, m))
	_, err := r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	want := referenceBreakdown(t, src, m, day(catalogRanges[0][0]).Time, day(catalogRanges[0][1]).Time, allIfNil(nil), "city", "gmv", nil)
	require.NotEqual(t, want, breakdownAll(t, a, m, "city", nil, catalogRanges[0][0], catalogRanges[0][1]), "the scan cannot see it")

	drifted, err := r.Reconcile(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, drifted)
	_, err = r.RefreshAllDirty(ctx, nil)
	require.NoError(t, err)
	requireBreakdown(t, a, src, m, "city", nil)
	requireBreakdown(t, a, src, m, "region", nil)
}
