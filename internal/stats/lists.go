package stats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/db"
)

// ErrUnknownSort is returned for a sort key outside the whitelist.
var ErrUnknownSort = errors.New("unknown sort key")

// A sort key of a list: a fixed SQL expression (a column of api.metrics, sql/code/reads.sql,
// for breakdowns) and the packed figures it needs (api.key_sums's p_need: 1..7 the sums, 8
// the cancelled count). Request text never reaches SQL.
type sortKey struct {
	expr  string
	needs []int
}

var (
	// Breakdown sorts: columns of api.metrics, rounded as the response shows them, so ties fall
	// to the key as they appear.
	breakdownSorts = map[string]sortKey{
		"name": {breakdownName, nil}, "key": {breakdownKey, nil},
		"orders": {"orders", nil}, "accepted": {"accepted", nil}, "delivered": {"delivered", []int{2}},
		"cancelled": {"cancelled", []int{8}}, "returned": {"returned", []int{2}}, "items": {"items", []int{3}},
		"gmv": {"gmv", nil}, "share": {"gmv", nil}, // exact, not the rounded share
		"returned_amount": {"returned_amount", []int{6}}, "revenue": {"revenue", []int{5, 6}},
		"aov": {"aov", nil}, "cancel_rate": {"cancel_rate", []int{8}}, "return_rate": {"return_rate", []int{2}},
		"avg_delivery_hours": {"avg_delivery_hours", []int{2, 7}},
	}
	// A key in the order breakdown.sql breaks ties in (numerically for ids, as text for labels),
	// as one expression, worked out only when sorting by it.
	breakdownKey = "CASE WHEN label IS NULL THEN lpad(key::text, 20, '0') ELSE label END"
	// A key's name as sql/queries/breakdown.sql shows it, looked up only when sorting by it.
	breakdownName = `coalesce((SELECT p.name FROM agg.products AS p WHERE $2 = 'product' AND p.merchant_id = $1 AND p.id = key),
		(SELECT c.name FROM ref.categories AS c WHERE $2 = 'category' AND c.id = key),
		(SELECT ci.name FROM ref.cities AS ci WHERE $2 = 'city' AND ci.id = key), label, key::text) COLLATE "C"`
	// ABC sorts: columns of sql/queries/abc.sql; a name is looked up only when sorting by it.
	abcSorts = map[string]sortKey{
		"rank": {"rank", nil}, "value": {"value", nil}, "share": {"value", nil}, "product_id": {"product_id", nil},
		"name": {`(SELECT coalesce(p.name, product_id::text) FROM agg.products AS p WHERE p.merchant_id = $1 AND p.id = product_id) COLLATE "C"`, nil},
	}
)

// needs returns api.key_sums's p_need for a sort key: the orders and gmv every list reads
// (its rows, its total), and the sort's own figures.
func needs(k sortKey) []bool {
	n := make([]bool, 8)
	n[0], n[3] = true, true
	for _, f := range k.needs {
		n[f-1] = true
	}
	return n
}

// orderBy turns a sort key ("gmv", "-gmv") into a whitelisted ORDER BY fragment and the key.
func orderBy(sort string, whitelist map[string]sortKey) (string, sortKey, error) {
	key, desc := strings.CutPrefix(sort, "-")
	k, ok := whitelist[key]
	if !ok {
		return "", k, fmt.Errorf("%w %q", ErrUnknownSort, sort)
	}
	if desc {
		return k.expr + " DESC NULLS LAST", k, nil
	}
	return k.expr + " ASC NULLS LAST", k, nil
}

// List asks for a page of a list over a range.
type List struct {
	MerchantID    int64
	Statuses      []gen.OrderStatus
	From, To      time.Time
	Sort          string
	Limit, Offset int64
}

// Breakdown returns one page of a dimension's rows and the number of rows over all pages. A
// category breakdown with parent set lists that level of the category tree (0: the top).
func (r *Reader) Breakdown(ctx context.Context, dimension string, l List, parent *int64) (int64, []gen.BreakdownRow, error) {
	order, key, err := orderBy(l.Sort, breakdownSorts)
	if err != nil {
		return 0, nil, err
	}
	q := strings.ReplaceAll(r.sql["breakdown.sql"], "/*ORDER*/", order)
	sl := slots(l.Statuses)
	var total int64
	out := []gen.BreakdownRow{}
	b := &pgx.Batch{}
	b.Queue(q, l.MerchantID, dimension, l.From, l.To, sl.Slot, sl.Coef, sl.CCoef, l.Limit, l.Offset, needs(key), parent).Query(func(rows pgx.Rows) error {
		var key, name *string
		var row gen.BreakdownRow
		m := &row.Metrics
		var gmv, returnedAmount, revenue *string
		var orders, accepted, delivered, cancelled, returned, items, parentID *int64
		var children *bool
		_, err := pgx.ForEachRow(rows, []any{&total, &key, &name, &row.Share, &orders, &accepted, &delivered,
			&cancelled, &returned, &items, &gmv, &returnedAmount, &revenue, &m.Aov, &m.CancelRate,
			&m.ReturnRate, &m.AvgDeliveryHours, &parentID, &children}, func() error {
			if key == nil { // a page past the end
				return nil
			}
			row.Key, row.Name, row.ParentId, row.HasChildren = *key, *name, parentID, children
			m.Orders, m.Accepted, m.Delivered, m.Cancelled, m.Returned, m.Items = *orders, *accepted, *delivered, *cancelled, *returned, *items
			m.Gmv, m.ReturnedAmount, m.Revenue = *gmv, *returnedAmount, *revenue
			out = append(out, row)
			return nil
		})
		return err
	})
	err = db.AsMerchant(ctx, r.pool, l.MerchantID, db.CustomPlans, b)
	if err != nil {
		return 0, nil, fmt.Errorf("%s breakdown of merchant %d: %w", dimension, l.MerchantID, err)
	}
	return total, out, nil
}

// ABCQuery asks for a page of an ABC analysis.
type ABCQuery struct {
	List
	Metric string  // "gmv" or "items"
	A, B   float64 // class bounds
	Class  *string // only this class
}

// ABCResult is a page of an ABC analysis with its totals.
type ABCResult struct {
	Total      int64
	TotalValue string
	Classes    []gen.ABCClassTotal
	Products   []gen.ABCProduct
}

// ABC classifies the merchant's products over the range.
func (r *Reader) ABC(ctx context.Context, q ABCQuery) (ABCResult, error) {
	order, _, err := orderBy(q.Sort, abcSorts)
	if err != nil {
		return ABCResult{}, err
	}
	sql := strings.ReplaceAll(r.sql["abc.sql"], "/*ORDER*/", order)
	sl := slots(q.Statuses)
	res := ABCResult{Products: []gen.ABCProduct{}}
	b := &pgx.Batch{}
	b.Queue(sql, q.MerchantID, q.From, q.To, sl.Slot, sl.Coef, q.Metric,
		q.A, q.B, q.Class, q.Limit, q.Offset).Query(func(rows pgx.Rows) error {
		var classes []byte
		var id, rank *int64
		var sku, name, value, class *string
		var share, cum *float64
		_, err := pgx.ForEachRow(rows, []any{&res.Total, &res.TotalValue, &classes, &id, &sku, &name, &value,
			&share, &cum, &class, &rank}, func() error {
			if res.Classes == nil {
				if err := json.Unmarshal(classes, &res.Classes); err != nil {
					return fmt.Errorf("class totals: %w", err)
				}
			}
			if id == nil {
				return nil
			}
			res.Products = append(res.Products, gen.ABCProduct{ProductId: *id, Sku: *sku, Name: *name, Value: *value,
				Share: *share, CumulativeShare: *cum, Class: gen.ABCClass(*class), Rank: *rank})
			return nil
		})
		return err
	})
	err = db.AsMerchant(ctx, r.pool, q.MerchantID, db.CustomPlans, b)
	if err != nil {
		return ABCResult{}, fmt.Errorf("abc of merchant %d: %w", q.MerchantID, err)
	}
	res.Classes = allClasses(res.Classes)
	return res, nil
}

// allClasses lists A, B and C, with zeros for a class without products.
func allClasses(have []gen.ABCClassTotal) []gen.ABCClassTotal {
	out := make([]gen.ABCClassTotal, 0, 3)
	for _, c := range []gen.ABCClass{gen.A, gen.B, gen.C} {
		t := gen.ABCClassTotal{Class: c, Value: "0"}
		for _, h := range have {
			if h.Class == c {
				t = h
			}
		}
		out = append(out, t)
	}
	return out
}

// CategoryKnown reports whether the catalog copy has category id.
func (r *Reader) CategoryKnown(ctx context.Context, id int64) (bool, error) {
	var ok bool
	if err := r.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM ref.categories WHERE id = $1)", id).Scan(&ok); err != nil {
		return false, fmt.Errorf("look category %d up: %w", id, err)
	}
	return ok, nil
}

// Cohorts returns the retention matrix of the cohorts of the months from..to (first days).
func (r *Reader) Cohorts(ctx context.Context, merchantID int64, statuses []gen.OrderStatus, from, to time.Time) ([]gen.Cohort, error) {
	out := []gen.Cohort{}
	b := &pgx.Batch{}
	b.Queue(r.sql["cohorts.sql"], merchantID, from, to, filterBits(statuses)).Query(func(rows pgx.Rows) error {
		var cohort time.Time
		var size int64
		var k *int32
		var share *float64
		_, err := pgx.ForEachRow(rows, []any{&cohort, &size, &k, &share}, func() error {
			if len(out) == 0 || !out[len(out)-1].Cohort.Time.Equal(cohort) {
				months := (to.Year()-cohort.Year())*12 + int(to.Month()-cohort.Month()) + 1
				out = append(out, gen.Cohort{Cohort: openapi_types.Date{Time: cohort}, Customers: size, Retention: make([]float64, months)})
			}
			if k != nil && int(*k) < len(out[len(out)-1].Retention) {
				out[len(out)-1].Retention[*k] = *share
			}
			return nil
		})
		return err
	})
	err := db.AsMerchant(ctx, r.pool, merchantID, db.GenericPlans, b)
	if err != nil {
		return nil, fmt.Errorf("cohorts of merchant %d: %w", merchantID, err)
	}
	return out, nil
}

// Freshness reports how fresh a merchant's aggregates are.
func (r *Reader) Freshness(ctx context.Context, merchantID int64) (gen.Freshness, error) {
	f := gen.Freshness{MerchantId: merchantID}
	b := &pgx.Batch{}
	b.Queue(r.sql["freshness.sql"]).QueryRow(func(row pgx.Row) error {
		return row.Scan(&f.RefreshedAt, &f.SourceWatermark, &f.LastScanAt, &f.PendingDays, &f.LagSeconds)
	})
	err := db.AsMerchant(ctx, r.pool, merchantID, db.GenericPlans, b)
	if err != nil {
		return f, fmt.Errorf("freshness of merchant %d: %w", merchantID, err)
	}
	return f, nil
}
