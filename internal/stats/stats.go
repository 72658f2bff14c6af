// Package stats reads the pre-aggregated figures for one merchant. Every read runs as the API
// role in a transaction scoped to the merchant (db.AsMerchant), so RLS guards it too.
package stats

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/period"
	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

// AllStatuses is the default status filter: every order.
var AllStatuses = []gen.OrderStatus{gen.Created, gen.Accepted, gen.Delivered, gen.Cancelled, gen.Returned}

// Reader reads one merchant's figures from the analytics database.
type Reader struct {
	pool       *pgxpool.Pool
	metricsSQL string
}

// NewReader prepares the reader's queries; pool must be an API pool (db.OpenAPI).
func NewReader(pool *pgxpool.Pool) (*Reader, error) {
	q, err := sqlfiles.Query("order_metrics.sql")
	if err != nil {
		return nil, fmt.Errorf("load query: %w", err)
	}
	return &Reader{pool: pool, metricsSQL: q}, nil
}

// Query is what a caller asks for: a merchant, a status filter, and groups of tiles, one
// group per figure wanted (a range, or a series point).
type Query struct {
	MerchantID int64
	Statuses   []gen.OrderStatus
	Groups     [][]period.Tile
}

// Zero is the metrics of no orders.
func Zero() gen.Metrics {
	return gen.Metrics{Gmv: "0.00", ReturnedAmount: "0.00", Revenue: "0.00"}
}

// OrderMetrics returns one gen.Metrics per group of q, in order.
func (r *Reader) OrderMetrics(ctx context.Context, q Query) ([]gen.Metrics, error) {
	var grp []int32
	var grain []string
	var first, last []time.Time
	for i, g := range q.Groups {
		for _, t := range g {
			grp = append(grp, int32(i))
			grain = append(grain, string(t.Grain))
			first = append(first, t.First)
			last = append(last, t.Last)
		}
	}
	statuses := make([]string, len(q.Statuses))
	for i, s := range q.Statuses {
		statuses[i] = string(s)
	}
	out := make([]gen.Metrics, len(q.Groups))
	for i := range out {
		out[i] = Zero()
	}
	err := db.AsMerchant(ctx, r.pool, q.MerchantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, r.metricsSQL, q.MerchantID, grp, grain, first, last, statuses)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var i int32
			var m gen.Metrics
			if err := rows.Scan(&i, &m.Orders, &m.Accepted, &m.Delivered, &m.Cancelled, &m.Returned,
				&m.Items, &m.Gmv, &m.ReturnedAmount, &m.Revenue, &m.Aov, &m.CancelRate, &m.ReturnRate,
				&m.AvgDeliveryHours); err != nil {
				return err
			}
			out[i] = m
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("order metrics of merchant %d: %w", q.MerchantID, err)
	}
	return out, nil
}
