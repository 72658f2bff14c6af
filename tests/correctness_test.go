package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
)

var ranges = []struct{ name, from, to string }{
	{"one day", "2025-06-15", "2025-06-15"},
	{"a month", "2025-02-01", "2025-02-28"},
	{"quarter boundary", "2025-03-20", "2025-04-10"},
	{"year boundary", "2024-12-20", "2025-01-12"},
	{"ISO week 53", "2020-12-28", "2021-01-03"},
	{"first days of data", "2020-11-20", "2020-12-10"},
	{"leap day", "2024-02-25", "2024-03-03"},
	{"ragged year", "2024-11-15", "2026-02-10"},
	{"three years", "2022-01-01", "2024-12-31"},
	{"no orders", "2027-06-01", "2027-06-30"},
}

var statusFilters = [][]gen.OrderStatus{
	nil,
	{gen.OrderStatusDelivered},
	{gen.OrderStatusCancelled, gen.OrderStatusReturned},
	{gen.OrderStatusCreated, gen.OrderStatusAccepted},
}

// testMerchants are the largest, the smallest and some between, plus one with no orders.
func testMerchants(t *testing.T, p dbtest.Pair) []int64 {
	t.Helper()
	src := dbtest.Pool(t, p.SourceURL())
	var largest, smallest int64
	require.NoError(t, src.QueryRow(context.Background(), `
		SELECT (SELECT merchant_id FROM orders GROUP BY 1 ORDER BY count(*) DESC LIMIT 1),
		       (SELECT merchant_id FROM orders GROUP BY 1 ORDER BY count(*) LIMIT 1)`).Scan(&largest, &smallest))
	return []int64{largest, 2, 5, 9, smallest, 999}
}

func statusParam(s []gen.OrderStatus) *[]gen.OrderStatus {
	if s == nil {
		return nil
	}
	return &s
}

func allIfNil(s []gen.OrderStatus) []gen.OrderStatus {
	if s == nil {
		return []gen.OrderStatus{gen.OrderStatusCreated, gen.OrderStatusAccepted, gen.OrderStatusDelivered, gen.OrderStatusCancelled, gen.OrderStatusReturned}
	}
	return s
}

func TestSummaryMatchesSource(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	src := dbtest.Pool(t, shared.SourceURL())
	admin := token(t, 0, auth.RoleAdmin)
	for _, m := range testMerchants(t, shared) {
		for _, r := range ranges {
			for _, st := range statusFilters {
				t.Run(fmt.Sprintf("merchant %d/%s/%v", m, r.name, st), func(t *testing.T) {
					// Alternate merchant and admin tokens: both must read the same figures.
					tok, mp := token(t, m, auth.RoleMerchant), (*int64)(nil)
					if m%2 == 0 {
						tok, mp = admin, &m
					}
					res, err := a.client.GetSummaryWithResponse(context.Background(), &gen.GetSummaryParams{
						From: day(r.from), To: day(r.to), Status: statusParam(st), MerchantId: mp,
					}, bearer(tok))
					require.NoError(t, err)
					require.Equal(t, 200, res.StatusCode(), string(res.Body))
					s := asSummary(t, res.JSON200)

					from, to := day(r.from).Time, day(r.to).Time
					want := reference(t, src, m, from, to, allIfNil(st), "")
					require.Equal(t, orZero(want, from), s.Metrics)

					n := int(to.Sub(from).Hours()/24) + 1
					pf, pt := from.AddDate(0, 0, -n), from.AddDate(0, 0, -1)
					require.Equal(t, pf, s.Previous.From.Time)
					require.Equal(t, pt, s.Previous.To.Time)
					require.Equal(t, orZero(reference(t, src, m, pf, pt, allIfNil(st), ""), pf), s.Previous.Metrics)
					if s.Previous.Metrics.Orders > 0 {
						want := float64(s.Metrics.Orders-s.Previous.Metrics.Orders) / float64(s.Previous.Metrics.Orders)
						require.InDelta(t, want, *s.Change.Orders, 0.00005)
					} else {
						require.Nil(t, s.Change.Orders)
					}
				})
			}
		}
	}
}

func TestTimeseriesMatchesSource(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	src := dbtest.Pool(t, shared.SourceURL())
	ctx := context.Background()
	merchants := testMerchants(t, shared)
	for _, m := range merchants {
		for _, r := range ranges {
			for si, st := range statusFilters {
				for _, g := range []gen.GetTimeseriesParamsGrain{gen.GetTimeseriesParamsGrainDay, gen.GetTimeseriesParamsGrainWeek, gen.GetTimeseriesParamsGrainMonth, gen.GetTimeseriesParamsGrainQuarter} {
					// Every grain and range for every merchant; status filters rotate over
					// merchants to keep the run short.
					if (int(m)+si)%2 == 1 && st != nil {
						continue
					}
					t.Run(fmt.Sprintf("merchant %d/%s/%v/%s", m, r.name, st, g), func(t *testing.T) {
						res, err := a.client.GetTimeseriesWithResponse(ctx, &gen.GetTimeseriesParams{
							From: day(r.from), To: day(r.to), Status: statusParam(st), Grain: &g,
						}, bearer(token(t, m, auth.RoleMerchant)))
						require.NoError(t, err)
						require.Equal(t, 200, res.StatusCode(), string(res.Body))
						ts := asTimeseries(t, res.JSON200)
						from, to := day(r.from).Time, day(r.to).Time
						want := reference(t, src, m, from, to, allIfNil(st), string(g))

						// One point per period of the range, in order, each clipped to it.
						var periods int
						require.NoError(t, src.QueryRow(ctx, `SELECT count(DISTINCT date_trunc($3, d)) FROM generate_series($1::timestamp, $2::timestamp, '1 day') d`,
							from, to, string(g)).Scan(&periods))
						require.Len(t, ts.Points, periods)
						require.Equal(t, from, ts.Points[0].From.Time)
						require.Equal(t, to, ts.Points[len(ts.Points)-1].To.Time)
						for i, p := range ts.Points {
							var label time.Time
							require.NoError(t, src.QueryRow(ctx, `SELECT date_trunc($2, $1::timestamp)::date`, p.From.Time, string(g)).Scan(&label))
							require.Equal(t, label, p.Period.Time, "point %d label", i)
							if i > 0 {
								require.Equal(t, ts.Points[i-1].To.Time.AddDate(0, 0, 1), p.From.Time, "points are contiguous")
							}
							require.Equal(t, orZero(want, p.Period.Time), p.Metrics, "point %s", p.Period.Time.Format(time.DateOnly))
							delete(want, p.Period.Time)
						}
						require.Empty(t, want, "the reference has periods the series lacks")
					})
				}
			}
		}
	}
}
