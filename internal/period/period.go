// Package period does the calendar arithmetic of SPEC §3 on business dates: ISO weeks,
// months and quarters, clipped series points, previous ranges, and the tiling of any range
// with the pre-aggregated periods stored in agg.order_stats.
//
// Dates are civil dates held in time.Time at midnight UTC; time zones play no part here
// (the business day is fixed when orders are aggregated).
package period

import (
	"fmt"
	"time"
)

// Grain is the length of a pre-aggregated period or a series point.
type Grain string

// The grains, finest first.
const (
	Day     Grain = "day"
	Week    Grain = "week"
	Month   Grain = "month"
	Quarter Grain = "quarter"
)

// ParseGrain accepts the API's grain names.
func ParseGrain(s string) (Grain, error) {
	switch g := Grain(s); g {
	case Day, Week, Month, Quarter:
		return g, nil
	}
	return "", fmt.Errorf("unknown grain %q", s)
}

// Date returns the civil date of t (its year, month and day, wherever t is).
func Date(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Start returns the first day of the period of grain g that contains d.
func Start(g Grain, d time.Time) time.Time {
	d = Date(d)
	switch g {
	case Week:
		// ISO weeks start on Monday.
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case Month:
		return time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
	case Quarter:
		return time.Date(d.Year(), d.Month()-(d.Month()-1)%3, 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

// Step returns d moved by n periods of grain g (d should be a period start).
func Step(g Grain, d time.Time, n int) time.Time {
	switch g {
	case Week:
		return d.AddDate(0, 0, 7*n)
	case Month:
		return d.AddDate(0, n, 0)
	case Quarter:
		return d.AddDate(0, 3*n, 0)
	}
	return d.AddDate(0, 0, n)
}

// Days is the number of days of [from, to], both included.
func Days(from, to time.Time) int {
	return int(Date(to).Sub(Date(from)).Hours()/24) + 1
}

// Previous returns the range of equal length that ends the day before from.
func Previous(from, to time.Time) (time.Time, time.Time) {
	n := Days(from, to)
	return from.AddDate(0, 0, -n), from.AddDate(0, 0, -1)
}

// Point is one period of a time series: Period is the period's first day; From and To are
// the part of it inside the requested range.
type Point struct {
	Period, From, To time.Time
}

// Points returns one point per period of grain g that overlaps [from, to], in order.
func Points(g Grain, from, to time.Time) []Point {
	var out []Point
	for p := Start(g, from); !p.After(to); p = Step(g, p, 1) {
		pt := Point{Period: p, From: p, To: Step(g, p, 1).AddDate(0, 0, -1)}
		if pt.From.Before(from) {
			pt.From = from
		}
		if pt.To.After(to) {
			pt.To = to
		}
		out = append(out, pt)
	}
	return out
}

// Tile is a run of stored periods of one grain: every period starting in [First, Last].
type Tile struct {
	Grain       Grain
	First, Last time.Time
}

// Cover returns the fewest-rows tiling of [from, to] with stored periods: whole quarters,
// then whole months at the edges, then whole ISO weeks, then days. A point that is exactly
// one stored period (a whole week, say) is that period alone.
func Cover(pt Point, g Grain) []Tile {
	if g != Day && pt.From.Equal(pt.Period) && pt.To.Equal(Step(g, pt.Period, 1).AddDate(0, 0, -1)) {
		return []Tile{{Grain: g, First: pt.Period, Last: pt.Period}}
	}
	return CoverRange(pt.From, pt.To)
}

func cover(from, to time.Time, grains []Grain) []Tile {
	if from.After(to) {
		return nil
	}
	if len(grains) == 0 {
		return []Tile{{Grain: Day, First: from, Last: to}}
	}
	g := grains[0]
	first := Start(g, from)
	if first.Before(from) {
		first = Step(g, first, 1)
	}
	end := Start(g, to.AddDate(0, 0, 1)) // the day after the last whole period
	if !first.Before(end) {
		return cover(from, to, grains[1:])
	}
	out := cover(from, first.AddDate(0, 0, -1), grains[1:])
	out = append(out, Tile{Grain: g, First: first, Last: Step(g, end, -1)})
	return append(out, cover(end, to, grains[1:])...)
}

// CoverRange tiles the range [from, to] (see Cover).
func CoverRange(from, to time.Time) []Tile {
	return cover(from, to, []Grain{Quarter, Month, Week})
}
