package stats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/period"
)

// ErrUnknownSort is returned for a sort key outside the whitelist.
var ErrUnknownSort = errors.New("unknown sort key")

// A sort key of a list: a fixed SQL expression (a column of api.metrics, sql/code/reads.sql,
// for breakdowns) and the packed figures it needs (api.range_sums's p_need: 1..7 the sums, 8
// the cancelled count). Request text never reaches SQL.
type sortKey struct {
	expr  string
	needs []int
}

var (
	// Breakdown sorts: columns of api.metrics, rounded as the response shows them, so ties fall
	// to the key as they appear. Gmv sorts by the cents it shows (breakdown.sql's w4): the same
	// order, without making a numeric of every key.
	breakdownSorts = map[string]sortKey{
		"name": {breakdownName, nil}, "key": {breakdownKey, nil},
		"orders": {"orders", nil}, "accepted": {"accepted", nil}, "delivered": {"delivered", []int{2}},
		"cancelled": {"cancelled", []int{8}}, "returned": {"returned", []int{2}}, "items": {"items", []int{3}},
		"gmv": {"s.w4", nil}, "share": {"s.w4", nil}, // exact, not the rounded share
		"returned_amount": {"returned_amount", []int{6}}, "revenue": {"revenue", []int{5, 6}},
		"aov": {"aov", nil}, "cancel_rate": {"cancel_rate", []int{8}}, "return_rate": {"return_rate", []int{2}},
		"avg_delivery_hours": {"avg_delivery_hours", []int{2, 7}},
	}
	// A key in the order breakdown.sql breaks ties in (numerically for ids, as text for labels),
	// as one expression, worked out only when sorting by it.
	breakdownKey = "CASE WHEN label IS NULL THEN lpad(key::text, 20, '0') ELSE label END"
	// A key's name as sql/queries/breakdown.sql shows it, looked up only when sorting by it.
	breakdownName = `coalesce((SELECT p.name FROM agg.products AS p WHERE @dimension = 'product' AND p.merchant_id = @merchant_id AND p.id = key),
		(SELECT c.name FROM ref.categories AS c WHERE @dimension = 'category' AND c.id = key),
		(SELECT ci.name FROM ref.cities AS ci WHERE @dimension = 'city' AND ci.id = key), label, key::text) COLLATE "C"`
	// ABC sorts: columns of sql/queries/abc.sql; a name is looked up only when sorting by it.
	abcSorts = map[string]sortKey{
		"rank": {"rank", nil}, "value": {"value", nil}, "share": {"value", nil}, "product_id": {"product_id", nil},
		"name": {`(SELECT coalesce(p.name, product_id::text) FROM agg.products AS p WHERE p.merchant_id = @merchant_id AND p.id = product_id) COLLATE "C"`, nil},
	}
)

// sumsFunction is the api.range_sums function a list reads under a filter's slots (the SUMS
// marker of its SQL): the one unrolling two slots when they are enough (no filter, or one
// without delivered), else the one unrolling all five, whose larger body takes longer to plan.
func sumsFunction(slots []int32) string {
	if len(slots) <= 2 {
		return "api.range_sums"
	}
	return "api.range_sums_5"
}

// listSQL fills a list's markers (abc.sql, breakdown.sql): ORDER with order, a fragment from
// the whitelist, and SUMS with the function for the filter's slots.
func listSQL(sql, order string, slots []int32) string {
	return strings.NewReplacer("/*ORDER*/", order, "/*SUMS*/", sumsFunction(slots)).Replace(sql)
}

// A list's plan depends on a few of its arguments: the dimension, the status filter's slots
// and coefficients, the figures it needs, ABC's metric. Those are written into its SQL as
// literals (bind), so that each shape of list is a statement of its own, planned once per
// connection (db.GenericPlans) with them folded in, as a plan made for the call would have
// them, without planning at every call. Only values made here from whitelisted or typed Go
// values become literals, never request text.

// bind replaces the named arguments of sql (@name) that lits has by their literals.
func bind(sql string, lits map[string]string) string {
	return namedArg.ReplaceAllStringFunc(sql, func(m string) string {
		if l, ok := lits[m[1:]]; ok {
			return l
		}
		return m
	})
}

var (
	namedArg = regexp.MustCompile(`@[a-z_]+`)
	word     = regexp.MustCompile(`^[a-z_]+$`)
)

// intsLiteral is an int[] literal.
func intsLiteral(v []int32) string {
	var a textArray
	for _, x := range v {
		a.int(int(x))
	}
	return "'" + a.String() + "'::int[]"
}

// boolsLiteral is a boolean[] literal.
func boolsLiteral(v []bool) string {
	var a textArray
	for _, x := range v {
		if x {
			a.word("t")
		} else {
			a.word("f")
		}
	}
	return "'" + a.String() + "'::boolean[]"
}

// wordLiteral is a text literal of a name from an enumeration (a dimension, a metric).
func wordLiteral(v string) (string, error) {
	if !word.MatchString(v) {
		return "", fmt.Errorf("not a name: %q", v)
	}
	return "'" + v + "'::text", nil
}

// ABCSQL is abc.sql as Reader.ABC runs it under a whitelisted sort fragment, a filter's slots
// and a metric ("gmv" or "items"): the statement the bench times too. Its remaining named
// arguments are merchant_id, from_day, to_day, a, b, class, page_limit and page_offset.
func ABCSQL(sql, order string, sl Slots, metric string) (string, error) {
	m, err := wordLiteral(metric)
	if err != nil {
		return "", fmt.Errorf("abc metric: %w", err)
	}
	lits := sl.literals()
	lits["metric"] = m
	return bind(listSQL(sql, order, sl.Slot), lits), nil
}

// literals are a filter's slots and coefficients as bind's literals (@slots, @coefs,
// @cancelled_coefs).
func (s Slots) literals() map[string]string {
	return map[string]string{"slots": intsLiteral(s.Slot), "coefs": intsLiteral(s.Coef),
		"cancelled_coefs": intsLiteral(s.CCoef)}
}

// needs returns api.range_sums's p_need for a sort key: the orders and gmv every list reads
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

// breakdownRow is a row of breakdown.sql: every column but the total is NULL on a page past
// the end.
type breakdownRow struct {
	Total            int64    `db:"total"`
	Key              *string  `db:"key"`
	Name             *string  `db:"name"`
	Share            *float64 `db:"share"`
	Orders           *int64   `db:"orders"`
	Accepted         *int64   `db:"accepted"`
	Delivered        *int64   `db:"delivered"`
	Cancelled        *int64   `db:"cancelled"`
	Returned         *int64   `db:"returned"`
	Items            *int64   `db:"items"`
	Gmv              *string  `db:"gmv"`
	ReturnedAmount   *string  `db:"returned_amount"`
	Revenue          *string  `db:"revenue"`
	Aov              *string  `db:"aov"`
	CancelRate       *float64 `db:"cancel_rate"`
	ReturnRate       *float64 `db:"return_rate"`
	AvgDeliveryHours *float64 `db:"avg_delivery_hours"`
	ParentID         *int64   `db:"parent_id"`
	HasChildren      *bool    `db:"has_children"`
}

// Breakdown returns one page of a dimension's rows and the number of rows over all pages. A
// category breakdown with parent set lists that level of the category tree (0: the top).
func (r *Reader) Breakdown(ctx context.Context, dimension string, l List, parent *int64) (int64, []gen.BreakdownRow, error) {
	order, key, err := orderBy(l.Sort, breakdownSorts)
	if err != nil {
		return 0, nil, err
	}
	sl := slots(l.Statuses)
	dim, err := wordLiteral(dimension)
	if err != nil {
		return 0, nil, fmt.Errorf("breakdown: %w", err)
	}
	lits := sl.literals()
	lits["dimension"], lits["need"] = dim, boolsLiteral(needs(key))
	// A level of the category tree keeps its parent an argument, planned at every call: one
	// statement per category would fill the connections' caches.
	plans := db.CustomPlans
	if parent == nil {
		lits["parent_id"], plans = "NULL::bigint", db.GenericPlans
	}
	q := bind(listSQL(r.sql["breakdown.sql"], order, sl.Slot), lits)
	var total int64
	out := []gen.BreakdownRow{}
	b := &pgx.Batch{}
	b.Queue(q, pgx.NamedArgs{
		"merchant_id": l.MerchantID, "from_day": l.From, "to_day": l.To,
		"page_limit": l.Limit, "page_offset": l.Offset, "parent_id": parent,
	}).Query(func(rows pgx.Rows) error {
		rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[breakdownRow])
		for _, r := range rs {
			total = r.Total
			if r.Key == nil { // a page past the end
				continue
			}
			out = append(out, gen.BreakdownRow{Key: *r.Key, Name: *r.Name, Share: r.Share, ParentId: r.ParentID,
				HasChildren: r.HasChildren, Metrics: gen.Metrics{
					Orders: *r.Orders, Accepted: *r.Accepted, Delivered: *r.Delivered, Cancelled: *r.Cancelled,
					Returned: *r.Returned, Items: *r.Items, Gmv: *r.Gmv, ReturnedAmount: *r.ReturnedAmount,
					Revenue: *r.Revenue, Aov: r.Aov, CancelRate: r.CancelRate, ReturnRate: r.ReturnRate,
					AvgDeliveryHours: r.AvgDeliveryHours,
				}})
		}
		return err
	})
	err = db.AsMerchant(ctx, r.pool, l.MerchantID, plans, b)
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

// abcRow is a row of abc.sql: the product's columns are NULL on a page past the end.
type abcRow struct {
	Total           int64    `db:"total"`
	TotalValue      string   `db:"total_value"`
	Classes         []byte   `db:"classes"`
	ProductID       *int64   `db:"product_id"`
	Sku             *string  `db:"sku"`
	Name            *string  `db:"name"`
	Value           *string  `db:"value"`
	Share           *float64 `db:"share"`
	CumulativeShare *float64 `db:"cumulative_share"`
	Class           *string  `db:"class"`
	Rank            *int64   `db:"rank"`
}

// ABC classifies the merchant's products over the range.
func (r *Reader) ABC(ctx context.Context, q ABCQuery) (ABCResult, error) {
	order, _, err := orderBy(q.Sort, abcSorts)
	if err != nil {
		return ABCResult{}, err
	}
	sql, err := ABCSQL(r.sql["abc.sql"], order, slots(q.Statuses), q.Metric)
	if err != nil {
		return ABCResult{}, err
	}
	res := ABCResult{Products: []gen.ABCProduct{}}
	b := &pgx.Batch{}
	b.Queue(sql, pgx.NamedArgs{
		"merchant_id": q.MerchantID, "from_day": q.From, "to_day": q.To, "a": q.A, "b": q.B, "class": q.Class,
		"page_limit": q.Limit, "page_offset": q.Offset,
	}).Query(func(rows pgx.Rows) error {
		rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[abcRow])
		if err != nil {
			return err
		}
		for _, r := range rs {
			res.Total, res.TotalValue = r.Total, r.TotalValue
			if res.Classes == nil {
				if err := json.Unmarshal(r.Classes, &res.Classes); err != nil {
					return fmt.Errorf("class totals: %w", err)
				}
			}
			if r.ProductID == nil { // a page past the end
				continue
			}
			res.Products = append(res.Products, gen.ABCProduct{ProductId: *r.ProductID, Sku: *r.Sku, Name: *r.Name,
				Value: *r.Value, Share: *r.Share, CumulativeShare: *r.CumulativeShare, Class: gen.ABCClass(*r.Class), Rank: *r.Rank})
		}
		return nil
	})
	err = db.AsMerchant(ctx, r.pool, q.MerchantID, db.GenericPlans, b)
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
		return false, fmt.Errorf("look category %d up: %w", id, db.Classify(err))
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
				out = append(out, gen.Cohort{Cohort: period.DateOf(cohort), Customers: size, Retention: make([]float64, months)})
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

// DataVersion is the merchant's data version, which moves whenever its figures may have
// changed (the API's ETags): one read of the freshness function, no aggregate.
func (r *Reader) DataVersion(ctx context.Context, merchantID int64) (int64, error) {
	var v int64
	b := &pgx.Batch{}
	b.Queue("SELECT data_version FROM api.merchant_freshness()").QueryRow(func(row pgx.Row) error { return row.Scan(&v) })
	if err := db.AsMerchant(ctx, r.pool, merchantID, db.GenericPlans, b); err != nil {
		return 0, fmt.Errorf("data version of merchant %d: %w", merchantID, err)
	}
	return v, nil
}

// MerchantName is the merchant's name as the source has it (nil when it has none).
func (r *Reader) MerchantName(ctx context.Context, merchantID int64) (*string, error) {
	var name *string
	b := &pgx.Batch{}
	b.Queue("SELECT name FROM agg.merchants WHERE merchant_id = $1", merchantID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&name); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err := db.AsMerchant(ctx, r.pool, merchantID, db.GenericPlans, b); err != nil {
		return nil, fmt.Errorf("name of merchant %d: %w", merchantID, err)
	}
	return name, nil
}

// Merchants is a page of every merchant (admins only: the handler checks) and how many there
// are in all.
func (r *Reader) Merchants(ctx context.Context, limit, offset int64) (int64, []gen.Merchant, error) {
	var total int64
	out := []gen.Merchant{}
	b := &pgx.Batch{}
	b.Queue("SELECT * FROM api.merchant_list($1, $2)", limit, offset).Query(func(rows pgx.Rows) error {
		var m gen.Merchant
		_, err := pgx.ForEachRow(rows, []any{&total, &m.Id, &m.Name}, func() error {
			out = append(out, m)
			return nil
		})
		return err
	})
	// Merchant 0 reads no merchant's rows: the list comes from the SECURITY DEFINER function.
	if err := db.AsMerchant(ctx, r.pool, 0, db.GenericPlans, b); err != nil {
		return 0, nil, fmt.Errorf("list merchants: %w", err)
	}
	return total, out, nil
}
