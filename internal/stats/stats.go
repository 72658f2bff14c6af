// Package stats reads the pre-aggregated figures for one merchant. Every read runs as the API
// role in a transaction scoped to the merchant (db.AsMerchant), so RLS guards it too.
package stats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/period"
	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

// AllStatuses is the default status filter: every order.
var AllStatuses = []gen.OrderStatus{gen.OrderStatusCreated, gen.OrderStatusAccepted,
	gen.OrderStatusDelivered, gen.OrderStatusCancelled, gen.OrderStatusReturned}

// Reader reads one merchant's figures from the analytics database.
type Reader struct {
	pool *pgxpool.Pool
	sql  map[string]string
}

// NewReader loads the read queries; pool must be an API pool (db.OpenAPI).
func NewReader(pool *pgxpool.Pool) (*Reader, error) {
	r := &Reader{pool: pool, sql: map[string]string{}}
	for _, name := range []string{"order_metrics.sql", "customer_metrics.sql", "breakdown.sql", "abc.sql",
		"cohorts.sql", "freshness.sql", "filter_keys.sql"} {
		q, err := sqlfiles.Query(name)
		if err != nil {
			return nil, fmt.Errorf("load query %s: %w", name, err)
		}
		r.sql[name] = q
	}
	return r, nil
}

// Group is one set of figures wanted: a range of days and the stored periods that tile it
// (the customer figures count events per stored period).
type Group struct {
	From, To time.Time
	Tiles    []period.Tile
}

// NewGroup tiles [from, to] for a range (not a series point).
func NewGroup(from, to time.Time) Group {
	return Group{From: from, To: to, Tiles: period.CoverRange(from, to)}
}

// Query asks for a merchant's figures over groups of days under a status filter, of one key
// of a dimension when Keys is set (Reader.FilterKeys: no customer figures then).
type Query struct {
	MerchantID int64
	Statuses   []gen.OrderStatus
	Groups     []Group
	Keys       *Keys
}

// Keys are the agg.key_months rows a dimension filter reads: a dimension code and its keys.
type Keys struct {
	Dim  string  `db:"dim"`
	Keys []int64 `db:"keys"`
}

// ErrUnknownKey is a dimension filter naming a key the merchant's data does not know.
var ErrUnknownKey = errors.New("unknown key")

// FilterKeys resolves a dimension filter (the API's dimension name, and an id or a label).
func (r *Reader) FilterKeys(ctx context.Context, merchantID int64, dimension string, id *int64, label *string) (*Keys, error) {
	var k *Keys
	b := &pgx.Batch{}
	b.Queue(r.sql["filter_keys.sql"], pgx.NamedArgs{
		"merchant_id": merchantID, "dimension": dimension, "id": id, "label": label,
	}).Query(func(rows pgx.Rows) error {
		ks, err := pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Keys])
		if len(ks) > 0 {
			k = ks[0]
		}
		return err
	})
	if err := db.AsMerchant(ctx, r.pool, merchantID, db.GenericPlans, b); err != nil {
		return nil, fmt.Errorf("%s filter of merchant %d: %w", dimension, merchantID, err)
	}
	if k == nil {
		return nil, ErrUnknownKey
	}
	return k, nil
}

// Slots is a status filter as the slots of agg.key_months it reads: each slot's sums are
// added with Coef (1, or -1 when subtracted) and counted in the cancelled figure with CCoef.
// Slot 0 sums every status; 1 created, 2 accepted, 3 cancelled, 4 returned; delivered is slot
// 0 less the others (migration 013).
type Slots struct {
	Slot, Coef, CCoef []int32
}

// slotOf maps the statuses with a slot of their own; delivered has none.
var slotOf = map[gen.OrderStatus]int32{gen.OrderStatusCreated: 1, gen.OrderStatusAccepted: 2,
	gen.OrderStatusCancelled: 3, gen.OrderStatusReturned: 4}

// slots returns the slots that sum to a filter's figures: the filter's own statuses, or, when
// it keeps delivered, slot 0 less the statuses it leaves out.
func slots(statuses []gen.OrderStatus) Slots {
	var s Slots
	add := func(slot, coef, ccoef int32) {
		s.Slot, s.Coef, s.CCoef = append(s.Slot, slot), append(s.Coef, coef), append(s.CCoef, ccoef)
	}
	kept := func(st gen.OrderStatus) bool { return slices.Contains(statuses, st) }
	if kept(gen.OrderStatusDelivered) {
		add(0, 1, 0)
		for _, st := range AllStatuses {
			if slot, ok := slotOf[st]; ok && !kept(st) {
				add(slot, -1, 0)
			}
		}
		if kept(gen.OrderStatusCancelled) {
			add(slotOf[gen.OrderStatusCancelled], 0, 1)
		}
		return s
	}
	for _, st := range statuses {
		c := int32(0)
		if st == gen.OrderStatusCancelled {
			c = 1
		}
		add(slotOf[st], 1, c)
	}
	return s
}

// filterBits is a status filter as the bit set of agg.customer_tiles and agg.cohort_counts:
// bit i for the i-th status of AllStatuses.
func filterBits(statuses []gen.OrderStatus) int32 {
	var bits int32
	for i, st := range AllStatuses {
		if slices.Contains(statuses, st) {
			bits |= 1 << i
		}
	}
	return bits
}

// Zero is the metrics of no orders.
func Zero() gen.Metrics {
	return gen.Metrics{Gmv: "0.00", ReturnedAmount: "0.00", Revenue: "0.00"}
}

// Figures returns the order and the customer metrics of every group, in order, read in one
// transaction so both come from the same refresh.
func (r *Reader) Figures(ctx context.Context, q Query) ([]gen.Metrics, []gen.CustomerMetrics, error) {
	var grp, from, to, tgrp, grain, first, last textArray
	for i, g := range q.Groups {
		grp.int(i)
		from.date(g.From)
		to.date(g.To)
		for _, t := range g.Tiles {
			tgrp.int(i)
			grain.word(string(t.Grain)[:1])
			first.date(t.First)
			last.date(t.Last)
		}
	}
	orders := make([]gen.Metrics, len(q.Groups))
	customers := make([]gen.CustomerMetrics, len(q.Groups))
	for i := range orders {
		orders[i] = Zero()
	}
	sl := slots(q.Statuses)
	keys := q.Keys
	if keys == nil {
		keys = &Keys{Dim: "t", Keys: []int64{0}}
	}
	dim, err := wordLiteral(keys.Dim)
	if err != nil {
		return nil, nil, fmt.Errorf("figures of merchant %d: %w", q.MerchantID, err)
	}
	// As a list's (bind): a plan per dimension and filter, with the slots that add nothing
	// folded away.
	lits := sl.literals()
	lits["dim"] = dim
	sums := bind(r.sql["order_metrics.sql"], lits)
	b := &pgx.Batch{}
	b.Queue(sums, pgx.NamedArgs{
		"merchant_id": q.MerchantID, "keys": keys.Keys, "grp": grp.String(), "from_day": from.String(), "to_day": to.String(),
	}).Query(func(rows pgx.Rows) error {
		var i int32
		var m gen.Metrics
		_, err := pgx.ForEachRow(rows, []any{&i, &m.Orders, &m.Accepted, &m.Delivered, &m.Cancelled,
			&m.Returned, &m.Items, &m.Gmv, &m.ReturnedAmount, &m.Revenue, &m.Aov, &m.CancelRate,
			&m.ReturnRate, &m.AvgDeliveryHours}, func() error {
			orders[i] = m
			return nil
		})
		if err != nil {
			return fmt.Errorf("order metrics: %w", err)
		}
		return nil
	})
	if q.Keys != nil {
		if err := db.AsMerchant(ctx, r.pool, q.MerchantID, db.GenericPlans, b); err != nil {
			return nil, nil, fmt.Errorf("figures of merchant %d: %w", q.MerchantID, err)
		}
		return orders, nil, nil
	}
	b.Queue(r.sql["customer_metrics.sql"], q.MerchantID, tgrp.String(), grain.String(), first.String(), last.String(),
		grp.String(), from.String(),
		filterBits(q.Statuses)).Query(func(rows pgx.Rows) error {
		var i int32
		var c gen.CustomerMetrics
		_, err := pgx.ForEachRow(rows, []any{&i, &c.Customers, &c.NewCustomers, &c.RepeatRate}, func() error {
			c.ReturningCustomers = c.Customers - c.NewCustomers
			customers[i] = c
			return nil
		})
		if err != nil {
			return fmt.Errorf("customer metrics: %w", err)
		}
		return nil
	})
	if err := db.AsMerchant(ctx, r.pool, q.MerchantID, db.GenericPlans, b); err != nil {
		return nil, nil, fmt.Errorf("figures of merchant %d: %w", q.MerchantID, err)
	}
	// Orders and gmv per customer divide the group's order figures, read just above under the
	// same filter: the customer queries summed them again, one index probe per stored period
	// (a daily series of a year: 366 probes, a fifth of its time).
	for i := range customers {
		if customers[i].Customers == 0 {
			continue
		}
		if customers[i].OrdersPerCustomer, customers[i].GmvPerCustomer, err = perCustomer(orders[i], customers[i].Customers); err != nil {
			return nil, nil, fmt.Errorf("figures of merchant %d: %w", q.MerchantID, err)
		}
	}
	return orders, customers, nil
}

// textArray builds an array literal ("{a,b}") of dates, integers or plain words: pgx sends a
// string parameter as it is (text format), while it encodes a slice element by element,
// through a wrapper per date: for a year's day series, more of serve's CPU than its JSON.
type textArray struct{ b []byte }

func (a *textArray) next() {
	if len(a.b) == 0 {
		a.b = append(a.b, '{')
	} else {
		a.b = append(a.b, ',')
	}
}

func (a *textArray) date(t time.Time) { a.next(); a.b = t.AppendFormat(a.b, time.DateOnly) }
func (a *textArray) int(i int)        { a.next(); a.b = strconv.AppendInt(a.b, int64(i), 10) }
func (a *textArray) word(w string)    { a.next(); a.b = append(a.b, w...) }

func (a *textArray) String() string {
	if len(a.b) == 0 {
		return "{}"
	}
	return string(a.b) + "}"
}

// perCustomer returns orders / customers to 2 places and gmv / customers to the cent, both
// rounded half away from zero as PostgreSQL's round(numeric, 2) (exact: integer arithmetic on
// cents; the float is the double nearest the rounded decimal, as numeric → float8 gives).
func perCustomer(m gen.Metrics, customers int64) (*float64, *string, error) {
	cents, err := parseCents(m.Gmv)
	if err != nil {
		return nil, nil, fmt.Errorf("gmv per customer: %w", err)
	}
	half := func(n int64) int64 { return (2*n + customers) / (2 * customers) } // n ≥ 0
	o := float64(half(100*m.Orders)) / 100
	g := half(cents)
	s := fmt.Sprintf("%d.%02d", g/100, g%100)
	return &o, &s, nil
}

// parseCents reads a non-negative amount with two decimals ("1234.50") as cents.
func parseCents(s string) (int64, error) {
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 {
		return 0, fmt.Errorf("amount %q: want two decimals", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 {
		return 0, fmt.Errorf("amount %q: bad whole part", s)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("amount %q: bad cents", s)
	}
	return w*100 + f, nil
}
