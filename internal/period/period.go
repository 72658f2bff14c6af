// Package period does the calendar arithmetic of docs/metrics.md (Days and ranges) on business dates: ISO weeks,
// months and quarters, clipped series points, previous ranges, and the tiling of any range
// with the pre-aggregated periods stored in agg.order_stats.
//
// Dates are civil dates held in time.Time at midnight UTC; time zones play no part here
// (the business day is fixed when orders are aggregated).
package period

import (
	"fmt"
	"math"
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
	// Year is a series grain only: no period of it is stored.
	Year Grain = "year"
)

// ParseGrain accepts the API's grain names.
func ParseGrain(s string) (Grain, error) {
	switch g := Grain(s); g {
	case Day, Week, Month, Quarter, Year:
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
	case Year:
		return time.Date(d.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
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
	case Year:
		return d.AddDate(n, 0, 0)
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
// one stored period (a whole week, say) is that period alone; a year is its quarters.
func Cover(pt Point, g Grain) []Tile {
	if g != Day && g != Year && pt.From.Equal(pt.Period) && pt.To.Equal(Step(g, pt.Period, 1).AddDate(0, 0, -1)) {
		return []Tile{{Grain: g, First: pt.Period, Last: pt.Period}}
	}
	return CoverRange(pt.From, pt.To)
}

func cover(from, to time.Time, grains []Grain) []Tile {
	if from.After(to) {
		return nil
	}
	// One day fits no coarser period (a day series' every point; the edges below recurse here).
	if len(grains) == 0 || from.Equal(to) {
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

// SignedTile is a Tile whose sums are added to a range's (Sign 1) or taken from them (Sign −1).
type SignedTile struct {
	Tile
	Sign int
}

// CoverSums tiles [from, to] for sums only (ABC: a sum over orders, not a distinct count),
// where an edge may also be a whole period less its days outside the range: May 26–31 is the
// ISO week of May 26 minus June 1. It picks the tiling with the fewest stored rows by
// rowCost, and never one costing more than CoverRange's. On the largest merchant of the 10M
// benchmark, whose every week holds most of its 5000 products and every day half of them, a
// year's product rows fall by a quarter (65.7k → 50.5k on average over the year's 366
// possible ends).
func CoverSums(from, to time.Time) []SignedTile {
	_, tiles := coverSums(Date(from), Date(to), []Grain{Quarter, Month, Week}, 1)
	return merge(tiles)
}

// rowCost is a stored period's rows of a dimension relative to a day's, as on a merchant that
// sells most of its keys every week (the large merchants, whose reads cost most): measured on
// the 10M benchmark's largest merchant, 2577 product rows a day, 4875 a week, 5000 a month or
// quarter. For a small merchant days are cheaper than that; simulated on merchants from the
// largest to one of 0.02% of the orders, these costs still read 9–30% fewer rows on average.
func rowCost(g Grain) int {
	switch g {
	case Week:
		return 20
	case Month:
		return 22
	case Quarter:
		return 23
	}
	return 10
}

// coverSums returns the cost and tiles (signs multiplied by sign) of [from, to] with grains
// and finer ones. Each end of the range lies in a period of the coarsest grain that it either
// leaves out (its part inside the range tiled with finer grains) or takes whole (its part
// outside subtracted, tiled with finer grains); periods between the ends are taken whole.
// The choices are tried exhaustively: three grains, two ends, ~70 µs a range.
func coverSums(from, to time.Time, grains []Grain, sign int) (int, []SignedTile) {
	if from.After(to) {
		return 0, nil
	}
	if len(grains) == 0 {
		return rowCost(Day) * Days(from, to), []SignedTile{{Tile{Day, from, to}, sign}}
	}
	g, finer := grains[0], grains[1:]
	first, last := Start(g, from), Start(g, to)
	cost, tiles := math.MaxInt, []SignedTile(nil)
	if !Step(g, first, 1).Before(last) {
		// Within one period or across the boundary of two, this grain may be left out (a week
		// across the end of a month). With a whole period between the ends it never is: that
		// period costs less than its tiling with finer grains.
		cost, tiles = coverSums(from, to, finer, sign)
	}
	end := func(p time.Time) time.Time { return Step(g, p, 1).AddDate(0, 0, -1) }
	whole := func(p time.Time) SignedTile { return SignedTile{Tile{g, p, p}, sign} }
	type part struct {
		cost  int
		tiles []SignedTile
	}
	// tiled tiles [a, b] with the finer grains, its sums times s.
	tiled := func(a, b time.Time, s int) part {
		c, ts := coverSums(a, b, finer, s)
		return part{c, ts}
	}
	// minus tiles the days of a whole period outside the range, subtracted.
	minus := func(p time.Time, outFrom, outTo time.Time) part {
		out := tiled(outFrom, outTo, -sign)
		return part{rowCost(g) + out.cost, append([]SignedTile{whole(p)}, out.tiles...)}
	}
	try := func(parts ...part) {
		c := 0
		for _, p := range parts {
			c += p.cost
		}
		if c >= cost {
			return
		}
		cost, tiles = c, nil
		for _, p := range parts {
			tiles = append(tiles, p.tiles...)
		}
	}
	if first.Equal(last) { // both ends in one period
		try(minus(first, first, from.AddDate(0, 0, -1)), tiled(to.AddDate(0, 0, 1), end(last), -sign))
		return cost, tiles
	}
	lefts := []part{tiled(from, end(first), sign), minus(first, first, from.AddDate(0, 0, -1))}
	rights := []part{tiled(last, to, sign), minus(last, to.AddDate(0, 0, 1), end(last))}
	var middle part
	if a, b := Step(g, first, 1), Step(g, last, -1); !a.After(b) {
		n := 0
		for p := a; !p.After(b); p = Step(g, p, 1) {
			n++
		}
		middle = part{n * rowCost(g), []SignedTile{{Tile{g, a, b}, sign}}}
	}
	for _, l := range lefts {
		for _, r := range rights {
			try(l, middle, r)
		}
	}
	return cost, tiles
}

// merge joins neighbouring tiles of one grain and sign into one run (one index range).
func merge(tiles []SignedTile) []SignedTile {
	var out []SignedTile
	for _, t := range tiles {
		if n := len(out); n > 0 && out[n-1].Grain == t.Grain && out[n-1].Sign == t.Sign &&
			Step(t.Grain, out[n-1].Last, 1).Equal(t.First) {
			out[n-1].Last = t.Last
			continue
		}
		out = append(out, t)
	}
	return out
}

// YearEarlier is the same date a calendar year before; 29 February maps to 28 February.
func YearEarlier(d time.Time) time.Time {
	d = Date(d)
	y := time.Date(d.Year()-1, d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	if y.Month() != d.Month() { // 29 February of a leap year
		return time.Date(d.Year()-1, d.Month()+1, 0, 0, 0, 0, 0, time.UTC)
	}
	return y
}
