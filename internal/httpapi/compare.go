package httpapi

import (
	"fmt"
	"time"

	"github.com/merchantagg/merchantagg/internal/period"
)

// Comparison modes (docs/metrics.md, Comparisons).
const (
	comparePreviousPeriod = "previous_period"
	comparePreviousYear   = "previous_year"
	compareCustom         = "custom"
)

// comparison is how a request's compared range is chosen: mode "" is none.
type comparison struct {
	mode     string
	from, to time.Time // custom
}

// parseComparison checks compare against compare_from and compare_to.
func parseComparison(mode *string, from, to *period.DateOnly) (comparison, *Problem) {
	switch {
	case (from != nil || to != nil) && mode != nil:
		return comparison{}, badParam("compare", "compare and compare_from/compare_to exclude each other")
	case from != nil && to == nil:
		return comparison{}, badParam("compare_to", "compare_to is required with compare_from")
	case to != nil && from == nil:
		return comparison{}, badParam("compare_from", "compare_from is required with compare_to")
	case from != nil:
		c := comparison{mode: compareCustom, from: period.Date(from.Time), to: period.Date(to.Time)}
		if c.from.After(c.to) {
			return comparison{}, badParam("compare_from", "compare_from is after compare_to")
		}
		if c.to.After(c.from.AddDate(maxRangeYears, 0, -1)) {
			return comparison{}, badParam("compare_to", fmt.Sprintf("the compared range may span at most %d years", maxRangeYears))
		}
		return c, nil
	case mode != nil:
		return comparison{mode: *mode}, nil
	}
	return comparison{}, nil
}

// rangeOf is the compared range of [from, to] (a summary's).
func (c comparison) rangeOf(from, to time.Time) (time.Time, time.Time) {
	switch c.mode {
	case comparePreviousYear:
		return period.YearEarlier(from), period.YearEarlier(to)
	case compareCustom:
		return c.from, c.to
	}
	return period.Previous(from, to)
}

// shifter returns the compared window of each point of a series of grain g over [from, to]:
// the point's days moved back by a calendar year (month, quarter and year grains) or 364 days
// (day and week: weekdays line up), by the range's length, or by the distance from the custom
// range's start, which must then be as long as the series'.
func (c comparison) shifter(g period.Grain, from, to time.Time) (func(period.Point) (time.Time, time.Time), *Problem) {
	days := func(n int) func(period.Point) (time.Time, time.Time) {
		return func(p period.Point) (time.Time, time.Time) { return p.From.AddDate(0, 0, -n), p.To.AddDate(0, 0, -n) }
	}
	switch c.mode {
	case comparePreviousYear:
		if g == period.Day || g == period.Week {
			return days(364), nil
		}
		return func(p period.Point) (time.Time, time.Time) {
			return period.YearEarlier(p.From), period.YearEarlier(p.To)
		}, nil
	case comparePreviousPeriod:
		return days(period.Days(from, to)), nil
	case compareCustom:
		if period.Days(c.from, c.to) != period.Days(from, to) {
			return nil, badParam("compare_to", "a series compares with a range of its own length")
		}
		return days(period.Days(c.from, from) - 1), nil
	}
	return nil, nil
}
